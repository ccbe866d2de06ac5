import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Plugin, PlinthError, sha256Hex, validateManifest } from '../dist/index.js';
import { plugin, pluginPath } from './helpers.mjs';

async function rejectsWith(promise, kind, pattern) {
  await assert.rejects(promise, (e) => {
    assert.ok(e instanceof PlinthError, `expected a PlinthError, got ${e}`);
    assert.equal(e.kind, kind, e.message);
    assert.match(e.message, pattern);
    return true;
  });
}

test('an unknown manifest field is refused and named', async () => {
  await rejectsWith(Plugin.load({ wasm: [{ data: plugin('count_vowels') }], timeout: 5 }), 'manifest', /unknown field `timeout`/);
  await rejectsWith(Plugin.load({ wasm: [{ data: plugin('count_vowels'), sha: 'x' }] }), 'manifest', /unknown field `sha` in wasm\[0\]/);
  await rejectsWith(Plugin.load({ wasm: [{ data: plugin('count_vowels') }], memory: { max_page: 4 } }), 'manifest', /unknown field `max_page` in `memory`/);
});

test('the kind number of a manifest error is 1 and its code -1', () => {
  assert.throws(() => validateManifest({ wasm: [] }), (e) => e.kind === 'manifest' && e.kindCode === 1 && e.code === -1 && /no wasm modules/.test(e.message));
});

test('a wasm entry needs exactly one source', () => {
  assert.throws(() => validateManifest({ wasm: [{ path: 'a.wasm', url: 'https://x/a.wasm' }] }), /exactly one of path, data or url \(found path and url\)/);
  assert.throws(() => validateManifest({ wasm: [{ name: 'x' }] }), /found none of them/);
  assert.throws(() => validateManifest({ wasm: [{ path: 'a.wasm', headers: {} }] }), /only allowed together with `url`/);
});

test('null and undefined fields count as absent', () => {
  const m = validateManifest({ wasm: [{ path: 'a.wasm', url: null, hash: undefined }], config: null });
  assert.deepEqual(m, { wasm: [{ path: 'a.wasm' }] });
});

test('a sha256 that does not match is refused with both hashes', async () => {
  const bytes = plugin('count_vowels');
  const actual = await sha256Hex(bytes);
  const wrong = '0'.repeat(64);
  await rejectsWith(Plugin.load({ wasm: [{ data: bytes, hash: wrong }] }), 'manifest', new RegExp(`expects sha256 ${wrong} but the module's bytes hash to ${actual}`));
});

test('a matching sha256 loads, from a path and from base64 data', async () => {
  const bytes = plugin('count_vowels');
  const hash = await sha256Hex(bytes);
  const fromPath = await Plugin.load({ wasm: [{ path: pluginPath('count_vowels'), hash }] });
  assert.equal(JSON.parse(await fromPath.callString('count_vowels', 'aaa')).count, 3);
  const fromBase64 = await Plugin.load({ wasm: [{ data: Buffer.from(bytes).toString('base64'), hash: hash.toUpperCase() }] });
  assert.equal(JSON.parse(await fromBase64.callString('count_vowels', 'ee')).count, 2);
});

test('a malformed hash is refused', () => {
  assert.throws(() => validateManifest({ wasm: [{ path: 'a.wasm', hash: 'abc' }] }), /malformed hash "abc"/);
});

test('manifest JSON bytes load like a manifest object', async () => {
  const json = JSON.stringify({ wasm: [{ path: pluginPath('count_vowels') }], config: { vowels: 'x' } });
  const p = await Plugin.load(new TextEncoder().encode(json));
  assert.equal(JSON.parse(await p.callString('count_vowels', 'xxa')).count, 2);
  await rejectsWith(Plugin.load(new TextEncoder().encode('{"wasm": [], ')), 'manifest', /invalid JSON manifest/);
});

test('unknown options are a TypeError', async () => {
  await assert.rejects(Plugin.load(plugin('count_vowels'), { fuel: 3 }), (e) => e instanceof TypeError && /unknown plug-in options fuel/.test(e.message));
});
