package builder

import (
	"archive/tar"
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
)

// repoPath turns a path of the repository ("/x", "x", "" for the root)
// into a clean relative one, refusing one that leaves the repository.
func repoPath(what, p string) (string, error) {
	p = strings.TrimSpace(p)
	if strings.ContainsRune(p, 0) || strings.Contains(p, `\`) {
		return "", errorf(KindInvalid, "invalid %s %q", what, p)
	}
	c := path.Clean("/" + p)
	for _, part := range strings.Split(p, "/") {
		if part == ".." {
			return "", errorf(KindInvalid, "%s %q leaves the repository", what, p)
		}
	}
	rel := strings.TrimPrefix(c, "/")
	if rel == "" {
		rel = "."
	}
	return rel, nil
}

// inTree checks that rel exists under root and does not resolve (through
// symbolic links) outside it; dir says whether it must be a directory.
func inTree(root, rel, what string, dir bool) error {
	r, err := os.OpenRoot(root)
	if err != nil {
		return internal(err)
	}
	defer r.Close()
	fi, err := r.Stat(rel)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return errorf(KindBuild, "%s %q does not exist in the repository", what, "/"+strings.TrimPrefix(rel, "."))
		}
		return errorf(KindInvalid, "%s %q leaves the repository", what, "/"+rel)
	}
	// A directory is used by its path (walked, moved, mounted): no
	// symbolic link may be on the way to it.
	if dir && rel != "." {
		real, err := filepath.EvalSymlinks(filepath.Join(root, rel))
		base, err2 := filepath.EvalSymlinks(root)
		if err != nil || err2 != nil || real != filepath.Join(base, rel) {
			return errorf(KindInvalid, "%s %q is a symbolic link", what, "/"+rel)
		}
	}
	if fi.IsDir() != dir {
		kind := "a file"
		if dir {
			kind = "a directory"
		}
		return errorf(KindBuild, "%s %q is not %s", what, "/"+rel, kind)
	}
	return nil
}

// dockerfileBuild builds the cloned tree with its Dockerfile.
func (r *run) dockerfileBuild(sha string) (string, error) {
	df := r.req.Dockerfile
	src := filepath.Join(r.work, "src")
	ctxRel, err := repoPath("Dockerfile work directory", df.WorkDir)
	if err != nil {
		return "", err
	}
	dfRel := "Dockerfile"
	if df.Path != "" {
		if dfRel, err = repoPath("Dockerfile path", df.Path); err != nil {
			return "", err
		}
	} else {
		dfRel = path.Join(ctxRel, "Dockerfile")
	}
	if err := inTree(src, ctxRel, "Dockerfile work directory", true); err != nil {
		return "", err
	}
	if err := inTree(src, dfRel, "Dockerfile", false); err != nil {
		return "", err
	}
	dockerfile, err := readWorkFile(src, dfRel)
	if err != nil {
		return "", errorf(KindBuild, "the Dockerfile %q cannot be read", "/"+dfRel)
	}
	return r.imageBuild(sha, filepath.Join(src, ctxRel), dockerfile, df.Target)
}

// imageBuild builds an image from the directory context and the
// Dockerfile's content through the Engine API and returns its tag.
func (r *run) imageBuild(sha, contextDir string, dockerfile []byte, target string) (string, error) {
	api := r.b.cfg.Docker
	tag := r.imageTag(sha)
	// Whatever ends this build other than success leaves no step running
	// in the engine (if the engine did not end the stream itself, it may
	// still run one), no image under the tag, nor intermediate images of
	// the build.
	ok, ended := false, false
	r.onCleanup(func() {
		if !ok {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if !ended {
				r.b.stopSteps(ctx, r.req.BuildID)
			}
			_ = removeImage(ctx, api, tag, true)
			f := filters.NewArgs(filters.Arg("label", LabelBuild+"="+r.req.BuildID), filters.Arg("dangling", "true"))
			_, _ = api.ImagesPrune(ctx, f)
		}
	})
	r.log.info("building image %s", tag)
	body, err := r.startBuild(contextDir, dockerfile, r.buildQuery(tag, sha, target))
	if err != nil {
		// The engine refused the build or could not be reached; only a
		// post cut off may have left it building.
		ended = r.ctx.Err() == nil
		return "", err
	}
	defer body.Close()
	ended, err = r.readBuildStream(body)
	if err != nil {
		return "", err
	}
	if r.ctx.Err() != nil {
		return "", r.ctx.Err()
	}
	r.phase(PhaseUploading)
	if _, err := api.ImageInspect(r.ctx, tag); err != nil {
		return "", internal(fmt.Errorf("built image %s not found: %w", tag, err))
	}
	ok = true
	r.log.info("built image %s", tag)
	return tag, nil
}

// imageTag is the tag of the image built from commit sha.
func (r *run) imageTag(sha string) string {
	return strings.ToLower(fmt.Sprintf("localhost/slipway/%s/%s:%s-%s", r.req.ProjectID, r.req.owner(), sha[:12], r.req.BuildID))
}

// dockerfileName is the name the Dockerfile has in the build context: one
// of its own, so one outside the context directory (allowed: it is in the
// repository) is found, and the context's own files are untouched.
const dockerfileName = ".slipway.Dockerfile"

// buildQuery is the query of the build's /build.
func (r *run) buildQuery(tag, sha, target string) url.Values {
	args := map[string]*string{}
	for k, v := range r.req.Args {
		v := v
		args[k] = &v
	}
	labels := r.labels("")
	labels["slipway.commit"] = sha
	q := url.Values{}
	q.Set("t", tag)
	q.Set("dockerfile", dockerfileName)
	q.Set("rm", "1")
	q.Set("forcerm", "1")
	if target != "" {
		q.Set("target", target)
	}
	for k, v := range map[string]any{"buildargs": args, "labels": labels} {
		j, _ := json.Marshal(v)
		q.Set(k, string(j))
	}
	if m := r.req.Resources.MemoryMB; m > 0 {
		q.Set("memory", strconv.FormatInt(m<<20, 10))
	}
	if c := r.req.Resources.MilliCPU; c > 0 {
		q.Set("cpuperiod", "100000")
		q.Set("cpuquota", strconv.FormatInt(c*100, 10))
	}
	// Docker takes ulimit objects, Podman "name=soft:hard" strings, and
	// on Podman one more marks the build's processes (see podman.go).
	if r.b.podman(r.ctx) {
		l := []string{podmanUlimit(r.req.BuildID)}
		for _, u := range r.b.cfg.Ulimits {
			l = append(l, fmt.Sprintf("%s=%d:%d", u.Name, u.Soft, u.Hard))
		}
		j, _ := json.Marshal(l)
		q.Set("ulimits", string(j))
	} else if len(r.b.cfg.Ulimits) > 0 {
		j, _ := json.Marshal(r.b.cfg.Ulimits)
		q.Set("ulimits", string(j))
	}
	return q
}

// startBuild posts the build of contextDir with dockerfile and returns
// the engine's stream.
func (r *run) startBuild(contextDir string, dockerfile []byte, q url.Values) (io.ReadCloser, error) {
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(writeContext(pw, contextDir, dockerfileName, dockerfile)) }()
	body, err := postBuild(r.ctx, r.b.cfg.Docker, pr, q)
	if err != nil {
		pr.CloseWithError(err)
		if r.ctx.Err() != nil {
			return nil, r.ctx.Err()
		}
		return nil, err
	}
	return body, nil
}

// postBuild posts a build to the engine's /build. The Engine API client's
// ImageBuild cannot be used: it encodes ulimits as Docker's objects, which
// Podman's compatible /build refuses (400), and a build without explicit
// ulimits fails on hosts where the engine's defaults cannot be set.
func postBuild(ctx context.Context, api client.APIClient, tarball io.Reader, q url.Values) (io.ReadCloser, error) {
	api.NegotiateAPIVersion(ctx)
	hc := api.HTTPClient()
	base, err := client.ParseHostURL(api.DaemonHost())
	if err != nil {
		return nil, internal(err)
	}
	scheme, host := "http", base.Host
	if base.Scheme == "unix" || base.Scheme == "npipe" {
		host = "docker.sock" // the client's transport dials the socket
	} else if tr, ok := hc.Transport.(*http.Transport); ok && tr.TLSClientConfig != nil {
		scheme = "https"
	}
	u := scheme + "://" + host + strings.TrimSuffix(base.Path, "/") + "/v" + api.ClientVersion() + "/build?" + q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, tarball)
	if err != nil {
		return nil, internal(err)
	}
	req.Header.Set("Content-Type", "application/x-tar")
	resp, err := hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, internal(fmt.Errorf("image build: %w", err))
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		var m struct {
			Message string `json:"message"`
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		_ = json.Unmarshal(b, &m)
		if resp.StatusCode >= 500 {
			return nil, internal(fmt.Errorf("image build: %s: %s", resp.Status, b))
		}
		return nil, &Error{Kind: KindBuild, Message: "the container engine refused the build: " + truncate(m.Message, 300), Err: fmt.Errorf("%s: %s", resp.Status, b)}
	}
	return resp.Body, nil
}

// podman is whether the engine is Podman (its compatible API differs in
// places). Only an answer is remembered: while the engine does not
// answer this is false (as for Docker), and it is asked again next time.
func (b *Builder) podman(ctx context.Context) bool {
	b.engineMu.Lock()
	defer b.engineMu.Unlock()
	if b.engineKnown {
		return b.isPodman
	}
	v, err := b.cfg.Docker.ServerVersion(ctx)
	if err != nil {
		return false
	}
	for _, c := range v.Components {
		if strings.Contains(strings.ToLower(c.Name), "podman") {
			b.isPodman = true
		}
	}
	b.engineKnown = true
	return b.isPodman
}

// buildMessage is one message of the Engine API's build stream.
type buildMessage struct {
	Stream      string `json:"stream"`
	Status      string `json:"status"`
	Progress    string `json:"progress"`
	Error       string `json:"error"`
	ErrorDetail *struct {
		Message string `json:"message"`
	} `json:"errorDetail"`
}

// readBuildStream sends the stream's lines to the log and fails on an
// error message: the engine answers 200 to a failing build and says so
// in the stream only. ended is whether the engine ended the stream (the
// build is over there), rather than the build's context or a broken
// connection.
func (r *run) readBuildStream(body io.Reader) (ended bool, err error) {
	dec := json.NewDecoder(bufio.NewReader(body))
	var partial string
	emit := func(s string) {
		partial += s
		for {
			i := strings.IndexByte(partial, '\n')
			if i < 0 {
				break
			}
			r.log.line("stdout", strings.TrimRight(partial[:i], "\r"))
			partial = partial[i+1:]
		}
	}
	for {
		var m buildMessage
		if err := dec.Decode(&m); err != nil {
			if partial != "" {
				r.log.line("stdout", partial)
			}
			if errors.Is(err, io.EOF) {
				return true, nil
			}
			if r.ctx.Err() != nil {
				return false, r.ctx.Err()
			}
			return false, errorf(KindBuild, "the build stream of the container engine broke off")
		}
		switch {
		case m.Error != "" || m.ErrorDetail != nil:
			if partial != "" {
				r.log.line("stdout", partial)
				partial = ""
			}
			msg := m.Error
			if m.ErrorDetail != nil && m.ErrorDetail.Message != "" {
				msg = m.ErrorDetail.Message
			}
			r.log.line("stderr", msg)
			return true, errorf(KindBuild, "the image build failed: %s", truncate(r.log.redact(msg), 300))
		case m.Stream != "":
			emit(m.Stream)
		case m.Status != "":
			r.log.line("stdout", strings.TrimSpace(m.Status+" "+m.Progress))
		}
	}
}

func truncate(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// writeContext writes dir as a tar stream (symbolic links as links, never
// followed) with the Dockerfile added as dfName.
func writeContext(w io.Writer, dir, dfName string, dockerfile []byte) error {
	tw := tar.NewWriter(w)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil || rel == "." {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		link := ""
		if fi.Mode()&fs.ModeSymlink != 0 {
			if link, err = os.Readlink(p); err != nil {
				return err
			}
		}
		if !fi.Mode().IsRegular() && !fi.IsDir() && fi.Mode()&fs.ModeSymlink == 0 {
			return nil // sockets, devices, FIFOs: not part of a build
		}
		h, err := tar.FileInfoHeader(fi, link)
		if err != nil {
			return err
		}
		h.Name = filepath.ToSlash(rel)
		if fi.IsDir() {
			h.Name += "/"
		}
		h.Uid, h.Gid, h.Uname, h.Gname = 0, 0, "", ""
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if fi.Mode().IsRegular() {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			_, err = io.Copy(tw, f)
			f.Close()
			return err
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := tw.WriteHeader(&tar.Header{Name: dfName, Mode: 0o644, Size: int64(len(dockerfile)), Typeflag: tar.TypeReg, ModTime: time.Now()}); err != nil {
		return err
	}
	if _, err := tw.Write(dockerfile); err != nil {
		return err
	}
	return tw.Close()
}

// removeImage removes an image by reference; a missing one is no error.
// Without force the engine refuses (409) to remove an image a container
// uses; with force Podman removes those containers too, running or not.
func removeImage(ctx context.Context, api client.APIClient, ref string, force bool) error {
	_, err := api.ImageRemove(ctx, ref, image.RemoveOptions{Force: force, PruneChildren: true})
	if err != nil && !client.IsErrNotFound(err) && !strings.Contains(strings.ToLower(err.Error()), "no such image") && !strings.Contains(strings.ToLower(err.Error()), "image not known") {
		return fmt.Errorf("builder: removing image %s: %w", ref, err)
	}
	return nil
}

// removeBuildImages removes every image labelled with buildID: what an
// interrupted build may have tagged. None is in use: the build never
// succeeded, so no release runs it.
func (b *Builder) removeBuildImages(ctx context.Context, buildID string) error {
	api := b.cfg.Docker
	if api == nil {
		return nil
	}
	imgs, err := api.ImageList(ctx, image.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", LabelBuild+"="+buildID))})
	if err != nil {
		return fmt.Errorf("builder: listing the images of build %s: %w", buildID, err)
	}
	for _, im := range imgs {
		if err := removeImage(ctx, api, im.ID, true); err != nil {
			return err
		}
	}
	return nil
}
