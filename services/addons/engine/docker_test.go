package engine

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"github.com/slipwayhq/slipway/pkg/runtime/docker"
	"github.com/slipwayhq/slipway/pkg/testenv"
)

// hostImagePaths are what an image of this machine's server binaries
// needs of each type (testenv.BuildHostImage adds their libraries).
func hostImagePaths(t *testing.T, typ, version string) []string {
	switch typ {
	case TypePostgreSQL:
		return []string{"/usr/lib/postgresql/" + version, "/usr/share/postgresql/" + version, "/usr/share/zoneinfo"}
	case TypeRedis:
		return []string{"/usr/bin/redis-server", "/usr/bin/redis-cli", "/usr/bin/redis-check-rdb"}
	case TypeMySQL:
		return []string{"/usr/sbin/mariadbd", "/usr/bin/mariadb-install-db", "/usr/bin/mariadb", "/usr/bin/mariadb-admin", "/usr/bin/mariadb-dump",
			"/usr/bin/my_print_defaults", "/usr/bin/resolveip", "/usr/bin/mariadb-backup", "/usr/share/mysql", "/usr/lib/mysql/plugin"}
	}
	t.Fatalf("no image for %s", typ)
	return nil
}

// TestDocker: on the docker driver (against Podman), each type runs from
// an image of the host's binaries with Slipway's command line, as the
// image's non-root user, its data and socket directories bind mounts:
// start, write, dump, wipe, restore, check; and the TCP port is
// published on the host's loopback.
func TestDocker(t *testing.T) {
	host := testenv.Podman(t)
	d, err := docker.New(host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })

	for _, c := range []struct {
		typ         string
		write, wipe string
		want        func(Check) bool
	}{
		{typ: TypePostgreSQL, write: pgSeed, wipe: "DROP TABLE items; DROP SCHEMA extra CASCADE;",
			want: func(c Check) bool { return c.Counts["public.items"] == 250 && c.Counts["extra.notes"] == 2 }},
		// The linked container's "greeting" makes 101 keys in db0.
		{typ: TypeRedis, write: redisSeed(100), wipe: "FLUSHALL\n",
			want: func(c Check) bool { return c.Counts["db0"] == 101 && c.Counts["db3"] == 2 }},
		{typ: TypeMySQL, write: mysqlSeed, wipe: "DROP VIEW big; DROP TABLE items; DROP TABLE `odd name`;",
			want: func(c Check) bool { return c.Counts["items"] == 250 && c.Counts["odd name"] == 2 }},
	} {
		t.Run(c.typ, func(t *testing.T) {
			e, _ := Get(c.typ)
			hostVersion := e.Info("process").Versions
			if len(hostVersion) == 0 {
				t.Fatalf("no %s on this machine to build an image of", c.typ)
			}
			a := testAddon(t, e, "docker")
			a.Version = hostVersion[0]
			a.Image = testenv.BuildHostImage(t, host, "localhost/slipway-host-"+c.typ+":"+a.Version, hostImagePaths(t, c.typ, a.Version)...)
			spec, err := e.Spec(a)
			if err != nil {
				t.Fatal(err)
			}
			if spec.User != DefaultRunAs || spec.Image != a.Image {
				t.Fatalf("spec user %q image %q", spec.User, spec.Image)
			}
			id := startAddon(t, d, e, a)
			if out := execIn(t, d, id, nil, "", "id", "-u"); strings.TrimSpace(out) != "999" {
				t.Fatalf("the server runs as %q, want 999", out)
			}
			st, err := d.Status(ctxT(t), id)
			if err != nil || !strings.HasPrefix(st.Ports["db"], "127.0.0.1:") {
				t.Fatalf("published port %v %v", st.Ports, err)
			}

			// A linked container (another user, the socket directory
			// read-only) connects with the credentials.
			out := linkedJobIn(t, d, e, a, a.Image, linkScripts[c.typ])
			if want := map[string]string{TypePostgreSQL: a.AdminUser + "\n3", TypeRedis: "hello", TypeMySQL: "2"}[c.typ]; out != want {
				t.Fatalf("linked container: %q, want %q", out, want)
			}

			write := func(sql string) {
				switch c.typ {
				case TypePostgreSQL:
					appPsql(t, d, id, a, sql)
				case TypeRedis:
					appRedis(t, d, id, a, sql)
				case TypeMySQL:
					appMySQL(t, d, id, a, sql)
				}
			}
			write(c.write)
			want := check(t, e, d, id, a)
			if !c.want(want) {
				t.Fatalf("check after writing: %+v", want)
			}
			dumped := dump(t, e, d, id, a)
			write(c.wipe)
			if got := check(t, e, d, id, a); got.Equal(want) {
				t.Fatal("the data did not change")
			}
			if err := e.Restore(ctxT(t), d, id, a, bytes.NewReader(dumped)); err != nil {
				t.Fatal(err)
			}
			wantEqual(t, want, check(t, e, d, id, a))
			if err := e.Restore(ctxT(t), d, id, a, bytes.NewReader(corrupt(dumped))); err == nil {
				t.Fatal("a corrupted dump was restored")
			}
			wantEqual(t, want, check(t, e, d, id, a))

			// The data stays in the bind mount across a new container.
			stopAddon(t, d, id)
			id = startAddon(t, d, e, a)
			wantEqual(t, want, check(t, e, d, id, a))

			// A snapshot, restored with the server stopped, into files
			// the container's user owns.
			if !slices.Contains(e.Info("docker").BackupTypes, BackupSnapshot) {
				return
			}
			var snap bytes.Buffer
			if err := e.Snapshot(ctxT(t), d, id, a, &snap); err != nil {
				t.Fatal(err)
			}
			write(c.wipe)
			stopAddon(t, d, id)
			if err := e.RestoreSnapshot(ctxT(t), a, &snap); err != nil {
				t.Fatal(err)
			}
			id = startAddon(t, d, e, a)
			wantEqual(t, want, check(t, e, d, id, a))
		})
	}
}
