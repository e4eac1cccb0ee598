# pggit-monitor developer targets. `make help` lists them.
SQLC  := go tool -modfile=tools/go.mod sqlc
GOOSE := go tool -modfile=tools/go.mod goose

.DEFAULT_GOAL := help

.PHONY: help
help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: demo
demo: ## Run the whole pipeline on a throwaway database (or DATABASE_URL)
	go run ./cmd/pggit-monitor demo

.PHONY: demo-serve
demo-serve: ## The demo, then its web console kept up until Ctrl-C
	go run ./cmd/pggit-monitor demo -serve

.PHONY: test
test: ## Run every test against a real PostgreSQL (TEST_DATABASE_URL or local binaries)
	go test -race -count=1 ./...

.PHONY: generate
generate: ## Regenerate gen/ from queries/ and sql/migrations/ with the pinned sqlc
	go generate ./gen

.PHONY: verify
verify: ## gofmt, go vet, generated code current (sqlc diff), sqlc vet and plpgsql_check on a migrated database
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	go vet ./...
	cd tools && go mod verify >/dev/null
	$(SQLC) diff
	go run ./internal/cmd/withdb -- sh -c '$(SQLC) vet && go run ./internal/cmd/plcheck'

.PHONY: bench
bench: ## Benchmarks, as ratios against references measured in the same run
	go run ./internal/cmd/bench -md

.PHONY: bench-scale
bench-scale: ## Scale benchmark: 100 M samples loaded (~40 min on 2 cores, ~40 GB of disk), then ingestion, recalculation, detection, views, retention, storage
	go run ./internal/cmd/bench -scale -md -v

.PHONY: eval
eval: ## Detection quality on synthetic streams with known changes (see docs/DETECTION-QUALITY.md)
	go run ./internal/cmd/eval -md

.PHONY: tidy
tidy: ## go mod tidy for the module and the tools module
	go mod tidy
	cd tools && go mod tidy
