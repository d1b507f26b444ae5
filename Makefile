# Presign Gate. `make local` runs the API on this machine against real-protocol stand-ins;
# `make test` runs every check CI runs. Both install what they need, pinned, into a cache outside
# the checkout, so the second run starts at once.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

TOOLS_DIR ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/presign-gate
PYTHON ?= python3

# S3 stand-in: verifies SigV4 signatures, expiry, signed headers and checksums like S3 does.
# 0.14.1 is the last release that builds with rustc 1.95.
S3S_FS_VERSION := 0.14.1
S3S_FS_BIN := $(TOOLS_DIR)/s3s-fs-$(S3S_FS_VERSION)/bin/s3s-fs

# Python tools, each in a virtualenv named after the hash of its fully pinned requirements.
venv = $(TOOLS_DIR)/venv-$(1)-$(shell sha256sum tools/requirements-$(1).txt | cut -c1-12)
LOCAL_VENV := $(call venv,local)
MOTO_SERVER_BIN := $(LOCAL_VENV)/bin/moto_server

export S3S_FS_BIN MOTO_SERVER_BIN
# cargo-lambda (and the zig it brings) come first on PATH.
export PATH := $(LOCAL_VENV)/bin:$(PATH)

# `make bench` only: the seed's Python handler runs under awslambdaric and boto3, pinned here.
BENCH_VENV := $(call venv,bench)
BENCH_DIR := target/bench
# Cold runs per function and measured warm invocations per round; `make bench COLD_RUNS=3` for a
# quicker look. Criterion's per-benchmark times keep its part to about a minute.
COLD_RUNS ?= 10
WARM_INVOCATIONS ?= 1000
CRITERION_ARGS ?= --warm-up-time 1 --measurement-time 3 --noplot

.PHONY: help tools local test lint unit-and-integration bench bench-micro bench-lambda bench-sizes

help:
	@echo "make local   run the API at http://127.0.0.1:9000 on S3 and DynamoDB stand-ins"
	@echo "make test    formatting, lints, unit and integration tests (what CI runs)"
	@echo "make bench   micro-benchmarks, cold starts, warm CPU, memory and sizes (see BENCHMARKS.md)"

$(S3S_FS_BIN):
	cargo install s3s-fs --version $(S3S_FS_VERSION) --features binary --locked \
	  --root $(TOOLS_DIR)/s3s-fs-$(S3S_FS_VERSION)

$(TOOLS_DIR)/venv-%/.installed:
	rm -rf $(@D)
	$(PYTHON) -m venv $(@D)
	$(@D)/bin/pip install --quiet --disable-pip-version-check --no-deps \
	  -r tools/requirements-$(firstword $(subst -, ,$*)).txt
	touch $@

tools: $(S3S_FS_BIN) $(LOCAL_VENV)/.installed

local: tools
	scripts/local.sh

lint:
	cargo fmt --all -- --check
	cargo clippy --locked --all-targets -- -D warnings

# The closing line totals every test binary's results, so a run that executed nothing shows it.
test: tools lint
	mkdir -p target
	cargo test --locked --all-targets 2>&1 | tee target/test.log
	@awk '/^test result:/ { passed += $$4; failed += $$6 } \
	  END { printf "%d passed, %d failed\n", passed, failed; exit (passed == 0 || failed > 0) }' target/test.log

# Benchmarks: never part of `make test`. Figures, not pass/fail: see BENCHMARKS.md for a run.
bench: bench-micro bench-lambda bench-sizes

# Criterion: SDK presigning, and every route end to end through Api::handle with DynamoDB mocked.
bench-micro:
	cargo bench --locked -p presign-gate --bench presign --bench routes -- $(CRITERION_ARGS)

# The release API (built alone, so no bench-only feature reaches it), the bench crate's hello
# handlers and multi-thread API, and the seed's Python handler, all on the loopback Runtime API.
bench-lambda: tools $(BENCH_VENV)/.installed
	cargo build --locked --release -p presign-gate --bin api
	cargo build --locked --release -p lambda-emulator
	cargo build --locked --release -p lambda-emulator --features multi-thread --bin api-mt --bin hello-mt
	target/release/lambda-emulator \
	  --api target/release/api --api-mt target/release/api-mt \
	  --hello target/release/hello --hello-mt target/release/hello-mt \
	  --python $(BENCH_VENV)/bin/python --python-dir $(CURDIR)/bench/python \
	  --moto $(MOTO_SERVER_BIN) --cold-runs $(COLD_RUNS) --warm-invocations $(WARM_INVOCATIONS)

# The deployment artefact's size: the x86_64 release binary as `bootstrap`, zipped as Lambda takes
# it. (arm64 needs a Rust target this machine cannot install; x86_64 is the proxy.)
bench-sizes:
	cargo build --locked --release -p presign-gate --bin api
	mkdir -p $(BENCH_DIR)
	cp target/release/api $(BENCH_DIR)/bootstrap
	rm -f $(BENCH_DIR)/bootstrap.zip
	cd $(BENCH_DIR) && zip -q -9 -X bootstrap.zip bootstrap
	@echo "x86_64 release bootstrap: $$(stat -c %s $(BENCH_DIR)/bootstrap) bytes; zip: $$(stat -c %s $(BENCH_DIR)/bootstrap.zip) bytes"
