package gateway

// The WebSocket log tail: GET /v1[/teams/{teamId}]/projects/{projectId}/
// jobs/{jobId}/logs upgraded to a WebSocket, served from the jobs
// service's TailJobLogs stream, the way @northflank/js-client's LogsClient
// consumes it. Every frame is a text frame holding one JSON object:
//
//	client: {"type":"init","data":{"auth":{"type":"apiToken","apiToken":"<token>"}}}
//	server: {"type":"init","data":{"auth":"successful"}}
//	server: {"type":"log-lines","data":[{"containerId":…,"log":…,"ts":…,"runId":…,"stream":…}, …]}
//	        (one per TailJobLogsResponse, lines oldest first)
//
// Failures:
//
//   - No init within tailInitTimeout, or a first message that is not an
//     init: {"type":"error","data":{…}}, close 1008 (policy violation).
//     A first message over tailReadLimit: close 1009 (message too big).
//   - Credentials that do not resolve, or a spent hourly quota:
//     {"type":"init","data":{"auth":"failed","message":…,"status":401|403|429,"id":…}},
//     close 1008.
//   - A bad query parameter, or an error from the jobs service:
//     {"type":"error","data":{"status":…,"id":…,"message":…[,"details":…]}}
//     (the HTTP error envelope's fields, shaped by apiError: no internal
//     text), close 1000.
//   - The stream's end: close 1000. The gateway shutting down: close 1001.
//   - A data message after the init: close 1008. No pong within
//     tailPongTimeout of a ping (every tailPingInterval): the connection
//     is dropped.
//
// The credential is the init message's apiToken, sent as "Bearer <token>";
// a handshake that carries an Authorization header is admitted by guard
// before the upgrade (401/429 as HTTP answers) and that header is used,
// whatever the init message says.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
	gwruntime "github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/grpc-ecosystem/grpc-gateway/v2/utilities"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	jobsv1 "github.com/slipwayhq/slipway/gen/slipway/jobs/v1"
	"github.com/slipwayhq/slipway/pkg/authz"
)

const (
	// tailReadLimit bounds a message from the client: the init is small.
	tailReadLimit = 64 << 10
	// tailWriteTimeout bounds sending one message; a client that reads
	// slower than that is dropped.
	tailWriteTimeout = 10 * time.Second
	// tailPingInterval is how often the gateway pings an open tail, and
	// tailPongTimeout how long it waits for the pong.
	tailPingInterval = 30 * time.Second
	tailPongTimeout  = 15 * time.Second
)

// tailInitTimeout is how long the gateway waits for the init message; New
// copies it (tests shorten it).
var tailInitTimeout = 10 * time.Second

// tailTarget is the job a tail path names.
type tailTarget struct{ team, project, job string }

// route is the metrics and access-log label of the tail's route, in the
// form the mux's routes have.
func (t tailTarget) route() string {
	if t.team != "" {
		return "/v1/teams/{team_id=*}/projects/{project_id=*}/jobs/{job_id=*}/logs"
	}
	return "/v1/projects/{project_id=*}/jobs/{job_id=*}/logs"
}

// parseTailPath matches /v1/projects/{p}/jobs/{j}/logs and
// /v1/teams/{t}/projects/{p}/jobs/{j}/logs.
func parseTailPath(path string) (tailTarget, bool) {
	s := strings.Split(strings.TrimPrefix(path, "/"), "/")
	var t tailTarget
	switch {
	case len(s) == 6 && s[0] == "v1" && s[1] == "projects" && s[3] == "jobs" && s[5] == "logs":
		t = tailTarget{project: s[2], job: s[4]}
	case len(s) == 8 && s[0] == "v1" && s[1] == "teams" && s[3] == "projects" && s[5] == "jobs" && s[7] == "logs" && s[2] != "":
		t = tailTarget{team: s[2], project: s[4], job: s[6]}
	default:
		return t, false
	}
	return t, t.project != "" && t.job != ""
}

// isLogTail reports whether r is a WebSocket handshake for a job's log
// tail (with a jobs backend to serve it). Other requests to the logs
// path, the range queries, go to GetJobLogs.
func (g *Gateway) isLogTail(r *http.Request) bool {
	if g.jobs == nil || r.Method != http.MethodGet ||
		!headerHasToken(r.Header, "Connection", "upgrade") || !headerHasToken(r.Header, "Upgrade", "websocket") {
		return false
	}
	_, ok := parseTailPath(r.URL.Path)
	return ok
}

// headerHasToken reports whether a comma-separated header lists token,
// case-insensitively.
func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for part := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(part), token) {
				return true
			}
		}
	}
	return false
}

// tailQueryFilter keeps the query from setting what the path says.
var tailQueryFilter = utilities.NewDoubleArray([][]string{{"team_id"}, {"project_id"}, {"job_id"}})

// tailRequest builds the TailJobLogs request from the path and the query,
// parsed the way grpc-gateway parses GetJobLogs' (camelCase or snake_case
// names, RFC 3339 times, repeated "type"; unknown parameters, such as the
// range-only endTime, are ignored).
func tailRequest(target tailTarget, rawQuery string) (*jobsv1.TailJobLogsRequest, error) {
	values, err := url.ParseQuery(rawQuery)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, "malformed query string")
	}
	req := &jobsv1.TailJobLogsRequest{}
	if err := gwruntime.PopulateQueryParameters(req, values, tailQueryFilter); err != nil {
		// The same wording grpc-gateway's handlers give, so apiError names
		// the parameter.
		return nil, status.Errorf(codes.InvalidArgument, "%v", err)
	}
	req.TeamId, req.ProjectId, req.JobId = target.team, target.project, target.job
	return req, nil
}

// tailInit is the client's first message.
type tailInit struct {
	Type string `json:"type"`
	Data struct {
		Auth struct {
			Type     string `json:"type"`
			APIToken string `json:"apiToken"`
		} `json:"auth"`
	} `json:"data"`
}

// tailInitReply is the data of the server's init answer.
type tailInitReply struct {
	Auth    string `json:"auth"`
	Message string `json:"message,omitempty"`
	Status  int    `json:"status,omitempty"`
	ID      string `json:"id,omitempty"`
	Details any    `json:"details,omitempty"`
}

// logTail is one open tail.
type logTail struct {
	g *Gateway
	r *http.Request
	c *websocket.Conn
}

// serveLogTail upgrades r and serves the tail until the stream ends, the
// client goes away or the gateway shuts down.
func (g *Gateway) serveLogTail(w http.ResponseWriter, r *http.Request) {
	target, _ := parseTailPath(r.URL.Path)
	if slot, ok := r.Context().Value(routeKey{}).(*string); ok {
		*slot = target.route()
	}
	// Same-origin browsers and non-browser clients (which send no Origin)
	// are served; the credential is explicit, never ambient.
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{CompressionMode: websocket.CompressionDisabled})
	if err != nil {
		return // Accept answered the handshake with the HTTP error
	}
	defer func() { _ = c.CloseNow() }()
	c.SetReadLimit(tailReadLimit)
	// r's context outlives a hijacked connection's client; the gateway's
	// own context ends tails at shutdown, which Shutdown does not reach.
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	defer context.AfterFunc(g.ctx, cancel)()
	t := &logTail{g: g, r: r, c: c}
	t.serve(ctx, target)
}

func (t *logTail) serve(ctx context.Context, target tailTarget) {
	token, ok := t.readInit(ctx)
	if !ok {
		return
	}
	authorization, ok := t.admit(ctx, token)
	if !ok {
		return
	}
	if t.send(ctx, "init", mustMarshal(tailInitReply{Auth: "successful"})) != nil {
		return
	}
	// From here on the client only closes; reading in the background
	// answers pings and notices the close, which cancels alive. (Not
	// cancelled by ctx: the library would drop the connection without
	// the close frame a shutdown sends.)
	alive := t.c.CloseRead(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	defer wg.Wait() // after stopStream below
	streamCtx, stopStream := context.WithCancel(alive)
	defer stopStream()
	defer context.AfterFunc(ctx, stopStream)()
	wg.Go(func() { t.keepalive(streamCtx) })

	req, err := tailRequest(target, t.r.URL.RawQuery)
	if err != nil {
		t.fail(ctx, err)
		return
	}
	md := forwardRequestID(ctx, t.r)
	if authorization != "" {
		md = metadata.Join(md, metadata.Pairs("authorization", authorization))
	}
	stream, err := t.g.jobs.TailJobLogs(metadata.NewOutgoingContext(streamCtx, md), req)
	for err == nil {
		var resp *jobsv1.TailJobLogsResponse
		if resp, err = stream.Recv(); err != nil {
			break
		}
		var data bytes.Buffer
		if err := appendMessageList(&data, resp.GetLines()); err != nil {
			t.fail(ctx, err)
			return
		}
		if t.send(ctx, "log-lines", data.Bytes()) != nil {
			return
		}
	}
	switch {
	case errors.Is(err, io.EOF):
		_ = t.c.Close(websocket.StatusNormalClosure, "end of stream")
	case ctx.Err() != nil:
		_ = t.c.Close(websocket.StatusGoingAway, "server shutting down")
	case alive.Err() != nil:
		// The client went away (or stopped answering pings): nobody to
		// tell.
	default:
		t.fail(ctx, err)
	}
}

// readInit waits up to tailInitTimeout for the init message and returns
// its token; on anything else it closes the connection.
func (t *logTail) readInit(ctx context.Context) (token string, ok bool) {
	type message struct {
		data []byte
		err  error
	}
	got := make(chan message, 1)
	go func() {
		// Not cancelled by ctx, which would drop the connection without
		// the close frame a shutdown sends.
		_, data, err := t.c.Read(context.WithoutCancel(ctx))
		got <- message{data, err}
	}()
	timer := time.NewTimer(t.g.tailInitTimeout)
	defer timer.Stop()
	select {
	case m := <-got:
		if m.err != nil {
			return "", false // gone, or over the read limit (closed with 1009)
		}
		var init tailInit
		if err := json.Unmarshal(m.data, &init); err != nil || init.Type != "init" {
			t.violation(ctx, `the first message must be {"type":"init",...}`)
			return "", false
		}
		if typ := init.Data.Auth.Type; typ != "" && typ != "apiToken" {
			t.refuse(ctx, t.g.apiError(ctx, authz.Unauthenticated("unsupported auth type: send an apiToken")))
			return "", false
		}
		return init.Data.Auth.APIToken, true
	case <-timer.C:
		t.violation(ctx, "no init message within "+t.g.tailInitTimeout.String())
		return "", false
	case <-ctx.Done():
		_ = t.c.Close(websocket.StatusGoingAway, "server shutting down")
		return "", false
	}
}

// admit authenticates the caller and spends one request of its hourly
// quota, as guard does for other requests, and returns the Authorization
// value to send the jobs service. A handshake with an Authorization header
// was admitted by guard already.
func (t *logTail) admit(ctx context.Context, token string) (authorization string, ok bool) {
	if header := t.r.Header.Get("Authorization"); header != "" {
		return header, true
	}
	if token != "" {
		authorization = "Bearer " + token
	}
	if t.g.opts.Auth == nil { // tests of the wire format only
		return authorization, true
	}
	a := t.g.admit(ctx, t.r, authorization)
	if a.quota != nil && !a.quota.Allowed {
		e := quotaExceeded
		e.Details = a.quotaDetails()
		t.refuse(ctx, e)
		return "", false
	}
	if a.authErr != nil {
		err := a.authErr
		if authorization == "" {
			err = authz.Unauthenticated("credentials required: send an apiToken in the init message")
		}
		t.refuse(ctx, t.g.apiError(ctx, err))
		return "", false
	}
	return authorization, true
}

// keepalive pings the client every tailPingInterval until ctx ends, and
// drops the connection when a pong does not come back in time.
func (t *logTail) keepalive(ctx context.Context) {
	tick := time.NewTicker(tailPingInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			pong, cancel := context.WithTimeout(ctx, tailPongTimeout)
			err := t.c.Ping(pong)
			cancel()
			if err != nil && ctx.Err() == nil {
				_ = t.c.CloseNow()
				return
			}
		}
	}
}

// send writes one {"type":…,"data":…} message. Sends are not cut short by
// ctx's end, so the last words before a close still go out; a client that
// does not take a message within tailWriteTimeout is dropped.
func (t *logTail) send(ctx context.Context, typ string, data []byte) error {
	var msg bytes.Buffer
	msg.WriteString(`{"type":`)
	msg.Write(mustMarshal(typ))
	msg.WriteString(`,"data":`)
	msg.Write(data)
	msg.WriteByte('}')
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), tailWriteTimeout)
	defer cancel()
	return t.c.Write(ctx, websocket.MessageText, msg.Bytes())
}

// fail reports err as an error message, shaped like the HTTP error
// envelope, and closes normally.
func (t *logTail) fail(ctx context.Context, err error) {
	if t.send(ctx, "error", mustMarshal(t.g.apiError(ctx, err))) == nil {
		_ = t.c.Close(websocket.StatusNormalClosure, "")
	}
}

// refuse answers the init with a failure and closes with a policy
// violation.
func (t *logTail) refuse(ctx context.Context, e errorDetail) {
	reply := tailInitReply{Auth: "failed", Message: e.Message, Status: e.Status, ID: e.ID, Details: e.Details}
	if t.send(ctx, "init", mustMarshal(reply)) == nil {
		_ = t.c.Close(websocket.StatusPolicyViolation, "init refused")
	}
}

// violation reports a protocol violation and closes with 1008.
func (t *logTail) violation(ctx context.Context, message string) {
	e := errorDetail{Status: http.StatusBadRequest, ID: "BAD_INIT", Message: message}
	if t.send(ctx, "error", mustMarshal(e)) == nil {
		_ = t.c.Close(websocket.StatusPolicyViolation, "init expected")
	}
}

// mustMarshal marshals the gateway's own plain values, without escaping
// HTML (messages quote permissions like "Project > Jobs").
func mustMarshal(v any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic(err) // only called with plain values
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}
