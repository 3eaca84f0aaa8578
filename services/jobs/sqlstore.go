package jobs

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
	"time"

	"github.com/slipwayhq/slipway/pkg/events"
	"github.com/slipwayhq/slipway/pkg/logquery"
	"github.com/slipwayhq/slipway/pkg/paging"
	"github.com/slipwayhq/slipway/pkg/secret"
	"github.com/slipwayhq/slipway/pkg/sqldb"
)

// SQLStore is the Store on PostgreSQL or SQLite.
type SQLStore struct {
	db *sqldb.DB
	// box seals Job.Env and Run.Spec at rest.
	box *secret.Box
	// committed is called after a transaction carrying events commits, to
	// wake the outbox relay; may be nil.
	committed func()
}

var _ Store = (*SQLStore)(nil)

// NewSQLStore returns a store on db, whose schema must be migrated
// (migrations.Set and events.Migrations), sealing environments with box.
// committed, when not nil, is called after every commit that enqueued
// events.
func NewSQLStore(db *sqldb.DB, box *secret.Box, committed func()) *SQLStore {
	if box == nil {
		panic("jobs: NewSQLStore needs a secret.Box to seal environments")
	}
	return &SQLStore{db: db, box: box, committed: committed}
}

// Times are stored as Unix microseconds, with 0 for the zero time.

type rowScanner interface{ Scan(...any) error }

// seal encrypts v's JSON.
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

// ---- jobs

const jobColumns = `team_id, project_id, id, name, description, tags, type, plan, deployment, env,
	backoff_limit, active_deadline_seconds, run_on_source_change, schedule, concurrency_policy, suspended,
	next_run_at, created_at, updated_at, version, build`

func (s *SQLStore) scanJob(row rowScanner) (Job, error) {
	var j Job
	var tags, deployment string
	var env, build []byte
	var next, created, updated int64
	if err := row.Scan(&j.TeamID, &j.ProjectID, &j.ID, &j.Name, &j.Description, &tags, &j.Type, &j.Plan, &deployment, &env,
		&j.BackoffLimit, &j.ActiveDeadlineSeconds, &j.RunOnSourceChange, &j.Schedule, &j.ConcurrencyPolicy, &j.Suspended,
		&next, &created, &updated, &j.Version, &build); err != nil {
		return Job{}, err
	}
	if build != nil {
		if err := s.open(build, &j.Build); err != nil {
			return Job{}, fmt.Errorf("jobs: job %s build: %w", j.ID, err)
		}
	}
	if err := json.Unmarshal([]byte(tags), &j.Tags); err != nil {
		return Job{}, fmt.Errorf("jobs: job %s tags: %w", j.ID, err)
	}
	if err := json.Unmarshal([]byte(deployment), &j.Deployment); err != nil {
		return Job{}, fmt.Errorf("jobs: job %s deployment: %w", j.ID, err)
	}
	if err := s.open(env, &j.Env); err != nil {
		return Job{}, fmt.Errorf("jobs: job %s environment: %w", j.ID, err)
	}
	if len(j.Tags) == 0 {
		j.Tags = nil
	}
	if len(j.Env) == 0 {
		j.Env = nil
	}
	j.NextRunAt, j.CreatedAt, j.UpdatedAt = sqldb.FromMicros(next), sqldb.FromMicros(created), sqldb.FromMicros(updated)
	return j, nil
}

// jobValues returns j's stored representation of the columns after the
// key, in jobColumns order up to updated_at.
func (s *SQLStore) jobValues(j Job) ([]any, error) {
	tags := j.Tags
	if tags == nil {
		tags = []string{}
	}
	tagsJSON, err := json.Marshal(tags)
	if err != nil {
		return nil, err
	}
	deployment, err := json.Marshal(j.Deployment)
	if err != nil {
		return nil, err
	}
	env, err := s.seal(j.Env)
	if err != nil {
		return nil, err
	}
	var build []byte // NULL: no git source
	if j.Build != nil {
		if build, err = s.seal(j.Build); err != nil {
			return nil, err
		}
	}
	return []any{j.Name, j.Description, string(tagsJSON), string(j.Type), j.Plan, string(deployment), env,
		j.BackoffLimit, j.ActiveDeadlineSeconds, j.RunOnSourceChange, j.Schedule, j.ConcurrencyPolicy, j.Suspended,
		sqldb.Micros(j.NextRunAt), sqldb.Micros(j.CreatedAt), sqldb.Micros(j.UpdatedAt), build}, nil
}

// cloneJob copies j deeply enough that mutating the copy's maps and
// slices leaves j alone.
func cloneJob(j Job) Job {
	j.Tags = slices.Clone(j.Tags)
	j.Env = maps.Clone(j.Env)
	j.Build = cloneBuild(j.Build)
	return j
}

// cloneBuild copies b deeply.
func cloneBuild(b *Build) *Build {
	if b == nil {
		return nil
	}
	c := *b
	c.Arguments = maps.Clone(b.Arguments)
	if b.Credentials != nil {
		creds := *b.Credentials
		c.Credentials = &creds
	}
	return &c
}

// CreateJob implements Store.
func (s *SQLStore) CreateJob(ctx context.Context, j Job, evs ...events.Event) error {
	vals, err := s.jobValues(j)
	if err != nil {
		return err
	}
	err = events.Write(ctx, s.db, s.committed, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO jobs (`+jobColumns+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, 1, $20)`,
			append([]any{j.TeamID, j.ProjectID, j.ID}, vals...)...)
		return err
	}, func() []events.Event { return evs })
	return sqldb.AlreadyExistsIfUnique(err)
}

// GetJob implements Store.
func (s *SQLStore) GetJob(ctx context.Context, team, project, id string) (Job, error) {
	j, err := s.scanJob(s.db.QueryRow(ctx, `SELECT `+jobColumns+` FROM jobs WHERE team_id = $1 AND project_id = $2 AND id = $3`, team, project, id))
	if err != nil {
		return Job{}, sqldb.NotFoundIfNoRows(err)
	}
	return j, nil
}

// ListJobs implements Store.
func (s *SQLStore) ListJobs(ctx context.Context, team, project string, page paging.Page) ([]Job, bool, int, error) {
	const from = `jobs WHERE team_id = $1 AND project_id = $2`
	total, err := paging.Count(ctx, s.db, from, team, project)
	if err != nil {
		return nil, false, 0, err
	}
	// One row more than asked tells whether another page follows.
	rows, err := s.db.Query(ctx, `SELECT `+jobColumns+` FROM `+from+` AND id > $3
		ORDER BY id LIMIT $4 OFFSET $5`, team, project, page.After, page.Limit+1, page.SkipRows())
	if err != nil {
		return nil, false, 0, err
	}
	list, more, err := paging.Collect(rows, page.Limit, func() (Job, error) { return s.scanJob(rows) })
	return list, more, total, err
}

// ProjectJobs implements Store.
func (s *SQLStore) ProjectJobs(ctx context.Context, team, project string) ([]Job, error) {
	rows, err := s.db.Query(ctx, `SELECT `+jobColumns+` FROM jobs WHERE team_id = $1 AND project_id = $2 ORDER BY id`, team, project)
	if err != nil {
		return nil, err
	}
	return collectRows(rows, s.scanJob)
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

// UpdateJob implements Store.
func (s *SQLStore) UpdateJob(ctx context.Context, team, project, id string, mutate func(*Job) ([]events.Event, error)) (Job, error) {
	var out Job
	err := sqldb.Optimistic(ctx, func() error {
		current, err := s.GetJob(ctx, team, project, id)
		if err != nil {
			return err
		}
		next := cloneJob(current)
		evs, err := mutate(&next)
		if err != nil {
			return err
		}
		// Identity, creation time and version are the store's.
		next.TeamID, next.ProjectID, next.ID = current.TeamID, current.ProjectID, current.ID
		next.CreatedAt, next.Version = current.CreatedAt, current.Version
		if reflect.DeepEqual(next, current) {
			out = current // nothing to write, nothing to announce
			return nil
		}
		next.Version++
		vals, err := s.jobValues(next)
		if err != nil {
			return err
		}
		err = events.Write(ctx, s.db, s.committed, func(tx *sql.Tx) error {
			res, err := tx.ExecContext(ctx, `UPDATE jobs SET name = $1, description = $2, tags = $3, type = $4, plan = $5,
				deployment = $6, env = $7, backoff_limit = $8, active_deadline_seconds = $9, run_on_source_change = $10,
				schedule = $11, concurrency_policy = $12, suspended = $13, next_run_at = $14, created_at = $15, updated_at = $16,
				build = $17, version = $18
				WHERE team_id = $19 AND project_id = $20 AND id = $21 AND version = $22`,
				append(vals, next.Version, team, project, id, current.Version)...)
			return sqldb.Versioned(res, err)
		}, func() []events.Event { return evs })
		out = next
		return err
	})
	if err != nil { // sqldb.ErrContended is the contract's ErrConflict
		return Job{}, err
	}
	return out, nil
}

// DeleteJob implements Store.
func (s *SQLStore) DeleteJob(ctx context.Context, team, project, id string, evs ...events.Event) error {
	return events.Write(ctx, s.db, s.committed, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM jobs WHERE team_id = $1 AND project_id = $2 AND id = $3`, team, project, id)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return ErrNotFound
		}
		// The foreign key cascades to runs too; deleting them explicitly
		// keeps that from being load-bearing.
		if _, err := tx.ExecContext(ctx, `DELETE FROM job_runs WHERE team_id = $1 AND project_id = $2 AND job_id = $3`, team, project, id); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM job_builds WHERE team_id = $1 AND project_id = $2 AND job_id = $3`, team, project, id); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM job_logs WHERE team_id = $1 AND project_id = $2 AND job_id = $3`, team, project, id)
		return err
	}, func() []events.Event { return evs })
}

// BuildingJobs implements Store.
func (s *SQLStore) BuildingJobs(ctx context.Context) ([]Job, error) {
	rows, err := s.db.Query(ctx, `SELECT `+jobColumns+` FROM jobs WHERE build IS NOT NULL ORDER BY team_id, project_id, id`)
	if err != nil {
		return nil, err
	}
	return collectRows(rows, s.scanJob)
}

// PutJobBuild implements Store. One statement inserts the build only if
// its job exists, so a build announced as its job is deleted cannot
// outlive it (and be run by a new job with the same id).
func (s *SQLStore) PutJobBuild(ctx context.Context, b JobBuild) error {
	command, err := json.Marshal(b.Command)
	if err != nil {
		return err
	}
	_, err = s.db.ExecContext(ctx, `INSERT INTO job_builds (team_id, project_id, job_id, id, branch, sha, image, path, command, concluded_at)
		SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10
		WHERE EXISTS (SELECT 1 FROM jobs WHERE team_id = $1 AND project_id = $2 AND id = $3)
		ON CONFLICT (team_id, project_id, job_id, id) DO NOTHING`,
		b.TeamID, b.ProjectID, b.JobID, b.ID, b.Branch, b.SHA, b.Image, b.Path, string(command), sqldb.Micros(b.ConcludedAt))
	return err
}

// DeleteJobBuild implements Store.
func (s *SQLStore) DeleteJobBuild(ctx context.Context, team, project, job, id string) error {
	_, err := s.db.ExecContext(ctx, `DELETE FROM job_builds WHERE team_id = $1 AND project_id = $2 AND job_id = $3 AND id = $4`,
		team, project, job, id)
	return err
}

// LatestJobBuild implements Store.
func (s *SQLStore) LatestJobBuild(ctx context.Context, team, project, job, branch string) (JobBuild, error) {
	b := JobBuild{TeamID: team, ProjectID: project, JobID: job}
	var command string
	var concluded int64
	err := s.db.QueryRow(ctx, `SELECT id, branch, sha, image, path, command, concluded_at FROM job_builds
		WHERE team_id = $1 AND project_id = $2 AND job_id = $3 AND branch = $4
		ORDER BY concluded_at DESC, id DESC LIMIT 1`, team, project, job, branch).
		Scan(&b.ID, &b.Branch, &b.SHA, &b.Image, &b.Path, &command, &concluded)
	if err != nil {
		return JobBuild{}, sqldb.NotFoundIfNoRows(err)
	}
	if err := json.Unmarshal([]byte(command), &b.Command); err != nil {
		return JobBuild{}, fmt.Errorf("jobs: build %s command: %w", b.ID, err)
	}
	b.ConcludedAt = sqldb.FromMicros(concluded)
	return b, nil
}

// PutServiceBuild implements Store.
func (s *SQLStore) PutServiceBuild(ctx context.Context, b JobBuild) error {
	command, err := json.Marshal(b.Command)
	if err != nil {
		return err
	}
	_, err = s.db.ExecContext(ctx, `INSERT INTO job_service_builds (team_id, project_id, service_id, id, branch, sha, image, path, command, concluded_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
		ON CONFLICT (team_id, project_id, service_id, id) DO NOTHING`,
		b.TeamID, b.ProjectID, b.ServiceID, b.ID, b.Branch, b.SHA, b.Image, b.Path, string(command), sqldb.Micros(b.ConcludedAt))
	return err
}

// DeleteServiceBuild implements Store.
func (s *SQLStore) DeleteServiceBuild(ctx context.Context, team, project, service, id string) error {
	_, err := s.db.ExecContext(ctx, `DELETE FROM job_service_builds WHERE team_id = $1 AND project_id = $2 AND service_id = $3 AND id = $4`,
		team, project, service, id)
	return err
}

// FindServiceBuild implements Store. A commit prefix matches with LIKE
// on the stored lower-case SHA; the prefix is hex (checked), so it holds
// no LIKE wildcard.
func (s *SQLStore) FindServiceBuild(ctx context.Context, team, project string, ref InternalRef) (JobBuild, error) {
	cond, arg := `branch = $4`, ref.Branch
	switch {
	case ref.BuildID != "":
		cond, arg = `id = $4`, ref.BuildID
	case ref.BuildSHA != "" && ref.BuildSHA != "latest":
		cond, arg = `sha LIKE $4`, strings.ToLower(ref.BuildSHA)+"%"
	}
	b := JobBuild{TeamID: team, ProjectID: project, ServiceID: ref.Service}
	var command string
	var concluded int64
	err := s.db.QueryRow(ctx, `SELECT id, branch, sha, image, path, command, concluded_at FROM job_service_builds
		WHERE team_id = $1 AND project_id = $2 AND service_id = $3 AND `+cond+`
		ORDER BY concluded_at DESC, id DESC LIMIT 1`, team, project, ref.Service, arg).
		Scan(&b.ID, &b.Branch, &b.SHA, &b.Image, &b.Path, &command, &concluded)
	if err != nil {
		return JobBuild{}, sqldb.NotFoundIfNoRows(err)
	}
	if err := json.Unmarshal([]byte(command), &b.Command); err != nil {
		return JobBuild{}, fmt.Errorf("jobs: build %s command: %w", b.ID, err)
	}
	b.ConcludedAt = sqldb.FromMicros(concluded)
	return b, nil
}

// DueCronJobs implements Store. A limit <= 0 returns every due job.
func (s *SQLStore) DueCronJobs(ctx context.Context, now time.Time, limit int) ([]Job, error) {
	// The literal "next_run_at > 0" lets PostgreSQL use the partial index.
	query := `SELECT ` + jobColumns + ` FROM jobs WHERE next_run_at > 0 AND next_run_at <= $1 AND type = $2
		ORDER BY next_run_at, team_id, project_id, id`
	args := []any{now.UnixMicro(), string(TypeCron)}
	if limit > 0 {
		query += ` LIMIT $3`
		args = append(args, limit)
	}
	rows, err := s.db.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return collectRows(rows, s.scanJob)
}

// ClaimTick implements Store. It is one compare-and-set statement, so of
// concurrent callers exactly one sees a row change; it bumps the version,
// which makes a concurrent UpdateJob retry on the claimed job instead of
// writing back the old NextRunAt.
func (s *SQLStore) ClaimTick(ctx context.Context, team, project, id string, due, next time.Time) (bool, error) {
	if due.IsZero() {
		return false, nil // a job that is not scheduled has no tick to claim
	}
	res, err := s.db.ExecContext(ctx, `UPDATE jobs SET next_run_at = $1, version = version + 1
		WHERE team_id = $2 AND project_id = $3 AND id = $4 AND next_run_at = $5`,
		sqldb.Micros(next), team, project, id, sqldb.Micros(due))
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// ---- runs

const runColumns = `team_id, project_id, job_id, id, name, status, reason, spec, backoff_limit, attempts, failed, succeeded,
	active, workload_id, exit_code, deadline, retry_at, owner, lease_until, started_at, concluded_at, version`

func (s *SQLStore) scanRun(row rowScanner) (Run, error) {
	var r Run
	var spec []byte
	var exit sql.NullInt64
	var deadline, retry, lease, started, concluded int64
	if err := row.Scan(&r.TeamID, &r.ProjectID, &r.JobID, &r.ID, &r.Name, &r.Status, &r.Reason, &spec, &r.BackoffLimit,
		&r.Attempts, &r.Failed, &r.Succeeded, &r.Active, &r.WorkloadID, &exit, &deadline, &retry, &r.Owner, &lease,
		&started, &concluded, &r.Version); err != nil {
		return Run{}, err
	}
	if err := s.open(spec, &r.Spec); err != nil {
		return Run{}, fmt.Errorf("jobs: run %s spec: %w", r.ID, err)
	}
	if len(r.Spec.Env) == 0 {
		r.Spec.Env = nil
	}
	if exit.Valid {
		code := int32(exit.Int64)
		r.ExitCode = &code
	}
	r.Deadline, r.RetryAt, r.LeaseUntil = sqldb.FromMicros(deadline), sqldb.FromMicros(retry), sqldb.FromMicros(lease)
	r.StartedAt, r.ConcludedAt = sqldb.FromMicros(started), sqldb.FromMicros(concluded)
	return r, nil
}

func exitCodeArg(r Run) any {
	if r.ExitCode == nil {
		return nil
	}
	return int64(*r.ExitCode)
}

func cloneRun(r Run) Run {
	r.Spec.Env = maps.Clone(r.Spec.Env)
	r.Spec.Files = maps.Clone(r.Spec.Files)
	r.Spec.AddonMounts = slices.Clone(r.Spec.AddonMounts)
	if r.ExitCode != nil {
		code := *r.ExitCode
		r.ExitCode = &code
	}
	return r
}

// CreateRun implements Store. ErrNotFound when the job does not exist,
// ErrAlreadyExists when the run's id is taken.
func (s *SQLStore) CreateRun(ctx context.Context, r Run, evs ...events.Event) error {
	spec, err := s.seal(r.Spec)
	if err != nil {
		return err
	}
	err = events.Write(ctx, s.db, s.committed, func(tx *sql.Tx) error {
		// INSERT ... SELECT makes "the job exists" and "insert the run" one
		// statement; the foreign key covers a concurrent deletion.
		res, err := tx.ExecContext(ctx, `INSERT INTO job_runs (`+runColumns+`)
			SELECT team_id, project_id, id, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, 1
			FROM jobs WHERE team_id = $1 AND project_id = $2 AND id = $3`,
			r.TeamID, r.ProjectID, r.JobID, r.ID, r.Name, string(r.Status), r.Reason, spec, r.BackoffLimit,
			r.Attempts, r.Failed, r.Succeeded, r.Active, r.WorkloadID, exitCodeArg(r), sqldb.Micros(r.Deadline), sqldb.Micros(r.RetryAt),
			r.Owner, sqldb.Micros(r.LeaseUntil), sqldb.Micros(r.StartedAt), sqldb.Micros(r.ConcludedAt))
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return ErrNotFound
		}
		return nil
	}, func() []events.Event { return evs })
	return sqldb.AlreadyExistsIfUnique(err)
}

// GetRun implements Store.
func (s *SQLStore) GetRun(ctx context.Context, team, project, job, id string) (Run, error) {
	r, err := s.scanRun(s.db.QueryRow(ctx, `SELECT `+runColumns+` FROM job_runs
		WHERE team_id = $1 AND project_id = $2 AND job_id = $3 AND id = $4`, team, project, job, id))
	if err != nil {
		return Run{}, sqldb.NotFoundIfNoRows(err)
	}
	return r, nil
}

// ListRuns implements Store.
func (s *SQLStore) ListRuns(ctx context.Context, team, project, job string, page paging.Page) ([]Run, bool, int, error) {
	const from = `job_runs WHERE team_id = $1 AND project_id = $2 AND job_id = $3`
	args := []any{team, project, job}
	total, err := paging.Count(ctx, s.db, from, args...)
	if err != nil {
		return nil, false, 0, err
	}
	query := `SELECT ` + runColumns + ` FROM ` + from
	if page.After != "" {
		args = append(args, page.After)
		query += ` AND id < $4`
	}
	args = append(args, page.Limit+1, page.SkipRows())
	query += fmt.Sprintf(` ORDER BY id DESC LIMIT $%d OFFSET $%d`, len(args)-1, len(args))
	rows, err := s.db.Query(ctx, query, args...)
	if err != nil {
		return nil, false, 0, err
	}
	list, more, err := paging.Collect(rows, page.Limit, func() (Run, error) { return s.scanRun(rows) })
	return list, more, total, err
}

// ActiveRuns implements Store. Runs come in id order (oldest first).
func (s *SQLStore) ActiveRuns(ctx context.Context, team, project, job string) ([]Run, error) {
	rows, err := s.db.Query(ctx, `SELECT `+runColumns+` FROM job_runs
		WHERE team_id = $1 AND project_id = $2 AND job_id = $3 AND status = 'RUNNING' ORDER BY id`, team, project, job)
	if err != nil {
		return nil, err
	}
	return collectRows(rows, s.scanRun)
}

// UpdateRun implements Store. LeaseUntil is written only when mutate
// changed it, so a concurrent RenewLeases (which does not bump the
// version) is never undone by an update that read the older lease; the
// returned run carries the lease as stored.
func (s *SQLStore) UpdateRun(ctx context.Context, team, project, job, id string, mutate func(*Run) ([]events.Event, error)) (Run, error) {
	var out Run
	err := sqldb.Optimistic(ctx, func() error {
		current, err := s.GetRun(ctx, team, project, job, id)
		if err != nil {
			return err
		}
		next := cloneRun(current)
		evs, err := mutate(&next)
		if err != nil {
			return err
		}
		next.TeamID, next.ProjectID, next.JobID, next.ID = current.TeamID, current.ProjectID, current.JobID, current.ID
		next.Version = current.Version
		if reflect.DeepEqual(next, current) {
			out = current // nothing to write, nothing to announce
			return nil
		}
		next.Version++
		set := []string{"name = $1", "status = $2", "reason = $3", "backoff_limit = $4", "attempts = $5", "failed = $6",
			"succeeded = $7", "active = $8", "workload_id = $9", "exit_code = $10", "deadline = $11", "retry_at = $12",
			"owner = $13", "started_at = $14", "concluded_at = $15", "version = $16"}
		args := []any{next.Name, string(next.Status), next.Reason, next.BackoffLimit, next.Attempts, next.Failed,
			next.Succeeded, next.Active, next.WorkloadID, exitCodeArg(next), sqldb.Micros(next.Deadline), sqldb.Micros(next.RetryAt),
			next.Owner, sqldb.Micros(next.StartedAt), sqldb.Micros(next.ConcludedAt), next.Version}
		// The spec is fixed at creation in practice: don't reseal it on
		// every update.
		if !reflect.DeepEqual(next.Spec, current.Spec) {
			spec, err := s.seal(next.Spec)
			if err != nil {
				return err
			}
			args = append(args, spec)
			set = append(set, fmt.Sprintf("spec = $%d", len(args)))
		}
		if !next.LeaseUntil.Equal(current.LeaseUntil) {
			args = append(args, sqldb.Micros(next.LeaseUntil))
			set = append(set, fmt.Sprintf("lease_until = $%d", len(args)))
		}
		args = append(args, team, project, job, id, current.Version)
		n := len(args)
		query := `UPDATE job_runs SET ` + strings.Join(set, ", ") +
			fmt.Sprintf(` WHERE team_id = $%d AND project_id = $%d AND job_id = $%d AND id = $%d AND version = $%d RETURNING lease_until`,
				n-4, n-3, n-2, n-1, n)
		err = events.Write(ctx, s.db, s.committed, func(tx *sql.Tx) error {
			var lease int64
			err := tx.QueryRowContext(ctx, query, args...).Scan(&lease)
			if errors.Is(err, sql.ErrNoRows) {
				return sqldb.ErrStale
			}
			next.LeaseUntil = sqldb.FromMicros(lease)
			return err
		}, func() []events.Event { return evs })
		out = next
		return err
	})
	if err != nil { // sqldb.ErrContended is the contract's ErrConflict
		return Run{}, err
	}
	return out, nil
}

// OrphanedRuns implements Store. A run nobody ever leased (LeaseUntil
// zero) counts as expired.
func (s *SQLStore) OrphanedRuns(ctx context.Context, owner string, now time.Time) ([]Run, error) {
	rows, err := s.db.Query(ctx, `SELECT `+runColumns+` FROM job_runs
		WHERE status = 'RUNNING' AND (owner = $1 OR lease_until < $2)
		ORDER BY team_id, project_id, job_id, id`, owner, now.UnixMicro())
	if err != nil {
		return nil, err
	}
	return collectRows(rows, s.scanRun)
}

// RenewLeases implements Store. It leaves versions alone, so it never
// makes a concurrent UpdateRun retry.
func (s *SQLStore) RenewLeases(ctx context.Context, owner string, until time.Time) error {
	_, err := s.db.ExecContext(ctx, `UPDATE job_runs SET lease_until = $1 WHERE owner = $2 AND status = 'RUNNING'`, sqldb.Micros(until), owner)
	return err
}

// ---- logs

const logColumns = `seq, team_id, project_id, job_id, run_id, container, ts, stream, text`

// AppendLogs implements Store.
func (s *SQLStore) AppendLogs(ctx context.Context, lines []LogLine) ([]LogLine, error) {
	if len(lines) == 0 {
		return nil, nil
	}
	out := slices.Clone(lines)
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, `INSERT INTO job_logs (team_id, project_id, job_id, run_id, container, ts, stream, text)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING seq`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for i := range out {
			l := &out[i]
			if err := stmt.QueryRowContext(ctx, l.TeamID, l.ProjectID, l.JobID, l.RunID, l.Container, sqldb.Micros(l.Time), l.Stream, l.Text).Scan(&l.Seq); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ReadLogs implements Store.
func (s *SQLStore) ReadLogs(ctx context.Context, q LogQuery) ([]LogLine, error) {
	if q.Limit <= 0 {
		return nil, fmt.Errorf("jobs: ReadLogs limit %d, want > 0", q.Limit)
	}
	sel := logquery.NewPageSQL(`SELECT `+logColumns+` FROM job_logs WHERE team_id = $1 AND project_id = $2 AND job_id = $3`,
		q.TeamID, q.ProjectID, q.JobID)
	if q.RunID != "" {
		sel.Where(`run_id = $%d`, q.RunID)
	}
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
		if err := rows.Scan(&l.Seq, &l.TeamID, &l.ProjectID, &l.JobID, &l.RunID, &l.Container, &ts, &l.Stream, &l.Text); err != nil {
			return nil, err
		}
		l.Time = sqldb.FromMicros(ts)
		out = append(out, l)
	}
	return out, rows.Err()
}
