# The developer loop. .ci/run calls the same commands.
.PHONY: test vet fmt lint fuzz bench generate build capi

build:
	go build ./...

test:
	go test ./...

vet:
	go vet ./...

fmt:
	gofmt -l -w $$(git ls-files '*.go')

lint: vet
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); exit 1)

# Fuzz each decoder for a while (the normal test run replays the seed corpus).
FUZZTIME ?= 30s
fuzz:
	go test ./internal/wal -run '^$$' -fuzz FuzzDecodeRecord -fuzztime $(FUZZTIME)
	go test ./internal/wal -run '^$$' -fuzz FuzzDecodeHeader -fuzztime $(FUZZTIME)

# Benchmarks; see docs/BENCHMARKS.md for the figures and what they mean.
bench:
	go test -run '^$$' -bench . -benchtime 3s ./internal/wal ./internal/store

generate:
	go generate ./proto ./internal/sha256x2

# libcertadm.so (the certbcli.h C ABI) and the C scenario, into capi/build/.
capi:
	$(MAKE) -C capi
