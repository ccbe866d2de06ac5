// Several modules in one manifest: the main module imports the others' exports by name.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { HostFunction, MULTI_MEMORY, Plugin, sha256Hex } from '../dist/index.js';
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

test('modules that import each other in a cycle are refused, naming the cycle', async () => {
  const a = wat(`(module (import "b" "g" (func $g (param i32) (result i32)))
    (func (export "double") (param i32) (result i32) (call $g (local.get 0))))`);
  const b = wat(`(module (import "a" "double" (func $f (param i32) (result i32)))
    (func (export "g") (param i32) (result i32) (call $f (local.get 0))))`);
  const manifest = { wasm: [{ name: 'a', data: a }, { name: 'b', data: b }, { data: mapperMain('a') }] };
  await assert.rejects(Plugin.load(manifest), hasKind('link', /the modules `a`, `b` import each other in a cycle \(a -> b -> a\); @plinth\/web links modules only when/));
  // A library importing from the main module that imports it is a cycle too.
  const back = wat(`(module (import "main" "run" (func (result i32))) (func (export "double") (param i32) (result i32) (local.get 0)))`);
  await assert.rejects(
    Plugin.load({ wasm: [{ name: 'lib', data: back }, { data: mapperMain('lib') }] }),
    hasKind('link', /module `lib` imports from the main module, and the main module imports from `lib`: a cycle/),
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
});
