package quota

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestDecisionHeaders(t *testing.T) {
	tests := []struct {
		name                    string
		d                       Decision
		limit, remaining, reset string
		retryAfter              string // "" means absent
	}{
		{"allowed, reset rounds up", Decision{Allowed: true, Limit: 1000, Remaining: 999, Reset: 3599*time.Second + 200*time.Millisecond}, "1000", "999", "3600", ""},
		{"refused sets Retry-After", Decision{Allowed: false, Limit: 100, Remaining: 0, Reset: 1500 * time.Millisecond}, "100", "0", "2", "2"},
		{"whole seconds stay", Decision{Allowed: false, Limit: 5, Remaining: 0, Reset: 2 * time.Second}, "5", "0", "2", "2"},
		{"a nanosecond left is one second", Decision{Allowed: true, Limit: 5, Remaining: 4, Reset: time.Nanosecond}, "5", "4", "1", ""},
		{"no time left", Decision{Allowed: true, Limit: 5, Remaining: 4}, "5", "4", "0", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			tc.d.Headers(h)
			for name, want := range map[string]string{
				"X-Ratelimit-Limit":     tc.limit,
				"X-Ratelimit-Remaining": tc.remaining,
				"X-Ratelimit-Reset":     tc.reset,
				"Retry-After":           tc.retryAfter,
			} {
				got, present := h[name] // canonical key, as the gateway writes it
				if want == "" {
					if present {
						t.Errorf("%s = %q, want absent", name, got)
					}
					continue
				}
				if len(got) != 1 || got[0] != want {
					t.Errorf("%s = %q, want %q", name, got, want)
				}
			}
			if got := h.Get("x-ratelimit-reset"); got != tc.reset {
				t.Errorf("lower-case lookup of x-ratelimit-reset = %q", got)
			}
		})
	}
}

func TestPlansLimit(t *testing.T) {
	p := Plans{Default: 500, PerPlan: map[string]int64{"free": 100, "enterprise": 50000}}
	for plan, want := range map[string]int64{"free": 100, "enterprise": 50000, "pro": 500, "": 500} {
		if got := p.Limit(plan); got != want {
			t.Errorf("Limit(%q) = %d, want %d", plan, got, want)
		}
	}
	if got := (Plans{}).Limit("free"); got != DefaultLimit {
		t.Errorf("zero Plans: Limit = %d, want DefaultLimit %d", got, DefaultLimit)
	}
}

func TestParsePlans(t *testing.T) {
	good := map[string]map[string]int64{
		"free=100,pro=1000,enterprise=50000": {"free": 100, "pro": 1000, "enterprise": 50000},
		" free = 100 , pro=1000 ":            {"free": 100, "pro": 1000},
		"team-2x=5":                          {"team-2x": 5},
		"":                                   {},
		"  ":                                 {},
	}
	for in, want := range good {
		got, err := ParsePlans(in)
		if err != nil {
			t.Errorf("ParsePlans(%q): %v", in, err)
			continue
		}
		if len(got) != len(want) {
			t.Errorf("ParsePlans(%q) = %v, want %v", in, got, want)
		}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("ParsePlans(%q)[%q] = %d, want %d", in, k, got[k], v)
			}
		}
	}

	// Each bad input with a fragment its error must contain, so that the
	// message points at the mistake.
	bad := map[string]string{
		"free":                      `"free" is not of the form plan=limit`,
		"free=":                     `limit "" of plan "free"`,
		"=100":                      `plan name ""`,
		"Free=100":                  `plan name "Free" is not a slug`,
		"fr ee=1":                   `plan name "fr ee"`,
		"-free=1":                   `plan name "-free"`,
		"free_tier=1":               `plan name "free_tier"`,
		"free=0":                    `limit "0" of plan "free" is not a positive integer`,
		"free=-1":                   `limit "-1"`,
		"free=+5":                   `limit "+5"`,
		"free=abc":                  `limit "abc"`,
		"free=1.5":                  `limit "1.5"`,
		"free=99999999999999999999": `limit "99999999999999999999"`,
		"free=100,free=200":         `plan "free" is given twice`,
		"free=100,":                 `entry 2 is empty`,
		"free=100,,pro=5":           `entry 2 is empty`,
		"free=1=2":                  `limit "1=2"`,
	}
	for in, frag := range bad {
		got, err := ParsePlans(in)
		if err == nil {
			t.Errorf("ParsePlans(%q) = %v, want an error", in, got)
			continue
		}
		if !strings.Contains(err.Error(), frag) {
			t.Errorf("ParsePlans(%q) error %q does not contain %q", in, err, frag)
		}
	}
}
