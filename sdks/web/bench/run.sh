#!/usr/bin/env bash
# @plinth/web against @extism/extism in Node.js and headless Chromium: installs this folder's
# pinned dependencies (@extism/extism, puppeteer-core), builds the web SDK (npm ci, tsc) and its
# kernel, then runs run.mjs, which writes <criterion dir>/web.json.
#
#   bash sdks/web/bench/run.sh [criterion dir]   (or PLINTH_BENCH_OUT; default target/criterion)
#
# Needs Node.js >= 20 with npm, Rust with the wasm32 target (the kernel), Chromium at
# /usr/bin/chromium (or PLINTH_CHROMIUM) and the example plug-ins (bash scripts/build-plugins.sh).
# See README.md for the environment variables that shorten or narrow the run.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
for tool in node npm cargo; do
  command -v "$tool" >/dev/null || { echo "$tool not found; the web benchmark needs Node.js (>= 20), npm and Rust" >&2; exit 1; }
done
(cd "$here" && npm ci --no-audit --no-fund)
bash "$root/sdks/web/kernel/build.sh"
(cd "$root/sdks/web" && npm ci --no-audit --no-fund && npm run build)
cd "$here"
node run.mjs "$@"
