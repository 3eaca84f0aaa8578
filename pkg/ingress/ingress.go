// Package ingress is Slipway's built-in HTTP ingress: a reverse proxy that
// routes each public HTTP port of a service by host name,
//
//	<port-name>--<service>--<project>.<base domain>
//
// to the service's ready instances, load balanced, with WebSockets and
// streaming responses passed through. The caller (the deployments service)
// owns the route table and replaces it whole with Set whenever instances
// become ready or go away; lookups read an immutable table through an
// atomic pointer, so they never lock and never see a half-made table.
//
// Draining is the caller's: a backend left out of the table gets no new
// requests, while those it is serving run to their end. InFlight and
// WaitIdle tell a rollout when an old instance has none left and may be
// stopped.
//
// Connections to instances are kept alive and reused. For an instance
// that closes its connection after every response the ingress keeps a
// few spare connections open ahead of the requests (preconnect.go), so
// that a request does not wait for a connect; spares are not requests
// (InFlight does not count them), and those of a backend that leaves the
// table are closed at once.
//
// Failures are answered in the API's error envelope (apierr.WriteHTTP):
// 404 ROUTE_NOT_FOUND for a host with no route, 503 UNAVAILABLE with
// Retry-After when a route has no ready instance, 502 HTTP_502 when the
// instance cannot be reached and 504 HTTP_504 when it does not answer in
// time.
package ingress

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/slipwayhq/slipway/pkg/apierr"
)

// flushInterval bounds how long a proxied response with a declared
// length waits in the ingress's buffer.
const flushInterval = 100 * time.Millisecond

// Defaults of Config's zero fields.
const (
	DefaultBaseDomain            = "localhost"
	DefaultDialTimeout           = 5 * time.Second
	DefaultResponseHeaderTimeout = 60 * time.Second
	DefaultRetryAfter            = 5 * time.Second
)

// Config configures an Ingress. The zero value is usable.
type Config struct {
	// BaseDomain is the domain every route's host name ends in; default
	// "localhost", which browsers resolve to the loopback address without
	// any DNS set-up.
	BaseDomain string
	// DialTimeout bounds connecting to an instance; default 5s.
	DialTimeout time.Duration
	// ResponseHeaderTimeout bounds the wait for an instance's response
	// headers once the request is sent; default 60s. There is no overall
	// timeout: a streamed response or a WebSocket may last as long as the
	// client and the instance keep it.
	ResponseHeaderTimeout time.Duration
	// RetryAfter is the Retry-After of a 503 for a route with no ready
	// instance; default 5s.
	RetryAfter time.Duration
	// Preconnect is the most spare connections kept open to an instance
	// that closes its connection after every response, so that a request
	// to it need not wait for a connect (preconnect.go); default
	// DefaultPreconnect, negative for none. An instance that keeps
	// connections alive never gets spares. Off where the operating system
	// gives no way to check a spare before use (Linux only).
	Preconnect int
	// SpareMaxAge is how long a spare connection is kept unused before it
	// is closed; default DefaultSpareMaxAge. Servers close connections
	// that bring no request after a while: this stays well below that.
	SpareMaxAge time.Duration
	// Registerer, if set, receives the per-route request counters.
	Registerer prometheus.Registerer
	// Logger receives proxy failures; default slog.Default().
	Logger *slog.Logger
}

// Backend is one ready instance behind a route.
type Backend struct {
	// ID identifies the instance across Sets, uniquely: the in-flight
	// count is kept by ID, so an instance that stays in the table keeps
	// its count.
	ID string
	// Addr is the instance's host:port, such as "127.0.0.1:40123".
	Addr string
}

// Route is one public HTTP port of a service and its ready instances.
type Route struct {
	// Project, Service and Port are the project's, the service's and the
	// port's names, the three parts of the host name.
	Project, Service, Port string
	// Backends are the ready instances; none answers 503.
	Backends []Backend
}

// Label is the first label of r's host name:
// "<port>--<service>--<project>", lower-cased.
func (r Route) Label() string {
	return strings.ToLower(r.Port + "--" + r.Service + "--" + r.Project)
}

// Stats are a route's request counters since the Ingress was made.
type Stats struct {
	// Requests counts the requests routed to the port, answered by an
	// instance or by the ingress (503, 502, 504).
	Requests uint64
	// HTTP4xx and HTTP5xx count the responses with those statuses.
	HTTP4xx, HTTP5xx uint64
}

// Ingress is an http.Handler that proxies by host name. It is safe for
// concurrent use.
type Ingress struct {
	suffix     string // "." + base domain, lower-cased
	retryAfter string
	log        *slog.Logger
	proxy      *httputil.ReverseProxy
	transport  *http.Transport
	dialer     *net.Dialer
	preconnect int           // most spares per instance; 0: none
	spareAge   time.Duration // SpareMaxAge

	table atomic.Pointer[table]
	// spares counts what became of pre-connecting (SpareStats).
	spares spareCounters

	// mu guards backends and stats, which outlive tables: a backend
	// removed from the table keeps its in-flight count until it drains,
	// and a route's counters survive its instances coming and going.
	mu       sync.Mutex
	backends map[string]*backend
	stats    map[routeKey]*routeStats
	// pools are the spare connections by instance address, for the
	// addresses in the table; closed stops making them (Close).
	pools  map[string]*pool
	closed bool
}

// table is one immutable route table, keyed by the host's first label,
// with the spare connections of its instances by address.
type table struct {
	routes map[string]*route
	pools  map[string]*pool
}

type route struct {
	key      routeKey
	stats    *routeStats
	backends []*backend
	next     atomic.Uint64 // round-robin start for ties
}

type routeKey struct{ project, service, port string }

type routeStats struct {
	requests, http4xx, http5xx atomic.Uint64
}

type backend struct {
	id       string
	target   *url.URL
	inFlight atomic.Int64
}

// New returns an Ingress with an empty route table.
func New(cfg Config) (*Ingress, error) {
	base := strings.TrimSuffix(strings.ToLower(cfg.BaseDomain), ".")
	if base == "" {
		base = DefaultBaseDomain
	}
	if strings.HasPrefix(base, ".") || strings.Contains(base, "..") {
		return nil, fmt.Errorf("ingress: invalid base domain %q", cfg.BaseDomain)
	}
	dial := cfg.DialTimeout
	if dial <= 0 {
		dial = DefaultDialTimeout
	}
	header := cfg.ResponseHeaderTimeout
	if header <= 0 {
		header = DefaultResponseHeaderTimeout
	}
	retry := cfg.RetryAfter
	if retry <= 0 {
		retry = DefaultRetryAfter
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	preconnect := cfg.Preconnect
	switch {
	case preconnect == 0:
		preconnect = DefaultPreconnect
	case preconnect < 0 || !preconnectSupported:
		preconnect = 0
	}
	spareAge := cfg.SpareMaxAge
	if spareAge <= 0 {
		spareAge = DefaultSpareMaxAge
	}
	in := &Ingress{
		suffix:     "." + base,
		retryAfter: strconv.Itoa(int((retry + time.Second - 1) / time.Second)),
		log:        log,
		dialer:     &net.Dialer{Timeout: dial, KeepAlive: 30 * time.Second},
		preconnect: preconnect,
		spareAge:   spareAge,
		backends:   map[string]*backend{},
		stats:      map[routeKey]*routeStats{},
		pools:      map[string]*pool{},
	}
	in.table.Store(&table{routes: map[string]*route{}})
	// Instances are plain HTTP/1.1 on loopback. Proxy is nil on purpose:
	// an HTTP_PROXY in Slipway's environment must not carry the
	// instances' traffic.
	in.transport = &http.Transport{
		DialContext:           in.dial,
		ResponseHeaderTimeout: header,
		MaxIdleConns:          1024,
		// The default of 2 idle connections per host would make every
		// burst above two concurrent requests open new connections.
		MaxIdleConnsPerHost: 128,
		IdleConnTimeout:     90 * time.Second,
	}
	in.proxy = &httputil.ReverseProxy{
		Rewrite:   rewrite,
		Transport: in.transport,
		// Server-sent events and responses of unknown length (chunked
		// progress, long polls) are flushed at every write whatever this
		// says (ReverseProxy does so). A response with a declared length
		// is flushed at most this long after a write: a flush after
		// every write (-1) costs a small answer 25-40 µs of its ~100 µs
		// through the proxy (docs/benchmarks.md), while a body that
		// trickles still reaches the client within 100 ms (nginx buffers
		// such a body whole by default).
		FlushInterval:  flushInterval,
		BufferPool:     copyBuffers{},
		ModifyResponse: in.response,
		ErrorHandler:   in.proxyError,
		ErrorLog:       slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(collector{in}); err != nil {
			return nil, fmt.Errorf("ingress: register metrics: %w", err)
		}
	}
	return in, nil
}

// Host is the host name (without a port) the route of port of service in
// project answers on.
func (in *Ingress) Host(project, service, port string) string {
	return Route{Project: project, Service: service, Port: port}.Label() + in.suffix
}

// Set replaces the route table with routes. Requests already routed keep
// their backend; new requests see the new table. A backend is known by
// its ID: one present before and after keeps its in-flight count. Set
// refuses (and keeps the old table) a route with an empty or dotted name
// part, a part containing "--" (the host name would be ambiguous), two
// routes with the same host, or a backend without ID or address.
func (in *Ingress) Set(routes []Route) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	t := &table{routes: make(map[string]*route, len(routes)), pools: map[string]*pool{}}
	keep := make(map[string]*backend)
	for _, r := range routes {
		for _, part := range []string{r.Project, r.Service, r.Port} {
			if part == "" || strings.ContainsAny(part, ". :/") || strings.Contains(part, "--") {
				return fmt.Errorf("ingress: route %q: invalid name part %q", r.Label(), part)
			}
		}
		label := r.Label()
		if _, dup := t.routes[label]; dup {
			return fmt.Errorf("ingress: two routes for %q", label)
		}
		key := routeKey{strings.ToLower(r.Project), strings.ToLower(r.Service), strings.ToLower(r.Port)}
		rt := &route{key: key, stats: in.stats[key]}
		if rt.stats == nil {
			rt.stats = &routeStats{}
		}
		for _, b := range r.Backends {
			if b.ID == "" || b.Addr == "" {
				return fmt.Errorf("ingress: route %q: backend without ID or address", label)
			}
			be := keep[b.ID]
			if be == nil {
				be = in.backends[b.ID]
			}
			if be == nil || be.target.Host != b.Addr {
				// An ID at a new address is a new backend: its count
				// starts afresh.
				be = &backend{id: b.ID, target: &url.URL{Scheme: "http", Host: b.Addr}}
			}
			keep[b.ID] = be
			rt.backends = append(rt.backends, be)
			if in.preconnect > 0 && !in.closed && t.pools[b.Addr] == nil {
				// Spares belong to the instance they were opened to: a
				// new instance given the address of one that is still
				// stopping (a reused port) gets a pool of its own.
				p := in.pools[b.Addr]
				if p == nil || p.id != b.ID {
					p = newPool(b.ID, b.Addr, in.dialer.DialContext, in.preconnect, in.spareAge, &in.spares)
				}
				t.pools[b.Addr] = p
			}
		}
		t.routes[label] = rt
	}
	// Commit: stats of every route ever seen stay, so counters never go
	// back; backends stay while in the table or still serving requests.
	for _, rt := range t.routes {
		in.stats[rt.key] = rt.stats
	}
	for id, be := range in.backends {
		if keep[id] == nil && be.inFlight.Load() == 0 {
			delete(in.backends, id)
		}
	}
	for id, be := range keep {
		in.backends[id] = be
	}
	// An instance that left the table loses its spares at once: a
	// connection held open to it with no request would delay its
	// graceful stop (a server's shutdown waits for it, or for its own
	// read timeout).
	for addr, p := range in.pools {
		if t.pools[addr] != p {
			p.close()
		}
	}
	in.pools = t.pools
	in.table.Store(t)
	return nil
}

// Close closes every spare connection and the idle connections to
// instances, and stops pre-connecting; requests still route (the caller
// closes the listener first). Call it when the ingress is done.
func (in *Ingress) Close() error {
	in.mu.Lock()
	in.closed = true
	pools := in.pools
	in.pools = map[string]*pool{}
	in.mu.Unlock()
	for _, p := range pools {
		p.close()
	}
	in.transport.CloseIdleConnections()
	return nil
}

// dial is the transport's DialContext: a spare connection of the
// instance if it has a live one, a new connection otherwise.
func (in *Ingress) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	if p := in.table.Load().pools[addr]; p != nil {
		return p.get(ctx, network)
	}
	return in.dialer.DialContext(ctx, network, addr)
}

// SpareStats returns what became of pre-connecting so far.
func (in *Ingress) SpareStats() SpareStats {
	return SpareStats{Used: in.spares.used.Load(), Missed: in.spares.missed.Load(),
		Expired: in.spares.expired.Load(), Dead: in.spares.dead.Load()}
}

// InFlight is the number of requests backend id is serving now, counting
// WebSockets and streams until they end; 0 for an unknown id.
func (in *Ingress) InFlight(id string) int {
	in.mu.Lock()
	be := in.backends[id]
	in.mu.Unlock()
	if be == nil {
		return 0
	}
	return int(be.inFlight.Load())
}

// drainPoll is how often WaitIdle looks at the count: a drain waits for
// requests that take human time, so a few milliseconds' lag is nothing,
// and polling keeps the request path free of any wake-up machinery.
const drainPoll = 10 * time.Millisecond

// WaitIdle waits until backend id serves no request, or ctx ends. Remove
// the backend from the table first, or new requests keep arriving.
func (in *Ingress) WaitIdle(ctx context.Context, id string) error {
	t := time.NewTicker(drainPoll)
	defer t.Stop()
	for in.InFlight(id) > 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}

// Stats returns the counters of a route, by its name parts (any case).
func (in *Ingress) Stats(project, service, port string) Stats {
	in.mu.Lock()
	s := in.stats[routeKey{strings.ToLower(project), strings.ToLower(service), strings.ToLower(port)}]
	in.mu.Unlock()
	if s == nil {
		return Stats{}
	}
	return Stats{Requests: s.requests.Load(), HTTP4xx: s.http4xx.Load(), HTTP5xx: s.http5xx.Load()}
}

// lookup finds the route of a Host header: the port is ignored, case too,
// and so is a trailing dot (an absolute name).
func (in *Ingress) lookup(host string) *route {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	label, ok := strings.CutSuffix(host, in.suffix)
	if !ok || label == "" || strings.Contains(label, ".") {
		return nil
	}
	return in.table.Load().routes[label]
}

// pick chooses the backend with the fewest requests in flight, skipping
// skip; ties go round robin. Least-outstanding rather than plain round
// robin: a slow or still-warming instance gets fewer requests instead of
// an equal share queueing behind it, and equal instances under equal load
// still get turns.
func (rt *route) pick(skip *backend) *backend {
	n := len(rt.backends)
	if n == 0 {
		return nil
	}
	start := int(rt.next.Add(1) % uint64(n))
	var best *backend
	var bestLoad int64
	for i := range n {
		be := rt.backends[(start+i)%n]
		if be == skip {
			continue
		}
		if load := be.inFlight.Load(); best == nil || load < bestLoad {
			best, bestLoad = be, load
		}
	}
	return best
}

// attempt is one request's state, shared with the proxy's hooks through
// the request context.
type attempt struct {
	route   *route
	backend *backend
	err     error // set by proxyError; the answer is still unwritten
}

type attemptKey struct{}

// ServeHTTP routes r by its Host header and proxies it.
func (in *Ingress) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rt := in.lookup(r.Host)
	if rt == nil {
		apierr.WriteHTTP(w, http.StatusNotFound, apierr.ReasonRouteNotFound, "no service is published at this host", nil)
		return
	}
	rt.stats.requests.Add(1)
	be := in.acquire(r.Host, rt, nil)
	if be == nil {
		rt.stats.http5xx.Add(1)
		w.Header().Set("Retry-After", in.retryAfter)
		apierr.WriteHTTP(w, http.StatusServiceUnavailable, apierr.ReasonUnavailable, "the service has no ready instance, try again later", nil)
		return
	}
	a := &attempt{route: rt}
	r = r.WithContext(context.WithValue(r.Context(), attemptKey{}, a))
	in.forward(w, r, a, be)
	if a.err == nil {
		return
	}
	// The instance could not be reached: nothing was sent to it, so a
	// request that is safe to repeat and has no body (which was not read)
	// goes to another ready instance, once.
	if retryable(r) && isDialError(a.err) {
		if next := in.acquire(r.Host, rt, be); next != nil {
			a.err = nil
			in.forward(w, r, a, next)
			if a.err == nil {
				return
			}
		}
	}
	in.writeProxyError(w, r, a)
}

// acquireTries bounds the picks of one request while Sets race it.
const acquireTries = 8

// acquire picks a backend of rt, not skip, and counts a request in flight
// on it (forward releases it). A backend that Set removed between the
// pick and the count may already have been found idle by a drain
// (WaitIdle) and be stopping, with the request on its way to it (on a
// pre-opened connection it would not even fail to connect, and be no
// dial error to retry): so the count is made first and the current table
// checked after it, and a backend no longer in it is released and the
// pick made again from the current table. Nil when no backend is left.
func (in *Ingress) acquire(host string, rt *route, skip *backend) *backend {
	for range acquireTries {
		be := rt.pick(skip)
		if be == nil {
			return nil
		}
		be.inFlight.Add(1)
		cur := in.lookup(host)
		if cur == rt || cur != nil && slices.Contains(cur.backends, be) {
			return be
		}
		be.inFlight.Add(-1)
		if cur == nil {
			return nil
		}
		rt = cur
	}
	return nil
}

// forward proxies r to be, which acquire counted in flight, and releases
// it.
func (in *Ingress) forward(w http.ResponseWriter, r *http.Request, a *attempt, be *backend) {
	a.backend = be
	defer be.inFlight.Add(-1)
	in.proxy.ServeHTTP(w, r)
}

// rewrite shapes the request sent to the instance. The ReverseProxy has
// already dropped the client's Forwarded and X-Forwarded-* headers, and
// SetXForwarded sets them afresh from the connection: the ingress is the
// edge, so what a client claims about earlier hops is not passed on as
// fact (an instance could otherwise be told any client address). The
// Host header is the client's, so that an instance builds its absolute
// URLs with the public name; X-Forwarded-Host says the same.
func rewrite(pr *httputil.ProxyRequest) {
	a := pr.In.Context().Value(attemptKey{}).(*attempt)
	pr.SetURL(a.backend.target)
	pr.Out.Host = pr.In.Host
	pr.SetXForwarded()
}

// copyBuffers is the proxy's BufferPool: without one, httputil.ReverseProxy
// allocates a 32 KiB buffer for every response body it copies, which was
// two thirds of the bytes allocated per proxied request (BenchmarkIngress's
// memory profile) and so most of the garbage collector's work under load.
type copyBuffers struct{}

// copyBufferSize is the size httputil.ReverseProxy uses without a pool.
const copyBufferSize = 32 << 10

var copyBufferPool = sync.Pool{New: func() any { b := make([]byte, copyBufferSize); return &b }}

// Get implements httputil.BufferPool.
func (copyBuffers) Get() []byte { return *copyBufferPool.Get().(*[]byte) }

// Put implements httputil.BufferPool.
func (copyBuffers) Put(b []byte) {
	if cap(b) == copyBufferSize {
		b = b[:copyBufferSize]
		copyBufferPool.Put(&b)
	}
}

// response is the proxy's ModifyResponse: it counts an instance's
// response in its route's stats, and tells the instance's spare
// connections of a response after which the instance closes the
// connection.
func (in *Ingress) response(resp *http.Response) error {
	if a, ok := resp.Request.Context().Value(attemptKey{}).(*attempt); ok {
		a.route.stats.count(resp.StatusCode)
	}
	if resp.Close {
		if p := in.table.Load().pools[resp.Request.URL.Host]; p != nil {
			p.responseClosed()
		}
	}
	return nil
}

func (s *routeStats) count(status int) {
	switch {
	case status >= 500:
		s.http5xx.Add(1)
	case status >= 400:
		s.http4xx.Add(1)
	}
}

// proxyError is the ReverseProxy's error handler: it only records the
// failure, so that ServeHTTP can retry it on another instance before
// answering.
func (in *Ingress) proxyError(_ http.ResponseWriter, r *http.Request, err error) {
	if a, ok := r.Context().Value(attemptKey{}).(*attempt); ok {
		a.err = err
	}
}

// writeProxyError answers a request whose instance failed: 504 when it did
// not answer in time, 502 otherwise. The cause is logged, not shown.
func (in *Ingress) writeProxyError(w http.ResponseWriter, r *http.Request, a *attempt) {
	if r.Context().Err() != nil {
		// The client went away; nobody reads the answer, and it is no
		// failure of the instance.
		return
	}
	status, message := http.StatusBadGateway, "the service's instance could not be reached"
	var ne net.Error
	if errors.As(a.err, &ne) && ne.Timeout() && !isDialError(a.err) {
		status, message = http.StatusGatewayTimeout, "the service's instance did not answer in time"
	}
	a.route.stats.count(status)
	in.log.WarnContext(r.Context(), "ingress: proxy failed", "project", a.route.key.project, "service", a.route.key.service,
		"port", a.route.key.port, "backend", a.backend.id, "error", a.err)
	apierr.WriteHTTP(w, status, apierr.HTTPStatusReason(status), message, nil)
}

// retryable reports whether r may be sent again: GET or HEAD without a
// body.
func retryable(r *http.Request) bool {
	return (r.Method == http.MethodGet || r.Method == http.MethodHead) &&
		(r.Body == nil || r.Body == http.NoBody) && r.ContentLength == 0
}

// isDialError reports whether err is a failure to connect, after which
// the instance has seen nothing of the request.
func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// collector exports the route counters to Prometheus, read from the same
// atomics Stats reads, so the two never disagree.
type collector struct{ in *Ingress }

var (
	labels   = []string{"project", "service", "port"}
	descReqs = prometheus.NewDesc("slipway_ingress_requests_total",
		"HTTP requests the ingress routed to a service port.", labels, nil)
	desc4xx = prometheus.NewDesc("slipway_ingress_http_4xx_responses_total",
		"Responses with a 4xx status to requests routed to a service port.", labels, nil)
	desc5xx = prometheus.NewDesc("slipway_ingress_http_5xx_responses_total",
		"Responses with a 5xx status to requests routed to a service port, the ingress's own 502, 503 and 504 included.", labels, nil)
	descSpares = prometheus.NewDesc("slipway_ingress_preconnect_spares_total",
		"What became of pre-connecting to instances that close every connection, by outcome: used (a request went out on a spare), missed (a request dialled itself), expired (closed unused), dead (found closed by the instance before use).", []string{"outcome"}, nil)
)

// Describe implements prometheus.Collector.
func (collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descReqs
	ch <- desc4xx
	ch <- desc5xx
	ch <- descSpares
}

// Collect implements prometheus.Collector.
func (c collector) Collect(ch chan<- prometheus.Metric) {
	sp := c.in.SpareStats()
	for _, m := range []struct {
		outcome string
		v       uint64
	}{{"used", sp.Used}, {"missed", sp.Missed}, {"expired", sp.Expired}, {"dead", sp.Dead}} {
		ch <- prometheus.MustNewConstMetric(descSpares, prometheus.CounterValue, float64(m.v), m.outcome)
	}
	c.in.mu.Lock()
	defer c.in.mu.Unlock()
	for k, s := range c.in.stats {
		for _, m := range []struct {
			d *prometheus.Desc
			v uint64
		}{{descReqs, s.requests.Load()}, {desc4xx, s.http4xx.Load()}, {desc5xx, s.http5xx.Load()}} {
			ch <- prometheus.MustNewConstMetric(m.d, prometheus.CounterValue, float64(m.v), k.project, k.service, k.port)
		}
	}
}
