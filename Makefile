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

.PHONY: help tools local test lint unit-and-integration proptest fuzz load

help:
	@echo "make local   run the API at http://127.0.0.1:9000 on S3 and DynamoDB stand-ins"
	@echo "make test    formatting, lints, unit and integration tests (what CI runs)"
	@echo "make proptest  the model-based property test with many more cases (PROPTEST_CASES)"
	@echo "make fuzz      each fuzz target for FUZZ_SECONDS (60) on the stable toolchain"
	@echo "make load      a bounded load test against the API, started on loopback for the run"

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

# The model-based property test of tests/properties.rs, with far more sequences than `make test`.
PROPTEST_CASES ?= 200
proptest: tools
	PROPTEST_CASES=$(PROPTEST_CASES) cargo test --locked --test properties -- --nocapture
