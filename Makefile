# The whole test suite is `make test`: setup (Debian packages, MinIO), vet,
# gofmt, then every Go test on SQLite and PostgreSQL, the S3 conformance
# suite against a real MinIO and the interop suite against the real
# OpenStack clients.
POSTGRES_URL ?= postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable
export ASHLAR_TEST_POSTGRES_URL ?= $(POSTGRES_URL)
export ASHLAR_CACHE ?= $(HOME)/.cache/ashlar
GOTESTSUM = go tool gotestsum --format pkgname-and-test-fails --format-hide-empty-pkg
# make test builds the Ceph drivers (rbd volume driver and image store):
# they need librados-dev and librbd-dev (setup installs them) and run
# against a one-node cluster the tests start (ASHLAR_CEPH=1). Plain
# `go build`/`go test` leave them out and need no C library.
CEPH_TAGS = ceph,pacific

.PHONY: all build build-ceph run test unit lint setup bench interop fuzz
all: build

build:
	go build -o bin/ashlar ./cmd/ashlar

# The binary with the Ceph drivers (needs librados-dev and librbd-dev).
build-ceph:
	go build -tags $(CEPH_TAGS) -o bin/ashlar ./cmd/ashlar

run:
	go run ./cmd/ashlar serve

setup:
	scripts/setup.sh

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt:"; echo "$$out"; exit 1; fi
	go vet ./...
	go vet -tags $(CEPH_TAGS) ./...

# Quick: unit and database tests, no setup, no interop.
unit:
	$(GOTESTSUM) -- -count=1 ./...

# The bounded fuzzing runs first, so the test runner's summary is the
# last thing the command prints.
test: setup lint fuzz
	ASHLAR_INTEROP=1 ASHLAR_CEPH=1 $(GOTESTSUM) -- -tags $(CEPH_TAGS) -count=1 -timeout 60m ./...

# Bounded fuzzing of the three APIs (internal/server/fuzz_test.go), each
# target for FUZZTIME on SQLite and PostgreSQL: about 45 s plus one build
# with coverage instrumentation (2-3 min cold). An input that fails is
# written to internal/server/testdata/fuzz/<target>/.
FUZZTIME ?= 15s
FUZZ_TARGETS = FuzzImageAPI FuzzVolumeAPI FuzzIdentityAPI

fuzz:
	@for t in $(FUZZ_TARGETS); do \
		echo "fuzzing $$t for $(FUZZTIME)"; \
		go test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) ./internal/server/ || exit 1; \
	done

interop: setup
	ASHLAR_INTEROP=1 $(GOTESTSUM) --format standard-verbose -- -count=1 -timeout 60m ./test/interop/...

bench:
	go test -run '^$$' -bench . -benchtime 3x ./...
