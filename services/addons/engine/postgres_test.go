package engine

import (
	"bytes"
	"strings"
	"testing"

	"github.com/slipwayhq/slipway/pkg/runtime"
)

const pgSeed = `CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL);
INSERT INTO items (name) SELECT 'item ' || g FROM generate_series(1, 250) g;
CREATE SCHEMA extra;
CREATE TABLE extra.notes (id int, body text);
INSERT INTO extra.notes VALUES (1, 'one'), (2, 'two');
`

// appPsql runs SQL in the addon as the app user (as a linked workload
// would), through the socket.
func appPsql(t *testing.T, d runtime.Driver, id string, a Addon, sql string) string {
	t.Helper()
	env := map[string]string{"PGHOST": RunMount, "PGUSER": a.User, "PGPASSWORD": a.Password, "PGDATABASE": a.DBName}
	return execIn(t, d, id, env, sql, "psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1")
}

// TestPostgresRoundTrip: start, write as the app user, Dump, drop, Restore,
// Check equal; a corrupted dump fails clearly and the data stays; a
// throwaway verification instance restored from the dump checks equal;
// a snapshot restores the data files.
func TestPostgresRoundTrip(t *testing.T) {
	e, _ := Get(TypePostgreSQL)
	d := testDriver(t)
	a := testAddon(t, e, "process")
	id := startAddon(t, d, e, a)

	appPsql(t, d, id, a, pgSeed)
	want := check(t, e, d, id, a)
	if want.Counts["public.items"] != 250 || want.Counts["extra.notes"] != 2 || want.Schema["public.items"] != "id integer, name text" {
		t.Fatalf("check after seeding: %+v", want)
	}
	if want.Summary() != "2 tables, 252 rows" {
		t.Fatalf("summary %q", want.Summary())
	}
	dumped := dump(t, e, d, id, a)

	// Lose data, then restore.
	appPsql(t, d, id, a, "DROP TABLE items; DELETE FROM extra.notes WHERE id = 1; CREATE TABLE stray (x int);")
	if got := check(t, e, d, id, a); got.Equal(want) {
		t.Fatal("the data did not change")
	}
	if err := e.Restore(ctxT(t), d, id, a, bytes.NewReader(dumped)); err != nil {
		t.Fatal(err)
	}
	got := check(t, e, d, id, a)
	delete(got.Counts, "public.stray") // not in the dump: --clean leaves it
	delete(got.Schema, "public.stray")
	wantEqual(t, want, got)
	// The restored tables are the app user's.
	if out := appPsql(t, d, id, a, "INSERT INTO items (name) VALUES ('after'); SELECT count(*) FROM items;"); strings.TrimSpace(out) != "251" {
		t.Fatalf("app user after restore: %q", out)
	}
	appPsql(t, d, id, a, "DELETE FROM items WHERE name = 'after'; DROP TABLE stray;")

	// A corrupted dump: Restore fails, saying why, and nothing changed.
	err := e.Restore(ctxT(t), d, id, a, bytes.NewReader(corrupt(dumped)))
	if err == nil || !isToolError(err) || !strings.Contains(err.Error(), "pg_restore") {
		t.Fatalf("corrupted dump: %v", err)
	}
	if strings.Contains(err.Error(), a.AdminPassword) || strings.Contains(err.Error(), a.Password) {
		t.Fatal("the error shows a password")
	}
	t.Logf("corrupted dump: %v", err)
	wantEqual(t, want, check(t, e, d, id, a))

	// A fork: the dump restored into another addon, with other users and
	// another database name; the tables are its app user's.
	f := testAddon(t, e, "process")
	f.DBName = "forked"
	fid := startAddon(t, d, e, f)
	if err := e.Restore(ctxT(t), d, fid, f, bytes.NewReader(dumped)); err != nil {
		t.Fatal(err)
	}
	wantEqual(t, want, check(t, e, d, fid, f))
	if out := appPsql(t, d, fid, f, "INSERT INTO items (name) VALUES ('fork'); SELECT count(*) FROM items;"); strings.TrimSpace(out) != "251" {
		t.Fatalf("the fork's app user: %q", out)
	}
	stopAddon(t, d, fid)

	// A verification instance: fresh data directory, restored from the dump.
	v := testAddon(t, e, "process")
	v.ID, v.Verify = a.ID, true
	v.AdminUser, v.AdminPassword, v.User, v.Password = a.AdminUser, a.AdminPassword, a.User, a.Password
	vid := startAddon(t, d, e, v)
	if err := e.Restore(ctxT(t), d, vid, v, bytes.NewReader(dumped)); err != nil {
		t.Fatal(err)
	}
	wantEqual(t, want, check(t, e, d, vid, v))

	// Snapshot, change, restore the snapshot with the server stopped.
	var snap bytes.Buffer
	if err := e.Snapshot(ctxT(t), d, id, a, &snap); err != nil {
		t.Fatal(err)
	}
	// The snapshot verified as the addons service does: unpacked into a
	// verification instance's fresh directories, which then starts on it.
	sv := testAddon(t, e, "process")
	sv.ID, sv.Verify = a.ID, true
	sv.AdminUser, sv.AdminPassword, sv.User, sv.Password = a.AdminUser, a.AdminPassword, a.User, a.Password
	if err := e.RestoreSnapshot(ctxT(t), d, sv, bytes.NewReader(snap.Bytes())); err != nil {
		t.Fatal(err)
	}
	svid := startAddon(t, d, e, sv)
	wantEqual(t, want, check(t, e, d, svid, sv))
	stopAddon(t, d, svid)

	appPsql(t, d, id, a, "TRUNCATE items;")
	stopAddon(t, d, id)
	if err := e.RestoreSnapshot(ctxT(t), d, a, bytes.NewReader([]byte("not a tar"))); err == nil {
		t.Fatal("a bad snapshot was restored")
	}
	if err := e.RestoreSnapshot(ctxT(t), d, a, &snap); err != nil {
		t.Fatal(err)
	}
	id = startAddon(t, d, e, a)
	wantEqual(t, want, check(t, e, d, id, a))
}
