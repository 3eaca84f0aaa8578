// Package logquery is what every log-serving service shares about
// Northflank's log queries: the text and regex filters, the time range a
// request selects, the bounds of one answer, and the read loop that pages
// through a store applying the filters. Jobs and services serve logs the
// same way, so it lives here once.
package logquery

import (
	"context"
	"regexp"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/slipwayhq/slipway/pkg/apierr"
)

// Query bounds.
const (
	// DefaultLineLimit is a range query's line limit when it gives none;
	// DefaultTailLines is a tail's backlog.
	DefaultLineLimit = 1000
	DefaultTailLines = 100
	// MaxPageBytes bounds the lines of one answer (a range response, or
	// one message of a tail) besides their count: gRPC refuses messages
	// over 4 MiB by default, and lineLimit lines of up to 64 KiB each
	// would exceed it many times over. A page cut short by it ends at a
	// line whose time a next read starts from.
	MaxPageBytes = 2 << 20
	// LineOverhead is what a line costs in a response besides its text
	// (ids, stream, timestamp, framing), counted against MaxPageBytes.
	LineOverhead = 160
)

// Request is the part of a log request the filter reads.
type Request interface {
	GetContainerName() string
	GetTextIncludes() string
	GetTextNotIncludes() string
	GetRegexIncludes() string
	GetRegexNotIncludes() string
}

// Filter selects lines the way Northflank's log options do.
type Filter struct {
	// Container is the one container asked for; empty for all ("all" in
	// the request).
	Container        string
	include, exclude string
	match, notMatch  *regexp.Regexp
}

// NewFilter reads a request's filters; an invalid regular expression is
// a VALIDATION_FAILED naming its field.
func NewFilter(q Request) (Filter, error) {
	f := Filter{Container: q.GetContainerName(), include: q.GetTextIncludes(), exclude: q.GetTextNotIncludes()}
	if f.Container == "all" {
		f.Container = ""
	}
	for _, re := range []struct {
		field, expr string
		dst         **regexp.Regexp
	}{{"regexIncludes", q.GetRegexIncludes(), &f.match}, {"regexNotIncludes", q.GetRegexNotIncludes(), &f.notMatch}} {
		if re.expr == "" {
			continue
		}
		compiled, err := regexp.Compile(re.expr)
		if err != nil {
			return Filter{}, apierr.InvalidField(re.field, "is not a valid regular expression: "+err.Error())
		}
		*re.dst = compiled
	}
	return f, nil
}

// TextOnly reports whether the filter looks at line text (then a store
// cannot apply it, and reads go in batches).
func (f Filter) TextOnly() bool {
	return f.include != "" || f.exclude != "" || f.match != nil || f.notMatch != nil
}

// Keep reports whether a line of container with text passes the filter.
func (f Filter) Keep(container, text string) bool {
	switch {
	case f.Container != "" && container != f.Container,
		f.include != "" && !strings.Contains(text, f.include),
		f.exclude != "" && strings.Contains(text, f.exclude),
		f.match != nil && !f.match.MatchString(text),
		f.notMatch != nil && f.notMatch.MatchString(text):
		return false
	}
	return true
}

// RangeRequest is the part of a range request that selects its times.
type RangeRequest interface {
	GetStartTime() *timestamppb.Timestamp
	GetEndTime() *timestamppb.Timestamp
	GetDuration() int64
}

// Range is the time range a request selects: startTime (or duration
// seconds before endTime, or before now) up to endTime; zero bounds are
// open.
func Range(req RangeRequest, now time.Time) (start, end time.Time, err error) {
	if req.GetEndTime() != nil {
		end = req.GetEndTime().AsTime()
	}
	if req.GetStartTime() != nil {
		start = req.GetStartTime().AsTime()
	} else if req.GetDuration() > 0 {
		from := end
		if from.IsZero() {
			from = now
		}
		start = from.Add(-time.Duration(min(req.GetDuration(), int64(1<<33))) * time.Second)
	}
	if !start.IsZero() && !end.IsZero() && end.Before(start) {
		return time.Time{}, time.Time{}, apierr.InvalidField("endTime", "is before startTime")
	}
	return start, end, nil
}

// RangeLines is how many lines a range query returns at most: the
// request's lineLimit, or DefaultLineLimit when it gives none.
func RangeLines(lineLimit int32) int {
	if lineLimit == 0 {
		return DefaultLineLimit
	}
	return int(lineLimit)
}

// TailLines is how many stored lines a tail sends before the live ones:
// the request's lineLimit, or DefaultTailLines when it gives none.
func TailLines(lineLimit int32) int {
	if lineLimit == 0 {
		return DefaultTailLines
	}
	return int(lineLimit)
}

// TailStart is where a tail's stored lines start: from the request's
// startTime onwards when it gives one, else the newest lines, read
// backward.
func TailStart(startTime *timestamppb.Timestamp) (start time.Time, backward bool) {
	if startTime == nil {
		return time.Time{}, true
	}
	return startTime.AsTime(), false
}

// Read returns up to limit lines that keep accepts, and no more than
// MaxPageBytes of them by size (at least one line). fetch reads the next
// batch of at most n stored lines after the line after (nil: from the
// start), in the read's direction; with textOnly it is asked for bigger
// batches, since the store cannot filter text.
func Read[L any](ctx context.Context, limit int, textOnly bool, fetch func(ctx context.Context, n int, after *L) ([]L, error), keep func(L) bool, size func(L) int) ([]L, error) {
	var out []L
	var after *L
	total := 0
	for len(out) < limit {
		n := limit - len(out)
		if textOnly {
			n = max(n, 500)
		}
		batch, err := fetch(ctx, n, after)
		if err != nil {
			return nil, err
		}
		for _, l := range batch {
			if !keep(l) {
				continue
			}
			b := size(l)
			if len(out) > 0 && total+b > MaxPageBytes {
				return out, nil
			}
			total += b
			if out = append(out, l); len(out) == limit {
				return out, nil
			}
		}
		if len(batch) < n {
			break
		}
		last := batch[len(batch)-1]
		after = &last
	}
	return out, nil
}
