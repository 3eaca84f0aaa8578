package gateway

import (
	"context"
	"net"
	"net/http"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/slipwayhq/slipway/pkg/apierr"
	"github.com/slipwayhq/slipway/pkg/authz"
	"github.com/slipwayhq/slipway/pkg/quota"
	"github.com/slipwayhq/slipway/pkg/rpcserver"
)

// wwwAuthenticate tells clients which schemes the API takes (RFC 9110).
const wwwAuthenticate = `Bearer realm="slipway", Basic realm="slipway"`

// publicPath reports whether path is served without credentials: health,
// version, the API description (OpenAPI, and the same as a Postman
// collection) and metrics (which sit behind the network boundary like
// every operator endpoint).
func publicPath(path string) bool {
	switch path {
	case "/health", "/health/live", "/health/ready", "/version", "/v1/openapi.json", "/v1/postman-collection.json", "/metrics":
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
		if (r.Method == http.MethodPost && g.isWebhook(r.URL.Path)) || (r.Method == http.MethodGet && g.isDownload(r.URL.Path)) {
			// A webhook's caller (a download link's holder) proves itself
			// with a signature the component checks; it spends its
			// address's quota, which also slows down signature guessing.
			if a := g.admit(r.Context(), r, ""); a.quota != nil {
				a.quota.Headers(w.Header())
				if !a.quota.Allowed {
					writeError(w, quotaExceeded.Status, apierr.Reason(quotaExceeded.ID), quotaExceeded.Message, a.quotaDetails())
					return
				}
			}
			next.ServeHTTP(w, r)
			return
		}
		header := r.Header.Get("Authorization")
		if header == "" && g.isLive(r) {
			// A WebSocket log tail or exec session sends its credential
			// in its first message, and admits the caller once it has
			// read it.
			next.ServeHTTP(w, r)
			return
		}
		a := g.admit(r.Context(), r, header)
		if a.quota != nil {
			a.quota.Headers(w.Header())
			if !a.quota.Allowed {
				writeError(w, quotaExceeded.Status, apierr.Reason(quotaExceeded.ID), quotaExceeded.Message, a.quotaDetails())
				return
			}
		}
		if a.authErr != nil {
			// The error comes from the auth service over gRPC, or from here;
			// either way the shared error handler shapes it.
			if status.Code(a.authErr) == codes.Unauthenticated {
				w.Header().Set("WWW-Authenticate", wwwAuthenticate)
			}
			g.handleError(r.Context(), nil, nil, w, r, a.authErr)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// quotaExceeded is the answer to a caller whose hourly quota is spent.
var quotaExceeded = errorDetail{Status: http.StatusTooManyRequests, ID: apierr.ReasonQuotaExceeded, Message: "hourly request quota exhausted; retry after the reset"}

// admission is what the gateway decides about a caller before any service
// is called: whether the credentials resolve, and what is left of the
// hourly quota the request spent.
type admission struct {
	// authErr is the authentication failure; nil when the credentials
	// resolved.
	authErr error
	// quota is the decision on the request; nil without quotas.
	quota *quota.Decision
}

// quotaDetails are the details of a 429.
func (a admission) quotaDetails() map[string]int64 {
	return map[string]int64{"limit": a.quota.Limit, "resetSeconds": a.quota.ResetSeconds()}
}

// admit resolves an Authorization header value and spends one request of
// the caller's hourly quota: its team's (at the team's plan), a personal
// token's user's, or, for a caller without valid credentials, its
// address's, which also slows down credential guessing. guard and the
// WebSocket log tail (whose credential arrives in its first message) both
// admit callers through it. g.opts.Auth must be set.
func (g *Gateway) admit(ctx context.Context, r *http.Request, header string) admission {
	var a admission
	key, plan := "ip:"+clientIP(r), ""
	if header == "" {
		a.authErr = authz.Unauthenticated("credentials required: send a Bearer token or Basic API credentials")
	} else if !rpcserver.ValidString(header) {
		// No credential holds a NUL or bytes that are not UTF-8; the auth
		// service is not asked (the request could not even reach it).
		a.authErr = authz.Unauthenticated("malformed credentials")
	} else if p, err := g.opts.Auth.Principal(ctx, header); err != nil {
		a.authErr = err
	} else {
		key = "team:" + p.GetDefaultTeamId()
		if authz.KindOf(p) == authz.PrincipalPersonalToken && p.GetUserId() != "" {
			key = "user:" + p.GetUserId()
		}
		if grant, ok := authz.Grant(p, p.GetDefaultTeamId()); ok {
			plan = grant.GetPlan()
		}
	}
	if g.opts.Quota != nil {
		d, _ := g.opts.Quota.Allow(ctx, key, g.opts.Plans.Limit(plan)) // a Failover never errs
		a.quota = &d
	}
	return a
}

func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
