package addons

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/slipwayhq/slipway/pkg/component"
	"github.com/slipwayhq/slipway/pkg/netguard"
)

// DestinationAllowHostsSetting lists the storage hosts a backup
// destination may reach on loopback or private addresses. The addons
// component declares it (the lead adds it to the component's Settings)
// and passes its value, split with netguard.SplitList, to
// newDestinationsServer.
var DestinationAllowHostsSetting = component.Setting{
	Flag: "backup-destination-allow-hosts", Env: "SLIPWAY_BACKUP_DESTINATION_ALLOW_HOSTS",
	Help: "comma-separated hosts (names, IPs or CIDRs) backup destinations and backup imports (importUrl) may reach on loopback or private addresses, such as a MinIO on this machine (none: such endpoints are refused)",
	Check: func(v string) error {
		_, err := netguard.Parse(netguard.SplitList(v), nil)
		return err
	},
}

// errDestinationPrivate is the dial refusal of a non-public address,
// worded for a destination's or an import's owner: it names the setting
// that would allow it.
var errDestinationPrivate = errors.New("the endpoint is a loopback or private address, which this server does not allow (SLIPWAY_BACKUP_DESTINATION_ALLOW_HOSTS)")

// destinationDial dials under rule (netguard: checked at connect time,
// after name resolution, so DNS cannot point an allowed name elsewhere
// later) and words a refusal as errDestinationPrivate. A team's
// destination is an address Slipway connects to on the team's behalf:
// without the rule, adding one would let it probe the server's own
// network (cloud metadata, internal services) through the add check.
func destinationDial(rule *netguard.Rule, d *net.Dialer) func(ctx context.Context, network, addr string) (net.Conn, error) {
	dial := rule.DialContext(d)
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if errors.Is(err, netguard.ErrRefused) {
			var op *net.OpError
			if errors.As(err, &op) {
				op.Err = errDestinationPrivate
				return nil, op
			}
			return nil, errDestinationPrivate
		}
		return c, err
	}
}

// destinationHTTPClient bounds each phase of a request to a destination
// but not its body (a large backup may take long to upload, a silent
// server may not), through rule. It takes no proxy from the environment:
// the rule would judge the proxy's address, not the endpoint's.
func destinationHTTPClient(rule *netguard.Rule) *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = nil
	t.DialContext = destinationDial(rule, &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second})
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
	rule, err := netguard.Parse(allowHosts, nil)
	if err != nil {
		return nil, err
	}
	return destinationHTTPClient(rule), nil
}
