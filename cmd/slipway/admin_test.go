package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	authv1 "github.com/slipwayhq/slipway/gen/slipway/auth/v1"
	"github.com/slipwayhq/slipway/pkg/authz"
	"github.com/slipwayhq/slipway/pkg/permissions"
	"github.com/slipwayhq/slipway/pkg/secret"
	"github.com/slipwayhq/slipway/pkg/sqldb"
	"github.com/slipwayhq/slipway/pkg/sqldb/sqltest"
	"github.com/slipwayhq/slipway/pkg/testenv"
	"github.com/slipwayhq/slipway/services/auth"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// adminEnv is a migrated auth database and the flags that point the
// admin commands at it.
type adminEnv struct {
	flags []string
	// store is a separate connection, as the running server would hold.
	store auth.Store
	srv   authv1.AuthServiceServer
}

// clearSettings keeps the caller's SLIPWAY_* environment out of the test.
func clearSettings(t *testing.T) {
	for _, s := range settings() {
		if _, ok := os.LookupEnv(s.Env); ok {
			t.Setenv(s.Env, s.Default)
		}
	}
}

// newAdminEnv migrates an auth database the way an operator would: on
// SQLite through --data-dir (the server's default file), on PostgreSQL
// through --auth-database-url.
func newAdminEnv(t *testing.T, engine sqldb.Dialect) *adminEnv {
	t.Helper()
	clearSettings(t)
	ctx := context.Background()
	dir := t.TempDir()
	flags := []string{"--data-dir", dir}
	url := "sqlite:" + filepath.Join(dir, "auth.db")
	if engine == sqldb.Postgres {
		url = sqltest.URL(t, engine)
		flags = []string{"--auth-database-url", url}
	}
	if err := run(ctx, append([]string{"migrate", "--target=auth", "--log-level=error"}, flags...)); err != nil {
		t.Fatalf("slipway migrate: %v", err)
	}
	db, err := sqldb.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	store := auth.NewSQLStore(db, nil)
	return &adminEnv{flags: flags, store: store, srv: auth.NewServer(store)}
}

// admin runs `slipway admin args...` in process with stdin and returns
// what it printed on stdout and stderr.
func (e *adminEnv) admin(t *testing.T, stdin string, args ...string) (string, string, error) {
	t.Helper()
	var out, log bytes.Buffer
	err := runAdmin(context.Background(), append(args, e.flags...), adminIO{in: strings.NewReader(stdin), out: &out, log: &log})
	return out.String(), log.String(), err
}

// ok runs a command that must succeed and returns its stdout, trimmed.
func (e *adminEnv) ok(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	out, log, err := e.admin(t, stdin, args...)
	if err != nil {
		t.Fatalf("slipway admin %s: %v\nstderr: %s", strings.Join(args, " "), err, log)
	}
	return strings.TrimSpace(out)
}

func (e *adminEnv) authenticate(header string) (*authv1.Principal, error) {
	resp, err := e.srv.Authenticate(context.Background(), &authv1.AuthenticateRequest{Authorization: header})
	return resp.GetPrincipal(), err
}

func builtinPerms(id string) []string {
	for _, r := range permissions.Builtin() {
		if r.ID == id {
			out := slices.Clone(r.Permissions)
			slices.Sort(out)
			return out
		}
	}
	panic("no builtin role " + id)
}

func TestAdmin(t *testing.T) {
	sqltest.EachEngine(t, func(t *testing.T, engine sqldb.Dialect) { testAdmin(t, newAdminEnv(t, engine)) })
}

func testAdmin(t *testing.T, e *adminEnv) {
	ctx := context.Background()
	const password = "correct horse battery staple"

	// create-user, the password from stdin: hashed, never echoed.
	out, log, err := e.admin(t, password+"\n", "create-user", "--email", "Ada@Example.com", "--name", "Ada", "--password-stdin")
	if err != nil {
		t.Fatalf("create-user: %v (%s)", err, log)
	}
	if strings.Contains(out+log, password) {
		t.Fatal("create-user echoed the password")
	}
	ada, err := e.store.GetUserByEmail(ctx, "ada@example.com")
	if err != nil || strings.TrimSpace(out) != ada.ID || ada.Name != "Ada" {
		t.Fatalf("create-user printed %q; stored %+v, %v", out, ada, err)
	}
	if !strings.HasPrefix(ada.PasswordHash, "$argon2id$") {
		t.Fatalf("password stored as %q, want an argon2id hash", ada.PasswordHash)
	}
	if ok, _, err := secret.VerifyPassword(ada.PasswordHash, password); !ok || err != nil {
		t.Fatalf("stored hash does not verify the password: %v", err)
	}
	bobID := e.ok(t, "", "create-user", "--email", "bob@example.com")
	if bob, err := e.store.GetUser(ctx, bobID); err != nil || bob.PasswordHash != "" || bob.Name != "bob" {
		t.Fatalf("user without a password = %+v, %v", bob, err)
	}
	e.ok(t, "", "create-user", "--email", "carol@example.com", "--name", "Carol")

	// create-team: Ada is its admin.
	if id := e.ok(t, "", "create-team", "--name", "Acme Ops", "--owner-email", "ADA@example.com"); id != "acme-ops" {
		t.Fatalf("create-team printed %q, want acme-ops", id)
	}
	if m, err := e.store.GetMember(ctx, "acme-ops", ada.ID); err != nil || m.RoleID != "admin" {
		t.Fatalf("owner membership = %+v, %v", m, err)
	}

	// add-member.
	if out := e.ok(t, "", "add-member", "--team", "acme-ops", "--email", "bob@example.com", "--role", "developer"); out != "" {
		t.Fatalf("add-member printed %q on stdout", out)
	}
	if m, err := e.store.GetMember(ctx, "acme-ops", bobID); err != nil || m.RoleID != "developer" {
		t.Fatalf("bob's membership = %+v, %v", m, err)
	}

	// create-token (personal): stdout is the secret and nothing else.
	out, log, err = e.admin(t, "", "create-token", "--email", "bob@example.com", "--team", "acme-ops", "--role", "viewer",
		"--name", "bob cli", "--expires-in-days", "7", "--project", "web", "--project", "api")
	if err != nil {
		t.Fatalf("create-token: %v (%s)", err, log)
	}
	tok := strings.TrimSuffix(out, "\n")
	if kind, err := secret.Parse(tok); err != nil || kind != secret.KindPersonal || out != tok+"\n" {
		t.Fatalf("create-token stdout = %q, want one personal token line", out)
	}
	if strings.Contains(log, tok) || !strings.Contains(log, "shown this once") {
		t.Fatalf("create-token stderr = %q", log)
	}
	p, err := e.authenticate("Bearer " + tok)
	if err != nil {
		t.Fatalf("printed token does not authenticate: %v", err)
	}
	if p.GetKind() != "personal_token" || p.GetUserId() != bobID || p.GetDefaultTeamId() != "acme-ops" || p.GetExpiresAt() == nil ||
		p.GetExpiresAt().AsTime().Before(time.Now().AddDate(0, 0, 6)) {
		t.Fatalf("personal token principal = %v", p)
	}
	if g := p.GetGrants()[0]; g.GetRoleId() != "viewer" || !slices.Equal(g.GetPermissions(), builtinPerms("viewer")) ||
		!slices.Equal(g.GetProjects(), []string{"api", "web"}) {
		t.Fatalf("personal token grant = %v", g)
	}

	// create-token (team), captured as TOKEN=$(...) would.
	teamTok := e.ok(t, "", "create-token", "--kind", "team", "--team", "acme-ops", "--role", "developer", "--name", "ci deploys")
	p, err = e.authenticate("Bearer " + teamTok)
	if err != nil {
		t.Fatal(err)
	}
	if p.GetKind() != "team_token" || p.GetUserId() != "" || p.GetExpiresAt() != nil ||
		!slices.Equal(p.GetGrants()[0].GetPermissions(), builtinPerms("developer")) || len(p.GetGrants()[0].GetProjects()) != 0 {
		t.Fatalf("team token principal = %v", p)
	}

	// Refusals: a clear error, nothing on stdout, nothing written.
	tokens := func() int {
		list, _, _, err := e.store.ListTokens(ctx, "acme-ops", auth.Page{Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		return len(list)
	}
	before := tokens()
	for _, tc := range []struct {
		stdin string
		args  []string
		want  string
	}{
		{"", []string{"create-user"}, "--email is required"},
		{"", []string{"create-user", "--email", "ada@example.com"}, "already exists"},
		{"", []string{"create-user", "--email", "not an address"}, "--email: must be an email address"},
		{"", []string{"create-user", "--email", "dan@example.com", "--password-stdin"}, "no password on stdin"},
		{"hunter2 one\nhunter2 two\n", []string{"create-user", "--email", "dan@example.com", "--password-stdin"}, "several lines"},
		{"", []string{"create-user", "--email", "dan@example.com", "--password", "hunter2"}, "not defined: -password"},
		{strings.Repeat("p", secret.MaxPasswordLen+1), []string{"create-user", "--email", "dan@example.com", "--password-stdin"}, "longer than"},
		{"", []string{"create-user", "--email", "dan@example.com", "stray"}, `unexpected argument "stray"`},
		{"", []string{"create-team", "--name", "Other"}, "--owner-email is required"},
		{"", []string{"create-team", "--name", "Other", "--owner-email", "nobody@example.com"}, `no user has the email "nobody@example.com"`},
		{"", []string{"create-team", "--name", "!!", "--owner-email", "ada@example.com"}, "--name: must contain 3 to 64 letters or digits"},
		{"", []string{"create-team", "--name", "acme  OPS", "--owner-email", "ada@example.com"}, `team "acme-ops" already exists`},
		{"", []string{"add-member", "--team", "nope", "--email", "carol@example.com", "--role", "viewer"}, `team "nope" not found (team ids are slugs`},
		{"", []string{"add-member", "--team", "acme-ops", "--email", "carol@example.com", "--role", "owner"}, `--role: team "acme-ops" has no role "owner" (its roles: admin, developer, viewer)`},
		{"", []string{"add-member", "--team", "acme-ops", "--email", "nobody@example.com", "--role", "viewer"}, "create the user with \"slipway admin create-user\""},
		{"", []string{"add-member", "--team", "acme-ops", "--email", "bob@example.com", "--role", "viewer"}, "already a member of team \"acme-ops\" (role developer)"},
		{"", []string{"add-member", "--team", "acme-ops", "--email", "carol@example.com"}, "--role is required"},
		{"", []string{"create-token", "--email", "bob@example.com", "--team", "acme-ops", "--role", "owner", "--name", "x y z"}, `has no role "owner"`},
		{"", []string{"create-token", "--email", "bob@example.com", "--team", "nope", "--role", "viewer", "--name", "x y z"}, `team "nope" not found`},
		{"", []string{"create-token", "--email", "carol@example.com", "--team", "acme-ops", "--role", "viewer", "--name", "x y z"}, `not a member of team "acme-ops", so their token could do nothing there: add them`},
		{"", []string{"create-token", "--email", "nobody@example.com", "--team", "acme-ops", "--role", "viewer", "--name", "x y z"}, "no user has the email"},
		{"", []string{"create-token", "--email", "bob@example.com", "--team", "acme-ops", "--role", "admin", "--name", "x y z"}, "grants more than bob@example.com's role"},
		{"", []string{"create-token", "--team", "acme-ops", "--role", "viewer", "--name", "x y z"}, "--email is required for a personal token"},
		{"", []string{"create-token", "--kind", "team", "--email", "bob@example.com", "--team", "acme-ops", "--role", "viewer", "--name", "x y z"}, "drop --email"},
		{"", []string{"create-token", "--kind", "robot", "--team", "acme-ops", "--role", "viewer", "--name", "x y z"}, `--kind "robot"`},
		{"", []string{"create-token", "--kind", "team", "--team", "acme-ops", "--role", "viewer", "--name", "xy"}, "--name: must be 3 to 64 characters"},
		{"", []string{"create-token", "--kind", "team", "--team", "acme-ops", "--role", "viewer", "--name", "x y z", "--expires-in-days", "-1"}, "--expires-in-days: must be 0 (never expires) to 3650"},
		// Every bad value at once, each named by its flag.
		{"", []string{"create-token", "--kind", "team", "--team", "acme-ops", "--role", "viewer", "--name", "xy", "--expires-in-days", "4000",
			"--project", "web", "--project", "Not A Slug"},
			"--expires-in-days: must be 0 (never expires) to 3650; --name: must be 3 to 64 characters; --project #2: must be a project id"},
		{"", []string{"create-token", "--kind", "team", "--team", "acme-ops", "--role", "viewer", "--name", "x y z", "--project", "Not A Slug"}, "--project #1: must be a project id"},
		{"", []string{"create-token", "--kind", "team", "--team", "acme-ops", "--role", "viewer"}, "--name is required"},
		{"", []string{"delete-everything"}, `unknown command "delete-everything"`},
	} {
		out, log, err := e.admin(t, tc.stdin, tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want one containing %q", tc.args, err, tc.want)
		}
		if out != "" {
			t.Errorf("%v: printed %q on stdout", tc.args, out)
		}
		if tc.stdin != "" && strings.Contains(log+err.Error(), tc.stdin[:8]) {
			t.Errorf("%v: the password was echoed", tc.args)
		}
		if strings.Contains(log+err.Error(), "hunter2") {
			t.Errorf("%v: argv password echoed: %v %s", tc.args, err, log)
		}
	}
	if n := tokens(); n != before {
		t.Fatalf("refused commands created %d tokens", n-before)
	}
	if _, err := e.store.GetUserByEmail(ctx, "dan@example.com"); err == nil {
		t.Fatal("a refused create-user created the user")
	}
	if m, err := e.store.GetMember(ctx, "acme-ops", bobID); err != nil || m.RoleID != "developer" {
		t.Fatalf("a refused add-member changed bob's membership: %+v, %v", m, err)
	}

	// The command and the API apply the same rules, in the same words:
	// Ada (the team's admin) adding bob again through the RPC.
	_, adaTok, err := auth.IssueToken(ctx, e.store, auth.TokenSpec{Kind: auth.KindPersonal, Name: "ada", TeamID: "acme-ops", UserID: ada.ID, RoleID: "admin"})
	if err != nil {
		t.Fatal(err)
	}
	adaP, err := e.authenticate("Bearer " + adaTok)
	if err != nil {
		t.Fatal(err)
	}
	_, _, cliErr := e.admin(t, "", "add-member", "--team", "acme-ops", "--email", "bob@example.com", "--role", "viewer")
	_, rpcErr := e.srv.AddTeamMember(authz.NewContext(ctx, adaP), &authv1.AddTeamMemberRequest{TeamId: "acme-ops", Email: "bob@example.com", RoleId: "viewer"})
	if cliErr == nil || rpcErr == nil || cliErr.Error() != "admin add-member: "+rpcErr.Error() {
		t.Fatalf("add-member twice: the command says %v, the API %v", cliErr, rpcErr)
	}
}

func TestAdminDatabaseChecks(t *testing.T) {
	clearSettings(t)
	ctx := context.Background()
	var out, log bytes.Buffer
	cio := adminIO{in: strings.NewReader(""), out: &out, log: &log}

	// A data directory without a database: refused, and none is created.
	empty := t.TempDir()
	err := runAdmin(ctx, []string{"create-user", "--email", "ada@example.com", "--data-dir", empty}, cio)
	if err == nil || !strings.Contains(err.Error(), "no auth database at") || !strings.Contains(err.Error(), "slipway migrate") {
		t.Fatalf("missing database: %v", err)
	}
	if entries, _ := os.ReadDir(empty); len(entries) != 0 {
		t.Fatalf("the command created %v", entries)
	}
	// The same through main's dispatch, with SLIPWAY_DATA_DIR.
	t.Setenv("SLIPWAY_DATA_DIR", empty)
	if err := run(ctx, []string{"admin", "create-team", "--name", "Acme", "--owner-email", "ada@example.com"}); err == nil ||
		!strings.Contains(err.Error(), "admin create-team: no auth database") {
		t.Fatalf("slipway admin via run: %v", err)
	}

	// A database that was never migrated.
	dir := t.TempDir()
	db, err := sqldb.Open(ctx, "sqlite:"+filepath.Join(dir, "auth.db"))
	if err != nil {
		t.Fatal(err)
	}
	_ = db.Close()
	err = runAdmin(ctx, []string{"create-user", "--email", "ada@example.com", "--data-dir", dir}, cio)
	if err == nil || !strings.Contains(err.Error(), "slipway migrate") {
		t.Fatalf("unmigrated database: %v", err)
	}

	// Usage.
	if err := runAdmin(ctx, nil, cio); err == nil || !strings.Contains(log.String(), "create-token") {
		t.Fatalf("no command: %v, usage %q", err, log.String())
	}
	out.Reset()
	if err := runAdmin(ctx, []string{"help"}, cio); err != nil || !strings.Contains(out.String(), "TOKEN=$(slipway admin create-token") {
		t.Fatalf("help: %v, %q", err, out.String())
	}
	log.Reset()
	if err := runAdmin(ctx, []string{"create-token", "-h"}, cio); err == nil ||
		!strings.Contains(log.String(), "--expires-in-days") || !strings.Contains(log.String(), "--auth-database-url") || strings.Contains(log.String(), "--http-addr") {
		t.Fatalf("create-token -h: %v, %q", err, log.String())
	}
}

// TestAdminWhileServing runs the admin commands on a SQLite database that
// another connection (the server) is writing to at the same time.
func TestAdminWhileServing(t *testing.T) {
	e := newAdminEnv(t, "sqlite")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := auth.Bootstrap(ctx, e.store, auth.BootstrapOptions{}); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	started := make(chan struct{})
	go func() {
		// The "server" keeps issuing tokens meanwhile; the commands start
		// only once it has written, so they really run beside a writer.
		for first := true; ; first = false {
			if ctx.Err() != nil {
				done <- nil
				return
			}
			_, _, err := auth.IssueToken(ctx, e.store, auth.TokenSpec{Kind: auth.KindTeam, Name: "busy", TeamID: "default", RoleID: "viewer"})
			if err != nil && ctx.Err() == nil {
				done <- err
				return
			}
			if first {
				close(started)
			}
		}
	}()
	select {
	case <-started:
	case err := <-done:
		t.Fatalf("concurrent server writes: %v", err)
	}
	e.ok(t, "", "create-user", "--email", "ops@example.com")
	e.ok(t, "", "add-member", "--team", "default", "--email", "ops@example.com", "--role", "developer")
	tok := e.ok(t, "", "create-token", "--email", "ops@example.com", "--team", "default", "--role", "developer", "--name", "ops")
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("concurrent server writes: %v", err)
	}
	if p, err := e.authenticate("Bearer " + tok); err != nil || p.GetDefaultTeamId() != "default" {
		t.Fatalf("token created while serving = %v, %v", p, err)
	}
}

func TestAdminSetPlan(t *testing.T) {
	sqltest.EachEngine(t, func(t *testing.T, engine sqldb.Dialect) {
		e := newAdminEnv(t, engine)
		ctx := context.Background()
		e.ok(t, "", "create-user", "--email", "owner@example.com")
		team := e.ok(t, "", "create-team", "--name", "Plan Team", "--owner-email", "owner@example.com")
		owner, err := e.store.GetUserByEmail(ctx, "owner@example.com")
		if err != nil {
			t.Fatal(err)
		}
		_, tok, err := auth.IssueToken(ctx, e.store, auth.TokenSpec{Kind: auth.KindPersonal, Name: "owner", TeamID: team, UserID: owner.ID, RoleID: "admin"})
		if err != nil {
			t.Fatal(err)
		}
		out, log, err := e.admin(t, "", "set-plan", "--team", team, "--plan", "pro", "--rate-limit-plans", "free=10,pro=1000")
		if err != nil || out != "" || !strings.Contains(log, "plan pro (was default)") || strings.Contains(log, "note:") {
			t.Fatalf("set-plan = %q, %q, %v", out, log, err)
		}
		if got, err := e.store.GetTeam(ctx, team); err != nil || got.Plan != "pro" || got.Name != "Plan Team" {
			t.Fatalf("team after set-plan = %+v, %v", got, err)
		}
		// Grants carry the plan.
		p, err := e.authenticate("Bearer " + tok)
		if err != nil || len(p.GetGrants()) != 1 || p.GetGrants()[0].GetPlan() != "pro" {
			t.Fatalf("grant after set-plan = %v, %v", p, err)
		}
		// A plan without a configured limit works, with a note.
		if _, log, err := e.admin(t, "", "set-plan", "--team", team, "--plan", "enterprise"); err != nil || !strings.Contains(log, "names no plan \"enterprise\"") {
			t.Fatalf("set-plan (unconfigured plan) = %q, %v", log, err)
		}
		for _, tc := range []struct {
			args []string
			want string
		}{
			{[]string{"set-plan", "--team", team}, "--plan is required"},
			{[]string{"set-plan", "--plan", "pro"}, "--team is required"},
			{[]string{"set-plan", "--team", "nope", "--plan", "pro"}, `team "nope" not found`},
			{[]string{"set-plan", "--team", team, "--plan", "Pro Plan"}, "--plan: must be a plan id"},
		} {
			if out, _, err := e.admin(t, "", tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) || out != "" {
				t.Errorf("%v: %v (stdout %q), want an error containing %q", tc.args, err, out, tc.want)
			}
		}
		if got, _ := e.store.GetTeam(ctx, team); got.Plan != "enterprise" {
			t.Fatalf("refused set-plan changed the plan to %q", got.Plan)
		}
	})
}
