package builds

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	deploymentsv1 "github.com/slipwayhq/slipway/gen/slipway/deployments/v1"
	jobsv1 "github.com/slipwayhq/slipway/gen/slipway/jobs/v1"
	"github.com/slipwayhq/slipway/pkg/apierr"
	"github.com/slipwayhq/slipway/pkg/catalog"
	"github.com/slipwayhq/slipway/pkg/runtime"
	gitvcs "github.com/slipwayhq/slipway/pkg/vcs"
)

// DeploymentSources reads build sources through internal RPCs: services'
// from the deployments service (the registry of services), jobs' from the
// jobs service, which answers in the same form.
type DeploymentSources struct {
	Client deploymentsv1.DeploymentsServiceClient
	// Jobs is the jobs service; nil when it does not run (jobs then have
	// no builds: 404).
	Jobs jobsv1.JobsServiceClient
	// Internal marks a context for an internal call.
	Internal func(context.Context) context.Context
	// Catalog gives build plans their limits.
	Catalog *catalog.Catalog
}

var _ Sources = DeploymentSources{}

// Source implements Sources. The owner's service's answer (404 for no
// such service or job, 409 for one that does not build) passes through.
func (d DeploymentSources) Source(ctx context.Context, k ServiceKey) (Source, error) {
	var src *deploymentsv1.BuildSource
	var err error
	what := "the deployments service"
	if k.OwnerKind() == KindJob {
		what = "the jobs service"
		if d.Jobs == nil {
			return Source{}, apierr.NotFound("job", k.ServiceID)
		}
		var resp *jobsv1.GetBuildSourceResponse
		resp, err = d.Jobs.GetBuildSource(d.Internal(ctx), &jobsv1.GetBuildSourceRequest{
			TeamId: k.TeamID, ProjectId: k.ProjectID, JobId: k.ServiceID,
		})
		src = resp.GetSource()
	} else {
		var resp *deploymentsv1.GetBuildSourceResponse
		resp, err = d.Client.GetBuildSource(d.Internal(ctx), &deploymentsv1.GetBuildSourceRequest{
			TeamId: k.TeamID, ProjectId: k.ProjectID, ServiceId: k.ServiceID,
		})
		src = resp.GetSource()
	}
	if err != nil {
		switch status.Code(err) {
		case codes.NotFound, codes.FailedPrecondition, codes.InvalidArgument, codes.PermissionDenied, codes.Canceled:
			return Source{}, err // the owner's service's own answer, in its words
		}
		return Source{}, apierr.Unavailable(what)
	}
	return d.sourceOf(k.OwnerKind(), src), nil
}

// All implements Sources: services' sources, then jobs'.
func (d DeploymentSources) All(ctx context.Context) ([]Source, error) {
	var out []Source
	token := ""
	for {
		resp, err := d.Client.ListBuildSources(d.Internal(ctx), &deploymentsv1.ListBuildSourcesRequest{PageToken: token})
		if err != nil {
			return nil, err
		}
		for _, s := range resp.GetSources() {
			out = append(out, d.sourceOf(KindService, s))
		}
		if token = resp.GetNextPageToken(); token == "" {
			break
		}
		if ctx.Err() != nil {
			return nil, errors.Join(ctx.Err())
		}
	}
	if d.Jobs == nil {
		return out, nil
	}
	for {
		resp, err := d.Jobs.ListBuildSources(d.Internal(ctx), &jobsv1.ListBuildSourcesRequest{PageToken: token})
		if err != nil {
			return nil, err
		}
		for _, s := range resp.GetSources() {
			out = append(out, d.sourceOf(KindJob, s))
		}
		if token = resp.GetNextPageToken(); token == "" {
			return out, nil
		}
		if ctx.Err() != nil {
			return nil, errors.Join(ctx.Err())
		}
	}
}

func (d DeploymentSources) sourceOf(kind string, s *deploymentsv1.BuildSource) Source {
	vcs, set, conf := s.GetVcsData(), s.GetBuildSettings(), s.GetBuildConfiguration()
	out := Source{
		ServiceKey: ServiceKey{TeamID: s.GetTeamId(), ProjectID: s.GetProjectId(), Kind: kind, ServiceID: s.GetServiceId()},
		Kind:       s.GetServiceType(),
		URL:        vcs.GetProjectUrl(),
		Branch:     vcs.GetProjectBranch(),
		Args:       s.GetBuildArguments(),
		DisabledCI: s.GetDisabledCi(),
		Config: Config{
			BranchRestrictions: conf.GetBranchRestrictions(), PRRestrictions: conf.GetPrRestrictions(),
			PathIgnoreRules: conf.GetPathIgnoreRules(), IsAllowList: conf.GetIsAllowList(),
			CIIgnoreFlagsEnabled: conf.GetCiIgnoreFlagsEnabled(), CIIgnoreFlags: conf.GetCiIgnoreFlags(),
			DockerfileTarget: conf.GetDockerfileTarget(), IncludeGitFolder: conf.GetIncludeGitFolder(),
			FullGitClone: conf.GetFullGitClone(), EnableGitLFS: conf.GetEnableGitLfs(),
		},
	}
	if c := gitvcs.CredentialsFromProto(vcs.GetCredentials()); c != nil {
		out.Credentials = *c
	}
	switch {
	case set.GetBuildpack() != nil:
		out.Buildpack = &Buildpack{Context: set.GetBuildpack().GetBuildContext()}
	default:
		df := set.GetDockerfile()
		out.Dockerfile = &Dockerfile{Path: df.GetDockerFilePath(), WorkDir: df.GetDockerWorkDir()}
	}
	if d.Catalog != nil {
		if p := d.Catalog.Plan(s.GetBuildPlan()); p != nil {
			out.Resources = runtime.Resources{MilliCPU: int64(p.GetCpuResource() * 1000), MemoryMB: int64(p.GetRamResource())}
		}
	}
	return out
}
