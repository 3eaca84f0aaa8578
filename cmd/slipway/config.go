package main

import (
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/slipwayhq/slipway/pkg/quota"
)

// targets are the components `serve --target` can run.
var targets = []string{"all", "gateway", "auth", "projects", "jobs"}

// config is the whole configuration; every field has a flag and a
// SLIPWAY_* environment variable (flags win). The README's configuration
// table mirrors settings below.
type config struct {
	Target              string
	HTTPAddr            string
	GRPCAddr            string
	DataDir             string
	AuthDatabaseURL     string
	AuthAddr            string
	ProjectsDatabaseURL string
	ProjectsAddr        string
	JobsDatabaseURL     string
	JobsAddr            string
	RuntimeDriver       string
	DockerHost          string
	EncryptionKey       string
	InternalKey         string
	PublicURL           string
	OAuthSecret         string
	AuthURL             string
	BootstrapToken      string
	RateLimitPerHour    string
	RateLimitPlans      string
	NATSURL             string
	RedisURL            string
	CatalogFile         string
	LogLevel            string
	LogFormat           string
}

// setting describes one configuration knob.
type setting struct {
	flag, env, def, help string
	field                func(*config) *string
}

var settings = []setting{
	{"target", "SLIPWAY_TARGET", "all", "component to run: " + strings.Join(targets, ", "), func(c *config) *string { return &c.Target }},
	{"http-addr", "SLIPWAY_HTTP_ADDR", "127.0.0.1:8080", "HTTP listen address (the API on gateway targets; /health and /metrics on service targets)", func(c *config) *string { return &c.HTTPAddr }},
	{"grpc-addr", "SLIPWAY_GRPC_ADDR", "127.0.0.1:9090", "gRPC listen address of the services run by this process", func(c *config) *string { return &c.GRPCAddr }},
	{"data-dir", "SLIPWAY_DATA_DIR", "./data", "directory for SQLite databases and the embedded NATS store", func(c *config) *string { return &c.DataDir }},
	{"auth-database-url", "SLIPWAY_AUTH_DATABASE_URL", "", "auth database: postgres://... (empty: SQLite in the data directory)", func(c *config) *string { return &c.AuthDatabaseURL }},
	{"auth-addr", "SLIPWAY_AUTH_ADDR", "", "gRPC address of the auth service when it runs in another process (empty: this process)", func(c *config) *string { return &c.AuthAddr }},
	{"projects-database-url", "SLIPWAY_PROJECTS_DATABASE_URL", "", "projects database: postgres://... (empty: SQLite in the data directory)", func(c *config) *string { return &c.ProjectsDatabaseURL }},
	{"projects-addr", "SLIPWAY_PROJECTS_ADDR", "", "gRPC address of the projects service for a gateway running apart (empty: this process)", func(c *config) *string { return &c.ProjectsAddr }},
	{"jobs-database-url", "SLIPWAY_JOBS_DATABASE_URL", "", "jobs database: postgres://... (empty: SQLite in the data directory)", func(c *config) *string { return &c.JobsDatabaseURL }},
	{"jobs-addr", "SLIPWAY_JOBS_ADDR", "", "gRPC address of the jobs service for a gateway running apart (empty: this process)", func(c *config) *string { return &c.JobsAddr }},
	{"runtime-driver", "SLIPWAY_RUNTIME_DRIVER", "", "how jobs run: process or docker (empty: docker when a Docker or Podman socket answers, else process)", func(c *config) *string { return &c.RuntimeDriver }},
	{"docker-host", "SLIPWAY_DOCKER_HOST", "", "Docker Engine API address of the docker driver, e.g. unix:///run/podman/podman.sock (empty: $DOCKER_HOST, else the usual sockets)", func(c *config) *string { return &c.DockerHost }},
	{"encryption-key", "SLIPWAY_ENCRYPTION_KEY", "", "key (at least 32 characters) sealing secrets at rest, such as job environments; the same on every jobs replica (empty: generated once into the data directory)", func(c *config) *string { return &c.EncryptionKey }},
	{"internal-key", "SLIPWAY_INTERNAL_KEY", "", "shared secret services prove internal calls with; required when components run apart (empty with --target=all: random per start)", func(c *config) *string { return &c.InternalKey }},
	{"public-url", "SLIPWAY_PUBLIC_URL", "", "public base URL of the API, the OAuth2 issuer (empty: http://<http-addr>)", func(c *config) *string { return &c.PublicURL }},
	{"oauth-secret", "SLIPWAY_OAUTH_SECRET", "", "key (at least 32 characters) of the OAuth2 server's codes, cookies and CSRF tokens; the same on every auth replica (empty: generated once into the data directory)", func(c *config) *string { return &c.OAuthSecret }},
	{"auth-url", "SLIPWAY_AUTH_URL", "", "HTTP base URL of the auth service, to which a gateway running apart forwards /oauth2/ (empty: this process)", func(c *config) *string { return &c.AuthURL }},
	{"bootstrap-token", "SLIPWAY_BOOTSTRAP_TOKEN", "", "first admin token of an empty install (at least 32 characters; empty: one is generated and printed once)", func(c *config) *string { return &c.BootstrapToken }},
	{"rate-limit-per-hour", "SLIPWAY_RATE_LIMIT_PER_HOUR", "1000", "requests per hour per team (or user, for personal tokens) unless its plan says otherwise", func(c *config) *string { return &c.RateLimitPerHour }},
	{"rate-limit-plans", "SLIPWAY_RATE_LIMIT_PLANS", "", "hourly limits per team plan, e.g. free=100,pro=1000,enterprise=50000", func(c *config) *string { return &c.RateLimitPlans }},
	{"nats-url", "SLIPWAY_NATS_URL", "", "NATS server with JetStream (empty: embedded server in the data directory)", func(c *config) *string { return &c.NATSURL }},
	{"redis-url", "SLIPWAY_REDIS_URL", "", "Redis for quotas shared by gateway replicas (empty: in-process)", func(c *config) *string { return &c.RedisURL }},
	{"catalog-file", "SLIPWAY_CATALOG_FILE", "", "JSON file with the regions and plans catalogue (empty: built-in)", func(c *config) *string { return &c.CatalogFile }},
	{"log-level", "SLIPWAY_LOG_LEVEL", "info", "log level: debug, info, warn, error", func(c *config) *string { return &c.LogLevel }},
	{"log-format", "SLIPWAY_LOG_FORMAT", "text", "log format: text or json", func(c *config) *string { return &c.LogFormat }},
}

func parseConfig(cmd string, args []string) (config, error) {
	var c config
	fs := flag.NewFlagSet("slipway "+cmd, flag.ContinueOnError)
	for _, s := range settings {
		def := s.def
		if v, ok := os.LookupEnv(s.env); ok {
			def = v
		}
		fs.StringVar(s.field(&c), s.flag, def, s.help+" ($"+s.env+")")
	}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if !slices.Contains(targets, c.Target) {
		return c, fmt.Errorf("unknown target %q (want one of %s)", c.Target, strings.Join(targets, ", "))
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		return c, fmt.Errorf("log format %q: want text or json", c.LogFormat)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.LogLevel)); err != nil {
		return c, fmt.Errorf("log level %q: want debug, info, warn or error", c.LogLevel)
	}
	if _, err := c.plans(); err != nil {
		return c, err
	}
	if c.OAuthSecret != "" && len(c.OAuthSecret) < 32 {
		return c, fmt.Errorf("--oauth-secret (SLIPWAY_OAUTH_SECRET) must have at least 32 characters")
	}
	if c.EncryptionKey != "" && len(c.EncryptionKey) < 32 {
		return c, fmt.Errorf("--encryption-key (SLIPWAY_ENCRYPTION_KEY) must have at least 32 characters")
	}
	if c.RuntimeDriver != "" && c.RuntimeDriver != "process" && c.RuntimeDriver != "docker" {
		return c, fmt.Errorf("runtime driver %q: want process or docker", c.RuntimeDriver)
	}
	if c.Target != "all" && cmd == "serve" && len(c.InternalKey) < 32 {
		return c, fmt.Errorf("--internal-key (SLIPWAY_INTERNAL_KEY) of at least 32 characters is required when components run apart")
	}
	return c, nil
}

// plans is the quota configuration.
func (c config) plans() (quota.Plans, error) {
	def, err := strconv.ParseInt(c.RateLimitPerHour, 10, 64)
	if err != nil || def <= 0 {
		return quota.Plans{}, fmt.Errorf("rate limit per hour %q: want a positive integer", c.RateLimitPerHour)
	}
	per, err := quota.ParsePlans(c.RateLimitPlans)
	if err != nil {
		return quota.Plans{}, fmt.Errorf("rate limit plans: %w", err)
	}
	return quota.Plans{Default: def, PerPlan: per}, nil
}

// authDatabase is the auth database URL, defaulting to SQLite in the data
// directory.
func (c config) authDatabase() string {
	if c.AuthDatabaseURL != "" {
		return c.AuthDatabaseURL
	}
	return "sqlite:" + filepath.Join(c.DataDir, "auth.db")
}

func (c config) runs(component string) bool { return c.Target == "all" || c.Target == component }

// projectsDatabase is the projects database URL, defaulting to SQLite in
// the data directory.
func (c config) projectsDatabase() string {
	if c.ProjectsDatabaseURL != "" {
		return c.ProjectsDatabaseURL
	}
	return "sqlite:" + filepath.Join(c.DataDir, "projects.db")
}

// jobsDatabase is the jobs database URL, defaulting to SQLite in the data
// directory.
func (c config) jobsDatabase() string {
	if c.JobsDatabaseURL != "" {
		return c.JobsDatabaseURL
	}
	return "sqlite:" + filepath.Join(c.DataDir, "jobs.db")
}

func (c config) logger() *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	if c.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}
