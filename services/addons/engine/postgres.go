package engine

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/slipwayhq/slipway/pkg/runtime"
)

// PostgreSQL: the data directory is DataMount/pgdata, made by initdb on
// the first start (into pgdata.init, renamed once the admin user, the app
// user and DBName exist, so a start that dies half-way starts over). The
// server listens on the socket RunMount/.s.PGSQL.5432 (mode 0777) and on
// TCP 5432 (Spec port "db"); every connection, the socket's included,
// authenticates with scram-sha-256 (pg_hba.conf), since linked workloads
// share the socket. Slipway's tools connect as the admin user through the
// socket, the password in PGPASSWORD of the Exec's environment.
//
// Dump is pg_dump -Fc of DBName. Restore is pg_restore --clean --if-exists
// --no-owner --role=<User> --single-transaction --exit-on-error: all or
// nothing, so a dump that does not restore leaves the previous data, and
// the restored objects belong to the app user. Snapshot is pg_basebackup
// -Ft -X fetch to standard output: one tar of the whole cluster, WAL
// included, which RestoreSnapshot unpacks as the new pgdata (the server
// recovers from it at its next start).
type postgres struct {
	versions func() []string
}

// pgPort is the port PostgreSQL listens on, in its sandbox or container.
const pgPort = 5432

func init() {
	register(&postgres{versions: sync.OnceValue(hostPostgresVersions)})
}

// hostPostgresVersions are the majors of /usr/lib/postgresql/<major>/bin
// holding initdb and postgres, newest first.
func hostPostgresVersions() []string {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	var out []string
	for _, d := range dirs {
		if isExecutable(filepath.Join(d, "initdb")) && isExecutable(filepath.Join(d, "postgres")) && isExecutable(filepath.Join(d, "pg_dump")) {
			out = append(out, filepath.Base(filepath.Dir(d)))
		}
	}
	slices.SortFunc(out, func(a, b string) int {
		x, _ := strconv.Atoi(a)
		y, _ := strconv.Atoi(b)
		return y - x
	})
	return out
}

// DockerVersions are the versions the docker driver offers of each type:
// tags of the official images (DefaultImage).
var DockerVersions = map[string][]string{
	TypePostgreSQL: {"17", "16", "15", "14", "13"},
	TypeRedis:      {"7.4", "7.2", "7.0", "6.2"},
	TypeMySQL:      {"11.4", "10.11", "10.6"},
}

// DefaultImage is the official image of a type's version: what the
// docker driver runs when Addon.Image is empty.
func DefaultImage(typ, version string) string {
	switch typ {
	case TypePostgreSQL:
		return "docker.io/library/postgres:" + version
	case TypeRedis:
		return "docker.io/library/redis:" + version
	case TypeMySQL:
		return "docker.io/library/mariadb:" + version
	}
	return ""
}

func (p *postgres) Type() string { return TypePostgreSQL }

func (p *postgres) Info(driver string) TypeInfo {
	versions := p.versions()
	if driver == driverDocker {
		versions = DockerVersions[TypePostgreSQL]
	}
	return TypeInfo{
		Type:        TypePostgreSQL,
		Name:        "PostgreSQL",
		Description: "PostgreSQL, the open source relational database.",
		Versions:    slices.Clone(versions),
		Major:       majors(versions),
		Features:    Features{BackupsDump: true, CustomDBName: true, ForkAddon: true, ImportDump: true, TLS: true, ExternalAccess: true},
		BackupTypes: []string{BackupDump, BackupSnapshot},
	}
}

// pgScript initialises the cluster on the first start and runs the
// server; its environment has the credentials (SLIPWAY_*).
const pgScript = nssPrelude + `set -eu
umask 077
if [ ! -s /data/pgdata/PG_VERSION ]; then
	rm -rf /data/pgdata.init /tmp/slipway-init
	printf '%s\n' "$SLIPWAY_ADMIN_PASSWORD" >/tmp/slipway-pw
	initdb -D /data/pgdata.init -U "$SLIPWAY_ADMIN_USER" --pwfile=/tmp/slipway-pw --auth=scram-sha-256 -E UTF8 --no-locale >/tmp/slipway-initdb.log 2>&1 || { cat /tmp/slipway-initdb.log >&2; exit 1; }
	rm -f /tmp/slipway-pw
	cat >/data/pgdata.init/pg_hba.conf <<'EOF'
# Written by Slipway: every connection authenticates, the socket's too
# (linked workloads share it).
local all all scram-sha-256
local replication all scram-sha-256
host all all 0.0.0.0/0 scram-sha-256
host all all ::/0 scram-sha-256
EOF
	mkdir -m 700 /tmp/slipway-init
	pg_ctl -D /data/pgdata.init -w -l /tmp/slipway-init.log -o "-c listen_addresses='' -k /tmp/slipway-init" start >/dev/null || { cat /tmp/slipway-init.log >&2; exit 1; }
	PGPASSWORD="$SLIPWAY_ADMIN_PASSWORD" psql -X -q -v ON_ERROR_STOP=1 -h /tmp/slipway-init -U "$SLIPWAY_ADMIN_USER" -d postgres \
		-v user="$SLIPWAY_USER" -v pw="$SLIPWAY_PASSWORD" -v db="$SLIPWAY_DB" <<'EOF'
CREATE ROLE :"user" LOGIN PASSWORD :'pw';
CREATE DATABASE :"db" OWNER :"user";
EOF
	pg_ctl -D /data/pgdata.init -w -m fast stop >/dev/null
	mv /data/pgdata.init /data/pgdata
fi
# TCP takes TLS only when it is on (hostssl); the socket stays plain.
tcp=host
set --
if [ "${SLIPWAY_TLS:-}" = 1 ]; then
	tcp=hostssl
	set -- -c ssl=on -c ssl_cert_file="$SLIPWAY_TLS_DIR/server.crt" -c ssl_key_file="$SLIPWAY_TLS_DIR/server.key" -c ssl_min_protocol_version=TLSv1.2
fi
cat >/data/pgdata/pg_hba.conf <<EOF
# Written by Slipway at each start: every connection authenticates, the
# socket's too (linked workloads share it).
local all all scram-sha-256
local replication all scram-sha-256
$tcp all all 0.0.0.0/0 scram-sha-256
$tcp all all ::/0 scram-sha-256
EOF
exec postgres -D /data/pgdata -c listen_addresses='*' -c port=5432 -c unix_socket_directories=/run/addon -c unix_socket_permissions=0777 -c shared_buffers="$SLIPWAY_SHARED_BUFFERS" "$@"
`

func (p *postgres) Spec(a Addon) (runtime.Spec, error) {
	if err := validate(a, true, true); err != nil {
		return runtime.Spec{}, err
	}
	if err := checkVersion(p, a); err != nil {
		return runtime.Spec{}, err
	}
	env := map[string]string{
		"SLIPWAY_ADMIN_USER":     a.AdminUser,
		"SLIPWAY_ADMIN_PASSWORD": a.AdminPassword,
		"SLIPWAY_USER":           a.User,
		"SLIPWAY_PASSWORD":       a.Password,
		"SLIPWAY_DB":             a.DBName,
		// A quarter of the memory limit (PostgreSQL's advice), its
		// default 128MB without one.
		"SLIPWAY_SHARED_BUFFERS": strconv.FormatInt(memoryShare(a, 4, 16, 128), 10) + "MB",
	}
	path := "/usr/lib/postgresql/" + a.Version + "/bin:" + basePath
	return baseSpec(a, DefaultImage(TypePostgreSQL, a.Version), path, pgScript, env, []runtime.Port{{Name: "db", Port: pgPort}})
}

// pgEnv is the environment of Slipway's tools in the server's workload:
// the admin user, through the socket.
func pgEnv(a Addon) map[string]string {
	return map[string]string{"PGHOST": RunMount, "PGPORT": strconv.Itoa(pgPort), "PGUSER": a.AdminUser, "PGPASSWORD": a.AdminPassword, "PGDATABASE": a.DBName, "PGCONNECT_TIMEOUT": "10"}
}

func (p *postgres) Ready(ctx context.Context, d runtime.Driver, id string, a Addon) error {
	return run(ctx, d, id, a, pgEnv(a), nil, nil, "pg_isready", "-q")
}

func (p *postgres) Dump(ctx context.Context, d runtime.Driver, id string, a Addon, w io.Writer) error {
	return run(ctx, d, id, a, pgEnv(a), nil, w, "pg_dump", "-Fc", "--no-password")
}

func (p *postgres) Restore(ctx context.Context, d runtime.Driver, id string, a Addon, r io.Reader) error {
	return run(ctx, d, id, a, pgEnv(a), r, nil, "pg_restore", "--no-password", "-d", a.DBName,
		"--clean", "--if-exists", "--no-owner", "--role="+a.User, "--single-transaction", "--exit-on-error")
}

func (p *postgres) Snapshot(ctx context.Context, d runtime.Driver, id string, a Addon, w io.Writer) error {
	return run(ctx, d, id, a, pgEnv(a), nil, w, "pg_basebackup", "--no-password", "-D", "-", "-Ft", "-X", "fetch", "--checkpoint=fast")
}

func (p *postgres) RestoreSnapshot(ctx context.Context, d runtime.Driver, a Addon, r io.Reader) error {
	if a.Driver == driverDocker {
		return swapInVolume(ctx, TypePostgreSQL, d, a, swapped[TypePostgreSQL], r, func(names map[string]bool) error {
			if !names["PG_VERSION"] {
				return fmt.Errorf("engine: the snapshot is not a PostgreSQL data directory (no PG_VERSION)")
			}
			return nil
		}, `rm -f "$new/postmaster.pid"`)
	}
	return swapIn(a, swapped[TypePostgreSQL], r, func(dir string) error {
		if _, err := os.Stat(filepath.Join(dir, "PG_VERSION")); err != nil {
			return fmt.Errorf("engine: the snapshot is not a PostgreSQL data directory (no PG_VERSION)")
		}
		_ = os.Remove(filepath.Join(dir, "postmaster.pid"))
		return nil
	})
}

// pgCheckQuery lists every user table with its columns and row count,
// fields separated by US (0x1f), rows by RS (0x1e).
const pgCheckQuery = `SELECT format('%s.%s', n.nspname, c.relname),
  (xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM %I.%I', n.nspname, c.relname), false, true, '')))[1]::text,
  coalesce((SELECT string_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod), ', ' ORDER BY a.attnum)
    FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped), '')
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp\_%'
ORDER BY 1`

func (p *postgres) Check(ctx context.Context, d runtime.Driver, id string, a Addon) (Check, error) {
	out, err := output(ctx, d, id, a, pgEnv(a), "psql", "-X", "--no-password", "-v", "ON_ERROR_STOP=1", "-A", "-t", "-F", "\x1f", "-R", "\x1e", "-c", pgCheckQuery)
	if err != nil {
		return Check{}, err
	}
	return parseCheck(out, "\x1e", "\x1f")
}

// parseCheck reads records of "table US count US columns".
func parseCheck(out, rs, fs string) (Check, error) {
	c := Check{Counts: map[string]int64{}, Schema: map[string]string{}}
	for _, rec := range strings.Split(out, rs) {
		if strings.TrimSpace(rec) == "" {
			continue
		}
		rec = strings.TrimRight(rec, "\n")
		f := strings.Split(rec, fs)
		if len(f) != 3 {
			return Check{}, fmt.Errorf("engine: unexpected check output %q", rec)
		}
		n, err := strconv.ParseInt(strings.TrimSpace(f[1]), 10, 64)
		if err != nil {
			return Check{}, fmt.Errorf("engine: unexpected row count %q of %s", f[1], f[0])
		}
		c.Counts[f[0]] = n
		c.Schema[f[0]] = f[2]
	}
	return c, nil
}

func (p *postgres) Credentials(a Addon) (secrets, envs map[string]string) {
	host := LinkPath(a)
	port := strconv.Itoa(pgPort)
	uri := func(user, pass string) string {
		u := url.URL{Scheme: "postgresql", User: url.UserPassword(user, pass), Host: "", Path: "/" + a.DBName, RawQuery: "host=" + url.QueryEscape(host) + "&port=" + port}
		return u.String()
	}
	jdbc := func(user, pass string) string {
		// JDBC reaches a socket through junixsocket's socket factory.
		q := url.Values{"user": {user}, "password": {pass},
			"socketFactory":    {"org.newsclub.net.unix.AFUNIXSocketFactory$FactoryArg"},
			"socketFactoryArg": {host + "/.s.PGSQL." + port}}
		return "jdbc:postgresql://localhost:" + port + "/" + a.DBName + "?" + q.Encode()
	}
	secrets = map[string]string{
		"PASSWORD":                a.Password,
		"ADMIN_PASSWORD":          a.AdminPassword,
		"POSTGRES_URI":            uri(a.User, a.Password),
		"POSTGRES_URI_ADMIN":      uri(a.AdminUser, a.AdminPassword),
		"JDBC_POSTGRES_URI":       jdbc(a.User, a.Password),
		"JDBC_POSTGRES_URI_ADMIN": jdbc(a.AdminUser, a.AdminPassword),
	}
	envs = map[string]string{
		"HOST":           host,
		"PORT":           port,
		"DATABASE":       a.DBName,
		"USERNAME":       a.User,
		"ADMIN_USERNAME": a.AdminUser,
		"SOCKET":         host + "/.s.PGSQL." + port,
	}
	tlsEnvs(a, envs)
	return secrets, envs
}
