package projects

import (
	"fmt"
	"strconv"
	"time"

	"github.com/slipwayhq/slipway/pkg/component"
	"github.com/slipwayhq/slipway/pkg/netguard"
)

// maxRetryFor bounds how long a delivery may be retried, so a dead
// receiver's rows do not pile up for ever.
const maxRetryFor = 7 * 24 * time.Hour

// NotificationSettings configure deliveries of notification integrations
// and webhooks.
var NotificationSettings = []component.Setting{
	{Flag: "notification-allow-hosts", Env: "SLIPWAY_NOTIFICATION_ALLOW_HOSTS",
		Help:  "projects: comma-separated hosts (names, IPs, CIDRs) that notification integrations and webhooks may reach on loopback or private addresses; none refuses them (checked when saved and at every connection)",
		Check: hostList},
	{Flag: "notification-deny-hosts", Env: "SLIPWAY_NOTIFICATION_DENY_HOSTS",
		Help:  "projects: comma-separated hosts (names, IPs, CIDRs) notifications are never sent to, even public ones",
		Check: hostList},
	{Flag: "notification-retry-for", Env: "SLIPWAY_NOTIFICATION_RETRY_FOR", Default: "24h",
		Help:  "projects: how long a failing delivery is retried (with exponential back-off) before it is marked failed; at most 168h",
		Check: durationUpTo(maxRetryFor)},
	{Flag: "notification-retry-base", Env: "SLIPWAY_NOTIFICATION_RETRY_BASE", Default: "10s",
		Help:  "projects: delay before a failed delivery's first retry, doubling per attempt (with jitter) up to an hour",
		Check: durationUpTo(time.Hour)},
	{Flag: "notification-timeout", Env: "SLIPWAY_NOTIFICATION_TIMEOUT", Default: "10s",
		Help:  "projects: how long one delivery attempt may take (connect, send, response)",
		Check: durationUpTo(5 * time.Minute)},
	{Flag: "notification-workers", Env: "SLIPWAY_NOTIFICATION_WORKERS", Default: "8",
		Help:  "projects: deliveries sent at once per replica (a slow receiver holds one)",
		Check: component.Positive},
}

// notificationConfig is NotificationSettings parsed.
type notificationConfig struct {
	Rule                         *netguard.Rule
	RetryFor, RetryBase, Timeout time.Duration
	Workers                      int
}

func notificationConfigFrom(setting func(string) string) (notificationConfig, error) {
	var cfg notificationConfig
	rule, err := netguard.Parse(netguard.SplitList(setting("notification-allow-hosts")), netguard.SplitList(setting("notification-deny-hosts")))
	if err != nil {
		return cfg, fmt.Errorf("notification hosts: %w", err)
	}
	cfg.Rule = rule
	// The values passed their checks.
	cfg.RetryFor, _ = time.ParseDuration(setting("notification-retry-for"))
	cfg.RetryBase, _ = time.ParseDuration(setting("notification-retry-base"))
	cfg.Timeout, _ = time.ParseDuration(setting("notification-timeout"))
	cfg.Workers, _ = strconv.Atoi(setting("notification-workers"))
	return cfg, nil
}

func hostList(v string) error {
	_, err := netguard.Parse(netguard.SplitList(v), nil)
	return err
}

func durationUpTo(limit time.Duration) func(string) error {
	return func(v string) error {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 || d > limit {
			return fmt.Errorf("%q: want a positive duration of at most %s", v, limit)
		}
		return nil
	}
}
