package addons_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	addonsv1 "github.com/slipwayhq/slipway/gen/slipway/addons/v1"
	"github.com/slipwayhq/slipway/pkg/events"
	"github.com/slipwayhq/slipway/pkg/events/eventstest"
	"github.com/slipwayhq/slipway/pkg/runtime"
	"github.com/slipwayhq/slipway/services/addons"
	"github.com/slipwayhq/slipway/services/addons/engine"
)

// TestVerificationFailsLoudly: a backup whose restored copy does not hold
// what the source held, and one whose file was corrupted before it was
// verified, end with verification failed, saying why, and a backup.failed
// event (each backup having written backup.started and backup.completed
// when it was taken); a snapshot backup restores (the server stopped, swapped, started).
func TestVerificationFailsLoudly(t *testing.T) {
	h := newHarness(t)
	h.create(spec("sessions", engine.TypeRedis))
	h.waitStatus("sessions", addons.StatusRunning)
	h.redis("sessions", "SET a 1\nSET b 2\nSET c 3\n")
	dump := h.backup("sessions", "dump")
	snap := h.backup("sessions", "snapshot")
	if dump.GetVerification().GetStatus() != addons.VerifyVerified || snap.GetVerification().GetStatus() != addons.VerifyVerified {
		t.Fatalf("backups %v %v", dump.GetVerification(), snap.GetVerification())
	}
	// Each backup taken by hand wrote backup.started, then
	// backup.completed.
	for _, verb := range []string{"started", "completed"} {
		evs := eventstest.Collect(t, h.js, []string{events.SubjectFor("addons", "backup", verb)}, 2, 0, nil)
		if len(evs) != 2 || eventstest.DataField(evs[0], "id") != dump.GetId() || eventstest.DataField(evs[1], "id") != snap.GetId() ||
			eventstest.DataField(evs[0], "scheduleId") != "" {
			t.Fatalf("backup.%s events %v", verb, evs)
		}
	}

	// A snapshot restores: keys deleted after it are back.
	h.redis("sessions", "DEL a b\n")
	if r := h.restore("sessions", snap.GetId()); r.GetStatus() != addons.JobCompleted {
		t.Fatalf("snapshot restore %v", r)
	}
	if n := h.redis("sessions", "DBSIZE\n"); n != "3" {
		t.Fatalf("after the snapshot's restore: %s keys", n)
	}

	// Two backups to verify again at the next start (as a crash during
	// verification leaves them): one whose source check says 99 keys, one
	// whose file was damaged since it was taken.
	ctx := context.Background()
	pend := func(id string, mutate func(*addons.Backup)) {
		t.Helper()
		if _, err := h.store.UpdateBackup(ctx, teamID, projectID, "sessions", id, func(b *addons.Backup) ([]events.Event, error) {
			b.Verification.Status, b.Verification.Result, b.Verification.Message = addons.VerifyPending, nil, ""
			mutate(b)
			return nil, nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	pend(dump.GetId(), func(b *addons.Backup) { b.Verification.Source["counts"] = map[string]any{"db0": float64(99)} })
	pend(snap.GetId(), func(*addons.Backup) {})
	stored, _ := h.store.GetBackup(ctx, teamID, projectID, "sessions", snap.GetId())
	file := filepath.Join(h.dataDir, "backups", stored.Key)
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	raw[len(raw)/3] ^= 0x55
	if err := os.WriteFile(file, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	h.start()
	failed := func(b *addonsv1.Backup) bool { return b.GetVerification().GetStatus() != addons.VerifyPending }
	d := h.waitBackup("sessions", dump.GetId(), failed)
	if d.GetVerification().GetStatus() != addons.VerifyFailed || !strings.Contains(d.GetVerification().GetMessage(), "db0 has 3, expected 99") {
		t.Fatalf("mismatched verification %v", d.GetVerification())
	}
	s := h.waitBackup("sessions", snap.GetId(), failed)
	if s.GetVerification().GetStatus() != addons.VerifyFailed || !strings.Contains(s.GetVerification().GetMessage(), "checksum") {
		t.Fatalf("corrupted verification %v", s.GetVerification())
	}
	evs := eventstest.Collect(t, h.js, []string{events.SubjectFor("addons", "backup", "failed")}, 2, 0, nil)
	if len(evs) != 2 {
		t.Fatalf("backup.failed events: %d", len(evs))
	}
	// The throwaway instances are gone.
	a, _ := h.store.GetAddon(ctx, teamID, projectID, "sessions")
	if list, _ := h.driver.List(ctx, map[string]string{engine.LabelAddon: a.InternalID, engine.LabelRole: engine.RoleVerify}); len(list) != 0 {
		t.Fatalf("verification instances left: %v", list)
	}
}

// writer is a client that keeps writing to an addon: command runs in the
// addon's server and reads one line every few milliseconds until stop,
// which returns how many lines it was given.
type writer struct {
	t       *testing.T
	quit    chan struct{}
	done    chan error
	written atomic.Int64
}

// startWriter starts a writer feeding line(i) to command (with env) in
// addon's server.
func (h *harness) startWriter(addon string, command []string, env map[string]string, line func(i int) string) *writer {
	h.t.Helper()
	a, err := h.store.GetAddon(context.Background(), teamID, projectID, addon)
	if err != nil {
		h.t.Fatal(err)
	}
	list, err := h.driver.List(context.Background(), map[string]string{engine.LabelAddon: a.InternalID, engine.LabelRole: engine.RoleServer})
	if err != nil || len(list) != 1 {
		h.t.Fatalf("server workloads %v %v", list, err)
	}
	w := &writer{t: h.t, quit: make(chan struct{}), done: make(chan error, 1)}
	pr, pw := io.Pipe()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	go func() {
		defer cancel()
		var errOut bytes.Buffer
		code, err := h.driver.Exec(ctx, list[0].ID, runtime.ExecSpec{Command: command, Env: env, Stdin: pr, Stderr: &errOut})
		pr.CloseWithError(io.ErrClosedPipe)
		if err == nil && code != 0 {
			err = fmt.Errorf("exit %d: %s", code, errOut.String())
		}
		w.done <- err
	}()
	go func() {
		defer pw.Close()
		tick := time.NewTicker(3 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-w.quit:
				return
			case <-tick.C:
			}
			if _, err := io.WriteString(pw, line(i)); err != nil {
				return
			}
			w.written.Add(1)
		}
	}()
	return w
}

// stop ends the writer's input, waits for its command and returns how
// many lines it wrote.
func (w *writer) stop() int64 {
	w.t.Helper()
	close(w.quit)
	if err := <-w.done; err != nil {
		w.t.Fatalf("writer: %v", err)
	}
	return w.written.Load()
}

// pgEnv is what psql needs to reach an addon's database as the app user.
func (h *harness) pgEnv(addon string) map[string]string {
	h.t.Helper()
	creds, err := h.client.GetAddonCredentials(as(adminCred), &addonsv1.GetAddonCredentialsRequest{ProjectId: projectID, AddonId: addon})
	if err != nil {
		h.t.Fatal(err)
	}
	return map[string]string{"PGHOST": engine.RunMount, "PGUSER": creds.GetEnvs().AsMap()["USERNAME"].(string),
		"PGPASSWORD": creds.GetSecrets().AsMap()["PASSWORD"].(string), "PGDATABASE": creds.GetEnvs().AsMap()["DATABASE"].(string)}
}

// wantChangedAndVerified fails unless b was verified, saying (in its
// message and result) that the source changed while it was taken, and
// the restored count of table lies within the source's.
func wantChangedAndVerified(t *testing.T, b *addonsv1.Backup, table string) {
	t.Helper()
	v := b.GetVerification()
	res := v.GetResult().AsMap()
	if b.GetStatus() != addons.JobCompleted || v.GetStatus() != addons.VerifyVerified {
		t.Fatalf("backup taken while the addon was written to: %s %q, verification %s %q (result %v)",
			b.GetStatus(), b.GetStatusMessage(), v.GetStatus(), v.GetMessage(), res)
	}
	if !strings.Contains(v.GetMessage(), "the source changed while the backup ran") || res["sourceChanged"] != true || res["compared"] != "between before and after" {
		t.Fatalf("verification does not say the source changed: %q %v", v.GetMessage(), res)
	}
	count := func(m any) float64 { return m.(map[string]any)["counts"].(map[string]any)[table].(float64) }
	before, after, got := count(res["sourceBefore"]), count(res["sourceAfter"]), count(res)
	if !(before < after) || got < before || got > after {
		t.Fatalf("%s: before %v, after %v, restored %v", table, before, after, got)
	}
	t.Logf("%s backup of %s: before %v, restored %v, after %v", b.GetConfig().GetBackupType(), table, before, got, after)
}

// TestVerificationOfLiveAddon: backups of addons written to all along
// (a client inserting rows or setting keys every few milliseconds) are
// verified: the restored copy lies between the source's checks before and
// after the backup, and the verification says so. A stored source whose
// bounds the restored copy falls outside of fails, naming the table and
// the bounds.
func TestVerificationOfLiveAddon(t *testing.T) {
	h := newHarness(t)
	h.create(spec("live", engine.TypePostgreSQL))
	h.create(spec("cache", engine.TypeRedis))
	h.waitStatus("live", addons.StatusRunning)
	h.waitStatus("cache", addons.StatusRunning)

	h.psql("live", "CREATE TABLE events (id serial PRIMARY KEY, at timestamptz DEFAULT now()); INSERT INTO events (at) SELECT now() FROM generate_series(1, 40);")
	pg := h.startWriter("live", []string{"psql", "-X", "-q", "-v", "ON_ERROR_STOP=1"}, h.pgEnv("live"),
		func(int) string { return "INSERT INTO events DEFAULT VALUES;\n" })
	waitFor(t, 30*time.Second, "the writer's first rows", func() bool {
		n, _ := strconv.Atoi(h.psql("live", "SELECT count(*) FROM events;"))
		return n > 45
	})
	a, err := h.store.GetAddon(context.Background(), teamID, projectID, "cache")
	if err != nil {
		t.Fatal(err)
	}
	rd := h.startWriter("cache", []string{"redis-cli", "-s", engine.RunMount + "/redis.sock", "--no-auth-warning"},
		map[string]string{"REDISCLI_AUTH": a.Credentials.Password}, func(i int) string { return fmt.Sprintf("SET k%d %d\n", i, i) })
	waitFor(t, 30*time.Second, "the writer's first keys", func() bool {
		n, _ := strconv.Atoi(h.redis("cache", "DBSIZE\n"))
		return n > 5
	})

	dump := h.backup("live", "dump")
	snap := h.backup("live", "snapshot")
	keys := h.backup("cache", "dump")
	inserted, set := pg.stop(), rd.stop()
	t.Logf("the writers inserted %d rows and set %d keys", inserted, set)
	wantChangedAndVerified(t, dump, "public.events")
	wantChangedAndVerified(t, snap, "public.events")
	wantChangedAndVerified(t, keys, "db0")

	// Real damage is still loud: verified again (as after a crash) against
	// a source that changed, but never held as many rows as the copy.
	ctx := context.Background()
	if _, err := h.store.UpdateBackup(ctx, teamID, projectID, "live", dump.GetId(), func(b *addons.Backup) ([]events.Event, error) {
		b.Verification.Status, b.Verification.Result, b.Verification.Message = addons.VerifyPending, nil, ""
		b.Verification.Source["counts"] = map[string]any{"public.events": float64(1)}
		b.Verification.Source["after"].(map[string]any)["counts"] = map[string]any{"public.events": float64(2)}
		return nil, nil
	}); err != nil {
		t.Fatal(err)
	}
	h.start()
	d := h.waitBackup("live", dump.GetId(), func(b *addonsv1.Backup) bool { return b.GetVerification().GetStatus() != addons.VerifyPending })
	msg := d.GetVerification().GetMessage()
	if d.GetVerification().GetStatus() != addons.VerifyFailed || !strings.Contains(msg, "the source changed while the backup ran") ||
		!regexp.MustCompile(`public\.events has [0-9]+, expected between 1 and 2`).MatchString(msg) {
		t.Fatalf("verification out of bounds %v", d.GetVerification())
	}
	if res := d.GetVerification().GetResult().AsMap(); res["sourceChanged"] != true {
		t.Fatalf("failed verification result %v", res)
	}
	evs := eventstest.Collect(t, h.js, []string{events.SubjectFor("addons", "backup", "failed")}, 1, 0, nil)
	if len(evs) != 1 {
		t.Fatalf("backup.failed events: %d", len(evs))
	}
}
