// Package testenv starts throwaway real servers (PostgreSQL, Redis, NATS with
// JetStream) for tests and tears them down again.
//
// Tests talk to real servers rather than fakes because the behaviour that
// matters for Slipway — SQL semantics, transactions, JetStream persistence
// across a broker outage — is exactly what fakes get wrong. Every server
// listens on a free loopback port and keeps its state in a temp dir, so
// packages can run their tests in parallel without sharing anything.
//
// PostgreSQL is comparatively slow to initialise, so one server is started
// lazily per test binary and each test gets its own freshly created database
// on it. That shared server is stopped by Main, which every package using
// Postgres must call from its TestMain:
//
//	func TestMain(m *testing.M) { testenv.Main(m) }
//
// Redis and NATS are cheap to start and are therefore started per test.
//
// The server binaries (initdb/postgres, redis-server) come from the system;
// `make test` installs them via scripts/install-deps.sh. A missing binary
// fails the test rather than skipping it, so that a CI machine without them
// cannot silently report a green run that tested nothing.
package testenv

import (
	"os"
	"sync/atomic"
	"testing"
)

// mainCalled records that Main is in charge of the test binary, which is what
// guarantees the shared PostgreSQL server is stopped at exit. Postgres refuses
// to start that server without it.
var mainCalled atomic.Bool

// Main runs the package's tests and then stops the servers shared between
// tests (currently the PostgreSQL server behind Postgres) before exiting
// with the tests' exit code. It must be called from TestMain in every
// package that uses Postgres, because m.Run returning is the only point at
// which the test binary knows no test will need the shared server again.
func Main(m *testing.M) {
	mainCalled.Store(true)
	code := m.Run()
	stopSharedPostgres()
	os.Exit(code)
}

// missingBinaryHelp is appended to every "binary not found" failure so the
// reader knows how to fix their machine instead of debugging the test.
const missingBinaryHelp = "run `make test`, which installs the test dependencies via scripts/install-deps.sh (or run that script as root directly)"
