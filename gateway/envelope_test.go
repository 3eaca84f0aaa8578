package gateway

import (
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
