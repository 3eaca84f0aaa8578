package authz

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	authv1 "github.com/slipwayhq/slipway/gen/slipway/auth/v1"
	"github.com/slipwayhq/slipway/pkg/apierr"
	"github.com/slipwayhq/slipway/pkg/permissions"
)

// InternalKeyHeader is the metadata key with which services prove to each
// other that a call is internal (e.g. token resolution).
const InternalKeyHeader = "x-slipway-internal-key"

// Authenticator resolves credentials: the auth service's gRPC client, or
// the auth server itself when it runs in the same process.
type Authenticator interface {
	Authenticate(ctx context.Context, req *authv1.AuthenticateRequest, opts ...grpc.CallOption) (*authv1.AuthenticateResponse, error)
}

// CacheTTL bounds how long a resolved principal is reused. Revocations
// clear entries at once through events; the TTL covers role changes and a
// missed event.
const CacheTTL = 30 * time.Second

// Authorizer is the rpcserver.Authorizer every service runs.
type Authorizer struct {
	auth        Authenticator
	internalKey []byte
	now         func() time.Time

	mu    sync.Mutex
	cache map[[32]byte]cached
}

type cached struct {
	principal *authv1.Principal
	until     time.Time
}

// New returns an Authorizer resolving credentials through auth and
// accepting internal calls that carry internalKey.
func New(auth Authenticator, internalKey string) *Authorizer {
	return &Authorizer{auth: auth, internalKey: []byte(internalKey), now: time.Now, cache: map[[32]byte]cached{}}
}

// publicMethods need no credentials: health checks, which orchestrators
// call without any.
var publicMethods = []string{"/grpc.health.v1.Health/Check", "/grpc.health.v1.Health/Watch", "/grpc.health.v1.Health/List"}

// Authorize implements rpcserver.Authorizer: it authenticates the caller,
// checks the method's access rule in the team the request names (or the
// caller's default team) and the caller's project restriction, and returns
// ctx carrying the principal and the team's grant.
func (a *Authorizer) Authorize(ctx context.Context, fullMethod string, req any) (context.Context, error) {
	if slices.Contains(publicMethods, fullMethod) {
		return ctx, nil
	}
	access, ok := permissions.ForMethod(fullMethod)
	if !ok {
		// Fail closed: an RPC without an access rule is a bug, not an
		// open door.
		return ctx, &apierr.Error{Code: codes.PermissionDenied, Reason: apierr.ReasonNoAccessRule, Message: "this method is not available"}
	}
	if access.GetInternal() {
		if !a.internal(ctx) {
			return ctx, &apierr.Error{Code: codes.PermissionDenied, Reason: apierr.ReasonInternalOnly, Message: "this method is internal"}
		}
		return ctx, nil
	}
	if !access.GetAuthenticated() {
		return ctx, nil
	}
	header := first(ctx, "authorization")
	if header == "" {
		return ctx, Unauthenticated("credentials required")
	}
	p, cached, err := a.resolve(ctx, header, false)
	if err != nil {
		return ctx, err
	}
	team := stringField(req, "team_id")
	if team == "" {
		team = p.GetDefaultTeamId()
	}
	grant, ok := Grant(p, team)
	if !ok && cached {
		// The caller may have joined the team since it was cached (it may
		// have just created it): ask once more before answering 404.
		if p, _, err = a.resolve(ctx, header, true); err != nil {
			return ctx, err
		}
		grant, ok = Grant(p, team)
	}
	if !ok {
		return ctx, apierr.NotFound("team", team)
	}
	if perm := access.GetPermission(); perm != "" && !slices.Contains(grant.GetPermissions(), perm) {
		return ctx, &apierr.Error{Code: codes.PermissionDenied, Reason: apierr.ReasonPermissionDenied, Message: "these credentials do not grant " + perm}
	} else if perm != "" && Restricted(grant) && !permissions.IsProjectScope(perm) {
		// A project restriction limits the caller to its projects: the
		// team's tokens, members, roles and settings are outside them,
		// whatever the role says.
		return ctx, &apierr.Error{Code: codes.PermissionDenied, Reason: apierr.ReasonProjectRestricted,
			Message: "these credentials are restricted to projects and cannot act on the team (" + perm + ")"}
	}
	if project := stringField(req, "project_id"); project != "" && !ProjectAllowed(grant, project) {
		return ctx, apierr.NotFound("project", project)
	}
	return context.WithValue(NewContext(ctx, p), teamKey{}, grant), nil
}

// Unauthenticated is the error for missing or bad credentials; the gateway
// adds WWW-Authenticate to it.
func Unauthenticated(msg string) *apierr.Error {
	return &apierr.Error{Code: codes.Unauthenticated, Reason: apierr.ReasonUnauthenticated, Message: msg}
}

type teamKey struct{}

// GrantFrom returns the grant of the team the current call acts on.
func GrantFrom(ctx context.Context) (*authv1.TeamGrant, bool) {
	g, ok := ctx.Value(teamKey{}).(*authv1.TeamGrant)
	return g, ok && g != nil
}

// WithGrant returns ctx acting on grant's team; for in-process callers and
// tests that bypass the interceptor.
func WithGrant(ctx context.Context, grant *authv1.TeamGrant) context.Context {
	return context.WithValue(ctx, teamKey{}, grant)
}

// Restricted reports whether grant is limited to some projects (a
// token's project list or a role's restriction). Such a grant reaches
// nothing at team level: Authorize refuses every permission outside
// project scope.
func Restricted(grant *authv1.TeamGrant) bool { return len(grant.GetProjects()) > 0 }

// ProjectAllowed reports whether grant's project restriction admits project.
func ProjectAllowed(grant *authv1.TeamGrant, project string) bool {
	return len(grant.GetProjects()) == 0 || slices.Contains(grant.GetProjects(), project)
}

// Internal returns ctx marked, for outgoing calls, as a call from another
// Slipway service: methods whose access rule is internal accept it.
func (a *Authorizer) Internal(ctx context.Context) context.Context {
	return metadata.AppendToOutgoingContext(ctx, InternalKeyHeader, string(a.internalKey))
}

func (a *Authorizer) internal(ctx context.Context) bool {
	key := first(ctx, InternalKeyHeader)
	return len(a.internalKey) > 0 && subtle.ConstantTimeCompare([]byte(key), a.internalKey) == 1
}

// Principal resolves an Authorization header value to its principal (for
// the gateway, which needs the caller before any RPC: for 401s and
// quotas).
func (a *Authorizer) Principal(ctx context.Context, header string) (*authv1.Principal, error) {
	p, _, err := a.resolve(ctx, header, false)
	return p, err
}

// resolve returns the principal for an Authorization header, from the
// cache when fresh (and fresh is not demanded), and whether it came from
// the cache. The cache is keyed by a hash of the header so that raw
// credentials are not kept in memory longer than the request.
func (a *Authorizer) resolve(ctx context.Context, header string, fresh bool) (*authv1.Principal, bool, error) {
	key := sha256.Sum256([]byte(header))
	now := a.now()
	if !fresh {
		a.mu.Lock()
		c, ok := a.cache[key]
		a.mu.Unlock()
		if ok && now.Before(c.until) {
			return c.principal, true, nil
		}
	}
	resp, err := a.auth.Authenticate(a.Internal(ctx), &authv1.AuthenticateRequest{Authorization: header})
	if err != nil {
		return nil, false, err
	}
	p := resp.GetPrincipal()
	if KindOf(p) == PrincipalOAuth {
		// OAuth tokens are revoked inside the OAuth server (/oauth2/revoke,
		// refresh-token reuse), not through the event stream, so they are
		// resolved on every call to make revocation immediate.
		return p, false, nil
	}
	until := now.Add(CacheTTL)
	if exp := p.GetExpiresAt(); exp != nil && exp.AsTime().Before(until) {
		until = exp.AsTime()
	}
	a.mu.Lock()
	if len(a.cache) > 10000 { // bounded: sweep expired entries
		for k, c := range a.cache {
			if !now.Before(c.until) {
				delete(a.cache, k)
			}
		}
	}
	a.cache[key] = cached{principal: p, until: until}
	a.mu.Unlock()
	return p, false, nil
}

// Revoked drops every cached principal of the token, so the next call with
// it is resolved afresh (and refused).
func (a *Authorizer) Revoked(tokenID string) {
	a.forget(func(p *authv1.Principal) bool { return p.GetTokenId() == tokenID })
}

// UserChanged drops every cached principal of the user, whose memberships
// or roles changed.
func (a *Authorizer) UserChanged(userID string) {
	a.forget(func(p *authv1.Principal) bool { return p.GetUserId() == userID })
}

// RoleChanged drops every cached principal holding the role in team.
func (a *Authorizer) RoleChanged(team, role string) {
	a.forget(func(p *authv1.Principal) bool {
		g, ok := Grant(p, team)
		return ok && g.GetRoleId() == role
	})
}

func (a *Authorizer) forget(match func(*authv1.Principal) bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for k, c := range a.cache {
		if match(c.principal) {
			delete(a.cache, k)
		}
	}
}

// first is the first incoming metadata value of key, read without copying
// the whole metadata (as metadata.FromIncomingContext does, on every RPC).
func first(ctx context.Context, key string) string {
	if v := metadata.ValueFromIncomingContext(ctx, key); len(v) > 0 {
		return strings.TrimSpace(v[0])
	}
	return ""
}

// stringField reads a top-level string field of a request message by its
// proto name, or "".
func stringField(req any, name protoreflect.Name) string {
	m, ok := req.(proto.Message)
	if !ok {
		return ""
	}
	fd := m.ProtoReflect().Descriptor().Fields().ByName(name)
	if fd == nil || fd.Kind() != protoreflect.StringKind || fd.IsList() {
		return ""
	}
	return m.ProtoReflect().Get(fd).String()
}
