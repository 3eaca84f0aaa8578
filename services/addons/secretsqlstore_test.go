package addons_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/slipwayhq/slipway/pkg/events"
	"github.com/slipwayhq/slipway/pkg/secret"
	"github.com/slipwayhq/slipway/pkg/sqldb"
	"github.com/slipwayhq/slipway/pkg/sqldb/sqltest"
	"github.com/slipwayhq/slipway/services/addons"
	"github.com/slipwayhq/slipway/services/addons/migrations"
	"github.com/slipwayhq/slipway/services/addons/storetest"
)

// secretSchema is what the addons component's database holds.
var secretSchema = []sqldb.Migrations{migrations.Set, events.Migrations}

func secretBox(t *testing.T) *secret.Box {
	t.Helper()
	box, err := secret.NewBox([]byte("0123456789abcdef0123456789abcdef"), "addons-secrets")
	if err != nil {
		t.Fatal(err)
	}
	return box
}

// TestSecretSQLStore runs the SecretStore contract on both engines.
func TestSecretSQLStore(t *testing.T) {
	sqltest.EachEngine(t, func(t *testing.T, engine sqldb.Dialect) {
		storetest.RunSecrets(t, func(t *testing.T) (addons.SecretStore, func() int) {
			db := sqltest.Open(t, engine, secretSchema...)
			return addons.NewSecretSQLStore(db, secretBox(t), nil), sqltest.RowCounter(t, db, "event_outbox")
		})
	})
}

// TestSecretValuesSealedAtRest: no value, key or file content reaches the
// database in plaintext, and a store with another key cannot read them.
func TestSecretValuesSealedAtRest(t *testing.T) {
	sqltest.EachEngine(t, func(t *testing.T, engine sqldb.Dialect) {
		ctx := context.Background()
		db := sqltest.Open(t, engine, secretSchema...)
		s := addons.NewSecretSQLStore(db, secretBox(t), nil)
		g := addons.SecretGroup{TeamID: "t", ProjectID: "p", ID: "g", Name: "g", Type: "secret", SecretType: "environment",
			Variables: map[string]string{"PLAINKEY": "plainvalue"}, Files: map[string]addons.SecretFileValue{"/plain/path": {Data: "cGxhaW5maWxl"}}}
		if err := s.CreateSecretGroup(ctx, g); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateGlobalSecret(ctx, addons.GlobalSecret{TeamID: "t", ID: "g", Name: "g", Type: "secret",
			Variables: map[string]string{"PLAINKEY": "plainvalue"}}); err != nil {
			t.Fatal(err)
		}
		for _, table := range []string{"secret_groups", "secret_globals"} {
			var data []byte
			if err := db.QueryRow(ctx, `SELECT data FROM `+table+` WHERE id = 'g'`).Scan(&data); err != nil {
				t.Fatal(err)
			}
			for _, plain := range []string{"PLAINKEY", "plainvalue", "/plain/path", "cGxhaW5maWxl"} {
				if bytes.Contains(data, []byte(plain)) {
					t.Errorf("%s.data holds %q in plaintext", table, plain)
				}
			}
		}
		other, err := secret.NewBox([]byte("another key, another key, another"), "addons-secrets")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := addons.NewSecretSQLStore(db, other, nil).GetSecretGroup(ctx, "t", "p", "g"); err == nil {
			t.Fatal("a store with another key read the values")
		}
	})
}

// TestSecretMigrationsIdempotent: the addons migrations go up, down and
// up again on both engines.
func TestSecretMigrationsIdempotent(t *testing.T) {
	sqltest.MigrationsAreIdempotent(t, secretSchema...)
}
