// The host's side of config and vars (config, updateConfig, setConfig, varGet, varSet) and
// reset(), on this thread, through JSPI, and in a worker (timeoutMs), as @plinth/node names them.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CompiledPlugin, HostFunction, JSPI, Plugin } from '../dist/index.js';
import { counterModule, hasKind, plugin } from './helpers.mjs';

const tick = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const noJspi = JSPI ? false : `this engine has no JSPI (WebAssembly.Suspending): Node.js ${process.versions.node}; Node.js 25 or newer, or Chrome 137, runs this test`;

/** count_vowels keeps its running total in var `total`, a little-endian u64. */
function u64(n) {
  const bytes = new Uint8Array(8);
  new DataView(bytes.buffer).setBigUint64(0, BigInt(n), true);
  return bytes;
}
function readU64(bytes) {
  return Number(new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true));
}

/** host_greet's `call_greet` with a `greet` that waits for `release()`. */
function gated() {
  let release;
  const gate = new Promise((resolve) => { release = resolve; });
  const greet = new HostFunction('greet', ['i64'], ['i64'], async (c, [h]) => {
    await gate;
    return c.writeString(`hi ${c.readString(h)}`);
  });
  return { greet, release };
}

/** While a call is in flight: the changes are refused with kind busy, the reads answer. */
function assertBusy(p) {
  assert.throws(() => p.updateConfig({ a: 'b' }), hasKind('busy', /updateConfig cannot run while a call\(\) of the plug-in is in flight.*await the call first/));
  assert.throws(() => p.setConfig('a', 'b'), hasKind('busy', /updateConfig cannot run while a call\(\)/));
  assert.throws(() => p.varSet('v', 'x'), hasKind('busy', /varSet cannot run while a call\(\)/));
  assert.throws(() => p.reset(), hasKind('busy', /reset cannot run while a call\(\)/));
  assert.deepEqual(p.config(), { who: 'me' });
  assert.equal(p.varGet('v'), null);
}

test('updateConfig changes what the next call sees; null removes a key; setConfig sets one', async () => {
  const compiled = await CompiledPlugin.load({ wasm: [{ data: plugin('count_vowels') }], config: { vowels: 'aeiou', other: 'x' } }, { config: { vowels: 'e' } });
  const p = await compiled.instantiate();
  const q = await compiled.instantiate();
  assert.deepEqual(p.config(), { vowels: 'e', other: 'x' });
  assert.equal((await p.callJson('count_vowels', 'Hello')).count, 1);
  p.updateConfig({ vowels: 'lo', other: null, n: 5, yes: true, big: 12n, gone: undefined });
  assert.deepEqual(p.config(), { vowels: 'lo', n: '5', yes: 'true', big: '12' });
  assert.deepEqual(await p.callJson('count_vowels', 'Hello'), { count: 3, total: 4, vowels: 'lo' });
  // Removed, config_get finds nothing and the plug-in falls back to its default vowels.
  p.updateConfig({ vowels: null });
  assert.equal((await p.callJson('count_vowels', 'Hello')).vowels, 'aeiouAEIOU');
  p.setConfig('vowels', 'H');
  assert.equal((await p.callJson('count_vowels', 'Hello')).count, 1);
  // Another instance of the same CompiledPlugin keeps its own config.
  assert.deepEqual(q.config(), { vowels: 'e', other: 'x' });
  assert.equal((await q.callJson('count_vowels', 'Hello')).vowels, 'e');
  // Bad input changes nothing.
  assert.throws(() => p.updateConfig({ vowels: 'x', bad: {} }), (e) => e instanceof TypeError && /config value `bad` must be a string, a number, a boolean or a BigInt/.test(e.message));
  assert.equal(p.config().vowels, 'H');
  assert.throws(() => p.updateConfig('vowels=a'), (e) => e instanceof TypeError && /updateConfig takes an object/.test(e.message));
  assert.throws(() => p.updateConfig(null), (e) => e instanceof TypeError && /updateConfig takes an object/.test(e.message));
  assert.throws(() => p.setConfig('vowels', null), (e) => e instanceof TypeError && /to remove the key, use updateConfig\(\{ "vowels": null \}\)/.test(e.message));
  assert.throws(() => p.setConfig(1, 'a'), (e) => e instanceof TypeError && /setConfig takes a string key/.test(e.message));
});

test('varGet reads what the plug-in stored; varSet is seen by its next call; null removes a var', async () => {
  const p = await Plugin.load(plugin('count_vowels'));
  assert.equal(p.varGet('total'), null);
  await p.call('count_vowels', 'aaa');
  assert.equal(readU64(p.varGet('total')), 3);
  p.varSet('total', u64(100));
  assert.deepEqual(await p.callJson('count_vowels', 'ee'), { count: 2, total: 102, vowels: 'aeiouAEIOU' });
  assert.equal(readU64(p.varGet('total')), 102);
  // The returned bytes are a copy: changing them changes no var.
  p.varGet('total').fill(0);
  assert.equal(readU64(p.varGet('total')), 102);
  p.varSet('total', null);
  assert.equal(p.varGet('total'), null);
  assert.equal((await p.callJson('count_vowels', 'e')).total, 1);
  p.varSet('note', 'héllo');
  assert.deepEqual(p.varGet('note'), new TextEncoder().encode('héllo'));
  p.varSet('note', undefined);
  assert.equal(p.varGet('note'), null);
  assert.throws(() => p.varSet('note', 42), (e) => e instanceof TypeError && /the value of var `note` must be a Uint8Array, a string/.test(e.message));
  assert.throws(() => p.varGet(7), (e) => e instanceof TypeError && /varGet takes a string key/.test(e.message));
});

test('varSet stays within memory.max_var_bytes (kind var_store_full), as the plug-in does', async () => {
  // `total` and its 8 bytes take 13 of the 20.
  const p = await Plugin.load({ wasm: [{ data: plugin('count_vowels') }], memory: { max_var_bytes: 20 } });
  await p.call('count_vowels', 'a');
  assert.throws(() => p.varSet('extra', new Uint8Array(5)), hasKind('var_store_full', /storing this value would use 23 bytes, over `memory.max_var_bytes` = 20; raise it/));
  assert.equal(p.varGet('extra'), null);
  p.varSet('extra', new Uint8Array(2));
  // 20 of 20: the plug-in's own var_set of the same 8 bytes still fits.
  assert.equal((await p.callJson('count_vowels', 'a')).total, 2);
  p.varSet('extra', null);
  p.varSet('total', u64(7));
  assert.equal((await p.callJson('count_vowels', 'a')).total, 8);
  // One budget: the host's vars leave the plug-in too little for its own.
  const q = await Plugin.load({ wasm: [{ data: plugin('count_vowels') }], memory: { max_var_bytes: 20 } });
  q.varSet('extra', new Uint8Array(10));
  await assert.rejects(q.call('count_vowels', 'a'), hasKind('var_store_full', /28 bytes, over `memory.max_var_bytes` = 20/));
});

test('reset() frees the last call\'s Extism memory; the next call works, vars and config kept', async () => {
  const p = await Plugin.load(plugin('count_vowels'), { config: { vowels: 'a' } });
  await p.call('count_vowels', 'a'.repeat(100_000));
  // The instance's arena (internal): the 100 kB input and the output are still in it.
  const used = () => p.live.mem.arena.used();
  assert.ok(used() > 100_000, `expected the input's block in Extism memory, used ${used()}`);
  p.reset();
  assert.ok(used() < 1024, `reset left ${used()} bytes of Extism memory in use`);
  assert.deepEqual(await p.callJson('count_vowels', 'banana'), { count: 3, total: 100_003, vowels: 'a' });
  p.reset();
  p.reset();
  assert.equal((await p.callJson('count_vowels', 'a')).total, 100_004);
});

test('a closed plug-in refuses config, vars and reset with kind closed', async () => {
  const p = await Plugin.load(plugin('count_vowels'));
  p.close();
  for (const f of [() => p.config(), () => p.updateConfig({ a: 'b' }), () => p.setConfig('a', 'b'), () => p.varGet('total'), () => p.varSet('total', 'x'), () => p.reset()]) {
    assert.throws(f, hasKind('closed', /the plug-in is closed/));
  }
});

test('a host function changing its own plug-in\'s config or vars is refused with kind reentrant', async () => {
  let p;
  const seen = [];
  const greet = new HostFunction('greet', ['i64'], ['i64'], (c, [h]) => {
    for (const f of [() => p.updateConfig({ a: 'b' }), () => p.varSet('v', 'x'), () => p.reset()]) {
      try {
        f();
        seen.push('allowed');
      } catch (e) {
        seen.push(`${e.kind}: ${e.message}`);
      }
    }
    // Reading is harmless.
    seen.push(p.varGet('v'));
    return c.writeString(c.readString(h));
  });
  p = await Plugin.load(plugin('host_greet'), { functions: [greet] });
  assert.equal(await p.callString('call_greet', 'x'), 'x');
  assert.equal(seen.length, 4);
  for (const what of ['updateConfig', 'varSet', 'reset']) assert.ok(seen.some((s) => s?.startsWith(`reentrant: ${what} refused: one of the plug-in's own host functions is running`)), seen.join('\n'));
  assert.equal(seen[3], null);
});

test('while a JSPI call awaits, changes are kind busy; after it, they apply', { skip: noJspi }, async () => {
  const { greet, release } = gated();
  const p = await Plugin.load({ wasm: [{ data: plugin('host_greet') }], config: { who: 'me' } }, { functions: [greet] });
  assert.equal(p.async, true);
  const first = p.callString('call_greet', 'a');
  await tick(5);
  assertBusy(p);
  release();
  assert.equal(await first, 'hi a');
  p.updateConfig({ who: 'you' });
  p.varSet('v', 'x');
  p.reset();
  assert.equal(await p.callString('call_greet', 'b'), 'hi b');
  assert.deepEqual(p.config(), { who: 'you' });
  assert.deepEqual(p.varGet('v'), new TextEncoder().encode('x'));
});

test('in a worker (timeoutMs): config and var changes reach the next call; varGet sees the last finished call', async () => {
  const p = await Plugin.load({ wasm: [{ data: plugin('count_vowels') }], memory: { max_var_bytes: 20 } }, { timeoutMs: 10_000, config: { vowels: 'a' } });
  assert.deepEqual(await p.callJson('count_vowels', 'banana'), { count: 3, total: 3, vowels: 'a' });
  assert.equal(readU64(p.varGet('total')), 3);
  p.updateConfig({ vowels: 'n' });
  p.varSet('total', u64(40));
  assert.deepEqual(await p.callJson('count_vowels', 'banana'), { count: 2, total: 42, vowels: 'n' });
  assert.equal(readU64(p.varGet('total')), 42);
  p.updateConfig({ vowels: null });
  assert.equal((await p.callJson('count_vowels', 'e')).vowels, 'aeiouAEIOU');
  assert.throws(() => p.varSet('extra', new Uint8Array(5)), hasKind('var_store_full', /23 bytes, over `memory.max_var_bytes` = 20/));
  p.reset();
  assert.equal((await p.callJson('count_vowels', 'e')).total, 44);
  p.close();
  assert.throws(() => p.varGet('total'), hasKind('closed', /closed/));
});

test('in a worker, changes are kind busy while a call runs there', async () => {
  const { greet, release } = gated();
  const p = await Plugin.load({ wasm: [{ data: plugin('host_greet') }], config: { who: 'me' } }, { functions: [greet], timeoutMs: 20_000 });
  const first = p.callString('call_greet', 'a');
  await tick(20);
  assertBusy(p);
  release();
  assert.equal(await first, 'hi a');
  p.varSet('v', 'x');
  assert.deepEqual(p.varGet('v'), new TextEncoder().encode('x'));
  p.close();
});

test('after a timeout the fresh worker starts with the current config and vars', async () => {
  // Manifest mode `echo`; the host switches it to `loop`, which spins in `run`.
  const p = await Plugin.load({ wasm: [{ data: plugin('cli_testkit') }], config: { mode: 'echo' }, timeout_ms: 300 }, { wasi: true });
  assert.match(await p.callString('describe'), /mode `echo`/);
  p.updateConfig({ mode: 'loop' });
  await assert.rejects(p.call('run', 'x'), hasKind('timeout', /timeout_ms = 300 ms/));
  // Changed while no worker runs: the fresh one starts with it, and with the change before.
  p.updateConfig({ args: 'A' });
  assert.match(await p.callString('describe'), /mode `loop`/);
  p.updateConfig({ mode: 'echo' });
  assert.equal(await p.callString('run', 'x'), 'A\nx');
  p.close();

  // Vars: the counter adds one to var `n` (one byte) and counts its instance's calls.
  const wait = new HostFunction('wait', [], [], () => {});
  const c = await Plugin.load(counterModule, { functions: [wait], timeoutMs: 300 });
  c.varSet('n', new Uint8Array([41]));
  assert.deepEqual([...(await c.call('count'))], [42, 1]);
  assert.deepEqual([...c.varGet('n')], [42]);
  await assert.rejects(c.call('spin'), hasKind('timeout', /`spin` did not finish/));
  c.varSet('n', new Uint8Array([7]));
  // A fresh instance (its call count starts again) with the host's var.
  assert.deepEqual([...(await c.call('count'))], [8, 1]);
  assert.deepEqual([...c.varGet('n')], [8]);
  c.close();
});
