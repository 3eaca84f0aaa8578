// Package auth is the auth service: users, teams, members, roles, API
// tokens and API credentials, the first-start bootstrap, and the
// resolution of credentials to principals that every other service's
// authorization relies on.
package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/slipwayhq/slipway/services/auth/oauth"

	"github.com/slipwayhq/slipway/pkg/paging"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/timestamppb"

	authv1 "github.com/slipwayhq/slipway/gen/slipway/auth/v1"
	"github.com/slipwayhq/slipway/pkg/apierr"
	"github.com/slipwayhq/slipway/pkg/authz"
	"github.com/slipwayhq/slipway/pkg/permissions"
	"github.com/slipwayhq/slipway/pkg/slug"
)

// Options configure NewServer; the zero value is ready for production.
type Options struct {
	// Now is the clock; nil means the real one. Tests move it to cross
	// expiry times and the last-used interval without sleeping.
	Now func() time.Time
	// Logger receives failures that must not fail a request (recording a
	// token's last use); nil discards them.
	Logger *slog.Logger
	// OAuth is the authorization server whose access tokens Authenticate
	// resolves and whose clients the API registers; nil disables both.
	OAuth *oauth.Provider
	// Cursors seal the list cursors; nil: under a random key, read back
	// only by this server until it stops (tests).
	Cursors *paging.Cursors
}

type server struct {
	authv1.UnimplementedAuthServiceServer
	oauth   *oauth.Provider
	store   Store
	cursors *paging.Cursors
	now     func() time.Time
	log     *slog.Logger
}

// NewServer returns the AuthService gRPC implementation over store. Its
// Authenticate method may also be called in process (by the gateway, or
// by tests). opts is optional (at most one is used) so that production
// wiring can omit it.
func NewServer(store Store, opts ...Options) authv1.AuthServiceServer {
	var o Options
	if len(opts) > 0 {
		o = opts[0]
	}
	s := &server{store: store, now: o.Now, log: o.Logger, oauth: o.OAuth, cursors: o.Cursors}
	if s.cursors == nil {
		s.cursors = paging.EphemeralCursors()
	}
	if s.now == nil {
		s.now = now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	return s
}

// errTokenExceedsRole refuses minting more power than the caller holds.
func errTokenExceedsRole() error {
	return &apierr.Error{Code: codes.PermissionDenied, Reason: apierr.ReasonPermissionDenied, Message: "a token cannot exceed its creator's role"}
}

// caller returns the principal and its grant in its default team, the
// team the token RPCs act on.
func caller(ctx context.Context) (*authv1.Principal, *authv1.TeamGrant, error) {
	p, ok := authz.PrincipalFrom(ctx)
	if !ok {
		return nil, nil, authz.Unauthenticated("credentials required")
	}
	g, ok := authz.Grant(p, p.GetDefaultTeamId())
	if !ok {
		return nil, nil, apierr.NotFound("team", p.GetDefaultTeamId())
	}
	return p, g, nil
}

// inTeam checks that the caller has a grant in team. Without one the team
// is "not found", never "forbidden": other teams' existence is not the
// caller's business.
func inTeam(ctx context.Context, team string) (*authv1.TeamGrant, error) {
	p, ok := authz.PrincipalFrom(ctx)
	if !ok {
		return nil, authz.Unauthenticated("credentials required")
	}
	g, ok := authz.Grant(p, team)
	if !ok {
		return nil, apierr.NotFound("team", team)
	}
	return g, nil
}

// GetAuth implements AuthService.
func (s *server) GetAuth(ctx context.Context, _ *authv1.GetAuthRequest) (*authv1.GetAuthResponse, error) {
	p, g, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	return &authv1.GetAuthResponse{Auth: &authv1.AuthInfo{
		TokenKind: p.GetKind(), TokenId: p.GetTokenId(), UserId: p.GetUserId(), TeamId: g.GetTeamId(), RoleId: g.GetRoleId(),
		Permissions: g.GetPermissions(), Projects: g.GetProjects(), ExpiresAt: p.GetExpiresAt(),
	}}, nil
}

// ListApiTokens implements AuthService.
func (s *server) ListApiTokens(ctx context.Context, req *authv1.ListApiTokensRequest) (*authv1.ListApiTokensResponse, error) {
	_, g, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	scope := "api-tokens/" + g.GetTeamId()
	page, err := s.cursors.Parse(scope, req.GetPerPage(), req.GetPage(), req.GetCursor())
	if err != nil {
		return nil, err
	}
	list, more, total, err := s.store.ListTokens(ctx, g.GetTeamId(), page)
	if err != nil {
		return nil, err
	}
	resp := &authv1.ListApiTokensResponse{
		Tokens: make([]*authv1.ApiToken, 0, len(list)),
	}
	lastID := ""
	for _, t := range list {
		resp.Tokens = append(resp.Tokens, tokenOf(t))
		lastID = t.ID
	}
	resp.Pagination = s.cursors.Result(scope, len(list), more, lastID, total)
	return resp, nil
}

// CreateApiToken implements AuthService, in the request's team (one the
// caller has a grant in) or the caller's default team. The new token can
// never do more than its creator: its role's permissions must be among the
// caller's in that team, and a caller restricted to some projects can only
// mint tokens within them. Kind "credential" makes an API credential for
// HTTP Basic auth: a team credential (no user) checked like a team token,
// whose id is the public key id and whose secret is the Basic password.
// The rules are CreateToken's, which "slipway admin create-token" runs
// too; the handler only picks the team and the user.
func (s *server) CreateApiToken(ctx context.Context, req *authv1.CreateApiTokenRequest) (*authv1.CreateApiTokenResponse, error) {
	p, g, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	if team := req.GetTeamId(); team != "" && team != g.GetTeamId() {
		if g, err = inTeam(ctx, team); err != nil {
			return nil, err
		}
	}
	tr := TokenRequest{
		Kind: TokenKind(req.GetKind()), Name: req.GetName(), TeamID: g.GetTeamId(), RoleID: req.GetRoleId(),
		Projects: req.GetProjects(), ExpiresInDays: int(req.GetExpiresInDays()),
	}
	if tr.Kind == KindPersonal {
		// A personal token acts as the caller; a caller without a user
		// (a team token) gets the rules' refusal on "kind".
		tr.UserID = p.GetUserId()
	}
	tok, sec, err := createToken(ctx, s.store, tr, g, s.now())
	if err != nil {
		return nil, err
	}
	out := tokenOf(tok)
	out.Token = &sec
	return &authv1.CreateApiTokenResponse{Token: out}, nil
}

// teamToken returns a token of the caller's default team; another team's
// token is not found.
func teamToken(ctx context.Context, store Store, id string) (Token, error) {
	_, g, err := caller(ctx)
	if err != nil {
		return Token{}, err
	}
	t, err := store.GetToken(ctx, id)
	if errors.Is(err, ErrNotFound) || (err == nil && t.TeamID != g.GetTeamId()) {
		return Token{}, apierr.NotFound("API token", id)
	}
	return t, err
}

// GetApiToken implements AuthService.
func (s *server) GetApiToken(ctx context.Context, req *authv1.GetApiTokenRequest) (*authv1.GetApiTokenResponse, error) {
	t, err := teamToken(ctx, s.store, req.GetTokenId())
	if err != nil {
		return nil, err
	}
	return &authv1.GetApiTokenResponse{Token: tokenOf(t)}, nil
}

// RevokeApiToken implements AuthService. Revoking a revoked token succeeds
// and announces nothing new.
func (s *server) RevokeApiToken(ctx context.Context, req *authv1.RevokeApiTokenRequest) (*authv1.RevokeApiTokenResponse, error) {
	t, err := teamToken(ctx, s.store, req.GetTokenId())
	if err != nil {
		return nil, err
	}
	ev, err := tokenEvent("revoked", t)
	if err != nil {
		return nil, err
	}
	if _, _, err := s.store.RevokeToken(ctx, t.ID, s.now(), ev); err != nil {
		return nil, apierr.FromStore(err, "API token", t.ID)
	}
	return &authv1.RevokeApiTokenResponse{}, nil
}

// ListTeams implements AuthService: the teams the caller has a grant in.
func (s *server) ListTeams(ctx context.Context, req *authv1.ListTeamsRequest) (*authv1.ListTeamsResponse, error) {
	p, ok := authz.PrincipalFrom(ctx)
	if !ok {
		return nil, authz.Unauthenticated("credentials required")
	}
	grants, pagination, err := pageOf(s.cursors, "teams/"+p.GetUserId(), p.GetGrants(), (*authv1.TeamGrant).GetTeamId, req.GetPerPage(), req.GetPage(), req.GetCursor())
	if err != nil {
		return nil, err
	}
	resp := &authv1.ListTeamsResponse{Teams: []*authv1.Team{}, Pagination: pagination}
	for _, g := range grants {
		t, err := s.store.GetTeam(ctx, g.GetTeamId())
		if errors.Is(err, ErrNotFound) {
			// Deleted since the principal was resolved: not in the page,
			// nor in the list's total.
			*resp.Pagination.Total--
			continue
		} else if err != nil {
			return nil, err
		}
		resp.Teams = append(resp.Teams, teamOf(t))
	}
	resp.Pagination.Count = int32(len(resp.Teams))
	return resp, nil
}

// CreateTeam implements AuthService: a team with the built-in roles and
// the calling user as its admin. Only a user can own a team, so team
// tokens and credentials cannot create one.
func (s *server) CreateTeam(ctx context.Context, req *authv1.CreateTeamRequest) (*authv1.CreateTeamResponse, error) {
	p, ok := authz.PrincipalFrom(ctx)
	if !ok {
		return nil, authz.Unauthenticated("credentials required")
	}
	if p.GetUserId() == "" {
		return nil, &apierr.Error{Code: codes.PermissionDenied, Reason: apierr.ReasonUserRequired,
			Message: "only a user can create a team (it becomes the team's admin); use a personal token"}
	}
	t, err := createTeam(ctx, s.store, Team{Name: req.GetName(), Description: req.GetDescription(), Email: req.GetEmail()}, p.GetUserId(), s.now())
	if errors.Is(err, ErrNotFound) { // the user was deleted meanwhile
		return nil, authz.Unauthenticated(BadCredentialsMessage)
	} else if err != nil {
		return nil, err
	}
	return &authv1.CreateTeamResponse{Team: teamOf(t)}, nil
}

// GetTeam implements AuthService.
func (s *server) GetTeam(ctx context.Context, req *authv1.GetTeamRequest) (*authv1.GetTeamResponse, error) {
	if _, err := inTeam(ctx, req.GetTeamId()); err != nil {
		return nil, err
	}
	t, err := s.store.GetTeam(ctx, req.GetTeamId())
	if err != nil {
		return nil, apierr.FromStore(err, "team", req.GetTeamId())
	}
	return &authv1.GetTeamResponse{Team: teamOf(t)}, nil
}

// ListTeamMembers implements AuthService.
func (s *server) ListTeamMembers(ctx context.Context, req *authv1.ListTeamMembersRequest) (*authv1.ListTeamMembersResponse, error) {
	if _, err := inTeam(ctx, req.GetTeamId()); err != nil {
		return nil, err
	}
	all, err := s.store.ListMembers(ctx, req.GetTeamId())
	if err != nil {
		return nil, err
	}
	list, pagination, err := pageOf(s.cursors, "members/"+req.GetTeamId(), all, memberID, req.GetPerPage(), req.GetPage(), req.GetCursor())
	if err != nil {
		return nil, err
	}
	resp := &authv1.ListTeamMembersResponse{Members: make([]*authv1.TeamMember, 0, len(list)), Pagination: pagination}
	for _, m := range list {
		resp.Members = append(resp.Members, memberOf(m))
	}
	return resp, nil
}

// ListTeamRoles implements AuthService.
func (s *server) ListTeamRoles(ctx context.Context, req *authv1.ListTeamRolesRequest) (*authv1.ListTeamRolesResponse, error) {
	if _, err := inTeam(ctx, req.GetTeamId()); err != nil {
		return nil, err
	}
	all, err := s.store.ListRoles(ctx, req.GetTeamId())
	if err != nil {
		return nil, err
	}
	list, pagination, err := pageOf(s.cursors, "roles/"+req.GetTeamId(), all, func(r Role) string { return r.ID }, req.GetPerPage(), req.GetPage(), req.GetCursor())
	if err != nil {
		return nil, err
	}
	resp := &authv1.ListTeamRolesResponse{Roles: make([]*authv1.Role, 0, len(list)), Pagination: pagination}
	for _, r := range list {
		resp.Roles = append(resp.Roles, roleOf(r))
	}
	return resp, nil
}

// CreateTeamRole implements AuthService.
func (s *server) CreateTeamRole(ctx context.Context, req *authv1.CreateTeamRoleRequest) (*authv1.CreateTeamRoleResponse, error) {
	if _, err := inTeam(ctx, req.GetTeamId()); err != nil {
		return nil, err
	}
	r, err := newRole(req, s.now())
	if err != nil {
		return nil, err
	}
	switch err := s.store.CreateRole(ctx, r); {
	case errors.Is(err, ErrAlreadyExists):
		return nil, apierr.AlreadyExists("role", r.ID)
	case errors.Is(err, ErrNotFound):
		return nil, apierr.NotFound("team", r.TeamID)
	case err != nil:
		return nil, err
	}
	return &authv1.CreateTeamRoleResponse{Role: roleOf(r)}, nil
}

// GetTeamRole implements AuthService.
func (s *server) GetTeamRole(ctx context.Context, req *authv1.GetTeamRoleRequest) (*authv1.GetTeamRoleResponse, error) {
	if _, err := inTeam(ctx, req.GetTeamId()); err != nil {
		return nil, err
	}
	r, err := s.store.GetRole(ctx, req.GetTeamId(), req.GetRoleId())
	if err != nil {
		return nil, apierr.FromStore(err, "role", req.GetRoleId())
	}
	return &authv1.GetTeamRoleResponse{Role: roleOf(r)}, nil
}

// DeleteTeamRole implements AuthService.
func (s *server) DeleteTeamRole(ctx context.Context, req *authv1.DeleteTeamRoleRequest) (*authv1.DeleteTeamRoleResponse, error) {
	if _, err := inTeam(ctx, req.GetTeamId()); err != nil {
		return nil, err
	}
	id := req.GetRoleId()
	switch err := s.store.DeleteRole(ctx, req.GetTeamId(), id); {
	case errors.Is(err, ErrBuiltin):
		return nil, apierr.Conflict(apierr.ReasonRoleBuiltin, "role %q is built in and cannot be deleted", id)
	case errors.Is(err, ErrInUse):
		return nil, apierr.Conflict(apierr.ReasonRoleInUse, "role %q is held by a member or an unrevoked API token; reassign or revoke them first", id)
	case err != nil:
		return nil, apierr.FromStore(err, "role", id)
	}
	return &authv1.DeleteTeamRoleResponse{}, nil
}

// newRole validates what protovalidate can't (the derived id, the
// permission vocabulary and scopes, the restriction) and builds the role,
// reporting every invalid field at once.
func newRole(req *authv1.CreateTeamRoleRequest, at time.Time) (Role, error) {
	fields := map[string][]string{}
	id := slug.Make(req.GetName())
	if len(id) < 3 {
		fields["name"] = append(fields["name"], "must contain at least 3 letters or digits")
	}
	var perms []string
	for i, p := range req.GetPermissions().GetTeamScope() {
		field := fmt.Sprintf("permissions.teamScope[%d]", i)
		switch {
		case !permissions.Known(p):
			fields[field] = append(fields[field], "unknown permission")
		case permissions.IsProjectScope(p):
			fields[field] = append(fields[field], "is a project permission; put it in projectScope")
		default:
			perms = append(perms, p)
		}
	}
	for i, p := range req.GetPermissions().GetProjectScope() {
		field := fmt.Sprintf("permissions.projectScope[%d]", i)
		switch {
		case !permissions.Known(p):
			fields[field] = append(fields[field], "unknown permission")
		case !permissions.IsProjectScope(p):
			fields[field] = append(fields[field], "is a team permission; put it in teamScope")
		default:
			perms = append(perms, p)
		}
	}
	restr := Restrictions{Enabled: req.GetRestrictions().GetEnabled(), Mode: RestrictionMode(req.GetRestrictions().GetRestrictionMode())}
	switch restr.Mode {
	case "":
		restr.Mode = RestrictIn
	case RestrictIn:
	case RestrictNotIn:
		if restr.Enabled {
			// A grant carries only an allow-list, so "notIn" could not be
			// enforced; refusing beats silently granting the excluded
			// projects.
			fields["restrictions.restrictionMode"] = append(fields["restrictions.restrictionMode"], `"notIn" is not supported yet; use "in"`)
		}
	default:
		fields["restrictions.restrictionMode"] = append(fields["restrictions.restrictionMode"], `must be "in" or "notIn"`)
	}
	projects, err := projectIDs("restrictions.projects", req.GetRestrictions().GetProjects())
	if e := apierr.From(err); e != nil {
		for f, d := range e.Fields {
			fields[f] = append(fields[f], d...)
		}
	}
	restr.Projects = projects
	if len(fields) > 0 {
		return Role{}, apierr.Invalid("request validation failed", fields)
	}
	return Role{
		TeamID: req.GetTeamId(), ID: id, Name: req.GetName(), Description: req.GetDescription(),
		Permissions: normalizeList(perms), Restrictions: restr, CreatedAt: at, UpdatedAt: at,
	}, nil
}

// projectIDs checks a list of project ids (slugs) and returns it sorted
// without duplicates; field names the list in errors.
func projectIDs(field string, ids []string) ([]string, error) {
	fields := map[string][]string{}
	for i, id := range ids {
		if id == "" || slug.Make(id) != id {
			f := fmt.Sprintf("%s[%d]", field, i)
			fields[f] = append(fields[f], "must be a project id (lower-case letters, digits and hyphens)")
		}
	}
	if len(fields) > 0 {
		return nil, apierr.Invalid("request validation failed", fields)
	}
	return normalizeList(ids), nil
}

// subset reports whether every element of a is in b.
func subset(a, b []string) bool {
	for _, v := range a {
		if !slices.Contains(b, v) {
			return false
		}
	}
	return true
}

// timestamp is t on the wire, or nil for "never".
func timestamp(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

func tokenOf(t Token) *authv1.ApiToken {
	return &authv1.ApiToken{
		Id: t.ID, Name: t.Name, Kind: string(t.Kind), TeamId: t.TeamID, UserId: t.UserID, RoleId: t.RoleID,
		Projects: t.Projects, Prefix: t.Prefix, CreatedAt: timestamp(t.CreatedAt), ExpiresAt: timestamp(t.ExpiresAt),
		LastUsedAt: timestamp(t.LastUsedAt), RevokedAt: timestamp(t.RevokedAt),
	}
}

func teamOf(t Team) *authv1.Team {
	return &authv1.Team{Id: t.ID, Name: t.Name, Description: t.Description, Plan: t.Plan, Email: t.Email, CreatedAt: timestamp(t.CreatedAt)}
}

func roleOf(r Role) *authv1.Role {
	perms := normalizeList(r.Permissions)
	teamScope, projectScope := permissions.Split(perms)
	return &authv1.Role{
		Id: r.ID, Name: r.Name, Description: r.Description,
		Permissions: &authv1.RolePermissions{TeamScope: teamScope, ProjectScope: projectScope},
		Restrictions: &authv1.RoleRestrictions{
			Enabled: r.Restrictions.Enabled, Projects: r.Restrictions.Projects, RestrictionMode: string(r.Restrictions.Mode),
		},
		Builtin: r.Builtin, CreatedAt: timestamp(r.CreatedAt), UpdatedAt: timestamp(r.UpdatedAt),
	}
}
