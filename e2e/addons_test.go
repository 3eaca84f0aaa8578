package e2e

import (
	"testing"
	"time"
)

// TestAddonsSurviveSIGKILL: Slipway is SIGKILLed right after a backup of
// a PostgreSQL addon starts, then again right after a restore starts.
// After each restart nothing stays in progress: the backup is failed
// ("interrupted") or completed and verified, the restore failed or
// completed, and the addon runs again on its data.
func TestAddonsSurviveSIGKILL(t *testing.T) {
	dataDir := t.TempDir()
	first := startSlipway(t, "SLIPWAY_DATA_DIR="+dataDir)
	callJSON(t, "POST", first.URL+"/v1/projects", `{"name":"Crash Addons"}`).data(t)
	addonURL := func(base string) string { return base + "/v1/projects/crash-addons/addons/crash-db" }
	callJSON(t, "POST", first.URL+"/v1/projects/crash-addons/addons",
		`{"name":"crash-db","type":"postgresql","version":"latest","billing":{"deploymentPlan":"nf-compute-20"}}`).data(t)
	waitRunning := func(base string) {
		t.Helper()
		for deadline := time.Now().Add(2 * time.Minute); ; {
			a := callJSON(t, "GET", addonURL(base), "").data(t)
			if a["status"] == "running" {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("addon not running: %v", a)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	waitRunning(first.URL)
	backup := callJSON(t, "POST", addonURL(first.URL)+"/backups", `{"backupType":"dump"}`).data(t)["id"].(string)
	first.kill()

	second := startSlipway(t, "SLIPWAY_DATA_DIR="+dataDir)
	waitRunning(second.URL)
	var b map[string]any
	for deadline := time.Now().Add(2 * time.Minute); ; {
		b = callJSON(t, "GET", addonURL(second.URL)+"/backups/"+backup, "").data(t)
		v, _ := b["verification"].(map[string]any)
		if b["status"] != "in-progress" && v["status"] != "pending" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("backup still unfinished after the restart: %v", b)
		}
		time.Sleep(200 * time.Millisecond)
	}
	v := b["verification"].(map[string]any)
	switch b["status"] {
	case "failed":
		if msg, _ := b["statusMessage"].(string); msg == "" {
			t.Fatalf("an interrupted backup says nothing: %v", b)
		}
		t.Logf("the backup was interrupted: %v", b["statusMessage"])
	case "completed":
		if v["status"] != "verified" {
			t.Fatalf("a completed backup did not verify: %v", b)
		}
		t.Log("the backup had completed before the kill; verified after the restart")
	default:
		t.Fatalf("backup after the restart: %v", b)
	}
	if b["status"] != "completed" {
		// A backup to restore.
		backup = callJSON(t, "POST", addonURL(second.URL)+"/backups", `{"backupType":"dump"}`).data(t)["id"].(string)
		for deadline := time.Now().Add(2 * time.Minute); ; {
			b = callJSON(t, "GET", addonURL(second.URL)+"/backups/"+backup, "").data(t)
			if b["status"] == "completed" {
				break
			}
			if b["status"] == "failed" || time.Now().After(deadline) {
				t.Fatalf("backup %v", b)
			}
			time.Sleep(200 * time.Millisecond)
		}
		waitRunning(second.URL)
	}

	restore := callJSON(t, "POST", addonURL(second.URL)+"/backups/"+backup+"/restore", "").data(t)["restoreId"].(string)
	second.kill()
	third := startSlipway(t, "SLIPWAY_DATA_DIR="+dataDir)
	waitRunning(third.URL)
	list := callJSON(t, "GET", addonURL(third.URL)+"/restores", "").data(t)["restores"].([]any)
	found := false
	for _, x := range list {
		r := x.(map[string]any)
		if r["status"] == "in-progress" || r["status"] == "aborting" {
			t.Fatalf("a restore stays %s after the restart: %v", r["status"], r)
		}
		if r["id"] == restore {
			found = true
			t.Logf("the restore after the restart: %v %v", r["status"], r["statusMessage"])
		}
	}
	if !found {
		t.Fatalf("restore %s not listed: %v", restore, list)
	}
	// Clean up through the API: the server stops, its data goes.
	callJSON(t, "DELETE", addonURL(third.URL), "").data(t)
	for deadline := time.Now().Add(time.Minute); ; {
		if res := callJSON(t, "GET", addonURL(third.URL), ""); res.Status == 404 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the addon was not deleted")
		}
		time.Sleep(200 * time.Millisecond)
	}
}
