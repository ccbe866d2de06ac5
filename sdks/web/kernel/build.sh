#!/usr/bin/env bash
# Builds the web kernel (plinth-web-kernel for wasm32-unknown-unknown) and copies it to
# dist/plinth_web_kernel.wasm, where the web SDK loads it from.
# The workspace's release profile keeps line tables for native backtraces; a .wasm shipped
# to browsers wants none, and size over speed (the kernel runs once per plug-in load).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
cd "$root"
export CARGO_PROFILE_RELEASE_DEBUG=false
export CARGO_PROFILE_RELEASE_STRIP=true
export CARGO_PROFILE_RELEASE_OPT_LEVEL=3
export CARGO_PROFILE_RELEASE_LTO=true
export CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1
# The wasm toolchain route install-wasm-toolchain.sh set up: rustup's target, or Debian's
# compiler building std from source. The latter is another rustc, so it builds in a target
# directory of its own rather than invalidating the workspace's native build.
source "$root/scripts/wasm-env.sh"
target_dir="${CARGO_TARGET_DIR:-$root/target}"
if [ "${#BUILD_STD[@]}" -gt 0 ]; then
  target_dir="$target_dir/web-kernel"
fi
"${WASM_CARGO[@]}" build -p plinth-web-kernel --target wasm32-unknown-unknown --release --locked \
  --target-dir "$target_dir" "${BUILD_STD[@]}"
mkdir -p "$here/dist"
cp "$target_dir/wasm32-unknown-unknown/release/plinth_web_kernel.wasm" "$here/dist/plinth_web_kernel.wasm"
echo "built $here/dist/plinth_web_kernel.wasm ($(wc -c < "$here/dist/plinth_web_kernel.wasm") bytes)"
