package e2e

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/slipwayhq/slipway/pkg/testenv"
)

// TestHostileInput sends what probing found to answer 500 on PostgreSQL
// (a NUL or bytes that are not UTF-8 in path ids, query values, cursors,
// log filters and bodies) and the error shapes that drifted, to Slipway on
// each engine: every answer is the same 400 envelope naming the field.
func TestHostileInput(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		probeHostileInput(t, startSlipway(t))
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		probeHostileInput(t, startSlipway(t,
			"SLIPWAY_AUTH_DATABASE_URL="+testenv.Postgres(t),
			"SLIPWAY_PROJECTS_DATABASE_URL="+testenv.Postgres(t),
			"SLIPWAY_JOBS_DATABASE_URL="+testenv.Postgres(t)))
	})
}

func probeHostileInput(t *testing.T, inst *instance) {
	base := inst.URL
	jobs := newJobsProject(t, base, "Edge Probe")
	job := jobs.createManual(commandJob("probe", "true"))
	jobs.createManual(commandJob("probe-two", "true"))
	p := "/v1/projects/" + jobs.project
	j := p + "/jobs/" + job
	patchJob := p + "/jobs/manual/" + job

	// Every case answers 400 VALIDATION_FAILED naming field.
	for _, c := range []struct {
		name, method, path, body, field string
	}{
		{"project id NUL", "GET", "/v1/projects/%00", "", "projectId"},
		{"project id not UTF-8", "GET", "/v1/projects/%ff", "", "projectId"},
		{"project id NUL on PATCH", "PATCH", "/v1/projects/%00", `{"description":"x"}`, "projectId"},
		{"token id NUL", "GET", "/v1/api-tokens/%00", "", "tokenId"},
		{"token id not UTF-8", "DELETE", "/v1/api-tokens/%ff", "", "tokenId"},
		{"job id NUL", "GET", p + "/jobs/%00", "", "jobId"},
		{"job id not UTF-8", "GET", p + "/jobs/%ff", "", "jobId"},
		{"run id NUL", "GET", j + "/runs/%00", "", "runId"},
		{"run id not UTF-8", "GET", j + "/runs/%ff", "", "runId"},
		{"team id not UTF-8", "GET", "/v1/teams/%ff/projects", "", "teamId"},
		{"cursor AA (NUL)", "GET", "/v1/projects?cursor=AA", "", "cursor"},
		{"cursor _w (0xff)", "GET", "/v1/projects?cursor=_w", "", "cursor"},
		{"token cursor AA", "GET", "/v1/api-tokens?cursor=AA", "", "cursor"},
		{"jobs cursor _w", "GET", p + "/jobs?cursor=_w", "", "cursor"},
		{"runs cursor AA", "GET", j + "/runs?cursor=AA", "", "cursor"},
		{"cursor NUL itself", "GET", "/v1/projects?cursor=%00", "", "cursor"},
		{"log runId NUL", "GET", j + "/logs?runId=%00", "", "runId"},
		{"log containerName NUL", "GET", j + "/logs?containerName=%00", "", "containerName"},
		{"log text not UTF-8", "GET", j + "/logs?textIncludes=%ff", "", "textIncludes"},
		{"project name NUL", "POST", "/v1/projects", `{"name":"Nul\u0000Project"}`, "name"},
		{"project description NUL", "POST", "/v1/projects", `{"name":"Nul Description","description":"a\u0000b"}`, "description"},
		{"project description NUL on PATCH", "PATCH", p, `{"description":"\u0000"}`, "description"},
		{"body not UTF-8", "POST", "/v1/projects", "{\"name\":\"Bad \xff Name\"}", "body"},
		{"job name NUL", "POST", p + "/jobs/manual", `{"name":"job\u0000x","deployment":{"docker":{"configType":"customCommand","customCommand":"true"}}}`, "name"},
		{"job command NUL", "PATCH", patchJob, `{"deployment":{"docker":{"configType":"customCommand","customCommand":"tr\u0000ue"}}}`, "deployment.docker.customCommand"},
		{"job environment value NUL", "PATCH", patchJob, `{"runtimeEnvironment":{"pwned_key":"a\u0000"}}`, `runtimeEnvironment["pwned_key"]`},
		{"run environment NUL", "POST", j + "/runs", `{"runtimeEnvironment":{"KEY":"\u0000"}}`, `runtimeEnvironment["KEY"]`},
		{"token name NUL", "POST", "/v1/api-tokens", `{"name":"tok\u0000en"}`, "name"},
		// Error shapes: grpc-gateway's own refusals carry the validation id;
		// a map key is named verbatim.
		{"duplicated query parameter", "GET", "/v1/projects?per_page=1&per_page=2", "", "per_page"},
		{"bad query escape", "GET", "/v1/projects?per_page=%ZZ", "", "query"},
		{"environment key verbatim", "PATCH", patchJob, `{"runtimeEnvironment":{"pwned_key":"` + strings.Repeat("x", 65537) + `"}}`, `runtimeEnvironment["pwned_key"]`},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := callJSON(t, c.method, base+c.path, c.body).apiErr(t, http.StatusBadRequest)
			if e.ID != "VALIDATION_FAILED" {
				t.Errorf("id %q, want VALIDATION_FAILED (%s)", e.ID, e.Message)
			}
			if _, ok := e.Details[c.field]; !ok {
				t.Errorf("details %v do not name %q", e.Details, c.field)
			}
		})
	}

	t.Run("cursors still page, and are bound to their list", func(t *testing.T) {
		callJSON(t, "POST", base+"/v1/projects", `{"name":"Edge Probe Two"}`).data(t)
		seen := map[string]bool{}
		next := base + "/v1/projects?per_page=1"
		var projectsCursor string
		for range 10 {
			r := callJSON(t, "GET", next, "")
			for _, item := range r.data(t)["projects"].([]any) {
				seen[item.(map[string]any)["id"].(string)] = true
			}
			pag, _ := r.Body["pagination"].(map[string]any)
			cursor, _ := pag["cursor"].(string)
			if cursor == "" {
				break
			}
			if strings.Contains(cursor, "edge") {
				t.Fatalf("cursor %q shows an id", cursor)
			}
			projectsCursor = cursor
			next = base + "/v1/projects?per_page=1&cursor=" + url.QueryEscape(cursor)
		}
		if !seen["edge-probe"] || !seen["edge-probe-two"] {
			t.Fatalf("paging saw %v", seen)
		}
		r := callJSON(t, "GET", base+p+"/jobs?per_page=1", "")
		jobsCursor := r.Body["pagination"].(map[string]any)["cursor"].(string)
		if d := callJSON(t, "GET", base+p+"/jobs?per_page=1&cursor="+url.QueryEscape(jobsCursor), "").data(t); len(d["jobs"].([]any)) != 1 {
			t.Fatalf("second page of jobs: %v", d)
		}
		tampered := []byte(jobsCursor)
		tampered[len(tampered)/2] ^= 1
		for name, bad := range map[string]string{
			"tampered":             base + p + "/jobs?cursor=" + url.QueryEscape(string(tampered)),
			"projects' on jobs":    base + p + "/jobs?cursor=" + url.QueryEscape(projectsCursor),
			"jobs' on projects":    base + "/v1/projects?cursor=" + url.QueryEscape(jobsCursor),
			"raw base64 of an id":  base + "/v1/projects?cursor=ZWRnZS1wcm9iZQ",
			"jobs' on another job": base + p + "/jobs/probe-two/runs?cursor=" + url.QueryEscape(jobsCursor),
		} {
			e := callJSON(t, "GET", bad, "").apiErr(t, http.StatusBadRequest)
			if _, ok := e.Details["cursor"]; !ok || e.ID != "VALIDATION_FAILED" {
				t.Errorf("%s: %+v, want VALIDATION_FAILED naming cursor", name, e)
			}
		}
	})

	t.Run("oauth2 routing errors are OAuth2 JSON errors", func(t *testing.T) {
		for _, c := range []struct {
			method, path string
			status       int
			id           string
		}{
			{"GET", "/oauth2/nonexistent", http.StatusNotFound, "not_found"},
			{"GET", "/oauth2/token", http.StatusMethodNotAllowed, "invalid_request"},
		} {
			r := callJSON(t, c.method, base+c.path, "")
			if r.Status != c.status || r.Body["error"] != c.id || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
				t.Errorf("%s %s: %d %s %q, want %d with error %q", c.method, c.path, r.Status, r.Header.Get("Content-Type"), r.Raw, c.status, c.id)
			}
		}
	})

	t.Run("a malformed Content-Type is not logged unstructured", func(t *testing.T) {
		r := callJSON(t, "POST", base+"/v1/projects", `{"name":"Typed Body"}`, "Content-Type", "application/json;;;=")
		r.data(t)
		for _, line := range strings.Split(inst.out.String(), "\n") {
			rest, ok := strings.CutPrefix(line, "stderr: ")
			if ok && strings.Contains(rest, "Content-Type") && !json.Valid([]byte(rest)) {
				t.Errorf("unstructured log line: %s", rest)
			}
		}
	})

	// Nothing above was an internal error.
	for _, line := range inst.out.logsAt("ERROR") {
		t.Errorf("error logged: %s", line)
	}
}
