package builder_test

import (
	"context"
	"fmt"
	"net/netip"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/slipwayhq/slipway/pkg/testenv"
	"github.com/slipwayhq/slipway/pkg/testenv/gitserver"
	"github.com/slipwayhq/slipway/services/builds/builder"
)

// The host names of these tests resolve on the test's DNS server alone
// (the .test domain is reserved: no resolver of the system knows them),
// so a clone that reaches a server through one proves that ssh was given
// the address checked rather than looking the name up again, which is
// what a DNS answer changed between the check and the connection
// (rebinding) would get around.

// hashedKnownHosts is a known_hosts line for key under host:port with the
// host name hashed (ssh-keygen -H).
func hashedKnownHosts(host string, port int, key ssh.PublicKey) string {
	return knownhosts.Line([]string{knownhosts.HashHostname(knownhosts.Normalize(host + ":" + strconv.Itoa(port)))}, key)
}

// TestSSHHeldToCheckedAddress: the ssh command git runs connects to the
// address the check approved (HostName) and checks the host key under the
// URL's host name (HostKeyAlias: "[host]:port" off port 22, as ssh itself
// names it), and refuses a destination the build did not check.
func TestSSHHeldToCheckedAddress(t *testing.T) {
	dns := testenv.StartDNS(t)
	dns.Set("git.slipway.test", netip.MustParseAddr("127.0.0.1"))
	b := newBuilder(t, builder.Config{Resolver: dns.Resolver()})
	ctx := context.Background()
	src := builder.Source{URL: "ssh://git@Git.Slipway.test:2222/app.git"}
	for _, c := range []struct {
		name, args string
		want       []string
	}{
		{"the repository's server", "-G -o SendEnv=GIT_PROTOCOL -p 2222 git@git.slipway.test git-upload-pack app.git",
			[]string{"hostname 127.0.0.1\n", "hostkeyalias [git.slipway.test]:2222\n", "port 2222\n", "user git\n", "exit 0"}},
		{"upper-case name", "-G -p 2222 git@GIT.slipway.test true",
			[]string{"hostname 127.0.0.1\n", "hostkeyalias [git.slipway.test]:2222\n", "exit 0"}},
		{"another port", "-G -p 2223 git@git.slipway.test true", []string{"not a server this build checked", "exit 255"}},
		{"port 22", "-G git@git.slipway.test true", []string{"not a server this build checked", "exit 255"}},
		{"another host", "-G -p 2222 git@elsewhere.slipway.test true", []string{"not a server this build checked", "exit 255"}},
		{"the address", "-G -p 2222 git@127.0.0.1 true", []string{"not a server this build checked", "exit 255"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			out, err := b.RunSSH(ctx, src, c.args)
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range c.want {
				if !strings.Contains(out, w) {
					t.Errorf("ssh printed no %q:\n%s", w, out)
				}
			}
		})
	}

	// On port 22 (scp-like URLs) the alias is the bare name.
	out, err := b.RunSSH(ctx, builder.Source{URL: "git@git.slipway.test:owner/app.git"}, "-G -p 22 git@git.slipway.test true")
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"hostname 127.0.0.1\n", "hostkeyalias git.slipway.test\n", "port 22\n", "exit 0"} {
		if !strings.Contains(out, w) {
			t.Errorf("scp-like URL: ssh printed no %q:\n%s", w, out)
		}
	}
}

// TestCloneSSHByName clones over ssh from a real OpenSSH server through a
// host name only the builder resolves, with known_hosts written for that
// name (plain and hashed, "[name]:port"); a line for the server's address
// alone does not vouch for the name, and a name that resolves to a
// refused address is refused before anything connects.
func TestCloneSSHByName(t *testing.T) {
	srv := testenv.StartSSHD(t)
	dns := testenv.StartDNS(t)
	dns.Set("git.slipway.test", netip.MustParseAddr("127.0.0.1"))
	dns.Set("private.slipway.test", netip.MustParseAddr("10.1.2.3"))
	dns.Set("partly.slipway.test", netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("192.168.7.7"))
	repo := gitserver.NewFileRepo(t, t.TempDir(), "app", 0)
	sha := repo.Commit(t, "main", "c", site("by name"))
	url := fmt.Sprintf("ssh://%s@git.slipway.test:%d%s", srv.User, srv.Port, repo.Path)
	dir := t.TempDir()
	b := newBuilder(t, builder.Config{Dir: dir, Resolver: dns.Resolver()})

	for _, c := range []struct{ name, knownHosts string }{
		{"known hosts for the name", srv.KnownHostsFor("git.slipway.test")},
		{"hashed known hosts for the name", hashedKnownHosts("git.slipway.test", srv.Port, srv.HostKey)},
		{"no known hosts", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			var l logs
			res := build(t, b, request(builder.Source{URL: url, Branch: "main", Credentials: builder.Credentials{PrivateKey: srv.ClientKey, KnownHosts: c.knownHosts}}, &l), &l)
			if res.SHA != sha {
				t.Errorf("SHA %s, want %s", res.SHA, sha)
			}
			if got := readFile(t, filepath.Join(res.Path, "index.html")); got != "by name" {
				t.Errorf("index.html %q", got)
			}
			if err := b.Remove(context.Background(), res); err != nil {
				t.Fatal(err)
			}
		})
	}
	// Submodules over ssh, on the server's address and relative to the
	// repository's URL (so by its name): each held to the address
	// checked for it.
	t.Run("submodules", func(t *testing.T) {
		root := t.TempDir()
		lib := gitserver.NewFileRepo(t, root, "lib", 0)
		libSHA := lib.Commit(t, "main", "lib", map[string]string{"lib.txt": "from the submodule"})
		app := gitserver.NewFileRepo(t, root, "with-submodules", 0)
		app.Commit(t, "main", "app", site("app"))
		app.Submodule(t, "main", "by address", "vendor/addr", srv.URL(lib.Path), libSHA)
		app.Submodule(t, "main", "relative", "vendor/rel", "../lib.git", libSHA)
		var l logs
		res := build(t, b, request(builder.Source{
			URL: fmt.Sprintf("ssh://%s@git.slipway.test:%d%s", srv.User, srv.Port, app.Path), Branch: "main", Submodules: true,
			Credentials: builder.Credentials{PrivateKey: srv.ClientKey, KnownHosts: srv.KnownHostsFor("git.slipway.test") + "\n" + srv.KnownHosts},
		}, &l), &l)
		for _, p := range []string{"vendor/addr/lib.txt", "vendor/rel/lib.txt"} {
			if got := readFile(t, filepath.Join(res.Path, p)); got != "from the submodule" {
				t.Errorf("%s = %q", p, got)
			}
		}
		if err := b.Remove(context.Background(), res); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("refs by name", func(t *testing.T) {
		refs, err := b.Refs(context.Background(), builder.Source{URL: url, Credentials: builder.Credentials{PrivateKey: srv.ClientKey, KnownHosts: srv.KnownHostsFor("git.slipway.test")}})
		if err != nil || len(refs) != 1 || refs[0].SHA != sha {
			t.Errorf("Refs = %v, %v", refs, err)
		}
	})
	for _, c := range []struct {
		name, url, knownHosts string
		kind                  builder.Kind
		want                  string
	}{
		{"known hosts for the address only", url, srv.KnownHosts, builder.KindSource, "host key"},
		{"known hosts for the name without its port", url, "git.slipway.test " + strings.TrimSpace(string(ssh.MarshalAuthorizedKey(srv.HostKey))), builder.KindSource, "host key"},
		{"name of a private address", fmt.Sprintf("ssh://%s@private.slipway.test:%d%s", srv.User, srv.Port, repo.Path), "", builder.KindInvalid, "loopback or private address"},
		{"name with one refused address", fmt.Sprintf("ssh://%s@partly.slipway.test:%d%s", srv.User, srv.Port, repo.Path), "", builder.KindInvalid, "loopback or private address"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var l logs
			e := buildErr(t, b, request(builder.Source{URL: c.url, Branch: "main", Credentials: builder.Credentials{PrivateKey: srv.ClientKey, KnownHosts: c.knownHosts}}, &l))
			if e.Kind != c.kind || !strings.Contains(e.Message, c.want) {
				t.Errorf("error %s %q, want %s saying %q\nlog:\n%s", e.Kind, e.Message, c.kind, c.want, l.String())
			}
		})
	}
	noWorkDirs(t, dir)
}

// TestCloneSCPLikeURL clones git's scp-like URLs (user@host:path, which
// has no port: 22) from a real OpenSSH server on port 22 of a loopback
// address: by address with an absolute path, and by a host name with a
// path relative to the user's home (an ssh:// URL's "/~/"), held to the
// checked address and checked against known_hosts for the name; a name
// the server refuses is refused.
func TestCloneSCPLikeURL(t *testing.T) {
	srv := testenv.StartSSHD(t, testenv.SSHDOnPort(22))
	dns := testenv.StartDNS(t)
	dns.Set("scp.slipway.test", netip.MustParseAddr(srv.Host))
	dns.Set("private.slipway.test", netip.MustParseAddr("10.1.2.3"))
	repo := gitserver.NewFileRepo(t, t.TempDir(), "app", 0)
	sha := repo.Commit(t, "main", "c", site("scp-like"))
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	rel, err := filepath.Rel(u.HomeDir, repo.Path)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	b := newBuilder(t, builder.Config{Dir: dir, Resolver: dns.Resolver(), AllowHosts: []string{srv.Host}})

	for _, c := range []struct {
		name, url, knownHosts, cloning string
	}{
		{"address, absolute path", srv.User + "@" + srv.Host + ":" + repo.Path, srv.KnownHosts,
			"ssh://" + srv.User + "@" + srv.Host + ":22" + repo.Path},
		{"name, path in the home", srv.User + "@scp.slipway.test:" + rel, srv.KnownHostsFor("scp.slipway.test"),
			"ssh://" + srv.User + "@scp.slipway.test:22/~/" + rel},
		{"name, hashed known hosts", srv.User + "@scp.slipway.test:" + rel, hashedKnownHosts("scp.slipway.test", 22, srv.HostKey),
			"ssh://" + srv.User + "@scp.slipway.test:22/~/" + rel},
	} {
		t.Run(c.name, func(t *testing.T) {
			var l logs
			res := build(t, b, request(builder.Source{URL: c.url, Branch: "main", Credentials: builder.Credentials{PrivateKey: srv.ClientKey, KnownHosts: c.knownHosts}}, &l), &l)
			if res.SHA != sha {
				t.Errorf("SHA %s, want %s", res.SHA, sha)
			}
			if got := readFile(t, filepath.Join(res.Path, "index.html")); got != "scp-like" {
				t.Errorf("index.html %q", got)
			}
			// The user, host and path parsed from the URL, on port 22.
			if !l.contains("cloning " + c.cloning + ", branch main") {
				t.Errorf("no line saying it clones %s:\n%s", c.cloning, l.String())
			}
			if err := b.Remove(context.Background(), res); err != nil {
				t.Fatal(err)
			}
		})
	}
	strict := newBuilder(t, builder.Config{Resolver: dns.Resolver(), AllowHosts: []string{}})
	for _, c := range []struct {
		name, url, knownHosts string
		b                     *builder.Builder
		kind                  builder.Kind
		want                  string
	}{
		{"known hosts for the address only", srv.User + "@scp.slipway.test:" + rel, srv.KnownHosts, b, builder.KindSource, "host key"},
		{"name of a private address", srv.User + "@private.slipway.test:" + rel, "", b, builder.KindInvalid, "loopback or private address"},
		{"loopback not allowed", srv.User + "@scp.slipway.test:" + rel, "", strict, builder.KindInvalid, "loopback or private address"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var l logs
			e := buildErr(t, c.b, request(builder.Source{URL: c.url, Branch: "main", Credentials: builder.Credentials{PrivateKey: srv.ClientKey, KnownHosts: c.knownHosts}}, &l))
			if e.Kind != c.kind || !strings.Contains(e.Message, c.want) {
				t.Errorf("error %s %q, want %s saying %q\nlog:\n%s", e.Kind, e.Message, c.kind, c.want, l.String())
			}
		})
	}
	noWorkDirs(t, dir)
}
