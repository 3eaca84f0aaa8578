package ingress

import (
	"context"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Pre-connecting (after Envoy's preconnect_policy): an instance that closes
// its connection after every response (busybox httpd, HTTP/1.0 servers,
// anything answering "Connection: close") makes every proxied request
// open a new connection, and with a forking server wait for the fork too.
// For such an instance the ingress keeps a few spare connections already
// open, so that the transport's dial for the next request takes one at
// once and the connect is off the request's path.
//
// Only instances that churn connections get spares: two responses with
// "Connection: close" within spareMaxAge of each other. An instance that
// keeps connections alive never answers that way in steady state, so it
// gets no connection beyond those the transport opens and reuses.
//
// The spares are bounded (a target of 1 that grows by one, up to the
// configured most, each time a request found none, and shrinks when one
// expires unused), short-lived (closed at spareMaxAge: servers close
// connections that bring no request, and a spare ties up a worker of a
// pre-forking server), refilled only by traffic (a taken spare or a
// closing response), and checked right before use: the transport does
// not retry a request that failed on a fresh connection, so a spare the
// instance has closed meanwhile would be a 502.

// DefaultPreconnect is the most spare connections kept per instance.
const DefaultPreconnect = 4

// DefaultSpareMaxAge is how long a spare connection is kept unused. It is
// short because a server that serves one connection at a time (Python's
// http.server.HTTPServer, a single sync gunicorn worker) reads an idle
// spare until it is used or closed, and its other clients (Slipway's
// health probes, other services) wait meanwhile; it is also the churn
// window, so that only an instance closing connections more than ~10
// times a second gets spares.
const DefaultSpareMaxAge = 100 * time.Millisecond

// spareWait bounds how long a request that found no spare waits for a
// pre-connect under way before it dials itself.
const spareWait = 20 * time.Millisecond

// minSpareAge is the shortest useful spare life: an instance found to
// close unrequested connections sooner than twice this gets no more
// spares (each would cost it an accept for nothing).
const minSpareAge = 10 * time.Millisecond

type dialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// SpareStats count what became of pre-connecting, over every instance
// since the Ingress was made: a measure of whether it pays.
type SpareStats struct {
	// Used counts requests sent on a spare; Missed those that dialled
	// themselves while their instance had pre-connecting on.
	Used, Missed uint64
	// Expired counts spares closed unused at their age; Dead those found
	// closed by the instance before use (never sent a request).
	Expired, Dead uint64
}

// spareCounters are SpareStats as they are counted.
type spareCounters struct {
	used, missed, expired, dead atomic.Uint64
}

// spare is a connection opened before any request needed it.
type spare struct {
	conn net.Conn
	made time.Time
}

// pool holds the spare connections of one instance address. It lives
// while the address is in the route table; close ends it.
type pool struct {
	id     string // the instance's Backend.ID
	addr   string
	count  *spareCounters
	dial   dialFunc
	most   int           // most spares
	window time.Duration // the configured spare age: also the churn window
	ctx    context.Context
	cancel context.CancelFunc

	mu     sync.Mutex
	spares []spare // oldest first
	// dialing counts pre-connects under way.
	dialing int
	// target is how many spares (made or under way) to keep.
	target int
	// maxAge starts at window and shrinks to half the age at which a
	// spare was found closed by the instance.
	maxAge time.Duration
	// lastClose is the time of the last response that closed its
	// connection; churning says the one before was within window of it.
	lastClose time.Time
	churning  bool
	// off stops pre-connecting: the instance closes unrequested
	// connections too soon for a spare to be of use.
	off    bool
	closed bool
	timer  *time.Timer
	armed  bool
	// landed, when a request waits for a pre-connect under way, is
	// closed when the next one ends.
	landed chan struct{}
}

func newPool(id, addr string, dial dialFunc, most int, maxAge time.Duration, count *spareCounters) *pool {
	ctx, cancel := context.WithCancel(context.Background())
	return &pool{id: id, addr: addr, count: count, dial: dial, most: most, window: maxAge, maxAge: maxAge, target: 1, ctx: ctx, cancel: cancel}
}

// get returns a live spare, or dials. A dead or expired spare is closed
// and never returned. A request that finds no spare while one is being
// opened waits for it (briefly) rather than dial past it, and one that
// dials opens its connection before the spares that replace it: a server
// that accepts one connection at a time takes them in order, and would
// otherwise read an idle spare while the request waits behind it.
func (p *pool) get(ctx context.Context, network string) (net.Conn, error) {
	wait := time.NewTimer(spareWait)
	defer wait.Stop()
	for first := true; ; first = false {
		conn, landed, refill := p.take(first)
		if conn != nil {
			return conn, nil
		}
		if landed == nil {
			if refill {
				p.count.missed.Add(1)
			}
			conn, err := p.dial(ctx, network, p.addr)
			if refill {
				p.mu.Lock()
				p.fillLocked()
				p.mu.Unlock()
			}
			return conn, err
		}
		select {
		case <-landed:
		case <-wait.C:
			// The pre-connect is slow: dial, as without spares.
			p.count.missed.Add(1)
			return p.dial(ctx, network, p.addr)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// take pops the oldest live spare. Without one, it returns a channel
// closed when a pre-connect under way lands, if there is one; refill says
// that the caller, dialling itself, should then replace what it used. A
// request's first look that finds no spare raises the target.
func (p *pool) take(first bool) (conn net.Conn, landed <-chan struct{}, refill bool) {
	now := time.Now()
	var stale []net.Conn
	p.mu.Lock()
	// Oldest first: a server that accepts one connection at a time (a
	// single-threaded one) serves its accept queue in order, and is
	// reading the oldest spare; a request sent on a newer one would wait
	// until the older expires.
	for conn == nil && len(p.spares) > 0 {
		s := p.spares[0]
		p.spares = slices.Delete(p.spares, 0, 1)
		age := now.Sub(s.made)
		switch {
		case age >= p.maxAge:
			stale = append(stale, s.conn) // the expiry timer is late
			p.count.expired.Add(1)
		case alive(s.conn):
			conn = s.conn
			p.count.used.Add(1)
		default:
			stale = append(stale, s.conn)
			p.count.dead.Add(1)
			p.closedAt(age)
		}
	}
	active := p.activeLocked(now)
	if conn == nil && active && first && p.target < p.most {
		// A request found no spare: keep one more.
		p.target++
	}
	switch {
	case conn != nil && active:
		// Replace what this request takes.
		p.fillLocked()
	case conn == nil && active && p.dialing > 0:
		if p.landed == nil {
			p.landed = make(chan struct{})
		}
		landed = p.landed
	case conn == nil && active:
		refill = true
	}
	p.mu.Unlock()
	for _, c := range stale {
		_ = c.Close()
	}
	return conn, landed, refill
}

// responseClosed records a response after which the instance closes the
// connection: the next request will need a new one.
func (p *pool) responseClosed() {
	now := time.Now()
	p.mu.Lock()
	p.churning = !p.lastClose.IsZero() && now.Sub(p.lastClose) < p.window
	p.lastClose = now
	if p.churning {
		p.fillLocked()
	}
	p.mu.Unlock()
}

// activeLocked says whether the instance churns connections now.
func (p *pool) activeLocked(now time.Time) bool {
	return p.churning && !p.off && !p.closed && now.Sub(p.lastClose) < p.window
}

// closedAt learns from a spare the instance closed at age: later spares
// are kept at most half as long.
func (p *pool) closedAt(age time.Duration) {
	if half := age / 2; half < p.maxAge {
		p.maxAge = half
	}
	if p.maxAge < minSpareAge {
		p.off = true
	}
}

// fillLocked starts the pre-connects that bring the spares to target.
func (p *pool) fillLocked() {
	if p.closed || p.off {
		return
	}
	for need := p.target - len(p.spares) - p.dialing; need > 0; need-- {
		p.dialing++
		go p.preconnect()
	}
}

// preconnect dials one spare.
func (p *pool) preconnect() {
	conn, err := p.dial(p.ctx, "tcp", p.addr)
	p.mu.Lock()
	p.dialing--
	if p.landed != nil {
		close(p.landed)
		p.landed = nil
	}
	if err != nil || p.closed || p.off {
		// A failed dial is not retried here: the next request dials
		// itself and reports the failure.
		p.mu.Unlock()
		if conn != nil {
			_ = conn.Close()
		}
		return
	}
	p.spares = append(p.spares, spare{conn: conn, made: time.Now()})
	p.armLocked()
	p.mu.Unlock()
}

// armLocked sets the expiry timer for the oldest spare.
func (p *pool) armLocked() {
	if p.armed || len(p.spares) == 0 {
		return
	}
	d := time.Until(p.spares[0].made.Add(p.maxAge))
	if p.timer == nil {
		p.timer = time.AfterFunc(d, p.expire)
	} else {
		p.timer.Reset(d)
	}
	p.armed = true
}

// expire closes the spares past their age. They were not needed: the
// target shrinks by as many. Nothing is dialed in their place.
func (p *pool) expire() {
	now := time.Now()
	var old []net.Conn
	p.mu.Lock()
	p.armed = false
	for len(p.spares) > 0 && now.Sub(p.spares[0].made) >= p.maxAge {
		old = append(old, p.spares[0].conn)
		p.spares = slices.Delete(p.spares, 0, 1)
	}
	p.target = max(1, p.target-len(old))
	p.count.expired.Add(uint64(len(old)))
	if !p.closed {
		p.armLocked()
	}
	p.mu.Unlock()
	for _, c := range old {
		_ = c.Close()
	}
}

// close closes every spare and ends pre-connecting for good: dials under
// way are cancelled, and one that completes anyway is closed.
func (p *pool) close() {
	p.mu.Lock()
	p.closed = true
	spares := p.spares
	p.spares = nil
	if p.timer != nil {
		p.timer.Stop()
	}
	p.mu.Unlock()
	p.cancel()
	for _, s := range spares {
		_ = s.conn.Close()
	}
}
