package addons_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	addonsv1 "github.com/slipwayhq/slipway/gen/slipway/addons/v1"
	"github.com/slipwayhq/slipway/pkg/events"
	"github.com/slipwayhq/slipway/pkg/events/eventstest"
	"github.com/slipwayhq/slipway/services/addons"
	"github.com/slipwayhq/slipway/services/addons/engine"
)

// TestVerificationFailsLoudly: a backup whose restored copy does not hold
// what the source held, and one whose file was corrupted before it was
// verified, end with verification failed, saying why, and a backup.failed
// event; a snapshot backup restores (the server stopped, swapped, started).
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
