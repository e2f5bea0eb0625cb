# bisector — two commands on a fresh Debian 12 machine (as root):
#   make demo   # the main job end to end
#   make test   # the default test suite (unit + real TCG boots)
# Both install what they need (apt packages, a venv with pip deps, the guest image).

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMPS := build/stamps
PYTEST_ARGS ?=

APT_PACKAGES := qemu-system-x86 qemu-utils mmdebstrap openssh-client ca-certificates \
	busybox-static e2fsprogs kmod zstd xz-utils gpgv gnupg debian-archive-keyring \
	python3 python3-venv python3-dev git make gcc ccache bc bison flex libelf-dev \
	libssl-dev cpio dwarves rsync perl chromium

.PHONY: setup apt apt-demo venv image kernels-test test test-unit test-all lint bench-boot bench-bisect demo clean

setup: apt venv

apt: $(STAMPS)/apt
$(STAMPS)/apt: Makefile
	@mkdir -p $(STAMPS)
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null \
		| grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "apt: installing$$(echo $$missing | tr '\n' ' ')"; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get update -q && apt-get install -y -q --no-install-recommends $$missing; \
	fi
	@touch $@

# The kernel source for the demo tree and the slow real-build tests (138 MB), kept out
# of the default test run's setup.
apt-demo: $(STAMPS)/apt-demo
$(STAMPS)/apt-demo: $(STAMPS)/apt
	@test -f /usr/src/linux-source-6.1.tar.xz || { export DEBIAN_FRONTEND=noninteractive; \
		apt-get update -q && apt-get install -y -q --no-install-recommends linux-source-6.1; }
	@touch $@

venv: $(STAMPS)/venv
$(STAMPS)/venv: pyproject.toml $(STAMPS)/apt
	@mkdir -p $(STAMPS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@

image: setup
	$(BIN)/bisector image build

# the real Debian kernels the default run boots (test_boot, the fault rows, the real
# sweeps); fetched once into the cache, then served to the tests from 127.0.0.1
TEST_KERNELS := debian:6.1.0-56 debian:6.1.0-57
kernels-test: $(STAMPS)/kernels-test
$(STAMPS)/kernels-test: $(STAMPS)/venv
	$(BIN)/bisector kernels fetch $(TEST_KERNELS) > /dev/null
	@touch $@

test: setup image kernels-test
	$(BIN)/pytest -m "not slow" $(PYTEST_ARGS)

test-unit: setup
	$(BIN)/pytest -m "not slow and not vm" $(PYTEST_ARGS)

test-all: setup apt-demo image kernels-test
	$(BIN)/pytest $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check bisector tests bench
	$(BIN)/mypy

bench-boot: setup image
	$(BIN)/python bench/boot.py

DEMO_DIR ?= $(HOME)/.cache/bisector/demo
DEMO_SEED ?= 1

# A kernel tree with a hidden culprit (see bisector/demo.py), bisected end to end.
demo: setup apt-demo image
	$(BIN)/python -m bisector.demo --dir $(DEMO_DIR) --seed $(DEMO_SEED) create
	$(BIN)/bisector bisect --repro reproducers/gre-ecn-mac-corruption.yaml \
		--tree $(DEMO_DIR)/linux --good v6.1.192 --bad main --report-dir $(DEMO_DIR)/report
	$(BIN)/python -m bisector.demo --dir $(DEMO_DIR) check $(DEMO_DIR)/report/report.json

bench-bisect: setup apt-demo image
	$(BIN)/python bench/bisection.py --demo-dir $(DEMO_DIR)

# Flaky bugs, simulated: Bayesian search vs plain / syzbot / repeat-8 bisection (pure Python,
# about 7 minutes on 2 cores; FLAKY_ARGS=--quick for a smoke run).
.PHONY: bench-flaky
bench-flaky: venv
	$(BIN)/python bench/flaky.py $(FLAKY_ARGS)

# The nightly sweep's cost: 2 x 2 sweep (cold, cached) against a shell loop of `bisector
# run`, and the demo tree's git-line regression bisected to a verified culprit.
.PHONY: bench-sweep
bench-sweep: setup apt-demo image
	$(BIN)/python -m bisector.demo --dir $(DEMO_DIR) --seed $(DEMO_SEED) create
	$(BIN)/python bench/sweep.py --demo-dir $(DEMO_DIR)

# Scale-out: multisection rounds/builds for k workers, a 50 x 20 sweep's throughput, and the
# real Dask scheduler's dispatch overhead (about 30 s; SCALE_ARGS=--quick for less).
.PHONY: bench-scale
bench-scale: venv
	$(BIN)/python bench/scale.py $(SCALE_ARGS)

clean:
	rm -rf build $(VENV) *.egg-info .pytest_cache .mypy_cache .ruff_cache
