package main

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/slipwayhq/slipway/pkg/component"
	"github.com/slipwayhq/slipway/pkg/httpserver"
)

// Every component's database and address settings are documented once, as
// a pattern row of the README's configuration table.
const (
	databasePattern = "SLIPWAY_<COMPONENT>_DATABASE_URL"
	addrPattern     = "SLIPWAY_<COMPONENT>_ADDR"
)

// TestREADMEConfigTable keeps the README's configuration table and the
// binary's settings, read off the component table, the same set
// (deploy/ checks compose against the component table).
func TestREADMEConfigTable(t *testing.T) {
	data, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]string{}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "| `SLIPWAY_") {
			cells := strings.Split(line, "|")
			rows[strings.Trim(cells[1], " `")] = strings.Trim(cells[2], " `")
		}
	}
	want := map[string]string{
		databasePattern: "--<component>-database-url",
		addrPattern:     "--<component>-addr",
	}
	generated := map[string]bool{}
	for _, c := range table {
		generated[component.DatabaseSetting(c).Env] = true
		generated[component.AddrSetting(c).Env] = true
	}
	for _, s := range settings() {
		if !generated[s.Env] {
			want[s.Env] = "--" + s.Flag
		}
	}
	for env, flag := range want {
		if got, ok := rows[env]; !ok {
			t.Errorf("%s is not in the README's configuration table", env)
		} else if got != flag {
			t.Errorf("README gives %s the flag %q, the binary %s", env, got, flag)
		}
		delete(rows, env)
	}
	for env := range rows {
		t.Errorf("README documents %s, which the binary does not read", env)
	}
}

func TestParseConfig(t *testing.T) {
	t.Setenv("SLIPWAY_HTTP_ADDR", "127.0.0.1:1234")
	t.Setenv("SLIPWAY_LOG_FORMAT", "json")
	c, err := parseConfig("serve", []string{"--target=projects", "--data-dir", "/tmp/x", "--internal-key", strings.Repeat("k", 32)})
	if err != nil {
		t.Fatal(err)
	}
	if c.get("http-addr") != "127.0.0.1:1234" || c.target() != "projects" || c.get("log-format") != "json" || c.get("grpc-addr") != "" {
		t.Fatalf("config = %+v", c)
	}
	projects, _ := table.Get("projects")
	if got := c.database(projects); got != "sqlite:/tmp/x/projects.db" {
		t.Fatalf("default projects database %q", got)
	}
	for _, bad := range [][]string{{"--target=nope"}, {"--log-format=xml"}, {"--log-level=loud"}, {"extra"}, {"--unknown"},
		{"--target=projects"}, {"--rate-limit-per-hour=0"}, {"--rate-limit-plans=free"}, {"--runtime-driver=vm"},
		{"--encryption-key=short"}, {"--oauth-secret=short"}, {"--http-read-timeout=0s"}, {"--http-write-timeout=soon"},
		{"--http-idle-timeout=-1m"}, {"--http-read-header-timeout=5"}, {"--http-max-connections=0"}, {"--http-max-connections=many"}} {
		if _, err := parseConfig("serve", bad); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

// TestTable checks the component table itself: names, dependencies and
// settings that do not collide.
func TestTable(t *testing.T) {
	if err := table.Validate(); err != nil {
		t.Fatal(err)
	}
	byEnv := map[string]string{}
	for _, s := range settings() {
		if other, ok := byEnv[s.Env]; ok && other != s.Flag {
			t.Errorf("%s is the variable of both --%s and --%s", s.Env, other, s.Flag)
		}
		byEnv[s.Env] = s.Flag
		if s.Env != "SLIPWAY_"+strings.ToUpper(strings.ReplaceAll(s.Flag, "-", "_")) {
			t.Errorf("--%s has the variable %s", s.Flag, s.Env)
		}
	}
}

// TestHTTPLimits: the http-* settings reach the server's limits; their
// defaults are httpserver's.
func TestHTTPLimits(t *testing.T) {
	c, err := parseConfig("serve", nil)
	if err != nil {
		t.Fatal(err)
	}
	l := c.httpLimits()
	want := httpserver.DefaultLimits()
	if l != want {
		t.Fatalf("default limits %+v, want httpserver's %+v", l, want)
	}
	c, err = parseConfig("serve", []string{"--http-read-header-timeout=1s", "--http-read-timeout=2s", "--http-write-timeout=3s",
		"--http-idle-timeout=4m", "--http-max-connections=50"})
	if err != nil {
		t.Fatal(err)
	}
	want = httpserver.Limits{ReadHeaderTimeout: time.Second, ReadTimeout: 2 * time.Second, WriteTimeout: 3 * time.Second,
		IdleTimeout: 4 * time.Minute, MaxConnections: 50}
	if l := c.httpLimits(); l != want {
		t.Fatalf("limits %+v, want %+v", l, want)
	}
}
