package addons

import (
	"context"

	addonsv1 "github.com/slipwayhq/slipway/gen/slipway/addons/v1"
	"github.com/slipwayhq/slipway/pkg/apierr"
	"github.com/slipwayhq/slipway/pkg/logquery"
)

// logRequest is what every log request (range or tail, of an addon, a
// backup or a restore) has.
type logRequest interface {
	request
	logquery.Request
	logquery.RangeRequest
	GetAddonId() string
	GetLineLimit() int32
	GetDirection() string
}

func lineBytes(l LogLine) int { return len(l.Text) + len(l.Container) + logquery.LineOverhead }

func lineOf(l LogLine) *addonsv1.AddonLogLine {
	return &addonsv1.AddonLogLine{ContainerId: l.Container, Log: l.Text, Ts: ts(l.Time), Stream: l.Stream}
}

// logTarget resolves what a log request names: the addon's own lines, a
// backup's or a restore's (404 when the backup or restore is not the
// addon's).
func (s *Service) logTarget(ctx context.Context, req logRequest, kind LogKind, ref string) (LogQuery, logquery.Filter, error) {
	a, err := s.addon(ctx, req, req.GetAddonId())
	if err != nil {
		return LogQuery{}, logquery.Filter{}, err
	}
	switch kind {
	case LogBackup:
		if _, err := s.store.GetBackup(ctx, a.TeamID, a.ProjectID, a.ID, ref); err != nil {
			return LogQuery{}, logquery.Filter{}, apierr.FromStore(err, "backup", ref)
		}
	case LogRestore:
		if _, err := s.store.GetRestore(ctx, a.TeamID, a.ProjectID, a.ID, ref); err != nil {
			return LogQuery{}, logquery.Filter{}, apierr.FromStore(err, "restore", ref)
		}
	}
	f, err := logquery.NewFilter(req)
	if err != nil {
		return LogQuery{}, logquery.Filter{}, err
	}
	return LogQuery{TeamID: a.TeamID, ProjectID: a.ProjectID, AddonID: a.ID, Kind: kind, Ref: ref, Container: f.Container}, f, nil
}

// read returns up to limit stored lines q and f select.
func (s *Service) read(ctx context.Context, q LogQuery, f logquery.Filter, limit int) ([]LogLine, error) {
	return logquery.Read(ctx, limit, f.TextOnly(), func(ctx context.Context, n int, after *LogLine) ([]LogLine, error) {
		q.Limit = n
		if after != nil {
			q.AfterTime, q.AfterSeq = after.Time, after.Seq
		}
		return s.store.ReadLogs(ctx, q)
	}, func(l LogLine) bool { return f.Keep(l.Container, l.Text) }, lineBytes)
}

// rangeLogs serves a range query.
func (s *Service) rangeLogs(ctx context.Context, req logRequest, kind LogKind, ref string) ([]*addonsv1.AddonLogLine, error) {
	q, f, err := s.logTarget(ctx, req, kind, ref)
	if err != nil {
		return nil, err
	}
	q.Backward = req.GetDirection() != "forward"
	if q.Start, q.End, err = logquery.Range(req, s.opts.Clock()); err != nil {
		return nil, err
	}
	lines, err := s.read(ctx, q, f, logquery.RangeLines(req.GetLineLimit()))
	if err != nil {
		return nil, err
	}
	out := make([]*addonsv1.AddonLogLine, 0, len(lines))
	for _, l := range lines {
		out = append(out, lineOf(l))
	}
	return out, nil
}

// tailLogs serves a live tail: recent lines, then new ones as stored.
func (s *Service) tailLogs(ctx context.Context, req logRequest, kind LogKind, ref string, send func([]*addonsv1.AddonLogLine) error) error {
	q, f, err := s.logTarget(ctx, req, kind, ref)
	if err != nil {
		return err
	}
	limit := logquery.TailLines(req.GetLineLimit())
	q.Start, q.Backward = logquery.TailStart(req.GetStartTime())
	keep := func(l LogLine) bool { return f.Keep(l.Container, l.Text) }
	sendLines := func(lines []LogLine) error {
		return logquery.SendPages(lines, lineBytes, func(page []LogLine) error {
			out := make([]*addonsv1.AddonLogLine, 0, len(page))
			for _, l := range page {
				out = append(out, lineOf(l))
			}
			return send(out)
		})
	}
	return logquery.Tail(ctx, s.opts.NATS, logSubject(q.TeamID, q.ProjectID, q.AddonID, kind, ref), q.Backward,
		func(ctx context.Context) ([]LogLine, error) { return s.read(ctx, q, f, limit) },
		func(l LogLine) int64 { return l.Seq }, keep, sendLines,
		func() error { return send([]*addonsv1.AddonLogLine{}) })
}

// GetAddonLogs implements AddonsService.
func (s *Service) GetAddonLogs(ctx context.Context, req *addonsv1.GetAddonLogsRequest) (*addonsv1.GetAddonLogsResponse, error) {
	lines, err := s.rangeLogs(ctx, req, LogAddon, "")
	return &addonsv1.GetAddonLogsResponse{Lines: lines}, err
}

// TailAddonLogs implements AddonsService.
func (s *Service) TailAddonLogs(req *addonsv1.TailAddonLogsRequest, stream addonsv1.AddonsService_TailAddonLogsServer) error {
	return s.tailLogs(stream.Context(), req, LogAddon, "", func(l []*addonsv1.AddonLogLine) error {
		return stream.Send(&addonsv1.TailAddonLogsResponse{Lines: l})
	})
}

// GetBackupLogs implements AddonsService.
func (s *Service) GetBackupLogs(ctx context.Context, req *addonsv1.GetBackupLogsRequest) (*addonsv1.GetBackupLogsResponse, error) {
	lines, err := s.rangeLogs(ctx, req, LogBackup, req.GetBackupId())
	return &addonsv1.GetBackupLogsResponse{Lines: lines}, err
}

// TailBackupLogs implements AddonsService.
func (s *Service) TailBackupLogs(req *addonsv1.TailBackupLogsRequest, stream addonsv1.AddonsService_TailBackupLogsServer) error {
	return s.tailLogs(stream.Context(), req, LogBackup, req.GetBackupId(), func(l []*addonsv1.AddonLogLine) error {
		return stream.Send(&addonsv1.TailBackupLogsResponse{Lines: l})
	})
}

// GetRestoreLogs implements AddonsService.
func (s *Service) GetRestoreLogs(ctx context.Context, req *addonsv1.GetRestoreLogsRequest) (*addonsv1.GetRestoreLogsResponse, error) {
	lines, err := s.rangeLogs(ctx, req, LogRestore, req.GetRestoreId())
	return &addonsv1.GetRestoreLogsResponse{Lines: lines}, err
}

// TailRestoreLogs implements AddonsService.
func (s *Service) TailRestoreLogs(req *addonsv1.TailRestoreLogsRequest, stream addonsv1.AddonsService_TailRestoreLogsServer) error {
	return s.tailLogs(stream.Context(), req, LogRestore, req.GetRestoreId(), func(l []*addonsv1.AddonLogLine) error {
		return stream.Send(&addonsv1.TailRestoreLogsResponse{Lines: l})
	})
}
