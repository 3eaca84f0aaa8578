package oauth

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/ory/fosite"

	"github.com/slipwayhq/slipway/pkg/apierr"
	"github.com/slipwayhq/slipway/pkg/permissions"
	"github.com/slipwayhq/slipway/pkg/secret"
)

// Grant types a client may be registered for.
const (
	GrantAuthorizationCode = "authorization_code"
	GrantClientCredentials = "client_credentials"
	GrantRefreshToken      = "refresh_token"
	// GrantPassword is the resource-owner password grant: off unless the
	// client is registered with AllowPasswordGrant.
	GrantPassword = "password"
)

// SupportedGrants are the grant types of the authorization server.
var SupportedGrants = []string{GrantAuthorizationCode, GrantClientCredentials, GrantRefreshToken, GrantPassword}

// Errors of client registration.
var (
	// ErrInvalidClient wraps every validation failure of RegisterClient.
	ErrInvalidClient = errors.New("oauth: invalid client")
	// ErrClientExists means the client id is taken. It is the store
	// contract's apierr.ErrAlreadyExists, so the shared mapping
	// (apierr.FromStore) answers it like any other taken id.
	ErrClientExists = apierr.ErrAlreadyExists
)

// Client is a registered OAuth client, as fosite sees it (through the
// embedded DefaultClient, whose Secret holds secret.Hash of the client
// secret) plus Slipway's fields.
type Client struct {
	fosite.DefaultClient
	Name string
	// TeamID is the team every token issued to the client acts on.
	TeamID string
	// OwnerID is the user who registered the client; client-credentials
	// tokens are capped by this user's role in TeamID.
	OwnerID            string
	AllowPasswordGrant bool
	CreatedAt          time.Time
}

var _ fosite.Client = (*Client)(nil)

// GetGrantTypes returns exactly the registered grants (fosite's default
// client would turn an empty list into authorization_code).
func (c *Client) GetGrantTypes() fosite.Arguments { return c.GrantTypes }

// GetResponseTypes returns "code" for clients of the authorization code
// grant and nothing otherwise.
func (c *Client) GetResponseTypes() fosite.Arguments {
	if slices.Contains(c.GrantTypes, GrantAuthorizationCode) {
		return fosite.Arguments{"code"}
	}
	return fosite.Arguments{}
}

// ClientSpec is what RegisterClient takes.
type ClientSpec struct {
	Name    string
	TeamID  string
	OwnerID string
	// Public clients (SPAs, native and CLI apps) have no secret and must
	// use PKCE (S256) with the authorization code grant.
	Public bool
	// RedirectURIs are matched exactly: absolute, without a fragment;
	// https, http on a loopback host, or a private-use scheme (RFC 8252,
	// "com.example.app:/cb").
	RedirectURIs []string
	// GrantTypes ⊆ SupportedGrants. GrantPassword needs AllowPasswordGrant.
	GrantTypes []string
	// Scopes ⊆ permissions.Scopes(): the most any token of the client can
	// carry.
	Scopes             []string
	AllowPasswordGrant bool
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidClient, fmt.Sprintf(format, args...))
}

// Validate checks spec and returns it normalised (lists de-duplicated,
// scopes sorted).
func (spec ClientSpec) Validate() (ClientSpec, error) {
	if strings.TrimSpace(spec.TeamID) == "" {
		return spec, invalid("team_id is required")
	}
	if strings.TrimSpace(spec.OwnerID) == "" {
		return spec, invalid("owner_id is required")
	}
	if len(spec.Name) > 200 {
		return spec, invalid("name is longer than 200 characters")
	}
	if len(spec.GrantTypes) == 0 {
		return spec, invalid("at least one grant type is required")
	}
	grants := []string{}
	for _, g := range spec.GrantTypes {
		if !slices.Contains(SupportedGrants, g) {
			return spec, invalid("unsupported grant type %q", g)
		}
		if !slices.Contains(grants, g) {
			grants = append(grants, g)
		}
	}
	has := func(g string) bool { return slices.Contains(grants, g) }
	if has(GrantPassword) != spec.AllowPasswordGrant {
		return spec, invalid("the password grant must be listed exactly when allow_password_grant is set")
	}
	if spec.Public && has(GrantClientCredentials) {
		return spec, invalid("a public client cannot use the client_credentials grant")
	}
	if has(GrantRefreshToken) && !has(GrantAuthorizationCode) && !has(GrantPassword) {
		return spec, invalid("refresh_token needs authorization_code or password")
	}
	if has(GrantAuthorizationCode) && len(spec.RedirectURIs) == 0 {
		return spec, invalid("the authorization_code grant needs at least one redirect URI")
	}
	if !has(GrantAuthorizationCode) && len(spec.RedirectURIs) > 0 {
		return spec, invalid("redirect URIs are only for the authorization_code grant")
	}
	uris := []string{}
	for _, u := range spec.RedirectURIs {
		if err := validRedirectURI(u); err != nil {
			return spec, err
		}
		if !slices.Contains(uris, u) {
			uris = append(uris, u)
		}
	}
	if len(spec.Scopes) == 0 {
		return spec, invalid("at least one scope is required")
	}
	scopes := []string{}
	for _, s := range spec.Scopes {
		if !permissions.ValidScope(s) {
			return spec, invalid("unknown scope %q", s)
		}
		scopes = append(scopes, s)
	}
	slices.Sort(scopes)
	spec.GrantTypes, spec.RedirectURIs, spec.Scopes = grants, uris, slices.Compact(scopes)
	return spec, nil
}

func validRedirectURI(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || len(raw) > 2000 {
		return invalid("redirect URI %q does not parse", raw)
	}
	if !u.IsAbs() {
		return invalid("redirect URI %q is not absolute", raw)
	}
	if u.Fragment != "" || strings.Contains(raw, "#") {
		return invalid("redirect URI %q has a fragment", raw)
	}
	if u.User != nil {
		return invalid("redirect URI %q has user info", raw)
	}
	switch u.Scheme {
	case "https":
		if u.Host == "" {
			return invalid("redirect URI %q has no host", raw)
		}
	case "http":
		switch u.Hostname() {
		case "localhost", "127.0.0.1", "::1":
		default:
			return invalid("redirect URI %q: http is only allowed on a loopback host", raw)
		}
	default:
		// RFC 8252 §7.1: private-use schemes are reverse domain names.
		if !strings.Contains(u.Scheme, ".") {
			return invalid("redirect URI %q: use https, loopback http or a reverse-domain private-use scheme", raw)
		}
	}
	return nil
}

// RegisterClient validates spec and stores the client. It returns the new
// client id and, for a confidential client, its secret: shown once, only
// its hash is stored.
func (s *Store) RegisterClient(ctx context.Context, spec ClientSpec) (id, clientSecret string, err error) {
	spec, err = spec.Validate()
	if err != nil {
		return "", "", err
	}
	c := &Client{
		DefaultClient: fosite.DefaultClient{
			ID:           "slwc_" + strings.ReplaceAll(uuid.NewString(), "-", ""),
			RedirectURIs: spec.RedirectURIs,
			GrantTypes:   spec.GrantTypes,
			Scopes:       spec.Scopes,
			Public:       spec.Public,
		},
		Name:               spec.Name,
		TeamID:             spec.TeamID,
		OwnerID:            spec.OwnerID,
		AllowPasswordGrant: spec.AllowPasswordGrant,
		CreatedAt:          s.now().UTC(),
	}
	c.ResponseTypes = c.GetResponseTypes()
	if !spec.Public {
		clientSecret, err = secret.New(secret.KindAPISecret)
		if err != nil {
			return "", "", err
		}
		c.Secret = []byte(secret.Hash(clientSecret))
	}
	if err := s.CreateClient(ctx, c); err != nil {
		return "", "", err
	}
	return c.ID, clientSecret, nil
}

// secretHasher is fosite's client-secret hasher. Client secrets are
// generated with 30 random bytes (secret.New), so, like every other Slipway
// token, a plain SHA-256 (secret.Hash) is enough and bcrypt's cost would
// only slow the token endpoint down.
type secretHasher struct{}

var errSecretMismatch = errors.New("oauth: client secret mismatch")

func (secretHasher) Compare(_ context.Context, hash, data []byte) error {
	if len(hash) == 0 || !secret.Equal(string(hash), secret.Hash(string(data))) {
		return errSecretMismatch
	}
	return nil
}

func (secretHasher) Hash(_ context.Context, data []byte) ([]byte, error) {
	return []byte(secret.Hash(string(data))), nil
}
