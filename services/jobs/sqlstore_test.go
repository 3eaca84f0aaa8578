package jobs_test

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/slipwayhq/slipway/pkg/events"
	"github.com/slipwayhq/slipway/pkg/paging"
	"github.com/slipwayhq/slipway/pkg/secret"
	"github.com/slipwayhq/slipway/pkg/sqldb"
	"github.com/slipwayhq/slipway/pkg/sqldb/sqltest"
	"github.com/slipwayhq/slipway/pkg/testenv"
	"github.com/slipwayhq/slipway/pkg/vcs"
	"github.com/slipwayhq/slipway/services/jobs"
	"github.com/slipwayhq/slipway/services/jobs/migrations"
	"github.com/slipwayhq/slipway/services/jobs/storetest"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// schema is what the jobs service's database holds.
var schema = []sqldb.Migrations{migrations.Set, events.Migrations}

// openDB returns a fresh, migrated database on engine.
func openDB(t *testing.T, engine sqldb.Dialect) *sqldb.DB {
	t.Helper()
	return sqltest.Open(t, engine, schema...)
}

func newBox(t *testing.T, master string) *secret.Box {
	t.Helper()
	box, err := secret.NewBox([]byte(master), "jobs-env")
	if err != nil {
		t.Fatal(err)
	}
	return box
}

const masterKey = "0123456789abcdef0123456789abcdef-test-master"

func TestSQLStore(t *testing.T) {
	sqltest.EachEngine(t, func(t *testing.T, engine sqldb.Dialect) {
		storetest.Run(t, func(t *testing.T) (jobs.Store, func() int) {
			db := openDB(t, engine)
			return jobs.NewSQLStore(db, newBox(t, masterKey), nil), sqltest.RowCounter(t, db, "event_outbox")
		})
	})
}

func TestMigrationsAreIdempotent(t *testing.T) { sqltest.MigrationsAreIdempotent(t, schema...) }

// TestCommittedWakesRelay: the committed hook runs after commits that
// carry events, and only those.
func TestCommittedWakesRelay(t *testing.T) {
	ctx := context.Background()
	db := openDB(t, sqldb.SQLite)
	calls := 0
	s := jobs.NewSQLStore(db, newBox(t, masterKey), func() { calls++ })
	ev, err := events.New("jobs", "job", "created", "j", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateJob(ctx, jobs.Job{TeamID: "acme", ProjectID: "web", ID: "j", Name: "j", Type: jobs.TypeManual}, ev); err != nil {
		t.Fatal(err)
	}
	if calls != 1 {
		t.Fatalf("committed called %d times after a write with an event, want 1", calls)
	}
	if err := s.CreateRun(ctx, jobs.Run{TeamID: "acme", ProjectID: "web", JobID: "j", ID: "r", Status: jobs.RunRunning}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateJob(ctx, jobs.Job{TeamID: "acme", ProjectID: "web", ID: "j", Name: "j", Type: jobs.TypeManual}, ev); !errors.Is(err, jobs.ErrAlreadyExists) {
		t.Fatalf("duplicate CreateJob = %v", err)
	}
	if calls != 1 {
		t.Fatalf("committed called %d times, want 1 (no events, or nothing committed)", calls)
	}
}

// TestEnvironmentsEncryptedAtRest reads the stored rows directly: the
// environment's plaintext appears nowhere in them, and a store with another
// key fails to read them instead of returning an empty environment.
func TestEnvironmentsEncryptedAtRest(t *testing.T) {
	const plaintext = "hunter2-secret"
	ctx := context.Background()
	sqltest.EachEngine(t, func(t *testing.T, engine sqldb.Dialect) {
		db := openDB(t, engine)
		s := jobs.NewSQLStore(db, newBox(t, masterKey), nil)
		now := time.Now().UTC()
		env := map[string]string{"DB_PASSWORD": plaintext}
		// A job that builds from git: its credentials and build arguments
		// are secrets too.
		build := &jobs.Build{VcsData: `{"projectUrl":"https://git.example.com/a/b"}`, BuildSettings: `{"buildpack":{}}`,
			Credentials: &vcs.Credentials{Username: "bot", Password: plaintext}, Arguments: map[string]string{"NPM_TOKEN": plaintext}}
		if err := s.CreateJob(ctx, jobs.Job{TeamID: "acme", ProjectID: "web", ID: "j", Name: "j", Type: jobs.TypeManual, Env: env, Build: build, CreatedAt: now, UpdatedAt: now}); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateRun(ctx, jobs.Run{TeamID: "acme", ProjectID: "web", JobID: "j", ID: "r", Status: jobs.RunRunning, Spec: jobs.RunSpec{Env: env}}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.UpdateJob(ctx, "acme", "web", "j", func(j *jobs.Job) ([]events.Event, error) {
			j.Env["OTHER"] = plaintext + "-2"
			return nil, nil
		}); err != nil {
			t.Fatal(err)
		}

		for _, table := range []string{"jobs", "job_runs"} {
			rows, err := db.QueryContext(ctx, `SELECT * FROM `+table)
			if err != nil {
				t.Fatal(err)
			}
			cols, _ := rows.Columns()
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
					if bytes.Contains(raw, []byte(plaintext)) || bytes.Contains(raw, []byte("DB_PASSWORD")) {
						t.Errorf("%s.%s holds the environment in plaintext: %q", table, cols[i], raw)
					}
				}
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			rows.Close()
			if n != 1 {
				t.Fatalf("%s has %d rows, want 1", table, n)
			}
		}
		var sealed []byte
		if err := db.QueryRowContext(ctx, `SELECT env FROM jobs`).Scan(&sealed); err != nil || len(sealed) == 0 {
			t.Fatalf("stored env = %q, %v; want sealed bytes", sealed, err)
		}

		// The right key reads it back.
		if j, err := s.GetJob(ctx, "acme", "web", "j"); err != nil || j.Env["DB_PASSWORD"] != plaintext || j.Env["OTHER"] != plaintext+"-2" {
			t.Fatalf("GetJob = %v, %v", j.Env, err)
		}
		if j, err := s.GetJob(ctx, "acme", "web", "j"); err != nil || j.Build == nil || j.Build.Credentials.Password != plaintext || j.Build.Arguments["NPM_TOKEN"] != plaintext {
			t.Fatalf("GetJob's build = %+v, %v", j.Build, err)
		}
		// Another key fails loudly on every read path.
		wrong := jobs.NewSQLStore(db, newBox(t, "another-master-key-of-32-bytes-or-more"), nil)
		if _, err := wrong.GetJob(ctx, "acme", "web", "j"); !errors.Is(err, secret.ErrSealed) {
			t.Fatalf("GetJob with the wrong key = %v, want ErrSealed", err)
		}
		if _, _, _, err := wrong.ListJobs(ctx, "acme", "web", paging.Page{Limit: 10}); !errors.Is(err, secret.ErrSealed) {
			t.Fatalf("ListJobs with the wrong key = %v, want ErrSealed", err)
		}
		if _, err := wrong.GetRun(ctx, "acme", "web", "j", "r"); !errors.Is(err, secret.ErrSealed) {
			t.Fatalf("GetRun with the wrong key = %v, want ErrSealed", err)
		}
		if _, err := wrong.UpdateRun(ctx, "acme", "web", "j", "r", func(r *jobs.Run) ([]events.Event, error) { r.Attempts++; return nil, nil }); !errors.Is(err, secret.ErrSealed) {
			t.Fatalf("UpdateRun with the wrong key = %v, want ErrSealed", err)
		}
		// So does tampering.
		if _, err := db.ExecContext(ctx, `UPDATE jobs SET env = $1`, []byte("not sealed")); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetJob(ctx, "acme", "web", "j"); err == nil {
			t.Fatal("GetJob of a tampered env succeeded")
		}
	})
}
