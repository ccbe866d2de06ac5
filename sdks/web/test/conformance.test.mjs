// tests/conformance/errors/cases.json: the failures every SDK reports with the same kind,
// number and code. Its modules are WAT text, which @plinth/web does not compile, so the cases
// that must run a module are skipped, saying so; the load-stage ones that fail before that run.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { pathToFileURL } from 'node:url';
import path from 'node:path';
import { Plugin, PlinthError } from '../dist/index.js';
import { root } from './helpers.mjs';

const dir = path.join(root, 'tests/conformance/errors');
const { cases } = JSON.parse(readFileSync(path.join(dir, 'cases.json'), 'utf8'));
// Cases that fail before any module runs, so WAT never needs compiling.
const RUNNABLE = new Set(['bad_hash.json', 'unknown_field.json', 'not_a_module.txt']);

for (const c of cases) {
  const skip = RUNNABLE.has(c.file) ? false : 'needs a WAT module compiled and run; @plinth/web takes wasm only';
  test(`conformance: ${c.file} ${c.function} fails at ${c.stage} with ${c.kind}`, { skip }, async () => {
    const attempt = (async () => {
      const plugin = await Plugin.load(pathToFileURL(path.join(dir, c.file)));
      return plugin.call(c.function);
    })();
    await assert.rejects(attempt, (e) => {
      assert.ok(e instanceof PlinthError, String(e));
      assert.deepEqual([e.kind, e.kindCode, e.code], [c.kind, c.kind_code, c.code], e.message);
      return true;
    });
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
