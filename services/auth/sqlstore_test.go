package auth_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/slipwayhq/slipway/pkg/events"
	"github.com/slipwayhq/slipway/pkg/sqldb"
	"github.com/slipwayhq/slipway/pkg/testenv"
	"github.com/slipwayhq/slipway/services/auth"
	"github.com/slipwayhq/slipway/services/auth/migrations"
	"github.com/slipwayhq/slipway/services/auth/storetest"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// openDB returns a migrated database on the named engine.
func openDB(t *testing.T, engine string) *sqldb.DB {
	t.Helper()
	url := "sqlite:" + filepath.Join(t.TempDir(), "auth.db")
	if engine == "postgres" {
		url = testenv.Postgres(t)
	}
	db, err := sqldb.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	if err := db.Migrate(context.Background(), migrations.Set, events.Migrations); err != nil {
		t.Fatal(err)
	}
	return db
}

var engines = []string{"sqlite", "postgres"}

// outboxCounter counts the events committed to db's outbox.
func outboxCounter(t *testing.T, db *sqldb.DB) func() int {
	return func() int {
		t.Helper()
		var n int
		if err := db.QueryRow(`SELECT COUNT(*) FROM event_outbox`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
}

func TestSQLStore(t *testing.T) {
	for _, engine := range engines {
		t.Run(engine, func(t *testing.T) {
			storetest.Run(t, func(t *testing.T) (auth.Store, func() int) {
				db := openDB(t, engine)
				return auth.NewSQLStore(db, nil), outboxCounter(t, db)
			})
		})
	}
}

func TestMigrationsAreIdempotent(t *testing.T) {
	for _, engine := range engines {
		t.Run(engine, func(t *testing.T) {
			db := openDB(t, engine)
			if err := db.Migrate(context.Background(), migrations.Set, events.Migrations); err != nil {
				t.Fatalf("second migration run: %v", err)
			}
		})
	}
}
