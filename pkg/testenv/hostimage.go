package testenv

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"
)

// HostImageUID is the uid and gid of the user "app" in a BuildHostImage
// image: 999, like the postgres, redis and mysql users of the official
// images.
const HostImageUID = 999

// busyboxApplets are the small tools a BuildHostImage image gets from the
// host's static busybox, for the servers' shell scripts.
var busyboxApplets = []string{"sh", "cat", "rm", "mv", "cp", "mkdir", "sed", "grep", "tr", "tail", "head", "sleep", "touch", "id", "env", "ls",
	"chmod", "chown", "dirname", "basename", "hostname", "awk", "cut", "wc", "uname", "find", "stat", "tar", "printf", "echo", "kill", "true", "false", "test", "expr", "readlink"}

// BuildHostImage makes an image named ref (e.g.
// "localhost/slipway-host-postgres:latest") in the storage of the Podman
// service at host (as returned by Podman) from this machine's own files,
// and returns ref: no registry is involved. The image holds each of paths
// (a file, or a directory with everything under it) at the same place,
// every shared library the ELF files among them load (their ldd closure,
// with the dynamic loader), the host's top-level links (/bin -> usr/bin
// on a merged-/usr system), the static busybox at /usr/bin/busybox with
// links for the shell and the usual tools (busyboxApplets) where the host
// files do not provide them, /tmp (1777), and an /etc/passwd and
// /etc/group with root and "app" (HostImageUID). Its PATH is the usual
// one. The test fails (never skips) when busybox or ldd is missing.
func BuildHostImage(t testing.TB, host, ref string, paths ...string) string {
	t.Helper()
	return buildHostImage(t, host, ref, nil, paths)
}

// CloneImage is the reference BuildCloneImage tags its image with.
const CloneImage = "localhost/slipway-clone-test:latest"

// BuildCloneImage makes, like BuildHostImage, an image to clone in as
// deploy/Dockerfile's clone target does (the builds component's
// SLIPWAY_BUILD_CLONE_IMAGE): this machine's git (with its helpers, such as
// git-remote-http and its libcurl), git-lfs, ssh and CA certificates, and
// USER HostImageUID:HostImageUID. It returns CloneImage.
func BuildCloneImage(t testing.TB, host string) string {
	t.Helper()
	uid := fmt.Sprint(HostImageUID)
	paths := []string{lookBinary(t, "git"), lookBinary(t, "git-lfs"), lookBinary(t, "ssh")}
	// git's helpers and templates, and the CA certificates for https
	// (tests clone over loopback http, so they may be missing).
	for _, p := range []string{"/usr/lib/git-core", "/usr/share/git-core", "/etc/ssl/certs"} {
		if _, err := os.Stat(p); err == nil {
			paths = append(paths, p)
		}
	}
	return buildHostImage(t, host, CloneImage, []string{"USER " + uid + ":" + uid}, paths)
}

// buildHostImage is BuildHostImage with Dockerfile instructions for the
// image's configuration (podman import --change) after its CMD and PATH.
func buildHostImage(t testing.TB, host, ref string, changes, paths []string) string {
	t.Helper()
	v, ok := podmanEnvs.Load(host)
	if !ok {
		t.Fatalf("testenv.BuildHostImage: %s is not a service started by testenv.Podman", host)
	}
	env := v.([]string)
	bin := lookBinary(t, "podman")
	busybox := lookBinary(t, "busybox")
	lookBinary(t, "ldd")
	img := newImageTar()
	for _, p := range paths {
		if err := img.addTree(p); err != nil {
			t.Fatalf("testenv.BuildHostImage: %s: %v", p, err)
		}
	}
	if err := img.addFileAs(busybox, "/usr/bin/busybox"); err != nil {
		t.Fatalf("testenv.BuildHostImage: %v", err)
	}
	for _, a := range busyboxApplets {
		if _, taken := img.entries["usr/bin/"+a]; !taken {
			img.add(&tar.Header{Typeflag: tar.TypeSymlink, Name: "usr/bin/" + a, Linkname: "busybox", Mode: 0o777})
		}
	}
	for _, top := range []string{"/bin", "/sbin", "/lib", "/lib64", "/libx32", "/lib32"} {
		if fi, err := os.Lstat(top); err == nil && fi.Mode()&os.ModeSymlink != 0 {
			target, _ := os.Readlink(top)
			img.add(&tar.Header{Typeflag: tar.TypeSymlink, Name: top[1:], Linkname: target, Mode: 0o777})
		}
	}
	for _, d := range []string{"tmp", "proc", "sys", "dev", "run", "root", "etc"} {
		mode := int64(0o755)
		if d == "tmp" {
			mode = 0o1777
		}
		img.add(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: mode})
	}
	uid := fmt.Sprint(HostImageUID)
	img.addData("etc/passwd", "root:x:0:0:root:/root:/bin/sh\napp:x:"+uid+":"+uid+"::/tmp:/bin/sh\n")
	img.addData("etc/group", "root:x:0:\napp:x:"+uid+":\n")
	img.addData("etc/nsswitch.conf", "passwd: files\ngroup: files\nhosts: files\n")
	img.addData("etc/hosts", "127.0.0.1 localhost\n::1 localhost\n")
	tarPath := filepath.Join(t.TempDir(), "rootfs.tar")
	if err := img.write(tarPath); err != nil {
		t.Fatalf("testenv.BuildHostImage: %v", err)
	}
	args := []string{"import", "--change", `CMD ["/bin/sh"]`,
		"--change", "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	for _, c := range changes {
		args = append(args, "--change", c)
	}
	out, err := podmanCLI(bin, env, 5*time.Minute, append(args, tarPath, ref)...)
	if err != nil {
		t.Fatalf("testenv.BuildHostImage: podman import: %v\n%s", err, out)
	}
	return ref
}

// imageTar collects a root file system's entries, each once, parents
// before children.
type imageTar struct {
	entries map[string]*tar.Header
	sources map[string]string // regular files: entry name -> host path
	data    map[string][]byte // regular files given as content
	seen    map[string]bool   // host ELF files whose libraries were added
}

func newImageTar() *imageTar {
	return &imageTar{entries: map[string]*tar.Header{}, sources: map[string]string{}, data: map[string][]byte{}, seen: map[string]bool{}}
}

// add records h and, first, its missing parent directories.
func (im *imageTar) add(h *tar.Header) {
	name := strings.TrimSuffix(h.Name, "/")
	if dir := filepath.Dir(name); dir != "." {
		if _, ok := im.entries[dir]; !ok {
			im.add(&tar.Header{Typeflag: tar.TypeDir, Name: dir + "/", Mode: 0o755})
		}
	}
	if _, ok := im.entries[name]; ok {
		return
	}
	h.ModTime = time.Unix(0, 0)
	im.entries[name] = h
}

func (im *imageTar) addData(name, content string) {
	im.add(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(content))})
	im.data[name] = []byte(content)
}

// canonical is p with its directory's symbolic links resolved (the
// entry's own name kept), as an entry name.
func canonical(p string) (string, error) {
	dir, err := filepath.EvalSymlinks(filepath.Dir(p))
	if err != nil {
		return "", err
	}
	return strings.TrimPrefix(filepath.Join(dir, filepath.Base(p)), "/"), nil
}

// addTree adds p: a directory with everything under it, a file, or a
// symbolic link and what it points to.
func (im *imageTar) addTree(p string) error {
	fi, err := os.Lstat(p)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return im.addPath(p)
	}
	return filepath.WalkDir(p, func(q string, de os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if de.IsDir() {
			name, err := canonical(q)
			if err != nil {
				return err
			}
			im.add(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: 0o755})
			return nil
		}
		return im.addPath(q)
	})
}

// addPath adds the file or symbolic link p (and its target).
func (im *imageTar) addPath(p string) error {
	name, err := canonical(p)
	if err != nil {
		return err
	}
	fi, err := os.Lstat(p)
	if err != nil {
		return err
	}
	switch {
	case fi.Mode()&os.ModeSymlink != 0:
		target, err := os.Readlink(p)
		if err != nil {
			return err
		}
		im.add(&tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777})
		if !filepath.IsAbs(target) {
			target = filepath.Join("/", filepath.Dir(name), target)
		}
		if _, err := os.Stat(target); err != nil {
			return nil // a dangling link stays one
		}
		return im.addPath(target)
	case fi.Mode().IsRegular():
		return im.addFileAs(p, "/"+name)
	}
	return nil // sockets, devices: not in an image
}

// addFileAs adds the regular file src at dst, and the libraries it loads.
func (im *imageTar) addFileAs(src, dst string) error {
	fi, err := os.Stat(src)
	if err != nil {
		return err
	}
	name := strings.TrimPrefix(dst, "/")
	im.add(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: int64(fi.Mode().Perm()), Size: fi.Size()})
	im.sources[name] = src
	return im.addLibraries(src)
}

var lddLine = regexp.MustCompile(`(?:=>\s*)?(/\S+)\s+\(0x`)

// addLibraries adds the shared libraries an ELF file loads (ldd).
func (im *imageTar) addLibraries(p string) error {
	if im.seen[p] || !isELF(p) {
		return nil
	}
	im.seen[p] = true
	out, err := exec.Command("ldd", p).Output()
	if err != nil {
		return nil // static, or not loadable here: nothing to add
	}
	for _, line := range strings.Split(string(out), "\n") {
		if m := lddLine.FindStringSubmatch(line); m != nil {
			if err := im.addPath(m[1]); err != nil {
				return fmt.Errorf("library %s of %s: %w", m[1], p, err)
			}
		}
	}
	return nil
}

func isELF(p string) bool {
	f, err := os.Open(p)
	if err != nil {
		return false
	}
	defer f.Close()
	var b [4]byte
	_, err = io.ReadFull(f, b[:])
	return err == nil && bytes.Equal(b[:], []byte("\x7fELF"))
}

// write writes the entries to a tar file at path, parents first.
func (im *imageTar) write(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	names := make([]string, 0, len(im.entries))
	for n := range im.entries {
		names = append(names, n)
	}
	// Sorting by name puts "a" before "a/b".
	sort.Strings(names)
	for _, n := range names {
		h := im.entries[n]
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		if b, ok := im.data[n]; ok {
			if _, err := tw.Write(b); err != nil {
				return err
			}
			continue
		}
		src, err := os.Open(im.sources[n])
		if err != nil {
			return err
		}
		_, err = io.CopyN(tw, src, h.Size)
		src.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", im.sources[n], err)
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return f.Close()
}
