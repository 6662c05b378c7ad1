# keel — see README.md. `make demo` and `make test` install what they need.

include tools/versions.env

export PATH := /usr/local/go/bin:$(PATH)
GO      ?= go
BIN     := bin
OUT     := out
KEEL    := $(BIN)/keel

# Debian packages the build, the tests and the demo need (ovmf: UEFI
# firmware for booting the -efi formats; qemu-utils: qemu-img for qcow2 and vmdk;
# libcap-dev and python3: crun's build, whose configure stops without
# libcap's headers or a Python 3, and which needs libseccomp-dev too;
# squashfs-tools: unsquashfs, a second reader for keel's squashfs writer).
APT_PACKAGES := qemu-system-x86 busybox-static kmod libseccomp-dev cpio e2fsprogs gcc libc6-dev pkg-config jq ovmf qemu-utils libcap-dev python3 squashfs-tools

.PHONY: all deps keel images demo demo-build test test-go test-boot bench fuzz clean

all: keel

# Installs only what is missing, so a warm machine pays nothing.
deps:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "apt-get install$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	@ls /var/lib/apt/lists/*_Packages* >/dev/null 2>&1 || apt-get update -qq
	$(GO) mod download

keel:
	$(GO) build -trimpath -o $(KEEL) ./cmd/build

# The base images (kernel, init, busybox, boot loaders) into the local cache. The tools
# inside keel/init are rebuilt only when their pinned version changes.
images: deps
	$(GO) run ./tools/mkimages -versions tools/versions.env

# The demo is built as kernel+squashfs: its system stays on a disk, paged in
# as used, so it boots to services running in 160 MB (kernel+initrd needs
# about twice that); keel run attaches the disk.
demo-build: images keel
	$(KEEL) build --format kernel+squashfs --dir $(OUT) examples/demo.yml

# On a terminal you stay at the serial console (ctrl-a x quits) and the web
# service answers on http://127.0.0.1:8080/; without a terminal the guest is
# told (keel.oneshot) to power off once its services are running.
demo: demo-build
	@if [ -t 0 ] && [ -t 1 ]; then $(KEEL) run --mem 160 --publish 8080:80 $(OUT)/demo-squashfs.img; \
	else $(KEEL) run --mem 160 --append keel.oneshot $(OUT)/demo-squashfs.img; fi

KEEL_CACHE ?= $(HOME)/.cache/keel
export KEEL_CACHE

# The lean kernel image's kernel.tar and module tree, taken out of the cache
# for the tests that read a real kernel (pkg/kmod, pkg/modules, pkg/initrd).
TEST_KERNEL := $(abspath $(OUT))/test-kernel

# Unit tests, and root tests (they skip with a message when not root). The
# root tests run generated bundles under the runc that `make images` built.
# KEEL_TEST_STRICT=1 (pkg/testenv): make has installed every tool the tests
# use, so a test that finds one missing fails instead of skipping. The
# supervisor's package alone took 6 min of go test's default 10 under load.
test-go: images
	$(GO) run ./tools/kerneltree -ref keel/kernel:$(KERNEL_ABI) -out $(TEST_KERNEL)
	KEEL_TEST_STRICT=1 \
	KEEL_RUNC=$(KEEL_CACHE)/tools/runc-$(RUNC_VERSION)/runc \
	KMOD_TEST_TREE=$(TEST_KERNEL)/modules \
	KEEL_TEST_KERNEL_TAR=$(TEST_KERNEL)/kernel.tar \
	$(GO) test -race -count=1 -timeout 30m ./...

# Boot tests: real images under QEMU.
test-boot: images
	KEEL_TEST_STRICT=1 KEEL_BOOT_TESTS=1 $(GO) test -count=1 -timeout 30m -v ./test/qemu

test: test-go test-boot

bench: deps
	$(GO) test -run '^$$' -bench . -benchmem ./...

# Runs every fuzz target for FUZZTIME each, one after another, on
# FUZZ_WORKERS workers. `make test` runs only their seeds (FuzzDecode's
# include one document per key path of the schema); a new crasher is
# written under the package's testdata/fuzz, to commit with its fix.
FUZZTIME ?= 60s
FUZZ_WORKERS ?= 1
fuzz: deps
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "fuzz $$pkg $$f ($(FUZZTIME))"; \
	    $(GO) test -run '^$$' -fuzz "^$$f\$$" -fuzztime $(FUZZTIME) -parallel $(FUZZ_WORKERS) $$pkg; \
	  done; \
	done

clean:
	rm -rf $(BIN) $(OUT)

# Builds examples/ cold (empty cache, images from a registry on 127.0.0.1),
# warm and with one service changed; then keel's compression stage against
# the plain compressors, and peak RSS for a 64 MiB and a 1 GiB initrd.
.PHONY: bench-build
bench-build: images keel
	$(GO) run ./tools/benchbuild -keel $(KEEL) -examples examples
	KEEL_MEMTEST_SIZES=64,1024 $(GO) test -count=1 -run '^TestMemoryFlat$$' -v ./pkg/initrd

# Boots keel's image and the busybox-init baseline (tools/benchboot/baseline,
# made from the same containerd, ctr, shim and runc) alternately under the
# same kernel and QEMU line, and prints medians and keel/baseline ratios.
# BENCH_BOOT_FLAGS="-n 3 -min-mem -logs out/bench-boot" for fewer boots,
# the smallest -m each boots with, and the consoles.
BENCH_BOOT_FLAGS ?=
.PHONY: bench-boot
bench-boot: images keel
	$(GO) run ./tools/mkimages -versions tools/versions.env -only bench-tools
	$(GO) run ./tools/benchboot -keel $(KEEL) -baseline tools/benchboot/baseline -versions tools/versions.env $(BENCH_BOOT_FLAGS)
