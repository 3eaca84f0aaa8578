package auth_test

import (
	"context"
	"encoding/json"
	"io/fs"
	"slices"
	"testing"
	"testing/fstest"
	"time"

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
		store := auth.NewSQLStore(db, nil)
		if _, err := auth.Bootstrap(ctx, store, auth.BootstrapOptions{}); err != nil {
			t.Fatal(err)
		}
		secrets := []string{"Project > Secrets > Jobs > Read", "Project > Secrets > Services > Read"}
		var viewer []string
		for _, r := range permissions.Builtin() {
			if r.ID == "viewer" {
				viewer = r.Permissions
			}
		}
		old := append(slices.Clone(viewer), secrets...)
		slices.Sort(old)
		raw, _ := json.Marshal(old) // as the store writes lists: ">" is \u003e
		if _, err := db.ExecContext(ctx, `UPDATE roles SET permissions = $1 WHERE id = 'viewer'`, string(raw)); err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		custom := auth.Role{TeamID: "default", ID: "auditor", Name: "Auditor", Permissions: secrets,
			Restrictions: auth.Restrictions{Mode: auth.RestrictIn, Projects: []string{}}, CreatedAt: now, UpdatedAt: now}
		if err := store.CreateRole(ctx, custom); err != nil {
			t.Fatal(err)
		}
		if r, err := store.GetRole(ctx, "default", "viewer"); err != nil || !slices.Contains(r.Permissions, secrets[0]) {
			t.Fatalf("before the migration: viewer = %v, %v", r.Permissions, err)
		}

		if err := db.Migrate(ctx, migrations.Set); err != nil {
			t.Fatal(err)
		}
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
