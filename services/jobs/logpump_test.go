package jobs_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	jobsv1 "github.com/slipwayhq/slipway/gen/slipway/jobs/v1"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/slipwayhq/slipway/pkg/runtime"
	"github.com/slipwayhq/slipway/services/jobs"
)

// storedLines reads every stored line of a run, oldest first, from the
// store itself.
func (h *harness) storedLines(job, run string) []jobs.LogLine {
	h.t.Helper()
	q := jobs.LogQuery{TeamID: teamID, ProjectID: projectID, JobID: job, RunID: run, Limit: 5000}
	var out []jobs.LogLine
	for {
		batch, err := h.store.ReadLogs(context.Background(), q)
		if err != nil {
			h.t.Fatal(err)
		}
		out = append(out, batch...)
		if len(batch) < q.Limit {
			return out
		}
		last := batch[len(batch)-1]
		q.AfterTime, q.AfterSeq = last.Time, last.Seq
	}
}

// TestLogsKeepEveryLine: a run that writes many lines fast concludes only
// once all of them are stored, each once, in order. (The pump used to get
// 10 s after the exit: `seq 1 1000000` ended SUCCESS with 163363 lines.)
func TestLogsKeepEveryLine(t *testing.T) {
	const n = 200000
	h := newHarness(t)
	h.manual("chatty", fmt.Sprintf("seq 1 %d", n))
	r := h.run("chatty", nil)
	r = h.waitRun("chatty", r.GetId(), 120*time.Second, concluded)
	if r.GetStatus() != "SUCCESS" {
		t.Fatalf("run = %v", r)
	}
	lines := h.storedLines("chatty", r.GetId())
	if len(lines) != n {
		t.Fatalf("%d lines stored when the run concluded, want %d (last %q)", len(lines), n, lines[len(lines)-1].Text)
	}
	for i, l := range lines {
		if l.Text != strconv.Itoa(i+1) {
			t.Fatalf("line %d is %q, want %d", i, l.Text, i+1)
		}
		if i > 0 && !l.Time.After(lines[i-1].Time) {
			t.Fatalf("line %d has time %v, not after the line before (%v): readers continuing from a time would skip or repeat lines", i, l.Time, lines[i-1].Time)
		}
	}
}

// TestLogCap: past the run's cap, lines are counted, not stored, and one
// last line says how many were dropped.
func TestLogCap(t *testing.T) {
	h := newHarness(t, func(o *jobs.Options) { o.LogLines = 1000 })
	h.manual("capped", "seq 1 5000")
	r := h.run("capped", nil)
	r = h.waitRun("capped", r.GetId(), 60*time.Second, concluded)
	if r.GetStatus() != "SUCCESS" {
		t.Fatalf("run = %v", r)
	}
	lines := h.storedLines("capped", r.GetId())
	if len(lines) != 1001 {
		t.Fatalf("%d lines stored, want the cap (1000) and the truncation line", len(lines))
	}
	for i, l := range lines[:1000] {
		if l.Text != strconv.Itoa(i+1) || l.Stream != "stdout" {
			t.Fatalf("line %d = %q (%s)", i, l.Text, l.Stream)
		}
	}
	// 4000 lines of 4 characters were dropped.
	last := lines[1000]
	if last.Stream != "slipway" || !strings.Contains(last.Text, "4000 more lines (16000 bytes) were not stored") {
		t.Fatalf("truncation line = %+v", last)
	}
	// The API shows the truncation line with the others.
	if got := h.logs("capped", &jobsv1.GetJobLogsRequest{LineLimit: 2000}); len(got) != 1001 || got[len(got)-1] != last.Text {
		t.Fatalf("GetJobLogs gave %d lines ending %q", len(got), got[len(got)-1])
	}
}

// TestLogCapBytes: the byte cap truncates the same way, at the first line
// that does not fit, and later attempts of the run share the cap.
func TestLogCapBytes(t *testing.T) {
	h := newHarness(t, func(o *jobs.Options) { o.LogBytes = 100 })
	h.manual("wordy", "seq 1 100; exit 1", func(s *jobsv1.JobSpec) { s.BackoffLimit = 1 })
	r := h.run("wordy", nil)
	r = h.waitRun("wordy", r.GetId(), 30*time.Second, concluded)
	if r.GetStatus() != "FAILED" || r.GetFailed() != 2 {
		t.Fatalf("run = %v", r)
	}
	lines := h.storedLines("wordy", r.GetId())
	// 1..9 and 10..54 make 99 bytes; "55" would make 101. The second
	// attempt has the one byte left: "1", then its truncation line.
	if len(lines) != 54+1+2 {
		t.Fatalf("%d lines stored", len(lines))
	}
	if lines[53].Text != "54" || lines[54].Stream != "slipway" || !strings.Contains(lines[54].Text, "46 more lines (93 bytes)") {
		t.Fatalf("first attempt ends %+v, %+v", lines[53], lines[54])
	}
	if second := lines[55:]; second[0].Text != "1" || second[0].Container == lines[54].Container ||
		second[1].Stream != "slipway" || !strings.Contains(second[1].Text, "99 more lines (191 bytes)") {
		t.Fatalf("second attempt = %+v", second)
	}
}

// TestLongLinesAreSplit: a line longer than runtime.MaxLineBytes is
// stored as pieces of at most that many bytes, none of it dropped.
func TestLongLinesAreSplit(t *testing.T) {
	h := newHarness(t)
	h.manual("wide", `head -c 150000 /dev/zero | tr '\0' x; echo; echo after`)
	r := h.run("wide", nil)
	r = h.waitRun("wide", r.GetId(), 30*time.Second, concluded)
	lines := h.storedLines("wide", r.GetId())
	var sizes []int
	total := 0
	for _, l := range lines {
		sizes = append(sizes, len(l.Text))
		total += len(l.Text)
	}
	if len(lines) != 4 || lines[0].Text != strings.Repeat("x", runtime.MaxLineBytes) || total != 150000+len("after") || lines[3].Text != "after" {
		t.Fatalf("stored line sizes %v (total %d), want the 150000 bytes in pieces of at most %d, then \"after\"", sizes, total, runtime.MaxLineBytes)
	}
}

// slowStore is the real store behind a slow link: each append takes
// delay, as on a busy PostgreSQL across a network.
type slowStore struct {
	jobs.Store
	delay time.Duration
}

func (s slowStore) AppendLogs(ctx context.Context, lines []jobs.LogLine) ([]jobs.LogLine, error) {
	time.Sleep(s.delay)
	return s.Store.AppendLogs(ctx, lines)
}

// TestRunConcludesAfterItsLogsAreStored: however long storing the lines
// takes after the workload exited, the run concludes only once they are
// all stored (it used to be given 10 s, then cut off).
func TestRunConcludesAfterItsLogsAreStored(t *testing.T) {
	const n = 6000
	h := newHarness(t, func(o *jobs.Options) { o.Store = slowStore{o.Store, 600 * time.Millisecond} })
	h.manual("slow-store", fmt.Sprintf("seq 1 %d", n))
	r := h.run("slow-store", nil)
	r = h.waitRun("slow-store", r.GetId(), 90*time.Second, concluded)
	lines := h.storedLines("slow-store", r.GetId())
	if r.GetStatus() != "SUCCESS" || len(lines) != n || lines[n-1].Text != strconv.Itoa(n) {
		t.Fatalf("run %v concluded with %d lines stored, want %d", r.GetStatus(), len(lines), n)
	}
}

// TestLogCapAcrossRestart: a replica restarting while a run is past its
// cap neither stores more lines nor a second truncation line: the one
// line counts everything dropped.
func TestLogCapAcrossRestart(t *testing.T) {
	h := newHarness(t, func(o *jobs.Options) { o.LogLines = 3 })
	h.manual("restarted", "seq 1 10; sleep 2; seq 11 20")
	r := h.run("restarted", nil)
	waitFor(t, 10*time.Second, "the first lines", func() bool { return len(h.storedLines("restarted", r.GetId())) == 3 })
	h.stop()
	h.start("replica-1")
	r = h.waitRun("restarted", r.GetId(), 20*time.Second, concluded)
	lines := h.storedLines("restarted", r.GetId())
	if len(lines) != 4 || lines[2].Text != "3" || lines[3].Stream != "slipway" || !strings.Contains(lines[3].Text, "17 more lines (28 bytes)") {
		t.Fatalf("stored across the restart: %+v", lines)
	}
}

// TestLargeLogReads: 600 lines of 20 KB (12 MB) reach a live tail whole,
// though one stored batch is far over NATS' 1 MiB payload limit, and read
// back in pages under gRPC's 4 MiB message limit (they came back as
// ResourceExhausted, a quota error to REST clients); reading on from the
// last line's time, forward or backward, gives every line once.
func TestLargeLogReads(t *testing.T) {
	const n = 600
	// A slow store makes the pump store (and announce) what piled up
	// meanwhile: batches of 4 MiB.
	h := newHarness(t, func(o *jobs.Options) { o.Store = slowStore{o.Store, 200 * time.Millisecond} })
	h.manual("big", `awk 'BEGIN { s = "a"; while (length(s) < 20000) s = s s; s = substr(s, 1, 20000); for (i = 1; i <= 600; i++) print s " " i }'`)
	want := func(i int) string { return strings.Repeat("a", 20000) + " " + strconv.Itoa(i) }

	ctx, cancel := context.WithTimeout(as(adminCred), 60*time.Second)
	defer cancel()
	subs := h.nc.NumSubscriptions()
	stream, err := h.client.TailJobLogs(ctx, &jobsv1.TailJobLogsRequest{ProjectId: projectID, JobId: "big"})
	if err != nil {
		t.Fatal(err)
	}
	// The tail has subscribed (the service shares h.nc): every line will
	// come live, none from the backlog.
	waitFor(t, 10*time.Second, "the tail to subscribe", func() bool { return h.nc.NumSubscriptions() > subs })
	r := h.run("big", nil)
	var live []string
	for len(live) < n {
		resp, err := stream.Recv()
		if err != nil {
			t.Fatalf("the live tail ended after %d lines: %v", len(live), err)
		}
		for _, l := range resp.GetLines() {
			live = append(live, l.GetLog())
		}
	}
	for i, l := range live {
		if l != want(i+1) {
			t.Fatalf("live line %d is %d bytes ending %q", i, len(l), l[max(0, len(l)-5):])
		}
	}
	h.waitRun("big", r.GetId(), 30*time.Second, concluded)

	// Forward, from startTime just after the last line read.
	var got []string
	req := &jobsv1.GetJobLogsRequest{ProjectId: projectID, JobId: "big", Direction: "forward"}
	for pages := 0; len(got) < n; pages++ {
		resp, err := h.client.GetJobLogs(as(adminCred), req)
		if err != nil {
			t.Fatalf("GetJobLogs after %d lines: %v", len(got), err)
		}
		lines := resp.GetLines()
		if len(lines) == 0 || pages > n {
			t.Fatalf("reading forward stopped at %d lines", len(got))
		}
		for _, l := range lines {
			got = append(got, l.GetLog())
		}
		req.StartTime = timestamppb.New(lines[len(lines)-1].GetTs().AsTime().Add(time.Microsecond))
	}
	// Backward, from endTime at the last (oldest) line read.
	var back []string
	req = &jobsv1.GetJobLogsRequest{ProjectId: projectID, JobId: "big"}
	for pages := 0; len(back) < n; pages++ {
		resp, err := h.client.GetJobLogs(as(adminCred), req)
		if err != nil {
			t.Fatalf("GetJobLogs backward after %d lines: %v", len(back), err)
		}
		lines := resp.GetLines()
		if len(lines) == 0 || pages > n {
			t.Fatalf("reading backward stopped at %d lines", len(back))
		}
		for _, l := range lines {
			back = append(back, l.GetLog())
		}
		req.EndTime = lines[len(lines)-1].GetTs()
	}
	slices.Reverse(back)
	for i := range n {
		if got[i] != want(i+1) || back[i] != want(i+1) {
			t.Fatalf("line %d read forward ends %q, backward %q", i, got[i][len(got[i])-4:], back[i][len(back[i])-4:])
		}
	}
	if len(got) != n || len(back) != n {
		t.Fatalf("read %d lines forward, %d backward, want %d", len(got), len(back), n)
	}
}
