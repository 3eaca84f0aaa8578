package deployments

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"

	"github.com/slipwayhq/slipway/pkg/events"
	"github.com/slipwayhq/slipway/pkg/logquery"
	"github.com/slipwayhq/slipway/pkg/paging"
	"github.com/slipwayhq/slipway/pkg/secret"
	"github.com/slipwayhq/slipway/pkg/sqldb"
)

// SQLStore is the Store on PostgreSQL or SQLite.
type SQLStore struct {
	db *sqldb.DB
	// box seals services' settings and releases at rest.
	box *secret.Box
	// committed is called after a transaction carrying events commits, to
	// wake the outbox relay; may be nil.
	committed func()
}

var _ Store = (*SQLStore)(nil)

// NewSQLStore returns a store on db, whose schema must be migrated
// (migrations.Set and events.Migrations), sealing settings with box.
// committed, when not nil, is called after every commit that enqueued
// events.
func NewSQLStore(db *sqldb.DB, box *secret.Box, committed func()) *SQLStore {
	if box == nil {
		panic("deployments: NewSQLStore needs a secret.Box to seal environments")
	}
	return &SQLStore{db: db, box: box, committed: committed}
}

type rowScanner interface{ Scan(...any) error }

// serviceSpec is the sealed part of a stored service: everything but its
// key, name, kind, times and version.
type serviceSpec struct {
	Description  string     `json:"description,omitempty"`
	Tags         []string   `json:"tags,omitempty"`
	Plan         string     `json:"plan,omitempty"`
	Deployable   Deployable `json:"deployable"`
	StorageMB    int32      `json:"storageMB,omitempty"`
	ShmMB        int32      `json:"shmMB,omitempty"`
	Instances    int        `json:"instances"`
	Paused       bool       `json:"paused,omitempty"`
	Strategy     Strategy   `json:"strategy"`
	GraceSeconds int        `json:"graceSeconds"`
	Restart      int64      `json:"restart,omitempty"`
	Build        Build      `json:"build"`
	Internal     *Internal  `json:"internal,omitempty"`
	ReleaseID    string     `json:"releaseId,omitempty"`
	Releases     int64      `json:"releases,omitempty"`
	Status       Status     `json:"status"`
	SecretsPrint string     `json:"secretsPrint,omitempty"`
}

func (s *SQLStore) seal(v any) ([]byte, error) {
	plain, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return s.box.Seal(plain), nil
}

// open decrypts what seal stored into v. A failure is an error, never an
// empty environment.
func (s *SQLStore) open(sealed []byte, v any) error {
	plain, err := s.box.Open(sealed)
	if err != nil {
		return err
	}
	return json.Unmarshal(plain, v)
}

// ---- services

const serviceColumns = `team_id, project_id, id, name, kind, spec, created_at, updated_at, version`

func (s *SQLStore) scanService(row rowScanner) (Service, error) {
	var sv Service
	var sealed []byte
	var created, updated int64
	if err := row.Scan(&sv.TeamID, &sv.ProjectID, &sv.ID, &sv.Name, &sv.Kind, &sealed, &created, &updated, &sv.Version); err != nil {
		return Service{}, err
	}
	var spec serviceSpec
	if err := s.open(sealed, &spec); err != nil {
		return Service{}, fmt.Errorf("deployments: service %s settings: %w", sv.ID, err)
	}
	sv.Description, sv.Tags, sv.Plan, sv.Deployable = spec.Description, spec.Tags, spec.Plan, normalDeployable(spec.Deployable)
	sv.StorageMB, sv.ShmMB, sv.Instances, sv.Paused = spec.StorageMB, spec.ShmMB, spec.Instances, spec.Paused
	sv.Strategy, sv.GraceSeconds, sv.Restart, sv.Build = spec.Strategy, spec.GraceSeconds, spec.Restart, spec.Build
	sv.ReleaseID, sv.Releases, sv.Status, sv.Internal = spec.ReleaseID, spec.Releases, spec.Status, spec.Internal
	sv.SecretsPrint = spec.SecretsPrint
	sv.Build = normalBuild(sv.Build)
	if len(sv.Tags) == 0 {
		sv.Tags = nil
	}
	sv.Status.At = sv.Status.At.UTC()
	sv.CreatedAt, sv.UpdatedAt = sqldb.FromMicros(created), sqldb.FromMicros(updated)
	return sv, nil
}

// normalDeployable makes empty collections nil, as a round trip through
// JSON does, so that stored and given values compare equal.
func normalDeployable(d Deployable) Deployable {
	if len(d.Ports) == 0 {
		d.Ports = nil
	}
	if len(d.HealthChecks) == 0 {
		d.HealthChecks = nil
	}
	if len(d.Env) == 0 {
		d.Env = nil
	}
	if d.Build != nil && len(d.Build.Command) == 0 {
		b := *d.Build
		b.Command = nil
		d.Build = &b
	}
	return d
}

// normalBuild makes empty maps nil, as normalDeployable does.
func normalBuild(b Build) Build {
	if len(b.Arguments) == 0 {
		b.Arguments = nil
	}
	if len(b.Files) == 0 {
		b.Files = nil
	}
	return b
}

func (s *SQLStore) sealService(sv Service) ([]byte, error) {
	return s.seal(serviceSpec{
		Description: sv.Description, Tags: sv.Tags, Plan: sv.Plan, Deployable: sv.Deployable,
		StorageMB: sv.StorageMB, ShmMB: sv.ShmMB, Instances: sv.Instances, Paused: sv.Paused,
		Strategy: sv.Strategy, GraceSeconds: sv.GraceSeconds, Restart: sv.Restart, Build: sv.Build, Internal: sv.Internal,
		ReleaseID: sv.ReleaseID, Releases: sv.Releases, Status: sv.Status, SecretsPrint: sv.SecretsPrint,
	})
}

// cloneService copies sv deeply enough that mutating the copy's maps and
// slices leaves sv alone.
func cloneService(sv Service) Service {
	sv.Tags = slices.Clone(sv.Tags)
	sv.Deployable = cloneDeployable(sv.Deployable)
	sv.Build.Arguments = maps.Clone(sv.Build.Arguments)
	sv.Build.Files = maps.Clone(sv.Build.Files)
	if sv.Build.Credentials != nil {
		c := *sv.Build.Credentials
		sv.Build.Credentials = &c
	}
	if sv.Internal != nil {
		in := *sv.Internal
		sv.Internal = &in
	}
	return sv
}

func cloneDeployable(d Deployable) Deployable {
	d.Ports = slices.Clone(d.Ports)
	d.HealthChecks = slices.Clone(d.HealthChecks)
	d.Env = maps.Clone(d.Env)
	if d.Build != nil {
		b := *d.Build
		b.Command = slices.Clone(b.Command)
		d.Build = &b
	}
	return d
}

// CreateService implements Store.
func (s *SQLStore) CreateService(ctx context.Context, sv Service, r Release, evs ...events.Event) error {
	sealed, err := s.sealService(sv)
	if err != nil {
		return err
	}
	var release []byte
	if r.ID != "" {
		if release, err = s.seal(r.Deployable); err != nil {
			return err
		}
	}
	err = events.Write(ctx, s.db, s.committed, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO services (`+serviceColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 1)`,
			sv.TeamID, sv.ProjectID, sv.ID, sv.Name, string(sv.Kind), sealed, sqldb.Micros(sv.CreatedAt), sqldb.Micros(sv.UpdatedAt)); err != nil {
			return err
		}
		if r.ID == "" {
			return nil
		}
		return insertRelease(ctx, tx, r, release)
	}, func() []events.Event { return evs })
	return sqldb.AlreadyExistsIfUnique(err)
}

// GetService implements Store.
func (s *SQLStore) GetService(ctx context.Context, team, project, id string) (Service, error) {
	sv, err := s.scanService(s.db.QueryRow(ctx, `SELECT `+serviceColumns+` FROM services WHERE team_id = $1 AND project_id = $2 AND id = $3`, team, project, id))
	if err != nil {
		return Service{}, sqldb.NotFoundIfNoRows(err)
	}
	return sv, nil
}

// ListServices implements Store.
func (s *SQLStore) ListServices(ctx context.Context, team, project string, page paging.Page) ([]Service, bool, int, error) {
	const from = `services WHERE team_id = $1 AND project_id = $2`
	total, err := paging.Count(ctx, s.db, from, team, project)
	if err != nil {
		return nil, false, 0, err
	}
	rows, err := s.db.Query(ctx, `SELECT `+serviceColumns+` FROM `+from+` AND id > $3
		ORDER BY id LIMIT $4 OFFSET $5`, team, project, page.After, page.Limit+1, page.SkipRows())
	if err != nil {
		return nil, false, 0, err
	}
	list, more, err := paging.Collect(rows, page.Limit, func() (Service, error) { return s.scanService(rows) })
	return list, more, total, err
}

// ProjectServices implements Store.
func (s *SQLStore) ProjectServices(ctx context.Context, team, project string) ([]Service, error) {
	rows, err := s.db.Query(ctx, `SELECT `+serviceColumns+` FROM services WHERE team_id = $1 AND project_id = $2 ORDER BY id`, team, project)
	if err != nil {
		return nil, err
	}
	return collectRows(rows, s.scanService)
}

// AllServices implements Store.
func (s *SQLStore) AllServices(ctx context.Context) ([]Service, error) {
	rows, err := s.db.Query(ctx, `SELECT `+serviceColumns+` FROM services ORDER BY team_id, project_id, id`)
	if err != nil {
		return nil, err
	}
	return collectRows(rows, s.scanService)
}

// collectRows reads every row.
func collectRows[T any](rows sqldb.Rows, scan func(rowScanner) (T, error)) ([]T, error) {
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// UpdateService implements Store.
func (s *SQLStore) UpdateService(ctx context.Context, team, project, id string, mutate func(*Service) (*Release, []events.Event, error)) (Service, error) {
	var out Service
	err := sqldb.Optimistic(ctx, func() error {
		current, err := s.GetService(ctx, team, project, id)
		if err != nil {
			return err
		}
		next := cloneService(current)
		release, evs, err := mutate(&next)
		if err != nil {
			return err
		}
		// Identity, creation time and version are the store's.
		next.TeamID, next.ProjectID, next.ID, next.Kind = current.TeamID, current.ProjectID, current.ID, current.Kind
		next.CreatedAt, next.Version = current.CreatedAt, current.Version
		next.Deployable = normalDeployable(next.Deployable)
		next.Build = normalBuild(next.Build)
		if len(next.Tags) == 0 {
			next.Tags = nil
		}
		if release == nil && reflect.DeepEqual(next, current) {
			out = current // nothing to write, nothing to announce
			return nil
		}
		next.Version++
		sealed, err := s.sealService(next)
		if err != nil {
			return err
		}
		var sealedRelease []byte
		if release != nil {
			if sealedRelease, err = s.seal(release.Deployable); err != nil {
				return err
			}
		}
		err = events.Write(ctx, s.db, s.committed, func(tx *sql.Tx) error {
			res, err := tx.ExecContext(ctx, `UPDATE services SET name = $1, spec = $2, updated_at = $3, version = $4
				WHERE team_id = $5 AND project_id = $6 AND id = $7 AND version = $8`,
				next.Name, sealed, sqldb.Micros(next.UpdatedAt), next.Version, team, project, id, current.Version)
			if err := sqldb.Versioned(res, err); err != nil {
				return err
			}
			if release == nil {
				return nil
			}
			return insertRelease(ctx, tx, *release, sealedRelease)
		}, func() []events.Event { return evs })
		out = next
		return err
	})
	if err != nil {
		return Service{}, err
	}
	return out, nil
}

// DeleteService implements Store.
func (s *SQLStore) DeleteService(ctx context.Context, team, project, id string, evs ...events.Event) error {
	return events.Write(ctx, s.db, s.committed, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM services WHERE team_id = $1 AND project_id = $2 AND id = $3`, team, project, id)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return ErrNotFound
		}
		for _, table := range []string{"service_releases", "service_logs", "service_log_offsets", "service_log_totals"} {
			if _, err := tx.ExecContext(ctx, `DELETE FROM `+table+` WHERE team_id = $1 AND project_id = $2 AND service_id = $3`, team, project, id); err != nil {
				return err
			}
		}
		// The builds of a deleted build or combined service can no longer
		// be deployed; the rows stay as tombstones so that a late event
		// cannot bring them back.
		_, err = tx.ExecContext(ctx, `UPDATE deployable_builds SET deleted = 1 WHERE team_id = $1 AND project_id = $2 AND service_id = $3`, team, project, id)
		return err
	}, func() []events.Event { return evs })
}

// ---- releases

const releaseColumns = `team_id, project_id, service_id, id, cause, rolled_back_from, spec, created_by, created_at, status, reason`

func insertRelease(ctx context.Context, tx *sql.Tx, r Release, sealed []byte) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO service_releases (`+releaseColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
		r.TeamID, r.ProjectID, r.ServiceID, r.ID, r.Cause, r.RolledBackFrom, sealed, r.CreatedBy, sqldb.Micros(r.CreatedAt), r.Status, r.Reason)
	return err
}

func (s *SQLStore) scanRelease(row rowScanner) (Release, error) {
	var r Release
	var sealed []byte
	var created int64
	if err := row.Scan(&r.TeamID, &r.ProjectID, &r.ServiceID, &r.ID, &r.Cause, &r.RolledBackFrom, &sealed, &r.CreatedBy, &created, &r.Status, &r.Reason); err != nil {
		return Release{}, err
	}
	if err := s.open(sealed, &r.Deployable); err != nil {
		return Release{}, fmt.Errorf("deployments: release %s: %w", r.ID, err)
	}
	r.Deployable = normalDeployable(r.Deployable)
	r.CreatedAt = sqldb.FromMicros(created)
	return r, nil
}

// GetRelease implements Store.
func (s *SQLStore) GetRelease(ctx context.Context, team, project, service, id string) (Release, error) {
	r, err := s.scanRelease(s.db.QueryRow(ctx, `SELECT `+releaseColumns+` FROM service_releases
		WHERE team_id = $1 AND project_id = $2 AND service_id = $3 AND id = $4`, team, project, service, id))
	if err != nil {
		return Release{}, sqldb.NotFoundIfNoRows(err)
	}
	return r, nil
}

// ListReleases implements Store.
func (s *SQLStore) ListReleases(ctx context.Context, team, project, service string, page paging.Page) ([]Release, bool, int, error) {
	const from = `service_releases WHERE team_id = $1 AND project_id = $2 AND service_id = $3`
	args := []any{team, project, service}
	total, err := paging.Count(ctx, s.db, from, args...)
	if err != nil {
		return nil, false, 0, err
	}
	query := `SELECT ` + releaseColumns + ` FROM ` + from
	if page.After != "" {
		query += ` AND id < $4`
		args = append(args, page.After)
	}
	args = append(args, page.Limit+1, page.SkipRows())
	query += fmt.Sprintf(` ORDER BY id DESC LIMIT $%d OFFSET $%d`, len(args)-1, len(args))
	rows, err := s.db.Query(ctx, query, args...)
	if err != nil {
		return nil, false, 0, err
	}
	list, more, err := paging.Collect(rows, page.Limit, func() (Release, error) { return s.scanRelease(rows) })
	return list, more, total, err
}

// SetReleaseStatus implements Store.
func (s *SQLStore) SetReleaseStatus(ctx context.Context, team, project, service, id, status, reason string, mutate func(*Service) []events.Event) error {
	return sqldb.Optimistic(ctx, func() error {
		current, err := s.GetService(ctx, team, project, service)
		if err != nil {
			return err
		}
		next := cloneService(current)
		var evs []events.Event
		if mutate != nil {
			evs = mutate(&next)
		}
		next.Version++
		sealed, err := s.sealService(next)
		if err != nil {
			return err
		}
		return events.Write(ctx, s.db, s.committed, func(tx *sql.Tx) error {
			res, err := tx.ExecContext(ctx, `UPDATE service_releases SET status = $1, reason = $2
				WHERE team_id = $3 AND project_id = $4 AND service_id = $5 AND id = $6`, status, reason, team, project, service, id)
			if err != nil {
				return err
			}
			if n, err := res.RowsAffected(); err != nil {
				return err
			} else if n == 0 {
				return ErrNotFound
			}
			res, err = tx.ExecContext(ctx, `UPDATE services SET spec = $1, version = $2
				WHERE team_id = $3 AND project_id = $4 AND id = $5 AND version = $6`,
				sealed, next.Version, team, project, service, current.Version)
			return sqldb.Versioned(res, err)
		}, func() []events.Event { return evs })
	})
}

// ---- logs

const logColumns = `seq, team_id, project_id, service_id, container, ts, stream, text`

// AppendLogs implements Store.
func (s *SQLStore) AppendLogs(ctx context.Context, src LogSource, read int, keep LogCap, lines []LogLine) ([]LogLine, error) {
	out := slices.Clone(lines)
	key := []any{src.TeamID, src.ProjectID, src.ServiceID}
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		// A pump still running when its service is deleted stores
		// nothing: no line or offset outlives the service.
		var one int
		if err := tx.QueryRowContext(ctx, `SELECT 1 FROM services WHERE team_id = $1 AND project_id = $2 AND id = $3`, key...).Scan(&one); err != nil {
			return sqldb.NotFoundIfNoRows(err)
		}
		if len(out) > 0 {
			if err := s.insertLines(ctx, tx, src, out, keep); err != nil {
				return err
			}
		}
		if read == 0 {
			return nil
		}
		return upsert(ctx, tx,
			`UPDATE service_log_offsets SET lines_read = lines_read + $5 WHERE team_id = $1 AND project_id = $2 AND service_id = $3 AND workload = $4`,
			`INSERT INTO service_log_offsets (team_id, project_id, service_id, workload, lines_read) VALUES ($1, $2, $3, $4, $5)`,
			src.TeamID, src.ProjectID, src.ServiceID, src.Workload, read)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// upsert runs update and, when it changed no row, insert, with the same
// arguments (the one form both engines and their versions share).
func upsert(ctx context.Context, tx *sql.Tx, update, insert string, args ...any) error {
	res, err := tx.ExecContext(ctx, update, args...)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil || n > 0 {
		return err
	}
	_, err = tx.ExecContext(ctx, insert, args...)
	return err
}

// insertLines stores lines (setting their Seq) and drops the service's
// oldest lines beyond keep, keeping its totals.
func (s *SQLStore) insertLines(ctx context.Context, tx *sql.Tx, src LogSource, lines []LogLine, keep LogCap) error {
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO service_logs (team_id, project_id, service_id, container, ts, stream, text, size)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING seq`)
	if err != nil {
		return err
	}
	defer stmt.Close()
	var added int64
	for i := range lines {
		l := &lines[i]
		l.TeamID, l.ProjectID, l.ServiceID, l.Container = src.TeamID, src.ProjectID, src.ServiceID, src.Container
		if err := stmt.QueryRowContext(ctx, l.TeamID, l.ProjectID, l.ServiceID, l.Container, sqldb.Micros(l.Time), l.Stream, l.Text, len(l.Text)).Scan(&l.Seq); err != nil {
			return err
		}
		added += int64(len(l.Text))
	}
	key := []any{src.TeamID, src.ProjectID, src.ServiceID}
	if err := upsert(ctx, tx,
		`UPDATE service_log_totals SET lines = lines + $4, bytes = bytes + $5 WHERE team_id = $1 AND project_id = $2 AND service_id = $3`,
		`INSERT INTO service_log_totals (team_id, project_id, service_id, lines, bytes) VALUES ($1, $2, $3, $4, $5)`,
		append(key, len(lines), added)...); err != nil {
		return err
	}
	var total, bytes int64
	if err := tx.QueryRowContext(ctx, `SELECT lines, bytes FROM service_log_totals WHERE team_id = $1 AND project_id = $2 AND service_id = $3`,
		key...).Scan(&total, &bytes); err != nil {
		return err
	}
	// Drop the oldest lines, a batch at a time, until the service is
	// within its cap again.
	for total > int64(keep.Lines) || bytes > keep.Bytes {
		rows, err := tx.QueryContext(ctx, `SELECT seq, size FROM service_logs WHERE team_id = $1 AND project_id = $2 AND service_id = $3
			ORDER BY seq LIMIT 1000`, key...)
		if err != nil {
			return err
		}
		var cut, dropped, droppedBytes int64
		for rows.Next() && (total-dropped > int64(keep.Lines) || bytes-droppedBytes > keep.Bytes) {
			var seq, size int64
			if err := rows.Scan(&seq, &size); err != nil {
				rows.Close()
				return err
			}
			cut, dropped, droppedBytes = seq, dropped+1, droppedBytes+size
		}
		if err := rows.Close(); err != nil {
			return err
		}
		if dropped == 0 {
			break // the totals disagree with the table; nothing left to drop
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM service_logs WHERE team_id = $1 AND project_id = $2 AND service_id = $3 AND seq <= $4`,
			append(key, cut)...); err != nil {
			return err
		}
		total, bytes = total-dropped, bytes-droppedBytes
		if _, err := tx.ExecContext(ctx, `UPDATE service_log_totals SET lines = $4, bytes = $5 WHERE team_id = $1 AND project_id = $2 AND service_id = $3`,
			append(key, total, bytes)...); err != nil {
			return err
		}
	}
	return nil
}

// LinesRead implements Store.
func (s *SQLStore) LinesRead(ctx context.Context, src LogSource) (int, error) {
	var n int
	err := s.db.QueryRow(ctx, `SELECT lines_read FROM service_log_offsets WHERE team_id = $1 AND project_id = $2 AND service_id = $3 AND workload = $4`,
		src.TeamID, src.ProjectID, src.ServiceID, src.Workload).Scan(&n)
	if errors.Is(sqldb.NotFoundIfNoRows(err), ErrNotFound) {
		return 0, nil
	}
	return n, err
}

// ReadLogs implements Store.
func (s *SQLStore) ReadLogs(ctx context.Context, q LogQuery) ([]LogLine, error) {
	if q.Limit <= 0 {
		return nil, fmt.Errorf("deployments: ReadLogs limit %d, want > 0", q.Limit)
	}
	sel := logquery.NewPageSQL(`SELECT `+logColumns+` FROM service_logs WHERE team_id = $1 AND project_id = $2 AND service_id = $3`,
		q.TeamID, q.ProjectID, q.ServiceID)
	if q.Container != "" {
		sel.Where(`container = $%d`, q.Container)
	}
	query, args := sel.Page(logquery.Window{Start: q.Start, End: q.End, Backward: q.Backward, AfterTime: q.AfterTime, AfterSeq: q.AfterSeq, Limit: q.Limit})
	rows, err := s.db.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := make([]LogLine, 0, min(q.Limit, 1024))
	for rows.Next() {
		var l LogLine
		var ts int64
		if err := rows.Scan(&l.Seq, &l.TeamID, &l.ProjectID, &l.ServiceID, &l.Container, &ts, &l.Stream, &l.Text); err != nil {
			return nil, err
		}
		l.Time = sqldb.FromMicros(ts)
		out = append(out, l)
	}
	return out, rows.Err()
}

// ---- deployable builds

const buildColumns = `team_id, project_id, service_id, id, branch, sha, image, path, command, concluded_at, deleted`

func scanBuild(row rowScanner) (DeployableBuild, error) {
	var b DeployableBuild
	var command string
	var concluded, deleted int64
	if err := row.Scan(&b.TeamID, &b.ProjectID, &b.ServiceID, &b.ID, &b.Branch, &b.SHA, &b.Image, &b.Path, &command, &concluded, &deleted); err != nil {
		return DeployableBuild{}, err
	}
	if command != "" {
		if err := json.Unmarshal([]byte(command), &b.Command); err != nil {
			return DeployableBuild{}, fmt.Errorf("deployments: build %s command: %w", b.ID, err)
		}
	}
	b.ConcludedAt, b.Deleted = sqldb.FromMicros(concluded), deleted != 0
	return b, nil
}

// PutBuild implements Store.
func (s *SQLStore) PutBuild(ctx context.Context, b DeployableBuild) error {
	command := ""
	if len(b.Command) > 0 {
		raw, err := json.Marshal(b.Command)
		if err != nil {
			return err
		}
		command = string(raw)
	}
	return s.db.InTx(ctx, func(tx *sql.Tx) error {
		var one int
		err := tx.QueryRowContext(ctx, `SELECT 1 FROM deployable_builds WHERE team_id = $1 AND project_id = $2 AND service_id = $3 AND id = $4`,
			b.TeamID, b.ProjectID, b.ServiceID, b.ID).Scan(&one)
		if err == nil {
			return nil // known already (maybe deleted): a build never changes
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO deployable_builds (`+buildColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 0)`,
			b.TeamID, b.ProjectID, b.ServiceID, b.ID, b.Branch, b.SHA, b.Image, b.Path, command, sqldb.Micros(b.ConcludedAt))
		return sqldb.AlreadyExistsIfUnique(err)
	})
}

// DeleteBuild implements Store.
func (s *SQLStore) DeleteBuild(ctx context.Context, team, project, service, id string) error {
	return s.db.InTx(ctx, func(tx *sql.Tx) error {
		return upsert(ctx, tx,
			`UPDATE deployable_builds SET deleted = 1 WHERE team_id = $1 AND project_id = $2 AND service_id = $3 AND id = $4`,
			`INSERT INTO deployable_builds (team_id, project_id, service_id, id, deleted) VALUES ($1, $2, $3, $4, 1)`,
			team, project, service, id)
	})
}

// GetBuild implements Store.
func (s *SQLStore) GetBuild(ctx context.Context, team, project, service, id string) (DeployableBuild, error) {
	b, err := scanBuild(s.db.QueryRow(ctx, `SELECT `+buildColumns+` FROM deployable_builds
		WHERE team_id = $1 AND project_id = $2 AND service_id = $3 AND id = $4`, team, project, service, id))
	if err != nil {
		return DeployableBuild{}, sqldb.NotFoundIfNoRows(err)
	}
	return b, nil
}

// FindBuild implements Store.
func (s *SQLStore) FindBuild(ctx context.Context, team, project, service string, q BuildQuery) (DeployableBuild, error) {
	query := `SELECT ` + buildColumns + ` FROM deployable_builds WHERE team_id = $1 AND project_id = $2 AND service_id = $3 AND deleted = 0`
	args := []any{team, project, service}
	if q.SHA != "" {
		args = append(args, strings.ToLower(q.SHA)+"%")
		query += fmt.Sprintf(` AND sha LIKE $%d`, len(args))
	}
	if q.Branch != "" {
		args = append(args, q.Branch)
		query += fmt.Sprintf(` AND branch = $%d`, len(args))
	}
	b, err := scanBuild(s.db.QueryRow(ctx, query+` ORDER BY concluded_at DESC, id DESC LIMIT 1`, args...))
	if err != nil {
		return DeployableBuild{}, sqldb.NotFoundIfNoRows(err)
	}
	return b, nil
}
