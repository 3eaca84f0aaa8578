package builder

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/slipwayhq/slipway/pkg/runtime"
)

// In the clone's sandbox the work directory is /build; the clone goes to
// /build/src and Slipway's files (git configuration, askpass helper, key,
// the SHA) to /build/.slipway, which never reaches the build.
const (
	buildMount = "/build"
	repoMount  = "/repository" // a file:// repository, read-only
)

// cloneScript fetches one commit into /build/src. Exit codes: 10 the
// repository cannot be read, 11 no such branch, 12 no such commit, 13 no
// such pull request, 14 the fetch or checkout failed, 17 no refs at all.
const cloneScript = `set -u
cd /build || exit 1
git init -q src || exit 1
cd src || exit 1
git remote add origin "$SLIPWAY_URL" || exit 1
depth=--depth=1
[ "$SLIPWAY_FULL" = 1 ] && depth=
case "$SLIPWAY_MODE" in
branch)
	git ls-remote --exit-code origin "refs/heads/$SLIPWAY_BRANCH" >/dev/null
	rc=$?
	[ $rc -ne 0 ] && [ $rc -ne 2 ] && exit 10
	if [ $rc -eq 2 ]; then
		# No such branch, or no refs at all: not a repository (a web
		# page answering like a dumb-HTTP one) or an empty one.
		refs=$(git ls-remote origin) || exit 10
		[ -n "$refs" ] || exit 17
		exit 11
	fi
	git fetch --no-tags $depth origin "+refs/heads/$SLIPWAY_BRANCH:refs/remotes/origin/build" || exit 14
	git checkout -q --detach refs/remotes/origin/build || exit 14
	;;
pr)
	found=
	for ref in "refs/pull/$SLIPWAY_PR/head" "refs/merge-requests/$SLIPWAY_PR/head"; do
		out=$(git ls-remote origin "$ref") || exit 10
		if [ -n "$out" ]; then found=$ref; break; fi
	done
	if [ -z "$found" ]; then
		refs=$(git ls-remote origin) || exit 10
		[ -n "$refs" ] || exit 17
		exit 13
	fi
	git fetch --no-tags $depth origin "+$found:refs/remotes/origin/build" || exit 14
	git checkout -q --detach refs/remotes/origin/build || exit 14
	;;
sha)
	refs=$(git ls-remote origin) || exit 10
	[ -n "$refs" ] || exit 17
	ok=
	if [ ${#SLIPWAY_SHA} -ge 40 ] && git fetch --no-tags $depth origin "$SLIPWAY_SHA" 2>/dev/null; then ok=1; fi
	if [ -z "$ok" ]; then
		echo "slipway: fetching the branches and pull requests to find commit $SLIPWAY_SHA" >&2
		git fetch --no-tags origin '+refs/heads/*:refs/remotes/origin/*' '+refs/pull/*/head:refs/remotes/pull/*' '+refs/merge-requests/*/head:refs/remotes/mr/*' || exit 14
	fi
	git rev-parse --verify --quiet "$SLIPWAY_SHA^{commit}" >/dev/null || exit 12
	git checkout -q --detach "$SLIPWAY_SHA^{commit}" || exit 14
	;;
esac
git rev-parse HEAD >/build/.slipway/sha || exit 14
`

// extrasScript fetches submodules (one level more each run: the builder
// checks the URLs of every .gitmodules before) and LFS objects.
const extrasScript = `set -u
cd /build/src || exit 1
depth=--depth=1
[ "$SLIPWAY_FULL" = 1 ] && depth=
if [ "$SLIPWAY_SUBMODULES" = 1 ]; then
	git submodule sync -q --recursive || exit 15
	git submodule update -q --init $depth || exit 15
	git submodule foreach -q --recursive "git submodule update -q --init $depth" || exit 15
fi
if [ "$SLIPWAY_LFS" = 1 ]; then
	git lfs install --local --skip-repo >/dev/null || exit 16
	GIT_LFS_SKIP_SMUDGE=0 git lfs pull || exit 16
	git submodule foreach -q --recursive 'git lfs install --local --skip-repo >/dev/null && GIT_LFS_SKIP_SMUDGE=0 git lfs pull' || exit 16
fi
`

// sshScript runs ssh for git. ssh refuses to run for a user id missing
// from /etc/passwd ("No user exists for uid"), as a workload's is: with
// nss_wrapper (libnss-wrapper) it gets a passwd entry of its own.
//
// git runs it as `ssh [-o SendEnv=GIT_PROTOCOL] [-p PORT] [user@]HOST
// COMMAND` (git-lfs with a few more -o options). It connects only to an
// ssh server the builder checked (the repository's, a submodule's), each
// listed in /build/.slipway/ssh_hosts as "host port address alias": to
// the address the check approved (HostName), so that ssh never resolves
// the name again and a DNS answer that changed since (rebinding) cannot
// send it elsewhere; and it checks the server's key under the name
// known_hosts has for it (HostKeyAlias: "host", or "[host]:port" on
// another port than 22), not under the address. Any other destination is
// refused.
const sshScript = `#!/bin/sh
if [ -n "${SLIPWAY_NSS_WRAPPER:-}" ] && ! id -un >/dev/null 2>&1; then
	printf 'build:x:%%s:%%s::/build/.slipway/home:/bin/sh\n' "$(id -u)" "$(id -g)" >/build/.slipway/passwd
	printf 'build:x:%%s:\n' "$(id -g)" >/build/.slipway/group
	export NSS_WRAPPER_PASSWD=/build/.slipway/passwd NSS_WRAPPER_GROUP=/build/.slipway/group LD_PRELOAD="$SLIPWAY_NSS_WRAPPER"
fi
destination() {
	port=22
	while getopts :1246ab:c:e:fgi:kl:m:no:p:qstvxAB:CD:E:F:GI:J:KL:MNO:P:Q:R:S:TVw:W:XYy opt; do
		[ "$opt" = p ] && port=$OPTARG
	done
	shift $((OPTIND - 1))
	host=$(printf '%%s' "${1##*@}" | tr '[:upper:]' '[:lower:]')
}
destination "$@"
checked=
while read -r h p ip alias; do
	if [ "$h" = "$host" ] && [ "$p" = "$port" ]; then checked=1; break; fi
done </build/.slipway/ssh_hosts
if [ -z "$checked" ]; then
	echo "slipway: ssh to $host port $port refused: it is not a server this build checked" >&2
	exit 255
fi
exec ssh -F /dev/null -o BatchMode=yes -o StrictHostKeyChecking=%s -o UserKnownHostsFile=/build/.slipway/known_hosts -o GlobalKnownHostsFile=/dev/null -o CheckHostIP=no -o UpdateHostKeys=no -o IdentitiesOnly=yes%s -o HostName="$ip" -o HostKeyAlias="$alias" "$@"
`

// askpassScript answers git's prompts. The password is read from a file
// of the work directory, not the environment, which a container engine
// shows to anyone who can inspect the container.
const askpassScript = `#!/bin/sh
case "$1" in
Username*|username*) printf '%s\n' "$SLIPWAY_GIT_USERNAME" ;;
*) cat /build/.slipway/password ;;
esac
`

// gitEnv writes git's configuration and helpers into the work directory
// and returns the clone's environment.
func (r *run) gitEnv() (map[string]string, error) {
	sl := filepath.Join(r.work, ".slipway")
	var cfg strings.Builder
	cfg.WriteString("[protocol]\n\tallow = never\n")
	for _, p := range []string{"https", "http", "ssh"} {
		fmt.Fprintf(&cfg, "[protocol %q]\n\tallow = always\n", p)
	}
	if r.src.filePath != "" {
		cfg.WriteString("[protocol \"file\"]\n\tallow = always\n")
	}
	// The repository may belong to another user (a file:// one does).
	// A global file, not "-c": git clears command-line configuration for
	// the upload-pack it starts for a local repository.
	cfg.WriteString("[safe]\n\tdirectory = *\n")
	cfg.WriteString("[credential]\n\thelper =\n")
	cfg.WriteString("[core]\n\thooksPath = /dev/null\n\tfsmonitor = false\n")
	cfg.WriteString("[advice]\n\tdetachedHead = false\n")
	cfg.WriteString("[init]\n\tdefaultBranch = main\n")
	if r.src.scheme == "http" || r.src.scheme == "https" {
		// LFS would read its server from the repository's .lfsconfig:
		// hold it to the checked host.
		fmt.Fprintf(&cfg, "[lfs]\n\turl = %s\n", gitQuote(strings.TrimSuffix(r.src.url, "/")+"/info/lfs"))
	}
	env := map[string]string{
		"HOME":                buildMount + "/.slipway/home",
		"GIT_CONFIG_GLOBAL":   buildMount + "/.slipway/gitconfig",
		"GIT_CONFIG_NOSYSTEM": "1",
		"GIT_TERMINAL_PROMPT": "0",
		"GIT_LFS_SKIP_SMUDGE": "1",
		"LC_ALL":              "C",
		"SLIPWAY_URL":         r.src.url,
	}
	if r.src.filePath != "" {
		env["SLIPWAY_URL"] = "file://" + repoMount
	}
	c := r.src.creds
	if c.Username != "" || c.Password != "" {
		if err := os.WriteFile(filepath.Join(sl, "askpass"), []byte(askpassScript), 0o700); err != nil {
			return nil, internal(err)
		}
		user := c.Username
		if user == "" {
			user = "x-access-token"
		}
		if err := os.WriteFile(filepath.Join(sl, "password"), []byte(c.Password+"\n"), 0o600); err != nil {
			return nil, internal(err)
		}
		env["GIT_ASKPASS"] = buildMount + "/.slipway/askpass"
		env["SLIPWAY_GIT_USERNAME"] = user
	}
	key := ""
	if c.PrivateKey != "" {
		if err := os.WriteFile(filepath.Join(sl, "id"), []byte(strings.TrimSpace(c.PrivateKey)+"\n"), 0o600); err != nil {
			return nil, internal(err)
		}
		key = " -i " + buildMount + "/.slipway/id"
	}
	// Without known hosts the build accepts the key the server presents
	// (into a file of its own that is gone after the build); with them
	// ssh connects only to a server holding one of those keys.
	strict := "accept-new"
	if c.KnownHosts != "" {
		if err := os.WriteFile(filepath.Join(sl, "known_hosts"), []byte(strings.TrimSpace(c.KnownHosts)+"\n"), 0o600); err != nil {
			return nil, internal(err)
		}
		strict = "yes"
	}
	if err := os.WriteFile(filepath.Join(sl, "ssh"), []byte(fmt.Sprintf(sshScript, strict, key)), 0o700); err != nil {
		return nil, internal(err)
	}
	r.sshHosts = nil
	if r.src.ssh.host != "" {
		r.sshHosts = append(r.sshHosts, r.src.ssh)
	}
	if err := r.writeSSHHosts(); err != nil {
		return nil, err
	}
	env["GIT_SSH_COMMAND"] = buildMount + "/.slipway/ssh"
	if r.b.nssWrapper != "" {
		env["SLIPWAY_NSS_WRAPPER"] = r.b.nssWrapper
	}
	r.gitConfig = cfg.String()
	r.pins = nil
	if r.src.pin != "" {
		r.pins = append(r.pins, r.src.pin)
	}
	if err := r.writeGitConfig(); err != nil {
		return nil, err
	}
	if err := r.handOver(); err != nil {
		return nil, err
	}
	return env, nil
}

// writeSSHHosts writes the ssh servers the build checked, for sshScript.
//
// It runs again after a clone container ran (for submodules), when the
// clone user owns .slipway and may have left anything at its path, such
// as a symbolic link to a file of the server's: so the file is written
// within the work directory (os.Root: no link leads out of it) as a new
// file (whatever was at its path removed first, O_EXCL: a link planted
// meanwhile fails the write rather than being followed), then given to
// the clone user through its descriptor.
func (r *run) writeSSHHosts() error {
	var b strings.Builder
	for _, h := range r.sshHosts {
		b.WriteString(h.line())
	}
	root, err := os.OpenRoot(r.work)
	if err != nil {
		return internal(err)
	}
	defer root.Close()
	name := filepath.Join(".slipway", "ssh_hosts")
	if err := root.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return internal(err)
	}
	f, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return internal(err)
	}
	_, err = f.WriteString(b.String())
	if err == nil && r.cloneUID > 0 {
		err = f.Chown(r.cloneUID, r.cloneGID)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return internal(err)
	}
	return nil
}

// writeGitConfig writes git's global configuration with the pins: one
// http.curloptResolve value each (git passes them all to curl), so that
// git connects to each http(s) server at the address checked for it.
func (r *run) writeGitConfig() error {
	var cfg strings.Builder
	cfg.WriteString(r.gitConfig)
	cfg.WriteString("[http]\n\tfollowRedirects = false\n")
	for _, p := range r.pins {
		fmt.Fprintf(&cfg, "\tcurloptResolve = %s\n", gitQuote(p))
	}
	if err := os.WriteFile(filepath.Join(r.work, ".slipway", "gitconfig"), []byte(cfg.String()), 0o600); err != nil {
		return internal(err)
	}
	return nil
}

// pinned reports whether the host:port of a curloptResolve value
// ("host:port:addr", host a name) is pinned already: curl would take
// only one of two entries for it, so the first check stands.
func (r *run) pinned(pin string) bool {
	hostPort := func(p string) string {
		f := strings.SplitN(p, ":", 3)
		return strings.ToLower(f[0]) + ":" + f[1]
	}
	for _, p := range r.pins {
		if hostPort(p) == hostPort(pin) {
			return true
		}
	}
	return false
}

// gitQuote quotes a value for a git configuration file.
func gitQuote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// clone fetches the source into <work>/src and returns the commit's SHA.
func (r *run) clone() (string, error) {
	s := r.req.Source
	env, err := r.gitEnv()
	if err != nil {
		return "", err
	}
	switch {
	case s.SHA != "":
		env["SLIPWAY_MODE"], env["SLIPWAY_SHA"] = "sha", strings.ToLower(s.SHA)
		r.log.info("cloning %s at commit %s", r.src.display, s.SHA)
	case s.PullRequest > 0:
		env["SLIPWAY_MODE"], env["SLIPWAY_PR"] = "pr", strconv.Itoa(s.PullRequest)
		r.log.info("cloning %s, pull request %d", r.src.display, s.PullRequest)
	default:
		env["SLIPWAY_MODE"], env["SLIPWAY_BRANCH"] = "branch", s.Branch
		r.log.info("cloning %s, branch %s", r.src.display, s.Branch)
	}
	env["SLIPWAY_FULL"] = "0"
	if s.FullClone {
		env["SLIPWAY_FULL"] = "1"
	}
	spec := r.gitSpec(env, cloneScript)
	st, tail, err := r.workload("clone", spec)
	if err != nil {
		return "", err
	}
	if st.ExitCode != 0 || st.Reason != "" {
		return "", r.cloneError(st, tail)
	}
	b, err := readWorkFile(r.work, ".slipway/sha")
	sha := strings.TrimSpace(string(b))
	if err != nil || !shaRe.MatchString(sha) {
		return "", internal(fmt.Errorf("clone left no SHA: %v", err))
	}
	r.log.info("checked out commit %s", sha)

	if s.Submodules || s.LFS {
		if err := r.extras(env); err != nil {
			return "", err
		}
	}
	// What git needed (credentials included) is gone before the build.
	if err := os.RemoveAll(filepath.Join(r.work, ".slipway")); err != nil {
		return "", internal(err)
	}
	if !s.IncludeGit {
		if err := removeGitDirs(filepath.Join(r.work, "src")); err != nil {
			return "", internal(err)
		}
	}
	return sha, nil
}

// gitSpec is the sandboxed workload running script for git.
func (r *run) gitSpec(env map[string]string, script string) runtime.Spec {
	spec := runtime.Spec{
		Command:     []string{"/bin/sh", "-c", script},
		Env:         env,
		Mounts:      []runtime.Mount{{Source: r.work, Target: buildMount}},
		WorkDir:     buildMount,
		HostNetwork: true,
	}
	if r.src.filePath != "" {
		spec.Mounts = append(spec.Mounts, runtime.Mount{Source: r.src.filePath, Target: repoMount, ReadOnly: true})
	}
	r.inContainer(&spec)
	return spec
}

// cloneError is the reason a clone failed, from its exit code and its last
// lines.
func (r *run) cloneError(st runtime.Status, tail []string) error {
	s := r.req.Source
	if st.Reason == runtime.ReasonDeadline {
		return errorf(KindTimeout, "cloning %s took too long", r.src.display)
	}
	switch st.ExitCode {
	case 11:
		return errorf(KindSource, "branch %q not found in %s", s.Branch, r.src.display)
	case 12:
		return errorf(KindSource, "commit %s not found in %s", s.SHA, r.src.display)
	case 13:
		return errorf(KindSource, "pull request %d not found in %s", s.PullRequest, r.src.display)
	case 10:
		return errorf(KindSource, "%s: %s", r.src.display, readFailure(tail))
	case 17:
		return errorf(KindSource, "%s: no git repository at this URL, or an empty one", r.src.display)
	case 15:
		return errorf(KindSource, "the submodules of %s could not be fetched (see the build log)", r.src.display)
	case 16:
		return errorf(KindSource, "the Git LFS objects of %s could not be fetched (see the build log)", r.src.display)
	}
	return errorf(KindSource, "%s could not be cloned (see the build log)", r.src.display)
}

// readFailure says why git could not read a repository, from its output.
func readFailure(tail []string) string {
	out := strings.ToLower(strings.Join(tail, "\n"))
	has := func(s ...string) bool {
		for _, x := range s {
			if strings.Contains(out, x) {
				return true
			}
		}
		return false
	}
	switch {
	case has("host key verification failed", "remote host identification has changed", "host key is known for"):
		return "the ssh server's host key is not one of vcsData.credentials.knownHosts: the server changed its key, or another server answered"
	case has("could not read username", "could not read password", "authentication failed", "terminal prompts disabled", "permission denied (publickey", "returned error: 401", "returned error: 403", "access denied"):
		return "authentication failed: the repository needs credentials, or those given are wrong"
	case has("could not resolve host", "could not resolve hostname", "failed to connect", "connection refused", "connection timed out", "no route to host", "network is unreachable", "connection reset", "operation timed out"):
		return "the repository's host could not be reached"
	case has("redirect"):
		return "the server redirected to another location, which is not followed; give the repository's final URL"
	case has("does not appear to be a git repository", "not found", "not valid: is this a git repository", "returned error: 404", "not a git repository", "no such file"):
		return "no git repository at this URL"
	}
	return "the repository could not be read (see the build log)"
}

// extras fetches submodules and LFS objects, checking every submodule URL
// first, one level of nesting per round.
func (r *run) extras(env map[string]string) error {
	s := r.req.Source
	env["SLIPWAY_SUBMODULES"], env["SLIPWAY_LFS"] = "0", "0"
	if s.LFS {
		env["SLIPWAY_LFS"] = "1"
	}
	if !s.Submodules {
		st, tail, err := r.workload("lfs", r.gitSpec(env, extrasScript))
		if err != nil {
			return err
		}
		if st.ExitCode != 0 || st.Reason != "" {
			return r.cloneError(st, tail)
		}
		return nil
	}
	env["SLIPWAY_SUBMODULES"] = "1"
	seen := map[string]bool{}
	for round := 0; ; round++ {
		files, err := gitmodulesFiles(filepath.Join(r.work, "src"))
		if err != nil {
			return internal(err)
		}
		fresh := 0
		for _, f := range files {
			if !seen[f] {
				fresh++
				seen[f] = true
			}
			if err := r.checkSubmodules(f); err != nil {
				return err
			}
		}
		if round > 0 && fresh == 0 {
			break
		}
		if round == 4 {
			return errorf(KindSource, "submodules are nested more than 4 levels deep")
		}
		if fresh == 0 && !s.LFS {
			break
		}
		if fresh > 0 {
			r.log.info("fetching submodules (level %d)", round+1)
		}
		st, tail, err := r.workload("submodules-"+strconv.Itoa(round), r.gitSpec(env, extrasScript))
		if err != nil {
			return err
		}
		if st.ExitCode != 0 || st.Reason != "" {
			return r.cloneError(st, tail)
		}
		if fresh == 0 {
			break
		}
	}
	return nil
}

// gitmodulesFiles lists the .gitmodules files under dir (relative paths).
func gitmodulesFiles(dir string) ([]string, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	var out []string
	err = fs.WalkDir(root.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.IsDir() && d.Name() == ".git" {
			return fs.SkipDir
		}
		if d.Name() == ".gitmodules" && d.Type().IsRegular() {
			out = append(out, p)
		}
		return nil
	})
	return out, err
}

// checkSubmodules checks the URLs of a .gitmodules file (relative URLs are
// on the checked host already).
func (r *run) checkSubmodules(rel string) error {
	b, err := readWorkFile(filepath.Join(r.work, "src"), rel)
	if err != nil {
		return internal(err)
	}
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), "=")
		if !ok || !strings.EqualFold(strings.TrimSpace(k), "url") {
			continue
		}
		v = strings.Trim(strings.TrimSpace(v), `"`)
		if strings.HasPrefix(v, "./") || strings.HasPrefix(v, "../") {
			if r.src.filePath != "" {
				return errorf(KindInvalid, "submodule %q: relative submodules of file:// repositories are not supported", v)
			}
			continue
		}
		if u, err := url.Parse(v); err == nil && strings.EqualFold(u.Scheme, "file") || path.IsAbs(v) {
			return errorf(KindInvalid, "submodule %q: file:// submodules are not supported", redactURL(v))
		}
		sub, err := r.b.checkURL(r.ctx, v, Credentials{})
		if err != nil {
			if e, ok := err.(*Error); ok {
				return &Error{Kind: e.Kind, Message: "submodule: " + e.Message}
			}
			return err
		}
		if sub.ssh.host != "" && !slices.Contains(r.sshHosts, sub.ssh) {
			// Held to the address checked, like the repository's.
			r.sshHosts = append(r.sshHosts, sub.ssh)
			if err := r.writeSSHHosts(); err != nil {
				return err
			}
		}
		if sub.pin != "" && !r.pinned(sub.pin) {
			// Held to the address checked, like the repository's.
			r.pins = append(r.pins, sub.pin)
			if err := r.writeGitConfig(); err != nil {
				return err
			}
		}
	}
	return nil
}

// removeGitDirs removes .git (directories, or the files submodules have)
// under dir without following symbolic links.
func removeGitDirs(dir string) error {
	var gits []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.Name() == ".git" {
			gits = append(gits, p)
			if d.IsDir() {
				return fs.SkipDir
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, g := range gits {
		if err := os.RemoveAll(g); err != nil {
			return err
		}
	}
	return nil
}

// Ref is a branch or pull request head of a remote repository.
type Ref struct {
	Name        string // the branch name, or the ref of a pull request
	SHA         string
	PullRequest int // > 0 for a pull request's head
}

// Refs lists the branches and pull request heads of a repository
// (git ls-remote, sandboxed like a clone). On failure the error is an
// *Error.
func (b *Builder) Refs(ctx context.Context, src Source) ([]Ref, error) {
	const script = `git ls-remote "$SLIPWAY_URL" 'refs/heads/*' 'refs/pull/*/head' 'refs/merge-requests/*/head' || exit 10`
	out, err := b.remote(ctx, src, "refs", "listing the branches", script, nil)
	if err != nil {
		return nil, err
	}
	var refs []Ref
	for _, line := range strings.Split(out, "\n") {
		sha, name, ok := strings.Cut(strings.TrimSpace(line), "\t")
		if !ok || !shaRe.MatchString(sha) {
			continue
		}
		switch {
		case strings.HasPrefix(name, "refs/heads/"):
			refs = append(refs, Ref{Name: strings.TrimPrefix(name, "refs/heads/"), SHA: sha})
		case strings.HasSuffix(name, "/head"):
			parts := strings.Split(name, "/")
			if len(parts) == 4 {
				if n, err := strconv.Atoi(parts[2]); err == nil && n > 0 {
					refs = append(refs, Ref{Name: name, SHA: sha, PullRequest: n})
				}
			}
		}
	}
	return refs, nil
}

// remote runs a script against a repository's remote in the clone's
// sandbox (never with the server's own privileges), with the clone's git
// configuration and credentials, and returns what it wrote to stdout.
// what names the step in a timeout's message. On failure the error is an
// *Error.
func (b *Builder) remote(ctx context.Context, src Source, step, what, script string, extra map[string]string) (string, error) {
	s, err := b.checkURL(ctx, src.URL, src.Credentials)
	if err != nil {
		return "", err
	}
	var id [8]byte
	if _, err := rand.Read(id[:]); err != nil {
		return "", internal(err)
	}
	out := &strings.Builder{}
	r := &run{b: b, src: s, ctx: ctx, req: Request{BuildID: step + "-" + fmt.Sprintf("%x", id), Source: src}}
	r.log = newRedactor(func(stream, line string) {
		if stream == "stdout" && out.Len() < 16<<20 {
			out.WriteString(line + "\n")
		}
	}, src.Credentials, s.userinfo)
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	r.ctx = ctx
	defer r.cleanup()
	if err := r.prepare(); err != nil {
		return "", err
	}
	env, err := r.gitEnv()
	if err != nil {
		return "", err
	}
	for k, v := range extra {
		env[k] = v
	}
	st, tail, err := r.workload(step, r.gitSpec(env, script))
	if err != nil {
		if ctx.Err() != nil {
			return "", errorf(KindSource, "%s: %s took too long", s.display, what)
		}
		var e *Error
		if errors.As(err, &e) {
			return "", e
		}
		return "", internal(err)
	}
	if st.ExitCode != 0 || st.Reason != "" {
		return "", errorf(KindSource, "%s: %s", s.display, readFailure(tail))
	}
	return out.String(), nil
}

// messagesScript fetches the commits $SLIPWAY_SHAS alone (depth 1, and
// no trees or files where the server can filter them) and prints each
// one's raw object after a line "$SLIPWAY_MARK <sha>". Fetching by id
// is what protocol v2 servers (git 2.18+, GitHub, GitLab, Gitea) allow;
// an older server refuses it, and then the heads $SLIPWAY_REFS are
// fetched by name instead: a head that moved since it was listed then
// brings another commit, and the one asked for is left out.
const messagesScript = `set -u
cd /build || exit 1
git init -q msg || exit 1
cd msg || exit 1
git remote add origin "$SLIPWAY_URL" || exit 1
if ! git fetch -q --no-tags --depth=1 --filter=tree:0 origin $SLIPWAY_SHAS 2>/dev/null; then
	git fetch -q --no-tags --depth=1 --filter=tree:0 origin $SLIPWAY_REFS || exit 10
fi
for sha in $SLIPWAY_SHAS; do
	git cat-file -e "$sha^{commit}" 2>/dev/null || continue
	printf '%s %s\n' "$SLIPWAY_MARK" "$sha"
	git cat-file commit "$sha" || exit 14
done
`

// maxMessage bounds one commit message kept for CI-skip flags.
const maxMessage = 64 << 10

// Messages returns the commit messages of heads of a repository (a
// head's Name is its ref, for a server that cannot fetch by id), by SHA,
// fetched in the clone's sandbox: only the commit objects, without their
// files where the server can filter them. A head whose commit could not
// be fetched (it moved meanwhile on a server that fetches by name only)
// is missing from the map. On failure the error is an *Error.
func (b *Builder) Messages(ctx context.Context, src Source, heads []Ref) (map[string]string, error) {
	if len(heads) == 0 {
		return map[string]string{}, nil
	}
	var shas, refs []string
	for _, h := range heads {
		if !shaRe.MatchString(h.SHA) {
			return nil, errorf(KindInvalid, "%q is not a commit id", h.SHA)
		}
		shas = append(shas, h.SHA)
		ref := h.Name
		if h.PullRequest == 0 {
			ref = "refs/heads/" + h.Name
		}
		// Names go through the shell unquoted (word-split): one with a
		// character git refuses in a ref, or a glob, is left out.
		if ref != "" && !strings.ContainsAny(ref, " \t\n*?[\\~^:") {
			refs = append(refs, ref)
		}
	}
	var m [16]byte
	if _, err := rand.Read(m[:]); err != nil {
		return nil, internal(err)
	}
	mark := fmt.Sprintf("slipway-commit-%x", m)
	out, err := b.remote(ctx, src, "messages", "reading the commit messages", messagesScript, map[string]string{
		"SLIPWAY_SHAS": strings.Join(shas, " "), "SLIPWAY_REFS": strings.Join(refs, " "), "SLIPWAY_MARK": mark,
	})
	if err != nil {
		return nil, err
	}
	msgs := map[string]string{}
	for _, part := range strings.Split(out, mark+" ")[1:] {
		sha, obj, _ := strings.Cut(part, "\n")
		// A commit object is headers, a blank line, then the message.
		_, msg, ok := strings.Cut(obj, "\n\n")
		if !ok {
			msg = ""
		}
		if len(msg) > maxMessage {
			msg = msg[:maxMessage]
		}
		msgs[sha] = msg
	}
	return msgs, nil
}
