package engine

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/slipwayhq/slipway/pkg/runtime/docker"
	"github.com/slipwayhq/slipway/pkg/testenv"
)

// TestRecoverSwap: the rules recoverSwap settles an interrupted swap
// with, on plain files: <name> missing and <name>.old there puts .old
// back; both there removes .old; a .restore left over goes; a settled
// directory is left alone.
func TestRecoverSwap(t *testing.T) {
	for _, c := range []struct {
		name       string
		before     []string // entries of the data directory, each with its own name as content
		want       []string // entries after
		wantInData string   // what "data" holds after
	}{
		{"between the renames", []string{"data.old", "data.restore"}, []string{"data"}, "data.old"},
		{"swap completed", []string{"data", "data.old"}, []string{"data"}, "data"},
		{"unpacking cut short", []string{"data", "data.restore"}, []string{"data"}, "data"},
		{"settled", []string{"data", "other.old"}, []string{"data", "other.old"}, "data"},
		{"first start", nil, nil, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, n := range c.before {
				if err := os.Mkdir(filepath.Join(dir, n), 0o700); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dir, n, "f"), []byte(n), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if err := recoverSwap(dir, "data"); err != nil {
				t.Fatal(err)
			}
			if got := dirNames(t, dir); !slices.Equal(got, c.want) {
				t.Fatalf("entries %q, want %q", got, c.want)
			}
			if c.wantInData != "" {
				if b, err := os.ReadFile(filepath.Join(dir, "data", "f")); err != nil || string(b) != c.wantInData {
					t.Fatalf("data holds %q (%v), want %q's", b, err, c.wantInData)
				}
			}
		})
	}
	if err := recoverSwap("relative", "data"); err == nil {
		t.Fatal("a relative data directory was accepted")
	}
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

// TestInterruptedSwap: a snapshot restore killed between its swap's two
// renames leaves pgdata.old and no pgdata (and maybe a pgdata.restore);
// the next start must run on the previous data, not initdb an empty
// cluster. A swap killed after both renames leaves pgdata.old next to
// the new pgdata: the start runs on pgdata and removes the old copy.
// Process driver, a real PostgreSQL with rows.
func TestInterruptedSwap(t *testing.T) {
	e, _ := Get(TypePostgreSQL)
	d := testDriver(t)
	a := testAddon(t, e, "process")
	id := startAddon(t, d, e, a)
	appPsql(t, d, id, a, pgSeed)
	want := check(t, e, d, id, a)
	stopAddon(t, d, id)

	pg := filepath.Join(a.DataDir, "pgdata")
	// Killed between the renames, with an unpacked snapshot that looks
	// like a data directory.
	if err := os.Rename(pg, pg+".old"); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(pg+".restore", 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(pg+".restore", "PG_VERSION"), []byte("15\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	id = startAddon(t, d, e, a)
	wantEqual(t, want, check(t, e, d, id, a))
	for _, n := range []string{pg + ".old", pg + ".restore"} {
		if _, err := os.Lstat(n); !os.IsNotExist(err) {
			t.Fatalf("%s after the start: %v", filepath.Base(n), err)
		}
	}
	stopAddon(t, d, id)

	// Killed after both renames: the copy of the previous data is left.
	if err := os.Mkdir(pg+".old", 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(pg+".old", "PG_VERSION"), []byte("15\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	id = startAddon(t, d, e, a)
	wantEqual(t, want, check(t, e, d, id, a))
	if _, err := os.Lstat(pg + ".old"); !os.IsNotExist(err) {
		t.Fatalf("pgdata.old after the start: %v", err)
	}
}

// TestDockerInterruptedSwap is TestInterruptedSwap on the docker driver
// (against Podman): the same states, made inside the named volume by a
// helper container (as a helper killed during swapInVolume's commit
// leaves them), then a start.
func TestDockerInterruptedSwap(t *testing.T) {
	host := testenv.Podman(t)
	d, err := docker.New(host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	e, _ := Get(TypePostgreSQL)
	versions := e.Info("process").Versions
	if len(versions) == 0 {
		t.Fatal("no PostgreSQL on this machine to build an image of")
	}
	a := testAddon(t, e, "docker")
	a.Version = versions[0]
	a.Image = testenv.BuildHostImage(t, host, "localhost/slipway-host-"+TypePostgreSQL+":"+a.Version, hostImagePaths(t, TypePostgreSQL, a.Version)...)
	// Runs after the servers' cleanups (registered later).
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = RemoveData(ctx, d, a)
	})

	id := startAddon(t, d, e, a)
	appPsql(t, d, id, a, pgSeed)
	want := check(t, e, d, id, a)
	stopAddon(t, d, id)

	inVolume := func(script string) {
		t.Helper()
		if err := runHelper(ctxT(t), TypePostgreSQL, d, a, DefaultRunAs, "set -eu\n"+script, nil); err != nil {
			t.Fatal(err)
		}
	}
	entries := func(id string) []string {
		t.Helper()
		return strings.Fields(execIn(t, d, id, nil, "", "ls", "-A", DataMount))
	}

	// Killed between the renames.
	inVolume(`mv /data/pgdata /data/pgdata.old
mkdir /data/pgdata.restore
echo 15 >/data/pgdata.restore/PG_VERSION
`)
	id = startAddon(t, d, e, a)
	wantEqual(t, want, check(t, e, d, id, a))
	if got := entries(id); slices.Contains(got, "pgdata.old") || slices.Contains(got, "pgdata.restore") {
		t.Fatalf("the volume after the start: %q", got)
	}
	stopAddon(t, d, id)

	// Killed after both renames.
	inVolume(`mkdir /data/pgdata.old
echo 15 >/data/pgdata.old/PG_VERSION
`)
	id = startAddon(t, d, e, a)
	wantEqual(t, want, check(t, e, d, id, a))
	if got := entries(id); slices.Contains(got, "pgdata.old") {
		t.Fatalf("the volume after the start: %q", got)
	}
	stopAddon(t, d, id)
	if list, err := d.List(ctxT(t), map[string]string{LabelAddon: a.ID, LabelRole: RoleHelper}); err != nil || len(list) != 0 {
		t.Fatalf("helpers left: %+v %v", list, err)
	}
}
