# Presign Gate. `make local` runs the API on this machine against real-protocol stand-ins;
# `make test` runs every check CI runs. Both install what they need, pinned, into a cache outside
# the checkout, so the second run starts at once.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

TOOLS_DIR ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/presign-gate
PYTHON ?= python3

# Python tools, each in a virtualenv named after the hash of its fully pinned requirements.
venv = $(TOOLS_DIR)/venv-$(1)-$(shell sha256sum tools/requirements-$(1).txt | cut -c1-12)
LOCAL_VENV := $(call venv,local)
MOTO_SERVER_BIN := $(LOCAL_VENV)/bin/moto_server
# AWS SAM CLI and cfn-lint; checkov. Each in its own virtualenv: their pins conflict.
SAM_VENV := $(call venv,sam)
CHECKOV_VENV := $(call venv,checkov)
SAM := $(SAM_VENV)/bin/sam

# SAM: no usage reports; the rust-cargolambda build method is still a beta feature of SAM CLI.
export SAM_CLI_TELEMETRY := 0
export SAM_CLI_BETA_RUST_CARGO_LAMBDA := 1
# Architecture of the Lambda binaries. Deploys are arm64; the build checks of `make test` fall back
# to x86_64 only on a machine that lacks the aarch64 Rust target and cannot add it.
LAMBDA_ARCH ?=

# The local stand-in for the deployed AWS parts (local/): the bucket with its CORS rules and S3
# event notifications, DynamoDB's front over moto, both authorizing every request from
# template.yaml as IAM would, the API's CORS front, the demo page's server. Built from this
# workspace; `make local` and every integration test run on it.
LOCAL_AWS_BIN := $(CURDIR)/target/debug/local-aws

export MOTO_SERVER_BIN LOCAL_AWS_BIN
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

.PHONY: help tools local-aws local test test-lanes test-debug-lints test-debug-checks test-build \
  lint template-checks lambda-release sam-build build deploy proptest fuzz load \
  bench bench-micro bench-lambda bench-sizes vendor chromium browser-test qemu-arm64 mutants \
  mutants-js bench-throughput bench-capacity

help:
	@echo "make local     run the API at http://127.0.0.1:9000 on S3 and DynamoDB stand-ins, the demo at :9102"
	@echo "make test      formatting, lints, template checks, sam build, unit and integration tests (what CI runs)"
	@echo "make build     the Lambda bootstrap zips under target/lambda/ and the sam build under .aws-sam/"
	@echo "make deploy    sam build (arm64) and sam deploy --guided (set SAM_DEPLOY_FLAGS= to use samconfig.toml as is)"
	@echo "make bench     micro-benchmarks, cold starts, warm CPU, memory and sizes (see BENCHMARKS.md)"
	@echo "make proptest  the model-based property test with many more cases (PROPTEST_CASES)"
	@echo "make fuzz      each fuzz target for FUZZ_SECONDS (60) on the stable toolchain"
	@echo "make load      a bounded load test against the API, started on loopback for the run"
	@echo "make browser-test  the browser client's unit tests, then the demo, client and Uppy in headless Chromium"
	@echo "make mutants   mutation testing of the safety-critical code (about 6 hours; FILES=\"src/a.rs ...\" for a few files)"
	@echo "make mutants-js  mutation testing of the browser client, client/*.js, against its Node suites (StrykerJS, 7 to 20 minutes by the machine's load)"
	@echo "make bench-throughput  one large upload (THROUGHPUT_MIB, 1024) through the client: single PUT against multipart"

$(TOOLS_DIR)/venv-%/.installed:
	rm -rf $(@D)
	$(PYTHON) -m venv $(@D)
	$(@D)/bin/pip install --quiet --disable-pip-version-check --no-deps \
	  -r tools/requirements-$(firstword $(subst -, ,$*)).txt
	touch $@

tools: $(LOCAL_VENV)/.installed

# Cargo decides whether anything changed; the browser tests of `make test` start it too.
local-aws:
	cargo build --locked -p presign-gate-local

# The template as CloudFormation, SAM and a security scanner see it. checkov's skips are each
# justified in the resource's Metadata; --skip-download keeps it offline.
template-checks: $(SAM_VENV)/.installed $(CHECKOV_VENV)/.installed
	AWS_DEFAULT_REGION=us-east-1 $(SAM) validate --lint --template-file template.yaml
	$(SAM_VENV)/bin/cfn-lint template.yaml
	$(CHECKOV_VENV)/bin/checkov --skip-download --quiet --compact --framework cloudformation -f template.yaml

# Where `sam build` leaves each function's bootstrap (.aws-sam/build/<Function>/bootstrap), which
# tests/deployed_bootstrap.rs starts behind a Runtime API on loopback.
LAMBDA_BUILD_DIR := $(CURDIR)/.aws-sam/build
export LAMBDA_BUILD_DIR

# The three functions' release build for the architecture in $arch, in one cargo run: the
# dependencies compile once, and the three link-time optimisations (`lto = true` with one codegen
# unit: one core each, minutes each) run side by side instead of one after another.
LAMBDA_RELEASE_BUILD = cargo lambda build --release --locked --$${arch/_/-} --bin api --bin events --bin reconcile --bin publish

# The release build for the deployed arm64 unless this machine cannot build it
# (scripts/lambda-arch.sh), or LAMBDA_ARCH says otherwise.
lambda-release: $(LOCAL_VENV)/.installed
	arch=$${LAMBDA_ARCH:-$$(scripts/lambda-arch.sh)}; \
	$(LAMBDA_RELEASE_BUILD)

# sam build of the four functions, in place (samconfig.toml). SAM's rust-cargolambda method runs
# `cargo lambda build --release --arm64 --bin <binary>` once per function, one after another: after
# lambda-release, which is the same build, each finds its binary up to date and only packages it.
sam-build: lambda-release $(SAM_VENV)/.installed
	arch=$${LAMBDA_ARCH:-$$(scripts/lambda-arch.sh)}; \
	AWS_DEFAULT_REGION=us-east-1 $(SAM) build --template-file template.yaml --parameter-overrides Architecture=$$arch

# The bootstrap zips (target/lambda/{api,events,reconcile,publish}/bootstrap.zip) and the sam build.
build: sam-build
	arch=$${LAMBDA_ARCH:-$$(scripts/lambda-arch.sh)}; \
	$(LAMBDA_RELEASE_BUILD) --output-format zip
	ls -l target/lambda/*/bootstrap.zip

# Builds arm64 (or LAMBDA_ARCH, which must then match the Architecture parameter you deploy with)
# and deploys: guided the first time, asking for the issuer, audience and origins.
SAM_DEPLOY_FLAGS ?= --guided
deploy: $(SAM_VENV)/.installed $(LOCAL_VENV)/.installed
	arch=$${LAMBDA_ARCH:-arm64}; \
	$(LAMBDA_RELEASE_BUILD) && \
	$(SAM) build --template-file template.yaml --parameter-overrides Architecture=$$arch
	$(SAM) deploy $(SAM_DEPLOY_FLAGS)

# The demo's Uppy page loads Uppy from VENDOR_DIR (`make vendor`).
local: tools local-aws vendor
	scripts/local.sh

lint:
	cargo fmt --all -- --check
	cargo clippy --locked --workspace --all-targets -- -D warnings
	cargo clippy --locked -p presign-gate --all-targets --features dev-identity -- -D warnings

# The arm64 bootstrap of `sam build` runs here under Debian's qemu-user-static, its dynamic loader
# from the arm64 C library (tests/deployed_bootstrap.rs: `sam local` would need Docker). Installed
# when missing, as root; otherwise make stops with what to install. An arm64 machine runs the
# binary as it is and needs neither.
QEMU_AARCH64 ?= /usr/bin/qemu-aarch64-static
export QEMU_AARCH64
qemu-arm64:
	@if [ "$$(uname -m)" != aarch64 ] && { [ ! -x "$(QEMU_AARCH64)" ] || [ ! -e /lib/ld-linux-aarch64.so.1 ]; }; then \
	  if [ "$$(id -u)" != 0 ]; then \
	    echo "qemu-user-static or the arm64 C library is missing: as root, run dpkg --add-architecture arm64, then apt-get update, then apt-get install -y qemu-user-static libc6:arm64" >&2; exit 1; \
	  fi; \
	  dpkg --add-architecture arm64 && apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq qemu-user-static libc6:arm64; \
	fi
	@if [ "$$(uname -m)" != aarch64 ]; then "$(QEMU_AARCH64)" --version | head -n 1; fi

# `make test` builds in two lanes side by side (make -j3: the third job installs the
# virtualenvs): the release lane (lambda-release, then sam build) and the debug lane (the local
# stand-in and the lints, then the template checks and every test build). The release lane spends
# much of its time in link-time optimisation, one core per function, which leaves a core to the
# debug lane; the two lock different build directories (target/<triple>/release and
# target/debug), so neither waits for the other. Then the tests run.
#
# The closing line totals the results of every Rust test binary and of the browser tests, so a
# run that executed nothing shows it. Everything runs on the build every deployment gets (no
# features: it must refuse DEV_USER_HEADER), then the config unit tests and the binary's tests
# again on the `make local` build (dev-identity), which the browser tests use too.
test: tools qemu-arm64
	$(MAKE) --no-print-directory -j3 test-lanes
	mkdir -p target
	cargo test --locked --workspace --all-targets 2>&1 | tee target/test.log
	cargo test --locked -p presign-gate --features dev-identity --lib --test lambda_binary 2>&1 \
	  | tee -a target/test.log
	$(MAKE) --no-print-directory browser-test
	@awk '/^test result:/ { passed += $$4; failed += $$6 } /^# pass / { passed += $$3 } /^# fail / { failed += $$3 } \
	  END { printf "%d passed, %d failed\n", passed, failed; exit (passed == 0 || failed > 0) }' \
	  target/test.log target/browser-test.log

test-lanes: sam-build test-debug-checks

# The debug lane, in order: the local stand-in and the lints, which need no virtualenv and start at
# once; then the template checks and every build the tests run (test-build). The virtualenvs are
# prerequisites here, in the make that also runs the release lane, so that the two lanes never
# install the same one at once, and their installing holds up neither lane's compiling.
test-debug-lints:
	$(MAKE) --no-print-directory local-aws
	$(MAKE) --no-print-directory lint

test-debug-checks: test-debug-lints $(SAM_VENV)/.installed $(CHECKOV_VENV)/.installed
	$(MAKE) --no-print-directory template-checks
	$(MAKE) --no-print-directory test-build

# Every build that `make test` then runs, so that the tests start on a finished build: the
# workspace's test targets, the binary's tests with dev-identity, and what the browser tests
# start (scripts/local.sh's local_setup example, the dev-identity functions, the Uppy bundle).
# The functions build without dev-dependencies, as `cargo lambda watch` builds them, so their
# dependencies resolve other features than in the test builds (tokio's, the SDK's test-util) and
# compile a second time: here, beside the release lane, rather than alone later.
test-build: local-aws vendor
	cargo test --locked --workspace --all-targets --no-run
	cargo test --locked -p presign-gate --features dev-identity --lib --test lambda_binary --no-run
	cargo build --locked --features dev-identity --example local_setup
	$(DEV_FUNCTIONS_BUILD)

# The model-based property test of tests/properties.rs, with far more sequences than `make test`.
PROPTEST_CASES ?= 200
proptest: tools local-aws
	PROPTEST_CASES=$(PROPTEST_CASES) cargo test --locked --test properties -- --nocapture

# Each fuzz target for FUZZ_SECONDS, with libFuzzer through libfuzzer-sys (pinned by
# fuzz/Cargo.lock) on the stable toolchain: the coverage instrumentation is plain -C flags, so
# neither nightly nor cargo-fuzz is needed. The corpus grows in fuzz/corpus (not committed); a
# crash stops the run and lands in fuzz/artifacts: copy it into fuzz/regressions/<target>/ and
# `make test` replays it from then on.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := api_request s3_event
FUZZ_TRIPLE := $(shell rustc -vV | sed -n 's/^host: //p')
FUZZ_RUSTFLAGS := -Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
  -Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
  -Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks
fuzz:
	cd fuzz && RUSTFLAGS="$(FUZZ_RUSTFLAGS)" cargo build --locked --release --target $(FUZZ_TRIPLE) --bins
	for target in $(FUZZ_TARGETS); do \
	  mkdir -p fuzz/corpus/$$target fuzz/artifacts/$$target; \
	  echo "fuzzing $$target for $(FUZZ_SECONDS) s"; \
	  fuzz/target/$(FUZZ_TRIPLE)/release/$$target -max_total_time=$(FUZZ_SECONDS) -max_len=16384 \
	    -artifact_prefix=fuzz/artifacts/$$target/ -print_final_stats=1 \
	    fuzz/corpus/$$target fuzz/regressions/$$target; \
	done

# A bounded load test (2,000 mixed requests at concurrency 32) against the API as `make local`
# runs it, started on ports of its own for the run and stopped afterwards. Loopback only.
load: tools local-aws
	scripts/load.sh

# Benchmarks: never part of `make test`. Figures, not pass/fail: see BENCHMARKS.md for a run.
bench: bench-micro bench-lambda bench-sizes bench-throughput bench-capacity

# The DynamoDB capacity units of each operation on a reservation at 1, 20 and 1,000 pending, from
# the sizes of the items it reads and writes on the local stack (benches/ledger_capacity.rs).
bench-capacity: tools local-aws
	cargo bench --locked -p presign-gate --bench ledger_capacity

# Criterion: SDK presigning, and every route end to end through Api::handle with DynamoDB mocked.
bench-micro:
	cargo bench --locked -p presign-gate --bench presign --bench routes -- $(CRITERION_ARGS)

# The same route in Node.js, as a team would otherwise write it (bench/node): the AWS SDK for
# JavaScript v3, pinned in bench/node/package-lock.json, bundled into one CommonJS file by the
# root package.json's esbuild as SAM's esbuild build method bundles by default (minified, no
# source map) and as CDK's NodejsFunction does (bundled), for the Node.js 20 of Lambda's nodejs20.x.
BENCH_NODE_BUNDLE := $(BENCH_DIR)/node/index.cjs
NODE ?= $(shell command -v node)

bench/node/node_modules/.installed: bench/node/package.json bench/node/package-lock.json
	cd bench/node && npm ci --ignore-scripts --no-audit --no-fund
	touch $@

$(BENCH_NODE_BUNDLE): bench/node/handler.mjs bench/node/node_modules/.installed node_modules/.installed
	mkdir -p $(@D)
	node_modules/.bin/esbuild bench/node/handler.mjs --bundle --platform=node --target=node20 \
	  --format=cjs --minify --log-level=warning --outfile=$@

# The release API (built alone, so no bench-only feature reaches it), the bench crate's hello
# handlers and multi-thread API, the seed's Python handler and the Node.js one, all on the
# loopback Runtime API.
bench-lambda: $(BENCH_VENV)/.installed $(BENCH_NODE_BUNDLE)
	@if [ -z "$(NODE)" ]; then echo "node is missing: the Node.js function needs Node.js 20" >&2; exit 1; fi
	cargo build --locked --release -p presign-gate --bin api
	cargo build --locked --release -p lambda-emulator
	cargo build --locked --release -p lambda-emulator --features multi-thread --bin api-mt --bin hello-mt
	target/release/lambda-emulator \
	  --api target/release/api --api-mt target/release/api-mt \
	  --hello target/release/hello --hello-mt target/release/hello-mt \
	  --python $(BENCH_VENV)/bin/python --python-dir $(CURDIR)/bench/python \
	  --node $(NODE) --node-dir $(CURDIR)/bench/node --node-bundle $(CURDIR)/$(BENCH_NODE_BUNDLE) \
	  --cold-runs $(COLD_RUNS) --warm-invocations $(WARM_INVOCATIONS)

# The deployment artefact's size: the release `bootstrap` for the deployed arm64 (x86_64 only on a
# machine that cannot build arm64, see scripts/lambda-arch.sh), zipped as Lambda takes it.
bench-sizes: tools
	arch=$$(scripts/lambda-arch.sh); \
	cargo lambda build --release --locked --$${arch/_/-} --bin api; \
	mkdir -p $(BENCH_DIR); \
	cp target/lambda/api/bootstrap $(BENCH_DIR)/bootstrap; \
	rm -f $(BENCH_DIR)/bootstrap.zip; \
	(cd $(BENCH_DIR) && zip -q -9 -X bootstrap.zip bootstrap); \
	echo "$$arch release bootstrap: $$(stat -c %s $(BENCH_DIR)/bootstrap) bytes; zip: $$(stat -c %s $(BENCH_DIR)/bootstrap.zip) bytes"

# Mutation testing, never part of `make test` (all of it takes hours on 2 cores): cargo-mutants
# changes the safety-critical code one mutant at a time and runs the tests, which must fail. Two
# parts, each a config: .cargo/mutants.toml (most of the code, against the fast tests over the
# in-memory fakes) and .cargo/mutants-standins.toml (the DynamoDB and S3 adapters, against the
# stand-in tests).
# `make mutants FILES="src/domain/policy.rs src/deadline.rs"` runs only those files' mutants.
# `make mutants ITERATE=1` skips the mutants an earlier run caught (or found unviable) at the same
# place, so one run can be continued by the next.
# Each part builds in a scratch copy of the tree (the checkout is never touched) with its own
# target directory, target/mutants, which keeps the dependencies built between runs. Results in
# target/mutants-out/<part>/mutants.out/ (missed.txt, timeout.txt, caught.txt, unviable.txt).
# Mutants no test can kill are listed with their reason in mutants-equivalent.md and excluded by
# the configs' exclude_re. Fails if any part has a missed mutant or a timeout.
CARGO_MUTANTS_VERSION := 27.1.0
CARGO_MUTANTS := $(TOOLS_DIR)/cargo-mutants-$(CARGO_MUTANTS_VERSION)/bin/cargo-mutants
MUTANTS_PARTS := mutants mutants-standins
FILES ?=
ITERATE ?=

$(CARGO_MUTANTS):
	cargo install cargo-mutants --version $(CARGO_MUTANTS_VERSION) --locked \
	  --root $(TOOLS_DIR)/cargo-mutants-$(CARGO_MUTANTS_VERSION)

# local-aws: every stand-in test runs on it.
mutants: tools local-aws $(CARGO_MUTANTS)
	mkdir -p $(foreach part,$(MUTANTS_PARTS),target/mutants-out/$(part))
	failed=0; \
	for part in $(MUTANTS_PARTS); do \
	  CARGO_TARGET_DIR=$(CURDIR)/target/mutants $(CARGO_MUTANTS) mutants --config .cargo/$$part.toml \
	    --package presign-gate --jobs 1 --output target/mutants-out/$$part $(if $(ITERATE),--iterate) \
	    $(foreach file,$(FILES),--re '^$(subst .,\.,$(file)):') || failed=1; \
	done; \
	exit $$failed

# ---------------------------------------------------------------------------------------------
# Browser side. npm packages are pinned exactly in package.json and package-lock.json and installed
# with `npm ci` into node_modules/ (git-ignored), without install scripts: none of them needs one.
# Uppy is bundled once for the browser (target/vendor/, see tools/uppy-bundle.js for why); the
# client and the demo pages are served as written. Chromium is Debian's `chromium` package.
CHROMIUM ?= /usr/bin/chromium
VENDOR_DIR := $(CURDIR)/target/vendor
export CHROMIUM VENDOR_DIR

node_modules/.installed: package.json package-lock.json
	npm ci --ignore-scripts --no-audit --no-fund
	touch $@

$(VENDOR_DIR)/uppy.mjs: node_modules/.installed tools/uppy-bundle.js
	mkdir -p $(VENDOR_DIR)
	node_modules/.bin/esbuild tools/uppy-bundle.js --bundle --format=esm --minify --target=es2022 \
	  --legal-comments=eof --define:process.env.NODE_ENV='"production"' --log-level=warning \
	  --outfile=$(VENDOR_DIR)/uppy.mjs
	cat node_modules/@uppy/core/dist/style.min.css node_modules/@uppy/dashboard/dist/style.min.css \
	  > $(VENDOR_DIR)/uppy.css

vendor: $(VENDOR_DIR)/uppy.mjs

# Installs Debian's `chromium` package (and what apt pulls in with it) when $(CHROMIUM) is missing.
chromium:
	@if [ ! -x "$(CHROMIUM)" ]; then \
	  if [ "$$(id -u)" != 0 ]; then \
	    echo "$(CHROMIUM) is missing: install Debian's chromium package (apt-get install chromium) or set CHROMIUM" >&2; exit 1; \
	  fi; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	fi
	@"$(CHROMIUM)" --version

# The functions as `make local` runs them (dev-identity), built as `cargo lambda watch` builds them.
DEV_FUNCTIONS_BUILD := cargo build --locked -p presign-gate --features dev-identity --bin api --bin events

# The client's unit tests (a fake fetch), then tests/browser/*.test.mjs in headless Chromium against
# `make local`'s stack, which each test file starts on free ports. The functions are built first,
# as `cargo lambda watch` builds them (no example or dev-dependency in the build, so the same
# features), so the stack starts in seconds. Screenshots land in target/browser-artifacts/.
browser-test: tools local-aws vendor chromium
	$(DEV_FUNCTIONS_BUILD)
	mkdir -p target
	node --test --test-concurrency=1 tests/browser/ 2>&1 | tee target/browser-test.log

# Mutation testing of the browser client, never part of `make test`: StrykerJS (pinned in
# package.json) changes client/*.js one mutant at a time and runs the Node suites that reach the
# changed code (stryker.config.json: the tap runner, one process per test file, so a test file's
# coverage picks the files a mutant needs), which must fail. It works in a copy of the client and
# its tests under target/stryker-tmp; the report lands in target/mutants-js/ (mutation.html,
# mutation.json). Mutants no test can kill are listed with their reason in mutants-equivalent.md,
# each marked in the code with a `// Stryker disable next-line` comment that names it. Fails below
# a mutation score of 100.
mutants-js: node_modules/.installed
	node_modules/.bin/stryker run stryker.config.json

# One large upload through the browser client on loopback, in Chromium against `make local`'s
# stack: one presigned PUT against multipart (4 parts in flight), each with and without SHA-256.
# A figure for BENCHMARKS.md, not a test; it needs about three times THROUGHPUT_MIB of free disk
# (the file it picks, the parts, the completed object).
THROUGHPUT_MIB ?= 1024
bench-throughput: tools local-aws vendor chromium
	$(DEV_FUNCTIONS_BUILD)
	THROUGHPUT_MIB=$(THROUGHPUT_MIB) node bench/browser-throughput.mjs
