package gateway

// Live log tails: a logs route of any component (today a job's,
// GET /v1[/teams/{teamId}]/projects/{projectId}/jobs/{jobId}/logs) upgraded
// to a WebSocket, served from the server-streaming RPC its component.Tail
// names, the way @northflank/js-client's LogsClient consumes it. The routes
// come from the component table; this one mechanism serves them all. Every
// frame is a text frame holding one JSON object:
//
//	client: {"type":"init","data":{"auth":{"type":"apiToken","apiToken":"<token>"}}}
//	server: {"type":"init","data":{"auth":"successful"}}
//	server: {"type":"log-lines","data":[{"containerId":…,"log":…,"ts":…,"runId":…,"stream":…}, …]}
//	        (one per stream response: its lines, oldest first)
//
// Failures:
//
//   - No init within tailInitTimeout, or a first message that is not an
//     init: {"type":"error","data":{…}}, close 1008 (policy violation).
//     A first message over tailReadLimit: close 1009 (message too big).
//   - Credentials that do not resolve, or a spent hourly quota:
//     {"type":"init","data":{"auth":"failed","message":…,"status":401|403|429,"id":…}},
//     close 1008.
//   - A bad query parameter, or an error from the component:
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
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
	gwruntime "github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/grpc-ecosystem/grpc-gateway/v2/utilities"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/slipwayhq/slipway/pkg/apierr"
	"github.com/slipwayhq/slipway/pkg/authz"
	"github.com/slipwayhq/slipway/pkg/component"
	"github.com/slipwayhq/slipway/pkg/httpserver"
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

// tailRoute is one live-tail route, compiled from a component.Tail.
type tailRoute struct {
	// segments of the path below /v1; "{field}" captures a request field.
	segments []string
	method   string
	conn     grpc.ClientConnInterface
	request  protoreflect.MessageType
	response protoreflect.MessageType
	lines    protoreflect.FieldDescriptor
	// filter keeps the query from setting what the path says.
	filter *utilities.DoubleArray
}

// newTailRoute checks t against the RPC it names: a server-streaming
// method whose response has the repeated message field of lines, and
// whose request has a string field for every path parameter.
func newTailRoute(t component.Tail, conn grpc.ClientConnInterface) (tailRoute, error) {
	name := protoreflect.FullName(strings.Replace(strings.TrimPrefix(t.Method, "/"), "/", ".", 1))
	d, err := protoregistry.GlobalFiles.FindDescriptorByName(name)
	if err != nil {
		return tailRoute{}, fmt.Errorf("tail %s: %w", t.Method, err)
	}
	md, ok := d.(protoreflect.MethodDescriptor)
	if !ok || !md.IsStreamingServer() || md.IsStreamingClient() {
		return tailRoute{}, fmt.Errorf("tail %s: not a server-streaming method", t.Method)
	}
	req, err := protoregistry.GlobalTypes.FindMessageByName(md.Input().FullName())
	if err != nil {
		return tailRoute{}, err
	}
	resp, err := protoregistry.GlobalTypes.FindMessageByName(md.Output().FullName())
	if err != nil {
		return tailRoute{}, err
	}
	linesName := t.Lines
	if linesName == "" {
		linesName = "lines"
	}
	lines := md.Output().Fields().ByName(protoreflect.Name(linesName))
	if lines == nil || !lines.IsList() || lines.Kind() != protoreflect.MessageKind {
		return tailRoute{}, fmt.Errorf("tail %s: the response has no repeated message field %q", t.Method, linesName)
	}
	r := tailRoute{segments: strings.Split(strings.Trim(t.Path, "/"), "/"), method: t.Method, conn: conn, request: req, response: resp, lines: lines}
	params := [][]string{{"team_id"}}
	for _, seg := range append(r.segments, "{team_id}") {
		if field, ok := pathParam(seg); ok {
			if fd := md.Input().Fields().ByName(protoreflect.Name(field)); fd == nil || fd.Kind() != protoreflect.StringKind || fd.IsList() {
				return tailRoute{}, fmt.Errorf("tail %s: the request has no string field %q", t.Method, field)
			}
			params = append(params, []string{field})
		}
	}
	r.filter = utilities.NewDoubleArray(params)
	return r, nil
}

// pathParam returns the field a "{field}" segment captures.
func pathParam(seg string) (string, bool) {
	if strings.HasPrefix(seg, "{") && strings.HasSuffix(seg, "}") {
		return seg[1 : len(seg)-1], true
	}
	return "", false
}

// tailMatch is a request path matched to a tail route.
type tailMatch struct {
	route  *tailRoute
	params map[string]string // request field -> path segment
	team   bool              // under /v1/teams/{team_id}
}

// label is the metrics and access-log label of the tail's route, in the
// form the mux's routes have.
func (m tailMatch) label() string { return wsRouteLabel("/v1", m.team, m.route.segments) }

// wsRouteLabel is the label of a WebSocket route (a tail's, an exec's) in
// the form the mux's routes have: prefix, the team segment when the path
// is team-scoped, and the route's segments with "{field=*}" captures.
func wsRouteLabel(prefix string, team bool, segments []string) string {
	var b strings.Builder
	b.WriteString(prefix)
	if team {
		b.WriteString("/teams/{team_id=*}")
	}
	for _, seg := range segments {
		b.WriteByte('/')
		if field, ok := pathParam(seg); ok {
			b.WriteString("{" + field + "=*}")
		} else {
			b.WriteString(seg)
		}
	}
	return b.String()
}

// matchTail matches path, /v1/<route> or /v1/teams/{team_id}/<route>,
// against the tail routes.
func (g *Gateway) matchTail(path string) (tailMatch, bool) {
	s := strings.Split(strings.TrimPrefix(path, "/"), "/")
	if len(s) < 2 || s[0] != "v1" {
		return tailMatch{}, false
	}
	s = s[1:]
	params := map[string]string{}
	team := len(s) > 2 && s[0] == "teams"
	if team {
		params["team_id"], s = s[1], s[2:]
	}
	for i := range g.tails {
		r := &g.tails[i]
		if m, ok := r.match(s, params); ok {
			return tailMatch{route: r, params: m, team: team}, true
		}
	}
	return tailMatch{}, false
}

// match matches path segments against the route; every captured segment
// must be non-empty.
func (r *tailRoute) match(s []string, base map[string]string) (map[string]string, bool) {
	if len(s) != len(r.segments) {
		return nil, false
	}
	params := maps.Clone(base)
	for i, seg := range r.segments {
		if field, ok := pathParam(seg); ok {
			if s[i] == "" {
				return nil, false
			}
			params[field] = s[i]
		} else if seg != s[i] {
			return nil, false
		}
	}
	if v, ok := params["team_id"]; ok && v == "" {
		return nil, false
	}
	return params, true
}

// isWebSocket reports whether r is a WebSocket handshake.
func isWebSocket(r *http.Request) bool {
	return r.Method == http.MethodGet && headerHasToken(r.Header, "Connection", "upgrade") && headerHasToken(r.Header, "Upgrade", "websocket")
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

// request builds the stream's request from the path and the query,
// parsed the way grpc-gateway parses the range route's (camelCase or
// snake_case names, RFC 3339 times, repeated values; unknown parameters,
// such as the range-only endTime, are ignored).
func (m tailMatch) request(rawQuery string) (proto.Message, error) {
	values, err := url.ParseQuery(rawQuery)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, "malformed query string")
	}
	req := m.route.request.New().Interface()
	if err := gwruntime.PopulateQueryParameters(req, values, m.route.filter); err != nil {
		// The same wording grpc-gateway's handlers give, so apiError names
		// the parameter.
		return nil, status.Errorf(codes.InvalidArgument, "%v", err)
	}
	fields := req.ProtoReflect().Descriptor().Fields()
	for field, v := range m.params {
		req.ProtoReflect().Set(fields.ByName(protoreflect.Name(field)), protoreflect.ValueOfString(v))
	}
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
	Auth    string        `json:"auth"`
	Message string        `json:"message,omitempty"`
	Status  int           `json:"status,omitempty"`
	ID      apierr.Reason `json:"id,omitempty"`
	Details any           `json:"details,omitempty"`
}

// wsConn is one open WebSocket of the API's live channels (log tails,
// exec sessions): what they share, from the init message's credential to
// the last message.
type wsConn struct {
	g *Gateway
	r *http.Request
	c *websocket.Conn
}

// serveLogTail upgrades r and serves the tail until the stream ends, the
// client goes away or the gateway shuts down.
func (g *Gateway) serveLogTail(w http.ResponseWriter, r *http.Request, m tailMatch) {
	t, ctx, done := g.acceptWebSocket(w, r, m.label(), tailReadLimit)
	if t == nil {
		return
	}
	defer done()
	t.serveTail(ctx, m)
}

// acceptWebSocket upgrades r for a live channel labelled route in logs and
// metrics, taking client messages up to readLimit bytes. It returns the
// connection, a context that ends when the client's request does or the
// gateway shuts down, and what to call when done; nil when the handshake
// failed (answered with the HTTP error).
func (g *Gateway) acceptWebSocket(w http.ResponseWriter, r *http.Request, route string, readLimit int64) (*wsConn, context.Context, func()) {
	if x := exchangeOf(r.Context()); x != nil {
		x.route = route
	}
	// The server's read and write deadlines (SLIPWAY_HTTP_*_TIMEOUT) bound
	// a request and its answer; a tail outlives both. Lift them here
	// rather than rely on net/http's Hijack clearing them (it does today,
	// for HTTP/1.1): the tail bounds each message (tailWriteTimeout),
	// waits tailInitTimeout for its init and pings to find dead clients
	// instead.
	if err := httpserver.Stream(w); err != nil {
		g.log.WarnContext(r.Context(), "live channel: cannot lift the connection's deadlines", "error", err)
	}
	// Same-origin browsers and non-browser clients (which send no Origin)
	// are served; the credential is explicit, never ambient.
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{CompressionMode: websocket.CompressionDisabled})
	if err != nil {
		return nil, nil, nil // Accept answered the handshake with the HTTP error
	}
	c.SetReadLimit(readLimit)
	// r's context outlives a hijacked connection's client; the gateway's
	// own context ends channels at shutdown, which Shutdown does not reach.
	ctx, cancel := context.WithCancel(r.Context())
	stop := context.AfterFunc(g.ctx, cancel)
	return &wsConn{g: g, r: r, c: c}, ctx, func() {
		stop()
		cancel()
		_ = c.CloseNow()
	}
}

func (t *wsConn) serveTail(ctx context.Context, m tailMatch) {
	data, ok := t.readInit(ctx)
	if !ok {
		return
	}
	var init tailInit
	if err := json.Unmarshal(data, &init); err != nil || init.Type != "init" {
		t.violation(ctx, `the first message must be {"type":"init",...}`)
		return
	}
	authorization, ok := t.admitInit(ctx, init.Data.Auth.Type, init.Data.Auth.APIToken)
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

	req, err := m.request(t.r.URL.RawQuery)
	if err != nil {
		t.fail(ctx, err)
		return
	}
	md := forwardRequestID(ctx, t.r)
	if authorization != "" {
		md = metadata.Join(md, metadata.Pairs("authorization", authorization))
	}
	route := m.route
	stream, err := route.conn.NewStream(metadata.NewOutgoingContext(streamCtx, md), &grpc.StreamDesc{ServerStreams: true}, route.method)
	if err == nil {
		if err = stream.SendMsg(req); err == nil {
			err = stream.CloseSend()
		}
	}
	for err == nil {
		resp := route.response.New()
		if err = stream.RecvMsg(resp.Interface()); err != nil {
			break
		}
		var data bytes.Buffer
		if err := appendList(&data, resp.Get(route.lines).List()); err != nil {
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

// readInit waits up to tailInitTimeout for the first message and returns
// it; on a timeout, the client's leaving or a shutdown it closes the
// connection.
func (t *wsConn) readInit(ctx context.Context) (data []byte, ok bool) {
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
			return nil, false // gone, or over the read limit (closed with 1009)
		}
		return m.data, true
	case <-timer.C:
		t.violation(ctx, "no init message within "+t.g.tailInitTimeout.String())
		return nil, false
	case <-ctx.Done():
		_ = t.c.Close(websocket.StatusGoingAway, "server shutting down")
		return nil, false
	}
}

// admitInit admits the caller an init message names: its auth must be an
// apiToken (or absent, with the handshake's Authorization header).
func (t *wsConn) admitInit(ctx context.Context, authType, token string) (authorization string, ok bool) {
	if authType != "" && authType != "apiToken" {
		t.refuse(ctx, t.g.apiError(ctx, authz.Unauthenticated("unsupported auth type: send an apiToken")))
		return "", false
	}
	return t.admit(ctx, token)
}

// admit authenticates the caller and spends one request of its hourly
// quota, as guard does for other requests, and returns the Authorization
// value to send the component. A handshake with an Authorization header
// was admitted by guard already.
func (t *wsConn) admit(ctx context.Context, token string) (authorization string, ok bool) {
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
func (t *wsConn) keepalive(ctx context.Context) {
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
func (t *wsConn) send(ctx context.Context, typ string, data []byte) error {
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
func (t *wsConn) fail(ctx context.Context, err error) {
	if t.send(ctx, "error", mustMarshal(t.g.apiError(ctx, err))) == nil {
		_ = t.c.Close(websocket.StatusNormalClosure, "")
	}
}

// refuse answers the init with a failure and closes with a policy
// violation.
func (t *wsConn) refuse(ctx context.Context, e errorDetail) {
	reply := tailInitReply{Auth: "failed", Message: e.Message, Status: e.Status, ID: e.ID, Details: e.Details}
	if t.send(ctx, "init", mustMarshal(reply)) == nil {
		_ = t.c.Close(websocket.StatusPolicyViolation, "init refused")
	}
}

// violation reports a protocol violation (BAD_INIT, 400 in the message)
// and closes with 1008.
func (t *wsConn) violation(ctx context.Context, message string) {
	e := errorDetail{Status: http.StatusBadRequest, ID: apierr.ReasonBadInit, Message: message}
	if t.send(ctx, "error", mustMarshal(e)) == nil {
		_ = t.c.Close(websocket.StatusPolicyViolation, "protocol violation")
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
