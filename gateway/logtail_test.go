package gateway_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/slipwayhq/slipway/gateway"
	jobsv1 "github.com/slipwayhq/slipway/gen/slipway/jobs/v1"
	"github.com/slipwayhq/slipway/pkg/authz"
	"github.com/slipwayhq/slipway/pkg/component"
	"github.com/slipwayhq/slipway/pkg/quota"
	"github.com/slipwayhq/slipway/pkg/rpcserver"
	"github.com/slipwayhq/slipway/pkg/rpcserver/rpctest"
	jobsservice "github.com/slipwayhq/slipway/services/jobs"
)

// jobsDouble stands in for the jobs service: a real gRPC server on
// loopback that serves only the log methods, each test saying how. (The
// real service is covered end to end, through this gateway, in e2e.)
type jobsDouble struct {
	jobsv1.UnimplementedJobsServiceServer
	tail func(*jobsv1.TailJobLogsRequest, jobsv1.JobsService_TailJobLogsServer) error
	logs func(*jobsv1.GetJobLogsRequest) (*jobsv1.GetJobLogsResponse, error)
}

func (d *jobsDouble) TailJobLogs(req *jobsv1.TailJobLogsRequest, s jobsv1.JobsService_TailJobLogsServer) error {
	if d.tail == nil {
		return status.Error(codes.Unimplemented, "no tail")
	}
	return d.tail(req, s)
}

func (d *jobsDouble) GetJobLogs(_ context.Context, req *jobsv1.GetJobLogsRequest) (*jobsv1.GetJobLogsResponse, error) {
	if d.logs == nil {
		return nil, status.Error(codes.Unimplemented, "no logs")
	}
	return d.logs(req)
}

// tailEnv is a gateway in front of a jobsDouble.
type tailEnv struct {
	http, ws string
	// stop ends the gateway's life, as a shutdown does.
	stop context.CancelFunc
}

type tailOptions struct {
	auth  bool // resolve credentials (tokens) and apply quotas
	plans quota.Plans
}

func newTailEnv(t *testing.T, jobs *jobsDouble, o tailOptions) tailEnv {
	t.Helper()
	// The double sits behind the real chain (letting every call through),
	// so what the gateway sends is validated as the jobs service would.
	conn := rpctest.Serve(t, rpcserver.Options{Logger: quiet}, func(s *grpc.Server) { jobsv1.RegisterJobsServiceServer(s, jobs) })
	ctx, stop := context.WithCancel(context.Background())
	t.Cleanup(stop)
	reg := prometheus.NewRegistry()
	opts := gateway.Options{Logger: quiet, Registerer: reg, Gatherer: reg, Backends: []component.Backend{{Name: "jobs", API: *jobsservice.Component.API, Conn: conn}}}
	if o.auth {
		if o.plans.Default == 0 {
			o.plans.Default = 1_000_000
		}
		opts.Auth, opts.Quota, opts.Plans = authz.New(tokens, "internal"), quota.NewMemory(time.Hour), o.plans
	}
	gw, err := gateway.New(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(gw)
	t.Cleanup(ts.Close)
	return tailEnv{http: ts.URL, ws: "ws" + strings.TrimPrefix(ts.URL, "http"), stop: stop}
}

// tailMessage is a server message.
type tailMessage struct {
	Type string          `json:"type"`
	Data json.RawMessage `json:"data"`
}

type tailClient struct {
	t *testing.T
	c *websocket.Conn
}

// dialTail opens a tail the way @northflank/js-client does: no
// Authorization header, no subprotocol; header adds handshake headers.
func dialTail(t *testing.T, url string, header ...string) tailClient {
	t.Helper()
	h := http.Header{}
	for i := 0; i+1 < len(header); i += 2 {
		h.Set(header[i], header[i+1])
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: h})
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("X-Request-Id") == "" {
		t.Fatalf("handshake answer %d %v", resp.StatusCode, resp.Header)
	}
	t.Cleanup(func() { _ = c.CloseNow() })
	return tailClient{t: t, c: c}
}

func (tc tailClient) init(token string) {
	tc.t.Helper()
	tc.sendRaw(`{"type":"init","data":{"auth":{"type":"apiToken","apiToken":"` + token + `"}}}`)
}

func (tc tailClient) sendRaw(msg string) {
	tc.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := tc.c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
		tc.t.Fatal(err)
	}
}

// next reads the next message, or returns the error that ended the
// connection.
func (tc tailClient) next() (tailMessage, error) {
	tc.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	typ, data, err := tc.c.Read(ctx)
	if err != nil {
		return tailMessage{}, err
	}
	if typ != websocket.MessageText {
		tc.t.Fatalf("a %v message", typ)
	}
	var m tailMessage
	if err := json.Unmarshal(data, &m); err != nil {
		tc.t.Fatalf("message is not JSON: %q", data)
	}
	return m, nil
}

func (tc tailClient) expect(typ string, into any) {
	tc.t.Helper()
	m, err := tc.next()
	if err != nil {
		tc.t.Fatalf("waiting for %q: %v", typ, err)
	}
	if m.Type != typ {
		tc.t.Fatalf("got %s %s, want %q", m.Type, m.Data, typ)
	}
	if err := json.Unmarshal(m.Data, into); err != nil {
		tc.t.Fatalf("%s data %s: %v", typ, m.Data, err)
	}
}

// expectClose waits for the server's close and checks its code.
func (tc tailClient) expectClose(code websocket.StatusCode) {
	tc.t.Helper()
	m, err := tc.next()
	if err == nil {
		tc.t.Fatalf("got %s %s, want close %v", m.Type, m.Data, code)
	}
	if got := websocket.CloseStatus(err); got != code {
		tc.t.Fatalf("closed with %v (%v), want %v", got, err, code)
	}
}

type initReply struct {
	Auth    string         `json:"auth"`
	Message string         `json:"message"`
	Status  int            `json:"status"`
	ID      string         `json:"id"`
	Details map[string]any `json:"details"`
}

type errorData struct {
	Status  int            `json:"status"`
	ID      string         `json:"id"`
	Message string         `json:"message"`
	Details map[string]any `json:"details"`
}

func (tc tailClient) expectInit(auth string) initReply {
	tc.t.Helper()
	var r initReply
	tc.expect("init", &r)
	if r.Auth != auth {
		tc.t.Fatalf("init answer %+v, want auth %q", r, auth)
	}
	return r
}

func (tc tailClient) expectError(status int, id string) errorData {
	tc.t.Helper()
	var e errorData
	tc.expect("error", &e)
	if e.Status != status || e.ID != id || e.Message == "" {
		tc.t.Fatalf("error %+v, want %d %s", e, status, id)
	}
	return e
}

// received is what the double saw of a TailJobLogs call.
type received struct {
	req *jobsv1.TailJobLogsRequest
	md  metadata.MD
}

// feed is a TailJobLogs that reports its call, sends batches, then waits
// for its context (reporting the cancellation on canceled).
func feed(got chan<- received, canceled chan<- struct{}, batches ...*jobsv1.TailJobLogsResponse) func(*jobsv1.TailJobLogsRequest, jobsv1.JobsService_TailJobLogsServer) error {
	return func(req *jobsv1.TailJobLogsRequest, s jobsv1.JobsService_TailJobLogsServer) error {
		md, _ := metadata.FromIncomingContext(s.Context())
		got <- received{req, md}
		for _, b := range batches {
			if err := s.Send(b); err != nil {
				return err
			}
		}
		<-s.Context().Done()
		canceled <- struct{}{}
		return s.Context().Err()
	}
}

func wait[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

var t0 = time.Date(2024, 5, 6, 7, 8, 9, 123_000_000, time.UTC)

func TestLogTail(t *testing.T) {
	got, canceled := make(chan received, 1), make(chan struct{}, 1)
	env := newTailEnv(t, &jobsDouble{tail: feed(got, canceled,
		&jobsv1.TailJobLogsResponse{Lines: []*jobsv1.LogLine{
			{ContainerId: "nightly-1-1", Log: "first", Ts: timestamppb.New(t0), RunId: "nightly-1", Stream: "stdout"},
			{ContainerId: "nightly-1-1", Log: "second", Ts: timestamppb.New(t0.Add(time.Second)), RunId: "nightly-1", Stream: "stderr"},
		}},
		&jobsv1.TailJobLogsResponse{Lines: []*jobsv1.LogLine{{ContainerId: "nightly-1-2", Log: "third", Ts: timestamppb.New(t0.Add(2 * time.Second))}}},
	)}, tailOptions{auth: true})

	// The query the client builds for a tail (js-client's getLogsEndpoint).
	q := "queryType=tail&startTime=2024-05-06T07%3A08%3A09.123Z&lineLimit=50&containerName=nightly-1-1&deploymentId=dep&runId=nightly-1" +
		"&textIncludes=fir&textNotIncludes=zzz&regexIncludes=%5Ef&regexNotIncludes=x%24&type=runtime&type=cdn&endTime=ignored"
	c := dialTail(t, env.ws+"/v1/projects/web/jobs/nightly/logs?"+q)
	c.init("test-token")
	c.expectInit("successful")

	r := wait(t, got, "the TailJobLogs call")
	want := &jobsv1.TailJobLogsRequest{ProjectId: "web", JobId: "nightly", QueryType: "tail", StartTime: timestamppb.New(t0), LineLimit: 50,
		RunId: "nightly-1", ContainerName: "nightly-1-1", TextIncludes: "fir", TextNotIncludes: "zzz", RegexIncludes: "^f", RegexNotIncludes: "x$",
		Type: []string{"runtime", "cdn"}, DeploymentId: "dep"}
	if r.req.String() != want.String() {
		t.Fatalf("request\n%v\nwant\n%v", r.req, want)
	}
	if a := r.md.Get("authorization"); len(a) != 1 || a[0] != "Bearer test-token" {
		t.Fatalf("authorization metadata %v", a)
	}
	if id := r.md.Get("x-request-id"); len(id) != 1 || id[0] == "" {
		t.Fatalf("request id metadata %v", id)
	}

	var batch []map[string]any
	c.expect("log-lines", &batch)
	if len(batch) != 2 || batch[0]["containerId"] != "nightly-1-1" || batch[0]["log"] != "first" || batch[0]["ts"] != "2024-05-06T07:08:09.123Z" ||
		batch[0]["runId"] != "nightly-1" || batch[1]["log"] != "second" || batch[1]["stream"] != "stderr" {
		t.Fatalf("first batch %v", batch)
	}
	c.expect("log-lines", &batch)
	if len(batch) != 1 || batch[0]["log"] != "third" || batch[0]["ts"] != "2024-05-06T07:08:11.123Z" {
		t.Fatalf("second batch %v", batch)
	}

	// The client leaving cancels the stream.
	if err := c.c.Close(websocket.StatusNormalClosure, "bye"); err != nil {
		t.Fatal(err)
	}
	wait(t, canceled, "the stream's cancellation")

	// The access log and metrics saw the upgrade through the middleware.
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := http.Get(env.http + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		metrics, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Contains(string(metrics), `slipway_http_requests_total{method="GET",route="/v1/projects/{project_id=*}/jobs/{job_id=*}/logs",status="101"} 1`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics lack the tail:\n%s", metrics)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestLogTailEnds: the team route, the stream's end (close 1000), and a
// gateway shutdown (close 1001).
func TestLogTailEnds(t *testing.T) {
	got := make(chan received, 2)
	hold := make(chan struct{})
	env := newTailEnv(t, &jobsDouble{tail: func(req *jobsv1.TailJobLogsRequest, s jobsv1.JobsService_TailJobLogsServer) error {
		got <- received{req: req}
		if err := s.Send(&jobsv1.TailJobLogsResponse{Lines: []*jobsv1.LogLine{{Log: "only"}}}); err != nil {
			return err
		}
		if req.GetJobId() == "forever" {
			select {
			case <-s.Context().Done():
			case <-hold:
			}
		}
		return nil
	}}, tailOptions{})
	t.Cleanup(func() { close(hold) })

	c := dialTail(t, env.ws+"/v1/teams/acme/projects/web/jobs/nightly/logs?queryType=tail")
	c.init("whatever") // no Auth: any token passes
	c.expectInit("successful")
	if r := wait(t, got, "the call"); r.req.GetTeamId() != "acme" || r.req.GetProjectId() != "web" || r.req.GetJobId() != "nightly" {
		t.Fatalf("request %v", r.req)
	}
	var batch []map[string]any
	c.expect("log-lines", &batch)
	c.expectClose(websocket.StatusNormalClosure)

	c = dialTail(t, env.ws+"/v1/projects/web/jobs/forever/logs?queryType=tail")
	c.init("")
	c.expectInit("successful")
	c.expect("log-lines", &batch)
	wait(t, got, "the call")
	env.stop()
	c.expectClose(websocket.StatusGoingAway)
}

func TestLogTailErrors(t *testing.T) {
	errs := map[string]error{
		"missing":  status.Error(codes.NotFound, "job nightly in 10.1.2.3's table"),
		"broken":   status.Error(codes.Internal, "pq: connection to 10.1.2.3 refused"),
		"mystery":  errors.New("whatever"),
		"overflow": status.Error(codes.Unavailable, "dial tcp 10.1.2.3:443"),
	}
	called := make(chan string, 10)
	env := newTailEnv(t, &jobsDouble{tail: func(req *jobsv1.TailJobLogsRequest, _ jobsv1.JobsService_TailJobLogsServer) error {
		called <- req.GetJobId()
		return errs[req.GetJobId()]
	}}, tailOptions{})

	for job, want := range map[string]struct {
		status int
		id     string
	}{"missing": {404, "NotFound"}, "broken": {500, "INTERNAL"}, "mystery": {500, "INTERNAL"}, "overflow": {503, "Unavailable"}} {
		t.Run(job, func(t *testing.T) {
			c := dialTail(t, env.ws+"/v1/projects/web/jobs/"+job+"/logs?queryType=tail")
			c.init("t")
			c.expectInit("successful")
			e := c.expectError(want.status, want.id)
			if strings.Contains(e.Message, "10.1.2.3") || strings.Contains(e.Message, "pq") {
				t.Fatalf("error leaks internals: %q", e.Message)
			}
			c.expectClose(websocket.StatusNormalClosure)
		})
	}

	t.Run("bad query", func(t *testing.T) {
		for len(called) > 0 {
			<-called
		}
		for _, q := range []string{"startTime=yesterday", "lineLimit=lots", "startTime=2024-01-01"} {
			c := dialTail(t, env.ws+"/v1/projects/web/jobs/nightly/logs?queryType=tail&"+q)
			c.init("t")
			c.expectInit("successful")
			e := c.expectError(400, "VALIDATION_FAILED")
			if len(e.Details) != 1 {
				t.Fatalf("%s: details %v", q, e.Details)
			}
			c.expectClose(websocket.StatusNormalClosure)
		}
		select {
		case job := <-called:
			t.Fatalf("a bad query reached the service (%s)", job)
		default:
		}
	})
}

func TestLogTailInit(t *testing.T) {
	defer gateway.SetTailInitTimeout(200 * time.Millisecond)()
	env := newTailEnv(t, &jobsDouble{}, tailOptions{})
	url := env.ws + "/v1/projects/web/jobs/nightly/logs?queryType=tail"

	t.Run("none", func(t *testing.T) {
		c := dialTail(t, url)
		c.expectError(400, "BAD_INIT")
		c.expectClose(websocket.StatusPolicyViolation)
	})
	for name, msg := range map[string]string{
		"garbage":    "hello",
		"wrong type": `{"type":"ping"}`,
		"bad shape":  `{"type":"init","data":{"auth":"token"}}`,
	} {
		t.Run(name, func(t *testing.T) {
			c := dialTail(t, url)
			c.sendRaw(msg)
			c.expectError(400, "BAD_INIT")
			c.expectClose(websocket.StatusPolicyViolation)
		})
	}
	t.Run("too large", func(t *testing.T) {
		c := dialTail(t, url)
		c.sendRaw(`{"type":"init","data":{"pad":"` + strings.Repeat("x", 70<<10) + `"}}`)
		c.expectClose(websocket.StatusMessageTooBig)
	})
	t.Run("a second message", func(t *testing.T) {
		c := dialTail(t, url)
		c.init("t")
		c.expectInit("successful")
		c.sendRaw(`{"type":"init"}`)
		// The unimplemented double may answer first; the close follows.
		for {
			m, err := c.next()
			if err != nil {
				if s := websocket.CloseStatus(err); s != websocket.StatusPolicyViolation && s != websocket.StatusNormalClosure {
					t.Fatalf("closed with %v", err)
				}
				break
			}
			if m.Type != "error" {
				t.Fatalf("got %s", m.Type)
			}
		}
	})
}

func TestLogTailCredentials(t *testing.T) {
	got, canceled := make(chan received, 10), make(chan struct{}, 10)
	env := newTailEnv(t, &jobsDouble{tail: feed(got, canceled)}, tailOptions{auth: true, plans: quota.Plans{Default: 3}})
	url := env.ws + "/v1/projects/web/jobs/nightly/logs?queryType=tail"

	// Bad credentials: an init answer that says why, and a policy close.
	for token, id := range map[string]string{"nope": "UNAUTHENTICATED", "": "UNAUTHENTICATED"} {
		c := dialTail(t, url)
		c.init(token)
		if r := c.expectInit("failed"); r.Status != 401 || r.ID != id || r.Message == "" {
			t.Fatalf("token %q: %+v", token, r)
		}
		c.expectClose(websocket.StatusPolicyViolation)
	}

	// An Authorization header on the handshake is admitted by the guard,
	// and used, before the init message is read.
	c := dialTail(t, url, "Authorization", "Bearer viewer")
	c.init("")
	c.expectInit("successful")
	if a := wait(t, got, "the call").md.Get("authorization"); len(a) != 1 || a[0] != "Bearer viewer" {
		t.Fatalf("authorization %v", a)
	}
	_ = c.c.Close(websocket.StatusNormalClosure, "")
	wait(t, canceled, "the cancellation")
	_, resp, err := websocket.Dial(context.Background(), url, &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer nope"}}})
	if err == nil || resp == nil || resp.StatusCode != 401 {
		t.Fatalf("bad handshake credentials: %v %v", resp, err)
	}
	body, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(body), `"UNAUTHENTICATED"`) {
		t.Fatalf("401 body %s", body)
	}

	// Each tail spends a request of the team's quota (3 an hour): the
	// viewer's header spent one, the token spends the next two.
	for range 2 {
		c := dialTail(t, url)
		c.init("test-token")
		c.expectInit("successful")
		wait(t, got, "the call")
		_ = c.c.Close(websocket.StatusNormalClosure, "")
		wait(t, canceled, "the cancellation")
	}
	c = dialTail(t, url)
	c.init("test-token")
	if r := c.expectInit("failed"); r.Status != 429 || r.ID != "QUOTA_EXCEEDED" || r.Details["limit"] != float64(3) {
		t.Fatalf("over quota: %+v", r)
	}
	c.expectClose(websocket.StatusPolicyViolation)
}

// TestJobLogsRange: without an upgrade, the logs path is GetJobLogs, whose
// "lines" response body is the envelope's list.
func TestJobLogsRange(t *testing.T) {
	got := make(chan *jobsv1.GetJobLogsRequest, 2)
	lines := []*jobsv1.LogLine{{ContainerId: "nightly-1-1", Log: "hi", Ts: timestamppb.New(t0), RunId: "nightly-1", Stream: "stdout"}}
	env := newTailEnv(t, &jobsDouble{logs: func(req *jobsv1.GetJobLogsRequest) (*jobsv1.GetJobLogsResponse, error) {
		got <- req
		if req.GetRunId() == "none" {
			return &jobsv1.GetJobLogsResponse{}, nil
		}
		return &jobsv1.GetJobLogsResponse{Lines: lines}, nil
	}}, tailOptions{auth: true})

	r := do(t, "GET", env.http+"/v1/projects/web/jobs/nightly/logs?queryType=tail&lineLimit=5", "")
	if r.status != 200 || string(r.raw) != `{"data":[{"containerId":"nightly-1-1","log":"hi","ts":"2024-05-06T07:08:09.123Z","runId":"nightly-1","stream":"stdout"}]}` {
		t.Fatalf("range: %d %s", r.status, r.raw)
	}
	if req := wait(t, got, "the call"); req.GetLineLimit() != 5 || req.GetQueryType() != "tail" {
		t.Fatalf("request %v", req)
	}
	r = do(t, "GET", env.http+"/v1/teams/acme/projects/web/jobs/nightly/logs?queryType=range&runId=none", "")
	if r.status != 200 || string(r.raw) != `{"data":[]}` {
		t.Fatalf("empty range: %d %s", r.status, r.raw)
	}
	// Without credentials a plain GET is still a 401; only the upgrade
	// brings its credential in a message.
	errorOf(t, do(t, "GET", env.http+"/v1/projects/web/jobs/nightly/logs?queryType=tail", "", "Authorization", ""), 401)

	env = newTailEnv(t, &jobsDouble{}, tailOptions{})
	if e := errorOf(t, do(t, "GET", env.http+"/v1/projects/web/jobs/nightly/logs?queryType=tail", ""), 501); e["id"] != "Unimplemented" {
		t.Fatalf("501 id %v", e["id"])
	}
}
