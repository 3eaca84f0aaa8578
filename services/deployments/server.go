package deployments

import (
	"context"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	deploymentsv1 "github.com/slipwayhq/slipway/gen/slipway/deployments/v1"
	projectsv1 "github.com/slipwayhq/slipway/gen/slipway/projects/v1"
	"github.com/slipwayhq/slipway/pkg/apierr"
	"github.com/slipwayhq/slipway/pkg/authz"
	"github.com/slipwayhq/slipway/pkg/events"
	"github.com/slipwayhq/slipway/pkg/overrides"
	"github.com/slipwayhq/slipway/pkg/runtime"
	"github.com/slipwayhq/slipway/pkg/slug"
	gitvcs "github.com/slipwayhq/slipway/pkg/vcs"
)

// request is what every request names.
type request interface {
	GetTeamId() string
	GetProjectId() string
}

// team is the team the call acts on, as the authorization interceptor
// resolved it (it has also checked the token's project restriction).
func team(ctx context.Context) (string, error) {
	grant, ok := authz.GrantFrom(ctx)
	if !ok {
		return "", authz.Unauthenticated("credentials required")
	}
	return grant.GetTeamId(), nil
}

// who names the caller for a release's history: the user, or the token
// when it acts as no user.
func who(ctx context.Context) string {
	p, ok := authz.PrincipalFrom(ctx)
	switch {
	case !ok:
		return "internal"
	case p.GetUserId() != "":
		return "user:" + p.GetUserId()
	case p.GetTokenId() != "":
		return "token:" + p.GetTokenId()
	}
	return string(authz.KindOf(p))
}

// ListServices implements DeploymentsService.
func (s *Server) ListServices(ctx context.Context, req *deploymentsv1.ListServicesRequest) (*deploymentsv1.ListServicesResponse, error) {
	teamID, err := team(ctx)
	if err != nil {
		return nil, err
	}
	scope := "services/" + teamID + "/" + req.GetProjectId()
	p, err := s.opts.Cursors.Parse(scope, req.GetPerPage(), req.GetPage(), req.GetCursor())
	if err != nil {
		return nil, err
	}
	if err := s.checkProject(ctx, teamID, req.GetProjectId()); err != nil {
		return nil, err
	}
	list, more, total, err := s.store.ListServices(ctx, teamID, req.GetProjectId(), p)
	if err != nil {
		return nil, err
	}
	resp := &deploymentsv1.ListServicesResponse{Services: make([]*deploymentsv1.ServiceSummary, 0, len(list))}
	last := ""
	for _, sv := range list {
		resp.Services = append(resp.Services, summaryOf(sv))
		last = sv.ID
	}
	resp.Pagination = s.opts.Cursors.Result(scope, len(list), more, last, total)
	return resp, nil
}

// CreateDeploymentService implements DeploymentsService.
func (s *Server) CreateDeploymentService(ctx context.Context, req *deploymentsv1.CreateDeploymentServiceRequest) (*deploymentsv1.CreateDeploymentServiceResponse, error) {
	sv, err := s.create(ctx, req, KindDeployment, req.GetSpec())
	return &deploymentsv1.CreateDeploymentServiceResponse{Service: sv}, err
}

// PutDeploymentService implements DeploymentsService.
func (s *Server) PutDeploymentService(ctx context.Context, req *deploymentsv1.PutDeploymentServiceRequest) (*deploymentsv1.PutDeploymentServiceResponse, error) {
	sv, err := s.put(ctx, req, KindDeployment, req.GetSpec())
	return &deploymentsv1.PutDeploymentServiceResponse{Service: sv}, err
}

// PatchDeploymentService implements DeploymentsService.
func (s *Server) PatchDeploymentService(ctx context.Context, req *deploymentsv1.PatchDeploymentServiceRequest) (*deploymentsv1.PatchDeploymentServiceResponse, error) {
	sv, err := s.patch(ctx, req, req.GetServiceId(), KindDeployment, req.GetSpec())
	return &deploymentsv1.PatchDeploymentServiceResponse{Service: sv}, err
}

// CreateCombinedService implements DeploymentsService.
func (s *Server) CreateCombinedService(ctx context.Context, req *deploymentsv1.CreateCombinedServiceRequest) (*deploymentsv1.CreateCombinedServiceResponse, error) {
	sv, err := s.create(ctx, req, KindCombined, req.GetSpec())
	return &deploymentsv1.CreateCombinedServiceResponse{Service: sv}, err
}

// PutCombinedService implements DeploymentsService.
func (s *Server) PutCombinedService(ctx context.Context, req *deploymentsv1.PutCombinedServiceRequest) (*deploymentsv1.PutCombinedServiceResponse, error) {
	sv, err := s.put(ctx, req, KindCombined, req.GetSpec())
	return &deploymentsv1.PutCombinedServiceResponse{Service: sv}, err
}

// PatchCombinedService implements DeploymentsService.
func (s *Server) PatchCombinedService(ctx context.Context, req *deploymentsv1.PatchCombinedServiceRequest) (*deploymentsv1.PatchCombinedServiceResponse, error) {
	sv, err := s.patch(ctx, req, req.GetServiceId(), KindCombined, req.GetSpec())
	return &deploymentsv1.PatchCombinedServiceResponse{Service: sv}, err
}

// GetService implements DeploymentsService.
func (s *Server) GetService(ctx context.Context, req *deploymentsv1.GetServiceRequest) (*deploymentsv1.GetServiceResponse, error) {
	sv, err := s.service(ctx, req, req.GetServiceId())
	if err != nil {
		return nil, err
	}
	return &deploymentsv1.GetServiceResponse{Service: s.serviceOf(sv)}, nil
}

// DeleteService implements DeploymentsService.
func (s *Server) DeleteService(ctx context.Context, req *deploymentsv1.DeleteServiceRequest) (*deploymentsv1.DeleteServiceResponse, error) {
	sv, err := s.service(ctx, req, req.GetServiceId())
	if err != nil {
		return nil, err
	}
	return &deploymentsv1.DeleteServiceResponse{}, s.deleteService(ctx, sv)
}

// GetServiceDeployment implements DeploymentsService.
func (s *Server) GetServiceDeployment(ctx context.Context, req *deploymentsv1.GetServiceDeploymentRequest) (*deploymentsv1.GetServiceDeploymentResponse, error) {
	sv, err := s.service(ctx, req, req.GetServiceId())
	if err != nil {
		return nil, err
	}
	return &deploymentsv1.GetServiceDeploymentResponse{
		Docker: dockerOf(sv.Deployable.Overrides), Storage: storageOf(sv), External: externalOf(sv.Deployable.Overrides.Image),
		Instances: int32(sv.Instances), Status: deploymentStatusOf(sv.Status), ReleaseId: sv.ReleaseID, Internal: internalOf(sv),
	}, nil
}

// UpdateServiceDeployment implements DeploymentsService.
func (s *Server) UpdateServiceDeployment(ctx context.Context, req *deploymentsv1.UpdateServiceDeploymentRequest) (*deploymentsv1.UpdateServiceDeploymentResponse, error) {
	var internal *Internal
	if req.GetInternal() != nil {
		var err error
		if internal, err = internalFrom("internal", req.GetInternal()); err != nil {
			return nil, err
		}
	}
	sv, err := s.update(ctx, req, req.GetServiceId(), "deployment", func(sv *Service) error {
		if sv.Kind == KindBuild {
			return apierr.Conflict(apierr.ReasonServiceTypeMismatch, "service %s is a build service: it deploys nothing", sv.ID)
		}
		if req.GetExternal() != nil {
			sv.Deployable.Overrides.Image = strings.TrimSpace(req.GetExternal().GetImagePath())
			sv.Internal = nil
		}
		if req.GetDocker() != nil {
			image := sv.Deployable.Overrides.Image
			sv.Deployable.Overrides = overridesFrom(nil, req.GetDocker())
			sv.Deployable.Overrides.Image = image
		}
		if internal != nil {
			if sv.Kind == KindCombined {
				return apierr.InvalidField("internal", "a combined service deploys its own builds of its projectBranch")
			}
			in := *internal
			sv.Internal, sv.Deployable.Overrides.Image = &in, ""
		}
		return s.resolve(ctx, sv)
	})
	if err != nil {
		return nil, err
	}
	return &deploymentsv1.UpdateServiceDeploymentResponse{ReleaseId: sv.ReleaseID}, nil
}

// GetServicePorts implements DeploymentsService.
func (s *Server) GetServicePorts(ctx context.Context, req *deploymentsv1.GetServicePortsRequest) (*deploymentsv1.GetServicePortsResponse, error) {
	sv, err := s.service(ctx, req, req.GetServiceId())
	if err != nil {
		return nil, err
	}
	return &deploymentsv1.GetServicePortsResponse{Ports: s.portsOf(sv.ProjectID, sv.ID, sv.Deployable.Ports)}, nil
}

// UpdateServicePorts implements DeploymentsService.
func (s *Server) UpdateServicePorts(ctx context.Context, req *deploymentsv1.UpdateServicePortsRequest) (*deploymentsv1.UpdateServicePortsResponse, error) {
	ports, err := portsFrom("ports", req.GetPorts())
	if err != nil {
		return nil, err
	}
	sv, err := s.update(ctx, req, req.GetServiceId(), "ports", func(sv *Service) error {
		sv.Deployable.Ports = ports
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &deploymentsv1.UpdateServicePortsResponse{Ports: s.portsOf(sv.ProjectID, sv.ID, sv.Deployable.Ports), ReleaseId: sv.ReleaseID}, nil
}

// GetServiceHealthChecks implements DeploymentsService.
func (s *Server) GetServiceHealthChecks(ctx context.Context, req *deploymentsv1.GetServiceHealthChecksRequest) (*deploymentsv1.GetServiceHealthChecksResponse, error) {
	sv, err := s.service(ctx, req, req.GetServiceId())
	if err != nil {
		return nil, err
	}
	return &deploymentsv1.GetServiceHealthChecksResponse{HealthChecks: healthChecksOf(sv.Deployable.HealthChecks)}, nil
}

// UpdateServiceHealthChecks implements DeploymentsService.
func (s *Server) UpdateServiceHealthChecks(ctx context.Context, req *deploymentsv1.UpdateServiceHealthChecksRequest) (*deploymentsv1.UpdateServiceHealthChecksResponse, error) {
	checks := healthChecksFrom(req.GetHealthChecks())
	sv, err := s.update(ctx, req, req.GetServiceId(), "health-checks", func(sv *Service) error {
		sv.Deployable.HealthChecks = checks
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &deploymentsv1.UpdateServiceHealthChecksResponse{ReleaseId: sv.ReleaseID}, nil
}

// GetServiceRuntimeEnvironment implements DeploymentsService.
func (s *Server) GetServiceRuntimeEnvironment(ctx context.Context, req *deploymentsv1.GetServiceRuntimeEnvironmentRequest) (*deploymentsv1.GetServiceRuntimeEnvironmentResponse, error) {
	sv, err := s.service(ctx, req, req.GetServiceId())
	if err != nil {
		return nil, err
	}
	if req.GetShow() == "inherited" { // a service inherits nothing (yet)
		return &deploymentsv1.GetServiceRuntimeEnvironmentResponse{RuntimeEnvironment: map[string]string{}, RuntimeFiles: map[string]string{}}, nil
	}
	return &deploymentsv1.GetServiceRuntimeEnvironmentResponse{RuntimeEnvironment: orEmpty(sv.Deployable.Env), RuntimeFiles: map[string]string{}}, nil
}

// UpdateServiceRuntimeEnvironment implements DeploymentsService.
func (s *Server) UpdateServiceRuntimeEnvironment(ctx context.Context, req *deploymentsv1.UpdateServiceRuntimeEnvironmentRequest) (*deploymentsv1.UpdateServiceRuntimeEnvironmentResponse, error) {
	before := ""
	sv, err := s.update(ctx, req, req.GetServiceId(), "runtime-environment", func(sv *Service) error {
		before = sv.ReleaseID
		sv.Deployable.Env = maps.Clone(req.GetRuntimeEnvironment())
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &deploymentsv1.UpdateServiceRuntimeEnvironmentResponse{Success: true, RestartSuccessful: sv.ReleaseID != before}, nil
}

// GetServiceRuntimeEnvironmentDetails implements DeploymentsService.
func (s *Server) GetServiceRuntimeEnvironmentDetails(ctx context.Context, req *deploymentsv1.GetServiceRuntimeEnvironmentDetailsRequest) (*deploymentsv1.GetServiceRuntimeEnvironmentDetailsResponse, error) {
	sv, err := s.service(ctx, req, req.GetServiceId())
	if err != nil {
		return nil, err
	}
	resp := &deploymentsv1.GetServiceRuntimeEnvironmentDetailsResponse{
		RuntimeEnvironment: map[string]*deploymentsv1.SecretDetail{}, RuntimeFiles: map[string]*deploymentsv1.SecretDetail{},
	}
	for k, v := range sv.Deployable.Env {
		resp.RuntimeEnvironment[k] = &deploymentsv1.SecretDetail{Value: v}
	}
	return resp, nil
}

// ScaleService implements DeploymentsService.
func (s *Server) ScaleService(ctx context.Context, req *deploymentsv1.ScaleServiceRequest) (*deploymentsv1.ScaleServiceResponse, error) {
	_, err := s.update(ctx, req, req.GetServiceId(), "", func(sv *Service) error {
		if req.Instances != nil {
			sv.Instances = int(req.GetInstances())
		}
		if req.GetDeploymentPlan() != "" {
			sv.Plan = req.GetDeploymentPlan()
		}
		if req.GetStorage() != nil {
			sv.StorageMB, sv.ShmMB = req.GetStorage().GetEphemeralStorage().GetStorageSize(), req.GetStorage().GetShmSize()
		}
		if req.GracePeriodSeconds != nil {
			sv.GraceSeconds = int(req.GetGracePeriodSeconds())
		}
		return nil
	})
	return &deploymentsv1.ScaleServiceResponse{}, err
}

// PauseService implements DeploymentsService.
func (s *Server) PauseService(ctx context.Context, req *deploymentsv1.PauseServiceRequest) (*deploymentsv1.PauseServiceResponse, error) {
	_, err := s.update(ctx, req, req.GetServiceId(), "", func(sv *Service) error {
		sv.Paused = true
		return nil
	})
	return &deploymentsv1.PauseServiceResponse{}, err
}

// ResumeService implements DeploymentsService.
func (s *Server) ResumeService(ctx context.Context, req *deploymentsv1.ResumeServiceRequest) (*deploymentsv1.ResumeServiceResponse, error) {
	_, err := s.update(ctx, req, req.GetServiceId(), "", func(sv *Service) error {
		sv.Paused = false
		if req.Instances != nil {
			sv.Instances = int(req.GetInstances())
		}
		return nil
	})
	return &deploymentsv1.ResumeServiceResponse{}, err
}

// RestartService implements DeploymentsService.
func (s *Server) RestartService(ctx context.Context, req *deploymentsv1.RestartServiceRequest) (*deploymentsv1.RestartServiceResponse, error) {
	_, err := s.update(ctx, req, req.GetServiceId(), "", func(sv *Service) error {
		sv.Restart++
		return nil
	})
	return &deploymentsv1.RestartServiceResponse{}, err
}

// GetServiceContainers implements DeploymentsService.
func (s *Server) GetServiceContainers(ctx context.Context, req *deploymentsv1.GetServiceContainersRequest) (*deploymentsv1.GetServiceContainersResponse, error) {
	sv, err := s.service(ctx, req, req.GetServiceId())
	if err != nil {
		return nil, err
	}
	scope := "containers/" + controllerID(sv.TeamID, sv.ProjectID, sv.ID)
	p, err := s.opts.Cursors.Parse(scope, req.GetPerPage(), req.GetPage(), req.GetCursor())
	if err != nil {
		return nil, err
	}
	all := s.ctl.Instances(controllerID(sv.TeamID, sv.ProjectID, sv.ID))
	start := min(p.Offset, len(all))
	if p.After != "" {
		start = len(all) // the instance the cursor names is gone: nothing follows
		for i, in := range all {
			if in.Name == p.After {
				start = i + 1
				break
			}
		}
	}
	end := min(start+p.Limit, len(all))
	resp := &deploymentsv1.GetServiceContainersResponse{Containers: make([]*deploymentsv1.Container, 0, end-start)}
	last := ""
	for _, in := range all[start:end] {
		resp.Containers = append(resp.Containers, containerOf(in))
		last = in.Name
	}
	resp.Pagination = s.opts.Cursors.Result(scope, end-start, end < len(all), last, len(all))
	return resp, nil
}

// ListServiceReleases implements DeploymentsService.
func (s *Server) ListServiceReleases(ctx context.Context, req *deploymentsv1.ListServiceReleasesRequest) (*deploymentsv1.ListServiceReleasesResponse, error) {
	sv, err := s.service(ctx, req, req.GetServiceId())
	if err != nil {
		return nil, err
	}
	scope := "releases/" + controllerID(sv.TeamID, sv.ProjectID, sv.ID)
	p, err := s.opts.Cursors.Parse(scope, req.GetPerPage(), req.GetPage(), req.GetCursor())
	if err != nil {
		return nil, err
	}
	list, more, total, err := s.store.ListReleases(ctx, sv.TeamID, sv.ProjectID, sv.ID, p)
	if err != nil {
		return nil, err
	}
	resp := &deploymentsv1.ListServiceReleasesResponse{Releases: make([]*deploymentsv1.Release, 0, len(list))}
	last := ""
	for _, r := range list {
		resp.Releases = append(resp.Releases, s.releaseOf(r))
		last = r.ID
	}
	resp.Pagination = s.opts.Cursors.Result(scope, len(list), more, last, total)
	return resp, nil
}

// RollbackServiceRelease implements DeploymentsService.
func (s *Server) RollbackServiceRelease(ctx context.Context, req *deploymentsv1.RollbackServiceReleaseRequest) (*deploymentsv1.RollbackServiceReleaseResponse, error) {
	teamID, err := team(ctx)
	if err != nil {
		return nil, err
	}
	old, err := s.store.GetRelease(ctx, teamID, req.GetProjectId(), req.GetServiceId(), req.GetReleaseId())
	if err != nil {
		return nil, apierr.FromStore(err, "release", req.GetReleaseId())
	}
	// A release of a build can be rolled back to while the build's
	// artifact is kept.
	if b := old.Deployable.Build; b != nil {
		if got, err := s.store.GetBuild(ctx, teamID, req.GetProjectId(), b.Service, b.ID); err != nil || got.Deleted {
			return nil, buildDeleted(b.ID, b.Service)
		}
	}
	// A rollback always makes a release, even of what runs already, so
	// that the history says it was asked for.
	var made *Release
	_, err = s.change(ctx, req, req.GetServiceId(), func(sv *Service) (string, string, error) {
		sv.Deployable = cloneDeployable(old.Deployable)
		return "rollback", old.ID, nil
	}, func(r *Release) { made = r })
	if err != nil {
		return nil, err
	}
	return &deploymentsv1.RollbackServiceReleaseResponse{Release: s.releaseOf(*made)}, nil
}

// ---- the work behind the handlers

// create validates spec and creates the service with its first release.
func (s *Server) create(ctx context.Context, req request, kind Kind, spec *deploymentsv1.ServiceSpec) (*deploymentsv1.Service, error) {
	sv, err := s.newService(ctx, req, kind, spec)
	if err != nil {
		return nil, err
	}
	return s.insert(ctx, sv)
}

// insert stores a new service with its first release (a build service
// deploys nothing and has none) and applies it.
func (s *Server) insert(ctx context.Context, sv Service) (*deploymentsv1.Service, error) {
	var r Release
	if sv.Kind != KindBuild {
		r = s.newRelease(&sv, "create", "", who(ctx))
	}
	evs, err := createEvents(sv, r)
	if err != nil {
		return nil, err
	}
	if err := s.store.CreateService(ctx, sv, r, evs...); err != nil {
		return nil, apierr.FromStore(err, "service", sv.ID)
	}
	s.apply(sv)
	return s.serviceOf(sv), nil
}

// put creates the service or replaces the settings of the one with the
// same id (its kind cannot change).
func (s *Server) put(ctx context.Context, req request, kind Kind, spec *deploymentsv1.ServiceSpec) (*deploymentsv1.Service, error) {
	want, err := s.newService(ctx, req, kind, spec)
	if err != nil {
		return nil, err
	}
	return s.upsert(ctx, req, want)
}

// upsert creates want or replaces the settings of the service with its
// id, which must be of the same kind.
func (s *Server) upsert(ctx context.Context, req request, want Service) (*deploymentsv1.Service, error) {
	out, err := s.insert(ctx, want)
	if err == nil || !isAlreadyExists(err) {
		return out, err
	}
	sv, err := s.update(ctx, req, want.ID, "update", func(sv *Service) error {
		if sv.Kind != want.Kind {
			return apierr.Conflict(apierr.ReasonServiceTypeMismatch, "service %q is a %s service; its type cannot change", sv.ID, sv.Kind)
		}
		sv.Name, sv.Description, sv.Tags, sv.Plan = want.Name, want.Description, want.Tags, want.Plan
		sv.Deployable, sv.StorageMB, sv.ShmMB, sv.Instances = want.Deployable, want.StorageMB, want.ShmMB, want.Instances
		// Credentials are write-only: a put without them (say, of what a
		// GET answered) keeps the stored ones, unless the repository moves
		// to another server.
		creds := gitvcs.KeepCredentials(vcsOf(sv.Build).GetProjectUrl(), vcsOf(want.Build).GetProjectUrl(), sv.Build.Credentials, want.Build.Credentials)
		sv.Strategy, sv.GraceSeconds, sv.Build, sv.Internal = want.Strategy, want.GraceSeconds, want.Build, want.Internal
		sv.Build.Credentials = creds
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s.serviceOf(sv), nil
}

func isAlreadyExists(err error) bool {
	e := apierr.From(err)
	return e != nil && e.Reason == apierr.ReasonAlreadyExists
}

// newService validates a create or put request into a service.
func (s *Server) newService(ctx context.Context, req request, kind Kind, spec *deploymentsv1.ServiceSpec) (Service, error) {
	teamID, err := team(ctx)
	if err != nil {
		return Service{}, err
	}
	d := spec.GetDeployment()
	if d.Instances == nil {
		return Service{}, apierr.InvalidField("deployment.instances", "is required: how many instances to run")
	}
	var internal *Internal
	if d.GetInternal() != nil {
		if kind == KindCombined {
			return Service{}, apierr.InvalidField("deployment.internal", "a combined service deploys its own builds of vcsData.projectBranch")
		}
		if internal, err = internalFrom("deployment.internal", d.GetInternal()); err != nil {
			return Service{}, err
		}
	}
	ports, err := portsFrom("ports", spec.GetPorts())
	if err != nil {
		return Service{}, err
	}
	strategy, err := strategyFrom(d.GetStrategy())
	if err != nil {
		return Service{}, err
	}
	build, err := buildFrom(spec.GetBilling().GetBuildPlan(), spec.GetVcsData(), spec.GetBuildSettings(), spec.GetBuildConfiguration())
	if err != nil {
		return Service{}, err
	}
	build.Arguments, build.Files = maps.Clone(spec.GetBuildArguments()), filesFrom(spec.GetBuildFiles())
	build.DisabledCI = kind == KindCombined && spec.GetDisabledCi()
	now := s.now()
	sv := Service{
		TeamID: teamID, ProjectID: req.GetProjectId(), ID: slug.Make(spec.GetName()), Name: spec.GetName(), Kind: kind,
		Description: spec.GetDescription(), Tags: slices.Clone(spec.GetTags()), Plan: spec.GetBilling().GetDeploymentPlan(),
		Deployable: Deployable{
			Overrides: overridesFrom(d.GetExternal(), d.GetDocker()), Ports: ports,
			HealthChecks: healthChecksFrom(spec.GetHealthChecks()), Env: maps.Clone(spec.GetRuntimeEnvironment()),
		},
		StorageMB: d.GetStorage().GetEphemeralStorage().GetStorageSize(), ShmMB: d.GetStorage().GetShmSize(),
		Instances: int(d.GetInstances()), Strategy: strategy, GraceSeconds: defaultGraceSeconds, Build: build, Internal: internal,
		CreatedAt: now, UpdatedAt: now,
	}
	if d.GracePeriodSeconds != nil {
		sv.GraceSeconds = int(d.GetGracePeriodSeconds())
	}
	if err := s.check(&sv); err != nil {
		return Service{}, err
	}
	if err := s.checkProject(ctx, teamID, sv.ProjectID); err != nil {
		return Service{}, err
	}
	if err := s.resolve(ctx, &sv); err != nil {
		return Service{}, err
	}
	return sv, nil
}

// check validates what the proto rules cannot (plans and their instance
// bound, what the runtime can run, health checks against ports, build
// settings by kind) and fills in the default plan.
func (s *Server) check(sv *Service) error {
	if sv.Kind == KindBuild {
		if sv.Build.BuildPlan != "" && s.opts.Catalog.Plan(sv.Build.BuildPlan) == nil {
			return apierr.InvalidField("billing.buildPlan", "is not a plan of GET /v1/plans")
		}
		return checkBuild(sv.Kind, sv.Build)
	}
	if sv.Plan == "" {
		if p := s.opts.Catalog.DefaultPlan(); p != nil {
			sv.Plan = p.GetId()
		}
	} else if s.opts.Catalog.Plan(sv.Plan) == nil {
		return apierr.InvalidField("billing.deploymentPlan", "is not a plan of GET /v1/plans")
	}
	if most := s.opts.Catalog.MaxInstances(sv.Plan); sv.Instances > most {
		return apierr.InvalidField("instances", fmt.Sprintf("is %d; plan %s runs at most %d instances", sv.Instances, sv.Plan, most))
	}
	if _, builds := followOf(*sv); builds {
		// A service that deploys builds runs what was built, whatever
		// the driver: only the overrides' own consistency is checked
		// here.
		withImage := sv.Deployable.Overrides
		withImage.Image = "built-image"
		if sv.Deployable.Overrides.Image != "" {
			return apierr.InvalidField("deployment.external.imagePath", "a service that deploys builds (a combined service, or deployment.internal) deploys no image")
		}
		if err := overrides.Check(withImage, "docker", "deployment", "service"); err != nil {
			return err
		}
	} else if err := overrides.Check(sv.Deployable.Overrides, s.opts.Driver, "deployment", "service"); err != nil {
		return err
	}
	if err := s.checkProtocols(sv.Deployable.Ports); err != nil {
		return err
	}
	if err := checkHealthChecks("healthChecks", sv.Deployable.HealthChecks, sv.Deployable.Ports); err != nil {
		return err
	}
	if err := checkEnv("runtimeEnvironment", sv.Deployable.Env); err != nil {
		return err
	}
	return checkBuild(sv.Kind, sv.Build)
}

// checkProtocols refuses a port the runtime cannot publish (UDP in the
// process driver's private sandbox network, any port without a network),
// so that the service is not stored with a release that cannot start.
func (s *Server) checkProtocols(ports []Port) error {
	if s.opts.Protocols == nil {
		return nil
	}
	for i, p := range ports {
		proto := runtime.ProtocolTCP
		if p.Protocol == "UDP" {
			proto = runtime.ProtocolUDP
		}
		if slices.Contains(s.opts.Protocols, proto) {
			continue
		}
		if len(s.opts.Protocols) == 0 {
			return apierr.InvalidField(fmt.Sprintf("ports[%d]", i), "this install runs workloads without a network (SLIPWAY_PROCESS_NETWORK=none): services cannot have ports")
		}
		return apierr.InvalidField(fmt.Sprintf("ports[%d].protocol", i),
			fmt.Sprintf("%s is not available on this install's runtime, which publishes %s only", p.Protocol, strings.ToUpper(strings.Join(s.opts.Protocols, ", "))))
	}
	return nil
}

// patch applies the fields a patch request gives.
func (s *Server) patch(ctx context.Context, req request, id string, kind Kind, p *deploymentsv1.ServicePatch) (*deploymentsv1.Service, error) {
	var ports []Port
	if len(p.GetPorts()) > 0 {
		var err error
		if ports, err = portsFrom("ports", p.GetPorts()); err != nil {
			return nil, err
		}
	}
	d := p.GetDeployment()
	var internal *Internal
	if d.GetInternal() != nil {
		var err error
		if internal, err = internalFrom("deployment.internal", d.GetInternal()); err != nil {
			return nil, err
		}
	}
	var strategy *Strategy
	if d.GetStrategy() != nil {
		st, err := strategyFrom(d.GetStrategy())
		if err != nil {
			return nil, err
		}
		strategy = &st
	}
	sv, err := s.update(ctx, req, id, "update", func(sv *Service) error {
		if sv.Kind != kind {
			return apierr.NotFound(string(kind)+" service", id)
		}
		if p.Description != nil {
			sv.Description = p.GetDescription()
		}
		if len(p.GetTags()) > 0 {
			sv.Tags = slices.Clone(p.GetTags())
		}
		if p.GetBilling().GetDeploymentPlan() != "" {
			sv.Plan = p.GetBilling().GetDeploymentPlan()
		}
		if p.GetBilling().GetBuildPlan() != "" {
			sv.Build.BuildPlan = p.GetBilling().GetBuildPlan()
		}
		if d != nil {
			if d.Instances != nil {
				sv.Instances = int(d.GetInstances())
			}
			if d.GetExternal() != nil {
				sv.Deployable.Overrides.Image = strings.TrimSpace(d.GetExternal().GetImagePath())
				sv.Internal = nil
			}
			if d.GetDocker() != nil {
				image := sv.Deployable.Overrides.Image
				sv.Deployable.Overrides = overridesFrom(nil, d.GetDocker())
				sv.Deployable.Overrides.Image = image
			}
			if internal != nil {
				if sv.Kind == KindCombined {
					return apierr.InvalidField("deployment.internal", "a combined service deploys its own builds of vcsData.projectBranch")
				}
				in := *internal
				sv.Internal, sv.Deployable.Overrides.Image = &in, ""
			}
			if d.GetStorage() != nil {
				sv.StorageMB, sv.ShmMB = d.GetStorage().GetEphemeralStorage().GetStorageSize(), d.GetStorage().GetShmSize()
			}
			if strategy != nil {
				sv.Strategy = *strategy
			}
			if d.GracePeriodSeconds != nil {
				sv.GraceSeconds = int(d.GetGracePeriodSeconds())
			}
		}
		if ports != nil {
			sv.Deployable.Ports = ports
		}
		if len(p.GetRuntimeEnvironment()) > 0 {
			sv.Deployable.Env = maps.Clone(p.GetRuntimeEnvironment())
		}
		if len(p.GetHealthChecks()) > 0 {
			sv.Deployable.HealthChecks = healthChecksFrom(p.GetHealthChecks())
		}
		if p.GetVcsData() != nil || p.GetBuildSettings() != nil || p.GetBuildConfiguration() != nil {
			before := sv.Build
			b, err := buildFrom(sv.Build.BuildPlan, p.GetVcsData(), p.GetBuildSettings(), p.GetBuildConfiguration())
			if err != nil {
				return err
			}
			if b.VcsData != "" {
				sv.Build.VcsData = b.VcsData
			}
			if b.BuildSettings != "" {
				sv.Build.BuildSettings = b.BuildSettings
			}
			if b.BuildConfig != "" {
				sv.Build.BuildConfig = b.BuildConfig
			}
			if p.GetVcsData() != nil {
				sv.Build.Credentials = gitvcs.KeepCredentials(vcsOf(before).GetProjectUrl(), p.GetVcsData().GetProjectUrl(), before.Credentials, gitvcs.CredentialsFromProto(p.GetVcsData().GetCredentials()))
			}
		}
		if sv.Kind == KindCombined {
			if len(p.GetBuildArguments()) > 0 {
				sv.Build.Arguments = maps.Clone(p.GetBuildArguments())
			}
			if len(p.GetBuildFiles()) > 0 {
				sv.Build.Files = filesFrom(p.GetBuildFiles())
			}
			if p.DisabledCi != nil {
				sv.Build.DisabledCI = p.GetDisabledCi()
			}
		} else if len(p.GetBuildArguments()) > 0 || len(p.GetBuildFiles()) > 0 {
			return apierr.InvalidField("buildArguments", "only build and combined services build")
		}
		if internal != nil || p.GetVcsData() != nil || d.GetExternal() != nil {
			return s.resolve(ctx, sv)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s.serviceOf(sv), nil
}

// update runs mutate on the service, re-validates it, makes a release
// with cause when what runs changed, stores and announces it, and
// applies it to the controller.
func (s *Server) update(ctx context.Context, req request, id, cause string, mutate func(*Service) error) (Service, error) {
	return s.change(ctx, req, id, func(sv *Service) (string, string, error) {
		return cause, "", mutate(sv)
	}, nil)
}

// change is update with the cause (and the release a rollback copies)
// decided by mutate; made, when not nil, receives the release made.
func (s *Server) change(ctx context.Context, req request, id string, mutate func(*Service) (cause, from string, err error), made func(*Release)) (Service, error) {
	teamID, err := team(ctx)
	if err != nil {
		return Service{}, err
	}
	return s.changeIn(ctx, teamID, req.GetProjectId(), id, who(ctx), mutate, made)
}

// changeIn is change in a team, for caller (what the release history
// names).
func (s *Server) changeIn(ctx context.Context, teamID, project, id, caller string, mutate func(*Service) (cause, from string, err error), made func(*Release)) (Service, error) {
	var release *Release
	sv, err := s.store.UpdateService(ctx, teamID, project, id, func(sv *Service) (*Release, []events.Event, error) {
		release = nil
		before := cloneService(*sv)
		cause, from, err := mutate(sv)
		if err != nil {
			return nil, nil, err
		}
		if err := s.check(sv); err != nil {
			return nil, nil, err
		}
		sv.Deployable = normalDeployable(sv.Deployable)
		if len(sv.Tags) == 0 {
			sv.Tags = nil
		}
		changedRun := !reflect.DeepEqual(before.Deployable, sv.Deployable) || cause == "rollback"
		if !changedRun && reflect.DeepEqual(before, *sv) {
			return nil, nil, nil
		}
		sv.UpdatedAt = s.now()
		evs, err := serviceEvents(events.ResourceUpdated, *sv)
		if err != nil {
			return nil, nil, err
		}
		if changedRun {
			if cause == "" {
				cause = "update"
			}
			r := s.newRelease(sv, cause, from, caller)
			release = &r
			ev, err := releaseEvent("created", r)
			if err != nil {
				return nil, nil, err
			}
			evs = append(evs, ev)
		}
		return release, evs, nil
	})
	if err != nil {
		return Service{}, apierr.FromStore(err, "service", id)
	}
	if release != nil && made != nil {
		made(release)
	}
	s.apply(sv)
	return sv, nil
}

// newRelease makes sv's next release from its deployable parts and makes
// it the one sv runs.
func (s *Server) newRelease(sv *Service, cause, from, caller string) Release {
	sv.Releases++
	sv.ReleaseID = releaseID(sv.Releases)
	sv.Status = Status{Status: StatusPending, Reason: ReasonDeploying, At: s.now()}
	return Release{
		TeamID: sv.TeamID, ProjectID: sv.ProjectID, ServiceID: sv.ID, ID: sv.ReleaseID, Cause: cause, RolledBackFrom: from,
		Deployable: cloneDeployable(sv.Deployable), CreatedBy: caller, CreatedAt: s.now(), Status: StatusPending,
	}
}

// releaseID is the id of a service's n-th release: zero-padded, so ids
// sort as releases were made.
func releaseID(n int64) string { return fmt.Sprintf("r%06d", n) }

// service reads the service a request names.
func (s *Server) service(ctx context.Context, req request, id string) (Service, error) {
	teamID, err := team(ctx)
	if err != nil {
		return Service{}, err
	}
	sv, err := s.store.GetService(ctx, teamID, req.GetProjectId(), id)
	if err != nil {
		return Service{}, apierr.FromStore(err, "service", id)
	}
	return sv, nil
}

// deleteService deletes a service and stops its instances.
func (s *Server) deleteService(ctx context.Context, sv Service) error {
	evs, err := serviceEvents(events.ResourceDeleted, sv)
	if err != nil {
		return err
	}
	if err := s.store.DeleteService(ctx, sv.TeamID, sv.ProjectID, sv.ID, evs...); err != nil {
		return apierr.FromStore(err, "service", sv.ID)
	}
	key := controllerID(sv.TeamID, sv.ProjectID, sv.ID)
	s.ctl.Delete(key)
	s.metrics.forget(key)
	s.forgetSecrets(sv)
	return nil
}

// checkProject asks the projects service whether the project exists in
// the team; 404 when it does not.
func (s *Server) checkProject(ctx context.Context, teamID, project string) error {
	_, err := s.opts.Projects.LookupProject(s.opts.Internal(ctx), &projectsv1.LookupProjectRequest{TeamId: teamID, ProjectId: project})
	if status.Code(err) == codes.NotFound {
		return apierr.NotFound("project", project)
	}
	if err != nil {
		s.log.WarnContext(ctx, "looking up a project", "error", err)
		return apierr.Unavailable("the projects service")
	}
	return nil
}

func orEmpty(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

// serviceEventData is the data of deployments.service.* events.
type serviceEventData struct {
	TeamID      string `json:"teamId"`
	ProjectID   string `json:"projectId"`
	ID          string `json:"id"`
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	Type        string `json:"serviceType"`
	ReleaseID   string `json:"releaseId,omitempty"`
	Instances   int    `json:"instances"`
	Paused      bool   `json:"paused,omitempty"`
}

// serviceEvents are the events announcing that sv was created, updated or
// deleted: the service's own deployments.service.<verb> and the shared
// resource event through which projects lists it on its project.
func serviceEvents(verb events.ResourceVerb, sv Service) ([]events.Event, error) {
	own, err := events.New("deployments", "service", string(verb), controllerID(sv.TeamID, sv.ProjectID, sv.ID), serviceEventData{
		TeamID: sv.TeamID, ProjectID: sv.ProjectID, ID: sv.ID, Name: sv.Name, Description: sv.Description,
		Type: string(sv.Kind), ReleaseID: sv.ReleaseID, Instances: sv.Instances, Paused: sv.Paused,
	})
	if err != nil {
		return nil, err
	}
	shared, err := events.NewProjectResource("deployments", verb, events.ProjectResource{
		TeamID: sv.TeamID, ProjectID: sv.ProjectID, Kind: events.ResourceService, ID: sv.ID,
		Name: sv.Name, Description: sv.Description, Type: string(sv.Kind),
	})
	if err != nil {
		return nil, err
	}
	return []events.Event{own, shared}, nil
}

// createEvents announce a new service and its first release.
func createEvents(sv Service, r Release) ([]events.Event, error) {
	evs, err := serviceEvents(events.ResourceCreated, sv)
	if err != nil || r.ID == "" {
		return evs, err
	}
	ev, err := releaseEvent("created", r)
	if err != nil {
		return nil, err
	}
	return append(evs, ev), nil
}

// releaseEventData is the data of deployments.release.* events.
type releaseEventData struct {
	TeamID    string `json:"teamId"`
	ProjectID string `json:"projectId"`
	ServiceID string `json:"serviceId"`
	ID        string `json:"id"`
	Cause     string `json:"cause,omitempty"`
	Status    string `json:"status"`
	Reason    string `json:"reason,omitempty"`
}

// releaseEvent announces a release's creation ("created") or a change of
// its rollout ("in_progress", "completed", "failed").
func releaseEvent(verb string, r Release) (events.Event, error) {
	return events.New("deployments", "release", verb, controllerID(r.TeamID, r.ProjectID, r.ServiceID)+"/"+r.ID, releaseEventData{
		TeamID: r.TeamID, ProjectID: r.ProjectID, ServiceID: r.ServiceID, ID: r.ID, Cause: r.Cause, Status: r.Status, Reason: r.Reason,
	})
}
