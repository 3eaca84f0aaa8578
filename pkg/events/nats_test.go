package events

import (
	"context"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/slipwayhq/slipway/pkg/sqldb"
	"github.com/slipwayhq/slipway/pkg/sqldb/sqltest"
	"github.com/slipwayhq/slipway/pkg/testenv"
)

// TestEmbedded runs the single-process setup: SQLite, the in-process
// server, and a restart of that server on the same store.
func TestEmbedded(t *testing.T) {
	store := t.TempDir()
	srv, err := StartEmbedded(store)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	if srv.Addr() != nil {
		t.Errorf("embedded server listens on %v", srv.Addr())
	}

	nc, err := Connect("", srv)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()

	db := sqltest.Open(t, sqldb.SQLite, Migrations)
	if _, err := db.ExecContext(ctx, `CREATE TABLE widgets (id TEXT PRIMARY KEY, name TEXT NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	// No EnsureStream: the relay creates the stream when it is missing.
	r := NewRelay(db, js, testRelayOpts...)
	runRelay(t, r)
	ev := writeWidget(t, db, "w", true)
	r.Notify()
	waitPending(t, r, 0)
	checkStream(t, js, []Event{ev}, nil, true)

	nc.Close()
	srv.Shutdown()
	srv.WaitForShutdown()
	srv2, err := StartEmbedded(store)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv2.Shutdown(); srv2.WaitForShutdown() })
	nc2, err := Connect("", srv2)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc2.Close)
	js2, err := jetstream.New(nc2)
	if err != nil {
		t.Fatal(err)
	}
	checkStream(t, js2, []Event{ev}, nil, true) // survived the restart
}

func TestStartEmbeddedNeedsStoreDir(t *testing.T) {
	if _, err := StartEmbedded(""); err == nil {
		t.Fatal("StartEmbedded without a store directory succeeded")
	}
}

// TestConnectBeforeServer starts a service before its NATS server, as
// compose does: Connect succeeds and the connection comes up later.
func TestConnectBeforeServer(t *testing.T) {
	srv := testenv.StartNATS(t)
	srv.Shutdown()
	nc, err := Connect(srv.URL(), nil, nats.Name("events-test"))
	if err != nil {
		t.Fatalf("Connect with the server down: %v", err)
	}
	t.Cleanup(nc.Close)
	srv.Restart(t)
	waitFor(t, "the connection to come up", nc.IsConnected)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), eventually)
	defer cancel()
	if err := EnsureStream(ctx, js); err != nil {
		t.Fatal(err)
	}
}
