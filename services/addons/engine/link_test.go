package engine

import (
	"context"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	goredis "github.com/redis/go-redis/v9"

	"github.com/slipwayhq/slipway/pkg/runtime"
	"github.com/slipwayhq/slipway/pkg/runtime/runtimetest"
)

// linkedJob runs script as a job would run linked to a: another sandboxed
// workload (its own user and private network) with the addon's socket
// directory mounted read-only at LinkPath and the credentials in its
// environment. It returns the job's output, failing the test unless it
// exits 0.
func linkedJob(t *testing.T, d runtime.Driver, e Engine, a Addon, script string) string {
	return linkedJobIn(t, d, e, a, "", script)
}

// linkedJobIn is linkedJob in a container of image (on the docker
// driver), as another user than the server's, when image is not empty.
func linkedJobIn(t *testing.T, d runtime.Driver, e Engine, a Addon, image, script string) string {
	t.Helper()
	secrets, envs := e.Credentials(a)
	env := maps.Clone(envs)
	maps.Copy(env, secrets)
	env["PATH"] = basePath
	env["HOME"] = "/tmp"
	spec := runtime.Spec{
		Name:    "job-" + a.ID + "-" + e.Type(),
		Command: []string{"/bin/sh", "-c", "set -eu\n" + script},
		Env:     env,
		Mounts:  []runtime.Mount{LinkMount(a)},
	}
	if image != "" {
		spec.Image, spec.User = image, "4321:4321"
		// PostgreSQL images keep the clients with the server.
		env["PATH"] = "/usr/lib/postgresql/" + a.Version + "/bin:" + basePath
	}
	id := runtimetest.Start(t, d, spec)
	t.Cleanup(func() { _ = d.Remove(context.Background(), id) })
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	st, err := d.Wait(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	lines := runtimetest.Logs(t, d, id, false)
	out := strings.Join(runtimetest.Texts(t, lines, "stdout"), "\n")
	if st.ExitCode != 0 {
		t.Fatalf("the linked job exited %d:\n%s\n%s", st.ExitCode, out, strings.Join(runtimetest.Texts(t, lines, "stderr"), "\n"))
	}
	return out
}

// readOnlyProbe fails the job unless the socket directory is read-only.
const readOnlyProbe = `if touch "$HOST/x" 2>/dev/null; then echo "the socket directory is writable"; exit 9; fi
`

// linkScripts connect a linked job to each type's addon with the
// credentials: PostgreSQL's prints the admin's name and 3, Redis's
// "hello", MySQL's 2; each writes what Check then counts.
var linkScripts = map[string]string{
	TypePostgreSQL: readOnlyProbe + `
psql -X -q -v ON_ERROR_STOP=1 "$POSTGRES_URI" -c 'CREATE TABLE visits (n int)' -c 'INSERT INTO visits VALUES (1), (2), (3)'
psql -X -A -t "$POSTGRES_URI_ADMIN" -c 'SELECT current_user'
PGPASSWORD="$PASSWORD" psql -X -A -t -h "$HOST" -p "$PORT" -U "$USERNAME" -d "$DATABASE" -c 'SELECT count(*) FROM visits'
`,
	TypeRedis: readOnlyProbe + `
export REDISCLI_AUTH="$PASSWORD"
redis-cli -s "$SOCKET" SET greeting hello >/dev/null
redis-cli -s "$SOCKET" GET greeting
`,
	TypeMySQL: readOnlyProbe + `
export MYSQL_PWD="$PASSWORD"
mariadb --no-defaults --socket="$SOCKET" --user="$USERNAME" "$DATABASE" -e 'CREATE TABLE visits (n INT); INSERT INTO visits VALUES (1), (2)'
mariadb --no-defaults --socket="$SOCKET" --user="$USERNAME" -N -B "$DATABASE" -e 'SELECT COUNT(*) FROM visits'
if MYSQL_PWD= mariadb --no-defaults --socket="$SOCKET" --user=root -e 'SELECT 1' 2>/dev/null; then echo "root logged in"; exit 9; fi
`,
}

// TestLinkedWorkload: a second sandboxed workload (the process driver's
// default private network, which cannot reach the host's loopback)
// reaches each addon through its socket directory mounted read-only,
// with nothing but the values of Credentials.
func TestLinkedWorkload(t *testing.T) {
	d := testDriver(t)

	t.Run("postgresql", func(t *testing.T) {
		e, _ := Get(TypePostgreSQL)
		a := testAddon(t, e, "process")
		id := startAddon(t, d, e, a)
		out := linkedJob(t, d, e, a, linkScripts[TypePostgreSQL])
		if want := a.AdminUser + "\n3"; out != want {
			t.Fatalf("job output %q, want %q", out, want)
		}
		if c := check(t, e, d, id, a); c.Counts["public.visits"] != 3 {
			t.Fatalf("check %+v", c)
		}
	})

	t.Run("redis", func(t *testing.T) {
		e, _ := Get(TypeRedis)
		a := testAddon(t, e, "process")
		id := startAddon(t, d, e, a)
		out := linkedJob(t, d, e, a, linkScripts[TypeRedis])
		if out != "hello" {
			t.Fatalf("job output %q", out)
		}
		if c := check(t, e, d, id, a); c.Counts["db0"] != 1 {
			t.Fatalf("check %+v", c)
		}
		// The URL is one Redis clients take for a socket.
		secrets, envs := e.Credentials(a)
		o, err := goredis.ParseURL(secrets["REDIS_MASTER_URL"])
		if err != nil || o.Network != "unix" || o.Addr != envs["SOCKET"] || o.Password != a.Password {
			t.Fatalf("REDIS_MASTER_URL: %+v %v", o, err)
		}
	})

	t.Run("mysql", func(t *testing.T) {
		e, _ := Get(TypeMySQL)
		a := testAddon(t, e, "process")
		id := startAddon(t, d, e, a)
		out := linkedJob(t, d, e, a, linkScripts[TypeMySQL])
		if out != "2" {
			t.Fatalf("job output %q", out)
		}
		if c := check(t, e, d, id, a); c.Counts["visits"] != 2 {
			t.Fatalf("check %+v", c)
		}
	})
}

// TestCredentialKeys: each type gives Northflank's keys, passwords only
// among the secrets.
func TestCredentialKeys(t *testing.T) {
	for typ, want := range map[string][2][]string{
		TypePostgreSQL: {{"ADMIN_PASSWORD", "JDBC_POSTGRES_URI", "JDBC_POSTGRES_URI_ADMIN", "PASSWORD", "POSTGRES_URI", "POSTGRES_URI_ADMIN"}, {"ADMIN_USERNAME", "DATABASE", "HOST", "PORT", "SOCKET", "USERNAME"}},
		TypeRedis:      {{"PASSWORD", "REDIS_MASTER_URL"}, {"HOST", "PORT", "SOCKET", "USERNAME"}},
		TypeMySQL:      {{"ADMIN_PASSWORD", "JDBC_MYSQL_URI", "JDBC_MYSQL_URI_ADMIN", "MYSQL_URI", "MYSQL_URI_ADMIN", "PASSWORD"}, {"ADMIN_USERNAME", "DATABASE", "HOST", "PORT", "SOCKET", "USERNAME"}},
	} {
		e, _ := Get(typ)
		a := testAddon(t, e, "process")
		secrets, envs := e.Credentials(a)
		if got := strings.Join(sortedKeys(secrets), ","); got != strings.Join(want[0], ",") {
			t.Errorf("%s secrets %s", typ, got)
		}
		if got := strings.Join(sortedKeys(envs), ","); got != strings.Join(want[1], ",") {
			t.Errorf("%s envs %s", typ, got)
		}
		for k, v := range envs {
			if strings.Contains(v, a.Password) || strings.Contains(v, a.AdminPassword) {
				t.Errorf("%s env %s holds a password", typ, k)
			}
		}
		if envs["HOST"] != LinkRoot+"/"+a.ID {
			t.Errorf("%s HOST %q", typ, envs["HOST"])
		}
		if typ == TypePostgreSQL {
			// pgx takes the URI for the socket (psql does, see
			// TestLinkedWorkload).
			c, err := pgx.ParseConfig(secrets["POSTGRES_URI"])
			if err != nil || c.Host != envs["HOST"] || c.Port != 5432 || c.User != a.User || c.Password != a.Password || c.Database != a.DBName {
				t.Errorf("POSTGRES_URI for pgx: %+v %v", c, err)
			}
		}
	}
}

func sortedKeys(m map[string]string) []string { return slices.Sorted(maps.Keys(m)) }
