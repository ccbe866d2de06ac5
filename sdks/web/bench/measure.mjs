// The measurements, the same in Node.js and in the browser: run.mjs imports this file with the
// SDKs it loaded from node_modules and dist/, the page browser/bench.mjs with their browser
// builds. Nothing here touches Node.js or the DOM.
//
// Each figure is measured for both SDKs on the same .wasm bytes and the same input. A sample
// is the mean time of a batch of operations, the batch sized to last about `sampleMs` (so the
// clock's resolution, 5 µs or coarser in a browser, does not matter); the samples of the two
// SDKs alternate, so that a slow spell of the shared machine hits both; the figure is the
// median sample. Every output is checked (its length each time, its bytes once before timing).

/** The SDKs behind one interface: load(bytes, host), call(plugin, name, input) -> bytes, close(plugin). */
export function adapters({ plinth, extism }) {
  const out = [];
  if (plinth) {
    const { Plugin, HostFunction } = plinth;
    out.push({
      name: 'plinth',
      async load(wasm, host) {
        // `host`: the names of the extism:host/user functions the plug-in imports, each one
        // answering its input block with a copy of it.
        const functions = host.map((name) => new HostFunction(name, ['i64'], ['i64'], (current, [handle]) => current.writeBytes(current.readBytes(handle))));
        return Plugin.load(wasm, { functions });
      },
      call: (p, name, input) => p.call(name, input),
      close: (p) => p.close(),
      fused: (p) => p.fused,
      // The kernel's load-time rewrite alone (stream link, fuse), which a first load runs.
      prepare: async () => {
        const kernel = await plinth.loadKernel();
        return (wasm) => kernel.prepare(wasm);
      },
    });
  }
  if (extism) {
    // @extism/extism 1.0.3 keeps every call's input and output block until `reset()`: a warm
    // instance fails after about 16,000 calls ("cannot assign to this block": the block index
    // reaches the address's sign bit) and holds every output in memory. So the adapter resets
    // an instance after 4,000 calls or 64 MiB of blocks, as a long-running user must; the
    // reset (it truncates the block list) is inside the clock, spread over those calls.
    const since = new WeakMap();
    out.push({
      name: 'extism',
      async load(wasm, host) {
        const user = {};
        for (const name of host) user[name] = (context, handle) => context.store(context.read(handle).bytes());
        // runInWorker: false (its default, said here): the plug-in runs on this thread, as
        // @plinth/web's does without a timeout, so both are measured on the same thread.
        return extism.createPlugin({ wasm: [{ data: wasm }] }, { useWasi: false, runInWorker: false, functions: { 'extism:host/user': user } });
      },
      async call(p, name, input) {
        const output = await p.call(name, input);
        const bytes = output === null ? new Uint8Array(0) : output.bytes();
        const used = since.get(p) ?? { calls: 0, bytes: 0 };
        used.calls += 1;
        used.bytes += input.length + bytes.length;
        if (used.calls >= 4000 || used.bytes >= 64 << 20) {
          if (!(await p.reset())) throw new Error('@extism/extism: reset() refused (the plug-in is active)');
          used.calls = 0;
          used.bytes = 0;
        }
        since.set(p, used);
        return bytes;
      },
      close: (p) => p.close(),
      fused: () => false,
    });
  }
  return out;
}

function bytesOf(size, seed) {
  const b = new Uint8Array(size);
  for (let i = 0; i < size; i++) b[i] = 0x20 + ((i * 31 + seed) % 95); // printable: the greet plug-ins take a String
  return b;
}

function sameBytes(a, b) {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** What is measured: the issue's four figures for an extism-pdk and a Plinth-PDK plug-in. */
export function figures() {
  const small = bytesOf(64, 1);
  const mib = bytesOf(1 << 20, 7);
  const list = [];
  for (const [pdk, echo, greet] of [['extism-pdk', 'extism_echo', 'extism_host_fn'], ['Plinth PDK', 'echo', 'host_greet']]) {
    list.push({ id: `echo_64B/${echo}`, figure: 'echo_64B', pdk, plugin: echo, host: ['reflect'], fn: 'echo', input: small, kind: 'call', label: `64 B echo, warm instance (${pdk}: ${echo})` });
    list.push({ id: `host_fn_64B/${greet}`, figure: 'host_fn_64B', pdk, plugin: greet, host: ['greet'], fn: 'call_greet', input: small, kind: 'call', label: `host-function round trip, 64 B (${pdk}: ${greet}, \`greet\` answers with its input)` });
    list.push({ id: `echo_1MiB/${echo}`, figure: 'echo_1MiB', pdk, plugin: echo, host: ['reflect'], fn: 'echo', input: mib, kind: 'call', label: `1 MiB echo, warm instance (${pdk}: ${echo})` });
    list.push({ id: `new_instance/${echo}`, figure: 'new_instance', pdk, plugin: echo, host: ['reflect'], fn: 'echo', input: small, kind: 'load', label: `new instance + first call, 64 B echo (${pdk}: ${echo}, from the .wasm bytes; @plinth/web reuses the module it compiled at the first load, @extism/extism compiles again)` });
  }
  // What a first load of a plug-in costs on top: the kernel's rewrite of the module (later loads
  // of the same bytes reuse the compiled module).
  list.push({ id: 'prepare/extism_echo', figure: 'prepare', pdk: 'extism-pdk', plugin: 'extism_echo', host: [], fn: '', input: small, kind: 'prepare', label: "the kernel's load-time rewrite alone, part of a plug-in's first load (extism_echo), Plinth only", plinthOnly: true });
  // bulk-copy: input and output move with one copy each, through Plinth's own imports
  // (plinth:host/env), which Extism does not provide: Plinth alone.
  list.push({ id: 'echo_1MiB/echo_bulk', figure: 'echo_1MiB', pdk: 'Plinth PDK, bulk-copy', plugin: 'echo_bulk', host: ['reflect'], fn: 'echo', input: mib, kind: 'call', label: '1 MiB echo, warm instance (Plinth PDK with `bulk-copy`: echo_bulk, Plinth hosts only)', plinthOnly: true });
  return list;
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/**
 * Runs every figure for every SDK. `wasm(name)` gives a plug-in's bytes; `now()` is
 * performance.now(); `budget`: { warmMs, sampleMs, samples }; `log(line)` reports progress.
 */
export async function measureAll({ sdks, wasm, now, budget, log = () => {} }) {
  const results = [];
  for (const fig of figures()) {
    const bytes = await wasm(fig.plugin);
    const row = { id: fig.id, figure: fig.figure, pdk: fig.pdk, plugin: fig.plugin, label: fig.label, input_bytes: fig.input.length, results: {} };
    const runners = [];
    for (const sdk of sdks) {
      if (fig.plinthOnly && sdk.name !== 'plinth') {
        row.results[sdk.name] = { skipped: fig.kind === 'prepare' ? "Plinth's kernel" : 'the plug-in imports plinth:host/env (bulk copies), which only Plinth hosts provide' };
        continue;
      }
      try {
        runners.push({ sdk, op: await prepare(sdk, fig, bytes) });
      } catch (e) {
        row.results[sdk.name] = { error: String(e?.stack ?? e) };
        log(`${fig.id}: ${sdk.name} failed: ${e?.message ?? e}`);
      }
    }
    try {
      await timeAlternating(runners, now, budget, row.results);
    } finally {
      for (const r of runners) await r.op.dispose();
    }
    const p = row.results.plinth?.median_ns;
    const e = row.results.extism?.median_ns;
    row.ratio = p && e ? e / p : null; // Extism's time over Plinth's: how many times faster Plinth is
    log(`${fig.id}: ${Object.entries(row.results).map(([k, v]) => `${k} ${v.median_ns ? fmtNs(v.median_ns) : v.error ? 'failed' : 'skipped'}`).join(', ')}${row.ratio ? `, ratio ${row.ratio.toFixed(2)}x` : ''}`);
    results.push(row);
  }
  return results;
}

function fmtNs(ns) {
  return ns >= 1e6 ? `${(ns / 1e6).toFixed(3)} ms` : ns >= 1e3 ? `${(ns / 1e3).toFixed(2)} µs` : `${ns.toFixed(0)} ns`;
}

/** One SDK's operation for a figure, checked once: run(n) does it n times. */
async function prepare(sdk, fig, bytes) {
  const expected = fig.input;
  const check = (out, what) => {
    if (!sameBytes(out, expected)) throw new Error(`${sdk.name} ${fig.plugin}.${fig.fn}: ${what}: the output (${out.length} B) is not the input (${expected.length} B)`);
  };
  if (fig.kind === 'prepare') {
    const prep = await sdk.prepare();
    if (!(prep(bytes).wasm.length > 0)) throw new Error(`${sdk.name}: the kernel's prepare gave no module for ${fig.plugin}`);
    return {
      fused: undefined,
      async run(n, now) {
        const t0 = now();
        for (let i = 0; i < n; i++) prep(bytes);
        return (now() - t0) / n;
      },
      dispose: async () => {},
    };
  }
  if (fig.kind === 'load') {
    // The instance is closed outside the clock; loaded ones wait in `open` until then.
    const first = await sdk.load(bytes, fig.host);
    check(await sdk.call(first, fig.fn, expected), 'first call');
    await sdk.close(first);
    return {
      fused: undefined,
      async run(n, now) {
        const open = [];
        let total = 0;
        for (let i = 0; i < n; i++) {
          const t0 = now();
          const p = await sdk.load(bytes, fig.host);
          const out = await sdk.call(p, fig.fn, expected);
          total += now() - t0;
          if (out.length !== expected.length) check(out, 'first call');
          open.push(p);
          if (open.length >= 16) for (const q of open.splice(0)) await sdk.close(q);
        }
        for (const q of open) await sdk.close(q);
        return total / n;
      },
      dispose: async () => {},
    };
  }
  const plugin = await sdk.load(bytes, fig.host);
  check(await sdk.call(plugin, fig.fn, expected), 'first call');
  return {
    fused: sdk.fused(plugin),
    async run(n, now) {
      const t0 = now();
      for (let i = 0; i < n; i++) {
        const out = await sdk.call(plugin, fig.fn, expected);
        if (out.length !== expected.length) check(out, `call ${i}`);
      }
      return (now() - t0) / n;
    },
    dispose: async () => sdk.close(plugin),
  };
}

async function timeAlternating(runners, now, { warmMs, sampleMs, samples }, into) {
  if (runners.length === 0) return;
  // Warm up each, and size its batch so that one lasts about sampleMs.
  for (const r of runners) {
    const end = now() + warmMs;
    let n = 1;
    let per = await r.op.run(1, now);
    while (now() < end) {
      per = await r.op.run(n, now);
      if (per * n < sampleMs / 2) n *= 2;
    }
    r.batch = Math.max(1, Math.round(sampleMs / Math.max(per, 1e-6)));
    r.samples = [];
  }
  for (let i = 0; i < samples; i++) {
    for (const r of i % 2 ? [...runners].reverse() : runners) r.samples.push(await r.op.run(r.batch, now));
  }
  for (const r of runners) {
    const ns = r.samples.map((ms) => ms * 1e6);
    into[r.sdk.name] = {
      median_ns: median(ns),
      min_ns: Math.min(...ns),
      max_ns: Math.max(...ns),
      samples: ns.length,
      ops_per_sample: r.batch,
      ...(r.op.fused === undefined ? {} : { fused: r.op.fused }),
    };
  }
}
