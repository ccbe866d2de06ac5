#!/usr/bin/env bash
# The README's test command: installs the wasm toolchain, builds every plug-in from source,
# then runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-wasm-toolchain.sh
bash scripts/build-plugins.sh
cargo test --workspace --locked
if [ -f tests/compat/run.sh ]; then
  bash tests/compat/run.sh
fi
