package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	// The services' descriptors, with their access rules, must be in the
	// global registry for permissions.ForMethod to find them.
	_ "github.com/slipwayhq/slipway/gen/slipway/addons/v1"
	_ "github.com/slipwayhq/slipway/gen/slipway/auth/v1"
	_ "github.com/slipwayhq/slipway/gen/slipway/builds/v1"
	_ "github.com/slipwayhq/slipway/gen/slipway/deployments/v1"
	_ "github.com/slipwayhq/slipway/gen/slipway/jobs/v1"
	_ "github.com/slipwayhq/slipway/gen/slipway/projects/v1"

	"github.com/slipwayhq/slipway/pkg/permissions"
	"github.com/slipwayhq/slipway/pkg/testenv"
	"github.com/slipwayhq/slipway/pkg/testenv/gitserver"
)

// requestAs sends one request with Authorization set to authorization, or
// without any Authorization header when it is "". (call always sends one:
// its headers can replace the admin token but not remove the header.)
func requestAs(t testing.TB, authorization, method, url, body string) response {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := httpClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, url, err)
	}
	r := response{Status: res.StatusCode, Header: res.Header, Raw: raw}
	_ = json.Unmarshal(raw, &r.Body)
	return r
}

// apiServices maps the service names of the OpenAPI operation ids to their
// full gRPC names. A new service must be added here, or
// TestEveryRouteIsGuarded fails on its routes.
var apiServices = map[string]string{
	"ProjectsService":           "slipway.projects.v1.ProjectsService",
	"AuthService":               "slipway.auth.v1.AuthService",
	"JobsService":               "slipway.jobs.v1.JobsService",
	"DeploymentsService":        "slipway.deployments.v1.DeploymentsService",
	"BuildsService":             "slipway.builds.v1.BuildsService",
	"AddonsService":             "slipway.addons.v1.AddonsService",
	"BackupDestinationsService": "slipway.addons.v1.BackupDestinationsService",
	"SecretsService":            "slipway.addons.v1.SecretsService",
	"NotificationsService":      "slipway.projects.v1.NotificationsService",
}

// apiRoute is one path × method of the OpenAPI document.
type apiRoute struct {
	Method, Path, OperationID string
}

// FullMethod is the gRPC method behind the route: the operation id
// without the digits grpc-gateway appends to additional bindings.
func (r apiRoute) FullMethod(t testing.TB) string {
	t.Helper()
	op := strings.TrimRight(r.OperationID, "0123456789")
	svc, method, ok := strings.Cut(op, "_")
	if !ok {
		t.Fatalf("%s %s: operationId %q is not Service_Method", r.Method, r.Path, r.OperationID)
	}
	full, ok := apiServices[svc]
	if !ok {
		t.Fatalf("%s %s: operationId %q names service %q, unknown to this test: add it to apiServices", r.Method, r.Path, r.OperationID, svc)
	}
	return "/" + full + "/" + method
}

// openAPIRoutes reads every route from the running server's document.
func openAPIRoutes(t testing.TB, base string) []apiRoute {
	t.Helper()
	doc := callJSON(t, "GET", base+"/v1/openapi.json", "")
	if doc.Status != http.StatusOK {
		t.Fatalf("GET /v1/openapi.json: HTTP %d: %.300s", doc.Status, doc.Raw)
	}
	paths, ok := doc.Body["paths"].(map[string]any)
	if !ok || len(paths) == 0 {
		t.Fatalf("GET /v1/openapi.json: no paths: %.300s", doc.Raw)
	}
	httpMethods := []string{"get", "put", "post", "delete", "options", "head", "patch"}
	var routes []apiRoute
	for path, item := range paths {
		ops, _ := item.(map[string]any)
		for method, v := range ops {
			if !slices.Contains(httpMethods, method) {
				continue // path-level "parameters" and the like
			}
			op, _ := v.(map[string]any)
			id, _ := op["operationId"].(string)
			if id == "" {
				t.Fatalf("%s %s has no operationId in the OpenAPI document", strings.ToUpper(method), path)
			}
			routes = append(routes, apiRoute{Method: strings.ToUpper(method), Path: path, OperationID: id})
		}
	}
	slices.SortFunc(routes, func(a, b apiRoute) int {
		return strings.Compare(a.Path+" "+a.Method, b.Path+" "+b.Method)
	})
	return routes
}

// routeFixture is what one call of a route needs: values of its path
// parameters other than {teamId}, and its JSON body.
type routeFixture struct {
	params map[string]string
	body   string
	// refused, when set, is the error id a call allowed through the
	// authorizer answers instead of 200: a route that refuses by design.
	refused string
}

// allowed checks the answer of a call the authorizer let through: 200,
// or the fixture's refusal (409 with its id).
func (f routeFixture) allowed(res response) bool {
	if f.refused == "" {
		return res.Status == http.StatusOK
	}
	var e struct {
		Error struct {
			ID string `json:"id"`
		} `json:"error"`
	}
	_ = json.Unmarshal(res.Raw, &e)
	return res.Status == http.StatusConflict && e.Error.ID == f.refused
}

var pathParam = regexp.MustCompile(`\{[^}]+\}`)

// url fills the route's path: {teamId} is always the team "default".
func (f routeFixture) url(t testing.TB, base string, r apiRoute) string {
	t.Helper()
	path := pathParam.ReplaceAllStringFunc(r.Path, func(p string) string {
		name := strings.Trim(p, "{}")
		if name == "teamId" {
			return "default"
		}
		if v, ok := f.params[name]; ok {
			return v
		}
		t.Fatalf("add a case for %s: no value for the path parameter {%s} of %s %s", r.OperationID, name, r.Method, r.Path)
		return ""
	})
	return base + path
}

// TestEveryRouteIsGuarded walks every route of the OpenAPI document the
// server serves: without credentials (or with invalid ones) each is a 401
// with WWW-Authenticate; with a viewer token each is a 403 unless the
// viewer role holds the route's permission; with another team's admin
// token each route addressing a resource of team "default" is a 404; and
// with a project-restricted admin token each team-level route is a 403
// and each route of its project succeeds; with the admin token each
// succeeds. A route the table below has no case
// for fails the test, so a new route cannot go unchecked. The public
// routes outside the document (the Postman collection among them) are
// served to anyone.
func TestEveryRouteIsGuarded(t *testing.T) {
	// Every call below spends quota; keep the limit out of the way.
	// The builds' routes build from a loopback git server.
	repo := gitserver.New(t).Repo(t, "authz")
	repo.Commit(t, "main", "an app", map[string]string{"Procfile": "web: true\n"})
	// Backup destinations are checked against an S3 server on loopback.
	inst := startSlipway(t, "SLIPWAY_RATE_LIMIT_PER_HOUR=1000000", "SLIPWAY_BUILD_ALLOW_HOSTS=127.0.0.1", "SLIPWAY_BUILD_POLL_INTERVAL=0",
		"SLIPWAY_BACKUP_DESTINATION_ALLOW_HOSTS=127.0.0.1", "SLIPWAY_NOTIFICATION_ALLOW_HOSTS=127.0.0.1")
	base := inst.URL
	admin := "Bearer " + adminToken

	seq := 0
	next := func() int { seq++; return seq }

	newProject := func(t testing.TB) string {
		t.Helper()
		d := callJSON(t, "POST", base+"/v1/projects", fmt.Sprintf(`{"name":"Authz Project %d"}`, next())).data(t)
		return d["id"].(string)
	}
	newRole := func(t testing.TB) string {
		t.Helper()
		d := callJSON(t, "POST", base+"/v1/teams/default/roles", fmt.Sprintf(
			`{"name":"Authz Role %d","permissions":{"teamScope":["Account > Admin > Roles > Read"]}}`, next())).data(t)
		return d["id"].(string)
	}
	newToken := func(t testing.TB, auth, role, team string) (id, secret string) {
		t.Helper()
		body := fmt.Sprintf(`{"name":"authz-token-%d","kind":"team","roleId":%q,"teamId":%q}`, next(), role, team)
		d := requestAs(t, auth, "POST", base+"/v1/api-tokens", body).data(t)
		return d["id"].(string), d["token"].(string)
	}

	// newUser creates a user with the admin CLI (the API has no sign-up)
	// and returns its email; newMember also adds it to team "default" with
	// role and returns its id.
	newUser := func(t testing.TB) string {
		t.Helper()
		email := fmt.Sprintf("authz-user-%d@example.com", next())
		runSlipway(t, []string{"admin", "create-user", "--email", email}, "SLIPWAY_DATA_DIR="+inst.DataDir)
		return email
	}
	newMember := func(t testing.TB, role string) string {
		t.Helper()
		d := callJSON(t, "POST", base+"/v1/teams/default/members", fmt.Sprintf(`{"email":%q,"roleId":%q}`, newUser(t), role)).data(t)
		return d["id"].(string)
	}

	// Fixtures: a project of team "default", a viewer team token of that
	// team, and a second team with an admin team token of its own.
	project := newProject(t)
	viewerID, viewerSecret := newToken(t, admin, "viewer", "default")
	viewer := "Bearer " + viewerSecret
	team := callJSON(t, "POST", base+"/v1/teams", `{"name":"Authz Other Team"}`).data(t)
	otherTeam, _ := team["id"].(string)
	if otherTeam == "" || otherTeam == "default" {
		t.Fatalf("POST /v1/teams created team %q", otherTeam)
	}
	t.Run("creator acts in the new team at once", func(t *testing.T) {
		// The principal cached before the team existed has no grant in it;
		// naming the team makes the authorizer resolve it afresh.
		res := requestAs(t, admin, "POST", base+"/v1/api-tokens",
			fmt.Sprintf(`{"name":"authz-token-%d","kind":"team","roleId":"viewer","teamId":%q}`, next(), otherTeam))
		if res.Status != http.StatusOK {
			t.Errorf("POST /v1/api-tokens in team %q just created by the caller: HTTP %d, want 200: %s", otherTeam, res.Status, res.Raw)
		}
		teams := callJSON(t, "GET", base+"/v1/teams", "").data(t)
		listed := slices.ContainsFunc(teams["teams"].([]any), func(v any) bool {
			m, _ := v.(map[string]any)
			return m["id"] == otherTeam
		})
		if !listed {
			t.Errorf("GET /v1/teams right after creating team %q does not list it: %v", otherTeam, teams)
		}
	})
	// A team token with the admin role, restricted to the project: it may
	// do anything within the project and nothing at team level.
	restrictedTok := requestAs(t, admin, "POST", base+"/v1/api-tokens", fmt.Sprintf(
		`{"name":"authz-restricted-%d","kind":"team","roleId":"admin","projects":[%q]}`, next(), project)).data(t)
	restricted := "Bearer " + restrictedTok["token"].(string)
	_, otherSecret := newToken(t, admin, "admin", otherTeam)
	other := "Bearer " + otherSecret
	if d := requestAs(t, other, "GET", base+"/v1/auth", "").data(t); d["teamId"] != otherTeam {
		t.Fatalf("the other team's token acts on team %v, want %s", d["teamId"], otherTeam)
	}

	var viewerPerms []string
	for _, r := range permissions.Builtin() {
		if r.ID == "viewer" {
			viewerPerms = r.Permissions
		}
	}
	if len(viewerPerms) == 0 {
		t.Fatal("no built-in viewer role")
	}

	none := func(testing.TB) routeFixture { return routeFixture{} }
	params := func(kv ...string) routeFixture {
		f := routeFixture{params: map[string]string{}}
		for i := 0; i+1 < len(kv); i += 2 {
			f.params[kv[i]] = kv[i+1]
		}
		return f
	}
	createProject := func(testing.TB) routeFixture {
		return routeFixture{body: fmt.Sprintf(`{"name":"Authz Created %d","description":"by the route walk"}`, next())}
	}
	putProject := func(testing.TB) routeFixture {
		return routeFixture{body: fmt.Sprintf(`{"name":"Authz Put %d","description":"put by the route walk"}`, next())}
	}
	getProject := func(testing.TB) routeFixture { return params("projectId", project) }
	patchProject := func(testing.TB) routeFixture {
		f := params("projectId", project)
		f.body = fmt.Sprintf(`{"description":"patched %d"}`, next())
		return f
	}
	deleteProject := func(t testing.TB) routeFixture { return params("projectId", newProject(t)) }

	// Jobs run as local processes (startSlipway picks the process driver).
	jobBody := func(kind, cmd string) string {
		body := fmt.Sprintf(`{"name":"Authz %s Job %d","deployment":{"docker":{"configType":"customCommand","customCommand":%q}}`, kind, next(), cmd)
		if kind == "Cron" {
			body += `,"schedule":"0 3 * * *"`
		}
		return body + "}"
	}
	newJob := func(t testing.TB, kind, cmd string) string {
		t.Helper()
		d := callJSON(t, "POST", base+"/v1/projects/"+project+"/jobs/"+strings.ToLower(kind), jobBody(kind, cmd)).data(t)
		return d["id"].(string)
	}
	manualJob := newJob(t, "Manual", "echo hello")
	cronJob := newJob(t, "Cron", "echo tick")
	newRun := func(t testing.TB, job string) string {
		t.Helper()
		d := callJSON(t, "POST", base+"/v1/projects/"+project+"/jobs/"+job+"/runs", "{}").data(t)
		return d["id"].(string)
	}
	firstRun := newRun(t, manualJob)
	withBody := func(f routeFixture, body string) routeFixture { f.body = body; return f }
	jobCases := map[string]func(t testing.TB) routeFixture{
		"ListJobs": func(testing.TB) routeFixture { return params("projectId", project) },
		"CreateManualJob": func(testing.TB) routeFixture {
			return withBody(params("projectId", project), jobBody("Manual", "true"))
		},
		"PutManualJob": func(testing.TB) routeFixture {
			return withBody(params("projectId", project), jobBody("Manual", "true"))
		},
		"PatchManualJob": func(t testing.TB) routeFixture {
			return withBody(params("projectId", project, "jobId", newJob(t, "Manual", "true")), `{"description":"patched"}`)
		},
		"CreateCronJob": func(testing.TB) routeFixture { return withBody(params("projectId", project), jobBody("Cron", "true")) },
		"PutCronJob":    func(testing.TB) routeFixture { return withBody(params("projectId", project), jobBody("Cron", "true")) },
		"PatchCronJob": func(t testing.TB) routeFixture {
			return withBody(params("projectId", project, "jobId", newJob(t, "Cron", "true")), `{"schedule":"@hourly"}`)
		},
		"GetJob": func(testing.TB) routeFixture { return params("projectId", project, "jobId", manualJob) },
		"DeleteJob": func(t testing.TB) routeFixture {
			return params("projectId", project, "jobId", newJob(t, "Manual", "true"))
		},
		"SuspendJob":               func(testing.TB) routeFixture { return withBody(params("projectId", project, "jobId", cronJob), `{}`) },
		"ResumeJob":                func(testing.TB) routeFixture { return withBody(params("projectId", project, "jobId", cronJob), `{}`) },
		"GetJobRuntimeEnvironment": func(testing.TB) routeFixture { return params("projectId", project, "jobId", manualJob) },
		"UpdateJobRuntimeEnvironment": func(testing.TB) routeFixture {
			return withBody(params("projectId", project, "jobId", manualJob), `{"runtimeEnvironment":{"GREETING":"hi"}}`)
		},
		"StartJobRun": func(testing.TB) routeFixture { return withBody(params("projectId", project, "jobId", manualJob), `{}`) },
		"ListJobRuns": func(testing.TB) routeFixture { return params("projectId", project, "jobId", manualJob) },
		"GetJobRun": func(testing.TB) routeFixture {
			return params("projectId", project, "jobId", manualJob, "runId", firstRun)
		},
		"AbortJobRun": func(t testing.TB) routeFixture {
			job := newJob(t, "Manual", "sleep 60")
			return params("projectId", project, "jobId", job, "runId", newRun(t, job))
		},
		"GetJobLogs": func(testing.TB) routeFixture { return params("projectId", project, "jobId", manualJob) },
	}

	// Services run as local processes too: a command without ports or
	// health checks is ready once it runs.
	serviceBody := func(kind string) string {
		body := fmt.Sprintf(`{"name":"Authz %s Svc %d","deployment":{"instances":1,"docker":{"configType":"customCommand","customCommand":"sleep 600"}}`, kind, next())
		switch kind {
		case "Combined":
			// CI off: a new combined service would build its branch at
			// once, and this repository is not on loopback.
			body = fmt.Sprintf(`{"name":"Authz %s Svc %d","disabledCI":true,"deployment":{"instances":1},"vcsData":{"projectUrl":"https://github.com/acme/app","projectType":"github","projectBranch":"main"},"buildSettings":{"dockerfile":{"dockerFilePath":"/Dockerfile","dockerWorkDir":"/"}}`, kind, next())
		case "Build":
			body = fmt.Sprintf(`{"name":"Authz %s Svc %d","billing":{},"vcsData":{"projectUrl":"https://github.com/acme/app","projectType":"github"},"buildSettings":{"dockerfile":{"dockerFilePath":"/Dockerfile","dockerWorkDir":"/"}}`, kind, next())
		}
		return body + "}"
	}
	newService := func(t testing.TB, kind string) string {
		t.Helper()
		d := callJSON(t, "POST", base+"/v1/projects/"+project+"/services/"+strings.ToLower(kind), serviceBody(kind)).data(t)
		return d["id"].(string)
	}
	deploymentSvc := newService(t, "Deployment")
	combinedSvc := newService(t, "Combined")
	onService := func(body string) func(testing.TB) routeFixture {
		return func(testing.TB) routeFixture {
			return withBody(params("projectId", project, "serviceId", deploymentSvc), body)
		}
	}
	onBuilding := func(body string) func(testing.TB) routeFixture {
		return func(testing.TB) routeFixture {
			return withBody(params("projectId", project, "serviceId", combinedSvc), body)
		}
	}
	serviceCases := map[string]func(t testing.TB) routeFixture{
		"ListServices": func(testing.TB) routeFixture { return params("projectId", project) },
		"CreateDeploymentService": func(testing.TB) routeFixture {
			return withBody(params("projectId", project), serviceBody("Deployment"))
		},
		"PutDeploymentService": func(testing.TB) routeFixture {
			return withBody(params("projectId", project), serviceBody("Deployment"))
		},
		"PatchDeploymentService": func(t testing.TB) routeFixture {
			return withBody(params("projectId", project, "serviceId", newService(t, "Deployment")), `{"description":"patched"}`)
		},
		"CreateCombinedService": func(testing.TB) routeFixture { return withBody(params("projectId", project), serviceBody("Combined")) },
		"PutCombinedService":    func(testing.TB) routeFixture { return withBody(params("projectId", project), serviceBody("Combined")) },
		"PatchCombinedService": func(t testing.TB) routeFixture {
			return withBody(params("projectId", project, "serviceId", newService(t, "Combined")), `{"description":"patched"}`)
		},
		"GetService": onService(""),
		"DeleteService": func(t testing.TB) routeFixture {
			return params("projectId", project, "serviceId", newService(t, "Deployment"))
		},
		"CreateBuildService": func(testing.TB) routeFixture { return withBody(params("projectId", project), serviceBody("Build")) },
		"PutBuildService":    func(testing.TB) routeFixture { return withBody(params("projectId", project), serviceBody("Build")) },
		"PatchBuildService": func(t testing.TB) routeFixture {
			return withBody(params("projectId", project, "serviceId", newService(t, "Build")), `{"description":"patched"}`)
		},
		"GetServiceBuildArguments":            onBuilding(""),
		"UpdateServiceBuildArguments":         onBuilding(`{"buildArguments":{"NODE_ENV":"production"}}`),
		"GetServiceBuildArgumentDetails":      onBuilding(""),
		"UpdateServiceBuildOptions":           onBuilding(`{"dockerfile":{"dockerFilePath":"/Dockerfile","dockerWorkDir":"/"}}`),
		"UpdateServiceBuildSource":            onBuilding(`{"projectUrl":"https://github.com/acme/app","projectType":"github","projectBranch":"main"}`),
		"GetServiceDeployment":                onService(""),
		"UpdateServiceDeployment":             onService(`{"docker":{"configType":"customCommand","customCommand":"sleep 601"}}`),
		"GetServicePorts":                     onService(""),
		"UpdateServicePorts":                  onService(`{"ports":[{"name":"p01","internalPort":8080,"protocol":"TCP"}]}`),
		"GetServiceHealthChecks":              onService(""),
		"UpdateServiceHealthChecks":           onService(`{"healthChecks":[]}`),
		"GetServiceRuntimeEnvironment":        onService(""),
		"UpdateServiceRuntimeEnvironment":     onService(`{"runtimeEnvironment":{"GREETING":"hi"}}`),
		"GetServiceRuntimeEnvironmentDetails": onService(""),
		"ScaleService":                        onService(`{"instances":1}`),
		"PauseService":                        onService(`{}`),
		"ResumeService":                       onService(`{}`),
		"RestartService":                      onService(`{}`),
		"GetServiceContainers":                onService(""),
		"ListServiceReleases":                 onService(""),
		"RollbackServiceRelease": func(testing.TB) routeFixture {
			return withBody(params("projectId", project, "serviceId", deploymentSvc, "releaseId", "r000001"), `{}`)
		},
		"GetServiceLogs":    onService(""),
		"GetServiceMetrics": onService(""),
	}

	// A build service of the loopback repository (a Procfile app: its
	// builds succeed in a second or so).
	buildSvc := callJSON(t, "POST", base+"/v1/projects/"+project+"/services/build", fmt.Sprintf(
		`{"name":"Authz Builder","billing":{},"vcsData":{"projectUrl":%q,"projectType":"self-hosted","projectBranch":"main"},"buildSettings":{"buildpack":{}}}`,
		repo.URL)).data(t)["id"].(string)
	onBuilder := func(body string) func(testing.TB) routeFixture {
		return func(testing.TB) routeFixture {
			return withBody(params("projectId", project, "serviceId", buildSvc), body)
		}
	}
	// newBuild starts a build and waits for its end.
	newBuild := func(t testing.TB) string {
		t.Helper()
		id := callJSON(t, "POST", base+"/v1/projects/"+project+"/services/"+buildSvc+"/build", `{}`).data(t)["id"].(string)
		for deadline := time.Now().Add(time.Minute); ; {
			b := callJSON(t, "GET", base+"/v1/projects/"+project+"/services/"+buildSvc+"/build/"+id, "").data(t)
			if b["concluded"] == true {
				return id
			}
			if time.Now().After(deadline) {
				t.Fatalf("build %s did not end within a minute: %v", id, b)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	firstBuild := newBuild(t)
	buildCases := map[string]func(t testing.TB) routeFixture{
		"StartServiceBuild": onBuilder(`{}`),
		"ListServiceBuilds": onBuilder(""),
		"GetServiceBuild": func(testing.TB) routeFixture {
			return params("projectId", project, "serviceId", buildSvc, "buildId", firstBuild)
		},
		"GetServiceBuildLogs":       onBuilder(""),
		"ResetServiceBuildCache":    onBuilder(""),
		"GetServiceBranches":        onBuilder(""),
		"GetServicePullRequests":    onBuilder(""),
		"GetServiceBuildWebhook":    onBuilder(""),
		"RotateServiceBuildWebhook": onBuilder(`{}`),
		// A concluded build cannot be aborted: the call that passes the
		// authorizer is refused by the service.
		"AbortServiceBuild": func(t testing.TB) routeFixture {
			f := params("projectId", project, "serviceId", buildSvc, "buildId", newBuild(t))
			f.refused = "BUILD_CONCLUDED"
			return f
		},
	}

	// A job that builds from the same repository: its build settings
	// (jobs service) and its builds (builds service).
	gitJob := callJSON(t, "POST", base+"/v1/projects/"+project+"/jobs/manual", fmt.Sprintf(
		`{"name":"Authz Git Job","deployment":{"vcs":{"projectUrl":%q,"projectType":"self-hosted","projectBranch":"main"}},"buildSettings":{"buildpack":{}}}`,
		repo.URL)).data(t)["id"].(string)
	onGitJob := func(body string) func(testing.TB) routeFixture {
		return func(testing.TB) routeFixture {
			return withBody(params("projectId", project, "jobId", gitJob), body)
		}
	}
	jobCases["GetJobBuildArguments"] = onGitJob("")
	jobCases["UpdateJobBuildArguments"] = onGitJob(`{"buildArguments":{"NODE_ENV":"production"}}`)
	jobCases["GetJobBuildArgumentDetails"] = onGitJob("")
	jobCases["UpdateJobBuildOptions"] = onGitJob(`{"buildpack":{"buildContext":"/"}}`)
	jobCases["UpdateJobBuildSource"] = onGitJob(fmt.Sprintf(`{"projectUrl":%q,"projectBranch":"main"}`, repo.URL))
	newJobBuild := func(t testing.TB) string {
		t.Helper()
		id := callJSON(t, "POST", base+"/v1/projects/"+project+"/jobs/"+gitJob+"/build", `{}`).data(t)["id"].(string)
		for deadline := time.Now().Add(time.Minute); ; {
			b := callJSON(t, "GET", base+"/v1/projects/"+project+"/jobs/"+gitJob+"/build/"+id, "").data(t)
			if b["concluded"] == true {
				return id
			}
			if time.Now().After(deadline) {
				t.Fatalf("job build %s did not end within a minute: %v", id, b)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	firstJobBuild := newJobBuild(t)
	buildCases["StartJobBuild"] = onGitJob(`{}`)
	buildCases["ListJobBuilds"] = onGitJob("")
	buildCases["GetJobBuild"] = func(testing.TB) routeFixture {
		return params("projectId", project, "jobId", gitJob, "buildId", firstJobBuild)
	}
	buildCases["GetJobBuildLogs"] = onGitJob("")
	buildCases["GetJobBranches"] = onGitJob("")
	buildCases["GetJobPullRequests"] = onGitJob("")
	buildCases["GetJobBuildWebhook"] = onGitJob("")
	buildCases["RotateJobBuildWebhook"] = onGitJob(`{}`)
	buildCases["AbortJobBuild"] = func(t testing.TB) routeFixture {
		f := params("projectId", project, "jobId", gitJob, "buildId", newJobBuild(t))
		f.refused = "BUILD_CONCLUDED"
		return f
	}

	// Addons are Redis servers (light and quick to start) on the process
	// driver; what must run waits until it does.
	addonURL := func(id string) string { return base + "/v1/projects/" + project + "/addons/" + id }
	waitAddon := func(t testing.TB, id string) {
		t.Helper()
		for deadline := time.Now().Add(time.Minute); ; {
			a := callJSON(t, "GET", addonURL(id), "").data(t)
			if a["status"] == "running" {
				return
			}
			if a["status"] == "failed" || time.Now().After(deadline) {
				t.Fatalf("addon %s did not run: %v", id, a)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	addonBody := func() string {
		return fmt.Sprintf(`{"name":"Authz Addon %d","type":"redis","version":"latest","billing":{"deploymentPlan":"nf-compute-20"}}`, next())
	}
	newAddon := func(t testing.TB, running bool) string {
		t.Helper()
		id := callJSON(t, "POST", base+"/v1/projects/"+project+"/addons", addonBody()).data(t)["id"].(string)
		if running {
			waitAddon(t, id)
		}
		return id
	}
	newBackup := func(t testing.TB, addon string) string {
		t.Helper()
		id := callJSON(t, "POST", addonURL(addon)+"/backups", `{"backupType":"dump"}`).data(t)["id"].(string)
		for deadline := time.Now().Add(time.Minute); ; {
			b := callJSON(t, "GET", addonURL(addon)+"/backups/"+id, "").data(t)
			v, _ := b["verification"].(map[string]any)
			if b["status"] == "completed" && v["status"] == "verified" {
				waitAddon(t, addon)
				return id
			}
			if b["status"] == "failed" || time.Now().After(deadline) {
				t.Fatalf("backup %s: %v", id, b)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	sharedAddon := newAddon(t, true)
	sharedBackup := newBackup(t, sharedAddon)
	sharedRestore := callJSON(t, "POST", addonURL(sharedAddon)+"/backups/"+sharedBackup+"/restore", "").data(t)["restoreId"].(string)
	for deadline := time.Now().Add(time.Minute); ; {
		list := callJSON(t, "GET", addonURL(sharedAddon)+"/restores", "").data(t)["restores"].([]any)
		if len(list) > 0 && list[0].(map[string]any)["status"] == "completed" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("restore %s did not complete: %v", sharedRestore, list)
		}
		time.Sleep(100 * time.Millisecond)
	}
	waitAddon(t, sharedAddon)
	// An import fetches a dump from a URL: this one serves no gzip, so
	// the import's backup fails in the background; the call succeeds.
	importSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("not gzip")) }))
	t.Cleanup(importSrv.Close)
	onAddon := func(suffix ...string) func(testing.TB) routeFixture {
		return func(testing.TB) routeFixture {
			f := params("projectId", project, "addonId", sharedAddon, "backupId", sharedBackup, "restoreId", sharedRestore)
			if len(suffix) > 0 {
				f.body = suffix[0]
			}
			return f
		}
	}
	onNewAddon := func(running bool, body string) func(testing.TB) routeFixture {
		return func(t testing.TB) routeFixture {
			return withBody(params("projectId", project, "addonId", newAddon(t, running)), body)
		}
	}
	addonCases := map[string]func(t testing.TB) routeFixture{
		"ListAddonTypes": none,
		"ListAddons":     func(testing.TB) routeFixture { return params("projectId", project) },
		"CreateAddon":    func(testing.TB) routeFixture { return withBody(params("projectId", project), addonBody()) },
		"PutAddon":       func(testing.TB) routeFixture { return withBody(params("projectId", project), addonBody()) },
		"GetAddon":       onAddon(),
		"PatchAddon":     onAddon(`{"description":"patched by the route walk"}`),
		"DeleteAddon":    onNewAddon(false, ""),
		"PauseAddon":     onNewAddon(false, ""),
		"ResumeAddon": func(t testing.TB) routeFixture {
			id := newAddon(t, false)
			callJSON(t, "POST", addonURL(id)+"/pause", "").data(t)
			return params("projectId", project, "addonId", id)
		},
		"RestartAddon":               onNewAddon(false, ""),
		"ResetAddon":                 onNewAddon(false, ""),
		"UpdateAddonSecurity":        onAddon(`{"ipPolicies":[]}`),
		"GetAddonCredentials":        onAddon(),
		"GetAddonContainers":         onAddon(),
		"GetAddonVersion":            onAddon(),
		"UpdateAddonVersion":         onAddon(`{"version":"latest"}`),
		"UpdateAddonNetworkSettings": onAddon(`{"externalAccessEnabled":false}`),
		"ScaleAddon":                 onAddon(`{"storage":1024,"replicas":1}`),
		"GetAddonLogs":               onAddon(),
		"ListBackups":                onAddon(),
		"CreateBackup":               onNewAddon(true, `{"backupType":"dump"}`),
		"GetBackup":                  onAddon(),
		"DeleteBackup": func(t testing.TB) routeFixture {
			id := newAddon(t, true)
			return params("projectId", project, "addonId", id, "backupId", newBackup(t, id))
		},
		"AbortBackup": func(t testing.TB) routeFixture {
			f := onAddon()(t)
			f.refused = "BACKUP_CONCLUDED" // it completed: nothing to abort
			return f
		},
		"RetainBackup":          onAddon(),
		"GetBackupDownloadLink": onAddon(),
		"ImportBackup":          onAddon(fmt.Sprintf(`{"importUrl":%q}`, importSrv.URL+"/dump.gz")),
		"RestoreBackup": func(t testing.TB) routeFixture {
			id := newAddon(t, true)
			return params("projectId", project, "addonId", id, "backupId", newBackup(t, id))
		},
		"AbortRestore": func(t testing.TB) routeFixture {
			f := onAddon(fmt.Sprintf(`{"restoreId":%q}`, sharedRestore))(t)
			f.refused = "BACKUP_CONCLUDED" // it completed: nothing to abort
			return f
		},
		"ListBackupRestores":  onAddon(),
		"ListAddonRestores":   onAddon(),
		"ListBackupSchedules": onAddon(),
		"CreateBackupSchedule": onNewAddon(false,
			`{"scheduling":{"interval":"daily","minute":[0],"hour":[3]},"backupType":"dump","retentionTime":7}`),
		"DeleteBackupSchedule": func(t testing.TB) routeFixture {
			id := newAddon(t, false)
			sched := callJSON(t, "POST", addonURL(id)+"/backup-schedules",
				`{"scheduling":{"interval":"hourly","minute":[15]},"backupType":"dump","retentionTime":1}`).data(t)["id"].(string)
			return params("projectId", project, "addonId", id, "scheduleId", sched)
		},
		"GetBackupLogs":  onAddon(),
		"GetRestoreLogs": onAddon(),
	}

	// cases gives each operation what a call needs; prepare is called again
	// for every call that is to succeed, so a delete gets a fresh resource
	// and a create a fresh name.
	cases := map[string]func(t testing.TB) routeFixture{
		"AuthService_GetAuth":       none,
		"AuthService_GetAuth2":      none, // GET /v1/login, the Northflank CLI's token check
		"AuthService_ListApiTokens": none,
		"AuthService_CreateApiToken": func(testing.TB) routeFixture {
			return routeFixture{body: fmt.Sprintf(`{"name":"authz-created-%d","kind":"team","roleId":"viewer"}`, next())}
		},
		"AuthService_GetApiToken": func(testing.TB) routeFixture { return params("tokenId", viewerID) },
		"AuthService_RevokeApiToken": func(t testing.TB) routeFixture {
			id, _ := newToken(t, admin, "viewer", "default")
			return params("tokenId", id)
		},
		"AuthService_ListOAuthClients": none,
		"AuthService_CreateOAuthClient": func(testing.TB) routeFixture {
			return routeFixture{body: fmt.Sprintf(`{"name":"authz-client-%d","grantTypes":["client_credentials"],"scopes":["project_read"]}`, next())}
		},
		"AuthService_DeleteOAuthClient": func(t testing.TB) routeFixture {
			c := callJSON(t, "POST", base+"/v1/oauth-clients",
				fmt.Sprintf(`{"name":"authz-client-%d","grantTypes":["client_credentials"],"scopes":["project_read"]}`, next())).data(t)
			id, _ := c["id"].(string)
			return params("clientId", id)
		},
		"AuthService_ListTeams": none,
		"AuthService_CreateTeam": func(testing.TB) routeFixture {
			return routeFixture{body: fmt.Sprintf(`{"name":"Authz Team %d"}`, next())}
		},
		"AuthService_GetTeam":         none,
		"AuthService_ListTeamMembers": none,
		"AuthService_ListTeamRoles":   none,
		"AuthService_CreateTeamRole": func(testing.TB) routeFixture {
			return routeFixture{body: fmt.Sprintf(
				`{"name":"Authz New Role %d","permissions":{"teamScope":["Account > Admin > Members > Read"]}}`, next())}
		},
		"AuthService_GetTeamRole": func(testing.TB) routeFixture { return params("roleId", "viewer") },
		"AuthService_PatchTeam": func(testing.TB) routeFixture {
			return routeFixture{body: fmt.Sprintf(`{"description":"patched by the route walk %d"}`, next())}
		},
		"AuthService_AddTeamMember": func(t testing.TB) routeFixture {
			return routeFixture{body: fmt.Sprintf(`{"email":%q,"roleId":"viewer"}`, newUser(t))}
		},
		"AuthService_RemoveTeamMember": func(t testing.TB) routeFixture { return params("memberId", newMember(t, "viewer")) },
		"AuthService_PutTeamRole": func(testing.TB) routeFixture {
			return routeFixture{body: fmt.Sprintf(
				`{"name":"Authz Put Role %d","permissions":{"teamScope":["Account > Admin > Roles > Read"]}}`, next())}
		},
		"AuthService_PatchTeamRole": func(t testing.TB) routeFixture {
			f := params("roleId", newRole(t))
			f.body = `{"description":"patched by the route walk"}`
			return f
		},
		"AuthService_ListTeamRoleMembers": func(testing.TB) routeFixture { return params("roleId", "viewer") },
		"AuthService_AddTeamRoleMember": func(t testing.TB) routeFixture {
			f := params("roleId", "viewer")
			f.body = fmt.Sprintf(`{"userId":%q}`, newMember(t, "developer"))
			return f
		},
		"AuthService_RemoveTeamRoleMember": func(t testing.TB) routeFixture {
			role := newRole(t)
			return params("roleId", role, "memberId", newMember(t, role))
		},
		"AuthService_DeleteTeamRole":     func(t testing.TB) routeFixture { return params("roleId", newRole(t)) },
		"ProjectsService_ListProjects":   none,
		"ProjectsService_ListProjects2":  none,
		"ProjectsService_CreateProject":  createProject,
		"ProjectsService_CreateProject2": createProject,
		"ProjectsService_PutProject":     putProject,
		"ProjectsService_PutProject2":    putProject,
		"ProjectsService_GetProject":     getProject,
		"ProjectsService_GetProject2":    getProject,
		"ProjectsService_PatchProject":   patchProject,
		"ProjectsService_PatchProject2":  patchProject,
		"ProjectsService_DeleteProject":  deleteProject,
		"ProjectsService_DeleteProject2": deleteProject,
		"ProjectsService_ListRegions":    none,
		"ProjectsService_ListPlans":      none,
	}

	for name, prepare := range jobCases {
		cases["JobsService_"+name] = prepare
		cases["JobsService_"+name+"2"] = prepare
	}
	for name, prepare := range buildCases {
		cases["BuildsService_"+name] = prepare
		cases["BuildsService_"+name+"2"] = prepare
	}
	for name, prepare := range addonCases {
		cases["AddonsService_"+name] = prepare
		cases["AddonsService_"+name+"2"] = prepare
	}
	for name, prepare := range serviceCases {
		cases["DeploymentsService_"+name] = prepare
		cases["DeploymentsService_"+name+"2"] = prepare
	}

	// Backup destinations: an add checks the storage, here a real S3
	// server (versitygw) on loopback that the binary reaches.
	s3 := testenv.S3(t)
	destinationBody := func() string {
		return fmt.Sprintf(`{"name":"Authz Dest %d","type":"s3","prefix":"authz","credentials":{"accessKey":%q,"secretKey":%q,"bucketName":%q,"region":%q,"endpoint":%q}}`,
			next(), s3.AccessKey, s3.SecretKey, s3.Bucket, s3.Region, s3.Endpoint)
	}
	newDestination := func(t testing.TB) string {
		t.Helper()
		d := callJSON(t, "POST", base+"/v1/backup-destinations", destinationBody()).data(t)
		return d["id"].(string)
	}
	destination := newDestination(t)
	destinationCases := map[string]func(t testing.TB) routeFixture{
		"ListBackupDestinations": none,
		"AddBackupDestination":   func(testing.TB) routeFixture { return routeFixture{body: destinationBody()} },
		"GetBackupDestination":   func(testing.TB) routeFixture { return params("backupDestinationId", destination) },
		"PatchBackupDestination": func(testing.TB) routeFixture {
			return withBody(params("backupDestinationId", destination), fmt.Sprintf(`{"description":"patched %d"}`, next()))
		},
		"DeleteBackupDestination":      func(t testing.TB) routeFixture { return params("backupDestinationId", newDestination(t)) },
		"ListBackupDestinationBackups": func(testing.TB) routeFixture { return params("backupDestinationId", destination) },
	}
	for name, prepare := range destinationCases {
		cases["BackupDestinationsService_"+name] = prepare
		cases["BackupDestinationsService_"+name+"2"] = prepare
	}

	// Secret groups of the project, linked to the shared (running) addon;
	// global secrets of team "default".
	secretBody := func(extra string) string {
		return fmt.Sprintf(`{"name":"Authz Secret %d","secretType":"environment","priority":10,"secrets":{"variables":{"K":"v"}}%s}`, next(), extra)
	}
	newSecret := func(t testing.TB, extra string) string {
		t.Helper()
		return callJSON(t, "POST", base+"/v1/projects/"+project+"/secrets", secretBody(extra)).data(t)["id"].(string)
	}
	linkedTo := fmt.Sprintf(`,"addonDependencies":[{"addonId":%q,"keys":[{"keyName":"HOST","aliases":["AUTHZ_HOST"]}]}]`, sharedAddon)
	secretGroup := newSecret(t, linkedTo)
	onSecret := func(body string) func(testing.TB) routeFixture {
		return func(testing.TB) routeFixture {
			return withBody(params("projectId", project, "secretId", secretGroup, "addonId", sharedAddon), body)
		}
	}
	globalBody := func() string {
		return fmt.Sprintf(`{"name":"Authz Global %d","type":"secret","secrets":{"values":{"K":"v"}}}`, next())
	}
	newGlobal := func(t testing.TB) string {
		t.Helper()
		return callJSON(t, "POST", base+"/v1/secrets", globalBody()).data(t)["id"].(string)
	}
	globalSecret := newGlobal(t)
	secretCases := map[string]func(t testing.TB) routeFixture{
		"ListSecrets":      func(testing.TB) routeFixture { return params("projectId", project) },
		"CreateSecret":     func(testing.TB) routeFixture { return withBody(params("projectId", project), secretBody("")) },
		"PutSecret":        func(testing.TB) routeFixture { return withBody(params("projectId", project), secretBody("")) },
		"GetSecret":        onSecret(""),
		"UpdateSecret":     onSecret(`{"description":"updated by the route walk"}`),
		"PatchSecret":      onSecret(`{"priority":20}`),
		"DeleteSecret":     func(t testing.TB) routeFixture { return params("projectId", project, "secretId", newSecret(t, "")) },
		"GetSecretDetails": onSecret(""),
		"GetSecretLink":    onSecret(""),
		"UpdateSecretLink": func(t testing.TB) routeFixture {
			return withBody(params("projectId", project, "secretId", newSecret(t, ""), "addonId", sharedAddon), `{"keys":[{"keyName":"HOST"}]}`)
		},
		"DeleteSecretLink": func(t testing.TB) routeFixture {
			return params("projectId", project, "secretId", newSecret(t, linkedTo), "addonId", sharedAddon)
		},
		"ListGlobalSecrets":  none,
		"CreateGlobalSecret": func(testing.TB) routeFixture { return routeFixture{body: globalBody()} },
		"PutGlobalSecret":    func(testing.TB) routeFixture { return routeFixture{body: globalBody()} },
		"GetGlobalSecret":    func(testing.TB) routeFixture { return params("secretId", globalSecret) },
		"PatchGlobalSecret": func(testing.TB) routeFixture {
			return withBody(params("secretId", globalSecret), fmt.Sprintf(`{"description":"patched %d"}`, next()))
		},
		"DeleteGlobalSecret": func(t testing.TB) routeFixture { return params("secretId", newGlobal(t)) },
	}
	for name, prepare := range secretCases {
		cases["SecretsService_"+name] = prepare
		cases["SecretsService_"+name+"2"] = prepare
	}

	// The routes outside the OpenAPI document that are public by design:
	// the API's description, as OpenAPI and as a Postman collection, and
	// the operational endpoints. Any credentials, none or bad ones, get
	// the same 200.
	t.Run("public routes", func(t *testing.T) {
		for _, path := range []string{"/v1/openapi.json", "/v1/postman-collection.json", "/version", "/health/live"} {
			for _, auth := range []string{"", "Bearer slw_pat_bogus", admin} {
				if res := requestAs(t, auth, "GET", base+path, ""); res.Status != http.StatusOK {
					t.Errorf("GET %s with Authorization %q: HTTP %d, want 200: %.200s", path, auth, res.Status, res.Raw)
				}
			}
		}
	})

	// Notification integrations and webhooks deliver to a receiver on
	// loopback (SLIPWAY_NOTIFICATION_ALLOW_HOSTS). A delivery that
	// succeeded is refused a retry by design (409 DELIVERY_NOT_FAILED),
	// which shows the call got past the authorizer.
	receiver := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	t.Cleanup(receiver.Close)
	integrationBody := func() string {
		return fmt.Sprintf(`{"name":"Authz Notify %d","type":"RAW_WEBHOOK","webhook":%q,"events":{"trigger:job-run:start":true}}`, next(), receiver.URL)
	}
	newIntegration := func(t testing.TB) string {
		t.Helper()
		return callJSON(t, "POST", base+"/v1/integrations/notifications", integrationBody()).data(t)["id"].(string)
	}
	webhookBody := fmt.Sprintf(`{"url":%q,"events":["project.created"]}`, receiver.URL)
	newWebhook := func(t testing.TB) string {
		t.Helper()
		return callJSON(t, "POST", base+"/v1/webhooks", webhookBody).data(t)["id"].(string)
	}
	integration, appHook := newIntegration(t), newWebhook(t)
	newRun(t, manualJob)
	newProject(t)
	firstDelivery := func(path string) string {
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			if list, _ := callJSON(t, "GET", base+path, "").data(t)["deliveries"].([]any); len(list) > 0 {
				if d := list[0].(map[string]any); d["status"] == "succeeded" {
					return d["id"].(string)
				}
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Fatalf("no delivery succeeded at %s", path)
		return ""
	}
	integrationDelivery := firstDelivery("/v1/integrations/notifications/" + integration + "/deliveries")
	webhookDelivery := firstDelivery("/v1/webhooks/" + appHook + "/deliveries")
	notificationCases := map[string]func(t testing.TB) routeFixture{
		"ListNotificationIntegrations":  none,
		"CreateNotificationIntegration": func(testing.TB) routeFixture { return routeFixture{body: integrationBody()} },
		"GetNotificationIntegration":    func(testing.TB) routeFixture { return params("notificationId", integration) },
		"UpdateNotificationIntegration": func(testing.TB) routeFixture {
			return withBody(params("notificationId", integration), fmt.Sprintf(`{"name":"Authz Notify Renamed %d"}`, next()))
		},
		"DeleteNotificationIntegration": func(t testing.TB) routeFixture { return params("notificationId", newIntegration(t)) },
		"ListNotificationDeliveries":    func(testing.TB) routeFixture { return params("notificationId", integration) },
		"RetryNotificationDelivery": func(testing.TB) routeFixture {
			f := withBody(params("notificationId", integration, "deliveryId", integrationDelivery), "{}")
			f.refused = "DELIVERY_NOT_FAILED"
			return f
		},
		"ListWebhooks":          none,
		"CreateWebhook":         func(testing.TB) routeFixture { return routeFixture{body: webhookBody} },
		"GetWebhook":            func(testing.TB) routeFixture { return params("webhookId", appHook) },
		"DeleteWebhook":         func(t testing.TB) routeFixture { return params("webhookId", newWebhook(t)) },
		"ListWebhookDeliveries": func(testing.TB) routeFixture { return params("webhookId", appHook) },
		"RetryWebhookDelivery": func(testing.TB) routeFixture {
			f := withBody(params("webhookId", appHook, "deliveryId", webhookDelivery), "{}")
			f.refused = "DELIVERY_NOT_FAILED"
			return f
		},
	}
	for name, prepare := range notificationCases {
		cases["NotificationsService_"+name] = prepare
		cases["NotificationsService_"+name+"2"] = prepare
	}

	routes := openAPIRoutes(t, base)
	walked, used := 0, map[string]bool{}
	for _, r := range routes {
		used[r.OperationID] = true
		t.Run(r.Method+" "+r.Path, func(t *testing.T) {
			prepare, ok := cases[r.OperationID]
			if !ok {
				t.Fatalf("add a case for %s (%s %s) to TestEveryRouteIsGuarded", r.OperationID, r.Method, r.Path)
			}
			method := r.FullMethod(t)
			access, ok := permissions.ForMethod(method)
			if !ok {
				t.Fatalf("%s declares no access rule", method)
			}
			if !access.GetAuthenticated() || access.GetInternal() {
				t.Fatalf("%s is served over HTTP but its access rule is %v: want authenticated and not internal", method, access)
			}
			// One fixture serves the refused calls: the final call with the
			// admin token then also shows that none of them had an effect
			// (the resource is still there, the name still free).
			fx := prepare(t)
			url := fx.url(t, base, r)

			// (a) No credentials, or invalid ones: 401 with WWW-Authenticate.
			for _, auth := range []string{"", "Bearer not-a-valid-token-0123456789abcdefghij", "Bearer slw_pat_bogus"} {
				res := requestAs(t, auth, r.Method, url, fx.body)
				res.apiErr(t, http.StatusUnauthorized)
				if res.Header.Get("WWW-Authenticate") == "" {
					t.Errorf("Authorization %q: 401 without WWW-Authenticate", auth)
				}
			}

			// (c) Another team's admin token: routes that address a resource
			// of team "default" (a path parameter: its project, role, token,
			// or the team itself) are 404, never 403, so that other teams'
			// resources cannot even be told apart from missing ones.
			// Collection routes without ids act on the caller's own team (they
			// list or create there), so there is nothing of team "default" to
			// hide; they are left out.
			if strings.Contains(r.Path, "{") {
				if e := requestAs(t, other, r.Method, url, fx.body).apiErr(t, http.StatusNotFound); e.ID == "ROUTE_NOT_FOUND" {
					t.Errorf("other team's token: the 404 is the router's, not the service's: %v", e)
				}
			}

			// (e) The project-restricted admin token: every team-level route
			// (a permission outside "Project > ...") is a 403 PROJECT_RESTRICTED
			// with no effect; a route of its own project, listing projects
			// and the routes that need no permission succeed. (Project routes
			// that name another project, or create one, are refused by the
			// services: not asserted here.)
			perm := access.GetPermission()
			switch {
			case perm != "" && !permissions.IsProjectScope(perm):
				if e := requestAs(t, restricted, r.Method, url, fx.body).apiErr(t, http.StatusForbidden); e.ID != "PROJECT_RESTRICTED" {
					t.Errorf("project-restricted token on a team-level route: id %q, want PROJECT_RESTRICTED: %v", e.ID, e)
				}
			case perm == "" || fx.params["projectId"] == project || r.OperationID == "ProjectsService_ListProjects" || r.OperationID == "ProjectsService_ListProjects2":
				if res := requestAs(t, restricted, r.Method, url, fx.body); !fx.allowed(res) {
					t.Errorf("project-restricted admin token on its own project's route: HTTP %d, want 200: %s", res.Status, res.Raw)
				} else {
					fx = prepare(t)
					url = fx.url(t, base, r)
				}
			}

			// (b) The viewer role: 403 unless it holds the permission.
			if perm == "" || slices.Contains(viewerPerms, perm) {
				if res := requestAs(t, viewer, r.Method, url, fx.body); !fx.allowed(res) {
					t.Errorf("viewer token (holds %q): HTTP %d, want 200: %s", perm, res.Status, res.Raw)
				} else {
					fx = prepare(t)
					url = fx.url(t, base, r)
				}
			} else {
				e := requestAs(t, viewer, r.Method, url, fx.body).apiErr(t, http.StatusForbidden)
				if !strings.Contains(e.Message, perm) {
					t.Logf("403 message %q does not name the permission %q", e.Message, perm)
				}
			}

			// (d) The admin token: success. The data is an object, except
			// for the routes Northflank answers with an array (log lines).
			if res := requestAs(t, admin, r.Method, url, fx.body); !fx.allowed(res) {
				t.Errorf("admin token: HTTP %d, want 200 (or 409 %s): %s", res.Status, fx.refused, res.Raw)
			} else if _, isList := res.Body["data"].([]any); !isList && fx.refused == "" {
				res.data(t)
			}
			walked++
		})
	}
	if walked < len(routes) {
		t.Errorf("walked %d routes to the end, the OpenAPI document lists %d", walked, len(routes))
	}
	for id := range cases {
		if !used[id] {
			t.Errorf("the OpenAPI document has no route for %s, which the table has a case for: was a route lost?", id)
		}
	}
	t.Logf("walked %d routes", walked)
}
