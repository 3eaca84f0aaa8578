package gateway

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	jobsv1 "github.com/slipwayhq/slipway/gen/slipway/jobs/v1"
)

// TestEnvelopeLists: a response_body that selects a repeated message
// field (GetJobLogs' "lines") reaches Marshal as a slice, which becomes a
// JSON array in "data", each element in the API's protojson options.
func TestEnvelopeLists(t *testing.T) {
	ts := time.Date(2024, 1, 2, 3, 4, 5, 600_000_000, time.UTC)
	for _, tc := range []struct {
		name string
		v    any
		want string
	}{
		{"lines", []*jobsv1.LogLine{
			{ContainerId: "nightly-1-1", Log: "hello <world> & co", Ts: timestamppb.New(ts), RunId: "nightly-1", Stream: "stdout"},
			{Log: "zero values too"},
		}, `{"data":[` +
			`{"containerId":"nightly-1-1","log":"hello <world> & co","ts":"2024-01-02T03:04:05.600Z","runId":"nightly-1","stream":"stdout"},` +
			`{"containerId":"","log":"zero values too","runId":"","stream":""}]}`},
		{"empty", []*jobsv1.LogLine{}, `{"data":[]}`},
		{"nil", []*jobsv1.LogLine(nil), `{"data":[]}`},
		{"message", &jobsv1.LogLine{Log: "one"}, `{"data":{"containerId":"","log":"one","runId":"","stream":""}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := envelope{}.Marshal(tc.v)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Fatalf("Marshal =\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
	for _, v := range []any{[]string{"a"}, 42, map[string]any{}} {
		if got, err := (envelope{}).Marshal(v); err == nil {
			t.Errorf("Marshal(%T) = %s, want an error", v, got)
		}
	}
}

// TestAppendCompact: whitespace goes only outside strings, escapes
// included, and the result is what json.Compact gives.
func TestAppendCompact(t *testing.T) {
	for _, in := range []string{
		`{"a": 1, "b": [1, 2,  3], "c": {"d": "x y"}}`,
		"{\n  \"s\": \"tab\\there \\\" quote, \\\\\",\n  \"t\": \"\\\\\"\n}",
		`{"empty":"", "sp":" , : "}`,
		`[]`,
	} {
		var want, got bytes.Buffer
		if err := json.Compact(&want, []byte(in)); err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		appendCompact(&got, []byte(in))
		if got.String() != want.String() {
			t.Errorf("appendCompact(%s) = %s, want %s", in, got.String(), want.String())
		}
	}
}

// FuzzAppendCompact: on any valid JSON, appendCompact agrees with
// json.Compact.
func FuzzAppendCompact(f *testing.F) {
	f.Add(`{"a": "b \" c", "d": [1, 2]}`)
	f.Add("{\"\\\\\": \" \\u00e9 \"}")
	f.Fuzz(func(t *testing.T, in string) {
		var want, got bytes.Buffer
		if json.Compact(&want, []byte(in)) != nil {
			return
		}
		appendCompact(&got, []byte(in))
		if got.String() != want.String() {
			t.Fatalf("appendCompact(%q) = %q, want %q", in, got.String(), want.String())
		}
	})
}
