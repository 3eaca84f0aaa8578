package main

import (
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/slipwayhq/slipway/pkg/component"
	"github.com/slipwayhq/slipway/pkg/httpserver"
)

// sharedSettings are the process's own settings; each component adds its
// database and address settings and its own (componentSettings). The
// README's configuration table lists them all.
var sharedSettings = []component.Setting{
	{Flag: "target", Env: "SLIPWAY_TARGET", Default: "all", Help: "component to run: all, or one of " + strings.Join(table.Names(), ", ")},
	{Flag: "http-addr", Env: "SLIPWAY_HTTP_ADDR", Default: "127.0.0.1:8080", Help: "HTTP listen address (the API on gateway targets; /health and /metrics on service targets)"},
	{Flag: "grpc-addr", Env: "SLIPWAY_GRPC_ADDR", Help: "gRPC listen address of the services this process runs, for processes reaching them apart (empty: " + defaultGRPCAddr + " on a service target; none with --target=all, whose components call each other in memory)"},
	{Flag: "http-read-header-timeout", Env: "SLIPWAY_HTTP_READ_HEADER_TIMEOUT", Default: "10s", Help: "longest a request's headers may take to arrive", Check: positiveDuration},
	{Flag: "http-read-timeout", Env: "SLIPWAY_HTTP_READ_TIMEOUT", Default: "60s", Help: "longest a whole request, body included, may take to arrive; a slower client is disconnected", Check: positiveDuration},
	{Flag: "http-write-timeout", Env: "SLIPWAY_HTTP_WRITE_TIMEOUT", Default: "60s", Help: "longest from a request's headers to the end of its answer (live log tails are exempt: they bound each message and ping instead)", Check: positiveDuration},
	{Flag: "http-idle-timeout", Env: "SLIPWAY_HTTP_IDLE_TIMEOUT", Default: "120s", Help: "how long an idle keep-alive connection stays open", Check: positiveDuration},
	{Flag: "http-max-connections", Env: "SLIPWAY_HTTP_MAX_CONNECTIONS", Help: "most HTTP connections open at once; more wait until one closes (empty: half the process's open-file limit)", Check: positiveInt},
	{Flag: "debug-addr", Env: "SLIPWAY_DEBUG_ADDR", Help: "listen address of the Go profiler (/debug/pprof/), e.g. 127.0.0.1:6060 (empty: off)"},
	{Flag: "data-dir", Env: "SLIPWAY_DATA_DIR", Default: "./data", Help: "directory for SQLite databases, keys, local state and the embedded NATS store"},
	{Flag: "internal-key", Env: "SLIPWAY_INTERNAL_KEY", Help: "shared secret services prove internal calls with; required when components run apart (empty with --target=all: random per start)"},
	{Flag: "public-url", Env: "SLIPWAY_PUBLIC_URL", Help: "public base URL of the API, the OAuth2 issuer (empty: http://<http-addr>)"},
	{Flag: "nats-url", Env: "SLIPWAY_NATS_URL", Help: "NATS server with JetStream (empty: embedded server in the data directory)"},
	{Flag: "catalog-file", Env: "SLIPWAY_CATALOG_FILE", Help: "JSON file with the regions and plans catalogue (empty: built-in)"},
	{Flag: "log-level", Env: "SLIPWAY_LOG_LEVEL", Default: "info", Help: "log level: debug, info, warn, error", Check: func(v string) error {
		var level slog.Level
		if level.UnmarshalText([]byte(v)) != nil {
			return fmt.Errorf("%q: want debug, info, warn or error", v)
		}
		return nil
	}},
	{Flag: "log-format", Env: "SLIPWAY_LOG_FORMAT", Default: "text", Help: "log format: text or json", Check: component.OneOf("text", "json")},
}

// positiveDuration checks a duration setting such as "30s" or "2m".
func positiveDuration(v string) error {
	if d, err := time.ParseDuration(v); err != nil || d <= 0 {
		return fmt.Errorf("%q: want a positive duration such as 30s or 2m", v)
	}
	return nil
}

// positiveInt checks a count setting.
func positiveInt(v string) error {
	if n, err := strconv.Atoi(v); err != nil || n <= 0 {
		return fmt.Errorf("%q: want a positive integer", v)
	}
	return nil
}

// httpLimits are the limits of the HTTP server, from the http-* settings
// (checked by parseConfig).
func (c config) httpLimits() httpserver.Limits {
	l := httpserver.DefaultLimits()
	for flag, d := range map[string]*time.Duration{
		"http-read-header-timeout": &l.ReadHeaderTimeout, "http-read-timeout": &l.ReadTimeout,
		"http-write-timeout": &l.WriteTimeout, "http-idle-timeout": &l.IdleTimeout,
	} {
		if v, err := time.ParseDuration(c.get(flag)); err == nil && v > 0 {
			*d = v
		}
	}
	if n, err := strconv.Atoi(c.get("http-max-connections")); err == nil && n > 0 {
		l.MaxConnections = n
	}
	return l
}

// defaultGRPCAddr is where a service target listens for gRPC unless told.
const defaultGRPCAddr = "127.0.0.1:9090"

// componentSettings are a component's settings: its database URL and its
// gRPC address (generated from its name), then its own.
func componentSettings(c component.Component) []component.Setting {
	var out []component.Setting
	if c.Migrations != nil {
		out = append(out, component.DatabaseSetting(c))
	}
	if c.Serves() {
		out = append(out, component.AddrSetting(c))
	}
	return append(out, c.Settings...)
}

// settings is every setting, shared ones first; a setting two components
// declare is listed once.
func settings() []component.Setting {
	out := append([]component.Setting{}, sharedSettings...)
	seen := map[string]bool{}
	for _, s := range out {
		seen[s.Flag] = true
	}
	for _, c := range table {
		for _, s := range componentSettings(c) {
			if !seen[s.Flag] {
				seen[s.Flag] = true
				out = append(out, s)
			}
		}
	}
	return out
}

// config is the whole configuration: every setting's value by flag name.
// Flags win over SLIPWAY_* variables, which win over defaults.
type config struct {
	values map[string]string
}

// get returns a setting's value by flag name.
func (c config) get(flag string) string { return c.values[flag] }

// target is the component to run, or "all".
func (c config) target() string { return c.get("target") }

// dataDir holds the SQLite databases and local state.
func (c config) dataDir() string { return c.get("data-dir") }

// registerSettings adds every setting to fs as a string flag whose default
// is its variable, else its default, and returns their values.
func registerSettings(fs *flag.FlagSet) map[string]*string {
	values := map[string]*string{}
	for _, s := range settings() {
		def := s.Default
		if v, ok := os.LookupEnv(s.Env); ok {
			def = v
		}
		values[s.Flag] = fs.String(s.Flag, def, s.Help+" ($"+s.Env+")")
	}
	return values
}

func parseConfig(cmd string, args []string) (config, error) {
	fs := flag.NewFlagSet("slipway "+cmd, flag.ContinueOnError)
	values := registerSettings(fs)
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	c := config{values: map[string]string{}}
	for flag, v := range values {
		c.values[flag] = *v
	}
	if t := c.target(); t != "all" {
		if _, ok := table.Get(t); !ok {
			return c, fmt.Errorf("unknown target %q (want all or one of %s)", t, strings.Join(table.Names(), ", "))
		}
	}
	for _, s := range settings() {
		if v := c.get(s.Flag); v != "" && s.Check != nil {
			if err := s.Check(v); err != nil {
				return c, fmt.Errorf("--%s (%s): %w", s.Flag, s.Env, err)
			}
		}
	}
	if c.target() != "all" && cmd == "serve" && len(c.get("internal-key")) < 32 {
		return c, fmt.Errorf("--internal-key (SLIPWAY_INTERNAL_KEY) of at least 32 characters is required when components run apart")
	}
	return c, nil
}

// runs reports whether the target runs the named component.
func (c config) runs(name string) bool { return c.target() == "all" || c.target() == name }

// database is a component's database URL, defaulting to a SQLite file in
// the data directory.
func (c config) database(comp component.Component) string {
	if url := c.get(component.DatabaseSetting(comp).Flag); url != "" {
		return url
	}
	return "sqlite:" + filepath.Join(c.dataDir(), comp.Name+".db")
}

func (c config) logger() *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.get("log-level")))
	opts := &slog.HandlerOptions{Level: level}
	if c.get("log-format") == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}
