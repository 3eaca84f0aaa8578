package addons

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
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
	// box seals Addon.Credentials at rest.
	box *secret.Box
	// committed is called after a transaction carrying events commits, to
	// wake the outbox relay; may be nil.
	committed func()
}

var _ Store = (*SQLStore)(nil)

// NewSQLStore returns a store on db, whose schema must be migrated
// (migrations.Set and events.Migrations), sealing credentials with box.
func NewSQLStore(db *sqldb.DB, box *secret.Box, committed func()) *SQLStore {
	if box == nil {
		panic("addons: NewSQLStore needs a secret.Box to seal credentials")
	}
	return &SQLStore{db: db, box: box, committed: committed}
}

type rowScanner interface{ Scan(...any) error }

// addonExists fails with ErrNotFound unless the project has the addon, in
// tx: what a backup, restore or schedule is created for must exist when it
// is.
func addonExists(ctx context.Context, tx *sql.Tx, team, project, addon string) error {
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM addons WHERE team_id = $1 AND project_id = $2 AND id = $3`,
		team, project, addon).Scan(&n); err != nil {
		return err
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}

// write runs fn and enqueues evs in one transaction.
func (s *SQLStore) write(ctx context.Context, fn func(*sql.Tx) error, evs []events.Event) error {
	return events.Write(ctx, s.db, s.committed, fn, func() []events.Event { return evs })
}

func collect[T any](rows sqldb.Rows, scan func(rowScanner) (T, error)) ([]T, error) {
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

// ---- addons

const addonColumns = `team_id, project_id, id, internal_id, name, type, settings, status, status_message, credentials, created_at, updated_at, version`

func (s *SQLStore) scanAddon(row rowScanner) (Addon, error) {
	var a Addon
	var settings string
	var creds []byte
	var created, updated int64
	if err := row.Scan(&a.TeamID, &a.ProjectID, &a.ID, &a.InternalID, &a.Name, &a.Type, &settings, &a.Status, &a.StatusMessage,
		&creds, &created, &updated, &a.Version); err != nil {
		return Addon{}, err
	}
	if err := json.Unmarshal([]byte(settings), &a.Settings); err != nil {
		return Addon{}, fmt.Errorf("addons: addon %s settings: %w", a.ID, err)
	}
	plain, err := s.box.Open(creds)
	if err != nil {
		return Addon{}, fmt.Errorf("addons: addon %s credentials: %w", a.ID, err)
	}
	if err := json.Unmarshal(plain, &a.Credentials); err != nil {
		return Addon{}, fmt.Errorf("addons: addon %s credentials: %w", a.ID, err)
	}
	a.CreatedAt, a.UpdatedAt = sqldb.FromMicros(created), sqldb.FromMicros(updated)
	return a, nil
}

func (s *SQLStore) addonValues(a Addon) (settings string, creds []byte, err error) {
	b, err := json.Marshal(a.Settings)
	if err != nil {
		return "", nil, err
	}
	plain, err := json.Marshal(a.Credentials)
	if err != nil {
		return "", nil, err
	}
	return string(b), s.box.Seal(plain), nil
}

// CreateAddon implements Store.
func (s *SQLStore) CreateAddon(ctx context.Context, a Addon, schedules []Schedule, evs ...events.Event) error {
	settings, creds, err := s.addonValues(a)
	if err != nil {
		return err
	}
	err = s.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO addons (`+addonColumns+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 1)`,
			a.TeamID, a.ProjectID, a.ID, a.InternalID, a.Name, a.Type, settings, a.Status, a.StatusMessage, creds,
			sqldb.Micros(a.CreatedAt), sqldb.Micros(a.UpdatedAt)); err != nil {
			return err
		}
		for _, sc := range schedules {
			if err := insertSchedule(ctx, tx, sc); err != nil {
				return err
			}
		}
		return nil
	}, evs)
	return sqldb.AlreadyExistsIfUnique(err)
}

// GetAddon implements Store.
func (s *SQLStore) GetAddon(ctx context.Context, team, project, id string) (Addon, error) {
	a, err := s.scanAddon(s.db.QueryRow(ctx, `SELECT `+addonColumns+` FROM addons WHERE team_id = $1 AND project_id = $2 AND id = $3`, team, project, id))
	if err != nil {
		return Addon{}, sqldb.NotFoundIfNoRows(err)
	}
	return a, nil
}

// ListAddons implements Store.
func (s *SQLStore) ListAddons(ctx context.Context, team, project string, page paging.Page) ([]Addon, bool, int, error) {
	const from = `addons WHERE team_id = $1 AND project_id = $2`
	total, err := paging.Count(ctx, s.db, from, team, project)
	if err != nil {
		return nil, false, 0, err
	}
	rows, err := s.db.Query(ctx, `SELECT `+addonColumns+` FROM `+from+` AND id > $3
		ORDER BY id LIMIT $4 OFFSET $5`, team, project, page.After, page.Limit+1, page.SkipRows())
	if err != nil {
		return nil, false, 0, err
	}
	list, more, err := paging.Collect(rows, page.Limit, func() (Addon, error) { return s.scanAddon(rows) })
	return list, more, total, err
}

// ProjectAddons implements Store.
func (s *SQLStore) ProjectAddons(ctx context.Context, team, project string) ([]Addon, error) {
	rows, err := s.db.Query(ctx, `SELECT `+addonColumns+` FROM addons WHERE team_id = $1 AND project_id = $2 ORDER BY id`, team, project)
	if err != nil {
		return nil, err
	}
	return collect(rows, s.scanAddon)
}

// AllAddons implements Store.
func (s *SQLStore) AllAddons(ctx context.Context) ([]Addon, error) {
	rows, err := s.db.Query(ctx, `SELECT `+addonColumns+` FROM addons ORDER BY team_id, project_id, id`)
	if err != nil {
		return nil, err
	}
	return collect(rows, s.scanAddon)
}

func cloneAddon(a Addon) Addon {
	a.Settings.Tags = slices.Clone(a.Settings.Tags)
	a.Settings.VersionLog = slices.Clone(a.Settings.VersionLog)
	if a.Settings.Source != nil {
		src := *a.Settings.Source
		a.Settings.Source = &src
	}
	if a.Settings.Extra != nil {
		x := *a.Settings.Extra
		a.Settings.Extra = &x
	}
	return a
}

// UpdateAddon implements Store.
func (s *SQLStore) UpdateAddon(ctx context.Context, team, project, id string, mutate func(*Addon) ([]events.Event, error)) (Addon, error) {
	var out Addon
	err := sqldb.Optimistic(ctx, func() error {
		current, err := s.GetAddon(ctx, team, project, id)
		if err != nil {
			return err
		}
		next := cloneAddon(current)
		evs, err := mutate(&next)
		if err != nil {
			return err
		}
		next.TeamID, next.ProjectID, next.ID, next.InternalID = current.TeamID, current.ProjectID, current.ID, current.InternalID
		next.CreatedAt, next.Version = current.CreatedAt, current.Version
		if reflect.DeepEqual(next, current) && len(evs) == 0 {
			out = current
			return nil
		}
		next.Version++
		settings, creds, err := s.addonValues(next)
		if err != nil {
			return err
		}
		err = s.write(ctx, func(tx *sql.Tx) error {
			return sqldb.Versioned(tx.ExecContext(ctx, `UPDATE addons SET name = $1, type = $2, settings = $3, status = $4,
				status_message = $5, credentials = $6, updated_at = $7, version = $8
				WHERE team_id = $9 AND project_id = $10 AND id = $11 AND version = $12`,
				next.Name, next.Type, settings, next.Status, next.StatusMessage, creds, sqldb.Micros(next.UpdatedAt), next.Version,
				team, project, id, current.Version))
		}, evs)
		if err == nil {
			out = next
		}
		return err
	})
	return out, err
}

// DeleteAddon implements Store. Its backups, restores, schedules go with
// it (foreign keys); its log lines are deleted in the same transaction.
func (s *SQLStore) DeleteAddon(ctx context.Context, team, project, id string, evs ...events.Event) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		// SQLite enforces the foreign keys only when asked per connection;
		// deleting the children explicitly holds on both engines.
		for _, table := range []string{"addon_backups", "addon_restores", "addon_backup_schedules", "addon_logs"} {
			if _, err := tx.ExecContext(ctx, `DELETE FROM `+table+` WHERE team_id = $1 AND project_id = $2 AND addon_id = $3`, team, project, id); err != nil {
				return err
			}
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM addons WHERE team_id = $1 AND project_id = $2 AND id = $3`, team, project, id)
		if err := sqldb.NotFoundIfNoneAffected(res, err); err != nil {
			return err
		}
		return nil
	}, evs)
}

// ---- backups

const backupColumns = `team_id, project_id, addon_id, id, name, backup_type, compression, source_type, status, status_message,
	size, checksum, addon_type, addon_version, destination_id, object_key, schedule_id, retained, expires_at, verification,
	created_at, completed_at, version`

func scanBackup(row rowScanner) (Backup, error) {
	var b Backup
	var verification string
	var expires, created, completed int64
	if err := row.Scan(&b.TeamID, &b.ProjectID, &b.AddonID, &b.ID, &b.Name, &b.Type, &b.Compression, &b.SourceType, &b.Status,
		&b.StatusMessage, &b.Size, &b.Checksum, &b.AddonType, &b.AddonVersion, &b.DestinationID, &b.Key, &b.ScheduleID,
		&b.Retained, &expires, &verification, &created, &completed, &b.Version); err != nil {
		return Backup{}, err
	}
	if err := json.Unmarshal([]byte(verification), &b.Verification); err != nil {
		return Backup{}, fmt.Errorf("addons: backup %s verification: %w", b.ID, err)
	}
	b.ExpiresAt, b.CreatedAt, b.CompletedAt = sqldb.FromMicros(expires), sqldb.FromMicros(created), sqldb.FromMicros(completed)
	return b, nil
}

func backupValues(b Backup) ([]any, error) {
	v, err := json.Marshal(b.Verification)
	if err != nil {
		return nil, err
	}
	return []any{b.Name, b.Type, b.Compression, b.SourceType, b.Status, b.StatusMessage, b.Size, b.Checksum, b.AddonType,
		b.AddonVersion, b.DestinationID, b.Key, b.ScheduleID, b.Retained, sqldb.Micros(b.ExpiresAt), string(v),
		sqldb.Micros(b.CreatedAt), sqldb.Micros(b.CompletedAt)}, nil
}

// CreateBackup implements Store.
func (s *SQLStore) CreateBackup(ctx context.Context, b Backup, evs ...events.Event) error {
	vals, err := backupValues(b)
	if err != nil {
		return err
	}
	err = s.write(ctx, func(tx *sql.Tx) error {
		if err := addonExists(ctx, tx, b.TeamID, b.ProjectID, b.AddonID); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO addon_backups (`+backupColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10,
			$11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, 1)`, append([]any{b.TeamID, b.ProjectID, b.AddonID, b.ID}, vals...)...)
		return err
	}, evs)
	return sqldb.AlreadyExistsIfUnique(err)
}

// GetBackup implements Store.
func (s *SQLStore) GetBackup(ctx context.Context, team, project, addon, id string) (Backup, error) {
	b, err := scanBackup(s.db.QueryRow(ctx, `SELECT `+backupColumns+` FROM addon_backups
		WHERE team_id = $1 AND project_id = $2 AND addon_id = $3 AND id = $4`, team, project, addon, id))
	if err != nil {
		return Backup{}, sqldb.NotFoundIfNoRows(err)
	}
	return b, nil
}

// ListBackups implements Store.
func (s *SQLStore) ListBackups(ctx context.Context, team, project, addon string, page paging.Page) ([]Backup, bool, int, error) {
	after, offset := page.After, page.SkipRows()
	const from = `addon_backups WHERE team_id = $1 AND project_id = $2 AND addon_id = $3`
	args := []any{team, project, addon}
	total, err := paging.Count(ctx, s.db, from, args...)
	if err != nil {
		return nil, false, 0, err
	}
	query := `SELECT ` + backupColumns + ` FROM ` + from
	if after != "" {
		args = append(args, after)
		query += ` AND id < $4`
	}
	args = append(args, page.Limit+1, offset)
	query += fmt.Sprintf(` ORDER BY id DESC LIMIT $%d OFFSET $%d`, len(args)-1, len(args))
	rows, err := s.db.Query(ctx, query, args...)
	if err != nil {
		return nil, false, 0, err
	}
	list, more, err := paging.Collect(rows, page.Limit, func() (Backup, error) { return scanBackup(rows) })
	return list, more, total, err
}

// AddonBackups implements Store.
func (s *SQLStore) AddonBackups(ctx context.Context, team, project, addon string) ([]Backup, error) {
	rows, err := s.db.Query(ctx, `SELECT `+backupColumns+` FROM addon_backups WHERE team_id = $1 AND project_id = $2 AND addon_id = $3
		ORDER BY id DESC`, team, project, addon)
	if err != nil {
		return nil, err
	}
	return collect(rows, scanBackup)
}

// ActiveBackups implements Store.
func (s *SQLStore) ActiveBackups(ctx context.Context) ([]Backup, error) {
	rows, err := s.db.Query(ctx, `SELECT `+backupColumns+` FROM addon_backups
		WHERE status IN ('scheduled', 'in-progress', 'aborting') OR (status = 'completed' AND verification LIKE '%"status":"pending"%')
		ORDER BY team_id, project_id, addon_id, id`)
	if err != nil {
		return nil, err
	}
	return collect(rows, scanBackup)
}

// DestinationBackups implements Store.
func (s *SQLStore) DestinationBackups(ctx context.Context, team, destination string, page paging.Page) ([]Backup, bool, int, error) {
	const from = `addon_backups WHERE team_id = $1 AND destination_id = $2`
	total, err := paging.Count(ctx, s.db, from, team, destination)
	if err != nil {
		return nil, false, 0, err
	}
	rows, err := s.db.Query(ctx, `SELECT `+backupColumns+` FROM `+from+` AND project_id || '/' || addon_id || '/' || id > $3
		ORDER BY project_id || '/' || addon_id || '/' || id LIMIT $4 OFFSET $5`, team, destination, page.After, page.Limit+1, page.SkipRows())
	if err != nil {
		return nil, false, 0, err
	}
	list, more, err := paging.Collect(rows, page.Limit, func() (Backup, error) { return scanBackup(rows) })
	return list, more, total, err
}

// ExpiredBackups implements Store.
func (s *SQLStore) ExpiredBackups(ctx context.Context, now time.Time) ([]Backup, error) {
	rows, err := s.db.Query(ctx, `SELECT `+backupColumns+` FROM addon_backups
		WHERE expires_at > 0 AND expires_at <= $1 AND NOT retained ORDER BY expires_at`, sqldb.Micros(now))
	if err != nil {
		return nil, err
	}
	return collect(rows, scanBackup)
}

// UpdateBackup implements Store.
func (s *SQLStore) UpdateBackup(ctx context.Context, team, project, addon, id string, mutate func(*Backup) ([]events.Event, error)) (Backup, error) {
	var out Backup
	err := sqldb.Optimistic(ctx, func() error {
		current, err := s.GetBackup(ctx, team, project, addon, id)
		if err != nil {
			return err
		}
		next := current
		next.Verification.Result = cloneMap(current.Verification.Result)
		next.Verification.Source = cloneMap(current.Verification.Source)
		evs, err := mutate(&next)
		if err != nil {
			return err
		}
		next.TeamID, next.ProjectID, next.AddonID, next.ID = current.TeamID, current.ProjectID, current.AddonID, current.ID
		next.CreatedAt, next.Version = current.CreatedAt, current.Version
		if reflect.DeepEqual(next, current) && len(evs) == 0 {
			out = current
			return nil
		}
		next.Version++
		vals, err := backupValues(next)
		if err != nil {
			return err
		}
		err = s.write(ctx, func(tx *sql.Tx) error {
			return sqldb.Versioned(tx.ExecContext(ctx, `UPDATE addon_backups SET name = $1, backup_type = $2, compression = $3,
				source_type = $4, status = $5, status_message = $6, size = $7, checksum = $8, addon_type = $9, addon_version = $10,
				destination_id = $11, object_key = $12, schedule_id = $13, retained = $14, expires_at = $15, verification = $16,
				created_at = $17, completed_at = $18, version = $19
				WHERE team_id = $20 AND project_id = $21 AND addon_id = $22 AND id = $23 AND version = $24`,
				append(vals, next.Version, team, project, addon, id, current.Version)...))
		}, evs)
		if err == nil {
			out = next
		}
		return err
	})
	return out, err
}

func cloneMap(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	b, _ := json.Marshal(m)
	var out map[string]any
	_ = json.Unmarshal(b, &out)
	return out
}

// DeleteBackup implements Store.
func (s *SQLStore) DeleteBackup(ctx context.Context, team, project, addon, id string, evs ...events.Event) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM addon_backups WHERE team_id = $1 AND project_id = $2 AND addon_id = $3 AND id = $4`,
			team, project, addon, id)
		if err := sqldb.NotFoundIfNoneAffected(res, err); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM addon_logs WHERE team_id = $1 AND project_id = $2 AND addon_id = $3 AND kind = 'backup' AND ref = $4`,
			team, project, addon, id)
		return err
	}, evs)
}

// ---- restores

const restoreColumns = `team_id, project_id, addon_id, id, backup_project_id, backup_addon_id, backup_id, status, status_message,
	created_at, completed_at, version`

func scanRestore(row rowScanner) (Restore, error) {
	var r Restore
	var created, completed int64
	if err := row.Scan(&r.TeamID, &r.ProjectID, &r.AddonID, &r.ID, &r.BackupProjectID, &r.BackupAddonID, &r.BackupID, &r.Status,
		&r.StatusMessage, &created, &completed, &r.Version); err != nil {
		return Restore{}, err
	}
	r.CreatedAt, r.CompletedAt = sqldb.FromMicros(created), sqldb.FromMicros(completed)
	return r, nil
}

// CreateRestore implements Store.
func (s *SQLStore) CreateRestore(ctx context.Context, r Restore, evs ...events.Event) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		if err := addonExists(ctx, tx, r.TeamID, r.ProjectID, r.AddonID); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO addon_restores (`+restoreColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 1)`,
			r.TeamID, r.ProjectID, r.AddonID, r.ID, r.BackupProjectID, r.BackupAddonID, r.BackupID, r.Status, r.StatusMessage,
			sqldb.Micros(r.CreatedAt), sqldb.Micros(r.CompletedAt))
		return err
	}, evs)
	return sqldb.AlreadyExistsIfUnique(err)
}

// GetRestore implements Store.
func (s *SQLStore) GetRestore(ctx context.Context, team, project, addon, id string) (Restore, error) {
	r, err := scanRestore(s.db.QueryRow(ctx, `SELECT `+restoreColumns+` FROM addon_restores
		WHERE team_id = $1 AND project_id = $2 AND addon_id = $3 AND id = $4`, team, project, addon, id))
	if err != nil {
		return Restore{}, sqldb.NotFoundIfNoRows(err)
	}
	return r, nil
}

// ListRestores implements Store.
func (s *SQLStore) ListRestores(ctx context.Context, team, project, addon string, backup *BackupRef, page paging.Page) ([]Restore, bool, int, error) {
	after, offset := page.After, page.SkipRows()
	from := `addon_restores WHERE team_id = $1 AND project_id = $2 AND addon_id = $3`
	args := []any{team, project, addon}
	if backup != nil {
		from += ` AND backup_project_id = $4 AND backup_addon_id = $5 AND backup_id = $6`
		args = append(args, backup.ProjectID, backup.AddonID, backup.ID)
	}
	total, err := paging.Count(ctx, s.db, from, args...)
	if err != nil {
		return nil, false, 0, err
	}
	query := `SELECT ` + restoreColumns + ` FROM ` + from
	if after != "" {
		args = append(args, after)
		query += fmt.Sprintf(` AND id < $%d`, len(args))
	}
	args = append(args, page.Limit+1, offset)
	query += fmt.Sprintf(` ORDER BY id DESC LIMIT $%d OFFSET $%d`, len(args)-1, len(args))
	rows, err := s.db.Query(ctx, query, args...)
	if err != nil {
		return nil, false, 0, err
	}
	list, more, err := paging.Collect(rows, page.Limit, func() (Restore, error) { return scanRestore(rows) })
	return list, more, total, err
}

// ActiveRestores implements Store.
func (s *SQLStore) ActiveRestores(ctx context.Context) ([]Restore, error) {
	rows, err := s.db.Query(ctx, `SELECT `+restoreColumns+` FROM addon_restores WHERE status IN ('scheduled', 'in-progress', 'aborting')
		ORDER BY team_id, project_id, addon_id, id`)
	if err != nil {
		return nil, err
	}
	return collect(rows, scanRestore)
}

// LastRestore implements Store.
func (s *SQLStore) LastRestore(ctx context.Context, team string, b BackupRef) (Restore, error) {
	r, err := scanRestore(s.db.QueryRow(ctx, `SELECT `+restoreColumns+` FROM addon_restores
		WHERE team_id = $1 AND backup_project_id = $2 AND backup_addon_id = $3 AND backup_id = $4 ORDER BY id DESC LIMIT 1`,
		team, b.ProjectID, b.AddonID, b.ID))
	if err != nil {
		return Restore{}, sqldb.NotFoundIfNoRows(err)
	}
	return r, nil
}

// UpdateRestore implements Store.
func (s *SQLStore) UpdateRestore(ctx context.Context, team, project, addon, id string, mutate func(*Restore) ([]events.Event, error)) (Restore, error) {
	var out Restore
	err := sqldb.Optimistic(ctx, func() error {
		current, err := s.GetRestore(ctx, team, project, addon, id)
		if err != nil {
			return err
		}
		next := current
		evs, err := mutate(&next)
		if err != nil {
			return err
		}
		next.TeamID, next.ProjectID, next.AddonID, next.ID = current.TeamID, current.ProjectID, current.AddonID, current.ID
		next.CreatedAt, next.Version = current.CreatedAt, current.Version
		if next == current && len(evs) == 0 {
			out = current
			return nil
		}
		next.Version++
		err = s.write(ctx, func(tx *sql.Tx) error {
			return sqldb.Versioned(tx.ExecContext(ctx, `UPDATE addon_restores SET status = $1, status_message = $2, completed_at = $3, version = $4
				WHERE team_id = $5 AND project_id = $6 AND addon_id = $7 AND id = $8 AND version = $9`,
				next.Status, next.StatusMessage, sqldb.Micros(next.CompletedAt), next.Version, team, project, addon, id, current.Version))
		}, evs)
		if err == nil {
			out = next
		}
		return err
	})
	return out, err
}

// ---- schedules

const scheduleColumns = `team_id, project_id, addon_id, id, interval_kind, backup_type, scheduling, compression, destination_id,
	retention_days, status, status_message, last_run_at, next_run_at, created_at, updated_at`

// scheduling is the JSON of a schedule's lists.
type scheduling struct {
	Minute []int `json:"minute"`
	Hour   []int `json:"hour,omitempty"`
	Day    []int `json:"day,omitempty"`
}

func scanSchedule(row rowScanner) (Schedule, error) {
	var sc Schedule
	var lists string
	var last, next, created, updated int64
	if err := row.Scan(&sc.TeamID, &sc.ProjectID, &sc.AddonID, &sc.ID, &sc.Interval, &sc.BackupType, &lists, &sc.Compression,
		&sc.DestinationID, &sc.RetentionDays, &sc.Status, &sc.StatusMessage, &last, &next, &created, &updated); err != nil {
		return Schedule{}, err
	}
	var l scheduling
	if err := json.Unmarshal([]byte(lists), &l); err != nil {
		return Schedule{}, fmt.Errorf("addons: schedule %s: %w", sc.ID, err)
	}
	sc.Minute, sc.Hour, sc.Day = l.Minute, l.Hour, l.Day
	sc.LastRunAt, sc.NextRunAt, sc.CreatedAt, sc.UpdatedAt = sqldb.FromMicros(last), sqldb.FromMicros(next), sqldb.FromMicros(created), sqldb.FromMicros(updated)
	return sc, nil
}

func insertSchedule(ctx context.Context, tx *sql.Tx, sc Schedule) error {
	lists, err := json.Marshal(scheduling{Minute: sc.Minute, Hour: sc.Hour, Day: sc.Day})
	if err != nil {
		return err
	}
	status := sc.Status
	if status == "" {
		status = "ok"
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO addon_backup_schedules (`+scheduleColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)`,
		sc.TeamID, sc.ProjectID, sc.AddonID, sc.ID, sc.Interval, sc.BackupType, string(lists), sc.Compression, sc.DestinationID,
		sc.RetentionDays, status, sc.StatusMessage, sqldb.Micros(sc.LastRunAt), sqldb.Micros(sc.NextRunAt),
		sqldb.Micros(sc.CreatedAt), sqldb.Micros(sc.UpdatedAt))
	return err
}

// CreateSchedule implements Store.
func (s *SQLStore) CreateSchedule(ctx context.Context, sc Schedule, evs ...events.Event) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		if err := addonExists(ctx, tx, sc.TeamID, sc.ProjectID, sc.AddonID); err != nil {
			return err
		}
		return insertSchedule(ctx, tx, sc)
	}, evs)
	return sqldb.AlreadyExistsIfUnique(err)
}

// ListSchedules implements Store.
func (s *SQLStore) ListSchedules(ctx context.Context, team, project, addon string, page paging.Page) ([]Schedule, bool, int, error) {
	const from = `addon_backup_schedules WHERE team_id = $1 AND project_id = $2 AND addon_id = $3`
	total, err := paging.Count(ctx, s.db, from, team, project, addon)
	if err != nil {
		return nil, false, 0, err
	}
	rows, err := s.db.Query(ctx, `SELECT `+scheduleColumns+` FROM `+from+` AND id > $4 ORDER BY id LIMIT $5 OFFSET $6`,
		team, project, addon, page.After, page.Limit+1, page.SkipRows())
	if err != nil {
		return nil, false, 0, err
	}
	list, more, err := paging.Collect(rows, page.Limit, func() (Schedule, error) { return scanSchedule(rows) })
	return list, more, total, err
}

// AddonSchedules implements Store.
func (s *SQLStore) AddonSchedules(ctx context.Context, team, project, addon string) ([]Schedule, error) {
	rows, err := s.db.Query(ctx, `SELECT `+scheduleColumns+` FROM addon_backup_schedules
		WHERE team_id = $1 AND project_id = $2 AND addon_id = $3 ORDER BY id`, team, project, addon)
	if err != nil {
		return nil, err
	}
	return collect(rows, scanSchedule)
}

// AllSchedules implements Store.
func (s *SQLStore) AllSchedules(ctx context.Context) ([]Schedule, error) {
	rows, err := s.db.Query(ctx, `SELECT `+scheduleColumns+` FROM addon_backup_schedules ORDER BY team_id, project_id, addon_id, id`)
	if err != nil {
		return nil, err
	}
	return collect(rows, scanSchedule)
}

// ReplaceSchedules implements Store.
func (s *SQLStore) ReplaceSchedules(ctx context.Context, team, project, addon string, list []Schedule, evs ...events.Event) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM addon_backup_schedules WHERE team_id = $1 AND project_id = $2 AND addon_id = $3`,
			team, project, addon); err != nil {
			return err
		}
		for _, sc := range list {
			if err := insertSchedule(ctx, tx, sc); err != nil {
				return err
			}
		}
		return nil
	}, evs)
	return sqldb.AlreadyExistsIfUnique(err)
}

// UpdateSchedule implements Store.
func (s *SQLStore) UpdateSchedule(ctx context.Context, sc Schedule, evs ...events.Event) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE addon_backup_schedules SET status = $1, status_message = $2, last_run_at = $3,
			next_run_at = $4, updated_at = $5 WHERE team_id = $6 AND project_id = $7 AND addon_id = $8 AND id = $9`,
			sc.Status, sc.StatusMessage, sqldb.Micros(sc.LastRunAt), sqldb.Micros(sc.NextRunAt), sqldb.Micros(sc.UpdatedAt),
			sc.TeamID, sc.ProjectID, sc.AddonID, sc.ID)
		if err := sqldb.NotFoundIfNoneAffected(res, err); err != nil {
			return err
		}
		return nil
	}, evs)
}

// DeleteSchedule implements Store.
func (s *SQLStore) DeleteSchedule(ctx context.Context, team, project, addon, id string, evs ...events.Event) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM addon_backup_schedules WHERE team_id = $1 AND project_id = $2 AND addon_id = $3 AND id = $4`,
			team, project, addon, id)
		if err := sqldb.NotFoundIfNoneAffected(res, err); err != nil {
			return err
		}
		return nil
	}, evs)
}

// ---- logs

const logColumns = `seq, team_id, project_id, addon_id, kind, ref, container, ts, stream, text`

// AppendLogs implements Store.
func (s *SQLStore) AppendLogs(ctx context.Context, lines []LogLine) ([]LogLine, error) {
	if len(lines) == 0 {
		return nil, nil
	}
	out := slices.Clone(lines)
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, `INSERT INTO addon_logs (team_id, project_id, addon_id, kind, ref, container, ts, stream, text)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING seq`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for i := range out {
			l := &out[i]
			if err := stmt.QueryRowContext(ctx, l.TeamID, l.ProjectID, l.AddonID, string(l.Kind), l.Ref, l.Container,
				sqldb.Micros(l.Time), l.Stream, l.Text).Scan(&l.Seq); err != nil {
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
		return nil, errors.New("addons: ReadLogs needs a positive limit")
	}
	sel := logquery.NewPageSQL(`SELECT `+logColumns+` FROM addon_logs WHERE team_id = $1 AND project_id = $2 AND addon_id = $3 AND kind = $4 AND ref = $5`,
		q.TeamID, q.ProjectID, q.AddonID, string(q.Kind), q.Ref)
	if q.Container != "" {
		sel.Where(`container = $%d`, q.Container)
	}
	query, args := sel.Page(logquery.Window{Start: q.Start, End: q.End, Backward: q.Backward, AfterTime: q.AfterTime, AfterSeq: q.AfterSeq, Limit: q.Limit})
	rows, err := s.db.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return collect(rows, func(row rowScanner) (LogLine, error) {
		var l LogLine
		var ts int64
		var kind string
		if err := row.Scan(&l.Seq, &l.TeamID, &l.ProjectID, &l.AddonID, &kind, &l.Ref, &l.Container, &ts, &l.Stream, &l.Text); err != nil {
			return LogLine{}, err
		}
		l.Kind, l.Time = LogKind(kind), sqldb.FromMicros(ts)
		return l, nil
	})
}
