#!/usr/bin/env bash
# Tests the web SDK (@plinth/web) on Node.js: `npm ci` installs the pinned dev dependencies
# (TypeScript), the kernel is built from Rust to wasm (sdks/web/kernel/build.sh), then
# `npm test` compiles the TypeScript and runs the node:test suite on the example plug-ins.
# Needs Node.js >= 20 with npm, Rust with the wasm32-unknown-unknown target, and the example
# plug-ins in target/wasm-plugins (bash scripts/build-plugins.sh).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

for tool in node npm cargo; do
  command -v "$tool" >/dev/null || { echo "$tool not found; the web SDK's tests need Node.js (>= 20), npm and Rust" >&2; exit 1; }
done
plugins="${PLINTH_PLUGINS:-$root/target/wasm-plugins}"
for name in checkout cli_testkit count_vowels echo echo_bulk extism_count_vowels fail_with_code host_greet http_fetch stream_filter wasi_files; do
  if [ ! -f "$plugins/$name.wasm" ]; then
    echo "missing $plugins/$name.wasm; build the example plug-ins first: bash scripts/build-plugins.sh" >&2
    exit 1
  fi
done

bash "$here/kernel/build.sh"
if [ ! -f "$here/kernel/dist/plinth_web_kernel.wasm" ]; then
  echo "sdks/web/kernel/build.sh did not produce sdks/web/kernel/dist/plinth_web_kernel.wasm" >&2
  exit 1
fi

cd "$here"
npm ci --no-audit --no-fund
# The tests last, so the output ends with the test runner's summary (npm test runs tsc first).
if [ -n "${PLINTH_WEB_EXTRA_NODE:-}" ]; then
  npm run build
  echo "== the tests on $("$PLINTH_WEB_EXTRA_NODE" --version) ($PLINTH_WEB_EXTRA_NODE)"
  "$PLINTH_WEB_EXTRA_NODE" --test test/*.test.mjs
  echo "== the tests on $(node --version)"
fi
npm test
