// tests/conformance/errors/cases.json: the failures every SDK reports with the same kind,
// number and code. Every case loads through the SDK's file: URL entry point, as in the other
// SDKs: WAT modules and manifests naming them included (the kernel parses the WAT text).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { pathToFileURL } from 'node:url';
import path from 'node:path';
import { Plugin, PlinthError } from '../dist/index.js';
import { root } from './helpers.mjs';

const dir = path.join(root, 'tests/conformance/errors');
const { cases } = JSON.parse(readFileSync(path.join(dir, 'cases.json'), 'utf8'));
const source = (file) => pathToFileURL(path.join(dir, file));

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
