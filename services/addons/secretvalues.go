package addons

import (
	"encoding/base64"
	"fmt"
	"maps"
	"path"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"google.golang.org/protobuf/types/known/timestamppb"

	addonsv1 "github.com/slipwayhq/slipway/gen/slipway/addons/v1"
	"github.com/slipwayhq/slipway/pkg/apierr"
	"github.com/slipwayhq/slipway/pkg/runtime"
)

// SecretDefaultKey is the name a linked addon's key is given in the
// environment: Northflank's NF_<ADDON-ID>_<KEY>, upper-cased (e.g.
// NF_MY-DATABASE_HOST). Aliases give it more names.
func SecretDefaultKey(addonID, key string) string {
	return "NF_" + strings.ToUpper(addonID) + "_" + strings.ToUpper(key)
}

// secretValuesFrom validates a request's variables and files: files at
// absolute, clean paths a workload can be given (a directory of their
// own, outside the system's paths and Slipway's addon mounts), base64
// data, and the values' total size.
func secretValuesFrom(field string, vars map[string]string, in map[string]*addonsv1.SecretFile) (map[string]string, map[string]SecretFileValue, error) {
	files := make(map[string]SecretFileValue, len(in))
	for _, p := range slices.Sorted(maps.Keys(in)) {
		if why := checkSecretFilePath(p); why != "" {
			return nil, nil, apierr.InvalidField(field+".files", fmt.Sprintf("%q %s", p, why))
		}
		f := in[p]
		if _, err := base64.StdEncoding.DecodeString(f.GetData()); err != nil {
			return nil, nil, apierr.InvalidField(field+".files", fmt.Sprintf("%q: data is not base64", p))
		}
		files[p] = SecretFileValue{Data: f.GetData(), Encoding: f.GetEncoding()}
	}
	vars = maps.Clone(vars)
	if len(vars) == 0 {
		vars = nil
	}
	if len(files) == 0 {
		files = nil
	}
	if err := checkSecretSize(field, vars, files); err != nil {
		return nil, nil, err
	}
	return vars, files, nil
}

// checkSecretFilePath says why a secret file may not be at p ("" when it
// may). A file is mounted with the other files of its directory at that
// directory, read-only, so the directory must be one a mount may cover.
func checkSecretFilePath(p string) string {
	if !strings.HasPrefix(p, "/") || path.Clean(p) != p {
		return "is not an absolute, clean file path"
	}
	dir := path.Dir(p)
	if dir == "/" {
		return "lies in /; put it in a directory of its own, e.g. /secrets" + p
	}
	for _, sys := range runtime.SystemPaths {
		if dir == sys || strings.HasPrefix(dir, sys+"/") {
			return "lies in the system path " + sys + ", which workloads cannot be given files in"
		}
	}
	if dir == "/run/slipway" || strings.HasPrefix(p, "/run/slipway/") || strings.HasPrefix(SecretAddonMountDir, dir+"/") {
		return "lies where Slipway mounts linked addons (" + SecretAddonMountDir + ")"
	}
	return ""
}

// checkSecretSize bounds values' total size.
func checkSecretSize(field string, vars map[string]string, files map[string]SecretFileValue) error {
	n := 0
	for k, v := range vars {
		n += len(k) + len(v)
	}
	for p, f := range files {
		n += len(p) + len(f.Data) + len(f.Encoding)
	}
	if n > secretMaxBytes {
		return apierr.InvalidField(field, fmt.Sprintf("variables and files are %d bytes together; at most %d are allowed", n, secretMaxBytes))
	}
	return nil
}

// patchSecretValues applies a patch's secrets object to a group's or a
// global secret's values: the variables and the files given replace the
// current ones (what is not given stays), and an empty secrets object
// clears both. The result must fit the size bound.
func patchSecretValues(variables *map[string]string, files *map[string]SecretFileValue, givenVars map[string]string, givenFiles map[string]SecretFileValue) error {
	given := len(givenVars) > 0 || len(givenFiles) > 0
	if len(givenVars) > 0 || !given {
		*variables = givenVars
	}
	if len(givenFiles) > 0 || !given {
		*files = givenFiles
	}
	return checkSecretSize("secrets", *variables, *files)
}

// checkSecretLink checks a link's keys against what the addon offers.
func checkSecretLink(field string, link SecretAddonLink, conn SecretAddonConnection) error {
	seen := map[string]bool{}
	for i, k := range link.Keys {
		at := field + "[" + strconv.Itoa(i) + "].keyName"
		if _, ok := conn.Values[k.Name]; !ok {
			return apierr.InvalidField(at, fmt.Sprintf("addon %s has no key %q; it has %s", link.AddonID, k.Name,
				strings.Join(slices.Sorted(maps.Keys(conn.Values)), ", ")))
		}
		if seen[k.Name] {
			return apierr.InvalidField(at, fmt.Sprintf("%q is linked twice", k.Name))
		}
		seen[k.Name] = true
	}
	return nil
}

// checkSecretAliases refuses a name two links of one group give different
// values under.
func checkSecretAliases(links []SecretAddonLink) error {
	from := map[string]string{}
	for _, l := range links {
		for _, k := range l.Keys {
			source := l.AddonID + "." + k.Name
			for _, name := range append([]string{SecretDefaultKey(l.AddonID, k.Name)}, k.Aliases...) {
				if other, dup := from[name]; dup && other != source {
					return apierr.InvalidField("addonDependencies", fmt.Sprintf("%q names both %s and %s", name, other, source))
				}
				from[name] = source
			}
		}
	}
	return nil
}

func secretKeysFrom(in []*addonsv1.SecretAddonKey) []SecretAddonKey {
	out := make([]SecretAddonKey, 0, len(in))
	for _, k := range in {
		out = append(out, SecretAddonKey{Name: k.GetKeyName(), Aliases: slices.Clone(k.GetAliases())})
	}
	return out
}

func secretKeysOf(addonID string, keys []SecretAddonKey) []*addonsv1.SecretAddonKey {
	out := make([]*addonsv1.SecretAddonKey, 0, len(keys))
	for _, k := range keys {
		out = append(out, &addonsv1.SecretAddonKey{KeyName: k.Name, Aliases: secretList(k.Aliases), DefaultKey: SecretDefaultKey(addonID, k.Name)})
	}
	return out
}

func secretRestrictionsFrom(in *addonsv1.SecretRestrictions) SecretRestrictions {
	r := SecretRestrictions{Restricted: in.GetRestricted(), Tags: slices.Clone(in.GetTags()), TagMatch: in.GetTagMatchCondition()}
	for _, o := range in.GetNfObjects() {
		r.Objects = append(r.Objects, SecretObject{ID: o.GetId(), Type: o.GetType()})
	}
	if r.TagMatch == "" {
		r.TagMatch = "or"
	}
	return r
}

func secretRestrictionsOf(r SecretRestrictions) *addonsv1.SecretRestrictions {
	out := &addonsv1.SecretRestrictions{Restricted: r.Restricted, Tags: secretList(r.Tags), TagMatchCondition: r.TagMatch,
		NfObjects: make([]*addonsv1.SecretRestrictionObject, 0, len(r.Objects))}
	for _, o := range r.Objects {
		out.NfObjects = append(out.NfObjects, &addonsv1.SecretRestrictionObject{Id: o.ID, Type: o.Type})
	}
	if out.TagMatchCondition == "" {
		out.TagMatchCondition = "or"
	}
	return out
}

// secretApplies reports whether a group with restrictions r applies to the
// workload kind/id with tags.
func secretApplies(r SecretRestrictions, kind, id string, tags []string) bool {
	if !r.Restricted {
		return true
	}
	if slices.Contains(r.Objects, SecretObject{ID: id, Type: kind}) {
		return true
	}
	if len(r.Tags) == 0 {
		return false
	}
	if r.TagMatch == "and" {
		return !slices.ContainsFunc(r.Tags, func(t string) bool { return !slices.Contains(tags, t) })
	}
	return slices.ContainsFunc(r.Tags, func(t string) bool { return slices.Contains(tags, t) })
}

func secretDataOf(vars map[string]string, files map[string]SecretFileValue) *addonsv1.SecretData {
	out := &addonsv1.SecretData{Variables: maps.Clone(vars), Files: make(map[string]*addonsv1.SecretFile, len(files))}
	if out.Variables == nil {
		out.Variables = map[string]string{}
	}
	for p, f := range files {
		out.Files[p] = &addonsv1.SecretFile{Data: f.Data, Encoding: f.Encoding}
	}
	return out
}

func secretDependenciesOf(links []SecretAddonLink) []*addonsv1.SecretAddonDependency {
	out := make([]*addonsv1.SecretAddonDependency, 0, len(links))
	for _, l := range links {
		out = append(out, &addonsv1.SecretAddonDependency{AddonId: l.AddonID, Keys: secretKeysOf(l.AddonID, l.Keys)})
	}
	return out
}

func secretSummaryOf(g SecretGroup) *addonsv1.SecretSummary {
	return &addonsv1.SecretSummary{Id: g.ID, ProjectId: g.ProjectID, Name: g.Name, Tags: secretList(g.Tags), Description: g.Description,
		Type: g.Type, SecretType: g.SecretType, Priority: int32(g.Priority), Restrictions: secretRestrictionsOf(g.Restrictions)}
}

func secretOf(g SecretGroup, data *addonsv1.SecretData) *addonsv1.Secret {
	return &addonsv1.Secret{Id: g.ID, ProjectId: g.ProjectID, Name: g.Name, Tags: secretList(g.Tags), Description: g.Description,
		Type: g.Type, SecretType: g.SecretType, Priority: int32(g.Priority), Restrictions: secretRestrictionsOf(g.Restrictions),
		AddonDependencies: secretDependenciesOf(g.Addons), Secrets: data,
		CreatedAt: timestamppb.New(g.CreatedAt), UpdatedAt: timestamppb.New(g.UpdatedAt)}
}

func globalSecretOf(g GlobalSecret) *addonsv1.GlobalSecret {
	data := &addonsv1.GlobalSecretData{Values: maps.Clone(g.Variables), Files: secretDataOf(nil, g.Files).GetFiles()}
	if data.Values == nil {
		data.Values = map[string]string{}
	}
	return &addonsv1.GlobalSecret{Id: g.ID, Name: g.Name, Description: g.Description, Type: g.Type, Secrets: data,
		CreatedAt: timestamppb.New(g.CreatedAt), UpdatedAt: timestamppb.New(g.UpdatedAt)}
}

// secretGroupsEqual compares groups as stored (normalized).
func secretGroupsEqual(a, b SecretGroup) bool { return reflect.DeepEqual(a, b) }

// secretList is l, or an empty list for nil (JSON [] rather than null).
func secretList(l []string) []string {
	if l == nil {
		return []string{}
	}
	return l
}
