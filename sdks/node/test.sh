#!/usr/bin/env bash
# Tests the Node.js SDK: `npm ci` builds the addon from source (napi build --release), then the
# node:test suite runs, and the checkout example must print the expected lines.
# Needs Node.js >= 20.17 with npm, and the example plug-ins in target/wasm-plugins
# (bash scripts/build-plugins.sh).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

for tool in node npm cargo; do
  command -v "$tool" >/dev/null || { echo "$tool not found; the Node SDK needs Node.js (>= 20.17), npm and Rust" >&2; exit 1; }
done
plugins="${PLINTH_PLUGINS:-$root/target/wasm-plugins}"
for name in checkout count_vowels fail_with_code host_greet http_fetch wasi_files; do
  if [ ! -f "$plugins/$name.wasm" ]; then
    echo "missing $plugins/$name.wasm; build the example plug-ins first: bash scripts/build-plugins.sh" >&2
    exit 1
  fi
done

cd "$here"
# The install script builds the addon (release) into this directory, and regenerates
# binding.js and binding.d.ts from the Rust sources. PLINTH_SDK_PROFILE=debug takes the addon
# and its declarations from the workspace's test build instead (scripts/test-all.sh builds
# them), or builds a debug addon with napi when that build has none.
if [ "${PLINTH_SDK_PROFILE:-release}" = debug ]; then
  npm ci --no-audit --no-fund --ignore-scripts
  target="${CARGO_TARGET_DIR:-$root/target}"
  status=0
  node scripts/bindings-from-test-build.mjs "$target" "$target/napi-type-defs" || status=$?
  if [ "$status" -eq 2 ]; then
    npm run build:debug
  elif [ "$status" -ne 0 ]; then
    exit "$status"
  fi
else
  npm ci --no-audit --no-fund
fi
if git -C "$root" rev-parse --is-inside-work-tree >/dev/null 2>&1 &&
  ! git -C "$root" diff --quiet -- sdks/node/binding.js sdks/node/binding.d.ts; then
  git -C "$root" diff --stat -- sdks/node/binding.js sdks/node/binding.d.ts >&2
  echo "binding.js / binding.d.ts differ from what the build generates; commit the regenerated files" >&2
  exit 1
fi

echo "== examples/checkout/node/checkout.mjs"
expected=$'new customer: cart 120.00, discount 20.0%, pays 96.00\nreturning customer: cart 120.00, discount 0.0%, pays 120.00'
actual=$(cd "$root" && node examples/checkout/node/checkout.mjs)
if [ "$actual" != "$expected" ]; then
  printf 'the checkout example printed:\n%s\nexpected:\n%s\n' "$actual" "$expected" >&2
  exit 1
fi
echo "$actual"

# The tests last, so the output ends with the test runner's summary. A hang (a deadlock in the
# addon blocks the event loop, so node:test's own timeouts never fire) fails here, with the
# output so far, instead of at the CI's time limit.
npm run typecheck
status=0
timeout --kill-after=10 900 npm test || status=$?
if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
  echo "the Node SDK tests did not finish within 15 minutes: a test hung (the output above ends near it)" >&2
fi
exit "$status"
