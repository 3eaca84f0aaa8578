package engine

import (
	"archive/tar"
	"bytes"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/slipwayhq/slipway/pkg/runtime"
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
// image's non-root user, its data on a named volume (nothing of it on the
// host) and its socket directory a bind mount: start, write, dump, wipe,
// restore, check; the TCP port is published on the host's loopback. The
// data outlives the container; a snapshot restores into the volume (and
// into a verification instance's fresh volume) through helper
// containers, a bad one changes nothing; RemoveData removes the volume.
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
			// The data is the named volume, labelled as the addon's.
			if v, err := d.InspectVolume(ctxT(t), a.Volume); err != nil || v.Labels[LabelAddon] != a.ID || v.Labels[LabelRole] != RoleServer {
				t.Fatalf("data volume %+v %v", v, err)
			}
			if _, err := os.Stat(a.DataDir); !os.IsNotExist(err) {
				t.Fatalf("a data directory on the host: %v", err)
			}
			if !slices.ContainsFunc(spec.Mounts, func(m runtime.Mount) bool { return m.Volume == a.Volume && m.Target == DataMount && m.Source == "" }) {
				t.Fatalf("mounts %+v, want the volume at %s", spec.Mounts, DataMount)
			}
			if out := execIn(t, d, id, nil, "", "stat", "-c", "%u %a", DataMount); strings.TrimSpace(out) != "999 700" {
				t.Fatalf("the volume's root: %q, want the server's, 0700", out)
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

			// The data stays in the volume across a new container.
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
			wiped := check(t, e, d, id, a)
			stopAddon(t, d, id)
			// Bad snapshots change nothing.
			evil := func() []byte {
				var b bytes.Buffer
				tw := tar.NewWriter(&b)
				_ = tw.WriteHeader(&tar.Header{Name: "../evil", Typeflag: tar.TypeReg, Mode: 0o600})
				_ = tw.Close()
				return b.Bytes()
			}()
			for _, bad := range [][]byte{[]byte("not a snapshot"), evil, snap.Bytes()[:snap.Len()/2]} {
				if err := e.RestoreSnapshot(ctxT(t), d, a, bytes.NewReader(bad)); err == nil {
					t.Fatalf("a bad snapshot (%d bytes) was restored", len(bad))
				}
			}
			id = startAddon(t, d, e, a)
			wantEqual(t, wiped, check(t, e, d, id, a))
			stopAddon(t, d, id)
			if err := e.RestoreSnapshot(ctxT(t), d, a, bytes.NewReader(snap.Bytes())); err != nil {
				t.Fatal(err)
			}
			id = startAddon(t, d, e, a)
			wantEqual(t, want, check(t, e, d, id, a))

			// A verification instance: a fresh volume of its own, the
			// snapshot restored into it before it starts.
			sv := testAddon(t, e, "docker")
			sv.ID, sv.Verify, sv.Version, sv.Image = a.ID, true, a.Version, a.Image
			sv.Volume = VerifyVolume(a.ID, "b1")
			sv.AdminUser, sv.AdminPassword, sv.User, sv.Password = a.AdminUser, a.AdminPassword, a.User, a.Password
			if err := PrepareData(ctxT(t), e, d, sv); err != nil {
				t.Fatal(err)
			}
			if err := e.RestoreSnapshot(ctxT(t), d, sv, bytes.NewReader(snap.Bytes())); err != nil {
				t.Fatal(err)
			}
			svid := startAddon(t, d, e, sv)
			wantEqual(t, want, check(t, e, d, svid, sv))
			stopAddon(t, d, svid)
			stopAddon(t, d, id)

			// No helper is left, and RemoveData removes the volumes.
			if list, err := d.List(ctxT(t), map[string]string{LabelAddon: a.ID}); err != nil || len(list) != 0 {
				t.Fatalf("containers left: %+v %v", list, err)
			}
			for _, x := range []Addon{a, sv} {
				if err := RemoveData(ctxT(t), d, x); err != nil {
					t.Fatal(err)
				}
				if _, err := d.InspectVolume(ctxT(t), x.Volume); !errors.Is(err, runtime.ErrNotFound) {
					t.Fatalf("volume %s after RemoveData: %v", x.Volume, err)
				}
			}
			if list, err := d.ListVolumes(ctxT(t), map[string]string{LabelAddon: a.ID}); err != nil || len(list) != 0 {
				t.Fatalf("volumes left: %+v %v", list, err)
			}
		})
	}
}
