// Package netguard is Slipway's one rule for which addresses it may
// connect to on a user's behalf: a git repository to clone, a backup
// destination or an import URL, a notification's receiver. A URL a team
// gives must not make the server reach its own network (its other
// services, a cloud's metadata endpoint), so only public unicast addresses
// are allowed, plus what the operator allows (a MinIO or a Gitea on this
// machine), less what the operator denies.
//
// The rule is checked at connect time, after name resolution
// (Rule.DialContext), so a DNS answer that changes between a check and the
// connection (rebinding) cannot get around it, and an HTTP redirect is
// judged like the first request.
package netguard

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"syscall"
	"time"
)

// ErrRefused is what a refused address fails with (wrapped): its host or
// address is denied, or is not public and not allowed. Its message, and
// that of every error wrapping it here, names no resolved address, so it
// is safe to show to the user who gave the URL.
var ErrRefused = errors.New("the address is a loopback, private or denied one, which this server does not allow")

// Rule is an operator's allow and deny lists over the default of public
// unicast addresses only. A nil *Rule is that default.
type Rule struct {
	allowNames, denyNames map[string]bool
	allow, deny           []netip.Prefix
}

// Parse returns the rule of allow and deny entries: host names (matched
// exactly, case-insensitively, without a trailing dot), IP addresses and
// CIDRs. Blank entries are skipped. Deny wins: a denied name or address is
// refused even when it is public or also allowed.
func Parse(allow, deny []string) (*Rule, error) {
	r := &Rule{allowNames: map[string]bool{}, denyNames: map[string]bool{}}
	var err error
	if r.allow, err = parseEntries(allow, r.allowNames, "allowed"); err != nil {
		return nil, err
	}
	if r.deny, err = parseEntries(deny, r.denyNames, "denied"); err != nil {
		return nil, err
	}
	return r, nil
}

func parseEntries(entries []string, names map[string]bool, what string) ([]netip.Prefix, error) {
	var prefixes []netip.Prefix
	for _, s := range entries {
		s = strings.TrimSpace(s)
		switch {
		case s == "":
		case strings.Contains(s, "/"):
			p, err := netip.ParsePrefix(s)
			if err != nil {
				return nil, fmt.Errorf("%s host %q: %w", what, s, err)
			}
			prefixes = append(prefixes, unmapPrefix(p.Masked()))
		default:
			if a, err := netip.ParseAddr(s); err == nil {
				a = plain(a)
				prefixes = append(prefixes, netip.PrefixFrom(a, a.BitLen()))
				continue
			}
			names[normName(s)] = true
		}
	}
	return prefixes, nil
}

// unmapPrefix turns an IPv4-mapped IPv6 prefix (::ffff:10.0.0.0/104) into
// its IPv4 one, since addresses are unmapped before they are matched.
func unmapPrefix(p netip.Prefix) netip.Prefix {
	if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
		return netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p
}

// plain is a without IPv4 mapping or zone: the form prefixes match.
func plain(a netip.Addr) netip.Addr {
	return a.Unmap().WithZone("")
}

func normName(host string) string {
	return strings.ToLower(strings.TrimSuffix(strings.TrimSpace(host), "."))
}

// SplitList splits a comma-separated setting value into its entries,
// trimmed, blank ones dropped.
func SplitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// notPublic are ranges that IsGlobalUnicast and IsPrivate leave in but no
// receiver on the internet has: "this network" (0.0.0.0/8, which Linux
// connects to the machine itself), carrier-grade NAT, IETF protocol
// assignments, benchmarking, reserved and broadcast, IPv6's deprecated
// IPv4-compatible addresses and site-local, and local-use NAT64 (a
// translator of the operator's own network).
var notPublic = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("240.0.0.0/4"),
	netip.MustParsePrefix("::/96"),
	netip.MustParsePrefix("fec0::/10"),
	netip.MustParsePrefix("64:ff9b:1::/48"),
}

// nat64 is the well-known NAT64 prefix: its addresses reach the IPv4
// address in their last 32 bits, which is what they are judged by.
var nat64 = netip.MustParsePrefix("64:ff9b::/96")

// Public is whether a is a public unicast address: not private, loopback,
// link-local, carrier-grade NAT, unspecified, multicast or otherwise
// reserved. An IPv4-mapped or NAT64 address is judged by its IPv4 address.
func Public(a netip.Addr) bool {
	a = plain(a)
	if nat64.Contains(a) {
		b := a.As16()
		a = netip.AddrFrom4([4]byte(b[12:]))
	}
	if !a.IsGlobalUnicast() || a.IsPrivate() {
		return false
	}
	for _, p := range notPublic {
		if p.Contains(a) {
			return false
		}
	}
	return true
}

// Allows is whether Slipway may connect to address a of host (a name, or
// the address itself): not when the host name or the address is denied;
// then when the name or the address is allowed; otherwise when a is
// public.
func (r *Rule) Allows(host string, a netip.Addr) bool {
	if r == nil {
		return Public(a)
	}
	name := normName(host)
	a = plain(a)
	if r.denyNames[name] || contains(r.deny, a) {
		return false
	}
	if r.allowNames[name] || contains(r.allow, a) {
		return true
	}
	return Public(a)
}

func contains(prefixes []netip.Prefix, a netip.Addr) bool {
	for _, p := range prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// refusal is a refused host's error: its own message, ErrRefused for
// errors.Is.
type refusal struct{ msg string }

func (e *refusal) Error() string        { return e.msg }
func (e *refusal) Is(target error) bool { return target == ErrRefused }

// ErrUnresolved is what CheckHost fails with when the host name does not
// resolve (wrapped; the resolver's own error, which may describe the
// server's network, is left out).
var ErrUnresolved = errors.New("the host name could not be resolved")

// CheckHost resolves host (a name or an IP address) and fails with an
// error wrapping ErrRefused if any of its addresses is not allowed, or
// one wrapping ErrUnresolved if it has none. It checks a URL when it is
// given, for a clear answer then; the connection is checked again
// (DialContext), since DNS may answer differently later.
func (r *Rule) CheckHost(ctx context.Context, host string) error {
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if host == "" {
		return &refusal{msg: "no host given"}
	}
	var addrs []netip.Addr
	if a, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{a}
	} else {
		if r != nil && r.denyNames[normName(host)] {
			return &refusal{msg: fmt.Sprintf("the host %q is denied by this server", host)}
		}
		addrs, err = net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		if err != nil || len(addrs) == 0 {
			return fmt.Errorf("%w: %q", ErrUnresolved, host)
		}
	}
	for _, a := range addrs {
		if !r.Allows(host, a) {
			return &refusal{msg: fmt.Sprintf("the host %q is a loopback, private or denied address, which this server does not allow", host)}
		}
	}
	return nil
}

// DialContext returns d's DialContext under the rule: every address it
// connects to, after name resolution and each of them when a name has
// several, must be allowed for the host dialed, or the dial fails with an
// error wrapping ErrRefused before anything is sent. Only TCP and UDP are
// dialed.
func (r *Rule) DialContext(d *net.Dialer) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		switch network {
		case "tcp", "tcp4", "tcp6", "udp", "udp4", "udp6":
		default:
			return nil, &refusal{msg: "network " + network + ": " + ErrRefused.Error()}
		}
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		guarded := *d
		guarded.Control = nil
		guarded.ControlContext = func(ctx context.Context, network, address string, c syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil || !r.Allows(host, ap.Addr()) {
				return ErrRefused
			}
			switch {
			case d.ControlContext != nil:
				return d.ControlContext(ctx, network, address, c)
			case d.Control != nil:
				return d.Control(network, address, c)
			}
			return nil
		}
		return guarded.DialContext(ctx, network, addr)
	}
}

// ClientOptions bound an HTTPClient's requests. Zero values take the
// defaults given.
type ClientOptions struct {
	// Timeout bounds a whole request, redirects and reading the body
	// included (http.Client.Timeout); 0: no bound (a large upload may
	// take long).
	Timeout time.Duration
	// DialTimeout bounds connecting; default 10s.
	DialTimeout time.Duration
	// TLSHandshakeTimeout bounds the TLS handshake; default 10s.
	TLSHandshakeTimeout time.Duration
	// ResponseHeaderTimeout bounds the wait for the response's headers
	// once the request is sent; 0: no bound.
	ResponseHeaderTimeout time.Duration
}

// HTTPClient returns a client whose every connection goes through
// DialContext, redirects included (they are followed as usual, each
// checked when it connects). It uses no proxy from the environment: with
// one, the rule would judge the proxy's address instead of the URL's.
func (r *Rule) HTTPClient(opts ClientOptions) *http.Client {
	if opts.DialTimeout <= 0 {
		opts.DialTimeout = 10 * time.Second
	}
	if opts.TLSHandshakeTimeout <= 0 {
		opts.TLSHandshakeTimeout = 10 * time.Second
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = nil
	t.DialContext = r.DialContext(&net.Dialer{Timeout: opts.DialTimeout, KeepAlive: 30 * time.Second})
	t.TLSHandshakeTimeout = opts.TLSHandshakeTimeout
	t.ResponseHeaderTimeout = opts.ResponseHeaderTimeout
	return &http.Client{Transport: t, Timeout: opts.Timeout}
}
