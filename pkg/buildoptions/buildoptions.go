// Package buildoptions merges a build-options request (Northflank's
// POST …/build-options, for build and combined services and for jobs that
// build from git) into the build engine and build configuration stored
// for the workload. The deployments and jobs services take the request
// in different message types; the rules of the merge live here once so
// that a service and a job given the same options end up configured the
// same way.
package buildoptions

import (
	"google.golang.org/protobuf/proto"

	deploymentsv1 "github.com/slipwayhq/slipway/gen/slipway/deployments/v1"
	"github.com/slipwayhq/slipway/pkg/apierr"
)

// Request is a build-options request, whichever service it came to. A nil
// message, list or pointer is "not given": the stored value is kept.
// Lists cannot be emptied this way: on the wire an empty JSON list and
// no list decode the same (proto3 repeated fields have no presence), so
// an empty list keeps the stored one rather than clearing it.
type Request struct {
	// Dockerfile switches the engine to a Dockerfile build.
	Dockerfile *deploymentsv1.DockerfileSettings
	// Buildpack switches the engine to a buildpack build.
	Buildpack *deploymentsv1.BuildpackSettings
	// Storage replaces the build's scratch disk (services only; jobs
	// keep theirs).
	Storage *deploymentsv1.BuildStorage

	// PrRestrictions and BranchRestrictions replace the build rules
	// (build services only).
	PrRestrictions, BranchRestrictions []string
	// PathIgnoreRules, CiIgnoreFlags and DockerCredentials replace their
	// lists when non-empty.
	PathIgnoreRules, CiIgnoreFlags, DockerCredentials []string

	// The flags and the target are optional in the request: given false
	// or "" they clear the stored value, not given they keep it.
	IsAllowList, CiIgnoreFlagsEnabled *bool
	IncludeGitFolder, FullGitClone    *bool
	EnableGitLfs                      *bool
	DockerfileTarget                  *string
}

// Check refuses a request that names both engines: which one the workload
// builds with would otherwise depend on the order of the merge.
func (r Request) Check() error {
	if r.Dockerfile != nil && r.Buildpack != nil {
		return apierr.InvalidField("buildpack", "give dockerfile or buildpack, not both")
	}
	return nil
}

// Merge returns the stored settings and configuration with r applied;
// neither argument is changed, and a nil config (none stored yet) starts
// empty. An engine given replaces the stored one, and clears the other
// because a workload builds with exactly one. The caller has run Check.
func Merge(settings *deploymentsv1.BuildSettings, config *deploymentsv1.BuildConfiguration, r Request) (*deploymentsv1.BuildSettings, *deploymentsv1.BuildConfiguration) {
	s := proto.CloneOf(settings)
	if s == nil {
		s = &deploymentsv1.BuildSettings{}
	}
	switch {
	case r.Dockerfile != nil:
		s.Dockerfile, s.Buildpack = proto.CloneOf(r.Dockerfile), nil
	case r.Buildpack != nil:
		s.Dockerfile, s.Buildpack = nil, proto.CloneOf(r.Buildpack)
	}

	c := proto.CloneOf(config)
	if c == nil {
		c = &deploymentsv1.BuildConfiguration{}
	}
	if r.Storage != nil {
		// Both places hold it: builds read the engine's, and
		// buildConfiguration reads it back to the user.
		s.Storage, c.Storage = proto.CloneOf(r.Storage), proto.CloneOf(r.Storage)
	}
	replace(&c.PrRestrictions, r.PrRestrictions)
	replace(&c.BranchRestrictions, r.BranchRestrictions)
	replace(&c.PathIgnoreRules, r.PathIgnoreRules)
	replace(&c.CiIgnoreFlags, r.CiIgnoreFlags)
	replace(&c.DockerCredentials, r.DockerCredentials)
	set(&c.IsAllowList, r.IsAllowList)
	set(&c.CiIgnoreFlagsEnabled, r.CiIgnoreFlagsEnabled)
	set(&c.IncludeGitFolder, r.IncludeGitFolder)
	set(&c.FullGitClone, r.FullGitClone)
	set(&c.EnableGitLfs, r.EnableGitLfs)
	set(&c.DockerfileTarget, r.DockerfileTarget)
	return s, c
}

// replace sets *dst to a copy of src when src is given (non-empty).
func replace(dst *[]string, src []string) {
	if len(src) > 0 {
		*dst = append([]string(nil), src...)
	}
}

// set sets *dst to *src when src is given, zero value included.
func set[T any](dst *T, src *T) {
	if src != nil {
		*dst = *src
	}
}
