package gateway

import (
	"net"
	"net/http"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/slipwayhq/slipway/pkg/authz"
)

// wwwAuthenticate tells clients which schemes the API takes (RFC 9110).
const wwwAuthenticate = `Bearer realm="slipway", Basic realm="slipway"`

// publicPath reports whether path is served without credentials: health,
// version, the API description and metrics (which sit behind the network
// boundary like every operator endpoint).
func publicPath(path string) bool {
	switch path {
	case "/health", "/health/live", "/health/ready", "/version", "/v1/openapi.json", "/metrics":
		return true
	}
	return strings.HasPrefix(path, "/oauth2/") || strings.HasPrefix(path, "/.well-known/")
}

// guard authenticates the caller and applies the hourly quota, before any
// service is called. Services still authorize every call themselves; the
// gateway needs the caller earlier, to answer 401 and to know whose quota a
// request spends. Quota headers go on every response, errors included;
// callers without valid credentials spend a quota of their address, which
// also slows down credential guessing.
func (g *Gateway) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if g.opts.Auth == nil || publicPath(r.URL.Path) {
			next.ServeHTTP(w, r)
			return
		}
		key, plan := "ip:"+clientIP(r), ""
		header := r.Header.Get("Authorization")
		var authErr error
		if header == "" {
			authErr = authz.Unauthenticated("credentials required: send a Bearer token or Basic API credentials")
		} else if p, err := g.opts.Auth.Principal(r.Context(), header); err != nil {
			authErr = err
		} else {
			key = "team:" + p.GetDefaultTeamId()
			if p.GetKind() == "personal_token" && p.GetUserId() != "" {
				key = "user:" + p.GetUserId()
			}
			if grant, ok := authz.Grant(p, p.GetDefaultTeamId()); ok {
				plan = grant.GetPlan()
			}
		}
		if g.opts.Quota != nil {
			d, _ := g.opts.Quota.Allow(r.Context(), key, g.opts.Plans.Limit(plan)) // a Failover never errs
			d.Headers(w.Header())
			if !d.Allowed {
				writeError(w, http.StatusTooManyRequests, "QUOTA_EXCEEDED",
					"hourly request quota exhausted; retry after the reset", map[string]int64{"limit": d.Limit, "resetSeconds": d.ResetSeconds()})
				return
			}
		}
		if authErr != nil {
			// The error comes from the auth service over gRPC, or from here;
			// either way the shared error handler shapes it.
			if status.Code(authErr) == codes.Unauthenticated {
				w.Header().Set("WWW-Authenticate", wwwAuthenticate)
			}
			g.handleError(r.Context(), nil, nil, w, r, authErr)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
