package engine

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slipwayhq/slipway/pkg/runtime"
	"github.com/slipwayhq/slipway/pkg/runtime/process"
)

// testDriver is a process driver of its own for one test, closed at its
// end (after the workloads' cleanups, registered later, ran).
func testDriver(t *testing.T) *process.Driver {
	t.Helper()
	d, err := process.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// testAddon is an addon of typ with generated credentials and fresh
// directories, for driver.
func testAddon(t *testing.T, e Engine, driver string) Addon {
	t.Helper()
	gen := func(f func() (string, error)) string {
		s, err := f()
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	root := t.TempDir()
	id := strings.ToLower(gen(func() (string, error) { return GenerateUser("t") }))
	a := Addon{
		ID: id, Project: "p1", Name: "db-" + id,
		DBName:        "appdb",
		AdminUser:     gen(func() (string, error) { return GenerateUser("admin_") }),
		AdminPassword: gen(GeneratePassword),
		User:          gen(func() (string, error) { return GenerateUser("app_") }),
		Password:      gen(GeneratePassword),
		DataDir:       filepath.Join(root, "data"),
		RunDir:        filepath.Join(root, "run"),
		Volume:        ServerVolume(id),
		TLSDir:        filepath.Join(root, "tls"),
		Driver:        driver,
	}
	info := e.Info(driver)
	if len(info.Versions) == 0 {
		t.Fatalf("%s: no version can run on the %s driver here", e.Type(), driver)
	}
	a.Version = info.Versions[0]
	return a
}

// startAddon starts a's server and waits until it is ready; the test's
// end stops and removes it.
func startAddon(t *testing.T, d runtime.Driver, e Engine, a Addon) string {
	t.Helper()
	if err := PrepareData(ctxT(t), e, d, a); err != nil {
		t.Fatal(err)
	}
	spec, err := e.Spec(a)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	id, err := d.Start(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = d.Stop(ctx, id, 10*time.Second)
		_, _ = d.Wait(ctx, id)
		_ = d.Remove(ctx, id)
	})
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	if err := WaitReady(ctx, e, d, id, a); err != nil {
		logs(t, d, id)
		t.Fatal(err)
	}
	return id
}

// stopAddon stops a server (for a snapshot's restore) and removes it.
func stopAddon(t *testing.T, d runtime.Driver, id string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := d.Stop(ctx, id, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Wait(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := d.Remove(ctx, id); err != nil {
		t.Fatal(err)
	}
}

func logs(t *testing.T, d runtime.Driver, id string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for l, err := range d.Logs(ctx, id, false) {
		if err != nil {
			break
		}
		t.Logf("server %s: %s", l.Stream, l.Text)
	}
}

// execIn runs command in the workload with env, failing the test unless
// it exits 0, and returns its output.
func execIn(t *testing.T, d runtime.Driver, id string, env map[string]string, stdin string, command ...string) string {
	t.Helper()
	var out, errOut bytes.Buffer
	spec := runtime.ExecSpec{Command: command, Env: env, Stdout: &out, Stderr: &errOut}
	if stdin != "" {
		spec.Stdin = strings.NewReader(stdin)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	code, err := d.Exec(ctx, id, spec)
	if err != nil || code != 0 {
		t.Fatalf("%v: exit %d, %v\n%s%s", command, code, err, out.String(), errOut.String())
	}
	return out.String()
}

func check(t *testing.T, e Engine, d runtime.Driver, id string, a Addon) Check {
	t.Helper()
	c, err := e.Check(ctxT(t), d, id, a)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func dump(t *testing.T, e Engine, d runtime.Driver, id string, a Addon) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := e.Dump(ctxT(t), d, id, a, &b); err != nil {
		t.Fatal(err)
	}
	if b.Len() == 0 {
		t.Fatal("empty dump")
	}
	return b.Bytes()
}

func wantEqual(t *testing.T, want, got Check) {
	t.Helper()
	if !want.Equal(got) {
		t.Fatalf("check differs: %s\nwant %+v\ngot  %+v", want.Diff(got), want, got)
	}
}

// corrupt is a dump with its second half replaced by garbage.
func corrupt(dump []byte) []byte {
	b := bytes.Clone(dump)
	for i := len(b) / 2; i < len(b); i++ {
		b[i] = byte(i * 7)
	}
	return b
}

func TestCheckDiff(t *testing.T) {
	a := Check{Counts: map[string]int64{"public.t": 3, "public.u": 1}, Schema: map[string]string{"public.t": "id integer", "public.u": "x text"}}
	b := Check{Counts: map[string]int64{"public.t": 2, "public.v": 1}, Schema: map[string]string{"public.t": "id integer", "public.v": "x text"}}
	if a.Equal(b) || !a.Equal(a) {
		t.Fatal("Equal is wrong")
	}
	if got, want := a.Diff(b), "public.t has 2, expected 3; public.u is missing; public.v is unexpected"; got != want {
		t.Fatalf("Diff = %q, want %q", got, want)
	}
	if got := a.Summary(); got != "2 tables, 4 rows" {
		t.Fatalf("Summary = %q", got)
	}
}

func TestGeneratePassword(t *testing.T) {
	p1, err := GeneratePassword()
	if err != nil {
		t.Fatal(err)
	}
	p2, _ := GeneratePassword()
	if p1 == p2 || len(p1) != 32 || !safePass.MatchString(p1) {
		t.Fatalf("passwords %q %q", p1, p2)
	}
	u, _ := GenerateUser("app_")
	if !safeName.MatchString(u) || !strings.HasPrefix(u, "app_") || len(u) != 12 {
		t.Fatalf("user %q", u)
	}
}

func TestRegistry(t *testing.T) {
	var types []string
	for _, e := range All() {
		types = append(types, e.Type())
		if got, ok := Get(e.Type()); !ok || got != e {
			t.Fatalf("Get(%q)", e.Type())
		}
	}
	if got := strings.Join(types, ","); got != "mysql,postgresql,redis" {
		t.Fatalf("types %s", got)
	}
	if _, ok := Get("mongodb"); ok {
		t.Fatal("mongodb is not an engine")
	}
}

// TestSpecRefusesUnsafeValues: names and passwords go into command lines,
// configuration and SQL, so only a safe alphabet is accepted.
func TestSpecRefusesUnsafeValues(t *testing.T) {
	for _, e := range All() {
		good := testAddon(t, e, "process")
		for name, mut := range map[string]func(*Addon){
			"db name":  func(a *Addon) { a.DBName = `x"; DROP` },
			"user":     func(a *Addon) { a.User = "a b" },
			"password": func(a *Addon) { a.Password = "it's" },
			"id":       func(a *Addon) { a.ID = "../x" },
			"version":  func(a *Addon) { a.Version = "0.1" },
			"driver":   func(a *Addon) { a.Driver = "kubernetes" },
		} {
			a := good
			mut(&a)
			if e.Type() == TypeRedis && (name == "db name" || name == "user") {
				continue // Redis has no database, and its app user is "default"
			}
			if _, err := e.Spec(a); err == nil {
				t.Errorf("%s: Spec accepted a bad %s", e.Type(), name)
			}
		}
	}
}

// TestVerifyNames: a verification instance's workload has the verify
// role and a name of its own each time, so that two can run at once.
func TestVerifyNames(t *testing.T) {
	e, _ := Get(TypeRedis)
	a := testAddon(t, e, "process")
	a.Verify = true
	s1, err := e.Spec(a)
	if err != nil {
		t.Fatal(err)
	}
	s2, _ := e.Spec(a)
	if s1.Name == s2.Name || !strings.HasPrefix(s1.Name, "addon-"+a.ID+"-verify-") || s1.Labels[LabelRole] != RoleVerify || len(s1.Ports) != 0 {
		t.Fatalf("verify specs %q %q %v %v", s1.Name, s2.Name, s1.Labels, s1.Ports)
	}
	a.Verify = false
	s3, _ := e.Spec(a)
	// The whole command line is Slipway's: an image's entrypoint is
	// replaced, not handed the script.
	if len(s3.Entrypoint) != 2 || s3.Entrypoint[0] != "/bin/sh" || s3.Entrypoint[1] != "-c" || len(s3.Command) != 2 {
		t.Fatalf("entrypoint %q command %d", s3.Entrypoint, len(s3.Command))
	}
	if s3.Name != "addon-"+a.ID || s3.Labels[LabelRole] != RoleServer || s3.Labels[LabelAddon] != a.ID || s3.Labels[LabelProject] != a.Project || len(s3.Ports) != 1 {
		t.Fatalf("server spec %q %v %v", s3.Name, s3.Labels, s3.Ports)
	}
}

func TestUntarRefusesEscapes(t *testing.T) {
	for name, tarball := range map[string][]byte{
		"dotdot":   tarOf(t, "../evil", "x"),
		"absolute": tarOf(t, "/evil", "x"),
	} {
		dir := t.TempDir()
		if err := untar(bytes.NewReader(tarball), dir); err == nil {
			t.Errorf("%s: untar accepted it", name)
		}
	}
	if err := untar(bytes.NewReader(nil), t.TempDir()); err == nil {
		t.Error("an empty archive was accepted")
	}
}

func tarOf(t *testing.T, name, content string) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o600, Size: int64(len(content))}); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write([]byte(content)); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func isToolError(err error) bool {
	var te *ToolError
	return errors.As(err, &te)
}
