package builds

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/slipwayhq/slipway/pkg/apierr"
	"github.com/slipwayhq/slipway/pkg/events"
	"github.com/slipwayhq/slipway/pkg/paging"
	"github.com/slipwayhq/slipway/pkg/secret"
	"github.com/slipwayhq/slipway/pkg/sqldb"
)

// SQLStore is the Store on PostgreSQL or SQLite.
type SQLStore struct {
	db *sqldb.DB
	// box seals build overrides and webhook secrets at rest.
	box *secret.Box
	// committed wakes the outbox relay after a commit with events.
	committed func()
}

var _ Store = (*SQLStore)(nil)

// NewSQLStore returns a store on db, whose schema must be migrated
// (migrations.Set and events.Migrations), sealing secrets with box.
func NewSQLStore(db *sqldb.DB, box *secret.Box, committed func()) *SQLStore {
	if box == nil {
		panic("builds: NewSQLStore needs a secret.Box")
	}
	return &SQLStore{db: db, box: box, committed: committed}
}

type rowScanner interface{ Scan(...any) error }

const buildColumns = `team_id, project_id, kind, service_id, id, branch, pull_request, sha, status, message, trigger_kind,
	overrides, artifact, removed, owner, abort_requested, created_at, started_at, concluded_at`

func (s *SQLStore) scanBuild(row rowScanner) (Build, error) {
	var b Build
	var sealed []byte
	var artifact string
	var created, started, concluded int64
	if err := row.Scan(&b.TeamID, &b.ProjectID, &b.Kind, &b.ServiceID, &b.ID, &b.Branch, &b.PullRequest, &b.SHA, &b.Status, &b.Message,
		&b.Trigger, &sealed, &artifact, &b.Removed, &b.Owner, &b.AbortRequested, &created, &started, &concluded); err != nil {
		return Build{}, err
	}
	plain, err := s.box.Open(sealed)
	if err != nil {
		return Build{}, fmt.Errorf("builds: build %s overrides: %w", b.ID, err)
	}
	if err := json.Unmarshal(plain, &b.Overrides); err != nil {
		return Build{}, fmt.Errorf("builds: build %s overrides: %w", b.ID, err)
	}
	if err := json.Unmarshal([]byte(artifact), &b.Artifact); err != nil {
		return Build{}, fmt.Errorf("builds: build %s artifact: %w", b.ID, err)
	}
	b.CreatedAt, b.StartedAt, b.ConcludedAt = sqldb.FromMicros(created), sqldb.FromMicros(started), sqldb.FromMicros(concluded)
	return b, nil
}

func collect(rows sqldb.Rows, scan func(rowScanner) (Build, error)) ([]Build, error) {
	defer rows.Close()
	var out []Build
	for rows.Next() {
		b, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, rows.Err()
}

// events returns the event b's status announces, if any.
func statusEvents(b Build) ([]events.Event, error) {
	verb := verbOf(b.Status)
	if verb == "" {
		return nil, nil
	}
	ev, err := buildEvent(b, verb)
	if err != nil {
		return nil, err
	}
	return []events.Event{ev}, nil
}

// CreateBuild implements Store.
func (s *SQLStore) CreateBuild(ctx context.Context, b Build) (Build, error) {
	b.Status, b.Kind = StatusQueued, ownerKind(b.Kind)
	plain, err := json.Marshal(b.Overrides)
	if err != nil {
		return Build{}, err
	}
	evs, err := statusEvents(b)
	if err != nil {
		return Build{}, err
	}
	err = events.Write(ctx, s.db, s.committed, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO builds (`+buildColumns+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, '{}', $13, '', $14, $15, 0, 0)`,
			b.TeamID, b.ProjectID, b.Kind, b.ServiceID, b.ID, b.Branch, b.PullRequest, b.SHA, b.Status, b.Message, b.Trigger,
			s.box.Seal(plain), false, false, sqldb.Micros(b.CreatedAt))
		return err
	}, func() []events.Event { return evs })
	if err != nil {
		return Build{}, sqldb.AlreadyExistsIfUnique(err)
	}
	return b, nil
}

// GetBuild implements Store.
func (s *SQLStore) GetBuild(ctx context.Context, k ServiceKey, id string) (Build, error) {
	b, err := s.scanBuild(s.db.QueryRow(ctx, `SELECT `+buildColumns+` FROM builds
		WHERE team_id = $1 AND project_id = $2 AND kind = $3 AND service_id = $4 AND id = $5`, k.TeamID, k.ProjectID, k.OwnerKind(), k.ServiceID, id))
	if err != nil {
		return Build{}, sqldb.NotFoundIfNoRows(err)
	}
	return b, nil
}

// ListBuilds implements Store. Ids grow with time (newID), so newest
// first is by id, descending, and a cursor is the last id of a page.
func (s *SQLStore) ListBuilds(ctx context.Context, k ServiceKey, page paging.Page) ([]Build, bool, int, error) {
	const from = `builds WHERE team_id = $1 AND project_id = $2 AND kind = $3 AND service_id = $4`
	total, err := paging.Count(ctx, s.db, from, k.TeamID, k.ProjectID, k.OwnerKind(), k.ServiceID)
	if err != nil {
		return nil, false, 0, err
	}
	rows, err := s.db.Query(ctx, `SELECT `+buildColumns+` FROM `+from+` AND ($5 = '' OR id < $5)
		ORDER BY id DESC LIMIT $6 OFFSET $7`, k.TeamID, k.ProjectID, k.OwnerKind(), k.ServiceID, page.After, page.Limit+1, page.SkipRows())
	if err != nil {
		return nil, false, 0, err
	}
	list, more, err := paging.Collect(rows, page.Limit, func() (Build, error) { return s.scanBuild(rows) })
	return list, more, total, err
}

// Claim implements Store. The conditional update makes two replicas
// claiming at once take different builds. A lost race is retried with the
// next oldest, as long as any is queued: every loss is another replica's
// claim, so this ends, and "none" is only answered when none is queued
// (a replica told "none" waits for its next tick).
func (s *SQLStore) Claim(ctx context.Context, owner string, at time.Time) (Build, bool, error) {
	for {
		if err := ctx.Err(); err != nil {
			return Build{}, false, err
		}
		var id string
		err := s.db.QueryRow(ctx, `SELECT id FROM builds WHERE status = $1 ORDER BY created_at, id LIMIT 1`, StatusQueued).Scan(&id)
		if errors.Is(err, sql.ErrNoRows) {
			return Build{}, false, nil
		}
		if err != nil {
			return Build{}, false, err
		}
		var out Build
		err = s.db.InTx(ctx, func(tx *sql.Tx) error {
			res, err := tx.ExecContext(ctx, `UPDATE builds SET status = $1, owner = $2, started_at = $3 WHERE id = $4 AND status = $5`,
				StatusCloning, owner, sqldb.Micros(at), id, StatusQueued)
			if err != nil {
				return err
			}
			if n, err := res.RowsAffected(); err != nil || n == 0 {
				if err == nil {
					err = sqldb.ErrContended
				}
				return err
			}
			b, err := s.scanBuild(tx.QueryRowContext(ctx, `SELECT `+buildColumns+` FROM builds WHERE id = $1`, id))
			if err != nil {
				return err
			}
			evs, err := statusEvents(b)
			if err != nil {
				return err
			}
			out = b
			return events.Enqueue(ctx, tx, evs...)
		})
		if errors.Is(err, sqldb.ErrContended) {
			continue // another replica took it: try the next
		}
		if err != nil {
			return Build{}, false, err
		}
		if s.committed != nil {
			s.committed()
		}
		return out, true, nil
	}
}

// Transition implements Store.
func (s *SQLStore) Transition(ctx context.Context, b Build, t Transition) (Build, error) {
	var out Build
	var changed bool
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		cur, err := s.scanBuild(tx.QueryRowContext(ctx, `SELECT `+buildColumns+` FROM builds
			WHERE team_id = $1 AND project_id = $2 AND kind = $3 AND service_id = $4 AND id = $5`, b.TeamID, b.ProjectID, ownerKind(b.Kind), b.ServiceID, b.ID))
		if err != nil {
			return sqldb.NotFoundIfNoRows(err)
		}
		if Concluded(cur.Status) {
			return ErrConflict
		}
		changed = cur.Status != t.Status
		from := cur.Status
		cur.Status, cur.Message = t.Status, t.Message
		if t.SHA != "" {
			cur.SHA = t.SHA
		}
		if t.Artifact.Image != "" || t.Artifact.Path != "" {
			cur.Artifact = t.Artifact
		}
		if Concluded(t.Status) {
			cur.ConcludedAt = t.At.UTC()
		}
		artifact, err := json.Marshal(cur.Artifact)
		if err != nil {
			return err
		}
		// Only if it is still as read: on PostgreSQL it may have been
		// deleted (DeleteService) or changed since.
		res, err := tx.ExecContext(ctx, `UPDATE builds SET status = $1, message = $2, sha = $3, artifact = $4, concluded_at = $5
			WHERE id = $6 AND status = $7`, cur.Status, cur.Message, cur.SHA, string(artifact), sqldb.Micros(cur.ConcludedAt), cur.ID, from)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return ErrConflict
		}
		out = cur
		if !changed {
			return nil // a step repeated or a message updated: nothing new to announce
		}
		evs, err := statusEvents(cur)
		if err != nil {
			return err
		}
		return events.Enqueue(ctx, tx, evs...)
	})
	if err != nil {
		return Build{}, err
	}
	if s.committed != nil && changed && verbOf(out.Status) != "" {
		s.committed()
	}
	return out, nil
}

// RequestAbort implements Store.
func (s *SQLStore) RequestAbort(ctx context.Context, k ServiceKey, id string, at time.Time) (Build, error) {
	var out Build
	var wake bool
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		cur, err := s.scanBuild(tx.QueryRowContext(ctx, `SELECT `+buildColumns+` FROM builds
			WHERE team_id = $1 AND project_id = $2 AND kind = $3 AND service_id = $4 AND id = $5`, k.TeamID, k.ProjectID, k.OwnerKind(), k.ServiceID, id))
		if err != nil {
			return sqldb.NotFoundIfNoRows(err)
		}
		if Concluded(cur.Status) {
			return ErrConflict
		}
		if cur.Status == StatusQueued {
			// Only while it is still QUEUED: a replica may have claimed it
			// since it was read (PostgreSQL), and must then be asked to
			// stop it like any running build, not find it ABORTED while
			// it builds.
			res, err := tx.ExecContext(ctx, `UPDATE builds SET status = $1, message = $2, concluded_at = $3 WHERE id = $4 AND status = $5`,
				StatusAborted, "Aborted before it started", sqldb.Micros(at.UTC()), id, StatusQueued)
			if err != nil {
				return err
			}
			if n, err := res.RowsAffected(); err != nil {
				return err
			} else if n == 0 {
				if cur, err = s.scanBuild(tx.QueryRowContext(ctx, `SELECT `+buildColumns+` FROM builds WHERE id = $1`, id)); err != nil {
					return sqldb.NotFoundIfNoRows(err)
				}
				if Concluded(cur.Status) {
					return ErrConflict
				}
			}
		}
		if cur.Status != StatusQueued {
			cur.AbortRequested = true
			out = cur
			_, err := tx.ExecContext(ctx, `UPDATE builds SET abort_requested = $1 WHERE id = $2`, true, id)
			return err
		}
		cur.Status, cur.Message, cur.ConcludedAt = StatusAborted, "Aborted before it started", at.UTC()
		evs, err := statusEvents(cur)
		if err != nil {
			return err
		}
		out, wake = cur, true
		return events.Enqueue(ctx, tx, evs...)
	})
	if err != nil {
		return Build{}, err
	}
	if wake && s.committed != nil {
		s.committed()
	}
	return out, nil
}

// Running implements Store.
func (s *SQLStore) Running(ctx context.Context, owner string) ([]Build, error) {
	rows, err := s.db.Query(ctx, `SELECT `+buildColumns+` FROM builds
		WHERE status IN ($1, $2, $3) AND ($4 = '' OR owner = $4) ORDER BY id`,
		StatusCloning, StatusBuilding, StatusUploading, owner)
	if err != nil {
		return nil, err
	}
	return collect(rows, s.scanBuild)
}

// Expired implements Store. The builds kept are the newest keep that
// still have an artifact (a success without one keeps nothing deployable).
func (s *SQLStore) Expired(ctx context.Context, keep int) ([]Build, error) {
	rows, err := s.db.Query(ctx, `SELECT `+buildColumns+` FROM builds b
		WHERE status = $1 AND removed = $2 AND artifact <> '{}'
		AND (SELECT COUNT(*) FROM builds n WHERE n.team_id = b.team_id AND n.project_id = b.project_id
			AND n.kind = b.kind AND n.service_id = b.service_id AND n.status = $1 AND n.removed = $2 AND n.artifact <> '{}' AND n.id > b.id) >= $3
		ORDER BY id`, StatusSuccess, false, keep)
	if err != nil {
		return nil, err
	}
	return collect(rows, s.scanBuild)
}

// RemoveArtifact implements Store. Only the call that marks the artifact
// removed announces it: two replicas' retention runs may both remove it.
func (s *SQLStore) RemoveArtifact(ctx context.Context, b Build) error {
	ev, err := buildEvent(b, VerbDeleted)
	if err != nil {
		return err
	}
	var removed bool
	return events.Write(ctx, s.db, s.committed, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE builds SET removed = $1 WHERE id = $2 AND removed = $3`, true, b.ID, false)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		removed = n > 0
		return err
	}, func() []events.Event {
		if !removed {
			return nil
		}
		return []events.Event{ev}
	})
}

// DeleteService implements Store. The builds returned are those the
// DELETE itself removed (RETURNING), not read before it: a build that
// succeeds meanwhile (PostgreSQL) is then either returned with its
// artifact or refused its success (Transition finds it gone).
func (s *SQLStore) DeleteService(ctx context.Context, k ServiceKey) ([]Build, error) {
	var gone []Build
	key := []any{k.TeamID, k.ProjectID, k.OwnerKind(), k.ServiceID}
	err := events.Write(ctx, s.db, s.committed, func(tx *sql.Tx) error {
		for _, q := range []string{
			`DELETE FROM build_log_counts WHERE build_id IN (SELECT id FROM builds WHERE team_id = $1 AND project_id = $2 AND kind = $3 AND service_id = $4)`,
			`DELETE FROM build_logs WHERE team_id = $1 AND project_id = $2 AND kind = $3 AND service_id = $4`,
		} {
			if _, err := tx.ExecContext(ctx, q, key...); err != nil {
				return err
			}
		}
		rows, err := tx.QueryContext(ctx, `DELETE FROM builds WHERE team_id = $1 AND project_id = $2 AND kind = $3 AND service_id = $4
			RETURNING `+buildColumns, key...)
		if err != nil {
			return err
		}
		list, err := collect(rows, s.scanBuild)
		if err != nil {
			return err
		}
		for _, b := range list {
			if !b.Removed && (b.Artifact.Image != "" || b.Artifact.Path != "") {
				gone = append(gone, b)
			}
		}
		for _, q := range []string{
			`DELETE FROM build_deliveries WHERE webhook_id IN (SELECT id FROM build_webhooks WHERE team_id = $1 AND project_id = $2 AND kind = $3 AND service_id = $4)`,
			`DELETE FROM build_webhooks WHERE team_id = $1 AND project_id = $2 AND kind = $3 AND service_id = $4`,
			`DELETE FROM build_poll_heads WHERE team_id = $1 AND project_id = $2 AND kind = $3 AND service_id = $4`,
		} {
			if _, err := tx.ExecContext(ctx, q, key...); err != nil {
				return err
			}
		}
		return nil
	}, func() []events.Event {
		var evs []events.Event
		for _, b := range gone {
			if ev, err := buildEvent(b, VerbDeleted); err == nil {
				evs = append(evs, ev)
			}
		}
		return evs
	})
	return gone, err
}

// ProjectServices implements Store.
func (s *SQLStore) ProjectServices(ctx context.Context, team, project string) ([]ServiceKey, error) {
	rows, err := s.db.Query(ctx, `SELECT kind, service_id FROM builds WHERE team_id = $1 AND project_id = $2
		UNION SELECT kind, service_id FROM build_webhooks WHERE team_id = $1 AND project_id = $2
		UNION SELECT kind, service_id FROM build_poll_heads WHERE team_id = $1 AND project_id = $2`, team, project)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []ServiceKey
	for rows.Next() {
		k := ServiceKey{TeamID: team, ProjectID: project}
		if err := rows.Scan(&k.Kind, &k.ServiceID); err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	return out, rows.Err()
}

// AppendLogs implements Store. A build's writer may flush two batches at
// once: the count is created if missing without failing on a concurrent
// creation, and counted up first, which holds its row until the commit,
// so concurrent appends take their room one after the other.
func (s *SQLStore) AppendLogs(ctx context.Context, b Build, lines []LogLine, maxLines int) ([]LogLine, error) {
	var stored []LogLine
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO build_log_counts (build_id, lines) VALUES ($1, 0) ON CONFLICT (build_id) DO NOTHING`, b.ID); err != nil {
			return err
		}
		var count int64
		if err := tx.QueryRowContext(ctx, `UPDATE build_log_counts SET lines = lines + $1 WHERE build_id = $2 RETURNING lines`,
			len(lines), b.ID).Scan(&count); err != nil {
			return err
		}
		count -= int64(len(lines)) // the lines before these
		room := int64(maxLines) - count
		stmt, err := tx.PrepareContext(ctx, `INSERT INTO build_logs (team_id, project_id, kind, service_id, build_id, ts, stream, text)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING seq`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for _, l := range lines {
			if room <= 0 {
				break
			}
			room--
			l.TeamID, l.ProjectID, l.Kind, l.ServiceID, l.BuildID = b.TeamID, b.ProjectID, ownerKind(b.Kind), b.ServiceID, b.ID
			if err := stmt.QueryRowContext(ctx, l.TeamID, l.ProjectID, l.Kind, l.ServiceID, l.BuildID, sqldb.Micros(l.Time), l.Stream, l.Text).Scan(&l.Seq); err != nil {
				return err
			}
			stored = append(stored, l)
		}
		return nil
	})
	return stored, err
}

// ReadLogs implements Store.
func (s *SQLStore) ReadLogs(ctx context.Context, q LogQuery) ([]LogLine, error) {
	// The casts type $5 and $6 as ts's BIGINT: PostgreSQL otherwise takes
	// them for int4 from "= 0" and refuses any time in microseconds.
	cond := `team_id = $1 AND project_id = $2 AND kind = $3 AND service_id = $4 AND ($5 = '' OR build_id = $5)
		AND (CAST($6 AS BIGINT) = 0 OR ts >= $6) AND (CAST($7 AS BIGINT) = 0 OR ts < $7)`
	args := []any{q.TeamID, q.ProjectID, ownerKind(q.Kind), q.ServiceID, q.BuildID, sqldb.Micros(q.Start), sqldb.Micros(q.End)}
	order := `ts, seq`
	if !q.AfterTime.IsZero() {
		if q.Backward {
			cond += ` AND (ts < $8 OR (ts = $8 AND seq < $9))`
		} else {
			cond += ` AND (ts > $8 OR (ts = $8 AND seq > $9))`
		}
		args = append(args, sqldb.Micros(q.AfterTime), q.AfterSeq)
	}
	if q.Backward {
		order = `ts DESC, seq DESC`
	}
	args = append(args, q.Limit)
	rows, err := s.db.Query(ctx, `SELECT team_id, project_id, kind, service_id, build_id, seq, ts, stream, text FROM build_logs
		WHERE `+cond+` ORDER BY `+order+fmt.Sprintf(` LIMIT $%d`, len(args)), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []LogLine
	for rows.Next() {
		var l LogLine
		var ts int64
		if err := rows.Scan(&l.TeamID, &l.ProjectID, &l.Kind, &l.ServiceID, &l.BuildID, &l.Seq, &ts, &l.Stream, &l.Text); err != nil {
			return nil, err
		}
		l.Time = sqldb.FromMicros(ts)
		out = append(out, l)
	}
	return out, rows.Err()
}

// Webhook implements Store.
func (s *SQLStore) Webhook(ctx context.Context, k ServiceKey, newID, newSecret string) (Webhook, error) {
	w, err := s.webhook(ctx, `team_id = $1 AND project_id = $2 AND kind = $3 AND service_id = $4`, k.TeamID, k.ProjectID, k.OwnerKind(), k.ServiceID)
	if !errors.Is(err, ErrNotFound) {
		return w, err
	}
	_, err = s.db.ExecContext(ctx, `INSERT INTO build_webhooks (team_id, project_id, kind, service_id, id, secret) VALUES ($1, $2, $3, $4, $5, $6)`,
		k.TeamID, k.ProjectID, k.OwnerKind(), k.ServiceID, newID, s.box.Seal([]byte(newSecret)))
	if err != nil && !errors.Is(sqldb.AlreadyExistsIfUnique(err), apierr.ErrAlreadyExists) {
		return Webhook{}, err
	}
	// A concurrent first call may have won: read what is stored.
	return s.webhook(ctx, `team_id = $1 AND project_id = $2 AND kind = $3 AND service_id = $4`, k.TeamID, k.ProjectID, k.OwnerKind(), k.ServiceID)
}

// RotateWebhook implements Store.
func (s *SQLStore) RotateWebhook(ctx context.Context, k ServiceKey, newID, newSecret string) (Webhook, error) {
	if _, err := s.Webhook(ctx, k, newID, newSecret); err != nil {
		return Webhook{}, err
	}
	if _, err := s.db.ExecContext(ctx, `UPDATE build_webhooks SET secret = $1 WHERE team_id = $2 AND project_id = $3 AND kind = $4 AND service_id = $5`,
		s.box.Seal([]byte(newSecret)), k.TeamID, k.ProjectID, k.OwnerKind(), k.ServiceID); err != nil {
		return Webhook{}, err
	}
	return s.webhook(ctx, `team_id = $1 AND project_id = $2 AND kind = $3 AND service_id = $4`, k.TeamID, k.ProjectID, k.OwnerKind(), k.ServiceID)
}

// WebhookByID implements Store.
func (s *SQLStore) WebhookByID(ctx context.Context, id string) (Webhook, error) {
	return s.webhook(ctx, `id = $1`, id)
}

func (s *SQLStore) webhook(ctx context.Context, where string, args ...any) (Webhook, error) {
	var w Webhook
	var sealed []byte
	err := s.db.QueryRow(ctx, `SELECT team_id, project_id, kind, service_id, id, secret FROM build_webhooks WHERE `+where, args...).
		Scan(&w.TeamID, &w.ProjectID, &w.Kind, &w.ServiceID, &w.ID, &sealed)
	if err != nil {
		return Webhook{}, sqldb.NotFoundIfNoRows(err)
	}
	plain, err := s.box.Open(sealed)
	if err != nil {
		return Webhook{}, fmt.Errorf("builds: webhook secret: %w", err)
	}
	w.Secret = string(plain)
	return w, nil
}

// SeeDelivery implements Store.
func (s *SQLStore) SeeDelivery(ctx context.Context, webhookID, deliveryID string, at, before time.Time) (bool, error) {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM build_deliveries WHERE seen_at < $1`, sqldb.Micros(before)); err != nil {
		return false, err
	}
	_, err := s.db.ExecContext(ctx, `INSERT INTO build_deliveries (webhook_id, delivery_id, seen_at) VALUES ($1, $2, $3)`,
		webhookID, deliveryID, sqldb.Micros(at))
	if errors.Is(sqldb.AlreadyExistsIfUnique(err), apierr.ErrAlreadyExists) {
		return false, nil
	}
	return err == nil, err
}

// ForgetDelivery implements Store.
func (s *SQLStore) ForgetDelivery(ctx context.Context, webhookID, deliveryID string) error {
	_, err := s.db.ExecContext(ctx, `DELETE FROM build_deliveries WHERE webhook_id = $1 AND delivery_id = $2`, webhookID, deliveryID)
	return err
}

// PollState implements Store.
func (s *SQLStore) PollState(ctx context.Context, k ServiceKey) (map[string]string, error) {
	var raw string
	err := s.db.QueryRow(ctx, `SELECT heads FROM build_poll_heads WHERE team_id = $1 AND project_id = $2 AND kind = $3 AND service_id = $4`,
		k.TeamID, k.ProjectID, k.OwnerKind(), k.ServiceID).Scan(&raw)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	heads := map[string]string{}
	return heads, json.Unmarshal([]byte(raw), &heads)
}

// SetPollState implements Store. An upsert: pollers of two replicas may
// record a service's first heads at once.
func (s *SQLStore) SetPollState(ctx context.Context, k ServiceKey, heads map[string]string) error {
	raw, err := json.Marshal(heads)
	if err != nil {
		return err
	}
	_, err = s.db.ExecContext(ctx, `INSERT INTO build_poll_heads (team_id, project_id, kind, service_id, heads) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (team_id, project_id, kind, service_id) DO UPDATE SET heads = excluded.heads`,
		k.TeamID, k.ProjectID, k.OwnerKind(), k.ServiceID, string(raw))
	return err
}

// TakeLease implements Store. One conditional upsert, atomic on SQLite
// and PostgreSQL alike: the insert makes the first holder; on conflict
// the row changes only for its own holder or past its time, and a row
// left unchanged counts no affected row on either engine.
func (s *SQLStore) TakeLease(ctx context.Context, name, owner string, now, until time.Time) (bool, error) {
	res, err := s.db.ExecContext(ctx, `INSERT INTO build_leases (name, owner, until) VALUES ($1, $2, $3)
		ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, until = excluded.until
		WHERE build_leases.owner = excluded.owner OR build_leases.until <= $4`,
		name, owner, sqldb.Micros(until), sqldb.Micros(now))
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, err
	}
	return n > 0, nil
}

// AddOrphan implements Store.
func (s *SQLStore) AddOrphan(ctx context.Context, o Orphan) error {
	artifact, err := json.Marshal(o.Artifact)
	if err != nil {
		return err
	}
	_, err = s.db.ExecContext(ctx, `INSERT INTO build_orphans (build_id, artifact, since) VALUES ($1, $2, $3)
		ON CONFLICT (build_id) DO NOTHING`, o.BuildID, string(artifact), sqldb.Micros(o.Since))
	return err
}

// Orphans implements Store.
func (s *SQLStore) Orphans(ctx context.Context) ([]Orphan, error) {
	rows, err := s.db.Query(ctx, `SELECT build_id, artifact, since FROM build_orphans ORDER BY since, build_id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Orphan
	for rows.Next() {
		var o Orphan
		var artifact string
		var since int64
		if err := rows.Scan(&o.BuildID, &artifact, &since); err != nil {
			return nil, err
		}
		if err := json.Unmarshal([]byte(artifact), &o.Artifact); err != nil {
			return nil, fmt.Errorf("builds: orphan %s: %w", o.BuildID, err)
		}
		o.Since = sqldb.FromMicros(since)
		out = append(out, o)
	}
	return out, rows.Err()
}

// DeleteOrphan implements Store.
func (s *SQLStore) DeleteOrphan(ctx context.Context, buildID string) error {
	_, err := s.db.ExecContext(ctx, `DELETE FROM build_orphans WHERE build_id = $1`, buildID)
	return err
}
