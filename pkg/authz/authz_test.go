package authz

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	authv1 "github.com/slipwayhq/slipway/gen/slipway/auth/v1"
	projectsv1 "github.com/slipwayhq/slipway/gen/slipway/projects/v1"
	"github.com/slipwayhq/slipway/pkg/apierr"
	"github.com/slipwayhq/slipway/pkg/permissions"
)

// tokens is a table-backed Authenticator: the interceptor's rules are
// what is under test here; the auth service's own resolution has its
// tests in services/auth.
type tokens struct {
	principals map[string]*authv1.Principal
	calls      int
	sawKey     string
}

func (t *tokens) Authenticate(ctx context.Context, req *authv1.AuthenticateRequest, _ ...grpc.CallOption) (*authv1.AuthenticateResponse, error) {
	t.calls++
	md, _ := metadata.FromOutgoingContext(ctx)
	if v := md.Get(InternalKeyHeader); len(v) > 0 {
		t.sawKey = v[0]
	}
	p, ok := t.principals[req.GetAuthorization()]
	if !ok {
		return nil, Unauthenticated("invalid, expired or revoked credentials")
	}
	return &authv1.AuthenticateResponse{Principal: p}, nil
}

func role(id string) []string {
	for _, r := range permissions.Builtin() {
		if r.ID == id {
			return r.Permissions
		}
	}
	panic(id)
}

const (
	getProject    = "/slipway.projects.v1.ProjectsService/GetProject"
	createProject = "/slipway.projects.v1.ProjectsService/CreateProject"
	authenticate  = "/slipway.auth.v1.AuthService/Authenticate"
)

func setup() (*Authorizer, *tokens) {
	t := &tokens{principals: map[string]*authv1.Principal{
		"Bearer admin":      {Kind: string(PrincipalTeamToken), TokenId: "t-admin", DefaultTeamId: "acme", Grants: []*authv1.TeamGrant{{TeamId: "acme", RoleId: "admin", Permissions: role("admin")}}},
		"Bearer viewer":     {Kind: string(PrincipalTeamToken), TokenId: "t-viewer", DefaultTeamId: "acme", Grants: []*authv1.TeamGrant{{TeamId: "acme", RoleId: "viewer", Permissions: role("viewer")}}},
		"Bearer restricted": {Kind: string(PrincipalTeamToken), TokenId: "t-r", DefaultTeamId: "acme", Grants: []*authv1.TeamGrant{{TeamId: "acme", RoleId: "admin", Permissions: role("admin"), Projects: []string{"web"}}}},
	}}
	return New(t, "internal-key"), t
}

func call(a *Authorizer, header, method string, req any, md ...string) (context.Context, error) {
	pairs := md
	if header != "" {
		pairs = append(pairs, "authorization", header)
	}
	return a.Authorize(metadata.NewIncomingContext(context.Background(), metadata.Pairs(pairs...)), method, req)
}

func code(err error) codes.Code {
	if e := apierr.From(err); e != nil {
		return e.Code
	}
	return status.Code(err)
}

func TestRules(t *testing.T) {
	a, _ := setup()
	get := &projectsv1.GetProjectRequest{ProjectId: "web"}
	for name, tc := range map[string]struct {
		header, method string
		req            any
		want           codes.Code
	}{
		"no credentials":          {"", getProject, get, codes.Unauthenticated},
		"bad credentials":         {"Bearer nope", getProject, get, codes.Unauthenticated},
		"admin reads":             {"Bearer admin", getProject, get, codes.OK},
		"viewer reads":            {"Bearer viewer", getProject, get, codes.OK},
		"viewer writes":           {"Bearer viewer", createProject, &projectsv1.CreateProjectRequest{Name: "x"}, codes.PermissionDenied},
		"restricted, its project": {"Bearer restricted", getProject, get, codes.OK},
		"restricted, another":     {"Bearer restricted", getProject, &projectsv1.GetProjectRequest{ProjectId: "db"}, codes.NotFound},
		// A project restriction limits the token to its projects, whatever
		// its (admin) role: nothing at team level.
		"restricted, the team": {"Bearer restricted", "/slipway.auth.v1.AuthService/PatchTeam", &authv1.PatchTeamRequest{TeamId: "acme"}, codes.PermissionDenied},
		"restricted, tokens":   {"Bearer restricted", "/slipway.auth.v1.AuthService/ListApiTokens", &authv1.ListApiTokensRequest{}, codes.PermissionDenied},
		"restricted, roles":    {"Bearer restricted", "/slipway.auth.v1.AuthService/CreateTeamRole", &authv1.CreateTeamRoleRequest{TeamId: "acme"}, codes.PermissionDenied},
		"restricted, who am I": {"Bearer restricted", "/slipway.auth.v1.AuthService/GetAuth", &authv1.GetAuthRequest{}, codes.OK},
		"restricted, its list": {"Bearer restricted", "/slipway.projects.v1.ProjectsService/ListProjects", &projectsv1.ListProjectsRequest{}, codes.OK},
		"another team":         {"Bearer admin", "/slipway.auth.v1.AuthService/GetTeam", &authv1.GetTeamRequest{TeamId: "globex"}, codes.NotFound},
		"own team by path":     {"Bearer admin", "/slipway.auth.v1.AuthService/GetTeam", &authv1.GetTeamRequest{TeamId: "acme"}, codes.OK},
		"no access rule":       {"Bearer admin", "/slipway.projects.v1.ProjectsService/Nope", nil, codes.PermissionDenied},
		"health is public":     {"", "/grpc.health.v1.Health/Check", nil, codes.OK},
		"internal without key": {"Bearer admin", authenticate, nil, codes.PermissionDenied},
	} {
		t.Run(name, func(t *testing.T) {
			ctx, err := call(a, tc.header, tc.method, tc.req)
			if got := code(err); got != tc.want {
				t.Fatalf("code %v (%v), want %v", got, err, tc.want)
			}
			if tc.want == codes.OK && tc.header != "" {
				if _, ok := PrincipalFrom(ctx); !ok {
					t.Fatal("no principal in context")
				}
				if g, ok := GrantFrom(ctx); !ok || g.GetTeamId() != "acme" {
					t.Fatalf("grant %v", g)
				}
			}
		})
	}
	if _, err := call(a, "", authenticate, nil, InternalKeyHeader, "internal-key"); err != nil {
		t.Fatalf("internal call with the key: %v", err)
	}
	if _, err := call(a, "", authenticate, nil, InternalKeyHeader, "internal-kez"); code(err) != codes.PermissionDenied {
		t.Fatalf("internal call with a wrong key: %v", err)
	}
}

func TestCacheAndRevocation(t *testing.T) {
	a, auth := setup()
	clock := time.Unix(1000, 0)
	a.now = func() time.Time { return clock }
	get := &projectsv1.GetProjectRequest{ProjectId: "web"}
	for range 3 {
		if _, err := call(a, "Bearer admin", getProject, get); err != nil {
			t.Fatal(err)
		}
	}
	if auth.calls != 1 {
		t.Fatalf("%d lookups for three calls, want 1 (cached)", auth.calls)
	}
	if auth.sawKey != "internal-key" {
		t.Fatal("lookups must carry the internal key")
	}
	// Revocation: the token is gone from the auth service and the event
	// arrives; the very next call is refused.
	delete(auth.principals, "Bearer admin")
	a.Revoked("t-admin")
	if _, err := call(a, "Bearer admin", getProject, get); code(err) != codes.Unauthenticated {
		t.Fatalf("revoked token: %v", err)
	}
	// The TTL bounds staleness without an event.
	if _, err := call(a, "Bearer viewer", getProject, get); err != nil {
		t.Fatal(err)
	}
	delete(auth.principals, "Bearer viewer")
	clock = clock.Add(CacheTTL + time.Second)
	if _, err := call(a, "Bearer viewer", getProject, get); code(err) != codes.Unauthenticated {
		t.Fatalf("after the TTL: %v", err)
	}
	// An expiring token is not cached past its expiry.
	auth.principals["Bearer soon"] = &authv1.Principal{TokenId: "soon", DefaultTeamId: "acme", ExpiresAt: timestamppb.New(clock.Add(2 * time.Second)),
		Grants: []*authv1.TeamGrant{{TeamId: "acme", Permissions: role("viewer")}}}
	if _, err := call(a, "Bearer soon", getProject, get); err != nil {
		t.Fatal(err)
	}
	delete(auth.principals, "Bearer soon")
	clock = clock.Add(3 * time.Second)
	if _, err := call(a, "Bearer soon", getProject, get); code(err) != codes.Unauthenticated {
		t.Fatalf("expired token served from cache: %v", err)
	}
}

// TestNewTeamIsSeenAtOnce: a principal cached before its user joined a team
// (or created it) is refreshed when a call names that team, instead of
// answering 404 until the cache expires.
func TestNewTeamIsSeenAtOnce(t *testing.T) {
	a, auth := setup()
	team := &authv1.GetTeamRequest{TeamId: "acme"}
	if _, err := call(a, "Bearer admin", "/slipway.auth.v1.AuthService/GetTeam", team); err != nil {
		t.Fatal(err)
	}
	p := auth.principals["Bearer admin"]
	p.Grants = append(p.Grants, &authv1.TeamGrant{TeamId: "newco", RoleId: "admin", Permissions: role("admin")})
	if _, err := call(a, "Bearer admin", "/slipway.auth.v1.AuthService/GetTeam", &authv1.GetTeamRequest{TeamId: "newco"}); err != nil {
		t.Fatalf("the new team: %v", err)
	}
	before := auth.calls
	if _, err := call(a, "Bearer admin", "/slipway.auth.v1.AuthService/GetTeam", &authv1.GetTeamRequest{TeamId: "nowhere"}); code(err) != codes.NotFound {
		t.Fatalf("a team the caller is not in: %v", err)
	}
	if auth.calls != before+1 {
		t.Fatalf("%d lookups for an unknown team, want exactly one refresh", auth.calls-before)
	}
	// A membership change drops the user's cached principals.
	auth.principals["Bearer mine"] = &authv1.Principal{UserId: "u1", TokenId: "m", DefaultTeamId: "acme", Grants: []*authv1.TeamGrant{{TeamId: "acme", Permissions: role("admin")}}}
	if _, err := call(a, "Bearer mine", getProject, &projectsv1.GetProjectRequest{ProjectId: "web"}); err != nil {
		t.Fatal(err)
	}
	auth.principals["Bearer mine"] = &authv1.Principal{UserId: "u1", TokenId: "m", DefaultTeamId: "acme", Grants: []*authv1.TeamGrant{{TeamId: "acme", Permissions: role("viewer")}}}
	if _, err := call(a, "Bearer mine", createProject, &projectsv1.CreateProjectRequest{Name: "x"}); err != nil {
		t.Fatalf("still cached before the event: %v", err)
	}
	a.UserChanged("u1")
	if _, err := call(a, "Bearer mine", createProject, &projectsv1.CreateProjectRequest{Name: "x"}); code(err) != codes.PermissionDenied {
		t.Fatalf("after a downgrade: %v", err)
	}
	// A role change drops the principals holding the role in its team.
	if _, err := call(a, "Bearer viewer", getProject, &projectsv1.GetProjectRequest{ProjectId: "web"}); err != nil {
		t.Fatal(err)
	}
	auth.principals["Bearer viewer"] = &authv1.Principal{TokenId: "t-viewer", DefaultTeamId: "acme", Grants: []*authv1.TeamGrant{{TeamId: "acme", RoleId: "viewer"}}}
	a.RoleChanged("globex", "viewer")
	if _, err := call(a, "Bearer viewer", getProject, &projectsv1.GetProjectRequest{ProjectId: "web"}); err != nil {
		t.Fatalf("another team's role change dropped the principal: %v", err)
	}
	a.RoleChanged("acme", "viewer")
	if _, err := call(a, "Bearer viewer", getProject, &projectsv1.GetProjectRequest{ProjectId: "web"}); code(err) != codes.PermissionDenied {
		t.Fatalf("after the role lost its permission: %v", err)
	}
}
