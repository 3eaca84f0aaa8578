package docker

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/docker/docker/api/types/volume"

	"github.com/slipwayhq/slipway/pkg/runtime"
	"github.com/slipwayhq/slipway/pkg/runtime/runtimetest"
)

// testVolumes (run by TestDriver against Podman): a named volume is
// created with its labels (again: the same one), listed by them, mounted
// by name into one container after another, its data outliving each;
// removal is refused while a container (even a stopped one) mounts it,
// and then it is gone. A volume the driver did not create is invisible to
// it and never mounted, and a mount of a missing volume is refused
// rather than created by the engine on the fly.
func testVolumes(t *testing.T, d *Driver, img string) {
	ctx := runtimetest.Context(t)
	name := "rt-vol-" + strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-"))
	labels := map[string]string{"slipway.test": "volumes", "slipway.which": "a"}
	v, err := d.CreateVolume(ctx, name, labels)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.RemoveVolume(context.Background(), name) })
	if v.Name != name || v.Labels["slipway.which"] != "a" || v.Labels[LabelManaged] != "" || v.CreatedAt.IsZero() {
		t.Fatalf("created %+v", v)
	}
	again, err := d.CreateVolume(ctx, name, map[string]string{"slipway.which": "b"})
	if err != nil || again.Labels["slipway.which"] != "a" || !again.CreatedAt.Equal(v.CreatedAt) {
		t.Fatalf("create again: %+v %v, want the same volume", again, err)
	}
	if got, err := d.InspectVolume(ctx, name); err != nil || got.Name != name || got.Labels["slipway.test"] != "volumes" {
		t.Fatalf("inspect %+v %v", got, err)
	}
	list, err := d.ListVolumes(ctx, map[string]string{"slipway.test": "volumes"})
	if err != nil || len(list) != 1 || list[0].Name != name {
		t.Fatalf("list %+v %v", list, err)
	}
	if list, err := d.ListVolumes(ctx, map[string]string{"slipway.test": "other"}); err != nil || len(list) != 0 {
		t.Fatalf("list of other labels %+v %v", list, err)
	}

	// One container writes, a later one (read-only) reads: the data is
	// the volume's, not a container's. The mount is a volume's, by name.
	w := runtimetest.Start(t, d, runtime.Spec{Image: img, Command: []string{"/bin/sh", "-c", "echo kept >/data/f && ls -a /data"},
		Mounts: []runtime.Mount{{Volume: name, Target: "/data"}}})
	if st := runtimetest.Wait(t, d, w); st.ExitCode != 0 {
		t.Fatalf("writer exited %d: %v", st.ExitCode, runtimetest.Logs(t, d, w, false))
	}
	// NoCopy: the volume holds nothing but what was written.
	if got := runtimetest.Texts(t, runtimetest.Logs(t, d, w, false), "stdout"); !slices.Equal(got, []string{".", "..", "f"}) {
		t.Errorf("the volume holds %q", got)
	}
	ci, err := d.cli.ContainerInspect(ctx, w)
	if err != nil || len(ci.Mounts) != 1 || ci.Mounts[0].Type != "volume" || ci.Mounts[0].Name != name {
		t.Fatalf("the writer's mounts %+v %v, want the volume %s", ci.Mounts, err, name)
	}
	if err := d.Remove(ctx, w); err != nil {
		t.Fatal(err)
	}
	r := runtimetest.Start(t, d, runtime.Spec{Image: img, Command: []string{"/bin/sh", "-c", "cat /data/f; echo x >/data/g || echo refused"},
		Mounts: []runtime.Mount{{Volume: name, Target: "/data", ReadOnly: true}}})
	runtimetest.Wait(t, d, r)
	if got := runtimetest.Texts(t, runtimetest.Logs(t, d, r, false), "stdout"); !slices.Equal(got, []string{"kept", "refused"}) {
		t.Errorf("reader saw %q, want the data and a refused write", got)
	}
	// Removing the container keeps the named volume.
	if err := d.RemoveVolume(ctx, name); err == nil || errors.Is(err, runtime.ErrNotFound) {
		t.Fatalf("removing a volume a stopped container mounts: %v, want a refusal", err)
	}
	if err := d.Remove(ctx, r); err != nil {
		t.Fatal(err)
	}
	if _, err := d.InspectVolume(ctx, name); err != nil {
		t.Fatalf("the volume went with its container: %v", err)
	}
	if err := d.RemoveVolume(ctx, name); err != nil {
		t.Fatal(err)
	}
	if _, err := d.InspectVolume(ctx, name); !errors.Is(err, runtime.ErrNotFound) {
		t.Fatalf("inspect after remove: %v, want ErrNotFound", err)
	}
	if err := d.RemoveVolume(ctx, name); !errors.Is(err, runtime.ErrNotFound) {
		t.Fatalf("remove again: %v, want ErrNotFound", err)
	}

	// A missing volume is not created by a Start that mounts it.
	if _, err := d.Start(ctx, runtime.Spec{Image: img, Command: []string{"true"}, Mounts: []runtime.Mount{{Volume: name, Target: "/data"}}}); !errors.Is(err, runtime.ErrInvalidSpec) {
		t.Fatalf("start with a missing volume: %v, want ErrInvalidSpec", err)
	}
	if _, err := d.cli.VolumeInspect(ctx, name); !isVolumeNotFound(err) {
		t.Fatalf("the engine has the volume after a refused start: %v", err)
	}

	// A volume Slipway did not create is not the driver's.
	other := name + "-unmanaged"
	if _, err := d.cli.VolumeCreate(ctx, volume.CreateOptions{Name: other, Labels: map[string]string{"slipway.test": "volumes"}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.cli.VolumeRemove(context.Background(), other, true) })
	if _, err := d.InspectVolume(ctx, other); !errors.Is(err, runtime.ErrNotFound) {
		t.Errorf("inspect unmanaged: %v, want ErrNotFound", err)
	}
	if _, err := d.CreateVolume(ctx, other, nil); !errors.Is(err, runtime.ErrInvalidSpec) {
		t.Errorf("create over an unmanaged volume: %v, want ErrInvalidSpec", err)
	}
	if err := d.RemoveVolume(ctx, other); !errors.Is(err, runtime.ErrNotFound) {
		t.Errorf("remove unmanaged: %v, want ErrNotFound", err)
	}
	if list, err := d.ListVolumes(ctx, map[string]string{"slipway.test": "volumes"}); err != nil || len(list) != 0 {
		t.Errorf("list shows %+v %v, want nothing", list, err)
	}
	if _, err := d.Start(ctx, runtime.Spec{Image: img, Command: []string{"true"}, Mounts: []runtime.Mount{{Volume: other, Target: "/data"}}}); !errors.Is(err, runtime.ErrInvalidSpec) {
		t.Errorf("start with an unmanaged volume: %v, want ErrInvalidSpec", err)
	}
	if _, err := d.cli.VolumeInspect(ctx, other); err != nil {
		t.Errorf("the unmanaged volume was touched: %v", err)
	}
}
