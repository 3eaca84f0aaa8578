package addons

import (
	"context"

	gwruntime "github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"

	addonsv1 "github.com/slipwayhq/slipway/gen/slipway/addons/v1"
	"github.com/slipwayhq/slipway/pkg/component"
	"github.com/slipwayhq/slipway/pkg/secret"
)

// secretBoxPurpose derives the key sealing secret groups' values from the
// encryption key, apart from every other use of it (addon credentials
// included).
const secretBoxPurpose = "addons-secrets"

// NewSecretBox returns the box that seals secret groups' values under a
// key derived from the component's encryption key.
func NewSecretBox(key []byte) (*secret.Box, error) { return secret.NewBox(key, secretBoxPurpose) }

// ComponentService is the SecretsService the addons component serves.
func (s *SecretsServer) ComponentService() component.Service {
	return component.Service{Desc: &addonsv1.SecretsService_ServiceDesc, Impl: s}
}

// ComponentConsumers are the secret groups' durable consumers: a deleted
// project's groups are deleted.
func (s *SecretsServer) ComponentConsumers() []component.Consumer {
	return []component.Consumer{component.ProjectDeletedConsumer(SecretProjectsConsumer, s.DeleteProjectSecrets)}
}

// RegisterSecretsGateway adds the SecretsService's REST routes to the
// gateway's mux (the component's API.Register calls it next to the
// AddonsService's).
func RegisterSecretsGateway(ctx context.Context, mux *gwruntime.ServeMux, conn grpc.ClientConnInterface) error {
	return addonsv1.RegisterSecretsServiceHandlerClient(ctx, mux, addonsv1.NewSecretsServiceClient(conn))
}
