package testenv

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// NATS is an embedded NATS server with JetStream enabled, owned by one test.
// It is embedded (not a separate binary) because the nats-server module is
// already a dependency and starting it in-process takes milliseconds.
// Beyond starting and stopping, it can be shut down and restarted on the same
// port and store directory so tests can simulate a broker outage and check
// that clients (e.g. the outbox relay) recover with JetStream state intact.
type NATS struct {
	mu   sync.Mutex
	opts server.Options // template for each (re)start; copied, never shared
	srv  *server.Server // nil while shut down
}

// StartNATS starts a JetStream-enabled NATS server on a free loopback port
// with its store in a test temp dir, and shuts it down when the test ends.
func StartNATS(t testing.TB) *NATS {
	t.Helper()
	n := &NATS{opts: server.Options{
		ServerName: "testenv",
		Host:       "127.0.0.1",
		JetStream:  true,
		StoreDir:   t.TempDir(), // registered first, so removed after Shutdown
		NoLog:      true,
		NoSigs:     true, // signals belong to the test binary, not the server
	}}
	const attempts = 3
	for attempt := 1; ; attempt++ {
		n.opts.Port = FreePort(t)
		err := n.start()
		if err == nil {
			break
		}
		if attempt == attempts {
			t.Fatalf("testenv.StartNATS: %v", err)
		}
	}
	t.Cleanup(n.Shutdown)
	return n
}

// URL returns the client URL (nats://127.0.0.1:PORT). It stays the same
// across Restart, so clients can be configured once and reconnect.
func (n *NATS) URL() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return fmt.Sprintf("nats://127.0.0.1:%d", n.opts.Port)
}

// Shutdown stops the server and waits until it has released its port and
// store. It is idempotent, so tests may call it and still rely on the
// automatic shutdown at cleanup.
func (n *NATS) Shutdown() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.srv == nil {
		return
	}
	n.srv.Shutdown()
	n.srv.WaitForShutdown()
	n.srv = nil
}

// Restart starts the server again on the same port with the same JetStream
// store directory, so streams, consumers and stored messages survive, as they
// would across a real broker restart. A running server is shut down first.
func (n *NATS) Restart(t testing.TB) {
	t.Helper()
	n.Shutdown()
	// Retry briefly: another process could hold the port for a moment
	// while it was free, and the old listener's teardown is asynchronous.
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := n.start()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("testenv.NATS.Restart: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// start creates and starts a server from the option template and waits until
// it accepts clients; JetStream (including recovery of stored streams) is
// enabled before the server starts accepting.
func (n *NATS) start() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	opts := n.opts // NewServer keeps and mutates its *Options
	srv, err := server.NewServer(&opts)
	if err != nil {
		return err
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		srv.WaitForShutdown()
		return fmt.Errorf("nats-server on port %d not ready for connections within 10s", n.opts.Port)
	}
	if !srv.JetStreamEnabled() {
		srv.Shutdown()
		srv.WaitForShutdown()
		return fmt.Errorf("nats-server on port %d started without JetStream", n.opts.Port)
	}
	n.srv = srv
	return nil
}
