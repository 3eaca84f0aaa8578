package builder

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// source is a Source whose URL passed the checks.
type source struct {
	// url is what git gets: no user info.
	url string
	// display is url for messages and logs.
	display string
	scheme  string
	// filePath is the real path of a file:// repository, bound read-only
	// into the sandbox at the same path.
	filePath string
	// pin is an http.curloptResolve entry ("host:port:ip", the address
	// in brackets for IPv6, as curl reads it) holding git to the address
	// checked, so a second DNS answer cannot point elsewhere; empty for an
	// address in the URL itself and for other schemes.
	pin string
	// ssh is the ssh server of an ssh URL, held to the address checked
	// the same way (sshScript); zero for other schemes.
	ssh sshHost
	// creds are the credentials, those of the URL's user info included.
	creds Credentials
	// userinfo is the URL's password, redacted from logs like creds.
	userinfo string
}

// sshHost is an ssh server a clone may connect to.
type sshHost struct {
	// host and port are what git gives ssh for the URL: its host name or
	// address (lower-case, no brackets; ssh lower-cases it too) and port
	// ("22" when the URL has none, as in scp-like URLs).
	host, port string
	// ip is the address the check approved, which ssh connects to.
	ip netip.Addr
}

// alias is the name ssh looks the server's host key up under in
// known_hosts: the one it would use by itself ("host", or "[host]:port"
// on another port than 22), so that known_hosts lines written for the
// URL's host keep matching although ssh connects to an address. (Given
// HostKeyAlias, ssh looks up the alias alone, never adding the port.)
func (h sshHost) alias() string {
	if h.port == "22" {
		return h.host
	}
	return "[" + h.host + "]:" + h.port
}

// line is h's line in the list sshScript reads: "host port ip alias".
func (h sshHost) line() string {
	return h.host + " " + h.port + " " + h.ip.String() + " " + h.alias() + "\n"
}

// scpLike is git's "user@host:path" form of an ssh URL.
var scpLike = regexp.MustCompile(`^(?:([A-Za-z0-9._~-]+)@)?([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]):([^/][^\\]*|/.*)$`)

// sshHostRe is a host name or IP address that goes into the list of ssh
// servers sshScript reads (one line, fields split on blanks) as it is.
var sshHostRe = regexp.MustCompile(`^[A-Za-z0-9._:%-]+$`)

var (
	shaRe    = regexp.MustCompile(`^[0-9a-f]{7,64}$`)
	badRefRe = regexp.MustCompile(`[\x00-\x20\x7f~^:?*\[\\]|\.\.|@\{|//|\.lock$|^/|/$|^-|\.$`)
)

// checkSource checks what to clone (URL, branch, commit) before anything
// runs.
func (b *Builder) checkSource(ctx context.Context, s Source) (source, error) {
	if s.Branch != "" && (len(s.Branch) > 255 || badRefRe.MatchString(s.Branch)) {
		return source{}, errorf(KindInvalid, "invalid branch name %q", s.Branch)
	}
	if s.SHA != "" && !shaRe.MatchString(strings.ToLower(s.SHA)) {
		return source{}, errorf(KindInvalid, "invalid commit SHA %q: 7 to 64 hexadecimal digits expected", s.SHA)
	}
	if s.PullRequest < 0 {
		return source{}, errorf(KindInvalid, "invalid pull request number %d", s.PullRequest)
	}
	if s.Branch == "" && s.SHA == "" && s.PullRequest == 0 {
		return source{}, errorf(KindInvalid, "nothing to build: no branch, commit or pull request given")
	}
	return b.checkURL(ctx, s.URL, s.Credentials)
}

// checkURL checks a repository URL: its scheme, where a file:// one is,
// and which addresses a host resolves to.
func (b *Builder) checkURL(ctx context.Context, raw string, creds Credentials) (source, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return source{}, errorf(KindInvalid, "no repository URL")
	}
	if len(raw) > 2048 || strings.ContainsAny(raw, "\x00\r\n\t ") {
		return source{}, errorf(KindInvalid, "invalid repository URL")
	}
	if strings.HasPrefix(raw, "-") {
		return source{}, errorf(KindInvalid, "invalid repository URL")
	}
	src := source{creds: creds}
	if !strings.Contains(raw, "://") {
		if strings.Contains(raw, "::") { // git's <transport>::<address>
			return source{}, errorf(KindInvalid, "unsupported repository URL %q: use https://, http://, ssh:// or file://", redactURL(raw))
		}
		m := scpLike.FindStringSubmatch(raw)
		if m == nil {
			return source{}, errorf(KindInvalid, "unsupported repository URL %q: use https://, http://, ssh:// or file://", redactURL(raw))
		}
		user := m[1]
		if user == "" {
			user = "git"
		}
		host := strings.Trim(m[2], "[]")
		raw = "ssh://" + user + "@" + net.JoinHostPort(host, "22") + "/" + strings.TrimPrefix(m[3], "/")
		if !strings.HasPrefix(m[3], "/") {
			// scp-like paths are relative to the user's home; ssh://
			// URLs take "~" for that.
			raw = "ssh://" + user + "@" + net.JoinHostPort(host, "22") + "/~/" + m[3]
		}
	}
	u, err := url.Parse(raw)
	if err != nil {
		return source{}, errorf(KindInvalid, "invalid repository URL %q", redactURL(raw))
	}
	src.scheme = strings.ToLower(u.Scheme)
	if u.User != nil {
		pass, hasPass := u.User.Password()
		switch src.scheme {
		case "http", "https":
			if src.creds.Username == "" && src.creds.Password == "" {
				src.creds.Username = u.User.Username()
				src.creds.Password = pass
			}
			src.userinfo = pass
			u.User = nil
		case "ssh":
			if hasPass {
				src.userinfo = pass
				u.User = url.User(u.User.Username())
			}
		default:
			u.User = nil
		}
	}
	src.url = u.String()
	src.display = src.url
	switch src.scheme {
	case "https", "http", "ssh":
		if u.Host == "" || u.Hostname() == "" {
			return source{}, errorf(KindInvalid, "repository URL %q has no host", src.display)
		}
		if u.RawQuery != "" || u.Fragment != "" {
			return source{}, errorf(KindInvalid, "repository URL %q must not have a query or fragment", src.display)
		}
		port := u.Port()
		if n, err := strconv.Atoi(port); port != "" && (err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != port) {
			return source{}, errorf(KindInvalid, "repository URL %q has an invalid port", src.display)
		}
		if src.scheme == "ssh" && !sshHostRe.MatchString(u.Hostname()) {
			return source{}, errorf(KindInvalid, "repository URL %q has an invalid host", src.display)
		}
		ip, err := b.checkHost(ctx, u.Hostname())
		if err != nil {
			return source{}, err
		}
		if src.scheme == "ssh" {
			src.ssh = sshHost{host: strings.ToLower(u.Hostname()), port: port, ip: ip}
			if port == "" {
				src.ssh.port = "22"
			}
		}
		if src.scheme != "ssh" && ip.IsValid() && net.ParseIP(u.Hostname()) == nil {
			if port == "" {
				port = map[string]string{"http": "80", "https": "443"}[src.scheme]
			}
			addr := ip.String()
			if ip.Is6() {
				// curl reads an IPv6 address of CURLOPT_RESOLVE in
				// brackets only.
				addr = "[" + addr + "]"
			}
			src.pin = u.Hostname() + ":" + port + ":" + addr
		}
	case "file":
		if u.Host != "" && u.Host != "localhost" {
			return source{}, errorf(KindInvalid, "file:// repository URL %q names a host", src.display)
		}
		p := u.Path
		if p == "" || !filepath.IsAbs(p) || filepath.Clean(p) != strings.TrimSuffix(p, "/") && filepath.Clean(p) != p {
			return source{}, errorf(KindInvalid, "file:// repository URL %q needs a clean absolute path", src.display)
		}
		if len(b.roots) == 0 {
			return source{}, errorf(KindInvalid, "file:// repositories are not allowed on this server (SLIPWAY_BUILD_FILE_ROOTS is empty)")
		}
		// Lexically first, so a refusal says nothing of what exists.
		if !b.underRoots(filepath.Clean(p), b.cfg.FileRoots) {
			return source{}, errorf(KindInvalid, "file:// repository %q is outside the directories this server allows (SLIPWAY_BUILD_FILE_ROOTS)", src.display)
		}
		real, err := filepath.EvalSymlinks(p)
		if fi, serr := os.Stat(real); err == nil && (serr != nil || !fi.IsDir()) {
			err = errors.New("not a directory")
		}
		if err != nil {
			return source{}, errorf(KindSource, "no git repository at %q", src.display)
		}
		if !b.underRoots(real, b.roots) {
			return source{}, errorf(KindInvalid, "file:// repository %q is outside the directories this server allows (SLIPWAY_BUILD_FILE_ROOTS)", src.display)
		}
		src.filePath = real
		src.url = (&url.URL{Scheme: "file", Path: real}).String()
	default:
		return source{}, errorf(KindInvalid, "unsupported repository URL scheme %q: use https, http, ssh or file", u.Scheme)
	}
	return src, nil
}

func (b *Builder) underRoots(p string, roots []string) bool {
	for _, r := range roots {
		r = filepath.Clean(r)
		if p == r || strings.HasPrefix(p, strings.TrimSuffix(r, "/")+"/") {
			return true
		}
	}
	return false
}

// checkHost resolves host and refuses loopback, private, link-local and
// other non-public addresses unless the operator allows the host
// (netguard's rule, shared with every other connection Slipway makes on a
// user's behalf). It resolves itself rather than through
// netguard.Rule.CheckHost because it returns the address git is pinned
// to: git connects outside Slipway's dialer. That is the first IPv4
// address, or the first address when there is none: a host without
// IPv6 connectivity reaches it, and ssh, held to one address, cannot fall
// back to another.
func (b *Builder) checkHost(ctx context.Context, host string) (netip.Addr, error) {
	var addrs []netip.Addr
	if ip, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{ip}
	} else {
		ips, err := b.resolver.LookupNetIP(ctx, "ip", host)
		if err != nil || len(ips) == 0 {
			return netip.Addr{}, errorf(KindSource, "the repository host %q could not be resolved", host)
		}
		addrs = ips
	}
	for _, a := range addrs {
		a = a.Unmap()
		if !b.allow.Allows(host, a) {
			return netip.Addr{}, errorf(KindInvalid, "the repository host %q is a loopback or private address, which this server does not allow (SLIPWAY_BUILD_ALLOW_HOSTS)", host)
		}
	}
	for _, a := range addrs {
		if a.Unmap().Is4() {
			return a.Unmap(), nil
		}
	}
	return addrs[0].Unmap(), nil
}

// redactURL drops the password of a URL's user info (for messages about
// URLs that failed to parse as well).
func redactURL(raw string) string {
	if u, err := url.Parse(raw); err == nil && u.User != nil {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), "***")
		}
		return u.String()
	}
	if i := strings.Index(raw, "://"); i >= 0 {
		rest := raw[i+3:]
		if at := strings.LastIndex(strings.SplitN(rest, "/", 2)[0], "@"); at >= 0 {
			return raw[:i+3] + "***@" + rest[at+1:]
		}
	}
	return raw
}

// prRefs are the refs a pull request's head may have: GitHub's and
// Gitea's, GitLab's merge requests.
func prRefs(n int) []string {
	s := strconv.Itoa(n)
	return []string{"refs/pull/" + s + "/head", "refs/merge-requests/" + s + "/head"}
}
