// WASI preview 1: the in-memory file system (browser_wasi_shim) and node:wasi with real folders.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { Plugin } from '../dist/index.js';
import { hasKind, plugin } from './helpers.mjs';

test('wasi_files copies a file of the in-memory file system the host filled', async () => {
  const p = await Plugin.load({ wasm: [{ data: plugin('wasi_files') }], allowed_paths: { '/data': '/data' } }, {
    wasi: { files: { '/data/in.txt': 'hello from the host', '/data/sub/deep.bin': new Uint8Array([0, 1, 2, 255]) } },
  });
  assert.equal(await p.callString('copy_file', '/data/in.txt'), '/data/in.txt.out');
  assert.equal(new TextDecoder().decode(p.readWasiFile('/data/in.txt.out')), 'hello from the host');
  assert.equal(await p.callString('copy_file', '/data/sub/deep.bin'), '/data/sub/deep.bin.out');
  assert.deepEqual([...p.readWasiFile('/data/sub/deep.bin.out')], [0, 1, 2, 255]);
  // Outside the preopened directory there is nothing to read.
  await assert.rejects(p.call('copy_file', '/etc/passwd'), hasKind('guest', /cannot read \/etc\/passwd/));
  await assert.rejects(p.call('copy_file', '/data/missing.txt'), hasKind('guest', /cannot read \/data\/missing\.txt/));
  p.close();
});

test('the files of a read-only (ro:) in-memory mount cannot be overwritten', async () => {
  const p = await Plugin.load({ wasm: [{ data: plugin('wasi_files') }], allowed_paths: { 'ro:/anything': '/data' } }, {
    wasi: { files: { '/data/in.txt': 'x', '/data/in.txt.out': 'old' } },
  });
  await assert.rejects(p.call('copy_file', '/data/in.txt'), hasKind('guest', /cannot write \/data\/in\.txt\.out/));
  assert.equal(new TextDecoder().decode(p.readWasiFile('/data/in.txt.out')), 'old');
  p.close();
});

test('wasi_files copies a real file through node:wasi, in the allowed_paths folder only', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'plinth-web-wasi-'));
  try {
    writeFileSync(path.join(dir, 'in.txt'), 'on disk');
    const p = await Plugin.load({ wasm: [{ data: plugin('wasi_files') }], allowed_paths: { [dir]: '/data' } }, { wasi: true });
    assert.equal(await p.callString('copy_file', '/data/in.txt'), '/data/in.txt.out');
    assert.equal(readFileSync(path.join(dir, 'in.txt.out'), 'utf8'), 'on disk');
    assert.equal(p.readWasiFile('/data/in.txt.out'), undefined);
    await assert.rejects(p.call('copy_file', '/etc/hostname'), hasKind('guest', /cannot read \/etc\/hostname/));
    p.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('stdout and stderr go to the host callbacks, or nowhere without them', async () => {
  const out = [];
  const err = [];
  const p = await Plugin.load({ wasm: [{ data: plugin('cli_testkit') }], config: { mode: 'print' } }, {
    wasi: { stdout: (b) => out.push(...b), stderr: (b) => err.push(...b) },
  });
  assert.equal(await p.callString('run'), 'the result\n');
  assert.equal(new TextDecoder().decode(new Uint8Array(out)), 'to stdout \u001b[31m\n');
  assert.equal(new TextDecoder().decode(new Uint8Array(err)), 'to stderr\n');
  p.close();
  // Without callbacks (node:wasi here) the output is discarded and the call still works.
  const quiet = await Plugin.load({ wasm: [{ data: plugin('cli_testkit') }], config: { mode: 'print' } }, { wasi: true });
  assert.equal(await quiet.callString('run'), 'the result\n');
  quiet.close();
});

test('a WASI plug-in loaded without wasi fails to link, saying to turn WASI on', async () => {
  await assert.rejects(Plugin.load(plugin('wasi_files')), hasKind('link', /wasi_snapshot_preview1.*wasi: true/));
  await assert.rejects(Plugin.load({ wasm: [{ data: plugin('count_vowels') }], allowed_paths: { '/tmp': '/data' } }), hasKind('wasi', /needs WASI.*wasi: true/));
});

test('WASI setup errors say what to fix', async () => {
  const m = (paths) => ({ wasm: [{ data: plugin('wasi_files') }], allowed_paths: paths });
  await assert.rejects(Plugin.load(m({ '/no/such/dir/plinth': '/data' }), { wasi: true }), hasKind('wasi', /cannot open the allowed_paths directory `\/no\/such\/dir\/plinth`/));
  await assert.rejects(Plugin.load(m({ 'ro:/tmp': '/data' }), { wasi: true }), hasKind('wasi', /read-only/));
  await assert.rejects(Plugin.load(m({ '/x': '/data' }), { wasi: { files: { '/elsewhere/a.txt': 'a' } } }), hasKind('wasi', /not inside a guest directory of allowed_paths \(\/data\)/));
  await assert.rejects(Plugin.load(m({}), { wasi: { files: {}, bogus: 1 } }), (e) => e instanceof TypeError && /unknown wasi options bogus/.test(e.message));
});

const str = (s) => [s.length, ...Buffer.from(s)];
const section = (id, bytes) => [id, bytes.length, ...bytes];
/** (module (import "wasi_snapshot_preview1" "proc_exit" (func (param i32))) (memory (export "memory") 1)
 *    (func (export "run") (result i32) (call 0 (i32.const CODE)) i32.const 0)) */
function exitModule(code) {
  return new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, [0x02, 0x60, 0x01, 0x7f, 0x00, 0x60, 0x00, 0x01, 0x7f]),
    ...section(2, [0x01, ...str('wasi_snapshot_preview1'), ...str('proc_exit'), 0x00, 0x00]),
    ...section(3, [0x01, 0x01]),
    ...section(5, [0x01, 0x00, 0x01]),
    ...section(7, [0x02, ...str('memory'), 0x02, 0x00, ...str('run'), 0x00, 0x01]),
    ...section(10, [0x01, 0x08, 0x00, 0x41, code, 0x10, 0x00, 0x41, 0x00, 0x0b]),
  ]);
}

test('proc_exit with a non-zero code fails the call with kind exit and the code; 0 is a success', async () => {
  const engines = { 'node:wasi': true, 'in memory': { stdout: () => {} } };
  for (const [engine, wasi] of Object.entries(engines)) {
    for (const timeoutMs of [undefined, 10_000]) {
      const where = `${engine}${timeoutMs ? ', in a worker' : ''}`;
      const p = await Plugin.load(exitModule(3), { wasi, timeoutMs });
      await assert.rejects(p.call('run'), (e) => {
        hasKind('exit', /proc_exit with code 3 in `run`/)(e);
        assert.equal(e.code, 3, where);
        return true;
      }, where);
      p.close();
      const q = await Plugin.load(exitModule(0), { wasi, timeoutMs });
      assert.equal((await q.call('run')).length, 0, where);
      assert.equal((await q.call('run')).length, 0, where);
      q.close();
    }
  }
});
