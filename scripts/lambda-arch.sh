#!/usr/bin/env bash
# The architecture the build checks of `make test` use: arm64, what deploys, whenever this machine
# has (or can add) the aarch64-unknown-linux-gnu Rust target; otherwise x86_64, so the checks
# still prove the template builds. `make deploy` never falls back: it builds arm64 or fails.
set -euo pipefail
target=aarch64-unknown-linux-gnu
if rustup target list --installed 2>/dev/null | grep -qx "$target" ||
  rustup target add "$target" >/dev/null 2>&1; then
  echo arm64
else
  echo "warning: no $target Rust target here and rustup cannot add it: checking an x86_64 build instead (deploying needs arm64: run 'rustup target add $target')" >&2
  echo x86_64
fi
