package oauth_test

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/slipwayhq/slipway/pkg/quota"
	"github.com/slipwayhq/slipway/pkg/sqldb"
	"github.com/slipwayhq/slipway/pkg/testenv"
	"github.com/slipwayhq/slipway/services/auth/oauth"
)

// testClock moves only when told.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *testClock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// clientHeader stands for the client's address in these tests: every
// request comes from loopback, so ClientAddr reads it from here.
const clientHeader = "X-Test-Client"

func addrFromHeader(r *http.Request) string {
	if a := r.Header.Get(clientHeader); a != "" {
		return a
	}
	return oauth.RemoteHost(r)
}

// postFrom is env.post from the client address addr.
func (e *env) postFrom(addr, path string, form url.Values, id, sec string) resp {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.srv.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set(clientHeader, addr)
	if id != "" {
		req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(sec))
	}
	return e.do(http.DefaultClient, req)
}

// want429 checks a refusal: 429 with Retry-After, in the JSON error format
// of the token endpoint.
func want429JSON(t *testing.T, what string, r resp) int {
	t.Helper()
	if r.status != http.StatusTooManyRequests || r.json["error"] != "temporarily_unavailable" || r.json["error_description"] == "" {
		t.Fatalf("%s: %d %s, want 429 temporarily_unavailable", what, r.status, r.body)
	}
	secs, err := strconv.Atoi(r.header.Get("Retry-After"))
	if err != nil || secs <= 0 {
		t.Fatalf("%s: Retry-After %q", what, r.header.Get("Retry-After"))
	}
	return secs
}

// TestSignInLockout is the finding: 60 wrong passwords on the sign-in
// page, then the right one, used to be accepted. Now 5 wrong ones are
// answered, the rest are refused with 429 and Retry-After before any
// password is checked, the right one included, until the lockout ends;
// another address is not locked out by them.
func TestSignInLockout(t *testing.T) {
	clock := &testClock{t: time.Now()}
	e := setupWith(t, sqldb.SQLite, &oauth.Throttle{
		Requests: quota.NewMemory(time.Minute), RequestLimit: 1000,
		Pair:       quota.NewMemoryBackoff(oauth.DefaultPairPolicy, clock.Now),
		Account:    quota.NewMemoryBackoff(oauth.DefaultAccountPolicy, clock.Now),
		ClientAddr: addrFromHeader,
	})
	id := e.public()
	_, challenge := pkcePair()
	au := authorizeURL(e, id, challenge, redirect)
	b := e.browser()
	signIn := func(addr, password string) resp {
		t.Helper()
		page := b.get(au)
		req, _ := http.NewRequest(http.MethodPost, au, strings.NewReader(url.Values{"csrf_token": {csrfOf(t, page)}, "action": {"sign_in"},
			"email": {userEmail}, "password": {password}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set(clientHeader, addr)
		return e.do(b.c, req)
	}
	var refused resp
	for i := range int64(60) {
		r := signIn("198.51.100.7", "wrong password "+strconv.FormatInt(i, 10))
		switch {
		case i < oauth.DefaultPairPolicy.Free && r.status != http.StatusUnauthorized:
			t.Fatalf("wrong password %d: %d, want 401", i+1, r.status)
		case i >= oauth.DefaultPairPolicy.Free+1 && r.status != http.StatusTooManyRequests:
			t.Fatalf("wrong password %d: %d, want 429", i+1, r.status)
		}
		refused = r
	}
	if !strings.Contains(string(refused.body), "Too many attempts") || refused.header.Get("Retry-After") == "" {
		t.Fatalf("the refusal page: %s (Retry-After %q)", refused.body, refused.header.Get("Retry-After"))
	}
	if r := signIn("198.51.100.7", userPass); r.status != http.StatusTooManyRequests {
		t.Fatalf("the right password during the lockout: %d, want 429", r.status)
	}
	// Another address is not locked out by someone else's guessing.
	if r := signIn("203.0.113.9", userPass); r.status != http.StatusOK || !strings.Contains(string(r.body), "Authorize") {
		t.Fatalf("the right password from another address: %d %s", r.status, r.body)
	}
	// After the lockout, the right password is accepted.
	secs, _ := strconv.Atoi(refused.header.Get("Retry-After"))
	clock.Advance(time.Duration(secs) * time.Second)
	if r := signIn("198.51.100.7", userPass); r.status != http.StatusOK || !strings.Contains(string(r.body), "Authorize") {
		t.Fatalf("the right password after the lockout: %d %s", r.status, r.body)
	}
}

// redisThrottle is a throttle in Redis, as every auth replica of an
// install with SLIPWAY_REDIS_URL builds it; prefix keeps test runs apart.
func redisThrottle(t *testing.T, url, prefix string, requestLimit int64) *oauth.Throttle {
	t.Helper()
	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	client := redis.NewClient(opts)
	t.Cleanup(func() { _ = client.Close() })
	return &oauth.Throttle{
		Requests:     quota.NewRedis(client, time.Minute, quota.WithKeyPrefix(prefix+"req:")),
		RequestLimit: requestLimit,
		Pair:         quota.NewRedisBackoff(client, oauth.DefaultPairPolicy, prefix+"pair:"),
		Account:      quota.NewRedisBackoff(client, oauth.DefaultAccountPolicy, prefix+"acct:"),
		ClientAddr:   addrFromHeader,
	}
}

// TestTokenEndpointThrottle: wrong passwords (password grant) and wrong
// client secrets at the token endpoint lock out, on two replicas sharing
// Redis: failures on one are refused on the other.
func TestTokenEndpointThrottle(t *testing.T) {
	url := testenv.Redis(t)
	prefix := "test:oauth:" + strconv.FormatInt(time.Now().UnixNano(), 36) + ":"
	a := setupWith(t, sqldb.SQLite, redisThrottle(t, url, prefix, 1000))
	b := serveProvider(t, a.db, a.store, a.userID, redisThrottle(t, url, prefix, 1000))
	id, sec := a.confidential(oauth.GrantPassword, oauth.GrantClientCredentials)
	addr := "198.51.100.20"

	wrong := urlValues("grant_type", "password", "username", userEmail, "password", "wrong")
	for i := range oauth.DefaultPairPolicy.Free {
		if r := a.postFrom(addr, "/oauth2/token", wrong, id, sec); r.status != http.StatusBadRequest || r.json["error"] != "invalid_grant" {
			t.Fatalf("wrong password %d: %d %s", i+1, r.status, r.body)
		}
	}
	if r := a.postFrom(addr, "/oauth2/token", wrong, id, sec); r.status != http.StatusBadRequest {
		t.Fatalf("the failure that starts the lockout: %d %s", r.status, r.body)
	}
	right := urlValues("grant_type", "password", "username", userEmail, "password", userPass, "scope", "project_read")
	want429JSON(t, "the right password during the lockout, same replica", a.postFrom(addr, "/oauth2/token", right, id, sec))
	want429JSON(t, "the right password during the lockout, other replica", b.postFrom(addr, "/oauth2/token", right, id, sec))
	// The client itself is not locked: its own grant still works.
	if r := b.postFrom(addr, "/oauth2/token", urlValues("grant_type", "client_credentials", "scope", "project_read"), id, sec); r.status != http.StatusOK {
		t.Fatalf("client credentials of the same client: %d %s", r.status, r.body)
	}

	// Guessing a client's secret.
	cc := urlValues("grant_type", "client_credentials", "scope", "project_read")
	for i := range oauth.DefaultPairPolicy.Free + 1 {
		if r := b.postFrom(addr, "/oauth2/token", cc, id, "wrong-secret"); r.status != http.StatusUnauthorized {
			t.Fatalf("wrong client secret %d: %d %s", i+1, r.status, r.body)
		}
	}
	want429JSON(t, "the right client secret during the lockout", a.postFrom(addr, "/oauth2/token", cc, id, sec))
	if r := a.postFrom("203.0.113.30", "/oauth2/token", cc, id, sec); r.status != http.StatusOK {
		t.Fatalf("the right client secret from another address: %d %s", r.status, r.body)
	}
}

// TestIntrospectionThrottle: wrong client secrets at the introspection
// endpoint lock out; every endpoint counts requests per address.
func TestIntrospectionThrottle(t *testing.T) {
	url := testenv.Redis(t)
	prefix := "test:oauth:" + strconv.FormatInt(time.Now().UnixNano(), 36) + ":"
	e := setupWith(t, sqldb.SQLite, redisThrottle(t, url, prefix, 20))
	id, sec := e.confidential(oauth.GrantClientCredentials)
	addr := "198.51.100.40"
	form := urlValues("token", "slw_oat_not-a-token")
	for i := range oauth.DefaultPairPolicy.Free + 1 {
		if r := e.postFrom(addr, "/oauth2/introspect", form, id, "wrong-secret"); r.status != http.StatusUnauthorized {
			t.Fatalf("wrong client secret %d: %d %s", i+1, r.status, r.body)
		}
	}
	want429JSON(t, "introspection with the right secret during the lockout", e.postFrom(addr, "/oauth2/introspect", form, id, sec))

	// The request limit (20 a minute here): the address has spent 7.
	other := "198.51.100.41"
	for i := range 20 {
		if r := e.postFrom(other, "/oauth2/introspect", form, id, sec); r.status != http.StatusOK {
			t.Fatalf("introspection %d: %d %s", i+1, r.status, r.body)
		}
	}
	if secs := want429JSON(t, "the 21st introspection in a minute", e.postFrom(other, "/oauth2/introspect", form, id, sec)); secs > 60 {
		t.Fatalf("Retry-After %d s for a one-minute window", secs)
	}
	want429JSON(t, "a token request from the same address", e.postFrom(other, "/oauth2/token", urlValues("grant_type", "client_credentials"), id, sec))
	want429JSON(t, "a revocation from the same address", e.postFrom(other, "/oauth2/revoke", form, id, sec))
	if r := e.postFrom("198.51.100.42", "/oauth2/introspect", form, id, sec); r.status != http.StatusOK {
		t.Fatalf("introspection from another address: %d %s", r.status, r.body)
	}
}

func urlValues(kv ...string) url.Values {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Set(kv[i], kv[i+1])
	}
	return v
}
