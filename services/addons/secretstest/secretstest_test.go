package secretstest_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	addonsv1 "github.com/slipwayhq/slipway/gen/slipway/addons/v1"
	"github.com/slipwayhq/slipway/services/addons/secretstest"
)

// TestServer: the admin creates a group linking the addon in the tests'
// project, and a workload's internal resolution gets the addon's values
// under their alias and its socket directory, holding the note, to mount.
func TestServer(t *testing.T) {
	srv := secretstest.New(t, "acme", "web", "Bearer admin", slog.New(slog.DiscardHandler))
	admin := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer admin")
	if _, err := srv.Client.CreateSecret(admin, &addonsv1.CreateSecretRequest{ProjectId: "web", Spec: &addonsv1.SecretSpec{
		Name: "db", SecretType: "environment",
		AddonDependencies: []*addonsv1.SecretAddonDependency{{AddonId: secretstest.AddonID,
			Keys: []*addonsv1.SecretAddonKey{{KeyName: "PASSWORD", Aliases: []string{"DB_PASSWORD"}}}}},
	}}); err != nil {
		t.Fatal(err)
	}
	env, err := srv.Client.ResolveEnvironment(srv.Internal(context.Background()),
		&addonsv1.ResolveEnvironmentRequest{TeamId: "acme", ProjectId: "web", Kind: "job", Id: "nightly"})
	if err != nil {
		t.Fatal(err)
	}
	if got := env.GetVariables()["DB_PASSWORD"]; got != secretstest.AddonPassword {
		t.Fatalf("DB_PASSWORD = %q, variables %v", got, env.GetVariables())
	}
	mounts := env.GetAddonMounts()
	if len(mounts) != 1 || mounts[0].GetAddonId() != secretstest.AddonID {
		t.Fatalf("mounts %v", mounts)
	}
	if note, err := os.ReadFile(filepath.Join(mounts[0].GetSource(), "note")); err != nil || string(note) != secretstest.SocketNote+"\n" {
		t.Fatalf("the socket directory's note: %q, %v", note, err)
	}
	// Without the admin's credential, nothing.
	if _, err := srv.Client.ListSecrets(context.Background(), &addonsv1.ListSecretsRequest{ProjectId: "web"}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("anonymous list: %v", err)
	}
}

// TestUnreachable: the client's calls fail as unavailable.
func TestUnreachable(t *testing.T) {
	_, err := secretstest.Unreachable(t).ListSecrets(context.Background(), &addonsv1.ListSecretsRequest{ProjectId: "web"})
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("got %v, want unavailable", err)
	}
}
