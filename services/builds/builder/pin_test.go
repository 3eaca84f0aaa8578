package builder_test

import (
	"net/netip"
	"net/url"
	"strings"
	"testing"

	"github.com/slipwayhq/slipway/pkg/testenv"
	"github.com/slipwayhq/slipway/pkg/testenv/gitserver"
	"github.com/slipwayhq/slipway/services/builds/builder"
)

// TestCloneHTTPHeldToCheckedAddress clones over http through host names
// only the builder's resolver knows (see ssh_test.go): git cannot resolve
// them itself, so a clone that reaches the server proves git was held to
// the address checked (http.curloptResolve). A name with an IPv6 address
// only is held to it like one with IPv4, and a submodule on another name
// is held to the address checked for it.
func TestCloneHTTPHeldToCheckedAddress(t *testing.T) {
	dns := testenv.StartDNS(t)
	b := newBuilder(t, builder.Config{Resolver: dns.Resolver(), AllowHosts: []string{"127.0.0.1", "::1"}})

	t.Run("IPv6 only", func(t *testing.T) {
		srv := gitserver.New(t, gitserver.WithListenAddress("[::1]:0"))
		repo := srv.Repo(t, "app")
		sha := repo.Commit(t, "main", "c", site("over IPv6"))
		u, err := url.Parse(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		dns.Set("v6.slipway.test", netip.MustParseAddr("::1"))
		var l logs
		res := build(t, b, request(builder.Source{URL: "http://v6.slipway.test:" + u.Port() + "/app.git", Branch: "main"}, &l), &l)
		if res.SHA != sha {
			t.Errorf("SHA %s, want %s", res.SHA, sha)
		}

		dns.Set("private6.slipway.test", netip.MustParseAddr("fd00::7"))
		e := buildErr(t, b, request(builder.Source{URL: "http://private6.slipway.test:" + u.Port() + "/app.git", Branch: "main"}, &l))
		if e.Kind != builder.KindInvalid || !strings.Contains(e.Message, "loopback or private address") {
			t.Errorf("error %s %q", e.Kind, e.Message)
		}
	})

	t.Run("submodule by name", func(t *testing.T) {
		srv := gitserver.New(t)
		u, err := url.Parse(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		dns.Set("lib.slipway.test", netip.MustParseAddr("127.0.0.1"))
		lib := srv.Repo(t, "lib")
		libSHA := lib.Commit(t, "main", "lib", map[string]string{"lib.txt": "from the submodule"})
		app := srv.Repo(t, "app")
		app.Commit(t, "main", "app", site("app"))
		app.Submodule(t, "main", "by name", "vendor/lib", "http://lib.slipway.test:"+u.Port()+"/lib.git", libSHA)
		var l logs
		res := build(t, b, request(builder.Source{URL: app.URL, Branch: "main", Submodules: true}, &l), &l)
		if got := readFile(t, res.Path+"/vendor/lib/lib.txt"); got != "from the submodule" {
			t.Errorf("vendor/lib/lib.txt = %q", got)
		}
	})
}
