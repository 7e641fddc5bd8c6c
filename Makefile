# livemigrate build and test entry points.
# Downloads (Go modules, Debian packages, the kernel) are cached outside the
# tree: Go in its module cache, the rest in $(LM_CACHE).

# scripts/go.sh runs a Go at least as new as go.mod asks for, installing it
# from the Go module proxy into $(LM_CACHE) on machines that have none.
GO        ?= $(CURDIR)/scripts/go.sh
LM_CACHE  ?= /var/cache/livemigrate
BIN       := bin
export LM_CACHE

GOFLAGS_STATIC := CGO_ENABLED=0
LDFLAGS        := -s -w

.PHONY: all build test test-steps unit vet fmt-check fuzz deps demo clean

all: build

build:
	$(GOFLAGS_STATIC) $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/livemigrate ./cmd/livemigrate
	$(GOFLAGS_STATIC) $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/lmtest ./test/qemu/lmtest

# Package tests that need the real kernel, built static to run in the VM.
VMTEST_PKGS := mdraid overlay resize dmmirror
vmtest-bins:
	mkdir -p $(BIN)/tests
	for p in $(VMTEST_PKGS); do \
		$(GOFLAGS_STATIC) $(GO) test -c -trimpath -o $(BIN)/tests/$$p.test ./internal/$$p || exit 1; \
	done

vet:
	$(GO) vet ./...

fmt-check:
	@out=$$("$$($(GO) env GOROOT)/bin/gofmt" -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed: $$out"; exit 1; fi

# LM_REQUIRE_REFEREES=1: the sgdisk/sfdisk referees (internal/partition)
# fail instead of skipping when the tools are missing (make deps installs
# them).
unit:
	LM_REQUIRE_REFEREES=1 $(GO) test -count=1 ./...

FUZZTIME ?= 100000x
fuzz:
	GO=$(GO) scripts/fuzz.sh $(FUZZTIME)

# Host packages (apt) and Go modules. Everything lands outside the tree.
deps:
	test/qemu/deps.sh
	$(GO) mod download

# Everything: static checks, unit tests, bounded fuzzing, then the proofs in
# QEMU: package tests against the real md/dm, the busybox live boot,
# refusals of bad targets, faults, the wizard, the end-to-end migration on
# both COW kinds, then the real Debian 13 live ISO with each initrd flavour,
# and the copy method on Debian's own live-build layout (overlayfs).
# Ends with "vm retries: N (...)": the boots vm.Boot restarted after an
# emulator hang (see test/README.md), printed whether the run passed or
# failed, so a retry is never hidden.
test:
	@$(GO) run ./test/vm/cmd/retries -reset
	@rc=0; $(MAKE) test-steps || rc=$$?; $(GO) run ./test/vm/cmd/retries; exit $$rc

test-steps: deps fmt-check vet qemu-lint debian-lint unit fuzz qemu-all debian-all livebuild-test

# The demo: build the live image, boot it, migrate it onto a blank disk while
# a writer runs, boot the disk alone and check it.
demo: deps
	LM_VERBOSE=$${LM_VERBOSE:-1} $(MAKE) qemu-e2e

clean:
	rm -rf $(BIN) test/qemu/out

# --- QEMU harness (test/qemu, see test/qemu/README.md) -----------------------
# Boots a real (small) live system built from Debian packages. Needs root and
# Debian's apt (the scripts install missing host packages). One VM at a time.
QEMU_T := test/qemu
# The suites ported to Go (test/suites, see test/README.md): LM_VM=1 lets
# them boot; -run picks the test and its row (TestSmoke/tools).
VM_GO := LM_VM=1 $(GO) test -count=1 -v -timeout 0 ./test/suites -run

.PHONY: qemu-hang-selftest qemu-all qemu-faults qemu-tui qemu-refuse qemu-fetch qemu-images qemu-smoke qemu-smoke-tools qemu-e2e qemu-vmtest qemu-lint vmtest-bins

qemu-fetch:
	$(QEMU_T)/fetch.sh

qemu-images: build qemu-fetch
	$(QEMU_T)/mkinitrd.sh $(QEMU_T)/out/initrd.img
	$(QEMU_T)/mklive.sh $(QEMU_T)/out/live.iso

# Boot the live medium; the initramfs builds live-rw and the md array with
# `livemigrate boot snapshot/wrap`.
qemu-smoke: build
	$(VM_GO) '^TestSmoke$$/^livemigrate$$'

# The same with dmsetup/mdadm building the stack (the reference).
qemu-smoke-tools: build
	$(VM_GO) '^TestSmoke$$/^tools$$'

# Migrate the live system onto a disk while a writer runs, boot the disk
# alone, check every acknowledged record and the filesystem.
qemu-e2e: build
	$(VM_GO) '^TestE2E$$/^ram$$'

# Run the mdraid, overlay and resize tests that need md, dm and loop in the VM.
qemu-vmtest: build vmtest-bins
	$(VM_GO) '^TestVMTest$$'

# The emulator-hang detection and single retry (test/vm's Boot), against
# a fake QEMU (seconds, no VM).
qemu-hang-selftest:
	$(GO) test -count=1 -v -run '^(TestHang|TestBootOverlay)$$' ./test/vm

qemu-all: build vmtest-bins qemu-hang-selftest
	$(VM_GO) '^TestSmoke$$/^livemigrate$$'
	$(VM_GO) '^TestVMTest$$'
	$(VM_GO) '^TestRefuse$$'
	$(VM_GO) '^TestE2E$$'
	$(VM_GO) '^TestTUI$$'
	$(VM_GO) '^TestFaults$$'

# The wizard in tmux on the live system, driven by send-keys to a migration.
qemu-tui: build
	$(VM_GO) '^TestTUI$$'

# Faults and interruptions: target errors and unplug mid-copy, COW nearly
# full, signals at each step, SIGKILL and rerun, power cut, two at once.
qemu-faults: build
	$(VM_GO) '^TestFaults$$'

# Bad targets: each refused with its exit code, nothing written anywhere.
qemu-refuse: build
	$(VM_GO) '^TestRefuse$$'

qemu-lint:
	command -v shellcheck >/dev/null || apt-get install -y -qq shellcheck
	shellcheck -x -s bash $(QEMU_T)/*.sh
	shellcheck -x -s sh $(QEMU_T)/initramfs/init.sh $(QEMU_T)/guest/*.sh

# --- The Debian live ISOs (test/qemu/debian) ---------------------------------
# Real Debian live systems (mmdebstrap, cached in $(LM_CACHE)/debian) on
# GRUB-bootable ISOs with one initrd per flavour, one medium per suite and
# root filesystem in $(QEMU_T)/out/debian-MEDIUM:
#   trixie         Debian 13, ext4 with metadata_csum_seed: dracut 106
#                  (dmsquash-live + the livemigrate module), initramfs-tools
#                  (boot=livemigrate), mkosi-initrd (mkosi 25, the boot
#                  step as systemd units: initrd-hook/systemd), and
#                  dracut-nohook (dmsquash-live as shipped: the dm-mirror
#                  method)
#   trixie-xfs, trixie-btrfs   the same with an XFS or btrfs rootfs.img
#   bookworm       Debian 12, ext4: dracut, dracut without systemd,
#                  initramfs-tools, dracut-nohook
# Boots take minutes under TCG; one VM at a time. The boots are the rows
# of TestDebian (make test's), TestDebianFull (the rest of the matrix,
# make test-full) and TestDebianMore (debian-boot and bookworm's third
# migrate); test/suites/debian_test.go lists them. DEBIAN_SUITE and
# DEBIAN_FLAVOURS pick the rows of debian-boot, debian-reboot,
# debian-migrate, debian-grub and debian-install.
DEBIAN_T        := test/qemu/debian
DEBIAN_SUITE    ?= trixie
DEBIAN_FLAVOURS ?= dracut initramfs-tools mkosi
empty :=
space := $(empty) $(empty)
DEBIAN_FRE      := ($(subst $(space),|,$(strip $(DEBIAN_FLAVOURS))))
DEBIAN_ANY      := ^TestDebian(Full|More)?$$

.PHONY: debian-all debian-full debian-root debian-iso debian-iso-bookworm debian-boot debian-reboot debian-grub debian-migrate debian-install debian-lint test-full

debian-root:
	LM_DEBIAN_SUITE=trixie $(DEBIAN_T)/mkroot.sh
	LM_DEBIAN_SUITE=bookworm $(DEBIAN_T)/mkroot.sh

# Each medium: the root and the initrds come from the cache when their
# inputs are unchanged; the ISO is assembled again (a minute). make test's
# rows are all on trixie's media; bookworm's medium is built for make
# test-full and for DEBIAN_SUITE=bookworm.
debian-iso: build $(if $(filter bookworm,$(DEBIAN_SUITE)),debian-iso-bookworm)
	LM_DEBIAN_SUITE=trixie LM_FLAVOURS="dracut initramfs-tools mkosi dracut-nohook" $(DEBIAN_T)/mkiso.sh $(QEMU_T)/out/debian-trixie
	LM_DEBIAN_SUITE=trixie LM_FLAVOURS="dracut initramfs-tools mkosi" LM_ROOTFS_FS=xfs $(DEBIAN_T)/mkiso.sh $(QEMU_T)/out/debian-trixie-xfs
	LM_DEBIAN_SUITE=trixie LM_FLAVOURS="dracut initramfs-tools mkosi" LM_ROOTFS_FS=btrfs $(DEBIAN_T)/mkiso.sh $(QEMU_T)/out/debian-trixie-btrfs

debian-iso-bookworm: build
	LM_DEBIAN_SUITE=bookworm LM_FLAVOURS="dracut dracut-nosystemd initramfs-tools dracut-nohook" $(DEBIAN_T)/mkiso.sh $(QEMU_T)/out/debian-bookworm

# Boot each flavour to multi-user with / on the md array; power off cleanly.
debian-boot: debian-iso
	$(VM_GO) '$(DEBIAN_ANY)/^$(DEBIAN_SUITE)-$(DEBIAN_FRE)-boot$$'

# The same ending with `systemctl reboot`.
debian-reboot: debian-iso
	$(VM_GO) '$(DEBIAN_ANY)/^$(DEBIAN_SUITE)-$(DEBIAN_FRE)-reboot$$'

# The ISO through GRUB, BIOS (SeaBIOS) and UEFI (OVMF).
debian-grub: debian-iso
	$(VM_GO) '$(DEBIAN_ANY)/^$(DEBIAN_SUITE)-dracut-grub-(bios|uefi)$$'

# Migrate the live system onto a disk under a writer, power off, boot the
# disk alone, verify, reboot.
debian-migrate: debian-iso
	$(VM_GO) '$(DEBIAN_ANY)/^$(DEBIAN_SUITE)-$(DEBIAN_FRE)-migrate$$'

# Migrate WITH finalize and boot the target alone through its own GRUB
# (the suite's rows, its XFS and btrfs media's too): a whole disk under
# SeaBIOS, all defaults (live user locked, hostname kept), then a password
# set by hand and the same migrate again (it must finish idempotently:
# identities, the password and the ESP kept); the same with the first run
# failing at GRUB (exit 23) and the rerun installing it; a whole disk
# under OVMF, from a zram COW, with --hostname, --password-file and
# Ctrl+C's SIGINT during finalize; a partition next to a data partition
# (BIOS), chosen in the wizard with a hostname and a password.
debian-install: debian-iso
	$(VM_GO) '$(DEBIAN_ANY)/^$(DEBIAN_SUITE)(-xfs|-btrfs)?-(dracut-|dracut-nohook-)?install-'

# What make test runs of the Debian media (TestDebian): each capability
# once, on trixie.
debian-all: debian-iso
	$(VM_GO) '^TestDebian$$'

# The rest of the matrix (TestDebianFull), bookworm's rows among them.
debian-full: debian-iso debian-iso-bookworm
	$(VM_GO) '^TestDebianFull$$'

# make test, then the rest of the matrix.
test-full:
	@$(GO) run ./test/vm/cmd/retries -reset
	@rc=0; $(MAKE) test-steps debian-full livebuild-full || rc=$$?; $(GO) run ./test/vm/cmd/retries; exit $$rc

debian-lint:
	command -v shellcheck >/dev/null || apt-get install -y -qq shellcheck
	shellcheck -x -s bash $(DEBIAN_T)/*.sh $(QEMU_T)/livebuild/*.sh
	shellcheck -x -s sh $(DEBIAN_T)/guest/run $(QEMU_T)/livebuild/tmpfsroot

# --- The live-build medium (test/qemu/livebuild) -----------------------------
# Debian's official live layout, built with live-build from Debian packages
# (cached in $(LM_CACHE)/livebuild): / an overlayfs under live-boot. The
# copy method's medium (issue 14).
.PHONY: livebuild-bench livebuild-test livebuild-full
# The copy method's data path against rsync -aHAXSx and unsquashfs in the
# same guest, after a session changed the root; prints a
# "copy-bench summary" line.
livebuild-bench: build
	$(VM_GO) '^TestLiveBuildCopyBench$$'

# The copy method end to end: the live-build medium migrated under a
# record writer and a file-ops writer, the soft-reboot into the target,
# the checks there, then the target alone by SeaBIOS; prints a
# "copy-migrate summary" line.
.PHONY: livebuild-copy
livebuild-copy: build
	$(VM_GO) '^TestLiveBuildCopy$$'

# What make test runs of it: the copy method from the overlayfs root, by
# BIOS (the kernel booted directly, a killed and an interrupted run first,
# the target then alone by SeaBIOS), and from the same system booted with
# / a tmpfs its initramfs unpacked (the same, no medium at all). The UEFI
# row is make test-full's.
livebuild-test: build
	$(VM_GO) '^TestLiveBuildCopy$$/^(bios|tmpfs)$$'

livebuild-full: build
	$(VM_GO) '^TestLiveBuildCopy$$/^uefi$$'
