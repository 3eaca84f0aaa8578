package engine

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/slipwayhq/slipway/pkg/runtime"
)

// appRedis runs redis-cli commands (one a line on stdin) as the app
// user, through the socket, as a linked workload would.
func appRedis(t *testing.T, d runtime.Driver, id string, a Addon, commands string) string {
	t.Helper()
	return execIn(t, d, id, map[string]string{"REDISCLI_AUTH": a.Password}, commands, "redis-cli", "-s", RunMount+"/redis.sock", "--no-auth-warning")
}

func redisSeed(n int) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "SET key:%d value-%d\n", i, i)
	}
	b.WriteString("SELECT 3\nSET other 1\nSET other2 2\n")
	return b.String()
}

// TestRedisRoundTrip: start, write as the app user, Dump, flush, Restore,
// Check equal; a corrupted RDB is refused and the data stays; a
// verification instance restored from the dump checks equal; a snapshot
// restores with the server stopped; the app user cannot run DEBUG.
func TestRedisRoundTrip(t *testing.T) {
	e, _ := Get(TypeRedis)
	d := testDriver(t)
	a := testAddon(t, e, "process")
	id := startAddon(t, d, e, a)

	appRedis(t, d, id, a, redisSeed(300))
	want := check(t, e, d, id, a)
	if want.Counts["db0"] != 300 || want.Counts["db3"] != 2 || want.Summary() != "2 databases, 302 keys" {
		t.Fatalf("check after seeding: %+v %s", want, want.Summary())
	}
	if out := appRedis(t, d, id, a, "DEBUG SLEEP 0\n"); !strings.Contains(out, "NOPERM") {
		t.Fatalf("the app user ran DEBUG: %q", out)
	}
	dumped := dump(t, e, d, id, a)
	if !bytes.HasPrefix(dumped, []byte("REDIS")) {
		t.Fatalf("the dump is not an RDB file: %q", dumped[:min(len(dumped), 16)])
	}

	appRedis(t, d, id, a, "FLUSHALL\nSET stray 1\n")
	if got := check(t, e, d, id, a); got.Equal(want) {
		t.Fatal("the data did not change")
	}
	if err := e.Restore(ctxT(t), d, id, a, bytes.NewReader(dumped)); err != nil {
		t.Fatal(err)
	}
	wantEqual(t, want, check(t, e, d, id, a))
	if out := appRedis(t, d, id, a, "GET key:42\n"); strings.TrimSpace(out) != "value-42" {
		t.Fatalf("GET after restore: %q", out)
	}

	// A corrupted RDB: refused, saying why; the data stays.
	err := e.Restore(ctxT(t), d, id, a, bytes.NewReader(corrupt(dumped)))
	if err == nil || !isToolError(err) || !strings.Contains(err.Error(), "not valid") {
		t.Fatalf("corrupted dump: %v", err)
	}
	t.Logf("corrupted dump: %v", err)
	wantEqual(t, want, check(t, e, d, id, a))

	// The restored data was saved: it survives a restart.
	stopAddon(t, d, id)
	id = startAddon(t, d, e, a)
	wantEqual(t, want, check(t, e, d, id, a))

	// A restore interrupted after it set the data aside and put another
	// file in place has failed: the next start goes back to the data set
	// aside.
	admin := func(args ...string) string { return execIn(t, d, id, redisEnv(a), "", redisCLI(a, args...)...) }
	admin("CONFIG", "SET", "save", "")
	admin("SAVE")
	execIn(t, d, id, nil, "", "mv", "/data/dump.rdb", "/data/slipway-previous.rdb")
	admin("FLUSHALL")
	admin("SET", "half", "done")
	admin("SAVE")
	stopAddon(t, d, id)
	id = startAddon(t, d, e, a)
	wantEqual(t, want, check(t, e, d, id, a))
	if out := execIn(t, d, id, nil, "", "ls", "/data"); strings.Contains(out, "slipway-") {
		t.Fatalf("files left in the data directory: %q", out)
	}

	// A verification instance restored from the dump.
	v := testAddon(t, e, "process")
	v.ID, v.Verify = a.ID, true
	v.AdminUser, v.AdminPassword, v.Password = a.AdminUser, a.AdminPassword, a.Password
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

	appRedis(t, d, id, a, "FLUSHALL\nSAVE\n")
	stopAddon(t, d, id)
	if err := e.RestoreSnapshot(ctxT(t), d, a, strings.NewReader("garbage")); err == nil {
		t.Fatal("a bad snapshot was restored")
	}
	if err := e.RestoreSnapshot(ctxT(t), d, a, &snap); err != nil {
		t.Fatal(err)
	}
	id = startAddon(t, d, e, a)
	wantEqual(t, want, check(t, e, d, id, a))
}
