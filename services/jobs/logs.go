package jobs

import (
	"context"

	jobsv1 "github.com/slipwayhq/slipway/gen/slipway/jobs/v1"
	"github.com/slipwayhq/slipway/pkg/events"
	"github.com/slipwayhq/slipway/pkg/logquery"
)

// lineBytes is what l costs against logquery.MaxPageBytes.
func lineBytes(l LogLine) int {
	return len(l.Text) + len(l.Container) + len(l.RunID) + logquery.LineOverhead
}

// logSubject carries a job's stored lines to live tails, on core NATS: a
// tail that misses a message (it was not subscribed yet) reads the line
// from the store instead. It is a live subject, outside the event stream:
// a line may hold a secret value, and the store already keeps it under the
// job's own access rules and retention.
func logSubject(team, project, job string) string {
	return events.LiveSubject("jobs", "logs", team, project, job)
}

// publishLines announces stored lines to live tails, in messages under
// the server's payload limit (1 MiB by default, which one batch of long
// lines exceeds).
func (s *Service) publishLines(r Run, lines []LogLine) {
	// Leave room for the subject and headers within max_payload.
	limit := int(s.opts.NATS.MaxPayload()) - 1024
	if limit <= 0 {
		limit = 64 << 10
	}
	chunks, skipped := encodeChunks(lines, limit)
	if skipped > 0 {
		s.log.Warn("log lines longer than a NATS message: stored, but not shown to live tails", "run", r.ID, "lines", skipped)
	}
	subject := logSubject(r.TeamID, r.ProjectID, r.JobID)
	for _, c := range chunks {
		if err := s.opts.NATS.Publish(subject, c); err != nil {
			s.log.Warn("publishing log lines", "run", r.ID, "error", err)
			return
		}
	}
}

// logQuery is the part of GetJobLogsRequest and TailJobLogsRequest the
// filter uses.
type logQuery interface {
	request
	GetJobId() string
	GetRunId() string
	GetContainerName() string
	GetTextIncludes() string
	GetTextNotIncludes() string
	GetRegexIncludes() string
	GetRegexNotIncludes() string
	GetLineLimit() int32
}

// filter is logquery's filter and a run.
type filter struct {
	logquery.Filter
	run string
}

func newFilter(q logQuery) (filter, error) {
	f, err := logquery.NewFilter(q)
	return filter{Filter: f, run: q.GetRunId()}, err
}

func (f filter) keep(l LogLine) bool {
	return (f.run == "" || l.RunID == f.run) && f.Keep(l.Container, l.Text)
}

// read returns up to limit stored lines q and f select, and no more than
// logquery.MaxPageBytes of them (at least one line).
func (s *Service) read(ctx context.Context, q LogQuery, f filter, limit int) ([]LogLine, error) {
	q.RunID, q.Container = f.run, f.Container
	return logquery.Read(ctx, limit, f.TextOnly(), func(ctx context.Context, n int, after *LogLine) ([]LogLine, error) {
		q.Limit = n
		if after != nil {
			q.AfterTime, q.AfterSeq = after.Time, after.Seq
		}
		return s.store.ReadLogs(ctx, q)
	}, f.keep, lineBytes)
}

// GetJobLogs implements JobsService.
func (s *Service) GetJobLogs(ctx context.Context, req *jobsv1.GetJobLogsRequest) (*jobsv1.GetJobLogsResponse, error) {
	j, err := s.job(ctx, req, req.GetJobId())
	if err != nil {
		return nil, err
	}
	f, err := newFilter(req)
	if err != nil {
		return nil, err
	}
	q := LogQuery{TeamID: j.TeamID, ProjectID: j.ProjectID, JobID: j.ID, Backward: req.GetDirection() != "forward"}
	if q.Start, q.End, err = logquery.Range(req, s.opts.Clock()); err != nil {
		return nil, err
	}
	lines, err := s.read(ctx, q, f, logquery.RangeLines(req.GetLineLimit()))
	if err != nil {
		return nil, err
	}
	resp := &jobsv1.GetJobLogsResponse{Lines: make([]*jobsv1.LogLine, 0, len(lines))}
	for _, l := range lines {
		resp.Lines = append(resp.Lines, lineOf(l))
	}
	return resp, nil
}

// TailJobLogs implements JobsService: the recent lines first (from
// start_time, or the last line_limit ones), then every new line as it is
// stored, until the client goes away.
func (s *Service) TailJobLogs(req *jobsv1.TailJobLogsRequest, stream jobsv1.JobsService_TailJobLogsServer) error {
	ctx := stream.Context()
	j, err := s.job(ctx, req, req.GetJobId())
	if err != nil {
		return err
	}
	f, err := newFilter(req)
	if err != nil {
		return err
	}
	limit := logquery.TailLines(req.GetLineLimit())
	q := LogQuery{TeamID: j.TeamID, ProjectID: j.ProjectID, JobID: j.ID}
	q.Start, q.Backward = logquery.TailStart(req.GetStartTime())
	return logquery.Tail(ctx, s.opts.NATS, logSubject(j.TeamID, j.ProjectID, j.ID), q.Backward,
		func(ctx context.Context) ([]LogLine, error) { return s.read(ctx, q, f, limit) },
		func(l LogLine) int64 { return l.Seq },
		f.keep,
		func(lines []LogLine) error { return sendLines(stream, lines) },
		func() error { return stream.Send(&jobsv1.TailJobLogsResponse{Lines: []*jobsv1.LogLine{}}) })
}

// sendLines sends lines in messages of at most logquery.MaxPageBytes.
func sendLines(stream jobsv1.JobsService_TailJobLogsServer, lines []LogLine) error {
	return logquery.SendPages(lines, lineBytes, func(page []LogLine) error {
		resp := &jobsv1.TailJobLogsResponse{Lines: make([]*jobsv1.LogLine, 0, len(page))}
		for _, l := range page {
			resp.Lines = append(resp.Lines, lineOf(l))
		}
		return stream.Send(resp)
	})
}
