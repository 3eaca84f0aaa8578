package projects

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/slipwayhq/slipway/pkg/paging"

	"github.com/slipwayhq/slipway/pkg/events"
	"github.com/slipwayhq/slipway/pkg/sqldb"
)

// SQLStore is the Store on PostgreSQL or SQLite.
type SQLStore struct {
	db *sqldb.DB
	// committed is called after a transaction carrying events commits, to
	// wake the outbox relay; may be nil.
	committed func()
}

var _ Store = (*SQLStore)(nil)

// NewSQLStore returns a store on db, whose schema must be migrated
// (migrations.Set and events.Migrations). committed, when not nil, is
// called after every commit that enqueued events.
func NewSQLStore(db *sqldb.DB, committed func()) *SQLStore {
	return &SQLStore{db: db, committed: committed}
}

const projectColumns = `team_id, id, name, description, color, region, created_at, updated_at, version`

type scanner interface{ Scan(...any) error }

func scanProject(row scanner) (Project, error) {
	var p Project
	var created, updated int64
	err := row.Scan(&p.TeamID, &p.ID, &p.Name, &p.Description, &p.Color, &p.Region, &created, &updated, &p.Version)
	p.CreatedAt = time.UnixMicro(created).UTC()
	p.UpdatedAt = time.UnixMicro(updated).UTC()
	return p, err
}

// Create implements Store.
func (s *SQLStore) Create(ctx context.Context, p Project, evs ...events.Event) error {
	err := events.Write(ctx, s.db, s.committed, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO projects (`+projectColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 1)`,
			p.TeamID, p.ID, p.Name, p.Description, p.Color, p.Region, p.CreatedAt.UnixMicro(), p.UpdatedAt.UnixMicro())
		return err
	}, func() []events.Event { return evs })
	return sqldb.AlreadyExistsIfUnique(err)
}

// Get implements Store.
func (s *SQLStore) Get(ctx context.Context, team, id string) (Project, error) {
	p, err := scanProject(s.db.QueryRow(ctx, `SELECT `+projectColumns+` FROM projects WHERE team_id = $1 AND id = $2`, team, id))
	if err != nil {
		return Project{}, sqldb.NotFoundIfNoRows(err)
	}
	return p, nil
}

// GetWithResources implements Store: the project joined with its
// resources, one row per resource (or one row of NULLs for a project
// without any).
func (s *SQLStore) GetWithResources(ctx context.Context, team, id string) (Project, []Resource, error) {
	rows, err := s.db.Query(ctx, `SELECT p.team_id, p.id, p.name, p.description, p.color, p.region, p.created_at, p.updated_at, p.version,
		r.kind, r.id, r.name, r.description, r.type
		FROM projects p LEFT JOIN project_resources r ON r.team_id = p.team_id AND r.project_id = p.id
		WHERE p.team_id = $1 AND p.id = $2 ORDER BY r.kind, r.id`, team, id)
	if err != nil {
		return Project{}, nil, err
	}
	defer rows.Close()
	var (
		p         Project
		resources []Resource
		found     bool
	)
	for rows.Next() {
		var created, updated int64
		var kind, rid, name, description, typ sql.NullString
		if err := rows.Scan(&p.TeamID, &p.ID, &p.Name, &p.Description, &p.Color, &p.Region, &created, &updated, &p.Version,
			&kind, &rid, &name, &description, &typ); err != nil {
			return Project{}, nil, err
		}
		p.CreatedAt, p.UpdatedAt, found = time.UnixMicro(created).UTC(), time.UnixMicro(updated).UTC(), true
		if rid.Valid {
			resources = append(resources, Resource{TeamID: p.TeamID, ProjectID: p.ID, Kind: ResourceKind(kind.String),
				ID: rid.String, Name: name.String, Description: description.String, Type: typ.String})
		}
	}
	if err := rows.Err(); err != nil {
		return Project{}, nil, err
	}
	if !found {
		return Project{}, nil, ErrNotFound
	}
	return p, resources, nil
}

// List implements Store.
func (s *SQLStore) List(ctx context.Context, team string, page Page) ([]Project, bool, int, error) {
	from := `projects WHERE team_id = $1`
	args := []any{team}
	if len(page.Only) > 0 {
		// The restriction list is short (a token's projects), so an IN
		// list with one placeholder each serves both engines.
		marks := make([]string, len(page.Only))
		for i, id := range page.Only {
			args = append(args, id)
			marks[i] = fmt.Sprintf("$%d", len(args))
		}
		from += ` AND id IN (` + strings.Join(marks, ", ") + `)`
	}
	total, err := paging.Count(ctx, s.db, from, args...)
	if err != nil {
		return nil, false, 0, err
	}
	// One row more than asked tells whether another page follows.
	args = append(args, page.After, page.Limit+1, page.SkipRows())
	query := `SELECT ` + projectColumns + ` FROM ` + from +
		fmt.Sprintf(` AND id > $%d ORDER BY id LIMIT $%d OFFSET $%d`, len(args)-2, len(args)-1, len(args))
	rows, err := s.db.Query(ctx, query, args...)
	if err != nil {
		return nil, false, 0, err
	}
	list, more, err := paging.Collect(rows, page.Limit, func() (Project, error) { return scanProject(rows) })
	return list, more, total, err
}

// Update implements Store.
func (s *SQLStore) Update(ctx context.Context, team, id string, mutate func(*Project) ([]events.Event, error)) (Project, error) {
	var out Project
	err := sqldb.Optimistic(ctx, func() error {
		current, err := s.Get(ctx, team, id)
		if err != nil {
			return err
		}
		next := current
		evs, err := mutate(&next)
		if err != nil {
			return err
		}
		if next == current {
			out = current // nothing to write, nothing to announce
			return nil
		}
		next.TeamID, next.ID, next.Version = current.TeamID, current.ID, current.Version+1
		err = events.Write(ctx, s.db, s.committed, func(tx *sql.Tx) error {
			res, err := tx.ExecContext(ctx, `UPDATE projects SET name = $1, description = $2, color = $3, region = $4, updated_at = $5, version = $6
				WHERE team_id = $7 AND id = $8 AND version = $9`,
				next.Name, next.Description, next.Color, next.Region, next.UpdatedAt.UnixMicro(), next.Version, team, id, current.Version)
			return sqldb.Versioned(res, err)
		}, func() []events.Event { return evs })
		out = next
		return err
	})
	if err != nil { // sqldb.ErrContended is the contract's ErrConflict
		return Project{}, err
	}
	return out, nil
}

// Delete implements Store.
func (s *SQLStore) Delete(ctx context.Context, team, id string, force bool, evs ...events.Event) error {
	return events.Write(ctx, s.db, s.committed, func(tx *sql.Tx) error {
		var held int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM project_resources WHERE team_id = $1 AND project_id = $2`, team, id).Scan(&held); err != nil {
			return err
		}
		if held > 0 && !force {
			return fmt.Errorf("%w: %d", ErrNotEmpty, held)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM project_resources WHERE team_id = $1 AND project_id = $2`, team, id); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM projects WHERE team_id = $1 AND id = $2`, team, id)
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
}

// Resources implements Store.
func (s *SQLStore) Resources(ctx context.Context, team, projectID string) ([]Resource, error) {
	rows, err := s.db.Query(ctx, `SELECT team_id, project_id, kind, id, name, description, type FROM project_resources
		WHERE team_id = $1 AND project_id = $2 ORDER BY kind, id`, team, projectID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Resource
	for rows.Next() {
		var r Resource
		if err := rows.Scan(&r.TeamID, &r.ProjectID, &r.Kind, &r.ID, &r.Name, &r.Description, &r.Type); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// PutResource implements Store.
func (s *SQLStore) PutResource(ctx context.Context, r Resource) error {
	// The INSERT ... SELECT makes "project exists" and "record resource"
	// one statement, so a resource can't outlive a concurrently deleted
	// project.
	_, err := s.db.ExecContext(ctx, `INSERT INTO project_resources (team_id, project_id, kind, id, name, description, type)
		SELECT team_id, id, $3, $4, $5, $6, $7 FROM projects WHERE team_id = $1 AND id = $2
		ON CONFLICT (team_id, project_id, kind, id) DO UPDATE SET name = excluded.name, description = excluded.description, type = excluded.type`,
		r.TeamID, r.ProjectID, string(r.Kind), r.ID, r.Name, r.Description, r.Type)
	return err
}

// DeleteResource implements Store.
func (s *SQLStore) DeleteResource(ctx context.Context, team, projectID string, kind ResourceKind, id string) error {
	_, err := s.db.ExecContext(ctx, `DELETE FROM project_resources WHERE team_id = $1 AND project_id = $2 AND kind = $3 AND id = $4`, team, projectID, string(kind), id)
	return err
}
