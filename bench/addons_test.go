//go:build linux

package bench

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/slipwayhq/slipway/pkg/testenv"
	"github.com/slipwayhq/slipway/services/addons/engine"
)

var (
	addonCreates  = flag.Int("bench.addoncreates", 3, "addons created (create → running) per type and runtime driver")
	addonPlan     = flag.String("bench.addonplan", "nf-compute-100-1", "deployment plan of the addons whose start is measured")
	addonMaxTime  = flag.Duration("bench.addonmaxtime", 3*time.Minute, "time cap on one type's creates on one driver: no new create starts past it")
	addonDumpMB   = flag.Int("bench.dumpmb", 100, "size of the PostgreSQL database dumped and restored, in MB (pg_database_size)")
	addonDumpRuns = flag.Int("bench.dumpruns", 3, "rounds of (pg_dump by hand, Slipway's dump backup, pg_restore by hand, Slipway's restore) per driver")
	addonCompress = flag.String("bench.dumpcompression", "", "compressionType of the measured backups (empty: the API's default, gz)")
	addonProfile  = flag.String("bench.dumpprofile", "", "directory to write the server's CPU profiles of the first round's backup and restore to (<driver>-backup.pprof, <driver>-restore.pprof; empty: none)")
	addonDumpPlan = flag.String("bench.dumpplan", "nf-compute-200", "deployment plan of the dumped PostgreSQL addon (nf-compute-200: 2 CPUs, all this machine has, so the plan's CPU limit does not hold back Slipway's side)")
)

// addonPoll is how often a GET watches an addon, a backup or a restore:
// the resolution of the figures.
const addonPoll = 20 * time.Millisecond

// addonTimeout bounds one wait: an addon to run or go, a backup, its
// verification or a restore of the ~100 MB database.
const addonTimeout = 5 * time.Minute

// addonTypes are the types measured, in order.
var addonTypes = []string{engine.TypePostgreSQL, engine.TypeRedis, engine.TypeMySQL}

// addonDriver is one runtime driver an addons benchmark runs on.
type addonDriver struct {
	name string
	// setup returns the server's extra environment and the version each
	// type is created with.
	setup func(b *testing.B) (env []string, versions map[string]string)
}

// addonDrivers are the process driver (the host's server binaries in the
// sandbox, version "latest": the newest the host has) and the docker
// driver on a private Podman service, with an image per type built from
// the host's binaries (testenv.BuildHostImage: no registry is reachable)
// named by SLIPWAY_ADDON_IMAGE_*, and the host's version of each type.
// types limits the images built to the types used.
func addonDrivers(types ...string) []addonDriver {
	return []addonDriver{
		{"process", func(*testing.B) ([]string, map[string]string) {
			v := map[string]string{}
			for _, typ := range types {
				v[typ] = "latest"
			}
			return []string{"SLIPWAY_RUNTIME_DRIVER=process"}, v
		}},
		{"docker", func(b *testing.B) ([]string, map[string]string) {
			host := testenv.Podman(b)
			env := []string{"SLIPWAY_RUNTIME_DRIVER=docker", "SLIPWAY_DOCKER_HOST=" + host}
			v := map[string]string{}
			for _, typ := range types {
				version := hostVersion(b, typ)
				image := testenv.BuildHostImage(b, host, "localhost/slipway-bench-"+typ+":"+version, hostImagePaths(b, typ, version)...)
				env = append(env, "SLIPWAY_ADDON_IMAGE_"+strings.ToUpper(typ)+"="+image)
				v[typ] = version
			}
			return env, v
		}},
	}
}

// hostVersion is the newest version of typ this machine's binaries
// provide (what the process driver runs as "latest").
func hostVersion(b *testing.B, typ string) string {
	e, ok := engine.Get(typ)
	if !ok {
		b.Fatalf("no engine %s", typ)
	}
	v := e.Info("process").Versions
	if len(v) == 0 {
		b.Fatalf("no %s server on this machine", typ)
	}
	return v[0]
}

// hostImagePaths are the host files an image of typ's server needs
// (testenv.BuildHostImage adds their libraries); the same lists as the
// engine's docker tests.
func hostImagePaths(b *testing.B, typ, version string) []string {
	switch typ {
	case engine.TypePostgreSQL:
		return []string{"/usr/lib/postgresql/" + version, "/usr/share/postgresql/" + version, "/usr/share/zoneinfo"}
	case engine.TypeRedis:
		return []string{"/usr/bin/redis-server", "/usr/bin/redis-cli", "/usr/bin/redis-check-rdb"}
	case engine.TypeMySQL:
		return []string{"/usr/sbin/mariadbd", "/usr/bin/mariadb-install-db", "/usr/bin/mariadb", "/usr/bin/mariadb-admin", "/usr/bin/mariadb-dump",
			"/usr/bin/my_print_defaults", "/usr/bin/resolveip", "/usr/bin/mariadb-backup", "/usr/share/mysql", "/usr/lib/mysql/plugin"}
	}
	b.Fatalf("no image for %s", typ)
	return nil
}

// BenchmarkAddonCreate measures how long a new addon takes to run, per
// runtime driver and type: from just before POST
// /v1/projects/{project}/addons until a GET of the addon shows status
// "running" (the engine's readiness probe passed: initdb or
// mariadb-install-db on an empty data directory, then the server's start).
// Addons are created one at a time; each is deleted, and gone (GET 404),
// before the next create, unmeasured.
func BenchmarkAddonCreate(b *testing.B) {
	for _, d := range addonDrivers(addonTypes...) {
		b.Run(d.name, func(b *testing.B) {
			env, versions := d.setup(b)
			srv := startServer(b, "", env...)
			project := srv.createProject(b, "Addon bench")
			for _, typ := range addonTypes {
				b.Run(typ, func(b *testing.B) {
					var took []time.Duration
					capAt := time.Now().Add(*addonMaxTime)
					b.ResetTimer()
					for i := 1; i <= *addonCreates && time.Now().Before(capAt); i++ {
						name := fmt.Sprintf("%s-%d", typ, i)
						t0 := time.Now()
						id, err := srv.createAddon(project, name, typ, versions[typ], *addonPlan, false)
						if err == nil {
							err = srv.waitAddonRunning(project, id)
						}
						dt := time.Since(t0)
						if err != nil {
							b.Fatalf("%s: %v\n%s", name, err, srv.logTail())
						}
						took = append(took, dt)
						b.StopTimer()
						if err := srv.deleteAddon(project, id); err != nil {
							b.Fatal(err)
						}
						b.StartTimer()
					}
					b.StopTimer()
					b.ReportMetric(float64(len(took)), "addons")
					b.ReportMetric(ms(percentile(took, 50)), "running-p50-ms")
					b.ReportMetric(ms(percentile(took, 100)), "running-max-ms")
				})
			}
		})
	}
}

// BenchmarkAddonDump measures a dump backup and a restore of a PostgreSQL
// addon holding ~-bench.dumpmb MB (pg_database_size) through the API,
// each against the same work done by hand with the host's pg_dump and
// pg_restore on the same server, with the same data, through the
// addon's external access (its TCP port published on 127.0.0.1).
//
// Per round, in this order, each step starting once the previous one is
// over (the backup's verification included), so no two compete for CPU:
//
//   - by hand: `pg_dump -Fc` to a file;
//   - Slipway: POST …/backups {"backupType":"dump"} until GET shows
//     "completed" (the source's check, pg_dump -Fc in the workload,
//     gzip, the checksum, the object store), and from there until the
//     verification is "verified" (a throwaway instance, the dump restored
//     into it, its check compared with the source's);
//   - by hand: `pg_restore` of the by-hand dump into the addon with the
//     flags Slipway uses (--clean --if-exists --no-owner --role=<app
//     user> --single-transaction --exit-on-error);
//   - Slipway: POST …/backups/{id}/restore until the restore is
//     "completed" (the file fetched, its checksum checked, decompressed,
//     pg_restore in the workload).
//
// Ratios are of the medians: Slipway / by hand. Filling the database is
// not measured.
func BenchmarkAddonDump(b *testing.B) {
	for _, bin := range []string{"psql", "pg_dump", "pg_restore"} {
		if _, err := exec.LookPath(bin); err != nil {
			b.Fatalf("%s: %v", bin, err)
		}
	}
	for _, d := range addonDrivers(engine.TypePostgreSQL) {
		b.Run(d.name, func(b *testing.B) {
			env, versions := d.setup(b)
			debugAddr := ""
			if *addonProfile != "" {
				debugAddr = fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(b))
				env = append(env, "SLIPWAY_DEBUG_ADDR="+debugAddr)
			}
			// profile profiles the server for about what took the by-hand
			// tool, in the background; the returned function waits for it.
			profile := func(round int, name string, hand time.Duration) func() {
				if debugAddr == "" || round != 1 {
					return func() {}
				}
				done := make(chan error, 1)
				go func() {
					done <- cpuProfileFor(debugAddr, filepath.Join(*addonProfile, d.name+"-"+name+".pprof"), max(1, int(hand.Seconds())))
				}()
				return func() {
					if err := <-done; err != nil {
						b.Fatalf("CPU profile: %v", err)
					}
				}
			}
			srv := startServer(b, "", env...)
			project := srv.createProject(b, "Dump bench")
			id, err := srv.createAddon(project, "big-db", engine.TypePostgreSQL, versions[engine.TypePostgreSQL], *addonDumpPlan, true)
			if err == nil {
				err = srv.waitAddonRunning(project, id)
			}
			if err != nil {
				b.Fatalf("%v\n%s", err, srv.logTail())
			}
			addon := "/v1/projects/" + project + "/addons/" + id
			conn := srv.pgConn(b, addon)
			size := fillPostgres(b, conn)

			dir := b.TempDir()
			var handDump, handRestore, dump, verify, restore []time.Duration
			var checkStep, dumpStep, fetchStep, restoreStep []time.Duration
			var dumpSize, backupSize int64
			b.ResetTimer()
			for i := 1; i <= *addonDumpRuns; i++ {
				file := filepath.Join(dir, fmt.Sprintf("hand-%d.dump", i))
				dt, err := pgTool(conn.admin, "pg_dump", "-Fc", "--no-password", "-f", file)
				if err != nil {
					b.Fatal(err)
				}
				handDump = append(handDump, dt)
				if fi, err := os.Stat(file); err == nil {
					dumpSize = fi.Size()
				}

				profiled := profile(i, "backup", dt)
				t0 := time.Now()
				var started struct{ Data struct{ ID string } }
				if err := srv.call("POST", addon+"/backups", fmt.Sprintf(`{"backupType":"dump","compressionType":%q}`, *addonCompress), &started); err != nil {
					b.Fatal(err)
				}
				bk, completed, verified, err := srv.waitBackup(addon, started.Data.ID, t0)
				if err != nil {
					b.Fatalf("%v\n%s", err, srv.logTail())
				}
				profiled()
				dump, verify = append(dump, completed), append(verify, verified-completed)
				backupSize, _ = strconv.ParseInt(bk.Config.Size, 10, 64)
				steps, err := srv.logSteps(addon+"/backups/"+started.Data.ID+"/logs", "checking what", "source: ", "stored ")
				if err != nil {
					b.Fatal(err)
				}
				checkStep, dumpStep = append(checkStep, steps[0]), append(dumpStep, steps[1])
				if err := srv.waitAddonRunning(project, id); err != nil {
					b.Fatal(err)
				}

				dt, err = pgTool(conn.admin, "pg_restore", "--no-password", "-d", conn.db, "--clean", "--if-exists", "--no-owner",
					"--role="+conn.user, "--single-transaction", "--exit-on-error", file)
				if err != nil {
					b.Fatal(err)
				}
				handRestore = append(handRestore, dt)

				profiled = profile(i, "restore", dt)
				t0 = time.Now()
				var r struct {
					Data struct {
						RestoreID string `json:"restoreId"`
					}
				}
				if err := srv.call("POST", addon+"/backups/"+started.Data.ID+"/restore", "", &r); err != nil {
					b.Fatal(err)
				}
				if err := srv.waitRestore(addon, r.Data.RestoreID); err != nil {
					b.Fatalf("%v\n%s", err, srv.logTail())
				}
				restore = append(restore, time.Since(t0))
				profiled()
				steps, err = srv.logSteps(addon+"/backups/"+started.Data.ID+"/restores/"+r.Data.RestoreID+"/logs",
					"fetching backup", "restoring the dump", "restore completed")
				if err != nil {
					b.Fatal(err)
				}
				fetchStep, restoreStep = append(fetchStep, steps[0]), append(restoreStep, steps[1])
				if err := srv.waitAddonRunning(project, id); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(len(restore)), "rounds")
			b.ReportMetric(float64(size)/1e6, "db-MB")
			b.ReportMetric(float64(dumpSize)/1e6, "pg_dump-MB")
			b.ReportMetric(float64(backupSize)/1e6, "backup-MB")
			b.ReportMetric(ms(percentile(handDump, 50)), "pg_dump-p50-ms")
			b.ReportMetric(ms(percentile(dump, 50)), "backup-p50-ms")
			b.ReportMetric(ms(percentile(verify, 50)), "verify-p50-ms")
			b.ReportMetric(ms(percentile(checkStep, 50)), "backup-check-p50-ms")
			b.ReportMetric(ms(percentile(dumpStep, 50)), "backup-dump-p50-ms")
			b.ReportMetric(ms(percentile(handRestore, 50)), "pg_restore-p50-ms")
			b.ReportMetric(ms(percentile(fetchStep, 50)), "restore-fetch-p50-ms")
			b.ReportMetric(ms(percentile(restoreStep, 50)), "restore-pg_restore-p50-ms")
			b.ReportMetric(ms(percentile(restore, 50)), "restore-p50-ms")
			b.ReportMetric(float64(percentile(dump, 50))/float64(percentile(handDump, 50)), "backup/pg_dump")
			b.ReportMetric(float64(percentile(verify, 50))/float64(percentile(handRestore, 50)), "verify/pg_restore")
			b.ReportMetric(float64(percentile(restore, 50))/float64(percentile(handRestore, 50)), "restore/pg_restore")
		})
	}
}

// cpuProfileFor writes the CPU profile of the next seconds seconds of
// the server whose profiler listens at addr to path.
func cpuProfileFor(addr, path string, seconds int) error {
	res, err := http.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, seconds))
	if err != nil {
		return err
	}
	defer res.Body.Close()
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(f, res.Body)
	return err
}

// createProject creates a project and returns its id.
func (s *server) createProject(b *testing.B, name string) string {
	var p struct{ Data struct{ ID string } }
	if err := s.call("POST", "/v1/projects", fmt.Sprintf(`{"name":%q}`, name), &p); err != nil || p.Data.ID == "" {
		b.Fatalf("create project: %v (id %q)", err, p.Data.ID)
	}
	return p.Data.ID
}

// createAddon creates an addon (1 replica, 1 GiB of storage) and returns
// its id. External access needs TLS (Northflank's rule), so external
// turns both on.
func (s *server) createAddon(project, name, typ, version, plan string, external bool) (string, error) {
	var a struct{ Data struct{ ID string } }
	body := fmt.Sprintf(`{"name":%q,"type":%q,"version":%q,"externalAccessEnabled":%t,"tlsEnabled":%t,
		"billing":{"deploymentPlan":%q,"storage":1024,"replicas":1}}`, name, typ, version, external, external, plan)
	if err := s.call("POST", "/v1/projects/"+project+"/addons", body, &a); err != nil {
		return "", fmt.Errorf("create addon %s: %w", name, err)
	}
	if a.Data.ID == "" {
		return "", fmt.Errorf("create addon %s: no id in the response", name)
	}
	return a.Data.ID, nil
}

// waitAddonRunning polls the addon until its status is "running"; a
// "failed" addon, or addonTimeout, is an error.
func (s *server) waitAddonRunning(project, id string) error {
	deadline := time.Now().Add(addonTimeout)
	for {
		var a struct {
			Data struct {
				Status        string `json:"status"`
				StatusMessage string `json:"statusMessage"`
			}
		}
		if err := s.call("GET", "/v1/projects/"+project+"/addons/"+id, "", &a); err != nil {
			return err
		}
		switch a.Data.Status {
		case "running":
			return nil
		case "failed":
			return fmt.Errorf("addon %s failed: %s", id, a.Data.StatusMessage)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("addon %s not running after %v: %s", id, addonTimeout, a.Data.Status)
		}
		time.Sleep(addonPoll)
	}
}

// deleteAddon deletes an addon and waits until GET answers 404 (its
// workloads stopped and its data removed).
func (s *server) deleteAddon(project, id string) error {
	path := "/v1/projects/" + project + "/addons/" + id
	if err := s.call("DELETE", path, "", nil); err != nil {
		return err
	}
	deadline := time.Now().Add(addonTimeout)
	for {
		err := s.call("GET", path, "", nil)
		if err != nil && strings.Contains(err.Error(), "404") {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("addon %s still there %v after its deletion (%v)", id, addonTimeout, err)
		}
		time.Sleep(addonPoll)
	}
}

// benchBackup is what the benchmark reads of a backup.
type benchBackup struct {
	Status        string `json:"status"`
	StatusMessage string `json:"statusMessage"`
	Config        struct {
		Size string `json:"size"`
	} `json:"config"`
	Verification struct {
		Status  string `json:"status"`
		Message string `json:"message"`
	} `json:"verification"`
}

// waitBackup polls a backup until it is completed and verified, and
// returns it with the times, from t0, at which a GET first showed each.
func (s *server) waitBackup(addon, id string, t0 time.Time) (benchBackup, time.Duration, time.Duration, error) {
	var completed time.Duration
	deadline := time.Now().Add(addonTimeout)
	for {
		var got struct{ Data benchBackup }
		if err := s.call("GET", addon+"/backups/"+id, "", &got); err != nil {
			return got.Data, 0, 0, err
		}
		elapsed := time.Since(t0)
		bk := got.Data
		switch {
		case bk.Status == "completed" && completed == 0:
			completed = elapsed
		case bk.Status != "in-progress" && bk.Status != "completed":
			return bk, 0, 0, fmt.Errorf("backup %s ended %s: %s", id, bk.Status, bk.StatusMessage)
		}
		switch bk.Verification.Status {
		case "verified":
			if completed != 0 {
				return bk, completed, elapsed, nil
			}
		case "pending":
		default:
			return bk, 0, 0, fmt.Errorf("backup %s: verification %s: %s", id, bk.Verification.Status, bk.Verification.Message)
		}
		if time.Now().After(deadline) {
			return bk, 0, 0, fmt.Errorf("backup %s not completed and verified after %v: %s, %s", id, addonTimeout, bk.Status, bk.Verification.Status)
		}
		time.Sleep(addonPoll)
	}
}

// waitRestore polls the addon's restores until restore id is completed;
// any other end is an error.
func (s *server) waitRestore(addon, id string) error {
	deadline := time.Now().Add(addonTimeout)
	for {
		var got struct {
			Data struct {
				Restores []struct {
					ID            string `json:"id"`
					Status        string `json:"status"`
					StatusMessage string `json:"statusMessage"`
				} `json:"restores"`
			}
		}
		if err := s.call("GET", addon+"/restores", "", &got); err != nil {
			return err
		}
		for _, r := range got.Data.Restores {
			if r.ID != id {
				continue
			}
			switch r.Status {
			case "completed":
				return nil
			case "in-progress":
			default:
				return fmt.Errorf("restore %s ended %s: %s", id, r.Status, r.StatusMessage)
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("restore %s not completed after %v", id, addonTimeout)
		}
		time.Sleep(addonPoll)
	}
}

// logSteps reads the log lines at path (a backup's or a restore's, which
// Slipway writes at each step) and returns the time between the first
// line starting with each of marks and the first starting with the next:
// len(marks)-1 durations.
func (s *server) logSteps(path string, marks ...string) ([]time.Duration, error) {
	var logs struct {
		Data []struct {
			Log string    `json:"log"`
			Ts  time.Time `json:"ts"`
		}
	}
	if err := s.call("GET", path+"?direction=forward", "", &logs); err != nil {
		return nil, err
	}
	at := make([]time.Time, len(marks))
	for _, l := range logs.Data {
		for i, m := range marks {
			if at[i].IsZero() && strings.HasPrefix(l.Log, m) {
				at[i] = l.Ts
			}
		}
	}
	out := make([]time.Duration, 0, len(marks)-1)
	for i := range marks {
		if at[i].IsZero() {
			return nil, fmt.Errorf("%s: no line starting %q in %d lines", path, marks[i], len(logs.Data))
		}
		if i > 0 {
			out = append(out, at[i].Sub(at[i-1]))
		}
	}
	return out, nil
}

// pgConn is how the host's tools reach an addon through its external
// access: libpq environments for the admin and the app user, over TLS
// verified against the addon's CA (external access needs TLS, so the
// by-hand baseline pays for TLS on loopback, which Slipway's own dump
// through the socket does not).
type pgConn struct {
	admin, app []string // PG* variables
	db, user   string
}

// pgConn reads the addon's credentials.
func (s *server) pgConn(b *testing.B, addon string) pgConn {
	var creds struct {
		Data struct {
			Secrets map[string]string `json:"secrets"`
			Envs    map[string]any    `json:"envs"`
		}
	}
	if err := s.call("GET", addon+"/credentials", "", &creds); err != nil {
		b.Fatal(err)
	}
	env := func(k string) string {
		v := creds.Data.Envs[k]
		if v == nil {
			b.Fatalf("no %s in the credentials' envs (external access off?)", k)
		}
		return fmt.Sprint(v)
	}
	host, port, db := env("EXTERNAL_HOST"), env("EXTERNAL_PORT"), env("DATABASE")
	if host != "127.0.0.1" {
		b.Fatalf("external host %q: not loopback", host)
	}
	caFile := filepath.Join(b.TempDir(), "addon-ca.crt")
	if err := os.WriteFile(caFile, []byte(env("TLS_CA_CERT")), 0o644); err != nil {
		b.Fatal(err)
	}
	base := []string{"PGHOST=" + host, "PGPORT=" + port, "PGDATABASE=" + db, "PGCONNECT_TIMEOUT=10",
		"PGSSLMODE=verify-full", "PGSSLROOTCERT=" + caFile}
	return pgConn{
		admin: append(append([]string{}, base...), "PGUSER="+env("ADMIN_USERNAME"), "PGPASSWORD="+creds.Data.Secrets["ADMIN_PASSWORD"]),
		app:   append(append([]string{}, base...), "PGUSER="+env("USERNAME"), "PGPASSWORD="+creds.Data.Secrets["PASSWORD"]),
		db:    db, user: env("USERNAME"),
	}
}

// pgTool runs one of the host's PostgreSQL tools with the libpq
// environment env and returns its wall time.
func pgTool(env []string, name string, args ...string) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), addonTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	t0 := time.Now()
	out, err := cmd.CombinedOutput()
	dt := time.Since(t0)
	if err != nil {
		return 0, fmt.Errorf("%s: %v\n%s", name, err, out)
	}
	return dt, nil
}

// fillRows is how many rows one fill statement adds (~18 MB with the
// primary key's index).
const fillRows = 100_000

// fillPostgres fills the addon's database, as the app user (so that the
// restores, which run as that role, own what they replace), until
// pg_database_size reaches -bench.dumpmb MB, and returns that size. Each
// row has an id (primary key), 96 hex characters (which compress about
// 2:1, like text), an integer and a timestamp.
func fillPostgres(b *testing.B, c pgConn) int64 {
	psql := func(sql string) string {
		ctx, cancel := context.WithTimeout(context.Background(), addonTimeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, "psql", "-X", "-q", "-A", "-t", "--no-password", "-v", "ON_ERROR_STOP=1", "-c", sql)
		cmd.Env = append(os.Environ(), c.app...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			b.Fatalf("psql %q: %v\n%s", sql, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	psql(`CREATE TABLE items (id bigint PRIMARY KEY, payload text NOT NULL, n integer NOT NULL, created timestamptz NOT NULL)`)
	target := int64(*addonDumpMB) * 1e6
	for i := 0; i < 1000; i++ { // bounded: 1000 × 100,000 rows is far past any sensible -bench.dumpmb
		size, err := strconv.ParseInt(psql(`SELECT pg_database_size(current_database())`), 10, 64)
		if err != nil {
			b.Fatal(err)
		}
		if size >= target {
			psql(`VACUUM ANALYZE items`)
			return size
		}
		psql(fmt.Sprintf(`INSERT INTO items SELECT g, md5(g::text) || md5((g * 7)::text) || md5((g * 13)::text), g %% 1000,
			'2026-01-01'::timestamptz + g * interval '1 second' FROM generate_series(%d, %d) g`, i*fillRows+1, (i+1)*fillRows))
	}
	b.Fatalf("the database did not reach %d MB", *addonDumpMB)
	return 0
}
