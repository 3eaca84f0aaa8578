// Package permissions is Slipway's authorization vocabulary: the permission
// strings roles are made of (Northflank's, e.g. "Project > Jobs > General >
// Read"), the built-in roles, the OAuth scopes that narrow them, and the
// access rule each RPC declares in its proto.
package permissions

import (
	_ "embed"
	"slices"
	"strings"
	"sync"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	apiv1 "github.com/slipwayhq/slipway/gen/slipway/api/v1"
)

//go:embed permissions.txt
var catalogue string

var all, known = parse(catalogue)

func parse(text string) ([]string, map[string]bool) {
	var list []string
	set := map[string]bool{}
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") || set[line] {
			continue
		}
		set[line] = true
		list = append(list, line)
	}
	slices.Sort(list)
	return list, set
}

// All returns every known permission, sorted.
func All() []string { return slices.Clone(all) }

// Known reports whether p is a permission Slipway knows.
func Known(p string) bool { return known[p] }

// IsProjectScope reports whether p applies within projects (as opposed to
// the team: "Account > ..." and "Organisation > ...").
func IsProjectScope(p string) bool { return strings.HasPrefix(p, "Project > ") }

// Split separates permissions into team scope and project scope, the way
// Northflank's role API presents them.
func Split(perms []string) (teamScope, projectScope []string) {
	teamScope, projectScope = []string{}, []string{}
	for _, p := range perms {
		if IsProjectScope(p) {
			projectScope = append(projectScope, p)
		} else {
			teamScope = append(teamScope, p)
		}
	}
	return teamScope, projectScope
}

// isRead reports whether p only lets its holder look. "Read Encrypted"
// reveals secrets, so it is not a read in this sense.
func isRead(p string) bool {
	action := p[strings.LastIndex(p, " > ")+3:]
	return action == "Read" || strings.HasPrefix(action, "View ")
}

// revealsSecrets reports whether p shows secret values (a workload's
// environment, secret groups' values, the team's global secrets): a
// "Read" by name, but not a look at configuration, so the viewer role
// does not get it. ("... > SecretGroups > ..." shows names and settings
// only, which viewers may see.)
func revealsSecrets(p string) bool {
	return strings.HasPrefix(p, "Project > Secrets > ") || strings.HasPrefix(p, "Account > Secrets > ")
}

// Role is a built-in role.
type Role struct {
	ID          string
	Name        string
	Description string
	Permissions []string
}

// Builtin returns the roles every team starts with: admin holds every
// permission; developer everything within projects, reads elsewhere, API
// tokens and OAuth clients; viewer reads configuration but no secret
// values. (A team's copies of these rows are brought in line with this
// definition by the auth migrations when it changes.)
func Builtin() []Role {
	var developer, viewer []string
	for _, p := range all {
		if isRead(p) && !revealsSecrets(p) {
			viewer = append(viewer, p)
		}
		if IsProjectScope(p) || isRead(p) || strings.HasPrefix(p, "Account > ApiTokens > ") || strings.HasPrefix(p, "Account > OAuthClients > ") {
			developer = append(developer, p)
		}
	}
	return []Role{
		{ID: "admin", Name: "Admin", Description: "Everything, including members, roles and tokens.", Permissions: All()},
		{ID: "developer", Name: "Developer", Description: "Everything within projects, reads elsewhere, API tokens and OAuth clients.", Permissions: developer},
		{ID: "viewer", Name: "Viewer", Description: "Read-only access to configuration; no secret values.", Permissions: viewer},
	}
}

// scopes maps each OAuth scope to the permissions it can carry: a token
// with scopes holds the intersection of its user's role and its scopes, so
// it can never exceed the role.
var scopes = map[string]func(p string) bool{
	"project_read":  func(p string) bool { return p == "Project > Projects > Manage > Read" },
	"project_write": func(p string) bool { return strings.HasPrefix(p, "Project > Projects > ") },
	"service_read":  readOf("Project > Services > "),
	"service_write": prefix("Project > Services > "),
	"job_read":      readOf("Project > Jobs > "),
	"job_write":     prefix("Project > Jobs > "),
	"addon_read":    readOf("Project > Addons > "),
	"addon_write":   prefix("Project > Addons > "),
	"secret_read":   readOf(secretPrefixes...),
	"secret_write":  prefix(secretPrefixes...),
	"team_read":     func(p string) bool { return !IsProjectScope(p) && isRead(p) },
}

// secretPrefixes are the permissions of secrets: values and changes
// ("Secrets") and names ("SecretGroups"), in projects and of the team.
var secretPrefixes = []string{"Project > Secrets > ", "Project > SecretGroups > ", "Account > Secrets > ", "Account > SecretGroups > "}

func prefix(pre ...string) func(string) bool {
	return func(p string) bool { return hasPrefix(p, pre) }
}

func readOf(pre ...string) func(string) bool {
	return func(p string) bool { return hasPrefix(p, pre) && isRead(p) }
}

func hasPrefix(p string, pre []string) bool {
	return slices.ContainsFunc(pre, func(x string) bool { return strings.HasPrefix(p, x) })
}

// Scopes lists the OAuth scopes, sorted.
func Scopes() []string {
	out := make([]string, 0, len(scopes))
	for s := range scopes {
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

// ValidScope reports whether s is an OAuth scope.
func ValidScope(s string) bool { _, ok := scopes[s]; return ok }

// Narrow returns the permissions of role that at least one of the scopes
// allows. Unknown scopes allow nothing.
func Narrow(role []string, granted []string) []string {
	out := []string{}
	for _, p := range role {
		for _, s := range granted {
			if allow, ok := scopes[s]; ok && allow(p) {
				out = append(out, p)
				break
			}
		}
	}
	return out
}

var accessCache sync.Map // full method name → *apiv1.Access (nil: none)

// ForMethod returns the access rule a gRPC method ("/pkg.Service/Method")
// declares, and false when it declares none (such a method must be refused:
// authorization fails closed).
func ForMethod(fullMethod string) (*apiv1.Access, bool) {
	if v, ok := accessCache.Load(fullMethod); ok {
		a, _ := v.(*apiv1.Access)
		return a, a != nil
	}
	a := lookup(fullMethod)
	accessCache.Store(fullMethod, a)
	return a, a != nil
}

func lookup(fullMethod string) *apiv1.Access {
	name := strings.Replace(strings.TrimPrefix(fullMethod, "/"), "/", ".", 1)
	d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(name))
	if err != nil {
		return nil
	}
	md, ok := d.(protoreflect.MethodDescriptor)
	if !ok || !proto.HasExtension(md.Options(), apiv1.E_Access) {
		return nil
	}
	a, _ := proto.GetExtension(md.Options(), apiv1.E_Access).(*apiv1.Access)
	return a
}
