package deployments

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"time"

	addonsv1 "github.com/slipwayhq/slipway/gen/slipway/addons/v1"
	"github.com/slipwayhq/slipway/pkg/events"
	"github.com/slipwayhq/slipway/pkg/runtime"
	"github.com/slipwayhq/slipway/services/deployments/rollout"
)

// SecretsConsumer is the durable consumer through which the deployments
// service learns that a secret group changed; SecretSubjects are its
// subjects and SecretHandler its handler.
const SecretsConsumer = "deployments-secrets"

// SecretSubjects are the secret groups' lifecycle events.
var SecretSubjects = []string{events.SubjectFor("addons", "secret", "*")}

// secretResolveTimeout bounds one ResolveEnvironment call made while a
// service is applied.
const secretResolveTimeout = 10 * time.Second

// resolveSecrets asks the secret groups what sv's instances get:
// variables, files and the linked addons' socket directories. Nil
// without Options.Secrets.
func (s *Server) resolveSecrets(ctx context.Context, sv Service) (*addonsv1.ResolveEnvironmentResponse, error) {
	if s.opts.Secrets == nil {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(ctx, secretResolveTimeout)
	defer cancel()
	return s.opts.Secrets.ResolveEnvironment(s.opts.Internal(ctx), &addonsv1.ResolveEnvironmentRequest{
		TeamId: sv.TeamID, ProjectId: sv.ProjectID, Kind: "service", Id: sv.ID, Tags: sv.Tags,
	})
}

// secretPrint fingerprints what the secret groups give a service, so that
// a group's change rolls out exactly the services it changes.
func secretPrint(r *addonsv1.ResolveEnvironmentResponse) string {
	h := sha256.New()
	for _, k := range slices.Sorted(maps.Keys(r.GetVariables())) {
		fmt.Fprintf(h, "v%d:%s=%d:%s;", len(k), k, len(r.GetVariables()[k]), r.GetVariables()[k])
	}
	for _, p := range slices.Sorted(maps.Keys(r.GetFiles())) {
		fmt.Fprintf(h, "f%d:%s=%d:%s;", len(p), p, len(r.GetFiles()[p].GetData()), r.GetFiles()[p].GetData())
	}
	for _, m := range r.GetAddonMounts() {
		fmt.Fprintf(h, "m%d:%s=%d:%s;", len(m.GetTarget()), m.GetTarget(), len(m.GetSource()), m.GetSource())
	}
	return hex.EncodeToString(h.Sum(nil))
}

// addSecrets gives w what the secret groups give sv's instances: their
// variables under the service's own environment (which wins every key),
// their files and the linked addons' socket directories as read-only
// mounts. It returns the fingerprint of what it added.
func (s *Server) addSecrets(sv Service, w *runtime.Spec) (string, error) {
	r, err := s.resolveSecrets(context.Background(), sv)
	if err != nil || r == nil {
		return "", err
	}
	env := maps.Clone(r.GetVariables())
	if env == nil {
		env = map[string]string{}
	}
	maps.Copy(env, w.Env)
	w.Env = env
	fp := secretPrint(r)
	if len(r.GetFiles()) > 0 {
		mounts, err := s.secretFiles(sv, fp, r.GetFiles())
		if err != nil {
			return "", err
		}
		w.Mounts = append(w.Mounts, mounts...)
	}
	for _, m := range r.GetAddonMounts() {
		w.Mounts = append(w.Mounts, runtime.Mount{Source: m.GetSource(), Target: m.GetTarget(), ReadOnly: true})
	}
	return fp, nil
}

// serviceFilesDir holds a service's secret files, one directory per
// fingerprint of what its groups give.
func (s *Server) serviceFilesDir(team, project, id string) string {
	return filepath.Join(s.opts.FilesDir, team, project, id)
}

// secretFiles lays out a service's secret files once per fingerprint and
// returns their mounts. A directory that exists is complete (it is
// renamed into place) and may be mounted by running instances, so it is
// reused, never rewritten.
func (s *Server) secretFiles(sv Service, fp string, files map[string]*addonsv1.SecretFile) ([]runtime.Mount, error) {
	if s.opts.FilesDir == "" {
		return nil, errors.New("secret files need the deployments' files directory")
	}
	paths := slices.Collect(maps.Keys(files))
	dir := filepath.Join(s.serviceFilesDir(sv.TeamID, sv.ProjectID, sv.ID), fp[:32])
	if _, err := os.Stat(dir); err == nil {
		return runtime.FileMounts(dir, paths)
	}
	content := make(map[string][]byte, len(files))
	for p, f := range files {
		b, err := base64.StdEncoding.DecodeString(f.GetData())
		if err != nil {
			return nil, fmt.Errorf("secret file %q is not base64", p)
		}
		content[p] = b
	}
	if err := os.MkdirAll(s.opts.FilesDir, 0o700); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o700); err != nil {
		return nil, err
	}
	tmp := dir + ".tmp-" + rand.Text()
	if _, err := runtime.WriteFiles(tmp, content); err != nil {
		_ = os.RemoveAll(tmp)
		return nil, err
	}
	if err := os.Rename(tmp, dir); err != nil {
		_ = os.RemoveAll(tmp)
		if _, statErr := os.Stat(dir); statErr != nil { // not a concurrent writer's win
			return nil, err
		}
	}
	return runtime.FileMounts(dir, paths)
}

// secretsChanged records that sv's instances get what fingerprints to fp
// from now on and returns the restart generation to run: one more than
// sv's when its instances were started with other values, so that every
// instance is replaced with the new ones (a service's first print only
// records it).
func (s *Server) secretsChanged(sv Service, fp string) (int64, error) {
	next, err := s.store.UpdateService(context.Background(), sv.TeamID, sv.ProjectID, sv.ID, func(cur *Service) (*Release, []events.Event, error) {
		if cur.SecretsPrint != "" && cur.SecretsPrint != fp {
			cur.Restart++
		}
		cur.SecretsPrint = fp
		return nil, nil, nil
	})
	if err != nil {
		return 0, err
	}
	if next.Restart != sv.Restart {
		s.log.Info("restarting a service whose secret groups changed", "service", sv.ID, "project", sv.ProjectID)
	}
	return next.Restart, nil
}

// forgetSecrets drops a deleted service's secret files.
func (s *Server) forgetSecrets(sv Service) {
	if s.opts.FilesDir == "" {
		return
	}
	if err := os.RemoveAll(s.serviceFilesDir(sv.TeamID, sv.ProjectID, sv.ID)); err != nil {
		s.log.Warn("removing a deleted service's secret files", "service", sv.ID, "error", err)
	}
}

// SecretHandler rolls out the services of a project whose secret groups
// changed: it applies each again, and apply restarts the instances of
// every service the change gives other variables, files or addon mounts
// (the restart's rolling replacement, with the new values); a service
// the change does not touch keeps running. It is idempotent: a
// redelivered event finds nothing changed. A group that cannot be read
// leaves the event to be delivered again.
func (s *Server) SecretHandler() events.Handler {
	return func(ctx context.Context, ev events.Event) error {
		var data struct {
			TeamID    string `json:"teamId"`
			ProjectID string `json:"projectId"`
			Global    bool   `json:"global"`
		}
		if err := ev.Decode(&data); err != nil {
			return fmt.Errorf("deployments: decode %s: %w", ev.Type, err)
		}
		if data.Global || data.TeamID == "" || data.ProjectID == "" || s.opts.Secrets == nil {
			return nil // global secrets are given to no workload
		}
		list, err := s.store.ProjectServices(ctx, data.TeamID, data.ProjectID)
		if err != nil {
			return err
		}
		for _, sv := range list {
			if sv.Kind == KindBuild {
				continue
			}
			if _, err := s.resolveSecrets(ctx, sv); err != nil {
				return fmt.Errorf("deployments: secret groups of %s: %w", sv.ID, err)
			}
			s.apply(sv)
		}
		return nil
	}
}

// secretsUnreadable is the message of a rollout failed for want of its
// secret groups.
const secretsUnreadable = "its secret groups could not be read; it is retried when the service or a group changes, or on restart"

// applySecretsFailed fails sv's rollout because its secret groups could
// not be read: it is not started without them.
func (s *Server) applySecretsFailed(sv Service, err error) {
	key := controllerID(sv.TeamID, sv.ProjectID, sv.ID)
	s.log.Warn("reading a service's secret groups", "service", sv.ID, "project", sv.ProjectID, "error", err)
	if sv.Status.Status != StatusFailed {
		s.Rollout(context.Background(), rollout.Outcome{ServiceID: key, ReleaseID: sv.ReleaseID, Status: rollout.RolloutFailed,
			Reason: secretsUnreadable})
	}
}
