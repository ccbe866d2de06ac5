// Several modules in one manifest: the main module imports the others' exports by name.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CompiledPlugin, HostFunction, MULTI_MEMORY, Plugin, PlinthError, sha256Hex } from '../dist/index.js';
import { hasKind } from './helpers.mjs';
import { doubleLib, extismImports, mapperMain, wat } from './wat.mjs';

const input = new Uint8Array([1, 2, 21]);
const doubled = new Uint8Array([2, 4, 42]);

test('the main module calls a function of a library module, fused where the engine has multi-memory', async () => {
  const p = await Plugin.load({ wasm: [{ name: 'lib', data: doubleLib }, { data: mapperMain('lib') }] });
  // Only the main module is fused; unfused (Node.js 20), the host keeps Extism memory.
  assert.equal(p.fused, MULTI_MEMORY);
  assert.deepEqual(p.functions(), ['run']);
  assert.deepEqual(await p.call('run', input), doubled);
  assert.deepEqual(p.callSync('run', new Uint8Array([50])), new Uint8Array([100]));
  p.close();
});

test('the main module is the one named "main" wherever it is, else the last', async () => {
  const first = await Plugin.load({ wasm: [{ name: 'main', data: mapperMain('lib') }, { name: 'lib', data: doubleLib }] });
  assert.deepEqual(await first.call('run', input), doubled);
  const last = await Plugin.load({ wasm: [{ name: 'lib', data: doubleLib }, { name: 'app', data: mapperMain('lib') }] });
  assert.deepEqual(await last.call('run', input), doubled);
  // Without a "main", the library listed last is the main module, which `app` cannot import from.
  await assert.rejects(
    Plugin.load({ wasm: [{ name: 'app', data: mapperMain('lib') }, { name: 'lib', data: doubleLib }] }),
    hasKind('link', /module `app` imports function `double` from `lib`: `lib` is the main module \(no module is named "main", so the last one is/),
  );
});

test('libraries are instantiated after the libraries they import from, and reach the ABI themselves', async () => {
  // `io` reads the input through extism:host/env: the same Extism memory as the main module's.
  const io = wat(`(module
    (import "extism:host/env" "input_load_u8" (func $load (param i64) (result i32)))
    (func (export "byte") (param i64) (result i32) (call $load (local.get 0))))`);
  const math = wat(`(module
    (import "io" "byte" (func $byte (param i64) (result i32)))
    (func (export "tripled_at") (param i64) (result i32) (i32.mul (call $byte (local.get 0)) (i32.const 3))))`);
  const main = wat(`(module ${extismImports}
    (import "math" "tripled_at" (func $tripled_at (param i64) (result i32)))
    (func (export "first_tripled") (result i32)
      (local $out i64)
      (local.set $out (call $alloc (i64.const 1)))
      (call $store_u8 (local.get $out) (call $tripled_at (i64.const 0)))
      (call $output_set (local.get $out) (i64.const 1))
      (i32.const 0)))`);
  // Listed before `io`, `math` still goes after it.
  const p = await Plugin.load({ wasm: [{ name: 'math', data: math }, { name: 'io', data: io }, { data: main }] });
  assert.deepEqual(await p.call('first_tripled', new Uint8Array([14])), new Uint8Array([42]));
  assert.deepEqual(await p.call('first_tripled', new Uint8Array([5, 9])), new Uint8Array([15]));
});

test('a module without a name next to the main one, or a repeated or empty name, is a manifest error', async () => {
  await assert.rejects(
    Plugin.load({ wasm: [{ data: doubleLib }, { data: mapperMain('lib') }] }),
    hasKind('manifest', /more than one wasm module is named "main" \(an unnamed module is called "main"\).*every module but the main one needs the name/),
  );
  await assert.rejects(
    Plugin.load({ wasm: [{ name: 'lib', data: doubleLib }, { name: 'lib', data: doubleLib }, { data: mapperMain('lib') }] }),
    hasKind('manifest', /more than one wasm module is named "lib"; give each module a unique `name`/),
  );
  await assert.rejects(
    Plugin.load({ wasm: [{ name: '', data: doubleLib }, { data: mapperMain('lib') }] }),
    hasKind('manifest', /wasm\[0\].*`name` must not be empty/),
  );
});

// `lhs` imports `rhs.add_one`, `rhs` imports `lhs.mul_two` (the native runtime's linking tests).
const lhs = wat(`(module
  (import "rhs" "add_one" (func $add_one (param i32) (result i32)))
  (func (export "mul_two") (param i32) (result i32) (i32.mul (local.get 0) (i32.const 2)))
  (func (export "mul_then_add") (param i32) (result i32) (call $add_one (i32.mul (local.get 0) (i32.const 2)))))`);
const rhs = wat(`(module
  (import "lhs" "mul_two" (func $mul_two (param i32) (result i32)))
  (func (export "add_one") (param i32) (result i32) (i32.add (local.get 0) (i32.const 1)))
  (func (export "add_then_mul") (param i32) (result i32) (call $mul_two (i32.add (local.get 0) (i32.const 1)))))`);
const named = (name, data) => ({ name, data });

test('two libraries that import each other\'s functions call both ways, in either manifest order', async () => {
  // Whichever is listed first is instantiated first and gets the late-bound import, so both
  // orders go through a forwarding function on a different side.
  for (const wasm of [[named('lhs', lhs), named('rhs', rhs)], [named('rhs', rhs), named('lhs', lhs)]]) {
    const viaLhs = await Plugin.load({ wasm: [...wasm, { data: mapperMain('lhs', 'mul_then_add') }] });
    assert.equal(viaLhs.fused, MULTI_MEMORY);
    // x * 2 + 1
    assert.deepEqual(await viaLhs.call('run', new Uint8Array([0, 5, 20])), new Uint8Array([1, 11, 41]));
    assert.deepEqual(viaLhs.callSync('run', new Uint8Array([100])), new Uint8Array([201]));
    const viaRhs = await Plugin.load({ wasm: [...wasm, { data: mapperMain('rhs', 'add_then_mul') }] });
    // (x + 1) * 2
    assert.deepEqual(await viaRhs.call('run', new Uint8Array([0, 5, 20])), new Uint8Array([2, 12, 42]));
    // A second instance forwards to its own modules.
    const again = await CompiledPlugin.load({ wasm: [...wasm, { data: mapperMain('rhs', 'add_then_mul') }] });
    const [p, q] = [await again.instantiate(), await again.instantiate()];
    assert.deepEqual(await p.call('run', new Uint8Array([3])), new Uint8Array([8]));
    assert.deepEqual(await q.call('run', new Uint8Array([4])), new Uint8Array([10]));
    for (const x of [viaLhs, viaRhs, p, q]) x.close();
  }
});

/** Module in a cycle: `step(n)` is 0 for n = 0, else `weight` plus the next module's `step(n - 1)`. */
const stepper = (next, weight) => wat(`(module
  (import "${next}" "step" (func $next (param i32) (result i32)))
  (func (export "step") (param i32) (result i32)
    (if (result i32) (i32.eqz (local.get 0))
      (then (i32.const 0))
      (else (i32.add (i32.const ${weight}) (call $next (i32.sub (local.get 0) (i32.const 1))))))))`);

test('a cycle of three libraries links, and recursion goes round it', async () => {
  const [a, b, c] = [stepper('b', 1), stepper('c', 10), stepper('a', 100)];
  for (const wasm of [[named('a', a), named('b', b), named('c', c)], [named('c', c), named('a', a), named('b', b)]]) {
    const p = await Plugin.load({ wasm: [...wasm, { data: mapperMain('a', 'step') }] });
    // 0 steps; 2: a b; 5: a b c a b (1 + 10 + 100 + 1 + 10); 7: a b c a b c a.
    assert.deepEqual(await p.call('run', new Uint8Array([0, 2, 5, 7])), new Uint8Array([0, 11, 122, 223]));
    p.close();
  }
});

test('a cycle through a memory or a global import is refused, naming the imports', async () => {
  const sharesMemory = wat(`(module (import "rhs" "memory" (memory 1)) (global (export "base") i32 (i32.const 16)))`);
  const sharesGlobal = wat(`(module (import "lhs" "base" (global i32)) (memory (export "memory") 1))`);
  await assert.rejects(
    Plugin.load({ wasm: [named('lhs', sharesMemory), named('rhs', sharesGlobal), { data: wat('(module (func (export "run") (result i32) (i32.const 0)))') }] }),
    (e) => e instanceof PlinthError && e.kind === 'link' && /the modules `lhs`, `rhs` import each other in a cycle that Plinth cannot link: .*only works for functions, but `lhs` imports memory `rhs::memory` and `rhs` imports global `lhs::base`/.test(e.message),
  );
  // One function import closes the cycle: `rhs` goes first although listed second, because
  // `lhs` needs its memory at instantiation.
  const triples = wat(`(module (import "rhs" "memory" (memory 1))
    (func (export "triple_into") (param i32) (i32.store (i32.const 8) (i32.mul (local.get 0) (i32.const 3)))))`);
  const usesTriple = wat(`(module (import "lhs" "triple_into" (func $triple_into (param i32)))
    (memory (export "memory") 1)
    (func (export "double") (param i32) (result i32) (call $triple_into (local.get 0)) (i32.load (i32.const 8))))`);
  const p = await Plugin.load({ wasm: [named('lhs', triples), named('rhs', usesTriple), { data: mapperMain('rhs') }] });
  assert.deepEqual(await p.call('run', new Uint8Array([1, 14])), new Uint8Array([3, 42]));
  p.close();
});

test('a start function calling into a module not yet instantiated fails clearly, and listing it first works', async () => {
  const seeded = wat(`(module
    (import "rhs" "add_one" (func $add_one (param i32) (result i32)))
    (global $seed (mut i32) (i32.const 0))
    (func $start (global.set $seed (call $add_one (i32.const 41))))
    (start $start)
    (func (export "mul_two") (param i32) (result i32) (i32.mul (local.get 0) (i32.const 2)))
    (func (export "double") (param i32) (result i32) (i32.add (global.get $seed) (local.get 0))))`);
  await assert.rejects(
    Plugin.load({ wasm: [named('lhs', seeded), named('rhs', rhs), { data: mapperMain('lhs') }] }),
    hasKind('link', /module `lhs` called `rhs::add_one` before module `rhs` was instantiated: .*list `rhs` before `lhs` in the manifest/),
  );
  const p = await Plugin.load({ wasm: [named('rhs', rhs), named('lhs', seeded), { data: mapperMain('lhs') }] });
  assert.deepEqual(await p.call('run', new Uint8Array([0, 3])), new Uint8Array([42, 45]));
  p.close();
});

test('a cycle whose imported and exported function types differ is refused at load', async () => {
  const wrongType = wat(`(module (import "rhs" "add_one" (func (param i64) (result i64)))
    (func (export "mul_two") (param i32) (result i32) (local.get 0)))`);
  await assert.rejects(
    Plugin.load({ wasm: [named('lhs', wrongType), named('rhs', rhs), { data: mapperMain('rhs', 'add_one') }] }),
    hasKind('link', /module `lhs` imports `rhs::add_one` as a function \(i64\) -> \(i64\), but module `rhs` exports it as \(i32\) -> \(i32\)/),
  );
});

test('an async host function waits through the late-bound import of a cycle', async () => {
  // main -> lhs -> (late-bound) rhs -> an async host function: under JSPI the suspension
  // crosses the forwarder, so it must be wasm; without JSPI the plug-in runs in a worker.
  const awaiting = wat(`(module
    (import "lhs" "mul_two" (func $mul_two (param i32) (result i32)))
    (import "extism:host/user" "later" (func $later (param i32) (result i32)))
    (func (export "add_one") (param i32) (result i32) (call $later (i32.add (local.get 0) (i32.const 1)))))`);
  const later = new HostFunction('later', ['i32'], ['i32'], async (_c, [x]) => {
    await new Promise((resolve) => setTimeout(resolve, 1));
    return [x];
  });
  const p = await Plugin.load({ wasm: [named('lhs', lhs), named('rhs', awaiting), { data: mapperMain('lhs', 'mul_then_add') }] }, { functions: [later] });
  try {
    assert.deepEqual(await p.call('run', new Uint8Array([1, 20])), new Uint8Array([3, 41]));
  } finally {
    p.close();
  }
});

test('a library importing from the main module is refused, naming the cycle it makes', async () => {
  const back = wat(`(module (import "main" "run" (func (result i32))) (func (export "double") (param i32) (result i32) (local.get 0)))`);
  await assert.rejects(
    Plugin.load({ wasm: [{ name: 'lib', data: back }, { data: mapperMain('lib') }] }),
    hasKind('link', /module `lib` imports from the main module, and the main module imports from `lib`: a cycle; the main module is instantiated last, so only it may import from the others/),
  );
});

test('an import from a module no entry is named after, or of an export the module lacks, names both', async () => {
  await assert.rejects(
    Plugin.load({ wasm: [{ name: 'lib', data: doubleLib }, { data: mapperMain('libs') }] }),
    hasKind('link', /module `main` imports function `double` from `libs`, which nothing provides: no module of the manifest is named `libs` \(they are `lib`, `main`\)/),
  );
  await assert.rejects(
    Plugin.load({ wasm: [{ name: 'lib', data: doubleLib }, { data: mapperMain('lib', 'triple') }] }),
    hasKind('link', /module `main` imports function `triple` from module `lib`, which exports nothing under that name; its exports are: double/),
  );
  const selfImport = wat(`(module (import "lib" "double" (func (param i32) (result i32))) (func (export "double") (param i32) (result i32) (local.get 0)))`);
  await assert.rejects(
    Plugin.load({ wasm: [{ name: 'lib', data: selfImport }, { data: mapperMain('lib') }] }),
    hasKind('link', /module `lib` imports function `double` from `lib`, its own name; a module cannot import from itself/),
  );
  // A host function may provide what no module does.
  const plusOne = new HostFunction('double', ['i32'], ['i32'], (_c, [x]) => [x + 1], { namespace: 'libs' });
  const p = await Plugin.load({ wasm: [{ name: 'lib', data: doubleLib }, { data: mapperMain('libs') }] }, { functions: [plusOne] });
  assert.deepEqual(await p.call('run', input), new Uint8Array([2, 3, 22]));
});

test('every module is hash-checked and compiled, and a failure names the module', async () => {
  const wrong = '0'.repeat(64);
  await assert.rejects(
    Plugin.load({ wasm: [{ name: 'lib', data: doubleLib, hash: wrong }, { data: mapperMain('lib') }] }),
    hasKind('manifest', /hash mismatch for wasm module "lib"/),
  );
  const right = await sha256Hex(doubleLib);
  const p = await Plugin.load({ wasm: [{ name: 'lib', data: doubleLib, hash: right }, { data: mapperMain('lib') }] });
  assert.deepEqual(await p.call('run', input), doubled);
  await assert.rejects(
    Plugin.load({ wasm: [{ name: 'lib', data: new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0, 0xff]) }, { data: mapperMain('lib') }] }),
    hasKind('compile', /cannot compile the module `lib`/),
  );
  // A library whose start function traps fails the instance, naming it.
  const trapping = wat(`(module (func $boom unreachable) (start $boom) (func (export "double") (param i32) (result i32) (local.get 0)))`);
  await assert.rejects(
    Plugin.load({ wasm: [{ name: 'lib', data: trapping }, { data: mapperMain('lib') }] }),
    hasKind('trap', /module `lib` trapped while starting/),
  );
});

test('with timeoutMs, the worker links the same modules, and link errors come before it starts', async () => {
  const p = await Plugin.load({ wasm: [{ name: 'lib', data: doubleLib }, { name: 'app', data: mapperMain('lib') }], timeout_ms: 10_000 });
  try {
    assert.deepEqual(await p.call('run', input), doubled);
    assert.deepEqual(await p.call('run', new Uint8Array([7])), new Uint8Array([14]));
  } finally {
    p.close();
  }
  await assert.rejects(
    Plugin.load({ wasm: [{ name: 'lib', data: doubleLib }, { data: mapperMain('nowhere') }] }, { timeoutMs: 10_000 }),
    hasKind('link', /no module of the manifest is named `nowhere`/),
  );
  // The worker orders and late-binds a cycle as this thread does.
  const cyclic = await Plugin.load({ wasm: [named('lhs', lhs), named('rhs', rhs), { data: mapperMain('rhs', 'add_then_mul') }] }, { timeoutMs: 10_000 });
  try {
    assert.deepEqual(await cyclic.call('run', new Uint8Array([0, 20])), new Uint8Array([2, 42]));
  } finally {
    cyclic.close();
  }
});
