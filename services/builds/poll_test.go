package builds_test

import (
	"context"
	"errors"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/slipwayhq/slipway/pkg/paging"
	"github.com/slipwayhq/slipway/pkg/runtime/process"
	"github.com/slipwayhq/slipway/pkg/sqldb"
	"github.com/slipwayhq/slipway/pkg/sqldb/sqltest"
	"github.com/slipwayhq/slipway/pkg/testenv"
	"github.com/slipwayhq/slipway/pkg/testenv/gitserver"
	"github.com/slipwayhq/slipway/services/builds"
	"github.com/slipwayhq/slipway/services/builds/builder"
)

// registry is the services that build, as the deployments service would
// list them to the poller; it counts the poller's rounds (each lists
// them once).
type registry struct {
	srcs  []builds.Source
	polls atomic.Int64
	// slow, if set, runs at the start of each Source call (an owner's
	// service that is slow to answer).
	slow func()
}

func (r *registry) Source(_ context.Context, k builds.ServiceKey) (builds.Source, error) {
	if r.slow != nil {
		r.slow()
	}
	for _, s := range r.srcs {
		if s.ServiceKey == k {
			return s, nil
		}
	}
	return builds.Source{}, builds.ErrNotFound
}

func (r *registry) All(context.Context) ([]builds.Source, error) {
	r.polls.Add(1)
	return r.srcs, nil
}

// pollEnv is what services under test share: a NATS server and a
// builder on a sandboxed process driver.
type pollEnv struct {
	nc     *nats.Conn
	engine builds.Engine
}

func newPollEnv(t *testing.T) pollEnv {
	t.Helper()
	n := testenv.StartNATS(t)
	nc, err := nats.Connect(n.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	dir, err := os.MkdirTemp("", "builds-poll-")
	if err != nil {
		t.Fatal(err)
	}
	drv, err := process.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		drv.Close()
		_ = process.RemoveAll(context.Background(), dir)
		_ = os.RemoveAll(dir)
	})
	b, err := builder.New(builder.Config{Process: drv, Dir: t.TempDir(), AllowHosts: []string{"127.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	return pollEnv{nc: nc, engine: builds.BuilderEngine{Builder: b}}
}

// service returns a builds service named owner on db whose poller sees
// reg, with a poll interval of a minute and clock's time.
func (e pollEnv) service(t *testing.T, db *sqldb.DB, owner string, reg *registry, clock func() time.Time) (*builds.Service, builds.Store) {
	t.Helper()
	store := builds.NewSQLStore(db, newBox(t), nil)
	s, err := builds.New(builds.Options{Store: store, Sources: reg, Engine: e.engine, NATS: e.nc, Owner: owner,
		PollInterval: time.Minute, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	return s, store
}

// polledRepo is a repository on the loopback git server with one commit
// on main, and a registry holding one build service of it.
func polledRepo(t *testing.T) (*gitserver.Repo, builds.ServiceKey, *registry) {
	t.Helper()
	repo := gitserver.New(t).Repo(t, "app")
	repo.Commit(t, "main", "first", map[string]string{"index.html": "one"})
	key := builds.ServiceKey{TeamID: "acme", ProjectID: "web", ServiceID: "site"}
	reg := &registry{srcs: []builds.Source{{ServiceKey: key, Kind: "build", URL: repo.URL, Branch: "main",
		Buildpack: &builds.Buildpack{Context: "/"}}}}
	return repo, key, reg
}

// TestPollHonoursCISkipFlags: a commit found by polling whose message
// carries a CI-skip flag is remembered as seen and not built, as a
// webhook push of it would not be; the next commit builds. The git server
// is the loopback one, read in the sandbox.
func TestPollHonoursCISkipFlags(t *testing.T) {
	ctx := context.Background()
	repo, key, reg := polledRepo(t)
	db := sqltest.Open(t, sqldb.SQLite, schema...)
	svc, store := newPollEnv(t).service(t, db, "r1", reg, time.Now)
	list := func() []builds.Build {
		t.Helper()
		bs, _, _, err := store.ListBuilds(ctx, key, paging.Page{Limit: 50})
		if err != nil {
			t.Fatal(err)
		}
		return bs
	}

	builds.PollRound(ctx, svc) // the first look builds nothing
	if bs := list(); len(bs) != 0 {
		t.Fatalf("builds after the first look: %+v", bs)
	}

	skipped := repo.Commit(t, "main", "Fix a typo\n\nDocs only. [skip ci]", map[string]string{"README": "typo"})
	builds.PollRound(ctx, svc)
	if bs := list(); len(bs) != 0 {
		t.Fatalf("a [skip ci] commit found by polling built: %+v", bs)
	}
	if heads, err := store.PollState(ctx, key); err != nil || heads["branch:main"] != skipped {
		t.Errorf("the skipped head is not remembered as seen: %v, %v", heads, err)
	}
	builds.PollRound(ctx, svc) // and stays unbuilt
	if bs := list(); len(bs) != 0 {
		t.Fatalf("the [skip ci] commit built in a later round: %+v", bs)
	}

	next := repo.Commit(t, "main", "A real change", map[string]string{"index.html": "two"})
	builds.PollRound(ctx, svc)
	bs := list()
	if len(bs) != 1 || bs[0].SHA != next || bs[0].Branch != "main" || bs[0].Trigger != "poll" {
		t.Fatalf("builds after a normal commit: %+v; want one of %s", bs, next)
	}
}

// noMessages is the real engine on a git server that refuses the
// one-commit fetch the poller reads messages with (dumb HTTP, shallow
// fetches turned off).
type noMessages struct{ builds.BuilderEngine }

func (noMessages) Messages(context.Context, builds.Source, []builds.Ref) (map[string]string, error) {
	return nil, errors.New("the server does not allow shallow fetches")
}

// TestPollBuildsWithoutMessages: where commit messages cannot be read,
// polling still builds what moved (skip markers unseen), as it did before
// it read them, rather than never building again.
func TestPollBuildsWithoutMessages(t *testing.T) {
	ctx := context.Background()
	repo, key, reg := polledRepo(t)
	env := newPollEnv(t)
	env.engine = noMessages{env.engine.(builds.BuilderEngine)}
	svc, store := env.service(t, sqltest.Open(t, sqldb.SQLite, schema...), "r1", reg, time.Now)
	builds.PollRound(ctx, svc) // the first look builds nothing
	next := repo.Commit(t, "main", "A real change", map[string]string{"index.html": "two"})
	builds.PollRound(ctx, svc)
	bs, _, _, err := store.ListBuilds(ctx, key, paging.Page{Limit: 50})
	if err != nil || len(bs) != 1 || bs[0].SHA != next || bs[0].Trigger != "poll" {
		t.Fatalf("builds = %+v, %v; want one of %s", bs, err, next)
	}
}

// TestPollLease: two replicas on one database poll one at a time: the
// holder of the poll lease polls at every round, the other not; when the
// holder stops, the other takes over once the lease has run out (two
// intervals), and not before.
func TestPollLease(t *testing.T) {
	ctx := context.Background()
	env := newPollEnv(t)
	sqltest.EachEngine(t, func(t *testing.T, engine sqldb.Dialect) {
		db := sqltest.Open(t, engine, schema...)
		var mu sync.Mutex
		now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
		clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
		advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
		regA, regB := &registry{}, &registry{}
		a, _ := env.service(t, db, "replica-a", regA, clock)
		b, _ := env.service(t, db, "replica-b", regB, clock)

		for round := range 3 {
			builds.PollRound(ctx, a)
			builds.PollRound(ctx, b)
			if regA.polls.Load() != int64(round+1) || regB.polls.Load() != 0 {
				t.Fatalf("round %d: a polled %d times, b %d; want only a", round, regA.polls.Load(), regB.polls.Load())
			}
			advance(time.Minute)
		}

		// a stops. Its lease, renewed at its last round, runs two
		// intervals from it: b waits until then.
		builds.PollRound(ctx, b)
		if regB.polls.Load() != 0 {
			t.Fatal("b polled while a's lease ran")
		}
		advance(time.Minute)
		builds.PollRound(ctx, b)
		if regB.polls.Load() != 1 {
			t.Fatalf("b polled %d times after a's lease ran out; want 1", regB.polls.Load())
		}
		// b holds it now: a, back, does not poll.
		builds.PollRound(ctx, a)
		builds.PollRound(ctx, b)
		if regA.polls.Load() != 3 || regB.polls.Load() != 2 {
			t.Errorf("after the takeover a polled %d times, b %d; want 3 and 2", regA.polls.Load(), regB.polls.Load())
		}
	})
}
