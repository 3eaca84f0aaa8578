package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/slipwayhq/slipway/pkg/testenv"
)

// The addons tests drive addons through the API of the real binary and
// reach their servers the way an operator on the host would: with the
// engines' own clients (psql, redis-cli) on the socket in the addon's
// directory under the data dir (<data dir>/addons/<internal id>/run),
// which is where a linked workload's mount of it comes from.

// addonsPoll is how often the addons tests look again while they wait:
// backups and restores take seconds, so a slow poll costs nothing.
const addonsPoll = 250 * time.Millisecond

// addonsAPI drives the addons of one project of one Slipway as its admin.
type addonsAPI struct {
	t       *testing.T
	inst    *instance
	base    string // .../v1 or .../v1/teams/<team>
	project string
}

// newAddonsProject creates a project named name in team (the admin's
// default team when empty) on inst. The project is deleted with its
// addons when the test ends, before Slipway stops, and the test waits
// until the addons' directories are gone: their servers are process-driver
// sandboxes that outlive Slipway by design.
func newAddonsProject(t *testing.T, inst *instance, team, name string) *addonsAPI {
	t.Helper()
	base := inst.URL + "/v1"
	if team != "" {
		base += "/teams/" + team
	}
	d := callJSON(t, "POST", base+"/projects", fmt.Sprintf(`{"name":%q}`, name)).data(t)
	a := &addonsAPI{t: t, inst: inst, base: base, project: d["id"].(string)}
	t.Cleanup(a.deleteProject)
	return a
}

// deleteProject deletes the project with its addons and waits (bounded)
// until every addon's directory of this project is gone.
func (a *addonsAPI) deleteProject() {
	t := a.t
	select {
	case <-a.inst.done:
		return // Slipway is down: the harness reaps the workloads
	default:
	}
	var dirs []string
	if r := callJSON(t, "GET", a.base+"/projects/"+a.project+"/addons", ""); r.Status == 200 {
		for _, v := range r.Body["data"].(map[string]any)["addons"].([]any) {
			id := v.(map[string]any)["id"].(string)
			if c := callJSON(t, "GET", a.addonURL(id)+"/credentials", ""); c.Status == 200 {
				dirs = append(dirs, a.addonDir(c.data(t)))
			}
		}
	}
	r := callJSON(t, "DELETE", a.base+"/projects/"+a.project+"?delete_child_objects=true", "")
	if r.Status != 200 {
		t.Errorf("delete project %s: HTTP %d: %s", a.project, r.Status, r.Raw)
		return
	}
	deadline := time.Now().Add(60 * time.Second)
	for _, dir := range dirs {
		for {
			if _, err := os.Stat(dir); os.IsNotExist(err) {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("the addon directory %s is still there a minute after its project was deleted", dir)
				return
			}
			time.Sleep(addonsPoll)
		}
	}
}

func (a *addonsAPI) addonURL(id string) string {
	return a.base + "/projects/" + a.project + "/addons/" + id
}

// create creates an addon of typ and version and returns its id.
func (a *addonsAPI) create(name, typ, version string) string {
	a.t.Helper()
	body := fmt.Sprintf(`{"name":%q,"type":%q,"version":%q,"billing":{"deploymentPlan":"nf-compute-20","storage":1024,"replicas":1}}`, name, typ, version)
	return callJSON(a.t, "POST", a.base+"/projects/"+a.project+"/addons", body).data(a.t)["id"].(string)
}

func (a *addonsAPI) get(id string) map[string]any {
	a.t.Helper()
	return callJSON(a.t, "GET", a.addonURL(id), "").data(a.t)
}

// wait polls the addon until it has status, failing the test when it
// fails instead or timeout passes.
func (a *addonsAPI) wait(id, status string, timeout time.Duration) map[string]any {
	a.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		d := a.get(id)
		if d["status"] == status {
			return d
		}
		if d["status"] == "failed" && status != "failed" {
			a.t.Fatalf("addon %s failed: %v", id, d)
		}
		if time.Now().After(deadline) {
			a.t.Fatalf("addon %s not %s within %s: %v", id, status, timeout, d)
		}
		time.Sleep(addonsPoll)
	}
}

// credentials returns the addon's secrets and envs merged.
func (a *addonsAPI) credentials(id string) map[string]string {
	a.t.Helper()
	d := callJSON(a.t, "GET", a.addonURL(id)+"/credentials", "").data(a.t)
	out := map[string]string{}
	for _, part := range []string{"envs", "secrets"} {
		m, _ := d[part].(map[string]any)
		for k, v := range m {
			out[k], _ = v.(string)
		}
	}
	if out["HOST"] == "" || out["PASSWORD"] == "" {
		a.t.Fatalf("credentials of %s lack HOST or PASSWORD: %v", id, mapKeysOf(out))
	}
	return out
}

func mapKeysOf(m map[string]string) []string {
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	return keys
}

// addonDir is the addon's directory on the host: HOST of its credentials
// is /run/slipway/addons/<internal id>, the mount of <dir>/run.
func (a *addonsAPI) addonDir(creds any) string {
	var host string
	switch c := creds.(type) {
	case map[string]string:
		host = c["HOST"]
	case map[string]any:
		envs, _ := c["envs"].(map[string]any)
		host, _ = envs["HOST"].(string)
	}
	return filepath.Join(a.inst.DataDir, "addons", filepath.Base(host))
}

// backup starts a backup of typ ("dump", "snapshot") and returns its id.
func (a *addonsAPI) backup(id, typ string) string {
	a.t.Helper()
	return callJSON(a.t, "POST", a.addonURL(id)+"/backups", fmt.Sprintf(`{"name":"e2e %s","backupType":%q}`, typ, typ)).data(a.t)["id"].(string)
}

func (a *addonsAPI) getBackup(id, backup string) map[string]any {
	a.t.Helper()
	return callJSON(a.t, "GET", a.addonURL(id)+"/backups/"+backup, "").data(a.t)
}

// waitBackup polls a backup until until accepts it.
func (a *addonsAPI) waitBackup(id, backup string, timeout time.Duration, what string, until func(map[string]any) bool) map[string]any {
	a.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		b := a.getBackup(id, backup)
		if until(b) {
			return b
		}
		if time.Now().After(deadline) {
			a.t.Fatalf("backup %s of %s: not %s within %s; last: %v", backup, id, what, timeout, b)
		}
		time.Sleep(addonsPoll)
	}
}

// verification returns the backup's verification status.
func verification(b map[string]any) string {
	v, _ := b["verification"].(map[string]any)
	s, _ := v["status"].(string)
	return s
}

// backupSettled: the backup has ended, and its verification too when it
// completed.
func backupSettled(b map[string]any) bool {
	switch b["status"] {
	case "failed", "aborted":
		return true
	case "completed":
		return verification(b) != "pending" && verification(b) != ""
	}
	return false
}

// restore starts a restore of backup into addon id (query: the source
// addon's sourceProjectId/sourceAddonId) and returns the response.
func (a *addonsAPI) restore(id, backup, query string) response {
	a.t.Helper()
	u := a.addonURL(id) + "/backups/" + backup + "/restore"
	if query != "" {
		u += "?" + query
	}
	return callJSON(a.t, "POST", u, "")
}

// restoreOf returns the restore of addon id with restoreID.
func (a *addonsAPI) restoreOf(id, restoreID string) map[string]any {
	a.t.Helper()
	d := callJSON(a.t, "GET", a.addonURL(id)+"/restores", "").data(a.t)
	for _, v := range d["restores"].([]any) {
		if r := v.(map[string]any); r["id"] == restoreID {
			return r
		}
	}
	a.t.Fatalf("restore %s is not listed for %s: %v", restoreID, id, d)
	return nil
}

// waitRestore polls a restore until it has ended.
func (a *addonsAPI) waitRestore(id, restoreID string, timeout time.Duration) map[string]any {
	a.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		r := a.restoreOf(id, restoreID)
		switch r["status"] {
		case "completed", "failed", "aborted":
			return r
		}
		if time.Now().After(deadline) {
			a.t.Fatalf("restore %s of %s not ended within %s: %v", restoreID, id, timeout, r)
		}
		time.Sleep(addonsPoll)
	}
}

// backupFile is the stored file of backup under the data dir.
func backupFile(t *testing.T, inst *instance, backup string) string {
	t.Helper()
	var found []string
	root := filepath.Join(inst.DataDir, "addons", "backups")
	_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasPrefix(d.Name(), backup+".") {
			found = append(found, p)
		}
		return nil
	})
	if len(found) != 1 {
		t.Fatalf("backup %s: files %q under %s, want one", backup, found, root)
	}
	return found[0]
}

// hostClient runs one of the engines' clients on the host against the
// addon's socket, as the addon's app user, with a time limit, and
// returns its trimmed output.
func hostClient(t *testing.T, typ, dir string, creds map[string]string, input string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	run := filepath.Join(dir, "run")
	var cmd *exec.Cmd
	switch typ {
	case "postgresql":
		cmd = exec.CommandContext(ctx, "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-A", "-t",
			"host="+run+" port="+creds["PORT"]+" dbname="+creds["DATABASE"]+" user="+creds["USERNAME"])
		cmd.Env = append(os.Environ(), "PGPASSWORD="+creds["PASSWORD"])
	case "redis":
		cmd = exec.CommandContext(ctx, "redis-cli", "-s", filepath.Join(run, "redis.sock"))
		cmd.Env = append(os.Environ(), "REDISCLI_AUTH="+creds["PASSWORD"])
	case "mysql":
		cmd = exec.CommandContext(ctx, "mariadb", "--no-defaults", "-N", "-B",
			"--socket="+filepath.Join(run, "mysqld.sock"), "--user="+creds["USERNAME"], creds["DATABASE"])
		cmd.Env = append(os.Environ(), "MYSQL_PWD="+creds["PASSWORD"])
	default:
		t.Fatalf("no host client for %s", typ)
	}
	cmd.Stdin = strings.NewReader(input)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s on %s: %v\n%s", cmd.Args[0], run, err, out.String())
	}
	return strings.TrimSpace(out.String())
}

// pgCount is the number of rows of items, or "missing" when there is no
// such table.
func pgCount(t *testing.T, dir string, creds map[string]string) string {
	t.Helper()
	if hostClient(t, "postgresql", dir, creds, `SELECT to_regclass('public.items') IS NULL;`) == "t" {
		return "missing"
	}
	return hostClient(t, "postgresql", dir, creds, `SELECT count(*) FROM items;`)
}

// pgSeedRows is how many rows the PostgreSQL tests write: enough (some
// 40 MB) that dumping and restoring them takes a moment.
const pgSeedRows = 300_000

const pgSeed = `CREATE TABLE items(id int PRIMARY KEY, pad text NOT NULL);
INSERT INTO items SELECT g, md5(g::text) || md5((g * 7)::text) || md5((g * 13)::text) FROM generate_series(1, 300000) g;`

// mysqlCount is the number of rows of items, or "missing" when there is
// no such table.
func mysqlCount(t *testing.T, dir string, creds map[string]string) string {
	t.Helper()
	if hostClient(t, "mysql", dir, creds, "SELECT count(*) FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = 'items';") == "0" {
		return "missing"
	}
	return hostClient(t, "mysql", dir, creds, "SELECT count(*) FROM items;")
}

// TestAddonsDownloadLink: a backup's download link serves exactly the
// stored bytes (their SHA-256 is the backup's checksum) without a token;
// an altered link and an expired one are refused.
func TestAddonsDownloadLink(t *testing.T) {
	inst := startSlipway(t, "SLIPWAY_ADDON_DOWNLOAD_TTL=4s")
	api := newAddonsProject(t, inst, "", "Addon Downloads")
	id := api.create("cache", "redis", "latest")
	api.wait(id, "running", 60*time.Second)
	creds := api.credentials(id)
	dir := api.addonDir(creds)
	hostClient(t, "redis", dir, creds, "SET a 1\nSET b 2\nSET c 3\n")
	b := api.backup(id, "dump")
	done := api.waitBackup(id, b, 2*time.Minute, "settled", backupSettled)
	if done["status"] != "completed" || verification(done) != "verified" {
		t.Fatalf("backup: %v", done)
	}
	cfg := done["config"].(map[string]any)
	stored, err := os.ReadFile(backupFile(t, inst, b))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(stored)
	if hex.EncodeToString(sum[:]) != cfg["checksum"] || fmt.Sprint(len(stored)) != fmt.Sprint(cfg["size"]) {
		t.Fatalf("stored file: %d bytes sha256 %x; the backup says %v", len(stored), sum, cfg)
	}

	linkData := callJSON(t, "GET", api.addonURL(id)+"/backups/"+b+"/download-link", "").data(t)
	link, _ := linkData["downloadLink"].(string)
	expires := parseTime(t, linkData["expiresAt"])
	u, err := url.Parse(link)
	if err != nil || u.Host != inst.HTTPAddr {
		t.Fatalf("download link %q is not on this Slipway (%s): %v", link, inst.HTTPAddr, err)
	}
	fetch := func(link string) (int, []byte) {
		res, err := httpClient.Get(link) // no token
		if err != nil {
			t.Fatalf("GET %s: %v", link, err)
		}
		defer res.Body.Close()
		var buf bytes.Buffer
		_, _ = buf.ReadFrom(res.Body)
		return res.StatusCode, buf.Bytes()
	}
	status, body := fetch(link)
	got := sha256.Sum256(body)
	if status != 200 || got != sum {
		t.Fatalf("download: HTTP %d, %d bytes sha256 %x; want 200 with the stored %d bytes (%x)", status, len(body), got, len(stored), sum)
	}
	// Altered: a character of the signature changed, where it carries
	// bits of the MAC and where (its last, of 43 for 32 bytes) it carries
	// only the two bits base64 pads with, which a lenient decoder drops:
	// a link has one spelling.
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	flip := func(link string, back, bit int) string {
		i := len(link) - back
		return link[:i] + string(alphabet[strings.IndexByte(alphabet, link[i])^bit]) + link[i+1:]
	}
	for what, altered := range map[string]string{"a bit of the MAC": flip(link, 2, 1), "a padding bit": flip(link, 1, 1)} {
		if status, body := fetch(altered); status < 400 || status >= 500 || bytes.Equal(body, stored) {
			t.Errorf("link with %s altered: HTTP %d (%d bytes), want a 4xx", what, status, len(body))
		}
	}
	if wait := time.Until(expires); wait > 10*time.Second {
		t.Fatalf("the link expires in %s, want SLIPWAY_ADDON_DOWNLOAD_TTL (4s)", wait)
	}
	time.Sleep(time.Until(expires) + time.Second)
	if status, body := fetch(link); status < 400 || status >= 500 || bytes.Equal(body, stored) {
		t.Errorf("expired link: HTTP %d (%d bytes), want a 4xx", status, len(body))
	} else {
		t.Logf("expired link: HTTP %d %s", status, body)
	}
}

func parseTime(t *testing.T, v any) time.Time {
	t.Helper()
	s, _ := v.(string)
	ts, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatalf("time %v: %v", v, err)
	}
	return ts
}

// TestAddonsSurviveKillAndCorruption runs one PostgreSQL addon through
// crashes of Slipway (SIGKILL, no shutdown) and a corrupted backup file:
//   - killed during a backup: after the restart the backup is failed (or
//     completed), never in-progress, and the addon runs with its data;
//   - killed while a backup's verification is pending, the stored file
//     corrupted meanwhile: the verification run again at the restart
//     fails, saying why, and a restore of it fails clearly while the
//     addon keeps its data;
//   - killed during a restore: after the restart the restore has ended,
//     the addon runs, and its data is either what it had or the backup's,
//     never a mix; a new restore then brings the backup's data back.
//
// (TestAddonsSurviveSIGKILL kills it at the same points without data.)
func TestAddonsSurviveKillAndCorruption(t *testing.T) {
	dataDir := t.TempDir()
	inst := startSlipway(t, "SLIPWAY_DATA_DIR="+dataDir)
	api := newAddonsProject(t, inst, "", "Addon Crashes")
	id := api.create("main db", "postgresql", "latest")
	api.wait(id, "running", 90*time.Second)
	creds := api.credentials(id)
	dir := api.addonDir(creds)
	hostClient(t, "postgresql", dir, creds, pgSeed)
	want := fmt.Sprint(pgSeedRows)
	if got := pgCount(t, dir, creds); got != want {
		t.Fatalf("rows after seeding: %s", got)
	}
	restart := func() {
		t.Helper()
		inst.kill()
		inst = startSlipway(t, "SLIPWAY_DATA_DIR="+dataDir)
		api.inst, api.base = inst, inst.URL+"/v1"
	}

	// 1. Killed during a backup.
	b1 := api.backup(id, "dump")
	if st := api.getBackup(id, b1)["status"]; st != "in-progress" && st != "scheduled" {
		t.Logf("backup %s was already %v when Slipway was killed", b1, st)
	}
	restart()
	api.wait(id, "running", 90*time.Second)
	got := api.waitBackup(id, b1, 2*time.Minute, "settled", backupSettled)
	if got["status"] != "failed" && got["status"] != "completed" {
		t.Errorf("backup interrupted by the kill: %v, want failed or completed", got)
	}
	if got["status"] == "failed" && got["statusMessage"] == "" {
		t.Errorf("failed backup without a message: %v", got)
	}
	t.Logf("backup interrupted by a kill: %v: %v", got["status"], got["statusMessage"])
	if n := pgCount(t, dir, creds); n != want {
		t.Errorf("rows after the kill during a backup: %s, want %s", n, want)
	}

	// 2. Killed while the verification is pending; the file corrupted.
	b2 := api.backup(id, "dump")
	api.waitBackup(id, b2, 2*time.Minute, "completed", func(b map[string]any) bool {
		if b["status"] == "failed" {
			t.Fatalf("backup failed: %v", b)
		}
		return b["status"] == "completed"
	})
	if v := verification(api.getBackup(id, b2)); v != "pending" {
		t.Fatalf("the verification was %q before Slipway could be killed", v)
	}
	inst.kill()
	file := backupFile(t, inst, b2)
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for i := len(raw) / 3; i < len(raw)/3+64 && i < len(raw); i++ {
		raw[i] ^= 0x5a
	}
	if err := os.WriteFile(file, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	inst = startSlipway(t, "SLIPWAY_DATA_DIR="+dataDir)
	api.inst, api.base = inst, inst.URL+"/v1"
	got = api.waitBackup(id, b2, 3*time.Minute, "verified again", backupSettled)
	v, _ := got["verification"].(map[string]any)
	if verification(got) != "failed" || !strings.Contains(fmt.Sprint(v["message"]), "corrupt") {
		t.Errorf("verification of the corrupted backup: %v, want failed saying it is corrupted", v)
	}
	api.wait(id, "running", 90*time.Second)
	r := api.restore(id, b2, "").data(t)["restoreId"].(string)
	rs := api.waitRestore(id, r, 2*time.Minute)
	if rs["status"] != "failed" || !strings.Contains(fmt.Sprint(rs["statusMessage"]), "corrupt") {
		t.Errorf("restore of the corrupted backup: %v, want failed saying it is corrupted", rs)
	}
	api.wait(id, "running", 90*time.Second)
	if n := pgCount(t, dir, creds); n != want {
		t.Errorf("rows after restoring a corrupted backup: %s, want %s (the data it had)", n, want)
	}

	// 3. Killed during a restore.
	b3 := api.backup(id, "dump")
	if got := api.waitBackup(id, b3, 3*time.Minute, "settled", backupSettled); got["status"] != "completed" || verification(got) != "verified" {
		t.Fatalf("backup: %v", got)
	}
	hostClient(t, "postgresql", dir, creds, "DROP TABLE items;")
	r = api.restore(id, b3, "").data(t)["restoreId"].(string)
	time.Sleep(300 * time.Millisecond) // into pg_restore
	if st := api.restoreOf(id, r)["status"]; st != "in-progress" && st != "scheduled" {
		t.Logf("restore %s was already %v when Slipway was killed", r, st)
	}
	restart()
	rs = api.waitRestore(id, r, 2*time.Minute)
	if rs["status"] == "failed" && rs["statusMessage"] == "" {
		t.Errorf("failed restore without a message: %v", rs)
	}
	t.Logf("restore interrupted by a kill: %v: %v", rs["status"], rs["statusMessage"])
	api.wait(id, "running", 90*time.Second)
	n := pgCount(t, dir, creds)
	switch {
	case rs["status"] == "completed" && n != want:
		t.Errorf("rows after a completed restore: %s, want %s", n, want)
	case rs["status"] != "completed" && n != "missing" && n != want:
		// pg_restore runs in one transaction: the kill may have come
		// before its commit (the data it had) or after (the backup's),
		// which Slipway cannot know, but never a mix.
		t.Errorf("after a %v restore the table is %s, want it missing (as before the restore) or %s rows (the backup's)", rs["status"], n, want)
	}
	r = api.restore(id, b3, "").data(t)["restoreId"].(string)
	if rs := api.waitRestore(id, r, 2*time.Minute); rs["status"] != "completed" {
		t.Fatalf("restore after the crash: %v", rs)
	}
	api.wait(id, "running", 90*time.Second)
	if n := pgCount(t, dir, creds); n != want {
		t.Errorf("rows after restoring again: %s, want %s", n, want)
	}
}

// TestAddonsOtherTeamsBackup: a backup of another team's addon can be
// neither restored nor forked from (404, as if it did not exist), even
// when the two teams' projects and addons have the same ids; within its
// own team the same backup forks a new addon with its data.
func TestAddonsOtherTeamsBackup(t *testing.T) {
	inst := startSlipway(t)
	team, _ := callJSON(t, "POST", inst.URL+"/v1/teams", `{"name":"Addons Other Team"}`).data(t)["id"].(string)
	if team == "" || team == "default" {
		t.Fatalf("POST /v1/teams created team %q", team)
	}
	theirs := newAddonsProject(t, inst, team, "Shared Name")
	mine := newAddonsProject(t, inst, "", "Shared Name")
	if theirs.project != mine.project {
		t.Fatalf("project ids %q and %q: want the same id in both teams", theirs.project, mine.project)
	}
	theirAddon := theirs.create("cache", "redis", "latest")
	myAddon := mine.create("cache", "redis", "latest")
	if theirAddon != myAddon {
		t.Fatalf("addon ids %q and %q: want the same id in both teams", theirAddon, myAddon)
	}
	theirs.wait(theirAddon, "running", 60*time.Second)
	mine.wait(myAddon, "running", 60*time.Second)
	creds := theirs.credentials(theirAddon)
	hostClient(t, "redis", theirs.addonDir(creds), creds, "SET secret 1\nSET other 2\n")
	b := theirs.backup(theirAddon, "dump")
	if got := theirs.waitBackup(theirAddon, b, 2*time.Minute, "settled", backupSettled); got["status"] != "completed" {
		t.Fatalf("their backup: %v", got)
	}

	// From my team: the backup is not found, whatever names the source.
	mine.restore(myAddon, b, "").apiErr(t, 404)
	mine.restore(myAddon, b, "sourceProjectId="+theirs.project+"&sourceAddonId="+theirAddon).apiErr(t, 404)
	fork := fmt.Sprintf(`{"name":"fork","type":"redis","version":"latest","billing":{"deploymentPlan":"nf-compute-20","storage":1024,"replicas":1},
		"source":{"projectId":%q,"addonId":%q,"backupId":%q}}`, theirs.project, theirAddon, b)
	callJSON(t, "POST", mine.base+"/projects/"+mine.project+"/addons", fork).apiErr(t, 404)
	callJSON(t, "GET", mine.addonURL(myAddon)+"/backups/"+b, "").apiErr(t, 404)
	callJSON(t, "GET", mine.addonURL(myAddon)+"/backups/"+b+"/download-link", "").apiErr(t, 404)
	if list := callJSON(t, "GET", mine.base+"/projects/"+mine.project+"/addons", "").data(t)["addons"].([]any); len(list) != 1 {
		t.Errorf("my project has %d addons after the refused fork, want 1", len(list))
	}
	myCreds := mine.credentials(myAddon)
	if n := hostClient(t, "redis", mine.addonDir(myCreds), myCreds, "DBSIZE\n"); n != "0" {
		t.Errorf("my addon holds %s keys, want 0", n)
	}

	// In their team the same request forks it.
	forked := callJSON(t, "POST", theirs.base+"/projects/"+theirs.project+"/addons", fork).data(t)["id"].(string)
	theirs.wait(forked, "running", 2*time.Minute)
	fc := theirs.credentials(forked)
	deadline := time.Now().Add(time.Minute)
	for {
		n := hostClient(t, "redis", theirs.addonDir(fc), fc, "DBSIZE\n")
		if n == "2" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the fork in their team holds %s keys, want 2", n)
		}
		time.Sleep(addonsPoll)
	}
}

// hostVersion is the major.minor version of this machine's server of
// an addon type, what the image of its binaries runs, from the first
// submatch of re in the output of bin --version.
func hostVersion(t *testing.T, bin, re string) string {
	t.Helper()
	out, err := exec.Command(bin, "--version").CombinedOutput()
	m := regexp.MustCompile(re).FindSubmatch(out)
	if err != nil || m == nil {
		t.Fatalf("no %s on this machine to build an image of (scripts/install-deps.sh installs it): %v %s", bin, err, out)
	}
	return string(m[1])
}

// TestAddonsOnPodman: the round trip on the docker driver (against
// Podman) for each type, one Slipway for all, with images of this
// machine's servers built locally (no registry is reachable) and named by
// SLIPWAY_ADDON_IMAGE_*: the addon runs as a container, data written
// through its socket (the bind-mounted socket directory) is dumped, the
// dump verified in a throwaway container, the data damaged, the dump
// restored, and the data is back.
func TestAddonsOnPodman(t *testing.T) {
	host := testenv.Podman(t)
	pgVersions, _ := filepath.Glob("/usr/lib/postgresql/*/bin/postgres")
	if len(pgVersions) == 0 {
		t.Fatal("no PostgreSQL server on this machine to build an image of (scripts/install-deps.sh installs it)")
	}
	pgVersion := filepath.Base(filepath.Dir(filepath.Dir(pgVersions[0])))
	// The paths each image needs are those of services/addons/engine's
	// docker tests (hostImagePaths); BuildHostImage adds the libraries.
	types := []struct {
		typ, version string
		paths        []string
		write        string
		damage       string
		count        func(t *testing.T, dir string, creds map[string]string) string
		want         string // count's answer after writing and after the restore
	}{
		{typ: "postgresql", version: pgVersion,
			paths: []string{"/usr/lib/postgresql/" + pgVersion, "/usr/share/postgresql/" + pgVersion, "/usr/share/zoneinfo"},
			write: `CREATE TABLE items(id int PRIMARY KEY, pad text NOT NULL);
INSERT INTO items SELECT g, md5(g::text) FROM generate_series(1, 2500) g;`,
			damage: "DROP TABLE items;",
			count:  pgCount,
			want:   "2500"},
		{typ: "redis", version: hostVersion(t, "redis-server", `v=([0-9]+\.[0-9]+)\.`),
			paths:  []string{"/usr/bin/redis-server", "/usr/bin/redis-cli", "/usr/bin/redis-check-rdb"},
			write:  "SET greeting hello\nHSET user:1 name ada lang go\nRPUSH queue a b c\n",
			damage: "FLUSHALL\n",
			count: func(t *testing.T, dir string, creds map[string]string) string {
				return hostClient(t, "redis", dir, creds, "DBSIZE\nGET greeting\nHGET user:1 name\nLLEN queue\n")
			},
			want: "3\nhello\nada\n3"},
		{typ: "mysql", version: hostVersion(t, "mariadbd", `Ver ([0-9]+\.[0-9]+)\.`),
			paths: []string{"/usr/sbin/mariadbd", "/usr/bin/mariadb-install-db", "/usr/bin/mariadb", "/usr/bin/mariadb-admin", "/usr/bin/mariadb-dump",
				"/usr/bin/my_print_defaults", "/usr/bin/resolveip", "/usr/bin/mariadb-backup", "/usr/share/mysql", "/usr/lib/mysql/plugin"},
			write: "CREATE TABLE items(id int PRIMARY KEY, pad varchar(64) NOT NULL);\n" +
				// 50 x 50 rows: a recursion stops at max_recursive_iterations (1000).
				"INSERT INTO items WITH RECURSIVE g(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM g WHERE n < 49) SELECT x.n * 50 + y.n + 1, md5(x.n * 50 + y.n) FROM g x, g y;",
			damage: "DROP TABLE items;",
			count:  mysqlCount,
			want:   "2500"},
	}
	envs := []string{"SLIPWAY_RUNTIME_DRIVER=docker", "SLIPWAY_DOCKER_HOST=" + host}
	for _, c := range types {
		image := testenv.BuildHostImage(t, host, "localhost/slipway-host-"+c.typ+":"+c.version, c.paths...)
		envs = append(envs, "SLIPWAY_ADDON_IMAGE_"+strings.ToUpper(c.typ)+"="+image)
	}
	inst := startSlipway(t, envs...)
	api := newAddonsProject(t, inst, "", "Addons On Podman")

	for _, c := range types {
		t.Run(c.typ, func(t *testing.T) {
			api := &addonsAPI{t: t, inst: inst, base: api.base, project: api.project}
			id := api.create(c.typ+" db", c.typ, c.version)
			api.wait(id, "running", 2*time.Minute)
			if list, _ := callJSON(t, "GET", api.addonURL(id)+"/containers", "").data(t)["containers"].([]any); len(list) != 1 {
				t.Errorf("containers %v, want the server's", list)
			}
			creds := api.credentials(id)
			dir := api.addonDir(creds)
			count := func() string { return c.count(t, dir, creds) }

			hostClient(t, c.typ, dir, creds, c.write)
			if got := count(); got != c.want {
				t.Fatalf("after writing: %q, want %q", got, c.want)
			}
			b := api.backup(id, "dump")
			if got := api.waitBackup(id, b, 3*time.Minute, "settled", backupSettled); got["status"] != "completed" || verification(got) != "verified" {
				t.Fatalf("backup: %v", got)
			}
			hostClient(t, c.typ, dir, creds, c.damage)
			if got := count(); got == c.want {
				t.Fatalf("the data is unchanged after %q: %q", c.damage, got)
			}
			r := api.restore(id, b, "").data(t)["restoreId"].(string)
			if rs := api.waitRestore(id, r, 2*time.Minute); rs["status"] != "completed" {
				t.Fatalf("restore: %v", rs)
			}
			api.wait(id, "running", time.Minute)
			if got := count(); got != c.want {
				t.Errorf("after the restore: %q, want %q", got, c.want)
			}
		})
	}
}

// TestAddonsNorthflankCLI drives addons with the official Northflank CLI
// (@northflank/cli): create a Redis addon, list and get it, its types and
// credentials, back it up, get the backup (verified), restore it after the
// data was flushed, list the restores; the data is back.
func TestAddonsNorthflankCLI(t *testing.T) {
	inst := startSlipway(t)
	cli := newNorthflankCLI(t)
	cli.ok("login", "--token-login", "--token", adminToken, "--host", inst.URL, "--name", "slipway")
	api := newAddonsProject(t, inst, "", "CLI Addons")
	p := api.project

	var created map[string]any
	cli.json(&created, "create", "addon", "--projectId", p, "--input",
		`{"name":"cli cache","type":"redis","version":"latest","billing":{"deploymentPlan":"nf-compute-20","storage":1024,"replicas":1}}`)
	id, _ := created["id"].(string)
	if id != "cli-cache" {
		t.Fatalf("create addon: %v", created)
	}
	api.wait(id, "running", 60*time.Second)

	var list struct{ Addons []struct{ ID, Status string } }
	cli.json(&list, "list", "addons", "--projectId", p)
	if len(list.Addons) != 1 || list.Addons[0].ID != id || list.Addons[0].Status != "running" {
		t.Errorf("list addons: %+v", list)
	}
	var got struct{ ID, Type, Status string }
	cli.json(&got, "get", "addon", "--projectId", p, "--addonId", id)
	if got.ID != id || got.Type != "redis" || got.Status != "running" {
		t.Errorf("get addon: %+v", got)
	}
	var types struct{ AddonTypes []struct{ Type string } }
	cli.json(&types, "get", "addon", "types")
	if len(types.AddonTypes) == 0 {
		t.Errorf("get addon types: %+v", types)
	}
	var creds struct{ Secrets, Envs map[string]string }
	cli.json(&creds, "get", "addon", "credentials", "--projectId", p, "--addonId", id)
	if creds.Secrets["PASSWORD"] == "" || !strings.HasPrefix(creds.Envs["HOST"], "/run/slipway/addons/") {
		t.Errorf("get addon credentials: envs %v, secrets %v", creds.Envs, mapKeysOf(creds.Secrets))
	}
	hostCreds := api.credentials(id)
	dir := api.addonDir(hostCreds)
	hostClient(t, "redis", dir, hostCreds, "SET one 1\nSET two 2\nSET three 3\n")

	var backup struct{ ID string }
	cli.json(&backup, "backup", "addon", "--projectId", p, "--addonId", id, "--input", `{"name":"from the cli","backupType":"dump"}`)
	if backup.ID == "" {
		t.Fatal("backup addon: no id")
	}
	api.waitBackup(id, backup.ID, 2*time.Minute, "settled", backupSettled)
	var b map[string]any
	cli.json(&b, "get", "addon", "backup", "--projectId", p, "--addonId", id, "--backupId", backup.ID)
	if b["status"] != "completed" || verification(b) != "verified" {
		t.Fatalf("get addon backup: %v", b)
	}
	var backups struct{ Backups []struct{ ID string } }
	cli.json(&backups, "get", "addon", "backups", "--projectId", p, "--addonId", id)
	if len(backups.Backups) != 1 || backups.Backups[0].ID != backup.ID {
		t.Errorf("get addon backups: %+v", backups)
	}

	hostClient(t, "redis", dir, hostCreds, "FLUSHALL\n")
	var restore struct{ RestoreID string }
	cli.json(&restore, "restore", "addon", "backup", "--projectId", p, "--addonId", id, "--backupId", backup.ID)
	if restore.RestoreID == "" {
		t.Fatal("restore addon backup: no restoreId")
	}
	if r := api.waitRestore(id, restore.RestoreID, 2*time.Minute); r["status"] != "completed" {
		t.Fatalf("restore: %v", r)
	}
	var restores struct{ Restores []struct{ ID, Status string } }
	cli.json(&restores, "get", "addon", "restores", "--projectId", p, "--addonId", id)
	if len(restores.Restores) != 1 || restores.Restores[0].ID != restore.RestoreID || restores.Restores[0].Status != "completed" {
		t.Errorf("get addon restores: %+v", restores)
	}
	api.wait(id, "running", time.Minute)
	if n := hostClient(t, "redis", dir, hostCreds, "DBSIZE\n"); n != "3" {
		t.Errorf("keys after the restore: %s, want 3", n)
	}
}

// TestAddonsBackupToDestination: a dump backup with customDestinationId
// goes to the team's S3-compatible backup destination (versitygw on
// loopback, allowed by SLIPWAY_BACKUP_DESTINATION_ALLOW_HOSTS), not to
// the data directory; it verifies, downloads through Slipway's link, is
// listed by the destination, and restores.
func TestAddonsBackupToDestination(t *testing.T) {
	s3 := testenv.S3(t)
	inst := startSlipway(t, "SLIPWAY_BACKUP_DESTINATION_ALLOW_HOSTS=127.0.0.1")
	dest := callJSON(t, "POST", inst.URL+"/v1/backup-destinations", fmt.Sprintf(`{"name":"Offsite","type":"s3","prefix":"slipway/backups",
		"credentials":{"accessKey":%q,"secretKey":%q,"bucketName":%q,"region":%q,"endpoint":%q}}`,
		s3.AccessKey, s3.SecretKey, s3.Bucket, s3.Region, s3.Endpoint)).data(t)["id"].(string)
	api := newAddonsProject(t, inst, "", "Addons Offsite")
	id := api.create("main db", "postgresql", "latest")
	api.wait(id, "running", 90*time.Second)
	creds := api.credentials(id)
	dir := api.addonDir(creds)
	hostClient(t, "postgresql", dir, creds, `CREATE TABLE items(id int PRIMARY KEY, pad text NOT NULL);
INSERT INTO items SELECT g, md5(g::text) FROM generate_series(1, 1234) g;`)

	callJSON(t, "POST", api.addonURL(id)+"/backups", `{"name":"nowhere","backupType":"dump","customDestinationId":"no-such-destination"}`).apiErr(t, 404)
	b := callJSON(t, "POST", api.addonURL(id)+"/backups", fmt.Sprintf(`{"name":"offsite","backupType":"dump","customDestinationId":%q}`, dest)).data(t)["id"].(string)
	got := api.waitBackup(id, b, 3*time.Minute, "settled", backupSettled)
	if got["status"] != "completed" || verification(got) != "verified" || got["customDestinationId"] != dest {
		t.Fatalf("backup to the destination: %v", got)
	}

	// In the bucket, under the destination's prefix; not in the data dir.
	var objects []string
	_ = filepath.WalkDir(filepath.Join(s3.Dir, s3.Bucket), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasPrefix(d.Name(), b+".") {
			objects = append(objects, p)
		}
		return nil
	})
	if len(objects) != 1 || !strings.Contains(objects[0], "/slipway/backups/") {
		t.Fatalf("objects of backup %s in the bucket: %q, want one under the prefix", b, objects)
	}
	stored, err := os.ReadFile(objects[0])
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(stored)
	if cfg := got["config"].(map[string]any); hex.EncodeToString(sum[:]) != cfg["checksum"] {
		t.Errorf("the object's sha256 %x is not the backup's checksum %v", sum, cfg["checksum"])
	}
	_ = filepath.WalkDir(filepath.Join(inst.DataDir, "addons", "backups"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasPrefix(d.Name(), b+".") {
			t.Errorf("backup %s is (also) in the data directory: %s", b, p)
		}
		return nil
	})
	link, _ := callJSON(t, "GET", api.addonURL(id)+"/backups/"+b+"/download-link", "").data(t)["downloadLink"].(string)
	res, err := httpClient.Get(link)
	if err != nil {
		t.Fatal(err)
	}
	var body bytes.Buffer
	_, _ = body.ReadFrom(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || sha256.Sum256(body.Bytes()) != sum {
		t.Errorf("download of the destination's backup: HTTP %d, %d bytes, want the object's %d", res.StatusCode, body.Len(), len(stored))
	}
	held := callJSON(t, "GET", inst.URL+"/v1/backup-destinations/"+dest+"/backups", "").data(t)
	if list, _ := held["backups"].([]any); len(list) != 1 {
		t.Errorf("the destination lists %v, want the backup", held)
	}

	hostClient(t, "postgresql", dir, creds, "DROP TABLE items;")
	r := api.restore(id, b, "").data(t)["restoreId"].(string)
	if rs := api.waitRestore(id, r, 2*time.Minute); rs["status"] != "completed" {
		t.Fatalf("restore from the destination: %v", rs)
	}
	api.wait(id, "running", time.Minute)
	if n := pgCount(t, dir, creds); n != "1234" {
		t.Errorf("rows after the restore: %s, want 1234", n)
	}
	// Deleting the backup removes the object.
	callJSON(t, "DELETE", api.addonURL(id)+"/backups/"+b, "").data(t)
	if _, err := os.Stat(objects[0]); !os.IsNotExist(err) {
		t.Errorf("the object is still in the bucket after the backup was deleted: %v", err)
	}
}
