package addons_test

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"

	addonsv1 "github.com/slipwayhq/slipway/gen/slipway/addons/v1"
	"github.com/slipwayhq/slipway/pkg/events"
	"github.com/slipwayhq/slipway/services/addons"
	"github.com/slipwayhq/slipway/services/addons/engine"
)

// TestSettings: patch, put, scale, network settings and version on a
// running addon; what cannot be honoured is a clear 4xx and changes
// nothing.
func TestSettings(t *testing.T) {
	h := newHarness(t)
	h.create(spec("settings-db", engine.TypeRedis))
	h.waitStatus("settings-db", addons.StatusRunning)
	ctx := as(adminCred)

	desc := "sessions"
	patched, err := h.client.PatchAddon(ctx, &addonsv1.PatchAddonRequest{ProjectId: projectID, AddonId: "settings-db",
		Spec: &addonsv1.AddonPatch{Description: &desc, Tags: []string{"cache"}}})
	if err != nil || patched.GetAddon().GetDescription() != "sessions" || patched.GetAddon().GetTags()[0] != "cache" {
		t.Fatalf("patch %v %v", patched, err)
	}

	// Scale: storage grows within the options; shrinking, other sizes
	// and more replicas are refused.
	storage := int32(2048)
	if _, err := h.client.ScaleAddon(ctx, &addonsv1.ScaleAddonRequest{ProjectId: projectID, AddonId: "settings-db", Storage: &storage}); err != nil {
		t.Fatal(err)
	}
	if got := h.get("settings-db").GetBilling().GetStorage(); got != 2048 {
		t.Fatalf("storage %d", got)
	}
	for _, c := range []struct {
		req   *addonsv1.ScaleAddonRequest
		field string
	}{
		{&addonsv1.ScaleAddonRequest{Storage: ptr(int32(1024))}, "cannot shrink"},
		{&addonsv1.ScaleAddonRequest{Storage: ptr(int32(3000))}, "billing.storage"},
		{&addonsv1.ScaleAddonRequest{Replicas: ptr(int32(2))}, "billing.replicas"},
		{&addonsv1.ScaleAddonRequest{DeploymentPlan: ptr("nf-none")}, "billing.deploymentPlan"},
	} {
		c.req.ProjectId, c.req.AddonId = projectID, "settings-db"
		_, err := h.client.ScaleAddon(ctx, c.req)
		wantCode(t, err, codes.InvalidArgument, c.field)
	}

	// A plan change restarts the server: while the addon is busy (a
	// backup) the whole patch is refused and nothing of it is stored.
	if _, err := h.store.UpdateAddon(context.Background(), teamID, projectID, "settings-db", func(a *addons.Addon) ([]events.Event, error) {
		a.Status = addons.StatusBackup
		return nil, nil
	}); err != nil {
		t.Fatal(err)
	}
	busyDesc := "changed while busy"
	_, err = h.client.PatchAddon(ctx, &addonsv1.PatchAddonRequest{ProjectId: projectID, AddonId: "settings-db",
		Spec: &addonsv1.AddonPatch{Description: &busyDesc, Billing: &addonsv1.AddonBillingPatch{DeploymentPlan: ptr("nf-compute-50")}}})
	wantCode(t, err, codes.FailedPrecondition, "ADDON_BUSY")
	if got := h.get("settings-db"); got.GetDescription() != "sessions" || got.GetBilling().GetDeploymentPlan() != "nf-compute-20" {
		t.Fatalf("a refused patch was stored: %v", got)
	}
	if _, err := h.store.UpdateAddon(context.Background(), teamID, projectID, "settings-db", func(a *addons.Addon) ([]events.Event, error) {
		a.Status = addons.StatusRunning
		return nil, nil
	}); err != nil {
		t.Fatal(err)
	}

	// Network settings: external access needs TLS (Northflank's rule);
	// with both, the credentials show the server's loopback address (the
	// TLS round trip itself is TestNetworkSettingsTLS).
	_, err = h.client.UpdateAddonNetworkSettings(ctx, &addonsv1.UpdateAddonNetworkSettingsRequest{ProjectId: projectID, AddonId: "settings-db", ExternalAccessEnabled: ptr(true)})
	wantCode(t, err, codes.InvalidArgument, "externalAccessEnabled")
	creds, err := h.client.GetAddonCredentials(ctx, &addonsv1.GetAddonCredentialsRequest{ProjectId: projectID, AddonId: "settings-db"})
	if err != nil || creds.GetEnvs().AsMap()["EXTERNAL_HOST"] != nil {
		t.Fatalf("external values before external access: %v %v", creds.GetEnvs(), err)
	}
	if _, err := h.client.UpdateAddonNetworkSettings(ctx, &addonsv1.UpdateAddonNetworkSettingsRequest{ProjectId: projectID, AddonId: "settings-db", TlsEnabled: ptr(true), ExternalAccessEnabled: ptr(true)}); err != nil {
		t.Fatal(err)
	}
	h.waitStatus("settings-db", addons.StatusRunning)
	creds, err = h.client.GetAddonCredentials(ctx, &addonsv1.GetAddonCredentialsRequest{ProjectId: projectID, AddonId: "settings-db"})
	if err != nil || creds.GetEnvs().AsMap()["EXTERNAL_HOST"] != "127.0.0.1" || creds.GetEnvs().AsMap()["EXTERNAL_PORT"] == nil {
		t.Fatalf("external values %v %v", creds.GetEnvs(), err)
	}
	if a := h.get("settings-db"); !a.GetExternalAccessEnabled() || !a.GetSpec().GetConfig().GetNetworking().GetExternalAccessEnabled() {
		t.Fatalf("externalAccessEnabled not shown: %v", a)
	}

	// Version: the current one is a no-op; one not available here is 400.
	v, err := h.client.GetAddonVersion(ctx, &addonsv1.GetAddonVersionRequest{ProjectId: projectID, AddonId: "settings-db"})
	if err != nil || v.GetVersion() == "" || v.GetLifecycleStatus() != "active" {
		t.Fatalf("version %v %v", v, err)
	}
	if _, err := h.client.UpdateAddonVersion(ctx, &addonsv1.UpdateAddonVersionRequest{ProjectId: projectID, AddonId: "settings-db", Version: v.GetVersion()}); err != nil {
		t.Fatal(err)
	}
	_, err = h.client.UpdateAddonVersion(ctx, &addonsv1.UpdateAddonVersionRequest{ProjectId: projectID, AddonId: "settings-db", Version: "1.0"})
	wantCode(t, err, codes.InvalidArgument, "not available here")

	// Put: the same name updates; another type is refused.
	put := spec("settings-db", engine.TypeRedis)
	put.Description = "put"
	put.Billing.Storage = 2048
	got, err := h.client.PutAddon(ctx, &addonsv1.PutAddonRequest{ProjectId: projectID, Spec: put})
	if err != nil || got.GetAddon().GetDescription() != "put" {
		t.Fatalf("put %v %v", got, err)
	}
	put.Type = engine.TypePostgreSQL
	_, err = h.client.PutAddon(ctx, &addonsv1.PutAddonRequest{ProjectId: projectID, Spec: put})
	wantCode(t, err, codes.FailedPrecondition, "ADDON_TYPE_MISMATCH")
	// The put turned TLS off (its spec has none): the server restarts
	// with plain TCP and runs.
	if a := h.waitStatus("settings-db", addons.StatusRunning); a.GetTlsEnabled() || a.GetExternalAccessEnabled() {
		t.Fatalf("networking after the put: %v", a)
	}
	if !strings.HasPrefix(h.get("settings-db").GetAppId(), projectID+"/") {
		t.Fatal("appId")
	}
}

func ptr[T any](v T) *T { return &v }

// TestReset: reset empties the addon's data and starts it again with the
// same credentials; a reset interrupted by a restart of Slipway is
// finished at the next start; IP policies are refused.
func TestReset(t *testing.T) {
	h := newHarness(t)
	h.create(spec("wiped", engine.TypeRedis))
	h.waitStatus("wiped", addons.StatusRunning)
	h.redis("wiped", "SET a 1\nSET b 2\n")
	before, _ := h.client.GetAddonCredentials(as(adminCred), &addonsv1.GetAddonCredentialsRequest{ProjectId: projectID, AddonId: "wiped"})
	if _, err := h.client.ResetAddon(as(adminCred), &addonsv1.ResetAddonRequest{ProjectId: projectID, AddonId: "wiped"}); err != nil {
		t.Fatal(err)
	}
	h.waitStatus("wiped", addons.StatusRunning)
	if n := h.redis("wiped", "DBSIZE\n"); n != "0" {
		t.Fatalf("after a reset: %s keys", n)
	}
	after, _ := h.client.GetAddonCredentials(as(adminCred), &addonsv1.GetAddonCredentialsRequest{ProjectId: projectID, AddonId: "wiped"})
	if before.GetSecrets().AsMap()["PASSWORD"] != after.GetSecrets().AsMap()["PASSWORD"] {
		t.Fatal("a reset changed the password")
	}

	// A reset Slipway did not finish: the next start does.
	h.redis("wiped", "SET c 3\nSAVE\n")
	if _, err := h.store.UpdateAddon(context.Background(), teamID, projectID, "wiped", func(a *addons.Addon) ([]events.Event, error) {
		a.Status = addons.StatusResetting
		return nil, nil
	}); err != nil {
		t.Fatal(err)
	}
	h.start()
	h.waitStatus("wiped", addons.StatusRunning)
	if n := h.redis("wiped", "DBSIZE\n"); n != "0" {
		t.Fatalf("after an interrupted reset: %s keys", n)
	}

	_, err := h.client.UpdateAddonSecurity(as(adminCred), &addonsv1.UpdateAddonSecurityRequest{ProjectId: projectID, AddonId: "wiped",
		IpPolicies: []*addonsv1.SecurityPolicy{{Address: "10.0.0.1", Action: "ALLOW"}}})
	wantCode(t, err, codes.InvalidArgument, "ipPolicies")
	if _, err := h.client.UpdateAddonSecurity(as(adminCred), &addonsv1.UpdateAddonSecurityRequest{ProjectId: projectID, AddonId: "wiped"}); err != nil {
		t.Fatal(err)
	}
	// A viewer may not reset (Delete permission).
	_, err = h.client.ResetAddon(as(viewerCred), &addonsv1.ResetAddonRequest{ProjectId: projectID, AddonId: "wiped"})
	wantCode(t, err, codes.PermissionDenied, "")
}
