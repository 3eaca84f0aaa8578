package builds

import (
	"context"
	"errors"
	"log/slog"

	"github.com/slipwayhq/slipway/services/builds/builder"
)

// BuilderEngine is the Engine of services/builds/builder: clones in the
// process driver's sandbox, builds with a container engine's /build or
// the buildpack detector.
type BuilderEngine struct {
	Builder *builder.Builder
	Logger  *slog.Logger
}

var _ Engine = BuilderEngine{}

// failure is a build failure whose reason a user may read.
type failure struct{ err *builder.Error }

func (f failure) Error() string       { return f.err.Message }
func (f failure) Unwrap() error       { return f.err }
func (f failure) UserMessage() string { return f.err.Message }

// userError keeps the builder's words for the user, and logs what is
// behind an internal failure (its Reason says only that one happened).
func (e BuilderEngine) userError(err error, what string, attrs ...any) error {
	var be *builder.Error
	if !errors.As(err, &be) {
		return err
	}
	if be.Kind == builder.KindInternal && e.Logger != nil {
		e.Logger.Error(what, append(attrs, "error", be.Err)...)
	}
	return failure{be}
}

func (e BuilderEngine) source(src Source) builder.Source {
	return builder.Source{
		URL: src.URL, Credentials: src.Credentials, Branch: src.Branch,
		Submodules: true, LFS: src.Config.EnableGitLFS, IncludeGit: src.Config.IncludeGitFolder, FullClone: src.Config.FullGitClone,
	}
}

// Build implements Engine.
func (e BuilderEngine) Build(ctx context.Context, job Job) (Output, error) {
	b, src := job.Build, job.Source
	s := e.source(src)
	s.Branch, s.SHA, s.PullRequest = b.Branch, b.SHA, int(b.PullRequest)
	req := builder.Request{
		BuildID: b.ID, TeamID: b.TeamID, ProjectID: b.ProjectID, ServiceID: b.ServiceID, Job: b.Kind == KindJob,
		Source: s, Args: src.Args, Resources: src.Resources, Timeout: job.Timeout, Log: job.Log,
		Phase: func(p builder.Phase) {
			if job.Phase != nil {
				job.Phase(string(p))
			}
		},
	}
	if src.Buildpack != nil {
		req.Buildpack = &builder.Buildpack{Context: src.Buildpack.Context}
	} else {
		d := Dockerfile{}
		if src.Dockerfile != nil {
			d = *src.Dockerfile
		}
		req.Dockerfile = &builder.Dockerfile{Path: d.Path, WorkDir: d.WorkDir, Target: src.Config.DockerfileTarget}
	}
	res, err := e.Builder.Build(ctx, req)
	if err != nil {
		return Output{}, e.userError(err, "a build failed inside Slipway", "build", b.ID)
	}
	return Output{SHA: res.SHA, Artifact: Artifact{Image: res.Image, Path: res.Path, Command: res.Command, Stack: res.Stack}}, nil
}

// Refs implements Engine.
func (e BuilderEngine) Refs(ctx context.Context, src Source) ([]Ref, error) {
	refs, err := e.Builder.Refs(ctx, e.source(src))
	if err != nil {
		return nil, e.userError(err, "listing a remote's refs failed inside Slipway", "service", src.ServiceID)
	}
	out := make([]Ref, 0, len(refs))
	for _, r := range refs {
		if r.PullRequest > 0 {
			out = append(out, Ref{SHA: r.SHA, PullRequest: int64(r.PullRequest), Ref: r.Name})
		} else {
			out = append(out, Ref{Name: r.Name, SHA: r.SHA, Ref: "refs/heads/" + r.Name})
		}
	}
	return out, nil
}

// Messages implements Engine.
func (e BuilderEngine) Messages(ctx context.Context, src Source, heads []Ref) (map[string]string, error) {
	refs := make([]builder.Ref, 0, len(heads))
	for _, h := range heads {
		r := builder.Ref{Name: h.Name, SHA: h.SHA}
		if h.PullRequest > 0 {
			r = builder.Ref{Name: h.Ref, SHA: h.SHA, PullRequest: int(h.PullRequest)}
		}
		refs = append(refs, r)
	}
	msgs, err := e.Builder.Messages(ctx, e.source(src), refs)
	if err != nil {
		return nil, e.userError(err, "reading commit messages failed inside Slipway", "service", src.ServiceID)
	}
	return msgs, nil
}

// Remove implements Engine.
func (e BuilderEngine) Remove(ctx context.Context, a Artifact) error {
	if a.Image == "" && a.Path == "" {
		return nil
	}
	return e.Builder.Remove(ctx, builder.Result{Image: a.Image, Path: a.Path})
}

// RemoveUnused implements Engine.
func (e BuilderEngine) RemoveUnused(ctx context.Context, a Artifact) error {
	if a.Image == "" && a.Path == "" {
		return nil
	}
	return e.Builder.RemoveUnused(ctx, builder.Result{Image: a.Image, Path: a.Path})
}

// ResetCache implements Engine.
func (e BuilderEngine) ResetCache(ctx context.Context, k ServiceKey) error {
	return e.Builder.ResetCache(ctx, k.TeamID, k.ProjectID, builder.Owner(k.Kind == KindJob, k.ServiceID))
}

// Discard implements Engine.
func (e BuilderEngine) Discard(ctx context.Context, b Build) error {
	return e.Builder.Discard(ctx, b.ID)
}
