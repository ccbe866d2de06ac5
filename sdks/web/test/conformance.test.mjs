// tests/conformance/errors/cases.json: the failures every SDK reports with the same kind,
// number and code. Its modules are WAT text, which @plinth/web does not compile (it takes
// wasm only): this test compiles them with wabt and hands the SDK the same manifest with the
// wasm bytes in place of each .wat path. Everything else goes through the SDK's file: URL
// entry point, as the case says.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { pathToFileURL } from 'node:url';
import path from 'node:path';
import { Plugin, PlinthError } from '../dist/index.js';
import { root } from './helpers.mjs';
import { wat } from './wat.mjs';

const dir = path.join(root, 'tests/conformance/errors');
const { cases } = JSON.parse(readFileSync(path.join(dir, 'cases.json'), 'utf8'));
const compiledWat = (file) => wat(readFileSync(path.join(dir, file), 'utf8'));

/** What the SDK loads for a case: a .wat compiled, a manifest naming .wat files with their
 * bytes instead, anything else (bad hashes, unknown fields, not a module) as the file itself. */
function source(file) {
  if (file.endsWith('.wat')) return compiledWat(file);
  if (file.endsWith('.json')) {
    const manifest = JSON.parse(readFileSync(path.join(dir, file), 'utf8'));
    // A hash names the WAT text's bytes, so that case is left to fail as it is.
    if (Array.isArray(manifest.wasm) && manifest.wasm.every((w) => typeof w.path === 'string' && w.path.endsWith('.wat') && w.hash === undefined)) {
      manifest.wasm = manifest.wasm.map(({ path: p, ...rest }) => ({ ...rest, data: compiledWat(p) }));
      return manifest;
    }
  }
  return pathToFileURL(path.join(dir, file));
}

for (const c of cases) {
  test(`conformance: ${c.file} ${c.function} fails at ${c.stage} with ${c.kind}`, async () => {
    let loaded;
    const attempt = (async () => {
      loaded = await Plugin.load(source(c.file));
      return loaded.call(c.function);
    })();
    await assert.rejects(attempt, (e) => {
      assert.ok(e instanceof PlinthError, String(e));
      assert.deepEqual([e.kind, e.kindCode, e.code], [c.kind, c.kind_code, c.code], e.message);
      return true;
    });
    assert.equal(loaded === undefined, c.stage === 'load', `the case fails at ${c.stage}`);
    loaded?.close();
  });
}

test("a manifest file's relative paths are relative to its folder", async () => {
  // bad_hash.json names trap.wat beside it; the hash check reads it from there, whatever the cwd.
  const cwd = process.cwd();
  process.chdir('/');
  try {
    await assert.rejects(Plugin.load(pathToFileURL(path.join(dir, 'bad_hash.json'))), (e) => e.kind === 'manifest' && /hash mismatch for wasm module "main"/.test(e.message));
  } finally {
    process.chdir(cwd);
  }
});
