package oauth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/ory/fosite"

	"github.com/slipwayhq/slipway/pkg/quota"
)

// Defaults of the throttle.
const (
	// DefaultRequestLimit is how many POSTs to the endpoints (sign-in,
	// token, introspection, revocation) one client address may make per
	// DefaultRequestWindow.
	DefaultRequestLimit = 300
	// DefaultRequestWindow is the window of DefaultRequestLimit.
	DefaultRequestWindow = time.Minute
)

// DefaultPairPolicy punishes failed sign-ins (and client authentications)
// of one account from one address: 5 free, then a lockout of 5 s doubling
// at each further failure, up to 15 minutes.
var DefaultPairPolicy = quota.BackoffPolicy{Free: 5, Base: 5 * time.Second, Max: 15 * time.Minute, Forget: time.Hour}

// DefaultAccountPolicy punishes failures of one account from any address,
// against guessing spread over many addresses: 20 free, then the same
// doubling lockouts.
var DefaultAccountPolicy = quota.BackoffPolicy{Free: 20, Base: 5 * time.Second, Max: 15 * time.Minute, Forget: time.Hour}

// Throttle limits what a client can try at the endpoints: requests per
// address, and lockouts after failed sign-ins and failed client
// authentications per account and address, and per account. Refusals are
// 429 with Retry-After, in the endpoint's own error format. Its parts are
// pkg/quota's, so with Redis every auth replica shares the counts.
type Throttle struct {
	// Requests counts each address's POSTs in fixed windows; RequestLimit
	// is the limit per window.
	Requests     quota.Limiter
	RequestLimit int64
	// Pair locks an account out from one address; Account from all.
	Pair, Account quota.Backoff
	// ClientAddr returns the client's address; nil: the host of
	// r.RemoteAddr.
	ClientAddr func(r *http.Request) string
}

// MemoryThrottle is a Throttle with the defaults, kept in this process.
func MemoryThrottle() *Throttle {
	return &Throttle{
		Requests: quota.NewMemory(DefaultRequestWindow), RequestLimit: DefaultRequestLimit,
		Pair: quota.NewMemoryBackoff(DefaultPairPolicy, nil), Account: quota.NewMemoryBackoff(DefaultAccountPolicy, nil),
	}
}

// account is who an attempt tries to be: a user (by email) or a client
// (by id).
type account struct{ kind, id string }

func (a account) key() string {
	// Hashed: Redis keys need not spell email addresses.
	h := sha256.Sum256([]byte(a.kind + "\x00" + a.id))
	return a.kind + ":" + hex.EncodeToString(h[:16])
}

func userAccount(email string) account {
	return account{"user", strings.ToLower(strings.TrimSpace(email))}
}

// clientAccount is the client a request authenticates as (Basic, or the
// client_id form field), if any.
func clientAccount(r *http.Request) (account, bool) {
	id, _, ok := r.BasicAuth()
	if !ok {
		id = r.PostForm.Get("client_id")
	}
	return account{"client", id}, id != ""
}

func (t *Throttle) addr(r *http.Request) string {
	if t.ClientAddr != nil {
		return t.ClientAddr(r)
	}
	return RemoteHost(r)
}

// RemoteHost is the host of r.RemoteAddr.
func RemoteHost(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// admit counts the request against its address and checks the accounts'
// lockouts, and returns how long the client must wait (zero: go on).
// Limiter and Backoff errors let the request through: a throttle store
// outage must not lock everybody out (the Failover variants never err).
func (t *Throttle) admit(ctx context.Context, r *http.Request, accounts ...account) time.Duration {
	addr := t.addr(r)
	if t.Requests != nil {
		if d, err := t.Requests.Allow(ctx, "oauth:ip:"+addr, t.RequestLimit); err == nil && !d.Allowed {
			return time.Duration(d.ResetSeconds()) * time.Second
		}
	}
	var wait time.Duration
	for _, a := range accounts {
		if a.id == "" {
			continue
		}
		if t.Pair != nil {
			if d, err := t.Pair.Locked(ctx, "oauth:"+a.key()+":"+addr); err == nil {
				wait = max(wait, d)
			}
		}
		if t.Account != nil {
			if d, err := t.Account.Locked(ctx, "oauth:"+a.key()); err == nil {
				wait = max(wait, d)
			}
		}
	}
	return wait
}

// failed records a failed attempt of a.
func (t *Throttle) failed(ctx context.Context, r *http.Request, a account) {
	if a.id == "" {
		return
	}
	if t.Pair != nil {
		_, _ = t.Pair.Fail(ctx, "oauth:"+a.key()+":"+t.addr(r))
	}
	if t.Account != nil {
		_, _ = t.Account.Fail(ctx, "oauth:"+a.key())
	}
}

// succeeded forgets a's failures from this address. (The account-wide
// count is left to expire: a success must not hand a guesser elsewhere a
// fresh allowance.)
func (t *Throttle) succeeded(ctx context.Context, r *http.Request, a account) {
	if a.id != "" && t.Pair != nil {
		_ = t.Pair.Reset(ctx, "oauth:"+a.key()+":"+t.addr(r))
	}
}

// retryAfter sets Retry-After to wait in whole seconds, rounded up, and
// returns them.
func retryAfter(w http.ResponseWriter, wait time.Duration) int64 {
	secs := int64((wait + time.Second - 1) / time.Second)
	w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
	return secs
}

// tooManyJSON is the 429 of the token, introspection and revocation
// endpoints, in their RFC 6749 error format. RFC 6749 has no code for it;
// temporarily_unavailable is its code for "cannot handle the request now".
func tooManyJSON(w http.ResponseWriter, wait time.Duration) {
	secs := retryAfter(w, wait)
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.WriteHeader(http.StatusTooManyRequests)
	_ = json.NewEncoder(w).Encode(map[string]string{
		"error":             "temporarily_unavailable",
		"error_description": "Too many requests or failed attempts; retry after " + strconv.FormatInt(secs, 10) + " seconds.",
	})
}

// clientFailure reports whether err says the client failed to
// authenticate. An inactive token at introspection wraps
// ErrRequestUnauthorized too, but is the token's fault, not the client's.
func clientFailure(err error) bool {
	if errors.Is(err, fosite.ErrInactiveToken) {
		return false
	}
	return errors.Is(err, fosite.ErrInvalidClient) || errors.Is(err, fosite.ErrRequestUnauthorized)
}
