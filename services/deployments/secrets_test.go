package deployments_test

import (
	"context"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	addonsv1 "github.com/slipwayhq/slipway/gen/slipway/addons/v1"
	deploymentsv1 "github.com/slipwayhq/slipway/gen/slipway/deployments/v1"
	"github.com/slipwayhq/slipway/pkg/events"
	"github.com/slipwayhq/slipway/services/addons/secretstest"
	"github.com/slipwayhq/slipway/services/deployments"
)

// withSecretGroups makes the deployments service resolve services'
// secret groups through g, with their secret files under dir.
func withSecretGroups(g *secretstest.Server, dir string) func(*deployments.Options) {
	return func(o *deployments.Options) { o.Secrets, o.Internal, o.FilesDir = g.Client, g.Internal, dir }
}

// secretChanged is the event the secrets server writes when a group of
// the tests' project changes.
func secretChanged(t *testing.T, id string) events.Event {
	t.Helper()
	ev, err := events.New("addons", "secret", "updated", teamID+"/"+projectID+"/"+id,
		map[string]string{"teamId": teamID, "projectId": projectID, "id": id, "name": id})
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

// TestServicesGetSecretGroupsAndRollOutOnChange: a service's instances
// get the project's secret groups that apply to it, merged by priority,
// under the service's own environment (which wins), with the groups'
// files at their paths and the linked addon's socket directory mounted
// read-only. A change of a group the service gets rolls it out with the
// new values; a change of a group it does not get leaves its instances
// alone.
func TestServicesGetSecretGroupsAndRollOutOnChange(t *testing.T) {
	groups := secretstest.New(t, teamID, projectID, adminCred, quiet)
	filesDir := filepath.Join(t.TempDir(), "files")
	h := newHarness(t, withSecretGroups(groups, filesDir))
	admin := as(adminCred)
	mk := func(spec *addonsv1.SecretSpec) {
		t.Helper()
		if _, err := groups.Client.CreateSecret(admin, &addonsv1.CreateSecretRequest{ProjectId: projectID, Spec: spec}); err != nil {
			t.Fatal(err)
		}
	}
	file := func(s string) map[string]*addonsv1.SecretFile {
		return map[string]*addonsv1.SecretFile{"/secrets/motd": {Data: base64.StdEncoding.EncodeToString([]byte(s))}}
	}
	mk(&addonsv1.SecretSpec{Name: "base", SecretType: "environment", Priority: 1,
		Secrets: &addonsv1.SecretData{Variables: map[string]string{"LEVEL": "base", "OWN": "base"}, Files: file("motd-1")}})
	mk(&addonsv1.SecretSpec{Name: "high", SecretType: "environment-arguments", Priority: 50,
		AddonDependencies: []*addonsv1.SecretAddonDependency{{AddonId: "pg", Keys: []*addonsv1.SecretAddonKey{{KeyName: "PASSWORD", Aliases: []string{"DB_PASSWORD"}}}}},
		Secrets:           &addonsv1.SecretData{Variables: map[string]string{"LEVEL": "high"}}})
	mk(&addonsv1.SecretSpec{Name: "other", SecretType: "environment", Priority: 100,
		Restrictions: &addonsv1.SecretRestrictions{Restricted: true, NfObjects: []*addonsv1.SecretRestrictionObject{{Id: "other", Type: "service"}}},
		Secrets:      &addonsv1.SecretData{Variables: map[string]string{"LEVEL": "other"}}})

	spec := webApp("Web", "")
	spec.Deployment.Docker.CustomCommand = `mkdir -p www && echo "$LEVEL $OWN $DB_PASSWORD $(cat /secrets/motd) $(cat /run/slipway/addons/pg/note)" > www/index.html && ` +
		`echo ok > www/healthz && busybox httpd -f -p "$PORT" -h www`
	spec.RuntimeEnvironment = map[string]string{"OWN": "svc"}
	h.create(spec)
	h.waitStatus("web", "r000001", "COMPLETED")
	host := "p01--web--web.localhost"
	if code, body := h.get(host, "/"); code != 200 || body != "high svc pg-s3cret motd-1 addon socket dir" {
		t.Fatalf("served %d %q", code, body)
	}
	before := h.ctl.Instances("acme/web/web")

	// A group the service does not get: nothing moves.
	if _, err := groups.Client.PatchSecret(admin, &addonsv1.PatchSecretRequest{ProjectId: projectID, SecretId: "other",
		Patch: &addonsv1.SecretPatch{Secrets: &addonsv1.SecretData{Variables: map[string]string{"LEVEL": "still other"}}}}); err != nil {
		t.Fatal(err)
	}
	if err := h.svc.SecretHandler()(context.Background(), secretChanged(t, "other")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	if now := h.ctl.Instances("acme/web/web"); len(now) != 1 || now[0].WorkloadID != before[0].WorkloadID {
		t.Fatalf("a change of a group the service does not get replaced its instances: %+v, were %+v", now, before)
	}

	// A group it gets: its instances are replaced with the new values,
	// variables and files alike.
	if _, err := groups.Client.PatchSecret(admin, &addonsv1.PatchSecretRequest{ProjectId: projectID, SecretId: "high",
		Patch: &addonsv1.SecretPatch{Secrets: &addonsv1.SecretData{Variables: map[string]string{"LEVEL": "changed"}}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := groups.Client.PatchSecret(admin, &addonsv1.PatchSecretRequest{ProjectId: projectID, SecretId: "base",
		Patch: &addonsv1.SecretPatch{Secrets: &addonsv1.SecretData{Files: file("motd-2")}}}); err != nil {
		t.Fatal(err)
	}
	if err := h.svc.SecretHandler()(context.Background(), secretChanged(t, "high")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the new values served", func() bool {
		code, body := h.get(host, "/")
		return code == 200 && body == "changed svc pg-s3cret motd-2 addon socket dir"
	})
	eventually(t, "the old instance replaced", func() bool {
		now := h.ctl.Instances("acme/web/web")
		return len(now) == 1 && now[0].WorkloadID != before[0].WorkloadID && now[0].Ready
	})
	// A redelivered event changes nothing more.
	settled := h.ctl.Instances("acme/web/web")
	if err := h.svc.SecretHandler()(context.Background(), secretChanged(t, "high")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	if now := h.ctl.Instances("acme/web/web"); len(now) != 1 || now[0].WorkloadID != settled[0].WorkloadID {
		t.Fatalf("a redelivered event replaced the instances again: %+v", now)
	}
	// The release holds none of the groups' values, only the service's
	// own keys.
	rels, err := h.client.ListServiceReleases(admin, &deploymentsv1.ListServiceReleasesRequest{ProjectId: projectID, ServiceId: "web"})
	if err != nil || len(rels.GetReleases()) != 1 || strings.Join(rels.GetReleases()[0].GetRuntimeEnvironmentKeys(), ",") != "OWN" {
		t.Fatalf("releases = %v, %v", rels, err)
	}
	// A restart of Slipway after a change it missed (its consumer down):
	// the service is rolled out with the new values when it is applied.
	if _, err := groups.Client.PatchSecret(admin, &addonsv1.PatchSecretRequest{ProjectId: projectID, SecretId: "high",
		Patch: &addonsv1.SecretPatch{Secrets: &addonsv1.SecretData{Variables: map[string]string{"LEVEL": "while down"}}}}); err != nil {
		t.Fatal(err)
	}
	h.start()
	eventually(t, "the values changed while Slipway was down served", func() bool {
		code, body := h.get(host, "/")
		return code == 200 && strings.HasPrefix(body, "while down svc ")
	})
	// A deleted service's secret files go with it.
	if _, err := h.client.DeleteService(admin, &deploymentsv1.DeleteServiceRequest{ProjectId: projectID, ServiceId: "web"}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(filesDir, teamID, projectID, "web")); !os.IsNotExist(err) {
		t.Fatalf("a deleted service's secret files are still on the host: %v", err)
	}
}

// TestServiceFailsWithoutItsSecretGroups: a service whose secret groups
// cannot be read is not started without them: its deployment fails and
// says why.
func TestServiceFailsWithoutItsSecretGroups(t *testing.T) {
	h := newHarness(t, func(o *deployments.Options) {
		o.Secrets, o.FilesDir = secretstest.Unreachable(t), t.TempDir()
	})
	h.create(webApp("Web", "v1"))
	d := h.waitStatus("web", "r000001", "FAILED")
	if !strings.Contains(d.GetStatus().GetMessage(), "secret groups could not be read") {
		t.Fatalf("deployment %v", d)
	}
	if n := len(h.ctl.Instances("acme/web/web")); n != 0 {
		t.Fatalf("%d instances started without their secret groups", n)
	}
}
