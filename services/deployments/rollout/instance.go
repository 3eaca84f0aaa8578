package rollout

import (
	"context"
	"errors"
	"maps"
	"strings"
	"sync/atomic"
	"time"

	"github.com/slipwayhq/slipway/pkg/probe"
	"github.com/slipwayhq/slipway/pkg/runtime"
)

// instance is one instance of a service; only its service's loop touches
// it (pollErr excepted). Its workload changes when it is restarted; its
// name does not.
type instance struct {
	name     string
	rev      *revision
	wid      string // the workload running now; "" between restarts
	status   string
	restarts int
	created  time.Time // when the instance (its first workload) started
	// clock is when its time to become ready started: its creation, or
	// its adoption by this controller.
	clock time.Time
	// adopting: adopted and not probed ready (nor dead) yet.
	adopting bool
	// startedAt is when the current workload started.
	startedAt time.Time
	ports     map[string]string
	backoff   *probe.Backoff

	started, ready bool
	readySince     time.Time
	everReady      bool // stayed ready MinReady once: a rollout no longer waits on it
	crashed        bool // dead, waiting for its restart
	restartAt      time.Time
	why            string // why it died
	terminating    bool   // being stopped for good
	stopping       string // the workload being stopped

	prober *probe.Prober
	cancel context.CancelFunc // ends the goroutines watching the workload
	// logsDone is closed once the hooks have the workload's last line:
	// a workload is removed (and its logs with it) only then.
	logsDone <-chan struct{}
	pollErr  atomic.Value // string: why an instance without checks is not ready yet
}

// view is the instance as Instances shows it.
func (in *instance) view() Instance {
	return Instance{
		Name: in.name, WorkloadID: in.wid, ReleaseID: in.rev.rel.ID, Status: in.status, Ready: in.ready,
		Restarts: in.restarts, CreatedAt: in.created, Ports: maps.Clone(in.ports),
	}
}

// watch starts the goroutines of in's current workload: one waits for it
// to exit, one probes it (its health checks, or without any the first
// port accepting connections), one hands its logs to the hooks.
func (s *service) watch(in *instance) {
	wid, ports, rel := in.wid, in.ports, in.rev.rel
	ctx, cancel := context.WithCancel(s.ctx)
	in.cancel = cancel
	drv := s.c.opts.Driver

	s.c.wg.Add(1)
	go func() {
		defer s.c.wg.Done()
		st, err := drv.Wait(ctx, wid)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			st = runtime.Status{State: runtime.StateExited, ExitCode: -1, Reason: runtime.ReasonLost}
		}
		s.send(event{inst: in, wid: wid, kind: evExit, exit: st})
	}()

	// A port of the release is checked where the driver published it.
	addr := func(port int) (string, error) {
		for _, p := range rel.Ports {
			if p.Port == port && ports[p.Name] != "" {
				return ports[p.Name], nil
			}
		}
		return "", errors.New("port not published")
	}
	if checks := rel.HealthChecks; len(checks) > 0 && in.rev.known {
		exec := func(ctx context.Context, argv []string) (int, error) {
			return drv.Exec(ctx, wid, runtime.ExecSpec{Command: argv})
		}
		p, err := probe.NewProberAt(checks, addr, exec)
		if err != nil {
			// The deployments service validated the checks; a set the
			// prober still refuses leaves the instance never ready, and a
			// rollout of it fails saying so.
			s.c.log.Error("health checks refused", "service", s.id, "instance", in.name, "error", err)
			in.pollErr.Store("its health checks cannot run: " + err.Error())
		} else {
			in.prober = p
			s.c.wg.Add(1)
			go func() {
				defer s.c.wg.Done()
				go func() {
					<-ctx.Done()
					p.Stop()
				}()
				for ev := range p.Events() {
					select {
					case s.events <- event{inst: in, wid: wid, kind: evProbe, probe: ev}:
					case <-ctx.Done():
					}
				}
			}()
		}
	} else {
		s.c.wg.Add(1)
		go func() {
			defer s.c.wg.Done()
			s.pollReady(ctx, in, wid, rel, ports)
		}()
	}

	in.logsDone = s.pumpLogs(in.view(), true)
}

// pumpLogs hands a workload's lines to the hooks in a goroutine of its
// own (following them while it runs, with follow), and returns a channel
// closed once the hooks are done with them; nil when there are no hooks.
func (s *service) pumpLogs(view Instance, follow bool) <-chan struct{} {
	if _, discard := s.c.hooks.(noHooks); discard {
		return nil
	}
	done := make(chan struct{})
	ctx := s.ctx
	s.c.wg.Add(1)
	go func() {
		defer s.c.wg.Done()
		defer close(done)
		s.c.hooks.Logs(ctx, s.id, view, s.c.opts.Driver.Logs(ctx, view.WorkloadID, follow))
	}()
	return done
}

// logsGrace bounds how long removing a workload waits for its last lines
// to reach the hooks.
const logsGrace = 5 * time.Second

// awaitLogs waits until done is closed (nil: at once), at most logsGrace.
func awaitLogs(done <-chan struct{}) {
	if done == nil {
		return
	}
	t := time.NewTimer(logsGrace)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	}
}

// pollReady makes an instance without health checks ready once it runs
// and, when it has TCP ports, its first one accepts a connection (a
// server that takes a moment to listen gets no request before it does).
func (s *service) pollReady(ctx context.Context, in *instance, wid string, rel Release, ports map[string]string) {
	for _, p := range rel.Ports {
		if strings.EqualFold(p.Protocol, "UDP") {
			continue
		}
		addr := ports[p.Name]
		if addr == "" {
			in.pollErr.Store("its port " + p.Name + " is not published")
			return
		}
		check := probe.TCPCheckerAt(addr, p.Port)
		// Most servers listen within milliseconds: poll fast at first,
		// then every ReadyPoll.
		wait := min(10*time.Millisecond, s.c.opts.ReadyPoll)
		for {
			cctx, cancel := context.WithTimeout(ctx, time.Second)
			err := check.Check(cctx)
			cancel()
			if ctx.Err() != nil {
				return
			}
			if err == nil {
				break
			}
			in.pollErr.Store(err.Error())
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
			wait = min(2*wait, s.c.opts.ReadyPoll)
		}
		break
	}
	s.send(event{inst: in, wid: wid, kind: evReady})
}
