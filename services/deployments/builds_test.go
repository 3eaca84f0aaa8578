package deployments_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	deploymentsv1 "github.com/slipwayhq/slipway/gen/slipway/deployments/v1"
	"github.com/slipwayhq/slipway/pkg/authz"
	"github.com/slipwayhq/slipway/pkg/events"
	"github.com/slipwayhq/slipway/pkg/sqldb"
	"github.com/slipwayhq/slipway/pkg/sqldb/sqltest"
	"github.com/slipwayhq/slipway/services/deployments"
)

// internalCall is a context of a call from another Slipway component.
func internalCall() context.Context {
	return metadata.AppendToOutgoingContext(context.Background(), authz.InternalKeyHeader, "internal-key")
}

func builderSpec(name, url string) *deploymentsv1.BuildServiceSpec {
	return &deploymentsv1.BuildServiceSpec{
		Name:          name,
		VcsData:       &deploymentsv1.VcsData{ProjectUrl: url, ProjectType: "self-hosted"},
		BuildSettings: &deploymentsv1.BuildSettings{Buildpack: &deploymentsv1.BuildpackSettings{BuildContext: "/"}},
	}
}

// testKnownHosts is a known_hosts line for git.example.com.
const testKnownHosts = "git.example.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"

// TestBuildServiceKnownHosts: vcsData.credentials.knownHosts is stored
// with the other credentials (GetBuildSource hands it to the builds
// component) and never answered; alone it keeps a repository public.
func TestBuildServiceKnownHosts(t *testing.T) {
	h := newHarnessOn(t, sqldb.SQLite)
	spec := builderSpec("Keyed", "ssh://git@git.example.com/acme/app.git")
	spec.VcsData.Credentials = &deploymentsv1.VcsCredentials{PrivateKey: "-----BEGIN OPENSSH PRIVATE KEY-----\nkey\n", KnownHosts: testKnownHosts}
	created, err := h.client.CreateBuildService(as(adminCred), &deploymentsv1.CreateBuildServiceRequest{ProjectId: projectID, Spec: spec})
	if err != nil {
		t.Fatalf("CreateBuildService: %v %v", err, status.Convert(err).Details())
	}
	if strings.Contains(fmt.Sprint(created), "AAAAC3NzaC1lZDI1NTE5") || created.GetService().GetVcsData().GetPublicRepo() {
		t.Fatalf("created %v", created)
	}
	src, err := h.client.GetBuildSource(internalCall(), &deploymentsv1.GetBuildSourceRequest{TeamId: teamID, ProjectId: projectID, ServiceId: "keyed"})
	if err != nil || src.GetSource().GetVcsData().GetCredentials().GetKnownHosts() != testKnownHosts {
		t.Fatalf("GetBuildSource: %v, %v", src, err)
	}
	got, err := h.client.GetService(as(adminCred), &deploymentsv1.GetServiceRequest{ProjectId: projectID, ServiceId: "keyed"})
	if err != nil || strings.Contains(fmt.Sprint(got), "AAAAC3NzaC1lZDI1NTE5") {
		t.Fatalf("GetService: %v, %v", got, err)
	}

	// Known hosts alone check a public repository's server.
	pub := builderSpec("Public", "git@git.example.com:acme/app.git")
	pub.VcsData.Credentials = &deploymentsv1.VcsCredentials{KnownHosts: testKnownHosts}
	created, err = h.client.CreateBuildService(as(adminCred), &deploymentsv1.CreateBuildServiceRequest{ProjectId: projectID, Spec: pub})
	if err != nil || !created.GetService().GetVcsData().GetPublicRepo() {
		t.Fatalf("CreateBuildService with known hosts alone: %v, %v", created, err)
	}
}

// TestBuildServices: a build service is created, put, patched, listed,
// read and deleted in Northflank's shapes; its credentials are stored
// (GetBuildSource hands them to the builds component) and never answered;
// its build arguments and files, options and source are sub-resources;
// GetBuildSource is internal only.
func TestBuildServices(t *testing.T) {
	sqltest.EachEngine(t, func(t *testing.T, engine sqldb.Dialect) {
		h := newHarnessOn(t, engine)
		spec := builderSpec("App Builder", "https://git.example.com/acme/app.git")
		spec.VcsData.Credentials = &deploymentsv1.VcsCredentials{Username: "bot", Password: "hunter2-token"}
		spec.BuildArguments = map[string]string{"NPM_TOKEN": "npm-s3cret"}
		spec.BuildFiles = map[string]*deploymentsv1.SecretFile{"/app/.npmrc": {Data: "cmVnaXN0cnk9eA==", Encoding: "utf-8"}}
		spec.BuildConfiguration = &deploymentsv1.BuildConfiguration{BranchRestrictions: []string{"main", "release/*"}}
		created, err := h.client.CreateBuildService(as(adminCred), &deploymentsv1.CreateBuildServiceRequest{ProjectId: projectID, Spec: spec})
		if err != nil {
			t.Fatalf("CreateBuildService: %v %v", err, status.Convert(err).Details())
		}
		sv := created.GetService()
		if sv.GetId() != "app-builder" || sv.GetServiceType() != "build" || sv.GetBuildSource() != "git" || sv.GetVcsData().GetPublicRepo() ||
			sv.GetVcsData().GetCredentials() != nil || sv.GetDeployment() != nil || sv.GetBuildSettings().GetBuildpack() == nil ||
			sv.GetBuildConfiguration().GetBranchRestrictions()[1] != "release/*" || sv.GetDisabledCi() {
			t.Fatalf("created %v", sv)
		}
		noSecrets := func(what string, v any) {
			t.Helper()
			for _, secret := range []string{"hunter2-token", "npm-s3cret", "cmVnaXN0cnk9eA"} {
				if strings.Contains(fmt.Sprint(v), secret) {
					t.Fatalf("%s shows a secret: %v", what, v)
				}
			}
		}
		noSecrets("create", created)
		got, err := h.client.GetService(as(adminCred), &deploymentsv1.GetServiceRequest{ProjectId: projectID, ServiceId: "app-builder"})
		if err != nil || got.GetService().GetServiceType() != "build" || got.GetService().GetVcsData().GetPublicRepo() {
			t.Fatalf("GetService: %v, %v", got, err)
		}
		noSecrets("get", got)
		list, err := h.client.ListServices(as(adminCred), &deploymentsv1.ListServicesRequest{ProjectId: projectID})
		if err != nil || len(list.GetServices()) != 1 || list.GetServices()[0].GetServiceType() != "build" {
			t.Fatalf("ListServices: %v, %v", list, err)
		}
		// A build service runs nothing and has no releases.
		if n := len(h.ctl.Instances("acme/web/app-builder")); n != 0 {
			t.Fatalf("a build service runs %d instances", n)
		}

		// Build arguments: readable by who may read secrets, replaced by POST.
		args, err := h.client.GetServiceBuildArguments(as(adminCred), &deploymentsv1.GetServiceBuildArgumentsRequest{ProjectId: projectID, ServiceId: "app-builder"})
		if err != nil || args.GetBuildArguments()["NPM_TOKEN"] != "npm-s3cret" || args.GetBuildFiles()["/app/.npmrc"].GetData() != "cmVnaXN0cnk9eA==" {
			t.Fatalf("GetServiceBuildArguments: %v, %v", args, err)
		}
		if _, err := h.client.UpdateServiceBuildArguments(as(viewerCred), &deploymentsv1.UpdateServiceBuildArgumentsRequest{ProjectId: projectID, ServiceId: "app-builder",
			BuildArguments: map[string]string{"A": "1"}}); status.Code(err) != codes.PermissionDenied {
			t.Fatalf("a viewer updates build arguments: %v", err)
		}
		if _, err := h.client.UpdateServiceBuildArguments(as(adminCred), &deploymentsv1.UpdateServiceBuildArgumentsRequest{ProjectId: projectID, ServiceId: "app-builder",
			BuildArguments: map[string]string{"NODE_ENV": "production"}}); err != nil {
			t.Fatal(err)
		}
		details, err := h.client.GetServiceBuildArgumentDetails(as(adminCred), &deploymentsv1.GetServiceBuildArgumentDetailsRequest{ProjectId: projectID, ServiceId: "app-builder"})
		if err != nil || details.GetBuildArguments()["NODE_ENV"].GetValue() != "production" || len(details.GetBuildArguments()) != 1 || len(details.GetBuildFiles()) != 0 {
			t.Fatalf("details: %v, %v", details, err)
		}

		// Build options switch the engine and set the configuration.
		if _, err := h.client.UpdateServiceBuildOptions(as(adminCred), &deploymentsv1.UpdateServiceBuildOptionsRequest{ProjectId: projectID, ServiceId: "app-builder",
			Dockerfile: &deploymentsv1.DockerfileSettings{DockerFilePath: "/docker/Dockerfile", DockerWorkDir: "/"}, DockerfileTarget: ptr("runtime"),
			CiIgnoreFlagsEnabled: ptr(true), CiIgnoreFlags: []string{"[skip ci]"}}); err != nil {
			t.Fatal(err)
		}
		// Build source changes the repository; new credentials replace the
		// old ones (all of them), and empty ones remove them.
		if _, err := h.client.UpdateServiceBuildSource(as(adminCred), &deploymentsv1.UpdateServiceBuildSourceRequest{ProjectId: projectID, ServiceId: "app-builder",
			ProjectUrl: "git@git.example.com:acme/app.git", Credentials: &deploymentsv1.VcsCredentials{PrivateKey: "-----BEGIN OPENSSH PRIVATE KEY-----\nkey\n"}}); err != nil {
			t.Fatal(err)
		}
		src, err := h.client.GetBuildSource(internalCall(), &deploymentsv1.GetBuildSourceRequest{TeamId: teamID, ProjectId: projectID, ServiceId: "app-builder"})
		if err != nil {
			t.Fatal(err)
		}
		s := src.GetSource()
		if s.GetServiceType() != "build" || s.GetVcsData().GetProjectUrl() != "git@git.example.com:acme/app.git" || s.GetVcsData().GetCredentials().GetUsername() != "" || s.GetVcsData().GetCredentials().GetPassword() != "" ||
			!strings.HasPrefix(s.GetVcsData().GetCredentials().GetPrivateKey(), "-----BEGIN") || s.GetBuildArguments()["NODE_ENV"] != "production" ||
			s.GetBuildSettings().GetDockerfile().GetDockerFilePath() != "/docker/Dockerfile" || s.GetBuildSettings().GetBuildpack() != nil ||
			s.GetBuildConfiguration().GetDockerfileTarget() != "runtime" || !s.GetBuildConfiguration().GetCiIgnoreFlagsEnabled() ||
			s.GetBuildConfiguration().GetBranchRestrictions()[0] != "main" {
			t.Fatalf("GetBuildSource: %v", s)
		}
		// Credentials are write-only: a put without them keeps them while
		// the repository stays on its server; moving it to another server
		// without new ones drops them.
		keep := builderSpec("App Builder", "ssh://git@git.example.com/acme/app.git")
		if p, err := h.client.PutBuildService(as(adminCred), &deploymentsv1.PutBuildServiceRequest{ProjectId: projectID, Spec: keep}); err != nil || p.GetService().GetVcsData().GetPublicRepo() {
			t.Fatalf("put without credentials: %v, %v", p, err)
		}
		if src, err := h.client.GetBuildSource(internalCall(), &deploymentsv1.GetBuildSourceRequest{TeamId: teamID, ProjectId: projectID, ServiceId: "app-builder"}); err != nil ||
			src.GetSource().GetVcsData().GetCredentials().GetPrivateKey() == "" {
			t.Fatalf("the credentials did not survive a put without them: %v, %v", src, err)
		}
		if _, err := h.client.UpdateServiceBuildSource(as(adminCred), &deploymentsv1.UpdateServiceBuildSourceRequest{ProjectId: projectID, ServiceId: "app-builder",
			ProjectUrl: "https://elsewhere.example.org/acme/app.git"}); err != nil {
			t.Fatal(err)
		}
		if src, err := h.client.GetBuildSource(internalCall(), &deploymentsv1.GetBuildSourceRequest{TeamId: teamID, ProjectId: projectID, ServiceId: "app-builder"}); err != nil ||
			src.GetSource().GetVcsData().GetCredentials() != nil || !src.GetSource().GetVcsData().GetPublicRepo() {
			t.Fatalf("credentials followed the repository to another server: %v, %v", src, err)
		}
		if _, err := h.client.UpdateServiceBuildSource(as(adminCred), &deploymentsv1.UpdateServiceBuildSourceRequest{ProjectId: projectID, ServiceId: "app-builder",
			Credentials: &deploymentsv1.VcsCredentials{Username: "bot", Password: "t"}}); err != nil {
			t.Fatal(err)
		}
		// Patch: description, CI off, credentials removed.
		patched, err := h.client.PatchBuildService(as(adminCred), &deploymentsv1.PatchBuildServiceRequest{ProjectId: projectID, ServiceId: "app-builder",
			Spec: &deploymentsv1.BuildServicePatch{Description: ptr("builds the app"), DisabledCi: ptr(true),
				VcsData: &deploymentsv1.VcsDataPatch{ProjectUrl: "https://git.example.com/acme/app.git", Credentials: &deploymentsv1.VcsCredentials{}}}})
		if err != nil || patched.GetService().GetDescription() != "builds the app" || !patched.GetService().GetDisabledCi() || !patched.GetService().GetVcsData().GetPublicRepo() {
			t.Fatalf("PatchBuildService: %v, %v", patched, err)
		}
		// Put replaces the settings of the service with the same id.
		put := builderSpec("App Builder", "file:///srv/git/app.git")
		if p, err := h.client.PutBuildService(as(adminCred), &deploymentsv1.PutBuildServiceRequest{ProjectId: projectID, Spec: put}); err != nil ||
			p.GetService().GetVcsData().GetProjectUrl() != "file:///srv/git/app.git" || p.GetService().GetDescription() != "" {
			t.Fatalf("PutBuildService: %v, %v", p, err)
		}

		// GetBuildSource is internal: a user's token is refused, whatever
		// its role; a deployment service does not build.
		if _, err := h.client.GetBuildSource(as(adminCred), &deploymentsv1.GetBuildSourceRequest{TeamId: teamID, ProjectId: projectID, ServiceId: "app-builder"}); status.Code(err) != codes.PermissionDenied {
			t.Fatalf("GetBuildSource with a user token: %v, want PermissionDenied", err)
		}
		h.create(webApp("plain", "x"))
		_, err = h.client.GetBuildSource(internalCall(), &deploymentsv1.GetBuildSourceRequest{TeamId: teamID, ProjectId: projectID, ServiceId: "plain"})
		wantCode(t, err, codes.FailedPrecondition, "SERVICE_TYPE_MISMATCH")
		if !strings.Contains(status.Convert(err).Message(), "service plain does not build; only build and combined services do") {
			t.Fatalf("message %q", status.Convert(err).Message())
		}
		// ListBuildSources pages through build and combined services only.
		for i := range 2 {
			if _, err := h.client.CreateBuildService(as(adminCred), &deploymentsv1.CreateBuildServiceRequest{ProjectId: projectID,
				Spec: builderSpec(fmt.Sprintf("more %d", i), "https://git.example.com/acme/more.git")}); err != nil {
				t.Fatal(err)
			}
		}
		var ids []string
		token := ""
		for {
			page, err := h.client.ListBuildSources(internalCall(), &deploymentsv1.ListBuildSourcesRequest{TeamId: teamID, PageSize: 2, PageToken: token})
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range page.GetSources() {
				ids = append(ids, s.GetServiceId())
			}
			if token = page.GetNextPageToken(); token == "" {
				break
			}
		}
		if fmt.Sprint(ids) != "[app-builder more-0 more-1]" {
			t.Fatalf("ListBuildSources: %v", ids)
		}
		if _, err := h.client.ListBuildSources(as(adminCred), &deploymentsv1.ListBuildSourcesRequest{}); status.Code(err) != codes.PermissionDenied {
			t.Fatalf("ListBuildSources with a user token: %v", err)
		}

		// Delete.
		if _, err := h.client.DeleteService(as(adminCred), &deploymentsv1.DeleteServiceRequest{ProjectId: projectID, ServiceId: "app-builder"}); err != nil {
			t.Fatal(err)
		}
		if _, err := h.client.GetService(as(adminCred), &deploymentsv1.GetServiceRequest{ProjectId: projectID, ServiceId: "app-builder"}); status.Code(err) != codes.NotFound {
			t.Fatalf("GetService after delete: %v", err)
		}
	})
}

// TestBuildServiceBadInput: malformed repositories, credentials that do
// not fit the URL, bad or oversized build arguments are clear 400s.
func TestBuildServiceBadInput(t *testing.T) {
	h := newHarness(t)
	create := func(mutate func(*deploymentsv1.BuildServiceSpec)) error {
		spec := builderSpec("bad builder", "https://git.example.com/a/b")
		mutate(spec)
		_, err := h.client.CreateBuildService(as(adminCred), &deploymentsv1.CreateBuildServiceRequest{ProjectId: projectID, Spec: spec})
		return err
	}
	url := func(u string) func(*deploymentsv1.BuildServiceSpec) {
		return func(s *deploymentsv1.BuildServiceSpec) { s.VcsData.ProjectUrl = u }
	}
	for _, c := range []struct {
		name   string
		mutate func(*deploymentsv1.BuildServiceSpec)
		detail string
	}{
		{"no scheme", url("git.example.com/a/b"), "vcsData.projectUrl"},
		{"ftp", url("ftp://git.example.com/a/b"), "vcsData.projectUrl"},
		{"ext transport", url("ext::sh -c touch% /tmp/pwned"), "vcsData.projectUrl"},
		{"an option", url("--upload-pack=touch /tmp/pwned"), "vcsData.projectUrl"},
		{"https without a path", url("https://git.example.com/"), "vcsData.projectUrl"},
		{"a password in the URL", url("https://bot:token@git.example.com/a/b"), "vcsData.projectUrl"},
		{"a relative file URL", url("file://repo.git"), "vcsData.projectUrl"},
		{"a file URL with ..", url("file:///srv/../etc/repo"), "vcsData.projectUrl"},
		{"spaces", url("https://git.example.com/a b"), "vcsData.projectUrl"},
		{"no project type", func(s *deploymentsv1.BuildServiceSpec) { s.VcsData.ProjectType = "" }, "vcsData.projectType"},
		{"no engine", func(s *deploymentsv1.BuildServiceSpec) { s.BuildSettings = &deploymentsv1.BuildSettings{} }, "buildSettings"},
		{"both engines", func(s *deploymentsv1.BuildServiceSpec) {
			s.BuildSettings.Dockerfile = &deploymentsv1.DockerfileSettings{DockerFilePath: "/Dockerfile"}
		}, "buildSettings"},
		{"an SSH key for https", func(s *deploymentsv1.BuildServiceSpec) {
			s.VcsData.Credentials = &deploymentsv1.VcsCredentials{PrivateKey: "key"}
		}, "vcsData.credentials.privateKey"},
		{"a password for ssh", func(s *deploymentsv1.BuildServiceSpec) {
			s.VcsData.ProjectUrl, s.VcsData.Credentials = "git@git.example.com:a/b.git", &deploymentsv1.VcsCredentials{Password: "p"}
		}, "vcsData.credentials.password"},
		{"known hosts for https", func(s *deploymentsv1.BuildServiceSpec) {
			s.VcsData.Credentials = &deploymentsv1.VcsCredentials{KnownHosts: testKnownHosts}
		}, "vcsData.credentials.knownHosts"},
		{"malformed known hosts", func(s *deploymentsv1.BuildServiceSpec) {
			s.VcsData.ProjectUrl, s.VcsData.Credentials = "git@git.example.com:a/b.git", &deploymentsv1.VcsCredentials{PrivateKey: "k", KnownHosts: testKnownHosts + "\nssh-ed25519 not-base64"}
		}, "vcsData.credentials.knownHosts"},
		{"a build argument key with a dash", func(s *deploymentsv1.BuildServiceSpec) { s.BuildArguments = map[string]string{"NODE-ENV": "x"} }, "buildArguments"},
		{"oversized build arguments", func(s *deploymentsv1.BuildServiceSpec) {
			s.BuildArguments = map[string]string{}
			for i := range 10 {
				s.BuildArguments[fmt.Sprintf("BIG_%d", i)] = strings.Repeat("x", 60<<10)
			}
		}, "buildArguments"},
		{"a relative build file", func(s *deploymentsv1.BuildServiceSpec) {
			s.BuildFiles = map[string]*deploymentsv1.SecretFile{"app/.npmrc": {Data: "eA=="}}
		}, "buildFiles"},
		{"a build file outside with ..", func(s *deploymentsv1.BuildServiceSpec) {
			s.BuildFiles = map[string]*deploymentsv1.SecretFile{"/app/../etc/passwd": {Data: "eA=="}}
		}, "buildFiles"},
		{"a build file that is not base64", func(s *deploymentsv1.BuildServiceSpec) {
			s.BuildFiles = map[string]*deploymentsv1.SecretFile{"/app/.npmrc": {Data: "not base64!"}}
		}, "buildFiles"},
		{"an unknown build plan", func(s *deploymentsv1.BuildServiceSpec) { s.Billing = &deploymentsv1.Billing{BuildPlan: "huge"} }, "billing.buildPlan"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := create(c.mutate)
			wantCode(t, err, codes.InvalidArgument, "")
			if d := fmt.Sprint(status.Convert(err).Details()); !strings.Contains(d, c.detail) {
				t.Fatalf("err = %v (%s), want a detail about %q", err, d, c.detail)
			}
		})
	}
	// Accepted forms of a repository.
	for i, u := range []string{"https://git.example.com/a/b", "http://127.0.0.1:3000/a/b.git", "ssh://git@git.example.com:2222/a/b.git",
		"git@github.com:acme/app.git", "file:///srv/git/app.git"} {
		if err := create(func(s *deploymentsv1.BuildServiceSpec) { s.Name = fmt.Sprintf("good %d", i); s.VcsData.ProjectUrl = u }); err != nil {
			t.Errorf("%s refused: %v", u, err)
		}
	}
	// Oversized arguments through the sub-resource too.
	big := map[string]string{}
	for i := range 10 {
		big[fmt.Sprintf("BIG_%d", i)] = strings.Repeat("x", 60<<10)
	}
	_, err := h.client.UpdateServiceBuildArguments(as(adminCred), &deploymentsv1.UpdateServiceBuildArgumentsRequest{ProjectId: projectID, ServiceId: "good-0", BuildArguments: big})
	wantCode(t, err, codes.InvalidArgument, "buildArguments")
	// A combined service needs its branch.
	spec := webApp("no branch", "x")
	spec.Deployment.Docker = nil
	spec.VcsData = &deploymentsv1.VcsData{ProjectUrl: "https://git.example.com/a/b", ProjectType: "github"}
	spec.BuildSettings = &deploymentsv1.BuildSettings{Dockerfile: &deploymentsv1.DockerfileSettings{DockerFilePath: "/Dockerfile"}}
	_, err = h.client.CreateCombinedService(as(adminCred), &deploymentsv1.CreateCombinedServiceRequest{ProjectId: projectID, Spec: spec})
	wantCode(t, err, codes.InvalidArgument, "vcsData.projectBranch")
}

// buildEvents publishes builds.build.* events the way the builds
// component's relay does, and runs the deployments-builds consumer.
type buildEvents struct {
	t  *testing.T
	js jetstream.JetStream
}

func (h *harness) consumeBuilds() *buildEvents {
	h.t.Helper()
	js, err := jetstream.New(h.nc)
	if err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.t.Cleanup(cancel)
	if err := events.EnsureStream(ctx, js); err != nil {
		h.t.Fatal(err)
	}
	stop, err := events.Consume(ctx, js, events.ConsumerConfig{Durable: deployments.BuildsConsumer, Subjects: deployments.BuildSubjects, Logger: quiet},
		func(ctx context.Context, ev events.Event) error { return h.svc.BuildHandler()(ctx, ev) })
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(stop)
	return &buildEvents{t: h.t, js: js}
}

// publish sends builds.build.<verb> of a build of service.
func (b *buildEvents) publish(verb, service, build, branch, sha, path string, command []string) {
	b.t.Helper()
	b.publishData(verb, service, build, map[string]any{
		"teamId": teamID, "projectId": projectID, "kind": "service", "serviceId": service, "buildId": build, "branch": branch, "sha": sha,
		"status": "SUCCESS", "concludedAt": time.Now().UTC().Format(time.RFC3339Nano),
		"artifact": map[string]any{"path": path, "command": command, "stack": "static"},
	})
}

// publishData sends builds.build.<verb> with data as it is.
func (b *buildEvents) publishData(verb, service, build string, data map[string]any) {
	b.t.Helper()
	ev, err := events.New("builds", "build", verb, teamID+"/"+projectID+"/"+service+"/"+build, data)
	if err != nil {
		b.t.Fatal(err)
	}
	raw, err := json.Marshal(ev)
	if err != nil {
		b.t.Fatal(err)
	}
	if _, err := b.js.Publish(context.Background(), ev.NATSSubject(), raw, jetstream.WithMsgID(ev.ID)); err != nil {
		b.t.Fatal(err)
	}
}

// artifact makes a process-driver artifact: an app tree whose www
// serves body at / and "ok" at /healthz.
func artifact(t *testing.T, body string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "app")
	if err := os.MkdirAll(filepath.Join(dir, "www"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string]string{"www/index.html": body + "\n", "www/healthz": "ok\n",
		"start.sh": "#!/bin/sh\necho \"serving " + body + " from $(pwd)\"\nexec busybox httpd -f -p \"$PORT\" -h www\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// The workload's unprivileged user reads the tree through the mount.
	for p := dir; p != "/" && p != os.TempDir(); p = filepath.Dir(p) {
		_ = os.Chmod(p, 0o755)
	}
	return dir
}

const (
	sha1 = "1111111aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	sha2 = "2222222bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	sha3 = "3333333ccccccccccccccccccccccccccccccccc"
)

// TestInternalLatestFollowsTheBranch: a deployment service deploying a
// build service's latest build of main waits (PENDING, no instance) until
// a build exists, rolls out each later build of main (published as the
// builds component publishes it, through the real consumer) and ignores
// other branches; the process driver runs the artifact at /app with its
// command; an older build is deployed again by rollback or by buildId
// until its artifact is deleted.
func TestInternalLatestFollowsTheBranch(t *testing.T) {
	sqltest.EachEngine(t, func(t *testing.T, engine sqldb.Dialect) {
		h := newHarnessOn(t, engine)
		evs := h.consumeBuilds()
		if _, err := h.client.CreateBuildService(as(adminCred), &deploymentsv1.CreateBuildServiceRequest{ProjectId: projectID,
			Spec: builderSpec("builder", "file:///srv/git/app.git")}); err != nil {
			t.Fatal(err)
		}
		spec := webApp("web", "")
		spec.Deployment.Docker = nil
		spec.Deployment.Internal = &deploymentsv1.InternalSource{Id: "builder", Branch: "main", BuildSha: "latest"}
		sv := h.create(spec)
		in := sv.GetDeployment().GetInternal()
		if in.GetNfObjectId() != "builder" || in.GetNfObjectType() != "service" || in.GetRepository() != "file:///srv/git/app.git" ||
			in.GetBranch() != "main" || in.GetBuildSha() != "latest" || in.GetDeployedSha() != "" || sv.GetStatus().GetDeployment().GetStatus() != "PENDING" {
			t.Fatalf("before any build: %v", sv.GetDeployment())
		}
		time.Sleep(300 * time.Millisecond)
		if n := len(h.ctl.Instances("acme/web/web")); n != 0 {
			t.Fatalf("%d instances before any build", n)
		}

		command := []string{"/bin/sh", "start.sh"} // relative: it runs in /app
		evs.publish("succeeded", "builder", "b1", "main", sha1, artifact(t, "v1"), command)
		h.waitStatus("web", "r000002", "COMPLETED")
		host := "p01--web--web.localhost"
		if code, body := h.get(host, "/"); code != 200 || body != "v1" {
			t.Fatalf("build 1: %d %q", code, body)
		}
		g, _ := h.client.GetService(as(adminCred), &deploymentsv1.GetServiceRequest{ProjectId: projectID, ServiceId: "web"})
		if in := g.GetService().GetDeployment().GetInternal(); in.GetDeployedSha() != sha1 || in.GetBuildSha() != "latest" || in.GetDeployedBuildId() != "b1" {
			t.Fatalf("GET service after build 1: %v", in)
		}
		eventually(t, "the instance said where it runs", func() bool {
			logs, err := h.client.GetServiceLogs(as(adminCred), &deploymentsv1.GetServiceLogsRequest{ProjectId: projectID, ServiceId: "web"})
			return err == nil && len(logs.GetLines()) > 0 && logs.GetLines()[0].GetLog() == "serving v1 from /app"
		})

		// Another branch's build changes nothing; main's next build rolls out.
		evs.publish("succeeded", "builder", "b-dev", "dev", sha3, artifact(t, "dev"), command)
		evs.publish("succeeded", "builder", "b2", "main", sha2, artifact(t, "v2"), command)
		h.waitStatus("web", "r000003", "COMPLETED")
		if code, body := h.get(host, "/"); code != 200 || body != "v2" {
			t.Fatalf("build 2: %d %q", code, body)
		}
		rels, err := h.client.ListServiceReleases(as(adminCred), &deploymentsv1.ListServiceReleasesRequest{ProjectId: projectID, ServiceId: "web"})
		if err != nil || len(rels.GetReleases()) != 3 {
			t.Fatalf("releases %v, %v", rels, err)
		}
		r3, r2 := rels.GetReleases()[0], rels.GetReleases()[1]
		if r3.GetCause() != "build" || r3.GetDeployment().GetInternal().GetBuildId() != "b2" || r3.GetDeployment().GetInternal().GetSha() != sha2 ||
			r2.GetDeployment().GetInternal().GetBuildId() != "b1" || r3.GetCreatedBy() != "build:b2" {
			t.Fatalf("releases %v", rels.GetReleases())
		}

		// Rollback to build 1, then deploy build 2 by commit prefix.
		if _, err := h.client.RollbackServiceRelease(as(adminCred), &deploymentsv1.RollbackServiceReleaseRequest{ProjectId: projectID, ServiceId: "web", ReleaseId: "r000002"}); err != nil {
			t.Fatal(err)
		}
		h.waitStatus("web", "r000004", "COMPLETED")
		if code, body := h.get(host, "/"); code != 200 || body != "v1" {
			t.Fatalf("after the rollback to build 1: %d %q", code, body)
		}
		if _, err := h.client.UpdateServiceDeployment(as(adminCred), &deploymentsv1.UpdateServiceDeploymentRequest{ProjectId: projectID, ServiceId: "web",
			Internal: &deploymentsv1.InternalSource{Id: "builder", BuildSha: sha2[:7]}}); err != nil {
			t.Fatal(err)
		}
		h.waitStatus("web", "r000005", "COMPLETED")
		if code, body := h.get(host, "/"); code != 200 || body != "v2" {
			t.Fatalf("build 2 by commit: %d %q", code, body)
		}

		// Build 1's artifact is deleted: it can no longer be rolled back
		// to or deployed.
		evs.publish("deleted", "builder", "b1", "main", sha1, "", nil)
		eventually(t, "build 1 deleted", func() bool {
			b, err := h.store.GetBuild(context.Background(), teamID, projectID, "builder", "b1")
			return err == nil && b.Deleted
		})
		_, err = h.client.RollbackServiceRelease(as(adminCred), &deploymentsv1.RollbackServiceReleaseRequest{ProjectId: projectID, ServiceId: "web", ReleaseId: "r000002"})
		wantCode(t, err, codes.FailedPrecondition, "BUILD_DELETED")
		_, err = h.client.UpdateServiceDeployment(as(adminCred), &deploymentsv1.UpdateServiceDeploymentRequest{ProjectId: projectID, ServiceId: "web",
			Internal: &deploymentsv1.InternalSource{Id: "builder", BuildId: "b1"}})
		wantCode(t, err, codes.FailedPrecondition, "BUILD_DELETED")
		_, err = h.client.UpdateServiceDeployment(as(adminCred), &deploymentsv1.UpdateServiceDeploymentRequest{ProjectId: projectID, ServiceId: "web",
			Internal: &deploymentsv1.InternalSource{Id: "builder", BuildSha: "abcdef0"}})
		wantCode(t, err, codes.NotFound, "")
		d := h.waitStatus("web", "r000005", "COMPLETED")
		if d.GetInternal().GetDeployedSha() != sha2 {
			t.Fatalf("refused changes changed the deployment: %v", d)
		}
	})
}

// TestJobBuildsAreNotDeployable: the consumer of builds events ignores a
// job's builds (kind "job"), even one whose job has the id of a build
// service that a deployment follows: a job's build is the jobs service's
// to run, not a deployable build.
func TestJobBuildsAreNotDeployable(t *testing.T) {
	sqltest.EachEngine(t, func(t *testing.T, engine sqldb.Dialect) {
		h := newHarnessOn(t, engine)
		evs := h.consumeBuilds()
		if _, err := h.client.CreateBuildService(as(adminCred), &deploymentsv1.CreateBuildServiceRequest{ProjectId: projectID,
			Spec: builderSpec("builder", "file:///srv/git/app.git")}); err != nil {
			t.Fatal(err)
		}
		spec := webApp("web", "")
		spec.Deployment.Docker = nil
		spec.Deployment.Internal = &deploymentsv1.InternalSource{Id: "builder", Branch: "main", BuildSha: "latest"}
		h.create(spec)
		// A job named like the build service built main. The serviceId is
		// set too: the kind decides, not the field's absence.
		evs.publishData("succeeded", "builder", "job-b1", map[string]any{
			"teamId": teamID, "projectId": projectID, "kind": "job", "jobId": "builder", "serviceId": "builder", "buildId": "job-b1",
			"branch": "main", "sha": sha1, "status": "SUCCESS", "concludedAt": time.Now().UTC().Format(time.RFC3339Nano),
			"artifact": map[string]any{"path": artifact(t, "job"), "command": []string{"/bin/sh", "start.sh"}},
		})
		// A later service build of another branch: once it is recorded,
		// the job's (delivered before it) has been handled.
		evs.publish("succeeded", "builder", "b-dev", "dev", sha3, artifact(t, "dev"), []string{"/bin/sh", "start.sh"})
		eventually(t, "the service's build recorded", func() bool {
			_, err := h.store.GetBuild(context.Background(), teamID, projectID, "builder", "b-dev")
			return err == nil
		})
		if _, err := h.store.GetBuild(context.Background(), teamID, projectID, "builder", "job-b1"); !errors.Is(err, deployments.ErrNotFound) {
			t.Fatalf("the job's build was recorded as deployable: %v", err)
		}
		if n := len(h.ctl.Instances("acme/web/web")); n != 0 {
			t.Fatalf("%d instances: a job's build was deployed", n)
		}
	})
}

// TestCombinedServiceDeploysItsBuilds: a combined service deploys its own
// builds of its branch; a build with no start command and no
// customCommand fails its release with the reason; customCommand starts
// it.
func TestCombinedServiceDeploysItsBuilds(t *testing.T) {
	h := newHarness(t)
	evs := h.consumeBuilds()
	spec := webApp("full", "")
	spec.Deployment.Docker = nil
	spec.VcsData = &deploymentsv1.VcsData{ProjectUrl: "file:///srv/git/full.git", ProjectType: "self-hosted", ProjectBranch: "main"}
	spec.BuildSettings = &deploymentsv1.BuildSettings{Buildpack: &deploymentsv1.BuildpackSettings{}}
	if _, err := h.client.CreateCombinedService(as(adminCred), &deploymentsv1.CreateCombinedServiceRequest{ProjectId: projectID, Spec: spec}); err != nil {
		t.Fatal(err)
	}
	evs.publish("succeeded", "full", "c1", "main", sha1, artifact(t, "c1"), nil)
	d := h.waitStatus("full", "r000002", "FAILED")
	if !strings.Contains(d.GetStatus().GetMessage(), "no start command") {
		t.Fatalf("a build without a command: %v", d.GetStatus())
	}
	if _, err := h.client.UpdateServiceDeployment(as(adminCred), &deploymentsv1.UpdateServiceDeploymentRequest{ProjectId: projectID, ServiceId: "full",
		Docker: &deploymentsv1.DockerOverrides{ConfigType: "customCommand", CustomCommand: "exec busybox httpd -f -p \"$PORT\" -h www"}}); err != nil {
		t.Fatal(err)
	}
	h.waitStatus("full", "r000003", "COMPLETED")
	if code, body := h.get("p01--full--web.localhost", "/"); code != 200 || body != "c1" {
		t.Fatalf("combined service: %d %q", code, body)
	}
	g, _ := h.client.GetService(as(adminCred), &deploymentsv1.GetServiceRequest{ProjectId: projectID, ServiceId: "full"})
	if in := g.GetService().GetDeployment().GetInternal(); in.GetNfObjectId() != "full" || in.GetDeployedSha() != sha1 {
		t.Fatalf("GET combined service: %v", in)
	}
}
