package addons_test

import (
	"context"
	"strings"
	"testing"

	"github.com/slipwayhq/slipway/pkg/events"
	"github.com/slipwayhq/slipway/pkg/secret"
	"github.com/slipwayhq/slipway/pkg/sqldb"
	"github.com/slipwayhq/slipway/pkg/sqldb/sqltest"
	"github.com/slipwayhq/slipway/services/addons"
	"github.com/slipwayhq/slipway/services/addons/migrations"
	"github.com/slipwayhq/slipway/services/addons/storetest"
)

// schema is what the addons service's database holds.
var schema = []sqldb.Migrations{migrations.Set, events.Migrations}

const masterKey = "0123456789abcdef0123456789abcdef-test-master"

func newBox(t *testing.T) *secret.Box {
	t.Helper()
	box, err := secret.NewBox([]byte(masterKey), "addons-credentials")
	if err != nil {
		t.Fatal(err)
	}
	return box
}

func TestSQLStore(t *testing.T) {
	sqltest.EachEngine(t, func(t *testing.T, engine sqldb.Dialect) {
		storetest.Run(t, func(t *testing.T) (addons.Store, func() int) {
			db := sqltest.Open(t, engine, schema...)
			return addons.NewSQLStore(db, newBox(t), nil), sqltest.RowCounter(t, db, "event_outbox")
		})
	})
}

func TestMigrationsAreIdempotent(t *testing.T) { sqltest.MigrationsAreIdempotent(t, schema...) }

// TestCredentialsSealed: an addon's passwords appear in no column of its
// row; they read back through the box only.
func TestCredentialsSealed(t *testing.T) {
	sqltest.EachEngine(t, func(t *testing.T, engine sqldb.Dialect) {
		ctx := context.Background()
		db := sqltest.Open(t, engine, schema...)
		s := addons.NewSQLStore(db, newBox(t), nil)
		const plaintext = "hunter2-addon-password"
		a := addons.Addon{TeamID: "t", ProjectID: "p", ID: "db", InternalID: "x1", Name: "db", Type: "redis", Status: addons.StatusRunning,
			Credentials: addons.Credentials{AdminPassword: plaintext, Password: plaintext}}
		if err := s.CreateAddon(ctx, a, nil); err != nil {
			t.Fatal(err)
		}
		var settings string
		var creds []byte
		if err := db.QueryRow(ctx, `SELECT settings, credentials FROM addons WHERE id = 'db'`).Scan(&settings, &creds); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(settings, plaintext) || strings.Contains(string(creds), plaintext) {
			t.Fatal("credentials stored in plaintext")
		}
		got, err := s.GetAddon(ctx, "t", "p", "db")
		if err != nil || got.Credentials.Password != plaintext {
			t.Fatalf("read back: %v", err)
		}
	})
}
