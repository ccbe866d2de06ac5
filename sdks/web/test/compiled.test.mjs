// CompiledPlugin: compile once, instantiate many independent plug-ins.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CompiledPlugin, MULTI_MEMORY, Plugin } from '../dist/index.js';
import { hasKind, plugin, unlinkedModule } from './helpers.mjs';
import { doubleLib, extismImports, mapperMain, wat } from './wat.mjs';

/** `count` adds one to a byte of its own memory and outputs it: a counter per instance. */
const counter = wat(`(module ${extismImports}
  (memory (export "memory") 1)
  (func (export "count") (result i32)
    (local $out i64)
    (i32.store8 (i32.const 0) (i32.add (i32.load8_u (i32.const 0)) (i32.const 1)))
    (local.set $out (call $alloc (i64.const 1)))
    (call $store_u8 (local.get $out) (i32.load8_u (i32.const 0)))
    (call $output_set (local.get $out) (i64.const 1))
    (i32.const 0)))`);

const count = async (p) => (await p.call('count'))[0];

test('instances of one CompiledPlugin have their own memory', async () => {
  const compiled = await CompiledPlugin.load(counter);
  assert.equal(compiled.fused, MULTI_MEMORY);
  const a = await compiled.instantiate();
  const b = await compiled.instantiate();
  assert.ok(a instanceof Plugin);
  assert.equal(await count(a), 1);
  assert.equal(await count(a), 2);
  assert.equal(await count(b), 1);
  assert.equal(await count(a), 3);
});

test('instantiateSync makes independent instances without a Promise, and refuses timeoutMs and wasi', async () => {
  const compiled = await CompiledPlugin.load(counter);
  const a = compiled.instantiateSync();
  const b = compiled.instantiateSync();
  assert.equal(a.callSync('count')[0], 1);
  assert.equal(a.callSync('count')[0], 2);
  assert.equal(b.callSync('count')[0], 1);
  const timed = await CompiledPlugin.load(counter, { timeoutMs: 10_000 });
  assert.throws(() => timed.instantiateSync(), hasKind('other', /it has a timeout \(10000 ms\).*use `await compiled.instantiate\(\)`/));
  const withWasi = await CompiledPlugin.load(counter, { wasi: true });
  assert.throws(() => withWasi.instantiateSync(), hasKind('other', /it uses WASI/));
  const p = await withWasi.instantiate();
  assert.equal((await p.call('count'))[0], 1);
});

test('instances have their own vars and the same config', async () => {
  const compiled = await CompiledPlugin.load(plugin('count_vowels'), { config: { vowels: 'o' } });
  const a = await compiled.instantiate();
  const b = await compiled.instantiate();
  assert.deepEqual(JSON.parse(await a.callString('count_vowels', 'foo')), { count: 2, total: 2, vowels: 'o' });
  assert.deepEqual(JSON.parse(await a.callString('count_vowels', 'oo')), { count: 2, total: 4, vowels: 'o' });
  // The var `total` of `a` is not `b`'s.
  assert.deepEqual(JSON.parse(await b.callString('count_vowels', 'o')), { count: 1, total: 1, vowels: 'o' });
});

test('many instances, and closing one leaves the others working', async () => {
  const compiled = await CompiledPlugin.load({ wasm: [{ name: 'lib', data: doubleLib }, { data: mapperMain('lib') }] });
  assert.deepEqual(compiled.modules(), ['lib', 'main']);
  const instances = [];
  for (let i = 0; i < 20; i++) instances.push(await compiled.instantiate());
  instances[3].close();
  await assert.rejects(instances[3].call('run', 'a'), hasKind('closed', /the plug-in is closed/));
  for (const [i, p] of instances.entries()) {
    if (i === 3) continue;
    assert.deepEqual(await p.call('run', new Uint8Array([i])), new Uint8Array([2 * i]));
  }
  // The compiled plug-in outlives its instances.
  for (const p of instances) p.close();
  const again = await compiled.instantiate();
  assert.deepEqual(await again.call('run', new Uint8Array([30])), new Uint8Array([60]));
});

test('CompiledPlugin.load reports bad plug-ins, before any instance', async () => {
  await assert.rejects(CompiledPlugin.load(unlinkedModule), hasKind('link', /imports function `missing` from `extism:host\/user`/));
  await assert.rejects(CompiledPlugin.load({ wasm: [] }), hasKind('manifest', /no wasm modules/));
  await assert.rejects(CompiledPlugin.load(counter, { timeout: 5 }), /unknown plug-in options timeout/);
});

test('with timeoutMs, each instance has a worker of its own', async () => {
  const compiled = await CompiledPlugin.load(counter, { timeoutMs: 10_000 });
  const a = await compiled.instantiate();
  const b = await compiled.instantiate();
  try {
    assert.equal(await count(a), 1);
    assert.equal(await count(a), 2);
    assert.equal(await count(b), 1);
    a.close();
    await assert.rejects(a.call('count'), hasKind('closed', /closed/));
    assert.equal(await count(b), 2);
  } finally {
    a.close();
    b.close();
  }
});
