package deployments

import (
	"slices"
	"strings"
	"testing"

	"github.com/slipwayhq/slipway/pkg/catalog"
	"github.com/slipwayhq/slipway/pkg/overrides"
	"github.com/slipwayhq/slipway/pkg/runtime"
)

// TestBuildWorkloads: what a release of a build runs on each driver. The
// process driver's path is exercised end to end by the service tests;
// this pins the docker driver's (the built image, with the overrides) and
// the refusals no test machine without an engine reaches.
func TestBuildWorkloads(t *testing.T) {
	cat, err := catalog.Load("")
	if err != nil {
		t.Fatal(err)
	}
	build := &BuildRef{Service: "builder", ID: "b1", SHA: "abc1234", Image: "localhost/slipway/web/builder:abc1234-b1",
		Path: "/data/builds/artifacts/b1/app", Command: []string{"node", "server.js"}}
	sv := Service{TeamID: "acme", ProjectID: "web", ID: "api", Kind: KindDeployment, Instances: 1,
		Internal: &Internal{ID: "builder", Branch: "main", BuildSHA: Latest}, Deployable: Deployable{Build: build}}

	docker := &Server{opts: Options{Driver: "docker", Catalog: cat}}
	spec := docker.toRollout(sv).Release.Workload
	if spec.Image != build.Image || spec.Command != nil || spec.Mounts != nil || spec.WorkDir != "" {
		t.Errorf("docker: %+v", spec)
	}
	sv.Deployable.Overrides = overrides.Overrides{ConfigType: overrides.Command, CustomCommand: "npm run serve"}
	if spec := docker.toRollout(sv).Release.Workload; spec.Image != build.Image || !slices.Equal(spec.Command, []string{"npm", "run", "serve"}) {
		t.Errorf("docker with customCommand: %+v", spec)
	}

	process := &Server{opts: Options{Driver: "process", Catalog: cat}}
	sv.Deployable.Overrides = overrides.Overrides{}
	spec = process.toRollout(sv).Release.Workload
	if spec.Image != "" || !slices.Equal(spec.Command, build.Command) || spec.WorkDir != "/app" ||
		!slices.Equal(spec.Mounts, []runtime.Mount{{Source: build.Path, Target: "/app", ReadOnly: true}}) {
		t.Errorf("process: %+v", spec)
	}

	for _, c := range []struct {
		driver string
		build  BuildRef
		want   string
	}{
		{"process", BuildRef{ID: "b2", Image: "img"}, "no app tree"},
		{"process", BuildRef{ID: "b3", Path: "/p"}, "no start command"},
		{"docker", BuildRef{ID: "b4", Path: "/p", Command: []string{"x"}}, "no image"},
		{"process", BuildRef{ID: "b5", Path: "/p", Command: []string{"x"}}, ""},
	} {
		sv.Deployable.Build = &c.build
		s := &Server{opts: Options{Driver: c.driver, Catalog: cat}}
		if got := s.unrunnable(sv); (c.want == "") != (got == "") || !strings.Contains(got, c.want) {
			t.Errorf("%s, %+v: unrunnable = %q, want %q", c.driver, c.build, got, c.want)
		}
	}
}
