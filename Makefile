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

# --- QEMU harness (test/qemu, see test/qemu/README.md) -----------------------
# Boots a real (small) live system built from Debian packages. Needs root and
# Debian's apt (the scripts install missing host packages). One VM at a time.
QEMU_T := test/qemu

.PHONY: qemu-fetch qemu-images qemu-smoke qemu-smoke-tools qemu-e2e qemu-lint

qemu-fetch:
	$(QEMU_T)/fetch.sh

qemu-images: build qemu-fetch
	$(QEMU_T)/mkinitrd.sh $(QEMU_T)/out/initrd.img
	$(QEMU_T)/mklive.sh $(QEMU_T)/out/live.iso

# Boot the live medium; the initramfs builds live-rw and the md array with
# `livemigrate boot snapshot/wrap`.
qemu-smoke: build
	$(QEMU_T)/smoke.sh --no-build --stack livemigrate

# The same with dmsetup/mdadm building the stack (the reference).
qemu-smoke-tools: build
	$(QEMU_T)/smoke.sh --no-build --stack tools

# Migrate the live system onto a disk while a writer runs, boot the disk
# alone, check every acknowledged record and the filesystem.
qemu-e2e: build
	$(QEMU_T)/e2e.sh --no-build

qemu-lint:
	command -v shellcheck >/dev/null || apt-get install -y -qq shellcheck
	shellcheck -x -s bash $(QEMU_T)/*.sh
	shellcheck -x -s sh $(QEMU_T)/initramfs/init.sh $(QEMU_T)/guest/*.sh
