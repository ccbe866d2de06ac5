// The cases of @plinth/web that run both in a browser page (test/browser/page.mjs, which
// browser.test.mjs opens in Chromium) and on Node.js (test/cases.test.mjs), against the static
// server of test/server.mjs. Each case throws on a wrong result. Where the engine decides what
// happens (multi-memory: fused or not; JSPI: async host functions on the calling thread or in a
// worker), a case checks what this engine should do, and `expectChromium` adds that the engine
// has both. A case the engine cannot run has a `skip` property saying why.
import { CompiledPlugin, HostFunction, JSPI, MULTI_MEMORY, Plugin, PlinthError } from '../../dist/index.js';

function equal(actual, expected, what) {
  const a = JSON.stringify(actual);
  const e = JSON.stringify(expected);
  if (a !== e) throw new Error(`${what}: expected ${e}, got ${a}`);
}

/** Runs `f`, which must fail with a PlinthError of `kind` (and `code`, message matching `pattern`). */
async function failsWith(f, kind, { code = -1, pattern } = {}) {
  try {
    await f();
  } catch (e) {
    if (!(e instanceof PlinthError)) throw new Error(`expected a PlinthError of kind ${kind}, got ${e?.stack ?? e}`);
    if (e.kind !== kind) throw new Error(`expected kind ${kind}, got ${e.kind}: ${e.message}`);
    if (e.code !== code) throw new Error(`expected code ${code}, got ${e.code}: ${e.message}`);
    if (pattern && !pattern.test(e.message)) throw new Error(`the message ${JSON.stringify(e.message)} does not match ${pattern}`);
    return e;
  }
  throw new Error(`expected a PlinthError of kind ${kind}, but the call succeeded`);
}

/** (module (func (export "boom") (result i32) unreachable)), hand-assembled. */
const trapModule = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
  0x01, 0x05, 0x01, 0x60, 0x00, 0x01, 0x7f, // type 0: () -> i32
  0x03, 0x02, 0x01, 0x00, // func 0: type 0
  0x07, 0x08, 0x01, 0x04, 0x62, 0x6f, 0x6f, 0x6d, 0x00, 0x00, // export "boom" = func 0
  0x0a, 0x05, 0x01, 0x03, 0x00, 0x00, 0x0b, // body: unreachable
]);

const utf8Name = (text) => [text.length, ...new TextEncoder().encode(text)];
const env = utf8Name('extism:host/env');

/** (module (func (export "double") (param i32) (result i32) (i32.mul (local.get 0) (i32.const 2)))) */
const doubleLib = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
  0x01, 0x06, 0x01, 0x60, 0x01, 0x7f, 0x01, 0x7f, // type 0: (i32) -> i32
  0x03, 0x02, 0x01, 0x00, // func 0: type 0
  0x07, 0x0a, 0x01, ...utf8Name('double'), 0x00, 0x00, // export "double" = func 0
  0x0a, 0x09, 0x01, 0x07, 0x00, 0x20, 0x00, 0x41, 0x02, 0x6c, 0x0b, // local.get 0, i32.const 2, i32.mul
]);

/**
 * Two libraries in a cycle: `lib` (import "rhs" "add_one") and `double(x) = add_one(x * 2)`;
 * `rhs` (import "lib" "double"), only to close the cycle, and `add_one(x) = x + 1`.
 */
const cyclicLib = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
  0x01, 0x06, 0x01, 0x60, 0x01, 0x7f, 0x01, 0x7f, // type 0: (i32) -> i32
  0x02, 0x0f, 0x01, ...utf8Name('rhs'), ...utf8Name('add_one'), 0x00, 0x00, // func 0: rhs.add_one
  0x03, 0x02, 0x01, 0x00, // func 1: type 0
  0x07, 0x0a, 0x01, ...utf8Name('double'), 0x00, 0x01, // export "double" = func 1
  0x0a, 0x0b, 0x01, 0x09, 0x00, 0x20, 0x00, 0x41, 0x02, 0x6c, 0x10, 0x00, 0x0b, // add_one(x * 2)
]);
const cyclicRhs = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
  0x01, 0x06, 0x01, 0x60, 0x01, 0x7f, 0x01, 0x7f, // type 0: (i32) -> i32
  0x02, 0x0e, 0x01, ...utf8Name('lib'), ...utf8Name('double'), 0x00, 0x00, // func 0: lib.double
  0x03, 0x02, 0x01, 0x00, // func 1: type 0
  0x07, 0x0b, 0x01, ...utf8Name('add_one'), 0x00, 0x01, // export "add_one" = func 1
  0x0a, 0x09, 0x01, 0x07, 0x00, 0x20, 0x00, 0x41, 0x01, 0x6a, 0x0b, // x + 1
]);

/**
 * (module
 *   (import "extism:host/env" "input_load_u8" (func $load (param i64) (result i32)))
 *   (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
 *   (import "extism:host/env" "store_u8" (func $store (param i64 i32)))
 *   (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
 *   (import "lib" "double" (func $double (param i32) (result i32)))
 *   (func (export "run") (result i32) (local $out i64)
 *     (local.set $out (call $alloc (i64.const 1)))
 *     (call $store (local.get $out) (call $double (call $load (i64.const 0))))
 *     (call $output_set (local.get $out) (i64.const 1))
 *     (i32.const 0)))
 */
const doublingMain = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
  // types: 0 (i64)->i32, 1 (i64)->i64, 2 (i64,i32)->(), 3 (i64,i64)->(), 4 (i32)->i32, 5 ()->i32
  0x01, 0x1e, 0x06, 0x60, 0x01, 0x7e, 0x01, 0x7f, 0x60, 0x01, 0x7e, 0x01, 0x7e, 0x60, 0x02, 0x7e, 0x7f, 0x00,
  0x60, 0x02, 0x7e, 0x7e, 0x00, 0x60, 0x01, 0x7f, 0x01, 0x7f, 0x60, 0x00, 0x01, 0x7f,
  0x02, 0x7e, 0x05, // 5 imports, funcs 0-4
  ...env, ...utf8Name('input_load_u8'), 0x00, 0x00,
  ...env, ...utf8Name('alloc'), 0x00, 0x01,
  ...env, ...utf8Name('store_u8'), 0x00, 0x02,
  ...env, ...utf8Name('output_set'), 0x00, 0x03,
  ...utf8Name('lib'), ...utf8Name('double'), 0x00, 0x04,
  0x03, 0x02, 0x01, 0x05, // func 5: type 5
  0x07, 0x07, 0x01, ...utf8Name('run'), 0x00, 0x05, // export "run" = func 5
  0x0a, 0x1e, 0x01, 0x1c, 0x01, 0x01, 0x7e, // one body, one i64 local
  0x42, 0x01, 0x10, 0x01, 0x21, 0x00, // local.set 0 (call alloc (i64.const 1))
  0x20, 0x00, 0x42, 0x00, 0x10, 0x00, 0x10, 0x04, 0x10, 0x02, // call store (local 0) (call double (call load 0))
  0x20, 0x00, 0x42, 0x01, 0x10, 0x03, // call output_set (local 0) (i64.const 1)
  0x41, 0x00, 0x0b, // i32.const 0
]);

/** test/helpers.mjs's counterModule (its WAT is there): `count` outputs var n and the instance's call count. */
const counterModule = Uint8Array.from(atob('AGFzbQEAAAABIQdgAX4BfmACfn8AYAF+AX9gAn5+AGAAAGABfwF+YAABfwK3AQcPZXh0aXNtOmhvc3QvZW52BWFsbG9jAAAPZXh0aXNtOmhvc3QvZW52CHN0b3JlX3U4AAEPZXh0aXNtOmhvc3QvZW52B2xvYWRfdTgAAg9leHRpc206aG9zdC9lbnYHdmFyX2dldAAAD2V4dGlzbTpob3N0L2Vudgd2YXJfc2V0AAMPZXh0aXNtOmhvc3QvZW52Cm91dHB1dF9zZXQAAxBleHRpc206aG9zdC91c2VyBHdhaXQABAMFBAUGBgYGBgF/AUEACwcXAwVjb3VudAAIBHdhaXQACQRzcGluAAoKewQSAQF+QgEQACEBIAEgABABIAELVQMBfgF/AX5B7gAQBxADIQAgAEIAUgRAIAAQAiEBCyABQQFqIQEjAEEBaiQAQe4AEAcgARAHEARCAhAAIQIgAiABEAEgAkIBfCMAEAEgAkICEAVBAAsGABAGEAgLCQADQAwAC0EACw=='), (c) => c.charCodeAt(0));

async function count(p, options) {
  const [n, calls] = await p.call('count', undefined, options);
  return { n, calls };
}

/**
 * (module (import "extism:host/env" "load_u8" (func (param i64) (result i32))) (memory 1)
 *   (func (export "grow") (result i32)
 *     (block (loop (br_if 1 (i32.eq (memory.grow (i32.const 1)) (i32.const -1)))
 *                  (br_if 1 (i32.ge_u (memory.size) (i32.const 1000))) (br 0)))
 *     (memory.size)))
 * Grows until refused and returns its pages (a non-zero return: kind guest, that code). The
 * unused load_u8 import makes it fused.
 */
const growModule = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
  0x01, 0x0a, 0x02, 0x60, 0x01, 0x7e, 0x01, 0x7f, 0x60, 0x00, 0x01, 0x7f, // types: (i64) -> i32, () -> i32
  0x02, 0x1b, 0x01, 0x0f, ...new TextEncoder().encode('extism:host/env'), 0x07, ...new TextEncoder().encode('load_u8'), 0x00, 0x00,
  0x03, 0x02, 0x01, 0x01, // func 1: type 1
  0x05, 0x03, 0x01, 0x00, 0x01, // memory 0: min 1, no maximum
  0x07, 0x08, 0x01, 0x04, 0x67, 0x72, 0x6f, 0x77, 0x00, 0x01, // export "grow" = func 1
  0x0a, 0x1f, 0x01, 0x1d, 0x00,
  0x02, 0x40, 0x03, 0x40, // block, loop
  0x41, 0x01, 0x40, 0x00, 0x41, 0x7f, 0x46, 0x0d, 0x01, // memory.grow 1 == -1: br_if 1
  0x3f, 0x00, 0x41, 0xe8, 0x07, 0x4f, 0x0d, 0x01, // memory.size >= 1000: br_if 1
  0x0c, 0x00, 0x0b, 0x0b, // br 0, end, end
  0x3f, 0x00, 0x0b, // memory.size
]);

/**
 * (module (import "extism:host/env" "load_u8" (func (param i64) (result i32))) (memory 1)
 *   (func (export "grow_or_abort") (result i32)
 *     (if (i32.eq (memory.grow (i32.const 100)) (i32.const -1)) (then unreachable)) (i32.const 0))
 *   (func (export "grow_gracefully") (result i32)
 *     (if (i32.ne (memory.grow (i32.const 100)) (i32.const -1)) (then unreachable)) (i32.const 0))
 *   (func (export "abort") (result i32) unreachable))
 * compiled with wabt; the unused load_u8 import makes it fused.
 */
const refusableModule = Uint8Array.from(atob('AGFzbQEAAAABCgJgAX4Bf2AAAX8CGwEPZXh0aXNtOmhvc3QvZW52B2xvYWRfdTgAAAMEAwEBAQUDAQABBzQEBm1lbW9yeQIADWdyb3dfb3JfYWJvcnQAAQ9ncm93X2dyYWNlZnVsbHkAAgVhYm9ydAADCicDEABB5ABAAEF/RgRAAAtBAAsQAEHkAEAAQX9HBEAAC0EACwMAAAs='), (c) => c.charCodeAt(0));

/** Marks a case that needs JSPI: on an engine without it the runners skip it, saying why. */
function needsJspi(run) {
  if (!JSPI) run.skip = 'this engine has no JSPI (WebAssembly.Suspending: Chrome 137, Node.js 25 or newer); without it a plug-in with async host functions runs in a worker, which the other async cases cover';
  return run;
}

/**
 * The cases by name, for a server at `base` (`http://127.0.0.1:port`, which serves
 * /target/wasm-plugins/ and /api/) and a loopback port nothing listens on. With
 * `expectChromium`, the engine must have multi-memory, JSPI and cross-origin isolation.
 */
export function makeCases({ base, closedPort, expectChromium = false }) {
  const url = (name) => `${base}/target/wasm-plugins/${name}.wasm`;
  const { port } = new URL(base);

  async function bytes(name) {
    const response = await fetch(url(name));
    if (!response.ok) throw new Error(`GET ${url(name)}: ${response.status}; build the plug-ins: bash scripts/build-plugins.sh`);
    return new Uint8Array(await response.arrayBuffer());
  }

  return {
    async 'plug-ins run fused where the engine has multi-memory (Chromium has it, and JSPI)'() {
      if (expectChromium) equal({ MULTI_MEMORY, JSPI }, { MULTI_MEMORY: true, JSPI: true }, 'features');
      const p = await Plugin.load(await bytes('count_vowels'));
      equal(p.fused, MULTI_MEMORY, 'plugin.fused (MULTI_MEMORY)');
      p.close();
    },

    async 'two modules linked by name, and CompiledPlugin instances with their own memory'() {
      const compiled = await CompiledPlugin.load({ wasm: [{ name: 'lib', data: doubleLib }, { data: doublingMain }] });
      equal(compiled.fused, MULTI_MEMORY, 'compiled.fused (MULTI_MEMORY)');
      const a = await compiled.instantiate();
      const b = compiled.instantiateSync();
      try {
        equal([...(await a.call('run', new Uint8Array([21])))], [42], 'a: 21 doubled');
        equal([...b.callSync('run', new Uint8Array([4]))], [8], 'b: 4 doubled');
        a.close();
        equal([...(await b.call('run', new Uint8Array([50])))], [100], 'b after a.close()');
      } finally {
        a.close();
        b.close();
      }
      await failsWith(() => Plugin.load({ wasm: [{ name: 'math', data: doubleLib }, { data: doublingMain }] }), 'link', { pattern: /no module of the manifest is named `lib` \(they are `math`, `main`\)/ });
    },

    async 'two libraries that import each other are linked through a late-bound import'() {
      // `lib` is listed first, so it is instantiated first and its `rhs.add_one` is bound late.
      const p = await Plugin.load({ wasm: [{ name: 'lib', data: cyclicLib }, { name: 'rhs', data: cyclicRhs }, { data: doublingMain }] });
      try {
        // doublingMain maps the first input byte through `lib.double`.
        equal([...(await p.call('run', new Uint8Array([20])))], [41], 'x * 2 + 1');
        equal([...p.callSync('run', new Uint8Array([3]))], [7], 'callSync');
      } finally {
        p.close();
      }
    },

    async 'memory.max_pages bounds the plug-in\'s own memory.grow, with Extism memory\'s page'() {
      const p = await Plugin.load({ wasm: [{ data: growModule }], memory: { max_pages: 6 } });
      try {
        equal(p.fused, MULTI_MEMORY, 'plugin.fused (MULTI_MEMORY)');
        // 5 pages of its own beside Extism memory's one: memory.grow gave -1 past that (fused
        // it sees Extism memory itself; unfused, through a global the SDK keeps current).
        await failsWith(() => p.call('grow'), 'guest', { code: 5 });
      } finally {
        p.close();
      }
    },

    async 'a trap after a refused memory.grow is kind out_of_memory; a handled refusal is not, nor a later trap'() {
      const p = await Plugin.load({ wasm: [{ data: refusableModule }], memory: { max_pages: 4 } });
      try {
        equal(p.fused, MULTI_MEMORY, 'plugin.fused (MULTI_MEMORY)');
        await failsWith(() => p.call('grow_or_abort'), 'out_of_memory', { pattern: /could not grow past memory.max_pages = 4 pages/ });
        equal((await p.call('grow_gracefully')).length, 0, 'it saw -1 and returned 0');
        await failsWith(() => p.call('abort'), 'trap', { code: 134, pattern: /unreachable/ });
      } finally {
        p.close();
      }
    },

    async 'checkout: the discount for two carts (plug-in loaded from a manifest url)'() {
      const p = await Plugin.load({ wasm: [{ url: url('checkout') }] });
      try {
        equal(p.fused, MULTI_MEMORY, 'plugin.fused (MULTI_MEMORY)');
        const cart = { cart_total: 12000, provided_email: true };
        equal(await p.callJson('before_checkout_finalize', { ...cart, is_new_customer: true }), { discount_percent: 20 }, 'new customer, 120.00');
        equal(await p.callJson('before_checkout_finalize', { ...cart, is_new_customer: false }), { discount_percent: 0 }, 'returning customer, 120.00');
        equal(await p.callJson('before_checkout_finalize', { cart_total: 9999, is_new_customer: true, provided_email: false }), { discount_percent: 0 }, 'new customer, 99.99');
      } finally {
        p.close();
      }
    },

    async 'count_vowels: config sets the vowels, the var total accumulates across calls'() {
      const p = await Plugin.load(await bytes('count_vowels'), { config: { vowels: 'yY' } });
      try {
        equal(JSON.parse(await p.callString('count_vowels', 'Rhythm of the day, yes')), { count: 3, total: 3, vowels: 'yY' }, 'first call');
        equal(JSON.parse(new TextDecoder().decode(p.callSync('count_vowels', 'Yay'))), { count: 2, total: 5, vowels: 'yY' }, 'second call (callSync)');
        equal(JSON.parse(await p.callString('count_vowels', 'y')), { count: 1, total: 6, vowels: 'yY' }, 'third call');
      } finally {
        p.close();
      }
      const fresh = await Plugin.load(await bytes('count_vowels'));
      equal(JSON.parse(await fresh.callString('count_vowels', 'Hello, World!')), { count: 3, total: 3, vowels: 'aeiouAEIOU' }, 'default vowels, a new plug-in starts at 0');
      fresh.close();
    },

    async 'config and vars from the host: updateConfig, varSet and varGet, on this thread and in a worker; reset()'() {
      const total = (bytes) => Number(new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true));
      const hundred = new Uint8Array(8);
      new DataView(hundred.buffer).setBigUint64(0, 100n, true);
      for (const options of [{}, { timeoutMs: 5000 }]) {
        const where = options.timeoutMs === undefined ? 'this thread' : 'a worker';
        const p = await Plugin.load(await bytes('count_vowels'), { ...options, config: { vowels: 'a' } });
        try {
          equal(await p.callJson('count_vowels', 'banana'), { count: 3, total: 3, vowels: 'a' }, `${where}: first call`);
          equal(total(p.varGet('total')), 3, `${where}: var total read by the host`);
          p.updateConfig({ vowels: 'n' });
          p.varSet('total', hundred);
          equal(p.config(), { vowels: 'n' }, `${where}: config()`);
          equal(await p.callJson('count_vowels', 'banana'), { count: 2, total: 102, vowels: 'n' }, `${where}: after updateConfig and varSet`);
          p.updateConfig({ vowels: null });
          p.reset();
          equal(await p.callJson('count_vowels', 'e'), { count: 1, total: 103, vowels: 'aeiouAEIOU' }, `${where}: key removed, after reset()`);
        } finally {
          p.close();
        }
        await failsWith(() => p.varGet('total'), 'closed', { pattern: /closed/ });
      }
    },

    async 'a sync host function (host_greet)'() {
      const greet = new HostFunction('greet', ['i64'], ['i64'], (c, [h], prefix) => c.writeString(prefix + c.readString(h)), { userData: 'Hello, ' });
      const p = await Plugin.load(await bytes('host_greet'), { functions: [greet] });
      try {
        equal(p.async, false, 'plugin.async');
        equal(await p.callString('call_greet', 'Ada'), 'Hello, Ada', 'call');
        equal(new TextDecoder().decode(p.callSync('call_greet', 'Grace')), 'Hello, Grace', 'callSync');
      } finally {
        p.close();
      }
    },

    async 'an async host function lets the event loop run while the plug-in waits (JSPI, or a worker without it)'() {
      const events = [];
      const greet = new HostFunction('greet', ['i64'], ['i64'], async (c, [h]) => {
        const name = c.readString(h);
        setTimeout(() => events.push('other timer'), 0);
        await new Promise((resolve) => setTimeout(resolve, 50));
        events.push('resolved');
        return c.writeString(`Hello after a wait, ${name}`);
      });
      const p = await Plugin.load(await bytes('host_greet'), { functions: [greet] });
      try {
        equal(p.async, true, 'plugin.async');
        equal(await p.callString('call_greet', 'Ada'), 'Hello after a wait, Ada', 'call');
        equal(events, ['other timer', 'resolved'], 'the event loop ran while the plug-in waited');
        await failsWith(() => p.callSync('call_greet', 'x'), 'host_function', { pattern: /call\(\)/ });
      } finally {
        p.close();
      }
    },

    async 'async host functions: calls made at once run in order; a queued call cancelled never runs; close() fails the queued ones'() {
      const seen = [];
      let release;
      const gate = new Promise((resolve) => { release = resolve; });
      let stuckEntered;
      const stuckInside = new Promise((resolve) => { stuckEntered = resolve; });
      const greet = new HostFunction('greet', ['i64'], ['i64'], async (c, [h]) => {
        const name = c.readString(h);
        seen.push(name);
        if (name === 'hold') await gate;
        if (name === 'stuck') {
          stuckEntered();
          await new Promise(() => {});
        }
        await new Promise((resolve) => setTimeout(resolve, name.length % 3));
        return c.writeString(`<${name}>`);
      });
      const p = await Plugin.load(await bytes('host_greet'), { functions: [greet] });
      const names = Array.from({ length: 20 }, (_, i) => `call ${i}${'.'.repeat(i % 4)}`);
      equal(await Promise.all(names.map((n) => p.callString('call_greet', n))), names.map((n) => `<${n}>`), 'results');
      equal(seen, names, 'the order the host function saw');
      const held = p.callString('call_greet', 'hold');
      const controller = new AbortController();
      const dropped = p.callString('call_greet', 'never', { signal: controller.signal });
      const after = p.callString('call_greet', 'after');
      controller.abort();
      await failsWith(() => dropped, 'cancelled', { pattern: /never ran/ });
      release();
      equal([await held, await after], ['<hold>', '<after>'], 'the calls around the cancelled one');
      equal(seen.slice(names.length), ['hold', 'after'], 'the cancelled call never reached the plug-in');
      // Both are handled before close() rejects them, so that the page sees no unhandled rejection.
      const [stuck, queued] = [p.call('call_greet', 'stuck'), p.call('call_greet', 'queued')].map((c) => c.then(() => undefined, (e) => e));
      await stuckInside;
      p.close();
      // Without JSPI the call in flight is in a worker, which close() terminates.
      await failsWith(() => stuck.then((e) => { throw e; }), 'closed', { pattern: JSPI ? /awaited a host function/ : /closed during the call/ });
      await failsWith(() => queued.then((e) => { throw e; }), 'closed', { pattern: /waited for the calls before it/ });
    },

    'JSPI: the plug-in awaits on the calling thread, so callSync during that call is refused with kind busy': needsJspi(async () => {
      let entered;
      const inside = new Promise((resolve) => { entered = resolve; });
      let release;
      const gate = new Promise((resolve) => { release = resolve; });
      const greet = new HostFunction('greet', ['i64'], ['i64'], async (c, [h]) => {
        const name = c.readString(h);
        entered();
        await gate;
        return c.writeString(`<${name}>`);
      });
      const p = await Plugin.load(await bytes('host_greet'), { functions: [greet] });
      try {
        const held = p.callString('call_greet', 'held');
        await inside;
        await failsWith(() => p.callSync('call_greet', 'x'), 'busy', { pattern: /while `call_greet` awaits a host function/ });
        release();
        equal(await held, '<held>', 'the call that awaited');
      } finally {
        p.close();
      }
    }),

    async 'cancel while an async host function awaits drops the instance (JSPI) or its worker; the next call has a fresh one, vars kept'() {
      let entered;
      const inside = new Promise((resolve) => { entered = resolve; });
      const wait = new HostFunction('wait', [], [], async () => {
        entered();
        await new Promise(() => {});
      });
      const p = await Plugin.load(counterModule, { functions: [wait] });
      try {
        equal(await count(p), { n: 1, calls: 1 }, 'first count');
        equal(await count(p), { n: 2, calls: 2 }, 'second count');
        await failsWith(() => count(p, { signal: AbortSignal.abort() }), 'cancelled', { pattern: /before it was made/ });
        const controller = new AbortController();
        const waiting = p.call('wait', undefined, { signal: controller.signal });
        await inside;
        controller.abort();
        await failsWith(() => waiting, 'cancelled', { pattern: JSPI ? /awaited a host function; its instance was dropped/ : /its worker was terminated/ });
        equal(await count(p), { n: 3, calls: 1 }, 'after the cancel: var n kept, the instance fresh');
      } finally {
        p.close();
      }
    },

    async 'under timeoutMs, cancel and the timeout terminate the worker; vars survive into the fresh one'() {
      const wait = new HostFunction('wait', [], [], () => {});
      const p = await Plugin.load(counterModule, { functions: [wait], timeoutMs: 2000 });
      try {
        equal(await count(p), { n: 1, calls: 1 }, 'first count');
        const controller = new AbortController();
        const spinning = p.call('spin', undefined, { signal: controller.signal });
        setTimeout(() => controller.abort(), 100);
        await failsWith(() => spinning, 'cancelled', { pattern: /its worker was terminated/ });
        equal(await count(p), { n: 2, calls: 1 }, 'after the cancel');
        await failsWith(() => p.call('spin'), 'timeout', { pattern: /timeout_ms = 2000 ms/ });
        equal(await count(p), { n: 3, calls: 1 }, 'after the timeout');
      } finally {
        p.close();
      }
    },

    async 'an Extism-PDK plug-in (extism_count_vowels) with config and vars'() {
      const p = await Plugin.load({ wasm: [{ url: url('extism_count_vowels') }], config: { vowels: 'o' } });
      try {
        equal(p.fused, MULTI_MEMORY, 'plugin.fused (MULTI_MEMORY)');
        equal(await p.callJson('count_vowels', 'foo boo'), { count: 4, total: 4, vowels: 'o' }, 'first call');
        equal(await p.callJson('count_vowels', 'o'), { count: 1, total: 5, vowels: 'o' }, 'second call');
      } finally {
        p.close();
      }
    },

    async 'HTTP: http_fetch gets the allowed loopback endpoint'() {
      const p = await Plugin.load({ wasm: [{ url: url('http_fetch') }], allowed_hosts: ['127.0.0.1'] });
      try {
        equal(await p.callString('http_get', `http://127.0.0.1:${port}/api/allowed`), 'hello from the allowed endpoint', 'body');
        await failsWith(() => p.call('http_get', `http://127.0.0.1:${port}/api/missing`), 'guest', { code: 404, pattern: /returned HTTP status 404/ });
      } finally {
        p.close();
      }
    },

    async 'HTTP: a host not in allowed_hosts is denied before any request'() {
      const p = await Plugin.load({ wasm: [{ url: url('http_fetch') }], allowed_hosts: ['127.0.0.1'] });
      try {
        // The same server under another name: only allowed_hosts stops it (the server counts hits).
        await failsWith(() => p.call('http_get', `http://localhost:${port}/api/denied`), 'http_denied', { pattern: /HTTP request to localhost denied: the host is not in allowed_hosts/ });
      } finally {
        p.close();
      }
    },

    async 'HTTP: an allowed host that does not answer fails with kind http'() {
      const p = await Plugin.load({ wasm: [{ url: url('http_fetch') }], allowed_hosts: ['127.0.0.1'] });
      try {
        await failsWith(() => p.call('http_get', `http://127.0.0.1:${closedPort}/`), 'http', { pattern: /HTTP request to 127\.0\.0\.1:\d+ failed/ });
      } finally {
        p.close();
      }
    },

    async 'WASI: stdout and stderr reach the host callbacks (cli_testkit)'() {
      const out = [];
      const err = [];
      const p = await Plugin.load({ wasm: [{ url: url('cli_testkit') }], config: { mode: 'print' } }, {
        wasi: { stdout: (b) => out.push(...b), stderr: (b) => err.push(...b) },
      });
      try {
        equal(await p.callString('run'), 'the result\n', 'output');
        equal(new TextDecoder().decode(new Uint8Array(out)), 'to stdout \u001b[31m\n', 'stdout');
        equal(new TextDecoder().decode(new Uint8Array(err)), 'to stderr\n', 'stderr');
      } finally {
        p.close();
      }
    },

    async "WASI: files in the browser's in-memory file system, only under allowed_paths (wasi_files)"() {
      const p = await Plugin.load({ wasm: [{ url: url('wasi_files') }], allowed_paths: { '/data': '/data' } }, {
        wasi: { files: { '/data/in.txt': 'hello from the page' } },
      });
      try {
        equal(await p.callString('copy_file', '/data/in.txt'), '/data/in.txt.out', 'output');
        equal(new TextDecoder().decode(p.readWasiFile('/data/in.txt.out')), 'hello from the page', 'the copy');
        await failsWith(() => p.call('copy_file', '/etc/passwd'), 'guest', { code: 1, pattern: /cannot read \/etc\/passwd/ });
      } finally {
        p.close();
      }
    },

    async 'timeout_ms stops an endless loop in its worker with kind timeout; the next call gets a fresh worker'() {
      const p = await Plugin.load({ wasm: [{ url: url('cli_testkit') }], config: { mode: 'loop' }, timeout_ms: 300 }, { wasi: true });
      try {
        await failsWith(() => p.call('run', 'x'), 'timeout', { pattern: /`run` did not finish within timeout_ms = 300 ms/ });
        await failsWith(() => p.call('run'), 'timeout', { pattern: /timeout_ms = 300 ms/ });
      } finally {
        p.close();
      }
      const q = await Plugin.load({ wasm: [{ url: url('count_vowels') }], timeout_ms: 10_000 });
      equal(await q.callJson('count_vowels', 'Hello'), { count: 2, total: 2, vowels: 'aeiouAEIOU' }, 'a call in a worker within its limit');
      q.close();
    },

    async 'under timeoutMs, sync and async host functions answer the worker (SharedArrayBuffer: a cross-origin isolated page, or Node.js)'() {
      // A page has SharedArrayBuffer only when cross-origin isolated; Node.js always has it.
      if ('crossOriginIsolated' in globalThis) equal(globalThis.crossOriginIsolated, true, 'crossOriginIsolated');
      else equal(typeof SharedArrayBuffer, 'function', 'typeof SharedArrayBuffer');
      const greet = new HostFunction('greet', ['i64'], ['i64'], (c, [h]) => c.writeString(`Hello, ${c.readString(h)}`));
      const p = await Plugin.load(await bytes('host_greet'), { functions: [greet], timeoutMs: 10_000 });
      equal(await p.callString('call_greet', 'Ada'), 'Hello, Ada', 'sync host function');
      p.close();
      const later = new HostFunction('greet', ['i64'], ['i64'], async (c, [h]) => {
        const name = c.readString(h);
        await new Promise((resolve) => setTimeout(resolve, 20));
        return c.writeString(`Hi ${name}, later`);
      });
      const q = await Plugin.load(await bytes('host_greet'), { functions: [later], timeoutMs: 10_000 });
      equal(await q.callString('call_greet', 'Grace'), 'Hi Grace, later', 'async host function');
      q.close();
      const never = new HostFunction('greet', ['i64'], ['i64'], () => new Promise(() => {}), { async: true });
      const r = await Plugin.load(await bytes('host_greet'), { functions: [never], timeoutMs: 300 });
      await failsWith(() => r.call('call_greet', 'x'), 'timeout', { pattern: /timeout_ms = 300 ms/ });
      r.close();
    },

    async 'a trap gives kind trap with code 134 (hand-assembled and built plug-ins), and the next call gets a fresh instance'() {
      const p = await Plugin.load(trapModule);
      await failsWith(() => p.call('boom'), 'trap', { code: 134, pattern: /`boom`/ });
      await failsWith(() => p.call('boom'), 'trap', { code: 134, pattern: /`boom`/ });
      p.close();
      // A built plug-in that traps (cli_testkit's `unreachable` in mode trap).
      const built = await Plugin.load({ wasm: [{ url: url('cli_testkit') }], config: { mode: 'trap' } }, { wasi: true });
      await failsWith(() => built.call('run'), 'trap', { code: 134, pattern: /`run`/ });
      built.close();
    },

    async 'WAT text and TOML manifests, parsed by the kernel'() {
      const wat = '(module (memory (export "memory") 1) (func (export "run") (result i32) (i32.const 3)))';
      const p = await Plugin.load(new TextEncoder().encode(wat));
      await failsWith(() => p.call('run'), 'guest', { code: 3 });
      p.close();
      const toml = `[[wasm]]\ndata = "${btoa(wat)}"\n[memory]\nmax_pages = 4\n`;
      const q = await Plugin.load(new TextEncoder().encode(toml));
      await failsWith(() => q.call('run'), 'guest', { code: 3 });
      q.close();
      await failsWith(() => Plugin.load(new TextEncoder().encode('(module\n  (func (result i32) i32.const))')), 'compile', { pattern: /expected a i32\n\s+--> <anon>:2:31/ });
      await failsWith(() => Plugin.load(new TextEncoder().encode(`${toml}size = 3\n`)), 'manifest', { pattern: /^invalid TOML manifest: .*unknown field `size`/ });
    },

    async "a plug-in's own failure gives kind guest with its code (fail_with_code)"() {
      const p = await Plugin.load(await bytes('fail_with_code'));
      await failsWith(() => p.call('fail_with_code'), 'guest', { code: 42, pattern: /custom failure/ });
      p.close();
    },
  };
}
