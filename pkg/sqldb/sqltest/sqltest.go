// Package sqltest runs store tests on every database engine Slipway
// supports: embedded SQLite and a throwaway PostgreSQL server (from
// pkg/testenv). One code path serves both engines, so every store suite
// runs on both; this package is where "both" is written down once.
//
// Packages using it must call testenv.Main from TestMain, which stops the
// shared PostgreSQL server when the tests are done.
package sqltest

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/slipwayhq/slipway/pkg/sqldb"
	"github.com/slipwayhq/slipway/pkg/testenv"
)

// Engines are the database engines every store is tested on.
var Engines = []sqldb.Dialect{sqldb.SQLite, sqldb.Postgres}

// EachEngine runs fn as one subtest per engine, named after it.
func EachEngine(t *testing.T, fn func(t *testing.T, engine sqldb.Dialect)) {
	t.Helper()
	for _, engine := range Engines {
		t.Run(string(engine), func(t *testing.T) { fn(t, engine) })
	}
}

// URL returns the address of a fresh, empty database on engine: a file in
// the test's temp dir for SQLite, a new database on the test binary's
// PostgreSQL server for PostgreSQL. It is for tests that open the
// database themselves (through a command's flags, say); others use Open.
func URL(t testing.TB, engine sqldb.Dialect) string {
	t.Helper()
	switch engine {
	case sqldb.SQLite:
		return "sqlite:" + filepath.Join(t.TempDir(), "test.db")
	case sqldb.Postgres:
		return testenv.Postgres(t)
	}
	t.Fatalf("sqltest: unknown engine %q", engine)
	return ""
}

// Open returns a fresh database on engine, migrated with sets, and closes
// it when the test ends.
func Open(t testing.TB, engine sqldb.Dialect, sets ...sqldb.Migrations) *sqldb.DB {
	t.Helper()
	ctx := context.Background()
	db, err := sqldb.Open(ctx, URL(t, engine))
	if err != nil {
		t.Fatalf("sqltest: open %s: %v", engine, err)
	}
	t.Cleanup(func() { _ = db.Close() })
	if err := db.Migrate(ctx, sets...); err != nil {
		t.Fatalf("sqltest: migrate %s: %v", engine, err)
	}
	return db
}

// RowCounter returns a function that counts the rows of table in db, for
// suites that check what a store wrote besides its own rows (the events
// in the outbox, say).
func RowCounter(t testing.TB, db *sqldb.DB, table string) func() int {
	return func() int {
		t.Helper()
		var n int
		if err := db.QueryRow(context.Background(), `SELECT COUNT(*) FROM `+table).Scan(&n); err != nil {
			t.Fatalf("sqltest: count %s: %v", table, err)
		}
		return n
	}
}

// MigrationsAreIdempotent checks, on every engine, that running sets again
// on a database they have already migrated succeeds, as `slipway migrate`
// on every start requires.
func MigrationsAreIdempotent(t *testing.T, sets ...sqldb.Migrations) {
	t.Helper()
	EachEngine(t, func(t *testing.T, engine sqldb.Dialect) {
		db := Open(t, engine, sets...)
		if err := db.Migrate(context.Background(), sets...); err != nil {
			t.Fatalf("second migration run: %v", err)
		}
	})
}
