"""Turns criterion's JSON results into the Markdown tables of BENCHMARKS.md."""
import json
import pathlib
import platform
import subprocess
import sys


def fmt_time(ns):
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.3g} {unit}"
    return f"{ns:.3g} ns"


def rows(root):
    for bench in sorted(root.glob("**/new/benchmark.json")):
        meta = json.loads(bench.read_text())
        est = json.loads((bench.parent / "estimates.json").read_text())
        ns = est["mean"]["point_estimate"]
        tp = meta.get("throughput") or {}
        rate = ""
        if "Bytes" in tp:
            rate = f"{tp['Bytes'] / (ns / 1e9) / (1 << 20):,.0f} MiB/s"
        yield meta["group_id"], meta.get("function_id") or "", meta.get("value_str") or "", ns, rate


def main():
    root = pathlib.Path(sys.argv[1])
    cpu = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
    print("# Benchmarks\n")
    print("Regenerate with `scripts/bench.sh` (criterion, `cargo bench -p plinth-bench`).")
    print(f"Machine: {cpu}, {platform.system()} {platform.machine()}; {rustc}.\n")
    print("| group | benchmark | input | mean time | throughput |")
    print("|---|---|---|---|---|")
    for group, func, value, ns, rate in rows(root):
        print(f"| {group} | {func} | {value} | {fmt_time(ns)} | {rate} |")


main()
