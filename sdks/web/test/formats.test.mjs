// The load-time formats the native runtime accepts besides wasm binaries and JSON manifests:
// WAT text modules and TOML manifests, both parsed by the kernel with the native runtime's
// own parsers (the `wat` crate, crates/manifest).
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { CompiledPlugin, Plugin, sha256Hex } from '../dist/index.js';
import { hasKind, isKind, pluginPath, root } from './helpers.mjs';
import { mapperMain } from './wat.mjs';

const utf8 = (text) => new TextEncoder().encode(text);
const conformance = path.join(root, 'tests/conformance/errors');

/** Writes "hi" as its output: Extism imports, a memory, a function, in WAT text. */
const hiWat = `;; says hi
(module
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "store_u8" (func $store_u8 (param i64 i32)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
  (memory (export "memory") 1)
  (func (export "hi") (result i32) (local $p i64)
    (local.set $p (call $alloc (i64.const 2)))
    (call $store_u8 (local.get $p) (i32.const 104))
    (call $store_u8 (i64.add (local.get $p) (i64.const 1)) (i32.const 105))
    (call $output_set (local.get $p) (i64.const 2))
    (i32.const 0)))
`;

function tempDir(t) {
  const dir = mkdtempSync(path.join(tmpdir(), 'plinth-web-formats-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('a WAT file loads through a file: URL and runs', async () => {
  const p = await Plugin.load(pathToFileURL(path.join(conformance, 'returns_3.wat')));
  try {
    assert.ok(p.functionExists('run'));
    // returns_3.wat's `run` returns 3: the guest's own failure code.
    await assert.rejects(p.call('run'), isKind('guest', /./, 3));
  } finally {
    p.close();
  }
});

test('WAT text loads as bytes, as a manifest\'s data (bytes or base64) and in a worker', async () => {
  for (const source of [
    utf8(hiWat),
    { wasm: [{ data: utf8(hiWat) }] },
    { wasm: [{ data: Buffer.from(hiWat).toString('base64') }] },
  ]) {
    const p = await Plugin.load(source);
    assert.equal(await p.callString('hi'), 'hi');
    p.close();
  }
  // The worker (timeoutMs) gets the module already parsed.
  const timed = await Plugin.load({ wasm: [{ data: utf8(hiWat) }] }, { timeoutMs: 5000 });
  try {
    assert.equal(await timed.callString('hi'), 'hi');
  } finally {
    timed.close();
  }
});

test('a library module may be WAT text too', async () => {
  const lib = utf8('(module (func (export "double") (param i32) (result i32) (i32.mul (local.get 0) (i32.const 2))))');
  const compiled = await CompiledPlugin.load({ wasm: [{ name: 'lib', data: lib }, { name: 'main', data: mapperMain('lib') }] });
  assert.deepEqual(compiled.modules(), ['lib', 'main']);
  const p = await compiled.instantiate();
  try {
    assert.deepEqual([...await p.call('run', Uint8Array.of(1, 2, 3))], [2, 4, 6]);
  } finally {
    p.close();
  }
});

test('a WAT syntax error is kind compile, naming the module, with the parser\'s line and column', async () => {
  const bad = '(module\n  (func (export "f") (result i32)\n    i32.const))';
  await assert.rejects(Plugin.load(utf8(bad)), isKind('compile', /^cannot compile the plug-in `main`: expected a i32\n\s+--> <anon>:3:14\n[^]*\(is it a valid WebAssembly module or WAT text\?\)$/));
  await assert.rejects(
    Plugin.load({ wasm: [{ name: 'lib', data: utf8('(module (func (export "double") (param i32) (result i32) (i32.mul (local.get 0))') }, { name: 'main', data: mapperMain('lib') }] }),
    hasKind('compile', /^cannot compile the module `lib`: .*\n\s+--> <anon>:1:\d+/),
  );
  // Text that is neither wasm nor a manifest is WAT to the core, and reported as such.
  await assert.rejects(Plugin.load(utf8('not wasm at all')), isKind('compile', /cannot compile the plug-in `main`: .*\n\s+--> <anon>:1:1/));
});

test("a module's hash is of its bytes as given: WAT text, not the binary made from it", async () => {
  const text = utf8(hiWat);
  const p = await Plugin.load({ wasm: [{ data: text, hash: await sha256Hex(text) }] });
  assert.equal(await p.callString('hi'), 'hi');
  p.close();
  // The returns_3.wat file, by path, with the hash of its text.
  const file = path.join(conformance, 'returns_3.wat');
  const byPath = await Plugin.load({ wasm: [{ path: file, hash: await sha256Hex(new Uint8Array(readFileSync(file))) }] });
  byPath.close();
  // A hash of anything else is refused (the binary wat.mjs makes of the same text, here).
  const { wat } = await import('./wat.mjs');
  const binaryHash = await sha256Hex(wat(hiWat));
  await assert.rejects(Plugin.load({ wasm: [{ data: text, hash: binaryHash }] }), hasKind('manifest', /hash mismatch for wasm module "main"/));
});

test('a TOML manifest file loads, its relative paths taken from its folder', async (t) => {
  const dir = tempDir(t);
  copyFileSync(pluginPath('count_vowels'), path.join(dir, 'vowels.wasm'));
  const manifest = path.join(dir, 'plugin.toml');
  writeFileSync(manifest, `# count_vowels, counting only "l"
timeout_ms = 10000

[[wasm]]
path = "vowels.wasm"

[config]
vowels = "l"
`);
  const p = await Plugin.load(pathToFileURL(manifest));
  try {
    assert.deepEqual(JSON.parse(await p.callString('count_vowels', 'Hello')), { count: 2, total: 2, vowels: 'l' });
  } finally {
    p.close();
  }
  // The same manifest as bytes, naming the plug-in by its absolute path.
  const bytes = utf8(`[[wasm]]\npath = ${JSON.stringify(pluginPath('count_vowels'))}\n[memory]\nmax_pages = 64\n`);
  const q = await Plugin.load(bytes);
  try {
    assert.equal(JSON.parse(await q.callString('count_vowels', 'aaa')).total, 3);
  } finally {
    q.close();
  }
});

test('a TOML manifest may give WAT as base64 data', async () => {
  const p = await Plugin.load(utf8(`wasm = [{ data = "${Buffer.from(hiWat).toString('base64')}", name = "main" }]\n`));
  try {
    assert.equal(await p.callString('hi'), 'hi');
  } finally {
    p.close();
  }
});

test('a TOML manifest with an unknown field is kind manifest with the native message', async (t) => {
  const dir = tempDir(t);
  const manifest = path.join(dir, 'plugin.toml');
  writeFileSync(manifest, `[[wasm]]\npath = "vowels.wasm"\nsize = 3\n`);
  await assert.rejects(Plugin.load(pathToFileURL(manifest)), isKind('manifest', /^invalid TOML manifest: line 3, column 1: unknown field `size`, expected one of `path`, `data`, `url`, `headers`, `method`, `name`, `hash`$/));
  await assert.rejects(Plugin.load(utf8('timeout = 5\n[[wasm]]\npath = "a.wasm"\n')), isKind('manifest', /^invalid TOML manifest: line 1, column 1: unknown field `timeout`/));
  // What the native parser accepts goes through the SDK's own checks too.
  await assert.rejects(Plugin.load(utf8('[[wasm]]\npath = "a.wasm"\nhash = "00"\n')), isKind('manifest', /malformed hash "00"/));
  await assert.rejects(Plugin.load(utf8('wasm = []\n')), isKind('manifest', /^the manifest lists no wasm modules/));
});
