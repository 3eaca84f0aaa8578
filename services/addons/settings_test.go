package addons_test

import (
	"strings"
	"testing"

	"google.golang.org/grpc/codes"

	addonsv1 "github.com/slipwayhq/slipway/gen/slipway/addons/v1"
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

	// Network settings: TLS cannot be honoured; external access shows the
	// server's loopback address in the credentials.
	_, err = h.client.UpdateAddonNetworkSettings(ctx, &addonsv1.UpdateAddonNetworkSettingsRequest{ProjectId: projectID, AddonId: "settings-db", TlsEnabled: ptr(true)})
	wantCode(t, err, codes.InvalidArgument, "tlsEnabled")
	creds, err := h.client.GetAddonCredentials(ctx, &addonsv1.GetAddonCredentialsRequest{ProjectId: projectID, AddonId: "settings-db"})
	if err != nil || creds.GetEnvs().AsMap()["EXTERNAL_HOST"] != nil {
		t.Fatalf("external values before external access: %v %v", creds.GetEnvs(), err)
	}
	if _, err := h.client.UpdateAddonNetworkSettings(ctx, &addonsv1.UpdateAddonNetworkSettingsRequest{ProjectId: projectID, AddonId: "settings-db", ExternalAccessEnabled: ptr(true)}); err != nil {
		t.Fatal(err)
	}
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
	if st := h.get("settings-db").GetStatus(); st != addons.StatusRunning {
		t.Fatalf("status after the settings: %s", st)
	}
	if !strings.HasPrefix(h.get("settings-db").GetAppId(), projectID+"/") {
		t.Fatal("appId")
	}
}

func ptr[T any](v T) *T { return &v }
