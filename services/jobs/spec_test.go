package jobs

import (
	"strings"
	"testing"
	"time"
)

// TestParseSchedule: only what the README documents is a schedule (five
// fields, UTC, or a descriptor), and none fires more than once a minute.
func TestParseSchedule(t *testing.T) {
	for _, expr := range []string{"* * * * *", "*/5 * * * *", "0 3 * * 1-5", "0 0 1 jan *", "@hourly", "@daily", "@midnight", "@weekly", "@monthly", "@yearly", "@annually"} {
		s, err := parseSchedule(expr)
		if err != nil {
			t.Errorf("parseSchedule(%q) = %v", expr, err)
			continue
		}
		// Two consecutive ticks are at least a minute apart.
		from := time.Date(2026, 3, 1, 12, 0, 30, 0, time.UTC)
		first := s.Next(from)
		if gap := s.Next(first).Sub(first); gap < time.Minute {
			t.Errorf("%q fires %v apart", expr, gap)
		}
	}
	for _, expr := range []string{
		"@every 1s", "@every 100ms", "@every 1m", "@every", "@reboot", "@hourly extra",
		"* * * * * *", "*/10 * * * * *", "* * * *", "", "   ",
		"CRON_TZ=Europe/Paris 0 3 * * *", "TZ=UTC 0 3 * * *",
		"61 * * * *", "* 25 * * *",
	} {
		_, err := parseSchedule(expr)
		if err == nil {
			t.Errorf("parseSchedule(%q) accepted", expr)
			continue
		}
		if !strings.Contains(err.Error(), "request validation failed") {
			t.Errorf("parseSchedule(%q) = %v, want a validation error", expr, err)
		}
	}
}
