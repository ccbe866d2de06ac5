#!/usr/bin/env bash
# Runs the criterion benchmarks and writes BENCHMARKS.md from their results.
# Usage: scripts/bench.sh [criterion filter]   (about 3 minutes on 2 cores after the build)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench -p plinth-bench --benches -- --warm-up-time 1 --measurement-time 3 "$@"
python3 scripts/bench_report.py target/criterion > BENCHMARKS.md
echo "wrote BENCHMARKS.md"
