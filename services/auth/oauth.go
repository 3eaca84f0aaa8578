package auth

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/timestamppb"

	authv1 "github.com/slipwayhq/slipway/gen/slipway/auth/v1"
	"github.com/slipwayhq/slipway/pkg/apierr"
	"github.com/slipwayhq/slipway/pkg/authz"
	"github.com/slipwayhq/slipway/pkg/permissions"
	"github.com/slipwayhq/slipway/pkg/secret"
	"github.com/slipwayhq/slipway/pkg/sqldb"
	"github.com/slipwayhq/slipway/services/auth/oauth"
)

// oauthPrincipal resolves an OAuth access token. The token acts for its
// user (for client credentials: the client's owner) in the client's team,
// with the permissions both the user's current role there and the token's
// scopes allow, so it can never exceed the role.
func (s *server) oauthPrincipal(ctx context.Context, token string) (*authv1.Principal, error) {
	if s.oauth == nil {
		return nil, errRejected
	}
	g, err := s.oauth.Resolve(ctx, token)
	if errors.Is(err, oauth.ErrInvalidToken) {
		return nil, errRejected
	}
	if err != nil {
		return nil, err
	}
	team, err := s.store.GetTeam(ctx, g.TeamID)
	if err != nil {
		return nil, err
	}
	m, err := s.store.GetMember(ctx, g.TeamID, g.UserID)
	if err != nil {
		return nil, err
	}
	role, err := s.store.GetRole(ctx, g.TeamID, m.RoleID)
	if err != nil {
		return nil, err
	}
	perms := permissions.Narrow(role.Permissions, g.Scopes)
	scope := allProjects().restrict(role.Restrictions)
	perms = scope.permit(perms)
	slices.Sort(perms)
	p := &authv1.Principal{
		Kind:          string(authz.PrincipalOAuth),
		UserId:        g.UserID,
		TokenId:       "oauth:" + g.ClientID,
		DefaultTeamId: g.TeamID,
		Grants:        []*authv1.TeamGrant{{TeamId: g.TeamID, RoleId: m.RoleID, Permissions: perms, Projects: scope.list(), Plan: team.Plan}},
	}
	if !g.ExpiresAt.IsZero() {
		p.ExpiresAt = timestamppb.New(g.ExpiresAt)
	}
	return p, nil
}

// isOAuthAccessToken tells OAuth access tokens from the auth service's own.
func isOAuthAccessToken(header string) (string, bool) {
	scheme, cred, ok := strings.Cut(strings.TrimSpace(header), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	cred = strings.TrimSpace(cred)
	kind, err := secret.Parse(cred)
	return cred, err == nil && kind == secret.KindOAuthAccess
}

// ListOAuthClients implements AuthService.
func (s *server) ListOAuthClients(ctx context.Context, _ *authv1.ListOAuthClientsRequest) (*authv1.ListOAuthClientsResponse, error) {
	_, g, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	if s.oauth == nil {
		return nil, oauthDisabled()
	}
	list, err := s.oauth.Store().ListClients(ctx, g.GetTeamId())
	if err != nil {
		return nil, err
	}
	resp := &authv1.ListOAuthClientsResponse{Clients: make([]*authv1.OAuthClient, 0, len(list))}
	for _, c := range list {
		resp.Clients = append(resp.Clients, clientOf(c, ""))
	}
	resp.Pagination = s.cursors.Result("oauth-clients/"+g.GetTeamId(), len(list), false, "", len(list))
	return resp, nil
}

// CreateOAuthClient implements AuthService: the client belongs to the
// caller's team and is owned by the calling user, whose role caps what its
// client-credentials tokens can do.
func (s *server) CreateOAuthClient(ctx context.Context, req *authv1.CreateOAuthClientRequest) (*authv1.CreateOAuthClientResponse, error) {
	p, g, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	if s.oauth == nil {
		return nil, oauthDisabled()
	}
	if p.GetUserId() == "" {
		return nil, &apierr.Error{Code: codes.PermissionDenied, Reason: apierr.ReasonUserRequired, Message: "an OAuth client is owned by a user: use a personal token"}
	}
	id, sec, err := s.oauth.RegisterClient(ctx, oauth.ClientSpec{
		Name: req.GetName(), TeamID: g.GetTeamId(), OwnerID: p.GetUserId(), Public: req.GetPublic(),
		RedirectURIs: req.GetRedirectUris(), GrantTypes: req.GetGrantTypes(), Scopes: req.GetScopes(),
		AllowPasswordGrant: req.GetAllowPasswordGrant(),
	})
	if errors.Is(err, oauth.ErrInvalidClient) {
		return nil, apierr.Invalid("invalid OAuth client", map[string][]string{"client": {strings.TrimPrefix(err.Error(), "oauth: ")}})
	} else if err != nil {
		// The id is generated, so the caller has none to be told about.
		return nil, apierr.FromStore(err, "OAuth client", "")
	}
	c, err := s.oauth.Store().GetClient(ctx, id)
	if err != nil {
		return nil, err
	}
	return &authv1.CreateOAuthClientResponse{Client: clientOf(c.(*oauth.Client), sec)}, nil
}

// DeleteOAuthClient implements AuthService; another team's client is 404.
func (s *server) DeleteOAuthClient(ctx context.Context, req *authv1.DeleteOAuthClientRequest) (*authv1.DeleteOAuthClientResponse, error) {
	_, g, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	if s.oauth == nil {
		return nil, oauthDisabled()
	}
	c, err := s.oauth.Store().GetClient(ctx, req.GetClientId())
	if err != nil || c.(*oauth.Client).TeamID != g.GetTeamId() {
		return nil, apierr.NotFound("OAuth client", req.GetClientId())
	}
	if err := s.oauth.Store().DeleteClient(ctx, req.GetClientId()); err != nil {
		return nil, err
	}
	return &authv1.DeleteOAuthClientResponse{}, nil
}

func oauthDisabled() error {
	return &apierr.Error{Code: codes.Unimplemented, Reason: apierr.ReasonOAuthDisabled, Message: "the OAuth2 server is not enabled"}
}

func clientOf(c *oauth.Client, sec string) *authv1.OAuthClient {
	out := &authv1.OAuthClient{
		Id: c.GetID(), Name: c.Name, Public: c.IsPublic(), RedirectUris: c.GetRedirectURIs(),
		GrantTypes: c.GetGrantTypes(), Scopes: c.GetScopes(), AllowPasswordGrant: c.AllowPasswordGrant,
		TeamId: c.TeamID, OwnerId: c.OwnerID,
	}
	if sec != "" {
		out.Secret = &sec
	}
	if !c.CreatedAt.IsZero() {
		out.CreatedAt = timestamppb.New(c.CreatedAt.UTC().Truncate(time.Millisecond))
	}
	return out
}

// NewOAuthProvider builds the OAuth2 authorization server over the auth
// store: its users sign in on the server's pages, and only members of a
// client's team get codes or password-grant tokens. throttle limits
// requests and failed attempts (nil: oauth.MemoryThrottle).
func NewOAuthProvider(db *sqldb.DB, store Store, issuer string, key []byte, throttle *oauth.Throttle) (*oauth.Provider, error) {
	return oauth.New(oauth.Config{
		DB: db, Issuer: issuer, Secret: key, Throttle: throttle,
		Users: oauth.UsersFunc(func(ctx context.Context, email string) (oauth.User, error) {
			u, err := store.GetUserByEmail(ctx, email)
			if errors.Is(err, ErrNotFound) {
				return oauth.User{}, oauth.ErrUserNotFound
			}
			return oauth.User{ID: u.ID, Email: u.Email, PasswordHash: u.PasswordHash}, err
		}),
		IsMember: func(ctx context.Context, teamID, userID string) (bool, error) {
			_, err := store.GetMember(ctx, teamID, userID)
			if errors.Is(err, ErrNotFound) {
				return false, nil
			}
			return err == nil, err
		},
	})
}
