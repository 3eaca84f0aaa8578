package builds

import (
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	buildsv1 "github.com/slipwayhq/slipway/gen/slipway/builds/v1"
	"github.com/slipwayhq/slipway/pkg/apierr"
	"github.com/slipwayhq/slipway/pkg/events"
	"github.com/slipwayhq/slipway/pkg/logquery"
)

// UserError is an engine error whose message a user may read: it says
// why a build failed with no internals and no credentials.
type UserError interface {
	error
	UserMessage() string
}

// userMessage is what a build's failure tells its user: the engine's own
// words, an API error's message, or, for anything else (an internal
// error, logged by the caller), a generic sentence.
func userMessage(err error) string {
	var ue UserError
	if errors.As(err, &ue) {
		return ue.UserMessage()
	}
	if e := apierr.From(err); e != nil && e.Message != "" {
		return e.Message
	}
	if st, ok := status.FromError(err); ok && st.Code() != codes.Internal && st.Code() != codes.Unknown {
		return st.Message()
	}
	return "an internal error stopped the build (the server's log has the details)"
}

// userinfo matches the credentials part of a URL in free text.
var userinfo = regexp.MustCompile(`(?i)([a-z][a-z0-9+.-]*://)[^/@\s]+@`)

// redactURL drops a URL's user information, wherever it appears.
func redactURL(s string) string {
	if u, err := url.Parse(s); err == nil && u.User != nil {
		u.User = nil
		return u.String()
	}
	return userinfo.ReplaceAllString(s, "$1")
}

// logSubject carries a service's (or job's) stored build lines to live
// tails (a live subject: a line may hold a secret).
func logSubject(k ServiceKey) string {
	return events.LiveSubject("builds", "logs", k.TeamID, k.ProjectID, k.OwnerKind(), k.ServiceID)
}

// Log writer bounds: a flush takes at most flushLines lines; lines are
// flushed at least every flushEvery.
const (
	flushLines = 500
	flushEvery = 100 * time.Millisecond
)

// logWriter collects a build's lines, stores them in batches and
// publishes them to live tails.
type logWriter struct {
	s    *Service
	b    Build
	mu   sync.Mutex
	buf  []LogLine
	last time.Time
	stop chan struct{}
	done chan struct{}
}

func newLogWriter(s *Service, b Build) *logWriter {
	w := &logWriter{s: s, b: b, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		t := time.NewTicker(flushEvery)
		defer t.Stop()
		for {
			select {
			case <-w.stop:
				return
			case <-t.C:
				w.flush()
			}
		}
	}()
	return w
}

// line adds a line (split at runtime.MaxLineBytes by the engine; made
// valid UTF-8 without NUL here, which PostgreSQL's text refuses).
func (w *logWriter) line(stream, text string) {
	if !utf8.ValidString(text) {
		text = strings.ToValidUTF8(text, "\uFFFD")
	}
	text = strings.ReplaceAll(text, "\x00", "\uFFFD")
	w.mu.Lock()
	at := time.Now().UTC().Truncate(time.Microsecond)
	if !at.After(w.last) {
		at = w.last.Add(time.Microsecond)
	}
	w.last = at
	w.buf = append(w.buf, LogLine{Time: at, Stream: stream, Text: text})
	full := len(w.buf) >= flushLines
	w.mu.Unlock()
	if full {
		w.flush()
	}
}

// flush stores and publishes the collected lines.
func (w *logWriter) flush() {
	w.mu.Lock()
	batch := w.buf
	w.buf = nil
	w.mu.Unlock()
	if len(batch) == 0 {
		return
	}
	stored, err := w.s.store.AppendLogs(context.Background(), w.b, batch, w.s.opts.LogLines)
	if err != nil {
		w.s.log.Warn("storing build log lines", "build", w.b.ID, "error", err)
		return
	}
	w.s.publish(w.b, stored)
}

func (w *logWriter) close() {
	close(w.stop)
	<-w.done
	w.flush()
}

// publish announces stored lines to live tails, in messages under the
// server's payload limit.
func (s *Service) publish(b Build, lines []LogLine) {
	if len(lines) == 0 {
		return
	}
	data, err := json.Marshal(lines)
	if err != nil {
		return
	}
	if int64(len(data)) > s.opts.NATS.MaxPayload()-1024 {
		if len(lines) == 1 {
			return // stored; too long for a live message
		}
		s.publish(b, lines[:len(lines)/2])
		s.publish(b, lines[len(lines)/2:])
		return
	}
	if err := s.opts.NATS.Publish(logSubject(b.key()), data); err != nil {
		s.log.Warn("publishing build log lines", "build", b.ID, "error", err)
	}
}

func lineBytes(l LogLine) int { return len(l.Text) + len(l.BuildID) + logquery.LineOverhead }

func lineOf(l LogLine) *buildsv1.LogLine {
	return &buildsv1.LogLine{ContainerId: l.BuildID, Log: l.Text, Ts: timestamppb.New(l.Time), Stream: l.Stream}
}

// buildFilter is logquery's filter and a build.
type buildFilter struct {
	logquery.Filter
	build string
}

// logRequest is what GetServiceBuildLogsRequest and
// TailServiceBuildLogsRequest share.
type logRequest interface {
	logquery.Request
	GetBuildId() string
}

func newBuildFilter(q logRequest) (buildFilter, error) {
	f, err := logquery.NewFilter(q)
	if err != nil {
		return buildFilter{}, err
	}
	build := q.GetBuildId()
	if build == "" && f.Container != "" {
		build = f.Container // a build's lines carry its id as their container
	}
	return buildFilter{Filter: f, build: build}, nil
}

func (f buildFilter) keep(l LogLine) bool {
	return (f.build == "" || l.BuildID == f.build) && f.Keep(l.BuildID, l.Text)
}

// read returns up to limit stored lines q and f select.
func (s *Service) read(ctx context.Context, q LogQuery, f buildFilter, limit int) ([]LogLine, error) {
	q.BuildID = f.build
	return logquery.Read(ctx, limit, f.TextOnly(), func(ctx context.Context, n int, after *LogLine) ([]LogLine, error) {
		q.Limit = n
		if after != nil {
			q.AfterTime, q.AfterSeq = after.Time, after.Seq
		}
		return s.store.ReadLogs(ctx, q)
	}, f.keep, lineBytes)
}

// buildLogs serves GetServiceBuildLogs and its job form.
func (s *Service) buildLogs(ctx context.Context, kind string, req *buildsv1.GetServiceBuildLogsRequest) (*buildsv1.GetServiceBuildLogsResponse, error) {
	k, err := s.serviceKey(ctx, kind, req)
	if err != nil {
		return nil, err
	}
	f, err := newBuildFilter(req)
	if err != nil {
		return nil, err
	}
	q := LogQuery{TeamID: k.TeamID, ProjectID: k.ProjectID, Kind: k.Kind, ServiceID: k.ServiceID, Backward: req.GetDirection() != "forward"}
	if q.Start, q.End, err = logquery.Range(req, s.opts.Clock()); err != nil {
		return nil, err
	}
	lines, err := s.read(ctx, q, f, logquery.RangeLines(req.GetLineLimit()))
	if err != nil {
		return nil, err
	}
	resp := &buildsv1.GetServiceBuildLogsResponse{Lines: make([]*buildsv1.LogLine, 0, len(lines))}
	for _, l := range lines {
		resp.Lines = append(resp.Lines, lineOf(l))
	}
	return resp, nil
}

// tailBuildLogs serves TailServiceBuildLogs and its job form: the recent lines, then
// every new line as it is stored, until the client goes away.
func (s *Service) tailBuildLogs(kind string, req *buildsv1.TailServiceBuildLogsRequest, stream buildsv1.BuildsService_TailServiceBuildLogsServer) error {
	ctx := stream.Context()
	k, err := s.serviceKey(ctx, kind, req)
	if err != nil {
		return err
	}
	f, err := newBuildFilter(req)
	if err != nil {
		return err
	}
	limit := logquery.TailLines(req.GetLineLimit())
	q := LogQuery{TeamID: k.TeamID, ProjectID: k.ProjectID, Kind: k.Kind, ServiceID: k.ServiceID}
	q.Start, q.Backward = logquery.TailStart(req.GetStartTime())
	return logquery.Tail(ctx, s.opts.NATS, logSubject(k), q.Backward,
		func(ctx context.Context) ([]LogLine, error) { return s.read(ctx, q, f, limit) },
		func(l LogLine) int64 { return l.Seq },
		f.keep,
		func(lines []LogLine) error { return sendLines(stream, lines) },
		func() error {
			return stream.Send(&buildsv1.TailServiceBuildLogsResponse{Lines: []*buildsv1.LogLine{}})
		})
}

// sendLines sends lines in messages of at most logquery.MaxPageBytes.
func sendLines(stream buildsv1.BuildsService_TailServiceBuildLogsServer, lines []LogLine) error {
	return logquery.SendPages(lines, lineBytes, func(page []LogLine) error {
		resp := &buildsv1.TailServiceBuildLogsResponse{Lines: make([]*buildsv1.LogLine, 0, len(page))}
		for _, l := range page {
			resp.Lines = append(resp.Lines, lineOf(l))
		}
		return stream.Send(resp)
	})
}
