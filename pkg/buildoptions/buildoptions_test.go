package buildoptions_test

import (
	"errors"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	deploymentsv1 "github.com/slipwayhq/slipway/gen/slipway/deployments/v1"
	"github.com/slipwayhq/slipway/pkg/apierr"
	"github.com/slipwayhq/slipway/pkg/buildoptions"
)

func ptr[T any](v T) *T { return &v }

// stored is a fully configured workload: every case starts from it, so a
// field a request does not name must come out unchanged.
func stored() (*deploymentsv1.BuildSettings, *deploymentsv1.BuildConfiguration) {
	disk := &deploymentsv1.BuildStorage{EphemeralStorage: &deploymentsv1.EphemeralStorage{StorageSize: 16384}}
	return &deploymentsv1.BuildSettings{
			Storage:    disk,
			Dockerfile: &deploymentsv1.DockerfileSettings{DockerFilePath: "/Dockerfile", DockerWorkDir: "/"},
		}, &deploymentsv1.BuildConfiguration{
			PathIgnoreRules: []string{"docs/**"}, IsAllowList: true, CiIgnoreFlagsEnabled: true, CiIgnoreFlags: []string{"[skip ci]"},
			DockerfileTarget: "runtime", DockerCredentials: []string{"registry"}, IncludeGitFolder: true, FullGitClone: true,
			EnableGitLfs: true, Storage: disk, PrRestrictions: []string{"feature/*"}, BranchRestrictions: []string{"main"},
		}
}

func TestMerge(t *testing.T) {
	for _, c := range []struct {
		name string
		req  buildoptions.Request
		// want changes the stored values into the expected ones.
		want func(*deploymentsv1.BuildSettings, *deploymentsv1.BuildConfiguration)
	}{
		{"nothing given keeps everything", buildoptions.Request{}, func(*deploymentsv1.BuildSettings, *deploymentsv1.BuildConfiguration) {}},
		{"empty lists keep the stored lists", buildoptions.Request{PathIgnoreRules: []string{}, CiIgnoreFlags: []string{}, BranchRestrictions: []string{}},
			func(*deploymentsv1.BuildSettings, *deploymentsv1.BuildConfiguration) {}},
		{"buildpack replaces the dockerfile", buildoptions.Request{Buildpack: &deploymentsv1.BuildpackSettings{BuildContext: "/app"}},
			func(s *deploymentsv1.BuildSettings, _ *deploymentsv1.BuildConfiguration) {
				s.Dockerfile, s.Buildpack = nil, &deploymentsv1.BuildpackSettings{BuildContext: "/app"}
			}},
		{"dockerfile replaces the dockerfile", buildoptions.Request{Dockerfile: &deploymentsv1.DockerfileSettings{DockerFilePath: "/web/Dockerfile", DockerWorkDir: "/web"}},
			func(s *deploymentsv1.BuildSettings, _ *deploymentsv1.BuildConfiguration) {
				s.Dockerfile = &deploymentsv1.DockerfileSettings{DockerFilePath: "/web/Dockerfile", DockerWorkDir: "/web"}
			}},
		{"storage goes to both", buildoptions.Request{Storage: &deploymentsv1.BuildStorage{EphemeralStorage: &deploymentsv1.EphemeralStorage{StorageSize: 32768}}},
			func(s *deploymentsv1.BuildSettings, c *deploymentsv1.BuildConfiguration) {
				s.Storage = &deploymentsv1.BuildStorage{EphemeralStorage: &deploymentsv1.EphemeralStorage{StorageSize: 32768}}
				c.Storage = s.Storage
			}},
		{"lists given replace the stored lists", buildoptions.Request{
			PrRestrictions: []string{"*"}, BranchRestrictions: []string{"release/*", "main"}, PathIgnoreRules: []string{"*.md"},
			CiIgnoreFlags: []string{"[no build]"}, DockerCredentials: []string{"ghcr"},
		}, func(_ *deploymentsv1.BuildSettings, c *deploymentsv1.BuildConfiguration) {
			c.PrRestrictions, c.BranchRestrictions, c.PathIgnoreRules = []string{"*"}, []string{"release/*", "main"}, []string{"*.md"}
			c.CiIgnoreFlags, c.DockerCredentials = []string{"[no build]"}, []string{"ghcr"}
		}},
		{"false and empty given clear", buildoptions.Request{
			IsAllowList: ptr(false), CiIgnoreFlagsEnabled: ptr(false), IncludeGitFolder: ptr(false), FullGitClone: ptr(false),
			EnableGitLfs: ptr(false), DockerfileTarget: ptr(""),
		}, func(_ *deploymentsv1.BuildSettings, c *deploymentsv1.BuildConfiguration) {
			c.IsAllowList, c.CiIgnoreFlagsEnabled, c.IncludeGitFolder, c.FullGitClone, c.EnableGitLfs, c.DockerfileTarget = false, false, false, false, false, ""
		}},
		{"one flag given changes only it", buildoptions.Request{DockerfileTarget: ptr("build")},
			func(_ *deploymentsv1.BuildSettings, c *deploymentsv1.BuildConfiguration) {
				c.DockerfileTarget = "build"
			}},
	} {
		t.Run(c.name, func(t *testing.T) {
			settings, config := stored()
			wantS, wantC := stored()
			c.want(wantS, wantC)
			gotS, gotC := buildoptions.Merge(settings, config, c.req)
			if !proto.Equal(gotS, wantS) || !proto.Equal(gotC, wantC) {
				t.Errorf("Merge =\n  %v\n  %v\nwant\n  %v\n  %v", gotS, gotC, wantS, wantC)
			}
			// The stored values are the caller's: Merge changes copies.
			if s, c := stored(); !proto.Equal(settings, s) || !proto.Equal(config, c) {
				t.Errorf("Merge changed its arguments: %v, %v", settings, config)
			}
		})
	}
}

// A workload with no configuration stored yet (nil) starts from an empty
// one, and a request's lists are copied, not shared with the request.
func TestMergeFromNothing(t *testing.T) {
	flags := []string{"[skip ci]"}
	s, c := buildoptions.Merge(nil, nil, buildoptions.Request{Buildpack: &deploymentsv1.BuildpackSettings{BuildContext: "/"}, CiIgnoreFlags: flags, CiIgnoreFlagsEnabled: ptr(true)})
	flags[0] = "changed"
	want := &deploymentsv1.BuildConfiguration{CiIgnoreFlags: []string{"[skip ci]"}, CiIgnoreFlagsEnabled: true}
	if !proto.Equal(s, &deploymentsv1.BuildSettings{Buildpack: &deploymentsv1.BuildpackSettings{BuildContext: "/"}}) || !proto.Equal(c, want) {
		t.Errorf("Merge(nil, nil) = %v, %v", s, c)
	}
}

func TestCheck(t *testing.T) {
	both := buildoptions.Request{Dockerfile: &deploymentsv1.DockerfileSettings{}, Buildpack: &deploymentsv1.BuildpackSettings{}}
	var e *apierr.Error
	if err := both.Check(); !errors.As(err, &e) || e.Code != codes.InvalidArgument || len(e.Fields["buildpack"]) != 1 {
		t.Errorf("Check(both engines) = %#v, want buildpack invalid", err)
	}
	if err := (buildoptions.Request{Buildpack: &deploymentsv1.BuildpackSettings{}}).Check(); err != nil {
		t.Errorf("Check(one engine) = %v", err)
	}
}
