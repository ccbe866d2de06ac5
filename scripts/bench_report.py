"""Turns criterion's JSON results into BENCHMARKS.md (on stdout) and benchmarks.svg.

Usage: python3 scripts/bench_report.py target/criterion [benchmarks.svg] > BENCHMARKS.md

Standard library only. The side-by-side table reads the `vs_extism/*` benchmarks
(crates/bench/benches/vs_extism.rs) and target/criterion/vs_extism_rss.json; the other tables
list every other benchmark found.
"""
import json
import math
import pathlib
import platform
import subprocess
import sys


def fmt_time(ns):
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.3g} {unit}"
    return f"{ns:.3g} ns"


def fmt_rate(bytes_per_s):
    mib = bytes_per_s / (1 << 20)
    if mib >= 1024:
        return f"{mib / 1024:.2f} GiB/s"
    return f"{mib:,.0f} MiB/s"


def fmt_ratio(r):
    return f"{r:.3g}x" if r < 100 else f"{r:,.0f}x"


def load(root):
    """Every benchmark's latest result: full id -> (group, function, value, mean ns, throughput)."""
    out = {}
    for bench in sorted(root.glob("**/new/benchmark.json")):
        meta = json.loads(bench.read_text())
        est = json.loads((bench.parent / "estimates.json").read_text())
        out[meta["full_id"]] = (
            meta["group_id"],
            meta.get("function_id") or "",
            meta.get("value_str") or "",
            est["mean"]["point_estimate"],
            meta.get("throughput") or {},
        )
    return out


class Figures:
    """The side-by-side rows, and the bars of the plot."""

    def __init__(self, results, rss):
        self.results = results
        self.rss = rss
        self.rows = []  # (figure, plinth, extism, ratio, target, met)
        self.bars = []  # (label, ratio, target or None, kind)

    def ns(self, full_id):
        r = self.results.get(full_id)
        return r[3] if r else None

    def add(self, figure, plinth, extism, ratio, target="", met=None, bar=None):
        cell = lambda v: v if v is not None else "not measured"
        verdict = "" if met is None else ("**yes**" if met else "**no**")
        self.rows.append((figure, cell(plinth), cell(extism), ratio or "", target, verdict))
        if bar:
            self.bars.append(bar)

    def timed(self, figure, group, param="", target=None, rate_bytes=None, short=None,
              plinth="plinth"):
        """A Plinth/Extism pair: time (or rate) of each, Extism over Plinth, and the target
        `target` on that ratio if given. `plinth` names Plinth's benchmark function."""
        suffix = f"/{param}" if param else ""
        p = self.ns(f"vs_extism/{group}/{plinth}{suffix}")
        e = self.ns(f"vs_extism/{group}/extism{suffix}")

        def show(ns):
            if ns is None:
                return None
            if rate_bytes:
                return f"{fmt_rate(rate_bytes / (ns / 1e9))} ({fmt_time(ns)})"
            return fmt_time(ns)

        ratio = e / p if p and e else None
        met = None if target is None or ratio is None else ratio >= target
        self.add(
            figure,
            show(p),
            show(e),
            fmt_ratio(ratio) if ratio else None,
            f"≥{target:g}x Extism" if target else "",
            met,
            bar=(short or figure, ratio, target, "vs") if ratio else None,
        )
        return p, e


def side_by_side(results, rss, compile_rows=()):
    f = Figures(results, rss)
    builds = [("", "extism-pdk"), ("_plinth_pdk", "Plinth PDK")]

    for sfx, pdk in builds:
        p, _ = f.timed(f"call: 64 B echo, warm ({pdk} plug-in)", f"call_echo_64B{sfx}",
                       target=10, short=f"call 64 B echo ({pdk})")
        floor = f.ns("vs_extism/call_empty/wasmtime_floor")
        if p and floor:
            r = p / floor
            f.add(f"call: 64 B echo over the raw wasmtime floor ({pdk} plug-in)",
                  f"{fmt_time(p)} vs floor {fmt_time(floor)}", "", f"{fmt_ratio(r)} the floor",
                  "Plinth within 5x of the floor", r <= 5)
    for sfx, pdk in builds:
        f.timed(f"call: empty input and output ({pdk} plug-in)", f"call_empty{sfx}",
                short=f"call empty ({pdk})")
    floor = f.ns("vs_extism/call_empty/wasmtime_floor")
    if floor:
        f.add("call: raw wasmtime typed call of an empty export (the floor)", fmt_time(floor),
              "", "", "", None)
    for sfx, pdk in builds:
        f.timed(f"call: count_vowels, 71 B of text ({pdk} plug-in)", f"call_count_vowels{sfx}",
                short=f"call count_vowels ({pdk})")

    for sfx, pdk in builds:
        for size, label in ((64 << 10, "64 KiB"), (1 << 20, "1 MiB"), (16 << 20, "16 MiB")):
            target = 3 if (size == 1 << 20 and not sfx) else None
            f.timed(f"throughput: {label} echo ({pdk} plug-in)", f"throughput_echo{sfx}",
                           str(size), target=target, rate_bytes=size,
                           short=f"echo {label} ({pdk})")
    for size, label in ((64 << 10, "64 KiB"), (1 << 20, "1 MiB"), (16 << 20, "16 MiB")):
        p = f.ns(f"vs_extism/throughput_echo_bulk/plinth/{size}")
        if p:
            rate = size / (p / 1e9)
            target = size == 1 << 20
            f.add(f"throughput: {label} echo, Plinth alone (Plinth PDK with `bulk-copy`: "
                  "direct input and output, Plinth hosts only)", f"{fmt_rate(rate)} ({fmt_time(p)})",
                  "n/a", "", "Plinth ≥5 GiB/s" if target else "",
                  rate >= 5 * (1 << 30) if target else None)

    for sfx, pdk in builds:
        for size, label in ((64, "64 B"), (1 << 20, "1 MiB")):
            f.timed(f"host function round trip: {label} ({pdk} plug-in)", f"reflect{sfx}",
                    str(size), target=10 if size == 64 else None,
                    rate_bytes=size if size > 64 else None,
                    short=f"host fn {label} ({pdk})")

    for sfx, pdk in builds:
        f.timed(f"new instance from compiled, to the end of its first call, default settings "
                f"(pooled) ({pdk} plug-in)",
                f"new_instance_first_call{sfx}", target=20, short=f"new instance ({pdk})")
        f.timed(f"new instance from compiled, to the end of its first call, Plinth with "
                f"`with_instance_pooling(false)` ({pdk} plug-in)",
                f"new_instance_first_call{sfx}", plinth="plinth_on_demand",
                short=f"new on-demand instance ({pdk})")
        p, e = f.timed(f"fresh instance for every call: `call_fresh` (instance, call, drop) "
                       f"against Extism's new instance and first call ({pdk} plug-in)",
                       f"new_instance_first_call{sfx}", target=20, plinth="plinth_fresh_call",
                       short=f"fresh call ({pdk})")
        if p:
            f.add(f"fresh instance for every call, Plinth alone ({pdk} plug-in)", fmt_time(p),
                  "", "", "≤5 µs per call", p <= 5000)
    for plugin, pdk in (("extism_echo", "extism-pdk"), ("echo", "Plinth PDK")):
        e = next((r for r in rss if r["runtime"] == "extism" and r["plugin"] == plugin), None)
        for runtime, how in (("plinth", ""), ("plinth_on_demand", ", Plinth without pooling")):
            p = next((r for r in rss if r["runtime"] == runtime and r["plugin"] == plugin), None)
            if not (p and e):
                continue
            kib = p["kib_per_instance"]
            ratio = e["kib_per_instance"] / kib if kib > 0 else None
            f.add(f"memory per live instance, RSS growth over {p['instances']:,} "
                  f"({pdk} echo{how})", f"{kib:.1f} KiB", f"{e['kib_per_instance']:.1f} KiB",
                  f"{fmt_ratio(ratio)} less" if ratio else "", "Plinth <200 KiB", kib < 200,
                  bar=(f"memory per instance ({pdk}{' pooled' if how else ''})", ratio, None,
                       "vs") if ratio else None)

    for sfx, pdk in (("", "extism_count_vowels"), ("_plinth_pdk", "count_vowels")):
        pc, _ = f.timed(f"cold load: compile, instantiate, first call ({pdk})",
                        f"cold_compile{sfx}", target=1.5, short=f"cold compile ({pdk})")
        f.timed(f"cold load with tiering: Winch compile, instantiate, first call ({pdk})",
                f"cold_compile{sfx}", target=10, plinth="plinth_tiered",
                short=f"tiered first call ({pdk})")
        pa, _ = f.timed(f"cold load from a precompiled artifact: verify, load, instantiate, "
                        f"first call ({pdk})", f"cold_compile{sfx}", plinth="plinth_artifact",
                        short=f"artifact load ({pdk})")
        if pa:
            f.add(f"artifact load, Plinth alone ({pdk})", fmt_time(pa), "", "", "≤2 ms",
                  pa <= 2e6)
        pd, _ = f.timed(f"cold load from a disk cache: Plinth's cache / wasmtime's cache as "
                        f"Extism sets it up ({pdk})", f"cold_cached{sfx}",
                        short=f"disk-cache load ({pdk})")
        if pc and pd:
            r = pc / pd
            f.add(f"cold load, Plinth alone: disk cache against compiling ({pdk})",
                  f"{fmt_time(pd)} vs {fmt_time(pc)}", "", f"{fmt_ratio(r)} faster",
                  "≥10x faster than compiling", r >= 10,
                  bar=(f"Plinth disk cache vs compile ({pdk})", r, 10, "self"))

    # One compile in a fresh process, caches off: time and peak-memory growth. The target is
    # the sandbox issue's: at most 3x what the same module costs without inlining (Extism's
    # wasmtime compiles without it), whatever the module's shape.
    for shape, what in (("extism_count_vowels", "extism_count_vowels"),
                        ("call_chain", "a chain of 2,000 small functions, each calling the next twice")):
        p = next((r for r in compile_rows if r["runtime"] == "plinth" and r["shape"] == shape), None)
        e = next((r for r in compile_rows if r["runtime"] == "extism" and r["shape"] == shape), None)
        if not (p and e):
            continue
        rt = e["compile_ms"] / p["compile_ms"] if p["compile_ms"] > 0 else None
        f.add(f"compile, one module in a fresh process, caches off: time ({what})",
              f"{p['compile_ms']:.1f} ms", f"{e['compile_ms']:.1f} ms",
              fmt_ratio(rt) if rt else "", "Plinth ≤3x Extism", rt is not None and rt >= 1 / 3)
        pk, ek = p["peak_growth_kib"], e["peak_growth_kib"]
        rm = ek / pk if pk > 0 else None
        f.add(f"compile, one module in a fresh process: peak memory growth ({what})",
              f"{pk / 1024:.1f} MiB", f"{ek / 1024:.1f} MiB",
              f"{fmt_ratio(rm)} less" if rm else "", "Plinth ≤3x Extism",
              rm is not None and rm >= 1 / 3)

    one = {}
    for threads in (1, 2):
        p, e = f.timed(f"concurrency: 64 B echo calls/s on {threads} thread{'s' * (threads > 1)}, "
                       "one pool (extism-pdk plug-in)", "concurrency_echo_64B", str(threads),
                       short=f"calls/s, {threads} thread{'s' * (threads > 1)}")
        # The time is per round of one call on each thread: calls/s = threads / time.
        one[threads] = (p, e)
        last = f.rows[-1]
        cps = lambda ns: f"{threads / (ns / 1e9):,.0f} calls/s" if ns else None
        f.rows[-1] = (last[0], cps(p) or last[1], cps(e) or last[2]) + last[3:]
    if all(one.get(t) and all(one[t]) for t in (1, 2)):
        (p1, e1), (p2, e2) = one[1], one[2]
        sp, se = 2 * p1 / p2, 2 * e1 / e2
        f.add("concurrency: calls/s on 2 threads over 1 thread", fmt_ratio(sp), fmt_ratio(se), "",
              "Plinth ≥1.8x", sp >= 1.8, bar=("Plinth 2 threads vs 1", sp, 1.8, "self"))
    c1 = f.ns("vs_extism/concurrency_echo_64B/plinth_instance_per_thread/1")
    c2 = f.ns("vs_extism/concurrency_echo_64B/plinth_instance_per_thread/2")
    if c1 and c2:
        f.add("concurrency, Plinth without a pool: an instance per thread, calls/s on 2 threads "
              "over 1 (what the machine allows)", fmt_ratio(2 * c1 / c2), "", "", "", None)
    return f


def svg_plot(bars, path):
    """Horizontal bars on a log scale from 1x: how many times faster (or smaller) Plinth is."""
    bars = [b for b in bars if b[1] and b[1] > 0]
    if not bars:
        return
    # Room for the longest label (about 6.6 px per character at 12 px).
    row, top, width, right = 22, 62, 520, 70
    left = int(max(len(b[0]) for b in bars) * 6.6) + 24
    values = [b[1] for b in bars] + [b[2] for b in bars if b[2]]
    lo = 10 ** math.floor(math.log10(min(min(values), 1) / 1.2))
    hi = 10 ** math.ceil(math.log10(max(values) * 1.2))
    x = lambda v: left + width * (math.log10(v) - math.log10(lo)) / (math.log10(hi) - math.log10(lo))
    height = top + row * len(bars) + 40
    esc = lambda s: s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + width + right}" '
        f'height="{height}" font-family="sans-serif" font-size="12">',
        f'<rect width="100%" height="100%" fill="white"/>',
        '<text x="10" y="20" font-size="14" font-weight="bold">Plinth against Extism 1.30: '
        "Extism's time (or memory) over Plinth's, log scale</text>",
        '<text x="10" y="40" fill="#555">Green: Plinth faster or smaller. Red: Extism faster. '
        "Purple: Plinth against itself (disk cache vs compiling; 2 threads vs 1). "
        "Black tick: the issue's target.</text>",
    ]
    decade = lo
    while decade <= hi * 1.0001:
        gx = x(decade)
        out.append(f'<line x1="{gx:.1f}" y1="{top - 6}" x2="{gx:.1f}" y2="{top + row * len(bars)}" '
                   f'stroke="{"#333" if abs(decade - 1) < 1e-9 else "#ddd"}"/>')
        out.append(f'<text x="{gx:.1f}" y="{top + row * len(bars) + 16}" text-anchor="middle">'
                   f"{decade:g}x</text>")
        decade *= 10
    for i, (label, ratio, target, kind) in enumerate(bars):
        y = top + i * row
        x0, x1 = x(1), x(ratio)
        color = "#7b4fa6" if kind == "self" else ("#3a8a3a" if ratio >= 1 else "#c0392b")
        out.append(f'<text x="{left - 8}" y="{y + 15}" text-anchor="end">{esc(label)}</text>')
        out.append(f'<rect x="{min(x0, x1):.1f}" y="{y + 4}" width="{max(abs(x1 - x0), 1):.1f}" '
                   f'height="{row - 8}" fill="{color}"/>')
        label_x = max(x0, x1, x(target) if target else 0) + 5
        out.append(f'<text x="{label_x:.1f}" y="{y + 15}">{esc(fmt_ratio(ratio))}</text>')
        if target:
            tx = x(target)
            out.append(f'<line x1="{tx:.1f}" y1="{y + 1}" x2="{tx:.1f}" y2="{y + row - 1}" '
                       'stroke="black" stroke-width="3"/>')
    out.append("</svg>")
    pathlib.Path(path).write_text("\n".join(out) + "\n")


def async_section(root, results):
    """Issue 16: calls in flight awaiting a host function, what async costs, the webhook server."""
    conc_file = root / "async_concurrency.json"
    rows = json.loads(conc_file.read_text()) if conc_file.exists() else []
    overhead = {func: ns for (group, func, value, ns, tp) in results.values()
                if group == "async_overhead"}
    load_file = root / "webhooks_load.json"
    load = json.loads(load_file.read_text()) if load_file.exists() else None
    if not rows and not overhead and not load:
        return
    print("## Async calls\n")
    print("Code: `crates/bench/benches/async_calls.rs` (and `webhooks.rs` for the server).\n")
    if rows:
        print("### Calls in flight, each awaiting a 20 ms host function\n")
        print("N calls at once on a tokio runtime with 2 worker threads, each on an instance of its")
        print("own, each calling the host function `reflect` of `extism_echo`, which waits 20 ms.")
        print("Plinth: an async host function awaiting tokio's timer, the calls through")
        print("`PluginPool::call_async` (`plinth`: a pool as large as N; `plinth_pool_1000`: at")
        print("most 1,000 instances, the pooled slots, the calls past them awaiting a free one).")
        print("Extism: its host function sleeps (it cannot await) and each call runs in")
        print("`spawn_blocking` (tokio's blocking pool: at most 512 threads), the one way to keep")
        print("Extism off the runtime's workers, with instances kept in a free list. Each row is a")
        print("child process that runs the N calls twice: *cold*, on instances made for them, and")
        print("*warm*, on the same instances again (a server's steady state). Threads: the most OS")
        print("threads the process had at once; memory: peak RSS growth over the process before")
        print("the calls, per call in flight.\n")
        print("| runtime | calls | cold | warm | peak OS threads | memory per call in flight |")
        print("|---|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['runtime']} | {r['calls']:,} | {r['cold_ms']:.0f} ms | {r['warm_ms']:.0f} ms "
                  f"| {r['peak_threads']} | {r['kib_per_call']:.1f} KiB |")
        print()
        by = {(r["runtime"], r["calls"]): r for r in rows}
        one = by.get(("plinth", 1))
        targets = []
        for n in (1000, 10000):
            e = by.get(("extism", n))
            for name in ("plinth", "plinth_pool_1000"):
                p = by.get((name, n))
                if not (p and e):
                    continue
                for phase in ("cold", "warm"):
                    ratio = e[f"{phase}_ms"] / p[f"{phase}_ms"]
                    targets.append((f"{n:,} calls, {phase}, {name}: Extism's time over Plinth's",
                                    fmt_ratio(ratio), ">= 10x", "yes" if ratio >= 10 else "no"))
                if n == 10000 and one:
                    bound = 10 * one["warm_ms"]
                    for phase in ("cold", "warm"):
                        ms = p[f"{phase}_ms"]
                        targets.append((f"10,000 calls, {phase}, {name}: wall time",
                                        f"{ms:.0f} ms", f"< 10x one call ({bound:.0f} ms)",
                                        "yes" if ms < bound else "no"))
                    targets.append((f"10,000 calls, {name}: OS threads", str(p["peak_threads"]),
                                    "a few", "yes" if p["peak_threads"] <= 16 else "no"))
        if targets:
            print("| figure | measured | issue target | met? |")
            print("|---|---|---|---|")
            for t in targets:
                print("| " + " | ".join(t) + " |")
            print()
        print("Why the 10,000-call targets are not met:\n")
        print("- **10x Extism's way.** Extism in `spawn_blocking` runs at most 512 calls at once")
        print("  (tokio's blocking pool), so 10,000 calls of 20 ms take it at least 10,000 / 512 x")
        print("  20 ms = 390 ms, and its rows sit near that floor. 10x would be 10,000 calls in")
        print("  about 40 ms on 2 cores: 4 µs of CPU per call, instance included. A warm Plinth call")
        print("  here costs about ten times that, far more than the 1 µs of the same call on one")
        print("  warm instance below. `perf` spreads the rest over page faults, wasmtime's fiber")
        print("  set-up (a fiber and its stack per `call_async`) and trap-handler bookkeeping, and")
        print("  the scheduler; it was not pinned down further. What Plinth does meet is the thread")
        print("  count: 6-7 OS threads for 10,000 calls in flight against Extism's 518.")
        print("- **Cold, and a pool as large as the calls.** Past the 1,000 pooled slots")
        print("  (`plinth::POOLED_INSTANCES`, bounded by address space: each slot reserves 4 GiB")
        print("  plus guard pages per memory) instances are allocated on demand, with an")
        print("  `mmap`/`munmap` and fresh page faults each, and the first one also compiles the")
        print("  on-demand twin of the plug-in. Cold rows pay that for 9,000 instances. A pool")
        print("  bounded at the slots (`plinth_pool_1000`) keeps every instance pooled and queues")
        print("  the rest, at the price of ten rounds of 20 ms.")
        print("- **Memory.** Plinth's figure is per call in flight with an instance each; Extism's")
        print("  is spread over its 512 instances, since it never has more than 512 calls in flight.\n")
    if overhead:
        print("### What async costs on a warm instance\n")
        print("The same instance type called with `call` and with `call_async` (awaited in a loop")
        print("inside one `block_on` of a current-thread runtime, so the executor's own entry is")
        print("not counted). Echo: a 64-byte echo, no host function. Host function: the `reflect`")
        print("round trip at 64 B, through a sync host function (`call`) or an async one")
        print("(`call_async`).\n")
        print("| call | `call` | `call_async` | async over sync | issue target | met? |")
        print("|---|---|---|---|---|---|")
        for name in ("echo_64B", "host_function_64B"):
            sync_ns, async_ns = overhead.get(f"{name}/call"), overhead.get(f"{name}/call_async")
            if sync_ns and async_ns:
                r = async_ns / sync_ns
                print(f"| {name} | {fmt_time(sync_ns)} | {fmt_time(async_ns)} | {r:.2f}x | <= 2x "
                      f"| {'yes' if r <= 2 else 'no'} |")
        print()
    if load:
        print("### The webhook server under load\n")
        print("`examples/webhooks` (axum on tokio), started in-process on loopback; a load")
        print("generator in the bench crate posts events whose plug-in calls the async host")
        print("function `store_query` (SQLite).\n")
        print("| concurrency (client connections) | requests/s | p50 | p99 | server worker threads |")
        print("|---|---|---|---|---|")
        for r in load:
            print(f"| {r['concurrency']} | {r['requests_per_second']:,.0f} | {fmt_time(r['p50_us'] * 1e3)} "
                  f"| {fmt_time(r['p99_us'] * 1e3)} | {r['server_worker_threads']} |")
        print()
        print("Each request runs one SQLite read (through the host function) and one write (the")
        print("server records the event); the clients share the 2 cores with the server.\n")



def use_cases_section(root):
    """The SQLite extension and the game (issue 18), from their benches' JSON files."""
    sqlite_file = root / "sqlite_rows.json"
    game_file = root / "game_frame.json"
    if not sqlite_file.exists() and not game_file.exists():
        return
    print("## Plinth in programs\n")
    if sqlite_file.exists():
        r = json.loads(sqlite_file.read_text())
        print("### SQL functions from plug-ins (SQLite extension)\n")
        print("Code: `extensions/sqlite/bench.py`, run by `crates/bench/benches/sqlite_rows.rs`.")
        print(f"{r['rows']:,} rows, best of {r['runs']} interleaved runs, SQLite {r['sqlite_version']},")
        print(f"Debian's Python; the extension linked against the {r['libplinth_profile']} libplinth.")
        print("Each form computes the checkout discount of every row; the sums must agree.\n")
        print("| form | rows/s | per row |")
        print("|---|---|---|")
        forms = [
            ("native", "native SQL expression"),
            ("python_udf_args", "Python UDF (`create_function`) of the columns"),
            ("plugin_echo", "plug-in echo of an integer (the cost of one call)"),
            ("json_only", "the JSON built and read around the plug-in call, no call"),
            ("plugin", "**checkout plug-in, JSON in and out**"),
            ("python_udf", "Python UDF with the plug-in's JSON interface"),
        ]
        for key, label in forms:
            if f"{key}_rows_per_s" in r:
                print(f"| {label} | {r[key + '_rows_per_s']:,} | {fmt_time(r[key + '_ns_per_row'])} |")
        print()
        print(f"The plug-in function takes {r['plugin_over_native']}x the time of the native")
        print(f"expression and {r['plugin_over_python_udf']}x that of the Python UDF doing the same JSON work;")
        print("most of its time is the JSON that SQL builds and parses around the call.\n")
    if game_file.exists():
        rows = json.loads(game_file.read_text())
        print("### Game mods within a frame\n")
        print("Code: `crates/bench/benches/game_frame.rs`. One frame is one tick of")
        print("`examples/game` with 100 mods (one plug-in loaded 100 times, each mod's files")
        print("checked for changes every tick), median of 200 frames. Target: 100 mods within a")
        print("16 ms frame.\n")
        print("| mod | mods | frame | mod calls that fit in 16 ms | 100 mods in 16 ms? |")
        print("|---|---|---|---|---|")
        for g in rows:
            met = "yes" if g["frame_ns"] <= 16e6 else "no"
            print(f"| {g['mod']} | {g['mods']} | {fmt_time(g['frame_ns'])} | {g['calls_per_16ms']:,} | {met} |")
        print()

def streaming_section(root):
    """Streaming (issue 19), from crates/bench/benches/streaming.rs's streaming.json."""
    path = root / "streaming.json"
    if not path.exists():
        return
    r = json.loads(path.read_text())
    gib = r["input_bytes"] / (1 << 30)
    size = f"{gib:g} GiB" if gib >= 1 else f"{r['input_bytes'] / (1 << 20):g} MiB"
    print("## Streaming\n")
    print("Code: `crates/bench/benches/streaming.rs`. " + size + " of generated log lines go")
    print(f"through a `grep` for `{r['pattern']}`, each way in a fresh process, whose peak RSS")
    print("(VmHWM) is the whole process's. The streamed time includes generating the input; the")
    print("whole-buffer times are the call's only, with the input already in memory. Every way")
    print("must find the same lines. Targets (issue 19): streamed peak RSS at most 64 MiB and at")
    print("least 1 GiB/s. The whole-buffer ways hold the input about four times over (the")
    print("caller's copy, Extism memory, the plug-in's copy and its growth), and spend most of")
    print("their time in the kernel's first touch of those pages (`perf`: about 60% in")
    print("`clear_page_erms`), so their times vary by 2x from run to run on this machine.\n")
    print("| way | time | throughput | peak RSS | peak RSS after loading the plug-in | output |")
    print("|---|---|---|---|---|---|")
    for v in r["variants"]:
        res = v["result"]
        if "error" in res:
            print(f"| {v['label']} | failed: {res['error']} | | | | |")
            continue
        mib = lambda b: f"{b / (1 << 20):,.1f} MiB"
        print(
            f"| {v['label']} | {fmt_time(res['seconds'] * 1e9)} | {res['gib_per_second']:.2f} GiB/s"
            f" | {mib(res['peak_rss_bytes'])} | {mib(res['peak_rss_after_load_bytes'])}"
            f" | {res['output_lines']:,} lines |"
        )
    stream = next((v["result"] for v in r["variants"] if v["name"] == "plinth_stream"), None)
    if stream and "error" not in stream:
        rss_ok = stream["peak_rss_bytes"] <= 64 << 20
        rate_ok = stream["gib_per_second"] >= 1.0
        print()
        print(f"Streamed: peak RSS at most 64 MiB: {'met' if rss_ok else 'not met'};"
              f" at least 1 GiB/s: {'met' if rate_ok else 'not met'}.")
    fb = r["first_byte"]
    met = "met" if fb["max_us"] <= 1000 else ("met at p99" if fb["p99_us"] <= 1000 else "not met")
    print()
    print(f"Time to the first output byte ({fb['plugin']}, a reader that hands out one")
    print(f"{fb['chunk_bytes']:,} B chunk and then blocks until that byte arrives), over {fb['calls']:,}")
    print(f"calls: median {fmt_time(fb['median_us'] * 1e3)}, p99 {fmt_time(fb['p99_us'] * 1e3)},")
    print(f"max {fmt_time(fb['max_us'] * 1e3)}. Target at most 1 ms: {met}.\n")


def web_section(root):
    """@plinth/web against @extism/extism (issue 17), from sdks/web/bench's web.json."""
    path = root / "web.json"
    if not path.exists():
        return
    r = json.loads(path.read_text())
    print("## Plinth on the web\n")
    print(f"Code: `sdks/web/bench` (`measure.mjs`). `@plinth/web` {r['sdks']['plinth_web']} beside")
    print(f"`@extism/extism` {r['sdks']['extism']} (npm's `latest`), in one run, on the same .wasm files")
    print("and inputs, both on the calling thread (Extism with `runInWorker: false`), both with")
    print("plain synchronous host functions. Each figure is the median of "
          f"{r['budget']['samples']} batches of about")
    print(f"{r['budget']['sampleMs']} ms per SDK, the two SDKs' batches alternating; every output is checked.")
    print("New instance: from the .wasm bytes (`Plugin.load` / `createPlugin`) to the end of the")
    print("first 64 B echo call; closing is not timed. `@plinth/web` keeps the modules it compiled")
    print("(by sha256 of the bytes), so only a plug-in's first load pays for the kernel's rewrite and")
    print("compilation (the rewrite's row shows that cost); `@extism/extism` compiles at every load.")
    print("The host-function round trip is")
    print("`call_greet` with 64 B, whose host function `greet` answers with a copy of its input.")
    print("`@extism/extism` keeps every call's blocks until `reset()` (a warm instance fails")
    print("after 16,383 calls without one), so its instances are reset every 4,000 calls or")
    print("64 MiB, inside the clock.")
    print("The ratio is Extism's time over Plinth's: how many times faster `@plinth/web` is.")
    nodes = [e["version"] for e in r["environments"] if e["engine"] == "node"]
    extra = (f", `PLINTH_WEB_EXTRA_NODE` set to a Node.js {nodes[1].lstrip('v')} for its table"
             if len(nodes) > 1 else "")
    print(f"Measured from commit {r['commit']} with `{r['command']}`{extra}"
          f"{' (a smoke run: the numbers mean little)' if r.get('mode') == 'smoke' else ''}.\n")
    targets = {"echo_64B": 5, "host_fn_64B": 5, "echo_1MiB": 2}
    for env in r["environments"]:
        fused = {v.get("fused") for f in env["figures"] for k, v in f["results"].items()
                 if k == "plinth" and "fused" in v}
        how = ("fused (multi-memory)" if fused == {True} else
               "unfused (no multi-memory: the plug-in's hot memory imports link to the kernel's "
               "memory-functions module, its other ABI calls are host functions)"
               if fused == {False} else "partly fused")
        print(f"### {env['name']}\n")
        print(f"`@plinth/web` ran the plug-ins {how}; JSPI {'on' if env.get('jspi') else 'off'}.\n")
        print("| figure | Plinth | Extism | ratio Extism/Plinth |")
        print("|---|---|---|---|")
        met, missed = [], []
        for f in env["figures"]:
            def cell(res):
                if "median_ns" not in res:
                    return "n/a" if "skipped" in res else "failed"
                ns = res["median_ns"]
                # fmt_time's 3 significant digits turn 999.6 µs into "1e+03 µs".
                ns = 1e6 if 999.5e3 <= ns < 1e6 else 1e3 if 999.5 <= ns < 1e3 else ns
                if f["input_bytes"] >= 1 << 20:
                    return f"{fmt_rate(f['input_bytes'] / (ns / 1e9))} ({fmt_time(ns)})"
                if f["figure"] in ("new_instance", "prepare"):
                    return fmt_time(ns)
                return f"{fmt_time(ns)} ({1e9 / ns:,.0f} calls/s)"
            res = f["results"]
            ratio = f.get("ratio")
            print(f"| {f['label']} | {cell(res.get('plinth', {}))} | {cell(res.get('extism', {}))} "
                  f"| {fmt_ratio(ratio) if ratio else ''} |")
            target = targets.get(f["figure"])
            if target and ratio:
                what = {"echo_64B": "64 B echo", "host_fn_64B": "host function",
                        "echo_1MiB": "1 MiB echo"}[f["figure"]]
                (met if ratio >= target else missed).append(f"{what} {f['plugin']} {fmt_ratio(ratio)}")
        print()
        print(f"Targets (issue 17): at least 5x Extism on calls (64 B echo, host-function round trip),")
        print(f"at least 2x on the 1 MiB echo; none for a new instance. "
              f"Met: {', '.join(met) or 'none'}. Not met: {', '.join(missed) or 'none'}.\n")


def main():
    root = pathlib.Path(sys.argv[1])
    svg = sys.argv[2] if len(sys.argv) > 2 else "benchmarks.svg"
    results = load(root)
    rss_file = root / "vs_extism_rss.json"
    rss = json.loads(rss_file.read_text()) if rss_file.exists() else []
    compile_file = root / "vs_extism_compile.json"
    compile_rows = json.loads(compile_file.read_text()) if compile_file.exists() else []
    cpu = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = len([l for l in open("/proc/cpuinfo") if l.startswith("processor")]) or "?"
    rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
    print("# Benchmarks\n")
    print("Regenerate with `scripts/bench.sh` (criterion, `cargo bench -p plinth-bench`).")
    print(f"Machine: {cpu} ({cores} cores), {platform.system()} {platform.machine()}; {rustc}.")
    git = lambda *a: subprocess.run(["git", *a], capture_output=True, text=True).stdout
    head = git("rev-parse", "--short", "HEAD").strip()
    # The code measured: the runtime and the PDK as committed, or with local changes.
    dirty = git("status", "--porcelain", "--", "crates", "pdk", "plugins", ":!crates/bench")
    dirty = sorted({line[3:] for line in dirty.splitlines()})
    state = f"commit {head}" if head else "an unknown commit"
    if dirty:
        state += " plus uncommitted changes to " + ", ".join(f"`{d}`" for d in dirty)
    print(f"Code measured: {state}.\n")

    figures = side_by_side(results, rss, compile_rows)
    print("## Plinth beside Extism\n")
    print("Plinth (wasmtime 48) and the Extism runtime (the `extism` crate 1.30.0, wasmtime 43,")
    print("the newest Extism that builds with rustc 1.95) run the same .wasm files, built from")
    print("source by `scripts/build-plugins.sh`: `extism_echo` and `extism_count_vowels` use the")
    print("published extism-pdk 1.4.1; `echo` and `count_vowels` are the same sources on Plinth's")
    print("PDK. Both runtimes get the same host function `reflect` (each one's `host_fn!`).")
    print("Code: `crates/bench/benches/vs_extism.rs`.\n")
    print("The ratio is Extism's time over Plinth's: how many times faster Plinth is (for memory,")
    print("how many times less it takes). Targets are the issue's, on ratios from this run.\n")
    print("| figure | Plinth | Extism | ratio Extism/Plinth | issue target | met? |")
    print("|---|---|---|---|---|---|")
    for row in figures.rows:
        print("| " + " | ".join(row) + " |")
    print()
    print("Notes:")
    print("- Calls are `Plugin::call::<&[u8], &[u8]>` on a warm instance, output checked; the")
    print("  throughput and host-function figures echo the input back in full.")
    print("- New instance: `CompiledPlugin::instantiate` / `extism::Plugin::new_from_compiled`")
    print("  plus the first call (Extism instantiates lazily at the first call); dropping the")
    print("  instance is not timed. Plinth's default is pooled instances (wasmtime's pooling")
    print("  allocator, slots reset in place); `with_instance_pooling(false)` is the row without.")
    print("  A fresh call is `CompiledPlugin::call_fresh` as a whole: instance, call and drop.")
    print("  Memory: VmRSS growth while 1,000 instances live (each after its first call),")
    print("  measured in a fresh process per runtime.")
    print("- Cold load: from the .wasm bytes to the end of a first count_vowels call. Compiling:")
    print("  Plinth with its in-memory and disk caches off; Extism with wasmtime's cache off (by")
    print("  default Extism 1.30 uses wasmtime's compilation cache in ~/.cache/wasmtime, or")
    print("  `EXTISM_CACHE_CONFIG`, so a default `Plugin::new` of a module seen before is a cache")
    print("  load, not a compile). Extism also compiles its kernel module and makes a new wasmtime")
    print("  `Engine` for each plug-in. From a disk cache: Plinth's own cache, against wasmtime's")
    print("  cache as Extism's `with_cache_config` sets it up; the Extism API has no way to")
    print("  serialize a compiled plug-in itself. With tiering: `with_tiering(true)`, to the end")
    print("  of the first call on Winch's code (the background Cranelift compile is waited for")
    print("  after the clock stops). From an artifact: `PluginBuilder::from_artifact` (signature")
    print("  checked, native code loaded) to the end of the first call.")
    print(f"- Compiling uses every core: wasmtime compiles functions in parallel, on the {cores}")
    print("  cores of this machine. On one core Cranelift's compile of extism_count_vowels took")
    print("  about 1.8x as long as on two (106 ms against 58 ms, best of 31, measured beside")
    print("  this run with wasmtime 48 and `Config::parallel_compilation`); Winch's barely")
    print("  changes (20 ms against 17 ms), so tiering gains most on machines with few cores.")
    print("- Concurrency: `plinth::PluginPool` and `extism::Pool`, both of at most 2 instances of")
    print("  one compiled plug-in; each round is one call on each thread.")
    print("- The plot of the ratios is `benchmarks.svg`.\n")
    print("### The targets not met, and why\n")
    print("- **64 B echo within 5x of the wasmtime floor.** The host's part of a call is within")
    print("  it: a call with empty input and output costs under 3x the floor (about 50 ns against")
    print("  18 ns; `call_empty` above, and `call/empty` on the WAT echo below). A PDK-built 64 B")
    print("  echo adds the plug-in's own work, which no host can remove: it allocates a `Vec` in")
    print("  the guest, reads the input through the ABI, and makes two host calls (`alloc` and")
    print("  `output_set`, each a wasm-to-host transition). The hand-written WAT echo, with the")
    print("  same two host calls and no guest allocator, is about 5x the floor (`call/echo_64B`).")
    print("- **1 MiB echo of the extism-pdk plug-in 3x faster.** That plug-in moves its data 8")
    print("  bytes per ABI call, as extism-pdk does: 131,072 `input_load_u64` calls in and as")
    print("  many `store_u64` calls out per MiB, plus its own copies into and out of a `Vec`.")
    print("  Plinth splices each call into a load or a store inside the plug-in, so the host's")
    print("  share is one copy of the input; the rest is the plug-in's loop, which Plinth cannot")
    print("  change without recognizing extism-pdk's copy loops in the rewrite and replacing them")
    print("  with `memory.copy` (what would meet the target). Plug-ins on Plinth's PDK with")
    print("  `bulk-copy` skip the loop: 6 GiB/s above.")
    print("- **A new instance 20x faster, and a fresh instance per call in 5 µs.** Measured with")
    print("  `perf` (`cargo build --release -p plinth-bench --example profile`, then")
    print("  `perf record target/release/examples/profile fresh`): what is left of a pooled")
    print("  instance is mostly the kernel's, two `mprotect`s per instance (a reset slot's memory")
    print("  shrinks back to the module's minimum, and the plug-in's first `memory.grow` opens it")
    print("  again), each with a TLB flush, plus one `PAGEMAP_SCAN` per memory at reset (a fused")
    print("  plug-in has two), and wasmtime's instantiation. The fresh-call row also pays the")
    print("  reset when the instance is dropped, which the new-instance row does not time. What")
    print("  would meet it: recycling an instance in place, contents and globals reset through the")
    print("  exports the rewrite adds but the memory's size kept, so that no slot is torn down.")
    print("- **Cold load 1.5x faster, and 10x with a fast first tier.** Compiling is Cranelift's")
    print("  work for both runtimes (parallel, inliner off) and costs the same. Tiering makes the")
    print("  first call 2-3x earlier: Winch still compiles the whole module (about 17-20 ms for")
    print("  these plug-ins on this machine), after Plinth's validation and fusing pass. 10x")
    print("  (under 8 ms) would take compiling functions lazily, at their first call, which")
    print("  wasmtime 48 does not do, or an interpreter as the first tier. A precompiled artifact")
    print("  (`plinth compile`) is what meets it today: about 80x, in under 1 ms.")
    print("- **16 MiB echoes** (no target) swing from run to run on this virtual machine, for both")
    print("  runtimes (Extism's 16 MiB echo went from 621 to 288 MiB/s between two runs): fresh")
    print("  page faults cost what the hypervisor makes them cost.")
    print("- **Host-function round trip at 64 B 10x faster** (when a run shows it under 10x).")
    print("  The ratio moves with the machine's noise: in the run of the splicing change")
    print("  Plinth's round trip fell from 511 ns to 414 ns while Extism's, in the same run,")
    print("  measured 3.86 µs instead of the 5.46 µs of the run before, so the ratio went from")
    print("  10.7x to 9.3x. The round trip is two host calls (`reflect` and the echo's own")
    print("  `alloc`/`output_set`), each a wasm-to-host transition of wasmtime's.\n")
    print("### Splicing instead of Cranelift's inliner\n")
    print("Until the sandbox issue, Plinth compiled every module with Cranelift's inliner, which")
    print("made the fused ABI fast but compiling about 3x slower than Extism (cold load 0.29x")
    print("Extism), and whose cost had no bound on some call graphs (a 2,000-function call chain:")
    print("10 s and 3.2 GB). fuse.rs now splices the ABI bodies into their call sites itself and")
    print("the inliner is off: the compile rows above show time and peak memory at Extism's level")
    print("for a normal plug-in and for that chain, and the 1 MiB echo went from 1.18 GiB/s")
    print("(1.84x Extism) with the inliner to about 1.8 GiB/s (about 2x) with splicing.\n")
    print("![Plinth against Extism](benchmarks.svg)\n")

    async_section(root, results)
    use_cases_section(root)
    streaming_section(root)
    web_section(root)

    print("## Plinth alone\n")
    print("How to read these numbers:")
    print("- `abi_design/*` echo the same PDK-style loop (8 bytes per ABI call) in raw wasmtime,")
    print("  to decide where the ABI's hot calls should land (see ARCHITECTURE.md). Plinth gets")
    print("  `fused_inlined_epoch` (the fused kernel inlined, with the epoch checks that timeouts")
    print("  need) by splicing the kernel into its call sites at load time, with Cranelift's own")
    print("  inliner off.")
    print("- `call`, `throughput`, `instance` and `concurrency` are Plinth's own API on a")
    print("  hand-written WAT echo plug-in (`crates/bench/src/lib.rs`). `wasmtime_floor_empty` is")
    print("  a raw typed call of an empty export, the floor a plug-in call cannot beat.\n")
    print("| group | benchmark | input | mean time | throughput |")
    print("|---|---|---|---|---|")
    for full_id, (group, func, value, ns, tp) in sorted(results.items()):
        if group.startswith("vs_extism/") or group.startswith("async_overhead"):
            continue
        rate = ""
        if "Bytes" in tp:
            rate = f"{tp['Bytes'] / (ns / 1e9) / (1 << 20):,.0f} MiB/s"
        elif "Elements" in tp:
            rate = f"{tp['Elements'] / (ns / 1e9):,.0f} calls/s"
        print(f"| {group} | {func} | {value} | {fmt_time(ns)} | {rate} |")

    svg_plot(figures.bars, svg)


main()
