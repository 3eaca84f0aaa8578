// Package oauth is Slipway's OAuth 2.0 authorization server, built on
// github.com/ory/fosite: the protocol (authorization code with PKCE,
// client credentials, refresh-token rotation with reuse detection, the
// opt-in resource-owner password grant, RFC 7662 introspection, RFC 7009
// revocation) is fosite's; this package supplies SQL storage on both
// engines, Slipway-format tokens, the sign-in and consent pages, RFC 8414
// metadata, client registration and Resolve, which turns an access token
// into the grant the auth service builds a principal from.
//
// The package does not import services/auth (the auth service imports it
// to resolve OAuth tokens), so users are reached through the Users
// interface; see UsersFunc for the adapter over auth.Store.
package oauth

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/compose"
	"github.com/ory/fosite/handler/oauth2"
	fhmac "github.com/ory/fosite/token/hmac"

	"github.com/slipwayhq/slipway/pkg/secret"
	"github.com/slipwayhq/slipway/pkg/sqldb"
)

// MinSecretLen is the shortest global secret New accepts.
const MinSecretLen = 32

// Default lifespans.
const (
	DefaultAccessTokenLifespan   = time.Hour
	DefaultRefreshTokenLifespan  = 30 * 24 * time.Hour
	DefaultAuthorizeCodeLifespan = 10 * time.Minute
	DefaultSignInLifespan        = 12 * time.Hour
)

// User is what the sign-in page and the password grant need of a user.
type User struct {
	ID    string
	Email string
	// PasswordHash is an argon2id PHC string (secret.HashPassword); empty
	// means the user cannot sign in with a password.
	PasswordHash string
}

// ErrUserNotFound is what Users returns for an unknown email.
var ErrUserNotFound = errors.New("oauth: user not found")

// Users finds users by (lower-case) email; it returns ErrUserNotFound for
// none. Over auth.Store:
//
//	oauth.UsersFunc(func(ctx context.Context, email string) (oauth.User, error) {
//		u, err := store.GetUserByEmail(ctx, email)
//		if errors.Is(err, auth.ErrNotFound) {
//			return oauth.User{}, oauth.ErrUserNotFound
//		}
//		return oauth.User{ID: u.ID, Email: u.Email, PasswordHash: u.PasswordHash}, err
//	})
type Users interface {
	UserByEmail(ctx context.Context, email string) (User, error)
}

// UsersFunc adapts a function to Users.
type UsersFunc func(ctx context.Context, email string) (User, error)

// UserByEmail implements Users.
func (f UsersFunc) UserByEmail(ctx context.Context, email string) (User, error) { return f(ctx, email) }

// Config configures New.
type Config struct {
	// DB holds the Migrations schema.
	DB *sqldb.DB
	// Users authenticates the sign-in page and the password grant.
	Users Users
	// IsMember, when set, is asked whether a user may act on a client's
	// team before a code or a password-grant token is issued, so a
	// non-member never gets one. The auth service's Authenticate checks
	// membership again at every use regardless.
	IsMember func(ctx context.Context, teamID, userID string) (bool, error)
	// Issuer is the public base URL of the server (scheme and host, no
	// trailing slash), e.g. "https://slipway.example.com": the RFC 8414
	// issuer and the base of every endpoint. Cookies are Secure when it is
	// https.
	Issuer string
	// Secret (at least MinSecretLen bytes) keys the authorization-code
	// HMAC and the sign-in cookie and CSRF tokens; keep it stable across
	// restarts and replicas.
	Secret []byte
	// Lifespans; zero means the Default* constant.
	AccessTokenLifespan   time.Duration
	RefreshTokenLifespan  time.Duration
	AuthorizeCodeLifespan time.Duration
	SignInLifespan        time.Duration
	// Throttle limits requests and failed attempts; nil: MemoryThrottle.
	Throttle *Throttle
}

// Provider is the authorization server.
type Provider struct {
	store    *Store
	oauth    fosite.OAuth2Provider
	fosite   *fosite.Config
	users    Users
	isMember func(ctx context.Context, teamID, userID string) (bool, error)
	issuer   string
	secure   bool
	// cookieKey signs the sign-in cookie and CSRF tokens.
	cookieKey    []byte
	signInMaxAge time.Duration
	now          func() time.Time
	throttle     *Throttle
}

// derive returns a purpose-specific key from the global secret, so that no
// two uses share a key.
func derive(key []byte, purpose string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("slipway/oauth/" + purpose))
	return m.Sum(nil)
}

// New composes the fosite provider with the handlers Slipway offers.
func New(cfg Config) (*Provider, error) {
	if cfg.DB == nil || cfg.Users == nil {
		return nil, errors.New("oauth: DB and Users are required")
	}
	if len(cfg.Secret) < MinSecretLen {
		return nil, fmt.Errorf("oauth: the secret must be at least %d bytes", MinSecretLen)
	}
	iss, err := url.Parse(cfg.Issuer)
	if err != nil || (iss.Scheme != "https" && iss.Scheme != "http") || iss.Host == "" ||
		iss.RawQuery != "" || iss.Fragment != "" || strings.HasSuffix(cfg.Issuer, "/") {
		return nil, fmt.Errorf("oauth: issuer %q must be an http(s) URL without a trailing slash, query or fragment", cfg.Issuer)
	}
	orDefault := func(d, def time.Duration) time.Duration {
		if d <= 0 {
			return def
		}
		return d
	}
	fc := &fosite.Config{
		AccessTokenLifespan:            orDefault(cfg.AccessTokenLifespan, DefaultAccessTokenLifespan),
		RefreshTokenLifespan:           orDefault(cfg.RefreshTokenLifespan, DefaultRefreshTokenLifespan),
		AuthorizeCodeLifespan:          orDefault(cfg.AuthorizeCodeLifespan, DefaultAuthorizeCodeLifespan),
		GlobalSecret:                   derive(cfg.Secret, "fosite-hmac"),
		ScopeStrategy:                  fosite.ExactScopeStrategy,
		AudienceMatchingStrategy:       fosite.DefaultAudienceMatchingStrategy,
		EnforcePKCEForPublicClients:    true,
		EnablePKCEPlainChallengeMethod: false,
		// Every grant that may refresh gets a refresh token; no
		// "offline" scope dance.
		RefreshTokenScopes:  []string{},
		ClientSecretsHasher: secretHasher{},
		TokenURL:            cfg.Issuer + "/oauth2/token",
		AccessTokenIssuer:   cfg.Issuer,
		MinParameterEntropy: fosite.MinParameterEntropy,
	}
	throttle := cfg.Throttle
	if throttle == nil {
		throttle = MemoryThrottle()
	}
	store := NewStore(cfg.DB)
	strategy := &tokenStrategy{
		codes:  oauth2.NewHMACSHAStrategyUnPrefixed(&fhmac.HMACStrategy{Config: fc}, fc),
		config: fc,
	}
	storage := &composedStorage{Store: store, users: cfg.Users}
	provider := compose.Compose(fc, storage, strategy,
		compose.OAuth2AuthorizeExplicitFactory,
		compose.OAuth2PKCEFactory,
		compose.OAuth2ClientCredentialsGrantFactory,
		compose.OAuth2RefreshTokenGrantFactory,
		compose.OAuth2ResourceOwnerPasswordCredentialsFactory,
		compose.OAuth2TokenIntrospectionFactory,
		compose.OAuth2TokenRevocationFactory,
	)
	return &Provider{
		store:        store,
		oauth:        provider,
		fosite:       fc,
		users:        cfg.Users,
		isMember:     cfg.IsMember,
		issuer:       cfg.Issuer,
		secure:       iss.Scheme == "https",
		cookieKey:    derive(cfg.Secret, "cookie"),
		signInMaxAge: orDefault(cfg.SignInLifespan, DefaultSignInLifespan),
		now:          time.Now,
		throttle:     throttle,
	}, nil
}

// Store returns the provider's storage (client management, cleanup).
func (p *Provider) Store() *Store { return p.store }

// RegisterClient validates spec and stores the client; see
// Store.RegisterClient.
func (p *Provider) RegisterClient(ctx context.Context, spec ClientSpec) (id, clientSecret string, err error) {
	return p.store.RegisterClient(ctx, spec)
}

// composedStorage adds the password grant's Authenticate to Store.
type composedStorage struct {
	*Store
	users Users
}

var _ oauth2.ResourceOwnerPasswordCredentialsGrantStorage = (*composedStorage)(nil)

// Authenticate implements the password grant's user check: the subject is
// the user's id. Unknown users cost the same as wrong passwords.
func (s *composedStorage) Authenticate(ctx context.Context, email, password string) (string, error) {
	u, err := checkPassword(ctx, s.users, email, password)
	if errors.Is(err, errBadCredentials) {
		return "", fosite.ErrNotFound.WithDebug("invalid credentials")
	}
	if err != nil {
		return "", err
	}
	return u.ID, nil
}

var errBadCredentials = errors.New("oauth: invalid email or password")

// checkPassword verifies a sign-in. It returns errBadCredentials for an
// unknown user, a user without a password and a wrong password alike, and
// spends an argon2 verification in every case.
func checkPassword(ctx context.Context, users Users, email, password string) (User, error) {
	email = strings.ToLower(strings.TrimSpace(email))
	u, err := users.UserByEmail(ctx, email)
	if errors.Is(err, ErrUserNotFound) || (err == nil && u.PasswordHash == "") {
		secret.DummyVerify(password)
		return User{}, errBadCredentials
	}
	if err != nil {
		return User{}, err
	}
	ok, _, err := secret.VerifyPassword(u.PasswordHash, password)
	if err != nil {
		return User{}, err
	}
	if !ok {
		return User{}, errBadCredentials
	}
	return u, nil
}

// Grant is what an OAuth access token stands for.
type Grant struct {
	// UserID is the user whose role in TeamID caps the token: the user who
	// consented (or signed in with the password grant), or the client's
	// owner for client credentials.
	UserID   string
	ClientID string
	TeamID   string
	// GrantType is the grant that started the token's chain.
	GrantType string
	// Scopes are the granted scopes; the token's permissions are
	// permissions.Narrow(role permissions, Scopes).
	Scopes    []string
	ExpiresAt time.Time
}

// ErrInvalidToken is Resolve's one error for a token that is malformed,
// unknown, expired or revoked.
var ErrInvalidToken = errors.New("oauth: invalid, expired or revoked token")

// Resolve introspects an access token (slw_oat_…) through fosite and
// returns its grant. It returns ErrInvalidToken for any token that is not
// a live access token, and another error only when the check itself
// failed (database down).
func (p *Provider) Resolve(ctx context.Context, accessToken string) (Grant, error) {
	if kind, err := secret.Parse(accessToken); err != nil || kind != secret.KindOAuthAccess {
		return Grant{}, ErrInvalidToken
	}
	use, ar, err := p.oauth.IntrospectToken(ctx, accessToken, fosite.AccessToken, NewSession())
	if err != nil {
		return Grant{}, classify(err)
	}
	sess, ok := ar.GetSession().(*Session)
	if use != fosite.AccessToken || !ok {
		return Grant{}, ErrInvalidToken
	}
	return Grant{
		UserID:    sess.UserID,
		ClientID:  ar.GetClient().GetID(),
		TeamID:    sess.TeamID,
		GrantType: sess.GrantType,
		Scopes:    append([]string{}, ar.GetGrantedScopes()...),
		ExpiresAt: sess.GetExpiresAt(fosite.AccessToken),
	}, nil
}

// classify tells a rejected token (the root cause is one of fosite's
// protocol errors) from a failed check (anything else, e.g. a database
// error).
func classify(err error) error {
	root := err
	for {
		next := errors.Unwrap(root)
		if next == nil {
			break
		}
		root = next
	}
	var rfc *fosite.RFC6749Error
	var rfcVal fosite.RFC6749Error
	if errors.As(root, &rfc) || errors.As(root, &rfcVal) {
		return ErrInvalidToken
	}
	return fmt.Errorf("oauth: resolving token: %w", root)
}
