package auth_test

import (
	"context"
	"encoding/json"
	"io/fs"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/slipwayhq/slipway/pkg/events"
	"github.com/slipwayhq/slipway/pkg/permissions"
	"github.com/slipwayhq/slipway/pkg/sqldb"
	"github.com/slipwayhq/slipway/pkg/sqldb/sqltest"
	"github.com/slipwayhq/slipway/services/auth"
	"github.com/slipwayhq/slipway/services/auth/migrations"
)

// upTo is the auth migration set cut after the named files: the schema an
// older release left behind.
func upTo(t *testing.T, names ...string) sqldb.Migrations {
	t.Helper()
	files := fstest.MapFS{}
	for _, dialect := range []string{"sqlite", "postgres"} {
		for _, name := range names {
			data, err := fs.ReadFile(migrations.Set.FS, dialect+"/"+name)
			if err != nil {
				t.Fatal(err)
			}
			files[dialect+"/"+name] = &fstest.MapFile{Data: data}
		}
	}
	return sqldb.Migrations{Name: migrations.Set.Name, FS: files}
}

// TestViewerSecretsMigration upgrades an install whose teams got the
// viewer role when it still read secrets: the built-in viewer rows lose
// the secret reads (and match the built-in definition again), a custom
// role that holds them keeps them.
func TestViewerSecretsMigration(t *testing.T) {
	sqltest.EachEngine(t, func(t *testing.T, engine sqldb.Dialect) {
		ctx := context.Background()
		db := sqltest.Open(t, engine, upTo(t, "0001_auth.sql"), events.Migrations)
		secrets := []string{"Project > Secrets > Jobs > Read", "Project > Secrets > Services > Read"}
		var viewer []string
		for _, r := range permissions.Builtin() {
			if r.ID == "viewer" {
				viewer = r.Permissions
			}
		}
		// The rows as a release at 0001 wrote them, in that schema (the
		// store of today writes columns later migrations add): a team,
		// its built-in viewer with the secret reads, a custom role with
		// them. Lists are written as the store writes them: ">" is \u003e.
		list := func(perms []string) string {
			perms = slices.Sorted(slices.Values(perms))
			raw, _ := json.Marshal(perms)
			return string(raw)
		}
		for _, stmt := range []struct {
			query string
			args  []any
		}{
			{`INSERT INTO teams (id, name, plan, created_at) VALUES ('default', 'Default', 'free', 0)`, nil},
			{`INSERT INTO roles (team_id, id, name, description, permissions, builtin, created_at, updated_at)
				VALUES ('default', 'viewer', 'Viewer', 'Read-only access.', $1, TRUE, 0, 0)`, []any{list(append(slices.Clone(viewer), secrets...))}},
			{`INSERT INTO roles (team_id, id, name, permissions, restricted, created_at, updated_at)
				VALUES ('default', 'auditor', 'Auditor', $1, FALSE, 0, 0)`, []any{list(secrets)}},
		} {
			if _, err := db.ExecContext(ctx, stmt.query, stmt.args...); err != nil {
				t.Fatal(err)
			}
		}

		if err := db.Migrate(ctx, migrations.Set); err != nil {
			t.Fatal(err)
		}
		store := auth.NewSQLStore(db, nil)
		r, err := store.GetRole(ctx, "default", "viewer")
		if err != nil {
			t.Fatal(err)
		}
		want := slices.Clone(viewer)
		slices.Sort(want)
		if !slices.Equal(r.Permissions, want) {
			t.Errorf("viewer after the migration:\n got %v\nwant %v", r.Permissions, want)
		}
		if r.Description != "Read-only access to configuration; no secret values." {
			t.Errorf("viewer description %q", r.Description)
		}
		if r, err := store.GetRole(ctx, "default", "auditor"); err != nil || !slices.Equal(r.Permissions, secrets) {
			t.Errorf("custom role after the migration = %v, %v; want it untouched", r.Permissions, err)
		}
	})
}

// TestSecretGroupPermissionsMigration upgrades an install whose teams got
// their built-in roles before secret groups' permissions existed: each
// built-in role gets exactly what the built-in definition gives it now,
// its list still sorted; a custom role keeps what it had.
func TestSecretGroupPermissionsMigration(t *testing.T) {
	sqltest.EachEngine(t, func(t *testing.T, engine sqldb.Dialect) {
		ctx := context.Background()
		db := sqltest.Open(t, engine, upTo(t, "0001_auth.sql", "0002_viewer_no_secrets.sql", "0003_team_email.sql"), events.Migrations)
		isNew := func(p string) bool {
			for _, pre := range []string{"Project > SecretGroups > ", "Project > Secrets > General > ", "Account > SecretGroups > ", "Account > Secrets > "} {
				if strings.HasPrefix(p, pre) {
					return true
				}
			}
			return false
		}
		list := func(perms []string) string {
			perms = slices.Sorted(slices.Values(perms))
			raw, _ := json.Marshal(perms)
			return string(raw)
		}
		if _, err := db.ExecContext(ctx, `INSERT INTO teams (id, name, plan, created_at) VALUES ('default', 'Default', 'free', 0)`); err != nil {
			t.Fatal(err)
		}
		want := map[string][]string{}
		for _, r := range permissions.Builtin() {
			old := slices.DeleteFunc(slices.Clone(r.Permissions), isNew)
			if len(old) == len(r.Permissions) {
				t.Fatalf("built-in role %s holds none of the new permissions", r.ID)
			}
			want[r.ID] = slices.Sorted(slices.Values(r.Permissions))
			if _, err := db.ExecContext(ctx, `INSERT INTO roles (team_id, id, name, description, permissions, builtin, created_at, updated_at)
				VALUES ('default', $1, $2, $3, $4, TRUE, 0, 0)`, r.ID, r.Name, r.Description, list(old)); err != nil {
				t.Fatal(err)
			}
		}
		custom := []string{"Project > Jobs > General > Read", "Project > Secrets > Jobs > Read"}
		if _, err := db.ExecContext(ctx, `INSERT INTO roles (team_id, id, name, permissions, restricted, created_at, updated_at)
			VALUES ('default', 'auditor', 'Auditor', $1, FALSE, 0, 0)`, list(custom)); err != nil {
			t.Fatal(err)
		}

		if err := db.Migrate(ctx, migrations.Set); err != nil {
			t.Fatal(err)
		}
		store := auth.NewSQLStore(db, nil)
		for id, perms := range want {
			r, err := store.GetRole(ctx, "default", id)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(r.Permissions, perms) {
				t.Errorf("%s after the migration:\n got %v\nwant %v", id, r.Permissions, perms)
			}
		}
		if r, err := store.GetRole(ctx, "default", "auditor"); err != nil || !slices.Equal(r.Permissions, custom) {
			t.Errorf("custom role after the migration = %v, %v; want it untouched", r.Permissions, err)
		}
		// Once more: a migrated row is not given them twice.
		if err := db.Migrate(ctx, migrations.Set); err != nil {
			t.Fatal(err)
		}
	})
}
