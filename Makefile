# livemigrate build and test entry points.
# Downloads (Go modules, Debian packages, the kernel) are cached outside the
# tree: Go in its module cache, the rest in $(LM_CACHE).

GO        ?= go
LM_CACHE  ?= /var/cache/livemigrate
BIN       := bin
export LM_CACHE

GOFLAGS_STATIC := CGO_ENABLED=0
LDFLAGS        := -s -w

.PHONY: all build test unit vet fmt-check e2e vmtest demo clean deps

all: build

build:
	$(GOFLAGS_STATIC) $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/livemigrate ./cmd/livemigrate
	$(GOFLAGS_STATIC) $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/lmtest ./test/qemu/lmtest

vet:
	$(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed: $$out"; exit 1; fi

unit:
	$(GO) test -count=1 ./...

clean:
	rm -rf $(BIN) test/qemu/out
