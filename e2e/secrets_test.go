package e2e

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestSecretGroupLinksAnAddonIntoAJob: a Redis addon linked into a secret
// group reaches a job through the group alone. The run gets the addon's
// values under NF_<ADDON>_<KEY> and the aliases, with its socket directory
// mounted where those values say, and talks to the server; a viewer sees
// the group's name, not its values.
func TestSecretGroupLinksAnAddonIntoAJob(t *testing.T) {
	inst := startSlipway(t)
	base := inst.URL
	api := newJobsProject(t, base, "Secrets E2E")
	project := api.project

	callJSON(t, "POST", base+"/v1/projects/"+project+"/addons",
		`{"name":"cache","type":"redis","version":"latest","billing":{"deploymentPlan":"nf-compute-20"}}`).data(t)
	for deadline := time.Now().Add(time.Minute); ; {
		a := callJSON(t, "GET", base+"/v1/projects/"+project+"/addons/cache", "").data(t)
		if a["status"] == "running" {
			break
		}
		if a["status"] == "failed" || time.Now().After(deadline) {
			t.Fatalf("the addon did not run: %v", a)
		}
		time.Sleep(100 * time.Millisecond)
	}

	group := callJSON(t, "POST", base+"/v1/projects/"+project+"/secrets", `{
		"name": "Cache link", "secretType": "environment", "priority": 5,
		"addonDependencies": [{"addonId": "cache", "keys": [{"keyName": "SOCKET", "aliases": ["REDIS_SOCKET"]}, {"keyName": "PASSWORD"}]}],
		"secrets": {"variables": {"GREETING": "from a group"}}}`).data(t)
	if group["id"] != "cache-link" {
		t.Fatalf("created %v", group)
	}
	link := callJSON(t, "GET", base+"/v1/projects/"+project+"/secrets/cache-link/addons/cache", "").data(t)
	if link["linked"] != true || link["addonType"] != "redis" || !slices.Contains(link["availableKeys"].([]any), any("SOCKET")) {
		t.Fatalf("link %v", link)
	}

	job := api.createManual(commandJob("uses-cache",
		`redis-cli -s "$REDIS_SOCKET" -a "$NF_CACHE_PASSWORD" --no-auth-warning SET greeting "$GREETING" && `+
			`redis-cli -s "$NF_CACHE_SOCKET" -a "$NF_CACHE_PASSWORD" --no-auth-warning GET greeting`))
	run, _ := api.start(job)
	r := api.waitRun(job, run, time.Minute, "concluded", concluded)
	lines := api.logs(job, run)
	if r["status"] != "SUCCESS" || !slices.Contains(lines, "from a group") {
		t.Fatalf("run %v, logs %q", r, lines)
	}

	// Bad input through the API: each a clear 4xx, nothing created.
	for _, c := range []struct {
		body   string
		status int
		says   string
	}{
		{`{"name":"bad","secretType":"environment","secrets":{"files":{"/etc/passwd":{"data":"eA=="}}}}`, 400, "system path /etc"},
		{`{"name":"bad","secretType":"environment","secrets":{"files":{"relative/x":{"data":"eA=="}}}}`, 400, "files"},
		{`{"name":"bad","secretType":"environment","priority":101}`, 400, "priority"},
		{`{"name":"bad","secretType":"environment","secrets":{"variables":{"BIG":"` + strings.Repeat("v", 70000) + `"}}}`, 400, "variables"},
		{`{"name":"bad","secretType":"environment","secrets":{"variables":{"BIG":"` + strings.Repeat("v", 1<<20) + `"}}}`, 413, ""},
		{`{"name":"bad","secretType":"environment","addonDependencies":[{"addonId":"nope","keys":[]}]}`, 400, "no addon nope"},
		{`{"name":"bad","secretType":"environment","shoeSize":42}`, 400, ""},
	} {
		res := callJSON(t, "POST", base+"/v1/projects/"+project+"/secrets", c.body)
		if res.Status != c.status || !strings.Contains(string(res.Raw), c.says) {
			t.Errorf("POST %.80s...: HTTP %d %.300s, want %d mentioning %q", c.body, res.Status, res.Raw, c.status, c.says)
		}
	}
	if res := callJSON(t, "GET", base+"/v1/projects/"+project+"/secrets/bad", ""); res.Status != http.StatusNotFound {
		t.Errorf("a refused group exists: HTTP %d %s", res.Status, res.Raw)
	}

	// A viewer lists the group but cannot read its values.
	tok := callJSON(t, "POST", base+"/v1/api-tokens", `{"name":"secrets-viewer","kind":"team","roleId":"viewer"}`).data(t)
	viewer := "Bearer " + tok["token"].(string)
	list := requestAs(t, viewer, "GET", base+"/v1/projects/"+project+"/secrets", "")
	if list.Status != http.StatusOK || !strings.Contains(string(list.Raw), `"cache-link"`) || strings.Contains(string(list.Raw), "from a group") {
		t.Fatalf("viewer's list: HTTP %d %s", list.Status, list.Raw)
	}
	if res := requestAs(t, viewer, "GET", base+"/v1/projects/"+project+"/secrets/cache-link", ""); res.Status != http.StatusForbidden {
		t.Fatalf("viewer's get: HTTP %d %s", res.Status, res.Raw)
	}
}
