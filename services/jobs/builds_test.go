package jobs_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"

	deploymentsv1 "github.com/slipwayhq/slipway/gen/slipway/deployments/v1"
	jobsv1 "github.com/slipwayhq/slipway/gen/slipway/jobs/v1"
	"github.com/slipwayhq/slipway/pkg/authz"
	"github.com/slipwayhq/slipway/pkg/events"
	"github.com/slipwayhq/slipway/pkg/sqldb"
	"github.com/slipwayhq/slipway/pkg/sqldb/sqltest"
	"github.com/slipwayhq/slipway/services/jobs"
)

func internalCall() context.Context {
	return metadata.AppendToOutgoingContext(context.Background(), authz.InternalKeyHeader, "internal-key")
}

// gitJob is a manual job that builds main of a private repository with a
// buildpack.
func gitJob(name string) *jobsv1.JobSpec {
	return &jobsv1.JobSpec{
		Name: name,
		Deployment: &jobsv1.JobDeployment{Vcs: &deploymentsv1.VcsData{
			ProjectUrl: "https://git.example.com/acme/tools.git", ProjectType: "self-hosted", ProjectBranch: "main",
			Credentials: &deploymentsv1.VcsCredentials{Username: "bot", Password: "t0ken-s3cret"},
		}},
		BuildSettings:  &deploymentsv1.BuildSettings{Buildpack: &deploymentsv1.BuildpackSettings{BuildContext: "/"}},
		BuildArguments: map[string]string{"NPM_TOKEN": "npm-s3cret"},
	}
}

// consumeBuilds runs the jobs-builds consumer on the harness's stream.
func (h *harness) consumeBuilds() {
	h.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	h.t.Cleanup(cancel)
	stop, err := events.Consume(ctx, h.js, events.ConsumerConfig{Durable: jobs.BuildsConsumer, Subjects: jobs.BuildSubjects, Logger: quiet},
		func(ctx context.Context, ev events.Event) error { return h.svc.BuildHandler()(ctx, ev) })
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(stop)
}

// publishBuild sends builds.build.<verb> as the builds component does.
func (h *harness) publishBuild(verb string, data map[string]any) {
	h.t.Helper()
	ev, err := events.New("builds", "build", verb, teamID+"/"+projectID+"/"+data["buildId"].(string), data)
	if err != nil {
		h.t.Fatal(err)
	}
	raw, err := json.Marshal(ev)
	if err != nil {
		h.t.Fatal(err)
	}
	if _, err := h.js.Publish(context.Background(), ev.NATSSubject(), raw, jetstream.WithMsgID(ev.ID)); err != nil {
		h.t.Fatal(err)
	}
}

// jobBuild is the data of a succeeded build of job with a process-driver
// artifact.
func jobBuild(kind, job, build, branch, path string, command []string) map[string]any {
	d := map[string]any{
		"teamId": teamID, "projectId": projectID, "kind": kind, "buildId": build, "branch": branch, "sha": strings.Repeat("a", 40),
		"status": "SUCCESS", "concludedAt": time.Now().UTC().Format(time.RFC3339Nano),
		"artifact": map[string]any{"path": path, "command": command},
	}
	if kind == "job" {
		d["jobId"] = job
	} else {
		d["serviceId"] = job
	}
	return d
}

// appTree makes an app tree whose run.sh prints where it runs and its
// argument.
func appTree(t *testing.T, version string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "app")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	script := "#!/bin/sh\necho \"" + version + " from $(pwd) ${1:-}\"\n"
	if err := os.WriteFile(filepath.Join(dir, "run.sh"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	// The workload's unprivileged user reads the tree through the mount.
	for p := dir; p != "/" && p != os.TempDir(); p = filepath.Dir(p) {
		_ = os.Chmod(p, 0o755)
	}
	return dir
}

// runOutput starts a run of job, waits for it to succeed and returns its
// log.
func (h *harness) runOutput(job string) []string {
	h.t.Helper()
	r := h.run(job, nil)
	r = h.waitRun(job, r.GetId(), 30*time.Second, concluded)
	if r.GetStatus() != "SUCCESS" {
		h.t.Fatalf("run of %s ended %s (%s)", job, r.GetStatus(), r.GetReason())
	}
	var out []string
	waitFor(h.t, 10*time.Second, "the run's log", func() bool {
		out = h.logs(job, &jobsv1.GetJobLogsRequest{RunId: r.GetId()})
		return len(out) > 0
	})
	for i := range out {
		out[i] = strings.TrimSpace(out[i])
	}
	return out
}

// TestJobsBuildFromGit: a job with a git source keeps it (credentials and
// build arguments write-only, handed to the builds component through the
// internal GetBuildSource), refuses a run until a build of its branch
// succeeded (409 NO_BUILD), then each run runs the newest successful
// build of its branch, announced through the real consumer, on the
// process driver at /app with the build's command or the job's
// customCommand; a deleted build is no longer run; services' builds are
// ignored.
func TestJobsBuildFromGit(t *testing.T) {
	sqltest.EachEngine(t, func(t *testing.T, engine sqldb.Dialect) {
		h := newHarnessOn(t, engine)
		h.consumeBuilds()
		ctx := as(adminCred)

		resp, err := h.client.CreateManualJob(ctx, &jobsv1.CreateManualJobRequest{ProjectId: projectID, Spec: gitJob("Migrate")})
		if err != nil {
			t.Fatal(err)
		}
		j := resp.GetJob()
		if v := j.GetDeployment().GetVcs(); v.GetProjectUrl() != "https://git.example.com/acme/tools.git" || v.GetProjectBranch() != "main" ||
			v.GetPublicRepo() || v.GetCredentials() != nil || j.GetBuildSettings().GetBuildpack() == nil || j.GetDisabledCi() {
			t.Fatalf("created job: %v", j)
		}
		got, err := h.client.GetJob(ctx, &jobsv1.GetJobRequest{ProjectId: projectID, JobId: "migrate"})
		if err != nil || got.GetJob().GetDeployment().GetVcs().GetCredentials() != nil || strings.Contains(got.String(), "s3cret") {
			t.Fatalf("GET job shows its secrets or fails: %v, %v", got, err)
		}

		// Build arguments: write-only through the job, read and replaced
		// through their own routes.
		args, err := h.client.GetJobBuildArguments(ctx, &jobsv1.GetJobBuildArgumentsRequest{ProjectId: projectID, JobId: "migrate"})
		if err != nil || args.GetBuildArguments()["NPM_TOKEN"] != "npm-s3cret" {
			t.Fatalf("GetJobBuildArguments = %v, %v", args, err)
		}
		if _, err := h.client.UpdateJobBuildArguments(ctx, &jobsv1.UpdateJobBuildArgumentsRequest{ProjectId: projectID, JobId: "migrate",
			BuildArguments: map[string]string{"NODE_ENV": "production"}}); err != nil {
			t.Fatal(err)
		}
		details, err := h.client.GetJobBuildArgumentDetails(ctx, &jobsv1.GetJobBuildArgumentDetailsRequest{ProjectId: projectID, JobId: "migrate"})
		if err != nil || len(details.GetBuildArguments()) != 1 || details.GetBuildArguments()["NODE_ENV"].GetValue() != "production" {
			t.Fatalf("GetJobBuildArgumentDetails = %v, %v", details, err)
		}
		// Options and source.
		if _, err := h.client.UpdateJobBuildOptions(ctx, &jobsv1.UpdateJobBuildOptionsRequest{ProjectId: projectID, JobId: "migrate",
			Dockerfile: &deploymentsv1.DockerfileSettings{DockerFilePath: "/Dockerfile", DockerWorkDir: "/"}, CiIgnoreFlagsEnabled: ptr(true)}); err != nil {
			t.Fatal(err)
		}
		if _, err := h.client.UpdateJobBuildSource(ctx, &jobsv1.UpdateJobBuildSourceRequest{ProjectId: projectID, JobId: "migrate",
			ProjectUrl: "https://git.example.com/acme/tools-v2.git"}); err != nil {
			t.Fatal(err)
		}
		src, err := h.client.GetBuildSource(internalCall(), &jobsv1.GetBuildSourceRequest{TeamId: teamID, ProjectId: projectID, JobId: "migrate"})
		if err != nil {
			t.Fatal(err)
		}
		s := src.GetSource()
		if s.GetServiceId() != "migrate" || s.GetServiceType() != "job" || s.GetVcsData().GetProjectUrl() != "https://git.example.com/acme/tools-v2.git" ||
			s.GetVcsData().GetCredentials().GetPassword() != "t0ken-s3cret" || s.GetVcsData().GetPublicRepo() || // same host: kept
			s.GetBuildArguments()["NODE_ENV"] != "production" || s.GetBuildSettings().GetDockerfile().GetDockerFilePath() != "/Dockerfile" ||
			s.GetBuildSettings().GetBuildpack() != nil || !s.GetBuildConfiguration().GetCiIgnoreFlagsEnabled() {
			t.Fatalf("GetBuildSource: %v", s)
		}
		if _, err := h.client.GetBuildSource(ctx, &jobsv1.GetBuildSourceRequest{TeamId: teamID, ProjectId: projectID, JobId: "migrate"}); err == nil {
			t.Fatal("GetBuildSource answered a user's call: it is internal")
		}
		// Moving to another host without new credentials drops them.
		if _, err := h.client.UpdateJobBuildSource(ctx, &jobsv1.UpdateJobBuildSourceRequest{ProjectId: projectID, JobId: "migrate",
			ProjectUrl: "https://elsewhere.example.org/acme/tools.git"}); err != nil {
			t.Fatal(err)
		}
		if src, err := h.client.GetBuildSource(internalCall(), &jobsv1.GetBuildSourceRequest{TeamId: teamID, ProjectId: projectID, JobId: "migrate"}); err != nil ||
			src.GetSource().GetVcsData().GetCredentials() != nil || !src.GetSource().GetVcsData().GetPublicRepo() {
			t.Fatalf("credentials followed the repository to another host: %v, %v", src, err)
		}
		if _, err := h.client.UpdateJobBuildOptions(ctx, &jobsv1.UpdateJobBuildOptionsRequest{ProjectId: projectID, JobId: "migrate",
			Buildpack: &deploymentsv1.BuildpackSettings{BuildContext: "/"}}); err != nil {
			t.Fatal(err)
		}

		// A job without a git source has no build settings, and the poller
		// lists only jobs that build.
		h.manual("Plain", "true")
		_, err = h.client.GetJobBuildArguments(ctx, &jobsv1.GetJobBuildArgumentsRequest{ProjectId: projectID, JobId: "plain"})
		wantCode(t, err, codes.FailedPrecondition, "NOT_FROM_GIT")
		_, err = h.client.GetBuildSource(internalCall(), &jobsv1.GetBuildSourceRequest{TeamId: teamID, ProjectId: projectID, JobId: "plain"})
		wantCode(t, err, codes.FailedPrecondition, "NOT_FROM_GIT")
		list, err := h.client.ListBuildSources(internalCall(), &jobsv1.ListBuildSourcesRequest{})
		if err != nil || len(list.GetSources()) != 1 || list.GetSources()[0].GetServiceId() != "migrate" {
			t.Fatalf("ListBuildSources = %v, %v", list, err)
		}

		// Nothing built yet: a run is refused, saying how to build.
		_, err = h.client.StartJobRun(ctx, &jobsv1.StartJobRunRequest{ProjectId: projectID, JobId: "migrate"})
		wantCode(t, err, codes.FailedPrecondition, "NO_BUILD")

		// A service's build of the same name and a job's build of another
		// branch change nothing; a build of main is run at /app.
		h.publishBuild("succeeded", jobBuild("service", "migrate", "svc-b1", "main", appTree(t, "service"), []string{"/bin/sh", "run.sh"}))
		h.publishBuild("succeeded", jobBuild("job", "migrate", "b-dev", "dev", appTree(t, "dev"), []string{"/bin/sh", "run.sh"}))
		h.publishBuild("succeeded", jobBuild("job", "migrate", "b1", "main", appTree(t, "v1"), []string{"/bin/sh", "run.sh", "cmd"}))
		waitFor(t, 10*time.Second, "build b1 recorded", func() bool {
			_, err := h.store.LatestJobBuild(context.Background(), teamID, projectID, "migrate", "main")
			return err == nil
		})
		if out := h.runOutput("migrate"); !slices.Equal(out, []string{"v1 from /app cmd"}) {
			t.Fatalf("run of build 1 printed %q", out)
		}
		// The next build is the next run's.
		h.publishBuild("succeeded", jobBuild("job", "migrate", "b2", "main", appTree(t, "v2"), []string{"/bin/sh", "run.sh", "cmd"}))
		waitFor(t, 10*time.Second, "build b2 recorded", func() bool {
			b, err := h.store.LatestJobBuild(context.Background(), teamID, projectID, "migrate", "main")
			return err == nil && b.ID == "b2"
		})
		if out := h.runOutput("migrate"); !slices.Equal(out, []string{"v2 from /app cmd"}) {
			t.Fatalf("run of build 2 printed %q", out)
		}
		// The job's customCommand starts the build instead of its command.
		if _, err := h.client.PatchManualJob(ctx, &jobsv1.PatchManualJobRequest{ProjectId: projectID, JobId: "migrate",
			Spec: &jobsv1.JobPatch{Deployment: command("sh run.sh custom")}}); err != nil {
			t.Fatal(err)
		}
		if out := h.runOutput("migrate"); !slices.Equal(out, []string{"v2 from /app custom"}) {
			t.Fatalf("run with customCommand printed %q", out)
		}
		// A deleted build is no longer run: the one before it is.
		h.publishBuild("deleted", jobBuild("job", "migrate", "b2", "main", "", nil))
		waitFor(t, 10*time.Second, "build b2 forgotten", func() bool {
			b, err := h.store.LatestJobBuild(context.Background(), teamID, projectID, "migrate", "main")
			return err == nil && b.ID == "b1"
		})
		if out := h.runOutput("migrate"); !slices.Equal(out, []string{"v1 from /app custom"}) {
			t.Fatalf("run after build 2's deletion printed %q", out)
		}
	})
}

// TestJobBuildSourceBadInput: a git source must be complete and
// consistent.
func TestJobBuildSourceBadInput(t *testing.T) {
	h := newHarness(t)
	ctx := as(adminCred)
	create := func(name string, mutate func(*jobsv1.JobSpec)) error {
		spec := gitJob(name)
		mutate(spec)
		_, err := h.client.CreateManualJob(ctx, &jobsv1.CreateManualJobRequest{ProjectId: projectID, Spec: spec})
		return err
	}
	wantCode(t, create("no-settings", func(s *jobsv1.JobSpec) { s.BuildSettings = nil }), codes.InvalidArgument, "buildSettings")
	wantCode(t, create("no-branch", func(s *jobsv1.JobSpec) { s.Deployment.Vcs.ProjectBranch = "" }), codes.InvalidArgument, "deployment.vcs.projectBranch")
	wantCode(t, create("bad-url", func(s *jobsv1.JobSpec) { s.Deployment.Vcs.ProjectUrl = "ftp://x/y" }), codes.InvalidArgument, "deployment.vcs.projectUrl")
	wantCode(t, create("ssh-password", func(s *jobsv1.JobSpec) { s.Deployment.Vcs.ProjectUrl = "git@git.example.com:acme/tools.git" }),
		codes.InvalidArgument, "deployment.vcs.credentials.password")
	wantCode(t, create("bad-known-hosts", func(s *jobsv1.JobSpec) {
		s.Deployment.Vcs.ProjectUrl = "git@git.example.com:acme/tools.git"
		s.Deployment.Vcs.Credentials = &deploymentsv1.VcsCredentials{PrivateKey: "k", KnownHosts: "git.example.com not-a-key"}
	}), codes.InvalidArgument, "deployment.vcs.credentials.knownHosts")
	wantCode(t, create("and-image", func(s *jobsv1.JobSpec) {
		s.Deployment.External = &jobsv1.ExternalImage{ImagePath: "busybox"}
	}), codes.InvalidArgument, "deployment.external")
	wantCode(t, create("settings-alone", func(s *jobsv1.JobSpec) { s.Deployment.Vcs = nil }), codes.InvalidArgument, "buildSettings")
	_, err := h.client.GetJob(ctx, &jobsv1.GetJobRequest{ProjectId: projectID, JobId: "no-settings"})
	wantCode(t, err, codes.NotFound, "")
}

func ptr[T any](v T) *T { return &v }

// TestJobKnownHosts: a job's knownHosts reach the builds component and
// are never answered; alone they keep the repository public.
func TestJobKnownHosts(t *testing.T) {
	h := newHarness(t)
	ctx := as(adminCred)
	const hosts = "git.example.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
	spec := gitJob("keyed")
	spec.Deployment.Vcs.ProjectUrl = "ssh://git@git.example.com/acme/tools.git"
	spec.Deployment.Vcs.Credentials = &deploymentsv1.VcsCredentials{KnownHosts: hosts}
	created, err := h.client.CreateManualJob(ctx, &jobsv1.CreateManualJobRequest{ProjectId: projectID, Spec: spec})
	if err != nil {
		t.Fatal(err)
	}
	if v := created.GetJob().GetDeployment().GetVcs(); !v.GetPublicRepo() || strings.Contains(created.String(), "AAAAC3NzaC1lZDI1NTE5") {
		t.Fatalf("created %v", created)
	}
	src, err := h.client.GetBuildSource(internalCall(), &jobsv1.GetBuildSourceRequest{TeamId: teamID, ProjectId: projectID, JobId: "keyed"})
	if err != nil || src.GetSource().GetVcsData().GetCredentials().GetKnownHosts() != hosts {
		t.Fatalf("GetBuildSource: %v, %v", src, err)
	}
}

// TestJobsRunServiceBuilds: a job with deployment.internal runs a build
// of a build service of its project, announced through the real
// consumer: the newest of a branch ("latest", refused with 409 NO_BUILD
// until there is one), a commit (prefix) or a build id; a deleted build
// is no longer found. A job cannot both build and run a service's builds.
func TestJobsRunServiceBuilds(t *testing.T) {
	sqltest.EachEngine(t, func(t *testing.T, engine sqldb.Dialect) {
		h := newHarnessOn(t, engine)
		h.consumeBuilds()
		ctx := as(adminCred)
		spec := &jobsv1.JobSpec{Name: "Seed", Deployment: &jobsv1.JobDeployment{
			Internal: &deploymentsv1.InternalSource{Id: "builder", Branch: "main", BuildSha: "latest"}}}
		resp, err := h.client.CreateManualJob(ctx, &jobsv1.CreateManualJobRequest{ProjectId: projectID, Spec: spec})
		if err != nil {
			t.Fatal(err)
		}
		if in := resp.GetJob().GetDeployment().GetInternal(); in.GetId() != "builder" || in.GetBranch() != "main" || in.GetBuildSha() != "latest" {
			t.Fatalf("created job's internal source: %v", in)
		}
		_, err = h.client.StartJobRun(ctx, &jobsv1.StartJobRunRequest{ProjectId: projectID, JobId: "seed"})
		wantCode(t, err, codes.FailedPrecondition, "NO_BUILD")

		sha1, sha2 := "1111111"+strings.Repeat("a", 33), "2222222"+strings.Repeat("b", 33)
		b1 := jobBuild("service", "builder", "s1", "main", appTree(t, "v1"), []string{"/bin/sh", "run.sh"})
		b1["sha"] = sha1
		h.publishBuild("succeeded", b1)
		b2 := jobBuild("service", "builder", "s2", "main", appTree(t, "v2"), []string{"/bin/sh", "run.sh"})
		b2["sha"] = sha2
		// A job's build of the same name is not the service's.
		h.publishBuild("succeeded", jobBuild("job", "builder", "j1", "main", appTree(t, "job"), []string{"/bin/sh", "run.sh"}))
		h.publishBuild("succeeded", b2)
		waitFor(t, 10*time.Second, "build s2 recorded", func() bool {
			b, err := h.store.FindServiceBuild(context.Background(), teamID, projectID, jobs.InternalRef{Service: "builder", Branch: "main"})
			return err == nil && b.ID == "s2"
		})
		if out := h.runOutput("seed"); !slices.Equal(out, []string{"v2 from /app"}) {
			t.Fatalf("run of the latest build printed %q", out)
		}
		for _, in := range []*deploymentsv1.InternalSource{{Id: "builder", BuildSha: sha1[:7]}, {Id: "builder", BuildId: "s1"}} {
			if _, err := h.client.PatchManualJob(ctx, &jobsv1.PatchManualJobRequest{ProjectId: projectID, JobId: "seed",
				Spec: &jobsv1.JobPatch{Deployment: &jobsv1.JobDeployment{Internal: in}}}); err != nil {
				t.Fatal(err)
			}
			if out := h.runOutput("seed"); !slices.Equal(out, []string{"v1 from /app"}) {
				t.Fatalf("run of %v printed %q", in, out)
			}
		}
		h.publishBuild("deleted", jobBuild("service", "builder", "s1", "main", "", nil))
		waitFor(t, 10*time.Second, "build s1 forgotten", func() bool {
			_, err := h.store.FindServiceBuild(context.Background(), teamID, projectID, jobs.InternalRef{Service: "builder", BuildID: "s1"})
			return err != nil
		})
		_, err = h.client.StartJobRun(ctx, &jobsv1.StartJobRunRequest{ProjectId: projectID, JobId: "seed"})
		wantCode(t, err, codes.FailedPrecondition, "NO_BUILD")

		bad := gitJob("Both")
		bad.Deployment.Internal = &deploymentsv1.InternalSource{Id: "builder", Branch: "main", BuildSha: "latest"}
		_, err = h.client.CreateManualJob(ctx, &jobsv1.CreateManualJobRequest{ProjectId: projectID, Spec: bad})
		wantCode(t, err, codes.InvalidArgument, "deployment.internal")
		_, err = h.client.CreateManualJob(ctx, &jobsv1.CreateManualJobRequest{ProjectId: projectID, Spec: &jobsv1.JobSpec{Name: "No Branch",
			Deployment: &jobsv1.JobDeployment{Internal: &deploymentsv1.InternalSource{Id: "builder", BuildSha: "latest"}}}})
		wantCode(t, err, codes.InvalidArgument, "deployment.internal.branch")
	})
}
