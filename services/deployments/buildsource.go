package deployments

import (
	"encoding/base64"
	"fmt"
	"maps"
	"path"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	deploymentsv1 "github.com/slipwayhq/slipway/gen/slipway/deployments/v1"
	"github.com/slipwayhq/slipway/pkg/apierr"
	gitvcs "github.com/slipwayhq/slipway/pkg/vcs"
)

// maxBuildSecretBytes bounds a service's build arguments and build files
// together (keys, values and files' base64 data): they travel to every
// build, and a build argument is no place for a large file.
const maxBuildSecretBytes = 512 << 10

// filesFrom reads secret files.
func filesFrom(in map[string]*deploymentsv1.SecretFile) map[string]SecretFile {
	if len(in) == 0 {
		return nil
	}
	out := make(map[string]SecretFile, len(in))
	for k, v := range in {
		out[k] = SecretFile{Data: v.GetData(), Encoding: v.GetEncoding()}
	}
	return out
}

func filesOf(in map[string]SecretFile) map[string]*deploymentsv1.SecretFile {
	out := make(map[string]*deploymentsv1.SecretFile, len(in))
	for k, v := range in {
		out[k] = &deploymentsv1.SecretFile{Data: v.Data, Encoding: v.Encoding}
	}
	return out
}

// checkBuildSecrets validates build arguments and files beyond what the
// proto rules say: files' paths and data, and the total size.
func checkBuildSecrets(args map[string]string, files map[string]SecretFile) error {
	n := 0
	for k, v := range args {
		n += len(k) + len(v)
	}
	for p, f := range files {
		if p != path.Clean(p) || !strings.HasPrefix(p, "/") || p == "/" {
			return apierr.InvalidField("buildFiles", fmt.Sprintf("%q is not a clean absolute file path", p))
		}
		if _, err := base64.StdEncoding.DecodeString(f.Data); err != nil {
			return apierr.InvalidField("buildFiles", fmt.Sprintf("%q: data is not base64", p))
		}
		n += len(p) + len(f.Data) + len(f.Encoding)
	}
	if n > maxBuildSecretBytes {
		return apierr.InvalidField("buildArguments", fmt.Sprintf("build arguments and files are %d bytes together; at most %d are allowed", n, maxBuildSecretBytes))
	}
	return nil
}

// buildFrom keeps a build or combined service's git and build settings as
// the API's JSON, the credentials apart from the repository.
func buildFrom(plan string, vcs *deploymentsv1.VcsData, settings *deploymentsv1.BuildSettings, config *deploymentsv1.BuildConfiguration) (Build, error) {
	b := Build{BuildPlan: plan}
	if vcs != nil {
		b.Credentials = gitvcs.CredentialsFromProto(vcs.GetCredentials())
		vcs = proto.CloneOf(vcs)
		vcs.Credentials, vcs.PublicRepo = nil, false
	}
	for _, f := range []struct {
		m   proto.Message
		dst *string
	}{{vcs, &b.VcsData}, {settings, &b.BuildSettings}, {config, &b.BuildConfig}} {
		if reflectNil(f.m) {
			continue
		}
		raw, err := protojson.Marshal(f.m)
		if err != nil {
			return Build{}, err
		}
		*f.dst = string(raw)
	}
	if b.Credentials != nil && b.Credentials.Empty() {
		b.Credentials = nil
	}
	return b, nil
}

func reflectNil(m proto.Message) bool {
	return m == nil || !m.ProtoReflect().IsValid()
}

// vcsOf reads the stored repository (without credentials).
func vcsOf(b Build) *deploymentsv1.VcsData {
	out := &deploymentsv1.VcsData{}
	_ = protojson.Unmarshal([]byte(b.VcsData), out) // written by buildFrom
	return out
}

func settingsOf(b Build) *deploymentsv1.BuildSettings {
	out := &deploymentsv1.BuildSettings{}
	_ = protojson.Unmarshal([]byte(b.BuildSettings), out)
	return out
}

func configOf(b Build) *deploymentsv1.BuildConfiguration {
	if b.BuildConfig == "" {
		return nil
	}
	out := &deploymentsv1.BuildConfiguration{}
	_ = protojson.Unmarshal([]byte(b.BuildConfig), out)
	return out
}

// setVcs stores vcs as the service's repository.
func setVcs(b *Build, vcs *deploymentsv1.VcsData) error {
	vcs = proto.CloneOf(vcs)
	vcs.Credentials, vcs.PublicRepo = nil, false
	raw, err := protojson.Marshal(vcs)
	if err != nil {
		return err
	}
	b.VcsData = string(raw)
	return nil
}

// setConfig stores config as the service's build configuration.
func setConfig(b *Build, config *deploymentsv1.BuildConfiguration) error {
	raw, err := protojson.Marshal(config)
	if err != nil {
		return err
	}
	b.BuildConfig = string(raw)
	return nil
}

// setSettings stores settings as the service's build engine.
func setSettings(b *Build, settings *deploymentsv1.BuildSettings) error {
	raw, err := protojson.Marshal(settings)
	if err != nil {
		return err
	}
	b.BuildSettings = string(raw)
	return nil
}

// projectBranch is the branch a combined service builds and deploys.
func projectBranch(b Build) string { return vcsOf(b).GetProjectBranch() }

// checkBuild refuses build settings on a deployment service, and a build
// or combined service without a repository it can reach or a build
// engine.
func checkBuild(kind Kind, b Build) error {
	if !kind.Builds() {
		switch {
		case b.VcsData != "":
			return apierr.InvalidField("vcsData", "only build and combined services build from git; create one of those instead")
		case b.BuildSettings != "":
			return apierr.InvalidField("buildSettings", "only build and combined services build from git; create one of those instead")
		case b.BuildConfig != "":
			return apierr.InvalidField("buildConfiguration", "only build and combined services build from git; create one of those instead")
		case b.BuildPlan != "":
			return apierr.InvalidField("billing.buildPlan", "only build and combined services build")
		case len(b.Arguments) > 0 || len(b.Files) > 0:
			return apierr.InvalidField("buildArguments", "only build and combined services build")
		}
		return nil
	}
	if b.VcsData == "" {
		return apierr.InvalidField("vcsData", fmt.Sprintf("is required for a %s service: the repository it builds", kind))
	}
	if b.BuildSettings == "" {
		return apierr.InvalidField("buildSettings", fmt.Sprintf("is required for a %s service: dockerfile or buildpack", kind))
	}
	settings := settingsOf(b)
	if (settings.GetDockerfile() == nil) == (settings.GetBuildpack() == nil) {
		return apierr.InvalidField("buildSettings", "needs exactly one of dockerfile and buildpack")
	}
	vcs := vcsOf(b)
	transport, err := gitvcs.CheckURL("vcsData.projectUrl", vcs.GetProjectUrl())
	if err != nil {
		return err
	}
	if vcs.GetProjectType() == "" {
		return apierr.InvalidField("vcsData.projectType", "is required: github, gitlab, bitbucket, azure or self-hosted")
	}
	if kind == KindCombined && vcs.GetProjectBranch() == "" {
		return apierr.InvalidField("vcsData.projectBranch", "is required for a combined service: the branch it builds and deploys")
	}
	if err := gitvcs.CheckCredentials("vcsData.credentials", transport, b.Credentials); err != nil {
		return err
	}
	if kind == KindCombined {
		if c := configOf(b); len(c.GetPrRestrictions()) > 0 || len(c.GetBranchRestrictions()) > 0 {
			return apierr.InvalidField("buildConfiguration", "branch and pull request restrictions are for build services; a combined service builds its projectBranch")
		}
	}
	return checkBuildSecrets(b.Arguments, b.Files)
}

// patchVcs applies a patch of the repository to b.
func patchVcs(b *Build, p *deploymentsv1.VcsDataPatch) error {
	vcs := vcsOf(*b)
	if p.GetProjectUrl() != "" {
		vcs.ProjectUrl = p.GetProjectUrl()
	}
	if p.GetProjectType() != "" {
		vcs.ProjectType = p.GetProjectType()
	}
	if p.GetSelfHostedVcsId() != "" {
		vcs.SelfHostedVcsId = p.GetSelfHostedVcsId()
	}
	if p.GetAccountLogin() != "" {
		vcs.AccountLogin = p.GetAccountLogin()
	}
	if p.GetVcsLinkId() != "" {
		vcs.VcsLinkId = p.GetVcsLinkId()
	}
	if p.GetProjectBranch() != "" {
		vcs.ProjectBranch = p.GetProjectBranch()
	}
	b.Credentials = gitvcs.KeepCredentials(vcsOf(*b).GetProjectUrl(), vcs.GetProjectUrl(), b.Credentials, gitvcs.CredentialsFromProto(p.GetCredentials()))
	return setVcs(b, vcs)
}

// sourceOf is the internal (decrypted) form of a service's build source.
func sourceOf(sv Service) *deploymentsv1.BuildSource {
	vcs := vcsOf(sv.Build)
	vcs.PublicRepo = !sv.Build.Credentials.Private()
	vcs.Credentials = sv.Build.Credentials.Proto()
	args := maps.Clone(sv.Build.Arguments)
	if args == nil {
		args = map[string]string{}
	}
	return &deploymentsv1.BuildSource{
		TeamId: sv.TeamID, ProjectId: sv.ProjectID, ServiceId: sv.ID, ServiceType: string(sv.Kind),
		VcsData: vcs, BuildSettings: settingsOf(sv.Build), BuildConfiguration: configOf(sv.Build),
		BuildArguments: args, BuildFiles: filesOf(sv.Build.Files), DisabledCi: sv.Build.DisabledCI, BuildPlan: sv.Build.BuildPlan,
	}
}
