// Package gitserver is a real git server on the loopback interface for
// tests: `git http-backend` (smart HTTP, fetch and push) behind the
// standard library's net/http/cgi, with optional basic auth, and bare
// repositories on disk for file:// URLs. Repositories are made and changed
// with the git CLI (plumbing commands on the bare repository, no working
// tree), so a test states its commits as maps of path to content.
//
// Nothing here mocks git: clients talk to the same server code a
// self-hosted git installation runs. The test fails (never skips) when git
// is missing.
package gitserver

import (
	"bytes"
	"crypto/subtle"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
)

// Server is a smart-HTTP git server on 127.0.0.1 (or the address of
// WithListenAddress) serving the bare repositories under Root.
type Server struct {
	// URL is the server's base URL (http://127.0.0.1:<port>); a
	// repository named r is at URL + "/r.git".
	URL string
	// Root holds the bare repositories.
	Root string

	user, pass string
	listen     string
	requests   atomic.Int64
}

// Option configures New.
type Option func(*Server)

// WithBasicAuth makes the server answer 401 to any request without these
// basic-auth credentials, like a private repository on a git host.
func WithBasicAuth(user, password string) Option {
	return func(s *Server) { s.user, s.pass = user, password }
}

// WithListenAddress makes the server listen on addr (a loopback
// host:port such as "[::1]:0") rather than 127.0.0.1.
func WithListenAddress(addr string) Option {
	return func(s *Server) { s.listen = addr }
}

// New starts a server for the test; it is closed at the end of the test.
func New(t testing.TB, opts ...Option) *Server {
	t.Helper()
	git := gitBinary(t)
	out, err := exec.Command(git, "--exec-path").Output()
	if err != nil {
		t.Fatalf("gitserver: git --exec-path: %v", err)
	}
	backend := filepath.Join(strings.TrimSpace(string(out)), "git-http-backend")
	if _, err := os.Stat(backend); err != nil {
		t.Fatalf("gitserver: git-http-backend not found: %v", err)
	}
	s := &Server{Root: t.TempDir()}
	for _, o := range opts {
		o(s)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		if s.user != "" || s.pass != "" {
			u, p, ok := r.BasicAuth()
			if !ok || subtle.ConstantTimeCompare([]byte(u), []byte(s.user)) != 1 || subtle.ConstantTimeCompare([]byte(p), []byte(s.pass)) != 1 {
				w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
				http.Error(w, "authentication required", http.StatusUnauthorized)
				return
			}
		}
		// The protocol version travels in a header that CGI would only
		// pass as HTTP_GIT_PROTOCOL; http-backend reads GIT_PROTOCOL.
		env := []string{"GIT_PROJECT_ROOT=" + s.Root, "GIT_HTTP_EXPORT_ALL=1", "GIT_CONFIG_NOSYSTEM=1", "HOME=" + s.Root}
		if p := r.Header.Get("Git-Protocol"); p != "" {
			env = append(env, "GIT_PROTOCOL="+p)
		}
		if s.user != "" {
			env = append(env, "REMOTE_USER="+s.user)
		}
		h := &cgi.Handler{Path: backend, Dir: s.Root, Env: env, InheritEnv: []string{"PATH"}, Stderr: io.Discard}
		h.ServeHTTP(w, r)
	}))
	if s.listen != "" {
		l, err := net.Listen("tcp", s.listen)
		if err != nil {
			t.Fatalf("gitserver: listen on %s: %v", s.listen, err)
		}
		srv.Listener.Close()
		srv.Listener = l
	}
	srv.Start()
	t.Cleanup(srv.Close)
	s.URL = srv.URL
	return s
}

// Requests is how many HTTP requests the server has had.
func (s *Server) Requests() int64 { return s.requests.Load() }

// Repo creates an empty bare repository name (".git" is appended) that
// accepts pushes, and returns it.
func (s *Server) Repo(t testing.TB, name string) *Repo {
	t.Helper()
	r := newBare(t, filepath.Join(s.Root, name+".git"))
	r.URL = s.URL + "/" + name + ".git"
	return r
}

// Repo is a bare repository on disk.
type Repo struct {
	// Path is the repository's directory; URL is how a client reaches
	// it (the server's URL, or file://<Path> for a file repository).
	Path string
	URL  string
}

// NewFileRepo creates an empty bare repository at dir/name.git for
// file:// URLs. With uid > 0 the repository is given to that user (and
// group) after every change, as a repository of another user on the
// server's disk would be; it stays readable by everyone, like a shared
// repository under /srv. Changing owners needs root, as the test
// machine's is.
func NewFileRepo(t testing.TB, dir, name string, uid int) *FileRepo {
	t.Helper()
	r := newBare(t, filepath.Join(dir, name+".git"))
	r.URL = "file://" + r.Path
	f := &FileRepo{Repo: r, uid: uid}
	f.chown(t)
	return f
}

// FileRepo is a bare repository for file:// URLs, owned by a given user.
type FileRepo struct {
	*Repo
	uid int
}

// Commit is Repo.Commit, keeping the repository's owner.
func (f *FileRepo) Commit(t testing.TB, branch, message string, files map[string]string) string {
	t.Helper()
	sha := f.Repo.Commit(t, branch, message, files)
	f.chown(t)
	return sha
}

func (f *FileRepo) chown(t testing.TB) {
	t.Helper()
	if f.uid <= 0 {
		return
	}
	err := filepath.Walk(f.Path, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, f.uid, f.uid)
	})
	if err != nil {
		t.Fatalf("gitserver: chown %s: %v", f.Path, err)
	}
}

func newBare(t testing.TB, path string) *Repo {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatalf("gitserver: %v", err)
	}
	r := &Repo{Path: path}
	r.git(t, nil, "", "init", "--quiet", "--bare", "--initial-branch=main", path)
	r.git(t, nil, "", "config", "http.receivepack", "true")
	// Group and world readable, like a repository others fetch from.
	r.git(t, nil, "", "config", "core.sharedRepository", "0644")
	if err := os.Chmod(path, 0o755); err != nil {
		t.Fatalf("gitserver: %v", err)
	}
	return r
}

// Commit commits files (path → content; a path ending in ".sh" is made
// executable) on top of branch (created when missing), leaving the files
// it does not name as they were, and returns the new commit's SHA.
func (r *Repo) Commit(t testing.TB, branch, message string, files map[string]string) string {
	t.Helper()
	return r.commit(t, branch, message, files, nil)
}

// Submodule commits a submodule at path (a gitlink to sha, and its entry
// in .gitmodules with url) on top of branch, and returns the new commit's
// SHA.
func (r *Repo) Submodule(t testing.TB, branch, message, path, url, sha string) string {
	t.Helper()
	modules := ""
	if parent := r.Resolve(t, "refs/heads/"+branch); parent != "" {
		cmd := r.cmd(nil, "cat-file", "-p", parent+":.gitmodules")
		if out, err := cmd.Output(); err == nil {
			modules = string(out)
		}
	}
	modules += fmt.Sprintf("[submodule %q]\n\tpath = %s\n\turl = %s\n", path, path, url)
	return r.commit(t, branch, message, map[string]string{".gitmodules": modules}, map[string]string{path: sha})
}

// Symlink commits a symbolic link at path pointing at target on top of
// branch, and returns the new commit's SHA.
func (r *Repo) Symlink(t testing.TB, branch, message, path, target string) string {
	t.Helper()
	return r.commit(t, branch, message, map[string]string{path: "\x00symlink:" + target}, nil)
}

// commit commits files and gitlinks (path → commit SHA) on top of branch.
func (r *Repo) commit(t testing.TB, branch, message string, files, links map[string]string) string {
	t.Helper()
	index := filepath.Join(t.TempDir(), "index")
	env := []string{"GIT_INDEX_FILE=" + index}
	parent := r.Resolve(t, "refs/heads/"+branch)
	if parent != "" {
		r.git(t, env, "", "read-tree", parent)
	} else {
		r.git(t, env, "", "read-tree", "--empty")
	}
	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		content, mode := files[p], "100644"
		if target, ok := strings.CutPrefix(content, "\x00symlink:"); ok {
			content, mode = target, "120000"
		} else if strings.HasSuffix(p, ".sh") {
			mode = "100755"
		}
		blob := r.git(t, env, content, "hash-object", "-w", "--stdin")
		r.git(t, env, "", "update-index", "--add", "--cacheinfo", mode+","+blob+","+p)
	}
	for p, sha := range links {
		r.git(t, env, "", "update-index", "--add", "--cacheinfo", "160000,"+sha+","+p)
	}
	tree := r.git(t, env, "", "write-tree")
	args := []string{"commit-tree", tree, "-m", message}
	if parent != "" {
		args = append(args, "-p", parent)
	}
	sha := r.git(t, env, "", args...)
	r.git(t, nil, "", "update-ref", "refs/heads/"+branch, sha)
	return sha
}

// Branch makes branch name point at from (a branch name or a SHA).
func (r *Repo) Branch(t testing.TB, name, from string) string {
	t.Helper()
	sha := r.mustResolve(t, from)
	r.git(t, nil, "", "update-ref", "refs/heads/"+name, sha)
	return sha
}

// PullRequest makes refs/pull/<n>/head (GitHub's ref for a pull
// request's head) point at from (a branch name or a SHA).
func (r *Repo) PullRequest(t testing.TB, n int, from string) string {
	t.Helper()
	sha := r.mustResolve(t, from)
	r.git(t, nil, "", "update-ref", "refs/pull/"+strconv.Itoa(n)+"/head", sha)
	return sha
}

// Resolve returns the SHA of a ref or commit, or "" when there is none.
func (r *Repo) Resolve(t testing.TB, ref string) string {
	t.Helper()
	cmd := r.cmd(nil, "rev-parse", "--verify", "--quiet", ref+"^{commit}")
	out, err := cmd.Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

func (r *Repo) mustResolve(t testing.TB, ref string) string {
	t.Helper()
	for _, c := range []string{"refs/heads/" + ref, ref} {
		if sha := r.Resolve(t, c); sha != "" {
			return sha
		}
	}
	t.Fatalf("gitserver: %s: no commit %q", r.Path, ref)
	return ""
}

// git runs git on the repository with stdin and returns its trimmed
// output, failing the test when it fails.
func (r *Repo) git(t testing.TB, env []string, stdin string, args ...string) string {
	t.Helper()
	cmd := r.cmd(env, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("gitserver: git %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return strings.TrimSpace(string(out))
}

func (r *Repo) cmd(env []string, args ...string) *exec.Cmd {
	// safe.directory: a file repository belongs to another user, which
	// git otherwise refuses to work in.
	full := append([]string{"-c", "safe.directory=*"}, args...)
	if args[0] != "init" {
		full = append([]string{"--git-dir=" + r.Path}, full...)
	}
	cmd := exec.Command("git", full...)
	cmd.Env = append([]string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + os.TempDir(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_AUTHOR_NAME=Slipway Test", "GIT_AUTHOR_EMAIL=test@slipway.invalid",
		"GIT_COMMITTER_NAME=Slipway Test", "GIT_COMMITTER_EMAIL=test@slipway.invalid",
	}, env...)
	return cmd
}

func gitBinary(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("git")
	if err != nil {
		t.Fatalf("gitserver: git not found on PATH (%v); run `make test`, which installs the test dependencies via scripts/install-deps.sh", err)
	}
	return p
}

// String describes the server for failure messages.
func (s *Server) String() string { return fmt.Sprintf("git server %s (%s)", s.URL, s.Root) }
