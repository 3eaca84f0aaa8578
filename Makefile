# Slipway's developer commands. The two that matter:
#   make run    run Slipway, every component in one process, embedded defaults
#   make test   install what the tests need, then lint, check generated code
#               and run every test (unit, integration, end to end)

GO    ?= go
BIN   := $(CURDIR)/bin
# Every Go module of the workspace; each must also build on its own.
MODULES := . gen deploy
# Protoc plugins and buf, pinned in tools/go.mod.
TOOLS := github.com/bufbuild/buf/cmd/buf \
	google.golang.org/protobuf/cmd/protoc-gen-go \
	google.golang.org/grpc/cmd/protoc-gen-go-grpc \
	github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-grpc-gateway \
	github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-openapiv2

.DEFAULT_GOAL := help

.PHONY: help
help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

.PHONY: run
run: build ## run Slipway on http://127.0.0.1:8080 (all components, SQLite, embedded NATS)
	$(BIN)/slipway serve

.PHONY: build
build: ## build bin/slipway
	$(GO) build -o $(BIN)/slipway ./cmd/slipway

.PHONY: tools
tools: ## build the pinned proto toolchain into bin/
	cd tools && GOWORK=off $(GO) build -o $(BIN)/ $(TOOLS)

.PHONY: generate
generate: tools ## regenerate gen/ from proto/
	rm -rf gen/slipway gen/openapi/slipway.swagger.json gen/openapi/slipway.postman_collection.json
	$(BIN)/buf generate
	$(GO) run ./cmd/postman-collection -in gen/openapi/slipway.swagger.json -out gen/openapi/slipway.postman_collection.json

.PHONY: check-generated
check-generated: generate ## fail when gen/ is not what proto/ generates
	@git diff --exit-code --stat -- gen || { echo "gen/ is stale: run 'make generate' and commit"; exit 1; }
	@test -z "$$(git status --porcelain -- gen)" || { git status --porcelain -- gen; echo "gen/ has untracked files: run 'make generate' and commit"; exit 1; }

.PHONY: lint
lint: tools ## buf lint, gofmt, go vet on every module
	$(BIN)/buf lint
	@bad=$$(gofmt -l $$(git ls-files '*.go' | grep -v '^gen/')); test -z "$$bad" || { echo "not gofmt-ed:"; echo "$$bad"; exit 1; }
	@for m in $(MODULES); do echo "go vet ($$m)"; (cd $$m && $(GO) vet ./...) || exit 1; done
	@for m in $(MODULES); do echo "standalone build ($$m)"; (cd $$m && GOWORK=off $(GO) build ./...) || exit 1; done

.PHONY: deps
deps: ## install the system packages and npm modules the tests need
	scripts/install-deps.sh
	npm ci --prefix e2e/js --no-audit --no-fund

.PHONY: test
test: deps lint check-generated test-go ## everything CI runs

.PHONY: test-go
test-go: ## run every Go test (needs `make deps` once)
	$(GO) test -count=1 -timeout 30m ./...
	cd deploy && $(GO) test -count=1 ./...

.PHONY: bench
bench: ## benchmarks against the real binary: API load (SQLite, PostgreSQL), job runs, builds and addons (process, docker on Podman)
	$(GO) test ./bench -run '^$$' -bench . -benchtime 1x -count 1 -timeout 30m

.PHONY: fuzz
fuzz: ## explore the gateway's request decoding for a minute
	$(GO) test ./gateway -run '^$$' -fuzz FuzzRequestBody -fuzztime 60s

.PHONY: clean
clean: ## remove build outputs and the default data directory
	rm -rf $(BIN) data
