// memory.max_pages bounds the plug-in's own memory, not only Extism memory: the kernel caps the
// maximum of every memory the module defines, so the engine refuses memory.grow past it.
// The test modules are WAT compiled with wabt (no plug-in rebuild needed).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import wabtInit from 'wabt';
import { Plugin } from '../dist/index.js';
import { isKind, plugin } from './helpers.mjs';

const wabt = await wabtInit();

function wasm(text) {
  const module = wabt.parseWat('test.wat', text);
  try {
    return module.toBinary({}).buffer;
  } finally {
    module.destroy();
  }
}

// Grows its memory a page at a time until memory.grow says -1 (or 1000 pages, should nothing
// stop it), then outputs its memory's size in pages as a little-endian u64. store_u64 is a
// fused import, so engines with multi-memory run it fused and Node.js 20 unfused.
const grower = wasm(`(module
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "store_u64" (func $store_u64 (param i64 i64)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
  (memory (export "memory") 1)
  (func (export "grow") (result i32) (local $out i64)
    (block $refused
      (loop $again
        (br_if $refused (i32.eq (memory.grow (i32.const 1)) (i32.const -1)))
        (br_if $refused (i32.ge_u (memory.size) (i32.const 1000)))
        (br $again)))
    (local.set $out (call $alloc (i64.const 8)))
    (call $store_u64 (local.get $out) (i64.extend_i32_u (memory.size)))
    (call $output_set (local.get $out) (i64.const 8))
    (i32.const 0)))`);

async function pagesAfterGrowing(options, maxPages) {
  const manifest = { wasm: [{ data: grower }], ...(maxPages === undefined ? {} : { memory: { max_pages: maxPages } }) };
  const p = await Plugin.load(manifest, options);
  try {
    const out = await p.call('grow');
    return { pages: Number(new DataView(out.buffer, out.byteOffset, 8).getBigUint64(0, true)), fused: p.fused };
  } finally {
    p.close();
  }
}

// Extism memory keeps its one page throughout (the output fits in it), and memory.grow counts
// it: fused, as the module's own second memory; unfused (Node.js 20), through the global the
// SDK keeps at its pages.
const room = (_fused, maxPages) => maxPages - 1;

test("the plug-in's own memory.grow stops at memory.max_pages", async () => {
  const { pages, fused } = await pagesAfterGrowing({}, 6);
  assert.equal(pages, room(fused, 6), `fused: ${fused}`);
});

test('with a timeout the worker caps it too', async () => {
  const { pages, fused } = await pagesAfterGrowing({ timeoutMs: 20_000 }, 4);
  assert.equal(pages, room(fused, 4), `fused: ${fused}`);
});

test('compiled modules are kept per max_pages: another budget (or none) gets its own cap', async () => {
  const at3 = await pagesAfterGrowing({}, 3);
  assert.equal(at3.pages, room(at3.fused, 3));
  const at12 = await pagesAfterGrowing({}, 12);
  assert.equal(at12.pages, room(at12.fused, 12), 'after a load at 3');
  assert.equal((await pagesAfterGrowing({}, undefined)).pages, 1000, 'without max_pages only the loop stops it');
  assert.equal((await pagesAfterGrowing({}, 3)).pages, room(at3.fused, 3), 'and the budget of 3 still holds after');
});

test('a module whose memory minimum is over memory.max_pages is refused at load, naming both', async () => {
  const big = wasm('(module (memory (export "memory") 20) (func (export "run") (result i32) (i32.const 0)))');
  await assert.rejects(
    Plugin.load({ wasm: [{ data: big }], memory: { max_pages: 4 } }),
    isKind('out_of_memory', /memory 0 declares a minimum of 20 pages, more than memory.max_pages = 4; raise `memory.max_pages`/),
  );
  const p = await Plugin.load({ wasm: [{ data: big }], memory: { max_pages: 21 } });
  assert.equal((await p.call('run')).length, 0);
  p.close();
});

test('a real plug-in runs under a max_pages that fits it', async () => {
  const p = await Plugin.load({ wasm: [{ data: plugin('count_vowels') }], memory: { max_pages: 64 } });
  assert.equal(JSON.parse(await p.callString('count_vowels', 'Hello, World!')).count, 3);
  p.close();
});

// A plug-in whose own memory.grow is refused: what it does next decides the failure's kind,
// as natively. input_length is a fused import, so engines with multi-memory run it fused.
const refusable = wasm(`(module
  (import "extism:host/env" "input_length" (func $input_length (result i64)))
  (memory (export "memory") 1)
  (func (export "grow_or_abort") (result i32)
    (if (i32.eq (memory.grow (i32.wrap_i64 (call $input_length))) (i32.const -1)) (then unreachable))
    (i32.const 0))
  (func (export "grow_gracefully") (result i32)
    (if (i32.ne (memory.grow (i32.const 100)) (i32.const -1)) (then unreachable))
    (i32.const 0))
  (func (export "abort") (result i32) unreachable)
  (func (export "grow_then_read") (result i32)
    (drop (memory.grow (i32.const 100)))
    (i32.load (i32.const 6553600)))
  (func (export "refused_then_grown_then_abort") (result i32)
    (drop (memory.grow (i32.const 100)))
    (drop (memory.grow (i32.const 1)))
    unreachable))`);

const loadRefusable = (maxPages, options = {}) => Plugin.load({ wasm: [{ data: refusable }], ...(maxPages === undefined ? {} : { memory: { max_pages: maxPages } }) }, options);
const grownTooFar = (fn) => isKind('out_of_memory', new RegExp(`^\`${fn}\` ran out of memory: the plug-in trapped \\(.+\\) after its memory could not grow past memory.max_pages = 4 pages \\(0.25 MiB\\); raise \`memory.max_pages\` in the manifest$`));

test('a trap after a refused memory.grow is kind out_of_memory, not trap', async () => {
  const p = await loadRefusable(4);
  try {
    await assert.rejects(p.call('grow_or_abort', 'x'.repeat(100)), grownTooFar('grow_or_abort'));
    // A read past the memory that did not grow is the refusal's doing too.
    await assert.rejects(p.call('grow_then_read'), grownTooFar('grow_then_read'));
    // A growth that fits, in a fresh instance, then succeeds.
    assert.equal((await p.call('grow_or_abort', 'x')).length, 0, `fused: ${p.fused}`);
    assert.deepEqual(p.functions().filter((f) => f.startsWith('__plinth')), []);
  } finally {
    p.close();
  }
});

test('a refused memory.grow the plug-in handles is no failure, and the next call\'s trap is a trap', async () => {
  const p = await loadRefusable(4);
  try {
    assert.equal((await p.call('grow_gracefully')).length, 0, 'it saw -1 and returned 0');
    // The refusal was the call before's: this trap is the plug-in's own.
    await assert.rejects(p.call('abort'), isKind('trap', /unreachable/, 134));
    assert.equal((await p.call('grow_gracefully')).length, 0);
    assert.equal((await p.call('grow_gracefully')).length, 0, 'in the same instance');
    await assert.rejects(p.call('abort'), isKind('trap', /unreachable/, 134));
    // A growth that succeeded after the refusal clears it, as natively.
    await assert.rejects(p.call('refused_then_grown_then_abort'), isKind('trap', /unreachable/, 134));
  } finally {
    p.close();
  }
});

// A plug-in whose Extism alloc is refused by the budget (it gets 0, as Extism specifies).
const allocating = wasm(`(module
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "input_length" (func $input_length (result i64)))
  (memory (export "memory") 1)
  (func (export "alloc_or_abort") (result i32)
    (if (i64.eqz (call $alloc (i64.const 10000000))) (then unreachable))
    (i32.const 0))
  (func (export "alloc_gracefully") (result i32)
    (if (i64.ne (call $alloc (i64.const 10000000)) (i64.const 0)) (then unreachable))
    (i32.const 0))
  (func (export "abort") (result i32) unreachable))`);

test('a trap after Extism memory could not grow for an alloc is kind out_of_memory too', async () => {
  const p = await Plugin.load({ wasm: [{ data: allocating }], memory: { max_pages: 4 } });
  try {
    await assert.rejects(p.call('alloc_or_abort'), grownTooFar('alloc_or_abort'));
    assert.equal((await p.call('alloc_gracefully')).length, 0, 'alloc gave 0 and the plug-in carried on');
    // The refusal was the call before's.
    await assert.rejects(p.call('abort'), isKind('trap', /unreachable/, 134));
  } finally {
    p.close();
  }
  // Without a budget the same alloc fits, and nothing is refused.
  const free = await Plugin.load({ wasm: [{ data: allocating }] });
  try {
    assert.equal((await free.call('alloc_or_abort')).length, 0);
  } finally {
    free.close();
  }
});

test('without memory.max_pages a refused memory.grow (past wasm32) leads to a trap', async () => {
  const p = await loadRefusable(undefined);
  try {
    await assert.rejects(p.call('grow_or_abort', 'x'.repeat(70_000)), isKind('trap', /unreachable/, 134));
  } finally {
    p.close();
  }
});

test('in a worker (timeoutMs) a trap after a refused memory.grow is kind out_of_memory too', async () => {
  const p = await loadRefusable(4, { timeoutMs: 20_000 });
  try {
    await assert.rejects(p.call('grow_or_abort', 'x'.repeat(100)), grownTooFar('grow_or_abort'));
    assert.equal((await p.call('grow_gracefully')).length, 0);
    await assert.rejects(p.call('abort'), isKind('trap', /unreachable/, 134));
  } finally {
    p.close();
  }
});

test("a trap after a refused memory.grow in another module of the manifest is kind out_of_memory too", async () => {
  const lib = wasm(`(module
    (memory 1)
    (func (export "grow_or_abort")
      (if (i32.eq (memory.grow (i32.const 100)) (i32.const -1)) (then unreachable))))`);
  const main = wasm(`(module
    (import "lib" "grow_or_abort" (func $grow_or_abort))
    (func (export "run") (result i32) (call $grow_or_abort) (i32.const 0))
    (func (export "abort") (result i32) unreachable))`);
  const p = await Plugin.load({ wasm: [{ name: 'lib', data: lib }, { data: main }], memory: { max_pages: 4 } });
  try {
    await assert.rejects(p.call('run'), grownTooFar('run'));
    await assert.rejects(p.call('abort'), isKind('trap', /unreachable/, 134));
  } finally {
    p.close();
  }
  // Without the budget the growth fits and nothing traps.
  const unlimited = await Plugin.load({ wasm: [{ name: 'lib', data: lib }, { data: main }] });
  assert.equal((await unlimited.call('run')).length, 0);
  unlimited.close();
});
