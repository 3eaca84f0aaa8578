package vcs_test

import (
	"strings"
	"testing"

	"github.com/slipwayhq/slipway/pkg/apierr"
	"github.com/slipwayhq/slipway/pkg/vcs"
)

func TestCheckURL(t *testing.T) {
	for _, c := range []struct{ url, transport string }{
		{"https://git.example.com/acme/app.git", vcs.HTTP},
		{"http://127.0.0.1:3000/acme/app", vcs.HTTP},
		{"ssh://git@git.example.com/acme/app.git", vcs.SSH},
		{"git@git.example.com:acme/app.git", vcs.SSH},
		{"file:///srv/git/app.git", vcs.File},
	} {
		if got, err := vcs.CheckURL("projectUrl", c.url); err != nil || got != c.transport {
			t.Errorf("CheckURL(%q) = %q, %v; want %q", c.url, got, err, c.transport)
		}
	}
	for _, bad := range []string{"", "ftp://x/y", "https://host", "https://user:pw@git.example.com/a/b", "file:///srv/../etc", "git clone x", "C:\\repo"} {
		if _, err := vcs.CheckURL("projectUrl", bad); apierr.From(err) == nil {
			t.Errorf("CheckURL(%q) = %v, want a validation error", bad, err)
		}
	}
}

// hostKey is a public host key as known_hosts holds it; goodHosts a
// line with hosts, as ssh-keyscan prints it.
const (
	hostKey   = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
	goodHosts = "github.com,[git.example.com]:2222 " + hostKey
)

func TestCheckCredentials(t *testing.T) {
	for _, c := range []struct {
		transport string
		creds     *vcs.Credentials
		ok        bool
	}{
		{vcs.HTTP, nil, true},
		{vcs.HTTP, &vcs.Credentials{Username: "bot", Password: "t"}, true},
		{vcs.HTTP, &vcs.Credentials{PrivateKey: "k"}, false},
		{vcs.SSH, &vcs.Credentials{PrivateKey: "k"}, true},
		{vcs.SSH, &vcs.Credentials{Password: "t"}, false},
		{vcs.File, &vcs.Credentials{Username: "u"}, false},
		{vcs.File, &vcs.Credentials{}, true},
		{vcs.SSH, &vcs.Credentials{PrivateKey: "k", KnownHosts: goodHosts}, true},
		{vcs.SSH, &vcs.Credentials{KnownHosts: "\n# a comment\n" + goodHosts + "\n\n"}, true},
		{vcs.SSH, &vcs.Credentials{KnownHosts: "|1|JfKTdBh7rNbXkVAQCRp4OQoPfmI=|USECr3SWf1JUPsms5AqfD5QfxkM= " + hostKey}, true},
		{vcs.SSH, &vcs.Credentials{KnownHosts: "@cert-authority *.example.com " + hostKey}, true},
		{vcs.HTTP, &vcs.Credentials{KnownHosts: goodHosts}, false},
		{vcs.SSH, &vcs.Credentials{KnownHosts: goodHosts + "\nnot a key line"}, false},
		{vcs.SSH, &vcs.Credentials{KnownHosts: hostKey}, false}, // no host
		{vcs.SSH, &vcs.Credentials{KnownHosts: "git.example.com ssh-ed25519 bm90LWEta2V5"}, false},
		{vcs.SSH, &vcs.Credentials{KnownHosts: "git.example.com ssh-ed25519"}, false},
	} {
		if err := vcs.CheckCredentials("credentials", c.transport, c.creds); (err == nil) != c.ok {
			t.Errorf("CheckCredentials(%s, %+v) = %v, want ok %v", c.transport, c.creds, err, c.ok)
		}
	}
}

// TestKeepCredentials: given credentials replace the stored ones (empty
// ones remove them); without any, the stored ones stay on the same host
// and never follow the repository to another.
func TestKeepCredentials(t *testing.T) {
	stored := &vcs.Credentials{Username: "bot", Password: "t"}
	given := &vcs.Credentials{Password: "new"}
	a, b := "https://git.example.com/acme/a.git", "https://git.example.com/acme/b.git"
	if got := vcs.KeepCredentials(a, b, stored, nil); got != stored {
		t.Errorf("same host, none given: %v", got)
	}
	if got := vcs.KeepCredentials(a, "https://elsewhere.example.org/acme/a.git", stored, nil); got != nil {
		t.Errorf("another host, none given: %v", got)
	}
	if got := vcs.KeepCredentials(a, "git@GIT.example.com:acme/a.git", stored, nil); got != stored {
		t.Errorf("the same host over ssh, none given: %v", got)
	}
	if got := vcs.KeepCredentials(a, b, stored, given); got != given {
		t.Errorf("given: %v", got)
	}
	if got := vcs.KeepCredentials(a, b, stored, &vcs.Credentials{}); got != nil {
		t.Errorf("empty given: %v", got)
	}
}

// TestCheckKnownHostsNamesTheLine: a malformed line is named by number,
// its content is not echoed.
func TestCheckKnownHostsNamesTheLine(t *testing.T) {
	err := vcs.CheckKnownHosts("vcsData.credentials.knownHosts", goodHosts+"\n\ngit.example.com garbage-s3cret")
	e := apierr.From(err)
	if e == nil || len(e.Fields["vcsData.credentials.knownHosts"]) != 1 {
		t.Fatalf("CheckKnownHosts = %#v", err)
	}
	if msg := e.Fields["vcsData.credentials.knownHosts"][0]; !strings.Contains(msg, "line 3 ") || strings.Contains(msg, "s3cret") {
		t.Errorf("message %q", msg)
	}
}
