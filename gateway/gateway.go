// Package gateway is Slipway's public HTTP entry: grpc-gateway translating
// the JSON REST API to the services' gRPC APIs, shaped the Northflank way
// (envelopes, errors, pagination), with request ids, API version
// negotiation, body limits, health, version, OpenAPI and metrics.
package gateway

import (
	"context"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"runtime"
	"strings"
	"time"

	gwruntime "github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	"github.com/slipwayhq/slipway/gen/openapi"
	"github.com/slipwayhq/slipway/pkg/apierr"
	"github.com/slipwayhq/slipway/pkg/authz"
	"github.com/slipwayhq/slipway/pkg/component"
	"github.com/slipwayhq/slipway/pkg/idempotency"
	"github.com/slipwayhq/slipway/pkg/quota"
	"github.com/slipwayhq/slipway/pkg/requestid"
	"github.com/slipwayhq/slipway/pkg/rpcserver"
)

// Options configure New.
type Options struct {
	// Logger receives access logs and the causes of 500s.
	Logger *slog.Logger
	// Registerer receives HTTP metrics; Gatherer is served on /metrics.
	// Either may be nil.
	Registerer prometheus.Registerer
	Gatherer   prometheus.Gatherer
	// Version is the build's version string, served on /version.
	Version string
	// Backends are the components the gateway fronts: each one's API (REST
	// routes, health, live tails) and a connection to it, in memory or over
	// gRPC. The first is the required core; any may be absent from a
	// gateway running apart, whose routes then answer 404.
	Backends []component.Backend
	// Ready is an extra readiness check of the gateway's own dependencies;
	// may be nil.
	Ready func(ctx context.Context) map[string]string
	// Notices are standing facts an operator must know (component.Env's
	// Notice), shown by /health without making it fail; may be nil.
	Notices func() map[string]string
	// Auth resolves credentials (for 401s and quota keys); nil serves
	// without authentication, which only tests of the wire format use.
	Auth *authz.Authorizer
	// Quota limits requests per team (or user, or address) and hour; nil
	// means no quotas.
	Quota quota.Limiter
	// Plans gives each team plan its hourly limit.
	Plans quota.Plans
	// OAuth serves /oauth2/... and the RFC 8414 metadata (the OAuth2
	// server, or a proxy to the auth service running it); nil: not served.
	OAuth http.Handler
	// Idempotency keeps the answers to POSTs sent with an Idempotency-Key
	// (see idempotent), shared by every replica when on PostgreSQL; nil:
	// the header is ignored.
	Idempotency idempotency.Store
	// IdempotencyTTL is how long a key and its answer are kept;
	// DefaultIdempotencyTTL when 0.
	IdempotencyTTL time.Duration
}

// Gateway is the public HTTP handler.
type Gateway struct {
	// ctx bounds the gateway's life: WebSocket log tails and exec
	// sessions, whose hijacked connections http.Server.Shutdown neither
	// closes nor waits for, end when it is done.
	ctx     context.Context
	log     *slog.Logger
	metrics *httpMetrics
	routes  routeTable
	opts    Options
	health  []healthTarget
	handler http.Handler
	// tails are the live-tail routes of every backend.
	tails []tailRoute
	// execs are the exec routes of every backend.
	execs []execRoute
	// webhooks are the webhook routes' path segments.
	webhooks [][]string
	// downloads are the download routes' path segments.
	downloads [][]string
	// tailInitTimeout is how long a log tail waits for its init message.
	tailInitTimeout time.Duration
}

// healthTarget is a backend the readiness probe asks over gRPC health.
type healthTarget struct {
	name    string
	service string
	client  healthpb.HealthClient
}

// New builds the gateway. ctx should live as long as the gateway serves:
// its end closes the WebSocket log tails still open (a server's Shutdown
// does not reach those).
func New(ctx context.Context, opts Options) (*Gateway, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	m, err := newHTTPMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}
	g := &Gateway{ctx: ctx, log: opts.Logger, metrics: m, opts: opts, tailInitTimeout: tailInitTimeout}
	mux := gwruntime.NewServeMux(
		gwruntime.WithMarshalerOption(gwruntime.MIMEWildcard, envelope{}),
		gwruntime.WithErrorHandler(g.handleError),
		gwruntime.WithRoutingErrorHandler(g.handleRoutingError),
		gwruntime.WithIncomingHeaderMatcher(incomingHeader),
		// Services' response metadata stays internal.
		gwruntime.WithOutgoingHeaderMatcher(func(string) (string, bool) { return "", false }),
		gwruntime.WithOutgoingTrailerMatcher(func(string) (string, bool) { return "", false }),
		gwruntime.WithForwardResponseOption(noStore),
		gwruntime.WithForwardResponseOption(pageHeaders),
		// The request id travels as the X-Request-Id header, which
		// instrument sets and incomingHeader forwards.
		gwruntime.WithMiddlewares(recordRoute),
	)
	if len(opts.Backends) == 0 {
		return nil, fmt.Errorf("gateway: no backends")
	}
	var webhooks, downloads []string
	for _, b := range opts.Backends {
		// A backend in this process runs the chain, which checks every
		// request's strings itself: the check before the wire is for
		// backends across it.
		conn := b.Conn
		if _, local := conn.(*rpcserver.Local); !local {
			conn = checkedConn{conn}
		}
		if err := b.API.Register(ctx, mux, conn); err != nil {
			return nil, fmt.Errorf("gateway: %s routes: %w", b.Name, err)
		}
		g.health = append(g.health, healthTarget{b.Name, b.API.HealthService, healthpb.NewHealthClient(b.Conn)})
		for _, t := range b.API.Tails {
			route, err := newTailRoute(t, conn)
			if err != nil {
				return nil, fmt.Errorf("gateway: %s: %w", b.Name, err)
			}
			g.tails = append(g.tails, route)
		}
		for _, e := range b.API.Exec {
			route, err := newExecRoute(e, conn)
			if err != nil {
				return nil, fmt.Errorf("gateway: %s: %w", b.Name, err)
			}
			g.execs = append(g.execs, route)
		}
		for _, hook := range b.API.Webhooks {
			if err := mux.HandlePath(http.MethodPost, "/v1"+hook.Path, g.webhookHandler(hook, conn)); err != nil {
				return nil, fmt.Errorf("gateway: %s: webhook %s: %w", b.Name, hook.Path, err)
			}
			webhooks = append(webhooks, "/v1"+hook.Path)
			g.webhooks = append(g.webhooks, strings.Split(strings.Trim("/v1"+hook.Path, "/"), "/"))
		}
		for _, d := range b.API.Downloads {
			if err := mux.HandlePath(http.MethodGet, "/v1"+d.Path, g.downloadHandler(d, conn)); err != nil {
				return nil, fmt.Errorf("gateway: %s: download %s: %w", b.Name, d.Path, err)
			}
			downloads = append(downloads, "/v1"+d.Path)
			g.downloads = append(g.downloads, strings.Split(strings.Trim("/v1"+d.Path, "/"), "/"))
		}
	}

	operational := []struct {
		method, path string
		h            gwruntime.HandlerFunc
	}{
		{"GET", "/health", g.ready},
		{"GET", "/health/ready", g.ready},
		{"GET", "/health/live", g.live},
		{"GET", "/version", g.version},
		{"GET", "/v1/openapi.json", serveOpenAPI},
		{"GET", "/v1/postman-collection.json", servePostmanCollection},
		{"GET", "/metrics", g.serveMetrics},
	}
	extra := map[string][]string{}
	for _, path := range webhooks {
		extra[path] = append(extra[path], http.MethodPost)
	}
	for _, path := range downloads {
		extra[path] = append(extra[path], http.MethodGet)
	}
	for _, route := range operational {
		if err := mux.HandlePath(route.method, route.path, route.h); err != nil {
			return nil, err
		}
		extra[route.path] = append(extra[route.path], route.method)
	}
	if g.routes, err = newRouteTable(extra); err != nil {
		return nil, err
	}
	router := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case opts.OAuth != nil && isOAuthPath(r.URL.Path):
			opts.OAuth.ServeHTTP(w, r)
			return
		}
		dropBadContentType(r)
		switch {
		case isWebSocket(r):
			if m, ok := g.matchTail(r.URL.Path); ok {
				g.serveLogTail(w, r, m)
				return
			}
			if m, ok := g.matchExec(r.URL.Path); ok {
				g.serveExec(w, r, m)
				return
			}
			mux.ServeHTTP(w, r)
		default:
			mux.ServeHTTP(w, r)
		}
	})
	g.handler = g.instrument(negotiate(g.guard(limitBody(g.idempotent(router)))))
	return g, nil
}

// dropBadContentType removes a Content-Type header that is not a media
// type. The API reads every body as JSON whatever it says, so this changes
// nothing for the request; it spares the log grpc-gateway writes, outside
// the structured log, for every such header it meets.
func dropBadContentType(r *http.Request) {
	for _, v := range r.Header.Values("Content-Type") {
		if _, _, err := mime.ParseMediaType(v); err != nil {
			r.Header.Del("Content-Type")
			return
		}
	}
}

// isOAuthPath reports whether the OAuth2 server answers path.
func isOAuthPath(path string) bool {
	return strings.HasPrefix(path, "/oauth2/") || path == "/.well-known/oauth-authorization-server"
}

// ServeHTTP implements http.Handler.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) { g.handler.ServeHTTP(w, r) }

// incomingHeader forwards what services need: Authorization (for the
// auth interceptors) and the request id. Other headers stay at the edge.
func incomingHeader(key string) (string, bool) {
	switch http.CanonicalHeaderKey(key) {
	case "Authorization":
		return "authorization", true
	case requestid.Header:
		return requestid.MetadataKey, true
	}
	return "", false
}

func forwardRequestID(ctx context.Context, _ *http.Request) metadata.MD {
	if id := requestid.FromContext(ctx); id != "" {
		return metadata.Pairs(requestid.MetadataKey, id)
	}
	return nil
}

func noStore(_ context.Context, w http.ResponseWriter, _ proto.Message) error {
	w.Header().Set("Cache-Control", "no-store")
	return nil
}

func writeData(w http.ResponseWriter, status int, data []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(data)
}

func (g *Gateway) live(w http.ResponseWriter, _ *http.Request, _ map[string]string) {
	writeData(w, http.StatusOK, []byte(`{"data":{"status":"ok"}}`+"\n"))
}

// ready asks every backend's gRPC health service (which checks its
// database and NATS) and the gateway's own dependencies.
func (g *Gateway) ready(w http.ResponseWriter, r *http.Request, _ map[string]string) {
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	checks := map[string]string{}
	healthy := true
	for _, t := range g.health {
		resp, err := t.client.Check(ctx, &healthpb.HealthCheckRequest{Service: t.service})
		switch {
		case err != nil:
			checks[t.name], healthy = "unreachable", false
		case resp.GetStatus() != healthpb.HealthCheckResponse_SERVING:
			checks[t.name], healthy = "not serving", false
		default:
			checks[t.name] = "ok"
		}
	}
	if g.opts.Ready != nil {
		for name, result := range g.opts.Ready(ctx) {
			checks[name] = result
			healthy = healthy && result == "ok"
		}
	}
	details := map[string]any{"checks": checks}
	if g.opts.Notices != nil {
		if n := g.opts.Notices(); len(n) > 0 {
			details["notices"] = n
		}
	}
	if !healthy {
		writeError(w, http.StatusServiceUnavailable, apierr.ReasonNotReady, "not ready", details)
		return
	}
	details["status"] = "ok"
	writeData(w, http.StatusOK, mustJSON(map[string]any{"data": details}))
}

// version answers GET /version in two shapes at once: Slipway's envelope
// ({"data": {version, goVersion, apiVersions}}) and, at the top level,
// ComputeStacks' (version, api_latest_version, api_available_versions),
// so clients of either read it as they expect.
func (g *Gateway) version(w http.ResponseWriter, _ *http.Request, _ map[string]string) {
	writeData(w, http.StatusOK, mustJSON(map[string]any{
		"data": map[string]any{
			"version":     g.opts.Version,
			"goVersion":   runtime.Version(),
			"apiVersions": APIVersions,
		},
		"version":                g.opts.Version,
		"api_latest_version":     APIVersions[len(APIVersions)-1],
		"api_available_versions": APIVersions,
	}))
}

func serveOpenAPI(w http.ResponseWriter, _ *http.Request, _ map[string]string) {
	writeData(w, http.StatusOK, openapi.Document)
}

// servePostmanCollection serves the OpenAPI document as a Postman
// collection, generated with it (gen/openapi).
func servePostmanCollection(w http.ResponseWriter, _ *http.Request, _ map[string]string) {
	writeData(w, http.StatusOK, openapi.PostmanCollection)
}

func (g *Gateway) serveMetrics(w http.ResponseWriter, r *http.Request, _ map[string]string) {
	if g.opts.Gatherer == nil {
		writeError(w, http.StatusNotFound, apierr.ReasonRouteNotFound, "metrics are disabled", nil)
		return
	}
	promhttp.HandlerFor(g.opts.Gatherer, promhttp.HandlerOpts{}).ServeHTTP(w, r)
}
