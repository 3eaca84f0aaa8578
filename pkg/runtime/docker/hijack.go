package docker

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/docker/docker/client"

	"github.com/slipwayhq/slipway/pkg/runtime"
)

// execConn is a started exec session's hijacked connection: the command's
// output is read from r (what the engine sent after its answer included),
// its input written to conn.
type execConn struct {
	conn net.Conn
	r    *bufio.Reader
}

// closeWrite ends the command's standard input (a half-close).
func (c *execConn) closeWrite() error {
	if cw, ok := c.conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return fmt.Errorf("docker: exec: the engine connection cannot be half-closed")
}

// startExec starts exec session execID and hijacks its connection. It is
// the client's ContainerExecAttach but for the body: Podman 4.3 sizes a
// session's terminal before the command starts from "h" and "w" in it,
// which the client cannot send (and it drops ConsoleSize, Docker's way,
// for the API 1.41 Podman 4.3 speaks); without them the command starts on
// a terminal of no size and only a resize, racing with it, fixes that.
// Docker ignores "h" and "w" and honours ConsoleSize from API 1.42.
func (d *Driver) startExec(ctx context.Context, execID string, tty bool, size runtime.TermSize) (*execConn, error) {
	body := map[string]any{"Detach": false, "Tty": tty}
	if tty && size != (runtime.TermSize{}) {
		body["h"], body["w"] = size.Rows, size.Cols
		body["ConsoleSize"] = [2]uint{uint(size.Rows), uint(size.Cols)}
	}
	b, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	path := "/exec/" + url.PathEscape(execID) + "/start"
	if v := d.cli.ClientVersion(); v != "" {
		path = "/v" + v + path
	}
	host := client.DummyHost
	if u, err := url.Parse(d.cli.DaemonHost()); err == nil && u.Scheme != "unix" && u.Scheme != "npipe" && u.Host != "" {
		host = u.Host
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+host+path, bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "tcp")

	conn, err := d.cli.Dialer()(ctx)
	if err != nil {
		return nil, fmt.Errorf("connecting to the engine: %w", err)
	}
	// Until the answer is in, ctx ends the attempt.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	br := bufio.NewReader(conn)
	resp, err := func() (*http.Response, error) {
		if err := req.Write(conn); err != nil {
			return nil, err
		}
		return http.ReadResponse(br, req)
	}()
	if !stop() {
		conn.Close()
		return nil, ctx.Err()
	}
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("starting the session: %w", err)
	}
	// Docker and Podman 4.3 answer 101 (Upgrade: tcp); engines before
	// API 1.24 answered 200 and streamed all the same.
	if resp.StatusCode != http.StatusSwitchingProtocols && resp.StatusCode != http.StatusOK {
		defer conn.Close()
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		var e struct {
			Message string `json:"message"`
		}
		if json.Unmarshal(msg, &e) == nil && e.Message != "" {
			msg = []byte(e.Message)
		}
		return nil, &startError{status: resp.StatusCode, msg: strings.TrimSpace(string(msg))}
	}
	return &execConn{conn: conn, r: br}, nil
}

// startError is the engine's refusal to start an exec session.
type startError struct {
	status int
	msg    string
}

func (e *startError) Error() string {
	return fmt.Sprintf("starting the session: %d %s", e.status, e.msg)
}
