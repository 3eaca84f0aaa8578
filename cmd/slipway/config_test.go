package main

import (
	"os"
	"strings"
	"testing"
)

// TestREADMEConfigTable keeps the README's configuration table and the
// binary's settings the same set (deploy/ checks compose against the table).
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
	for _, s := range settings {
		if flag, ok := rows[s.env]; !ok {
			t.Errorf("%s is not in the README's configuration table", s.env)
		} else if flag != "--"+s.flag {
			t.Errorf("README gives %s the flag %q, the binary --%s", s.env, flag, s.flag)
		}
		delete(rows, s.env)
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
	if c.HTTPAddr != "127.0.0.1:1234" || c.Target != "projects" || c.LogFormat != "json" || c.GRPCAddr != "127.0.0.1:9090" {
		t.Fatalf("config = %+v", c)
	}
	if got := c.projectsDatabase(); got != "sqlite:/tmp/x/projects.db" {
		t.Fatalf("default projects database %q", got)
	}
	for _, bad := range [][]string{{"--target=nope"}, {"--log-format=xml"}, {"--log-level=loud"}, {"extra"}, {"--unknown"},
		{"--target=projects"}, {"--rate-limit-per-hour=0"}, {"--rate-limit-plans=free"}} {
		if _, err := parseConfig("serve", bad); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}
