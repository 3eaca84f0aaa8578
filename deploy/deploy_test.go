package deploy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
	"golang.org/x/mod/modfile"
)

// Paths are relative to the repository root, which is the parent of this
// module's directory (go test runs in the package directory).
const (
	repoRoot       = ".."
	composeFile    = "docker-compose.yml"
	dockerfilePath = "deploy/Dockerfile"
	dockerignore   = ".dockerignore"
	initSQLPath    = "deploy/postgres/init-databases.sql"
	goWorkPath     = "go.work"

	slipwayImage   = "slipway:dev"
	cloneImage     = "slipway-clone:dev" // deploy/Dockerfile's clone target
	cloneTarget    = "clone"
	slipwayBinary  = "/usr/local/bin/slipway"
	slipwayMain    = "./cmd/slipway"
	migrateService = "migrate"
	gatewayService = "gateway"
	gatewayPort    = 8080
	initdbDir      = "/docker-entrypoint-initdb.d"
)

// documentedEnv are the environment variables of the slipway binary: the
// shared ones of the README's configuration table and every setting of
// every component of the component table (cmd/slipway's tests keep the
// binary, its table and the README in step). A compose file or Dockerfile
// that sets a SLIPWAY_ variable missing from it is almost always a typo,
// which the binary would silently ignore.
var documentedEnv = append(readmeEnv(), tableEnv()...)

func readmeEnv() []string {
	data, err := os.ReadFile("../README.md")
	if err != nil {
		panic(err)
	}
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "| `SLIPWAY_"); ok {
			if name, _, ok := strings.Cut(rest, "`"); ok {
				out = append(out, "SLIPWAY_"+name)
			}
		}
	}
	return out
}

// component is a row of the binary's component table, as `slipway
// components --json` prints it.
type component struct {
	Name        string   `json:"name"`
	Deps        []string `json:"deps"`
	DatabaseEnv string   `json:"databaseEnv"`
	AddrEnv     string   `json:"addrEnv"`
	API         bool     `json:"api"`
	OptionalAPI bool     `json:"optionalApi"`
	Settings    []struct {
		Env string `json:"env"`
	} `json:"settings"`
}

// components is the component table, read once from the binary.
var components = sync.OnceValue(func() []component {
	cmd := exec.Command("go", "run", slipwayMain, "components", "--json")
	cmd.Dir = repoRoot
	out, err := cmd.Output()
	if err != nil {
		panic(fmt.Sprintf("slipway components --json: %v", err))
	}
	var table []component
	if err := json.Unmarshal(out, &table); err != nil {
		panic(err)
	}
	return table
})

func tableEnv() []string {
	var out []string
	for _, c := range components() {
		for _, s := range c.Settings {
			out = append(out, s.Env)
		}
	}
	return out
}

func componentNamed(name string) (component, bool) {
	for _, c := range components() {
		if c.Name == name {
			return c, true
		}
	}
	return component{}, false
}

// listenEnv are the documented variables that hold a listen address of the
// process itself (as opposed to the address of another component).
var listenEnv = []string{"SLIPWAY_HTTP_ADDR", "SLIPWAY_GRPC_ADDR", "SLIPWAY_INGRESS_ADDR"}

// ---------------------------------------------------------------------------
// docker-compose.yml

// loadCompose loads compose files the way `docker compose` does: compose-go's
// project loader with schema validation, YAML anchors and merge keys,
// interpolation, normalisation, path resolution and the consistency checks
// (e.g. depends_on naming an existing service). Relative paths resolve against
// workDir, the project directory.
//
// Unlike the CLI it interpolates against an empty environment and reads no
// .env file, so the test checks the file's own defaults rather than the
// developer's shell.
func loadCompose(workDir string, files ...string) (*types.Project, error) {
	opts, err := cli.NewProjectOptions(files,
		cli.WithWorkingDirectory(workDir),
		cli.WithInterpolation(true),
		cli.WithNormalization(true),
		cli.WithResolvedPaths(true),
		cli.WithConsistency(true),
	)
	if err != nil {
		return nil, err
	}
	return opts.LoadProject(context.Background())
}

// stack is a loaded compose project plus what the checks need from the
// repository.
type stack struct {
	p         *types.Project
	root      string          // absolute repository root
	databases map[string]bool // created by init-databases.sql
}

func loadStack(t *testing.T, composePath string) *stack {
	t.Helper()
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	if !filepath.IsAbs(composePath) {
		composePath = filepath.Join(root, composePath)
	}
	p, err := loadCompose(root, composePath)
	if err != nil {
		t.Fatalf("compose loader rejected %s: %v", composePath, err)
	}
	sql, err := os.ReadFile(filepath.Join(root, initSQLPath))
	if err != nil {
		t.Fatal(err)
	}
	return &stack{p: p, root: root, databases: createdDatabases(string(sql))}
}

var (
	sqlComment     = regexp.MustCompile(`--[^\n]*`)
	createDatabase = regexp.MustCompile(`(?i)\bCREATE\s+DATABASE\s+(?:"([^"]+)"|([A-Za-z_][A-Za-z0-9_$]*))`)
)

// createdDatabases returns the databases an SQL script creates (comments
// ignored; unquoted identifiers fold to lower case, as in PostgreSQL).
func createdDatabases(sql string) map[string]bool {
	dbs := map[string]bool{}
	for _, m := range createDatabase.FindAllStringSubmatch(sqlComment.ReplaceAllString(sql, ""), -1) {
		if m[1] != "" {
			dbs[m[1]] = true
		} else {
			dbs[strings.ToLower(m[2])] = true
		}
	}
	return dbs
}

// isSlipway reports whether a service runs the slipway image (the clone
// image, another target of the same Dockerfile, is not it).
func isSlipway(s types.ServiceConfig) bool {
	if s.Build != nil && s.Build.Target == cloneTarget {
		return false
	}
	return s.Build != nil || s.Image == slipwayImage || strings.HasPrefix(s.Image, "slipway:")
}

// serveTargets returns the --target values of a `serve` command, and whether
// the command is `serve` at all.
func serveTargets(s types.ServiceConfig) ([]string, bool) {
	if len(s.Command) == 0 || s.Command[0] != "serve" {
		return nil, false
	}
	var targets []string
	args := s.Command[1:]
	for i := 0; i < len(args); i++ {
		// Go's flag package accepts -target and --target, with = or a space.
		a := strings.TrimPrefix(strings.TrimPrefix(args[i], "-"), "-")
		var v string
		switch {
		case strings.HasPrefix(a, "target="):
			v = strings.TrimPrefix(a, "target=")
		case a == "target" && i+1 < len(args):
			i++
			v = args[i]
		default:
			continue
		}
		targets = append(targets, strings.Split(v, ",")...)
	}
	return targets, true
}

func env(s types.ServiceConfig, key string) (string, bool) {
	v, ok := s.Environment[key]
	if !ok || v == nil {
		return "", false
	}
	return *v, true
}

func sortedNames(p *types.Project) []string {
	names := make([]string, 0, len(p.Services))
	for n := range p.Services {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// composeCheck is one property of the stack; it returns every violation.
type composeCheck struct {
	name  string
	check func(*stack) []error
}

var composeChecks = []composeCheck{
	{"slipway services build deploy/Dockerfile", checkSlipwayBuild},
	{"migrate runs once before the service targets", checkMigrate},
	{"service targets are known", checkTargets},
	{"SLIPWAY variables are documented", checkEnvDocumented},
	{"listeners are reachable from other containers", checkListeners},
	{"addresses name services that are dependencies", checkAddresses},
	{"postgres URLs name databases that init-databases.sql creates", checkDatabases},
	{"gateway publishes its HTTP port", checkGatewayPort},
	{"healthchecks back service_healthy dependencies", checkHealthchecks},
	{"each target has its database and the addresses of its dependencies", checkComponents},
	{"the ingress reaches services' instances on a network of their own", checkInstancesNetwork},
	{"builds on the docker driver clones in the clone image", checkCloneImage},
}

// deploymentsTarget is the component whose ingress and health probes
// reach services' instances.
const deploymentsTarget = "deployments"

// checkInstancesNetwork: in containers, the docker driver's default
// 127.0.0.1 is the container's own, so the service that runs the
// deployments component must set SLIPWAY_DOCKER_NETWORK. Every service
// that sets it must name (by its explicit `name:`, which is what the
// engine knows) a network this file declares, so that compose creates it
// before the service starts, and join it besides the default network; and
// no other service may join
// that network, which holds tenants' instances: only the services that
// reach instances.
func checkInstancesNetwork(s *stack) []error {
	var errs []error
	const key = "SLIPWAY_DOCKER_NETWORK"
	joiners := map[string][]string{} // network key -> services joined to it
	for _, name := range sortedNames(s.p) {
		for n := range s.p.Services[name].Networks {
			joiners[n] = append(joiners[n], name)
		}
	}
	instances := map[string]bool{} // network keys set as instances networks
	setters := map[string]bool{}
	for _, name := range sortedNames(s.p) {
		svc := s.p.Services[name]
		targets, _ := serveTargets(svc)
		v, ok := env(svc, key)
		if !ok || v == "" {
			if slices.Contains(targets, deploymentsTarget) {
				errs = append(errs, fmt.Errorf("%s: runs %s but does not set %s: its ingress would look for instances on its own 127.0.0.1", name, deploymentsTarget, key))
			}
			continue
		}
		setters[name] = true
		netKey := ""
		for k, n := range s.p.Networks {
			if n.Name == v {
				netKey = k
			}
		}
		switch {
		case netKey == "":
			errs = append(errs, fmt.Errorf("%s: %s=%q names no network of this file (by its name:)", name, key, v))
			continue
		case bool(s.p.Networks[netKey].External):
			errs = append(errs, fmt.Errorf("%s: %s=%q names an external network, which compose does not create", name, key, v))
		}
		instances[netKey] = true
		if _, joined := svc.Networks[netKey]; !joined {
			errs = append(errs, fmt.Errorf("%s: %s=%q but the service does not join network %s", name, key, v, netKey))
		}
		if _, joined := svc.Networks["default"]; !joined {
			errs = append(errs, fmt.Errorf("%s: does not join the default network, on which its dependencies and callers are", name))
		}
	}
	for netKey := range instances {
		for _, name := range joiners[netKey] {
			if !setters[name] {
				errs = append(errs, fmt.Errorf("%s: joins network %s, which holds services' instances (only the services that set %s may)", name, netKey, key))
			}
		}
	}
	return errs
}

// checkCloneImage: the builds service on the docker driver has no git or
// sandbox of its own (distroless), so it clones in containers of the clone
// image: that image is built by a one-shot service from deploy/Dockerfile's
// clone target that builds waits for, and builds' data directory (the
// clones' work directories, bind-mounted by the engine from its host) is a
// host directory mounted at the same path.
func checkCloneImage(s *stack) []error {
	var errs []error
	for _, name := range sortedNames(s.p) {
		svc := s.p.Services[name]
		targets, _ := serveTargets(svc)
		if !slices.Contains(targets, "builds") {
			continue
		}
		if d, _ := env(svc, "SLIPWAY_RUNTIME_DRIVER"); d != "docker" {
			continue
		}
		img, _ := env(svc, "SLIPWAY_BUILD_CLONE_IMAGE")
		if img == "" {
			errs = append(errs, fmt.Errorf("%s: SLIPWAY_BUILD_CLONE_IMAGE is not set: the slipway image has no git to clone with", name))
			continue
		}
		builder := ""
		for _, other := range sortedNames(s.p) {
			if o := s.p.Services[other]; o.Image == img && o.Build != nil {
				builder = other
			}
		}
		if builder == "" {
			errs = append(errs, fmt.Errorf("%s: no service builds its clone image %q", name, img))
		} else {
			b := s.p.Services[builder]
			df := b.Build.Dockerfile
			if !filepath.IsAbs(df) {
				df = filepath.Join(b.Build.Context, df)
			}
			if filepath.Clean(df) != filepath.Join(s.root, dockerfilePath) || b.Build.Target != cloneTarget {
				errs = append(errs, fmt.Errorf("%s: builds %q from %s target %q, want %s target %q", builder, img, b.Build.Dockerfile, b.Build.Target, dockerfilePath, cloneTarget))
			}
			if b.Restart != "no" {
				errs = append(errs, fmt.Errorf("%s: restart %q, want \"no\" (it is one-shot)", builder, b.Restart))
			}
			if dep, ok := svc.DependsOn[builder]; !ok || dep.Condition != types.ServiceConditionCompletedSuccessfully {
				errs = append(errs, fmt.Errorf("%s: does not depend on %s with condition %q (its image must exist first)", name, builder, types.ServiceConditionCompletedSuccessfully))
			}
		}
		data, _ := env(svc, "SLIPWAY_DATA_DIR")
		if !path.IsAbs(data) {
			errs = append(errs, fmt.Errorf("%s: SLIPWAY_DATA_DIR %q is not an absolute path", name, data))
			continue
		}
		same := false
		for _, v := range svc.Volumes {
			same = same || v.Type == types.VolumeTypeBind && v.Source == data && v.Target == data
		}
		if !same {
			errs = append(errs, fmt.Errorf("%s: its data directory %s is not a host directory mounted at the same path (the engine bind-mounts clones' work directories from its host)", name, data))
		}
	}
	return errs
}

// checkComponents reads the component table: every service that runs a
// component has the component's database URL and the address of every
// component it depends on; migrate has the database URL of every component
// the stack runs; the gateway has the address of every component with an
// API that the stack runs.
func checkComponents(s *stack) []error {
	var errs []error
	running := map[string]string{} // component -> compose service
	for _, name := range sortedNames(s.p) {
		targets, _ := serveTargets(s.p.Services[name])
		for _, t := range targets {
			running[t] = name
		}
	}
	need := func(service, key, why string) {
		if v, ok := env(s.p.Services[service], key); !ok || v == "" {
			errs = append(errs, fmt.Errorf("%s: %s is not set (%s)", service, key, why))
		}
	}
	for _, c := range components() {
		service, ok := running[c.Name]
		if !ok {
			continue
		}
		if c.DatabaseEnv != "" {
			need(service, c.DatabaseEnv, "its database")
			need(migrateService, c.DatabaseEnv, "the database of "+c.Name)
		}
		for _, d := range c.Deps {
			if dep, _ := componentNamed(d); dep.AddrEnv != "" {
				need(service, dep.AddrEnv, "it depends on "+d)
			}
		}
		if c.API && c.Name != gatewayService {
			if gw, ok := running[gatewayService]; ok {
				need(gw, c.AddrEnv, "the gateway serves the "+c.Name+" API")
			}
		}
	}
	return errs
}

func checkSlipwayBuild(s *stack) []error {
	var errs []error
	n := 0
	for _, name := range sortedNames(s.p) {
		svc := s.p.Services[name]
		if !isSlipway(svc) {
			continue
		}
		n++
		if svc.Image != slipwayImage {
			errs = append(errs, fmt.Errorf("%s: image %q, want %q", name, svc.Image, slipwayImage))
		}
		if svc.Build == nil {
			errs = append(errs, fmt.Errorf("%s: no build section", name))
			continue
		}
		if filepath.Clean(svc.Build.Context) != s.root {
			errs = append(errs, fmt.Errorf("%s: build context %q, want the repository root %q", name, svc.Build.Context, s.root))
		}
		df := svc.Build.Dockerfile
		if !filepath.IsAbs(df) {
			df = filepath.Join(svc.Build.Context, df)
		}
		if want := filepath.Join(s.root, dockerfilePath); filepath.Clean(df) != want {
			errs = append(errs, fmt.Errorf("%s: dockerfile %q, want %q", name, svc.Build.Dockerfile, dockerfilePath))
		}
	}
	if n == 0 {
		errs = append(errs, errors.New("no service runs the slipway image"))
	}
	return errs
}

func checkMigrate(s *stack) []error {
	var errs []error
	m, ok := s.p.Services[migrateService]
	if !ok {
		return []error{fmt.Errorf("no %q service", migrateService)}
	}
	if !isSlipway(m) {
		errs = append(errs, fmt.Errorf("%s: does not run the slipway image", migrateService))
	}
	if !slices.Equal(m.Command, []string{"migrate"}) {
		errs = append(errs, fmt.Errorf("%s: command %q, want [migrate]", migrateService, m.Command))
	}
	if m.Restart != "no" {
		errs = append(errs, fmt.Errorf("%s: restart %q, want \"no\" (it is one-shot)", migrateService, m.Restart))
	}
	for _, name := range sortedNames(s.p) {
		if _, serves := serveTargets(s.p.Services[name]); !serves {
			continue
		}
		dep, ok := s.p.Services[name].DependsOn[migrateService]
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("%s: does not depend on %s", name, migrateService))
		case dep.Condition != types.ServiceConditionCompletedSuccessfully:
			errs = append(errs, fmt.Errorf("%s: depends on %s with condition %q, want %q",
				name, migrateService, dep.Condition, types.ServiceConditionCompletedSuccessfully))
		}
	}
	return errs
}

func checkTargets(s *stack) []error {
	var errs []error
	seen := map[string]string{}
	n := 0
	for _, name := range sortedNames(s.p) {
		targets, serves := serveTargets(s.p.Services[name])
		if !serves {
			continue
		}
		n++
		if len(targets) == 0 {
			errs = append(errs, fmt.Errorf("%s: `serve` without --target (it would default to all)", name))
		}
		for _, t := range targets {
			if _, ok := componentNamed(t); !ok {
				var known []string
				for _, c := range components() {
					known = append(known, c.Name)
				}
				errs = append(errs, fmt.Errorf("%s: unknown --target=%s (known: %s)", name, t, strings.Join(known, ", ")))
			}
			if other, dup := seen[t]; dup {
				errs = append(errs, fmt.Errorf("%s: target %s already served by %s", name, t, other))
			}
			seen[t] = name
		}
	}
	if n == 0 {
		errs = append(errs, errors.New("no service runs `slipway serve`"))
	}
	return errs
}

func checkEnvDocumented(s *stack) []error {
	var errs []error
	for _, name := range sortedNames(s.p) {
		for k := range s.p.Services[name].Environment {
			if strings.HasPrefix(k, "SLIPWAY_") && !slices.Contains(documentedEnv, k) {
				errs = append(errs, fmt.Errorf("%s: %s is not a documented slipway variable", name, k))
			}
		}
	}
	return errs
}

// checkListeners: a container listening on loopback cannot be reached by the
// other containers or through a published port. The one exception is the
// HTTP listener (/health, /metrics: no credentials) of a container that
// shares a network with services' instances (SLIPWAY_DOCKER_NETWORK): on
// loopback, so that tenants' instances cannot read it.
func checkListeners(s *stack) []error {
	var errs []error
	for _, name := range sortedNames(s.p) {
		svc := s.p.Services[name]
		if !isSlipway(svc) {
			continue
		}
		nw, _ := env(svc, "SLIPWAY_DOCKER_NETWORK")
		for _, k := range listenEnv {
			v, ok := env(svc, k)
			if !ok {
				continue // the image's default, 0.0.0.0
			}
			if k == "SLIPWAY_HTTP_ADDR" && nw != "" {
				if host, _, err := net.SplitHostPort(v); err != nil || host != "127.0.0.1" {
					errs = append(errs, fmt.Errorf("%s: %s=%q, want 127.0.0.1: instances on network %s would reach its /health and /metrics", name, k, v, nw))
				}
				continue
			}
			host, _, err := net.SplitHostPort(v)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %s=%q: %v", name, k, v, err))
				continue
			}
			if ip := net.ParseIP(host); host == "localhost" || (ip != nil && ip.IsLoopback()) {
				errs = append(errs, fmt.Errorf("%s: %s=%q listens on loopback only", name, k, v))
			}
		}
	}
	return errs
}

// endpoint returns the host and port that a SLIPWAY_*_URL or a (non-listen)
// SLIPWAY_*_ADDR value points at.
func endpoint(v string) (host, port string, err error) {
	if strings.Contains(v, "://") {
		u, err := url.Parse(v)
		if err != nil {
			return "", "", err
		}
		return u.Hostname(), u.Port(), nil
	}
	return net.SplitHostPort(v)
}

// dependsOn reports whether compose starts service dep before service name,
// i.e. whether dep is in the transitive closure of name's depends_on.
func dependsOn(p *types.Project, name, dep string) bool {
	seen := map[string]bool{}
	var walk func(string) bool
	walk = func(n string) bool {
		for d := range p.Services[n].DependsOn {
			if d == dep {
				return true
			}
			if !seen[d] {
				seen[d] = true
				if walk(d) {
					return true
				}
			}
		}
		return false
	}
	return walk(name)
}

// checkAddresses: every component address a slipway container is given must
// name a compose service, and that service must be in its depends_on so that
// compose starts it first. An address of another slipway service must use the
// port that service listens on for gRPC.
func checkAddresses(s *stack) []error {
	var errs []error
	for _, name := range sortedNames(s.p) {
		svc := s.p.Services[name]
		if !isSlipway(svc) {
			continue
		}
		keys := make([]string, 0, len(svc.Environment))
		for k := range svc.Environment {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			v, _ := env(svc, k)
			// The public URL is where clients outside the stack reach it,
			// not an address of a service inside.
			if !strings.HasPrefix(k, "SLIPWAY_") || v == "" || slices.Contains(listenEnv, k) || k == "SLIPWAY_PUBLIC_URL" ||
				!(strings.HasSuffix(k, "_URL") || strings.HasSuffix(k, "_ADDR")) {
				continue
			}
			host, port, err := endpoint(v)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %s=%q: %v", name, k, v, err))
				continue
			}
			target, ok := s.p.Services[host]
			if !ok {
				errs = append(errs, fmt.Errorf("%s: %s=%q: no service %q in the stack", name, k, v, host))
				continue
			}
			if !dependsOn(s.p, name, host) {
				errs = append(errs, fmt.Errorf("%s: %s points at %s, which is not in its depends_on (directly or transitively)", name, k, host))
			}
			if isSlipway(target) && strings.HasSuffix(k, "_ADDR") {
				grpc, ok := env(target, "SLIPWAY_GRPC_ADDR")
				if !ok {
					grpc = "0.0.0.0:9090" // the image's default
				}
				if _, p, err := net.SplitHostPort(grpc); err == nil && p != port {
					errs = append(errs, fmt.Errorf("%s: %s=%q but %s listens for gRPC on %q", name, k, v, host, grpc))
				}
			}
		}
	}
	return errs
}

func checkDatabases(s *stack) []error {
	var errs []error
	pg := s.p.Services["postgres"]
	user, _ := env(pg, "POSTGRES_USER")
	password, _ := env(pg, "POSTGRES_PASSWORD")
	n := 0
	for _, name := range sortedNames(s.p) {
		svc := s.p.Services[name]
		for k, v := range svc.Environment {
			if v == nil || !strings.HasPrefix(*v, "postgres://") && !strings.HasPrefix(*v, "postgresql://") {
				continue
			}
			n++
			u, err := url.Parse(*v)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %s: %v", name, k, err))
				continue
			}
			db := strings.TrimPrefix(u.Path, "/")
			if !s.databases[db] {
				errs = append(errs, fmt.Errorf("%s: %s names database %q, which %s does not create", name, k, db, initSQLPath))
			}
			p, _ := u.User.Password()
			if u.User.Username() != user || p != password {
				errs = append(errs, fmt.Errorf("%s: %s: credentials differ from the postgres service's POSTGRES_USER/POSTGRES_PASSWORD", name, k))
			}
		}
	}
	if n == 0 {
		return errs
	}
	// The script only runs if it is mounted where the image looks for it.
	want := filepath.Join(s.root, initSQLPath)
	mounted := false
	for _, v := range pg.Volumes {
		if v.Type == types.VolumeTypeBind && filepath.Clean(v.Source) == want && path.Dir(v.Target) == initdbDir {
			mounted = true
		}
	}
	if !mounted {
		errs = append(errs, fmt.Errorf("postgres: %s is not mounted into %s", initSQLPath, initdbDir))
	}
	return errs
}

func checkGatewayPort(s *stack) []error {
	gw, ok := s.p.Services[gatewayService]
	if !ok {
		return []error{fmt.Errorf("no %q service", gatewayService)}
	}
	var errs []error
	if v, ok := env(gw, "SLIPWAY_HTTP_ADDR"); ok {
		if _, p, err := net.SplitHostPort(v); err != nil || p != strconv.Itoa(gatewayPort) {
			errs = append(errs, fmt.Errorf("gateway: SLIPWAY_HTTP_ADDR=%q, want port %d", v, gatewayPort))
		}
	}
	published := false
	for _, p := range gw.Ports {
		if p.Target == gatewayPort && p.Published == strconv.Itoa(gatewayPort) && (p.Protocol == "" || p.Protocol == "tcp") {
			published = true
		}
	}
	if !published {
		errs = append(errs, fmt.Errorf("gateway: does not publish %d:%d (ports: %+v)", gatewayPort, gatewayPort, gw.Ports))
	}
	return errs
}

// checkHealthchecks: `service_healthy` on a service without a healthcheck
// passes the loader but fails `docker compose up` at run time.
func checkHealthchecks(s *stack) []error {
	var errs []error
	want := map[string]string{"postgres": "pg_isready", "redis": "redis-cli ping"}
	for name, cmd := range want {
		svc, ok := s.p.Services[name]
		if !ok {
			errs = append(errs, fmt.Errorf("no %q service", name))
			continue
		}
		if svc.HealthCheck == nil || svc.HealthCheck.Disable || !strings.Contains(strings.Join(svc.HealthCheck.Test, " "), cmd) {
			errs = append(errs, fmt.Errorf("%s: healthcheck does not run %q", name, cmd))
		}
	}
	for _, name := range sortedNames(s.p) {
		for dep, d := range s.p.Services[name].DependsOn {
			if d.Condition != types.ServiceConditionHealthy {
				continue
			}
			if hc := s.p.Services[dep].HealthCheck; hc == nil || hc.Disable || len(hc.Test) == 0 {
				errs = append(errs, fmt.Errorf("%s: waits for %s to be healthy, but %s has no healthcheck", name, dep, dep))
			}
		}
	}
	return errs
}

func TestCompose(t *testing.T) {
	s := loadStack(t, composeFile)
	for _, c := range composeChecks {
		t.Run(c.name, func(t *testing.T) {
			for _, err := range c.check(s) {
				t.Error(err)
			}
		})
	}
}

// TestComposeAnchorsResolved: the x-slipway anchor is resolved by the loader
// (not left to the engine), and every slipway service inherits its shared
// environment.
func TestComposeAnchorsResolved(t *testing.T) {
	s := loadStack(t, composeFile)
	if _, ok := s.p.Extensions["x-slipway"]; !ok {
		t.Errorf("no x-slipway extension field")
	}
	for _, name := range sortedNames(s.p) {
		svc := s.p.Services[name]
		if !isSlipway(svc) {
			continue
		}
		for _, k := range []string{"SLIPWAY_LOG_LEVEL", "SLIPWAY_LOG_FORMAT"} {
			if _, ok := env(svc, k); !ok {
				t.Errorf("%s: %s not inherited from x-slipway", name, k)
			}
		}
	}
}

func TestInitDatabasesParsing(t *testing.T) {
	got := createdDatabases(`
-- CREATE DATABASE commented;
CREATE DATABASE Plain;
SELECT 'CREATE DATABASE projects' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'projects')\gexec
create database "Quoted";`)
	want := map[string]bool{"plain": true, "projects": true, "Quoted": true}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("createdDatabases = %v, want %v", got, want)
	}
}

// writeTemp writes content to a file in a fresh temporary directory.
func writeTemp(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestComposeLoaderRejects makes sure the loader really validates: broken
// snippets must be rejected, or the positive test above proves nothing.
func TestComposeLoaderRejects(t *testing.T) {
	cases := map[string]string{
		"unknown service key": `
services:
  app:
    imag: slipway:dev
`,
		"invalid depends_on condition": `
services:
  db:
    image: postgres:16
  app:
    image: slipway:dev
    depends_on:
      db:
        condition: service_finished
`,
		"depends_on an undefined service": `
services:
  app:
    image: slipway:dev
    depends_on:
      migrate:
        condition: service_completed_successfully
`,
		"undefined anchor": `
services:
  app:
    <<: *slipway
`,
		"wrong type": `
services:
  app:
    image: slipway:dev
    command: {serve: true}
`,
		"undeclared named volume": `
services:
  app:
    image: slipway:dev
    volumes:
      - app-data:/data
`,
	}
	for name, yml := range cases {
		t.Run(name, func(t *testing.T) {
			f := writeTemp(t, "compose.yaml", yml)
			if _, err := loadCompose(filepath.Dir(f), f); err == nil {
				t.Errorf("loader accepted:\n%s", yml)
			} else {
				t.Logf("rejected as expected: %v", err)
			}
		})
	}
}

// TestComposeChecksCatchMistakes edits the real docker-compose.yml in a temp
// copy and asserts that the matching check reports the mistake.
func TestComposeChecksCatchMistakes(t *testing.T) {
	orig, err := os.ReadFile(filepath.Join(repoRoot, composeFile))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, old, new string
		check          func(*stack) []error
		wantErr        string
	}{
		{
			name:    "service target without the migrate dependency",
			old:     "      migrate:\n        condition: service_completed_successfully\n      auth:\n        condition: service_started\n      projects:\n        condition: service_started\n      deployments:\n        condition: service_started\n      jobs:\n        condition: service_started\n      nats:\n        condition: service_started\n\n  gateway:",
			new:     "      auth:\n        condition: service_started\n      projects:\n        condition: service_started\n      deployments:\n        condition: service_started\n      jobs:\n        condition: service_started\n      nats:\n        condition: service_started\n\n  gateway:",
			check:   checkMigrate,
			wantErr: "builds: does not depend on migrate",
		},
		{
			name:    "unknown target",
			old:     `"--target=projects"`,
			new:     `"--target=project"`,
			check:   checkTargets,
			wantErr: "unknown --target=project",
		},
		{
			name:    "misspelt variable",
			old:     "      SLIPWAY_JOBS_ADDR: jobs:9090\n      SLIPWAY_DEPLOYMENTS_ADDR",
			new:     "      SLIPWAY_JOB_ADDR: jobs:9090\n      SLIPWAY_DEPLOYMENTS_ADDR",
			check:   checkEnvDocumented,
			wantErr: "SLIPWAY_JOB_ADDR is not a documented",
		},
		{
			name:    "database not created",
			old:     "@postgres:5432/projects?",
			new:     "@postgres:5432/project?",
			check:   checkDatabases,
			wantErr: `names database "project"`,
		},
		{
			name:    "gateway port not published",
			old:     `"8080:8080"`,
			new:     `"8081:8080"`,
			check:   checkGatewayPort,
			wantErr: "does not publish 8080:8080",
		},
		{
			name:    "builds does not wait for the clone image",
			old:     "      clone-image:\n        condition: service_completed_successfully\n",
			new:     "",
			check:   checkCloneImage,
			wantErr: "builds: does not depend on clone-image",
		},
		{
			name:    "builds' data directory in a named volume",
			old:     "      - /var/lib/slipway-builds:/var/lib/slipway-builds\n",
			new:     "      - jobs-data:/var/lib/slipway-builds\n",
			check:   checkCloneImage,
			wantErr: "is not a host directory mounted at the same path",
		},
		{
			name:    "clone image built from the slipway target",
			old:     "      target: clone\n",
			new:     "",
			check:   checkCloneImage,
			wantErr: `want deploy/Dockerfile target "clone"`,
		},
		{
			name:    "no clone image",
			old:     "      SLIPWAY_BUILD_CLONE_IMAGE: slipway-clone:dev\n",
			new:     "",
			check:   checkCloneImage,
			wantErr: "SLIPWAY_BUILD_CLONE_IMAGE is not set",
		},
		{
			name:    "other Dockerfile",
			old:     "    dockerfile: deploy/Dockerfile\n  restart: unless-stopped",
			new:     "    dockerfile: Dockerfile\n  restart: unless-stopped",
			check:   checkSlipwayBuild,
			wantErr: "dockerfile \"Dockerfile\"",
		},
		{
			name:    "loopback listener",
			old:     "SLIPWAY_GRPC_ADDR: 0.0.0.0:9090\n      SLIPWAY_PROJECTS_DATABASE_URL",
			new:     "SLIPWAY_GRPC_ADDR: 127.0.0.1:9090\n      SLIPWAY_PROJECTS_DATABASE_URL",
			check:   checkListeners,
			wantErr: "listens on loopback only",
		},
		{
			name:    "deployments' HTTP listener faces the instances",
			old:     "SLIPWAY_HTTP_ADDR: 127.0.0.1:8080",
			new:     "SLIPWAY_HTTP_ADDR: 0.0.0.0:8080",
			check:   checkListeners,
			wantErr: "deployments: SLIPWAY_HTTP_ADDR=\"0.0.0.0:8080\", want 127.0.0.1",
		},
		{
			name:    "wrong gRPC port",
			old:     "SLIPWAY_JOBS_ADDR: jobs:9090\n      SLIPWAY_DEPLOYMENTS_ADDR",
			new:     "SLIPWAY_JOBS_ADDR: jobs:9091\n      SLIPWAY_DEPLOYMENTS_ADDR",
			check:   checkAddresses,
			wantErr: "listens for gRPC on",
		},
		{
			name:    "deployments without the instances network setting",
			old:     "      SLIPWAY_DOCKER_NETWORK: slipway-instances\n",
			new:     "",
			check:   checkInstancesNetwork,
			wantErr: "deployments: runs deployments but does not set SLIPWAY_DOCKER_NETWORK",
		},
		{
			name:    "setting names no network of the file",
			old:     "SLIPWAY_DOCKER_NETWORK: slipway-instances",
			new:     "SLIPWAY_DOCKER_NETWORK: slipway_instances",
			check:   checkInstancesNetwork,
			wantErr: `SLIPWAY_DOCKER_NETWORK="slipway_instances" names no network`,
		},
		{
			name:    "deployments does not join the instances network",
			old:     "      - instances\n",
			new:     "",
			check:   checkInstancesNetwork,
			wantErr: "deployments: SLIPWAY_DOCKER_NETWORK=\"slipway-instances\" but the service does not join network instances",
		},
		{
			name:    "deployments leaves the default network",
			old:     "      - default # postgres",
			new:     "      # postgres",
			check:   checkInstancesNetwork,
			wantErr: "deployments: does not join the default network",
		},
		{
			name:    "another component joins the instances network",
			old:     "    ports:\n      - \"8080:8080\"\n",
			new:     "    ports:\n      - \"8080:8080\"\n    networks: [default, instances]\n",
			check:   checkInstancesNetwork,
			wantErr: "gateway: joins network instances",
		},
		{
			name:    "healthy condition without healthcheck",
			old:     "      nats:\n        condition: service_started\n\n  gateway:",
			new:     "      nats:\n        condition: service_healthy\n\n  gateway:",
			check:   checkHealthchecks,
			wantErr: "builds: waits for nats to be healthy",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if n := strings.Count(string(orig), c.old); n != 1 {
				t.Fatalf("%s: %q occurs %d times, want 1: update the test", composeFile, c.old, n)
			}
			f := writeTemp(t, "compose.yaml", strings.Replace(string(orig), c.old, c.new, 1))
			s := loadStack(t, f)
			errs := c.check(s)
			for _, err := range errs {
				if strings.Contains(err.Error(), c.wantErr) {
					return
				}
			}
			t.Errorf("check did not report %q; got %v", c.wantErr, errs)
		})
	}
}

// ---------------------------------------------------------------------------
// deploy/Dockerfile

type dockerfile struct {
	stages   []instructions.Stage
	warnings []string // parser warnings and lint violations
}

// parseDockerfile parses a Dockerfile the way BuildKit's Dockerfile frontend
// (what `docker build` runs) does before it converts to LLB: the parser, the
// instruction parser, and the linter configured from a `# check=` directive.
func parseDockerfile(dt []byte) (*dockerfile, error) {
	var warnings []string
	checkDirective, _, _, _ := parser.ParseDirective("check", dt)
	cfg, err := linter.ParseLintOptions(checkDirective)
	if err != nil {
		return nil, fmt.Errorf("check directive: %w", err)
	}
	cfg.Warn = func(rule, _, _, msg string, loc []parser.Range) {
		line := 0
		if len(loc) > 0 {
			line = loc[0].Start.Line
		}
		warnings = append(warnings, linter.LintFormatShort(rule, msg, line))
	}
	res, err := parser.Parse(bytes.NewReader(dt))
	if err != nil {
		return nil, err
	}
	for _, w := range res.Warnings {
		warnings = append(warnings, w.Short)
	}
	stages, _, err := instructions.Parse(res.AST, linter.New(cfg))
	if err != nil {
		return nil, err
	}
	if len(stages) == 0 {
		return nil, errors.New("no FROM instruction")
	}
	return &dockerfile{stages: stages, warnings: warnings}, nil
}

// stageIndex resolves a stage reference (name or index) among the stages
// before stage `before`.
func (d *dockerfile) stageIndex(ref string, before int) (int, bool) {
	for i := 0; i < before; i++ {
		if strings.EqualFold(d.stages[i].Name, ref) || strconv.Itoa(i) == ref {
			return i, true
		}
	}
	return -1, false
}

func commandsOf[T instructions.Command](st instructions.Stage) []T {
	var out []T
	for _, c := range st.Commands {
		if v, ok := c.(T); ok {
			out = append(out, v)
		}
	}
	return out
}

type dockerfileCheck struct {
	name  string
	check func(d *dockerfile, root string) []error
}

var dockerfileChecks = []dockerfileCheck{
	{"no parser warnings or lint violations", checkNoWarnings},
	{"multi-stage", checkMultiStage},
	{"final stage runs as non-root", checkNonRoot},
	{"entrypoint is the slipway binary", checkEntrypoint},
	{"builds ./cmd/slipway statically", checkGoBuild},
	{"COPY sources exist and are in the build context", checkCopySources},
	{"workspace module files are copied before the download", checkWorkspaceCopied},
	{"build image matches the go.work Go version", checkGoVersion},
	{"SLIPWAY variables are documented", checkDockerfileEnv},
	{"the clone stage has git and ssh and a non-root user", checkCloneStage},
}

// checkCloneStage: the clone target (docker-compose.yml's clone image,
// what the builds component runs git in) exists before the final stage
// (which stays the default target), installs git, git-lfs, openssh-client
// and the CA certificates, and runs as a numeric non-root user, which the
// builds component requires of it.
func checkCloneStage(d *dockerfile, _ string) []error {
	i, ok := d.stageIndex(cloneTarget, len(d.stages)-1)
	if !ok {
		return []error{fmt.Errorf("no stage %q before the final stage", cloneTarget)}
	}
	st := d.stages[i]
	var errs []error
	installed := map[string]bool{}
	for _, r := range commandsOf[*instructions.RunCommand](st) {
		for _, cmd := range strings.Split(strings.Join(r.CmdLine, " "), "&&") {
			f := strings.Fields(cmd)
			if len(f) > 2 && f[0] == "apt-get" && slices.Contains(f, "install") {
				for _, p := range f {
					installed[p] = true
				}
			}
		}
	}
	for _, p := range []string{"git", "git-lfs", "openssh-client", "ca-certificates"} {
		if !installed[p] {
			errs = append(errs, fmt.Errorf("%s stage: apt-get install lacks %s", cloneTarget, p))
		}
	}
	users := commandsOf[*instructions.UserCommand](st)
	if len(users) == 0 {
		return append(errs, fmt.Errorf("%s stage has no USER instruction", cloneTarget))
	}
	u := users[len(users)-1].User
	uid, _, _ := strings.Cut(u, ":")
	if n, err := strconv.Atoi(uid); err != nil || n <= 0 {
		errs = append(errs, fmt.Errorf("%s stage runs as USER %q, want a numeric non-root uid[:gid]", cloneTarget, u))
	}
	return errs
}

func checkNoWarnings(d *dockerfile, _ string) []error {
	var errs []error
	for _, w := range d.warnings {
		errs = append(errs, errors.New(w))
	}
	return errs
}

func checkMultiStage(d *dockerfile, _ string) []error {
	var errs []error
	if len(d.stages) < 2 {
		return []error{fmt.Errorf("%d stage(s), want a build stage and a runtime stage", len(d.stages))}
	}
	final := len(d.stages) - 1
	if _, ok := d.stageIndex(d.stages[final].BaseName, final); ok {
		errs = append(errs, fmt.Errorf("final stage is FROM the earlier stage %q and inherits its toolchain", d.stages[final].BaseName))
	}
	for i, st := range d.stages {
		for _, c := range commandsOf[*instructions.CopyCommand](st) {
			if c.From == "" {
				continue
			}
			if _, ok := d.stageIndex(c.From, i); !ok {
				errs = append(errs, fmt.Errorf("%s: COPY --from=%s names no earlier stage", st.Name, c.From))
			}
		}
	}
	fromBuild := false
	for _, c := range commandsOf[*instructions.CopyCommand](d.stages[final]) {
		if c.From != "" {
			fromBuild = true
		}
	}
	if !fromBuild {
		errs = append(errs, errors.New("final stage copies nothing from a build stage"))
	}
	return errs
}

func checkNonRoot(d *dockerfile, _ string) []error {
	users := commandsOf[*instructions.UserCommand](d.stages[len(d.stages)-1])
	if len(users) == 0 {
		return []error{errors.New("final stage has no USER instruction (it would run as the base image's user)")}
	}
	u := users[len(users)-1].User
	name, _, _ := strings.Cut(u, ":")
	if name == "" || name == "root" || name == "0" {
		return []error{fmt.Errorf("final stage runs as USER %q", u)}
	}
	return nil
}

func checkEntrypoint(d *dockerfile, _ string) []error {
	var errs []error
	final := d.stages[len(d.stages)-1]
	eps := commandsOf[*instructions.EntrypointCommand](final)
	if len(eps) == 0 {
		return []error{errors.New("final stage has no ENTRYPOINT")}
	}
	ep := eps[len(eps)-1]
	if ep.PrependShell {
		errs = append(errs, errors.New("ENTRYPOINT uses the shell form; the runtime image has no shell and signals would not reach slipway"))
	}
	if !slices.Equal(ep.CmdLine, []string{slipwayBinary}) {
		errs = append(errs, fmt.Errorf("ENTRYPOINT %q, want [%q]", ep.CmdLine, slipwayBinary))
	}
	if cmds := commandsOf[*instructions.CmdCommand](final); len(cmds) == 0 || cmds[len(cmds)-1].PrependShell {
		errs = append(errs, errors.New("final stage needs an exec-form CMD (the default subcommand)"))
	}
	copied := false
	for _, c := range commandsOf[*instructions.CopyCommand](final) {
		if c.From != "" && (c.DestPath == slipwayBinary || c.DestPath == path.Dir(slipwayBinary)+"/") {
			copied = true
		}
	}
	if !copied {
		errs = append(errs, fmt.Errorf("final stage does not COPY --from a build stage to %s", slipwayBinary))
	}
	exposed := map[string]bool{}
	for _, e := range commandsOf[*instructions.ExposeCommand](final) {
		for _, p := range e.Ports {
			exposed[strings.TrimSuffix(p, "/tcp")] = true
		}
	}
	for _, p := range []string{"8080", "9090"} {
		if !exposed[p] {
			errs = append(errs, fmt.Errorf("final stage does not EXPOSE %s", p))
		}
	}
	return errs
}

func checkGoBuild(d *dockerfile, _ string) []error {
	for _, st := range d.stages[:len(d.stages)-1] {
		for _, r := range commandsOf[*instructions.RunCommand](st) {
			line := strings.Join(r.CmdLine, " ")
			if strings.Contains(line, "go build") && strings.Contains(line, slipwayMain) {
				if !strings.Contains(line, "CGO_ENABLED=0") {
					return []error{fmt.Errorf("%q: not CGO_ENABLED=0; the static runtime image has no libc", line)}
				}
				return nil
			}
		}
	}
	return []error{fmt.Errorf("no build stage runs `go build ... %s`", slipwayMain)}
}

// contextFiles expands a COPY source (relative to the build context, possibly
// a glob) to the files and directories it names.
func contextFiles(root, src string) ([]string, error) {
	src = strings.TrimPrefix(path.Clean("/"+src), "/")
	if src == "" {
		return []string{"."}, nil
	}
	matches, err := filepath.Glob(filepath.Join(root, filepath.FromSlash(src)))
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(matches))
	for _, m := range matches {
		rel, err := filepath.Rel(root, m)
		if err != nil {
			return nil, err
		}
		out = append(out, filepath.ToSlash(rel))
	}
	return out, nil
}

func loadDockerignore(root string) (*patternmatcher.PatternMatcher, error) {
	f, err := os.Open(filepath.Join(root, dockerignore))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	patterns, err := ignorefile.ReadAll(f)
	if err != nil {
		return nil, err
	}
	return patternmatcher.New(patterns)
}

// checkCopySources: every COPY/ADD from the build context names files that
// exist and that .dockerignore does not exclude (a missing or excluded source
// fails `docker build` with "not found").
func checkCopySources(d *dockerfile, root string) []error {
	var errs []error
	ignore, err := loadDockerignore(root)
	if err != nil {
		return []error{err}
	}
	check := func(stage, src string) {
		files, err := contextFiles(root, src)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: COPY %s: %v", stage, src, err))
			return
		}
		if len(files) == 0 {
			errs = append(errs, fmt.Errorf("%s: COPY %s: no such file in the repository", stage, src))
		}
		for _, f := range files {
			if f == "." {
				continue
			}
			if excluded, err := ignore.MatchesOrParentMatches(f); err != nil || excluded {
				errs = append(errs, fmt.Errorf("%s: COPY %s: %s is excluded by %s", stage, src, f, dockerignore))
			}
		}
	}
	for _, st := range d.stages {
		for _, c := range st.Commands {
			switch c := c.(type) {
			case *instructions.CopyCommand:
				if c.From == "" {
					for _, src := range c.SourcePaths {
						check(st.Name, src)
					}
				}
			case *instructions.AddCommand:
				for _, src := range c.SourcePaths {
					if !strings.Contains(src, "://") {
						check(st.Name, src)
					}
				}
			}
		}
	}
	return errs
}

func readGoWork(root string) (*modfile.WorkFile, error) {
	p := filepath.Join(root, goWorkPath)
	dt, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	return modfile.ParseWork(p, dt, nil)
}

// checkWorkspaceCopied: the go command refuses a workspace whose modules lack
// a go.mod, so every module go.work uses must have its go.mod copied (and not
// dockerignored) before `go mod download` runs. This fails when a module is
// added to go.work without updating the Dockerfile.
func checkWorkspaceCopied(d *dockerfile, root string) []error {
	work, err := readGoWork(root)
	if err != nil {
		return []error{err}
	}
	var copied []string // COPY sources before the download
	var build *instructions.Stage
stages:
	for i, st := range d.stages {
		for _, c := range st.Commands {
			switch c := c.(type) {
			case *instructions.CopyCommand:
				if c.From == "" {
					copied = append(copied, c.SourcePaths...)
				}
			case *instructions.RunCommand:
				if strings.Contains(strings.Join(c.CmdLine, " "), "go mod download") {
					build = &d.stages[i]
					break stages
				}
			}
		}
		copied = nil
	}
	if build == nil {
		return []error{errors.New("no stage runs `go mod download` after copying the module files")}
	}
	var errs []error
	for _, use := range work.Use {
		for _, file := range []string{"go.mod", "go.sum"} {
			want := path.Join(use.Path, file)
			if _, err := os.Stat(filepath.Join(root, want)); err != nil {
				continue // no go.sum: a module without dependencies
			}
			found := false
			for _, src := range copied {
				if ok, _ := path.Match(path.Clean(src), want); ok {
					found = true
				}
			}
			if !found {
				errs = append(errs, fmt.Errorf("%s uses %s, but %s is not copied before `go mod download`", goWorkPath, use.Path, want))
			}
		}
	}
	return errs
}

var golangImage = regexp.MustCompile(`^golang:(\d+)\.(\d+)`)

// checkGoVersion: the build image's Go must be at least go.work's go line, or
// the build fails (the golang images set GOTOOLCHAIN=local).
func checkGoVersion(d *dockerfile, root string) []error {
	work, err := readGoWork(root)
	if err != nil {
		return []error{err}
	}
	if work.Go == nil {
		return nil
	}
	need := strings.Split(work.Go.Version, ".")
	for _, st := range d.stages {
		m := golangImage.FindStringSubmatch(st.BaseName)
		if m == nil {
			continue
		}
		major, _ := strconv.Atoi(m[1])
		minor, _ := strconv.Atoi(m[2])
		wantMajor, _ := strconv.Atoi(need[0])
		wantMinor := 0
		if len(need) > 1 {
			wantMinor, _ = strconv.Atoi(need[1])
		}
		if major < wantMajor || major == wantMajor && minor < wantMinor {
			return []error{fmt.Errorf("%s builds with %s but go.work requires go %s", st.Name, st.BaseName, work.Go.Version)}
		}
		return nil
	}
	return []error{errors.New("no stage builds FROM a golang image")}
}

func checkDockerfileEnv(d *dockerfile, _ string) []error {
	var errs []error
	for _, st := range d.stages {
		for _, e := range commandsOf[*instructions.EnvCommand](st) {
			for _, kv := range e.Env {
				if strings.HasPrefix(kv.Key, "SLIPWAY_") && !slices.Contains(documentedEnv, kv.Key) {
					errs = append(errs, fmt.Errorf("ENV %s is not a documented slipway variable", kv.Key))
				}
			}
		}
	}
	return errs
}

func readDockerfile(t *testing.T) []byte {
	t.Helper()
	dt, err := os.ReadFile(filepath.Join(repoRoot, dockerfilePath))
	if err != nil {
		t.Fatal(err)
	}
	return dt
}

func TestDockerfile(t *testing.T) {
	d, err := parseDockerfile(readDockerfile(t))
	if err != nil {
		t.Fatalf("%s does not parse: %v", dockerfilePath, err)
	}
	for _, c := range dockerfileChecks {
		t.Run(c.name, func(t *testing.T) {
			for _, err := range c.check(d, repoRoot) {
				t.Error(err)
			}
		})
	}
}

// TestDockerignore: local artefacts stay out of the build context.
func TestDockerignore(t *testing.T) {
	ignore, err := loadDockerignore(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"bin/buf", "data/projects.db", ".git/HEAD", "node_modules/x/index.js", "web/node_modules/x/index.js", ".env", "docker-compose.yml", "deploy/deploy_test.go"} {
		if excluded, err := ignore.MatchesOrParentMatches(f); err != nil || !excluded {
			t.Errorf("%s: %s is not excluded", dockerignore, f)
		}
	}
	for _, f := range []string{"go.work", "go.mod", "cmd/slipway/main.go", "gen/go.mod", "deploy/go.mod", "deploy/go.sum"} {
		if excluded, err := ignore.MatchesOrParentMatches(f); err != nil || excluded {
			t.Errorf("%s: build input %s is excluded", dockerignore, f)
		}
	}
}

// TestDockerfileParserRejects: the frontend parser really rejects broken
// Dockerfiles (and the linter really reports), so TestDockerfile can fail.
func TestDockerfileParserRejects(t *testing.T) {
	for name, df := range map[string]string{
		"unknown instruction":     "FORM golang:1.26\n",
		"FROM without image":      "FROM\n",
		"COPY without dest":       "FROM scratch\nCOPY onlyone\n",
		"instruction before FROM": "COPY a b\nFROM scratch\n",
		"bad flag":                "FROM scratch\nCOPY --frm=build a b\n",
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := parseDockerfile([]byte(df)); err == nil {
				t.Errorf("parser accepted:\n%s", df)
			} else {
				t.Logf("rejected as expected: %v", err)
			}
		})
	}
	t.Run("lint violation", func(t *testing.T) {
		d, err := parseDockerfile([]byte("FROM golang:1.26 as Build\nFROM scratch\n"))
		if err != nil {
			t.Fatal(err)
		}
		if len(checkNoWarnings(d, repoRoot)) == 0 {
			t.Error("no lint violation reported for `as Build`")
		}
	})
}

// TestDockerfileChecksCatchMistakes runs the checks on broken variants.
func TestDockerfileChecksCatchMistakes(t *testing.T) {
	orig := string(readDockerfile(t))
	cases := []struct {
		name, old, new string
		check          func(*dockerfile, string) []error
		wantErr        string
	}{
		{"runs as root", "WORKDIR /var/lib/slipway\nUSER 65532:65532", "WORKDIR /var/lib/slipway\nUSER root", checkNonRoot, `runs as USER "root"`},
		{"no USER", "WORKDIR /var/lib/slipway\nUSER 65532:65532\n", "WORKDIR /var/lib/slipway\n", checkNonRoot, "no USER"},
		{"no clone stage", "AS clone", "AS cloner", checkCloneStage, `no stage "clone"`},
		{"clone stage as root", "USER 65532:65532\n\n# ----", "USER 0\n\n# ----", checkCloneStage, `runs as USER "0"`},
		{"clone stage by user name", "USER 65532:65532\n\n# ----", "USER nonroot\n\n# ----", checkCloneStage, `runs as USER "nonroot"`},
		{"clone stage without ssh", "git git-lfs openssh-client", "git git-lfs", checkCloneStage, "lacks openssh-client"},
		{"shell-form entrypoint", `ENTRYPOINT ["/usr/local/bin/slipway"]`, "ENTRYPOINT /usr/local/bin/slipway", checkEntrypoint, "shell form"},
		{"other entrypoint", `ENTRYPOINT ["/usr/local/bin/slipway"]`, `ENTRYPOINT ["/slipway"]`, checkEntrypoint, "ENTRYPOINT"},
		{"missing source", "COPY deploy/go.mod deploy/go.sum deploy/", "COPY deploy/go.mod deploy/go.lock deploy/", checkCopySources, "no such file"},
		{"ignored source", "COPY . .", "COPY bin/ /bin-copy/", checkCopySources, "excluded by"},
		{"workspace module not copied", "COPY gen/go.* gen/\n", "", checkWorkspaceCopied, "gen/go.mod is not copied"},
		{"cgo", "CGO_ENABLED=0 GOOS", "GOOS", checkGoBuild, "CGO_ENABLED=0"},
		{"undocumented env", "SLIPWAY_DATA_DIR=/var/lib/slipway", "SLIPWAY_DATADIR=/var/lib/slipway", checkDockerfileEnv, "SLIPWAY_DATADIR"},
		{"old Go", "golang:1.26-bookworm", "golang:1.25-bookworm", checkGoVersion, "requires go"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if n := strings.Count(orig, c.old); n != 1 {
				t.Fatalf("%s: %q occurs %d times, want 1: update the test", dockerfilePath, c.old, n)
			}
			d, err := parseDockerfile([]byte(strings.Replace(orig, c.old, c.new, 1)))
			if err != nil {
				t.Fatal(err)
			}
			errs := c.check(d, repoRoot)
			for _, err := range errs {
				if strings.Contains(err.Error(), c.wantErr) {
					return
				}
			}
			t.Errorf("check did not report %q; got %v", c.wantErr, errs)
		})
	}
	t.Run("single stage", func(t *testing.T) {
		d, err := parseDockerfile([]byte("FROM golang:1.26-bookworm\nUSER 1000\nENTRYPOINT [\"/usr/local/bin/slipway\"]\n"))
		if err != nil {
			t.Fatal(err)
		}
		if len(checkMultiStage(d, repoRoot)) == 0 {
			t.Error("single-stage Dockerfile passed the multi-stage check")
		}
	})
}
