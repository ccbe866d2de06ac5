// The web kernel against the native runtime: every built plug-in must come out of the kernel's
// plinth_prepare byte for byte as plinth_abi::prepare (what crates/plinth compiles) makes it,
// and the arena must keep blocks as the native Arena does. Run: node --test test/
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';


const here = dirname(fileURLToPath(import.meta.url));
const kernelDir = resolve(here, '..');
const root = resolve(kernelDir, '../../..');
const kernelPath = join(kernelDir, 'dist', 'plinth_web_kernel.wasm');
const pluginsDir = join(root, 'target', 'wasm-plugins');

const EXPORTS = [
  'memory',
  'plinth_bytes_alloc', 'plinth_bytes_free',
  'plinth_prepare', 'plinth_prepare_info', 'plinth_limit_memory',
  'plinth_result_ok', 'plinth_result_ptr', 'plinth_result_len', 'plinth_result_free',
  'plinth_arena_new', 'plinth_arena_drop', 'plinth_arena_reset', 'plinth_arena_set_budget',
  'plinth_arena_place', 'plinth_arena_end', 'plinth_arena_commit', 'plinth_arena_free',
  'plinth_arena_length', 'plinth_arena_used', 'plinth_arena_alloc', 'plinth_arena_begin',
  'plinth_arena_length32', 'plinth_memory_functions',
  'plinth_wat', 'plinth_manifest', 'plinth_looks_like_manifest',
  'plinth_const_reserved', 'plinth_const_input_offset_at', 'plinth_const_input_length_at',
  'plinth_const_max_bytes',
];

function loadKernel() {
  if (!existsSync(kernelPath)) {
    assert.fail(`${kernelPath} is missing: build it with \`bash sdks/web/kernel/build.sh\``);
  }
  const module = new WebAssembly.Module(readFileSync(kernelPath));
  return { module, k: new WebAssembly.Instance(module, {}).exports };
}

const { module, k } = loadKernel();

// Reads a result's bytes (copied: the kernel's memory may grow and move under a view).
function resultBytes(h) {
  const ptr = k.plinth_result_ptr(h);
  const len = k.plinth_result_len(h);
  return new Uint8Array(k.memory.buffer, ptr, len).slice();
}

// Prepares `wasm` through the kernel: { ok, bytes, info } or { ok: false, message }.
function prepare(wasm) {
  const ptr = k.plinth_bytes_alloc(wasm.length);
  assert.notEqual(ptr, 0, 'plinth_bytes_alloc failed');
  new Uint8Array(k.memory.buffer, ptr, wasm.length).set(wasm);
  const h = k.plinth_prepare(ptr, wasm.length);
  k.plinth_bytes_free(ptr, wasm.length);
  assert.ok(h > 0, 'plinth_prepare gives a handle');
  try {
    if (k.plinth_result_ok(h) !== 1) {
      assert.equal(k.plinth_prepare_info(h), 0, 'no info for an error');
      return { ok: false, message: new TextDecoder().decode(resultBytes(h)) };
    }
    const ih = k.plinth_prepare_info(h);
    assert.ok(ih > 0);
    const info = JSON.parse(new TextDecoder().decode(resultBytes(ih)));
    k.plinth_result_free(ih);
    return { ok: true, bytes: resultBytes(h), info };
  } finally {
    k.plinth_result_free(h);
  }
}

// A module's imports and exports read from its sections: fused modules have a second memory
// (Extism memory), which engines without multi-memory (Node 20) refuse to compile.
function sections(wasm) {
  let at = 8;
  const leb = () => {
    let n = 0n;
    let shift = 0n;
    for (;;) {
      const b = wasm[at++];
      n |= BigInt(b & 0x7f) << shift;
      shift += 7n;
      if ((b & 0x80) === 0) return Number(n);
    }
  };
  const name = () => {
    const len = leb();
    at += len;
    return new TextDecoder().decode(wasm.subarray(at - len, at));
  };
  const limits = () => {
    const flags = wasm[at++];
    leb();
    if (flags & 1) leb();
    if (flags & 8) leb();
  };
  const KINDS = ['function', 'table', 'memory', 'global', 'tag'];
  const imports = [];
  const exports = [];
  while (at < wasm.length) {
    const id = wasm[at++];
    const size = leb();
    const end = at + size;
    if (id === 2) {
      for (let n = leb(); n > 0; n--) {
        const module = name();
        const field = name();
        const kind = wasm[at++];
        if (kind === 0) leb();
        else if (kind === 1) { at++; limits(); }
        else if (kind === 2) limits();
        else if (kind === 3) at += 2;
        else if (kind === 4) { at++; leb(); }
        else throw new Error(`import kind ${kind}`);
        imports.push({ module, name: field, kind: KINDS[kind] });
      }
    } else if (id === 7) {
      for (let n = leb(); n > 0; n--) {
        const field = name();
        const kind = wasm[at++];
        leb();
        exports.push({ name: field, kind: KINDS[kind] });
      }
    }
    at = end;
  }
  return { imports, exports };
}

function pluginFiles() {
  const files = existsSync(pluginsDir)
    ? readdirSync(pluginsDir).filter((f) => f.endsWith('.wasm')).sort()
    : [];
  if (files.length === 0) {
    assert.fail(`no plug-ins in ${pluginsDir}: build them with \`bash scripts/build-plugins.sh\``);
  }
  return files;
}

test('the kernel imports nothing and exports exactly the documented ABI', () => {
  assert.deepEqual(WebAssembly.Module.imports(module), []);
  // The section reader used below agrees with the engine on a module both can read.
  assert.deepEqual(sections(readFileSync(kernelPath)).exports, WebAssembly.Module.exports(module));
  const names = WebAssembly.Module.exports(module).map((e) => e.name);
  // __data_end and __heap_base are the linker's own globals.
  assert.deepEqual(names.filter((n) => !n.startsWith('__')).sort(), [...EXPORTS].sort());
  assert.equal(k.plinth_const_reserved(), 16n);
  assert.equal(k.plinth_const_input_offset_at(), 0n);
  assert.equal(k.plinth_const_input_length_at(), 8n);
  assert.equal(k.plinth_const_max_bytes(), 1n << 32n);
});

test('every built plug-in is prepared byte for byte as the native runtime prepares it', () => {
  const files = pluginFiles();
  const out = mkdtempSync(join(tmpdir(), 'plinth-kernel-'));
  try {
    const pairs = files.flatMap((f) => [join(pluginsDir, f), join(out, f)]);
    execFileSync(
      'cargo',
      ['run', '-q', '--locked', '-p', 'plinth-abi', '--example', 'prepare', '--', ...pairs],
      { cwd: root, stdio: ['ignore', 'inherit', 'inherit'], timeout: 30 * 60 * 1000 },
    );
    let fused = 0;
    let linked = 0;
    for (const f of files) {
      const original = readFileSync(join(pluginsDir, f));
      const native = readFileSync(join(out, f));
      const web = prepare(original);
      assert.ok(web.ok, `${f}: ${web.message}`);
      assert.ok(Buffer.from(web.bytes).equals(native), `${f}: the kernel's bytes differ from the native runtime's`);
      const { info } = web;
      // What the info promises is in the prepared module.
      const prepared = sections(web.bytes);
      const exports = new Map(prepared.exports.map((e) => [e.name, e.kind]));
      if (info.fused) {
        fused++;
        assert.equal(exports.get(info.memory_export), 'memory', `${f}: ${info.memory_export}`);
        if (info.start_export !== null) assert.equal(exports.get(info.start_export), 'function');
        for (const g of info.global_exports) assert.equal(exports.get(g.name), 'global', `${f}: ${g.name}`);
      } else {
        assert.equal(info.memory_export, null);
        assert.deepEqual(info.global_exports, []);
      }
      if (info.stream_linked) {
        linked++;
        const { imports } = prepared;
        assert.ok(imports.some((i) => i.module === 'plinth:host/env' && /^(http_)?stream_/.test(i.name)), f);
      }
      if (!info.fused && !info.stream_linked) {
        assert.ok(Buffer.from(web.bytes).equals(original), `${f}: unchanged when nothing applies`);
      }
    }
    // The comparison covered both rewrites, not only modules left alone.
    assert.ok(fused > 0, 'some plug-in was fused');
    assert.ok(linked > 0, 'some plug-in was stream-linked');
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});

test('a module no rewrite applies to comes back unchanged', () => {
  // (module (memory 1) (export "memory" (memory 0))): no Extism imports, no streaming exports.
  const plain = Uint8Array.from([
    0, 0x61, 0x73, 0x6d, 1, 0, 0, 0, 5, 3, 1, 0, 1, 7, 10, 1, 6, 0x6d, 0x65, 0x6d, 0x6f, 0x72, 0x79, 2, 0,
  ]);
  assert.ok(WebAssembly.validate(plain));
  const out = prepare(plain);
  assert.ok(out.ok, out.message);
  assert.deepEqual(out.bytes, plain);
  assert.deepEqual(out.info, {
    fused: false, memory_export: null, start_export: null, global_exports: [], stream_linked: false,
  });
});

test('garbage, empty and misplaced input give an error result with a message, not a trap', () => {
  const garbage = prepare(new TextEncoder().encode('\0asm this is not a module'));
  assert.equal(garbage.ok, false);
  assert.match(garbage.message, /^not a valid WebAssembly module: /);
  const empty = prepare(new Uint8Array(0));
  assert.equal(empty.ok, false);
  assert.match(empty.message, /not a valid WebAssembly module/);
  // Bytes that are not inside a buffer from plinth_bytes_alloc are refused, not read.
  const h = k.plinth_prepare(0x7fff0000, 100);
  assert.equal(k.plinth_result_ok(h), 0);
  assert.match(new TextDecoder().decode(resultBytes(h)), /not inside a buffer from plinth_bytes_alloc/);
  k.plinth_result_free(h);
  // Unknown handles read as empty errors; bogus frees are ignored.
  for (const bogus of [0, -1, 987654]) {
    assert.equal(k.plinth_result_ok(bogus), 0);
    assert.equal(k.plinth_result_ptr(bogus), 0);
    assert.equal(k.plinth_result_len(bogus), 0);
    assert.equal(k.plinth_prepare_info(bogus), 0);
    k.plinth_result_free(bogus);
    k.plinth_bytes_free(bogus, 8);
  }
  assert.equal(k.plinth_bytes_alloc(-1), 0);
});

// Runs `f(ptr, len)` on `bytes` in a scratch buffer; a result handle's { ok, bytes, text }.
function withInput(f, bytes) {
  const ptr = k.plinth_bytes_alloc(bytes.length);
  new Uint8Array(k.memory.buffer, ptr, bytes.length).set(bytes);
  const h = f(ptr, bytes.length);
  k.plinth_bytes_free(ptr, bytes.length);
  assert.ok(h > 0, 'a result handle');
  try {
    const out = resultBytes(h);
    return { ok: k.plinth_result_ok(h) === 1, bytes: out, text: new TextDecoder().decode(out) };
  } finally {
    k.plinth_result_free(h);
  }
}
const utf8 = (text) => new TextEncoder().encode(text);

test('plinth_wat turns WAT text into a module, passes a binary through, and names the line and column of an error', () => {
  const wat = withInput(k.plinth_wat, utf8('(module\n  (func (export "three") (result i32) i32.const 3))'));
  assert.ok(wat.ok, wat.text);
  assert.equal(new WebAssembly.Instance(new WebAssembly.Module(wat.bytes), {}).exports.three(), 3);
  // wat::parse_bytes gives a binary back as it is, as the native runtime compiles it.
  const binary = withInput(k.plinth_wat, wat.bytes);
  assert.ok(binary.ok);
  assert.deepEqual(binary.bytes, wat.bytes);
  const bad = withInput(k.plinth_wat, utf8('(module\n  (func (result i32) i32.const))'));
  assert.equal(bad.ok, false);
  assert.match(bad.text, /^expected a i32\n\s+--> <anon>:2:31\n/);
  const notText = withInput(k.plinth_wat, Uint8Array.from([0xff, 0xfe, 0x28]));
  assert.equal(notText.ok, false);
  assert.match(notText.text, /utf-8/i);
  const h = k.plinth_wat(0x7fff0000, 10);
  assert.equal(k.plinth_result_ok(h), 0);
  assert.match(new TextDecoder().decode(resultBytes(h)), /^plinth_wat: .*not inside a buffer from plinth_bytes_alloc/);
  k.plinth_result_free(h);
});

test('plinth_manifest parses JSON and TOML with the native rules and gives the native JSON or message', () => {
  const toml = withInput(k.plinth_manifest, utf8('timeout_ms = 50\n[[wasm]]\npath = "a.wasm"\nname = "main"\n\n[[wasm]]\ndata = "AGFzbQEAAAA="\nname = "lib"\n[memory]\nmax_pages = 4\n[config]\nk = "v"\n'));
  assert.ok(toml.ok, toml.text);
  assert.deepEqual(JSON.parse(toml.text), {
    wasm: [{ path: 'a.wasm', name: 'main' }, { data: 'AGFzbQEAAAA=', name: 'lib' }],
    memory: { max_pages: 4 }, config: { k: 'v' }, timeout_ms: 50,
  });
  // JSON with byte-array data comes back with base64 data, as Manifest::to_json writes it.
  const json = withInput(k.plinth_manifest, utf8('\ufeff {"wasm": [{"data": [0, 97, 115, 109, 1, 0, 0, 0]}]}'));
  assert.ok(json.ok, json.text);
  assert.deepEqual(JSON.parse(json.text), { wasm: [{ data: 'AGFzbQEAAAA=' }] });
  const unknown = withInput(k.plinth_manifest, utf8('[[wasm]]\npath = "a.wasm"\nsize = 3\n'));
  assert.equal(unknown.ok, false);
  assert.equal(unknown.text, 'invalid TOML manifest: line 3, column 1: unknown field `size`, expected one of `path`, `data`, `url`, `headers`, `method`, `name`, `hash`');
  const empty = withInput(k.plinth_manifest, utf8('wasm = []\n'));
  assert.equal(empty.text, 'the manifest lists no wasm modules; add at least one entry to `wasm`');
  const jsonBad = withInput(k.plinth_manifest, utf8('{"wasm": [{"path": "a.wasm"}], "x": 1}'));
  assert.match(jsonBad.text, /^invalid JSON manifest: unknown field `x`/);
  assert.equal(withInput(k.plinth_manifest, Uint8Array.from([0xff, 0x3d])).text, 'the manifest is not valid UTF-8 text; manifests must be JSON or TOML');
});

test('plinth_looks_like_manifest tells manifests from modules as the native runtime does', () => {
  const looks = (bytes) => {
    const ptr = k.plinth_bytes_alloc(bytes.length);
    new Uint8Array(k.memory.buffer, ptr, bytes.length).set(bytes);
    const r = k.plinth_looks_like_manifest(ptr, bytes.length);
    k.plinth_bytes_free(ptr, bytes.length);
    return r;
  };
  assert.equal(looks(utf8(' {"wasm": []}')), 1);
  assert.equal(looks(utf8('# a plug-in\n[[wasm]]\npath = "a.wasm"\n')), 1);
  assert.equal(looks(utf8('name = "no wasm key"\n')), 0);
  assert.equal(looks(utf8('(module)')), 0);
  assert.equal(looks(Uint8Array.from([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0])), 0);
  assert.equal(looks(new Uint8Array(0)), 0);
  assert.equal(k.plinth_looks_like_manifest(0x7fff0000, 10), 0);
});

// Caps `wasm`'s memories through the kernel: { ok, bytes } or { ok: false, message }.
function limitMemory(wasm, maxPages, fused = 0) {
  const ptr = k.plinth_bytes_alloc(wasm.length);
  assert.notEqual(ptr, 0, 'plinth_bytes_alloc failed');
  new Uint8Array(k.memory.buffer, ptr, wasm.length).set(wasm);
  const h = k.plinth_limit_memory(ptr, wasm.length, BigInt(maxPages), fused);
  k.plinth_bytes_free(ptr, wasm.length);
  assert.ok(h > 0, 'plinth_limit_memory gives a handle');
  try {
    const bytes = resultBytes(h);
    return k.plinth_result_ok(h) === 1 ? { ok: true, bytes } : { ok: false, message: new TextDecoder().decode(bytes) };
  } finally {
    k.plinth_result_free(h);
  }
}

test('plinth_limit_memory caps the memories a module defines, or refuses a minimum over the budget', () => {
  // (module (memory 2) (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0))))
  const growing = Uint8Array.from([
    0, 0x61, 0x73, 0x6d, 1, 0, 0, 0,
    1, 6, 1, 0x60, 1, 0x7f, 1, 0x7f, // type 0: (i32) -> i32
    3, 2, 1, 0, // func 0: type 0
    5, 3, 1, 0, 2, // memory 0: min 2, no maximum
    7, 8, 1, 4, 0x67, 0x72, 0x6f, 0x77, 0, 0, // export "grow" func 0
    10, 8, 1, 6, 0, 0x20, 0, 0x40, 0, 0x0b, // local.get 0, memory.grow 0, end
  ]);
  assert.ok(WebAssembly.validate(growing));
  const capped = limitMemory(growing, 3);
  assert.ok(capped.ok, capped.message);
  const { grow, __plinth_grow_refused: refused } = new WebAssembly.Instance(new WebAssembly.Module(capped.bytes), {}).exports;
  assert.ok(refused instanceof WebAssembly.Global, 'the refusal flag is exported');
  assert.equal(refused.value, 0);
  assert.equal(grow(1), 2, 'to 3 pages: within the cap');
  assert.equal(refused.value, 0);
  assert.equal(grow(1), -1, 'past max_pages the engine refuses');
  assert.equal(refused.value, 1, 'and the flag says so');
  assert.equal(grow(0), 3);
  assert.equal(refused.value, 0, 'until a growth succeeds');
  const overBudget = limitMemory(growing, 1);
  assert.equal(overBudget.ok, false);
  assert.match(overBudget.message, /^out_of_memory: .*minimum of 2 pages.*max_pages = 1/);
  assert.match(limitMemory(Uint8Array.from([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0, 5, 9]), 1).message, /^not a valid WebAssembly module: /);
  assert.match(limitMemory(growing, -1).message, /max_pages is -1/);
  const h = k.plinth_limit_memory(0x7fff0000, 100, 1n, 0);
  assert.equal(k.plinth_result_ok(h), 0);
  assert.match(new TextDecoder().decode(resultBytes(h)), /not inside a buffer from plinth_bytes_alloc/);
  k.plinth_result_free(h);
});

test('plinth_limit_memory with fused = 1: memory 0 and the last memory (Extism memory) share the budget', (t) => {
  // (module (memory 1) (memory 1)
  //   (func (export "grow") (param i32) (result i32) (memory.grow 0 (local.get 0)))
  //   (func (export "grow_extism") (param i32) (result i32) (memory.grow 1 (local.get 0))))
  const twoMemories = Uint8Array.from([
    0, 0x61, 0x73, 0x6d, 1, 0, 0, 0,
    1, 6, 1, 0x60, 1, 0x7f, 1, 0x7f, // type 0: (i32) -> i32
    3, 3, 2, 0, 0, // funcs 0 and 1: type 0
    5, 5, 2, 0, 1, 0, 1, // memories 0 and 1: min 1, no maximum
    7, 0x16, 2, 4, 0x67, 0x72, 0x6f, 0x77, 0, 0, // export "grow" func 0
    11, 0x67, 0x72, 0x6f, 0x77, 0x5f, 0x65, 0x78, 0x74, 0x69, 0x73, 0x6d, 0, 1, // "grow_extism" func 1
    10, 0x0f, 2, 6, 0, 0x20, 0, 0x40, 0, 0x0b, 6, 0, 0x20, 0, 0x40, 1, 0x0b, // memory.grow 0 / 1
  ]);
  if (!WebAssembly.validate(twoMemories)) {
    t.skip('this engine has no multi-memory (Node.js 20)');
    return;
  }
  const shared = limitMemory(twoMemories, 6, 1);
  assert.ok(shared.ok, shared.message);
  const { grow, grow_extism: growExtism, __plinth_grow_refused: refused } = new WebAssembly.Instance(new WebAssembly.Module(shared.bytes), {}).exports;
  assert.equal(growExtism(2), 1, 'Extism memory to 3 pages');
  assert.equal(grow(3), -1, '1 + 3 + 3 pages would pass 6');
  assert.equal(refused.value, 1, 'the shared budget\'s refusal is flagged too');
  assert.equal(grow(2), 1, 'memory 0 to 3 pages: 6 in all');
  assert.equal(grow(1), -1);
  assert.equal(grow(0), 3, 'memory.grow 0 of nothing still answers the size');
  // Without fused = 1 each memory is capped on its own.
  const alone = new WebAssembly.Instance(new WebAssembly.Module(limitMemory(twoMemories, 6).bytes), {}).exports;
  assert.equal(alone.grow_extism(2), 1);
  assert.equal(alone.grow(5), 1, 'memory 0 to 6 pages beside Extism memory\'s 3');
});

test('the arena places, commits, reuses, frees and resets as the native Arena does', () => {
  const id = k.plinth_arena_new();
  assert.ok(id > 0);
  assert.equal(k.plinth_arena_used(id), 16n);
  const a = k.plinth_arena_place(id, 5n);
  assert.equal(a, 16n, 'the first block follows the reserved bytes');
  assert.equal(k.plinth_arena_end(id), 21n);
  assert.equal(k.plinth_arena_length(id, a), 0n, 'not taken before the commit');
  assert.equal(k.plinth_arena_commit(id, a, 20n), 0, 'only the pending placement commits');
  assert.equal(k.plinth_arena_commit(id, a, 21n), 1);
  assert.equal(k.plinth_arena_commit(id, a, 21n), 0, 'once');
  assert.equal(k.plinth_arena_end(id), 0n);
  assert.equal(k.plinth_arena_length(id, a), 5n);
  const b = k.plinth_arena_place(id, 3n);
  assert.equal(b, 24n, '8-byte aligned');
  assert.equal(k.plinth_arena_commit(id, b, k.plinth_arena_end(id)), 1);
  assert.equal(k.plinth_arena_used(id), 27n);
  assert.equal(k.plinth_arena_free(id, a), 1);
  assert.equal(k.plinth_arena_free(id, a), 0, 'not a live block any more');
  assert.equal(k.plinth_arena_length(id, a), 0n);
  assert.equal(k.plinth_arena_place(id, 4n), a, 'the freed block is reused');
  assert.equal(k.plinth_arena_end(id), 0n, 'a reused block needs no commit');
  assert.equal(k.plinth_arena_length(id, a), 4n);
  // Freeing the top block lowers the bump pointer.
  assert.equal(k.plinth_arena_free(id, b), 1);
  assert.equal(k.plinth_arena_used(id), 24n);
  // Bogus handles and sizes.
  for (const bogus of [0n, 1n, 17n, -1n, 1n << 62n]) {
    assert.equal(k.plinth_arena_free(id, bogus), 0);
    assert.equal(k.plinth_arena_length(id, bogus), 0n);
  }
  assert.equal(k.plinth_arena_place(id, 0n), 0n, 'Extism null block');
  assert.equal(k.plinth_arena_place(id, 1n << 33n), -2n, 'too large');
  assert.equal(k.plinth_arena_place(id, -5n), -2n);
  assert.equal(k.plinth_arena_set_budget(id, 64n), 1);
  assert.equal(k.plinth_arena_place(id, 100n), -1n, 'over the budget');
  assert.equal(k.plinth_arena_place(id, 8n), 24n, 'within the budget');
  k.plinth_arena_reset(id);
  assert.equal(k.plinth_arena_used(id), 16n);
  assert.equal(k.plinth_arena_length(id, a), 0n);
  assert.equal(k.plinth_arena_end(id), 0n, 'reset drops the pending placement');
  // Arenas are independent, and a dropped one is gone.
  const other = k.plinth_arena_new();
  assert.notEqual(other, id);
  assert.equal(k.plinth_arena_place(other, 1n), 16n);
  k.plinth_arena_drop(id);
  assert.equal(k.plinth_arena_place(id, 1n), -3n, 'no such arena');
  assert.equal(k.plinth_arena_used(id), 0n);
  assert.equal(k.plinth_arena_commit(id, 16n, 17n), 0);
  k.plinth_arena_drop(other);
});

test('alloc and begin place and take a block in one call, and leave growth to the host', () => {
  const id = k.plinth_arena_new();
  assert.equal(k.plinth_arena_alloc(id, 5, 1) >>> 0, 16, 'fits in one page: taken');
  assert.equal(k.plinth_arena_length32(id, 16n) >>> 0, 5);
  assert.equal(k.plinth_arena_alloc(id, 70_000, 1) >>> 0, 4, 'past the memory: grow first');
  assert.equal(k.plinth_arena_length32(id, 24n), 0, 'nothing taken');
  const off = k.plinth_arena_place(id, 70_000n);
  assert.equal(off, 24n);
  assert.equal(k.plinth_arena_commit(id, off, k.plinth_arena_end(id)), 1);
  assert.equal(k.plinth_arena_length32(id, 24n) >>> 0, 70_000);
  assert.equal(k.plinth_arena_alloc(id, 0, 1), 0, 'null block');
  assert.equal(k.plinth_arena_alloc(id, -1, 65_535) >>> 0, 2, 'n is unsigned: 4 GiB - 1 is too large');
  assert.equal(k.plinth_arena_begin(id, 64, 2) >>> 0, 16, 'begin frees everything first');
  assert.equal(k.plinth_arena_length32(id, 24n), 0);
  k.plinth_arena_drop(id);
  assert.equal(k.plinth_arena_alloc(id, 1, 1) >>> 0, 3, 'no such arena');
  assert.equal(k.plinth_arena_begin(id, 1, 1) >>> 0, 3);
});

test('the memory functions module runs the fused bodies over a memory it imports', () => {
  const h = k.plinth_memory_functions();
  assert.equal(k.plinth_result_ok(h), 1);
  const bytes = new Uint8Array(k.memory.buffer, k.plinth_result_ptr(h) >>> 0, k.plinth_result_len(h) >>> 0).slice();
  k.plinth_result_free(h);
  const module = new WebAssembly.Module(bytes);
  assert.deepEqual(WebAssembly.Module.imports(module), [{ module: 'env', name: 'memory', kind: 'memory' }]);
  assert.deepEqual(WebAssembly.Module.exports(module).map((e) => e.name),
    ['input_length', 'input_load_u8', 'input_load_u64', 'load_u8', 'load_u64', 'store_u8', 'store_u64']);
  const memory = new WebAssembly.Memory({ initial: 1 });
  const f = new WebAssembly.Instance(module, { env: { memory } }).exports;
  const view = new DataView(memory.buffer);
  // An input of 10 bytes at 32, as the host records it in the reserved bytes.
  view.setBigUint64(0, 32n, true);
  view.setBigUint64(8, 10n, true);
  for (let i = 0; i < 10; i++) view.setUint8(32 + i, i + 1);
  assert.equal(f.input_length(), 10n);
  assert.equal(f.input_load_u8(9n), 10);
  assert.equal(f.input_load_u8(10n), 0, 'past the input');
  assert.equal(f.input_load_u64(0n), 0x0807060504030201n);
  assert.equal(f.input_load_u64(8n), 0x0a09n, 'a short tail is zero-filled');
  assert.equal(f.input_load_u64(-1n), 0n);
  f.store_u64(64n, -2n);
  assert.equal(f.load_u64(64n), -2n);
  f.store_u8(72n, 0x1ff);
  assert.equal(f.load_u8(72n), 0xff);
  // The reserved bytes and anything past the memory are out of bounds: loads give 0, stores do nothing.
  f.store_u64(0n, 99n);
  assert.equal(view.getBigUint64(0, true), 32n);
  assert.equal(f.load_u64(8n), 0n);
  assert.equal(f.load_u64(65_536n - 7n), 0n);
  f.store_u8(65_536n, 1);
  assert.equal(f.load_u8(65_535n), 0);
});
