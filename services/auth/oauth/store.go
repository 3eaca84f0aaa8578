package oauth

import (
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/handler/pkce"
	fstorage "github.com/ory/fosite/storage"

	"github.com/slipwayhq/slipway/pkg/sqldb"
)

//go:embed migrations/postgres/*.sql migrations/sqlite/*.sql
var migrationFiles embed.FS

// Migrations is the schema of this package (tables oauth_clients,
// oauth_sessions, oauth_jtis), tracked in its own version table so it can
// live in the auth database beside the auth service's own set.
var Migrations = sqldb.Migrations{Name: "oauth", FS: mustSub(migrationFiles, "migrations")}

func mustSub(f fs.FS, dir string) fs.FS {
	sub, err := fs.Sub(f, dir)
	if err != nil {
		panic(err)
	}
	return sub
}

// Session kinds in oauth_sessions.kind.
const (
	kindCode    = "code"
	kindPKCE    = "pkce"
	kindAccess  = "access"
	kindRefresh = "refresh"
)

// Store is fosite's storage on PostgreSQL or SQLite: clients, and the
// requests fosite keeps by token signature. It implements every storage
// interface the handlers composed by NewProvider need, and
// storage.Transactional so that refresh-token rotation and reuse
// revocation are atomic.
type Store struct {
	db  *sqldb.DB
	now func() time.Time
}

var (
	_ fosite.Storage                = (*Store)(nil)
	_ oauth2.CoreStorage            = (*Store)(nil)
	_ oauth2.TokenRevocationStorage = (*Store)(nil)
	_ pkce.PKCERequestStorage       = (*Store)(nil)
	_ fstorage.Transactional        = (*Store)(nil)
)

// NewStore returns the storage on db, whose schema must include
// Migrations.
func NewStore(db *sqldb.DB) *Store {
	return &Store{db: db, now: time.Now}
}

// querier is what both *sql.DB and *sql.Tx offer.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

type txKey struct{}

// q returns the transaction BeginTX put in ctx, or the database.
func (s *Store) q(ctx context.Context) querier {
	if tx, ok := ctx.Value(txKey{}).(*sql.Tx); ok {
		return tx
	}
	return s.db.DB
}

// BeginTX implements storage.Transactional.
func (s *Store) BeginTX(ctx context.Context) (context.Context, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return ctx, err
	}
	return context.WithValue(ctx, txKey{}, tx), nil
}

// Commit implements storage.Transactional.
func (s *Store) Commit(ctx context.Context) error {
	tx, ok := ctx.Value(txKey{}).(*sql.Tx)
	if !ok {
		return errors.New("oauth: commit without a transaction")
	}
	return tx.Commit()
}

// Rollback implements storage.Transactional.
func (s *Store) Rollback(ctx context.Context) error {
	tx, ok := ctx.Value(txKey{}).(*sql.Tx)
	if !ok {
		return errors.New("oauth: rollback without a transaction")
	}
	err := tx.Rollback()
	if errors.Is(err, sql.ErrTxDone) {
		return nil
	}
	return err
}

func jsonList(v []string) string {
	if v == nil {
		v = []string{}
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// ---- clients ----

// CreateClient inserts c with the hash of its secret (empty for public
// clients). RegisterClient is the validating way in.
func (s *Store) CreateClient(ctx context.Context, c *Client) error {
	_, err := s.q(ctx).ExecContext(ctx, `INSERT INTO oauth_clients
		(id, name, secret_hash, public, redirect_uris, grant_types, response_types, scopes, team_id, owner_id, allow_password_grant, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
		c.ID, c.Name, string(c.Secret), c.Public, jsonList(c.RedirectURIs), jsonList(c.GrantTypes),
		jsonList(c.ResponseTypes), jsonList(c.Scopes), c.TeamID, c.OwnerID, c.AllowPasswordGrant, sqldb.Micros(c.CreatedAt))
	if sqldb.IsUniqueViolation(err) {
		return fmt.Errorf("oauth: client %q: %w", c.ID, ErrClientExists)
	}
	return err
}

// ListClients returns a team's clients, ordered by id. Teams hold a
// handful of clients, so each is read with getClient rather than a second
// scanning path.
func (s *Store) ListClients(ctx context.Context, teamID string) ([]*Client, error) {
	rows, err := s.q(ctx).QueryContext(ctx, `SELECT id FROM oauth_clients WHERE team_id = $1 ORDER BY id`, teamID)
	if err != nil {
		return nil, err
	}
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, err
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	out := make([]*Client, 0, len(ids))
	for _, id := range ids {
		c, err := s.getClient(ctx, id)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// DeleteClient removes a client and every token issued to it.
func (s *Store) DeleteClient(ctx context.Context, id string) error {
	res, err := s.q(ctx).ExecContext(ctx, `DELETE FROM oauth_clients WHERE id = $1`, id)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fosite.ErrNotFound
	}
	_, err = s.q(ctx).ExecContext(ctx, `DELETE FROM oauth_sessions WHERE client_id = $1`, id)
	return err
}

// GetClient implements fosite.ClientManager. It returns *Client, or
// fosite.ErrNotFound.
func (s *Store) GetClient(ctx context.Context, id string) (fosite.Client, error) {
	return s.getClient(ctx, id)
}

func (s *Store) getClient(ctx context.Context, id string) (*Client, error) {
	var (
		c                                    Client
		secretHash, redirects, grants, resps string
		scopes                               string
		created                              int64
	)
	err := s.q(ctx).QueryRowContext(ctx, `SELECT id, name, secret_hash, public, redirect_uris, grant_types,
		response_types, scopes, team_id, owner_id, allow_password_grant, created_at
		FROM oauth_clients WHERE id = $1`, id).Scan(&c.ID, &c.Name, &secretHash, &c.Public, &redirects, &grants,
		&resps, &scopes, &c.TeamID, &c.OwnerID, &c.AllowPasswordGrant, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fosite.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	c.Secret = []byte(secretHash)
	c.CreatedAt = sqldb.FromMicros(created)
	for _, f := range []struct {
		raw string
		dst *[]string
	}{{redirects, &c.RedirectURIs}, {grants, &c.GrantTypes}, {resps, &c.ResponseTypes}, {scopes, &c.Scopes}} {
		if err := json.Unmarshal([]byte(f.raw), f.dst); err != nil {
			return nil, fmt.Errorf("oauth: client %q: %w", id, err)
		}
	}
	if !c.AllowPasswordGrant {
		// The password grant is opt-in per client: whatever the row says,
		// a client without the flag never offers it to fosite.
		c.GrantTypes = without(c.GrantTypes, GrantPassword)
	}
	return &c, nil
}

func without(list []string, v string) []string {
	out := []string{}
	for _, x := range list {
		if x != v {
			out = append(out, x)
		}
	}
	return out
}

// ClientAssertionJWTValid implements fosite.ClientManager.
func (s *Store) ClientAssertionJWTValid(ctx context.Context, jti string) error {
	var exp int64
	err := s.q(ctx).QueryRowContext(ctx, `SELECT expires_at FROM oauth_jtis WHERE jti = $1`, jti).Scan(&exp)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return err
	}
	if sqldb.FromMicros(exp).After(s.now()) {
		return fosite.ErrJTIKnown
	}
	return nil
}

// SetClientAssertionJWT implements fosite.ClientManager.
func (s *Store) SetClientAssertionJWT(ctx context.Context, jti string, exp time.Time) error {
	if _, err := s.q(ctx).ExecContext(ctx, `DELETE FROM oauth_jtis WHERE expires_at < $1`, sqldb.Micros(s.now())); err != nil {
		return err
	}
	_, err := s.q(ctx).ExecContext(ctx, `INSERT INTO oauth_jtis (jti, expires_at) VALUES ($1, $2)`, jti, sqldb.Micros(exp))
	if sqldb.IsUniqueViolation(err) {
		return fosite.ErrJTIKnown
	}
	return err
}

// ---- requests by signature ----

// storedRequest is the JSON a fosite request is kept as. The client is
// stored by id and loaded fresh, so a deleted client's tokens die with it.
type storedRequest struct {
	ID                string          `json:"id"`
	RequestedAt       time.Time       `json:"requested_at"`
	ClientID          string          `json:"client_id"`
	RequestedScopes   []string        `json:"requested_scopes"`
	GrantedScopes     []string        `json:"granted_scopes"`
	RequestedAudience []string        `json:"requested_audience,omitempty"`
	GrantedAudience   []string        `json:"granted_audience,omitempty"`
	Form              url.Values      `json:"form"`
	Session           json.RawMessage `json:"session"`
}

// sensitiveForm are form fields never written to storage, whatever
// fosite's sanitation list says.
var sensitiveForm = []string{"password", "client_secret", "csrf_token", "email"}

func (s *Store) create(ctx context.Context, kind, signature, accessSignature string, r fosite.Requester) error {
	sess, ok := r.GetSession().(*Session)
	if !ok || sess == nil {
		return fmt.Errorf("oauth: unexpected session type %T", r.GetSession())
	}
	raw, err := json.Marshal(sess)
	if err != nil {
		return err
	}
	form := url.Values{}
	for k, v := range r.GetRequestForm() {
		form[k] = v
	}
	for _, k := range sensitiveForm {
		form.Del(k)
	}
	sr := storedRequest{
		ID:                r.GetID(),
		RequestedAt:       r.GetRequestedAt(),
		ClientID:          r.GetClient().GetID(),
		RequestedScopes:   r.GetRequestedScopes(),
		GrantedScopes:     r.GetGrantedScopes(),
		RequestedAudience: r.GetRequestedAudience(),
		GrantedAudience:   r.GetGrantedAudience(),
		Form:              form,
		Session:           raw,
	}
	body, err := json.Marshal(sr)
	if err != nil {
		return err
	}
	var exp time.Time
	switch kind {
	case kindCode, kindPKCE:
		exp = sess.GetExpiresAt(fosite.AuthorizeCode)
	case kindAccess:
		exp = sess.GetExpiresAt(fosite.AccessToken)
	case kindRefresh:
		exp = sess.GetExpiresAt(fosite.RefreshToken)
	}
	_, err = s.q(ctx).ExecContext(ctx, `INSERT INTO oauth_sessions
		(kind, signature, request_id, client_id, subject, active, request, access_signature, requested_at, expires_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		kind, signature, sr.ID, sr.ClientID, sess.Subject, true, string(body), accessSignature,
		sqldb.Micros(sr.RequestedAt), sqldb.Micros(exp))
	return err
}

// get loads the request stored under signature; active reports whether it
// was invalidated. It returns fosite.ErrNotFound for none.
func (s *Store) get(ctx context.Context, kind, signature string) (*fosite.Request, bool, error) {
	var (
		body   string
		active bool
	)
	err := s.q(ctx).QueryRowContext(ctx, `SELECT request, active FROM oauth_sessions WHERE kind = $1 AND signature = $2`,
		kind, signature).Scan(&body, &active)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, false, fosite.ErrNotFound
	}
	if err != nil {
		return nil, false, err
	}
	var sr storedRequest
	if err := json.Unmarshal([]byte(body), &sr); err != nil {
		return nil, false, fmt.Errorf("oauth: stored request: %w", err)
	}
	sess := NewSession()
	if err := json.Unmarshal(sr.Session, sess); err != nil {
		return nil, false, fmt.Errorf("oauth: stored session: %w", err)
	}
	client, err := s.getClient(ctx, sr.ClientID)
	if err != nil {
		return nil, false, err
	}
	if sr.Form == nil {
		sr.Form = url.Values{}
	}
	r := &fosite.Request{
		ID:                sr.ID,
		RequestedAt:       sr.RequestedAt,
		Client:            client,
		RequestedScope:    fosite.Arguments(sr.RequestedScopes),
		GrantedScope:      fosite.Arguments(sr.GrantedScopes),
		RequestedAudience: fosite.Arguments(sr.RequestedAudience),
		GrantedAudience:   fosite.Arguments(sr.GrantedAudience),
		Form:              sr.Form,
		Session:           sess,
	}
	return r, active, nil
}

func (s *Store) delete(ctx context.Context, kind, signature string) error {
	_, err := s.q(ctx).ExecContext(ctx, `DELETE FROM oauth_sessions WHERE kind = $1 AND signature = $2`, kind, signature)
	return err
}

// CreateAuthorizeCodeSession implements oauth2.AuthorizeCodeStorage.
func (s *Store) CreateAuthorizeCodeSession(ctx context.Context, code string, r fosite.Requester) error {
	return s.create(ctx, kindCode, code, "", r)
}

// GetAuthorizeCodeSession implements oauth2.AuthorizeCodeStorage: an used
// code comes back with fosite.ErrInvalidatedAuthorizeCode, so that fosite
// revokes the tokens issued for it.
func (s *Store) GetAuthorizeCodeSession(ctx context.Context, code string, _ fosite.Session) (fosite.Requester, error) {
	r, active, err := s.get(ctx, kindCode, code)
	if err != nil {
		return nil, err
	}
	if !active {
		return r, fosite.ErrInvalidatedAuthorizeCode
	}
	return r, nil
}

// InvalidateAuthorizeCodeSession implements oauth2.AuthorizeCodeStorage.
func (s *Store) InvalidateAuthorizeCodeSession(ctx context.Context, code string) error {
	res, err := s.q(ctx).ExecContext(ctx, `UPDATE oauth_sessions SET active = $1 WHERE kind = $2 AND signature = $3`,
		false, kindCode, code)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fosite.ErrNotFound
	}
	return nil
}

// CreatePKCERequestSession implements pkce.PKCERequestStorage.
func (s *Store) CreatePKCERequestSession(ctx context.Context, signature string, r fosite.Requester) error {
	return s.create(ctx, kindPKCE, signature, "", r)
}

// GetPKCERequestSession implements pkce.PKCERequestStorage.
func (s *Store) GetPKCERequestSession(ctx context.Context, signature string, _ fosite.Session) (fosite.Requester, error) {
	r, _, err := s.get(ctx, kindPKCE, signature)
	if err != nil {
		return nil, err
	}
	return r, nil
}

// DeletePKCERequestSession implements pkce.PKCERequestStorage.
func (s *Store) DeletePKCERequestSession(ctx context.Context, signature string) error {
	return s.delete(ctx, kindPKCE, signature)
}

// CreateAccessTokenSession implements oauth2.AccessTokenStorage.
func (s *Store) CreateAccessTokenSession(ctx context.Context, signature string, r fosite.Requester) error {
	return s.create(ctx, kindAccess, signature, "", r)
}

// GetAccessTokenSession implements oauth2.AccessTokenStorage. Revoked
// access tokens are deleted, so every stored one is live (expiry is the
// token strategy's check).
func (s *Store) GetAccessTokenSession(ctx context.Context, signature string, _ fosite.Session) (fosite.Requester, error) {
	r, _, err := s.get(ctx, kindAccess, signature)
	if err != nil {
		return nil, err
	}
	return r, nil
}

// DeleteAccessTokenSession implements oauth2.AccessTokenStorage.
func (s *Store) DeleteAccessTokenSession(ctx context.Context, signature string) error {
	return s.delete(ctx, kindAccess, signature)
}

// CreateRefreshTokenSession implements oauth2.RefreshTokenStorage.
func (s *Store) CreateRefreshTokenSession(ctx context.Context, signature, accessSignature string, r fosite.Requester) error {
	return s.create(ctx, kindRefresh, signature, accessSignature, r)
}

// GetRefreshTokenSession implements oauth2.RefreshTokenStorage. A rotated
// or revoked refresh token comes back with fosite.ErrInactiveToken (and
// its request), which fosite treats as reuse: it revokes the whole chain.
func (s *Store) GetRefreshTokenSession(ctx context.Context, signature string, _ fosite.Session) (fosite.Requester, error) {
	r, active, err := s.get(ctx, kindRefresh, signature)
	if err != nil {
		return nil, err
	}
	if !active {
		return r, fosite.ErrInactiveToken
	}
	return r, nil
}

// DeleteRefreshTokenSession implements oauth2.RefreshTokenStorage.
func (s *Store) DeleteRefreshTokenSession(ctx context.Context, signature string) error {
	return s.delete(ctx, kindRefresh, signature)
}

// RotateRefreshToken implements oauth2.RefreshTokenStorage: it is called
// when a refresh token is used, before the new pair is stored under the
// same request id. Every refresh token of the grant becomes inactive (kept,
// so that a later reuse is recognised) and its access tokens are deleted.
func (s *Store) RotateRefreshToken(ctx context.Context, requestID string, _ string) error {
	if err := s.RevokeRefreshToken(ctx, requestID); err != nil {
		return err
	}
	return s.RevokeAccessToken(ctx, requestID)
}

// RevokeRefreshToken implements oauth2.TokenRevocationStorage: it
// deactivates every refresh token of the grant.
func (s *Store) RevokeRefreshToken(ctx context.Context, requestID string) error {
	_, err := s.q(ctx).ExecContext(ctx, `UPDATE oauth_sessions SET active = $1 WHERE kind = $2 AND request_id = $3`,
		false, kindRefresh, requestID)
	return err
}

// RevokeAccessToken implements oauth2.TokenRevocationStorage: it deletes
// every access token of the grant.
func (s *Store) RevokeAccessToken(ctx context.Context, requestID string) error {
	_, err := s.q(ctx).ExecContext(ctx, `DELETE FROM oauth_sessions WHERE kind = $1 AND request_id = $2`,
		kindAccess, requestID)
	return err
}

// DeleteExpired removes sessions that expired before cutoff (codes, PKCE
// requests and access tokens, and refresh tokens, inactive or not). Run it
// periodically; fosite never deletes on its own.
func (s *Store) DeleteExpired(ctx context.Context, cutoff time.Time) (int64, error) {
	res, err := s.q(ctx).ExecContext(ctx, `DELETE FROM oauth_sessions WHERE expires_at <> 0 AND expires_at < $1`, sqldb.Micros(cutoff))
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}
