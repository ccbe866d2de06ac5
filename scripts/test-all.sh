#!/usr/bin/env bash
# The README's test command: installs the wasm toolchain, builds every plug-in from source,
# then runs every test (Rust, C API, the host SDKs, and Plinth's plug-ins on real Extism).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-wasm-toolchain.sh
bash scripts/install-test-packages.sh
bash scripts/build-plugins.sh
# napi-derive writes the Node addon's TypeScript declarations here as this build compiles it;
# sdks/node/test.sh turns them into binding.d.ts instead of building the addon a second time.
# Exported for every build below: napi's build script reruns when the variable changes, so a
# later `cargo test --no-run` without it (install-libplinth.sh) would compile the addon again.
export NAPI_TYPE_DEF_TMP_FOLDER="${CARGO_TARGET_DIR:-$PWD/target}/napi-type-defs"
mkdir -p "$NAPI_TYPE_DEF_TMP_FOLDER"
cargo test --workspace --locked
# libplinth installed as users get it: the C example host (pkg-config) and the Extism Java SDK.
bash scripts/test-c-api.sh
# The SQLite extension, linked against that libplinth, in the sqlite3 shell and Debian's Python.
PKG_CONFIG_PATH="$PWD/target/libplinth-prefix/lib/pkgconfig" bash extensions/sqlite/test.sh
bash tests/python-sdk/run.sh  # the Extism Python SDK from PyPI, unmodified, on that libplinth
# Host SDKs over the libplinth that test-c-api.sh installed.
bash sdks/go/test.sh
bash sdks/ruby/test.sh
# Host SDKs on the runtime itself: the Python wheel (PyO3, maturin) and the Node.js addon
# (napi-rs). Their tests build them with the dev profile, so that they reuse the wasmtime that
# `cargo test` built instead of compiling it again for release (users' installs are release).
export PLINTH_SDK_PROFILE="${PLINTH_SDK_PROFILE:-debug}"
bash sdks/python/test.sh
bash sdks/node/test.sh
# The web SDK (TypeScript on the platform's WebAssembly, with the kernel built to wasm) on
# Node.js and in headless Chromium (installed above; required here, so a missing browser fails).
PLINTH_REQUIRE_BROWSER=1 bash sdks/web/test.sh
if [ -f tests/compat/run.sh ]; then
  bash tests/compat/run.sh
fi
