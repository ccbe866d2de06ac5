#!/usr/bin/env bash
# Builds the cargo-fuzz targets in fuzz/ and runs each for SECONDS (default 60).
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]      targets: manifest abi_model wasm_smith fused_vs_host (all by default)
#
# Corpora persist in target/fuzz-corpus/<target> (seeded from fuzz/seeds/<target>), so each run
# continues where the last one stopped. A crash or hang leaves its input in
# target/fuzz-artifacts/<target>/ and makes the script exit non-zero once every target ran;
# `cargo +nightly fuzz run --sanitizer none <target> <file>` (in fuzz/) replays it.
# Needs a nightly toolchain (rustup's `nightly`, or RUSTC_BOOTSTRAP=1 on stable) and
# cargo-fuzz, which is installed when missing.
#
# No sanitizer by default: the code under test is safe Rust, and wasmtime's compiled wasm is
# not instrumented anyway, while AddressSanitizer makes the wasm_smith target 3-4 times slower
# (every instance maps gigabytes of address space) and the build twice as long.
# FUZZ_SANITIZER=address (or leak, memory, thread) turns one on. Debug assertions and
# overflow checks are on either way.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

seconds="${1:-60}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(manifest abi_model wasm_smith fused_vs_host)
fi

if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  toolchain=(+nightly)
else
  # cargo-fuzz passes -Z flags (sanitizers, coverage); stable accepts them this way.
  export RUSTC_BOOTSTRAP=1
  toolchain=()
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi

# Every input is a new module: keep them out of the on-disk compiled-module cache.
export PLINTH_CACHE=off

sanitizer="${FUZZ_SANITIZER:-none}"
root="$PWD"
target_dir="$root/target/fuzz-$sanitizer"
cd fuzz
start=$(date +%s)
# `fuzz build` takes one target or none (all of them).
build_one=()
if [ ${#targets[@]} -eq 1 ]; then
  build_one=("${targets[0]}")
fi
cargo "${toolchain[@]}" fuzz build --sanitizer "$sanitizer" --target-dir "$target_dir" "${build_one[@]}"
echo "fuzz targets built in $(( $(date +%s) - start )) s"

failed=()
for t in "${targets[@]}"; do
  corpus="$root/target/fuzz-corpus/$t"
  artifacts="$root/target/fuzz-artifacts/$t"
  mkdir -p "$corpus" "$artifacts"
  if [ -d "seeds/$t" ]; then
    cp -n "seeds/$t"/* "$corpus"/ 2>/dev/null || true
  fi
  extra=()
  if [ -f "$t.dict" ]; then
    extra+=("-dict=$t.dict")
  fi
  if [ "$t" = wasm_smith ]; then
    # Each input compiles a module (tens of runs a second), far too few for libFuzzer to
    # grow inputs from a few bytes on its own: start with long ones.
    extra+=(-max_len=16384 -len_control=0)
  fi
  echo "== $t: ${seconds} s"
  # -timeout: one input running longer than this is reported as a hang.
  if ! cargo "${toolchain[@]}" fuzz run --sanitizer "$sanitizer" --target-dir "$target_dir" "$t" "$corpus" -- \
      -max_total_time="$seconds" -timeout=30 -rss_limit_mb=4096 \
      -artifact_prefix="$artifacts/" -print_final_stats=1 "${extra[@]}"; then
    failed+=("$t")
  fi
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzzing found problems in: ${failed[*]} (inputs in target/fuzz-artifacts/)" >&2
  exit 1
fi
echo "fuzzing: no crashes in ${targets[*]} (${seconds} s each)"
