#!/usr/bin/env bash
# Builds every plug-in into target/wasm-plugins/NAME.wasm:
#  - Rust crates of the workspace in plugins/ (Plinth's PDK examples and the extism-pdk
#    compatibility fixtures), for wasm32-unknown-unknown, or wasm32-wasip1 when the crate's
#    Cargo.toml says `[package.metadata.plinth] target = "wasm32-wasip1"`;
#  - C files in plugins/c/ with clang and wasi-libc, as reactors.
# Run scripts/install-wasm-toolchain.sh once first.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
out=$root/target/wasm-plugins
mkdir -p "$out"
# One target dir for all plug-in crates, so dependencies (and std, on the Debian route) build once.
export CARGO_TARGET_DIR=$root/target/wasm-build
source scripts/wasm-env.sh

if [ -f plugins/Cargo.toml ]; then
  # One cargo run per group (plugins/rust, plugins/extism-pdk, ...): features unify within a
  # run, and a PDK's lean dependency features (anyhow without std) must not be undone by
  # another group's, or the sizes would not be what a plug-in built alone gets.
  for group in plugins/*/; do
    unknown=() wasi=()
    for manifest in "$group"*/Cargo.toml; do
      [ -f "$manifest" ] || continue
      name=$(sed -n 's/^name *= *"\(.*\)"/\1/p' "$manifest" | head -1)
      if grep -q 'target *= *"wasm32-wasip1"' "$manifest"; then wasi+=(-p "$name"); else unknown+=(-p "$name"); fi
    done
    (
      cd plugins
      if [ ${#unknown[@]} -gt 0 ]; then
        "${WASM_CARGO[@]}" build --release --locked "${BUILD_STD[@]}" --target wasm32-unknown-unknown "${unknown[@]}"
      fi
      if [ ${#wasi[@]} -gt 0 ]; then
        "${WASM_CARGO[@]}" build --release --locked "${BUILD_STD[@]}" --target wasm32-wasip1 "${wasi[@]}"
      fi
    )
  done
  for t in wasm32-unknown-unknown wasm32-wasip1; do
    for f in "$CARGO_TARGET_DIR/$t/release/"*.wasm; do
      [ -f "$f" ] && cp "$f" "$out/"
    done
  done
fi

for src in plugins/c/*.c; do
  [ -f "$src" ] || continue
  name=$(basename "$src" .c)
  clang --target=wasm32-wasi -Os -mexec-model=reactor -Wl,--strip-all -I pdk/c -o "$out/$name.wasm" "$src"
done

echo "plug-ins in $out:"
ls -l "$out" | awk 'NR > 1 {print "  " $NF ": " $5 " bytes"}'
