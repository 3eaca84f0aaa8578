package docker

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/volume"

	"github.com/slipwayhq/slipway/pkg/runtime"
)

// Named volumes (runtime.Volumes): the engine's "local" volumes, created
// through the Engine API with the caller's labels plus LabelManaged, so
// that, as with containers, the driver only ever sees (inspects, lists,
// removes) the volumes it created. Start mounts them with Type "volume"
// and NoCopy (the engine copies nothing of the image into an empty
// volume: it holds only what its workloads write), and refuses a mount of
// a volume the driver did not create, rather than letting the engine
// create an unlabelled one on the fly. Where the engine keeps a volume's
// files on its host is the engine's business: nothing here reads them.

var _ runtime.Volumes = (*Driver)(nil)

// isVolumeNotFound reports whether err says the volume does not exist.
// Podman 4.3 answers some lookups of a missing volume with a 500 "no such
// volume" instead of a 404.
func isVolumeNotFound(err error) bool {
	return err != nil && (cerrdefs.IsNotFound(err) || strings.Contains(err.Error(), "no such volume"))
}

func volumeOf(v volume.Volume) runtime.Volume {
	labels := maps.Clone(v.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	delete(labels, LabelManaged)
	return runtime.Volume{Name: v.Name, Labels: labels, CreatedAt: parseTime(v.CreatedAt)}
}

// inspectVolume inspects one of the driver's volumes: a volume without
// the managed label is not found.
func (d *Driver) inspectVolume(ctx context.Context, name string) (volume.Volume, error) {
	if !runtime.ValidVolumeName(name) {
		return volume.Volume{}, fmt.Errorf("docker: volume %q: %w", name, runtime.ErrNotFound)
	}
	v, err := d.cli.VolumeInspect(ctx, name)
	if isVolumeNotFound(err) {
		return v, fmt.Errorf("docker: volume %q: %w", name, runtime.ErrNotFound)
	}
	if err != nil {
		return v, fmt.Errorf("docker: inspecting volume %q: %w", name, err)
	}
	if v.Labels[LabelManaged] != "true" {
		return v, fmt.Errorf("docker: volume %q: %w (it was not created by Slipway)", name, runtime.ErrNotFound)
	}
	return v, nil
}

// CreateVolume implements runtime.Volumes. A volume of that name that the
// driver did not create is refused (runtime.ErrInvalidSpec), never
// adopted.
func (d *Driver) CreateVolume(ctx context.Context, name string, labels map[string]string) (runtime.Volume, error) {
	if !runtime.ValidVolumeName(name) {
		return runtime.Volume{}, fmt.Errorf("docker: %w: %q is not a valid volume name", runtime.ErrInvalidSpec, name)
	}
	v, err := d.cli.VolumeInspect(ctx, name)
	switch {
	case err == nil && v.Labels[LabelManaged] == "true":
		return volumeOf(v), nil
	case err == nil:
		return runtime.Volume{}, fmt.Errorf("docker: %w: a volume %q exists that Slipway did not create", runtime.ErrInvalidSpec, name)
	case !isVolumeNotFound(err):
		return runtime.Volume{}, fmt.Errorf("docker: inspecting volume %q: %w", name, err)
	}
	all := maps.Clone(labels)
	if all == nil {
		all = map[string]string{}
	}
	all[LabelManaged] = "true"
	v, err = d.cli.VolumeCreate(ctx, volume.CreateOptions{Name: name, Driver: "local", Labels: all})
	if err != nil {
		// Created meanwhile by another caller? Then it is that one.
		if got, ierr := d.inspectVolume(ctx, name); ierr == nil {
			return volumeOf(got), nil
		}
		return runtime.Volume{}, fmt.Errorf("docker: creating volume %q: %w", name, err)
	}
	return volumeOf(v), nil
}

// InspectVolume implements runtime.Volumes.
func (d *Driver) InspectVolume(ctx context.Context, name string) (runtime.Volume, error) {
	v, err := d.inspectVolume(ctx, name)
	if err != nil {
		return runtime.Volume{}, err
	}
	return volumeOf(v), nil
}

// RemoveVolume implements runtime.Volumes. It never forces: the engine
// refuses to remove a volume a container (even a stopped one) mounts.
func (d *Driver) RemoveVolume(ctx context.Context, name string) error {
	if _, err := d.inspectVolume(ctx, name); err != nil {
		return err
	}
	err := d.cli.VolumeRemove(ctx, name, false)
	switch {
	case err == nil:
		return nil
	case isVolumeNotFound(err):
		return fmt.Errorf("docker: volume %q: %w", name, runtime.ErrNotFound)
	case cerrdefs.IsConflict(err) || strings.Contains(err.Error(), "in use"):
		return fmt.Errorf("docker: volume %q is still mounted by a container; remove the container first: %w", name, err)
	}
	return fmt.Errorf("docker: removing volume %q: %w", name, err)
}

// ListVolumes implements runtime.Volumes.
func (d *Driver) ListVolumes(ctx context.Context, labels map[string]string) ([]runtime.Volume, error) {
	f := filters.NewArgs(filters.Arg("label", LabelManaged+"=true"))
	for k, v := range labels {
		f.Add("label", k+"="+v)
	}
	resp, err := d.cli.VolumeList(ctx, volume.ListOptions{Filters: f})
	if err != nil {
		return nil, fmt.Errorf("docker: listing volumes: %w", err)
	}
	out := []runtime.Volume{}
	for _, v := range resp.Volumes {
		if v == nil || v.Labels[LabelManaged] != "true" {
			continue
		}
		// Check the labels here too, in case an engine ignores a filter.
		match := true
		for k, want := range labels {
			if got, ok := v.Labels[k]; !ok || got != want {
				match = false
				break
			}
		}
		if match {
			out = append(out, volumeOf(*v))
		}
	}
	slices.SortFunc(out, func(a, b runtime.Volume) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// checkVolumes refuses a Spec's mount of a volume the driver did not
// create (the engine would create an unlabelled one on the fly).
func (d *Driver) checkVolumes(ctx context.Context, mounts []runtime.Mount) error {
	for _, m := range mounts {
		if m.Volume == "" {
			continue
		}
		if _, err := d.inspectVolume(ctx, m.Volume); err != nil {
			return fmt.Errorf("docker: %w: mount of volume %q: %v (create it first)", runtime.ErrInvalidSpec, m.Volume, err)
		}
	}
	return nil
}
