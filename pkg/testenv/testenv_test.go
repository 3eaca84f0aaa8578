package testenv_test

import (
	"context"
	"database/sql"
	"errors"
	"net/http"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"

	"github.com/slipwayhq/slipway/pkg/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func TestPostgresDatabasesAreIsolated(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	urlA, urlB := testenv.Postgres(t), testenv.Postgres(t)
	if urlA == urlB {
		t.Fatalf("two calls returned the same database: %s", urlA)
	}
	a, b := openDB(t, urlA), openDB(t, urlB)

	if _, err := a.ExecContext(ctx, `CREATE TABLE apps (name text PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	if _, err := a.ExecContext(ctx, `INSERT INTO apps VALUES ('web'), ('worker')`); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := a.QueryRowContext(ctx, `SELECT count(*) FROM apps`).Scan(&n); err != nil || n != 2 {
		t.Fatalf("count in A = %d, %v; want 2", n, err)
	}
	// B is a different, empty database: the table must not exist there.
	var exists bool
	if err := b.QueryRowContext(ctx, `SELECT to_regclass('apps') IS NOT NULL`).Scan(&exists); err != nil {
		t.Fatal(err)
	}
	if exists {
		t.Fatal("table created in database A is visible in database B")
	}
	// The throwaway-server settings are in effect.
	for setting, want := range map[string]string{"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off", "max_connections": "200"} {
		var got string
		if err := a.QueryRowContext(ctx, "SHOW "+setting).Scan(&got); err != nil || got != want {
			t.Errorf("SHOW %s = %q, %v; want %q", setting, got, err, want)
		}
	}
	var dbA, dbB string
	_ = a.QueryRowContext(ctx, `SELECT current_database()`).Scan(&dbA)
	_ = b.QueryRowContext(ctx, `SELECT current_database()`).Scan(&dbB)
	if dbA == dbB || dbA == "" {
		t.Fatalf("current_database: A=%q B=%q", dbA, dbB)
	}
}

// TestPostgresParallel checks that concurrent first use starts one shared
// server and that databases are dropped even with connections left open.
func TestPostgresParallel(t *testing.T) {
	t.Parallel()
	for i := range 4 {
		t.Run("", func(t *testing.T) {
			t.Parallel()
			db := openDB(t, testenv.Postgres(t))
			var got int
			if err := db.QueryRowContext(t.Context(), `SELECT $1::int`, i).Scan(&got); err != nil || got != i {
				t.Fatalf("SELECT %d = %d, %v", i, got, err)
			}
		})
	}
}

func openDB(t *testing.T, url string) *sql.DB {
	t.Helper()
	db, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.PingContext(t.Context()); err != nil {
		t.Fatalf("ping %s: %v", url, err)
	}
	return db
}

func TestRedis(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	url := testenv.Redis(t)
	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opts)
	t.Cleanup(func() { rdb.Close() })

	if err := rdb.Set(ctx, "deploy:42", "running", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	got, err := rdb.Get(ctx, "deploy:42").Result()
	if err != nil || got != "running" {
		t.Fatalf("GET = %q, %v; want running", got, err)
	}

	// A second server is a separate instance, not a shared one.
	other := redis.NewClient(mustParseRedisURL(t, testenv.Redis(t)))
	t.Cleanup(func() { other.Close() })
	if err := other.Get(ctx, "deploy:42").Err(); !errors.Is(err, redis.Nil) {
		t.Fatalf("GET on second server = %v; want redis.Nil", err)
	}
}

func mustParseRedisURL(t *testing.T, url string) *redis.Options {
	t.Helper()
	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	return opts
}

func TestNATSJetStreamSurvivesRestart(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()

	srv := testenv.StartNATS(t)
	url := srv.URL()
	// One long-lived connection that must ride out the outage, like the
	// outbox relay's would. The reconnect buffer is disabled so that a
	// publish during the outage fails instead of being replayed later.
	disconnected, reconnected := make(chan struct{}, 1), make(chan struct{}, 1)
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond),
		nats.ReconnectBufSize(-1),
		nats.DisconnectErrHandler(func(*nats.Conn, error) { signal(disconnected) }),
		nats.ReconnectHandler(func(*nats.Conn) { signal(reconnected) }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name:     "EVENTS",
		Subjects: []string{"events.>"},
		Storage:  jetstream.FileStorage,
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "events.app.created", []byte("first")); err != nil {
		t.Fatal(err)
	}

	srv.Shutdown()
	srv.Shutdown() // idempotent
	select {
	case <-disconnected:
	case <-ctx.Done():
		t.Fatal("client did not notice the shutdown")
	}
	// Once the client knows the server is gone, publishing fails fast.
	downCtx, downCancel := context.WithTimeout(ctx, 2*time.Second)
	defer downCancel()
	if _, err := js.Publish(downCtx, "events.app.created", []byte("lost"), jetstream.WithRetryAttempts(0)); err == nil {
		t.Fatal("publish succeeded while the server was down")
	}

	srv.Restart(t)
	if srv.URL() != url {
		t.Fatalf("URL changed across restart: %s -> %s", url, srv.URL())
	}

	select {
	case <-reconnected:
	case <-ctx.Done():
		t.Fatal("client did not reconnect after restart")
	}

	// The stream and its message were recovered from the store dir.
	stream, err := js.Stream(ctx, "EVENTS")
	if err != nil {
		t.Fatalf("stream after restart: %v", err)
	}
	msg, err := stream.GetMsg(ctx, 1)
	if err != nil || string(msg.Data) != "first" {
		t.Fatalf("message 1 after restart = %v, %v; want first", msg, err)
	}

	// Publishing works again on the same, reconnected client.
	ack, err := js.Publish(ctx, "events.app.created", []byte("second"))
	if err != nil {
		t.Fatalf("publish after restart: %v", err)
	}
	if ack.Sequence != 2 {
		t.Fatalf("sequence after restart = %d; want 2", ack.Sequence)
	}
	info, err := stream.Info(ctx)
	if err != nil || info.State.Msgs != 2 {
		t.Fatalf("stream info = %+v, %v; want 2 messages", info, err)
	}
}

// signal does a non-blocking send, for callbacks that may fire repeatedly.
func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

func TestFreePort(t *testing.T) {
	t.Parallel()
	if p := testenv.FreePort(t); p <= 0 || p > 65535 {
		t.Fatalf("FreePort = %d", p)
	}
}

// TestS3ChecksSignatures: the S3 server refuses requests that are not
// signed with its credentials, so tests against it prove the signing.
func TestS3ChecksSignatures(t *testing.T) {
	srv := testenv.S3(t)
	resp, err := http.Get(srv.Endpoint + "/" + srv.Bucket + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("unsigned request: %d, want 403", resp.StatusCode)
	}
}
