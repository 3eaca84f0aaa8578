package gateway

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/slipwayhq/slipway/pkg/apierr"
	"github.com/slipwayhq/slipway/pkg/idempotency"
	"github.com/slipwayhq/slipway/pkg/requestid"
	"github.com/slipwayhq/slipway/pkg/secret"
)

// Idempotency-Key (the IETF httpapi draft's header, and Stripe's): a
// client that sends it with a POST may send the same request again, after
// a timeout or a lost connection, and get the first answer instead of a
// second effect.
const (
	// IdempotencyKeyHeader is the request header naming the key.
	IdempotencyKeyHeader = "Idempotency-Key"
	// IdempotentReplayedHeader marks a response that is the stored answer
	// to an earlier request with the same key.
	IdempotentReplayedHeader = "Idempotent-Replayed"
	// MaxIdempotencyKeyLength is the longest key accepted.
	MaxIdempotencyKeyLength = 255
	// DefaultIdempotencyTTL is how long keys are kept unless configured.
	DefaultIdempotencyTTL = 24 * time.Hour
)

var (
	// idempotencyLease is how long a running request's claim on its key
	// lasts without renewal; the request renews it every third of it. A
	// claim left by a process that died is taken over once it lapses,
	// which is well within idempotencyWait.
	idempotencyLease = 15 * time.Second
	// idempotencyWait bounds how long a retry waits for the first request
	// with its key to finish before it gets 409.
	idempotencyWait = 30 * time.Second
)

// maxStoredResponse bounds the response body kept for replays. API
// answers to POSTs are far smaller; a larger one is not kept (and the key
// is given back) rather than held in memory and the database.
const maxStoredResponse = 1 << 20

// Answers of the idempotency middleware, in the error envelope.
var (
	keyReused = errorDetail{Status: http.StatusUnprocessableEntity, ID: apierr.ReasonIdempotencyKeyReused,
		Message: "this Idempotency-Key was used for a different request (method, path or body); use a new key"}
	keyInUse = errorDetail{Status: http.StatusConflict, ID: apierr.ReasonIdempotencyKeyInUse,
		Message: "a request with this Idempotency-Key is still being processed; retry later"}
	keyUnavailable = errorDetail{Status: http.StatusServiceUnavailable, ID: apierr.ReasonUnavailable,
		Message: "idempotency keys are unavailable, try again later"}
)

// idempotent makes POSTs under /v1 that carry an Idempotency-Key and a
// credential safe to retry. The first request with a key claims it and
// runs; its response is kept for the keys' lifetime unless it is one a
// retry should not get again (5xx, 401, 429), in which case the key is
// given back. A later request with the same key and credential gets the
// kept response (with Idempotent-Replayed: true) when it is the same
// request (method, path and query, body), 422 when it is not, and, while
// the first is still running, waits for it (409 after idempotencyWait).
// It runs after guard, so a request that is refused authentication or
// quota never touches a key, and after limitBody, whose buffered body it
// hashes. Webhook receivers, which callers without credentials POST to,
// are left alone.
func (g *Gateway) idempotent(next http.Handler) http.Handler {
	if g.opts.Idempotency == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		keys := r.Header.Values(IdempotencyKeyHeader)
		credential := r.Header.Get("Authorization")
		if len(keys) == 0 || r.Method != http.MethodPost || credential == "" ||
			!strings.HasPrefix(r.URL.Path, "/v1/") || g.isWebhook(r.URL.Path) {
			next.ServeHTTP(w, r)
			return
		}
		if problem := checkIdempotencyKey(keys); problem != "" {
			writeError(w, http.StatusBadRequest, apierr.ReasonValidationFailed, "request validation failed",
				map[string][]string{IdempotencyKeyHeader: {problem}})
			return
		}
		body, err := io.ReadAll(r.Body) // buffered by limitBody
		if err != nil {
			writeError(w, http.StatusBadRequest, apierr.ReasonBodyUnreadable, "could not read the request body", nil)
			return
		}
		r.Body = &requestBody{Reader: bytes.NewReader(body)}
		// The credential is kept only as its SHA-256: a key's scope says
		// whose it is without the store holding any secret.
		g.serveIdempotent(w, r, next, idempotency.Key{Scope: secret.Hash(credential), ID: keys[0]},
			fingerprint(r.Method, r.URL.RequestURI(), body))
	})
}

// checkIdempotencyKey says what is wrong with the header's values, or "".
// A key is 1 to 255 visible ASCII characters: what every client sends (a
// UUID, often quoted as the IETF draft's structured string), and nothing a
// header could carry ambiguously.
func checkIdempotencyKey(values []string) string {
	const want = "must be 1 to 255 visible ASCII characters"
	if len(values) > 1 {
		return "is given more than once"
	}
	key := values[0]
	if key == "" || len(key) > MaxIdempotencyKeyLength {
		return want
	}
	for i := 0; i < len(key); i++ {
		if key[i] < 0x21 || key[i] > 0x7e {
			return want
		}
	}
	return ""
}

// fingerprint identifies a request for its key: a retry must be the same
// method on the same target with the same body.
func fingerprint(method, target string, body []byte) string {
	return secret.Hash(method + "\n" + target + "\n" + secret.Hash(string(body)))
}

// serveIdempotent claims the key and runs the request, or answers from
// the record of the request that holds it, waiting while that one runs.
func (g *Gateway) serveIdempotent(w http.ResponseWriter, r *http.Request, next http.Handler, key idempotency.Key, fp string) {
	ctx := r.Context()
	token := newClaimToken()
	deadline := time.Now().Add(idempotencyWait)
	pause := 10 * time.Millisecond
	for {
		now := time.Now()
		rec, claimed, err := g.opts.Idempotency.Begin(ctx, idempotency.Claim{
			Key: key, Fingerprint: fp, Token: token,
			Now: now, LeaseUntil: now.Add(idempotencyLease), ExpiresAt: now.Add(g.idempotencyTTL()),
		})
		switch {
		case err != nil && ctx.Err() != nil:
			g.handleError(ctx, nil, nil, w, r, status.Error(codes.Canceled, ""))
			return
		case errors.Is(err, apierr.ErrConflict):
			// Begin lost every race for the key to other requests: one of
			// them holds it, which is "in use", not a store outage.
			writeError(w, keyInUse.Status, apierr.Reason(keyInUse.ID), keyInUse.Message, nil)
			return
		case err != nil:
			g.log.ErrorContext(ctx, "idempotency key store", "error", err, "request_id", requestid.FromContext(ctx))
			writeError(w, keyUnavailable.Status, apierr.Reason(keyUnavailable.ID), keyUnavailable.Message, nil)
			return
		case claimed:
			g.runClaimed(w, r, next, key, token)
			return
		case rec.Fingerprint != fp:
			writeError(w, keyReused.Status, apierr.Reason(keyReused.ID), keyReused.Message, nil)
			return
		case !rec.Pending:
			replay(w, rec.Response)
			return
		}
		// The first request is still running (or its process died, and
		// its lease will lapse): ask again shortly.
		wait := min(pause, time.Until(deadline))
		if wait <= 0 {
			writeError(w, keyInUse.Status, apierr.Reason(keyInUse.ID), keyInUse.Message, nil)
			return
		}
		select {
		case <-ctx.Done():
			g.handleError(ctx, nil, nil, w, r, status.Error(codes.Canceled, ""))
			return
		case <-time.After(wait):
		}
		pause = min(2*pause, 250*time.Millisecond)
	}
}

// runClaimed runs the request that holds key and keeps its response, or
// gives the key back when a retry should run again.
func (g *Gateway) runClaimed(w http.ResponseWriter, r *http.Request, next http.Handler, key idempotency.Key, token string) {
	// The request runs to its end even if the client goes away, so that
	// what it did is what its retry is told: cancelled halfway, it could
	// have created something and left no answer to replay. It still ends
	// with the gateway.
	ctx, cancel := context.WithCancel(context.WithoutCancel(r.Context()))
	defer cancel()
	stopOnShutdown := context.AfterFunc(g.ctx, cancel)
	defer stopOnShutdown()

	renewed := make(chan struct{})
	go func() {
		defer close(renewed)
		g.renewLease(ctx, key, token)
	}()
	rec := &capture{ResponseWriter: w}
	func() {
		defer func() {
			cancel()
			<-renewed
		}()
		next.ServeHTTP(rec, r.WithContext(ctx))
	}()

	store := g.opts.Idempotency
	sctx, done := context.WithTimeout(context.WithoutCancel(r.Context()), 10*time.Second)
	defer done()
	code := rec.status
	if code == 0 {
		code = http.StatusOK
	}
	if !replayable(code) || rec.overflow {
		if err := store.Release(sctx, key, token); err != nil {
			g.log.ErrorContext(ctx, "idempotency key release", "error", err, "request_id", requestid.FromContext(ctx))
		}
		return
	}
	err := store.Complete(sctx, key, token, idempotency.Response{Status: code, ContentType: rec.Header().Get("Content-Type"), Body: rec.body.Bytes()})
	switch {
	case errors.Is(err, apierr.ErrConflict):
		// The lease lapsed (renewals failed for longer than it lasts)
		// and another request took the key over: it answers for it.
		g.log.WarnContext(ctx, "idempotency key taken over before the response was stored", "request_id", requestid.FromContext(ctx))
	case err != nil:
		g.log.ErrorContext(ctx, "idempotency key store", "error", err, "request_id", requestid.FromContext(ctx))
		_ = store.Release(sctx, key, token)
	}
}

// renewLease keeps the claim of a running request alive until ctx ends. A
// failed renewal is tried again at the next tick; a lost claim ends it.
func (g *Gateway) renewLease(ctx context.Context, key idempotency.Key, token string) {
	tick := time.NewTicker(idempotencyLease / 3)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		err := g.opts.Idempotency.Renew(ctx, key, token, time.Now().Add(idempotencyLease))
		if errors.Is(err, apierr.ErrConflict) {
			return
		}
		if err != nil && ctx.Err() == nil {
			g.log.WarnContext(ctx, "idempotency key lease renewal", "error", err, "request_id", requestid.FromContext(ctx))
		}
	}
}

// replayable reports whether a response is kept for retries. Server
// errors (503 included) and a spent quota are passing conditions a retry
// should get past, and 401 means the key's credential was not accepted:
// none of them did anything, so the retry runs again. 499 is a request
// the gateway itself abandoned (it ended while the request ran).
func replayable(code int) bool {
	switch {
	case code >= 500, code == http.StatusUnauthorized, code == http.StatusTooManyRequests, code == 499:
		return false
	}
	return true
}

// replay writes a kept response.
func replay(w http.ResponseWriter, resp idempotency.Response) {
	h := w.Header()
	if resp.ContentType != "" {
		h.Set("Content-Type", resp.ContentType)
	}
	h.Set("Cache-Control", "no-store")
	h.Set(IdempotentReplayedHeader, "true")
	w.WriteHeader(resp.Status)
	_, _ = w.Write(resp.Body)
}

func (g *Gateway) idempotencyTTL() time.Duration {
	if g.opts.IdempotencyTTL > 0 {
		return g.opts.IdempotencyTTL
	}
	return DefaultIdempotencyTTL
}

// newClaimToken is a random identifier of one request's claim.
func newClaimToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// capture passes a response through and keeps its status and body (up to
// maxStoredResponse) for the idempotency record.
type capture struct {
	http.ResponseWriter
	status   int
	body     bytes.Buffer
	overflow bool
}

func (c *capture) WriteHeader(code int) {
	if c.status == 0 {
		c.status = code
	}
	c.ResponseWriter.WriteHeader(code)
}

func (c *capture) Write(p []byte) (int, error) {
	if c.status == 0 {
		c.status = http.StatusOK
	}
	if !c.overflow {
		if c.body.Len()+len(p) > maxStoredResponse {
			c.overflow = true
			c.body = bytes.Buffer{}
		} else {
			c.body.Write(p)
		}
	}
	// A client gone away is no reason to stop: the record still gets the
	// whole response.
	_, _ = c.ResponseWriter.Write(p)
	return len(p), nil
}

// Flush passes through to the server's writer.
func (c *capture) Flush() {
	if f, ok := c.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap gives http.ResponseController the server's writer.
func (c *capture) Unwrap() http.ResponseWriter { return c.ResponseWriter }
