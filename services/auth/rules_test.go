package auth_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"

	authv1 "github.com/slipwayhq/slipway/gen/slipway/auth/v1"
	"github.com/slipwayhq/slipway/pkg/apierr"
	"github.com/slipwayhq/slipway/pkg/sqldb"
	"github.com/slipwayhq/slipway/pkg/sqldb/sqltest"
	"github.com/slipwayhq/slipway/services/auth"
)

// TestRules runs the use cases the RPC handlers and "slipway admin" share
// as the operator calls them (no grant), where nothing but the rules of
// the data bounds the request.
func TestRules(t *testing.T) {
	sqltest.EachEngine(t, testRules)
}

func testRules(t *testing.T, engine sqldb.Dialect) {
	ctx := context.Background()
	db := openDB(t, engine)
	store := auth.NewSQLStore(db, nil)
	outbox := sqltest.RowCounter(t, db, "event_outbox")
	if _, err := auth.Bootstrap(ctx, store, auth.BootstrapOptions{}); err != nil {
		t.Fatal(err)
	}
	wantErr := func(what string, err error, code codes.Code, fields ...string) *apierr.Error {
		t.Helper()
		e := apierr.From(err)
		if e == nil || e.Code != code {
			t.Fatalf("%s: %v, want %v", what, err, code)
		}
		for _, f := range fields {
			if _, ok := e.Fields[f]; !ok {
				t.Fatalf("%s: fields %v do not name %s", what, e.Fields, f)
			}
		}
		return e
	}

	// UserByEmail takes the address as typed and says how users come to be.
	if _, err := auth.CreateUser(ctx, store, "dev@example.com", "Dev", ""); err != nil {
		t.Fatal(err)
	}
	dev, err := auth.UserByEmail(ctx, store, " DEV@example.com ")
	if err != nil || dev.Email != "dev@example.com" {
		t.Fatalf("UserByEmail = %+v, %v", dev, err)
	}
	_, err = auth.UserByEmail(ctx, store, "nobody@example.com")
	if e := wantErr("unknown email", err, codes.NotFound); !strings.Contains(e.Message, "slipway admin create-user") {
		t.Fatalf("unknown email: %q does not say how to create the user", e.Message)
	}
	wantErr("malformed email", errOnly(auth.UserByEmail(ctx, store, "not an address")), codes.InvalidArgument, "email")

	// AddMember: any role for the operator; a second time is a conflict
	// naming the role held.
	if m, err := auth.AddMember(ctx, store, "default", "Dev@Example.com", "developer"); err != nil || m.RoleID != "developer" || m.User.ID != dev.ID {
		t.Fatalf("AddMember = %+v, %v", m, err)
	}
	e := wantErr("member twice", errOnly(auth.AddMember(ctx, store, "default", "dev@example.com", "admin")), codes.FailedPrecondition)
	if e.Reason != "ALREADY_MEMBER" || !strings.Contains(e.Message, "(role developer)") {
		t.Fatalf("member twice: %v (%s)", e, e.Reason)
	}
	e = wantErr("unknown role", errOnly(auth.AddMember(ctx, store, "default", "dev@example.com", "owner")), codes.InvalidArgument, "roleId")
	if got := e.Fields["roleId"][0]; !strings.Contains(got, "its roles: admin, developer, viewer") {
		t.Fatalf("unknown role: %q does not list the team's roles", got)
	}
	wantErr("unknown team", errOnly(auth.AddMember(ctx, store, "nope", "dev@example.com", "viewer")), codes.NotFound)

	// CreateToken: every bad value at once.
	_, _, err = auth.CreateToken(ctx, store, auth.TokenRequest{Kind: auth.KindTeam, Name: "xy", TeamID: "default", UserID: dev.ID,
		RoleID: "viewer", Projects: []string{"web", "Not A Slug"}, ExpiresInDays: auth.MaxTokenExpiryDays + 1}, nil)
	wantErr("bad values", err, codes.InvalidArgument, "kind", "name", "projects[1]", "expiresInDays")
	_, _, err = auth.CreateToken(ctx, store, auth.TokenRequest{Kind: auth.KindBootstrap, Name: "boot", TeamID: "default", RoleID: "admin"}, nil)
	wantErr("bootstrap kind", err, codes.InvalidArgument, "kind")
	_, _, err = auth.CreateToken(ctx, store, auth.TokenRequest{Kind: auth.KindPersonal, Name: "no user", TeamID: "default", RoleID: "viewer"}, nil)
	wantErr("personal without a user", err, codes.InvalidArgument, "kind")

	// A token with a user stays within the user's membership, even for
	// the operator.
	personal := auth.TokenRequest{Kind: auth.KindPersonal, Name: "dev laptop", TeamID: "default", UserID: dev.ID, RoleID: "admin"}
	wantErr("beyond the membership", errOnly2(auth.CreateToken(ctx, store, personal, nil)), codes.PermissionDenied)
	personal.RoleID = "viewer"
	tok, sec, err := auth.CreateToken(ctx, store, personal, nil)
	if err != nil || sec == "" || tok.UserID != dev.ID || tok.RoleID != "viewer" || !tok.ExpiresAt.IsZero() {
		t.Fatalf("personal token = %+v, %v", tok, err)
	}
	if _, err := auth.CreateTeam(ctx, store, "Elsewhere", dev.ID); err != nil {
		t.Fatal(err)
	}
	other := auth.TokenRequest{Kind: auth.KindPersonal, Name: "admin there", TeamID: "elsewhere", UserID: bootstrapAdmin(t, store).ID, RoleID: "viewer"}
	e = wantErr("not a member", errOnly2(auth.CreateToken(ctx, store, other, nil)), codes.PermissionDenied)
	if !strings.Contains(e.Message, "add them to the team first") {
		t.Fatalf("not a member: %q", e.Message)
	}

	// A grant bounds what its holder hands out: no more permissions, and
	// its project restriction passes on.
	viewerGrant := &authv1.TeamGrant{TeamId: "default", RoleId: "viewer", Permissions: builtin("viewer"), Projects: []string{"web"}}
	team := auth.TokenRequest{Kind: auth.KindTeam, Name: "ci deploys", TeamID: "default", RoleID: "developer", ExpiresInDays: 7}
	wantErr("beyond the grant", errOnly2(auth.CreateToken(ctx, store, team, viewerGrant)), codes.PermissionDenied)
	team.RoleID = "viewer"
	if tok, _, err := auth.CreateToken(ctx, store, team, viewerGrant); err != nil || !slices.Equal(tok.Projects, []string{"web"}) || tok.ExpiresAt.IsZero() {
		t.Fatalf("token under a restricted grant = %+v, %v", tok, err)
	}

	// SetTeamPlan: a plan id, an existing team, one member event per
	// member with the change.
	wantErr("bad plan", errOnly2(auth.SetTeamPlan(ctx, store, "default", "Pro Plan")), codes.InvalidArgument, "plan")
	wantErr("unknown team", errOnly2(auth.SetTeamPlan(ctx, store, "nope", "pro")), codes.NotFound)
	before := outbox()
	got, old, err := auth.SetTeamPlan(ctx, store, "default", "pro")
	if err != nil || got.Plan != "pro" || old != auth.DefaultPlan {
		t.Fatalf("SetTeamPlan = %+v, %q, %v", got, old, err)
	}
	if n := outbox() - before; n != 2 { // the bootstrap admin and dev
		t.Fatalf("SetTeamPlan committed %d events, want 2", n)
	}
}

// bootstrapAdmin is the first admin Bootstrap created.
func bootstrapAdmin(t *testing.T, store auth.Store) auth.User {
	t.Helper()
	u, err := store.GetUserByEmail(context.Background(), auth.DefaultAdminEmail)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// errOnly and errOnly2 keep only the error of a call, to check it inline.
func errOnly[T any](_ T, err error) error { return err }

func errOnly2[T, U any](_ T, _ U, err error) error { return err }
