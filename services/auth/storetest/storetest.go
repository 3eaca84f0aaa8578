// Package storetest is the contract of auth.Store written as tests: every
// implementation runs the same suite.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/slipwayhq/slipway/pkg/events"
	"github.com/slipwayhq/slipway/services/auth"
)

// Factory returns an empty, migrated store and a function counting the
// events committed to its outbox.
type Factory func(t *testing.T) (auth.Store, func() int)

// Run runs the whole suite against stores made by newStore.
func Run(t *testing.T, newStore Factory) {
	tests := map[string]func(*testing.T, auth.Store, func() int){
		"Users":                    testUsers,
		"Bootstrap":                testBootstrap,
		"BootstrapRefusesNonEmpty": testBootstrapNonEmpty,
		"ConcurrentBootstrapOnce":  testConcurrentBootstrap,
		"CreateTeamAtomic":         testCreateTeam,
		"Members":                  testMembers,
		"Roles":                    testRoles,
		"DeleteRoleRules":          testDeleteRole,
		"UpdateRole":               testUpdateRole,
		"UpdateTeam":               testUpdateTeam,
		"TokenRoundTrip":           testTokenRoundTrip,
		"TokenReferences":          testTokenReferences,
		"ListTokensPages":          testListTokens,
		"RevokeOnce":               testRevoke,
		"TouchThrottled":           testTouch,
	}
	for name, test := range tests {
		t.Run(name, func(t *testing.T) {
			s, outbox := newStore(t)
			test(t, s, outbox)
		})
	}
}

// now is a time both engines store exactly.
func now() time.Time { return time.Now().UTC().Truncate(time.Millisecond) }

func event(t *testing.T, verb, id string) events.Event {
	t.Helper()
	ev, err := events.New("auth", "token", verb, id, map[string]string{"id": id})
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

func user(id string) auth.User {
	return auth.User{ID: id, Email: id + "@example.com", Name: "User " + id, CreatedAt: now()}
}

func role(team, id string, perms ...string) auth.Role {
	return auth.Role{TeamID: team, ID: id, Name: "Role " + id, Permissions: perms,
		Restrictions: auth.Restrictions{Mode: auth.RestrictIn}, CreatedAt: now(), UpdatedAt: now()}
}

func token(team, id, role, userID string) auth.Token {
	kind := auth.KindTeam
	if userID != "" {
		kind = auth.KindPersonal
	}
	return auth.Token{ID: id, Kind: kind, Name: "token " + id, TeamID: team, UserID: userID, RoleID: role,
		Prefix: "slw_tt_" + id, SecretHash: "hash-" + id, CreatedAt: now()}
}

// seed creates team with roles admin (builtin) and dev, and user u as an
// admin member.
func seed(t *testing.T, s auth.Store, team, u string) {
	t.Helper()
	ctx := context.Background()
	if err := s.CreateUser(ctx, user(u)); err != nil && !errors.Is(err, auth.ErrAlreadyExists) {
		t.Fatal(err)
	}
	admin := role(team, "admin", "A > B > C > Read", "Project > X > Y > Read")
	admin.Builtin = true
	err := s.CreateTeam(ctx, auth.Team{ID: team, Name: "Team " + team, Plan: "default", CreatedAt: now()},
		[]auth.Role{admin, role(team, "dev", "Project > X > Y > Read")},
		[]auth.Member{{UserID: u, RoleID: "admin", JoinedAt: now()}})
	if err != nil {
		t.Fatal(err)
	}
}

func testUsers(t *testing.T, s auth.Store, outbox func() int) {
	ctx := context.Background()
	if has, err := s.HasUsers(ctx); err != nil || has {
		t.Fatalf("HasUsers on an empty store = %v, %v", has, err)
	}
	want := user("u1")
	want.PasswordHash = "$argon2id$fake"
	if err := s.CreateUser(ctx, want, event(t, "created", "u1")); err != nil {
		t.Fatal(err)
	}
	if has, err := s.HasUsers(ctx); err != nil || !has {
		t.Fatalf("HasUsers = %v, %v; want true", has, err)
	}
	got, err := s.GetUser(ctx, "u1")
	if err != nil || got.ID != want.ID || got.Email != want.Email || got.Name != want.Name ||
		got.PasswordHash != want.PasswordHash || !got.CreatedAt.Equal(want.CreatedAt) {
		t.Fatalf("GetUser = %+v, %v; want %+v", got, err, want)
	}
	if got, err := s.GetUserByEmail(ctx, "u1@example.com"); err != nil || got.ID != "u1" {
		t.Fatalf("GetUserByEmail = %+v, %v", got, err)
	}
	sameEmail := user("u2")
	sameEmail.Email = want.Email
	if err := s.CreateUser(ctx, sameEmail, event(t, "created", "u2")); !errors.Is(err, auth.ErrAlreadyExists) {
		t.Fatalf("CreateUser(taken email) = %v, want ErrAlreadyExists", err)
	}
	if err := s.CreateUser(ctx, want); !errors.Is(err, auth.ErrAlreadyExists) {
		t.Fatalf("CreateUser(taken id) = %v, want ErrAlreadyExists", err)
	}
	if _, err := s.GetUser(ctx, "nope"); !errors.Is(err, auth.ErrNotFound) {
		t.Fatalf("GetUser(missing) = %v", err)
	}
	if _, err := s.GetUserByEmail(ctx, "nope@example.com"); !errors.Is(err, auth.ErrNotFound) {
		t.Fatalf("GetUserByEmail(missing) = %v", err)
	}
	if n := outbox(); n != 1 {
		t.Fatalf("outbox has %d events, want 1 (failed writes announce nothing)", n)
	}
}

func install(id string) auth.Install {
	admin := role("default", "admin", "A > B > C > Read")
	admin.Builtin = true
	tok := token("default", "boot-"+id, "admin", "admin-"+id)
	tok.Kind = auth.KindBootstrap
	return auth.Install{
		User:   user("admin-" + id),
		Team:   auth.Team{ID: "default", Name: "Default", Plan: "default", CreatedAt: now()},
		Roles:  []auth.Role{admin, role("default", "viewer")},
		Member: auth.Member{UserID: "admin-" + id, RoleID: "admin", JoinedAt: now()},
		Token:  tok,
	}
}

func testBootstrap(t *testing.T, s auth.Store, outbox func() int) {
	ctx := context.Background()
	in := install("1")
	if err := s.Bootstrap(ctx, in, event(t, "created", in.Token.ID)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetUser(ctx, in.User.ID); err != nil {
		t.Fatalf("bootstrap user: %v", err)
	}
	if team, err := s.GetTeam(ctx, "default"); err != nil || team.Plan != "default" {
		t.Fatalf("bootstrap team = %+v, %v", team, err)
	}
	if roles, err := s.ListRoles(ctx, "default"); err != nil || len(roles) != 2 || !roles[0].Builtin {
		t.Fatalf("bootstrap roles = %+v, %v", roles, err)
	}
	if m, err := s.GetMember(ctx, "default", in.User.ID); err != nil || m.RoleID != "admin" {
		t.Fatalf("bootstrap membership = %+v, %v", m, err)
	}
	if tok, err := s.GetTokenByHash(ctx, in.Token.SecretHash); err != nil || tok.Kind != auth.KindBootstrap || tok.UserID != in.User.ID {
		t.Fatalf("bootstrap token = %+v, %v", tok, err)
	}
	// A second bootstrap, even of a different admin, writes nothing.
	again := install("2")
	if err := s.Bootstrap(ctx, again, event(t, "created", again.Token.ID)); !errors.Is(err, auth.ErrInstalled) {
		t.Fatalf("second Bootstrap = %v, want ErrInstalled", err)
	}
	if _, err := s.GetUser(ctx, again.User.ID); !errors.Is(err, auth.ErrNotFound) {
		t.Fatalf("second bootstrap left its user: %v", err)
	}
	if n := outbox(); n != 1 {
		t.Fatalf("outbox has %d events, want 1", n)
	}
}

func testBootstrapNonEmpty(t *testing.T, s auth.Store, outbox func() int) {
	ctx := context.Background()
	if err := s.CreateUser(ctx, user("someone")); err != nil {
		t.Fatal(err)
	}
	in := install("1")
	if err := s.Bootstrap(ctx, in, event(t, "created", in.Token.ID)); !errors.Is(err, auth.ErrInstalled) {
		t.Fatalf("Bootstrap with users = %v, want ErrInstalled", err)
	}
	if _, err := s.GetTeam(ctx, "default"); !errors.Is(err, auth.ErrNotFound) {
		t.Fatalf("refused bootstrap left its team: %v", err)
	}
	if n := outbox(); n != 0 {
		t.Fatalf("refused bootstrap left %d events", n)
	}
}

// testConcurrentBootstrap races first starts that share nothing (not even
// the team id): exactly one wins, and the others see ErrInstalled rather
// than a raw constraint error.
func testConcurrentBootstrap(t *testing.T, s auth.Store, outbox func() int) {
	ctx := context.Background()
	const racers = 6
	var wg sync.WaitGroup
	errs := make([]error, racers)
	for i := range racers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			in := install(fmt.Sprint(i))
			team := "team-" + fmt.Sprint(i)
			in.Team.ID, in.Token.TeamID, in.Member.TeamID = team, team, team
			errs[i] = s.Bootstrap(ctx, in, event(t, "created", in.Token.ID))
		}()
	}
	wg.Wait()
	won := 0
	for i, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, auth.ErrInstalled):
			t.Errorf("racer %d: %v, want nil or ErrInstalled", i, err)
		}
	}
	if won != 1 {
		t.Fatalf("%d bootstraps committed, want exactly 1", won)
	}
	if n := outbox(); n != 1 {
		t.Fatalf("outbox has %d events, want 1", n)
	}
}

func testCreateTeam(t *testing.T, s auth.Store, outbox func() int) {
	ctx := context.Background()
	seed(t, s, "alpha", "u1")
	team, err := s.GetTeam(ctx, "alpha")
	if err != nil || team.Name != "Team alpha" || team.Plan != "default" || team.CreatedAt.IsZero() {
		t.Fatalf("GetTeam = %+v, %v", team, err)
	}
	err = s.CreateTeam(ctx, auth.Team{ID: "delta", Name: "Delta", Plan: "default", Email: "ops@delta.example", CreatedAt: now()}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s.GetTeam(ctx, "delta"); err != nil || got.Email != "ops@delta.example" {
		t.Fatalf("GetTeam(delta) = %+v, %v; want its email kept", got, err)
	}
	err = s.CreateTeam(ctx, auth.Team{ID: "alpha", Name: "again", Plan: "default", CreatedAt: now()}, nil, nil, event(t, "created", "alpha"))
	if !errors.Is(err, auth.ErrAlreadyExists) {
		t.Fatalf("CreateTeam(taken id) = %v, want ErrAlreadyExists", err)
	}
	// A member whose user is missing fails the whole team: nothing stays.
	err = s.CreateTeam(ctx, auth.Team{ID: "beta", Name: "Beta", Plan: "default", CreatedAt: now()},
		[]auth.Role{role("beta", "admin")}, []auth.Member{{UserID: "ghost", RoleID: "admin", JoinedAt: now()}}, event(t, "created", "beta"))
	if !errors.Is(err, auth.ErrNotFound) {
		t.Fatalf("CreateTeam(unknown member) = %v, want ErrNotFound", err)
	}
	if _, err := s.GetTeam(ctx, "beta"); !errors.Is(err, auth.ErrNotFound) {
		t.Fatalf("failed CreateTeam left the team: %v", err)
	}
	// So does a member whose role is not among the team's roles.
	err = s.CreateTeam(ctx, auth.Team{ID: "gamma", Name: "Gamma", Plan: "default", CreatedAt: now()},
		[]auth.Role{role("gamma", "admin")}, []auth.Member{{UserID: "u1", RoleID: "owner", JoinedAt: now()}})
	if !errors.Is(err, auth.ErrNotFound) {
		t.Fatalf("CreateTeam(unknown member role) = %v, want ErrNotFound", err)
	}
	if roles, _ := s.ListRoles(ctx, "gamma"); len(roles) != 0 {
		t.Fatalf("failed CreateTeam left roles: %+v", roles)
	}
	if _, err := s.GetTeam(ctx, "nope"); !errors.Is(err, auth.ErrNotFound) {
		t.Fatalf("GetTeam(missing) = %v", err)
	}
	if n := outbox(); n != 0 {
		t.Fatalf("failed creates left %d events", n)
	}
}

func testMembers(t *testing.T, s auth.Store, outbox func() int) {
	ctx := context.Background()
	seed(t, s, "alpha", "u1")
	if err := s.CreateUser(ctx, user("u2")); err != nil {
		t.Fatal(err)
	}
	joined := now()
	if err := s.AddMember(ctx, auth.Member{TeamID: "alpha", UserID: "u2", RoleID: "dev", JoinedAt: joined}, event(t, "added", "u2")); err != nil {
		t.Fatal(err)
	}
	if m, err := s.GetMember(ctx, "alpha", "u2"); err != nil || m.RoleID != "dev" || !m.JoinedAt.Equal(joined) {
		t.Fatalf("GetMember = %+v, %v", m, err)
	}
	if ms, err := s.Memberships(ctx, "u2"); err != nil || len(ms) != 1 || ms[0].TeamID != "alpha" || ms[0].RoleID != "dev" {
		t.Fatalf("Memberships = %+v, %v", ms, err)
	}
	if ms, err := s.Memberships(ctx, "nobody"); err != nil || len(ms) != 0 {
		t.Fatalf("Memberships(nobody) = %+v, %v", ms, err)
	}
	for name, m := range map[string]auth.Member{
		"unknown user": {TeamID: "alpha", UserID: "ghost", RoleID: "dev", JoinedAt: joined},
		"unknown role": {TeamID: "alpha", UserID: "u2", RoleID: "owner", JoinedAt: joined},
		"unknown team": {TeamID: "nope", UserID: "u2", RoleID: "dev", JoinedAt: joined},
	} {
		if err := s.AddMember(ctx, m, event(t, "added", "x")); !errors.Is(err, auth.ErrNotFound) {
			t.Errorf("AddMember(%s) = %v, want ErrNotFound", name, err)
		}
	}
	if err := s.AddMember(ctx, auth.Member{TeamID: "alpha", UserID: "u2", RoleID: "admin", JoinedAt: joined}); !errors.Is(err, auth.ErrAlreadyExists) {
		t.Fatalf("AddMember(twice) = %v, want ErrAlreadyExists", err)
	}
	list, err := s.ListMembers(ctx, "alpha")
	if err != nil || len(list) != 2 || list[0].UserID != "u1" || list[1].User.Email != "u2@example.com" || list[1].RoleID != "dev" {
		t.Fatalf("ListMembers = %+v, %v", list, err)
	}
	if list, err := s.ListMembers(ctx, "nope"); err != nil || list == nil || len(list) != 0 {
		t.Fatalf("ListMembers(unknown team) = %#v, %v; want empty", list, err)
	}
	if err := s.SetMemberRole(ctx, "alpha", "u2", "admin", event(t, "updated", "u2")); err != nil {
		t.Fatal(err)
	}
	if m, _ := s.GetMember(ctx, "alpha", "u2"); m.RoleID != "admin" {
		t.Fatalf("role after SetMemberRole = %q", m.RoleID)
	}
	if err := s.SetMemberRole(ctx, "alpha", "u2", "owner"); !errors.Is(err, auth.ErrNotFound) {
		t.Fatalf("SetMemberRole(unknown role) = %v", err)
	}
	if err := s.SetMemberRole(ctx, "alpha", "ghost", "dev"); !errors.Is(err, auth.ErrNotFound) {
		t.Fatalf("SetMemberRole(not a member) = %v", err)
	}
	if err := s.RemoveMember(ctx, "alpha", "u2", event(t, "removed", "u2")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetMember(ctx, "alpha", "u2"); !errors.Is(err, auth.ErrNotFound) {
		t.Fatalf("GetMember after RemoveMember = %v", err)
	}
	if err := s.RemoveMember(ctx, "alpha", "u2", event(t, "removed", "u2")); !errors.Is(err, auth.ErrNotFound) {
		t.Fatalf("RemoveMember(twice) = %v", err)
	}
	if n := outbox(); n != 3 {
		t.Fatalf("outbox has %d events, want 3", n)
	}
}

func testRoles(t *testing.T, s auth.Store, outbox func() int) {
	ctx := context.Background()
	seed(t, s, "alpha", "u1")
	want := role("alpha", "ops", "Project > Jobs > General > Read", "Account > Admin > Roles > Read")
	want.Description = "operations"
	want.Restrictions = auth.Restrictions{Enabled: true, Projects: []string{"web", "api"}, Mode: auth.RestrictIn}
	if err := s.CreateRole(ctx, want, event(t, "created", "ops")); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetRole(ctx, "alpha", "ops")
	if err != nil || got.Name != want.Name || got.Description != want.Description || got.Builtin ||
		!slices.Equal(got.Permissions, want.Permissions) || !got.Restrictions.Enabled || got.Restrictions.Mode != auth.RestrictIn ||
		!slices.Equal(got.Restrictions.Projects, want.Restrictions.Projects) || !got.CreatedAt.Equal(want.CreatedAt) || !got.UpdatedAt.Equal(want.UpdatedAt) {
		t.Fatalf("GetRole = %+v, %v; want %+v", got, err, want)
	}
	empty := role("alpha", "empty")
	empty.Restrictions.Mode = ""
	if err := s.CreateRole(ctx, empty); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.GetRole(ctx, "alpha", "empty"); got.Permissions == nil || len(got.Permissions) != 0 ||
		got.Restrictions.Projects == nil || got.Restrictions.Mode != auth.RestrictIn {
		t.Fatalf("empty role read back as %#v (want empty lists, mode in)", got)
	}
	if err := s.CreateRole(ctx, want, event(t, "created", "ops")); !errors.Is(err, auth.ErrAlreadyExists) {
		t.Fatalf("CreateRole(taken id) = %v, want ErrAlreadyExists", err)
	}
	if err := s.CreateRole(ctx, role("nope", "ops")); !errors.Is(err, auth.ErrNotFound) {
		t.Fatalf("CreateRole(unknown team) = %v, want ErrNotFound", err)
	}
	// Role ids are per team.
	seed(t, s, "beta", "u1")
	if err := s.CreateRole(ctx, role("beta", "ops")); err != nil {
		t.Fatalf("same role id in another team: %v", err)
	}
	list, err := s.ListRoles(ctx, "alpha")
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range list {
		ids = append(ids, r.ID)
	}
	if !slices.Equal(ids, []string{"admin", "dev", "empty", "ops"}) {
		t.Fatalf("ListRoles ids = %v", ids)
	}
	if _, err := s.GetRole(ctx, "beta", "empty"); !errors.Is(err, auth.ErrNotFound) {
		t.Fatalf("GetRole(other team's role) = %v, want ErrNotFound", err)
	}
	if n := outbox(); n != 1 {
		t.Fatalf("outbox has %d events, want 1", n)
	}
}

func testDeleteRole(t *testing.T, s auth.Store, outbox func() int) {
	ctx := context.Background()
	seed(t, s, "alpha", "u1")
	if err := s.DeleteRole(ctx, "alpha", "admin", event(t, "deleted", "admin")); !errors.Is(err, auth.ErrBuiltin) {
		t.Fatalf("DeleteRole(builtin) = %v, want ErrBuiltin", err)
	}
	if err := s.DeleteRole(ctx, "alpha", "nope"); !errors.Is(err, auth.ErrNotFound) {
		t.Fatalf("DeleteRole(missing) = %v, want ErrNotFound", err)
	}
	// Held by a member.
	if err := s.CreateUser(ctx, user("u2")); err != nil {
		t.Fatal(err)
	}
	if err := s.AddMember(ctx, auth.Member{TeamID: "alpha", UserID: "u2", RoleID: "dev", JoinedAt: now()}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteRole(ctx, "alpha", "dev", event(t, "deleted", "dev")); !errors.Is(err, auth.ErrInUse) {
		t.Fatalf("DeleteRole(member's role) = %v, want ErrInUse", err)
	}
	if err := s.RemoveMember(ctx, "alpha", "u2"); err != nil {
		t.Fatal(err)
	}
	// Held by an unrevoked token; a revoked one does not count.
	if err := s.CreateToken(ctx, token("alpha", "t1", "dev", "")); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteRole(ctx, "alpha", "dev"); !errors.Is(err, auth.ErrInUse) {
		t.Fatalf("DeleteRole(token's role) = %v, want ErrInUse", err)
	}
	if _, _, err := s.RevokeToken(ctx, "t1", now()); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteRole(ctx, "alpha", "dev", event(t, "deleted", "dev")); err != nil {
		t.Fatalf("DeleteRole(only revoked tokens) = %v", err)
	}
	if _, err := s.GetRole(ctx, "alpha", "dev"); !errors.Is(err, auth.ErrNotFound) {
		t.Fatalf("GetRole after delete = %v", err)
	}
	if tok, err := s.GetToken(ctx, "t1"); err != nil || tok.RoleID != "dev" {
		t.Fatalf("revoked token lost its history: %+v, %v", tok, err)
	}
	if n := outbox(); n != 1 {
		t.Fatalf("outbox has %d events, want 1", n)
	}
}

func testTokenRoundTrip(t *testing.T, s auth.Store, outbox func() int) {
	ctx := context.Background()
	seed(t, s, "alpha", "u1")
	want := token("alpha", "t1", "dev", "u1")
	want.Projects = []string{"web", "api"}
	want.ExpiresAt = now().Add(time.Hour)
	if err := s.CreateToken(ctx, want, event(t, "created", "t1")); err != nil {
		t.Fatal(err)
	}
	check := func(label string, got auth.Token, err error) {
		t.Helper()
		if err != nil || got.ID != want.ID || got.Kind != want.Kind || got.Name != want.Name || got.TeamID != want.TeamID ||
			got.UserID != want.UserID || got.RoleID != want.RoleID || !slices.Equal(got.Projects, want.Projects) ||
			got.Prefix != want.Prefix || got.SecretHash != want.SecretHash || !got.CreatedAt.Equal(want.CreatedAt) ||
			!got.ExpiresAt.Equal(want.ExpiresAt) || !got.LastUsedAt.IsZero() || !got.RevokedAt.IsZero() {
			t.Fatalf("%s = %+v, %v; want %+v", label, got, err, want)
		}
	}
	got, err := s.GetToken(ctx, "t1")
	check("GetToken", got, err)
	got, err = s.GetTokenByHash(ctx, "hash-t1")
	check("GetTokenByHash", got, err)
	// A team token: no user, no expiry, no projects.
	team := token("alpha", "t2", "admin", "")
	if err := s.CreateToken(ctx, team); err != nil {
		t.Fatal(err)
	}
	if got, err := s.GetToken(ctx, "t2"); err != nil || got.UserID != "" || !got.ExpiresAt.IsZero() || got.Projects == nil || len(got.Projects) != 0 {
		t.Fatalf("team token = %#v, %v", got, err)
	}
	if _, err := s.GetToken(ctx, "nope"); !errors.Is(err, auth.ErrNotFound) {
		t.Fatalf("GetToken(missing) = %v", err)
	}
	if _, err := s.GetTokenByHash(ctx, "nope"); !errors.Is(err, auth.ErrNotFound) {
		t.Fatalf("GetTokenByHash(missing) = %v", err)
	}
	sameHash := token("alpha", "t3", "dev", "")
	sameHash.SecretHash = want.SecretHash
	if err := s.CreateToken(ctx, sameHash, event(t, "created", "t3")); !errors.Is(err, auth.ErrAlreadyExists) {
		t.Fatalf("CreateToken(taken hash) = %v, want ErrAlreadyExists", err)
	}
	sameID := token("alpha", "t1", "dev", "")
	sameID.SecretHash = "other"
	if err := s.CreateToken(ctx, sameID); !errors.Is(err, auth.ErrAlreadyExists) {
		t.Fatalf("CreateToken(taken id) = %v, want ErrAlreadyExists", err)
	}
	if n := outbox(); n != 1 {
		t.Fatalf("outbox has %d events, want 1", n)
	}
}

func testTokenReferences(t *testing.T, s auth.Store, outbox func() int) {
	ctx := context.Background()
	seed(t, s, "alpha", "u1")
	seed(t, s, "beta", "u1")
	if err := s.CreateRole(ctx, role("beta", "only-beta")); err != nil {
		t.Fatal(err)
	}
	for name, tok := range map[string]auth.Token{
		"unknown role":      token("alpha", "x1", "owner", ""),
		"other team's role": token("alpha", "x2", "only-beta", ""),
		"unknown team":      token("nope", "x3", "admin", ""),
		"unknown user":      token("alpha", "x4", "admin", "ghost"),
	} {
		if err := s.CreateToken(ctx, tok, event(t, "created", tok.ID)); !errors.Is(err, auth.ErrNotFound) {
			t.Errorf("CreateToken(%s) = %v, want ErrNotFound", name, err)
		}
	}
	if n := outbox(); n != 0 {
		t.Fatalf("failed creates left %d events", n)
	}
}

func testListTokens(t *testing.T, s auth.Store, _ func() int) {
	ctx := context.Background()
	seed(t, s, "alpha", "u1")
	seed(t, s, "beta", "u1")
	for i := range 25 {
		if err := s.CreateToken(ctx, token("alpha", fmt.Sprintf("a-%02d", i), "dev", "")); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 {
		if err := s.CreateToken(ctx, token("beta", fmt.Sprintf("b-%02d", i), "dev", "")); err != nil {
			t.Fatal(err)
		}
	}
	// Keyset paging visits every token of the team once, in id order, and
	// never another team's.
	var seen []string
	page := auth.Page{Limit: 10}
	for round := 0; ; round++ {
		list, more, total, err := s.ListTokens(ctx, "alpha", page)
		if err != nil {
			t.Fatal(err)
		}
		// Every page counts the team's whole list, and only the team's.
		if total != 25 {
			t.Fatalf("page %d: total = %d, want 25", round, total)
		}
		for _, tok := range list {
			seen = append(seen, tok.ID)
		}
		if !more {
			break
		}
		if round > 5 {
			t.Fatal("paging does not end")
		}
		page.After = list[len(list)-1].ID
	}
	if len(seen) != 25 {
		t.Fatalf("paged through %d tokens, want 25: %v", len(seen), seen)
	}
	for i, id := range seen {
		if want := fmt.Sprintf("a-%02d", i); id != want {
			t.Fatalf("position %d = %s, want %s", i, id, want)
		}
	}
	list, more, total, err := s.ListTokens(ctx, "alpha", auth.Page{Offset: 20, Limit: 10})
	if err != nil || len(list) != 5 || more || list[0].ID != "a-20" || total != 25 {
		t.Fatalf("offset page = %d items, more=%v, total=%d, err=%v; want 5 from a-20, 25", len(list), more, total, err)
	}
	list, more, total, err = s.ListTokens(ctx, "beta", auth.Page{Limit: 3})
	if err != nil || len(list) != 3 || more || total != 3 {
		t.Fatalf("exact page = %d items, more=%v, total=%d, err=%v; want 3, false, 3", len(list), more, total, err)
	}
	if list, _, total, err := s.ListTokens(ctx, "gamma", auth.Page{Limit: 3}); err != nil || len(list) != 0 || total != 0 {
		t.Fatalf("a team without tokens = %d items, total=%d, err=%v", len(list), total, err)
	}
}

func testRevoke(t *testing.T, s auth.Store, outbox func() int) {
	ctx := context.Background()
	seed(t, s, "alpha", "u1")
	if err := s.CreateToken(ctx, token("alpha", "t1", "dev", "")); err != nil {
		t.Fatal(err)
	}
	first := now()
	tok, changed, err := s.RevokeToken(ctx, "t1", first, event(t, "revoked", "t1"))
	if err != nil || !changed || !tok.RevokedAt.Equal(first) {
		t.Fatalf("RevokeToken = %+v, %v, %v; want revoked at %v", tok, changed, err, first)
	}
	// Revoking again keeps the first time and announces nothing.
	tok, changed, err = s.RevokeToken(ctx, "t1", first.Add(time.Hour), event(t, "revoked", "t1"))
	if err != nil || changed || !tok.RevokedAt.Equal(first) {
		t.Fatalf("second RevokeToken = %+v, %v, %v; want unchanged", tok, changed, err)
	}
	if _, _, err := s.RevokeToken(ctx, "nope", first, event(t, "revoked", "nope")); !errors.Is(err, auth.ErrNotFound) {
		t.Fatalf("RevokeToken(missing) = %v, want ErrNotFound", err)
	}
	if n := outbox(); n != 1 {
		t.Fatalf("outbox has %d events, want 1 (revoking twice announces once)", n)
	}
}

func testTouch(t *testing.T, s auth.Store, _ func() int) {
	ctx := context.Background()
	seed(t, s, "alpha", "u1")
	if err := s.CreateToken(ctx, token("alpha", "t1", "dev", "")); err != nil {
		t.Fatal(err)
	}
	t0 := now()
	for _, step := range []struct {
		at    time.Time
		wrote bool
		last  time.Time
	}{
		{t0, true, t0},                                   // never used: written
		{t0.Add(30 * time.Second), false, t0},            // within the minute: skipped
		{t0.Add(time.Minute), true, t0.Add(time.Minute)}, // a minute on: written
		{t0.Add(61 * time.Second), false, t0.Add(time.Minute)},
	} {
		wrote, err := s.TouchToken(ctx, "t1", step.at, time.Minute)
		if err != nil || wrote != step.wrote {
			t.Fatalf("TouchToken(%v) = %v, %v; want %v", step.at.Sub(t0), wrote, err, step.wrote)
		}
		if tok, _ := s.GetToken(ctx, "t1"); !tok.LastUsedAt.Equal(step.last) {
			t.Fatalf("after TouchToken(%v) last used = %v, want %v", step.at.Sub(t0), tok.LastUsedAt, step.last)
		}
	}
	if wrote, err := s.TouchToken(ctx, "nope", t0, time.Minute); err != nil || wrote {
		t.Fatalf("TouchToken(missing) = %v, %v; want a no-op", wrote, err)
	}
}

func testUpdateRole(t *testing.T, s auth.Store, outbox func() int) {
	ctx := context.Background()
	seed(t, s, "alpha", "u1")
	before, err := s.GetRole(ctx, "alpha", "dev")
	if err != nil {
		t.Fatal(err)
	}
	upd := before
	upd.Name, upd.Description = "Developers", "write code"
	upd.Permissions = []string{"Account > Admin > Roles > Read"}
	upd.Restrictions = auth.Restrictions{Enabled: true, Projects: []string{"web"}, Mode: auth.RestrictIn}
	upd.UpdatedAt = before.UpdatedAt.Add(time.Hour)
	upd.CreatedAt = before.CreatedAt.Add(time.Hour) // ignored
	upd.Builtin = true                              // ignored
	if err := s.UpdateRole(ctx, upd, event(t, "updated", "u1"), event(t, "updated", "u2")); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetRole(ctx, "alpha", "dev")
	if err != nil || got.Name != "Developers" || got.Description != "write code" || got.Builtin ||
		!slices.Equal(got.Permissions, upd.Permissions) || !got.Restrictions.Enabled || !slices.Equal(got.Restrictions.Projects, []string{"web"}) ||
		!got.CreatedAt.Equal(before.CreatedAt) || !got.UpdatedAt.Equal(upd.UpdatedAt) {
		t.Fatalf("role after UpdateRole = %+v, %v", got, err)
	}
	admin, _ := s.GetRole(ctx, "alpha", "admin")
	admin.Permissions = nil
	if err := s.UpdateRole(ctx, admin, event(t, "updated", "x")); !errors.Is(err, auth.ErrBuiltin) {
		t.Fatalf("UpdateRole(builtin) = %v, want ErrBuiltin", err)
	}
	if got, _ := s.GetRole(ctx, "alpha", "admin"); len(got.Permissions) == 0 {
		t.Fatal("a refused UpdateRole changed the built-in role")
	}
	for name, r := range map[string]auth.Role{"unknown role": role("alpha", "nope"), "unknown team": role("nope", "dev")} {
		if err := s.UpdateRole(ctx, r, event(t, "updated", "x")); !errors.Is(err, auth.ErrNotFound) {
			t.Errorf("UpdateRole(%s) = %v, want ErrNotFound", name, err)
		}
	}
	if n := outbox(); n != 2 {
		t.Fatalf("outbox has %d events, want 2 (refused updates enqueue none)", n)
	}
}

func testUpdateTeam(t *testing.T, s auth.Store, outbox func() int) {
	ctx := context.Background()
	seed(t, s, "alpha", "u1")
	before, err := s.GetTeam(ctx, "alpha")
	if err != nil {
		t.Fatal(err)
	}
	upd := before
	if before.Email != "" {
		t.Fatalf("a team created without an email has %q", before.Email)
	}
	upd.Name, upd.Description, upd.Plan, upd.Email = "Alpha Crew", "the first", "pro", "billing@alpha.example"
	upd.CreatedAt = before.CreatedAt.Add(time.Hour) // ignored
	if err := s.UpdateTeam(ctx, upd, event(t, "updated", "u1")); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetTeam(ctx, "alpha")
	if err != nil || got.ID != "alpha" || got.Name != "Alpha Crew" || got.Description != "the first" || got.Plan != "pro" ||
		got.Email != "billing@alpha.example" || !got.CreatedAt.Equal(before.CreatedAt) {
		t.Fatalf("team after UpdateTeam = %+v, %v", got, err)
	}
	if err := s.UpdateTeam(ctx, auth.Team{ID: "nope", Name: "Nope", Plan: "pro"}, event(t, "updated", "x")); !errors.Is(err, auth.ErrNotFound) {
		t.Fatalf("UpdateTeam(unknown) = %v, want ErrNotFound", err)
	}
	if n := outbox(); n != 1 {
		t.Fatalf("outbox has %d events, want 1", n)
	}
}
