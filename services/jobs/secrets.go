package jobs

import (
	"context"
	"encoding/base64"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strconv"

	addonsv1 "github.com/slipwayhq/slipway/gen/slipway/addons/v1"
	"github.com/slipwayhq/slipway/pkg/apierr"
	"github.com/slipwayhq/slipway/pkg/runtime"
)

// addSecretGroups adds what the project's secret groups give a run of j
// to spec: their variables under the run's own environment (the job's,
// with the run's overrides), which wins every key; their files; and the
// socket directories of the addons they link. They are resolved once,
// when the run is made, so every attempt of a run sees the same values
// and the next run sees a group's changes.
func (s *Service) addSecretGroups(ctx context.Context, j Job, spec *RunSpec) error {
	if s.opts.Secrets == nil {
		return nil
	}
	resp, err := s.opts.Secrets.ResolveEnvironment(s.opts.Internal(ctx), &addonsv1.ResolveEnvironmentRequest{
		TeamId: j.TeamID, ProjectId: j.ProjectID, Kind: "job", Id: j.ID, Tags: j.Tags,
	})
	if err != nil {
		s.log.WarnContext(ctx, "resolving a run's secret groups", "job", j.ID, "error", err)
		return apierr.Unavailable("the secret groups")
	}
	env := maps.Clone(resp.GetVariables())
	if env == nil {
		env = map[string]string{}
	}
	maps.Copy(env, spec.Env)
	if len(env) > 0 {
		spec.Env = env
	}
	for p, f := range resp.GetFiles() {
		if spec.Files == nil {
			spec.Files = map[string]RunFile{}
		}
		spec.Files[p] = RunFile{Data: f.GetData()}
	}
	for _, m := range resp.GetAddonMounts() {
		spec.AddonMounts = append(spec.AddonMounts, AddonMount{Source: m.GetSource(), Target: m.GetTarget()})
	}
	return nil
}

// filesDir is where an attempt's secret files are laid out.
func (s *Service) filesDir(r Run, attempt int32) string {
	return filepath.Join(s.opts.FilesDir, r.TeamID, r.ProjectID, r.JobID, r.ID, strconv.Itoa(int(attempt)))
}

// secretMounts writes an attempt's secret files and returns the mounts
// that show them and its linked addons' socket directories (read-only).
func (s *Service) secretMounts(r Run, attempt int32) ([]runtime.Mount, error) {
	var mounts []runtime.Mount
	if len(r.Spec.Files) > 0 {
		files := make(map[string][]byte, len(r.Spec.Files))
		for p, f := range r.Spec.Files {
			b, err := base64.StdEncoding.DecodeString(f.Data)
			if err != nil {
				return nil, fmt.Errorf("%w: secret file %q is not base64", runtime.ErrInvalidSpec, p)
			}
			files[p] = b
		}
		if err := os.MkdirAll(s.opts.FilesDir, 0o700); err != nil {
			return nil, err
		}
		m, err := runtime.WriteFiles(s.filesDir(r, attempt), files)
		if err != nil {
			return nil, err
		}
		mounts = append(mounts, m...)
	}
	for _, m := range r.Spec.AddonMounts {
		mounts = append(mounts, runtime.Mount{Source: m.Source, Target: m.Target, ReadOnly: true})
	}
	return mounts, nil
}

// removeFiles removes a run's secret files once it has concluded.
func (s *Service) removeFiles(r Run) {
	if s.opts.FilesDir == "" || len(r.Spec.Files) == 0 {
		return
	}
	dir := filepath.Join(s.opts.FilesDir, r.TeamID, r.ProjectID, r.JobID, r.ID)
	if err := os.RemoveAll(dir); err != nil {
		s.log.Warn("removing a run's secret files", "run", r.ID, "error", err)
	}
}
