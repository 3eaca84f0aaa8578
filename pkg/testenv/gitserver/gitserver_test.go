package gitserver_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slipwayhq/slipway/pkg/testenv/gitserver"
)

func git(t *testing.T, dir string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "GIT_CONFIG_GLOBAL=" + os.Getenv("GIT_CONFIG_GLOBAL"), "GIT_TERMINAL_PROMPT=0", "GIT_CONFIG_NOSYSTEM=1",
		"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@t", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@t"}
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

func TestServeCloneAndPush(t *testing.T) {
	s := gitserver.New(t)
	r := s.Repo(t, "app")
	first := r.Commit(t, "main", "first", map[string]string{"README": "one\n", "run.sh": "#!/bin/sh\n"})
	second := r.Commit(t, "main", "second", map[string]string{"README": "two\n"})
	r.Branch(t, "feature", first)
	pr := r.PullRequest(t, 7, "feature")
	if pr != first {
		t.Fatalf("PR ref at %s, want %s", pr, first)
	}

	out, err := git(t, "", "ls-remote", r.URL)
	if err != nil {
		t.Fatalf("ls-remote: %v\n%s", err, out)
	}
	for _, want := range []string{second + "\trefs/heads/main", first + "\trefs/heads/feature", first + "\trefs/pull/7/head"} {
		if !strings.Contains(out, want) {
			t.Errorf("ls-remote lacks %q:\n%s", want, out)
		}
	}

	dir := filepath.Join(t.TempDir(), "c")
	if out, err := git(t, "", "clone", "--quiet", r.URL, dir); err != nil {
		t.Fatalf("clone: %v\n%s", err, out)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "README"))
	if string(b) != "two\n" {
		t.Fatalf("README = %q", b)
	}
	if fi, err := os.Stat(filepath.Join(dir, "run.sh")); err != nil || fi.Mode()&0o100 == 0 {
		t.Fatalf("run.sh not executable: %v %v", fi, err)
	}

	// Push works (receive-pack enabled).
	if err := os.WriteFile(filepath.Join(dir, "new"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"add", "new"}, {"commit", "-q", "-m", "third"}, {"push", "-q", "origin", "main"}} {
		if out, err := git(t, dir, args...); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	head, _ := git(t, dir, "rev-parse", "HEAD")
	if got := r.Resolve(t, "refs/heads/main"); got != head {
		t.Fatalf("server main = %s after push, want %s", got, head)
	}
}

func TestBasicAuth(t *testing.T) {
	s := gitserver.New(t, gitserver.WithBasicAuth("alice", "s3cret"))
	r := s.Repo(t, "private")
	sha := r.Commit(t, "main", "c", map[string]string{"a": "b"})
	if out, err := git(t, "", "ls-remote", r.URL); err == nil {
		t.Fatalf("ls-remote without credentials succeeded:\n%s", out)
	}
	u := strings.Replace(r.URL, "http://", "http://alice:s3cret@", 1)
	out, err := git(t, "", "ls-remote", u)
	if err != nil || !strings.Contains(out, sha) {
		t.Fatalf("ls-remote with credentials: %v\n%s", err, out)
	}
}

func TestFileRepoOwnedByAnotherUser(t *testing.T) {
	root := t.TempDir()
	if err := os.Chmod(root, 0o755); err != nil {
		t.Fatal(err)
	}
	r := gitserver.NewFileRepo(t, root, "repo", 4242)
	sha := r.Commit(t, "main", "c", map[string]string{"f": "x"})
	fi, err := os.Stat(filepath.Join(r.Path, "HEAD"))
	if err != nil {
		t.Fatal(err)
	}
	if uid := statUID(fi); uid != 4242 {
		t.Fatalf("HEAD owned by %d, want 4242", uid)
	}
	// safe.directory from the command line does not reach the
	// upload-pack git starts for a local repository (it clears
	// GIT_CONFIG_PARAMETERS); a global configuration file does.
	cfg := filepath.Join(t.TempDir(), "gitconfig")
	if err := os.WriteFile(cfg, []byte("[safe]\n\tdirectory = *\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("GIT_CONFIG_GLOBAL", cfg)
	out, err := git(t, "", "ls-remote", r.URL)
	if err != nil || !strings.Contains(out, sha+"\trefs/heads/main") {
		t.Fatalf("ls-remote %s: %v\n%s", r.URL, err, out)
	}
}
