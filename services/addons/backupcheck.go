package addons

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/slipwayhq/slipway/services/addons/engine"
)

// sourceCheck is what the addon held while a backup of it was taken: its
// check just before the dump or snapshot started and just after it
// ended. The backup is a consistent copy of one moment in between, so
// when the two are equal a restored copy must equal them, and when the
// addon was written to meanwhile it must lie between them.
type sourceCheck struct {
	Before, After engine.Check
}

// changed reports whether the addon changed while the backup ran.
func (s sourceCheck) changed() bool { return !s.Before.Equal(s.After) }

// Descriptions of what a verification compared, stored in its result.
const (
	comparedExact = "exact"
	comparedRange = "between before and after"
)

// compared says how a restored copy is compared with the source.
func (s sourceCheck) compared() string {
	if s.changed() {
		return comparedRange
	}
	return comparedExact
}

// sourceCheckMap is a source check as stored with a backup: the check
// before the backup (so a record written before "after" existed reads as
// an unchanged source) and, only when the addon changed meanwhile, the
// check after it under "after".
func sourceCheckMap(s sourceCheck) map[string]any {
	m := checkMap(s.Before)
	if s.changed() {
		m["after"] = checkMap(s.After)
	}
	return m
}

// sourceCheckFromMap reads back what sourceCheckMap made.
func sourceCheckFromMap(m map[string]any) sourceCheck {
	s := sourceCheck{Before: checkFromMap(m)}
	s.After = s.Before
	if after, ok := m["after"].(map[string]any); ok {
		s.After = checkFromMap(after)
	}
	return s
}

// describe says what the source held, for messages: one summary, or
// both and that it changed.
func (s sourceCheck) describe() string {
	if !s.changed() {
		return s.Before.Summary()
	}
	return fmt.Sprintf("the source changed while the backup ran (before: %s; after: %s)", s.Before.Summary(), s.After.Summary())
}

// compare checks a restored copy's check against the source's. When the
// source did not change the two must be equal. When it did, the copy
// must hold every table (or Redis database) the source held both before
// and after, may hold or lack one it held only before or only after,
// holds nothing the source never held, has each count between the
// before and after counts (inclusive; a table absent on one side counts
// 0 rows there) and each table's columns as they were before or after.
// A non-nil error says everything that is out of bounds.
func (s sourceCheck) compare(got engine.Check) error {
	if !s.changed() {
		if s.Before.Equal(got) {
			return nil
		}
		return fmt.Errorf("the restored copy differs from the source: %s", s.Before.Diff(got))
	}
	keys := map[string]bool{}
	for _, m := range []map[string]int64{s.Before.Counts, s.After.Counts, got.Counts} {
		for k := range m {
			keys[k] = true
		}
	}
	var out []string
	for _, k := range slices.Sorted(maps.Keys(keys)) {
		before, inBefore := s.Before.Counts[k]
		after, inAfter := s.After.Counts[k]
		n, inGot := got.Counts[k]
		switch {
		case !inBefore && !inAfter:
			out = append(out, k+" is unexpected")
			continue
		case !inGot && inBefore && inAfter:
			out = append(out, k+" is missing")
			continue
		case !inGot:
			continue // created or dropped while the backup ran
		}
		lo, hi := min(before, after), max(before, after)
		if n < lo || n > hi {
			out = append(out, fmt.Sprintf("%s has %d, expected between %d and %d", k, n, lo, hi))
			continue
		}
		if cols := got.Schema[k]; !(inBefore && cols == s.Before.Schema[k]) && !(inAfter && cols == s.After.Schema[k]) {
			out = append(out, k+" has other columns than before or after")
		}
	}
	if len(out) == 0 {
		return nil
	}
	return fmt.Errorf("the restored copy is not what the source held while the backup ran (%s; compared: each count between before and after): %s",
		s.describe(), strings.Join(out, "; "))
}

// verificationResult is what a verification stores and shows as its
// result: the restored copy's check and, for a backup of an addon (s not
// nil; an imported dump has no source), how it was compared, whether the
// source changed while the backup ran and then its checks before and
// after.
func verificationResult(s *sourceCheck, got engine.Check) map[string]any {
	m := checkMap(got)
	if s == nil {
		return m
	}
	m["compared"] = s.compared()
	m["sourceChanged"] = s.changed()
	if s.changed() {
		m["sourceBefore"] = checkMap(s.Before)
		m["sourceAfter"] = checkMap(s.After)
	}
	return m
}

// verifiedMessage is a passed verification's message: what the restored
// copy holds and what it was compared with.
func verifiedMessage(s *sourceCheck, got engine.Check) string {
	msg := "restored into a throwaway instance: " + got.Summary()
	switch {
	case s == nil:
		return msg
	case s.changed():
		return msg + "; " + s.describe() + ", and every count lies between the two"
	}
	return msg + ", as in the source"
}
