// Package vcs checks git repository URLs and the credentials that read
// them, as the services and jobs that build from git take them
// (vcsData.projectUrl and the write-only vcsData.credentials, a Slipway
// extension). The deployments and jobs services share it so that a
// repository a service may build is one a job may build too. Its
// Credentials are Slipway's one model of those credentials, converted to
// and from the API's message here alone, and what the builds component
// and its builder take.
package vcs

import (
	"fmt"
	"net/url"
	"path"
	"regexp"
	"strings"

	"golang.org/x/crypto/ssh"

	"github.com/slipwayhq/slipway/pkg/apierr"
)

// Credentials read a private repository: a user name with a password or
// token for http(s), or an SSH private key; for ssh, known_hosts lines
// holding the server's host key(s) too. Secrets: stores keep them
// encrypted at rest, and they are never returned, logged or put in an
// event.
type Credentials struct {
	Username   string `json:"username,omitempty"`
	Password   string `json:"password,omitempty"`
	PrivateKey string `json:"privateKey,omitempty"`
	// KnownHosts are known_hosts lines (as ssh-keyscan prints them) for
	// the ssh server: with them a build connects only to a server
	// holding one of these host keys.
	KnownHosts string `json:"knownHosts,omitempty"`
}

// Empty reports whether no credential is set.
func (c Credentials) Empty() bool { return c == Credentials{} }

// Private reports whether the credentials open a private repository (a
// user name, password or key): known hosts alone check a public one's
// server.
func (c *Credentials) Private() bool {
	return c != nil && (c.Username != "" || c.Password != "" || c.PrivateKey != "")
}

// Transports a repository URL is reached over.
const (
	HTTP = "http" // http or https
	SSH  = "ssh"  // ssh:// or scp-like user@host:path
	File = "file" // file:///path on this server's disk
)

// scpURL is git's scp-like form of an ssh URL, user@host:path. The user
// is required so that a Windows-style or relative path is never taken
// for a host.
var scpURL = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*@[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?:[^/\s][^\s]*$`)

// CheckURL checks a repository URL and says how it is reached (HTTP, SSH
// or File); field names it in the error.
func CheckURL(field, raw string) (transport string, err error) {
	bad := func(why string) (string, error) { return "", apierr.InvalidField(field, why) }
	if raw == "" {
		return bad("is required: the URL of the git repository")
	}
	if strings.ContainsFunc(raw, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return bad("may not contain spaces or control characters")
	}
	if scpURL.MatchString(raw) && !strings.Contains(raw, "://") {
		return SSH, nil
	}
	u, perr := url.Parse(raw)
	if perr != nil || u.Scheme == "" {
		return bad("is not a git repository URL: use https://host/owner/repo, ssh://git@host/owner/repo, git@host:owner/repo or file:///path/to/repo")
	}
	switch u.Scheme {
	case "https", "http":
		if u.Host == "" || strings.Trim(u.Path, "/") == "" {
			return bad("is not a repository URL: want " + u.Scheme + "://host/owner/repo")
		}
		if _, has := u.User.Password(); has {
			return bad("may not hold a password: give it in vcsData.credentials, which is kept encrypted and never shown")
		}
		return HTTP, nil
	case "ssh":
		if u.Host == "" || strings.Trim(u.Path, "/") == "" {
			return bad("is not a repository URL: want ssh://user@host/owner/repo")
		}
		if _, has := u.User.Password(); has {
			return bad("may not hold a password: give an SSH key in vcsData.credentials.privateKey")
		}
		return SSH, nil
	case "file":
		if (u.Host != "" && u.Host != "localhost") || !strings.HasPrefix(u.Path, "/") || u.Path != path.Clean(u.Path) || u.Path == "/" {
			return bad("is not a repository path: want file:///absolute/path/to/repo (no .. segments)")
		}
		return File, nil
	}
	return bad(fmt.Sprintf("has scheme %q; a repository is reached over https, http, ssh or file", u.Scheme))
}

// CheckCredentials refuses credentials that the repository's transport
// cannot use.
func CheckCredentials(field, transport string, c *Credentials) error {
	if c == nil {
		return nil
	}
	switch {
	case c.PrivateKey != "" && transport != SSH:
		return apierr.InvalidField(field+".privateKey", "is for ssh repository URLs (ssh://… or user@host:path)")
	case c.Password != "" && transport == SSH:
		return apierr.InvalidField(field+".password", "is for http(s) repository URLs; an ssh URL takes privateKey")
	case c.KnownHosts != "" && transport != SSH:
		return apierr.InvalidField(field+".knownHosts", "is for ssh repository URLs (ssh://… or user@host:path)")
	case !c.Empty() && transport == File:
		return apierr.InvalidField(field, "a file:// repository is read from this server's disk and takes no credentials")
	}
	return CheckKnownHosts(field+".knownHosts", c.KnownHosts)
}

// CheckKnownHosts checks known_hosts lines: each line that is not blank
// or a comment must be "host[,host...] key-type base64-key [comment]"
// (hosts may be hashed, or "[host]:port"; a @cert-authority or @revoked
// marker may lead), as ssh-keyscan prints them. The error names the line
// by number only.
func CheckKnownHosts(field, lines string) error {
	if strings.ContainsRune(lines, 0) {
		return apierr.InvalidField(field, "may not contain NUL characters")
	}
	for i, line := range strings.Split(lines, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		_, hosts, _, _, _, err := ssh.ParseKnownHosts([]byte(line))
		if err != nil || len(hosts) == 0 {
			return apierr.InvalidField(field, fmt.Sprintf("line %d is not a known_hosts line: want \"host key-type base64-key\", as `ssh-keyscan host` prints it", i+1))
		}
	}
	return nil
}

// KeepCredentials is what a change of a repository from oldURL to newURL
// leaves as its credentials: the given ones (none when they are all
// empty); without any given, the stored ones while the repository stays
// on the same host, and none when it moves: credentials are never sent to
// a server they were not given for.
func KeepCredentials(oldURL, newURL string, stored, given *Credentials) *Credentials {
	switch {
	case given != nil && given.Empty():
		return nil
	case given != nil:
		return given
	case Host(oldURL) != Host(newURL):
		return nil
	}
	return stored
}

// Host is the server a repository URL names ("" for a file://
// repository or one that does not parse).
func Host(raw string) string {
	if scpURL.MatchString(raw) && !strings.Contains(raw, "://") {
		_, rest, _ := strings.Cut(raw, "@")
		host, _, _ := strings.Cut(rest, ":")
		return strings.ToLower(host)
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "file" {
		return ""
	}
	return strings.ToLower(u.Host)
}
