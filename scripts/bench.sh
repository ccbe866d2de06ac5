#!/usr/bin/env bash
# Runs the criterion benchmarks and writes BENCHMARKS.md and benchmarks.svg from their results.
# Usage: scripts/bench.sh [criterion filter]
#   e.g. scripts/bench.sh vs_extism/call   (the filter is a regex on benchmark ids)
# All of them take about 10-15 minutes on 2 cores after the build: benches/vs_extism.rs (Plinth
# beside the Extism runtime on the same plug-ins) is most of it.
set -euo pipefail
cd "$(dirname "$0")/.."
# The side-by-side benchmark loads the Rust plug-ins of plugins/ (target/wasm-plugins).
bash scripts/build-plugins.sh
cargo bench --locked -p plinth-bench --benches -- --warm-up-time 1 --measurement-time 3 "$@"
python3 scripts/bench_report.py target/criterion benchmarks.svg > BENCHMARKS.md
echo "wrote BENCHMARKS.md and benchmarks.svg"
