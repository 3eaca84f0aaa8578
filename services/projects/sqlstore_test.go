package projects_test

import (
	"testing"

	"github.com/slipwayhq/slipway/pkg/events"
	"github.com/slipwayhq/slipway/pkg/sqldb"
	"github.com/slipwayhq/slipway/pkg/sqldb/sqltest"
	"github.com/slipwayhq/slipway/pkg/testenv"
	"github.com/slipwayhq/slipway/services/projects"
	"github.com/slipwayhq/slipway/services/projects/migrations"
	"github.com/slipwayhq/slipway/services/projects/storetest"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// schema is what the projects service's database holds.
var schema = []sqldb.Migrations{migrations.Set, events.Migrations}

// openDB returns a fresh, migrated database on engine.
func openDB(t *testing.T, engine sqldb.Dialect) *sqldb.DB {
	t.Helper()
	return sqltest.Open(t, engine, schema...)
}

func TestSQLStore(t *testing.T) {
	sqltest.EachEngine(t, func(t *testing.T, engine sqldb.Dialect) {
		storetest.Run(t, func(t *testing.T) (projects.Store, func() int) {
			db := openDB(t, engine)
			return projects.NewSQLStore(db, nil), sqltest.RowCounter(t, db, "event_outbox")
		})
	})
}

func TestMigrationsAreIdempotent(t *testing.T) { sqltest.MigrationsAreIdempotent(t, schema...) }
