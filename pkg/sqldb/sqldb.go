// Package sqldb opens a service's database and runs its migrations. It gives
// every service one code path over two engines: PostgreSQL (pgx) for compose
// and production, and embedded pure-Go SQLite for the single-process default.
//
// Queries are written once, in the SQL subset both engines share, with $N
// placeholders (SQLite accepts them as numbered parameters).
package sqldb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/slipwayhq/slipway/pkg/apierr"
)

// Dialect names the SQL engine behind a DB.
type Dialect string

// The supported engines.
const (
	Postgres Dialect = "postgres"
	SQLite   Dialect = "sqlite"
)

// DB is a database handle that remembers which engine it talks to.
type DB struct {
	*sql.DB
	Dialect Dialect
	// pool is, on PostgreSQL, the pgx pool behind *sql.DB: Query and
	// QueryRow read through it directly (see Query).
	pool *pgxpool.Pool
	// stmts caches SQLite's prepared statements by query text (see
	// prepared).
	stmts  sync.Map // string -> *sql.Stmt
	nstmts atomic.Int32
}

// maxCachedStatements bounds the statement cache: queries are constants of
// the code, but a few are built per call (an IN list per length).
const maxCachedStatements = 256

// prepared returns the cached prepared statement of query on SQLite, or
// nil (PostgreSQL's driver caches statements per connection itself). The
// SQLite driver parses and plans a query on every run unless it is
// prepared: profiled on GET /v1/projects/{id}, a quarter of the request's
// CPU.
func (db *DB) prepared(ctx context.Context, query string) *sql.Stmt {
	if db.Dialect != SQLite {
		return nil
	}
	if st, ok := db.stmts.Load(query); ok {
		return st.(*sql.Stmt)
	}
	if db.nstmts.Load() >= maxCachedStatements {
		return nil
	}
	st, err := db.DB.PrepareContext(ctx, query)
	if err != nil {
		return nil // the unprepared call reports the error
	}
	if prev, loaded := db.stmts.LoadOrStore(query, st); loaded {
		_ = st.Close()
		return prev.(*sql.Stmt)
	}
	db.nstmts.Add(1)
	return st
}

// QueryContext runs a read, prepared once on SQLite. Reads are not
// cancelled by ctx (see detach).
func (db *DB) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	ctx = detach(ctx)
	if st := db.prepared(ctx, query); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return db.DB.QueryContext(ctx, query, args...)
}

// QueryRowContext runs a read returning one row, prepared once on SQLite.
// Reads are not cancelled by ctx (see detach).
func (db *DB) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	ctx = detach(ctx)
	if st := db.prepared(ctx, query); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return db.DB.QueryRowContext(ctx, query, args...)
}

// Rows is the result of Query: the part of *sql.Rows the stores use, which
// pgx's rows provide too.
type Rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
	Close() error
}

// Row is the result of QueryRow: its Scan reports sql.ErrNoRows when the
// read found nothing, on either engine.
type Row interface {
	Scan(dest ...any) error
}

// Query runs a read outside a transaction. On PostgreSQL it goes straight
// to pgx's pool, skipping database/sql: on the API's most frequent read
// that is 28 allocations and about 15 µs of CPU against 67 through
// database/sql and pgx's stdlib adapter, measured side by side (see
// docs/benchmarks.md). pgx scans into the same destinations database/sql
// does for the types the stores read (text, integers, booleans, bytes and
// sql.Null*), and the store suites run on both engines to keep it so. On
// SQLite it is QueryContext. Reads are not cancelled by ctx (see detach).
func (db *DB) Query(ctx context.Context, query string, args ...any) (Rows, error) {
	if db.pool == nil {
		return db.QueryContext(ctx, query, args...)
	}
	rows, err := db.pool.Query(detach(ctx), query, args...)
	if err != nil {
		return nil, err
	}
	return pgxRows{rows}, nil
}

// QueryRow runs a read of one row outside a transaction, as Query does.
func (db *DB) QueryRow(ctx context.Context, query string, args ...any) Row {
	if db.pool == nil {
		return db.QueryRowContext(ctx, query, args...)
	}
	return db.pool.QueryRow(detach(ctx), query, args...)
}

// pgxRows gives pgx's rows database/sql's Close signature.
type pgxRows struct{ pgx.Rows }

// Close releases the rows' connection. A read's error is reported by Err,
// as with *sql.Rows.
func (r pgxRows) Close() error {
	r.Rows.Close()
	return nil
}

// detach keeps ctx's values but not its cancellation, for reads outside a
// transaction. For a cancellable context database/sql starts a goroutine
// per query to watch it (and the SQLite driver another), which on the
// PostgreSQL read path cost a tenth of the requests per second; reads are
// short and bounded by the server's statement_timeout (PostgreSQL, see
// Open) or the busy timeout (SQLite), so finishing one after its caller
// gave up costs less than watching every one. Writes and transactions
// keep their context.
func detach(ctx context.Context) context.Context { return context.WithoutCancel(ctx) }

// ExecContext runs a statement, prepared once on SQLite.
func (db *DB) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if st := db.prepared(ctx, query); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return db.DB.ExecContext(ctx, query, args...)
}

// Close closes the cached statements and the database.
func (db *DB) Close() error {
	db.stmts.Range(func(_, st any) bool {
		_ = st.(*sql.Stmt).Close()
		return true
	})
	err := db.DB.Close()
	if db.pool != nil {
		db.pool.Close() // closing a *sql.DB from a pool leaves the pool open
	}
	return err
}

// statementTimeout bounds every PostgreSQL statement, on the server.
const statementTimeout = 30 * time.Second

// maxPostgresConns bounds each component's PostgreSQL pool: twice the
// cores this process may use, at least 4 (PostgreSQL's own guidance is
// about twice the database server's cores; on one machine, Slipway's
// default, those are the same cores). A few busy connections serve more
// than many waiting ones: past the cores, more connections add context
// switches and lock contention, not throughput. Measured side by side on
// GET /v1/projects/{id} at 32 client connections on the 2-core benchmark
// machine (docs/benchmarks.md): 16 connections gave 0.56 of the
// reference's requests per second with a p99 2.3-2.8 times its; 8 gave
// 0.62 and 1.6-2.0 times; 4 gave 0.66 and 1.0-1.8 times. A database on
// bigger hardware of its own is given more with ?pool_max_conns=N.
var maxPostgresConns = int32(max(4, 2*runtime.GOMAXPROCS(0)))

// Open connects to the database named by rawURL: a postgres:// or
// postgresql:// URL selects PostgreSQL; sqlite:PATH, file:PATH or a bare path
// selects SQLite (the file and its directory are created when missing).
func Open(ctx context.Context, rawURL string) (*DB, error) {
	switch {
	case strings.HasPrefix(rawURL, "postgres://"), strings.HasPrefix(rawURL, "postgresql://"):
		cfg, err := pgxpool.ParseConfig(rawURL)
		if err != nil {
			return nil, fmt.Errorf("sqldb: open postgres: %w", err)
		}
		// Reads are not cancelled by their callers (see detach): the
		// server bounds every statement instead, unless the URL says
		// otherwise (?statement_timeout=...).
		if _, ok := cfg.ConnConfig.RuntimeParams["statement_timeout"]; !ok {
			cfg.ConnConfig.RuntimeParams["statement_timeout"] = strconv.Itoa(int(statementTimeout.Milliseconds()))
		}
		// One pool serves both paths: Query and QueryRow use it directly,
		// everything else (transactions, migrations) through database/sql
		// on top of it. Its connections stay open while idle: opening a
		// PostgreSQL connection (a server process) costs milliseconds, and
		// a pool that closed its surplus after each burst reopened it for
		// the next (measured on GET /v1/projects/{id} at 32 connections:
		// 16 idle of 32 open gave a p99 of 200 ms; see docs/benchmarks.md).
		// The URL's pool_max_conns and pool_max_conn_idle_time, when
		// given, tune the pool instead.
		var given url.Values
		if u, err := url.Parse(rawURL); err == nil {
			given = u.Query()
		}
		if !given.Has("pool_max_conns") {
			cfg.MaxConns = maxPostgresConns
		}
		if !given.Has("pool_max_conn_idle_time") {
			cfg.MaxConnIdleTime = 5 * time.Minute
		}
		pool, err := pgxpool.NewWithConfig(ctx, cfg)
		if err != nil {
			return nil, fmt.Errorf("sqldb: open postgres: %w", err)
		}
		return ping(ctx, &DB{DB: stdlib.OpenDBFromPool(pool), Dialect: Postgres, pool: pool})
	case rawURL == "":
		return nil, errors.New("sqldb: empty database URL")
	default:
		return openSQLite(ctx, rawURL)
	}
}

func openSQLite(ctx context.Context, rawURL string) (*DB, error) {
	path := strings.TrimPrefix(strings.TrimPrefix(rawURL, "sqlite:"), "file:")
	path = strings.TrimPrefix(path, "//")
	if i := strings.IndexByte(path, '?'); i >= 0 {
		path = path[:i]
	}
	if path == "" {
		return nil, errors.New("sqldb: sqlite URL has no path")
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("sqldb: create sqlite directory: %w", err)
	}
	// WAL lets readers proceed during a write; busy_timeout makes concurrent
	// writers wait for the lock instead of failing with SQLITE_BUSY.
	q := url.Values{}
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Set("_txlock", "immediate")
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("sqldb: open sqlite: %w", err)
	}
	// SQLite has one writer at a time; a small pool keeps lock waits short
	// while still letting reads run beside a write under WAL. Every
	// connection stays open: opening one applies the pragmas above, and
	// with fewer idle than open a burst would close and reopen them.
	db.SetMaxOpenConns(4)
	db.SetMaxIdleConns(4)
	return ping(ctx, &DB{DB: db, Dialect: SQLite})
}

func ping(ctx context.Context, db *DB) (*DB, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("sqldb: connect to %s: %w", db.Dialect, err)
	}
	return db, nil
}

// Migrations is one named set of migrations, tracked in its own version
// table so that a service and the shared libraries it embeds (the event
// outbox, for one) can each evolve their schema independently.
type Migrations struct {
	// Name identifies the set; its versions live in table "<name>_schema".
	Name string
	// FS holds one directory per dialect ("postgres", "sqlite") of goose
	// SQL files.
	FS fs.FS
}

// Migrate applies every pending migration of each set, in order. On
// PostgreSQL a session advisory lock serialises concurrent migrators, so
// several replicas may start at once.
func (db *DB) Migrate(ctx context.Context, sets ...Migrations) error {
	for _, set := range sets {
		sub, err := fs.Sub(set.FS, string(db.Dialect))
		if err != nil {
			return fmt.Errorf("sqldb: migrations %s: %w", set.Name, err)
		}
		opts := []goose.ProviderOption{
			goose.WithTableName(set.Name + "_schema"),
			goose.WithDisableGlobalRegistry(true),
		}
		dialect := goose.DialectSQLite3
		if db.Dialect == Postgres {
			dialect = goose.DialectPostgres
			locker, err := lock.NewPostgresSessionLocker(lock.WithLockID(lockID(set.Name)))
			if err != nil {
				return fmt.Errorf("sqldb: migration lock: %w", err)
			}
			opts = append(opts, goose.WithSessionLocker(locker))
		}
		p, err := goose.NewProvider(dialect, db.DB, sub, opts...)
		if err != nil {
			return fmt.Errorf("sqldb: migrations %s: %w", set.Name, err)
		}
		if _, err := p.Up(ctx); err != nil {
			return fmt.Errorf("sqldb: migrate %s: %w", set.Name, err)
		}
	}
	return nil
}

// lockID derives a stable advisory-lock key per migration set (FNV-1a).
func lockID(name string) int64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(name); i++ {
		h ^= uint64(name[i])
		h *= 1099511628211
	}
	return int64(h >> 1)
}

// InTx runs fn inside a transaction, committing when it returns nil and
// rolling back otherwise.
func (db *DB) InTx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

// IsUniqueViolation reports whether err is a unique-constraint violation on
// either engine.
func IsUniqueViolation(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code == "23505"
	}
	var sqliteErr *sqlite.Error
	if errors.As(err, &sqliteErr) {
		code := sqliteErr.Code()
		return code == sqlite3.SQLITE_CONSTRAINT_UNIQUE || code == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
	}
	return false
}

// NotFoundIfNoRows turns database/sql's "no row" into the store contract's
// apierr.ErrNotFound and returns any other err unchanged, so that every
// store's Get answers alike on both engines.
func NotFoundIfNoRows(err error) error {
	if errors.Is(err, sql.ErrNoRows) {
		return apierr.ErrNotFound
	}
	return err
}

// NotFoundIfNoneAffected checks the result of an UPDATE or DELETE of one
// row by its key: err unchanged, or apierr.ErrNotFound when no row
// matched, so that a store's writes answer like its Get.
func NotFoundIfNoneAffected(res sql.Result, err error) error {
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == 0 {
		return apierr.ErrNotFound
	}
	return nil
}

// AlreadyExistsIfUnique turns a unique-constraint violation into the store
// contract's apierr.ErrAlreadyExists and returns any other err unchanged.
func AlreadyExistsIfUnique(err error) error {
	if IsUniqueViolation(err) {
		return apierr.ErrAlreadyExists
	}
	return err
}
