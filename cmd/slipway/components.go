package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/slipwayhq/slipway/gateway"
	"github.com/slipwayhq/slipway/pkg/component"
	"github.com/slipwayhq/slipway/services/addons"
	"github.com/slipwayhq/slipway/services/auth"
	"github.com/slipwayhq/slipway/services/builds"
	"github.com/slipwayhq/slipway/services/deployments"
	"github.com/slipwayhq/slipway/services/jobs"
	"github.com/slipwayhq/slipway/services/projects"
)

// table is Slipway's component table: every component is one row, and
// `serve`, `migrate`, `--target`, the gateway's backends, the settings (and
// the README's table of them), compose's validation and the split-targets
// test all read it. A new service is one folder under services/ with its
// Component, plus one row here.
var table = component.Table{
	auth.Component,
	projects.Component,
	jobs.Component,
	deployments.Component,
	builds.Component,
	addons.Component,
	gateway.Component,
}

// componentsUsage is the help of `slipway components`.
const componentsUsage = `Usage: slipway components [--json]

Lists Slipway's components: what --target can run, what each depends on,
its database and its settings. --json prints the table for tools (the
compose validation and the split-deployment test read it).
`

// components prints the table, as text or as JSON.
func components(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("slipway components", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print JSON")
	fs.Usage = func() { fmt.Fprint(fs.Output(), componentsUsage) }
	if err := fs.Parse(args); err != nil {
		return err
	}
	rows := describeTable()
	if *asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		return enc.Encode(rows)
	}
	for _, r := range rows {
		fmt.Fprintf(out, "%-10s %s\n", r.Name, r.Summary)
		if len(r.Deps) > 0 {
			fmt.Fprintf(out, "%-10s depends on: %s\n", "", strings.Join(r.Deps, ", "))
		}
		for _, s := range r.Settings {
			fmt.Fprintf(out, "%-10s --%s ($%s)\n", "", s.Flag, s.Env)
		}
	}
	return nil
}

// componentRow is a component as `slipway components --json` shows it.
type componentRow struct {
	Name    string   `json:"name"`
	Summary string   `json:"summary"`
	Deps    []string `json:"deps"`
	// Database is the component's database setting; empty without one.
	Database string `json:"databaseEnv,omitempty"`
	// Addr is the setting through which other processes reach its gRPC
	// services; empty when it runs none.
	Addr string `json:"addrEnv,omitempty"`
	// API: whether the gateway serves routes for it, and whether a gateway
	// running apart may go without them.
	API         bool `json:"api"`
	OptionalAPI bool `json:"optionalApi,omitempty"`
	// Exec are its exec channels' WebSocket paths (without the team form),
	// which the route walk of e2e covers: the OpenAPI document has no
	// WebSocket routes.
	Exec     []string      `json:"exec,omitempty"`
	Settings []settingInfo `json:"settings"`
}

type settingInfo struct {
	Flag    string `json:"flag"`
	Env     string `json:"env"`
	Default string `json:"default,omitempty"`
	Help    string `json:"help"`
}

func describeTable() []componentRow {
	var rows []componentRow
	for _, c := range table {
		r := componentRow{Name: c.Name, Summary: c.Summary, Deps: append([]string{}, c.Deps...), API: c.API != nil, OptionalAPI: c.API != nil && c.API.Optional}
		for _, s := range componentSettings(c) {
			r.Settings = append(r.Settings, settingInfo{s.Flag, s.Env, s.Default, s.Help})
		}
		if c.API != nil {
			for _, e := range c.API.Exec {
				r.Exec = append(r.Exec, "/v1/command-exec"+e.Path)
			}
		}
		if c.Migrations != nil {
			r.Database = component.DatabaseSetting(c).Env
		}
		if c.Serves() {
			r.Addr = component.AddrSetting(c).Env
		}
		rows = append(rows, r)
	}
	return rows
}
