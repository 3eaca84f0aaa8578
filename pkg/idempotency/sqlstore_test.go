package idempotency_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slipwayhq/slipway/pkg/apierr"
	"github.com/slipwayhq/slipway/pkg/idempotency"
	"github.com/slipwayhq/slipway/pkg/sqldb"
	"github.com/slipwayhq/slipway/pkg/sqldb/sqltest"
	"github.com/slipwayhq/slipway/pkg/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// t0 is the suite's clock: the store takes every time from its caller.
var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

const (
	lease = 15 * time.Second
	ttl   = 24 * time.Hour
)

func claim(k idempotency.Key, fingerprint, token string, now time.Time) idempotency.Claim {
	return idempotency.Claim{Key: k, Fingerprint: fingerprint, Token: token, Now: now, LeaseUntil: now.Add(lease), ExpiresAt: now.Add(ttl)}
}

// TestSQLStore is the store's contract, on every engine.
func TestSQLStore(t *testing.T) {
	tests := map[string]func(*testing.T, idempotency.Store){
		"FirstClaimWinsAndOthersSeeItPending": testPending,
		"CompletedIsReplayed":                 testCompleted,
		"ScopesAreIndependent":                testScopes,
		"ReleaseLetsTheNextRun":               testRelease,
		"RenewKeepsTheLease":                  testRenew,
		"ExpiredLeaseIsTakenOver":             testTakeOver,
		"ExpiredRecordIsForgotten":            testExpired,
		"PurgeDeletesExpiredOnly":             testPurge,
		"ConcurrentClaimsOneWins":             testConcurrentClaims,
		"ConcurrentTakeOversOneWins":          testConcurrentTakeOvers,
		"KeysAreKeptVerbatim":                 testVerbatim,
	}
	sqltest.EachEngine(t, func(t *testing.T, engine sqldb.Dialect) {
		for name, test := range tests {
			t.Run(name, func(t *testing.T) {
				test(t, idempotency.NewSQLStore(sqltest.Open(t, engine, idempotency.Migrations)))
			})
		}
	})
}

func TestMigrationsAreIdempotent(t *testing.T) {
	sqltest.MigrationsAreIdempotent(t, idempotency.Migrations)
}

func begin(t *testing.T, s idempotency.Store, c idempotency.Claim) (idempotency.Record, bool) {
	t.Helper()
	rec, claimed, err := s.Begin(context.Background(), c)
	if err != nil {
		t.Fatalf("Begin: %v", err)
	}
	return rec, claimed
}

func mustClaim(t *testing.T, s idempotency.Store, c idempotency.Claim) {
	t.Helper()
	if rec, claimed := begin(t, s, c); !claimed {
		t.Fatalf("Begin %s by %s: not claimed, found %+v", c.Key.ID, c.Token, rec)
	}
}

func testPending(t *testing.T, s idempotency.Store) {
	k := idempotency.Key{Scope: "cred-a", ID: "key-1"}
	mustClaim(t, s, claim(k, "fp", "tok-1", t0))
	for _, c := range []idempotency.Claim{claim(k, "fp", "tok-2", t0.Add(time.Second)), claim(k, "other", "tok-3", t0.Add(time.Second))} {
		rec, claimed := begin(t, s, c)
		if claimed || !rec.Pending || rec.Fingerprint != "fp" || !rec.LeaseUntil.Equal(t0.Add(lease)) {
			t.Fatalf("second Begin (fingerprint %s) = %+v claimed=%v, want the first's pending record", c.Fingerprint, rec, claimed)
		}
	}
}

func testCompleted(t *testing.T, s idempotency.Store) {
	ctx := context.Background()
	k := idempotency.Key{Scope: "cred-a", ID: "key-1"}
	mustClaim(t, s, claim(k, "fp", "tok-1", t0))
	resp := idempotency.Response{Status: 200, ContentType: "application/json", Body: []byte(`{"data":{"id":"p"}}`)}
	if err := s.Complete(ctx, k, "tok-1", resp); err != nil {
		t.Fatal(err)
	}
	// Later, and past the first lease: a completed record has no lease.
	rec, claimed := begin(t, s, claim(k, "fp", "tok-2", t0.Add(time.Hour)))
	if claimed || rec.Pending || rec.Fingerprint != "fp" || rec.Response.Status != 200 ||
		rec.Response.ContentType != "application/json" || !bytes.Equal(rec.Response.Body, resp.Body) {
		t.Fatalf("Begin after Complete = %+v claimed=%v, want the stored response", rec, claimed)
	}
	if err := s.Complete(ctx, k, "tok-1", resp); !errors.Is(err, apierr.ErrConflict) {
		t.Fatalf("second Complete: %v, want ErrConflict", err)
	}
	if err := s.Renew(ctx, k, "tok-1", t0.Add(time.Minute)); !errors.Is(err, apierr.ErrConflict) {
		t.Fatalf("Renew of a completed record: %v, want ErrConflict", err)
	}
	if err := s.Release(ctx, k, "tok-1"); err != nil {
		t.Fatal(err)
	}
	if rec, _ := begin(t, s, claim(k, "fp", "tok-3", t0.Add(time.Hour))); rec.Response.Status != 200 {
		t.Fatalf("Release deleted a completed record: %+v", rec)
	}

	// An empty body is stored as such.
	k2 := idempotency.Key{Scope: "cred-a", ID: "key-2"}
	mustClaim(t, s, claim(k2, "fp", "tok-4", t0))
	if err := s.Complete(ctx, k2, "tok-4", idempotency.Response{Status: 404}); err != nil {
		t.Fatal(err)
	}
	if rec, _ := begin(t, s, claim(k2, "fp", "tok-5", t0)); rec.Pending || rec.Response.Status != 404 || len(rec.Response.Body) != 0 {
		t.Fatalf("empty response = %+v", rec)
	}
	if err := s.Complete(ctx, idempotency.Key{Scope: "cred-a", ID: "key-3"}, "tok-6", idempotency.Response{}); err == nil {
		t.Fatal("Complete with status 0 succeeded")
	}
}

func testScopes(t *testing.T, s idempotency.Store) {
	mustClaim(t, s, claim(idempotency.Key{Scope: "cred-a", ID: "same"}, "fp", "tok-1", t0))
	mustClaim(t, s, claim(idempotency.Key{Scope: "cred-b", ID: "same"}, "fp", "tok-2", t0))
	mustClaim(t, s, claim(idempotency.Key{Scope: "cred-a", ID: "SAME"}, "fp", "tok-3", t0))
}

func testRelease(t *testing.T, s idempotency.Store) {
	ctx := context.Background()
	k := idempotency.Key{Scope: "cred-a", ID: "key-1"}
	mustClaim(t, s, claim(k, "fp", "tok-1", t0))
	if err := s.Release(ctx, k, "not-the-holder"); err != nil {
		t.Fatal(err)
	}
	if _, claimed := begin(t, s, claim(k, "fp", "tok-2", t0)); claimed {
		t.Fatal("a release by another token freed the key")
	}
	if err := s.Release(ctx, k, "tok-1"); err != nil {
		t.Fatal(err)
	}
	mustClaim(t, s, claim(k, "other fingerprint", "tok-3", t0))
	if err := s.Complete(ctx, k, "tok-1", idempotency.Response{Status: 200}); !errors.Is(err, apierr.ErrConflict) {
		t.Fatalf("Complete by a released token: %v, want ErrConflict", err)
	}
}

func testRenew(t *testing.T, s idempotency.Store) {
	ctx := context.Background()
	k := idempotency.Key{Scope: "cred-a", ID: "key-1"}
	mustClaim(t, s, claim(k, "fp", "tok-1", t0))
	renewed := t0.Add(10*time.Second + lease)
	if err := s.Renew(ctx, k, "tok-1", renewed); err != nil {
		t.Fatal(err)
	}
	// Past the first lease, within the renewed one.
	rec, claimed := begin(t, s, claim(k, "fp", "tok-2", t0.Add(lease+time.Second)))
	if claimed || !rec.Pending || !rec.LeaseUntil.Equal(renewed) {
		t.Fatalf("Begin within the renewed lease = %+v claimed=%v", rec, claimed)
	}
	if err := s.Renew(ctx, k, "tok-2", renewed); !errors.Is(err, apierr.ErrConflict) {
		t.Fatalf("Renew by a token not holding the key: %v, want ErrConflict", err)
	}
	if err := s.Renew(ctx, idempotency.Key{Scope: "cred-a", ID: "missing"}, "tok-1", renewed); !errors.Is(err, apierr.ErrConflict) {
		t.Fatalf("Renew of a missing key: %v, want ErrConflict", err)
	}
}

func testTakeOver(t *testing.T, s idempotency.Store) {
	ctx := context.Background()
	k := idempotency.Key{Scope: "cred-a", ID: "key-1"}
	mustClaim(t, s, claim(k, "fp", "tok-1", t0))
	// The lease ends at t0+lease: at that instant the record is abandoned.
	mustClaim(t, s, claim(k, "fp", "tok-2", t0.Add(lease)))
	// The first request, had it lived, can no longer write.
	if err := s.Renew(ctx, k, "tok-1", t0.Add(time.Hour)); !errors.Is(err, apierr.ErrConflict) {
		t.Fatalf("Renew by the old holder: %v, want ErrConflict", err)
	}
	if err := s.Complete(ctx, k, "tok-1", idempotency.Response{Status: 200}); !errors.Is(err, apierr.ErrConflict) {
		t.Fatalf("Complete by the old holder: %v, want ErrConflict", err)
	}
	if err := s.Release(ctx, k, "tok-1"); err != nil {
		t.Fatal(err)
	}
	if err := s.Complete(ctx, k, "tok-2", idempotency.Response{Status: 201, Body: []byte("second")}); err != nil {
		t.Fatalf("Complete by the new holder: %v", err)
	}
	if rec, _ := begin(t, s, claim(k, "fp", "tok-3", t0.Add(time.Hour))); string(rec.Response.Body) != "second" {
		t.Fatalf("record after the take-over = %+v", rec)
	}
}

func testExpired(t *testing.T, s idempotency.Store) {
	ctx := context.Background()
	k := idempotency.Key{Scope: "cred-a", ID: "key-1"}
	mustClaim(t, s, claim(k, "fp", "tok-1", t0))
	if err := s.Complete(ctx, k, "tok-1", idempotency.Response{Status: 200, Body: []byte("old")}); err != nil {
		t.Fatal(err)
	}
	if rec, claimed := begin(t, s, claim(k, "new fp", "tok-2", t0.Add(ttl-time.Microsecond))); claimed || rec.Response.Status != 200 {
		t.Fatalf("Begin just before expiry = %+v claimed=%v, want the record", rec, claimed)
	}
	// Expired: the key is free again, for any request.
	mustClaim(t, s, claim(k, "new fp", "tok-3", t0.Add(ttl)))
	rec, _ := begin(t, s, claim(k, "new fp", "tok-4", t0.Add(ttl)))
	if !rec.Pending || rec.Fingerprint != "new fp" || rec.Response.Body != nil {
		t.Fatalf("record claimed again after expiry = %+v", rec)
	}
}

func testPurge(t *testing.T, s idempotency.Store) {
	ctx := context.Background()
	for i, at := range []time.Time{t0, t0.Add(time.Hour), t0.Add(2 * time.Hour)} {
		mustClaim(t, s, claim(idempotency.Key{Scope: "cred-a", ID: fmt.Sprint("key-", i)}, "fp", "tok", at))
	}
	n, err := s.Purge(ctx, t0.Add(ttl+time.Hour))
	if err != nil || n != 2 {
		t.Fatalf("Purge = %d, %v; want 2", n, err)
	}
	// The one left is the newest, still held: a later claim sees it.
	rec, claimed := begin(t, s, claim(idempotency.Key{Scope: "cred-a", ID: "key-2"}, "fp", "tok-x", t0.Add(2*time.Hour+time.Second)))
	if claimed || !rec.Pending {
		t.Fatalf("Purge deleted a live record: %+v claimed=%v", rec, claimed)
	}
	if n, err := s.Purge(ctx, t0.Add(ttl+time.Hour)); err != nil || n != 0 {
		t.Fatalf("second Purge = %d, %v; want 0", n, err)
	}
}

// race runs n claims of k at once (tokens tok-0 ... tok-<n-1>) and
// returns how many were claimed.
func race(t *testing.T, s idempotency.Store, k idempotency.Key, n int, now time.Time) int {
	t.Helper()
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		claimed int
		start   = make(chan struct{})
	)
	for i := range n {
		wg.Go(func() {
			<-start
			rec, ok, err := s.Begin(context.Background(), claim(k, "fp", fmt.Sprint("tok-", i), now))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				t.Errorf("Begin %d: %v", i, err)
			case ok:
				claimed++
			case !rec.Pending || rec.Fingerprint != "fp":
				t.Errorf("Begin %d lost to %+v, want a pending record", i, rec)
			}
		})
	}
	close(start)
	wg.Wait()
	return claimed
}

func testConcurrentClaims(t *testing.T, s idempotency.Store) {
	k := idempotency.Key{Scope: "cred-a", ID: "contended"}
	if n := race(t, s, k, 20, t0); n != 1 {
		t.Fatalf("%d of 20 concurrent claims won, want 1", n)
	}
}

func testConcurrentTakeOvers(t *testing.T, s idempotency.Store) {
	k := idempotency.Key{Scope: "cred-a", ID: "abandoned"}
	mustClaim(t, s, claim(k, "fp", "dead", t0))
	if n := race(t, s, k, 20, t0.Add(2*lease)); n != 1 {
		t.Fatalf("%d of 20 concurrent take-overs won, want 1", n)
	}
}

func testVerbatim(t *testing.T, s idempotency.Store) {
	ctx := context.Background()
	long := strings.Repeat("k", 255)
	keys := []string{long, `"8e03978e-40d5-43e8-bc93-6894a57f9324"`, "a b%20c'; DROP TABLE idempotency_keys; --", "é"}
	for i, id := range keys {
		k := idempotency.Key{Scope: "cred-a", ID: id}
		token := fmt.Sprint("tok-", i)
		mustClaim(t, s, claim(k, "fp", token, t0))
		if err := s.Complete(ctx, k, token, idempotency.Response{Status: 200, Body: []byte(id)}); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range keys {
		if rec, _ := begin(t, s, claim(idempotency.Key{Scope: "cred-a", ID: id}, "fp", "again", t0)); string(rec.Response.Body) != id {
			t.Fatalf("key %q replays %q", id, rec.Response.Body)
		}
	}
}
