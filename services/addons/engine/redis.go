package engine

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/slipwayhq/slipway/pkg/runtime"
)

// Redis: redis-server with its data in DataMount (RDB snapshots to
// dump.rdb, no append-only file), listening on the socket
// RunMount/redis.sock (mode 0777) and on TCP 6379 (Spec port "db"). Two
// ACL users: "default", the app's, with Password and every command but
// DEBUG; and AdminUser with AdminPassword and every command, which
// Slipway's tools use (REDISCLI_AUTH in the Exec's environment). The
// configuration file, passwords included, is written by the server's
// script to its private /tmp, never to a command line.
//
// Dump and Snapshot are both the RDB file, streamed by redis-cli --rdb -
// (a consistent point-in-time copy, made by the server's fork).
//
// Restore loads an RDB without a restart: the RDB is written to the data
// directory and checked with redis-check-rdb (a corrupted one is refused
// before anything changes); automatic saves are paused, the current data
// is saved (SAVE) and kept aside, the new file takes dump.rdb's place and
// DEBUG RELOAD NOSAVE loads it (DEBUG is enabled for local connections,
// and only the admin user may run it). If the load fails, the previous
// file is put back and loaded again. A restore interrupted half-way (its
// Exec cancelled, Slipway killed) has failed: the server keeps the data
// it had in memory, does not save while saves are paused, and its next
// start (or the next Restore) puts the set-aside file back as dump.rdb.
// RestoreSnapshot (server stopped) writes the RDB as dump.rdb, loaded at
// the next start.
type redis struct {
	versions func() []string
}

const redisPort = 6379

// redisSave are the server's save points (its configuration, and what a
// restore, which pauses them, sets again).
const redisSave = "3600 1 300 100 60 10000"

func init() {
	register(&redis{versions: sync.OnceValue(func() []string {
		v := hostVersion("redis-server", regexp.MustCompile(`v=([0-9]+\.[0-9]+)\.`), "--version")
		if v == "" {
			return nil
		}
		return []string{v}
	})})
}

func (r *redis) Type() string { return TypeRedis }

func (r *redis) Info(driver string) TypeInfo {
	versions := r.versions()
	if driver == driverDocker {
		versions = DockerVersions[TypeRedis]
	}
	return TypeInfo{
		Type:        TypeRedis,
		Name:        "Redis",
		Description: "Redis, the in-memory key-value store, persisted with RDB snapshots.",
		Versions:    slices.Clone(versions),
		Major:       majors(versions),
		Features:    Features{BackupsDump: true, ForkAddon: true, ImportDump: true, TLS: true, ExternalAccess: true},
		BackupTypes: []string{BackupDump, BackupSnapshot},
	}
}

const redisScript = nssPrelude + `set -eu
umask 077
{
	echo 'dir /data'
	echo 'dbfilename dump.rdb'
	echo 'appendonly no'
	echo 'save ` + redisSave + `'
	if [ "${SLIPWAY_TLS:-}" = 1 ]; then
		# TCP takes TLS only; the socket stays plain. No client
		# certificates: clients authenticate with passwords.
		echo 'port 0'
		echo 'tls-port 6379'
		echo "tls-cert-file $SLIPWAY_TLS_DIR/server.crt"
		echo "tls-key-file $SLIPWAY_TLS_DIR/server.key"
		echo "tls-ca-cert-file $SLIPWAY_TLS_DIR/ca.crt"
		echo 'tls-auth-clients no'
		echo 'tls-protocols "TLSv1.2 TLSv1.3"'
	else
		echo 'port 6379'
	fi
	echo 'bind * -::*'
	echo 'protected-mode no'
	echo 'unixsocket /run/addon/redis.sock'
	echo 'unixsocketperm 777'
	echo 'enable-debug-command local'
	echo 'daemonize no'
	echo 'logfile ""'
	echo "maxmemory $SLIPWAY_MAXMEMORY"
	echo 'maxmemory-policy noeviction'
	printf 'user default on >%s ~* &* +@all -debug\n' "$SLIPWAY_PASSWORD"
	printf 'user %s on >%s ~* &* +@all\n' "$SLIPWAY_ADMIN_USER" "$SLIPWAY_ADMIN_PASSWORD"
} >/tmp/slipway-redis.conf
# A restore that was interrupted (see redisRestoreScript) failed: the data
# it had set aside is the data.
rm -f /data/slipway-incoming.rdb
if [ -e /data/slipway-previous.rdb ]; then mv /data/slipway-previous.rdb /data/dump.rdb; fi
exec redis-server /tmp/slipway-redis.conf
`

func (r *redis) Spec(a Addon) (runtime.Spec, error) {
	if err := validate(a, false, false); err != nil {
		return runtime.Spec{}, err
	}
	if err := checkVersion(r, a); err != nil {
		return runtime.Spec{}, err
	}
	env := map[string]string{
		"SLIPWAY_ADMIN_USER":     a.AdminUser,
		"SLIPWAY_ADMIN_PASSWORD": a.AdminPassword,
		"SLIPWAY_PASSWORD":       a.Password,
		// Three quarters of the memory limit, so that a full Redis
		// refuses writes (noeviction) instead of being killed; no
		// limit without one.
		"SLIPWAY_MAXMEMORY": strconv.FormatInt(memoryShare(a, 4, 0, 0)*3, 10) + "mb",
	}
	return baseSpec(a, DefaultImage(TypeRedis, a.Version), basePath, redisScript, env, []runtime.Port{{Name: "db", Port: redisPort}})
}

// redisEnv is the environment of Slipway's redis-cli: the admin's
// password (the user is on its command line, see redisCLI).
func redisEnv(a Addon) map[string]string {
	return map[string]string{"REDISCLI_AUTH": a.AdminPassword, "SLIPWAY_ADMIN_USER": a.AdminUser}
}

func redisCLI(a Addon, args ...string) []string {
	return append([]string{"redis-cli", "-s", RunMount + "/redis.sock", "--user", a.AdminUser, "--no-auth-warning"}, args...)
}

func (r *redis) Ready(ctx context.Context, d runtime.Driver, id string, a Addon) error {
	out, err := output(ctx, d, id, a, redisEnv(a), redisCLI(a, "ping")...)
	if err != nil {
		return err
	}
	if strings.TrimSpace(out) != "PONG" {
		return fmt.Errorf("engine: redis answered %q to PING", redact(a, strings.TrimSpace(out)))
	}
	return nil
}

func (r *redis) Dump(ctx context.Context, d runtime.Driver, id string, a Addon, w io.Writer) error {
	return run(ctx, d, id, a, redisEnv(a), nil, w, redisCLI(a, "--rdb", "-")...)
}

// redisRestoreScript loads the RDB on its standard input (see the type's
// doc); its errors name what failed.
const redisRestoreScript = `set -eu
umask 077
r() { redis-cli -s /run/addon/redis.sock --user "$SLIPWAY_ADMIN_USER" --no-auth-warning "$@"; }
in=/data/slipway-incoming.rdb prev=/data/slipway-previous.rdb
cat >"$in"
if ! redis-check-rdb "$in" >/tmp/slipway-check.log 2>&1; then
	rm -f "$in"
	echo "the RDB file is not valid: $(sed -n '/RDB ERROR DETECTED/,$p' /tmp/slipway-check.log | sed -n '2,3p' | tr '\n' ' ')" >&2
	exit 65
fi
# An earlier restore interrupted after it set the data aside: put it back.
if [ -e "$prev" ]; then
	[ -e /data/dump.rdb ] || mv "$prev" /data/dump.rdb
	rm -f "$prev"
fi
r CONFIG SET save "" >/dev/null
restore_save() { r CONFIG SET save "` + redisSave + `" >/dev/null; }
n=0
while r INFO persistence | grep -q '^rdb_bgsave_in_progress:1'; do
	n=$((n+1)); [ $n -lt 600 ] || { restore_save; rm -f "$in"; echo "a background save did not end" >&2; exit 1; }
	sleep 0.1
done
ok=$(r SAVE)
if [ "$ok" != OK ]; then restore_save; rm -f "$in"; echo "saving the current data failed: $ok" >&2; exit 1; fi
mv /data/dump.rdb "$prev"
mv "$in" /data/dump.rdb
ok=$(r DEBUG RELOAD NOSAVE 2>&1) || true
if [ "$ok" != OK ]; then
	mv "$prev" /data/dump.rdb
	back=$(r DEBUG RELOAD NOSAVE 2>&1) || true
	restore_save
	echo "loading the RDB file failed ($ok); the previous data was loaded again ($back)" >&2
	exit 1
fi
rm -f "$prev"
restore_save
`

func (r *redis) Restore(ctx context.Context, d runtime.Driver, id string, a Addon, rd io.Reader) error {
	return run(ctx, d, id, a, redisEnv(a), rd, nil, "/bin/sh", "-c", redisRestoreScript, "redis-restore")
}

func (r *redis) Snapshot(ctx context.Context, d runtime.Driver, id string, a Addon, w io.Writer) error {
	return r.Dump(ctx, d, id, a, w)
}

// RestoreSnapshot writes the RDB as the data directory's dump.rdb, once
// it is complete and starts like an RDB file (on docker, in a helper
// container, see restoreInVolume, where redis-check-rdb checks it too).
func (r *redis) RestoreSnapshot(ctx context.Context, d runtime.Driver, a Addon, rd io.Reader) error {
	if a.Driver == driverDocker {
		return restoreInVolume(ctx, TypeRedis, d, a, rd, feedPrefixed("REDIS", "an RDB file"),
			`set -eu
umask 077
cat >/data/dump.rdb.restore
if ! redis-check-rdb /data/dump.rdb.restore >/tmp/slipway-check.log 2>&1; then
	echo "the RDB file is not valid: $(sed -n '/RDB ERROR DETECTED/,$p' /tmp/slipway-check.log | sed -n '2,3p' | tr '\n' ' ')" >&2
	exit 65
fi
`,
			"set -eu\nmv /data/dump.rdb.restore /data/dump.rdb\n",
			"rm -f /data/dump.rdb.restore")
	}
	if err := prepareDirs(a); err != nil {
		return err
	}
	tmp := filepath.Join(a.DataDir, "dump.rdb.restore")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("engine: %w", err)
	}
	br := bufio.NewReader(rd)
	head, _ := br.Peek(5)
	if !bytes.Equal(head, []byte("REDIS")) {
		f.Close()
		os.Remove(tmp)
		return errors.New("engine: the snapshot is not an RDB file")
	}
	_, err = io.Copy(f, br)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && a.Driver == driverDocker {
		uid, gid := runAs(a)
		err = os.Chown(tmp, uid, gid)
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(a.DataDir, "dump.rdb"))
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("engine: %w", err)
	}
	return nil
}

var redisKeyspace = regexp.MustCompile(`^(db[0-9]+):keys=([0-9]+),`)

func (r *redis) Check(ctx context.Context, d runtime.Driver, id string, a Addon) (Check, error) {
	out, err := output(ctx, d, id, a, redisEnv(a), redisCLI(a, "INFO", "keyspace")...)
	if err != nil {
		return Check{}, err
	}
	c := Check{Counts: map[string]int64{}}
	for _, l := range strings.Split(out, "\n") {
		if m := redisKeyspace.FindStringSubmatch(strings.TrimSpace(l)); m != nil {
			n, _ := strconv.ParseInt(m[2], 10, 64)
			c.Counts[m[1]] = n
		}
	}
	if !strings.Contains(out, "# Keyspace") {
		return Check{}, fmt.Errorf("engine: unexpected INFO keyspace answer %q", redact(a, lastLines(out, 2)))
	}
	return c, nil
}

func (r *redis) Credentials(a Addon) (secrets, envs map[string]string) {
	sock := LinkPath(a) + "/redis.sock"
	secrets = map[string]string{
		"PASSWORD": a.Password,
		// go-redis, redis-py and ioredis take unix:// URLs.
		"REDIS_MASTER_URL": "unix://:" + a.Password + "@" + sock,
	}
	envs = map[string]string{
		"HOST":     LinkPath(a),
		"PORT":     strconv.Itoa(redisPort),
		"USERNAME": "default",
		"SOCKET":   sock,
	}
	tlsEnvs(a, envs)
	return secrets, envs
}
