package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/slipwayhq/slipway/services/builds/trigger"
)

const secret = "It's a Secret to Everybody"

// fixture reads testdata/name.
func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// mac is the hex HMAC-SHA256 of body under key.
func mac(key string, body []byte) string {
	m := hmac.New(sha256.New, []byte(key))
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// headers are the headers each provider sends with a delivery of event,
// signed with key: GitHub's, GitLab's, Gitea's (which include GitHub's
// and Gogs'), and Forgejo's (which include Gitea's).
func headers(p string, event string, body []byte, key string) http.Header {
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	switch p {
	case "github":
		h.Set("User-Agent", "GitHub-Hookshot/044aadd")
		h.Set("X-GitHub-Event", event)
		h.Set("X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958")
		h.Set("X-GitHub-Hook-ID", "292430182")
		h.Set("X-Hub-Signature", "sha1=7d38cdd689735b008b3c702edd92eea23791c5f6") // SHA-1: never trusted
		h.Set("X-Hub-Signature-256", "sha256="+mac(key, body))
	case "gitlab":
		h.Set("User-Agent", "GitLab/17.6.0")
		h.Set("X-Gitlab-Event", event)
		h.Set("X-Gitlab-Instance", "https://gitlab.example.com")
		h.Set("X-Gitlab-Webhook-UUID", "16b3d96a-4f7c-4a5a-8d1f-3f9d3e6c2b11")
		h.Set("X-Gitlab-Event-UUID", "13792a34-cac6-4fda-95a8-c58e00a3954e")
		h.Set("Idempotency-Key", "908a6d9e-45fd-46c8-97e6-c4f350f219dd")
		h.Set("X-Gitlab-Token", key)
	case "gitea", "forgejo":
		id := "f6266f16-1bf3-46a5-9ea4-602e06ead473"
		for _, prefix := range []string{"X-GitHub-", "X-Gogs-", "X-Gitea-"} {
			h.Set(prefix+"Event", event)
			h.Set(prefix+"Delivery", id)
		}
		h.Set("X-Gitea-Event-Type", event)
		h.Set("X-Gitea-Signature", mac(key, body))
		h.Set("X-Gogs-Signature", mac(key, body))
		h.Set("X-Hub-Signature-256", "sha256="+mac(key, body))
		if p == "forgejo" {
			h.Set("X-Forgejo-Event", event)
			h.Set("X-Forgejo-Delivery", id)
			h.Set("X-Forgejo-Signature", mac(key, body))
		}
	}
	return h
}

func TestReceive(t *testing.T) {
	for _, c := range []struct {
		name, provider, event, file string
		want                        Event
		changed                     []string
		messages                    []string
	}{
		{
			name: "GitHub push", provider: "github", event: "push", file: "github_push.json",
			want: Event{
				Provider: GitHub, Kind: Push, DeliveryID: "72d3162e-cc78-11e3-81ab-4c9367dc0958",
				RepoURLs: []string{
					"https://github.com/Codertocat/Hello-World", "https://github.com/Codertocat/Hello-World.git",
					"git@github.com:Codertocat/Hello-World.git", "git://github.com/Codertocat/Hello-World.git",
				},
				Ref: "refs/heads/main", Branch: "main",
				SHA: "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c", Before: "9049f1265b7d61be4a8904a9a27120d2064dab3b",
				Commits: []Commit{
					{SHA: "6113728f27ae82c7b1a177c8d03f9e96e0adf246", Message: "Update docs",
						Added: []string{"docs/intro.md"}, Modified: []string{"README.md"}, Removed: []string{}},
					{SHA: "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c", Message: "Fix the login handler\n\nThe session cookie was not set.",
						Added: []string{}, Modified: []string{"src/login.go", "README.md"}, Removed: []string{"src/old.go"}},
				},
				HeadCommitMessage: "Fix the login handler\n\nThe session cookie was not set.",
			},
			changed:  []string{"docs/intro.md", "README.md", "src/login.go", "src/old.go"},
			messages: []string{"Update docs", "Fix the login handler\n\nThe session cookie was not set."},
		},
		{
			name: "GitHub tag push", provider: "github", event: "push", file: "github_push_tag.json",
			want: Event{
				Provider: GitHub, Kind: Push, DeliveryID: "72d3162e-cc78-11e3-81ab-4c9367dc0958",
				Ref: "refs/tags/v1.2.0", Tag: "v1.2.0", SHA: "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c",
				Commits: []Commit{}, HeadCommitMessage: "Fix the login handler\n\nThe session cookie was not set.",
			},
			messages: []string{"Fix the login handler\n\nThe session cookie was not set."},
		},
		{
			name: "GitHub branch deletion", provider: "github", event: "push", file: "github_push_delete.json",
			want: Event{
				Provider: GitHub, Kind: Push, DeliveryID: "72d3162e-cc78-11e3-81ab-4c9367dc0958",
				Ref: "refs/heads/feature/old", Branch: "feature/old", Deleted: true,
				Before: "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c", Commits: []Commit{},
			},
		},
		{
			name: "GitHub pull request opened", provider: "github", event: "pull_request", file: "github_pull_request_opened.json",
			want: Event{
				Provider: GitHub, Kind: PullRequest, DeliveryID: "72d3162e-cc78-11e3-81ab-4c9367dc0958",
				Branch: "changes", SHA: "ec26c3e57ca3a959ca5aad62de7213c562f8c821",
				PullRequest: &PR{
					ID: 2, Action: PROpened, State: "open", Source: "changes", Destination: "main",
					SHA: "ec26c3e57ca3a959ca5aad62de7213c562f8c821", Title: "Update the README with new information.",
					URL: "https://github.com/Codertocat/Hello-World/pull/2", HeadRef: "refs/pull/2/head",
				},
			},
		},
		{
			name: "GitHub pull request synchronize from a fork", provider: "github", event: "pull_request",
			file: "github_pull_request_synchronize.json",
			want: Event{
				Provider: GitHub, Kind: PullRequest, DeliveryID: "72d3162e-cc78-11e3-81ab-4c9367dc0958",
				Branch: "changes", SHA: "34c5c7793cb3b279e22454cb6750c80560547b3a",
				PullRequest: &PR{
					ID: 2, Action: PRSynchronize, State: "open", Source: "changes", Destination: "main",
					SHA: "34c5c7793cb3b279e22454cb6750c80560547b3a", Title: "Update the README with new information.",
					URL: "https://github.com/Codertocat/Hello-World/pull/2", FromFork: true, HeadRef: "refs/pull/2/head",
				},
			},
		},
		{
			name: "GitHub ping", provider: "github", event: "ping", file: "github_ping.json",
			want: Event{Provider: GitHub, Kind: Ping, DeliveryID: "72d3162e-cc78-11e3-81ab-4c9367dc0958"},
		},
		{
			name: "GitLab push", provider: "gitlab", event: "Push Hook", file: "gitlab_push.json",
			want: Event{
				Provider: GitLab, Kind: Push, DeliveryID: "908a6d9e-45fd-46c8-97e6-c4f350f219dd",
				RepoURLs: []string{"http://example.com/mike/diaspora", "http://example.com/mike/diaspora.git", "git@example.com:mike/diaspora.git"},
				Ref:      "refs/heads/master", Branch: "master",
				SHA: "da1560886d4f094c3e6c9ef40349f7d38b5d27d7", Before: "95790bf891e76fee5e1747ab589903a6a1f80f22",
				Commits: []Commit{
					{SHA: "b6568db1bc1dcd7f8b4d5a946b0b91f9dacd7327",
						Message: "Update Catalan translation to e38cb41.\n\nSee https://gitlab.com/gitlab-org/gitlab for more information",
						Added:   []string{"CHANGELOG"}, Modified: []string{"app/controller/application.rb"}, Removed: []string{}},
					{SHA: "da1560886d4f094c3e6c9ef40349f7d38b5d27d7", Message: "fixed readme [skip ci]",
						Added: []string{"CHANGELOG"}, Modified: []string{"README.md"}, Removed: []string{}},
				},
				HeadCommitMessage: "fixed readme [skip ci]",
			},
			changed: []string{"CHANGELOG", "app/controller/application.rb", "README.md"},
			messages: []string{
				"Update Catalan translation to e38cb41.\n\nSee https://gitlab.com/gitlab-org/gitlab for more information",
				"fixed readme [skip ci]",
			},
		},
		{
			name: "GitLab tag push", provider: "gitlab", event: "Tag Push Hook", file: "gitlab_tag_push.json",
			want: Event{
				Provider: GitLab, Kind: Push, DeliveryID: "908a6d9e-45fd-46c8-97e6-c4f350f219dd",
				Ref: "refs/tags/v1.0.0", Tag: "v1.0.0", SHA: "82b3d5ae55f7080f1e6022629cdb57bfae7cccc7", Commits: []Commit{},
			},
		},
		{
			name: "GitLab branch deletion", provider: "gitlab", event: "Push Hook", file: "gitlab_push_delete.json",
			want: Event{
				Provider: GitLab, Kind: Push, DeliveryID: "908a6d9e-45fd-46c8-97e6-c4f350f219dd",
				Ref: "refs/heads/feature/old", Branch: "feature/old", Deleted: true,
				Before: "da1560886d4f094c3e6c9ef40349f7d38b5d27d7", Commits: []Commit{},
			},
		},
		{
			name: "GitLab merge request opened", provider: "gitlab", event: "Merge Request Hook", file: "gitlab_merge_request_open.json",
			want: Event{
				Provider: GitLab, Kind: PullRequest, DeliveryID: "908a6d9e-45fd-46c8-97e6-c4f350f219dd",
				RepoURLs: []string{"http://example.com/gitlabhq/gitlab-test", "http://example.com/gitlabhq/gitlab-test.git",
					"git@example.com:gitlabhq/gitlab-test.git"},
				Branch: "ms-viewport", SHA: "da1560886d4f094c3e6c9ef40349f7d38b5d27d7", HeadCommitMessage: "fixed readme",
				PullRequest: &PR{
					ID: 1, Action: PROpened, State: "open", Source: "ms-viewport", Destination: "master",
					SHA: "da1560886d4f094c3e6c9ef40349f7d38b5d27d7", Title: "MS-Viewport",
					URL: "http://example.com/diaspora/merge_requests/1", HeadRef: "refs/merge-requests/1/head",
				},
			},
			messages: []string{"fixed readme"},
		},
		{
			name: "GitLab merge request with new commits from a fork", provider: "gitlab", event: "Merge Request Hook",
			file: "gitlab_merge_request_update.json",
			want: Event{
				Provider: GitLab, Kind: PullRequest, DeliveryID: "908a6d9e-45fd-46c8-97e6-c4f350f219dd",
				Branch: "ms-viewport", SHA: "4a94c1b3c9e1b1f0f7f5e4c31a2f0a5d8d6e7b21",
				HeadCommitMessage: "Speed up the viewport\n\n[ci skip]",
				PullRequest: &PR{
					ID: 1, Action: PRSynchronize, State: "open", Source: "ms-viewport", Destination: "master",
					SHA: "4a94c1b3c9e1b1f0f7f5e4c31a2f0a5d8d6e7b21", Title: "MS-Viewport",
					URL: "http://example.com/diaspora/merge_requests/1", FromFork: true, HeadRef: "refs/merge-requests/1/head",
				},
			},
			messages: []string{"Speed up the viewport\n\n[ci skip]"},
		},
		{
			name: "Gitea push, newest commit listed first", provider: "gitea", event: "push", file: "gitea_push.json",
			want: Event{
				Provider: Gitea, Kind: Push, DeliveryID: "f6266f16-1bf3-46a5-9ea4-602e06ead473",
				RepoURLs: []string{"http://localhost:3000/gitea/webhooks", "http://localhost:3000/gitea/webhooks.git",
					"ssh://gitea@localhost:2222/gitea/webhooks.git"},
				Ref: "refs/heads/develop", Branch: "develop",
				SHA: "bffeb74224043ba2feb48d137756c8a9331c449a", Before: "28e1879d029cb852e4844d9c718537df08844e03",
				Commits: []Commit{
					{SHA: "5b8cd4e9d6e4a3c1ad1a37cd8b8f58f1a6a26d61", Message: "Add the docs\n",
						Added: []string{"docs/guide.md"}, Modified: []string{}, Removed: []string{}},
					{SHA: "bffeb74224043ba2feb48d137756c8a9331c449a", Message: "Webhooks Yay!\n",
						Added: []string{}, Modified: []string{"web/index.html"}, Removed: []string{}},
				},
				HeadCommitMessage: "Webhooks Yay!\n",
			},
			changed:  []string{"docs/guide.md", "web/index.html"},
			messages: []string{"Add the docs\n", "Webhooks Yay!\n"},
		},
		{
			name: "Gitea pull request opened", provider: "gitea", event: "pull_request", file: "gitea_pull_request_opened.json",
			want: Event{
				Provider: Gitea, Kind: PullRequest, DeliveryID: "f6266f16-1bf3-46a5-9ea4-602e06ead473",
				Branch: "feature/health", SHA: "7e0d8a8e2b8b4c4a9ad1b8a1f3bd2f0b4f5c6d7e",
				PullRequest: &PR{
					ID: 12, Action: PROpened, State: "open", Source: "feature/health", Destination: "master",
					SHA: "7e0d8a8e2b8b4c4a9ad1b8a1f3bd2f0b4f5c6d7e", Title: "Add a health check",
					URL: "http://localhost:3000/gitea/webhooks/pulls/12", HeadRef: "refs/pull/12/head",
				},
			},
		},
		{
			name: "Forgejo pull request synchronized", provider: "forgejo", event: "pull_request", file: "gitea_pull_request_synchronized.json",
			want: Event{
				Provider: Gitea, Kind: PullRequest, DeliveryID: "f6266f16-1bf3-46a5-9ea4-602e06ead473",
				Branch: "feature/health", SHA: "a3f1e2d4c5b6a7980f1e2d3c4b5a69788796a5b4",
				PullRequest: &PR{
					ID: 12, Action: PRSynchronize, State: "open", Source: "feature/health", Destination: "master",
					SHA: "a3f1e2d4c5b6a7980f1e2d3c4b5a69788796a5b4", Title: "Add a health check",
					URL: "http://localhost:3000/gitea/webhooks/pulls/12", HeadRef: "refs/pull/12/head",
				},
			},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			body := fixture(t, c.file)
			e, err := Receive(headers(c.provider, c.event, body, secret), body, secret)
			if err != nil {
				t.Fatalf("Receive: %v", err)
			}
			got := *e
			if c.want.RepoURLs == nil {
				// Checked once per payload shape above; here only that
				// the repository is recognised.
				if !e.Matches(map[Provider]string{
					GitHub: "https://github.com/codertocat/hello-world", GitLab: "git@example.com:gitlabhq/gitlab-test.git",
					Gitea: "http://localhost:3000/gitea/webhooks/",
				}[e.Provider]) && e.Kind != Push {
					t.Errorf("RepoURLs %q do not match the project", e.RepoURLs)
				}
				got.RepoURLs = nil
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("event:\n got %+v\nwant %+v", got, c.want)
				if got.PullRequest != nil && c.want.PullRequest != nil {
					t.Errorf("pull request:\n got %+v\nwant %+v", *got.PullRequest, *c.want.PullRequest)
				}
			}
			if p := e.ChangedPaths(); !reflect.DeepEqual(p, c.changed) {
				t.Errorf("ChangedPaths = %q, want %q", p, c.changed)
			}
			if m := e.Messages(); !reflect.DeepEqual(m, c.messages) {
				t.Errorf("Messages = %q, want %q", m, c.messages)
			}
		})
	}
}

// TestPushDecides runs parsed pushes through trigger.Decide, the way the
// builds component uses the two packages.
func TestPushDecides(t *testing.T) {
	decide := func(provider, event, file string, cfg trigger.Config) (bool, string) {
		body := fixture(t, file)
		e, err := Receive(headers(provider, event, body, secret), body, secret)
		if err != nil {
			t.Fatal(err)
		}
		c := trigger.Commit{Branch: e.Branch, Messages: e.Messages(), ChangedPaths: e.ChangedPaths()}
		if e.PullRequest != nil {
			c.PullRequest, c.PRSource = e.PullRequest.ID, e.PullRequest.Source
		}
		return trigger.Decide(cfg, c)
	}
	skip := trigger.Config{CIIgnoreFlagsEnabled: true}
	if build, why := decide("gitlab", "Push Hook", "gitlab_push.json", skip); build ||
		why != "commit message contains the CI-skip flag [skip ci]" {
		t.Errorf("GitLab push with [skip ci] in the head commit: %v, %q", build, why)
	}
	if build, why := decide("github", "push", "github_push.json", trigger.Config{PathIgnoreRules: []string{"*.md", "docs/"}}); !build {
		t.Errorf("GitHub push changing src/login.go: not built (%s)", why)
	}
	if build, _ := decide("gitea", "push", "gitea_push.json", trigger.Config{PathIgnoreRules: []string{"docs/", "web/"}}); build {
		t.Error("Gitea push changing only ignored paths: built")
	}
	if build, why := decide("github", "push", "github_push.json", trigger.Config{BranchRestrictions: []string{"release/*"}}); build ||
		why != "branch main does not match the branch restrictions [release/*]" {
		t.Errorf("GitHub push to main under [release/*]: %v, %q", build, why)
	}
	if build, why := decide("gitlab", "Merge Request Hook", "gitlab_merge_request_update.json",
		trigger.Config{PRRestrictions: []string{"ms-*"}, CIIgnoreFlagsEnabled: true}); build ||
		why != "commit message contains the CI-skip flag [ci skip]" {
		t.Errorf("GitLab merge request update with [ci skip]: %v, %q", build, why)
	}
	// GitLab lists 20 commits of a larger push: the changed files are
	// unknown, and path rules cannot stop the build.
	if build, why := decide("gitlab", "Push Hook", "gitlab_push_truncated.json", trigger.Config{PathIgnoreRules: []string{"*"}}); !build {
		t.Errorf("GitLab push listing only some commits: not built (%s)", why)
	}
}

func TestVerifyRefuses(t *testing.T) {
	body := fixture(t, "github_push.json")
	for _, c := range []struct {
		name   string
		header func() http.Header
		secret string
	}{
		{"GitHub, wrong secret", func() http.Header { return headers("github", "push", body, "another secret") }, secret},
		{"GitHub, no signature", func() http.Header {
			h := headers("github", "push", body, secret)
			h.Del("X-Hub-Signature-256")
			return h
		}, secret},
		{"GitHub, SHA-1 signature only", func() http.Header {
			h := headers("github", "push", body, secret)
			h.Set("X-Hub-Signature", "sha1="+mac(secret, body)[:40])
			h.Del("X-Hub-Signature-256")
			return h
		}, secret},
		{"GitHub, signature without its sha256= prefix", func() http.Header {
			h := headers("github", "push", body, secret)
			h.Set("X-Hub-Signature-256", mac(secret, body))
			return h
		}, secret},
		{"GitHub, signature not hex", func() http.Header {
			h := headers("github", "push", body, secret)
			h.Set("X-Hub-Signature-256", "sha256=zz"+mac(secret, body)[2:])
			return h
		}, secret},
		{"GitHub, truncated signature", func() http.Header {
			h := headers("github", "push", body, secret)
			h.Set("X-Hub-Signature-256", "sha256="+mac(secret, body)[:32])
			return h
		}, secret},
		{"GitHub, signature of another body", func() http.Header {
			return headers("github", "push", append([]byte(" "), body...), secret)
		}, secret},
		{"no secret set", func() http.Header { return headers("github", "push", body, "") }, ""},
		{"GitLab, token mismatch", func() http.Header { return headers("gitlab", "Push Hook", body, "guess") }, secret},
		{"GitLab, token a prefix of the secret", func() http.Header { return headers("gitlab", "Push Hook", body, secret[:5]) }, secret},
		{"GitLab, no token", func() http.Header {
			h := headers("gitlab", "Push Hook", body, secret)
			h.Del("X-Gitlab-Token")
			return h
		}, secret},
		{"GitLab, GitHub's signature instead of the token", func() http.Header {
			h := headers("gitlab", "Push Hook", body, secret)
			h.Del("X-Gitlab-Token")
			h.Set("X-Hub-Signature-256", "sha256="+mac(secret, body))
			return h
		}, secret},
		{"Gitea, wrong secret", func() http.Header { return headers("gitea", "push", body, "wrong") }, secret},
		{"Gitea, wrong X-Gitea-Signature, right X-Hub-Signature-256", func() http.Header {
			h := headers("gitea", "push", body, secret)
			h.Set("X-Gitea-Signature", mac("wrong", body))
			return h
		}, secret},
		{"Gitea, no signature", func() http.Header {
			h := headers("gitea", "push", body, secret)
			h.Del("X-Gitea-Signature")
			h.Del("X-Hub-Signature-256")
			return h
		}, secret},
	} {
		t.Run(c.name, func(t *testing.T) {
			e, err := Receive(c.header(), body, c.secret)
			if !errors.Is(err, ErrSignature) || e != nil {
				t.Fatalf("Receive = %v, %v; want ErrSignature", e, err)
			}
			if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), mac(secret, body)) {
				t.Fatalf("the error %q shows the secret or the signature", err)
			}
		})
	}
}

func TestVerifyAccepts(t *testing.T) {
	body := fixture(t, "gitea_push.json")
	// Gitea before 1.20 sent only X-Gitea-Signature; GitHub-compatible
	// senders only X-Hub-Signature-256.
	h := headers("gitea", "push", body, secret)
	h.Del("X-Hub-Signature-256")
	if _, err := Receive(h, body, secret); err != nil {
		t.Errorf("X-Gitea-Signature only: %v", err)
	}
	h = headers("gitea", "push", body, secret)
	h.Del("X-Gitea-Signature")
	if _, err := Receive(h, body, secret); err != nil {
		t.Errorf("X-Hub-Signature-256 only: %v", err)
	}
	h = headers("github", "push", body, secret)
	h.Set("X-Hub-Signature-256", strings.ToUpper(h.Get("X-Hub-Signature-256")[7:]))
	h.Set("X-Hub-Signature-256", "sha256="+h.Get("X-Hub-Signature-256"))
	if _, err := Receive(h, body, secret); err != nil {
		t.Errorf("upper-case hex: %v", err)
	}
}

// TestFormEncoded: GitHub signs a form-encoded body as sent, Gitea the
// JSON in its payload field; both are read.
func TestFormEncoded(t *testing.T) {
	payload := fixture(t, "gitea_push.json")
	form := []byte(url.Values{"payload": {string(payload)}}.Encode())
	h := headers("github", "push", form, secret)
	h.Set("Content-Type", "application/x-www-form-urlencoded")
	e, err := Receive(h, form, secret)
	if err != nil || e.Branch != "develop" {
		t.Fatalf("GitHub form: %+v, %v", e, err)
	}
	h = headers("gitea", "push", payload, secret)
	h.Set("Content-Type", "application/x-www-form-urlencoded")
	if e, err = Receive(h, form, secret); err != nil || e.Branch != "develop" {
		t.Fatalf("Gitea form: %+v, %v", e, err)
	}
	h = headers("gitea", "push", payload, "wrong")
	h.Set("Content-Type", "application/x-www-form-urlencoded")
	if _, err = Receive(h, form, secret); !errors.Is(err, ErrSignature) {
		t.Fatalf("Gitea form with a wrong signature: %v", err)
	}
	bad := []byte("payloa=1")
	h = headers("github", "push", bad, secret)
	h.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	if _, err = Receive(h, bad, secret); !errors.Is(err, ErrMalformed) {
		t.Fatalf("form without payload: %v", err)
	}
}

func TestIdentify(t *testing.T) {
	body := []byte(`{}`)
	d, err := Identify(headers("gitea", "push", body, secret))
	if err != nil || d.Provider != Gitea {
		t.Errorf("Gitea's headers (with GitHub's): %+v, %v", d, err)
	}
	d, err = Identify(headers("forgejo", "push", body, secret))
	if err != nil || d.Provider != Gitea {
		t.Errorf("Forgejo's headers: %+v, %v", d, err)
	}
	h := headers("gitlab", "Push Hook", body, secret)
	h.Del("Idempotency-Key")
	if d, _ = Identify(h); d.ID != "16b3d96a-4f7c-4a5a-8d1f-3f9d3e6c2b11" {
		t.Errorf("GitLab without Idempotency-Key: id %q, want X-Gitlab-Webhook-UUID", d.ID)
	}
	h.Del("X-Gitlab-Webhook-UUID")
	if d, _ = Identify(h); d.ID != "13792a34-cac6-4fda-95a8-c58e00a3954e" {
		t.Errorf("older GitLab: id %q, want X-Gitlab-Event-UUID", d.ID)
	}
	for name, edit := range map[string]func(http.Header){
		"GitHub, no delivery id": func(h http.Header) { h.Del("X-GitHub-Delivery") },
		"delivery id too long":   func(h http.Header) { h.Set("X-GitHub-Delivery", strings.Repeat("a", 129)) },
		"delivery id with space": func(h http.Header) { h.Set("X-GitHub-Delivery", "a b") },
		"delivery id not ASCII":  func(h http.Header) { h.Set("X-GitHub-Delivery", "é") },
	} {
		h := headers("github", "push", body, secret)
		edit(h)
		if _, err := Identify(h); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
		if _, err := Receive(h, body, secret); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: Receive %v, want ErrMalformed", name, err)
		}
	}
	h = headers("gitlab", "Push Hook", body, secret)
	for _, k := range []string{"Idempotency-Key", "X-Gitlab-Webhook-UUID", "X-Gitlab-Event-UUID"} {
		h.Del(k)
	}
	if _, err := Identify(h); !errors.Is(err, ErrMalformed) {
		t.Errorf("GitLab, no delivery id: %v, want ErrMalformed", err)
	}
	if _, err := Identify(http.Header{"Content-Type": {"application/json"}}); !errors.Is(err, ErrUnsupportedEvent) {
		t.Errorf("no event header: %v, want ErrUnsupportedEvent", err)
	}
}

func TestUnsupportedEvents(t *testing.T) {
	body := []byte(`{"ref":"feature","ref_type":"branch","repository":{"html_url":"https://github.com/o/r"}}`)
	for _, c := range [][2]string{
		{"github", "create"}, {"github", "issues"}, {"gitea", "create"}, {"gitea", "ping"},
		{"gitlab", "Note Hook"}, {"gitlab", "System Hook"},
	} {
		// Signed: the caller can tell a genuine event it ignores (answer
		// 2xx) from a forgery (401).
		if _, err := Receive(headers(c[0], c[1], body, secret), body, secret); !errors.Is(err, ErrUnsupportedEvent) {
			t.Errorf("%s %q: %v, want ErrUnsupportedEvent", c[0], c[1], err)
		}
		if _, err := Receive(headers(c[0], c[1], body, "forged"), body, secret); !errors.Is(err, ErrSignature) {
			t.Errorf("%s %q forged: %v, want ErrSignature", c[0], c[1], err)
		}
	}
}

func TestMalformed(t *testing.T) {
	push := string(fixture(t, "github_push.json"))
	pr := string(fixture(t, "github_pull_request_opened.json"))
	for name, c := range map[string]struct{ event, body string }{
		"not JSON":             {"push", "ref=refs/heads/main"},
		"a JSON array":         {"push", "[]"},
		"a JSON string":        {"push", `"push"`},
		"empty":                {"push", ""},
		"wrong field type":     {"push", strings.Replace(push, `"ref": "refs/heads/main"`, `"ref": 7`, 1)},
		"no repository":        {"push", `{"ref":"refs/heads/main","after":"0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c"}`},
		"no ref":               {"push", strings.Replace(push, `"ref": "refs/heads/main"`, `"ref": ""`, 1)},
		"branch like a flag":   {"push", strings.Replace(push, `"ref": "refs/heads/main"`, `"ref": "refs/heads/--upload-pack=touch x"`, 1)},
		"branch with ..":       {"push", strings.Replace(push, `"ref": "refs/heads/main"`, `"ref": "refs/heads/a..b"`, 1)},
		"branch with NUL":      {"push", strings.Replace(push, `"ref": "refs/heads/main"`, `"ref": "refs/heads/a\u0000"`, 1)},
		"not a ref":            {"push", strings.Replace(push, `"ref": "refs/heads/main"`, `"ref": "main"`, 1)},
		"short sha":            {"push", strings.Replace(push, `"after": "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c"`, `"after": "0d1a26e"`, 1)},
		"sha not hex":          {"push", strings.Replace(push, `"after": "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c"`, `"after": "zd1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c"`, 1)},
		"commit id not hex":    {"push", strings.Replace(push, `"id": "6113728f27ae82c7b1a177c8d03f9e96e0adf246"`, `"id": "x"`, 1)},
		"empty changed path":   {"push", strings.Replace(push, `"added": ["docs/intro.md"]`, `"added": [""]`, 1)},
		"no pull request":      {"pull_request", `{"action":"opened","number":2,"repository":{}}`},
		"pull request number":  {"pull_request", strings.Replace(pr, `"number": 2,`, `"number": -2,`, 2)},
		"pull request state":   {"pull_request", strings.Replace(pr, `"state": "open"`, `"state": "weird"`, 1)},
		"pull request no head": {"pull_request", strings.Replace(pr, `"sha": "ec26c3e57ca3a959ca5aad62de7213c562f8c821"`, `"sha": ""`, 1)},
	} {
		body := []byte(c.body)
		e, err := Receive(headers("github", c.event, body, secret), body, secret)
		if !errors.Is(err, ErrMalformed) || e != nil {
			t.Errorf("%s: %v, %v; want ErrMalformed", name, e, err)
			continue
		}
		if strings.Contains(err.Error(), "json") || strings.Contains(err.Error(), "invalid character") {
			t.Errorf("%s: the error %q shows the decoder's internals", name, err)
		}
	}
}

func TestTooLarge(t *testing.T) {
	body := []byte(`{"x":"` + strings.Repeat("a", MaxBodyBytes) + `"}`)
	if _, err := Receive(headers("github", "push", body, secret), body, secret); !errors.Is(err, ErrTooLarge) {
		t.Errorf("body of %d bytes: %v, want ErrTooLarge", len(body), err)
	}
	// Refused for its size before its signature is looked at.
	if _, err := Receive(headers("github", "push", body, "forged"), body, secret); !errors.Is(err, ErrTooLarge) {
		t.Errorf("forged body of %d bytes: %v, want ErrTooLarge", len(body), err)
	}
	d, err := Identify(headers("github", "push", body, secret))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Parse(http.Header{}, body); !errors.Is(err, ErrTooLarge) {
		t.Errorf("Parse of %d bytes: %v, want ErrTooLarge", len(body), err)
	}
}

func TestChangedPathsUnknown(t *testing.T) {
	body := fixture(t, "gitlab_push_truncated.json")
	e, err := Receive(headers("gitlab", "Push Hook", body, secret), body, secret)
	if err != nil {
		t.Fatal(err)
	}
	if !e.CommitsTruncated || e.ChangedPaths() != nil {
		t.Errorf("25 commits, 2 listed: truncated %v, paths %q; want true, nil", e.CommitsTruncated, e.ChangedPaths())
	}
}

func TestHasNewHead(t *testing.T) {
	for action, want := range map[string]bool{
		PROpened: true, PRReopened: true, PRSynchronize: true, PRClosed: false, PREdited: false, "labeled": false,
	} {
		if got := (&PR{Action: action}).HasNewHead(); got != want {
			t.Errorf("%s: HasNewHead = %v", action, got)
		}
	}
}

func TestValidRefName(t *testing.T) {
	for name, want := range map[string]bool{
		"main": true, "feature/login": true, "release-1.2": true, "v1.0.0": true, "deps/a_b+c": true, "é": true,
		"": false, "@": false, "-x": false, "--upload-pack=x": false, "/main": false, "main/": false, ".hidden": false,
		"a.": false, "a..b": false, "a@{1}": false, "a//b": false, "a/.b": false, "a.lock": false, "a.lock/b": false,
		"a b": false, "a~1": false, "a^": false, "a:b": false, "a?": false, "a*": false, "a[": false, `a\b`: false,
		"a\x00": false, "a\x7f": false, "a\tb": false, "\xff": false, strings.Repeat("a", 1025): false,
	} {
		if got := validRefName(name); got != want {
			t.Errorf("validRefName(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestPullRequestActions(t *testing.T) {
	for _, c := range []struct{ action, oldrev, want string }{
		{"open", "", PROpened}, {"reopen", "", PRReopened}, {"close", "", PRClosed}, {"merge", "", PRClosed},
		{"update", "da1560886d4f094c3e6c9ef40349f7d38b5d27d7", PRSynchronize}, {"update", "", PREdited},
		{"approved", "", "approved"},
	} {
		if got := glAction(c.action, c.oldrev); got != c.want {
			t.Errorf("GitLab %q (oldrev %q) = %q, want %q", c.action, c.oldrev, got, c.want)
		}
	}
	for in, want := range map[string]string{"synchronized": PRSynchronize, "synchronize": PRSynchronize, "opened": PROpened, "labeled": "labeled"} {
		if got := ghAction(in); got != want {
			t.Errorf("GitHub/Gitea %q = %q, want %q", in, got, want)
		}
	}
	for s, want := range map[string]string{"opened": "open", "locked": "open", "closed": "closed", "merged": "merged"} {
		if got := glState(s); got != want {
			t.Errorf("GitLab state %q = %q, want %q", s, got, want)
		}
	}
}

func TestPullRequestForkAndMerge(t *testing.T) {
	receive := func(provider, file string, edit func(string) string) *PR {
		t.Helper()
		body := []byte(edit(string(fixture(t, file))))
		e, err := Receive(headers(provider, "pull_request", body, secret), body, secret)
		if err != nil {
			t.Fatal(err)
		}
		return e.PullRequest
	}
	// A merged pull request is closed with merged: true.
	pr := receive("github", "github_pull_request_opened.json", func(s string) string {
		s = strings.Replace(s, `"action": "opened"`, `"action": "closed"`, 1)
		s = strings.Replace(s, `"state": "open"`, `"state": "closed"`, 1)
		return strings.Replace(s, `"merged": false`, `"merged": true`, 1)
	})
	if pr.Action != PRClosed || pr.State != "merged" || pr.HasNewHead() {
		t.Errorf("merged: %+v", pr)
	}
	// The fork a pull request came from was deleted: GitHub sends no
	// head repository.
	pr = receive("github", "github_pull_request_opened.json", func(s string) string {
		i := strings.Index(s, `"repo": {`)
		j := i + strings.Index(s[i:], "}")
		return s[:i] + `"repo": null` + s[j+1:]
	})
	if !pr.FromFork {
		t.Errorf("deleted fork: %+v", pr)
	}
	// Gitea tells a fork by its head repo_id.
	pr = receive("gitea", "gitea_pull_request_opened.json", func(s string) string {
		return strings.Replace(s, `"repo_id": 140,
      "repo": {"id": 140, "name": "webhooks", "full_name": "gitea/webhooks", "html_url": "http://localhost:3000/gitea/webhooks", "ssh_url": "ssh://gitea@localhost:2222/gitea/webhooks.git", "clone_url": "http://localhost:3000/gitea/webhooks.git"}
    },
    "merge_base"`, `"repo_id": 141,
      "repo": {"id": 141, "full_name": "someone/webhooks"}
    },
    "merge_base"`, 1)
	})
	if !pr.FromFork {
		t.Errorf("Gitea fork: %+v", pr)
	}
}
