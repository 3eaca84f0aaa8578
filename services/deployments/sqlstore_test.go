package deployments_test

import (
	"testing"

	"github.com/slipwayhq/slipway/pkg/events"
	"github.com/slipwayhq/slipway/pkg/secret"
	"github.com/slipwayhq/slipway/pkg/sqldb"
	"github.com/slipwayhq/slipway/pkg/sqldb/sqltest"
	"github.com/slipwayhq/slipway/pkg/testenv"
	"github.com/slipwayhq/slipway/services/deployments"
	"github.com/slipwayhq/slipway/services/deployments/migrations"
	"github.com/slipwayhq/slipway/services/deployments/storetest"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// schema is what the deployments service's database holds.
var schema = []sqldb.Migrations{migrations.Set, events.Migrations}

const masterKey = "0123456789abcdef0123456789abcdef-test-master"

func newBox(t *testing.T) *secret.Box {
	t.Helper()
	box, err := secret.NewBox([]byte(masterKey), "deployments-env")
	if err != nil {
		t.Fatal(err)
	}
	return box
}

func TestSQLStore(t *testing.T) {
	sqltest.EachEngine(t, func(t *testing.T, engine sqldb.Dialect) {
		storetest.Run(t, func(t *testing.T) (deployments.Store, func() int) {
			db := sqltest.Open(t, engine, schema...)
			return deployments.NewSQLStore(db, newBox(t), nil), sqltest.RowCounter(t, db, "event_outbox")
		})
	})
}

func TestMigrationsAreIdempotent(t *testing.T) { sqltest.MigrationsAreIdempotent(t, schema...) }
