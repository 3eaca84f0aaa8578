package builds

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	buildsv1 "github.com/slipwayhq/slipway/gen/slipway/builds/v1"
	"github.com/slipwayhq/slipway/pkg/apierr"
	"github.com/slipwayhq/slipway/pkg/authz"
)

// Bounds of a build's own build arguments (a service's are bounded where
// they are set).
const (
	maxBuildArgs     = 200
	maxBuildArgBytes = 64 << 10
)

// buildArgKey is what a build argument's name may be (Northflank: letters,
// digits and underscores).
var buildArgKey = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// request is what every request names.
type request interface {
	GetProjectId() string
	GetServiceId() string
}

func team(ctx context.Context) (string, error) {
	grant, ok := authz.GrantFrom(ctx)
	if !ok {
		return "", authz.Unauthenticated("credentials required")
	}
	return grant.GetTeamId(), nil
}

// source returns the build source of the service (or, kind KindJob, the
// job): 404 when there is no such service, 409 when it does not build.
func (s *Service) source(ctx context.Context, kind string, req request) (Source, error) {
	teamID, err := team(ctx)
	if err != nil {
		return Source{}, err
	}
	return s.opts.Sources.Source(ctx, ServiceKey{TeamID: teamID, ProjectID: req.GetProjectId(), Kind: kind, ServiceID: req.GetServiceId()})
}

// serviceKey checks the service (or job) exists and builds.
func (s *Service) serviceKey(ctx context.Context, kind string, req request) (ServiceKey, error) {
	src, err := s.source(ctx, kind, req)
	src.ServiceKey.Kind = ownerKind(src.ServiceKey.Kind)
	return src.ServiceKey, err
}

// startBuild serves StartServiceBuild and its job form.
func (s *Service) startBuild(ctx context.Context, kind string, req *buildsv1.StartServiceBuildRequest) (*buildsv1.StartServiceBuildResponse, error) {
	if req.GetBundleUrl() != "" {
		return nil, apierr.InvalidField("bundleUrl", "bundle builds are not supported: Slipway builds from the service's git repository")
	}
	pr, err := pullRequestID(req.GetPullRequestId())
	if err != nil {
		return nil, err
	}
	if sha := req.GetSha(); sha != "" && len(sha) < 7 {
		return nil, apierr.InvalidField("sha", "must be a full commit SHA or an unambiguous prefix of at least 7 hex digits")
	}
	over, err := overridesFrom(req.GetOverrides())
	if err != nil {
		return nil, err
	}
	src, err := s.source(ctx, kind, req)
	if err != nil {
		return nil, err
	}
	branch := req.GetBranch()
	what := "a combined service"
	if kind == KindJob {
		what = "a job"
	}
	switch {
	case ownBranch(src) && pr > 0:
		return nil, apierr.InvalidField("pullRequestId", what+" builds its own branch; build pull requests with a build service")
	case ownBranch(src) && branch != "" && branch != src.Branch:
		return nil, apierr.InvalidField("branch", fmt.Sprintf("%s builds its branch %q; change it with build-source", what, src.Branch))
	case branch == "" && pr == 0:
		branch = src.Branch
	}
	if branch == "" && pr == 0 && req.GetSha() == "" {
		return nil, apierr.InvalidField("branch", "name a branch, a pull request or a commit: the service has no default branch")
	}
	b, err := s.start(ctx, Build{
		TeamID: src.TeamID, ProjectID: src.ProjectID, Kind: kind, ServiceID: src.ServiceID,
		Branch: branch, PullRequest: pr, SHA: strings.ToLower(req.GetSha()), Trigger: "api", Overrides: over,
	})
	if err != nil {
		return nil, err
	}
	return &buildsv1.StartServiceBuildResponse{
		Id: b.ID, Branch: b.Branch, PullRequestId: prValue(b.PullRequest), Sha: b.SHA, Registry: registryOf(b),
		CreatedAt: timestamppb.New(b.CreatedAt), Status: b.Status, Concluded: false,
	}, nil
}

// start queues b and wakes the queue.
func (s *Service) start(ctx context.Context, b Build) (Build, error) {
	b.CreatedAt = s.opts.Clock().UTC().Truncate(time.Microsecond) // as stored
	b.ID = newID(b.CreatedAt)
	b, err := s.store.CreateBuild(ctx, b)
	if err != nil {
		return Build{}, apierr.FromStore(err, "build", b.ID)
	}
	s.log.InfoContext(ctx, "build queued", "build", b.ID, "service", b.ServiceID, "trigger", b.Trigger)
	s.kick()
	return b, nil
}

// pullRequestID reads pullRequestId: a positive number, or null.
func pullRequestID(v *structpb.Value) (int64, error) {
	switch k := v.GetKind().(type) {
	case nil, *structpb.Value_NullValue:
		return 0, nil
	case *structpb.Value_NumberValue:
		if n := k.NumberValue; n >= 1 && n == float64(int64(n)) && n < 1<<53 {
			return int64(n), nil
		}
	case *structpb.Value_StringValue:
		if n, err := strconv.ParseInt(k.StringValue, 10, 64); err == nil && n >= 1 {
			return n, nil
		}
	}
	return 0, apierr.InvalidField("pullRequestId", "must be a pull request number")
}

func prValue(pr int64) *structpb.Value {
	if pr == 0 {
		return structpb.NewNullValue()
	}
	return structpb.NewNumberValue(float64(pr))
}

// overridesFrom checks and reads a start-build request's overrides.
func overridesFrom(o *buildsv1.BuildOverrides) (Overrides, error) {
	var out Overrides
	if o == nil {
		return out, nil
	}
	if len(o.GetDockerSecretMounts().GetFields()) > 0 {
		return out, apierr.InvalidField("overrides.dockerSecretMounts", "secret mounts need BuildKit, which the Engine API build Slipway uses does not offer; pass secrets as build arguments")
	}
	if len(o.GetBuildFiles().GetFields()) > 0 {
		return out, apierr.InvalidField("overrides.buildFiles", "build files are not supported; pass values as build arguments")
	}
	args, err := buildArgs("overrides.buildArguments", o.GetBuildArguments())
	if err != nil {
		return out, err
	}
	out.BuildArguments = args
	d := o.GetDocker()
	for _, f := range []struct{ name, v string }{{"overrides.docker.dockerFilePath", d.GetDockerFilePath()}, {"overrides.docker.dockerWorkDir", d.GetDockerWorkDir()}} {
		if err := checkRepoPath(f.name, f.v); err != nil {
			return out, err
		}
	}
	out.DockerFilePath, out.DockerWorkDir, out.Target = d.GetDockerFilePath(), d.GetDockerWorkDir(), d.GetDockerfileTarget()
	return out, nil
}

// buildArgs reads build arguments: string values (numbers and booleans
// as their text), names of letters, digits and underscores, bounded in
// count and size.
func buildArgs(field string, st *structpb.Struct) (map[string]string, error) {
	fields := st.GetFields()
	if len(fields) == 0 {
		return nil, nil
	}
	if len(fields) > maxBuildArgs {
		return nil, apierr.InvalidField(field, fmt.Sprintf("at most %d build arguments", maxBuildArgs))
	}
	out := make(map[string]string, len(fields))
	size := 0
	for k, v := range fields {
		if !buildArgKey.MatchString(k) {
			return nil, apierr.InvalidField(field, fmt.Sprintf("%q is not a build argument name (letters, digits and underscores, not starting with a digit)", k))
		}
		var s string
		switch x := v.GetKind().(type) {
		case *structpb.Value_StringValue:
			s = x.StringValue
		case *structpb.Value_NumberValue:
			s = strconv.FormatFloat(x.NumberValue, 'f', -1, 64)
		case *structpb.Value_BoolValue:
			s = strconv.FormatBool(x.BoolValue)
		default:
			return nil, apierr.InvalidField(field, fmt.Sprintf("%s must be a string", k))
		}
		size += len(k) + len(s)
		out[k] = s
	}
	if size > maxBuildArgBytes {
		return nil, apierr.InvalidField(field, fmt.Sprintf("build arguments are %d bytes; at most %d", size, maxBuildArgBytes))
	}
	return out, nil
}

// checkRepoPath refuses a path that would leave the repository.
func checkRepoPath(field, p string) error {
	if p == "" {
		return nil
	}
	if slices.Contains(strings.Split(strings.ReplaceAll(p, `\`, "/"), "/"), "..") {
		return apierr.InvalidField(field, "must stay inside the repository (no \"..\")")
	}
	return nil
}

func registryOf(b Build) *buildsv1.Registry {
	switch {
	case b.Artifact.Image != "":
		return &buildsv1.Registry{Uri: b.Artifact.Image}
	case b.Artifact.Path != "":
		return &buildsv1.Registry{Uri: "artifact://" + b.ID}
	}
	return nil
}

func buildOf(b Build) *buildsv1.Build {
	out := &buildsv1.Build{
		Id: b.ID, Branch: b.Branch, PullRequestId: prValue(b.PullRequest), Status: b.Status, Sha: b.SHA,
		Concluded: Concluded(b.Status), CreatedAt: timestamppb.New(b.CreatedAt), Message: b.Message,
	}
	if !b.Removed {
		out.Registry = registryOf(b)
	}
	if out.Concluded {
		ok := b.Status == StatusSuccess
		at := float64(b.ConcludedAt.Unix())
		out.Success, out.BuildConcludedAt = &ok, &at
	}
	return out
}

// listBuilds serves ListServiceBuilds and its job form.
func (s *Service) listBuilds(ctx context.Context, kind string, req *buildsv1.ListServiceBuildsRequest) (*buildsv1.ListServiceBuildsResponse, error) {
	k, err := s.serviceKey(ctx, kind, req)
	if err != nil {
		return nil, err
	}
	scope := "builds/" + k.TeamID + "/" + k.ProjectID + "/" + k.Kind + "/" + k.ServiceID
	p, err := s.opts.Cursors.Parse(scope, req.GetPerPage(), req.GetPage(), req.GetCursor())
	if err != nil {
		return nil, err
	}
	list, more, total, err := s.store.ListBuilds(ctx, k, p)
	if err != nil {
		return nil, err
	}
	resp := &buildsv1.ListServiceBuildsResponse{Builds: make([]*buildsv1.Build, 0, len(list))}
	last := ""
	for _, b := range list {
		resp.Builds = append(resp.Builds, buildOf(b))
		last = b.ID
	}
	resp.Pagination = s.opts.Cursors.Result(scope, len(list), more, last, total)
	return resp, nil
}

// getBuild serves GetServiceBuild and its job form.
func (s *Service) getBuild(ctx context.Context, kind string, req *buildsv1.GetServiceBuildRequest) (*buildsv1.GetServiceBuildResponse, error) {
	k, err := s.serviceKey(ctx, kind, req)
	if err != nil {
		return nil, err
	}
	b, err := s.store.GetBuild(ctx, k, req.GetBuildId())
	if err != nil {
		return nil, apierr.FromStore(err, "build", req.GetBuildId())
	}
	return &buildsv1.GetServiceBuildResponse{Build: buildOf(b)}, nil
}

// abortBuild serves AbortServiceBuild and its job form: a queued build ends ABORTED
// at once; a running one is stopped by the replica running it, which
// removes what it made and ends it ABORTED.
func (s *Service) abortBuild(ctx context.Context, kind string, req *buildsv1.AbortServiceBuildRequest) (*buildsv1.AbortServiceBuildResponse, error) {
	k, err := s.serviceKey(ctx, kind, req)
	if err != nil {
		return nil, err
	}
	b, err := s.store.RequestAbort(ctx, k, req.GetBuildId(), s.opts.Clock())
	if errors.Is(err, ErrConflict) {
		return nil, apierr.Conflict(apierr.ReasonBuildConcluded, "build %q has already concluded", req.GetBuildId())
	}
	if err != nil {
		return nil, apierr.FromStore(err, "build", req.GetBuildId())
	}
	if b.Status != StatusAborted {
		s.cancel(b.ID)
		if err := s.opts.NATS.Publish(abortSubject, []byte(b.ID)); err != nil {
			s.log.WarnContext(ctx, "signalling an abort (the running replica finds it within seconds)", "build", b.ID, "error", err)
		}
	}
	return &buildsv1.AbortServiceBuildResponse{}, nil
}

// ResetServiceBuildCache implements BuildsService.
func (s *Service) ResetServiceBuildCache(ctx context.Context, req *buildsv1.ResetServiceBuildCacheRequest) (*buildsv1.ResetServiceBuildCacheResponse, error) {
	k, err := s.serviceKey(ctx, KindService, req)
	if err != nil {
		return nil, err
	}
	if err := s.opts.Engine.ResetCache(ctx, k); err != nil {
		s.log.ErrorContext(ctx, "resetting a build cache", "service", k.ServiceID, "error", err)
		return nil, apierr.Internal
	}
	return &buildsv1.ResetServiceBuildCacheResponse{}, nil
}

// refs lists the service's remote refs, answering 409 REMOTE_UNREACHABLE
// with the engine's words when the remote cannot be read.
func (s *Service) refs(ctx context.Context, kind string, req request) ([]Ref, error) {
	src, err := s.source(ctx, kind, req)
	if err != nil {
		return nil, err
	}
	refs, err := s.opts.Engine.Refs(ctx, src)
	if err != nil {
		var ue UserError
		if errors.As(err, &ue) {
			return nil, &apierr.Error{Code: codes.FailedPrecondition, Reason: apierr.ReasonRemoteUnreachable, Message: ue.UserMessage()}
		}
		s.log.ErrorContext(ctx, "listing a remote's refs", "service", src.ServiceID, "error", err)
		return nil, apierr.Internal
	}
	return refs, nil
}

// branches serves GetServiceBranches and its job form.
func (s *Service) branches(ctx context.Context, kind string, req *buildsv1.GetServiceBranchesRequest) (*buildsv1.GetServiceBranchesResponse, error) {
	teamID, err := team(ctx)
	if err != nil {
		return nil, err
	}
	scope := "branches/" + teamID + "/" + req.GetProjectId() + "/" + kind + "/" + req.GetServiceId()
	p, err := s.opts.Cursors.Parse(scope, req.GetPerPage(), req.GetPage(), req.GetCursor())
	if err != nil {
		return nil, err
	}
	refs, err := s.refs(ctx, kind, req)
	if err != nil {
		return nil, err
	}
	var names []Ref
	for _, r := range refs {
		if r.Name != "" {
			names = append(names, r)
		}
	}
	slices.SortFunc(names, func(a, b Ref) int { return strings.Compare(a.Name, b.Name) })
	page, more := pageOf(names, p.After, p.Offset, p.Limit, func(r Ref) string { return r.Name })
	resp := &buildsv1.GetServiceBranchesResponse{Branches: make([]*buildsv1.Branch, 0, len(page))}
	last := ""
	for _, r := range page {
		resp.Branches = append(resp.Branches, &buildsv1.Branch{Name: r.Name, Id: r.Name, Commit: &buildsv1.Commit{Sha: r.SHA, Author: &buildsv1.CommitAuthor{}}})
		last = r.Name
	}
	resp.Pagination = s.opts.Cursors.Result(scope, len(page), more, last, len(names))
	return resp, nil
}

// pullRequests serves GetServicePullRequests and its job form. A remote's refs say a
// pull request's number and head, nothing else: the rest is what can be
// told from them.
func (s *Service) pullRequests(ctx context.Context, kind string, req *buildsv1.GetServicePullRequestsRequest) (*buildsv1.GetServicePullRequestsResponse, error) {
	teamID, err := team(ctx)
	if err != nil {
		return nil, err
	}
	scope := "pull-requests/" + teamID + "/" + req.GetProjectId() + "/" + kind + "/" + req.GetServiceId()
	p, err := s.opts.Cursors.Parse(scope, req.GetPerPage(), req.GetPage(), req.GetCursor())
	if err != nil {
		return nil, err
	}
	refs, err := s.refs(ctx, kind, req)
	if err != nil {
		return nil, err
	}
	var prs []Ref
	for _, r := range refs {
		if r.PullRequest > 0 {
			prs = append(prs, r)
		}
	}
	// Newest (highest number) first; the cursor is the number, zero-padded
	// so that it compares as text in the same order.
	slices.SortFunc(prs, func(a, b Ref) int { return int(b.PullRequest - a.PullRequest) })
	key := func(r Ref) string { return fmt.Sprintf("%020d", int64(1<<62)-r.PullRequest) }
	page, more := pageOf(prs, p.After, p.Offset, p.Limit, key)
	resp := &buildsv1.GetServicePullRequestsResponse{PullRequests: make([]*buildsv1.PullRequest, 0, len(page))}
	last := ""
	for _, r := range page {
		resp.PullRequests = append(resp.PullRequests, &buildsv1.PullRequest{
			Id: r.PullRequest, State: "OPEN", Title: fmt.Sprintf("Pull request #%d", r.PullRequest), Sha: r.SHA,
		})
		last = key(r)
	}
	resp.Pagination = s.opts.Cursors.Result(scope, len(page), more, last, len(prs))
	return resp, nil
}

// pageOf returns the page of sorted list after the key after (or from
// offset), and whether more follow.
func pageOf[T any](list []T, after string, offset, limit int, key func(T) string) ([]T, bool) {
	start := 0
	if after != "" {
		start = len(list)
		for i, v := range list {
			if key(v) > after {
				start = i
				break
			}
		}
	} else {
		start = min(offset, len(list))
	}
	end := min(start+limit, len(list))
	return list[start:end], end < len(list)
}

// webhookOf is the webhook as its owner sees it.
func (s *Service) webhookOf(w Webhook) *buildsv1.BuildWebhook {
	return &buildsv1.BuildWebhook{Url: s.opts.PublicURL + "/v1/git-webhooks/" + w.ID, Secret: w.Secret, ContentType: "application/json"}
}

// buildWebhook serves GetServiceBuildWebhook and its job form: the
// owner's webhook, made on first ask.
func (s *Service) buildWebhook(ctx context.Context, kind string, req *buildsv1.GetServiceBuildWebhookRequest) (*buildsv1.GetServiceBuildWebhookResponse, error) {
	k, err := s.serviceKey(ctx, kind, req)
	if err != nil {
		return nil, err
	}
	w, err := s.store.Webhook(ctx, k, randomSecret(16), randomSecret(32))
	if err != nil {
		return nil, err
	}
	return &buildsv1.GetServiceBuildWebhookResponse{Webhook: s.webhookOf(w)}, nil
}

// rotateBuildWebhook serves RotateServiceBuildWebhook and its job form.
func (s *Service) rotateBuildWebhook(ctx context.Context, kind string, req *buildsv1.RotateServiceBuildWebhookRequest) (*buildsv1.RotateServiceBuildWebhookResponse, error) {
	k, err := s.serviceKey(ctx, kind, req)
	if err != nil {
		return nil, err
	}
	w, err := s.store.RotateWebhook(ctx, k, randomSecret(16), randomSecret(32))
	if err != nil {
		return nil, err
	}
	return &buildsv1.RotateServiceBuildWebhookResponse{Webhook: s.webhookOf(w)}, nil
}
