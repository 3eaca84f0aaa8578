package engine

import (
	"bytes"
	"strings"
	"testing"

	"github.com/slipwayhq/slipway/pkg/runtime"
)

const mysqlSeed = "CREATE TABLE items (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(64) NOT NULL);\n" +
	"INSERT INTO items (name) SELECT CONCAT('item ', seq) FROM seq_1_to_250;\n" +
	"CREATE TABLE `odd name` (x INT);\n" +
	"INSERT INTO `odd name` VALUES (1), (2);\n" +
	"CREATE VIEW big AS SELECT * FROM items WHERE id > 100;\n" +
	"CREATE TRIGGER items_trim BEFORE INSERT ON items FOR EACH ROW SET NEW.name = TRIM(NEW.name);\n" +
	"CREATE PROCEDURE item_count() SELECT COUNT(*) FROM items;\n"

// appMySQL runs SQL in the addon as the app user, through the socket.
func appMySQL(t *testing.T, d runtime.Driver, id string, a Addon, sql string) string {
	t.Helper()
	return execIn(t, d, id, map[string]string{"MYSQL_PWD": a.Password}, sql,
		"mariadb", "--no-defaults", "--socket="+RunMount+"/mysqld.sock", "--user="+a.User, "-N", "-B", a.DBName)
}

// TestMySQLRoundTrip: start, write as the app user, Dump, drop, Restore,
// Check equal; a corrupted dump is refused and the data stays; a
// verification instance restored from the dump checks equal; no account
// but the admin and the app user can log in.
func TestMySQLRoundTrip(t *testing.T) {
	e, _ := Get(TypeMySQL)
	d := testDriver(t)
	a := testAddon(t, e, "process")
	id := startAddon(t, d, e, a)

	appMySQL(t, d, id, a, mysqlSeed)
	want := check(t, e, d, id, a)
	if want.Counts["items"] != 250 || want.Counts["odd name"] != 2 || len(want.Counts) != 2 || want.Schema["items"] != "id int(11), name varchar(64)" {
		t.Fatalf("check after seeding: %+v", want)
	}
	// root (and the OS user that installed) cannot log in.
	users := execIn(t, d, id, mysqlEnv(a), "SELECT CONCAT(User, '@', Host) FROM mysql.user ORDER BY 1;", mysqlTool(a, "mariadb", "-N", "-B")...)
	if got := strings.Fields(users); len(got) != 3 || !strings.Contains(users, a.AdminUser+"@%") || !strings.Contains(users, a.User+"@%") || !strings.Contains(users, "mariadb.sys@localhost") {
		t.Fatalf("accounts: %q", users)
	}
	dumped := dump(t, e, d, id, a)

	appMySQL(t, d, id, a, "DROP VIEW big; DROP TABLE items; DELETE FROM `odd name` WHERE x = 1; CREATE TABLE stray (x INT);")
	if got := check(t, e, d, id, a); got.Equal(want) {
		t.Fatal("the data did not change")
	}
	if err := e.Restore(ctxT(t), d, id, a, bytes.NewReader(dumped)); err != nil {
		t.Fatal(err)
	}
	wantEqual(t, want, check(t, e, d, id, a))
	if out := appMySQL(t, d, id, a, "SELECT COUNT(*) FROM big;"); strings.TrimSpace(out) != "150" {
		t.Fatalf("the view after restore: %q", out)
	}

	// Bad dumps are refused before the live database is touched: a
	// truncated one (no "-- Dump completed" line at its end), and one
	// that does not load (into the scratch database).
	for name, bad := range map[string][]byte{
		"truncated": dumped[:len(dumped)*2/3],
		"broken":    bytes.Replace(dumped, []byte("INSERT INTO `items`"), []byte("INSERT INTO `nope`"), 1),
	} {
		err := e.Restore(ctxT(t), d, id, a, bytes.NewReader(bad))
		if err == nil || !isToolError(err) || !strings.Contains(err.Error(), "nothing was changed") {
			t.Fatalf("%s dump: %v", name, err)
		}
		t.Logf("%s dump: %v", name, err)
		wantEqual(t, want, check(t, e, d, id, a))
	}
	if out := execIn(t, d, id, mysqlEnv(a), "SHOW DATABASES;", mysqlTool(a, "mariadb", "-N", "-B")...); strings.Contains(out, scratchDB) {
		t.Fatalf("the scratch database is left: %q", out)
	}

	// A restore interrupted while it replaced the live database (the
	// marker and the kept dump are there, the live data is half gone):
	// the next start of the server puts the kept data back.
	execIn(t, d, id, mysqlEnv(a), "", "/bin/sh", "-c", `mariadb-dump --no-defaults --socket=/run/addon/mysqld.sock --user="$SLIPWAY_ADMIN_USER" `+strings.Join(mysqlDumpArgs, " ")+` "$SLIPWAY_DB" >/data/slipway-previous.sql && touch /data/slipway-restore.swapping`)
	appMySQL(t, d, id, a, "DROP VIEW big; DROP TABLE items;")
	stopAddon(t, d, id)
	id = startAddon(t, d, e, a)
	wantEqual(t, want, check(t, e, d, id, a))
	if out := execIn(t, d, id, nil, "", "ls", "/data"); strings.Contains(out, "slipway-") {
		t.Fatalf("files left in the data directory: %q", out)
	}

	// Snapshot, change, restore the snapshot with the server stopped; and
	// the snapshot unpacked into a fresh verification instance.
	var snap bytes.Buffer
	if err := e.Snapshot(ctxT(t), d, id, a, &snap); err != nil {
		t.Fatal(err)
	}
	appMySQL(t, d, id, a, "DELETE FROM items;")
	stopAddon(t, d, id)
	if err := e.RestoreSnapshot(ctxT(t), d, a, strings.NewReader("not a tar")); err == nil {
		t.Fatal("a bad snapshot was restored")
	}
	if err := e.RestoreSnapshot(ctxT(t), d, a, bytes.NewReader(snap.Bytes())); err != nil {
		t.Fatal(err)
	}
	id = startAddon(t, d, e, a)
	wantEqual(t, want, check(t, e, d, id, a))
	sv := testAddon(t, e, "process")
	sv.ID, sv.Verify = a.ID, true
	sv.AdminUser, sv.AdminPassword, sv.User, sv.Password = a.AdminUser, a.AdminPassword, a.User, a.Password
	if err := e.RestoreSnapshot(ctxT(t), d, sv, bytes.NewReader(snap.Bytes())); err != nil {
		t.Fatal(err)
	}
	svid := startAddon(t, d, e, sv)
	wantEqual(t, want, check(t, e, d, svid, sv))
	stopAddon(t, d, svid)

	// A fork: the dump restored into another addon, with other users and
	// another database name; its views, triggers and routines are the
	// new app user's and work.
	f := testAddon(t, e, "process")
	f.DBName = "forked"
	fid := startAddon(t, d, e, f)
	if err := e.Restore(ctxT(t), d, fid, f, bytes.NewReader(dumped)); err != nil {
		t.Fatal(err)
	}
	wantEqual(t, want, check(t, e, d, fid, f))
	out := appMySQL(t, d, fid, f, "SELECT COUNT(*) FROM big; CALL item_count(); INSERT INTO items (name) VALUES ('  padded  '); SELECT name FROM items ORDER BY id DESC LIMIT 1;")
	if got := strings.Fields(out); len(got) != 3 || got[0] != "150" || got[1] != "250" || got[2] != "padded" {
		t.Fatalf("the fork's view, routine and trigger: %q", out)
	}
	stopAddon(t, d, fid)

	// A verification instance restored from the dump.
	v := testAddon(t, e, "process")
	v.ID, v.Verify = a.ID, true
	v.AdminUser, v.AdminPassword, v.User, v.Password = a.AdminUser, a.AdminPassword, a.User, a.Password
	vid := startAddon(t, d, e, v)
	if err := e.Restore(ctxT(t), d, vid, v, bytes.NewReader(dumped)); err != nil {
		t.Fatal(err)
	}
	wantEqual(t, want, check(t, e, d, vid, v))
}
