package deployments

import (
	"context"
	"encoding/json"
	"errors"
	"iter"
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/types/known/timestamppb"

	deploymentsv1 "github.com/slipwayhq/slipway/gen/slipway/deployments/v1"
	"github.com/slipwayhq/slipway/pkg/events"
	"github.com/slipwayhq/slipway/pkg/logquery"
	"github.com/slipwayhq/slipway/pkg/runtime"
	"github.com/slipwayhq/slipway/services/deployments/rollout"
)

// Log pipeline bounds: one AppendLogs transaction takes at most
// storeBatchLines lines; a pump stores what it has at least every
// flushEvery.
const (
	storeBatchLines = 500
	flushEvery      = 100 * time.Millisecond
)

// logSubject carries a service's stored lines to live tails, on core
// NATS: a tail that misses a message reads the line from the store
// instead. It is a live subject, outside the event stream (a line may
// hold a secret).
func logSubject(team, project, service string) string {
	return events.LiveSubject("deployments", "logs", team, project, service)
}

// Logs implements rollout.Hooks: it stores a workload's lines under its
// instance's name (the service keeping its newest lines within
// Options.LogLines and Options.LogBytes) and
// publishes them to live tails. The driver replays a workload's output
// from its start, so the pump first skips as many lines as the store says
// were consumed of that workload before (a restart of Slipway adopting a
// running instance stores no line twice, while a restarted instance's new
// workload is stored from its first line).
func (s *Server) Logs(ctx context.Context, serviceID string, inst rollout.Instance, lines iter.Seq2[runtime.LogLine, error]) {
	teamID, project, id, ok := parseControllerID(serviceID)
	if !ok {
		return
	}
	key := serviceID + "/" + inst.WorkloadID
	s.mu.Lock()
	if s.pumps[key] {
		s.mu.Unlock()
		return
	}
	s.pumps[key] = true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.pumps, key)
		s.mu.Unlock()
	}()
	src := LogSource{TeamID: teamID, ProjectID: project, ServiceID: id, Container: inst.Name, Workload: inst.WorkloadID}
	skip, err := s.store.LinesRead(ctx, src)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("reading an instance's log offset", "instance", inst.Name, "error", err)
		}
		return
	}
	p := &pump{s: s, src: src, skip: skip}
	ch := make(chan runtime.LogLine, 256)
	go func() {
		defer close(ch)
		for l, err := range lines {
			if err != nil {
				return
			}
			select {
			case ch <- l:
			case <-ctx.Done():
				return
			}
		}
	}()
	tick := time.NewTicker(flushEvery)
	defer tick.Stop()
	for {
		select {
		case l, ok := <-ch:
			if !ok {
				p.flush(ctx)
				return
			}
			p.add(ctx, l)
		case <-tick.C:
			p.flush(ctx)
		}
	}
}

// pump batches one instance's lines into the store.
type pump struct {
	s    *Server
	src  LogSource
	skip int
	// read counts the lines taken since the last flush (stored or not).
	read  int
	batch []LogLine
	// last is the time of the last stored line: stored times increase
	// strictly within an instance, so a reader continuing from a line's
	// time neither skips nor repeats one.
	last time.Time
}

func (p *pump) add(ctx context.Context, l runtime.LogLine) {
	if p.skip > 0 {
		p.skip--
		return
	}
	p.read++
	text := l.Text
	if !utf8.ValidString(text) {
		text = strings.ToValidUTF8(text, "\uFFFD")
	}
	text = strings.ReplaceAll(text, "\x00", "\uFFFD") // PostgreSQL's text refuses NUL
	at := l.Time.UTC().Truncate(time.Microsecond)
	if !at.After(p.last) {
		at = p.last.Add(time.Microsecond)
	}
	p.last = at
	p.batch = append(p.batch, LogLine{Time: at, Stream: l.Stream, Text: text})
	if len(p.batch) >= storeBatchLines {
		p.flush(ctx)
	}
}

// flush stores the batch (and the count of lines read) and publishes it.
func (p *pump) flush(ctx context.Context) {
	if p.read == 0 {
		return
	}
	// Storing outlives a cancelled pump: these lines were read already.
	keep := LogCap{Lines: p.s.opts.LogLines, Bytes: p.s.opts.LogBytes}
	stored, err := p.s.store.AppendLogs(context.WithoutCancel(ctx), p.src, p.read, keep, p.batch)
	p.batch, p.read = nil, 0
	if errors.Is(err, ErrNotFound) {
		return // the service was deleted; its instances are being stopped
	}
	if err != nil {
		p.s.log.Warn("storing log lines", "instance", p.src.Container, "error", err)
		return
	}
	p.s.publish(p.src, stored)
}

// publish announces stored lines to live tails, in messages under the
// server's payload limit.
func (s *Server) publish(src LogSource, lines []LogLine) {
	if len(lines) == 0 {
		return
	}
	b, err := json.Marshal(lines)
	if err != nil {
		return
	}
	if int64(len(b)) > s.opts.NATS.MaxPayload()-1024 {
		if len(lines) == 1 {
			s.log.Warn("a log line longer than a NATS message: stored, but not shown to live tails", "instance", src.Container)
			return
		}
		s.publish(src, lines[:len(lines)/2])
		s.publish(src, lines[len(lines)/2:])
		return
	}
	if err := s.opts.NATS.Publish(logSubject(src.TeamID, src.ProjectID, src.ServiceID), b); err != nil {
		s.log.Warn("publishing log lines", "instance", src.Container, "error", err)
	}
}

func lineBytes(l LogLine) int { return len(l.Text) + len(l.Container) + logquery.LineOverhead }

func lineOf(l LogLine) *deploymentsv1.LogLine {
	return &deploymentsv1.LogLine{ContainerId: l.Container, Log: l.Text, Ts: timestamppb.New(l.Time), Stream: l.Stream}
}

// read returns up to limit stored lines q and f select.
func (s *Server) read(ctx context.Context, q LogQuery, f logquery.Filter, limit int) ([]LogLine, error) {
	q.Container = f.Container
	return logquery.Read(ctx, limit, f.TextOnly(), func(ctx context.Context, n int, after *LogLine) ([]LogLine, error) {
		q.Limit = n
		if after != nil {
			q.AfterTime, q.AfterSeq = after.Time, after.Seq
		}
		return s.store.ReadLogs(ctx, q)
	}, func(l LogLine) bool { return f.Keep(l.Container, l.Text) }, lineBytes)
}

// GetServiceLogs implements DeploymentsService.
func (s *Server) GetServiceLogs(ctx context.Context, req *deploymentsv1.GetServiceLogsRequest) (*deploymentsv1.GetServiceLogsResponse, error) {
	sv, err := s.service(ctx, req, req.GetServiceId())
	if err != nil {
		return nil, err
	}
	f, err := logquery.NewFilter(req)
	if err != nil {
		return nil, err
	}
	q := LogQuery{TeamID: sv.TeamID, ProjectID: sv.ProjectID, ServiceID: sv.ID, Backward: req.GetDirection() != "forward"}
	if q.Start, q.End, err = logquery.Range(req, s.opts.Clock()); err != nil {
		return nil, err
	}
	lines, err := s.read(ctx, q, f, logquery.RangeLines(req.GetLineLimit()))
	if err != nil {
		return nil, err
	}
	resp := &deploymentsv1.GetServiceLogsResponse{Lines: make([]*deploymentsv1.LogLine, 0, len(lines))}
	for _, l := range lines {
		resp.Lines = append(resp.Lines, lineOf(l))
	}
	return resp, nil
}

// TailServiceLogs implements DeploymentsService: the recent lines first
// (from start_time, or the last line_limit ones), then every new line as
// it is stored, until the client goes away.
func (s *Server) TailServiceLogs(req *deploymentsv1.TailServiceLogsRequest, stream deploymentsv1.DeploymentsService_TailServiceLogsServer) error {
	ctx := stream.Context()
	sv, err := s.service(ctx, req, req.GetServiceId())
	if err != nil {
		return err
	}
	f, err := logquery.NewFilter(req)
	if err != nil {
		return err
	}
	limit := logquery.TailLines(req.GetLineLimit())
	q := LogQuery{TeamID: sv.TeamID, ProjectID: sv.ProjectID, ServiceID: sv.ID}
	q.Start, q.Backward = logquery.TailStart(req.GetStartTime())
	return logquery.Tail(ctx, s.opts.NATS, logSubject(sv.TeamID, sv.ProjectID, sv.ID), q.Backward,
		func(ctx context.Context) ([]LogLine, error) { return s.read(ctx, q, f, limit) },
		func(l LogLine) int64 { return l.Seq },
		func(l LogLine) bool { return f.Keep(l.Container, l.Text) },
		func(lines []LogLine) error { return sendLines(stream, lines) },
		func() error {
			return stream.Send(&deploymentsv1.TailServiceLogsResponse{Lines: []*deploymentsv1.LogLine{}})
		})
}

// sendLines sends lines in messages of at most logquery.MaxPageBytes.
func sendLines(stream deploymentsv1.DeploymentsService_TailServiceLogsServer, lines []LogLine) error {
	return logquery.SendPages(lines, lineBytes, func(page []LogLine) error {
		resp := &deploymentsv1.TailServiceLogsResponse{Lines: make([]*deploymentsv1.LogLine, 0, len(page))}
		for _, l := range page {
			resp.Lines = append(resp.Lines, lineOf(l))
		}
		return stream.Send(resp)
	})
}
