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
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/docker/docker/api/types/build"
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
	tag := strings.ToLower(fmt.Sprintf("localhost/slipway/%s/%s:%s-%s", r.req.ProjectID, r.req.ServiceID, sha[:12], r.req.BuildID))
	pr, pw := io.Pipe()
	// The Dockerfile goes into the context under a name of its own, so
	// one outside the context directory (allowed: it is in the
	// repository) is found, and the context's own files are untouched.
	const dfName = ".slipway.Dockerfile"
	go func() { pw.CloseWithError(writeContext(pw, contextDir, dfName, dockerfile)) }()
	args := map[string]*string{}
	for k, v := range r.req.Args {
		v := v
		args[k] = &v
	}
	labels := r.labels("")
	labels["slipway.commit"] = sha
	opts := build.ImageBuildOptions{
		Tags:        []string{tag},
		Dockerfile:  dfName,
		BuildArgs:   args,
		Labels:      labels,
		Target:      target,
		Remove:      true,
		ForceRemove: true,
		PullParent:  false,
		Memory:      r.req.Resources.MemoryMB << 20,
	}
	if r.req.Resources.MilliCPU > 0 {
		opts.CPUPeriod = 100000
		opts.CPUQuota = r.req.Resources.MilliCPU * 100
	}
	// Whatever ends this build other than success leaves no image under
	// the tag, nor intermediate images of the build.
	ok := false
	r.onCleanup(func() {
		if !ok {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_ = removeImage(ctx, api, tag)
			f := filters.NewArgs(filters.Arg("label", LabelBuild+"="+r.req.BuildID), filters.Arg("dangling", "true"))
			_, _ = api.ImagesPrune(ctx, f)
		}
	})
	r.log.info("building image %s", tag)
	resp, err := api.ImageBuild(r.ctx, pr, opts)
	if err != nil {
		pr.CloseWithError(err)
		if r.ctx.Err() != nil {
			return "", r.ctx.Err()
		}
		return "", internal(fmt.Errorf("image build: %w", err))
	}
	defer resp.Body.Close()
	if err := r.readBuildStream(resp.Body); err != nil {
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
// in the stream only.
func (r *run) readBuildStream(body io.Reader) error {
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
				return nil
			}
			if r.ctx.Err() != nil {
				return r.ctx.Err()
			}
			return errorf(KindBuild, "the build stream of the container engine broke off")
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
			return errorf(KindBuild, "the image build failed: %s", truncate(r.log.redact(msg), 300))
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
func removeImage(ctx context.Context, api client.APIClient, ref string) error {
	_, err := api.ImageRemove(ctx, ref, image.RemoveOptions{Force: true, PruneChildren: true})
	if err != nil && !client.IsErrNotFound(err) && !strings.Contains(strings.ToLower(err.Error()), "no such image") && !strings.Contains(strings.ToLower(err.Error()), "image not known") {
		return fmt.Errorf("builder: removing image %s: %w", ref, err)
	}
	return nil
}
