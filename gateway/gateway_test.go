package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/slipwayhq/slipway/gateway"
	projectsv1 "github.com/slipwayhq/slipway/gen/slipway/projects/v1"
	"github.com/slipwayhq/slipway/pkg/authz"
	"github.com/slipwayhq/slipway/pkg/authz/authztest"
	"github.com/slipwayhq/slipway/pkg/catalog"
	"github.com/slipwayhq/slipway/pkg/component"
	"github.com/slipwayhq/slipway/pkg/events"
	"github.com/slipwayhq/slipway/pkg/health"
	"github.com/slipwayhq/slipway/pkg/quota"
	"github.com/slipwayhq/slipway/pkg/rpcserver"
	"github.com/slipwayhq/slipway/pkg/rpcserver/rpctest"
	"github.com/slipwayhq/slipway/pkg/sqldb"
	"github.com/slipwayhq/slipway/pkg/sqldb/sqltest"
	"github.com/slipwayhq/slipway/services/projects"
	"github.com/slipwayhq/slipway/services/projects/migrations"
)

var quiet = slog.New(slog.DiscardHandler)

// tokens are the credentials of these tests; the auth service's own
// resolution is tested in services/auth and end to end in e2e.
var tokens = authztest.Static{
	"Bearer test-token": authztest.TeamToken("acme", "admin"),
	"Bearer viewer":     authztest.TeamToken("acme", "viewer"),
	// A second admin credential of the same team.
	"Bearer other-admin": authztest.TeamToken("acme", "admin"),
}

// newGateway serves the gateway in front of a real projects service (gRPC
// on loopback, SQLite) and returns its base URL.
func newGateway(t testing.TB) string {
	return newGatewayWith(t, quota.NewMemory(time.Hour), quota.Plans{Default: 1_000_000})
}

func newGatewayWith(t testing.TB, limiter quota.Limiter, plans quota.Plans) string {
	t.Helper()
	ctx := context.Background()
	conn := projectsBackend(t)
	reg := prometheus.NewRegistry()
	gw, err := gateway.New(ctx, gateway.Options{Logger: quiet, Registerer: reg, Gatherer: reg, Version: "test", Backends: []component.Backend{{Name: "projects", API: *projects.Component.API, Conn: conn}},
		Auth: authz.New(tokens, "internal"), Quota: limiter, Plans: plans})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(gw)
	t.Cleanup(ts.Close)
	return ts.URL
}

// projectsBackend serves a real projects service (gRPC on loopback,
// SQLite) and returns a connection to it.
func projectsBackend(t testing.TB) *grpc.ClientConn {
	t.Helper()
	db := sqltest.Open(t, sqldb.SQLite, migrations.Set, events.Migrations)
	cat, err := catalog.Load("")
	if err != nil {
		t.Fatal(err)
	}
	return rpctest.Serve(t, rpcserver.Options{Logger: quiet, Authorizer: authz.New(tokens, "internal")}, func(s *grpc.Server) {
		projectsv1.RegisterProjectsServiceServer(s, projects.NewServer(projects.NewSQLStore(db, nil), cat))
		hs := health.NewServer()
		hs.Add(projectsv1.ProjectsService_ServiceDesc.ServiceName, "db", db.PingContext)
		healthpb.RegisterHealthServer(s, hs)
	})
}

type response struct {
	status int
	header http.Header
	body   map[string]any
	raw    []byte
}

func do(t testing.TB, method, url, body string, header ...string) response {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer test-token")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	out := response{status: resp.StatusCode, header: resp.Header, raw: raw}
	if err := json.Unmarshal(raw, &out.body); err != nil {
		t.Fatalf("%s %s: body is not a JSON object: %q", method, url, raw)
	}
	return out
}

// errorOf checks the Northflank error envelope and returns it.
func errorOf(t testing.TB, r response, status int) map[string]any {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.raw)
	}
	e, ok := r.body["error"].(map[string]any)
	if !ok {
		t.Fatalf("no error envelope: %s", r.raw)
	}
	if int(e["status"].(float64)) != status || e["message"] == "" || e["id"] == "" {
		t.Fatalf("malformed error envelope: %s", r.raw)
	}
	if _, ok := r.body["data"]; ok {
		t.Fatalf("error response has data: %s", r.raw)
	}
	return e
}

func details(t testing.TB, e map[string]any) map[string]any {
	t.Helper()
	d, ok := e["details"].(map[string]any)
	if !ok {
		t.Fatalf("error has no details: %v", e)
	}
	return d
}

func TestEnvelopeAndCRUD(t *testing.T) {
	base := newGateway(t)
	r := do(t, "POST", base+"/v1/projects", `{"name":"Wire Test","description":"d","color":"#112233"}`)
	if r.status != 200 {
		t.Fatalf("create: %d %s", r.status, r.raw)
	}
	data := r.body["data"].(map[string]any)
	if data["id"] != "wire-test" || data["createdAt"] == nil || data["services"] == nil {
		t.Fatalf("create data = %v", data)
	}
	if r.header.Get("Content-Type") != "application/json" {
		t.Fatalf("content type %q", r.header.Get("Content-Type"))
	}
	r = do(t, "GET", base+"/v1/projects/wire-test", "")
	if r.body["data"].(map[string]any)["deployment"].(map[string]any)["region"] != "local" {
		t.Fatalf("get = %s", r.raw)
	}
	r = do(t, "PATCH", base+"/v1/projects/wire-test", `{"description":"patched"}`)
	if d := r.body["data"].(map[string]any); d["description"] != "patched" || d["color"] != "#112233" {
		t.Fatalf("patch = %s", r.raw)
	}
	r = do(t, "PUT", base+"/v1/projects", `{"name":"Wire Test","description":"put"}`)
	if d := r.body["data"].(map[string]any); r.status != 200 || d["description"] != "put" {
		t.Fatalf("put = %s", r.raw)
	}
	r = do(t, "DELETE", base+"/v1/projects/wire-test", "")
	if r.status != 200 || string(r.raw) != `{"data":{}}` {
		t.Fatalf("delete = %d %s", r.status, r.raw)
	}
	errorOf(t, do(t, "GET", base+"/v1/projects/wire-test", ""), 404)
}

func TestPagination(t *testing.T) {
	base := newGateway(t)
	for _, name := range []string{"Page One", "Page Two", "Page Three", "Page Four", "Page Five"} {
		if r := do(t, "POST", base+"/v1/projects", `{"name":"`+name+`"}`); r.status != 200 {
			t.Fatalf("create %s: %s", name, r.raw)
		}
	}
	var ids []string
	url := base + "/v1/projects?per_page=2"
	for pages := 0; ; pages++ {
		r := do(t, "GET", url, "")
		pag := r.body["pagination"].(map[string]any)
		list := r.body["data"].(map[string]any)["projects"].([]any)
		if _, inData := r.body["data"].(map[string]any)["pagination"]; inData {
			t.Fatal("pagination left inside data")
		}
		if int(pag["count"].(float64)) != len(list) {
			t.Fatalf("count %v for %d items", pag["count"], len(list))
		}
		for _, p := range list {
			ids = append(ids, p.(map[string]any)["id"].(string))
		}
		cursor, hasCursor := pag["cursor"]
		if pag["hasNextPage"] != hasCursor {
			t.Fatalf("hasNextPage %v but cursor present=%v", pag["hasNextPage"], hasCursor)
		}
		if !hasCursor {
			break
		}
		if pages > 5 {
			t.Fatal("paging never ends")
		}
		url = base + "/v1/projects?per_page=2&cursor=" + cursor.(string)
	}
	if strings.Join(ids, ",") != "page-five,page-four,page-one,page-three,page-two" {
		t.Fatalf("paged ids %v", ids)
	}
	r := do(t, "GET", base+"/v1/projects?per_page=2&page=3", "")
	if list := r.body["data"].(map[string]any)["projects"].([]any); len(list) != 1 || list[0].(map[string]any)["id"] != "page-two" {
		t.Fatalf("page 3 = %s", r.raw)
	}
	r = do(t, "GET", base+"/v1/projects", "")
	if n := len(r.body["data"].(map[string]any)["projects"].([]any)); n != 5 {
		t.Fatalf("default page has %d projects", n)
	}
}

func TestBadInput(t *testing.T) {
	base := newGateway(t)
	for _, tc := range []struct {
		name, method, path, body string
		status                   int
		field                    string
	}{
		{"malformed JSON", "POST", "/v1/projects", `{"name": "x"`, 400, "body"},
		{"not an object", "POST", "/v1/projects", `["name"]`, 400, "body"},
		{"trailing data", "POST", "/v1/projects", `{"name":"abc"} {}`, 400, "body"},
		{"unknown field", "POST", "/v1/projects", `{"name":"Good Name","colour":"#000000"}`, 400, "colour"},
		{"wrong type", "POST", "/v1/projects", `{"name":42}`, 400, "name"},
		{"wrong type bool", "PATCH", "/v1/projects/x", `{"description":true}`, 400, "description"},
		{"missing name", "POST", "/v1/projects", `{}`, 400, "name"},
		{"empty body", "POST", "/v1/projects", ``, 400, "name"},
		{"too short", "POST", "/v1/projects", `{"name":"ab"}`, 400, "name"},
		{"too long", "POST", "/v1/projects", `{"name":"` + strings.Repeat("a", 40) + `"}`, 400, "name"},
		{"bad region", "POST", "/v1/projects", `{"name":"Somewhere","region":"mars"}`, 400, "region"},
		{"per_page type", "GET", "/v1/projects?per_page=many", ``, 400, "per_page"},
		{"per_page range", "GET", "/v1/projects?per_page=101", ``, 400, "perPage"},
		{"bad cursor", "GET", "/v1/projects?cursor=%21%21", ``, 400, "cursor"},
		{"null is unset", "POST", "/v1/projects", `{"name":null}`, 400, "name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := errorOf(t, do(t, tc.method, base+tc.path, tc.body), tc.status)
			if _, ok := details(t, e)[tc.field]; !ok {
				t.Fatalf("details %v do not name %q", e["details"], tc.field)
			}
		})
	}
	t.Run("oversize body", func(t *testing.T) {
		big := `{"name":"Big","description":"` + strings.Repeat("x", 2<<20) + `"}`
		if e := errorOf(t, do(t, "POST", base+"/v1/projects", big), 413); e["id"] != "BODY_TOO_LARGE" {
			t.Fatalf("413 id = %v", e["id"])
		}
	})
	t.Run("duplicate", func(t *testing.T) {
		do(t, "POST", base+"/v1/projects", `{"name":"Twin"}`)
		if e := errorOf(t, do(t, "POST", base+"/v1/projects", `{"name":"TWIN"}`), 409); !strings.Contains(e["message"].(string), "twin") {
			t.Fatalf("409 message %v", e["message"])
		}
	})
}

func TestRoutingErrors(t *testing.T) {
	base := newGateway(t)
	errorOf(t, do(t, "GET", base+"/v1/nothing-here", ""), 404)
	errorOf(t, do(t, "GET", base+"/", ""), 404)
	r := do(t, "POST", base+"/v1/projects/some-id", `{}`)
	if e := errorOf(t, r, 405); e["id"] != "METHOD_NOT_ALLOWED" {
		t.Fatalf("405 id %v", e["id"])
	}
	if allow := r.header.Get("Allow"); allow != "DELETE, GET, PATCH" {
		t.Fatalf("Allow = %q", allow)
	}
	if allow := do(t, "DELETE", base+"/health", "").header.Get("Allow"); allow != "GET" {
		t.Fatalf("Allow on /health = %q", allow)
	}
}

func TestRequestID(t *testing.T) {
	base := newGateway(t)
	r := do(t, "GET", base+"/v1/projects", "", "X-Request-Id", "my-trace-123")
	if got := r.header.Get("X-Request-Id"); got != "my-trace-123" {
		t.Fatalf("echoed %q", got)
	}
	r = do(t, "GET", base+"/v1/projects", "", "X-Request-Id", "bad id with spaces")
	if got := r.header.Get("X-Request-Id"); got == "" || strings.Contains(got, " ") {
		t.Fatalf("invalid id not replaced: %q", got)
	}
	r = do(t, "GET", base+"/v1/nope", "")
	if r.header.Get("X-Request-Id") == "" {
		t.Fatal("no request id on an error response")
	}
}

func TestAPIVersionNegotiation(t *testing.T) {
	base := newGateway(t)
	for accept, want := range map[string]int{
		"application/json":                           200,
		"application/json; api_version=1":            200,
		"text/html, application/json; api_version=1": 200,
		"application/json; api_version=2":            422,
		"application/json; api_version=abc":          422,
	} {
		r := do(t, "GET", base+"/v1/projects", "", "Accept", accept)
		if r.status != want {
			t.Errorf("Accept %q: %d, want %d", accept, r.status, want)
			continue
		}
		if want == 422 {
			errorOf(t, r, 422)
		} else if r.header.Get("X-Api-Version") != "1" {
			t.Errorf("Accept %q: X-Api-Version %q", accept, r.header.Get("X-Api-Version"))
		}
	}
}

func TestOperationalEndpoints(t *testing.T) {
	base := newGateway(t)
	r := do(t, "GET", base+"/health", "")
	if r.status != 200 || r.body["data"].(map[string]any)["checks"].(map[string]any)["projects"] != "ok" {
		t.Fatalf("health = %d %s", r.status, r.raw)
	}
	if r := do(t, "GET", base+"/health/live", ""); r.status != 200 {
		t.Fatalf("live = %d", r.status)
	}
	if r := do(t, "GET", base+"/version", ""); r.body["data"].(map[string]any)["version"] != "test" {
		t.Fatalf("version = %s", r.raw)
	}
	// Two requests on each of two API routes: each route keeps its own label.
	for range 2 {
		do(t, "GET", base+"/v1/projects", "")
		do(t, "GET", base+"/v1/projects/nope", "")
	}
	r = do(t, "GET", base+"/v1/openapi.json", "")
	if r.body["swagger"] != "2.0" || r.body["paths"].(map[string]any)["/v1/projects"] == nil {
		t.Fatalf("openapi document lacks /v1/projects")
	}
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Contains(metrics, []byte(`slipway_http_requests_total{method="GET",route="/v1/openapi.json",status="200"}`)) {
		t.Fatalf("metrics lack the openapi request:\n%s", metrics)
	}
	for _, series := range []string{
		`slipway_http_requests_total{method="GET",route="/v1/projects",status="200"} 2`,
		`slipway_http_requests_total{method="GET",route="/v1/projects/{project_id=*}",status="404"} 2`,
	} {
		if !bytes.Contains(metrics, []byte(series)) {
			t.Errorf("metrics lack %s:\n%s", series, metrics)
		}
	}
}

// TestBackendDown: a dead service is a 503 that says nothing about why.
func TestBackendDown(t *testing.T) {
	conn, err := grpc.NewClient("127.0.0.1:1", grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	gw, err := gateway.New(context.Background(), gateway.Options{Logger: quiet, Backends: []component.Backend{{Name: "projects", API: *projects.Component.API, Conn: conn}}})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(gw)
	defer ts.Close()
	e := errorOf(t, do(t, "GET", ts.URL+"/v1/projects", ""), 503)
	if strings.Contains(e["message"].(string), "127.0.0.1") || strings.Contains(e["message"].(string), "connection") {
		t.Fatalf("503 leaks internals: %v", e["message"])
	}
	errorOf(t, do(t, "GET", ts.URL+"/health", ""), 503)
}

func TestAuthentication(t *testing.T) {
	base := newGateway(t)
	for name, header := range map[string]string{"missing": "", "unknown": "Bearer nope", "malformed": "Token abc"} {
		t.Run(name, func(t *testing.T) {
			r := do(t, "GET", base+"/v1/projects", "", "Authorization", header)
			if e := errorOf(t, r, 401); e["id"] != "UNAUTHENTICATED" {
				t.Fatalf("401 id %v", e["id"])
			}
			if r.header.Get("WWW-Authenticate") == "" || r.header.Get("X-Ratelimit-Limit") == "" {
				t.Fatalf("401 headers %v", r.header)
			}
		})
	}
	r := do(t, "POST", base+"/v1/projects", `{"name":"Not For Viewers"}`, "Authorization", "Bearer viewer")
	errorOf(t, r, 403)
	// Operational endpoints need no credentials.
	for _, path := range []string{"/health", "/version", "/v1/openapi.json", "/v1/postman-collection.json"} {
		if r := do(t, "GET", base+path, "", "Authorization", ""); r.status != 200 {
			t.Errorf("%s without credentials: %d", path, r.status)
		}
	}
}

func TestQuota(t *testing.T) {
	base := newGatewayWith(t, quota.NewMemory(time.Hour), quota.Plans{Default: 3})
	for i := range 3 {
		r := do(t, "GET", base+"/v1/projects", "")
		if r.status != 200 || r.header.Get("X-Ratelimit-Limit") != "3" || r.header.Get("X-Ratelimit-Remaining") != strconv.Itoa(2-i) {
			t.Fatalf("request %d: %d %v", i, r.status, r.header)
		}
		if reset, _ := strconv.Atoi(r.header.Get("X-Ratelimit-Reset")); reset < 3500 || reset > 3600 {
			t.Fatalf("reset %d s", reset)
		}
	}
	r := do(t, "GET", base+"/v1/projects", "")
	if e := errorOf(t, r, 429); e["id"] != "QUOTA_EXCEEDED" || r.header.Get("Retry-After") == "" || r.header.Get("X-Ratelimit-Remaining") != "0" {
		t.Fatalf("429: %v %v", e, r.header)
	}
	// Another team's quota is its own; the viewer token is also acme's.
	if r := do(t, "GET", base+"/v1/projects", "", "Authorization", "Bearer viewer"); r.status != 429 {
		t.Fatalf("same team, other token: %d", r.status)
	}
}

func TestTeamScopedRoutes(t *testing.T) {
	base := newGateway(t)
	if r := do(t, "POST", base+"/v1/teams/acme/projects", `{"name":"Team Route"}`); r.status != 200 {
		t.Fatalf("create through the team route: %d %s", r.status, r.raw)
	}
	r := do(t, "GET", base+"/v1/teams/acme/projects/team-route", "")
	if r.status != 200 || r.body["data"].(map[string]any)["id"] != "team-route" {
		t.Fatalf("get through the team route: %d %s", r.status, r.raw)
	}
	if r := do(t, "GET", base+"/v1/projects/team-route", ""); r.status != 200 {
		t.Fatalf("the default team is the same team: %d", r.status)
	}
	// Another team is 404, whether or not it exists: no existence leaks.
	errorOf(t, do(t, "GET", base+"/v1/teams/globex/projects", ""), 404)
	errorOf(t, do(t, "GET", base+"/v1/teams/globex/projects/team-route", ""), 404)
}

// TestBadStrings: a NUL or bytes that are not UTF-8, anywhere in a request
// (path, query, body), answer 400 naming the field, whether the service
// runs in this process or, as here, over gRPC (where a string that is not
// UTF-8 would fail to marshal as an internal error).
func TestBadStrings(t *testing.T) {
	base := newGateway(t)
	for _, tc := range []struct {
		name, method, path, body string
		field                    string
	}{
		{"path NUL", "GET", "/v1/projects/%00", ``, "projectId"},
		{"path not UTF-8", "GET", "/v1/projects/%ff", ``, "projectId"},
		{"path NUL inside", "PATCH", "/v1/projects/a%00b", `{"description":"x"}`, "projectId"},
		{"team path", "GET", "/v1/teams/%ff/projects", ``, "teamId"},
		{"query NUL", "GET", "/v1/projects?cursor=%00", ``, "cursor"},
		{"query not UTF-8", "GET", "/v1/projects?cursor=%c3", ``, "cursor"},
		{"body NUL in name", "POST", "/v1/projects", `{"name":"Nul\u0000Name"}`, "name"},
		{"body NUL in description", "POST", "/v1/projects", `{"name":"Fine Name","description":"\u0000"}`, "description"},
		{"body not UTF-8", "POST", "/v1/projects", "{\"name\":\"Bad \xff Name\"}", "body"},
		{"patch body NUL", "PATCH", "/v1/projects/fine", `{"description":"a\u0000"}`, "description"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := errorOf(t, do(t, tc.method, base+tc.path, tc.body), 400)
			if e["id"] != "VALIDATION_FAILED" {
				t.Errorf("id %v, want VALIDATION_FAILED", e["id"])
			}
			if _, ok := details(t, e)[tc.field]; !ok {
				t.Fatalf("details %v do not name %q", e["details"], tc.field)
			}
		})
	}
	t.Run("credentials", func(t *testing.T) {
		r := do(t, "GET", base+"/v1/projects", "", "Authorization", "Bearer \xff")
		if e := errorOf(t, r, 401); e["id"] != "UNAUTHENTICATED" {
			t.Fatalf("id %v", e["id"])
		}
	})
}

// TestQueryErrors: grpc-gateway's own refusals of a query string answer
// with the validation id, naming the parameter, like every other bad input.
func TestQueryErrors(t *testing.T) {
	base := newGateway(t)
	for _, tc := range []struct{ name, query, field string }{
		{"duplicated", "per_page=1&per_page=2", "per_page"},
		{"duplicated by both names", "per_page=1&perPage=2", "per_page"},
		{"bad escape", "per_page=%ZZ", "query"},
		{"wrong type", "per_page=many", "per_page"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := errorOf(t, do(t, "GET", base+"/v1/projects?"+tc.query, ""), 400)
			if e["id"] != "VALIDATION_FAILED" || e["message"] != "request validation failed" {
				t.Errorf("id %v, message %v", e["id"], e["message"])
			}
			if _, ok := details(t, e)[tc.field]; !ok {
				t.Fatalf("details %v do not name %q", e["details"], tc.field)
			}
		})
	}
}

// TestBadContentType: a Content-Type that is not a media type changes
// nothing (bodies are JSON) and is not logged by grpc-gateway outside the
// structured log.
func TestBadContentType(t *testing.T) {
	base := newGateway(t)
	var logged bytes.Buffer
	rpcserver.LogTo(slog.New(slog.NewJSONHandler(&logged, nil)))
	defer rpcserver.LogTo(quiet)
	r := do(t, "POST", base+"/v1/projects", `{"name":"Typed Body"}`, "Content-Type", "application/json;;;=")
	if r.status != 200 {
		t.Fatalf("create: %d %s", r.status, r.raw)
	}
	if logged.Len() != 0 {
		t.Fatalf("logged %s", logged.String())
	}
}
