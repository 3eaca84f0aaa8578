package addons

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"reflect"

	"github.com/slipwayhq/slipway/pkg/events"
	"github.com/slipwayhq/slipway/pkg/paging"
	"github.com/slipwayhq/slipway/pkg/secret"
	"github.com/slipwayhq/slipway/pkg/sqldb"
)

// SecretSQLStore is the SecretStore on PostgreSQL or SQLite.
type SecretSQLStore struct {
	db *sqldb.DB
	// box seals values at rest.
	box *secret.Box
	// committed wakes the outbox relay after a commit with events; may be
	// nil.
	committed func()
}

var _ SecretStore = (*SecretSQLStore)(nil)

// NewSecretSQLStore returns a store on db, whose schema must be migrated
// (migrations.Set and events.Migrations), sealing values with box.
func NewSecretSQLStore(db *sqldb.DB, box *secret.Box, committed func()) *SecretSQLStore {
	if box == nil {
		panic("addons: NewSecretSQLStore needs a secret.Box to seal values")
	}
	return &SecretSQLStore{db: db, box: box, committed: committed}
}

// secretValues is the sealed part of a group or a global secret.
type secretValues struct {
	Variables map[string]string          `json:"variables,omitempty"`
	Files     map[string]SecretFileValue `json:"files,omitempty"`
}

type secretRowScanner interface{ Scan(...any) error }

// seal encrypts values' JSON.
func (s *SecretSQLStore) seal(v secretValues) ([]byte, error) {
	plain, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return s.box.Seal(plain), nil
}

// open decrypts what seal stored. A failure is an error, never empty
// values.
func (s *SecretSQLStore) open(sealed []byte) (secretValues, error) {
	var v secretValues
	plain, err := s.box.Open(sealed)
	if err != nil {
		return v, err
	}
	if err := json.Unmarshal(plain, &v); err != nil {
		return v, err
	}
	if len(v.Variables) == 0 {
		v.Variables = nil
	}
	if len(v.Files) == 0 {
		v.Files = nil
	}
	return v, nil
}

// ---- secret groups

const secretGroupColumns = `team_id, project_id, id, name, description, tags, type, secret_type, priority,
	restrictions, addons, data, created_at, updated_at, version`

func (s *SecretSQLStore) scanGroup(row secretRowScanner) (SecretGroup, error) {
	var g SecretGroup
	var tags, restrictions, links string
	var data []byte
	var created, updated int64
	if err := row.Scan(&g.TeamID, &g.ProjectID, &g.ID, &g.Name, &g.Description, &tags, &g.Type, &g.SecretType, &g.Priority,
		&restrictions, &links, &data, &created, &updated, &g.Version); err != nil {
		return SecretGroup{}, err
	}
	if err := json.Unmarshal([]byte(tags), &g.Tags); err != nil {
		return SecretGroup{}, fmt.Errorf("addons: secret group %s tags: %w", g.ID, err)
	}
	if err := json.Unmarshal([]byte(restrictions), &g.Restrictions); err != nil {
		return SecretGroup{}, fmt.Errorf("addons: secret group %s restrictions: %w", g.ID, err)
	}
	if err := json.Unmarshal([]byte(links), &g.Addons); err != nil {
		return SecretGroup{}, fmt.Errorf("addons: secret group %s addon links: %w", g.ID, err)
	}
	v, err := s.open(data)
	if err != nil {
		return SecretGroup{}, fmt.Errorf("addons: secret group %s values: %w", g.ID, err)
	}
	g.Variables, g.Files = v.Variables, v.Files
	normalizeSecretGroup(&g)
	g.CreatedAt, g.UpdatedAt = sqldb.FromMicros(created), sqldb.FromMicros(updated)
	return g, nil
}

// normalizeSecretGroup makes empty collections nil, so that a group reads
// back equal to what was written whichever form it was given in.
func normalizeSecretGroup(g *SecretGroup) {
	if len(g.Tags) == 0 {
		g.Tags = nil
	}
	if len(g.Restrictions.Objects) == 0 {
		g.Restrictions.Objects = nil
	}
	if len(g.Restrictions.Tags) == 0 {
		g.Restrictions.Tags = nil
	}
	if len(g.Addons) == 0 {
		g.Addons = nil
	}
	for i := range g.Addons {
		if len(g.Addons[i].Keys) == 0 {
			g.Addons[i].Keys = nil
		}
		for j := range g.Addons[i].Keys {
			if len(g.Addons[i].Keys[j].Aliases) == 0 {
				g.Addons[i].Keys[j].Aliases = nil
			}
		}
	}
	if len(g.Variables) == 0 {
		g.Variables = nil
	}
	if len(g.Files) == 0 {
		g.Files = nil
	}
}

// groupValues returns g's stored form of the columns after the key, in
// secretGroupColumns order up to updated_at.
func (s *SecretSQLStore) groupValues(g SecretGroup) ([]any, error) {
	normalizeSecretGroup(&g)
	tags, links := g.Tags, g.Addons
	if tags == nil {
		tags = []string{}
	}
	if links == nil {
		links = []SecretAddonLink{}
	}
	tagsJSON, err := json.Marshal(tags)
	if err != nil {
		return nil, err
	}
	restrictions, err := json.Marshal(g.Restrictions)
	if err != nil {
		return nil, err
	}
	linksJSON, err := json.Marshal(links)
	if err != nil {
		return nil, err
	}
	data, err := s.seal(secretValues{Variables: g.Variables, Files: g.Files})
	if err != nil {
		return nil, err
	}
	return []any{g.Name, g.Description, string(tagsJSON), g.Type, g.SecretType, g.Priority,
		string(restrictions), string(linksJSON), data, sqldb.Micros(g.CreatedAt), sqldb.Micros(g.UpdatedAt)}, nil
}

// CreateSecretGroup implements SecretStore.
func (s *SecretSQLStore) CreateSecretGroup(ctx context.Context, g SecretGroup, evs ...events.Event) error {
	vals, err := s.groupValues(g)
	if err != nil {
		return err
	}
	err = events.Write(ctx, s.db, s.committed, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO secret_groups (`+secretGroupColumns+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, 1)`,
			append([]any{g.TeamID, g.ProjectID, g.ID}, vals...)...)
		return err
	}, func() []events.Event { return evs })
	return sqldb.AlreadyExistsIfUnique(err)
}

// GetSecretGroup implements SecretStore.
func (s *SecretSQLStore) GetSecretGroup(ctx context.Context, team, project, id string) (SecretGroup, error) {
	g, err := s.scanGroup(s.db.QueryRow(ctx, `SELECT `+secretGroupColumns+` FROM secret_groups
		WHERE team_id = $1 AND project_id = $2 AND id = $3`, team, project, id))
	if err != nil {
		return SecretGroup{}, sqldb.NotFoundIfNoRows(err)
	}
	return g, nil
}

// ListSecretGroups implements SecretStore.
func (s *SecretSQLStore) ListSecretGroups(ctx context.Context, team, project string, page paging.Page) ([]SecretGroup, bool, int, error) {
	const from = `secret_groups WHERE team_id = $1 AND project_id = $2`
	total, err := paging.Count(ctx, s.db, from, team, project)
	if err != nil {
		return nil, false, 0, err
	}
	rows, err := s.db.Query(ctx, `SELECT `+secretGroupColumns+` FROM `+from+` AND id > $3 ORDER BY id LIMIT $4 OFFSET $5`,
		team, project, page.After, page.Limit+1, page.SkipRows())
	if err != nil {
		return nil, false, 0, err
	}
	list, more, err := paging.Collect(rows, page.Limit, func() (SecretGroup, error) { return s.scanGroup(rows) })
	return list, more, total, err
}

// ProjectSecretGroups implements SecretStore.
func (s *SecretSQLStore) ProjectSecretGroups(ctx context.Context, team, project string) ([]SecretGroup, error) {
	rows, err := s.db.Query(ctx, `SELECT `+secretGroupColumns+` FROM secret_groups
		WHERE team_id = $1 AND project_id = $2 ORDER BY id`, team, project)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []SecretGroup
	for rows.Next() {
		g, err := s.scanGroup(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, g)
	}
	return out, rows.Err()
}

// UpdateSecretGroup implements SecretStore.
func (s *SecretSQLStore) UpdateSecretGroup(ctx context.Context, team, project, id string, mutate func(*SecretGroup) ([]events.Event, error)) (SecretGroup, error) {
	var out SecretGroup
	err := sqldb.Optimistic(ctx, func() error {
		current, err := s.GetSecretGroup(ctx, team, project, id)
		if err != nil {
			return err
		}
		next := cloneSecretGroup(current)
		evs, err := mutate(&next)
		if err != nil {
			return err
		}
		next.TeamID, next.ProjectID, next.ID = current.TeamID, current.ProjectID, current.ID
		next.CreatedAt, next.Version = current.CreatedAt, current.Version
		normalizeSecretGroup(&next)
		if reflect.DeepEqual(next, current) {
			out = current // nothing to write, nothing to announce
			return nil
		}
		next.Version++
		vals, err := s.groupValues(next)
		if err != nil {
			return err
		}
		err = events.Write(ctx, s.db, s.committed, func(tx *sql.Tx) error {
			res, err := tx.ExecContext(ctx, `UPDATE secret_groups SET name = $1, description = $2, tags = $3, type = $4,
				secret_type = $5, priority = $6, restrictions = $7, addons = $8, data = $9, created_at = $10, updated_at = $11,
				version = $12
				WHERE team_id = $13 AND project_id = $14 AND id = $15 AND version = $16`,
				append(vals, next.Version, team, project, id, current.Version)...)
			return sqldb.Versioned(res, err)
		}, func() []events.Event { return evs })
		out = next
		return err
	})
	if err != nil {
		return SecretGroup{}, err
	}
	return out, nil
}

// DeleteSecretGroup implements SecretStore.
func (s *SecretSQLStore) DeleteSecretGroup(ctx context.Context, team, project, id string, evs ...events.Event) error {
	return events.Write(ctx, s.db, s.committed, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM secret_groups WHERE team_id = $1 AND project_id = $2 AND id = $3`, team, project, id)
		return secretDeleted(res, err)
	}, func() []events.Event { return evs })
}

// secretDeleted turns a DELETE that matched no row into ErrNotFound.
func secretDeleted(res sql.Result, err error) error {
	if err := sqldb.NotFoundIfNoneAffected(res, err); err != nil {
		return err
	}
	return nil
}

// ---- global secrets

const globalSecretColumns = `team_id, id, name, description, type, data, created_at, updated_at, version`

func (s *SecretSQLStore) scanGlobal(row secretRowScanner) (GlobalSecret, error) {
	var g GlobalSecret
	var data []byte
	var created, updated int64
	if err := row.Scan(&g.TeamID, &g.ID, &g.Name, &g.Description, &g.Type, &data, &created, &updated, &g.Version); err != nil {
		return GlobalSecret{}, err
	}
	v, err := s.open(data)
	if err != nil {
		return GlobalSecret{}, fmt.Errorf("addons: global secret %s values: %w", g.ID, err)
	}
	g.Variables, g.Files = v.Variables, v.Files
	g.CreatedAt, g.UpdatedAt = sqldb.FromMicros(created), sqldb.FromMicros(updated)
	return g, nil
}

// CreateGlobalSecret implements SecretStore.
func (s *SecretSQLStore) CreateGlobalSecret(ctx context.Context, g GlobalSecret, evs ...events.Event) error {
	data, err := s.seal(secretValues{Variables: g.Variables, Files: g.Files})
	if err != nil {
		return err
	}
	err = events.Write(ctx, s.db, s.committed, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO secret_globals (`+globalSecretColumns+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 1)`,
			g.TeamID, g.ID, g.Name, g.Description, g.Type, data, sqldb.Micros(g.CreatedAt), sqldb.Micros(g.UpdatedAt))
		return err
	}, func() []events.Event { return evs })
	return sqldb.AlreadyExistsIfUnique(err)
}

// GetGlobalSecret implements SecretStore.
func (s *SecretSQLStore) GetGlobalSecret(ctx context.Context, team, id string) (GlobalSecret, error) {
	g, err := s.scanGlobal(s.db.QueryRow(ctx, `SELECT `+globalSecretColumns+` FROM secret_globals
		WHERE team_id = $1 AND id = $2`, team, id))
	if err != nil {
		return GlobalSecret{}, sqldb.NotFoundIfNoRows(err)
	}
	return g, nil
}

// ListGlobalSecrets implements SecretStore.
func (s *SecretSQLStore) ListGlobalSecrets(ctx context.Context, team string, page paging.Page) ([]GlobalSecret, bool, int, error) {
	const from = `secret_globals WHERE team_id = $1`
	total, err := paging.Count(ctx, s.db, from, team)
	if err != nil {
		return nil, false, 0, err
	}
	rows, err := s.db.Query(ctx, `SELECT `+globalSecretColumns+` FROM `+from+` AND id > $2 ORDER BY id LIMIT $3 OFFSET $4`,
		team, page.After, page.Limit+1, page.SkipRows())
	if err != nil {
		return nil, false, 0, err
	}
	list, more, err := paging.Collect(rows, page.Limit, func() (GlobalSecret, error) { return s.scanGlobal(rows) })
	return list, more, total, err
}

// UpdateGlobalSecret implements SecretStore.
func (s *SecretSQLStore) UpdateGlobalSecret(ctx context.Context, team, id string, mutate func(*GlobalSecret) ([]events.Event, error)) (GlobalSecret, error) {
	var out GlobalSecret
	err := sqldb.Optimistic(ctx, func() error {
		current, err := s.GetGlobalSecret(ctx, team, id)
		if err != nil {
			return err
		}
		next := cloneGlobalSecret(current)
		evs, err := mutate(&next)
		if err != nil {
			return err
		}
		next.TeamID, next.ID, next.CreatedAt, next.Version = current.TeamID, current.ID, current.CreatedAt, current.Version
		if len(next.Variables) == 0 {
			next.Variables = nil
		}
		if len(next.Files) == 0 {
			next.Files = nil
		}
		if reflect.DeepEqual(next, current) {
			out = current
			return nil
		}
		next.Version++
		data, err := s.seal(secretValues{Variables: next.Variables, Files: next.Files})
		if err != nil {
			return err
		}
		err = events.Write(ctx, s.db, s.committed, func(tx *sql.Tx) error {
			res, err := tx.ExecContext(ctx, `UPDATE secret_globals SET name = $1, description = $2, type = $3, data = $4,
				updated_at = $5, version = $6 WHERE team_id = $7 AND id = $8 AND version = $9`,
				next.Name, next.Description, next.Type, data, sqldb.Micros(next.UpdatedAt), next.Version, team, id, current.Version)
			return sqldb.Versioned(res, err)
		}, func() []events.Event { return evs })
		out = next
		return err
	})
	if err != nil {
		return GlobalSecret{}, err
	}
	return out, nil
}

// DeleteGlobalSecret implements SecretStore.
func (s *SecretSQLStore) DeleteGlobalSecret(ctx context.Context, team, id string, evs ...events.Event) error {
	return events.Write(ctx, s.db, s.committed, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM secret_globals WHERE team_id = $1 AND id = $2`, team, id)
		return secretDeleted(res, err)
	}, func() []events.Event { return evs })
}
