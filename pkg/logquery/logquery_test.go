package logquery_test

import (
	"context"
	"reflect"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/slipwayhq/slipway/pkg/apierr"
	"github.com/slipwayhq/slipway/pkg/logquery"
)

type req struct {
	container, include, exclude, match, notMatch string
	start, end                                   *timestamppb.Timestamp
	duration                                     int64
}

func (r req) GetContainerName() string             { return r.container }
func (r req) GetTextIncludes() string              { return r.include }
func (r req) GetTextNotIncludes() string           { return r.exclude }
func (r req) GetRegexIncludes() string             { return r.match }
func (r req) GetRegexNotIncludes() string          { return r.notMatch }
func (r req) GetStartTime() *timestamppb.Timestamp { return r.start }
func (r req) GetEndTime() *timestamppb.Timestamp   { return r.end }
func (r req) GetDuration() int64                   { return r.duration }

func TestFilter(t *testing.T) {
	f, err := logquery.NewFilter(req{container: "all", include: "GET", notMatch: `/health$`})
	if err != nil {
		t.Fatal(err)
	}
	if f.Container != "" || !f.TextOnly() {
		t.Errorf("filter %+v", f)
	}
	for text, want := range map[string]bool{"GET /": true, "GET /health": false, "POST /": false} {
		if got := f.Keep("web-1", text); got != want {
			t.Errorf("Keep(%q) = %v, want %v", text, got, want)
		}
	}
	one, _ := logquery.NewFilter(req{container: "web-1"})
	if one.Keep("web-2", "x") || !one.Keep("web-1", "x") || one.TextOnly() {
		t.Error("the container filter")
	}
	if _, err := logquery.NewFilter(req{match: "("}); apierr.From(err) == nil || len(apierr.From(err).Fields["regexIncludes"]) == 0 {
		t.Errorf("a bad regular expression: %v", err)
	}
}

func TestRange(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	start, end, err := logquery.Range(req{duration: 60}, now)
	if err != nil || !start.Equal(now.Add(-time.Minute)) || !end.IsZero() {
		t.Errorf("duration: %v %v %v", start, end, err)
	}
	_, _, err = logquery.Range(req{start: timestamppb.New(now), end: timestamppb.New(now.Add(-time.Second))}, now)
	if e := apierr.From(err); e == nil || len(e.Fields["endTime"]) == 0 {
		t.Errorf("end before start: %v", err)
	}
}

func TestRead(t *testing.T) {
	lines := []int{1, 2, 3, 4, 5, 6, 7}
	fetch := func(_ context.Context, n int, after *int) ([]int, error) {
		i := 0
		if after != nil {
			i = *after
		}
		return lines[i:min(i+n, len(lines))], nil
	}
	even := func(v int) bool { return v%2 == 0 }
	got, err := logquery.Read(context.Background(), 2, false, fetch, even, func(int) int { return 1 })
	if err != nil || len(got) != 2 || got[0] != 2 || got[1] != 4 {
		t.Errorf("Read = %v, %v", got, err)
	}
	big, _ := logquery.Read(context.Background(), 5, false, fetch, func(int) bool { return true }, func(int) int { return logquery.MaxPageBytes })
	if len(big) != 1 {
		t.Errorf("a page stops at MaxPageBytes (with at least one line): %v", big)
	}
}

func TestSendPages(t *testing.T) {
	lines := []int{logquery.MaxPageBytes / 2, logquery.MaxPageBytes / 2, 1, logquery.MaxPageBytes * 2, 3}
	var pages [][]int
	err := logquery.SendPages(lines, func(n int) int { return n }, func(p []int) error {
		pages = append(pages, append([]int(nil), p...))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// A page holds what fits; a line larger than a page goes alone.
	want := [][]int{{logquery.MaxPageBytes / 2, logquery.MaxPageBytes / 2}, {1}, {logquery.MaxPageBytes * 2}, {3}}
	if !reflect.DeepEqual(pages, want) {
		t.Errorf("pages %v, want %v", pages, want)
	}
}

// TestLinesAndTailStart: a request without a lineLimit gets the range's
// or the tail's default, one with a limit gets it; a tail starts at the
// request's startTime reading forward, else at the newest lines reading
// backward.
func TestLinesAndTailStart(t *testing.T) {
	if got := logquery.RangeLines(0); got != logquery.DefaultLineLimit {
		t.Errorf("RangeLines(0) = %d", got)
	}
	if got := logquery.TailLines(0); got != logquery.DefaultTailLines {
		t.Errorf("TailLines(0) = %d", got)
	}
	if got, got2 := logquery.RangeLines(7), logquery.TailLines(7); got != 7 || got2 != 7 {
		t.Errorf("RangeLines(7), TailLines(7) = %d, %d", got, got2)
	}
	if start, backward := logquery.TailStart(nil); !start.IsZero() || !backward {
		t.Errorf("TailStart(nil) = %v, %v", start, backward)
	}
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	if start, backward := logquery.TailStart(timestamppb.New(at)); !start.Equal(at) || backward {
		t.Errorf("TailStart(%v) = %v, %v", at, start, backward)
	}
}
