package addons

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"google.golang.org/protobuf/types/known/structpb"

	addonsv1 "github.com/slipwayhq/slipway/gen/slipway/addons/v1"
	"github.com/slipwayhq/slipway/pkg/apierr"
	"github.com/slipwayhq/slipway/pkg/events"
	"github.com/slipwayhq/slipway/pkg/runtime"
	"github.com/slipwayhq/slipway/pkg/slug"
	"github.com/slipwayhq/slipway/services/addons/engine"
)

// StorageOptions are the storage sizes (MB) an addon may ask for; the
// first is the default. Slipway records the size and reports it; the
// process and docker drivers keep the data on the host's file system
// without a quota (see the README).
var StorageOptions = []int32{1024, 2048, 4096, 8192, 16384, 32768, 65536}

// ReplicaOptions are the replica counts an addon may ask for: one server
// per addon (no engine here replicates).
var ReplicaOptions = []int32{1}

// ListAddonTypes implements AddonsService.
func (s *Service) ListAddonTypes(ctx context.Context, _ *addonsv1.ListAddonTypesRequest) (*addonsv1.ListAddonTypesResponse, error) {
	resp := &addonsv1.ListAddonTypesResponse{AddonTypes: []*addonsv1.AddonType{}}
	for _, e := range engine.All() {
		info := e.Info(s.opts.Driver.Name())
		if len(info.Versions) == 0 {
			continue // cannot run on this install
		}
		f := info.Features
		resp.AddonTypes = append(resp.AddonTypes, &addonsv1.AddonType{
			Type: info.Type, Name: info.Name, Description: info.Description,
			Features: &addonsv1.AddonFeatures{BackupsDump: f.BackupsDump, CustomDbName: f.CustomDBName, ForkAddon: f.ForkAddon,
				ImportDump: f.ImportDump, ImportLive: f.ImportLive, ScaleReplicas: f.ScaleReplicas, Tls: f.TLS, ExternalAccess: f.ExternalAccess},
			Versions: info.Versions, Major: info.Major, BackupTypes: info.BackupTypes,
			Resources: &addonsv1.AddonResources{
				Storage:  &addonsv1.ResourceOptions{Options: StorageOptions, Default: StorageOptions[0]},
				Replicas: &addonsv1.ResourceOptions{Options: ReplicaOptions, Default: 1},
			},
		})
	}
	return resp, nil
}

// ListAddons implements AddonsService.
func (s *Service) ListAddons(ctx context.Context, req *addonsv1.ListAddonsRequest) (*addonsv1.ListAddonsResponse, error) {
	teamID, err := team(ctx)
	if err != nil {
		return nil, err
	}
	scope := "addons/" + teamID + "/" + req.GetProjectId()
	p, err := s.opts.Cursors.Parse(scope, req.GetPerPage(), req.GetPage(), req.GetCursor())
	if err != nil {
		return nil, err
	}
	if err := s.checkProject(ctx, teamID, req.GetProjectId()); err != nil {
		return nil, err
	}
	list, more, total, err := s.store.ListAddons(ctx, teamID, req.GetProjectId(), p)
	if err != nil {
		return nil, err
	}
	resp := &addonsv1.ListAddonsResponse{Addons: make([]*addonsv1.AddonSummary, 0, len(list))}
	last := ""
	for _, a := range list {
		resp.Addons = append(resp.Addons, summaryOf(a))
		last = a.ID
	}
	resp.Pagination = s.opts.Cursors.Result(scope, len(list), more, last, total)
	return resp, nil
}

// CreateAddon implements AddonsService.
func (s *Service) CreateAddon(ctx context.Context, req *addonsv1.CreateAddonRequest) (*addonsv1.CreateAddonResponse, error) {
	a, err := s.create(ctx, req, req.GetSpec())
	if err != nil {
		return nil, err
	}
	return &addonsv1.CreateAddonResponse{Addon: s.addonOf(ctx, a)}, nil
}

// PutAddon implements AddonsService: an addon whose derived id exists is
// updated (its type cannot change), else created.
func (s *Service) PutAddon(ctx context.Context, req *addonsv1.PutAddonRequest) (*addonsv1.PutAddonResponse, error) {
	teamID, err := team(ctx)
	if err != nil {
		return nil, err
	}
	spec := req.GetSpec()
	cur, err := s.store.GetAddon(ctx, teamID, req.GetProjectId(), slug.Make(spec.GetName()))
	if errors.Is(err, ErrNotFound) {
		a, err := s.create(ctx, req, spec)
		if err != nil {
			return nil, err
		}
		return &addonsv1.PutAddonResponse{Addon: s.addonOf(ctx, a)}, nil
	}
	if err != nil {
		return nil, err
	}
	if spec.GetType() != cur.Type {
		return nil, apierr.Conflict(apierr.ReasonAddonTypeMismatch, "addon %q is a %s addon: its type cannot change to %s", cur.ID, cur.Type, spec.GetType())
	}
	patch := &addonsv1.AddonPatch{
		Description: &spec.Description, StageId: &spec.StageId, Tags: spec.GetTags(), Version: &spec.Version,
		Billing:    &addonsv1.AddonBillingPatch{DeploymentPlan: &spec.GetBilling().DeploymentPlan},
		TlsEnabled: &spec.TlsEnabled, ExternalAccessEnabled: &spec.ExternalAccessEnabled, IpPolicies: spec.GetIpPolicies(),
		TypeSpecificSettings: spec.GetTypeSpecificSettings(), BackupSchedules: spec.GetBackupSchedules(), Metadata: spec.GetMetadata(),
	}
	if st := spec.GetBilling().GetStorage(); st != 0 {
		patch.Billing.Storage = &st
	}
	if r := spec.GetBilling().GetReplicas(); r != 0 {
		patch.Billing.Replicas = &r
	}
	if spec.GetCustomCredentials().GetDbName() != cur.Settings.DBName && spec.GetCustomCredentials().GetDbName() != "" {
		return nil, apierr.InvalidField("customCredentials.dbName", "cannot change once the addon exists")
	}
	a, err := s.patch(ctx, cur, patch)
	if err != nil {
		return nil, err
	}
	return &addonsv1.PutAddonResponse{Addon: s.addonOf(ctx, a)}, nil
}

// GetAddon implements AddonsService.
func (s *Service) GetAddon(ctx context.Context, req *addonsv1.GetAddonRequest) (*addonsv1.GetAddonResponse, error) {
	a, err := s.addon(ctx, req, req.GetAddonId())
	if err != nil {
		return nil, err
	}
	return &addonsv1.GetAddonResponse{Addon: s.addonOf(ctx, a)}, nil
}

// PatchAddon implements AddonsService.
func (s *Service) PatchAddon(ctx context.Context, req *addonsv1.PatchAddonRequest) (*addonsv1.PatchAddonResponse, error) {
	a, err := s.addon(ctx, req, req.GetAddonId())
	if err != nil {
		return nil, err
	}
	a, err = s.patch(ctx, a, req.GetSpec())
	if err != nil {
		return nil, err
	}
	return &addonsv1.PatchAddonResponse{Addon: s.addonOf(ctx, a)}, nil
}

// DeleteAddon implements AddonsService: the addon shows "deleting" until
// its server, data and backups are gone.
func (s *Service) DeleteAddon(ctx context.Context, req *addonsv1.DeleteAddonRequest) (*addonsv1.DeleteAddonResponse, error) {
	a, err := s.addon(ctx, req, req.GetAddonId())
	if err != nil {
		return nil, err
	}
	if err := s.deleteAddon(ctx, a); err != nil {
		return nil, err
	}
	return &addonsv1.DeleteAddonResponse{}, nil
}

// deleteAddon marks the addon deleting and removes it in the background.
func (s *Service) deleteAddon(ctx context.Context, a Addon) error {
	a, err := s.setStatus(ctx, a, StatusDeleting, "")
	if err != nil {
		return apierr.FromStore(err, "addon", a.ID)
	}
	s.background(func(ctx context.Context) {
		if err := s.destroy(ctx, a); err != nil {
			s.log.Error("deleting an addon", "addon", a.ID, "project", a.ProjectID, "error", err)
			return // recovery finishes it at the next start
		}
		s.log.Info("deleted an addon", "addon", a.ID, "project", a.ProjectID)
	})
	return nil
}

// PauseAddon implements AddonsService: the server stops, the data stays.
func (s *Service) PauseAddon(ctx context.Context, req *addonsv1.PauseAddonRequest) (*addonsv1.PauseAddonResponse, error) {
	a, err := s.addon(ctx, req, req.GetAddonId())
	if err != nil {
		return nil, err
	}
	a, err = s.store.UpdateAddon(ctx, a.TeamID, a.ProjectID, a.ID, func(cur *Addon) ([]events.Event, error) {
		switch cur.Status {
		case StatusPaused:
			return nil, nil
		case StatusBackup, StatusRestore, StatusDeleting, StatusUpgrading:
			return nil, notIdle(*cur)
		}
		cur.Status, cur.StatusMessage, cur.UpdatedAt = StatusPaused, "", s.now()
		return addonEvents(events.ResourceUpdated, *cur)
	})
	if err != nil {
		return nil, apierr.FromStore(err, "addon", req.GetAddonId())
	}
	l := s.lock(a.InternalID)
	l.Lock()
	err = s.stopServer(ctx, a)
	l.Unlock()
	if err != nil {
		return nil, err
	}
	return &addonsv1.PauseAddonResponse{}, nil
}

// notIdle refuses a change while a backup, restore, upgrade or deletion
// is under way.
func notIdle(a Addon) error {
	return apierr.Conflict(apierr.ReasonAddonBusy, "addon %q is %s: wait until it is done", a.ID, a.Status)
}

// ResumeAddon implements AddonsService.
func (s *Service) ResumeAddon(ctx context.Context, req *addonsv1.ResumeAddonRequest) (*addonsv1.ResumeAddonResponse, error) {
	a, err := s.addon(ctx, req, req.GetAddonId())
	if err != nil {
		return nil, err
	}
	a, err = s.store.UpdateAddon(ctx, a.TeamID, a.ProjectID, a.ID, func(cur *Addon) ([]events.Event, error) {
		if cur.Status != StatusPaused {
			return nil, apierr.Conflict(apierr.ReasonAddonNotPaused, "addon %q is %s, not paused", cur.ID, cur.Status)
		}
		cur.Status, cur.UpdatedAt = StatusPreDeployment, s.now()
		return addonEvents(events.ResourceUpdated, *cur)
	})
	if err != nil {
		return nil, apierr.FromStore(err, "addon", req.GetAddonId())
	}
	s.bringUp(a, nil)
	return &addonsv1.ResumeAddonResponse{}, nil
}

// RestartAddon implements AddonsService.
func (s *Service) RestartAddon(ctx context.Context, req *addonsv1.RestartAddonRequest) (*addonsv1.RestartAddonResponse, error) {
	a, err := s.addon(ctx, req, req.GetAddonId())
	if err != nil {
		return nil, err
	}
	if err := s.restart(ctx, a, nil); err != nil {
		return nil, err
	}
	return &addonsv1.RestartAddonResponse{}, nil
}

// restart stops the server and starts it again in the background, with
// change applied to the addon first (a new version or plan).
func (s *Service) restart(ctx context.Context, a Addon, change func(*Addon)) error {
	a, err := s.store.UpdateAddon(ctx, a.TeamID, a.ProjectID, a.ID, func(cur *Addon) ([]events.Event, error) {
		switch cur.Status {
		case StatusRunning, StatusFailed, StatusPreDeployment:
		case StatusPaused:
			if change != nil {
				change(cur) // applied at the next resume
				cur.UpdatedAt = s.now()
				return addonEvents(events.ResourceUpdated, *cur)
			}
			return nil, apierr.Conflict(apierr.ReasonAddonBusy, "addon %q is paused: resume it instead", cur.ID)
		default:
			return nil, notIdle(*cur)
		}
		if change != nil {
			change(cur)
		}
		cur.Status, cur.StatusMessage, cur.UpdatedAt = StatusPreDeployment, "", s.now()
		return addonEvents(events.ResourceUpdated, *cur)
	})
	if err != nil {
		return apierr.FromStore(err, "addon", a.ID)
	}
	if a.Status == StatusPaused {
		return nil
	}
	s.background(func(ctx context.Context) {
		l := s.lock(a.InternalID)
		l.Lock()
		err := s.removeWorkloads(ctx, a, engine.RoleServer)
		l.Unlock()
		if err != nil {
			s.log.Warn("stopping an addon to restart it", "addon", a.ID, "error", err)
		}
		s.bringUp(a, nil)
	})
	return nil
}

// ResetAddon implements AddonsService: the server stops, its data
// directory is emptied, and it starts again as new (same credentials and
// database name; backups and schedules stay). The addon shows resetting,
// then preDeployment until it answers.
func (s *Service) ResetAddon(ctx context.Context, req *addonsv1.ResetAddonRequest) (*addonsv1.ResetAddonResponse, error) {
	a, err := s.addon(ctx, req, req.GetAddonId())
	if err != nil {
		return nil, err
	}
	a, err = s.store.UpdateAddon(ctx, a.TeamID, a.ProjectID, a.ID, func(cur *Addon) ([]events.Event, error) {
		switch cur.Status {
		case StatusRunning, StatusFailed, StatusPaused, StatusPreDeployment:
		default:
			return nil, notIdle(*cur)
		}
		cur.Status, cur.StatusMessage, cur.UpdatedAt = StatusResetting, "", s.now()
		return addonEvents(events.ResourceUpdated, *cur)
	})
	if err != nil {
		return nil, apierr.FromStore(err, "addon", req.GetAddonId())
	}
	s.background(func(ctx context.Context) {
		l := s.lock(a.InternalID)
		l.Lock()
		err := s.stopServer(ctx, a)
		if err == nil {
			err = engine.RemoveData(ctx, s.opts.Driver, s.engineAddon(a))
		}
		l.Unlock()
		if err != nil {
			s.log.Error("resetting an addon", "addon", a.ID, "error", err)
			s.transition(context.WithoutCancel(ctx), a, []string{StatusResetting}, StatusFailed, "the reset failed: "+userMessage(err))
			return
		}
		s.transition(ctx, a, []string{StatusResetting}, StatusPreDeployment, "")
		a.Status = StatusPreDeployment
		s.bringUp(a, nil)
	})
	return &addonsv1.ResetAddonResponse{}, nil
}

// UpdateAddonSecurity implements AddonsService: no IP policy can be
// honoured, so only an empty list is accepted.
func (s *Service) UpdateAddonSecurity(ctx context.Context, req *addonsv1.UpdateAddonSecurityRequest) (*addonsv1.UpdateAddonSecurityResponse, error) {
	if _, err := s.addon(ctx, req, req.GetAddonId()); err != nil {
		return nil, err
	}
	if len(req.GetIpPolicies()) > 0 {
		return nil, apierr.InvalidField("ipPolicies", "IP policies are not available: Slipway has no per-addon firewall")
	}
	return &addonsv1.UpdateAddonSecurityResponse{}, nil
}

// GetAddonCredentials implements AddonsService: the one call that shows
// an addon's secrets.
func (s *Service) GetAddonCredentials(ctx context.Context, req *addonsv1.GetAddonCredentialsRequest) (*addonsv1.GetAddonCredentialsResponse, error) {
	a, err := s.addon(ctx, req, req.GetAddonId())
	if err != nil {
		return nil, err
	}
	secrets, envs, err := s.Credentials(ctx, a)
	if err != nil {
		return nil, err
	}
	sec, err := structOf(secrets)
	if err != nil {
		return nil, err
	}
	env, err := structOf(envs)
	if err != nil {
		return nil, err
	}
	return &addonsv1.GetAddonCredentialsResponse{Secrets: sec, Envs: env}, nil
}

// Credentials are an addon's connection values: the engine's (hosts are
// the socket directory as linked workloads see it) and, with external
// access on, the server's TCP address on the host's loopback.
func (s *Service) Credentials(ctx context.Context, a Addon) (secrets, envs map[string]string, err error) {
	e, err := engineOf(a.Type)
	if err != nil {
		return nil, nil, err
	}
	ea := s.engineAddon(a)
	secrets, envs = e.Credentials(ea)
	if a.Settings.External {
		if list, err := s.workloads(ctx, a, engine.RoleServer); err == nil {
			for _, w := range list {
				if addr := w.Ports["db"]; w.State == runtime.StateRunning && addr != "" {
					host, port, _ := strings.Cut(addr, ":")
					xs, xe := engine.ExternalCredentials(a.Type, ea, host, port)
					maps.Copy(secrets, xs)
					maps.Copy(envs, xe)
				}
			}
		}
	}
	return secrets, envs, nil
}

func structOf(m map[string]string) (*structpb.Struct, error) {
	fields := make(map[string]any, len(m))
	for k, v := range m {
		fields[k] = v
	}
	return structpb.NewStruct(fields)
}

// GetAddonContainers implements AddonsService.
func (s *Service) GetAddonContainers(ctx context.Context, req *addonsv1.GetAddonContainersRequest) (*addonsv1.GetAddonContainersResponse, error) {
	a, err := s.addon(ctx, req, req.GetAddonId())
	if err != nil {
		return nil, err
	}
	resp := &addonsv1.GetAddonContainersResponse{Containers: []*addonsv1.AddonContainer{}}
	for _, role := range []string{engine.RoleServer, engine.RoleVerify} {
		list, err := s.workloads(ctx, a, role)
		if err != nil {
			return nil, err
		}
		for _, w := range list {
			status := "TASK_RUNNING"
			updated := w.StartedAt
			if w.State != runtime.StateRunning {
				status, updated = "TASK_FINISHED", w.FinishedAt
				if w.ExitCode != 0 {
					status = "TASK_FAILED"
				}
			}
			resp.Containers = append(resp.Containers, &addonsv1.AddonContainer{Name: w.Name, Role: role, Status: status,
				CreatedAt: float64(w.StartedAt.Unix()), UpdatedAt: float64(updated.Unix())})
		}
	}
	resp.Pagination = s.opts.Cursors.Result("addon-containers", len(resp.Containers), false, "", len(resp.Containers))
	return resp, nil
}

// GetAddonVersion implements AddonsService.
func (s *Service) GetAddonVersion(ctx context.Context, req *addonsv1.GetAddonVersionRequest) (*addonsv1.GetAddonVersionResponse, error) {
	a, err := s.addon(ctx, req, req.GetAddonId())
	if err != nil {
		return nil, err
	}
	e, err := engineOf(a.Type)
	if err != nil {
		return nil, err
	}
	resp := &addonsv1.GetAddonVersionResponse{Version: a.Settings.Version, LifecycleStatus: "active",
		UpgradeTo: []*addonsv1.VersionUpgrade{}, UpgradeHistory: []*addonsv1.VersionChange{}}
	for _, v := range e.Info(s.opts.Driver.Name()).Versions {
		if v != a.Settings.Version && majorOf(v) == majorOf(a.Settings.Version) && compareVersions(v, a.Settings.Version) > 0 {
			resp.UpgradeTo = append(resp.UpgradeTo, &addonsv1.VersionUpgrade{Version: v, Type: "minor"})
		}
	}
	for i := len(a.Settings.VersionLog) - 1; i >= 0; i-- {
		u := a.Settings.VersionLog[i]
		resp.UpgradeHistory = append(resp.UpgradeHistory, &addonsv1.VersionChange{UpgradeId: u.ID, Status: &addonsv1.VersionChangeStatus{Status: u.Status},
			CreatedAt: ts(u.CreatedAt), CompletedAt: ts(u.CompletedAt), UpgradeType: u.Type, PreviousVersion: u.From, NewVersion: u.To})
	}
	return resp, nil
}

// UpdateAddonVersion implements AddonsService: a version of the same
// major restarts the server on it (the data files stay compatible); a
// major upgrade is refused (dump, then restore into a new addon).
func (s *Service) UpdateAddonVersion(ctx context.Context, req *addonsv1.UpdateAddonVersionRequest) (*addonsv1.UpdateAddonVersionResponse, error) {
	a, err := s.addon(ctx, req, req.GetAddonId())
	if err != nil {
		return nil, err
	}
	if err := s.updateVersion(ctx, a, req.GetVersion()); err != nil {
		return nil, err
	}
	return &addonsv1.UpdateAddonVersionResponse{}, nil
}

func (s *Service) updateVersion(ctx context.Context, a Addon, version string) error {
	e, err := engineOf(a.Type)
	if err != nil {
		return err
	}
	v, err := resolveVersion(e.Info(s.opts.Driver.Name()), version, "version")
	if err != nil {
		return err
	}
	if v == a.Settings.Version {
		return nil
	}
	if majorOf(v) != majorOf(a.Settings.Version) {
		return apierr.Conflict(apierr.ReasonAddonUpgradeUnsupported,
			"%s cannot move from version %s to %s in place (a major upgrade): take a dump backup and restore it into a new addon of version %s",
			a.Type, a.Settings.Version, v, v)
	}
	now := s.now()
	id := newID(now)
	return s.restart(ctx, a, func(cur *Addon) {
		cur.Settings.VersionLog = append(cur.Settings.VersionLog, Upgrade{ID: id, Status: JobCompleted, Type: "minor",
			From: cur.Settings.Version, To: v, CreatedAt: now, CompletedAt: now})
		cur.Settings.Version = v
	})
}

// UpdateAddonNetworkSettings implements AddonsService.
func (s *Service) UpdateAddonNetworkSettings(ctx context.Context, req *addonsv1.UpdateAddonNetworkSettingsRequest) (*addonsv1.UpdateAddonNetworkSettingsResponse, error) {
	a, err := s.addon(ctx, req, req.GetAddonId())
	if err != nil {
		return nil, err
	}
	_, err = s.patch(ctx, a, &addonsv1.AddonPatch{TlsEnabled: req.TlsEnabled, ExternalAccessEnabled: req.ExternalAccessEnabled})
	if err != nil {
		return nil, err
	}
	return &addonsv1.UpdateAddonNetworkSettingsResponse{}, nil
}

// ScaleAddon implements AddonsService.
func (s *Service) ScaleAddon(ctx context.Context, req *addonsv1.ScaleAddonRequest) (*addonsv1.ScaleAddonResponse, error) {
	a, err := s.addon(ctx, req, req.GetAddonId())
	if err != nil {
		return nil, err
	}
	_, err = s.patch(ctx, a, &addonsv1.AddonPatch{Billing: &addonsv1.AddonBillingPatch{
		DeploymentPlan: req.DeploymentPlan, Storage: req.Storage, Replicas: req.Replicas}})
	if err != nil {
		return nil, err
	}
	return &addonsv1.ScaleAddonResponse{}, nil
}

// ---- create and patch

// create validates spec, records the addon (preDeployment) with its
// schedules and starts it in the background.
func (s *Service) create(ctx context.Context, req request, spec *addonsv1.AddonSpec) (Addon, error) {
	teamID, err := team(ctx)
	if err != nil {
		return Addon{}, err
	}
	if err := s.checkProject(ctx, teamID, req.GetProjectId()); err != nil {
		return Addon{}, err
	}
	id := slug.Make(spec.GetName())
	if id == "" {
		return Addon{}, apierr.InvalidField("name", "must contain letters or digits")
	}
	e, ok := engine.Get(spec.GetType())
	info := engine.TypeInfo{}
	if ok {
		info = e.Info(s.opts.Driver.Name())
	}
	if !ok || len(info.Versions) == 0 {
		return Addon{}, apierr.InvalidField("type", fmt.Sprintf("unknown addon type %q: GET /v1/addon-types lists those this install runs", spec.GetType()))
	}
	version, err := resolveVersion(info, spec.GetVersion(), "version")
	if err != nil {
		return Addon{}, err
	}
	now := s.now()
	a := Addon{TeamID: teamID, ProjectID: req.GetProjectId(), ID: id, Name: spec.GetName(), Type: spec.GetType(),
		Status: StatusPreDeployment, CreatedAt: now, UpdatedAt: now,
		Settings: Settings{Description: spec.GetDescription(), Tags: spec.GetTags(), StageID: spec.GetStageId(), Version: version,
			Architecture: spec.GetInfrastructure().GetArchitecture(), Extra: extraOf(spec.GetTypeSpecificSettings(), spec.GetMetadata())}}
	if err := s.applyBilling(&a, info, spec.GetBilling().GetDeploymentPlan(), spec.GetBilling().GetStorage(), spec.GetBilling().GetReplicas()); err != nil {
		return Addon{}, err
	}
	if err := applyNetwork(&a, info, spec.GetTlsEnabled(), spec.GetExternalAccessEnabled(), spec.GetIpPolicies()); err != nil {
		return Addon{}, err
	}
	if db := spec.GetCustomCredentials().GetDbName(); db != "" {
		if !info.Features.CustomDBName {
			return Addon{}, apierr.InvalidField("customCredentials.dbName", fmt.Sprintf("%s addons have no database name to choose", a.Type))
		}
		a.Settings.DBName = db
	}
	if a.Credentials, err = newCredentials(); err != nil {
		return Addon{}, err
	}
	if a.InternalID, err = newInternalID(); err != nil {
		return Addon{}, err
	}
	var source *Backup
	if src := spec.GetSource(); src != nil && (src.GetBackupId() != "" || src.GetAddonId() != "" || src.GetBackupUid() != "") {
		if src.GetBackupUid() != "" {
			return Addon{}, apierr.InvalidField("source.backupUid", "global backups are not available: name the backup by projectId, addonId and backupId")
		}
		if src.GetAddonId() == "" || src.GetBackupId() == "" {
			return Addon{}, apierr.InvalidField("source", "needs addonId and backupId")
		}
		if !info.Features.ForkAddon {
			return Addon{}, apierr.InvalidField("source", fmt.Sprintf("%s addons cannot be forked here", a.Type))
		}
		b, _, err := s.sourceBackup(ctx, a, src.GetProjectId(), src.GetAddonId(), src.GetBackupId())
		if err != nil {
			return Addon{}, err
		}
		source = &b
		a.Settings.Source = &Source{ProjectID: b.ProjectID, AddonID: b.AddonID, BackupID: b.ID}
	}
	schedules, err := s.schedulesOf(ctx, a, spec.GetBackupSchedules(), info)
	if err != nil {
		return Addon{}, err
	}
	evs, err := addonEvents(events.ResourceCreated, a)
	if err != nil {
		return Addon{}, err
	}
	if err := s.store.CreateAddon(ctx, a, schedules, evs...); err != nil {
		return Addon{}, apierr.FromStore(err, "addon", a.ID)
	}
	if source != nil {
		s.bringUp(a, s.fork(*source))
	} else {
		s.bringUp(a, nil)
	}
	return a, nil
}

// patch applies the settings p gives; a new version or plan restarts the
// server.
func (s *Service) patch(ctx context.Context, a Addon, p *addonsv1.AddonPatch) (Addon, error) {
	e, err := engineOf(a.Type)
	if err != nil {
		return Addon{}, err
	}
	info := e.Info(s.opts.Driver.Name())
	next := cloneAddon(a)
	if p.Description != nil {
		next.Settings.Description = p.GetDescription()
	}
	if p.StageId != nil {
		next.Settings.StageID = p.GetStageId()
	}
	if p.Tags != nil {
		next.Settings.Tags = p.GetTags()
	}
	if p.TypeSpecificSettings != nil || p.Metadata != nil {
		next.Settings.Extra = extraOf(p.GetTypeSpecificSettings(), p.GetMetadata())
	}
	if b := p.GetBilling(); b != nil {
		plan := next.Settings.Plan
		if b.DeploymentPlan != nil && b.GetDeploymentPlan() != "" {
			plan = b.GetDeploymentPlan()
		}
		storage, replicas := int32(next.Settings.StorageMB), int32(next.Settings.Replicas)
		if b.Storage != nil {
			storage = b.GetStorage()
		}
		if b.Replicas != nil {
			replicas = b.GetReplicas()
		}
		if err := s.applyBilling(&next, info, plan, storage, replicas); err != nil {
			return Addon{}, err
		}
		if storage < int32(a.Settings.StorageMB) {
			return Addon{}, apierr.InvalidField("billing.storage", fmt.Sprintf("cannot shrink from %d MB to %d MB", a.Settings.StorageMB, storage))
		}
	}
	tls, external := next.Settings.TLS, next.Settings.External
	if p.TlsEnabled != nil {
		tls = p.GetTlsEnabled()
	}
	if p.ExternalAccessEnabled != nil {
		external = p.GetExternalAccessEnabled()
	}
	if err := applyNetwork(&next, info, tls, external, p.GetIpPolicies()); err != nil {
		return Addon{}, err
	}
	var schedules []Schedule
	if p.BackupSchedules != nil {
		if schedules, err = s.schedulesOf(ctx, a, p.GetBackupSchedules(), info); err != nil {
			return Addon{}, err
		}
	}
	version := a.Settings.Version
	if p.Version != nil && p.GetVersion() != "" {
		if version, err = resolveVersion(info, p.GetVersion(), "version"); err != nil {
			return Addon{}, err
		}
	}
	// A change of TLS, plan or version restarts the server: refused while
	// it is busy, before anything of the patch is stored, so that a
	// refused patch changes nothing and the settings never claim what the
	// server does not do.
	if tls != a.Settings.TLS || next.Settings.Plan != a.Settings.Plan || version != a.Settings.Version {
		switch a.Status {
		case StatusRunning, StatusFailed, StatusPreDeployment, StatusPaused:
		default:
			return Addon{}, notIdle(a)
		}
	}
	updated, err := s.store.UpdateAddon(ctx, a.TeamID, a.ProjectID, a.ID, func(cur *Addon) ([]events.Event, error) {
		cur.Settings.Description, cur.Settings.StageID, cur.Settings.Tags = next.Settings.Description, next.Settings.StageID, next.Settings.Tags
		cur.Settings.Extra, cur.Settings.TLS, cur.Settings.External = next.Settings.Extra, next.Settings.TLS, next.Settings.External
		cur.Settings.StorageMB, cur.Settings.Replicas = next.Settings.StorageMB, next.Settings.Replicas
		if cur.Settings.Description == a.Settings.Description && slices.Equal(cur.Settings.Tags, a.Settings.Tags) &&
			cur.Settings.TLS == a.Settings.TLS && cur.Settings.External == a.Settings.External &&
			cur.Settings.StorageMB == a.Settings.StorageMB && cur.Settings.Replicas == a.Settings.Replicas &&
			cur.Settings.StageID == a.Settings.StageID && extraEqual(cur.Settings.Extra, a.Settings.Extra) {
			return nil, nil
		}
		cur.UpdatedAt = s.now()
		return addonEvents(events.ResourceUpdated, *cur)
	})
	if err != nil {
		return Addon{}, apierr.FromStore(err, "addon", a.ID)
	}
	if p.BackupSchedules != nil {
		if err := s.store.ReplaceSchedules(ctx, a.TeamID, a.ProjectID, a.ID, schedules); err != nil {
			return Addon{}, apierr.FromStore(err, "backup schedule", "")
		}
	}
	if version != a.Settings.Version {
		if err := s.updateVersion(ctx, updated, version); err != nil {
			return Addon{}, err
		}
	}
	if next.Settings.Plan != a.Settings.Plan {
		plan := next.Settings.Plan
		if err := s.restart(ctx, updated, func(cur *Addon) { cur.Settings.Plan = plan }); err != nil {
			return Addon{}, err
		}
	} else if updated.Settings.TLS != a.Settings.TLS && updated.Status != StatusPaused {
		// The server's TCP listener is configured at its start.
		if err := s.restart(ctx, updated, nil); err != nil {
			return Addon{}, err
		}
	}
	return s.store.GetAddon(ctx, a.TeamID, a.ProjectID, a.ID)
}

func extraEqual(a, b *ExtraJSON) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// applyBilling checks and sets an addon's plan, storage and replicas.
func (s *Service) applyBilling(a *Addon, info engine.TypeInfo, plan string, storage, replicas int32) error {
	if s.opts.Catalog.Plan(plan) == nil {
		return apierr.InvalidField("billing.deploymentPlan", fmt.Sprintf("unknown plan %q: GET /v1/plans lists them", plan))
	}
	if storage == 0 {
		storage = StorageOptions[0]
	}
	if !slices.Contains(StorageOptions, storage) {
		return apierr.InvalidField("billing.storage", fmt.Sprintf("%d MB is not offered: one of %s", storage, joinInts(StorageOptions)))
	}
	if replicas == 0 {
		replicas = 1
	}
	if !slices.Contains(ReplicaOptions, replicas) {
		return apierr.InvalidField("billing.replicas", fmt.Sprintf("%s addons run %s replica here", info.Type, joinInts(ReplicaOptions)))
	}
	a.Settings.Plan, a.Settings.StorageMB, a.Settings.Replicas = plan, int(storage), int(replicas)
	return nil
}

// applyNetwork checks and sets TLS and external access: what the type
// cannot offer here is refused (400), never silently ignored.
func applyNetwork(a *Addon, info engine.TypeInfo, tls, external bool, policies []*addonsv1.IPPolicy) error {
	if tls && !info.Features.TLS {
		return apierr.InvalidField("tlsEnabled", fmt.Sprintf("TLS is not available for %s addons on this install: connections go through the addon's socket (see the README)", info.Type))
	}
	if external && !info.Features.ExternalAccess {
		return apierr.InvalidField("externalAccessEnabled", fmt.Sprintf("external access is not available for %s addons on this install", info.Type))
	}
	// Northflank's rule: what leaves the machine is encrypted (checked
	// when either setting changes, so that an addon stored before the
	// rule keeps taking its other changes).
	if external && !tls && (external != a.Settings.External || tls != a.Settings.TLS) {
		return apierr.InvalidField("externalAccessEnabled", "external access needs tlsEnabled: true")
	}
	if len(policies) > 0 {
		return apierr.InvalidField("ipPolicies", "IP policies are not available: Slipway has no per-addon firewall")
	}
	a.Settings.TLS, a.Settings.External = tls, external
	return nil
}

// resolveVersion maps a requested version ("latest", a version, or a
// major) to one this install runs; field names the request field.
func resolveVersion(info engine.TypeInfo, v, field string) (string, error) {
	if len(info.Versions) == 0 {
		return "", apierr.InvalidField(field, fmt.Sprintf("%s cannot run on this install", info.Type))
	}
	if v == "" || v == "latest" {
		best := info.Versions[0]
		for _, c := range info.Versions[1:] {
			if compareVersions(c, best) > 0 {
				best = c
			}
		}
		return best, nil
	}
	if slices.Contains(info.Versions, v) {
		return v, nil
	}
	best := ""
	for _, c := range info.Versions {
		if majorOf(c) == v && (best == "" || compareVersions(c, best) > 0) {
			best = c
		}
	}
	if best != "" {
		return best, nil
	}
	return "", apierr.InvalidField(field, fmt.Sprintf("%s version %q is not available here: one of %s or latest", info.Type, v, strings.Join(info.Versions, ", ")))
}

func majorOf(v string) string {
	m, _, _ := strings.Cut(v, ".")
	return m
}

// compareVersions compares dotted numeric versions.
func compareVersions(a, b string) int {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < max(len(as), len(bs)); i++ {
		var x, y int
		if i < len(as) {
			x, _ = strconv.Atoi(as[i])
		}
		if i < len(bs) {
			y, _ = strconv.Atoi(bs[i])
		}
		if x != y {
			if x < y {
				return -1
			}
			return 1
		}
	}
	return 0
}

func joinInts(list []int32) string {
	out := make([]string, len(list))
	for i, v := range list {
		out[i] = strconv.Itoa(int(v))
	}
	return strings.Join(out, ", ")
}

// newCredentials generates an addon's users and passwords (crypto/rand).
func newCredentials() (Credentials, error) {
	var c Credentials
	var err error
	if c.AdminUser, err = engine.GenerateUser("admin_"); err != nil {
		return c, err
	}
	if c.AdminPassword, err = engine.GeneratePassword(); err != nil {
		return c, err
	}
	if c.User, err = engine.GenerateUser("app_"); err != nil {
		return c, err
	}
	c.Password, err = engine.GeneratePassword()
	return c, err
}

// newInternalID names an addon's directory and workloads: random, never
// reused.
func newInternalID() (string, error) {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return "a" + hex.EncodeToString(b), nil
}

// extraOf keeps the settings accepted for compatibility.
func extraOf(typeSpecific, metadata *structpb.Struct) *ExtraJSON {
	if typeSpecific == nil && metadata == nil {
		return nil
	}
	x := &ExtraJSON{}
	if typeSpecific != nil {
		b, _ := typeSpecific.MarshalJSON()
		x.TypeSpecific = string(b)
	}
	if metadata != nil {
		b, _ := metadata.MarshalJSON()
		x.Metadata = string(b)
	}
	return x
}

// Link is what linking an addon into a workload (secret groups) needs:
// its connection values (credentials' secrets and envs together), the
// host directory of its sockets, and where a linked workload must mount
// that directory, read-only, for the values to work (the values' HOST is
// that path: it names the addon's internal id, not its slug).
type Link struct {
	Name, Type, Version string
	Values              map[string]string
	SocketDir           string
	MountPath           string
}

// Link returns the link of a team's addon; apierr.ErrNotFound when the
// project has no such addon.
func (s *Service) Link(ctx context.Context, team, project, id string) (Link, error) {
	a, err := s.store.GetAddon(ctx, team, project, id)
	if err != nil {
		return Link{}, err
	}
	secrets, envs, err := s.Credentials(ctx, a)
	if err != nil {
		return Link{}, err
	}
	values := make(map[string]string, len(secrets)+len(envs))
	for k, v := range envs {
		values[k] = v
	}
	for k, v := range secrets {
		values[k] = v
	}
	ea := s.engineAddon(a)
	return Link{Name: a.Name, Type: a.Type, Version: a.Settings.Version, Values: values, SocketDir: ea.RunDir, MountPath: engine.LinkPath(ea)}, nil
}
