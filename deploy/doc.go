// Package deploy holds no code. It is the home of the container build
// (deploy/Dockerfile), of the local stack's database bootstrap
// (deploy/postgres) and of the tests that check them together with the
// repository's docker-compose.yml and .dockerignore.
//
// The tests use the same parsers as the real tools: compose-go, the loader of
// `docker compose`, and BuildKit's Dockerfile frontend parser. They need no
// Docker engine:
//
//	cd deploy && go test ./...
//
// This is a separate module so that those tools' dependencies stay out of the
// slipway binary's module graph.
package deploy
