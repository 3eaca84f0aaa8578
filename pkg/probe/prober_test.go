package probe

import (
	"context"
	"io"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// The scheduling tests run in a synctest bubble: time is fake and only
// moves when every goroutine of the bubble is blocked, so periods of
// seconds take no real time, and the bubble fails the test if a goroutine
// is left behind. Their checks are CMD checks whose exec is a script:
// argv[0] names the check, the script says how it answers.

type script struct {
	mu    sync.Mutex
	code  map[string]int // exit code by check name; missing = 0
	hang  map[string]bool
	flap  map[string]bool            // fails every other call
	calls map[string][]time.Duration // since the script was made
	t0    time.Time
}

func newScript() *script {
	return &script{code: map[string]int{}, hang: map[string]bool{}, flap: map[string]bool{}, calls: map[string][]time.Duration{}, t0: time.Now()}
}

func (s *script) set(name string, code int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.code[name] = code
}

func (s *script) exec(ctx context.Context, argv []string) (int, error) {
	s.mu.Lock()
	name := argv[0]
	s.calls[name] = append(s.calls[name], time.Since(s.t0))
	hang, code := s.hang[name], s.code[name]
	if s.flap[name] {
		code = len(s.calls[name]) % 2
	}
	s.mu.Unlock()
	if hang {
		<-ctx.Done()
		return -1, ctx.Err()
	}
	return code, nil
}

func (s *script) callTimes(name string) []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration(nil), s.calls[name]...)
}

func cmdCheck(typ Type, name string, delay, period, failures, successes int) HealthCheck {
	return HealthCheck{Protocol: CMD, Type: typ, Cmd: name, InitialDelaySeconds: delay,
		PeriodSeconds: period, TimeoutSeconds: 1, FailureThreshold: failures, SuccessThreshold: successes}
}

// next returns the next event, failing if none comes within an hour of
// (fake) time.
func next(t *testing.T, p *Prober) Event {
	t.Helper()
	select {
	case ev, ok := <-p.Events():
		if !ok {
			t.Fatal("events closed")
		}
		return ev
	case <-time.After(time.Hour):
		t.Fatal("no event within an hour")
	}
	return Event{}
}

// expect reads events and checks their kinds and the (fake) time since t0
// at which they happened.
func expect(t *testing.T, p *Prober, t0 time.Time, want ...any) {
	t.Helper()
	for i := 0; i < len(want); i += 2 {
		ev := next(t, p)
		kind, at := want[i].(Kind), want[i+1].(time.Duration)
		if ev.Kind != kind || ev.At.Sub(t0) != at {
			t.Fatalf("event %d: %s at %v (%+v), want %s at %v", i/2, ev.Kind, ev.At.Sub(t0), ev, kind, at)
		}
	}
}

// quiet checks that no event comes during d.
func quiet(t *testing.T, p *Prober, d time.Duration) {
	t.Helper()
	time.Sleep(d)
	synctest.Wait()
	select {
	case ev := <-p.Events():
		t.Fatalf("unexpected event %+v", ev)
	default:
	}
}

func newProber(t *testing.T, s *script, checks ...HealthCheck) *Prober {
	t.Helper()
	if err := Validate("healthChecks", checks, nil); err != nil {
		t.Fatalf("invalid test checks: %v", err)
	}
	p, err := NewProber(checks, s.exec)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestProberWithoutChecksIsReadyAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		t0 := time.Now()
		p := newProber(t, newScript())
		defer p.Stop()
		expect(t, p, t0, Started, time.Duration(0), Live, time.Duration(0), Ready, time.Duration(0))
		if st := p.State(); !st.Started || !st.Ready || st.Dead || st.Generation != 1 {
			t.Fatalf("state %+v", st)
		}
		quiet(t, p, time.Hour)
	})
}

// Liveness and readiness checks wait for the startup check; their initial
// delays still count from the instance's start.
func TestProberStartupGatesLivenessAndReadiness(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newScript()
		s.set("start", 1)
		t0 := time.Now()
		p := newProber(t, s,
			cmdCheck(Startup, "start", 0, 2, 10, 1),
			cmdCheck(Liveness, "live", 0, 3, 3, 1),
			cmdCheck(Readiness, "ready", 5, 2, 3, 2),
		)
		defer p.Stop()
		time.Sleep(3 * time.Second) // startup ran at 0 and 2 s, failing
		s.set("start", 0)           // passes at 4 s
		expect(t, p, t0, Started, 4*time.Second, Live, 4*time.Second)
		// readiness: first run at its initial delay (5 s), ready after two
		// successes in a row (7 s)
		expect(t, p, t0, Ready, 7*time.Second)
		if got := s.callTimes("start"); len(got) != 3 {
			t.Fatalf("startup ran at %v; it should stop once it passed", got)
		}
		if got := s.callTimes("live"); len(got) == 0 || got[0] != 4*time.Second {
			t.Fatalf("liveness ran at %v, want first at 4s (when started)", got)
		}
		if got := s.callTimes("ready"); len(got) < 2 || got[0] != 5*time.Second || got[1] != 7*time.Second {
			t.Fatalf("readiness ran at %v, want 5s, 7s", got)
		}
		quiet(t, p, time.Minute)
	})
}

func TestProberReadinessThresholds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newScript()
		t0 := time.Now()
		p := newProber(t, s, cmdCheck(Readiness, "ready", 0, 10, 3, 2))
		defer p.Stop()
		expect(t, p, t0, Started, time.Duration(0), Live, time.Duration(0), Ready, 10*time.Second)
		time.Sleep(15 * time.Second) // t = 25 s
		s.set("ready", 1)            // fails at 30, 40, 50 s
		ev := next(t, p)
		if ev.Kind != NotReady || ev.At.Sub(t0) != 50*time.Second || ev.Check != Readiness || ev.Message != "CMD health check exited with code 1" {
			t.Fatalf("got %+v at %v, want NotReady at 50s with the failure", ev, ev.At.Sub(t0))
		}
		if p.State().Ready {
			t.Fatal("State still ready")
		}
		time.Sleep(5 * time.Second) // t = 55 s
		s.set("ready", 0)           // passes at 60, 70 s
		expect(t, p, t0, Ready, 70*time.Second)
		// one failure below the threshold changes nothing
		time.Sleep(5 * time.Second) // t = 75 s
		s.set("ready", 1)           // fails at 80 s
		time.Sleep(10 * time.Second)
		s.set("ready", 0) // passes at 90 s
		quiet(t, p, time.Minute)
	})
}

// A liveness failure past the threshold is reported once, takes the
// instance out of traffic first, and stops probing until Reset.
func TestProberLivenessDeadOnceUntilReset(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newScript()
		t0 := time.Now()
		p := newProber(t, s, cmdCheck(Liveness, "live", 0, 5, 3, 1), cmdCheck(Readiness, "ready", 0, 5, 1, 1))
		defer p.Stop()
		expect(t, p, t0, Started, time.Duration(0), Live, time.Duration(0), Ready, time.Duration(0))
		time.Sleep(2 * time.Second)
		s.set("live", 137) // fails at 5, 10, 15 s
		expect(t, p, t0, NotReady, 15*time.Second)
		ev := next(t, p)
		if ev.Kind != Dead || ev.Check != Liveness || ev.At.Sub(t0) != 15*time.Second || ev.Generation != 1 {
			t.Fatalf("got %+v at %v, want Dead by liveness at 15s", ev, ev.At.Sub(t0))
		}
		if st := p.State(); !st.Dead || st.Ready {
			t.Fatalf("state %+v", st)
		}
		synctest.Wait() // a readiness run due at 15 s too may be in flight
		calls := len(s.callTimes("live")) + len(s.callTimes("ready"))
		quiet(t, p, time.Hour)
		if n := len(s.callTimes("live")) + len(s.callTimes("ready")); n != calls {
			t.Fatalf("%d checks ran after Dead", n-calls)
		}

		// The caller restarted the instance.
		s.set("live", 0)
		t1 := time.Now()
		p.Reset()
		ev = next(t, p)
		if ev.Kind != Started || ev.Generation != 2 || ev.At != t1 {
			t.Fatalf("after Reset: %+v", ev)
		}
		expect(t, p, t1, Live, time.Duration(0), Ready, time.Duration(0))
		quiet(t, p, time.Minute)
	})
}

// Reset of a ready instance withdraws it from traffic before probing
// starts over.
func TestProberResetWithdrawsReadiness(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newScript()
		t0 := time.Now()
		p := newProber(t, s, cmdCheck(Readiness, "ready", 3, 5, 1, 1))
		defer p.Stop()
		expect(t, p, t0, Started, time.Duration(0), Live, time.Duration(0), Ready, 3*time.Second)
		time.Sleep(time.Second)
		t1 := time.Now()
		p.Reset()
		expect(t, p, t1, NotReady, time.Duration(0), Started, time.Duration(0), Live, time.Duration(0), Ready, 3*time.Second)
	})
}

func TestProberStartupFailureIsDead(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newScript()
		s.set("start", 1)
		t0 := time.Now()
		p := newProber(t, s, cmdCheck(Startup, "start", 1, 2, 4, 1), cmdCheck(Readiness, "ready", 0, 2, 1, 1))
		defer p.Stop()
		ev := next(t, p) // fails at 1, 3, 5, 7 s
		if ev.Kind != Dead || ev.Check != Startup || ev.At.Sub(t0) != 7*time.Second {
			t.Fatalf("got %+v at %v, want Dead by startup at 7s", ev, ev.At.Sub(t0))
		}
		if got := s.callTimes("ready"); len(got) != 0 {
			t.Fatalf("readiness ran before the instance started: %v", got)
		}
		quiet(t, p, time.Minute)
	})
}

// A check that outlasts timeoutSeconds fails, and a hung check does not
// delay the others.
func TestProberTimeoutIsAFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newScript()
		s.hang["live"] = true
		t0 := time.Now()
		live := cmdCheck(Liveness, "live", 0, 10, 2, 1)
		live.TimeoutSeconds = 4
		p := newProber(t, s, live, cmdCheck(Readiness, "ready", 0, 2, 1, 1))
		defer p.Stop()
		expect(t, p, t0, Started, time.Duration(0), Live, time.Duration(0), Ready, time.Duration(0))
		expect(t, p, t0, NotReady, 14*time.Second) // runs at 0 and 10 s, each failing 4 s later
		ev := next(t, p)
		if ev.Kind != Dead || ev.Message != "livenessProbe failed 2 times in a row: CMD health check: timed out" {
			t.Fatalf("got %+v", ev)
		}
	})
}

// Stop cancels checks in flight and returns with nothing left running,
// even when nobody reads the events.
func TestProberStopLeavesNothingRunning(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newScript()
		s.hang["live"] = true
		s.flap["ready"] = true // Ready, NotReady, Ready, … every 2 s
		p := newProber(t, s, cmdCheck(Liveness, "live", 0, 10, 100, 1), cmdCheck(Readiness, "ready", 0, 2, 1, 1))
		// Events pile up unread past the channel's buffer, so the Prober
		// and the readiness worker are blocked sending; live hangs.
		time.Sleep(time.Minute)
		p.Stop()
		p.Stop() // twice is fine
		n := 0
		for range p.Events() { // closed after Stop
			n++
		}
		if n < cap(p.events) {
			t.Fatalf("%d events were buffered, want the Prober blocked on a full buffer", n)
		}
		p.Reset() // after Stop: nothing happens
		// synctest.Test fails if a goroutine of the bubble is left.
	})
}

// End to end with real servers on 127.0.0.1 and real time: an HTTP
// readiness check follows a server that turns unhealthy and back, a TCP
// liveness check reports Dead when the port closes, and Stop leaves no
// goroutine behind.
func TestProberRealServers(t *testing.T) {
	var healthy atomic.Bool
	healthy.Store(true)
	httpPort := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !healthy.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			// A server holds a connection until its client is done (one
			// that closes at once looks like a forwarder with nothing
			// behind it; see TestTCPCheckerSeesThroughForwarders).
			go func() {
				_, _ = io.Copy(io.Discard, c)
				_ = c.Close()
			}()
		}
	}()
	tcpPort := l.Addr().(*net.TCPAddr).Port
	before := runtime.NumGoroutine() // the servers' included

	checks := []HealthCheck{
		{Protocol: HTTP, Type: Readiness, Path: "/ready", Port: httpPort, PeriodSeconds: 2, TimeoutSeconds: 1, FailureThreshold: 1},
		{Protocol: TCP, Type: Liveness, Port: tcpPort, InitialDelaySeconds: 1, PeriodSeconds: 2, TimeoutSeconds: 1, FailureThreshold: 1},
	}
	if err := Validate("healthChecks", checks, []int{httpPort, tcpPort}); err != nil {
		t.Fatal(err)
	}
	p, err := NewProber(checks, nil)
	if err != nil {
		t.Fatal(err)
	}
	recv := func(want Kind) Event {
		t.Helper()
		select {
		case ev := <-p.Events():
			if ev.Kind != want {
				t.Fatalf("got %+v, want %s", ev, want)
			}
			return ev
		case <-time.After(5 * time.Second):
			t.Fatalf("no %s within 5s", want)
		}
		return Event{}
	}
	recv(Started)
	recv(Live)
	recv(Ready)
	healthy.Store(false)
	if ev := recv(NotReady); ev.Message != "HTTP health check on port "+strconv.Itoa(httpPort)+" answered 503" {
		t.Fatalf("NotReady message %q", ev.Message)
	}
	healthy.Store(true)
	recv(Ready)
	_ = l.Close()
	recv(NotReady)
	if ev := recv(Dead); ev.Check != Liveness {
		t.Fatalf("Dead by %s", ev.Check)
	}
	p.Stop()

	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<16)
		t.Fatalf("%d goroutines before, %d after Stop:\n%s", before, n, buf[:runtime.Stack(buf, true)])
	}
}

func TestNewProberRefusesWhatValidateRejects(t *testing.T) {
	exec := newScript().exec
	for name, checks := range map[string][]HealthCheck{
		"two of a type": {cmdCheck(Liveness, "a", 0, 2, 1, 1), cmdCheck(Liveness, "b", 0, 2, 1, 1)},
		"empty cmd":     {cmdCheck(Liveness, "", 0, 2, 1, 1)},
		"bad protocol":  {{Protocol: "UDP", Type: Liveness}},
	} {
		if p, err := NewProber(checks, exec); err == nil {
			p.Stop()
			t.Errorf("%s: NewProber accepted %+v", name, checks)
		}
	}
	if p, err := NewProber([]HealthCheck{cmdCheck(Liveness, "a", 0, 2, 1, 1)}, nil); err == nil {
		p.Stop()
		t.Error("NewProber accepted a CMD check without Exec")
	}
}

// TestProberStateKeepsTheLastFailure: an instance that never becomes
// ready has had no NotReady event; State says why it is not ready.
func TestProberStateKeepsTheLastFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newScript()
		s.set("ready", 3)
		t0 := time.Now()
		p := newProber(t, s, cmdCheck(Readiness, "ready", 0, 10, 3, 1))
		defer p.Stop()
		expect(t, p, t0, Started, time.Duration(0), Live, time.Duration(0))
		time.Sleep(time.Second)
		synctest.Wait()
		if st := p.State(); st.Ready || st.FailedCheck != Readiness || st.Failure != "CMD health check exited with code 3" {
			t.Fatalf("state %+v", st)
		}
		s.set("ready", 0)
		expect(t, p, t0, Ready, 10*time.Second)
		// A new generation forgets the old one's failures.
		p.Reset()
		expect(t, p, t0, NotReady, 10*time.Second, Started, 10*time.Second, Live, 10*time.Second)
		synctest.Wait()
		if st := p.State(); st.FailedCheck != "" || st.Failure != "" {
			t.Fatalf("state after Reset %+v", st)
		}
	})
}
