package gateway

// Exec sessions: Northflank's command-exec WebSocket,
// /v1/command-exec[/teams/{team_id}]/<route> for every component.Exec of
// the component table (a service's is
// /projects/{project_id}/services/{resource_id}), served from the
// bidirectional RPC it names (pkg/execstream on the component's side), the
// way @northflank/js-client's exec speaks it: 0.9.5, and 0.7.25 bundled in
// the CLI (`northflank exec`). Client frames (binary or text) hold one JSON
// object each:
//
//	{"type":"init","data":{"auth":{"type":"apiToken","apiToken":"<token>"},"context":{…}}}
//	{"type":"payload","data":"<standard input>"}
//	{"type":"stdInEnd"}
//	{"type":"resize","data":{"ttyRows":r,"ttyColumns":c}}
//
// The context is 0.9.5's {instanceName, containerName, command (string or
// array), shell, user, group, encoding, tty, ttyColumns, ttyRows} or the
// CLI's {containerId, command, shell, user, group, ttyColumns, ttyRows}.
// What runs (see execArgv): a command with shell "none" or none given runs
// as is (a string split into words like a job's customCommand); with a
// shell ("bash -c") the shell's words and the command's make one command
// line (so the CLI's --cmd '"ls -l /"' --shell-cmd 'bash -c' runs
// bash -c 'ls -l /'); without a command, an interactive shell (the given
// one, else bash where there is one, else sh). tty, when the client does
// not say (0.7.25), is on exactly for an interactive shell. With encoding
// "base64" (file copy) payloads and output are base64, else UTF-8 text.
//
// Server messages, one JSON object per text frame (0.7.25 parses each
// frame whole):
//
//	{"type":"init","data":{"auth":"successful","context":{"instanceName":…,"containerName":…}}}
//	{"type":"stdOut","data":"…"}  {"type":"stdErr","data":"…"}
//	{"type":"completion","data":{"exitCode":n,"status":"Success"|"Failure"|"Unknown"[,"message":…]}}
//	{"type":"error","data":{"status":…,"id":…,"message":…[,"details":…]}}
//
// The init answer waits until the component has authorized the session
// and found where it runs. Credentials that do not resolve, a spent quota
// or a refusal by the component's access rule: an init answer with auth
// "failed" (and status, id, message), close 1008. A bad context, an
// unknown project or service, no running instance: an error message,
// close 1000. A frame of no known type: an error message (BAD_INIT), close
// 1008, and the command is cancelled, as it is when the client goes away.
// After the completion: close 1000; the gateway shutting down: 1001.

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/coder/websocket"
	"github.com/mattn/go-shellwords"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	execv1 "github.com/slipwayhq/slipway/gen/slipway/exec/v1"
	"github.com/slipwayhq/slipway/pkg/apierr"
	"github.com/slipwayhq/slipway/pkg/component"
)

const (
	// execPrefix is where every exec route lives.
	execPrefix = "/v1/command-exec"
	// execReadLimit bounds a client frame: a payload of 64 KiB of standard
	// input, JSON-escaped.
	execReadLimit = 1 << 20
	// stdinChunk bounds the standard input of one message to the
	// component (ExecInput.stdin's limit).
	stdinChunk = 64 << 10
	// interactiveShell starts bash where the workload has it, else sh:
	// the CLI promises that "several standard shells will be attempted".
	interactiveShell = "if command -v bash >/dev/null 2>&1; then exec bash; fi; exec sh"
)

// execRoute is one exec route, compiled from a component.Exec.
type execRoute struct {
	// segments of the path below /v1/command-exec.
	segments []string
	method   string
	conn     grpc.ClientConnInterface
}

// newExecRoute checks e against the RPC it names: bidirectional, with
// slipway.exec.v1's messages, and a path with {project_id} and
// {resource_id}.
func newExecRoute(e component.Exec, conn grpc.ClientConnInterface) (execRoute, error) {
	name := protoreflect.FullName(strings.Replace(strings.TrimPrefix(e.Method, "/"), "/", ".", 1))
	d, err := protoregistry.GlobalFiles.FindDescriptorByName(name)
	if err != nil {
		return execRoute{}, fmt.Errorf("exec %s: %w", e.Method, err)
	}
	md, ok := d.(protoreflect.MethodDescriptor)
	in := (&execv1.ExecInput{}).ProtoReflect().Descriptor().FullName()
	out := (&execv1.ExecOutput{}).ProtoReflect().Descriptor().FullName()
	if !ok || !md.IsStreamingClient() || !md.IsStreamingServer() || md.Input().FullName() != in || md.Output().FullName() != out {
		return execRoute{}, fmt.Errorf("exec %s: not a bidirectional stream of %s and %s", e.Method, in, out)
	}
	r := execRoute{segments: strings.Split(strings.Trim(e.Path, "/"), "/"), method: e.Method, conn: conn}
	var params []string
	for _, seg := range r.segments {
		if p, ok := pathParam(seg); ok {
			params = append(params, p)
		}
	}
	if len(params) != 2 || !strings.Contains(e.Path, "{project_id}") || !strings.Contains(e.Path, "{resource_id}") {
		return execRoute{}, fmt.Errorf("exec %s: path %q needs exactly {project_id} and {resource_id}", e.Method, e.Path)
	}
	return r, nil
}

// execMatch is a request path matched to an exec route.
type execMatch struct {
	route                   *execRoute
	team, project, resource string
	teamScoped              bool
}

// label is the route's metrics and access-log label.
func (m execMatch) label() string { return wsRouteLabel(execPrefix, m.teamScoped, m.route.segments) }

// matchExec matches path, /v1/command-exec[/teams/{team_id}]/<route>,
// against the exec routes.
func (g *Gateway) matchExec(path string) (execMatch, bool) {
	rest, ok := strings.CutPrefix(path, execPrefix+"/")
	if !ok {
		return execMatch{}, false
	}
	s := strings.Split(rest, "/")
	var m execMatch
	if len(s) > 2 && s[0] == "teams" {
		if s[1] == "" {
			return execMatch{}, false
		}
		m.team, m.teamScoped, s = s[1], true, s[2:]
	}
	for i := range g.execs {
		r := &g.execs[i]
		if params, ok := r.match(s, map[string]string{}); ok {
			m.route, m.project, m.resource = r, params["project_id"], params["resource_id"]
			return m, true
		}
	}
	return execMatch{}, false
}

// match is tailRoute.match for exec routes.
func (r *execRoute) match(s []string, base map[string]string) (map[string]string, bool) {
	return (&tailRoute{segments: r.segments}).match(s, base)
}

// isLive reports whether r is a WebSocket handshake for a live channel
// (a log tail or an exec session), whose credential comes in its first
// message.
func (g *Gateway) isLive(r *http.Request) bool {
	if !isWebSocket(r) {
		return false
	}
	if _, ok := g.matchTail(r.URL.Path); ok {
		return true
	}
	_, ok := g.matchExec(r.URL.Path)
	return ok
}

// execInit is the client's first message.
type execInit struct {
	Type string `json:"type"`
	Data struct {
		Auth struct {
			Type     string `json:"type"`
			APIToken string `json:"apiToken"`
		} `json:"auth"`
		Context execContext `json:"context"`
	} `json:"data"`
}

// execContext is the init's context, of either client version. Unknown
// fields (the HTTP/2 transport's teamId, projectId, serviceId, which the
// path says here) are ignored.
type execContext struct {
	InstanceName  string          `json:"instanceName"`
	ContainerName string          `json:"containerName"`
	ContainerID   string          `json:"containerId"` // 0.7.25's name for the CLI's --container
	Command       json.RawMessage `json:"command"`
	Shell         string          `json:"shell"`
	User          json.RawMessage `json:"user"`
	Group         json.RawMessage `json:"group"`
	Encoding      string          `json:"encoding"`
	TTY           *bool           `json:"tty"`
	TTYColumns    *uint32         `json:"ttyColumns"`
	TTYRows       *uint32         `json:"ttyRows"`
}

// start builds the session's start from the context, or says which field
// is wrong.
func (c execContext) start(resource string) (*execv1.ExecStart, error) {
	user, err := stringOrNumber(c.User)
	if err != nil {
		return nil, apierr.InvalidField("context.user", "must be a string or a number")
	}
	group, err := stringOrNumber(c.Group)
	if err != nil {
		return nil, apierr.InvalidField("context.group", "must be a string or a number")
	}
	argv, interactive, err := execArgv(c.Command, c.Shell)
	if err != nil {
		return nil, err
	}
	tty := interactive
	if c.TTY != nil {
		tty = *c.TTY
	}
	instance := c.InstanceName
	if instance == "" {
		instance = c.ContainerID
	}
	s := &execv1.ExecStart{ResourceId: resource, Instance: instance, Container: c.ContainerName, Command: argv, User: user, Group: group, Tty: tty}
	if c.TTYColumns != nil || c.TTYRows != nil {
		s.Size = &execv1.TerminalSize{Cols: deref(c.TTYColumns), Rows: deref(c.TTYRows)}
	}
	return s, nil
}

func deref(p *uint32) uint32 {
	if p == nil {
		return 0
	}
	return *p
}

// stringOrNumber reads the context's user or group: a name or an id.
func stringOrNumber(raw json.RawMessage) (string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, nil
	}
	var n json.Number
	if err := json.Unmarshal(raw, &n); err != nil {
		return "", err
	}
	return n.String(), nil
}

// execArgv makes the command's argv from the context's command and shell,
// and reports whether it is an interactive shell (no command).
func execArgv(rawCommand json.RawMessage, shell string) (argv []string, interactive bool, err error) {
	var words []string // the command as a list, or split into words
	var line string    // the command as the client wrote it
	switch {
	case len(rawCommand) == 0 || string(rawCommand) == "null":
	case rawCommand[0] == '"':
		if err := json.Unmarshal(rawCommand, &line); err != nil {
			return nil, false, apierr.InvalidField("context.command", "must be a string or an array of strings")
		}
		if strings.TrimSpace(line) != "" {
			if words, err = shellwords.Parse(line); err != nil {
				return nil, false, apierr.InvalidField("context.command", "is not a valid command line (unbalanced quotes)")
			}
		}
	default:
		if err := json.Unmarshal(rawCommand, &words); err != nil {
			return nil, false, apierr.InvalidField("context.command", "must be a string or an array of strings")
		}
		if len(words) > 0 && words[0] == "" {
			return nil, false, apierr.InvalidField("context.command", "must not start with an empty program name")
		}
	}
	shell = strings.TrimSpace(shell)
	var shellWords []string
	if shell != "" && shell != "none" {
		if shellWords, err = shellwords.Parse(shell); err != nil || len(shellWords) == 0 {
			return nil, false, apierr.InvalidField("context.shell", "is not a valid command line")
		}
	}
	switch {
	case len(words) == 0 && shell == "none":
		return nil, false, apierr.InvalidField("context.command", `is required with shell "none"`)
	case len(words) == 0 && shellWords == nil:
		return []string{"/bin/sh", "-c", interactiveShell}, true, nil
	case len(words) == 0:
		return shellWords, true, nil
	case shellWords == nil:
		return words, false, nil
	case line != "":
		// One command line, split as the client's shell would: the CLI's
		// documented --cmd '"ls -l /"' --shell-cmd 'bash -c' is
		// bash -c 'ls -l /'.
		all, err := shellwords.Parse(shell + " " + line)
		if err != nil {
			return nil, false, apierr.InvalidField("context.command", "is not a valid command line (unbalanced quotes)")
		}
		return all, false, nil
	default:
		return append(shellWords, words...), false, nil
	}
}

// execFrame is a client message after the init.
type execFrame struct {
	Type string          `json:"type"`
	Data json.RawMessage `json:"data"`
}

// execSize is a resize frame's data; a missing side keeps its size.
type execSize struct {
	Rows *uint32 `json:"ttyRows"`
	Cols *uint32 `json:"ttyColumns"`
}

// serveExec upgrades r and serves one exec session.
func (g *Gateway) serveExec(w http.ResponseWriter, r *http.Request, m execMatch) {
	t, ctx, done := g.acceptWebSocket(w, r, m.label(), execReadLimit)
	if t == nil {
		return
	}
	defer done()
	t.serveExec(ctx, m)
}

func (t *wsConn) serveExec(ctx context.Context, m execMatch) {
	data, ok := t.readInit(ctx)
	if !ok {
		return
	}
	var init execInit
	if err := json.Unmarshal(data, &init); err != nil || init.Type != "init" {
		t.violation(ctx, `the first message must be {"type":"init","data":{"auth":…,"context":…}}`)
		return
	}
	authorization, ok := t.admitInit(ctx, init.Data.Auth.Type, init.Data.Auth.APIToken)
	if !ok {
		return
	}
	base64Encoded := false
	switch strings.ToLower(init.Data.Context.Encoding) {
	case "", "utf8", "utf-8":
	case "base64":
		base64Encoded = true
	default:
		t.fail(ctx, apierr.InvalidField("context.encoding", `must be "utf-8" or "base64"`))
		return
	}
	start, err := init.Data.Context.start(m.resource)
	if err != nil {
		t.fail(ctx, err)
		return
	}

	// The session's stream ends when the client goes away (the reader
	// below cancels it), at shutdown (ctx) or with the command.
	streamCtx, stopStream := context.WithCancel(ctx)
	defer stopStream()
	md := forwardRequestID(ctx, t.r)
	if authorization != "" {
		md = metadata.Join(md, metadata.Pairs("authorization", authorization))
	}
	stream, err := m.route.conn.NewStream(metadata.NewOutgoingContext(streamCtx, md),
		&grpc.StreamDesc{ClientStreams: true, ServerStreams: true}, m.route.method)
	if err == nil {
		err = stream.SendMsg(&execv1.ExecInput{TeamId: m.team, ProjectId: m.project, Input: &execv1.ExecInput_Start{Start: start}})
	}
	if err != nil && !errors.Is(err, io.EOF) { // EOF: the status follows on RecvMsg
		t.fail(ctx, err)
		return
	}

	// Client frames are read from here on (answering pings, noticing the
	// close) and forwarded in order; the first frame that breaks the
	// protocol ends the session.
	var wg sync.WaitGroup
	defer wg.Wait() // after stopStream
	defer stopStream()
	var (
		mu        sync.Mutex
		violation string // what the client did wrong, if it did
		gone      bool   // the client closed or dropped the connection
	)
	wg.Go(func() {
		bad, err := t.forwardInput(streamCtx, stream, base64Encoded, start.GetSize())
		mu.Lock()
		violation, gone = bad, err != nil
		mu.Unlock()
		if bad != "" || err != nil {
			stopStream()
		}
	})
	wg.Go(func() { t.keepalive(streamCtx) })

	out := execOutput{t: t, base64: base64Encoded}
	started := false
	for {
		var msg execv1.ExecOutput
		err := stream.RecvMsg(&msg)
		if err == nil {
			if err = out.handle(ctx, &msg, &started); err == nil {
				continue
			}
			return // the client is not taking messages: nothing more to say
		}
		mu.Lock()
		bad, left := violation, gone
		mu.Unlock()
		switch {
		case bad != "":
			t.violation(ctx, bad)
		case ctx.Err() != nil:
			_ = t.c.Close(websocket.StatusGoingAway, "server shutting down")
		case left:
			// The client went away: nobody to tell.
		case errors.Is(err, io.EOF) && out.completed:
			_ = t.c.Close(websocket.StatusNormalClosure, "")
		case errors.Is(err, io.EOF):
			// A component ending without an exit: the client must not take
			// it for a command that succeeded.
			if out.send(ctx, "completion", mustMarshal(execCompletion{ExitCode: -1, Status: "Unknown", Message: "the session ended without the command's exit status"})) == nil {
				_ = t.c.Close(websocket.StatusNormalClosure, "")
			}
		case !started && isRefusal(err):
			t.refuse(ctx, t.g.apiError(ctx, err))
		default:
			t.fail(ctx, err)
		}
		return
	}
}

// isRefusal reports whether the component refused the caller (the init
// answer says so) rather than the request.
func isRefusal(err error) bool {
	c := status.Code(err)
	return c == codes.Unauthenticated || c == codes.PermissionDenied
}

// forwardInput reads client frames until the connection ends and sends
// them to the component. It returns what broke the protocol, or the
// connection's end (the client closed or went away).
func (t *wsConn) forwardInput(ctx context.Context, stream grpc.ClientStream, base64Encoded bool, size *execv1.TerminalSize) (violation string, err error) {
	rows, cols := size.GetRows(), size.GetCols()
	sendStdin := func(data []byte) {
		for len(data) > 0 {
			n := min(len(data), stdinChunk)
			_ = stream.SendMsg(&execv1.ExecInput{Input: &execv1.ExecInput_Stdin{Stdin: data[:n]}})
			data = data[n:]
		}
	}
	for {
		// Not cancelled by ctx, which would drop the connection without
		// the close frame a shutdown or a violation sends.
		_, data, err := t.c.Read(context.WithoutCancel(ctx))
		if err != nil {
			return "", err
		}
		var f execFrame
		if err := json.Unmarshal(data, &f); err != nil {
			return "a message must be a JSON object {\"type\":…}", nil
		}
		// A send error means the session is over; its status comes to
		// the other loop.
		switch f.Type {
		case "payload":
			var text string
			if err := json.Unmarshal(f.Data, &text); err != nil {
				return `a payload's data must be a string`, nil
			}
			input := []byte(text)
			if base64Encoded {
				if input, err = decodeBase64(text); err != nil {
					return `a payload's data must be base64 (the session's encoding)`, nil
				}
			}
			sendStdin(input)
		case "stdInEnd":
			_ = stream.SendMsg(&execv1.ExecInput{Input: &execv1.ExecInput_StdinEnd{StdinEnd: true}})
		case "resize":
			var s execSize
			if err := json.Unmarshal(f.Data, &s); err != nil {
				return `a resize's data must be {"ttyRows":n,"ttyColumns":n}`, nil
			}
			if s.Rows != nil {
				rows = *s.Rows
			}
			if s.Cols != nil {
				cols = *s.Cols
			}
			_ = stream.SendMsg(&execv1.ExecInput{Input: &execv1.ExecInput_Resize{Resize: &execv1.TerminalSize{Rows: min(rows, 65535), Cols: min(cols, 65535)}}})
		default:
			return fmt.Sprintf("unknown message type %s: want payload, stdInEnd or resize", strconv.Quote(f.Type)), nil
		}
	}
}

// decodeBase64 decodes a payload, padded or not.
func decodeBase64(s string) ([]byte, error) {
	if b, err := base64.StdEncoding.DecodeString(s); err == nil {
		return b, nil
	}
	return base64.RawStdEncoding.DecodeString(strings.TrimRight(s, "="))
}

// execCompletion is the completion message's data.
type execCompletion struct {
	ExitCode int32  `json:"exitCode"`
	Status   string `json:"status"`
	Message  string `json:"message,omitempty"`
}

// execInitReply is the data of a successful init answer.
type execInitReply struct {
	Auth    string            `json:"auth"`
	Context map[string]string `json:"context"`
}

// execOutput turns the component's messages into the client's.
type execOutput struct {
	t              *wsConn
	base64         bool
	stdout, stderr utf8Carry
	completed      bool
}

func (o *execOutput) send(ctx context.Context, typ string, data []byte) error {
	return o.t.send(ctx, typ, data)
}

// handle sends what msg says; an error means the client is gone.
func (o *execOutput) handle(ctx context.Context, msg *execv1.ExecOutput, started *bool) error {
	switch x := msg.GetOutput().(type) {
	case *execv1.ExecOutput_Started:
		*started = true
		return o.send(ctx, "init", mustMarshal(execInitReply{Auth: "successful", Context: map[string]string{
			"instanceName": x.Started.GetInstance(), "containerName": x.Started.GetContainer(),
		}}))
	case *execv1.ExecOutput_Stdout:
		return o.output(ctx, "stdOut", &o.stdout, x.Stdout)
	case *execv1.ExecOutput_Stderr:
		return o.output(ctx, "stdErr", &o.stderr, x.Stderr)
	case *execv1.ExecOutput_Exit:
		for _, c := range []struct {
			typ   string
			carry *utf8Carry
		}{{"stdOut", &o.stdout}, {"stdErr", &o.stderr}} {
			if rest := c.carry.flush(); rest != "" {
				if err := o.send(ctx, c.typ, mustMarshal(rest)); err != nil {
					return err
				}
			}
		}
		status := "Success"
		if x.Exit.GetCode() != 0 {
			status = "Failure"
		}
		o.completed = true
		return o.send(ctx, "completion", mustMarshal(execCompletion{ExitCode: x.Exit.GetCode(), Status: status, Message: x.Exit.GetMessage()}))
	}
	return nil
}

func (o *execOutput) output(ctx context.Context, typ string, carry *utf8Carry, data []byte) error {
	var text string
	if o.base64 {
		text = base64.StdEncoding.EncodeToString(data)
	} else if text = carry.decode(data); text == "" {
		return nil
	}
	return o.send(ctx, typ, mustMarshal(text))
}

// utf8Carry turns a byte stream cut into chunks into UTF-8 text: a
// character split between two chunks is kept until its end arrives, and
// bytes that are not UTF-8 become U+FFFD.
type utf8Carry struct{ pending []byte }

func (c *utf8Carry) decode(p []byte) string {
	b := append(c.pending, p...)
	cut := len(b)
	for i := len(b) - 1; i >= 0 && i >= len(b)-utf8.UTFMax+1; i-- {
		if utf8.RuneStart(b[i]) {
			if !utf8.FullRune(b[i:]) {
				cut = i
			}
			break
		}
	}
	c.pending = append([]byte(nil), b[cut:]...)
	return strings.ToValidUTF8(string(b[:cut]), "\uFFFD")
}

// flush returns what is left, at the end of the stream.
func (c *utf8Carry) flush() string {
	rest := strings.ToValidUTF8(string(c.pending), "\uFFFD")
	c.pending = nil
	return rest
}
