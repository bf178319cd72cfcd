# Developer entry points. On a fresh Debian 12 machine:
#   sudo make run     install what is missing, build, and run the agent with conf/otelbpf.toml
#   sudo make test    the same setup, then the whole test suite
#
#   make setup        Debian packages (as root, only those missing), .venv, BPF objects, mounts
#   make bpf          build bpf/build/*.bpf.o
#   make clean        remove build output; `make distclean` also removes .venv
#   make deb / rpm    dist/otelbpf_VERSION-1_ARCH.deb, dist/otelbpf-VERSION-1.ARCH.rpm
#                     (packaging/build-package; VERSION=… RELEASE=… override the defaults)
#
# Without root, `make setup` still builds the venv and the objects; installing packages,
# mounting and running BPF programs need root (or the capabilities in packaging/README.md).

PYTHON ?= python3
VENV   := .venv
STAMP  := $(VENV)/.installed

# What building and running the agent needs; `make test` also installs TEST_APT_PACKAGES (TLS
# test certificates, pci.ids for the pci decoders, rpm/podman/buildah/debootstrap for the package
# and container checks, tmux for `otelbpf top`'s terminal tests).
APT_PACKAGES      := clang llvm libbpf-dev libbpf1 bpftool make gcc python3-venv python3-dev
TEST_APT_PACKAGES := openssl pci.ids rpm podman buildah debootstrap tmux
IS_ROOT      := $(filter 0,$(shell id -u))

setup: deps $(STAMP) bpf mounts

run: setup
	$(VENV)/bin/otelbpf run --config conf/otelbpf.toml

test: setup test-deps
	$(VENV)/bin/python -m pytest -q

# Installs only what dpkg does not already have, so repeated runs stay offline and quick.
deps test-deps: PACKAGES = $(if $(filter test-deps,$@),$(TEST_APT_PACKAGES),$(APT_PACKAGES))
deps test-deps:
	@command -v dpkg-query >/dev/null || { echo "note: not a Debian system, install by hand:" $(PACKAGES); exit 0; }; \
	missing=$$(for p in $(PACKAGES); do \
		dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed$$' || echo $$p; \
	done); \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ -n "$(IS_ROOT)" ]; then \
		echo "installing:" $$missing; \
		DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	else \
		echo "warning: missing Debian packages (run as root to install them):" $$missing >&2; \
	fi

# The stamp makes the install repeat only when pyproject.toml changes.
$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q -e '.[test]'
	touch $@

bpf:
	$(MAKE) -C bpf

# bpffs for pinned maps, tracefs for tracepoint ids, debugfs for older tools that look there.
mounts:
ifneq ($(IS_ROOT),)
	@mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf
	@mountpoint -q /sys/kernel/tracing || mount -t tracefs nodev /sys/kernel/tracing
	@mountpoint -q /sys/kernel/debug || mount -t debugfs none /sys/kernel/debug
else
	@echo "note: not root, leaving /sys/fs/bpf, /sys/kernel/tracing and /sys/kernel/debug as they are"
endif

# Packages: the agent in a venv for this machine's python3, the objects, configs as conffiles.
deb rpm: bpf
	VERSION="$(VERSION)" RELEASE="$(RELEASE)" packaging/build-package $@

clean:
	$(MAKE) -C bpf clean
	rm -rf .pytest_cache .hypothesis build dist

distclean: clean
	rm -rf $(VENV)

.PHONY: setup run test deps test-deps bpf mounts clean distclean deb rpm
