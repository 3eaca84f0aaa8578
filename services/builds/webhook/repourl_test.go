package webhook

import (
	"strings"
	"testing"
)

var repoURLCases = []struct{ in, want string }{
	{"https://github.com/owner/repo", "github.com/owner/repo"},
	{"https://github.com/owner/repo.git", "github.com/owner/repo"},
	{"https://github.com/owner/repo/", "github.com/owner/repo"},
	{"https://github.com/owner/repo.git/", "github.com/owner/repo"},
	{"https://github.com/owner/Repo.GIT", "github.com/owner/repo"},
	{"0:.giT", ""},
	{"/srv/git/App.GIT", "/srv/git/App.GIT"},
	{"  https://GitHub.COM/Owner/Repo  ", "github.com/owner/repo"},
	{"http://github.com/owner/repo", "github.com/owner/repo"},
	{"https://user:token@github.com/owner/repo.git", "github.com/owner/repo"},
	{"https://github.com:443/owner/repo?tab=readme#top", "github.com/owner/repo"},
	{"https://github.com//owner//repo", "github.com/owner/repo"},
	{"https://github.com/owner/./x/../repo", "github.com/owner/repo"},
	{"git@github.com:owner/repo.git", "github.com/owner/repo"},
	{"git@github.com:owner/repo", "github.com/owner/repo"},
	{"github.com:owner/repo.git", "github.com/owner/repo"},
	{"ssh://git@github.com/owner/repo", "github.com/owner/repo"},
	{"ssh://git@github.com:22/owner/repo.git", "github.com/owner/repo"},
	{"git+ssh://git@github.com/owner/repo.git", "github.com/owner/repo"},
	{"git://github.com/owner/repo.git", "github.com/owner/repo"},
	{"ssh://gitea@localhost:2222/gitea/webhooks.git", "localhost/gitea/webhooks"},
	{"http://localhost:3000/gitea/webhooks", "localhost/gitea/webhooks"},
	{"https://gitlab.example.com/group/sub/project.git", "gitlab.example.com/group/sub/project"},
	{"git@gitlab.example.com:group/sub/project.git", "gitlab.example.com/group/sub/project"},
	{"https://[::1]:8080/o/r.git", "::1/o/r"},
	{"git@[::1]:o/r.git", "::1/o/r"},
	{"file:///srv/git/App.git", "/srv/git/App"},
	{"file://localhost/srv/git/App.git/", "/srv/git/App"},
	{"/srv/git/App.git", "/srv/git/App"},
	// Not repository URLs.
	{"", ""},
	{"   ", ""},
	{"https://github.com", ""},
	{"https://github.com/", ""},
	{"https:///owner/repo", ""},
	{"file://otherhost/srv/repo", ""},
	{"ftp://example.com/o/r", ""},
	{"^:o/r", ""},
	{"git@exa mple.com:o/r", ""},
	{"javascript://github.com/o/r", ""},
	{"owner/repo", ""},
	{"git@github.com:", ""},
	{":owner/repo", ""},
	{"https://github.com/o/r\n", "github.com/o/r"},
	{"https://github.com/o/\x00r", ""},
	{"https://github.com/o/%zz", ""},
}

func TestNormalizeRepoURL(t *testing.T) {
	for _, c := range repoURLCases {
		if got := NormalizeRepoURL(c.in); got != c.want {
			t.Errorf("NormalizeRepoURL(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestSameRepo(t *testing.T) {
	same := []string{
		"https://github.com/Codertocat/Hello-World", "https://github.com/codertocat/hello-world.git",
		"git@github.com:Codertocat/Hello-World.git", "ssh://git@github.com/Codertocat/Hello-World",
		"git://github.com/Codertocat/Hello-World.git", "HTTPS://GITHUB.COM/codertocat/hello-world/",
	}
	for _, a := range same {
		for _, b := range same {
			if !SameRepo(a, b) {
				t.Errorf("SameRepo(%q, %q) = false", a, b)
			}
		}
	}
	for _, c := range [][2]string{
		{"https://github.com/o/r", "https://github.com/o/r2"},
		{"https://github.com/o/r", "https://gitlab.com/o/r"},
		{"https://github.com/o/r", "https://github.com/other/o/r"},
		{"/srv/git/App", "/srv/git/app"}, // local paths keep their case
		{"", ""},
		{"not a url", "not a url"},
	} {
		if SameRepo(c[0], c[1]) {
			t.Errorf("SameRepo(%q, %q) = true", c[0], c[1])
		}
	}
}

// FuzzNormalizeRepoURL: no input makes the normaliser panic, its output is
// in normal form, and the spellings it promises to fold are folded. The
// seeds run in every `go test`; `go test -fuzz FuzzNormalizeRepoURL
// ./services/builds/webhook` explores.
func FuzzNormalizeRepoURL(f *testing.F) {
	for _, c := range repoURLCases {
		f.Add(c.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n := NormalizeRepoURL(s)
		if SameRepo(s, s) != (n != "") {
			t.Fatalf("%q: SameRepo with itself is %v, normal form %q", s, SameRepo(s, s), n)
		}
		if n == "" {
			return
		}
		if strings.HasSuffix(n, "/") || strings.HasSuffix(n, ".git") || strings.Contains(n, "//") {
			t.Fatalf("%q: normal form %q is not normal", s, n)
		}
		if !strings.HasPrefix(n, "/") && n != strings.ToLower(n) {
			t.Fatalf("%q: remote normal form %q is not lowercase", s, n)
		}
		// A trailing "/" or ".git" names the same repository, when the
		// URL has no query or fragment for it to land in.
		// (A name ending in "." would become a different one: "x/." is x,
		// "x/..git" is not.)
		if trimmed := strings.TrimSpace(s); !strings.ContainsAny(s, "?#") && !strings.HasSuffix(trimmed, ".") {
			for _, variant := range []string{trimmed + "/", trimmed + ".git"} {
				if strings.HasSuffix(trimmed, "/") && strings.HasSuffix(variant, ".git") {
					continue // "x/.git" is a repository inside x
				}
				if strings.Contains(variant, "://") != strings.Contains(trimmed, "://") {
					continue // "host:/" + "/" is "host://", another kind of URL
				}
				if got := NormalizeRepoURL(variant); got != n {
					t.Fatalf("%q → %q but %q → %q", s, n, variant, got)
				}
			}
		}
		// A remote URL's normal form, spelt as https, comes back to itself.
		if !strings.HasPrefix(n, "/") && !strings.ContainsAny(n, "%?#@[]: \\") {
			if again := NormalizeRepoURL("https://" + n); again != n {
				t.Fatalf("%q → %q, but https://%s → %q", s, n, n, again)
			}
		}
	})
}
