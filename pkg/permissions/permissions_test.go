package permissions

import (
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc"

	addonsv1 "github.com/slipwayhq/slipway/gen/slipway/addons/v1"
	authv1 "github.com/slipwayhq/slipway/gen/slipway/auth/v1"
	projectsv1 "github.com/slipwayhq/slipway/gen/slipway/projects/v1"
)

func TestCatalogue(t *testing.T) {
	if len(All()) < 100 || !Known("Project > Projects > Manage > Read") || Known("Project > Nothing") {
		t.Fatalf("catalogue has %d permissions", len(All()))
	}
	team, project := Split([]string{"Project > Jobs > General > Read", "Account > Admin > Roles > Read"})
	if len(team) != 1 || len(project) != 1 || project[0] != "Project > Jobs > General > Read" {
		t.Fatalf("Split = %v %v", team, project)
	}
}

func TestBuiltinRoles(t *testing.T) {
	roles := map[string][]string{}
	for _, r := range Builtin() {
		roles[r.ID] = r.Permissions
	}
	if len(roles["admin"]) != len(All()) {
		t.Fatal("admin lacks permissions")
	}
	for _, p := range roles["viewer"] {
		if !isRead(p) {
			t.Errorf("viewer may %q", p)
		}
	}
	if slices.Contains(roles["viewer"], "Project > Projects > Manage > Create") || !slices.Contains(roles["viewer"], "Project > Projects > Manage > Read") {
		t.Error("viewer's project permissions are wrong")
	}
	if slices.Contains(roles["viewer"], "Account > Credentials > General > Read Encrypted") {
		t.Error("viewer may read encrypted secrets")
	}
	// A viewer sees configuration, not secret values: no "Project >
	// Secrets > ..." at all, although their names end in "Read".
	for _, p := range roles["viewer"] {
		if strings.HasPrefix(p, "Project > Secrets > ") {
			t.Errorf("viewer may %q", p)
		}
	}
	if !slices.Contains(roles["developer"], "Project > Secrets > Jobs > Read") {
		t.Error("developer cannot read job secrets")
	}
	// Secret groups: a viewer sees their names and settings, never their
	// values, in projects and of the team (global secrets); a developer
	// changes a project's groups and reads the team's.
	for _, p := range roles["viewer"] {
		if strings.HasPrefix(p, "Account > Secrets > ") {
			t.Errorf("viewer may %q", p)
		}
	}
	for _, p := range []string{"Project > SecretGroups > General > Read", "Account > SecretGroups > General > Read"} {
		if !slices.Contains(roles["viewer"], p) {
			t.Errorf("viewer may not %q", p)
		}
	}
	for _, p := range []string{"Project > Secrets > General > Read", "Project > Secrets > General > Create", "Project > Secrets > General > Update",
		"Project > Secrets > General > Delete", "Account > Secrets > General > Read"} {
		if !slices.Contains(roles["developer"], p) {
			t.Errorf("developer may not %q", p)
		}
	}
	if slices.Contains(roles["developer"], "Account > Secrets > General > Create") {
		t.Error("developer may create global secrets")
	}
	if !slices.Contains(roles["developer"], "Project > Jobs > General > Create") || slices.Contains(roles["developer"], "Account > Admin > Roles > Manage") {
		t.Error("developer's permissions are wrong")
	}
}

func TestNarrowNeverExceedsTheRole(t *testing.T) {
	viewer := Builtin()[2].Permissions
	got := Narrow(viewer, []string{"project_write", "project_read"})
	if !slices.Equal(got, []string{"Project > Projects > Manage > Read"}) {
		t.Fatalf("viewer narrowed by project_write = %v", got)
	}
	admin := Builtin()[0].Permissions
	got = Narrow(admin, []string{"project_write"})
	for _, p := range got {
		if p[:len("Project > Projects > ")] != "Project > Projects > " {
			t.Fatalf("project_write allowed %q", p)
		}
	}
	if len(got) != 4 {
		t.Fatalf("project_write on admin = %v", got)
	}
	got = Narrow(admin, []string{"secret_read"})
	for _, p := range []string{"Project > Secrets > General > Read", "Project > SecretGroups > General > Read", "Account > Secrets > General > Read"} {
		if !slices.Contains(got, p) {
			t.Errorf("secret_read lacks %q", p)
		}
	}
	if slices.Contains(got, "Project > Secrets > General > Update") {
		t.Error("secret_read allows an update")
	}
	if got := Narrow(admin, []string{"no_such_scope"}); len(got) != 0 {
		t.Fatalf("unknown scope allowed %v", got)
	}
	for _, s := range Scopes() {
		if !ValidScope(s) || len(Narrow(admin, []string{s})) == 0 {
			t.Errorf("scope %s grants nothing", s)
		}
	}
}

// TestEveryRPCDeclaresKnownAccess walks every method of every public
// service: each has an access rule, and each permission it names exists.
func TestEveryRPCDeclaresKnownAccess(t *testing.T) {
	services := []string{projectsv1.ProjectsService_ServiceDesc.ServiceName, authv1.AuthService_ServiceDesc.ServiceName,
		addonsv1.SecretsService_ServiceDesc.ServiceName}
	descs := map[string][]string{
		services[0]: methodNames(projectsv1.ProjectsService_ServiceDesc.Methods),
		services[1]: methodNames(authv1.AuthService_ServiceDesc.Methods),
		services[2]: methodNames(addonsv1.SecretsService_ServiceDesc.Methods),
	}
	for _, svc := range services {
		for _, m := range descs[svc] {
			a, ok := ForMethod("/" + svc + "/" + m)
			if !ok {
				t.Errorf("%s/%s declares no access rule", svc, m)
				continue
			}
			if a.GetPermission() != "" && !Known(a.GetPermission()) {
				t.Errorf("%s/%s requires unknown permission %q", svc, m, a.GetPermission())
			}
			if !a.GetAuthenticated() && !a.GetInternal() {
				t.Errorf("%s/%s is open to anonymous callers", svc, m)
			}
		}
	}
	if _, ok := ForMethod("/no.Such/Method"); ok {
		t.Error("unknown method has an access rule")
	}
	if _, ok := ForMethod("/slipway.projects.v1.ProjectsService"); ok {
		t.Error("unknown method has an access rule")
	}
}

func methodNames(ms []grpc.MethodDesc) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.MethodName
	}
	return out
}
