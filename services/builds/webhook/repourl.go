package webhook

import (
	"net/url"
	"path"
	"strings"
	"unicode/utf8"
)

// NormalizeRepoURL reduces a git repository URL to "host/path" so that
// the spellings of one repository compare equal:
//
//	https://GitHub.com/Owner/Repo.git/  →  github.com/owner/repo
//	git@github.com:owner/repo.git       →  github.com/owner/repo
//	ssh://git@github.com:22/owner/repo  →  github.com/owner/repo
//	file:///srv/git/App.git, /srv/git/App  →  /srv/git/App
//
// The scheme, user, password, port, query and fragment are dropped (one
// server serves a repository over https and ssh on different ports), as
// are a trailing "/" and ".git"; "." and ".." are resolved. The host is
// lowercased, and so is the path of a remote repository: GitHub, GitLab
// and Gitea treat owner and repository names without regard to case. A
// local path keeps its case. It returns "" for what is not a repository
// URL (no host or no path, an unknown scheme, control characters).
func NormalizeRepoURL(raw string) string {
	s := strings.TrimSpace(raw)
	if s == "" || !utf8.ValidString(s) || strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return ""
	}
	var host, p string
	switch {
	case strings.Contains(s, "://"):
		u, err := url.Parse(s)
		if err != nil {
			return ""
		}
		switch strings.ToLower(u.Scheme) {
		case "http", "https", "ssh", "git", "git+ssh", "ssh+git":
			host = u.Hostname()
			if host == "" {
				return ""
			}
		case "file":
			if h := u.Hostname(); h != "" && !strings.EqualFold(h, "localhost") {
				return ""
			}
		default:
			return ""
		}
		p = u.Path
	case strings.HasPrefix(s, "/"):
		p = s
	default:
		// scp-like: [user@]host:path, the ":" before any "/".
		colon := strings.IndexByte(s, ':')
		if end := strings.Index(s, "]:"); end >= 0 && strings.Contains(s[:end], "[") {
			colon = end + 1 // an IPv6 address: user@[::1]:path
		}
		if colon <= 0 || strings.Contains(s[:colon], "/") {
			return ""
		}
		host = s[:colon]
		if at := strings.LastIndexByte(host, '@'); at >= 0 {
			host = host[at+1:]
		}
		host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
		if host == "" {
			return ""
		}
		p = s[colon+1:]
	}
	p = strings.TrimPrefix(path.Clean("/"+p), "/")
	if host != "" {
		p = strings.ToLower(p) // before trimming, so "Repo.GIT" loses its suffix too
	}
	for {
		trimmed := strings.TrimSuffix(strings.TrimSuffix(p, "/"), ".git")
		if trimmed == p {
			break
		}
		p = trimmed
	}
	if p == "" || p == "." {
		return ""
	}
	if host == "" {
		return "/" + p
	}
	if !validHost(host) {
		return ""
	}
	return strings.ToLower(host) + "/" + p
}

// validHost reports whether host is a DNS name or an IP address: letters,
// digits, ".", "-", "_" and, for IPv6, ":".
func validHost(host string) bool {
	for i := 0; i < len(host); i++ {
		c := host[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte(".-_:", c) >= 0) {
			return false
		}
	}
	return host != ""
}

// SameRepo reports whether a and b name the same repository, after
// NormalizeRepoURL; two strings that are not repository URLs are not the
// same repository.
func SameRepo(a, b string) bool {
	na := NormalizeRepoURL(a)
	return na != "" && na == NormalizeRepoURL(b)
}
