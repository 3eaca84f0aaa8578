package engine

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path"
	"strings"
	"time"

	"github.com/slipwayhq/slipway/pkg/runtime"
)

// The data on the docker driver: a named volume of the driver
// (runtime.Volumes), Addon.Volume, mounted at DataMount. Slipway never
// reads the engine's own directory of a volume: what it does to the data
// while no server runs (give the volume to the server's user, unpack a
// snapshot) it does in a short-lived helper container of the addon's image
// (RoleHelper) that mounts the volume and nothing else of the host, and
// what it does while the server runs, in the server's container (Exec),
// as on the process driver.

// ServerVolume is the name of the data volume of the addon with internal
// id id.
func ServerVolume(id string) string { return "slipway-addon-" + id + "-data" }

// VerifyVolume is the name of the data volume of a verification instance
// of the addon with internal id id, for the backup ref.
func VerifyVolume(id, ref string) string { return "slipway-addon-" + id + "-verify-" + ref + "-data" }

// helperDeadline bounds a helper container's life, should Slipway die
// while one runs (a restart of Slipway removes them anyway).
const helperDeadline = 6 * time.Hour

// volumes is d's volume support: an error for a driver without volumes.
func volumes(d runtime.Driver) (runtime.Volumes, error) {
	v, ok := d.(runtime.Volumes)
	if !ok {
		return nil, fmt.Errorf("engine: %w: the %s driver has no volumes", runtime.ErrUnsupported, d.Name())
	}
	return v, nil
}

// PrepareData makes the data of a (an addon of e's type) ready for a
// start of its server (or of its verification instance), before Spec, on
// either driver. First it settles a snapshot restore that a crash
// interrupted half-way through its swap (see recoverSwap), so that the
// server starts on its previous data (or on the restored data, when the
// swap completed), never on a fresh, empty directory. On the process
// driver it does that on the host's DataDir (Spec creates the directory).
// On docker it creates the volume a.Volume when it is missing, labelled
// like the workload (Labels), and, in a helper container run as root,
// settles the swap and gives the volume to the server's user (chown, only
// when the volume's root is not the user's already: a new volume is
// root's, and the host does not touch the engine's files). Every step is
// repeated at every start, so a start after a crash between them, or
// after RunAs changed, still finds the data the server's.
func PrepareData(ctx context.Context, e Engine, d runtime.Driver, a Addon) error {
	if a.Driver != driverDocker {
		return recoverSwap(a.DataDir, swapped[e.Type()])
	}
	if err := validateData(a); err != nil {
		return err
	}
	vs, err := volumes(d)
	if err != nil {
		return err
	}
	if _, err := vs.CreateVolume(ctx, a.Volume, Labels(a)); err != nil {
		return fmt.Errorf("engine: creating the data volume: %w", err)
	}
	uid, gid := runAs(a)
	script := "set -eu\n" + recoverSwapScript(swapped[e.Type()]) + `if [ "$(stat -c %u:%g /data)" != "$SLIPWAY_RUN_AS" ]; then chown -R "$SLIPWAY_RUN_AS" /data; fi
chmod 0700 /data
`
	return runHelper(ctx, e.Type(), d, a, "0:0", script, map[string]string{"SLIPWAY_RUN_AS": fmt.Sprintf("%d:%d", uid, gid)})
}

// RemoveData removes a's data: the volume a.Volume on docker (nothing
// when it is gone already), DataDir on the process driver. No workload
// may use it any more: the caller stops and removes the server first.
func RemoveData(ctx context.Context, d runtime.Driver, a Addon) error {
	if a.Driver != driverDocker {
		if err := os.RemoveAll(a.DataDir); err != nil {
			return fmt.Errorf("engine: removing the data: %w", err)
		}
		return nil
	}
	if !runtime.ValidVolumeName(a.Volume) {
		return fmt.Errorf("engine: the data volume %q is not a valid volume name", a.Volume)
	}
	vs, err := volumes(d)
	if err != nil {
		return err
	}
	if err := vs.RemoveVolume(ctx, a.Volume); err != nil && !errors.Is(err, runtime.ErrNotFound) {
		return fmt.Errorf("engine: removing the data volume: %w", err)
	}
	return nil
}

// validateData checks what a helper container needs of a.
func validateData(a Addon) error {
	if !safeID.MatchString(a.ID) {
		return fmt.Errorf("engine: addon id %q: only letters, digits, '-' and '_' are allowed", a.ID)
	}
	if !runtime.ValidVolumeName(a.Volume) {
		return fmt.Errorf("engine: the data volume %q is not a valid volume name", a.Volume)
	}
	if a.RunAs != "" && !runAsRE.MatchString(a.RunAs) {
		return fmt.Errorf("engine: run-as %q is not \"uid:gid\"", a.RunAs)
	}
	return nil
}

// helperSpec is a helper container of a's image (of type typ) as user, with a's volume
// at DataMount (and nothing of the host), running script.
func helperSpec(typ string, a Addon, user, script string, env map[string]string) (runtime.Spec, error) {
	image := a.Image
	if image == "" {
		image = DefaultImage(typ, a.Version)
	}
	if image == "" {
		return runtime.Spec{}, errors.New("engine: no image for the data helper")
	}
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return runtime.Spec{}, fmt.Errorf("engine: %w", err)
	}
	labels := Labels(a)
	labels[LabelRole] = RoleHelper
	env = maps.Clone(env)
	if env == nil {
		env = map[string]string{}
	}
	env["PATH"] = basePath
	env["HOME"] = "/tmp"
	return runtime.Spec{
		Name:       WorkloadName(a) + "-helper-" + hex.EncodeToString(b[:]),
		Image:      image,
		User:       user,
		Entrypoint: []string{"/bin/sh", "-c"},
		Command:    []string{script, "slipway-helper"},
		Env:        env,
		Labels:     labels,
		Resources:  a.Resources,
		Deadline:   helperDeadline,
		Mounts:     []runtime.Mount{{Volume: a.Volume, Target: DataMount}},
		WorkDir:    DataMount,
	}, nil
}

// removeHelper stops (at once: it holds nothing worth a clean stop) and
// removes a helper container, even when ctx has ended.
func removeHelper(ctx context.Context, d runtime.Driver, id string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	_ = d.Stop(ctx, id, 0)
	_, _ = d.Wait(ctx, id)
	_ = d.Remove(ctx, id)
}

// runHelper runs script to its end in a helper container as user; a
// non-zero exit is a *ToolError with the end of its output.
func runHelper(ctx context.Context, typ string, d runtime.Driver, a Addon, user, script string, env map[string]string) error {
	spec, err := helperSpec(typ, a, user, script, env)
	if err != nil {
		return err
	}
	id, err := d.Start(ctx, spec)
	if err != nil {
		return fmt.Errorf("engine: starting the data helper: %w", err)
	}
	defer removeHelper(ctx, d, id)
	st, err := d.Wait(ctx, id)
	if err != nil {
		return fmt.Errorf("engine: the data helper: %w", err)
	}
	if st.ExitCode != 0 {
		var out strings.Builder
		for l, err := range d.Logs(ctx, id, false) {
			if err != nil {
				break
			}
			out.WriteString(l.Text + "\n")
		}
		return &ToolError{Tool: "the data volume's preparation", Code: st.ExitCode, Stderr: redact(a, lastLines(out.String(), 6))}
	}
	return nil
}

// withHelper runs f with a helper container, as user, that stays up (for
// f's Execs) until f returns.
func withHelper(ctx context.Context, typ string, d runtime.Driver, a Addon, user string, f func(id string) error) error {
	const idle = `trap 'exit 0' TERM INT
while :; do sleep 1; done
`
	spec, err := helperSpec(typ, a, user, idle, nil)
	if err != nil {
		return err
	}
	id, err := d.Start(ctx, spec)
	if err != nil {
		return fmt.Errorf("engine: starting the data helper: %w", err)
	}
	defer removeHelper(ctx, d, id)
	return f(id)
}

// restoreInVolume is RestoreSnapshot on docker, in a helper container as
// the server's user: load (a script) reads the snapshot from its standard
// input into the volume, next to the data; feed copies r to it, checking
// what passes (a load cannot tell a checked stream from one cut short by
// a failed check: the input just ends). Only when both succeeded does
// commit (a script) put the new data in place; otherwise cleanup removes
// what load left. Either script that fails leaves the previous data.
func restoreInVolume(ctx context.Context, typ string, d runtime.Driver, a Addon, r io.Reader, feed func(r io.Reader, w io.Writer) error, load, commit, cleanup string) error {
	if err := validateData(a); err != nil {
		return err
	}
	user := a.RunAs
	if user == "" {
		user = DefaultRunAs
	}
	return withHelper(ctx, typ, d, a, user, func(id string) error {
		pr, pw := io.Pipe()
		fed := make(chan error, 1)
		go func() {
			err := feed(r, pw)
			pw.CloseWithError(err)
			fed <- err
		}()
		lerr := run(ctx, d, id, a, nil, pr, nil, "/bin/sh", "-c", load, "snapshot-load")
		pr.CloseWithError(errLoadEnded) // unblocks a feed the load left unread
		ferr := <-fed
		if ferr != nil || lerr != nil {
			_ = run(context.WithoutCancel(ctx), d, id, a, nil, nil, nil, "/bin/sh", "-c", cleanup, "snapshot-cleanup")
			// The feed's own refusal says why; a feed cut short by the
			// load's end does not.
			if ferr != nil && (lerr == nil || !errors.Is(ferr, errLoadEnded)) {
				return ferr
			}
			return lerr
		}
		return run(ctx, d, id, a, nil, nil, nil, "/bin/sh", "-c", commit, "snapshot-swap")
	})
}

// errLoadEnded is what a feed's writes get once the load has ended.
var errLoadEnded = errors.New("engine: the snapshot's load ended")

// feedTar copies the tar stream r to w, refusing (with an error, the copy
// cut short) an entry that would land outside the directory it is
// unpacked in (an absolute or ".." path, or one under a symbolic link of
// the archive), or of a type other than a directory, a regular file or a
// symbolic link, as untar does on the host; then check looks at the
// names of the entries.
func feedTar(check func(names map[string]bool) error) func(r io.Reader, w io.Writer) error {
	return func(r io.Reader, w io.Writer) error {
		tr := tar.NewReader(io.TeeReader(r, w))
		names := map[string]bool{}
		links := map[string]bool{}
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return fmt.Errorf("engine: the snapshot cannot be unpacked: %w", err)
			}
			name := path.Clean(strings.TrimPrefix(h.Name, "./"))
			if name == "." {
				continue
			}
			if path.IsAbs(name) || name == ".." || strings.HasPrefix(name, "../") {
				return fmt.Errorf("engine: the snapshot cannot be unpacked: entry %q lies outside the archive's directory", h.Name)
			}
			for p := path.Dir(name); p != "."; p = path.Dir(p) {
				if links[p] {
					return fmt.Errorf("engine: the snapshot cannot be unpacked: entry %q lies outside the archive's directory", h.Name)
				}
			}
			switch h.Typeflag {
			case tar.TypeDir, tar.TypeReg:
			case tar.TypeSymlink:
				links[name] = true
			default:
				return fmt.Errorf("engine: the snapshot cannot be unpacked: entry %q: unsupported type %q", h.Name, h.Typeflag)
			}
			names[name] = true
		}
		if len(names) == 0 {
			return errors.New("engine: the snapshot cannot be unpacked: empty archive")
		}
		if err := check(names); err != nil {
			return err
		}
		// The end-of-archive blocks and any padding after them, which
		// tar need not read.
		if _, err := io.Copy(w, r); err != nil && !errors.Is(err, errLoadEnded) {
			return fmt.Errorf("engine: reading the snapshot: %w", err)
		}
		return nil
	}
}

// swapInVolume is swapIn on docker: the snapshot tar is unpacked in the
// volume as <name>.restore, its entries checked on the way (feedTar and
// check), and only then put in place of <name> (the previous one removed
// once the new one is there); before puts the last touches to the new
// tree ($new) first. A swap a crash interrupted is settled first
// (recoverSwapScript), so that nothing here removes the only copy of the
// previous data.
func swapInVolume(ctx context.Context, typ string, d runtime.Driver, a Addon, name string, r io.Reader, check func(names map[string]bool) error, before string) error {
	dir := DataMount + "/" + name
	load := `set -eu
umask 077
` + recoverSwapScript(name) + `mkdir "` + dir + `.restore"
tar -x -f - -C "` + dir + `.restore"
`
	commit := `set -eu
new="` + dir + `.restore" cur="` + dir + `" old="` + dir + `.old"
` + before + `
rm -rf "$old"
if [ -e "$cur" ]; then mv "$cur" "$old"; fi
mv "$new" "$cur" || { if [ -e "$old" ]; then mv "$old" "$cur"; fi; exit 1; }
rm -rf "$old"
`
	cleanup := `rm -rf "` + dir + `.restore"`
	return restoreInVolume(ctx, typ, d, a, r, feedTar(check), load, commit, cleanup)
}

// feedPrefixed copies r to w once it starts with prefix (else what).
func feedPrefixed(prefix, what string) func(r io.Reader, w io.Writer) error {
	return func(r io.Reader, w io.Writer) error {
		head := make([]byte, len(prefix))
		if _, err := io.ReadFull(r, head); err != nil || !bytes.Equal(head, []byte(prefix)) {
			return errors.New("engine: the snapshot is not " + what)
		}
		if _, err := w.Write(head); err != nil {
			return err
		}
		if _, err := io.Copy(w, r); err != nil {
			return fmt.Errorf("engine: reading the snapshot: %w", err)
		}
		return nil
	}
}
