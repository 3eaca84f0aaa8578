package probe

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Kind is the kind of a state transition of an instance.
type Kind string

// The transitions a Prober reports, in Kubernetes' terms.
const (
	// Started: the startup check passed (at once when there is none);
	// liveness and readiness checks begin.
	Started Kind = "Started"
	// Live: the instance is presumed alive, reported with Started; it
	// stays live until Dead.
	Live Kind = "Live"
	// Ready: the instance may receive traffic.
	Ready Kind = "Ready"
	// NotReady: the instance must not receive traffic (its readiness
	// check failed, it died or it is being restarted).
	NotReady Kind = "NotReady"
	// Dead: the liveness check (or the startup check) failed
	// failureThreshold times in a row; restart the instance and call
	// Reset. Reported once per generation: probing stops until Reset.
	Dead Kind = "Dead"
)

// Event is one state transition of an instance.
type Event struct {
	// Kind is the transition.
	Kind Kind
	// Check is the type of the check that caused it; empty when the
	// transition follows from another one (Ready with no readiness
	// check, NotReady on Dead or Reset).
	Check Type
	// Message is the last failure of Check, for NotReady and Dead.
	Message string
	// Generation counts Resets: events of an earlier generation may still
	// be delivered after Reset returns, and a caller may drop them.
	Generation uint64
	// At is when the transition happened.
	At time.Time
}

// State is a snapshot of what a Prober knows about its instance.
type State struct {
	Generation uint64
	Started    bool
	Ready      bool
	Dead       bool
	// FailedCheck and Failure are the type and message of the last failed
	// run of any check in this generation, empty while none failed: why
	// an instance that never became ready is not ready, which no event
	// says (NotReady only follows Ready).
	FailedCheck Type
	Failure     string
}

// Prober runs the health checks of one instance on their schedules and
// reports its transitions on Events. Create it with NewProber, end it with
// Stop.
type Prober struct {
	checks []probeCheck
	events chan Event
	reset  chan struct{}
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once

	mu    sync.Mutex
	state State
}

type probeCheck struct {
	HealthCheck
	checker Checker
}

// result is one run of one check, tagged with the generation it ran in.
type result struct {
	gen uint64
	typ Type
	err error
}

// NewProber starts probing an instance (its start is now) with checks,
// which must have passed Validate; exec runs CMD checks. HTTP and TCP
// checks dial 127.0.0.1:<port> (NewProberAt dials elsewhere). Events are
// delivered on Events, which is closed once Stop has returned; a
// consumer that stops reading holds the probing up (the channel has a
// small buffer) but never Stop.
func NewProber(checks []HealthCheck, exec Exec) (*Prober, error) {
	return NewProberAt(checks, Loopback, exec)
}

// NewProberAt is NewProber for an instance whose ports the server reaches
// through addr.
func NewProberAt(checks []HealthCheck, addr Addr, exec Exec) (*Prober, error) {
	p := &Prober{events: make(chan Event, 16), reset: make(chan struct{}, 1), done: make(chan struct{})}
	seen := map[Type]bool{}
	for _, c := range checks {
		if seen[c.Type] {
			// The state machine has one counter per type.
			return nil, fmt.Errorf("probe: two %s checks", c.Type)
		}
		seen[c.Type] = true
		ch, err := NewCheckerAt(c, addr, exec)
		if err != nil {
			return nil, err
		}
		p.checks = append(p.checks, probeCheck{c, ch})
	}
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	go p.run(ctx)
	return p, nil
}

// Events delivers the instance's transitions in order.
func (p *Prober) Events() <-chan Event { return p.events }

// State returns what the Prober knows now.
func (p *Prober) State() State {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.state
}

// Reset starts a new generation, as if the instance had just started:
// after a restart the startup gate, initial delays and thresholds apply
// afresh. It does not wait; several Resets before the Prober gets to
// them count as one.
func (p *Prober) Reset() {
	select {
	case p.reset <- struct{}{}:
	default:
	}
}

// Stop ends all probing, waits for every goroutine of the Prober to
// return (checks in flight are canceled) and closes Events. It may be
// called more than once and from any goroutine.
func (p *Prober) Stop() {
	p.once.Do(p.cancel)
	<-p.done
}

// run is the one goroutine that owns the state; checks run in one
// goroutine each per generation and send it their results.
func (p *Prober) run(ctx context.Context) {
	var workers sync.WaitGroup
	defer func() {
		workers.Wait()
		close(p.events)
		close(p.done)
	}()
	results := make(chan result)

	var (
		gen      uint64
		genStop  context.CancelFunc
		gate     chan struct{}
		started  bool
		ready    bool
		dead     bool
		hasReady bool
		fails    map[Type]int
		succs    map[Type]int
		lastType Type
		lastErr  string
	)
	for _, c := range p.checks {
		hasReady = hasReady || c.Type == Readiness
	}
	publish := func() {
		p.mu.Lock()
		p.state = State{Generation: gen, Started: started, Ready: ready, Dead: dead, FailedCheck: lastType, Failure: lastErr}
		p.mu.Unlock()
	}
	emit := func(kind Kind, check Type, msg string) bool {
		publish()
		select {
		case p.events <- Event{Kind: kind, Check: check, Message: msg, Generation: gen, At: time.Now()}:
			return true
		case <-ctx.Done():
			return false
		}
	}
	markStarted := func(check Type) bool {
		started = true
		close(gate)
		if !emit(Started, check, "") || !emit(Live, "", "") {
			return false
		}
		if !hasReady {
			ready = true
			return emit(Ready, "", "")
		}
		return true
	}
	begin := func() bool {
		gen++
		started, ready, dead = false, false, false
		fails, succs = map[Type]int{}, map[Type]int{}
		lastType, lastErr = "", ""
		gate = make(chan struct{})
		publish()
		// The workers get their own copies: gen and gate change with the
		// next generation while old workers may still be winding down.
		g, open := gen, gate
		var genCtx context.Context
		genCtx, genStop = context.WithCancel(ctx)
		t0 := time.Now()
		hasStartup := false
		for _, c := range p.checks {
			gated := c.Type != Startup
			hasStartup = hasStartup || !gated
			workers.Add(1)
			go func() {
				defer workers.Done()
				p.work(genCtx, g, c, t0, gated, open, results)
			}()
		}
		if !hasStartup {
			return markStarted("")
		}
		return true
	}

	if !begin() {
		genStop()
		return
	}
	for {
		select {
		case <-ctx.Done():
			genStop()
			return
		case <-p.reset:
			genStop()
			wasReady := ready
			ready = false
			if wasReady && !emit(NotReady, "", "") {
				return
			}
			if !begin() {
				genStop()
				return
			}
		case r := <-results:
			if r.gen != gen || dead {
				continue // from a generation that has ended
			}
			if r.err == nil {
				fails[r.typ] = 0
				succs[r.typ]++
			} else {
				succs[r.typ] = 0
				fails[r.typ]++
				lastType, lastErr = r.typ, r.err.Error()
				publish()
			}
			c := p.check(r.typ)
			ok := true
			switch {
			case r.err != nil && fails[r.typ] >= c.FailureThreshold && (r.typ == Liveness || r.typ == Startup):
				dead = true
				genStop()
				if ready {
					ready = false
					ok = emit(NotReady, "", "")
				}
				ok = ok && emit(Dead, r.typ, deadMessage(c, r.err))
			case r.typ == Startup && r.err == nil && !started:
				ok = markStarted(Startup)
			case r.typ == Readiness && r.err == nil && !ready && succs[r.typ] >= c.Successes():
				ready = true
				ok = emit(Ready, Readiness, "")
			case r.typ == Readiness && r.err != nil && ready && fails[r.typ] >= c.FailureThreshold:
				ready = false
				ok = emit(NotReady, Readiness, r.err.Error())
			}
			if !ok {
				genStop()
				return
			}
		}
	}
}

func deadMessage(c probeCheck, err error) string {
	return fmt.Sprintf("%s failed %d times in a row: %s", c.Type, c.FailureThreshold, err)
}

func (p *Prober) check(t Type) probeCheck {
	for _, c := range p.checks {
		if c.Type == t {
			return c
		}
	}
	panic("probe: result of an unknown check " + string(t))
}

// work runs one check of one generation: first after its initial delay
// from the generation's start (and, for liveness and readiness, once the
// instance has started), then every period after the previous run began.
func (p *Prober) work(ctx context.Context, gen uint64, c probeCheck, t0 time.Time, gated bool, gate <-chan struct{}, results chan<- result) {
	if !sleepUntil(ctx, t0.Add(seconds(c.InitialDelaySeconds))) {
		return
	}
	if gated {
		select {
		case <-gate:
		case <-ctx.Done():
			return
		}
	}
	for {
		began := time.Now()
		err := runWithTimeout(ctx, c.checker, seconds(c.TimeoutSeconds))
		if ctx.Err() != nil {
			return // canceled, not failed
		}
		select {
		case results <- result{gen: gen, typ: c.Type, err: err}:
		case <-ctx.Done():
			return
		}
		if c.Type == Startup && err == nil {
			return // a startup check has done its job once it passes
		}
		if !sleepUntil(ctx, began.Add(seconds(c.PeriodSeconds))) {
			return
		}
	}
}

func seconds(n int) time.Duration { return time.Duration(n) * time.Second }

// sleepUntil waits until t or ctx's end, reporting whether it reached t.
func sleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return ctx.Err() == nil // both may be ready: cancellation wins
	case <-ctx.Done():
		return false
	}
}
