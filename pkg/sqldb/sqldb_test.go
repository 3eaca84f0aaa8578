package sqldb_test

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"testing"
	"testing/fstest"

	"github.com/slipwayhq/slipway/pkg/apierr"
	"github.com/slipwayhq/slipway/pkg/sqldb"
	"github.com/slipwayhq/slipway/pkg/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

var schema = sqldb.Migrations{Name: "demo", FS: fstest.MapFS{
	"postgres/00001_demo.sql": {Data: []byte("-- +goose Up\nCREATE TABLE demo (id TEXT PRIMARY KEY, n BIGINT NOT NULL);\n")},
	"sqlite/00001_demo.sql":   {Data: []byte("-- +goose Up\nCREATE TABLE demo (id TEXT PRIMARY KEY, n BIGINT NOT NULL);\n")},
}}

// TestOneCodePath runs the same statements, $N placeholders included, on
// both engines.
func TestOneCodePath(t *testing.T) {
	ctx := context.Background()
	for engine, url := range map[string]string{
		"sqlite":   "sqlite:" + filepath.Join(t.TempDir(), "nested", "demo.db"),
		"postgres": testenv.Postgres(t),
	} {
		t.Run(engine, func(t *testing.T) {
			db, err := sqldb.Open(ctx, url)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if string(db.Dialect) != engine {
				t.Fatalf("dialect %s", db.Dialect)
			}
			for range 2 { // migrating twice is a no-op
				if err := db.Migrate(ctx, schema); err != nil {
					t.Fatal(err)
				}
			}
			if err := db.InTx(ctx, func(tx *sql.Tx) error {
				_, err := tx.ExecContext(ctx, `INSERT INTO demo (id, n) VALUES ($1, $2)`, "a", 1)
				return err
			}); err != nil {
				t.Fatal(err)
			}
			_, err = db.ExecContext(ctx, `INSERT INTO demo (id, n) VALUES ($1, $2)`, "a", 2)
			if !sqldb.IsUniqueViolation(err) {
				t.Fatalf("duplicate insert: %v, want a unique violation", err)
			}
			if mapped := sqldb.AlreadyExistsIfUnique(err); mapped != apierr.ErrAlreadyExists {
				t.Fatalf("AlreadyExistsIfUnique(duplicate insert) = %v, want the store contract's ErrAlreadyExists", mapped)
			}
			var missing int
			err = db.QueryRowContext(ctx, `SELECT n FROM demo WHERE id = $1`, "nope").Scan(&missing)
			if mapped := sqldb.NotFoundIfNoRows(err); mapped != apierr.ErrNotFound {
				t.Fatalf("NotFoundIfNoRows(no row) = %v, want the store contract's ErrNotFound", mapped)
			}
			// The read path (pgx's own pool on PostgreSQL) answers alike.
			err = db.QueryRow(ctx, `SELECT n FROM demo WHERE id = $1`, "nope").Scan(&missing)
			if mapped := sqldb.NotFoundIfNoRows(err); mapped != apierr.ErrNotFound {
				t.Fatalf("QueryRow: NotFoundIfNoRows(no row) = %v, want the store contract's ErrNotFound", mapped)
			}
			var (
				id   string
				got  int64
				null sql.NullString
			)
			if err := db.QueryRow(ctx, `SELECT id, n, NULL FROM demo WHERE id = $1`, "a").Scan(&id, &got, &null); err != nil || id != "a" || got != 1 || null.Valid {
				t.Fatalf("QueryRow = %q, %d, %v, %v", id, got, null, err)
			}
			rows, err := db.Query(ctx, `SELECT id FROM demo ORDER BY id`)
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for rows.Next() {
				if err := rows.Scan(&id); err != nil {
					t.Fatal(err)
				}
				ids = append(ids, id)
			}
			if err := rows.Err(); err != nil || len(ids) != 1 || rows.Close() != nil {
				t.Fatalf("Query = %v, %v", ids, err)
			}
			boom := errors.New("boom")
			if err := db.InTx(ctx, func(tx *sql.Tx) error {
				if _, err := tx.ExecContext(ctx, `UPDATE demo SET n = $1 WHERE id = $2`, 99, "a"); err != nil {
					return err
				}
				return boom
			}); !errors.Is(err, boom) {
				t.Fatalf("InTx = %v", err)
			}
			var n int
			if err := db.QueryRowContext(ctx, `SELECT n FROM demo WHERE id = $1`, "a").Scan(&n); err != nil || n != 1 {
				t.Fatalf("n = %d, %v; the failed transaction must roll back", n, err)
			}
			if sqldb.IsUniqueViolation(errors.New("other")) {
				t.Fatal("plain error taken for a unique violation")
			}
			if other := errors.New("other"); sqldb.AlreadyExistsIfUnique(other) != other || sqldb.NotFoundIfNoRows(other) != other {
				t.Fatal("a plain error must pass the store mappings unchanged")
			}
		})
	}
}

func TestOpenErrors(t *testing.T) {
	ctx := context.Background()
	for _, url := range []string{"", "sqlite:", "postgres://nobody@127.0.0.1:1/none?sslmode=disable&connect_timeout=1"} {
		if db, err := sqldb.Open(ctx, url); err == nil {
			db.Close()
			t.Errorf("Open(%q) succeeded", url)
		}
	}
}

// TestNotFoundIfNoneAffected: a write that matched a row is fine, one that
// matched none is apierr.ErrNotFound on both engines, and a failed write's
// error comes back unchanged.
func TestNotFoundIfNoneAffected(t *testing.T) {
	for engine, url := range map[string]string{
		"sqlite":   "sqlite:" + filepath.Join(t.TempDir(), "demo.db"),
		"postgres": testenv.Postgres(t),
	} {
		t.Run(engine, func(t *testing.T) {
			ctx := context.Background()
			db, err := sqldb.Open(ctx, url)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = db.Close() })
			if err := db.Migrate(ctx, schema); err != nil {
				t.Fatal(err)
			}
			if _, err := db.ExecContext(ctx, `INSERT INTO demo (id, n) VALUES ($1, $2)`, "affected", 1); err != nil {
				t.Fatal(err)
			}
			if err := sqldb.NotFoundIfNoneAffected(db.ExecContext(ctx, `UPDATE demo SET n = n + 1 WHERE id = $1`, "affected")); err != nil {
				t.Fatalf("a matched row: %v", err)
			}
			if err := sqldb.NotFoundIfNoneAffected(db.ExecContext(ctx, `DELETE FROM demo WHERE id = $1`, "missing")); !errors.Is(err, apierr.ErrNotFound) {
				t.Fatalf("no matched row: %v", err)
			}
			if err := sqldb.NotFoundIfNoneAffected(db.ExecContext(ctx, `DELETE FROM no_such_table WHERE id = $1`, "x")); err == nil || errors.Is(err, apierr.ErrNotFound) {
				t.Fatalf("a failed write: %v", err)
			}
		})
	}
}
