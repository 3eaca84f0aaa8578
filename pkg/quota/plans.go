package quota

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/slipwayhq/slipway/pkg/slug"
)

// Plans maps billing plans to request limits per window.
type Plans struct {
	// Default applies to callers whose plan has no entry in PerPlan
	// (including personal tokens without a plan). Zero or less means
	// DefaultLimit, so the zero Plans is a usable configuration.
	Default int64
	// PerPlan holds the limits of named plans, e.g. free=100, pro=1000.
	PerPlan map[string]int64
}

// Limit returns the request limit per window for plan.
func (p Plans) Limit(plan string) int64 {
	if n, ok := p.PerPlan[plan]; ok {
		return n
	}
	if p.Default > 0 {
		return p.Default
	}
	return DefaultLimit
}

// ParsePlans parses per-plan limits written as comma-separated name=limit
// pairs, e.g. "free=100,pro=1000,enterprise=50000", the form they take in an
// environment variable or flag. Names must be slugs (lowercase letters,
// digits and single inner hyphens) so that they match plan ids; limits must
// be positive integers, because a zero limit would lock a plan out entirely
// and is more likely a typo than an intent. Spaces around entries are
// ignored. An empty string yields an empty map. Errors name the offending
// entry so that a misconfiguration can be fixed from the message alone.
func ParsePlans(s string) (map[string]int64, error) {
	plans := map[string]int64{}
	if strings.TrimSpace(s) == "" {
		return plans, nil
	}
	for i, entry := range strings.Split(s, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			return nil, fmt.Errorf("quota: plan limits %q: entry %d is empty", s, i+1)
		}
		name, value, ok := strings.Cut(entry, "=")
		if !ok {
			return nil, fmt.Errorf("quota: plan limits: %q is not of the form plan=limit", entry)
		}
		name, value = strings.TrimSpace(name), strings.TrimSpace(value)
		if name == "" || slug.Make(name) != name {
			return nil, fmt.Errorf("quota: plan limits: plan name %q is not a slug (lowercase letters, digits and inner hyphens)", name)
		}
		n, err := strconv.ParseInt(value, 10, 64)
		if err != nil || n <= 0 || strings.HasPrefix(value, "+") {
			return nil, fmt.Errorf("quota: plan limits: limit %q of plan %q is not a positive integer", value, name)
		}
		if _, dup := plans[name]; dup {
			return nil, fmt.Errorf("quota: plan limits: plan %q is given twice", name)
		}
		plans[name] = n
	}
	return plans, nil
}
