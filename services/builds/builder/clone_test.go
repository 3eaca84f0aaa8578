package builder_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/slipwayhq/slipway/pkg/runtime"
	"github.com/slipwayhq/slipway/pkg/testenv"
	"github.com/slipwayhq/slipway/pkg/testenv/gitserver"
	"github.com/slipwayhq/slipway/services/builds/builder"
)

// site is a static site: the buildpack needs no build step, so these
// tests are about the clone.
func site(body string) map[string]string { return map[string]string{"index.html": body} }

func TestCloneBranchSHAAndPullRequest(t *testing.T) {
	srv := gitserver.New(t)
	repo := srv.Repo(t, "app")
	first := repo.Commit(t, "main", "first", site("one"))
	second := repo.Commit(t, "main", "second", site("two"))
	feature := repo.Commit(t, "feature", "feature", site("feature"))
	pr := repo.Commit(t, "pr-branch", "pr", map[string]string{"index.html": "pr", "sub/x": "y"})
	repo.PullRequest(t, 12, pr)

	dir := t.TempDir()
	b := newBuilder(t, builder.Config{Dir: dir})
	for _, c := range []struct {
		name     string
		src      builder.Source
		sha, out string
	}{
		{"branch", builder.Source{Branch: "main"}, second, "two"},
		{"other branch", builder.Source{Branch: "feature"}, feature, "feature"},
		{"older SHA", builder.Source{Branch: "main", SHA: first}, first, "one"},
		{"short SHA", builder.Source{SHA: first[:9]}, first, "one"},
		{"pull request", builder.Source{PullRequest: 12}, pr, "pr"},
		{"full clone with .git", builder.Source{Branch: "main", FullClone: true, IncludeGit: true}, second, "two"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var l logs
			c.src.URL = repo.URL
			var phases []builder.Phase
			req := request(c.src, &l)
			req.Phase = func(p builder.Phase) { phases = append(phases, p) }
			res := build(t, b, req, &l)
			if res.SHA != c.sha {
				t.Errorf("SHA %s, want %s", res.SHA, c.sha)
			}
			if res.Stack != builder.StackStatic {
				t.Errorf("stack %q", res.Stack)
			}
			if got := readFile(t, filepath.Join(res.Path, "index.html")); got != c.out {
				t.Errorf("index.html %q, want %q", got, c.out)
			}
			_, err := os.Stat(filepath.Join(res.Path, ".git"))
			if c.src.IncludeGit != (err == nil) {
				t.Errorf(".git kept: %v, want %v", err == nil, c.src.IncludeGit)
			}
			if strings.Join(phasesStr(phases), ",") != "CLONING,BUILDING,UPLOADING" {
				t.Errorf("phases %v", phases)
			}
			if err := b.Remove(context.Background(), res); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(res.Path); !os.IsNotExist(err) {
				t.Errorf("artifact left after Remove: %v", err)
			}
		})
	}
	noWorkDirs(t, dir)
}

func phasesStr(p []builder.Phase) []string {
	var s []string
	for _, x := range p {
		s = append(s, string(x))
	}
	return s
}

func TestClonePrivateRepository(t *testing.T) {
	const user, pass = "alice", "pa55-w0rd-never-shown"
	srv := gitserver.New(t, gitserver.WithBasicAuth(user, pass))
	repo := srv.Repo(t, "private")
	sha := repo.Commit(t, "main", "c", site("secret site"))
	b := newBuilder(t, builder.Config{})

	t.Run("with credentials", func(t *testing.T) {
		var l logs
		res := build(t, b, request(builder.Source{URL: repo.URL, Branch: "main", Credentials: builder.Credentials{Username: user, Password: pass}}, &l), &l)
		if res.SHA != sha {
			t.Errorf("SHA %s", res.SHA)
		}
		if l.contains(pass) {
			t.Errorf("the password is in the log:\n%s", l.String())
		}
	})
	t.Run("credentials in the URL", func(t *testing.T) {
		var l logs
		u := strings.Replace(repo.URL, "http://", "http://"+user+":"+pass+"@", 1)
		res := build(t, b, request(builder.Source{URL: u, Branch: "main"}, &l), &l)
		if res.SHA != sha {
			t.Errorf("SHA %s", res.SHA)
		}
		if l.contains(pass) {
			t.Errorf("the password is in the log:\n%s", l.String())
		}
	})
	for _, c := range []struct {
		name string
		src  builder.Source
	}{
		{"no credentials", builder.Source{URL: repo.URL, Branch: "main"}},
		{"wrong password", builder.Source{URL: repo.URL, Branch: "main", Credentials: builder.Credentials{Username: user, Password: "wrong-" + pass}}},
		{"wrong password in the URL", builder.Source{URL: strings.Replace(repo.URL, "http://", "http://"+user+":wrong-"+pass+"@", 1), Branch: "main"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var l logs
			e := buildErr(t, b, request(c.src, &l))
			if e.Kind != builder.KindSource || !strings.Contains(e.Message, "authentication failed") {
				t.Errorf("error %s %q, want an authentication failure\nlog:\n%s", e.Kind, e.Message, l.String())
			}
			if strings.Contains(e.Error(), pass) || l.contains(pass) {
				t.Errorf("the password leaked: %q\n%s", e.Error(), l.String())
			}
		})
	}
}

func TestCloneFileRepositoryOfAnotherUser(t *testing.T) {
	root := t.TempDir()
	repo := gitserver.NewFileRepo(t, root, "shared", 4321)
	sha := repo.Commit(t, "main", "c", site("from disk"))
	b := newBuilder(t, builder.Config{FileRoots: []string{root}})
	var l logs
	res := build(t, b, request(builder.Source{URL: repo.URL, Branch: "main"}, &l), &l)
	if res.SHA != sha {
		t.Errorf("SHA %s, want %s", res.SHA, sha)
	}
	if got := readFile(t, filepath.Join(res.Path, "index.html")); got != "from disk" {
		t.Errorf("index.html %q", got)
	}
	// The same path is refused without the root.
	e := buildErr(t, newBuilder(t, builder.Config{FileRoots: []string{t.TempDir()}}), request(builder.Source{URL: repo.URL, Branch: "main"}, &l))
	if e.Kind != builder.KindInvalid || !strings.Contains(e.Message, "outside the directories") {
		t.Errorf("outside the roots: %s %q", e.Kind, e.Message)
	}
}

func TestRefusedSources(t *testing.T) {
	srv := gitserver.New(t)
	repo := srv.Repo(t, "app")
	repo.Commit(t, "main", "c", site("x"))
	html := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("<html>not git</html>"))
	}))
	defer html.Close()
	root := t.TempDir()
	outside := gitserver.NewFileRepo(t, t.TempDir(), "outside", 0)
	outside.Commit(t, "main", "c", site("x"))

	plainFile := filepath.Join(root, "file.git")
	if err := os.WriteFile(plainFile, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	b := newBuilder(t, builder.Config{FileRoots: []string{root}})
	strict := newBuilder(t, builder.Config{AllowHosts: []string{}})
	for _, c := range []struct {
		name   string
		b      *builder.Builder
		src    builder.Source
		kind   builder.Kind
		reason string
	}{
		{"private host not allowed", strict, builder.Source{URL: repo.URL, Branch: "main"}, builder.KindInvalid, "loopback or private address"},
		{"localhost name not allowed", strict, builder.Source{URL: strings.Replace(repo.URL, "127.0.0.1", "localhost", 1), Branch: "main"}, builder.KindInvalid, "loopback or private address"},
		{"private range not allowed", strict, builder.Source{URL: "https://10.1.2.3/x.git", Branch: "main"}, builder.KindInvalid, "loopback or private address"},
		{"file that is no directory", b, builder.Source{URL: "file://" + plainFile, Branch: "main"}, builder.KindSource, "no git repository"},
		{"file that does not exist", b, builder.Source{URL: "file://" + root + "/missing.git", Branch: "main"}, builder.KindSource, "no git repository"},
		{"file outside the roots", b, builder.Source{URL: outside.URL, Branch: "main"}, builder.KindInvalid, "outside the directories"},
		{"file with no roots", strict, builder.Source{URL: outside.URL, Branch: "main"}, builder.KindInvalid, "not allowed"},
		{"file escaping with ..", b, builder.Source{URL: "file://" + root + "/../x.git", Branch: "main"}, builder.KindInvalid, "clean absolute path"},
		{"port with a leading zero", b, builder.Source{URL: "ssh://git@127.0.0.1:022/x.git", Branch: "main"}, builder.KindInvalid, "invalid port"},
		{"port out of range", b, builder.Source{URL: "http://127.0.0.1:99999/x.git", Branch: "main"}, builder.KindInvalid, "invalid port"},
		{"ssh host that is no name", b, builder.Source{URL: "ssh://git@a$b/x.git", Branch: "main"}, builder.KindInvalid, "invalid host"},
		{"unsupported scheme", b, builder.Source{URL: "ftp://127.0.0.1/x.git", Branch: "main"}, builder.KindInvalid, "unsupported"},
		{"ext transport", b, builder.Source{URL: "ext::touch%20/tmp/pwned", Branch: "main"}, builder.KindInvalid, "unsupported"},
		{"option as URL", b, builder.Source{URL: "--upload-pack=touch /tmp/pwned", Branch: "main"}, builder.KindInvalid, "invalid repository URL"},
		{"bad branch name", b, builder.Source{URL: repo.URL, Branch: "--foo"}, builder.KindInvalid, "invalid branch"},
		{"bad SHA", b, builder.Source{URL: repo.URL, SHA: "zzzz"}, builder.KindInvalid, "invalid commit"},
		{"nothing to build", b, builder.Source{URL: repo.URL}, builder.KindInvalid, "nothing to build"},
		{"no repository there", b, builder.Source{URL: srv.URL + "/nope.git", Branch: "main"}, builder.KindSource, "no git repository"},
		{"not a git server", b, builder.Source{URL: html.URL + "/x.git", Branch: "main"}, builder.KindSource, "no git repository"},
		// ssh runs in the sandbox (as a user missing from /etc/passwd,
		// which ssh refuses without nss_wrapper) and gets as far as
		// connecting.
		{"ssh unreachable", b, builder.Source{URL: "ssh://git@127.0.0.1:1/x.git", Branch: "main"}, builder.KindSource, "could not be reached"},
		{"scp-like ssh unreachable", b, builder.Source{URL: "git@127.0.0.1:x.git", Branch: "main"}, builder.KindSource, "could not be reached"},
		{"unreachable", b, builder.Source{URL: "http://127.0.0.1:1/x.git", Branch: "main"}, builder.KindSource, "could not be reached"},
		{"unknown branch", b, builder.Source{URL: repo.URL, Branch: "nope"}, builder.KindSource, `branch "nope" not found`},
		{"unknown SHA", b, builder.Source{URL: repo.URL, SHA: strings.Repeat("ab", 20)}, builder.KindSource, "not found"},
		{"unknown pull request", b, builder.Source{URL: repo.URL, PullRequest: 99}, builder.KindSource, "pull request 99 not found"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var l logs
			e := buildErr(t, c.b, request(c.src, &l))
			if e.Kind != c.kind || !strings.Contains(e.Message, c.reason) {
				t.Errorf("error %s %q, want %s containing %q\nlog:\n%s", e.Kind, e.Message, c.kind, c.reason, l.String())
			}
			if strings.Contains(e.Message, os.TempDir()+"/") && !strings.Contains(c.src.URL, os.TempDir()) {
				t.Errorf("a host path in the reason: %q", e.Message)
			}
		})
	}
	if _, err := os.Stat("/tmp/pwned"); err == nil {
		t.Error("a URL ran a command")
	}
}

func TestRefs(t *testing.T) {
	srv := gitserver.New(t, gitserver.WithBasicAuth("u", "p4ssw0rd"))
	repo := srv.Repo(t, "app")
	main := repo.Commit(t, "main", "c", site("x"))
	dev := repo.Commit(t, "dev", "d", site("y"))
	repo.PullRequest(t, 3, dev)
	b := newBuilder(t, builder.Config{})
	refs, err := b.Refs(context.Background(), builder.Source{URL: repo.URL, Credentials: builder.Credentials{Username: "u", Password: "p4ssw0rd"}})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]builder.Ref{"main": {Name: "main", SHA: main}, "dev": {Name: "dev", SHA: dev}, "refs/pull/3/head": {Name: "refs/pull/3/head", SHA: dev, PullRequest: 3}}
	if len(refs) != len(want) {
		t.Fatalf("refs %+v", refs)
	}
	for _, r := range refs {
		if want[r.Name] != r {
			t.Errorf("ref %+v, want %+v", r, want[r.Name])
		}
	}
	_, err = b.Refs(context.Background(), builder.Source{URL: repo.URL})
	var e *builder.Error
	if !errors.As(err, &e) || !strings.Contains(e.Message, "authentication failed") {
		t.Errorf("without credentials: %v", err)
	}
}

func TestCloneSubmodules(t *testing.T) {
	srv := gitserver.New(t)
	lib := srv.Repo(t, "lib")
	libSHA := lib.Commit(t, "main", "lib", map[string]string{"lib.txt": "from the submodule"})
	app := srv.Repo(t, "app")
	app.Commit(t, "main", "app", site("app"))
	app.Submodule(t, "main", "absolute", "vendor/lib", lib.URL, libSHA)
	app.Submodule(t, "main", "relative", "vendor/rel", "../lib.git", libSHA)
	b := newBuilder(t, builder.Config{})

	var l logs
	res := build(t, b, request(builder.Source{URL: app.URL, Branch: "main", Submodules: true}, &l), &l)
	for _, p := range []string{"vendor/lib/lib.txt", "vendor/rel/lib.txt"} {
		if got := readFile(t, filepath.Join(res.Path, p)); got != "from the submodule" {
			t.Errorf("%s = %q", p, got)
		}
	}
	// Without Submodules the directories stay empty.
	res = build(t, b, request(builder.Source{URL: app.URL, Branch: "main"}, &l), &l)
	if _, err := os.Stat(filepath.Join(res.Path, "vendor/lib/lib.txt")); !os.IsNotExist(err) {
		t.Errorf("submodule fetched unasked: %v", err)
	}

	// A submodule on a host the server refuses is refused before git
	// fetches it.
	evil := srv.Repo(t, "evil")
	evil.Commit(t, "main", "c", site("x"))
	evil.Submodule(t, "main", "private", "sub", "http://10.0.0.1/secret.git", libSHA)
	e := buildErr(t, b, request(builder.Source{URL: evil.URL, Branch: "main", Submodules: true}, &l))
	if e.Kind != builder.KindInvalid || !strings.Contains(e.Message, "submodule") || !strings.Contains(e.Message, "private address") {
		t.Errorf("error %s %q", e.Kind, e.Message)
	}
}

// TestCloneLFS runs the Git LFS step: with nothing stored in LFS it is a
// no-op, but it proves git-lfs is installed and runs in the sandbox. (The
// loopback git server has no LFS API to serve objects from.)
func TestCloneLFS(t *testing.T) {
	srv := gitserver.New(t)
	repo := srv.Repo(t, "app")
	sha := repo.Commit(t, "main", "c", map[string]string{"index.html": "x", ".gitattributes": "*.bin filter=lfs diff=lfs merge=lfs -text\n"})
	var l logs
	res := build(t, newBuilder(t, builder.Config{}), request(builder.Source{URL: repo.URL, Branch: "main", LFS: true}, &l), &l)
	if res.SHA != sha {
		t.Errorf("SHA %s", res.SHA)
	}
}

// TestBuildAgainAfterCrash: a build id run again (a server that crashed
// mid-build retries it) finds and removes what the first run left.
func TestBuildAgainAfterCrash(t *testing.T) {
	srv := gitserver.New(t)
	repo := srv.Repo(t, "app")
	sha := repo.Commit(t, "main", "c", site("x"))
	dir := t.TempDir()
	b := newBuilder(t, builder.Config{Dir: dir})
	var l logs
	req := request(builder.Source{URL: repo.URL, Branch: "main"}, &l)
	d := processDriver(t)
	if _, err := d.Start(context.Background(), runtime.Spec{Name: "build-" + req.BuildID + "-clone", Command: []string{"sleep", "60"},
		Labels: map[string]string{builder.LabelBuild: req.BuildID, builder.LabelTeam: "team"}}); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "work", req.BuildID, "src", "junk"), 0o700); err != nil {
		t.Fatal(err)
	}
	res := build(t, b, req, &l)
	if res.SHA != sha {
		t.Errorf("SHA %s", res.SHA)
	}
	if _, err := os.Stat(filepath.Join(res.Path, "junk")); !os.IsNotExist(err) {
		t.Errorf("the stale work directory was built: %v", err)
	}
	noWorkDirs(t, dir)
}

// TestMessages reads commit messages of heads in the sandbox, by id. When
// the server cannot serve one of the commits by id (here: one it does not
// have, as after a force-push on a server that serves only what its refs
// reach), the heads are fetched by name instead: the others' messages
// are read, and the missing commit is left out rather than answered with
// another commit's message.
func TestMessages(t *testing.T) {
	srv := gitserver.New(t, gitserver.WithBasicAuth("u", "p4ssw0rd"))
	repo := srv.Repo(t, "app")
	first := repo.Commit(t, "main", "first", site("x"))
	skip := repo.Commit(t, "dev", "docs only [skip ci]\n\nA body line.", site("y"))
	repo.PullRequest(t, 4, skip)
	b := newBuilder(t, builder.Config{})
	src := builder.Source{URL: repo.URL, Credentials: builder.Credentials{Username: "u", Password: "p4ssw0rd"}}
	heads := []builder.Ref{{Name: "main", SHA: first}, {Name: "dev", SHA: skip}, {Name: "refs/pull/4/head", SHA: skip, PullRequest: 4}}
	msgs, err := b.Messages(context.Background(), src, heads)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{first: "first\n", skip: "docs only [skip ci]\n\nA body line.\n"}
	if !reflect.DeepEqual(msgs, want) {
		t.Errorf("messages %q, want %q", msgs, want)
	}

	gone := srv.Repo(t, "elsewhere").Commit(t, "main", "not in app", site("z"))
	msgs, err = b.Messages(context.Background(), src, []builder.Ref{{Name: "main", SHA: gone}, {Name: "refs/pull/4/head", SHA: skip, PullRequest: 4}})
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]string{skip: want[skip]}; !reflect.DeepEqual(msgs, want) {
		t.Errorf("by name: messages %q, want %q", msgs, want)
	}

	if _, err := b.Messages(context.Background(), builder.Source{URL: repo.URL}, heads); err == nil || strings.Contains(err.Error(), "p4ssw0rd") {
		t.Errorf("without credentials: %v", err)
	}
}

// TestCloneSSH clones over ssh from a real OpenSSH server with a private
// key, with and without the server's known host key; a wrong host key
// or a wrong private key fails the build with a message that says so and
// holds no key material.
func TestCloneSSH(t *testing.T) {
	srv := testenv.StartSSHD(t)
	repo := gitserver.NewFileRepo(t, t.TempDir(), "app", 0)
	sha := repo.Commit(t, "main", "c", site("over ssh"))
	url := srv.URL(repo.Path)
	otherKey, otherPub := testenv.SSHKey(t)
	wrongHost := knownhosts.Line([]string{knownhosts.Normalize(fmt.Sprintf("127.0.0.1:%d", srv.Port))}, otherPub)
	dir := t.TempDir()
	b := newBuilder(t, builder.Config{Dir: dir})

	// leaked reports whether a line of a private key's body is in s.
	leaked := func(s string, keys ...string) bool {
		for _, k := range keys {
			for _, l := range strings.Split(k, "\n") {
				if l = strings.TrimSpace(l); len(l) >= 16 && !strings.HasPrefix(l, "-----") && strings.Contains(s, l) {
					return true
				}
			}
		}
		return false
	}
	for _, c := range []struct {
		name  string
		creds builder.Credentials
	}{
		{"key, host key accepted", builder.Credentials{PrivateKey: srv.ClientKey}},
		{"key and known host key", builder.Credentials{PrivateKey: srv.ClientKey, KnownHosts: "# the test server\n" + srv.KnownHosts + "\n"}},
		{"known host key among others", builder.Credentials{PrivateKey: srv.ClientKey, KnownHosts: "git.example.com " + strings.TrimSpace(string(ssh.MarshalAuthorizedKey(otherPub))) + "\n" + srv.KnownHosts}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var l logs
			res := build(t, b, request(builder.Source{URL: url, Branch: "main", Credentials: c.creds}, &l), &l)
			if res.SHA != sha {
				t.Errorf("SHA %s, want %s", res.SHA, sha)
			}
			if got := readFile(t, filepath.Join(res.Path, "index.html")); got != "over ssh" {
				t.Errorf("index.html %q", got)
			}
			if leaked(l.String(), srv.ClientKey) {
				t.Errorf("the private key is in the log:\n%s", l.String())
			}
			if err := b.Remove(context.Background(), res); err != nil {
				t.Fatal(err)
			}
		})
	}
	t.Run("refs with the known host key", func(t *testing.T) {
		refs, err := b.Refs(context.Background(), builder.Source{URL: url, Credentials: builder.Credentials{PrivateKey: srv.ClientKey, KnownHosts: srv.KnownHosts}})
		if err != nil || len(refs) != 1 || refs[0].Name != "main" || refs[0].SHA != sha {
			t.Errorf("Refs = %v, %v", refs, err)
		}
	})
	for _, c := range []struct {
		name, want string
		creds      builder.Credentials
	}{
		{"wrong host key", "host key", builder.Credentials{PrivateKey: srv.ClientKey, KnownHosts: wrongHost}},
		{"host key of another host only", "host key", builder.Credentials{PrivateKey: srv.ClientKey, KnownHosts: "git.example.com " + strings.TrimSpace(string(ssh.MarshalAuthorizedKey(srv.HostKey)))}},
		{"wrong private key", "authentication failed", builder.Credentials{PrivateKey: otherKey, KnownHosts: srv.KnownHosts}},
		{"no private key", "authentication failed", builder.Credentials{KnownHosts: srv.KnownHosts}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var l logs
			e := buildErr(t, b, request(builder.Source{URL: url, Branch: "main", Credentials: c.creds}, &l))
			if e.Kind != builder.KindSource || !strings.Contains(e.Message, c.want) {
				t.Errorf("error %s %q, want %q\nlog:\n%s", e.Kind, e.Message, c.want, l.String())
			}
			if leaked(e.Error()+l.String(), srv.ClientKey, otherKey) {
				t.Errorf("a private key leaked: %q\n%s", e.Error(), l.String())
			}
		})
	}
	noWorkDirs(t, dir)
}
