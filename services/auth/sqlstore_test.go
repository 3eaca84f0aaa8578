package auth_test

import (
	"testing"

	"github.com/slipwayhq/slipway/pkg/events"
	"github.com/slipwayhq/slipway/pkg/sqldb"
	"github.com/slipwayhq/slipway/pkg/sqldb/sqltest"
	"github.com/slipwayhq/slipway/pkg/testenv"
	"github.com/slipwayhq/slipway/services/auth"
	"github.com/slipwayhq/slipway/services/auth/migrations"
	"github.com/slipwayhq/slipway/services/auth/storetest"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// schema is what the auth service's database holds.
var schema = []sqldb.Migrations{migrations.Set, events.Migrations}

// openDB returns a fresh, migrated database on engine.
func openDB(t *testing.T, engine sqldb.Dialect) *sqldb.DB {
	t.Helper()
	return sqltest.Open(t, engine, schema...)
}

func TestSQLStore(t *testing.T) {
	sqltest.EachEngine(t, func(t *testing.T, engine sqldb.Dialect) {
		storetest.Run(t, func(t *testing.T) (auth.Store, func() int) {
			db := openDB(t, engine)
			return auth.NewSQLStore(db, nil), sqltest.RowCounter(t, db, "event_outbox")
		})
	})
}

func TestMigrationsAreIdempotent(t *testing.T) { sqltest.MigrationsAreIdempotent(t, schema...) }
