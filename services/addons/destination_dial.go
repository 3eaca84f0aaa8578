package addons

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

	"github.com/slipwayhq/slipway/pkg/component"
)

// DestinationAllowHostsSetting lists the storage hosts a backup
// destination may reach on loopback or private addresses. The addons
// component declares it (the lead adds it to the component's Settings)
// and passes its value, split with destinationAllowList, to
// newDestinationsServer.
var DestinationAllowHostsSetting = component.Setting{
	Flag: "backup-destination-allow-hosts", Env: "SLIPWAY_BACKUP_DESTINATION_ALLOW_HOSTS",
	Help: "comma-separated hosts (names, IPs or CIDRs) backup destinations and backup imports (importUrl) may reach on loopback or private addresses, such as a MinIO on this machine (none: such endpoints are refused)",
	Check: func(v string) error {
		_, err := parseDestinationHosts(destinationAllowList(v))
		return err
	},
}

// destinationAllowList splits the setting's comma-separated value.
func destinationAllowList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// errDestinationPrivate is the dial refusal of a non-public address.
var errDestinationPrivate = errors.New("the endpoint is a loopback or private address, which this server does not allow (SLIPWAY_BACKUP_DESTINATION_ALLOW_HOSTS)")

// destinationHosts are the operator's allowed hosts: names, and addresses
// or CIDRs.
type destinationHosts struct {
	names    map[string]bool
	prefixes []netip.Prefix
}

func parseDestinationHosts(hosts []string) (destinationHosts, error) {
	h := destinationHosts{names: map[string]bool{}}
	for _, s := range hosts {
		switch {
		case strings.Contains(s, "/"):
			p, err := netip.ParsePrefix(s)
			if err != nil {
				return h, fmt.Errorf("allowed host %q: %w", s, err)
			}
			h.prefixes = append(h.prefixes, p.Masked())
		default:
			if a, err := netip.ParseAddr(s); err == nil {
				h.prefixes = append(h.prefixes, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
				continue
			}
			h.names[strings.ToLower(strings.TrimSuffix(s, "."))] = true
		}
	}
	return h, nil
}

var destinationCGNAT = netip.MustParsePrefix("100.64.0.0/10")

// destinationPublic is whether a is a public unicast address.
func destinationPublic(a netip.Addr) bool {
	return a.IsGlobalUnicast() && !a.IsPrivate() && !destinationCGNAT.Contains(a) && !a.IsLoopback() && !a.IsLinkLocalUnicast()
}

// dialContext dials like d, but refuses (at connect time, after name
// resolution, so DNS cannot point an allowed name elsewhere later) any
// address that is not public unless the host name or the address is
// allowed. A team's destination is an address Slipway connects to on the
// team's behalf: without this, adding one would let it probe the server's
// own network (cloud metadata, internal services) through the add check.
func (h destinationHosts) dialContext(d *net.Dialer) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		nameAllowed := h.names[strings.ToLower(strings.TrimSuffix(host, "."))]
		guarded := *d
		guarded.Control = func(_, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return errDestinationPrivate
			}
			a := ap.Addr().Unmap()
			if nameAllowed || destinationPublic(a) {
				return nil
			}
			for _, p := range h.prefixes {
				if p.Contains(a) {
					return nil
				}
			}
			return errDestinationPrivate
		}
		return guarded.DialContext(ctx, network, addr)
	}
}

// destinationHTTPClient bounds each phase of a request to a destination
// but not its body (a large backup may take long to upload, a silent
// server may not), through the address guard of allow.
func destinationHTTPClient(allow destinationHosts) *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DialContext = allow.dialContext(&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second})
	t.TLSHandshakeTimeout = 10 * time.Second
	t.ResponseHeaderTimeout = 2 * time.Minute
	return &http.Client{Transport: t}
}

// importHTTPClient fetches importUrl dumps under the destinations' rule:
// a URL a team gives may not reach the server's own loopback or private
// network (its other services, a cloud's metadata endpoint), redirects
// included, unless the operator allows the host
// (SLIPWAY_BACKUP_DESTINATION_ALLOW_HOSTS).
func importHTTPClient(allowHosts []string) (*http.Client, error) {
	allow, err := parseDestinationHosts(allowHosts)
	if err != nil {
		return nil, err
	}
	return destinationHTTPClient(allow), nil
}
