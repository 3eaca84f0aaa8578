// Package builder turns a git commit into something Slipway can run: it
// clones the source in a workload sandbox and builds it, with a Dockerfile
// through the Docker Engine API (Docker or Podman) or with a buildpack
// (a detected stack: Procfile, Go, Node.js, Python, static site) — on the
// process driver into an artifact directory and a start command, on the
// docker driver into an image made from a generated Dockerfile.
//
// It has no database and no API of its own: the builds component calls
// Build for a queued build, stores the Result (or the Error's Message, the
// build's user-facing message) and removes artifacts with Remove.
//
// Nothing of a build runs with the server's privileges: git runs as a
// workload of the process driver (its own uid, namespaces and limits), with
// the host's network only so that it reaches a self-hosted git server, on a
// URL checked beforehand (scheme, file:// roots, private addresses) — or,
// with Config.CloneImage, as a container of that image on the docker
// driver (a non-root user, the engine's isolation and network).
// Buildpack builds on the process driver run sandboxed with a private
// network. Credentials reach git through files of the work directory (an
// askpass helper reading the password, the ssh key), never its command
// line or environment, and are redacted from every log line and message.
package builder

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"

	"github.com/slipwayhq/slipway/pkg/netguard"
	"github.com/slipwayhq/slipway/pkg/runtime"
	"github.com/slipwayhq/slipway/pkg/runtime/docker"
	"github.com/slipwayhq/slipway/pkg/vcs"
)

// Phase is where a build is; the builds component maps it to the build's
// status.
type Phase string

// The phases Build reports, in order.
const (
	PhaseCloning   Phase = "CLONING"
	PhaseBuilding  Phase = "BUILDING"
	PhaseUploading Phase = "UPLOADING"
)

// Credentials open a private repository (Slipway's one model of them,
// vcsData.credentials). Any field may be empty. Username and Password (or
// a token) are for http(s) URLs; a token alone is sent with the user name
// "x-access-token" (GitHub's, which GitLab and Gitea accept too).
// PrivateKey is an SSH private key (PEM/OpenSSH) for ssh URLs. KnownHosts
// are known_hosts lines holding the ssh server's host key(s): with them
// ssh connects only to a server that proves it holds one
// (StrictHostKeyChecking=yes); without them a build accepts the key the
// server presents.
type Credentials = vcs.Credentials

// Source is what to clone.
type Source struct {
	// URL is the repository: https, http, ssh (also scp-like
	// "git@host:path") or file. User info in it is taken as credentials
	// and never passed on.
	URL         string
	Credentials Credentials
	// Branch is built at its head, unless SHA names the commit (Branch is
	// then only reported back); PullRequest > 0 builds refs/pull/<n>/head
	// (GitHub, Gitea) or refs/merge-requests/<n>/head (GitLab).
	Branch      string
	SHA         string
	PullRequest int
	// Submodules clones submodules (their URLs checked like URL's); LFS
	// fetches Git LFS objects; IncludeGit keeps .git in the build context;
	// FullClone fetches all history instead of one commit.
	Submodules, LFS, IncludeGit, FullClone bool
}

// Dockerfile builds with a Dockerfile. Paths are relative to the
// repository's root (a leading "/" means that root); none may leave it.
type Dockerfile struct {
	// Path is the Dockerfile ("" is "Dockerfile" in WorkDir).
	Path string
	// WorkDir is the build context ("" is the repository's root).
	WorkDir string
	// Target is the multi-stage target ("" builds the last stage).
	Target string
}

// Buildpack builds a detected stack.
type Buildpack struct {
	// Context is the directory the app is in, relative to the
	// repository's root ("" is the root).
	Context string
}

// Request is one build. Exactly one of Dockerfile and Buildpack is set.
type Request struct {
	// BuildID, TeamID, ProjectID and ServiceID name the build and its
	// owner; they label workloads and images and name the tag. BuildID
	// must be a slug (lower-case letters, digits, '-').
	BuildID, TeamID, ProjectID, ServiceID string
	// Job says the owner is a job (ServiceID is its id): its cache and
	// images are kept apart from those of a service with the same id.
	Job        bool
	Source     Source
	Dockerfile *Dockerfile
	Buildpack  *Buildpack
	// Args are build arguments (Dockerfile ARGs; a buildpack build's
	// environment).
	Args map[string]string
	// Resources limit each workload of the build (and, on Podman, the
	// build containers where the engine can).
	Resources runtime.Resources
	// Timeout bounds the whole build; zero is Config.Timeout.
	Timeout time.Duration
	// Log receives the build's log lines ("stdout" or "stderr"),
	// credentials redacted; nil discards them. It must not block long.
	Log func(stream, line string)
	// Phase is told each phase as it starts; nil is fine.
	Phase func(Phase)
}

// Result is a successful build.
type Result struct {
	// SHA is the exact commit built; Branch the branch asked for.
	SHA, Branch string
	// Image is the image built (docker driver): a tag
	// localhost/slipway/<project>/<service>:<sha12>-<buildID>.
	Image string
	// Path is the artifact directory (process driver): the app tree, to
	// be mounted read-only at /app; Command is the start command chosen
	// by the buildpack (empty: none found).
	Path    string
	Command []string
	// Stack is the buildpack's stack ("go", "node", "python", "static",
	// "procfile"), or "dockerfile".
	Stack string
}

// Kind classifies an Error for the caller.
type Kind string

// The kinds of Error.
const (
	// KindInvalid: the request cannot build as given (URL refused, path
	// leaving the repository, bad branch name): a 4xx at start.
	KindInvalid Kind = "invalid"
	// KindSource: the source could not be fetched (unreachable, not a git
	// repository, unknown branch or commit, authentication failed).
	KindSource Kind = "source"
	// KindBuild: the build itself failed (its log says why).
	KindBuild Kind = "build"
	// KindAborted: the build's context was cancelled.
	KindAborted Kind = "aborted"
	// KindTimeout: the build ran out of time.
	KindTimeout Kind = "timeout"
	// KindInternal: something of the server failed; Message says nothing
	// more than that, the wrapped error (for the server's log) does.
	KindInternal Kind = "internal"
)

// Error is a build failure. Message is safe to show the build's owner: no
// credentials, no host paths, no internals.
type Error struct {
	Kind    Kind
	Message string
	// Err is the cause, for the server's own log; it may hold host paths
	// (never credentials).
	Err error
}

func (e *Error) Error() string { return e.Message }
func (e *Error) Unwrap() error { return e.Err }

func errorf(kind Kind, format string, a ...any) *Error {
	return &Error{Kind: kind, Message: fmt.Sprintf(format, a...)}
}

func internal(err error) *Error {
	return &Error{Kind: KindInternal, Message: "internal error while building", Err: err}
}

// Config configures a Builder.
type Config struct {
	// Process is the driver git (clones, ls-remote) runs on, and buildpack
	// builds too when Docker is nil. Without CloneImage it is the process
	// driver, whose sandbox git runs in with the host's network; with
	// CloneImage it is the docker driver.
	Process runtime.Driver
	// CloneImage, when set, runs git in containers of this image on
	// Process (the docker driver, with Docker set too) instead of in the
	// process driver's sandbox: for a server that runs in a container
	// itself, with no git, bubblewrap or user namespaces (see
	// clonecontainer.go). The image must be on the engine and have git,
	// git-lfs, ssh and sh.
	CloneImage string
	// Docker, when set, builds images through the Engine API (the docker
	// driver's engine); nil builds process-driver artifacts.
	Docker client.APIClient
	// Ulimits are the build containers' limits; nil is the docker
	// driver's DefaultUlimits (without explicit ones, runc fails to set
	// the engine's on some hosts: "error setting rlimit").
	Ulimits []*container.Ulimit
	// Dir holds work directories, artifacts and caches (made 0700).
	Dir string
	// BaseImages are the base images of generated Dockerfiles, by stack
	// ("go", "node", "python", "static", "procfile"); missing ones are
	// DefaultBaseImages'.
	BaseImages map[string]string
	// FileRoots are the directories file:// repositories may be under;
	// none means file:// is refused.
	FileRoots []string
	// AllowHosts are hosts (names, IPs or CIDRs) that may resolve to
	// loopback or private addresses, refused otherwise.
	AllowHosts []string
	// Resolver resolves repository host names for the address check
	// (whose answer git is then held to); nil is net.DefaultResolver.
	Resolver *net.Resolver
	// Timeout bounds a build whose Request has none; zero is
	// DefaultTimeout.
	Timeout time.Duration
	// GoRoot is the Go toolchain buildpack builds use on the process
	// driver ("" finds `go` on PATH); it is bound read-only into the
	// sandbox.
	GoRoot string
}

// DefaultTimeout is how long a build may take when nothing says.
const DefaultTimeout = 30 * time.Minute

// DefaultBaseImages are the base images of generated Dockerfiles.
var DefaultBaseImages = map[string]string{
	StackGo:       "docker.io/library/golang:1.26",
	StackNode:     "docker.io/library/node:20-slim",
	StackPython:   "docker.io/library/python:3.12-slim",
	StackStatic:   "docker.io/library/busybox:stable",
	StackProcfile: "docker.io/library/busybox:stable",
}

// Builder builds. It is safe for concurrent use (one Build per build id).
type Builder struct {
	cfg   Config
	dir   string
	roots []string
	allow *netguard.Rule
	// resolver is Config.Resolver, or the system's.
	resolver *net.Resolver

	mu     sync.Mutex
	caches map[string]chan struct{} // a service's cache, held by one build

	nssWrapper string // libnss_wrapper.so, for ssh (see sshScript)

	// engineMu guards isPodman, which is only set (engineKnown) by an
	// answer of the engine: an engine that does not answer yet (at
	// start-up recovery) is asked again next time.
	engineMu    sync.Mutex
	engineKnown bool
	isPodman    bool

	// steps watches for the steps of aborted builds that a Podman engine
	// starts late (see stopSteps).
	steps stepWatcher
}

// New returns a Builder for cfg.
func New(cfg Config) (*Builder, error) {
	if cfg.Process == nil {
		return nil, errors.New("builder: a process driver is required (clones run on it)")
	}
	if cfg.Dir == "" {
		return nil, errors.New("builder: no directory")
	}
	if cfg.CloneImage != "" && cfg.Docker == nil {
		return nil, errors.New("builder: a clone image needs the docker driver's engine (Docker)")
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("builder: %w", err)
	}
	for _, sub := range []string{"work", "artifacts", "cache"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			return nil, fmt.Errorf("builder: %w", err)
		}
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("builder: %w", err)
	}
	var roots []string
	for _, r := range cfg.FileRoots {
		if r == "" {
			continue
		}
		if !filepath.IsAbs(r) {
			return nil, fmt.Errorf("builder: file root %q is not an absolute path", r)
		}
		real, err := filepath.EvalSymlinks(r)
		if err != nil {
			return nil, fmt.Errorf("builder: file root %q: %w", r, err)
		}
		roots = append(roots, real)
	}
	allow, err := netguard.Parse(cfg.AllowHosts, nil)
	if err != nil {
		return nil, fmt.Errorf("builder: %w", err)
	}
	base := map[string]string{}
	for k, v := range DefaultBaseImages {
		base[k] = v
	}
	for k, v := range cfg.BaseImages {
		if v != "" {
			base[strings.ToLower(k)] = v
		}
	}
	cfg.BaseImages = base
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Ulimits == nil {
		cfg.Ulimits = docker.DefaultUlimits()
	}
	b := &Builder{cfg: cfg, dir: dir, roots: roots, allow: allow, resolver: cfg.Resolver, caches: map[string]chan struct{}{}}
	if b.resolver == nil {
		b.resolver = net.DefaultResolver
	}
	for _, pattern := range []string{"/usr/lib/*/libnss_wrapper.so", "/usr/lib64/libnss_wrapper.so", "/usr/lib/libnss_wrapper.so"} {
		if m, _ := filepath.Glob(pattern); len(m) > 0 {
			b.nssWrapper = m[0]
			break
		}
	}
	return b, nil
}

var slugRe = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// Build clones req.Source and builds it. On failure the error is an
// *Error; the work directory and the build's workloads are gone when it
// returns, whatever the outcome.
func (b *Builder) Build(ctx context.Context, req Request) (Result, error) {
	res, err := b.build(ctx, req)
	if err != nil {
		var e *Error
		if !errors.As(err, &e) {
			e = internal(err)
		}
		return Result{}, e
	}
	return res, nil
}

func (b *Builder) build(ctx context.Context, req Request) (Result, error) {
	for name, v := range map[string]string{"build id": req.BuildID, "project id": req.ProjectID, "service id": req.ServiceID} {
		if !slugRe.MatchString(v) {
			return Result{}, errorf(KindInvalid, "invalid %s %q", name, v)
		}
	}
	if req.TeamID == "" {
		return Result{}, errorf(KindInvalid, "no team id")
	}
	if (req.Dockerfile == nil) == (req.Buildpack == nil) {
		return Result{}, errorf(KindInvalid, "a build needs either Dockerfile or buildpack settings")
	}
	// Paths that leave the repository are refused before anything is
	// cloned (links are checked in the clone).
	paths := map[string]string{}
	if df := req.Dockerfile; df != nil {
		paths["Dockerfile path"], paths["Dockerfile work directory"] = df.Path, df.WorkDir
	} else {
		paths["build context"] = req.Buildpack.Context
	}
	for what, p := range paths {
		if _, err := repoPath(what, p); err != nil {
			return Result{}, err
		}
	}
	src, err := b.checkSource(ctx, req.Source)
	if err != nil {
		return Result{}, err
	}
	timeout := req.Timeout
	if timeout <= 0 {
		timeout = b.cfg.Timeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	r := &run{b: b, req: req, src: src, ctx: ctx, deadline: timeout}
	r.log = newRedactor(req.Log, req.Source.Credentials, src.userinfo)
	defer r.cleanup()
	res, err := r.do()
	if err != nil {
		return Result{}, r.classify(err)
	}
	return res, nil
}

// classify turns an error after the context ended into an abort or a
// timeout.
func (r *run) classify(err error) error {
	if cerr := r.ctx.Err(); cerr != nil {
		if errors.Is(cerr, context.DeadlineExceeded) {
			return &Error{Kind: KindTimeout, Message: fmt.Sprintf("the build took longer than %s and was stopped", r.deadline), Err: err}
		}
		return &Error{Kind: KindAborted, Message: "the build was aborted", Err: err}
	}
	return err
}

func (r *run) phase(p Phase) {
	if r.req.Phase != nil {
		r.req.Phase(p)
	}
}

func (r *run) do() (Result, error) {
	r.phase(PhaseCloning)
	if err := r.prepare(); err != nil {
		return Result{}, err
	}
	sha, err := r.clone()
	if err != nil {
		return Result{}, err
	}
	res := Result{SHA: sha, Branch: r.req.Source.Branch}
	r.phase(PhaseBuilding)
	switch {
	case r.req.Dockerfile != nil:
		if r.b.cfg.Docker == nil {
			return Result{}, errorf(KindInvalid, "Dockerfile builds need the docker driver; this server runs the process driver (use a buildpack)")
		}
		res.Stack = "dockerfile"
		res.Image, err = r.dockerfileBuild(sha)
	default:
		err = r.buildpackBuild(sha, &res)
	}
	if err != nil {
		return Result{}, err
	}
	return res, nil
}

// Remove deletes an artifact: the image, or the artifact directory. A
// missing one is no error. An image is removed even if containers use it
// (the engine removes them too): for artifacts whose service is gone.
func (b *Builder) Remove(ctx context.Context, r Result) error {
	return b.remove(ctx, r, true)
}

// RemoveUnused is Remove, except that an image a container still uses (a
// release of the build runs, e.g. after a rollback to it) is not removed:
// the engine's refusal is the error, and the caller may try again later.
// Retention uses it: Podman's forced removal would take the container, a
// running service's instance, with the image.
func (b *Builder) RemoveUnused(ctx context.Context, r Result) error {
	return b.remove(ctx, r, false)
}

func (b *Builder) remove(ctx context.Context, r Result, force bool) error {
	if r.Image != "" {
		if b.cfg.Docker == nil {
			return errors.New("builder: no engine to remove an image from")
		}
		if err := removeImage(ctx, b.cfg.Docker, r.Image, force); err != nil {
			return err
		}
	}
	if r.Path != "" {
		art := filepath.Join(b.dir, "artifacts")
		// Only ever a directory of ours: <Dir>/artifacts/<build>/app.
		rel, err := filepath.Rel(art, filepath.Clean(r.Path))
		if err != nil || rel == "." || strings.HasPrefix(rel, "..") || filepath.Base(rel) != "app" || strings.Count(rel, string(filepath.Separator)) != 1 {
			return fmt.Errorf("builder: %q is not an artifact of this builder", r.Path)
		}
		if !force && artifactInUse(filepath.Clean(r.Path)) {
			return fmt.Errorf("builder: artifact %s: %w", r.Path, ErrInUse)
		}
		if err := os.RemoveAll(filepath.Dir(filepath.Clean(r.Path))); err != nil {
			return fmt.Errorf("builder: %w", err)
		}
	}
	return nil
}

// Owner is the name of a build's owner in cache paths and image tags: a
// service's id, or "job." and a job's id (a '.' is in no id, so the two
// never meet).
func Owner(job bool, id string) string {
	if job {
		return "job." + id
	}
	return id
}

// owner is r's owner as Owner names it.
func (r Request) owner() string { return Owner(r.Job, r.ServiceID) }

// ResetCache deletes a service's (or, with an Owner name, a job's) build
// cache (Go, npm and pip caches of buildpack builds).
func (b *Builder) ResetCache(ctx context.Context, teamID, projectID, serviceID string) error {
	dir, err := b.cacheDir(teamID, projectID, serviceID)
	if err != nil {
		return err
	}
	return os.RemoveAll(dir)
}

func (b *Builder) cacheDir(teamID, projectID, serviceID string) (string, error) {
	for _, v := range []string{teamID, projectID, serviceID} {
		if v == "" || strings.ContainsAny(v, "/\\") || v == "." || v == ".." {
			return "", fmt.Errorf("builder: invalid id %q", v)
		}
	}
	return filepath.Join(b.dir, "cache", teamID, projectID, serviceID), nil
}

// lockCache waits until no other build uses the cache directory dir.
func (b *Builder) lockCache(ctx context.Context, dir string) (func(), error) {
	b.mu.Lock()
	ch, ok := b.caches[dir]
	if !ok {
		ch = make(chan struct{}, 1)
		b.caches[dir] = ch
	}
	b.mu.Unlock()
	select {
	case ch <- struct{}{}:
		return func() { <-ch }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
