package jobs

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	deploymentsv1 "github.com/slipwayhq/slipway/gen/slipway/deployments/v1"
	jobsv1 "github.com/slipwayhq/slipway/gen/slipway/jobs/v1"
	"github.com/slipwayhq/slipway/pkg/apierr"
	"github.com/slipwayhq/slipway/pkg/buildoptions"
	"github.com/slipwayhq/slipway/pkg/events"
	"github.com/slipwayhq/slipway/pkg/overrides"
	"github.com/slipwayhq/slipway/pkg/runtime"
	"github.com/slipwayhq/slipway/pkg/vcs"
	"github.com/slipwayhq/slipway/services/builds/buildevent"
)

// A job that builds from git (deployment.vcs) is built by the builds
// component, which reads its source through GetBuildSource, and runs the
// newest successful build of its branch, which the builds component
// announces (builds.build.succeeded of kind job).

// maxBuildArgBytes bounds a job's build arguments (keys and values): they
// travel to every build.
const maxBuildArgBytes = 512 << 10

// artifactDir is where a process-driver run sees the app tree of the
// build it runs (as a service's instances do).
const artifactDir = "/app"

// buildFrom reads a job's git source as a request gives it; nil when the
// request gives no repository. plan and disabledCI come with it.
func buildFrom(repo *deploymentsv1.VcsData, settings *deploymentsv1.BuildSettings, config *deploymentsv1.BuildConfiguration,
	args map[string]string, plan string, disabledCI bool) (*Build, error) {
	if repo == nil {
		switch {
		case settings != nil:
			return nil, apierr.InvalidField("buildSettings", "is for a job that builds from git: give deployment.vcs too")
		case config != nil:
			return nil, apierr.InvalidField("buildConfiguration", "is for a job that builds from git: give deployment.vcs too")
		case len(args) > 0:
			return nil, apierr.InvalidField("buildArguments", "are for a job that builds from git: give deployment.vcs too")
		}
		return nil, nil
	}
	b := &Build{BuildPlan: plan, DisabledCI: disabledCI, Arguments: maps.Clone(args)}
	if b.Credentials = vcs.CredentialsFromProto(repo.GetCredentials()); b.Credentials != nil && b.Credentials.Empty() {
		b.Credentials = nil
	}
	if err := setVcs(b, repo); err != nil {
		return nil, err
	}
	if settings != nil {
		raw, err := protojson.Marshal(settings)
		if err != nil {
			return nil, err
		}
		b.BuildSettings = string(raw)
	}
	if config != nil {
		raw, err := protojson.Marshal(config)
		if err != nil {
			return nil, err
		}
		b.BuildConfig = string(raw)
	}
	return b, nil
}

// setVcs stores repo (without its credentials) as b's repository.
func setVcs(b *Build, repo *deploymentsv1.VcsData) error {
	repo = proto.CloneOf(repo)
	repo.Credentials, repo.PublicRepo = nil, false
	raw, err := protojson.Marshal(repo)
	if err != nil {
		return err
	}
	b.VcsData = string(raw)
	return nil
}

// vcsOf reads b's repository (without credentials).
func vcsOf(b *Build) *deploymentsv1.VcsData {
	out := &deploymentsv1.VcsData{}
	if b != nil {
		_ = protojson.Unmarshal([]byte(b.VcsData), out) // written by setVcs
	}
	return out
}

func settingsOf(b *Build) *deploymentsv1.BuildSettings {
	out := &deploymentsv1.BuildSettings{}
	if b != nil {
		_ = protojson.Unmarshal([]byte(b.BuildSettings), out)
	}
	return out
}

func configOf(b *Build) *deploymentsv1.BuildConfiguration {
	if b == nil || b.BuildConfig == "" {
		return nil
	}
	out := &deploymentsv1.BuildConfiguration{}
	_ = protojson.Unmarshal([]byte(b.BuildConfig), out)
	return out
}

// branchOf is the branch a job builds and runs.
func branchOf(b *Build) string { return vcsOf(b).GetProjectBranch() }

// checkBuild validates a job's git source: a repository it can reach,
// its branch, one build engine and credentials its transport takes; the
// job's deployment then runs the build, so it names no image.
func checkBuild(j Job) error {
	b := j.Build
	if b == nil {
		return nil
	}
	repo := vcsOf(b)
	transport, err := vcs.CheckURL("deployment.vcs.projectUrl", repo.GetProjectUrl())
	if err != nil {
		return err
	}
	if repo.GetProjectBranch() == "" {
		return apierr.InvalidField("deployment.vcs.projectBranch", "is required: the branch the job builds and runs")
	}
	if err := vcs.CheckCredentials("deployment.vcs.credentials", transport, b.Credentials); err != nil {
		return err
	}
	if b.BuildSettings == "" {
		return apierr.InvalidField("buildSettings", "is required for a job that builds from git: dockerfile or buildpack")
	}
	if set := settingsOf(b); (set.GetDockerfile() == nil) == (set.GetBuildpack() == nil) {
		return apierr.InvalidField("buildSettings", "needs exactly one of dockerfile and buildpack")
	}
	if c := configOf(b); len(c.GetPrRestrictions()) > 0 || len(c.GetBranchRestrictions()) > 0 {
		return apierr.InvalidField("buildConfiguration", "branch and pull request restrictions are for build services; a job builds its projectBranch")
	}
	n := 0
	for k, v := range b.Arguments {
		n += len(k) + len(v)
	}
	if n > maxBuildArgBytes {
		return apierr.InvalidField("buildArguments", fmt.Sprintf("are %d bytes; at most %d are allowed", n, maxBuildArgBytes))
	}
	if j.Deployment.Image != "" {
		return apierr.InvalidField("deployment.external", "a job that builds from git runs its build: give deployment.vcs or deployment.external, not both")
	}
	if j.Deployment.Internal != nil {
		return apierr.InvalidField("deployment.internal", "a job that builds from git runs its own builds: give deployment.vcs or deployment.internal, not both")
	}
	return checkBuiltDeployment(j.Deployment)
}

// hexPrefix is a commit or a prefix of one.
var hexPrefix = regexp.MustCompile(`^[0-9a-f]{7,40}$`)

// checkInternal validates a job that runs a service's builds
// (deployment.internal): which service, and which of its builds.
func checkInternal(d Deployment) error {
	in := d.Internal
	switch {
	case d.Image != "":
		return apierr.InvalidField("deployment.external", "a job runs a service's build or an image: give deployment.internal or deployment.external, not both")
	case in.Service == "":
		return apierr.InvalidField("deployment.internal.id", "is required: the build or combined service whose builds the job runs")
	case in.BuildID == "" && (in.BuildSHA == "" || in.BuildSHA == "latest") && in.Branch == "":
		return apierr.InvalidField("deployment.internal.branch", "is required with buildSHA \"latest\" (or give buildSHA or buildId)")
	case in.BuildID == "" && in.BuildSHA != "" && in.BuildSHA != "latest" && !hexPrefix.MatchString(in.BuildSHA):
		return apierr.InvalidField("deployment.internal.buildSHA", "must be \"latest\" or a commit SHA (at least 7 hex digits)")
	}
	return checkBuiltDeployment(d)
}

// checkBuiltDeployment checks the overrides of a job that runs its build:
// consistent with their type, with an image or a start command to come
// from the build (so the driver's "image or command" rule does not apply).
func checkBuiltDeployment(d Deployment) error {
	if d.Image != "" {
		return apierr.InvalidField("deployment.external.imagePath", "a job that builds from git runs its build, not an image")
	}
	o := d.Overrides()
	o.Image = "built" // stands for the build's image or app tree
	return overrides.Check(o, "docker", "deployment", "job")
}

// keepCredentials is what a new repository keeps of the stored
// credentials (vcs.KeepCredentials).
func keepCredentials(before, after *Build, given *deploymentsv1.VcsCredentials) {
	g := vcs.CredentialsFromProto(given)
	var stored *vcs.Credentials
	oldURL := ""
	if before != nil {
		stored, oldURL = before.Credentials, vcsOf(before).GetProjectUrl()
	}
	after.Credentials = vcs.KeepCredentials(oldURL, vcsOf(after).GetProjectUrl(), stored, g)
}

// buildSourceOf is the internal (decrypted) form of a job's git source, in
// the deployments service's form the builds component reads.
func buildSourceOf(j Job) *deploymentsv1.BuildSource {
	repo := vcsOf(j.Build)
	repo.PublicRepo = !j.Build.Credentials.Private()
	repo.Credentials = j.Build.Credentials.Proto()
	return &deploymentsv1.BuildSource{
		TeamId: j.TeamID, ProjectId: j.ProjectID, ServiceId: j.ID, ServiceType: "job",
		VcsData: repo, BuildSettings: settingsOf(j.Build), BuildConfiguration: configOf(j.Build),
		BuildArguments: orEmpty(maps.Clone(j.Build.Arguments)), DisabledCi: j.Build.DisabledCI, BuildPlan: j.Build.BuildPlan,
	}
}

// notFromGit is the answer to a build setting asked of a job that does not
// build from git.
func notFromGit(id string) error {
	return apierr.Conflict(apierr.ReasonNotFromGit, "job %s does not build from git; give it deployment.vcs and buildSettings first", id)
}

// building reads a job that builds from git.
func (s *Service) building(ctx context.Context, req request, id string) (Job, error) {
	j, err := s.job(ctx, req, id)
	if err != nil {
		return Job{}, err
	}
	if j.Build == nil {
		return Job{}, notFromGit(id)
	}
	return j, nil
}

// changeBuild is update for the git source of a job that builds from git.
func (s *Service) changeBuild(ctx context.Context, req request, id string, mutate func(b *Build) error) error {
	_, err := s.update(ctx, req, id, func(j *Job) error {
		if j.Build == nil {
			return notFromGit(id)
		}
		return mutate(j.Build)
	})
	return err
}

// GetJobBuildArguments implements JobsService.
func (s *Service) GetJobBuildArguments(ctx context.Context, req *jobsv1.GetJobBuildArgumentsRequest) (*jobsv1.GetJobBuildArgumentsResponse, error) {
	j, err := s.building(ctx, req, req.GetJobId())
	if err != nil {
		return nil, err
	}
	resp := &jobsv1.GetJobBuildArgumentsResponse{BuildArguments: map[string]string{}, BuildFiles: map[string]*deploymentsv1.SecretFile{}}
	if req.GetShow() != "inherited" { // a job inherits nothing
		maps.Copy(resp.BuildArguments, j.Build.Arguments)
	}
	return resp, nil
}

// UpdateJobBuildArguments implements JobsService.
func (s *Service) UpdateJobBuildArguments(ctx context.Context, req *jobsv1.UpdateJobBuildArgumentsRequest) (*jobsv1.UpdateJobBuildArgumentsResponse, error) {
	err := s.changeBuild(ctx, req, req.GetJobId(), func(b *Build) error {
		b.Arguments = maps.Clone(req.GetBuildArguments())
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &jobsv1.UpdateJobBuildArgumentsResponse{}, nil
}

// GetJobBuildArgumentDetails implements JobsService.
func (s *Service) GetJobBuildArgumentDetails(ctx context.Context, req *jobsv1.GetJobBuildArgumentDetailsRequest) (*jobsv1.GetJobBuildArgumentDetailsResponse, error) {
	j, err := s.building(ctx, req, req.GetJobId())
	if err != nil {
		return nil, err
	}
	resp := &jobsv1.GetJobBuildArgumentDetailsResponse{
		BuildArguments: map[string]*deploymentsv1.SecretDetail{}, BuildFiles: map[string]*deploymentsv1.SecretFileDetail{},
	}
	for k, v := range j.Build.Arguments {
		resp.BuildArguments[k] = &deploymentsv1.SecretDetail{Value: v}
	}
	return resp, nil
}

// UpdateJobBuildOptions implements JobsService: the request is merged
// into the job's build engine and configuration by buildoptions.Merge, the
// rules services follow too. A job's request has no storage and no
// branch or pull-request rules (a job builds its one branch), so those
// are kept.
func (s *Service) UpdateJobBuildOptions(ctx context.Context, req *jobsv1.UpdateJobBuildOptionsRequest) (*jobsv1.UpdateJobBuildOptionsResponse, error) {
	opts := buildoptions.Request{
		Dockerfile: req.GetDockerfile(), Buildpack: req.GetBuildpack(),
		PathIgnoreRules: req.GetPathIgnoreRules(), CiIgnoreFlags: req.GetCiIgnoreFlags(),
		IsAllowList: req.IsAllowList, CiIgnoreFlagsEnabled: req.CiIgnoreFlagsEnabled, IncludeGitFolder: req.IncludeGitFolder,
		FullGitClone: req.FullGitClone, EnableGitLfs: req.EnableGitLfs, DockerfileTarget: req.DockerfileTarget,
	}
	if err := opts.Check(); err != nil {
		return nil, err
	}
	err := s.changeBuild(ctx, req, req.GetJobId(), func(b *Build) error {
		settings, config := buildoptions.Merge(settingsOf(b), configOf(b), opts)
		raw, err := protojson.Marshal(settings)
		if err != nil {
			return err
		}
		b.BuildSettings = string(raw)
		if raw, err = protojson.Marshal(config); err != nil {
			return err
		}
		b.BuildConfig = string(raw)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &jobsv1.UpdateJobBuildOptionsResponse{}, nil
}

// UpdateJobBuildSource implements JobsService: the parts given replace
// the job's repository's; credentials follow vcs.KeepCredentials.
func (s *Service) UpdateJobBuildSource(ctx context.Context, req *jobsv1.UpdateJobBuildSourceRequest) (*jobsv1.UpdateJobBuildSourceResponse, error) {
	err := s.changeBuild(ctx, req, req.GetJobId(), func(b *Build) error {
		before := cloneBuild(b)
		repo := vcsOf(b)
		for _, f := range []struct {
			v   string
			dst *string
		}{
			{req.GetProjectUrl(), &repo.ProjectUrl}, {req.GetProjectType(), &repo.ProjectType},
			{req.GetProjectBranch(), &repo.ProjectBranch}, {req.GetSelfHostedVcsId(), &repo.SelfHostedVcsId},
			{req.GetAccountLogin(), &repo.AccountLogin},
		} {
			if f.v != "" {
				*f.dst = f.v
			}
		}
		if err := setVcs(b, repo); err != nil {
			return err
		}
		keepCredentials(before, b, req.GetCredentials())
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &jobsv1.UpdateJobBuildSourceResponse{}, nil
}

// GetBuildSource implements JobsService (internal).
func (s *Service) GetBuildSource(ctx context.Context, req *jobsv1.GetBuildSourceRequest) (*jobsv1.GetBuildSourceResponse, error) {
	j, err := s.store.GetJob(ctx, req.GetTeamId(), req.GetProjectId(), req.GetJobId())
	if err != nil {
		return nil, apierr.FromStore(err, "job", req.GetJobId())
	}
	if j.Build == nil {
		return nil, notFromGit(j.ID)
	}
	return &jobsv1.GetBuildSourceResponse{Source: buildSourceOf(j)}, nil
}

// ListBuildSources implements JobsService (internal). The page token is
// the key (team/project/job) of the last source answered; pages follow
// Go's byte order, whatever the database's collation.
func (s *Service) ListBuildSources(ctx context.Context, req *jobsv1.ListBuildSourcesRequest) (*jobsv1.ListBuildSourcesResponse, error) {
	size := int(req.GetPageSize())
	if size <= 0 {
		size = 100
	}
	all, err := s.store.BuildingJobs(ctx)
	if err != nil {
		return nil, err
	}
	key := func(j Job) []string { return []string{j.TeamID, j.ProjectID, j.ID} }
	slices.SortFunc(all, func(a, b Job) int { return slices.Compare(key(a), key(b)) })
	var after []string
	if t := req.GetPageToken(); t != "" {
		after = strings.Split(t, "/")
	}
	resp := &jobsv1.ListBuildSourcesResponse{}
	for _, j := range all {
		if (req.GetTeamId() != "" && j.TeamID != req.GetTeamId()) || (after != nil && slices.Compare(key(j), after) <= 0) {
			continue
		}
		if len(resp.Sources) == size {
			last := resp.Sources[len(resp.Sources)-1]
			resp.NextPageToken = last.GetTeamId() + "/" + last.GetProjectId() + "/" + last.GetServiceId()
			break
		}
		resp.Sources = append(resp.Sources, buildSourceOf(j))
	}
	return resp, nil
}

// BuildsConsumer is the durable consumer through which the jobs service
// learns of its jobs' succeeded and deleted builds.
const BuildsConsumer = "jobs-builds"

// BuildSubjects are the events BuildHandler handles.
var BuildSubjects = []string{
	buildevent.Subject(buildevent.Succeeded),
	buildevent.Subject(buildevent.Deleted),
}

// BuildHandler records succeeded builds, which runs run: a job's own (the
// newest of its branch) and build services' (jobs with
// deployment.internal); a deleted build is forgotten. It is idempotent: a
// build is recorded once.
func (s *Service) BuildHandler() events.Handler {
	return func(ctx context.Context, ev events.Event) error {
		var data buildevent.Data
		if err := ev.Decode(&data); err != nil {
			return fmt.Errorf("jobs: decode %s: %w", ev.Type, err)
		}
		job := data.Kind == "job" // else a service's ("" before kinds were announced)
		owner := data.ServiceID
		if job {
			owner = data.JobID
		}
		if data.TeamID == "" || data.ProjectID == "" || owner == "" || data.BuildID == "" {
			s.log.Warn("a build event without its build's key", "event", ev.ID, "type", ev.Type)
			return nil
		}
		if ev.Type == buildevent.Subject(buildevent.Deleted) {
			if job {
				return s.store.DeleteJobBuild(ctx, data.TeamID, data.ProjectID, owner, data.BuildID)
			}
			return s.store.DeleteServiceBuild(ctx, data.TeamID, data.ProjectID, owner, data.BuildID)
		}
		concluded := data.ConcludedAt
		if concluded.IsZero() {
			concluded = ev.Time
		}
		art := data.Built()
		b := JobBuild{
			TeamID: data.TeamID, ProjectID: data.ProjectID, ID: data.BuildID,
			Branch: data.Branch, SHA: strings.ToLower(data.SHA), Image: art.Image, Path: art.Path,
			Command: art.Command, ConcludedAt: concluded.UTC(),
		}
		if job {
			b.JobID = owner
			return s.store.PutJobBuild(ctx, b)
		}
		b.ServiceID = owner
		return s.store.PutServiceBuild(ctx, b)
	}
}

// artifactFor is the build a new run of j runs: the newest successful
// build of its branch, runnable on this driver. A job with nothing built
// yet is refused (409 NO_BUILD) rather than given a run that cannot start.
func (s *Service) artifactFor(ctx context.Context, j Job, d Deployment) (*Artifact, error) {
	var b JobBuild
	var err error
	if in := j.Deployment.Internal; in != nil && j.Build == nil {
		b, err = s.store.FindServiceBuild(ctx, j.TeamID, j.ProjectID, *in)
		if errors.Is(err, ErrNotFound) {
			return nil, apierr.Conflict(apierr.ReasonNoBuild, "service %s has no successful build %s", in.Service, describeRef(*in))
		}
	} else {
		branch := branchOf(j.Build)
		b, err = s.store.LatestJobBuild(ctx, j.TeamID, j.ProjectID, j.ID, branch)
		if errors.Is(err, ErrNotFound) {
			return nil, apierr.Conflict(apierr.ReasonNoBuild,
				"job %s has no successful build of its branch %s yet: start one with POST /v1/projects/%s/jobs/%s/build", j.ID, branch, j.ProjectID, j.ID)
		}
	}
	if err != nil {
		return nil, err
	}
	a := &Artifact{BuildID: b.ID, SHA: b.SHA}
	switch driver := s.opts.Driver.Name(); {
	case driver == "process" && b.Path == "":
		return nil, apierr.Conflict(apierr.ReasonNoBuild, "build %s of job %s has no app tree for the process driver (it was built as an image); build it again on this install", b.ID, j.ID)
	case driver == "process" && len(b.Command) == 0 && d.CustomCommand == "":
		return nil, apierr.Conflict(apierr.ReasonNoBuild, "build %s of job %s found no start command (no Procfile or known stack); set deployment.docker.customCommand (configType customCommand) to start it", b.ID, j.ID)
	case driver == "process":
		a.Path, a.Command = b.Path, slices.Clone(b.Command)
	case b.Image == "":
		return nil, apierr.Conflict(apierr.ReasonNoBuild, "build %s of job %s has no image for the %s driver; build it again on this install", b.ID, j.ID, driver)
	default:
		a.Image = b.Image
	}
	return a, nil
}

// applyArtifact sets what a run of a build starts: on the process driver
// the build's app tree, read-only at /app and started there with the
// build's start command (or the job's customCommand); on an image driver
// the built image with the job's overrides.
func applyArtifact(spec *runtime.Spec, d Deployment, a *Artifact) {
	o := d.Overrides()
	if a.Image != "" {
		o.Image = a.Image
		overrides.Apply(spec, o)
		return
	}
	o.Image = ""
	if o.CustomCommand != "" {
		overrides.Apply(spec, o)
	} else {
		spec.Command = slices.Clone(a.Command)
	}
	spec.Mounts = []runtime.Mount{{Source: a.Path, Target: artifactDir, ReadOnly: true}}
	spec.WorkDir = artifactDir
}

// patchBuild applies a patch's build settings, options, arguments and CI
// switch to j's git source.
func patchBuild(j *Job, p *jobsv1.JobPatch) error {
	if j.Build == nil {
		switch {
		case p.BuildSettings != nil:
			return apierr.InvalidField("buildSettings", "is for a job that builds from git: give deployment.vcs too")
		case p.BuildConfiguration != nil:
			return apierr.InvalidField("buildConfiguration", "is for a job that builds from git: give deployment.vcs too")
		case len(p.GetBuildArguments()) > 0:
			return apierr.InvalidField("buildArguments", "are for a job that builds from git: give deployment.vcs too")
		}
		return nil
	}
	for _, f := range []struct {
		m   proto.Message
		dst *string
	}{{p.BuildSettings, &j.Build.BuildSettings}, {p.BuildConfiguration, &j.Build.BuildConfig}} {
		if f.m == nil || !f.m.ProtoReflect().IsValid() {
			continue
		}
		raw, err := protojson.Marshal(f.m)
		if err != nil {
			return err
		}
		*f.dst = string(raw)
	}
	if len(p.GetBuildArguments()) > 0 {
		j.Build.Arguments = maps.Clone(p.GetBuildArguments())
	}
	if plan := p.GetBilling().GetBuildPlan(); plan != "" {
		j.Build.BuildPlan = plan
	}
	if p.DisabledCi != nil {
		j.Build.DisabledCI = p.GetDisabledCi()
	}
	return nil
}

// describeRef says which build ref names, for messages.
func describeRef(ref InternalRef) string {
	switch {
	case ref.BuildID != "":
		return ref.BuildID
	case ref.BuildSHA != "" && ref.BuildSHA != "latest":
		return "of commit " + ref.BuildSHA
	}
	return "of branch " + ref.Branch + " yet"
}
