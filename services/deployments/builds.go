package deployments

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	deploymentsv1 "github.com/slipwayhq/slipway/gen/slipway/deployments/v1"
	"github.com/slipwayhq/slipway/pkg/apierr"
	"github.com/slipwayhq/slipway/pkg/buildoptions"
	"github.com/slipwayhq/slipway/pkg/slug"
)

// CreateBuildService implements DeploymentsService.
func (s *Server) CreateBuildService(ctx context.Context, req *deploymentsv1.CreateBuildServiceRequest) (*deploymentsv1.CreateBuildServiceResponse, error) {
	sv, err := s.newBuildService(ctx, req, req.GetSpec())
	if err != nil {
		return nil, err
	}
	out, err := s.insert(ctx, sv)
	return &deploymentsv1.CreateBuildServiceResponse{Service: out}, err
}

// PutBuildService implements DeploymentsService.
func (s *Server) PutBuildService(ctx context.Context, req *deploymentsv1.PutBuildServiceRequest) (*deploymentsv1.PutBuildServiceResponse, error) {
	sv, err := s.newBuildService(ctx, req, req.GetSpec())
	if err != nil {
		return nil, err
	}
	out, err := s.upsert(ctx, req, sv)
	return &deploymentsv1.PutBuildServiceResponse{Service: out}, err
}

// PatchBuildService implements DeploymentsService.
func (s *Server) PatchBuildService(ctx context.Context, req *deploymentsv1.PatchBuildServiceRequest) (*deploymentsv1.PatchBuildServiceResponse, error) {
	p := req.GetSpec()
	sv, err := s.update(ctx, req, req.GetServiceId(), "update", func(sv *Service) error {
		if sv.Kind != KindBuild {
			return apierr.NotFound("build service", req.GetServiceId())
		}
		if p.Description != nil {
			sv.Description = p.GetDescription()
		}
		if len(p.GetTags()) > 0 {
			sv.Tags = slices.Clone(p.GetTags())
		}
		if plan := buildPlanOf(p.GetBilling()); plan != "" {
			sv.Build.BuildPlan = plan
		}
		if p.DisabledCi != nil {
			sv.Build.DisabledCI = p.GetDisabledCi()
		}
		if p.GetVcsData() != nil {
			if err := patchVcs(&sv.Build, p.GetVcsData()); err != nil {
				return err
			}
		}
		if p.GetBuildSettings() != nil {
			if err := setSettings(&sv.Build, p.GetBuildSettings()); err != nil {
				return err
			}
		}
		if p.GetBuildConfiguration() != nil {
			if err := setConfig(&sv.Build, p.GetBuildConfiguration()); err != nil {
				return err
			}
		}
		if len(p.GetBuildArguments()) > 0 {
			sv.Build.Arguments = maps.Clone(p.GetBuildArguments())
		}
		if len(p.GetBuildFiles()) > 0 {
			sv.Build.Files = filesFrom(p.GetBuildFiles())
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &deploymentsv1.PatchBuildServiceResponse{Service: s.serviceOf(sv)}, nil
}

// buildPlanOf is a build service's plan: billing.buildPlan, or
// deploymentPlan, Northflank's deprecated name of it for build services.
func buildPlanOf(b *deploymentsv1.Billing) string {
	if b.GetBuildPlan() != "" {
		return b.GetBuildPlan()
	}
	return b.GetDeploymentPlan()
}

// newBuildService validates a create or put request of a build service.
func (s *Server) newBuildService(ctx context.Context, req request, spec *deploymentsv1.BuildServiceSpec) (Service, error) {
	teamID, err := team(ctx)
	if err != nil {
		return Service{}, err
	}
	build, err := buildFrom(buildPlanOf(spec.GetBilling()), spec.GetVcsData(), spec.GetBuildSettings(), spec.GetBuildConfiguration())
	if err != nil {
		return Service{}, err
	}
	build.Arguments, build.Files, build.DisabledCI = maps.Clone(spec.GetBuildArguments()), filesFrom(spec.GetBuildFiles()), spec.GetDisabledCi()
	now := s.now()
	sv := Service{
		TeamID: teamID, ProjectID: req.GetProjectId(), ID: slug.Make(spec.GetName()), Name: spec.GetName(), Kind: KindBuild,
		Description: spec.GetDescription(), Tags: slices.Clone(spec.GetTags()), Build: build, CreatedAt: now, UpdatedAt: now,
	}
	if err := s.check(&sv); err != nil {
		return Service{}, err
	}
	if err := s.checkProject(ctx, teamID, sv.ProjectID); err != nil {
		return Service{}, err
	}
	return sv, nil
}

// building reads the build or combined service a request names; a
// deployment service is refused.
func (s *Server) building(ctx context.Context, req request, id string) (Service, error) {
	sv, err := s.service(ctx, req, id)
	if err != nil {
		return Service{}, err
	}
	if !sv.Kind.Builds() {
		return Service{}, notBuilding(sv.ID)
	}
	return sv, nil
}

func notBuilding(id string) error {
	return apierr.Conflict(apierr.ReasonServiceTypeMismatch, "service %s does not build; only build and combined services do", id)
}

// changeBuild is update for the build settings of a build or combined
// service.
func (s *Server) changeBuild(ctx context.Context, req request, id string, mutate func(*Service) error) (Service, error) {
	return s.change(ctx, req, id, func(sv *Service) (string, string, error) {
		if !sv.Kind.Builds() {
			return "", "", notBuilding(sv.ID)
		}
		return "", "", mutate(sv)
	}, nil)
}

// GetServiceBuildArguments implements DeploymentsService.
func (s *Server) GetServiceBuildArguments(ctx context.Context, req *deploymentsv1.GetServiceBuildArgumentsRequest) (*deploymentsv1.GetServiceBuildArgumentsResponse, error) {
	sv, err := s.building(ctx, req, req.GetServiceId())
	if err != nil {
		return nil, err
	}
	if req.GetShow() == "inherited" { // a service inherits nothing (yet)
		return &deploymentsv1.GetServiceBuildArgumentsResponse{BuildArguments: map[string]string{}, BuildFiles: map[string]*deploymentsv1.SecretFile{}}, nil
	}
	return &deploymentsv1.GetServiceBuildArgumentsResponse{BuildArguments: orEmpty(sv.Build.Arguments), BuildFiles: filesOf(sv.Build.Files)}, nil
}

// UpdateServiceBuildArguments implements DeploymentsService.
func (s *Server) UpdateServiceBuildArguments(ctx context.Context, req *deploymentsv1.UpdateServiceBuildArgumentsRequest) (*deploymentsv1.UpdateServiceBuildArgumentsResponse, error) {
	args, files := maps.Clone(req.GetBuildArguments()), filesFrom(req.GetBuildFiles())
	if err := checkBuildSecrets(args, files); err != nil {
		return nil, err
	}
	_, err := s.changeBuild(ctx, req, req.GetServiceId(), func(sv *Service) error {
		sv.Build.Arguments, sv.Build.Files = args, files
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &deploymentsv1.UpdateServiceBuildArgumentsResponse{}, nil
}

// GetServiceBuildArgumentDetails implements DeploymentsService.
func (s *Server) GetServiceBuildArgumentDetails(ctx context.Context, req *deploymentsv1.GetServiceBuildArgumentDetailsRequest) (*deploymentsv1.GetServiceBuildArgumentDetailsResponse, error) {
	sv, err := s.building(ctx, req, req.GetServiceId())
	if err != nil {
		return nil, err
	}
	resp := &deploymentsv1.GetServiceBuildArgumentDetailsResponse{
		BuildArguments: map[string]*deploymentsv1.SecretDetail{}, BuildFiles: map[string]*deploymentsv1.SecretFileDetail{},
	}
	for k, v := range sv.Build.Arguments {
		resp.BuildArguments[k] = &deploymentsv1.SecretDetail{Value: v}
	}
	for k, f := range sv.Build.Files {
		resp.BuildFiles[k] = &deploymentsv1.SecretFileDetail{Value: &deploymentsv1.SecretFile{Data: f.Data, Encoding: f.Encoding}}
	}
	return resp, nil
}

// UpdateServiceBuildOptions implements DeploymentsService: the request is
// merged into the service's build engine and configuration by
// buildoptions.Merge, the rules jobs follow too.
func (s *Server) UpdateServiceBuildOptions(ctx context.Context, req *deploymentsv1.UpdateServiceBuildOptionsRequest) (*deploymentsv1.UpdateServiceBuildOptionsResponse, error) {
	opts := buildoptions.Request{
		Dockerfile: req.GetDockerfile(), Buildpack: req.GetBuildpack(), Storage: req.GetStorage(),
		PrRestrictions: req.GetPrRestrictions(), BranchRestrictions: req.GetBranchRestrictions(),
		PathIgnoreRules: req.GetPathIgnoreRules(), CiIgnoreFlags: req.GetCiIgnoreFlags(), DockerCredentials: req.GetDockerCredentials(),
		IsAllowList: req.IsAllowList, CiIgnoreFlagsEnabled: req.CiIgnoreFlagsEnabled, IncludeGitFolder: req.IncludeGitFolder,
		FullGitClone: req.FullGitClone, EnableGitLfs: req.EnableGitLfs, DockerfileTarget: req.DockerfileTarget,
	}
	if err := opts.Check(); err != nil {
		return nil, err
	}
	_, err := s.changeBuild(ctx, req, req.GetServiceId(), func(sv *Service) error {
		settings, config := buildoptions.Merge(settingsOf(sv.Build), configOf(sv.Build), opts)
		if err := setSettings(&sv.Build, settings); err != nil {
			return err
		}
		return setConfig(&sv.Build, config)
	})
	if err != nil {
		return nil, err
	}
	return &deploymentsv1.UpdateServiceBuildOptionsResponse{}, nil
}

// UpdateServiceBuildSource implements DeploymentsService. A combined
// service given a new branch deploys that branch's newest build.
func (s *Server) UpdateServiceBuildSource(ctx context.Context, req *deploymentsv1.UpdateServiceBuildSourceRequest) (*deploymentsv1.UpdateServiceBuildSourceResponse, error) {
	_, err := s.changeBuild(ctx, req, req.GetServiceId(), func(sv *Service) error {
		if err := patchVcs(&sv.Build, &deploymentsv1.VcsDataPatch{
			ProjectUrl: req.GetProjectUrl(), ProjectType: req.GetProjectType(), ProjectBranch: req.GetProjectBranch(),
			SelfHostedVcsId: req.GetSelfHostedVcsId(), AccountLogin: req.GetAccountLogin(), Credentials: req.GetCredentials(),
		}); err != nil {
			return err
		}
		return s.resolve(ctx, sv)
	})
	if err != nil {
		return nil, err
	}
	return &deploymentsv1.UpdateServiceBuildSourceResponse{}, nil
}

// GetBuildSource implements DeploymentsService (internal).
func (s *Server) GetBuildSource(ctx context.Context, req *deploymentsv1.GetBuildSourceRequest) (*deploymentsv1.GetBuildSourceResponse, error) {
	sv, err := s.store.GetService(ctx, req.GetTeamId(), req.GetProjectId(), req.GetServiceId())
	if err != nil {
		return nil, apierr.FromStore(err, "service", req.GetServiceId())
	}
	if !sv.Kind.Builds() {
		return nil, notBuilding(sv.ID)
	}
	return &deploymentsv1.GetBuildSourceResponse{Source: sourceOf(sv)}, nil
}

// ListBuildSources implements DeploymentsService (internal). The page
// token is the key (team/project/service) of the last source answered.
func (s *Server) ListBuildSources(ctx context.Context, req *deploymentsv1.ListBuildSourcesRequest) (*deploymentsv1.ListBuildSourcesResponse, error) {
	size := int(req.GetPageSize())
	if size <= 0 {
		size = 100
	}
	all, err := s.store.AllServices(ctx)
	if err != nil {
		return nil, err
	}
	// Pages follow Go's byte order, whatever the database's collation.
	slices.SortFunc(all, func(a, b Service) int {
		return slices.Compare([]string{a.TeamID, a.ProjectID, a.ID}, []string{b.TeamID, b.ProjectID, b.ID})
	})
	resp := &deploymentsv1.ListBuildSourcesResponse{Sources: []*deploymentsv1.BuildSource{}}
	for _, sv := range all {
		key := controllerID(sv.TeamID, sv.ProjectID, sv.ID)
		if !sv.Kind.Builds() || (req.GetTeamId() != "" && sv.TeamID != req.GetTeamId()) || !after(key, req.GetPageToken()) {
			continue
		}
		if len(resp.Sources) == size {
			resp.NextPageToken = controllerID(resp.Sources[size-1].GetTeamId(), resp.Sources[size-1].GetProjectId(), resp.Sources[size-1].GetServiceId())
			break
		}
		resp.Sources = append(resp.Sources, sourceOf(sv))
	}
	return resp, nil
}

// after reports whether key sorts after token in the store's order
// (team, project, id compared part by part).
func after(key, token string) bool {
	if token == "" {
		return true
	}
	k, t := strings.Split(key, "/"), strings.Split(token, "/")
	return slices.Compare(k, t) > 0
}

// internalFrom reads a request's deployment.internal.
func internalFrom(field string, in *deploymentsv1.InternalSource) (*Internal, error) {
	out := &Internal{ID: in.GetId(), Branch: in.GetBranch(), BuildSHA: strings.ToLower(in.GetBuildSha()), BuildID: in.GetBuildId()}
	switch {
	case out.ID == "":
		return nil, apierr.InvalidField(field+".id", "is required: the build or combined service whose builds to deploy")
	case out.BuildSHA != "" && out.BuildSHA != Latest && !isSHA(out.BuildSHA):
		return nil, apierr.InvalidField(field+".buildSHA", `is a commit SHA (at least 7 hex digits) or "latest"`)
	case out.Follows() && out.Branch == "":
		return nil, apierr.InvalidField(field+".branch", `is required to deploy the latest build: the branch to follow`)
	}
	if out.BuildSHA == "" && out.BuildID == "" {
		out.BuildSHA = Latest
	}
	return out, nil
}

func isSHA(v string) bool {
	if len(v) < 7 || len(v) > 64 {
		return false
	}
	for _, r := range v {
		if !strings.ContainsRune("0123456789abcdef", r) {
			return false
		}
	}
	return true
}

// followOf is what a service deploys of which service's builds: its
// internal source, or, for a combined service, its own builds of its
// branch.
func followOf(sv Service) (Internal, bool) {
	switch {
	case sv.Kind == KindCombined:
		return Internal{ID: sv.ID, Branch: projectBranch(sv.Build), BuildSHA: Latest, Repository: vcsOf(sv.Build).GetProjectUrl()}, true
	case sv.Kind == KindDeployment && sv.Internal != nil:
		return *sv.Internal, true
	}
	return Internal{}, false
}

// resolve sets the build sv deploys from what it follows: none for a
// service that deploys no builds, or when nothing was built yet for a
// service following a branch (it waits with no instances).
func (s *Server) resolve(ctx context.Context, sv *Service) error {
	src, ok := followOf(*sv)
	if !ok {
		sv.Deployable.Build = nil
		return nil
	}
	if sv.Kind == KindDeployment {
		origin, err := s.store.GetService(ctx, sv.TeamID, sv.ProjectID, src.ID)
		if err != nil {
			return apierr.FromStore(err, "build service", src.ID)
		}
		if !origin.Kind.Builds() {
			return apierr.InvalidField("deployment.internal.id", fmt.Sprintf("service %s is a deployment service; only build and combined services build", src.ID))
		}
		sv.Internal.Repository = vcsOf(origin.Build).GetProjectUrl()
	}
	ref, err := s.findBuild(ctx, sv.TeamID, sv.ProjectID, src)
	if err != nil {
		return err
	}
	sv.Deployable.Build = ref
	return nil
}

// findBuild resolves a source to a deployable build: buildId exactly,
// else the newest build of buildSHA, else the newest of the branch (nil
// when there is none yet).
func (s *Server) findBuild(ctx context.Context, teamID, project string, src Internal) (*BuildRef, error) {
	switch {
	case src.BuildID != "":
		b, err := s.store.GetBuild(ctx, teamID, project, src.ID, src.BuildID)
		if err != nil {
			return nil, apierr.FromStore(err, "build", src.BuildID)
		}
		if b.Deleted {
			return nil, buildDeleted(b.ID, src.ID)
		}
		return b.Ref(), nil
	case !src.Follows():
		b, err := s.store.FindBuild(ctx, teamID, project, src.ID, BuildQuery{SHA: src.BuildSHA, Branch: src.Branch})
		if err != nil {
			return nil, apierr.FromStore(err, "build of commit", src.BuildSHA)
		}
		return b.Ref(), nil
	}
	b, err := s.store.FindBuild(ctx, teamID, project, src.ID, BuildQuery{Branch: src.Branch})
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return nil, nil
		}
		return nil, err
	}
	return b.Ref(), nil
}

func buildDeleted(build, service string) error {
	return apierr.Conflict(apierr.ReasonBuildDeleted,
		"build %s of service %s was deleted with its artifact and can no longer be deployed; deploy a newer build", build, service)
}

// internalOf is the wire form of what a service deploys of builds.
func internalOf(sv Service) *deploymentsv1.InternalSourceView {
	src, ok := followOf(sv)
	if !ok {
		return nil
	}
	out := &deploymentsv1.InternalSourceView{
		NfObjectId: src.ID, NfObjectType: "service", Repository: src.Repository, Branch: src.Branch,
		BuildSha: src.BuildSHA, BuildId: src.BuildID,
	}
	if b := sv.Deployable.Build; b != nil {
		out.DeployedSha, out.DeployedBuildId = b.SHA, b.ID
		if out.Branch == "" {
			out.Branch = b.Branch
		}
	}
	return out
}
