package auth

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
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

// queryer is what reads need from both *sql.DB and *sql.Tx, so that the
// existence checks of a write can run inside its transaction.
type queryer interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

type scanner interface{ Scan(...any) error }

func always(evs []events.Event) func() []events.Event {
	return func() []events.Event { return evs }
}

// micros is a time as stored; the zero time is "never", stored as NULL.
func micros(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixMicro()
}

func fromMicros(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return time.UnixMicro(v.Int64).UTC()
}

// nullable stores an empty string as NULL, for optional references.
func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func encodeList(list []string) (string, error) {
	if list == nil {
		list = []string{}
	}
	b, err := json.Marshal(list)
	return string(b), err
}

func decodeList(raw string) ([]string, error) {
	out := []string{}
	if err := json.Unmarshal([]byte(raw), &out); err != nil {
		return nil, fmt.Errorf("auth: corrupt list column: %w", err)
	}
	return out, nil
}

// exists reports whether query (a SELECT 1 ...) returns a row.
func exists(ctx context.Context, q queryer, query string, args ...any) (bool, error) {
	var one int
	err := q.QueryRowContext(ctx, query, args...).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

// Users.

const userColumns = `id, email, name, password_hash, created_at`

func scanUser(row scanner) (User, error) {
	var u User
	var created int64
	err := row.Scan(&u.ID, &u.Email, &u.Name, &u.PasswordHash, &created)
	u.CreatedAt = time.UnixMicro(created).UTC()
	return u, err
}

func insertUser(ctx context.Context, tx *sql.Tx, u User) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO users (`+userColumns+`) VALUES ($1, $2, $3, $4, $5)`,
		u.ID, u.Email, u.Name, u.PasswordHash, u.CreatedAt.UnixMicro())
	return sqldb.AlreadyExistsIfUnique(err)
}

// HasUsers implements Store.
func (s *SQLStore) HasUsers(ctx context.Context) (bool, error) {
	return exists(ctx, s.db, `SELECT 1 FROM users LIMIT 1`)
}

// CreateUser implements Store.
func (s *SQLStore) CreateUser(ctx context.Context, u User, evs ...events.Event) error {
	return events.Write(ctx, s.db, s.committed, func(tx *sql.Tx) error { return insertUser(ctx, tx, u) }, always(evs))
}

// GetUser implements Store.
func (s *SQLStore) GetUser(ctx context.Context, id string) (User, error) {
	u, err := scanUser(s.db.QueryRow(ctx, `SELECT `+userColumns+` FROM users WHERE id = $1`, id))
	return u, sqldb.NotFoundIfNoRows(err)
}

// GetUserByEmail implements Store.
func (s *SQLStore) GetUserByEmail(ctx context.Context, email string) (User, error) {
	u, err := scanUser(s.db.QueryRow(ctx, `SELECT `+userColumns+` FROM users WHERE email = $1`, email))
	return u, sqldb.NotFoundIfNoRows(err)
}

// Bootstrap implements Store.
func (s *SQLStore) Bootstrap(ctx context.Context, in Install, evs ...events.Event) error {
	return events.Write(ctx, s.db, s.committed, func(tx *sql.Tx) error {
		if has, err := exists(ctx, tx, `SELECT 1 FROM users LIMIT 1`); err != nil {
			return err
		} else if has {
			return ErrInstalled
		}
		// Two racing first starts both see no users; the marker row's
		// primary key lets only one of them commit.
		if _, err := tx.ExecContext(ctx, `INSERT INTO install (id, created_at) VALUES (1, $1)`, in.Team.CreatedAt.UnixMicro()); err != nil {
			if sqldb.IsUniqueViolation(err) {
				return ErrInstalled
			}
			return err
		}
		if err := insertUser(ctx, tx, in.User); err != nil {
			return err
		}
		if err := insertTeam(ctx, tx, in.Team, in.Roles, []Member{in.Member}); err != nil {
			return err
		}
		return insertToken(ctx, tx, in.Token)
	}, always(evs))
}

// Teams.

const teamColumns = `id, name, description, plan, email, created_at`

func scanTeam(row scanner) (Team, error) {
	var t Team
	var created int64
	err := row.Scan(&t.ID, &t.Name, &t.Description, &t.Plan, &t.Email, &created)
	t.CreatedAt = time.UnixMicro(created).UTC()
	return t, err
}

// insertTeam writes a team with its roles and members; the members' roles
// must be among roles, which is what the foreign key checks.
func insertTeam(ctx context.Context, tx *sql.Tx, t Team, roles []Role, members []Member) error {
	if _, err := tx.ExecContext(ctx, `INSERT INTO teams (`+teamColumns+`) VALUES ($1, $2, $3, $4, $5, $6)`,
		t.ID, t.Name, t.Description, t.Plan, t.Email, t.CreatedAt.UnixMicro()); err != nil {
		return sqldb.AlreadyExistsIfUnique(err)
	}
	for _, r := range roles {
		r.TeamID = t.ID
		if err := insertRole(ctx, tx, r); err != nil {
			return err
		}
	}
	for _, m := range members {
		m.TeamID = t.ID
		if err := insertMember(ctx, tx, m); err != nil {
			return err
		}
	}
	return nil
}

// CreateTeam implements Store.
func (s *SQLStore) CreateTeam(ctx context.Context, t Team, roles []Role, members []Member, evs ...events.Event) error {
	return events.Write(ctx, s.db, s.committed, func(tx *sql.Tx) error { return insertTeam(ctx, tx, t, roles, members) }, always(evs))
}

// GetTeam implements Store.
func (s *SQLStore) GetTeam(ctx context.Context, id string) (Team, error) {
	t, err := scanTeam(s.db.QueryRow(ctx, `SELECT `+teamColumns+` FROM teams WHERE id = $1`, id))
	return t, sqldb.NotFoundIfNoRows(err)
}

// UpdateTeam implements Store.
func (s *SQLStore) UpdateTeam(ctx context.Context, t Team, evs ...events.Event) error {
	return events.Write(ctx, s.db, s.committed, func(tx *sql.Tx) error {
		return affectedOne(tx.ExecContext(ctx, `UPDATE teams SET name = $1, description = $2, plan = $3, email = $4 WHERE id = $5`,
			t.Name, t.Description, t.Plan, t.Email, t.ID))
	}, always(evs))
}

// Members.

func insertMember(ctx context.Context, tx *sql.Tx, m Member) error {
	// Explicit checks rather than foreign-key errors: they give the
	// contract's ErrNotFound on both engines without engine-specific
	// error codes.
	if ok, err := exists(ctx, tx, `SELECT 1 FROM users WHERE id = $1`, m.UserID); err != nil {
		return err
	} else if !ok {
		return ErrNotFound
	}
	// A missing team has no roles, so this covers the team too.
	if ok, err := exists(ctx, tx, `SELECT 1 FROM roles WHERE team_id = $1 AND id = $2`, m.TeamID, m.RoleID); err != nil {
		return err
	} else if !ok {
		return ErrNotFound
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO members (team_id, user_id, role_id, joined_at) VALUES ($1, $2, $3, $4)`,
		m.TeamID, m.UserID, m.RoleID, m.JoinedAt.UnixMicro())
	return sqldb.AlreadyExistsIfUnique(err)
}

// AddMember implements Store.
func (s *SQLStore) AddMember(ctx context.Context, m Member, evs ...events.Event) error {
	return events.Write(ctx, s.db, s.committed, func(tx *sql.Tx) error { return insertMember(ctx, tx, m) }, always(evs))
}

// GetMember implements Store.
func (s *SQLStore) GetMember(ctx context.Context, teamID, userID string) (Member, error) {
	var m Member
	var joined int64
	err := s.db.QueryRow(ctx, `SELECT team_id, user_id, role_id, joined_at FROM members WHERE team_id = $1 AND user_id = $2`,
		teamID, userID).Scan(&m.TeamID, &m.UserID, &m.RoleID, &joined)
	m.JoinedAt = time.UnixMicro(joined).UTC()
	return m, sqldb.NotFoundIfNoRows(err)
}

// Memberships implements Store.
func (s *SQLStore) Memberships(ctx context.Context, userID string) ([]Member, error) {
	rows, err := s.db.Query(ctx, `SELECT team_id, user_id, role_id, joined_at FROM members WHERE user_id = $1 ORDER BY team_id`, userID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []Member{}
	for rows.Next() {
		var m Member
		var joined int64
		if err := rows.Scan(&m.TeamID, &m.UserID, &m.RoleID, &joined); err != nil {
			return nil, err
		}
		m.JoinedAt = time.UnixMicro(joined).UTC()
		out = append(out, m)
	}
	return out, rows.Err()
}

// ListMembers implements Store.
func (s *SQLStore) ListMembers(ctx context.Context, teamID string) ([]TeamMember, error) {
	rows, err := s.db.Query(ctx, `SELECT m.team_id, m.role_id, m.joined_at, u.id, u.email, u.name, u.password_hash, u.created_at
		FROM members m JOIN users u ON u.id = m.user_id WHERE m.team_id = $1 ORDER BY u.id`, teamID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []TeamMember{}
	for rows.Next() {
		var m TeamMember
		var joined, created int64
		if err := rows.Scan(&m.TeamID, &m.RoleID, &joined, &m.User.ID, &m.User.Email, &m.User.Name, &m.User.PasswordHash, &created); err != nil {
			return nil, err
		}
		m.UserID = m.User.ID
		m.JoinedAt = time.UnixMicro(joined).UTC()
		m.User.CreatedAt = time.UnixMicro(created).UTC()
		out = append(out, m)
	}
	return out, rows.Err()
}

// SetMemberRole implements Store.
func (s *SQLStore) SetMemberRole(ctx context.Context, teamID, userID, roleID string, evs ...events.Event) error {
	return events.Write(ctx, s.db, s.committed, func(tx *sql.Tx) error {
		if ok, err := exists(ctx, tx, `SELECT 1 FROM roles WHERE team_id = $1 AND id = $2`, teamID, roleID); err != nil {
			return err
		} else if !ok {
			return ErrNotFound
		}
		return affectedOne(tx.ExecContext(ctx, `UPDATE members SET role_id = $1 WHERE team_id = $2 AND user_id = $3`, roleID, teamID, userID))
	}, always(evs))
}

// RemoveMember implements Store.
func (s *SQLStore) RemoveMember(ctx context.Context, teamID, userID string, evs ...events.Event) error {
	return events.Write(ctx, s.db, s.committed, func(tx *sql.Tx) error {
		return affectedOne(tx.ExecContext(ctx, `DELETE FROM members WHERE team_id = $1 AND user_id = $2`, teamID, userID))
	}, always(evs))
}

// affectedOne turns "no row matched" into ErrNotFound.
func affectedOne(res sql.Result, err error) error {
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == 0 {
		return ErrNotFound
	}
	return nil
}

// Roles.

const roleColumns = `team_id, id, name, description, permissions, restricted, restriction_mode, restriction_projects, builtin, created_at, updated_at`

func scanRole(row scanner) (Role, error) {
	var r Role
	var perms, projects, mode string
	var created, updated int64
	if err := row.Scan(&r.TeamID, &r.ID, &r.Name, &r.Description, &perms, &r.Restrictions.Enabled, &mode, &projects,
		&r.Builtin, &created, &updated); err != nil {
		return Role{}, err
	}
	r.Restrictions.Mode = RestrictionMode(mode)
	r.CreatedAt = time.UnixMicro(created).UTC()
	r.UpdatedAt = time.UnixMicro(updated).UTC()
	var err error
	if r.Permissions, err = decodeList(perms); err != nil {
		return Role{}, err
	}
	if r.Restrictions.Projects, err = decodeList(projects); err != nil {
		return Role{}, err
	}
	return r, nil
}

func insertRole(ctx context.Context, tx *sql.Tx, r Role) error {
	perms, err := encodeList(r.Permissions)
	if err != nil {
		return err
	}
	projects, err := encodeList(r.Restrictions.Projects)
	if err != nil {
		return err
	}
	mode := r.Restrictions.Mode
	if mode == "" {
		mode = RestrictIn
	}
	if ok, err := exists(ctx, tx, `SELECT 1 FROM teams WHERE id = $1`, r.TeamID); err != nil {
		return err
	} else if !ok {
		return ErrNotFound
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO roles (`+roleColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
		r.TeamID, r.ID, r.Name, r.Description, perms, r.Restrictions.Enabled, string(mode), projects, r.Builtin,
		r.CreatedAt.UnixMicro(), r.UpdatedAt.UnixMicro())
	return sqldb.AlreadyExistsIfUnique(err)
}

// CreateRole implements Store.
func (s *SQLStore) CreateRole(ctx context.Context, r Role, evs ...events.Event) error {
	return events.Write(ctx, s.db, s.committed, func(tx *sql.Tx) error { return insertRole(ctx, tx, r) }, always(evs))
}

// UpdateRole implements Store.
func (s *SQLStore) UpdateRole(ctx context.Context, r Role, evs ...events.Event) error {
	perms, err := encodeList(r.Permissions)
	if err != nil {
		return err
	}
	projects, err := encodeList(r.Restrictions.Projects)
	if err != nil {
		return err
	}
	mode := r.Restrictions.Mode
	if mode == "" {
		mode = RestrictIn
	}
	return events.Write(ctx, s.db, s.committed, func(tx *sql.Tx) error {
		var builtin bool
		err := tx.QueryRowContext(ctx, `SELECT builtin FROM roles WHERE team_id = $1 AND id = $2`, r.TeamID, r.ID).Scan(&builtin)
		if err != nil {
			return sqldb.NotFoundIfNoRows(err)
		}
		if builtin {
			return ErrBuiltin
		}
		return affectedOne(tx.ExecContext(ctx, `UPDATE roles SET name = $1, description = $2, permissions = $3, restricted = $4,
			restriction_mode = $5, restriction_projects = $6, updated_at = $7 WHERE team_id = $8 AND id = $9 AND builtin = $10`,
			r.Name, r.Description, perms, r.Restrictions.Enabled, string(mode), projects, r.UpdatedAt.UnixMicro(), r.TeamID, r.ID, false))
	}, always(evs))
}

// GetRole implements Store.
func (s *SQLStore) GetRole(ctx context.Context, teamID, id string) (Role, error) {
	r, err := scanRole(s.db.QueryRow(ctx, `SELECT `+roleColumns+` FROM roles WHERE team_id = $1 AND id = $2`, teamID, id))
	return r, sqldb.NotFoundIfNoRows(err)
}

// ListRoles implements Store.
func (s *SQLStore) ListRoles(ctx context.Context, teamID string) ([]Role, error) {
	rows, err := s.db.Query(ctx, `SELECT `+roleColumns+` FROM roles WHERE team_id = $1 ORDER BY id`, teamID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []Role{}
	for rows.Next() {
		r, err := scanRole(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// DeleteRole implements Store.
func (s *SQLStore) DeleteRole(ctx context.Context, teamID, id string, evs ...events.Event) error {
	return events.Write(ctx, s.db, s.committed, func(tx *sql.Tx) error {
		var builtin bool
		err := tx.QueryRowContext(ctx, `SELECT builtin FROM roles WHERE team_id = $1 AND id = $2`, teamID, id).Scan(&builtin)
		if err != nil {
			return sqldb.NotFoundIfNoRows(err)
		}
		if builtin {
			return ErrBuiltin
		}
		// A token created concurrently with this delete can still slip
		// through on PostgreSQL's read committed; Authenticate refuses a
		// token whose role is gone, so that race fails closed.
		for _, q := range []string{
			`SELECT 1 FROM members WHERE team_id = $1 AND role_id = $2 LIMIT 1`,
			`SELECT 1 FROM tokens WHERE team_id = $1 AND role_id = $2 AND revoked_at IS NULL LIMIT 1`,
		} {
			if used, err := exists(ctx, tx, q, teamID, id); err != nil {
				return err
			} else if used {
				return ErrInUse
			}
		}
		return affectedOne(tx.ExecContext(ctx, `DELETE FROM roles WHERE team_id = $1 AND id = $2`, teamID, id))
	}, always(evs))
}

// Tokens.

const tokenColumns = `id, kind, name, team_id, user_id, role_id, projects, prefix, secret_hash, created_at, expires_at, last_used_at, revoked_at`

func scanToken(row scanner) (Token, error) {
	var t Token
	var kind, projects string
	var user sql.NullString
	var created int64
	var expires, used, revoked sql.NullInt64
	if err := row.Scan(&t.ID, &kind, &t.Name, &t.TeamID, &user, &t.RoleID, &projects, &t.Prefix, &t.SecretHash,
		&created, &expires, &used, &revoked); err != nil {
		return Token{}, err
	}
	t.Kind = TokenKind(kind)
	t.UserID = user.String
	t.CreatedAt = time.UnixMicro(created).UTC()
	t.ExpiresAt, t.LastUsedAt, t.RevokedAt = fromMicros(expires), fromMicros(used), fromMicros(revoked)
	var err error
	if t.Projects, err = decodeList(projects); err != nil {
		return Token{}, err
	}
	return t, nil
}

func insertToken(ctx context.Context, tx *sql.Tx, t Token) error {
	projects, err := encodeList(t.Projects)
	if err != nil {
		return err
	}
	if ok, err := exists(ctx, tx, `SELECT 1 FROM roles WHERE team_id = $1 AND id = $2`, t.TeamID, t.RoleID); err != nil {
		return err
	} else if !ok {
		return ErrNotFound // also when the team is missing: it has no roles
	}
	if t.UserID != "" {
		if ok, err := exists(ctx, tx, `SELECT 1 FROM users WHERE id = $1`, t.UserID); err != nil {
			return err
		} else if !ok {
			return ErrNotFound
		}
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO tokens (`+tokenColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`,
		t.ID, string(t.Kind), t.Name, t.TeamID, nullable(t.UserID), t.RoleID, projects, t.Prefix, t.SecretHash,
		t.CreatedAt.UnixMicro(), micros(t.ExpiresAt), micros(t.LastUsedAt), micros(t.RevokedAt))
	return sqldb.AlreadyExistsIfUnique(err)
}

// CreateToken implements Store.
func (s *SQLStore) CreateToken(ctx context.Context, t Token, evs ...events.Event) error {
	return events.Write(ctx, s.db, s.committed, func(tx *sql.Tx) error { return insertToken(ctx, tx, t) }, always(evs))
}

// GetToken implements Store.
func (s *SQLStore) GetToken(ctx context.Context, id string) (Token, error) {
	return getToken(ctx, s.db, id)
}

func getToken(ctx context.Context, q queryer, id string) (Token, error) {
	t, err := scanToken(q.QueryRowContext(ctx, `SELECT `+tokenColumns+` FROM tokens WHERE id = $1`, id))
	return t, sqldb.NotFoundIfNoRows(err)
}

// GetTokenByHash implements Store.
func (s *SQLStore) GetTokenByHash(ctx context.Context, hash string) (Token, error) {
	t, err := scanToken(s.db.QueryRow(ctx, `SELECT `+tokenColumns+` FROM tokens WHERE secret_hash = $1`, hash))
	return t, sqldb.NotFoundIfNoRows(err)
}

// ListTokens implements Store.
func (s *SQLStore) ListTokens(ctx context.Context, teamID string, page Page) ([]Token, bool, int, error) {
	total, err := paging.Count(ctx, s.db, `tokens WHERE team_id = $1`, teamID)
	if err != nil {
		return nil, false, 0, err
	}
	// One row more than asked tells whether another page follows.
	var rows sqldb.Rows
	if page.After != "" {
		rows, err = s.db.Query(ctx, `SELECT `+tokenColumns+` FROM tokens WHERE team_id = $1 AND id > $2 ORDER BY id LIMIT $3`,
			teamID, page.After, page.Limit+1)
	} else {
		rows, err = s.db.Query(ctx, `SELECT `+tokenColumns+` FROM tokens WHERE team_id = $1 ORDER BY id LIMIT $2 OFFSET $3`,
			teamID, page.Limit+1, page.Offset)
	}
	if err != nil {
		return nil, false, 0, err
	}
	list, more, err := paging.Collect(rows, page.Limit, func() (Token, error) { return scanToken(rows) })
	return list, more, total, err
}

// RevokeToken implements Store.
func (s *SQLStore) RevokeToken(ctx context.Context, id string, at time.Time, evs ...events.Event) (Token, bool, error) {
	var changed bool
	var t Token
	err := events.Write(ctx, s.db, s.committed, func(tx *sql.Tx) error {
		// The IS NULL condition makes the first revocation win and keeps
		// its time: revoking again changes and announces nothing.
		res, err := tx.ExecContext(ctx, `UPDATE tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL`, at.UnixMicro(), id)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		changed = n == 1
		t, err = getToken(ctx, tx, id)
		return err
	}, func() []events.Event {
		if changed {
			return evs
		}
		return nil
	})
	if err != nil {
		return Token{}, false, err
	}
	return t, changed, nil
}

// TouchToken implements Store.
func (s *SQLStore) TouchToken(ctx context.Context, id string, at time.Time, every time.Duration) (bool, error) {
	res, err := s.db.ExecContext(ctx, `UPDATE tokens SET last_used_at = $1 WHERE id = $2 AND (last_used_at IS NULL OR last_used_at <= $3)`,
		at.UnixMicro(), id, at.Add(-every).UnixMicro())
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}
