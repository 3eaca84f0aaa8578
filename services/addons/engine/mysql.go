package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/slipwayhq/slipway/pkg/runtime"
)

// MySQL is MariaDB: mariadb-install-db makes DataMount/mysql on the first
// start (into mysql.init, renamed once the admin user, the app user and
// DBName exist and every other account — root, the installing OS user —
// is dropped, so that nothing connects without a password), then
// mariadbd runs as the sandbox's (or RunAs) user, listening on the socket
// RunMount/mysqld.sock and on TCP 3306 (Spec port "db"). Slipway's tools
// connect as the admin user through the socket, the password in MYSQL_PWD
// of the Exec's environment.
//
// Dump is mariadb-dump --single-transaction --routines --triggers
// --events --hex-blob of DBName (no CREATE DATABASE or USE, so it loads
// into any database).
//
// Restore never leaves half the data. It stores the dump in the data
// directory (so the data directory needs room for it), loads it first
// into a scratch database (_slipway_restore): a dump that does not load
// is refused there, before the live database is touched. Then it keeps a
// dump of the live database, empties it and loads the new dump; should
// that fail after all, the kept dump is loaded back. Loads run with
// mariadb --one-database, so a dump's USE of another database does not
// write there. Views, triggers, routines and events are given to the app
// user (their DEFINER rewritten), so that a dump of another addon, with
// other accounts, works here. A dump must end with mariadb-dump's "-- Dump completed"
// line: a truncated SQL dump could otherwise load without an error. The
// file slipway-restore.swapping marks the time the live database is being
// replaced: a restore interrupted then is undone by the next Restore or
// the next start of the server, from the kept dump. The addons service
// may stop the server and copy the data directory aside as well; nothing
// here needs it.
//
// Snapshot is mariadb-backup's copy of the running server's files,
// prepared (consistent, the redo log applied) before it is streamed as a
// tar; RestoreSnapshot unpacks it as the new DataMount/mysql.
type mysql struct {
	versions func() []string
}

const mysqlPort = 3306

// scratchDB is where Restore tries a dump first.
const scratchDB = "_slipway_restore"

func init() {
	register(&mysql{versions: sync.OnceValue(func() []string {
		v := hostVersion("mariadbd", regexp.MustCompile(`Ver ([0-9]+\.[0-9]+)\.`), "--version")
		if v == "" {
			return nil
		}
		return []string{v}
	})})
}

func (m *mysql) Type() string { return TypeMySQL }

func (m *mysql) Info(driver string) TypeInfo {
	versions := m.versions()
	if driver == driverDocker {
		versions = DockerVersions[TypeMySQL]
	}
	return TypeInfo{
		Type:        TypeMySQL,
		Name:        "MySQL",
		Description: "MySQL-compatible relational database (MariaDB).",
		Versions:    slices.Clone(versions),
		Major:       majors(versions),
		Features:    Features{BackupsDump: true, CustomDBName: true, ForkAddon: true, ImportDump: true, TLS: true, ExternalAccess: true},
		BackupTypes: []string{BackupDump, BackupSnapshot},
	}
}

// mysqlServerArgs are mariadbd's options common to the initialising and
// the real server.
const mysqlServerArgs = `--character-set-server=utf8mb4 --collation-server=utf8mb4_unicode_ci --skip-name-resolve --innodb-buffer-pool-size="$SLIPWAY_BUFFER_POOL"`

// mysqlScript initialises the data directory on the first start, puts
// back the data an interrupted Restore had swapped out (see
// mysqlRestoreScript), and runs the server; its environment has the
// credentials (SLIPWAY_*).
const mysqlScript = nssPrelude + `set -eu
umask 077
# tempserver DIR USER: a server on DIR for this script only (no network,
# a socket in /tmp), its pid in $pid once it answers USER.
tempserver() {
	mariadbd --no-defaults --datadir="$1" --socket=/tmp/slipway-init.sock --skip-networking --pid-file=/tmp/slipway-init.pid ` + mysqlServerArgs + ` 2>/tmp/slipway-init.log &
	pid=$!
	n=0
	until mariadb-admin --no-defaults --socket=/tmp/slipway-init.sock -u "$2" ping >/dev/null 2>&1; do
		n=$((n+1))
		if [ $n -gt 600 ] || ! kill -0 $pid 2>/dev/null; then cat /tmp/slipway-init.log >&2; exit 1; fi
		sleep 0.1
	done
}
stopserver() { kill $pid; wait $pid || true; }
db="\` + "`" + `$SLIPWAY_DB\` + "`" + `"
if [ ! -d /data/mysql ]; then
	rm -rf /data/mysql.init
	mariadb-install-db --no-defaults --datadir=/data/mysql.init --auth-root-authentication-method=normal --skip-test-db ` + mysqlServerArgs + ` >/tmp/slipway-install.log 2>&1 || { cat /tmp/slipway-install.log >&2; exit 1; }
	tempserver /data/mysql.init root
	mariadb --no-defaults --socket=/tmp/slipway-init.sock -u root <<EOF
CREATE USER '$SLIPWAY_ADMIN_USER'@'%' IDENTIFIED BY '$SLIPWAY_ADMIN_PASSWORD';
GRANT ALL PRIVILEGES ON *.* TO '$SLIPWAY_ADMIN_USER'@'%' WITH GRANT OPTION;
CREATE DATABASE $db;
CREATE USER '$SLIPWAY_USER'@'%' IDENTIFIED BY '$SLIPWAY_PASSWORD';
GRANT ALL PRIVILEGES ON $db.* TO '$SLIPWAY_USER'@'%';
EOF
	mariadb --no-defaults --socket=/tmp/slipway-init.sock -u root -N -B -e "SELECT CONCAT('DROP USER ', QUOTE(User), '@', QUOTE(Host), ';') FROM mysql.user WHERE User NOT IN ('$SLIPWAY_ADMIN_USER', '$SLIPWAY_USER', 'mariadb.sys')" >/tmp/slipway-drop.sql
	mariadb --no-defaults --socket=/tmp/slipway-init.sock -u root </tmp/slipway-drop.sql
	stopserver
	mv /data/mysql.init /data/mysql
fi
if [ -e /data/slipway-restore.swapping ]; then
	export MYSQL_PWD="$SLIPWAY_ADMIN_PASSWORD"
	tempserver /data/mysql "$SLIPWAY_ADMIN_USER"
	m() { mariadb --no-defaults --socket=/tmp/slipway-init.sock --user="$SLIPWAY_ADMIN_USER" "$@"; }
	if m -e "DROP DATABASE IF EXISTS $db; CREATE DATABASE $db" && m --one-database "$SLIPWAY_DB" </data/slipway-previous.sql; then
		rm -f /data/slipway-restore.swapping /data/slipway-previous.sql /data/slipway-restore.sql
		echo "slipway: the data an interrupted restore had swapped out was put back" >&2
	else
		echo "slipway: the data an interrupted restore had swapped out could not be put back; it is kept in the data directory as slipway-previous.sql" >&2
	fi
	stopserver
	unset MYSQL_PWD
fi
# TCP takes TLS only when it is on; the socket counts as secure.
set --
if [ "${SLIPWAY_TLS:-}" = 1 ]; then
	set -- --ssl-cert="$SLIPWAY_TLS_DIR/server.crt" --ssl-key="$SLIPWAY_TLS_DIR/server.key" --ssl-ca="$SLIPWAY_TLS_DIR/ca.crt" --require-secure-transport=ON --tls-version=TLSv1.2,TLSv1.3
fi
exec mariadbd --no-defaults --datadir=/data/mysql --socket=/run/addon/mysqld.sock --port=3306 --bind-address=0.0.0.0 --pid-file=/tmp/mysqld.pid ` + mysqlServerArgs + ` "$@"
`

func (m *mysql) Spec(a Addon) (runtime.Spec, error) {
	if err := validate(a, true, true); err != nil {
		return runtime.Spec{}, err
	}
	if err := checkVersion(m, a); err != nil {
		return runtime.Spec{}, err
	}
	if a.DBName == scratchDB {
		return runtime.Spec{}, fmt.Errorf("engine: the database name %q is reserved", scratchDB)
	}
	env := map[string]string{
		"SLIPWAY_ADMIN_USER":     a.AdminUser,
		"SLIPWAY_ADMIN_PASSWORD": a.AdminPassword,
		"SLIPWAY_USER":           a.User,
		"SLIPWAY_PASSWORD":       a.Password,
		"SLIPWAY_DB":             a.DBName,
		// InnoDB's buffer pool: a third of the memory limit, 128MB
		// (MariaDB's default) without one.
		"SLIPWAY_BUFFER_POOL": strconv.FormatInt(memoryShare(a, 3, 32, 128), 10) + "M",
	}
	return baseSpec(a, DefaultImage(TypeMySQL, a.Version), basePath, mysqlScript, env, []runtime.Port{{Name: "db", Port: mysqlPort}})
}

// mysqlEnv is the environment of Slipway's tools: the admin's password.
func mysqlEnv(a Addon) map[string]string {
	return map[string]string{"MYSQL_PWD": a.AdminPassword, "SLIPWAY_ADMIN_USER": a.AdminUser, "SLIPWAY_USER": a.User, "SLIPWAY_DB": a.DBName}
}

// mysqlTool is a MariaDB client tool's command line, as the admin,
// through the socket.
func mysqlTool(a Addon, tool string, args ...string) []string {
	return append([]string{tool, "--no-defaults", "--socket=" + RunMount + "/mysqld.sock", "--user=" + a.AdminUser}, args...)
}

func (m *mysql) Ready(ctx context.Context, d runtime.Driver, id string, a Addon) error {
	return run(ctx, d, id, a, mysqlEnv(a), nil, nil, mysqlTool(a, "mariadb-admin", "--connect-timeout=5", "ping")...)
}

// mysqlDumpArgs are mariadb-dump's options for a dump of one database.
var mysqlDumpArgs = []string{"--single-transaction", "--routines", "--triggers", "--events", "--hex-blob", "--default-character-set=utf8mb4"}

func (m *mysql) Dump(ctx context.Context, d runtime.Driver, id string, a Addon, w io.Writer) error {
	return run(ctx, d, id, a, mysqlEnv(a), nil, w, mysqlTool(a, "mariadb-dump", append(slices.Clone(mysqlDumpArgs), a.DBName)...)...)
}

// mysqlRestoreScript restores the dump on its standard input (see the
// type's doc); its errors name what failed. The marker file swap exists
// while the live database is being replaced: a restore interrupted then
// (its Exec cancelled, the server stopped) is undone by the next Restore,
// or the next start of the server, from the kept dump prev.
var mysqlRestoreScript = `set -eu
umask 077
m() { mariadb --no-defaults --socket=/run/addon/mysqld.sock --user="$SLIPWAY_ADMIN_USER" "$@"; }
q() { printf '` + "`%s`" + `' "$1"; }
in=/data/slipway-restore.sql prev=/data/slipway-previous.sql swap=/data/slipway-restore.swapping scratch=` + scratchDB + `
errtail() { { grep -E '^ERROR' /tmp/slipway-restore.err || tail -n 2 /tmp/slipway-restore.err; } | tail -n 2 | tr '\n' ' '; }
putback() {
	m -e "DROP DATABASE IF EXISTS $(q "$SLIPWAY_DB"); CREATE DATABASE $(q "$SLIPWAY_DB")" &&
		m --one-database "$SLIPWAY_DB" <"$prev" && rm -f "$swap" "$prev"
}
if [ -e "$swap" ] && ! putback; then
	echo "the data an interrupted restore had swapped out could not be put back; it is kept in the data directory as slipway-previous.sql" >&2
	exit 1
fi
rm -f "$prev"
# Views, triggers, routines and events run as their definer, an account
# of the addon the dump came from: they are given to this addon's app
# user (see mysqlDefinerSed).
sed -e "$SLIPWAY_DEFINER_SED" >"$in"
if ! tail -c 512 "$in" | grep -q '^-- Dump completed'; then
	rm -f "$in"
	echo "the dump is incomplete (it does not end with mariadb-dump's \"-- Dump completed\" line), nothing was changed" >&2
	exit 65
fi
m -e "DROP DATABASE IF EXISTS $(q $scratch); CREATE DATABASE $(q $scratch)"
if ! m --one-database "$scratch" <"$in" 2>/tmp/slipway-restore.err; then
	m -e "DROP DATABASE IF EXISTS $(q $scratch)" || true
	rm -f "$in"
	echo "the dump does not load, nothing was changed: $(errtail)" >&2
	exit 65
fi
m -e "DROP DATABASE $(q $scratch)"
mariadb-dump --no-defaults --socket=/run/addon/mysqld.sock --user="$SLIPWAY_ADMIN_USER" ` + strings.Join(mysqlDumpArgs, " ") + ` "$SLIPWAY_DB" >"$prev" || { rm -f "$in" "$prev"; echo "the current data could not be saved, nothing was changed" >&2; exit 1; }
touch "$swap"
m -e "DROP DATABASE $(q "$SLIPWAY_DB"); CREATE DATABASE $(q "$SLIPWAY_DB")"
if ! m --one-database "$SLIPWAY_DB" <"$in" 2>/tmp/slipway-restore.err; then
	err=$(errtail)
	rm -f "$in"
	if putback; then back="the previous data was loaded again"; else back="THE PREVIOUS DATA COULD NOT BE LOADED AGAIN; it is kept in the data directory as slipway-previous.sql"; fi
	echo "loading the dump failed ($err); $back" >&2
	exit 1
fi
rm -f "$swap" "$in" "$prev"
`

func (m *mysql) Restore(ctx context.Context, d runtime.Driver, id string, a Addon, r io.Reader) error {
	env := mysqlEnv(a)
	env["SLIPWAY_DEFINER_SED"] = mysqlDefinerSed(a)
	return run(ctx, d, id, a, env, r, nil, "/bin/sh", "-c", mysqlRestoreScript, "mariadb-restore")
}

// mysqlDefinerSed is the sed script that gives a dump's views, triggers,
// routines and events to a's app user: it rewrites DEFINER=`u`@`h` on
// the lines where mariadb-dump writes definers (versioned comments
// "/*!5...", and "CREATE DEFINER=" of routines), never on its data lines
// (INSERT INTO ...).
func mysqlDefinerSed(a Addon) string {
	const definer = "DEFINER=`[^`]*`@`[^`]*`"
	to := "DEFINER=`" + a.User + "`@`%`"
	return "/^\\/\\*!/s/" + definer + "/" + to + "/g\n/^CREATE DEFINER=/s/" + definer + "/" + to + "/"
}

// mysqlSnapshotScript copies the running server's files with
// mariadb-backup into the data directory, prepares the copy (applies the
// redo log: a consistent data directory a server starts on as it is) and
// writes it to standard output as a tar; the copy is removed in any case.
const mysqlSnapshotScript = `set -eu
umask 077
dir=/data/slipway-snapshot
rm -rf "$dir"
trap 'rm -rf "$dir"' EXIT
mariadb-backup --no-defaults --backup --target-dir="$dir" --datadir=/data/mysql --socket=/run/addon/mysqld.sock --user="$SLIPWAY_ADMIN_USER" >&2 2>/tmp/slipway-backup.log || { tail -n 5 /tmp/slipway-backup.log >&2; exit 1; }
mariadb-backup --no-defaults --prepare --target-dir="$dir" >/tmp/slipway-prepare.log 2>&1 || { tail -n 5 /tmp/slipway-prepare.log >&2; exit 1; }
tar -C "$dir" -cf - .
`

// Snapshot is a prepared copy of the data files (mariadb-backup): the
// data directory needs room for one more copy of the data meanwhile.
func (m *mysql) Snapshot(ctx context.Context, d runtime.Driver, id string, a Addon, w io.Writer) error {
	return run(ctx, d, id, a, mysqlEnv(a), nil, w, "/bin/sh", "-c", mysqlSnapshotScript, "mariadb-backup")
}

func (m *mysql) RestoreSnapshot(ctx context.Context, d runtime.Driver, a Addon, r io.Reader) error {
	if a.Driver == driverDocker {
		return swapInVolume(ctx, TypeMySQL, d, a, swapped[TypeMySQL], r, func(names map[string]bool) error {
			if !names["mysql"] {
				return errors.New("engine: the snapshot is not a MariaDB data directory (no mysql database)")
			}
			if !names["ibdata1"] {
				return errors.New("engine: the snapshot is not a MariaDB data directory (no ibdata1)")
			}
			return nil
		}, "")
	}
	return swapIn(a, swapped[TypeMySQL], r, func(dir string) error {
		if fi, err := os.Stat(filepath.Join(dir, "mysql")); err != nil || !fi.IsDir() {
			return errors.New("engine: the snapshot is not a MariaDB data directory (no mysql database)")
		}
		if _, err := os.Stat(filepath.Join(dir, "ibdata1")); err != nil {
			return errors.New("engine: the snapshot is not a MariaDB data directory (no ibdata1)")
		}
		return nil
	})
}

// Check lists the base tables of DBName with their columns, then counts
// their rows in one query.
func (m *mysql) Check(ctx context.Context, d runtime.Driver, id string, a Addon) (Check, error) {
	list := `SET SESSION group_concat_max_len = 1048576;
SELECT c.TABLE_NAME, GROUP_CONCAT(CONCAT(c.COLUMN_NAME, ' ', c.COLUMN_TYPE) ORDER BY c.ORDINAL_POSITION SEPARATOR ', ')
FROM information_schema.COLUMNS c JOIN information_schema.TABLES t ON t.TABLE_SCHEMA = c.TABLE_SCHEMA AND t.TABLE_NAME = c.TABLE_NAME
WHERE c.TABLE_SCHEMA = DATABASE() AND t.TABLE_TYPE = 'BASE TABLE'
GROUP BY c.TABLE_NAME ORDER BY c.TABLE_NAME;`
	var out bytes.Buffer
	if err := run(ctx, d, id, a, mysqlEnv(a), strings.NewReader(list), &out, mysqlTool(a, "mariadb", "-N", "-B", a.DBName)...); err != nil {
		return Check{}, err
	}
	c := Check{Counts: map[string]int64{}, Schema: map[string]string{}}
	var tables []string
	for _, line := range strings.Split(out.String(), "\n") {
		if line == "" {
			continue
		}
		name, cols, ok := strings.Cut(line, "\t")
		if !ok {
			return Check{}, fmt.Errorf("engine: unexpected check output %q", line)
		}
		name = unescapeBatch(name)
		c.Schema[name] = unescapeBatch(cols)
		tables = append(tables, name)
	}
	if len(tables) == 0 {
		return c, nil
	}
	var q strings.Builder
	for i, t := range tables {
		if i > 0 {
			q.WriteString("\nUNION ALL ")
		}
		fmt.Fprintf(&q, "SELECT %d, COUNT(*) FROM `%s`", i, strings.ReplaceAll(t, "`", "``"))
	}
	q.WriteString(";\n")
	out.Reset()
	if err := run(ctx, d, id, a, mysqlEnv(a), strings.NewReader(q.String()), &out, mysqlTool(a, "mariadb", "-N", "-B", a.DBName)...); err != nil {
		return Check{}, err
	}
	for _, line := range strings.Split(out.String(), "\n") {
		if line == "" {
			continue
		}
		i, n, ok := strings.Cut(line, "\t")
		idx, err1 := strconv.Atoi(i)
		count, err2 := strconv.ParseInt(n, 10, 64)
		if !ok || err1 != nil || err2 != nil || idx < 0 || idx >= len(tables) {
			return Check{}, fmt.Errorf("engine: unexpected row count %q", line)
		}
		c.Counts[tables[idx]] = count
	}
	if len(c.Counts) != len(tables) {
		return Check{}, fmt.Errorf("engine: %d row counts for %d tables", len(c.Counts), len(tables))
	}
	return c, nil
}

// unescapeBatch undoes the mariadb client's batch-mode escaping.
func unescapeBatch(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	return strings.NewReplacer(`\\`, `\`, `\t`, "\t", `\n`, "\n", `\0`, "\x00").Replace(s)
}

func (m *mysql) Credentials(a Addon) (secrets, envs map[string]string) {
	host := LinkPath(a)
	sock := host + "/mysqld.sock"
	uri := func(user, pass string) string {
		u := url.URL{Scheme: "mysql", User: url.UserPassword(user, pass), Host: "localhost", Path: "/" + a.DBName, RawQuery: "socket=" + url.QueryEscape(sock)}
		return u.String()
	}
	jdbc := func(user, pass string) string {
		// MariaDB Connector/J reaches a socket with localSocket.
		q := url.Values{"localSocket": {sock}, "user": {user}, "password": {pass}}
		return "jdbc:mariadb://localhost:" + strconv.Itoa(mysqlPort) + "/" + a.DBName + "?" + q.Encode()
	}
	secrets = map[string]string{
		"PASSWORD":             a.Password,
		"ADMIN_PASSWORD":       a.AdminPassword,
		"MYSQL_URI":            uri(a.User, a.Password),
		"MYSQL_URI_ADMIN":      uri(a.AdminUser, a.AdminPassword),
		"JDBC_MYSQL_URI":       jdbc(a.User, a.Password),
		"JDBC_MYSQL_URI_ADMIN": jdbc(a.AdminUser, a.AdminPassword),
	}
	envs = map[string]string{
		"HOST":           host,
		"PORT":           strconv.Itoa(mysqlPort),
		"DATABASE":       a.DBName,
		"USERNAME":       a.User,
		"ADMIN_USERNAME": a.AdminUser,
		"SOCKET":         sock,
	}
	tlsEnvs(a, envs)
	return secrets, envs
}
