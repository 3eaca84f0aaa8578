// Package execstream serves exec sessions, the component side of the
// gateway's command-exec WebSocket: a bidirectional stream of
// slipway.exec.v1 messages bridged to a runtime.ExecSpec. A component
// that runs workloads declares an RPC with those messages, lists it in its
// row (component.API.Exec), and implements it in one call:
//
//	func (s *server) ExecService(stream deploymentsv1.DeploymentsService_ExecServiceServer) error {
//		return execstream.Serve(stream, s.execTarget)
//	}
//
// where execTarget finds the running instance the first message names.
// Serve does the rest: the command's standard input from stdin and
// stdin_end messages, terminal sizes from resize messages, its output as
// stdout and stderr messages (sent as soon as the previous message is on
// its way, so small writes go out at once and a fast writer is batched),
// and its exit. The command is cancelled when the caller goes away.
package execstream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	execv1 "github.com/slipwayhq/slipway/gen/slipway/exec/v1"
	"github.com/slipwayhq/slipway/pkg/apierr"
	"github.com/slipwayhq/slipway/pkg/runtime"
)

// Stream is the server side of an exec RPC.
type Stream = grpc.BidiStreamingServer[execv1.ExecInput, execv1.ExecOutput]

// Target is where a session runs, as the component resolved it.
type Target struct {
	// Instance and Container name it to the caller (the started message).
	Instance, Container string
	// Run runs the command there and returns its exit code once it ends,
	// as runtime.Driver.Exec does (ErrNotRunning when the instance no
	// longer runs). Cancelling ctx must kill the command.
	Run func(ctx context.Context, spec runtime.ExecSpec) (int, error)
}

// Resolve finds where the session that first starts runs: first has a
// start, and its team and project passed the component's authorizer. It
// returns the component's own errors (apierr: not found, not running).
type Resolve func(ctx context.Context, first *execv1.ExecInput) (Target, error)

const (
	// ChunkBytes bounds the data of one output message.
	ChunkBytes = 32 << 10
	// stdinQueue is how many stdin messages wait for the command to read
	// them (at most 64 KiB each, ExecInput's limit).
	stdinQueue = 16
	// maxPending bounds output waiting to be sent: past it the command's
	// writes wait, which slows a command writing faster than the caller
	// reads instead of buffering without bound.
	maxPending = 1 << 20
)

// Serve runs one session on stream: it reads the start, resolves the
// target, says started, runs the command and reports its exit. Errors
// are apierr errors (or the stream's own), for the interceptor chain to
// send as the RPC's status.
func Serve(stream Stream, resolve Resolve) error {
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	// The context is taken once the first message is in: the interceptor
	// chain authorizes that message and only then puts who the caller is
	// (its grant) into the stream's context, which resolve needs.
	ctx, cancel := context.WithCancelCause(stream.Context())
	defer cancel(nil)
	start := first.GetStart()
	if start == nil {
		return apierr.InvalidField("start", "the first message of a session must start it")
	}
	if start.GetUser() != "" || start.GetGroup() != "" {
		field := "user"
		if start.GetUser() == "" {
			field = "group"
		}
		return apierr.InvalidField(field, "not supported: commands run as the workload's own user and group")
	}
	// Input is taken from here on, while the target is resolved and
	// before the caller has read started: a caller may send input first
	// (the js clients do), and an in-process stream holds a Send until
	// the other side receives it. The receiver lives until the stream
	// ends; it ends the session on a message that breaks the protocol.
	stdin, stdinW := io.Pipe()
	resize := make(chan runtime.TermSize, 1)
	queue := make(chan []byte, stdinQueue)
	go feed(queue, stdinW)
	go func() {
		if err := receive(stream, queue, resize); err != nil {
			cancel(err)
		}
	}()

	target, err := resolve(ctx, first)
	if err != nil {
		return runError(err, "")
	}
	if target.Run == nil {
		return fmt.Errorf("execstream: the target of %q has no Run", start.GetResourceId())
	}
	if err := stream.Send(&execv1.ExecOutput{Output: &execv1.ExecOutput_Started{Started: &execv1.ExecStarted{
		Instance: target.Instance, Container: target.Container,
	}}}); err != nil {
		return err
	}

	out := newOutput(stream)
	spec := runtime.ExecSpec{
		Command: start.GetCommand(),
		Env:     start.GetEnv(),
		Stdin:   stdin,
		Stdout:  out.writer(false),
		Stderr:  out.writer(true),
		TTY:     start.GetTty(),
		Size:    termSize(start.GetSize()),
		Resize:  resize,
	}
	code, runErr := target.Run(ctx, spec)
	// Unblocks a feeder writing input nobody reads any more.
	_ = stdin.CloseWithError(io.ErrClosedPipe)
	sendErr := out.close()
	if cause := context.Cause(ctx); cause != nil && ctx.Err() != nil && !errors.Is(cause, context.Canceled) {
		return cause // the caller broke the protocol
	}
	if err := stream.Context().Err(); err != nil {
		return err // the caller went away: nobody to tell
	}
	if runErr != nil {
		return runError(runErr, target.Instance)
	}
	if sendErr != nil {
		return sendErr
	}
	if code > math.MaxInt32 || code < math.MinInt32 {
		code = -1
	}
	return stream.Send(&execv1.ExecOutput{Output: &execv1.ExecOutput_Exit{Exit: &execv1.ExecExit{Code: int32(code)}}})
}

// runError maps what resolving or running returned onto the API's
// vocabulary: apierr errors pass, the runtime's sentinels say what they
// mean without internals, anything else is internal (logged by the chain,
// never shown).
func runError(err error, instance string) error {
	switch {
	case apierr.From(err) != nil:
		return err
	case errors.Is(err, runtime.ErrNotRunning), errors.Is(err, runtime.ErrNotFound):
		if instance != "" {
			return apierr.Conflict(apierr.ReasonNotRunning, "instance %q is not running: it may have stopped or been replaced; retry to pick a running one", instance)
		}
		return apierr.Conflict(apierr.ReasonNotRunning, "there is no running instance to run the command in")
	case errors.Is(err, runtime.ErrUnsupported):
		return &apierr.Error{Code: codes.Unimplemented, Reason: apierr.ReasonExecUnsupported,
			Message: "this installation's workload runtime cannot run commands inside workloads"}
	}
	return err
}

// receive turns the caller's later messages into standard input (queued
// for feed) and terminal sizes until the stream ends. It returns an error
// for a message that breaks the protocol, nil otherwise.
func receive(stream Stream, queue chan<- []byte, resize chan runtime.TermSize) error {
	ended := false
	end := func() {
		if !ended {
			ended = true
			close(queue) // the command reads EOF once the queue is drained
		}
	}
	defer end() // no more input
	for {
		in, err := stream.Recv()
		if err != nil {
			return nil // EOF: the caller sends no more; else the stream is over
		}
		if in.GetTeamId() != "" || in.GetProjectId() != "" || in.GetStart() != nil {
			return apierr.InvalidField("start", "only the first message of a session starts it")
		}
		switch x := in.GetInput().(type) {
		case *execv1.ExecInput_Stdin:
			if ended {
				return apierr.InvalidField("stdin", "standard input was already ended")
			}
			// Waits while the queue is full, until the command reads: a
			// caller cannot queue more input than that.
			select {
			case queue <- x.Stdin:
			case <-stream.Context().Done():
				return nil
			}
		case *execv1.ExecInput_StdinEnd:
			if x.StdinEnd {
				end()
			}
		case *execv1.ExecInput_Resize:
			latest(resize, termSize(x.Resize))
		default:
			return apierr.InvalidField("input", "a message must carry stdin, stdin_end or resize")
		}
	}
}

// feed writes the queued input to the command's standard input and closes
// it when the queue is closed. Once the command is gone (the pipe closed)
// it drains the queue, so the receiver never waits on it.
func feed(queue <-chan []byte, stdin *io.PipeWriter) {
	for data := range queue {
		_, _ = stdin.Write(data)
	}
	_ = stdin.Close()
}

// latest puts size in ch, replacing a size the command has not taken yet:
// only the last one matters, and the receiver must not wait on a command
// that never reads sizes (one without a terminal).
func latest(ch chan runtime.TermSize, size runtime.TermSize) {
	for {
		select {
		case ch <- size:
			return
		default:
		}
		select {
		case <-ch:
		default:
		}
	}
}

func termSize(s *execv1.TerminalSize) runtime.TermSize {
	return runtime.TermSize{Rows: uint16(min(s.GetRows(), math.MaxUint16)), Cols: uint16(min(s.GetCols(), math.MaxUint16))}
}

// output sends what the command writes, in order, from one goroutine (a
// stream's Send is not safe for concurrent use). Writes queue as segments,
// adjacent ones of the same stream merged up to ChunkBytes; the sender
// takes the oldest as soon as its previous Send returns, so output goes
// out at once when the caller keeps up and in larger messages when the
// command writes faster.
type output struct {
	stream Stream
	mu     sync.Mutex
	cond   *sync.Cond
	queue  []segment
	size   int
	ending bool  // close was called: send what is queued, then stop
	err    error // a Send failed: writes fail from now on
	done   chan struct{}
}

type segment struct {
	stderr bool
	data   []byte
}

func newOutput(stream Stream) *output {
	o := &output{stream: stream, done: make(chan struct{})}
	o.cond = sync.NewCond(&o.mu)
	go o.send()
	return o
}

// writer is the command's stdout (false) or stderr (true).
func (o *output) writer(stderr bool) io.Writer {
	return writerFunc(func(p []byte) (int, error) { return o.write(stderr, p) })
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func (o *output) write(stderr bool, p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for o.size >= maxPending && o.err == nil {
		o.cond.Wait()
	}
	if o.err != nil {
		return 0, o.err
	}
	if o.ending {
		return 0, io.ErrClosedPipe
	}
	n := len(p)
	for len(p) > 0 {
		if last := len(o.queue) - 1; last >= 0 && o.queue[last].stderr == stderr && len(o.queue[last].data) < ChunkBytes {
			take := min(len(p), ChunkBytes-len(o.queue[last].data))
			o.queue[last].data = append(o.queue[last].data, p[:take]...)
			p = p[take:]
			continue
		}
		take := min(len(p), ChunkBytes)
		o.queue = append(o.queue, segment{stderr: stderr, data: append(make([]byte, 0, take), p[:take]...)})
		p = p[take:]
	}
	o.size += n
	o.cond.Broadcast()
	return n, nil
}

func (o *output) send() {
	defer close(o.done)
	for {
		o.mu.Lock()
		for len(o.queue) == 0 && !o.ending {
			o.cond.Wait()
		}
		if len(o.queue) == 0 {
			o.mu.Unlock()
			return
		}
		seg := o.queue[0]
		o.queue = o.queue[1:]
		o.mu.Unlock()

		msg := &execv1.ExecOutput{Output: &execv1.ExecOutput_Stdout{Stdout: seg.data}}
		if seg.stderr {
			msg.Output = &execv1.ExecOutput_Stderr{Stderr: seg.data}
		}
		err := o.stream.Send(msg)

		o.mu.Lock()
		o.size -= len(seg.data)
		if err != nil {
			o.err = err
			o.queue = nil
		}
		o.cond.Broadcast()
		o.mu.Unlock()
		if err != nil {
			return
		}
	}
}

// close sends what is queued and stops the sender; it returns the error
// of a Send that failed.
func (o *output) close() error {
	o.mu.Lock()
	o.ending = true
	o.cond.Broadcast()
	o.mu.Unlock()
	<-o.done
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.err
}
