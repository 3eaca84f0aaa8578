package builds_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/slipwayhq/slipway/pkg/events"
	"github.com/slipwayhq/slipway/pkg/secret"
	"github.com/slipwayhq/slipway/pkg/sqldb"
	"github.com/slipwayhq/slipway/pkg/sqldb/sqltest"
	"github.com/slipwayhq/slipway/pkg/testenv"
	"github.com/slipwayhq/slipway/services/builds"
	"github.com/slipwayhq/slipway/services/builds/migrations"
	"github.com/slipwayhq/slipway/services/builds/storetest"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// schema is what the builds service's database holds.
var schema = []sqldb.Migrations{migrations.Set, events.Migrations}

const masterKey = "0123456789abcdef0123456789abcdef-test-master"

func newBox(t *testing.T) *secret.Box {
	t.Helper()
	box, err := secret.NewBox([]byte(masterKey), "builds")
	if err != nil {
		t.Fatal(err)
	}
	return box
}

// outboxEvents returns the events committed to db's outbox, oldest first.
func outboxEvents(t *testing.T, db *sqldb.DB) func() []events.Event {
	return func() []events.Event {
		t.Helper()
		rows, err := db.QueryContext(context.Background(), `SELECT payload FROM event_outbox ORDER BY seq`)
		if err != nil {
			t.Fatalf("read the outbox: %v", err)
		}
		defer rows.Close()
		var out []events.Event
		for rows.Next() {
			var payload []byte
			if err := rows.Scan(&payload); err != nil {
				t.Fatalf("read the outbox: %v", err)
			}
			var ev events.Event
			if err := json.Unmarshal(payload, &ev); err != nil {
				t.Fatalf("outbox payload %s: %v", payload, err)
			}
			out = append(out, ev)
		}
		if err := rows.Err(); err != nil {
			t.Fatalf("read the outbox: %v", err)
		}
		return out
	}
}

func TestSQLStore(t *testing.T) {
	sqltest.EachEngine(t, func(t *testing.T, engine sqldb.Dialect) {
		storetest.Run(t, func(t *testing.T) (builds.Store, storetest.Outbox) {
			db := sqltest.Open(t, engine, schema...)
			return builds.NewSQLStore(db, newBox(t), nil), storetest.Outbox{
				Count:  sqltest.RowCounter(t, db, "event_outbox"),
				Events: outboxEvents(t, db),
			}
		})
	})
}

func TestMigrationsAreIdempotent(t *testing.T) { sqltest.MigrationsAreIdempotent(t, schema...) }

// TestSecretsSealedAtRest reads the stored rows directly: a build's
// overrides (build arguments may be secrets) and a webhook's secret appear
// nowhere in them, and a store with another key fails to read them instead
// of returning them empty.
func TestSecretsSealedAtRest(t *testing.T) {
	const (
		buildArg   = "hunter2-build-argument"
		hookSecret = "whsec-first-plaintext"
		rotated    = "whsec-rotated-plaintext"
	)
	ctx := context.Background()
	sqltest.EachEngine(t, func(t *testing.T, engine sqldb.Dialect) {
		db := sqltest.Open(t, engine, schema...)
		s := builds.NewSQLStore(db, newBox(t), nil)
		b := builds.Build{TeamID: "acme", ProjectID: "web", ServiceID: "api", ID: "b-1", Branch: "main", CreatedAt: time.Now().UTC(),
			Overrides: builds.Overrides{BuildArguments: map[string]string{"NPM_TOKEN": buildArg}, DockerFilePath: "/Dockerfile.secret-path"}}
		if _, err := s.CreateBuild(ctx, b); err != nil {
			t.Fatal(err)
		}
		k := builds.ServiceKey{TeamID: "acme", ProjectID: "web", ServiceID: "api"}
		if _, err := s.Webhook(ctx, k, "wh-1", hookSecret); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Webhook(ctx, builds.ServiceKey{TeamID: "acme", ProjectID: "web", ServiceID: "worker"}, "wh-2", hookSecret); err != nil {
			t.Fatal(err)
		}
		noPlaintext(t, db, "builds", 1, buildArg, "NPM_TOKEN", "Dockerfile.secret-path")
		noPlaintext(t, db, "build_webhooks", 2, hookSecret)
		if _, err := s.RotateWebhook(ctx, k, "wh-3", rotated); err != nil {
			t.Fatal(err)
		}
		noPlaintext(t, db, "build_webhooks", 2, hookSecret, rotated)
		noPlaintext(t, db, "event_outbox", 1, buildArg, "NPM_TOKEN")

		if got, err := s.GetBuild(ctx, builds.ServiceKey{TeamID: "acme", ProjectID: "web", ServiceID: "api"}, "b-1"); err != nil || got.Overrides.BuildArguments["NPM_TOKEN"] != buildArg {
			t.Fatalf("GetBuild = %+v, %v", got, err)
		}
		if w, err := s.WebhookByID(ctx, "wh-1"); err != nil || w.Secret != rotated {
			t.Fatalf("WebhookByID = %+v, %v", w, err)
		}

		wrong, err := secret.NewBox([]byte("another-master-key-0123456789abcdef"), "builds")
		if err != nil {
			t.Fatal(err)
		}
		other := builds.NewSQLStore(db, wrong, nil)
		if got, err := other.GetBuild(ctx, builds.ServiceKey{TeamID: "acme", ProjectID: "web", ServiceID: "api"}, "b-1"); err == nil {
			t.Errorf("GetBuild with another key = %+v, want an error", got)
		}
		if w, err := other.WebhookByID(ctx, "wh-1"); err == nil {
			t.Errorf("WebhookByID with another key = %+v, want an error", w)
		}
	})
}

// noPlaintext fails when any column of table's rows (want of them) holds
// one of words.
func noPlaintext(t *testing.T, db *sqldb.DB, table string, want int, words ...string) {
	t.Helper()
	rows, err := db.QueryContext(context.Background(), `SELECT * FROM `+table)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for rows.Next() {
		n++
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		for i, v := range vals {
			var raw []byte
			switch v := v.(type) {
			case []byte:
				raw = v
			case string:
				raw = []byte(v)
			}
			for _, w := range words {
				if bytes.Contains(raw, []byte(w)) {
					t.Errorf("%s.%s holds %q in plaintext: %q", table, cols[i], w, raw)
				}
			}
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if n != want {
		t.Fatalf("%s has %d rows, want %d", table, n, want)
	}
}

// TestCommittedWakesRelay: the committed hook runs after each commit that
// wrote events, and only those, so the relay is neither idle while events
// wait nor woken for nothing.
func TestCommittedWakesRelay(t *testing.T) {
	ctx := context.Background()
	db := sqltest.Open(t, sqldb.SQLite, schema...)
	calls := 0
	s := builds.NewSQLStore(db, newBox(t), func() { calls++ })
	outbox := sqltest.RowCounter(t, db, "event_outbox")
	step := func(what string, wantCalls int, fn func() error) {
		t.Helper()
		before, n0 := calls, outbox()
		if err := fn(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if got := calls - before; got != wantCalls {
			t.Errorf("%s: committed called %d times, want %d", what, got, wantCalls)
		}
		if wrote := outbox() - n0; (wrote > 0) != (wantCalls > 0) {
			t.Errorf("%s: wrote %d events, committed called %d times", what, wrote, calls-before)
		}
	}
	at := time.Now().UTC()
	b := builds.Build{TeamID: "acme", ProjectID: "web", ServiceID: "api", ID: "b-1", CreatedAt: at}
	step("CreateBuild", 1, func() error { _, err := s.CreateBuild(ctx, b); return err })
	step("duplicate CreateBuild", 0, func() error {
		if _, err := s.CreateBuild(ctx, b); err == nil {
			return errors.New("no error")
		}
		return nil
	})
	step("Claim", 1, func() error {
		got, ok, err := s.Claim(ctx, "r1", at)
		if err == nil && !ok {
			err = errors.New("nothing claimed")
		}
		b = got
		return err
	})
	step("Claim of none", 0, func() error { _, _, err := s.Claim(ctx, "r1", at); return err })
	step("Transition to CLONING again", 0, func() error {
		_, err := s.Transition(ctx, b, builds.Transition{Status: builds.StatusCloning, At: at})
		return err
	})
	step("Transition to BUILDING", 0, func() error {
		_, err := s.Transition(ctx, b, builds.Transition{Status: builds.StatusBuilding, At: at})
		return err
	})
	step("RequestAbort of a running build", 0, func() error {
		_, err := s.RequestAbort(ctx, builds.ServiceKey{TeamID: "acme", ProjectID: "web", ServiceID: "api"}, b.ID, at)
		return err
	})
	step("Transition to SUCCESS", 1, func() error {
		var err error
		b, err = s.Transition(ctx, b, builds.Transition{Status: builds.StatusSuccess, Artifact: builds.Artifact{Image: "localhost/x:1"}, At: at})
		return err
	})
	step("AppendLogs", 0, func() error {
		_, err := s.AppendLogs(ctx, b, []builds.LogLine{{Time: at, Text: "x"}}, 10)
		return err
	})
	step("RemoveArtifact", 1, func() error { return s.RemoveArtifact(ctx, b) })
	step("RemoveArtifact again", 0, func() error { return s.RemoveArtifact(ctx, b) })
	step("DeleteService without artifacts", 0, func() error {
		_, err := s.DeleteService(ctx, builds.ServiceKey{TeamID: "acme", ProjectID: "web", ServiceID: "api"})
		return err
	})
	q := builds.Build{TeamID: "acme", ProjectID: "web", ServiceID: "api", ID: "b-2", CreatedAt: at}
	step("CreateBuild", 1, func() error { _, err := s.CreateBuild(ctx, q); return err })
	step("RequestAbort of a queued build", 1, func() error {
		_, err := s.RequestAbort(ctx, builds.ServiceKey{TeamID: "acme", ProjectID: "web", ServiceID: "api"}, q.ID, at)
		return err
	})
}
