// The cases of test/browser/cases.mjs, which browser.test.mjs runs in Chromium, on this
// Node.js: the same static server (test/server.mjs) serves the plug-ins and the /api/
// endpoints, and the cases load them by absolute URL. Each case is a subtest; one the engine
// cannot run (no JSPI, for example) is skipped with its reason.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { JSPI, MULTI_MEMORY } from '../dist/index.js';
import { makeCases } from './browser/cases.mjs';
import { assertBuilt, closedPort, startServer } from './server.mjs';

test(`the browser cases on Node.js ${process.versions.node}`, { timeout: 120_000 }, async (t) => {
  assertBuilt();
  const { server, hits, base } = await startServer();
  t.after(() => server.close());
  // The cases check `fused` against MULTI_MEMORY; this checks the SDK sees what this Node.js has.
  const major = Number(process.versions.node.split('.')[0]);
  await t.test('the SDK detects the WebAssembly features this Node.js has', () => {
    if (major >= 22) assert.equal(MULTI_MEMORY, true, `Node.js ${major} has multi-memory`);
    if (major >= 25) assert.equal(JSPI, true, `Node.js ${major} has JSPI`);
  });
  const cases = makeCases({ base, closedPort: await closedPort() });
  for (const [name, run] of Object.entries(cases)) {
    await t.test(name, { skip: run.skip ?? false }, () => run());
  }
  await t.test('the denied endpoint was never requested', () => assert.equal(hits.denied, 0, 'allowed_hosts let a request to localhost through'));
});
