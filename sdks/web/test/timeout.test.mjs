// timeoutMs / timeout_ms: the plug-in runs in a worker, terminated at the deadline; host
// functions run on the main thread, the worker waiting on a SharedArrayBuffer.
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { test } from 'node:test';
import { HostFunction, Plugin } from '../dist/index.js';
import { hasKind, plugin } from './helpers.mjs';

const header = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
/** (module (func (export "spin") (result i32) (loop (br 0)) i32.const 0)) */
const spinModule = new Uint8Array([
  ...header,
  0x01, 0x05, 0x01, 0x60, 0x00, 0x01, 0x7f, // type 0: () -> i32
  0x03, 0x02, 0x01, 0x00, // func 0: type 0
  0x07, 0x08, 0x01, 0x04, ...Buffer.from('spin'), 0x00, 0x00, // export "spin" = func 0
  0x0a, 0x0b, 0x01, 0x09, 0x00, 0x03, 0x40, 0x0c, 0x00, 0x0b, 0x41, 0x00, 0x0b, // loop br 0 end; i32.const 0
]);

test('an endless loop stops at timeout_ms with kind timeout, and the plug-in serves the next call', async () => {
  const p = await Plugin.load({ wasm: [{ data: plugin('cli_testkit') }], config: { mode: 'loop' }, timeout_ms: 300 }, { wasi: true });
  const started = Date.now();
  await assert.rejects(p.call('run', 'x'), hasKind('timeout', /`run` did not finish within timeout_ms = 300 ms/));
  // Generous: the worker is terminated at the deadline, not when the loop ends (it never does).
  assert.ok(Date.now() - started < 30_000, 'the timeout took far too long');
  assert.equal(await p.callString('describe'), 'Test fixture in mode `loop`\nUsage text for mode `loop`.');
  // The fresh worker times out again as well.
  await assert.rejects(p.call('run'), hasKind('timeout', /timeout_ms = 300 ms/));
  p.close();
  await assert.rejects(p.call('describe'), hasKind('closed', /closed/));
});

test('a hand-assembled endless loop stops at timeoutMs (the option over the manifest)', async () => {
  const p = await Plugin.load({ wasm: [{ data: spinModule }], timeout_ms: 600_000 }, { timeoutMs: 200 });
  await assert.rejects(p.call('spin'), hasKind('timeout', /`spin` did not finish within timeout_ms = 200 ms/));
  await assert.rejects(p.call('nope'), hasKind('function_not_found', /spin/));
  p.close();
});

/** (module (func $s (loop (br 0))) (start $s) (func (export "run") (result i32) i32.const 0)) */
const spinAtStart = new Uint8Array([
  ...header,
  0x01, 0x08, 0x02, 0x60, 0x00, 0x00, 0x60, 0x00, 0x01, 0x7f, // types: () -> (), () -> i32
  0x03, 0x03, 0x02, 0x00, 0x01, // func 0: type 0, func 1: type 1
  0x07, 0x07, 0x01, 0x03, ...Buffer.from('run'), 0x00, 0x01, // export "run" = func 1
  0x08, 0x01, 0x00, // start: func 0
  0x0a, 0x0e, 0x02, 0x07, 0x00, 0x03, 0x40, 0x0c, 0x00, 0x0b, 0x0b, 0x04, 0x00, 0x41, 0x00, 0x0b,
]);

test('a start function that never returns stops loading (after the 10 s a worker gets to start)', async () => {
  await assert.rejects(Plugin.load(spinAtStart, { timeoutMs: 300 }), hasKind('timeout', /starting the plug-in \(its start function\) did not finish within 10000 ms/));
});

test('in a worker, vars last across calls; config and the log lines reach it and come back', async () => {
  const lines = [];
  const p = await Plugin.load({ wasm: [{ data: plugin('count_vowels') }], config: { vowels: 'aeiou' } }, { timeoutMs: 10_000, logger: (level, m) => lines.push([level, m]), logLevel: 'debug' });
  assert.deepEqual(await p.callJson('count_vowels', 'Hello'), { count: 2, total: 2, vowels: 'aeiou' });
  assert.deepEqual(JSON.parse(await p.callString('count_vowels', 'aaa')), { count: 3, total: 5, vowels: 'aeiou' });
  assert.deepEqual(lines, [['debug', '2 vowels, 2 so far'], ['debug', '3 vowels, 5 so far']]);
  assert.throws(() => p.callSync('count_vowels', 'a'), hasKind('host_function', /runs in a worker; use call/));
  p.close();
});

test('a sync host function works through the worker; blocks it writes reach the plug-in', async () => {
  const greet = new HostFunction('greet', ['i64'], ['i64'], (c, [h], prefix) => c.writeString(prefix + c.readString(h)), { userData: 'Hello, ' });
  const p = await Plugin.load(plugin('host_greet'), { functions: [greet], timeoutMs: 10_000 });
  assert.equal(await p.callString('call_greet', 'Ada'), 'Hello, Ada');
  assert.equal(await p.callString('call_greet', 'x'.repeat(100_000)), 'Hello, ' + 'x'.repeat(100_000));
  p.close();
});

test('an async host function works through the worker without JSPI', async () => {
  const greet = new HostFunction('greet', ['i64'], ['i64'], async (c, [h]) => {
    const name = c.readString(h);
    await new Promise((r) => setTimeout(r, 20));
    return c.writeString(`Hi ${name}, later`);
  });
  const p = await Plugin.load(plugin('host_greet'), { functions: [greet], timeoutMs: 10_000 });
  assert.equal(await p.callString('call_greet', 'Grace'), 'Hi Grace, later');
  assert.equal(await p.callString('call_greet', 'Ada'), 'Hi Ada, later');
  p.close();
});

test('a host function that never answers is stopped by the timeout too', async () => {
  const greet = new HostFunction('greet', ['i64'], ['i64'], () => new Promise(() => {}), { async: true });
  const p = await Plugin.load(plugin('host_greet'), { functions: [greet], timeoutMs: 300 });
  await assert.rejects(p.call('call_greet', 'x'), hasKind('timeout', /timeout_ms = 300 ms/));
  p.close();
});

test('host function failures and re-entrant calls through the worker', async () => {
  const boom = new HostFunction('greet', ['i64'], ['i64'], () => { throw new TypeError('no such customer'); });
  const p = await Plugin.load(plugin('host_greet'), { functions: [boom], timeoutMs: 10_000 });
  await assert.rejects(p.call('call_greet', 'Ada'), hasKind('host_function', /host function `greet` failed: TypeError: no such customer/));
  p.close();
  let q;
  const again = new HostFunction('greet', ['i64'], ['i64'], async (c) => { await q.call('call_greet', 'again'); return c.writeString('no'); });
  q = await Plugin.load(plugin('host_greet'), { functions: [again], timeoutMs: 10_000 });
  await assert.rejects(q.call('call_greet', 'x'), hasKind('reentrant', /re-entrant call of `call_greet` refused/));
  q.close();
});

test('WASI stdout comes back from the worker to the host callback', async () => {
  const out = [];
  const p = await Plugin.load({ wasm: [{ data: plugin('cli_testkit') }], config: { mode: 'print' }, timeout_ms: 10_000 }, { wasi: { stdout: (b) => out.push(...b) } });
  assert.equal(await p.callString('run'), 'the result\n');
  assert.equal(new TextDecoder().decode(new Uint8Array(out)), 'to stdout \u001b[31m\n');
  p.close();
});

test('load errors from the worker path keep their kinds; a bad timeout is a TypeError', async () => {
  await assert.rejects(Plugin.load(plugin('host_greet'), { timeoutMs: 1000 }), hasKind('link', /greet/));
  await assert.rejects(Plugin.load(plugin('count_vowels'), { timeoutMs: -5 }), (e) => e instanceof TypeError && /positive integer/.test(e.message));
});

test('without SharedArrayBuffer, host functions with a timeout are refused, saying why', async () => {
  const greet = new HostFunction('greet', ['i64'], ['i64'], (c, [h]) => h);
  const saved = globalThis.SharedArrayBuffer;
  globalThis.SharedArrayBuffer = undefined;
  try {
    await assert.rejects(Plugin.load(plugin('host_greet'), { functions: [greet], timeoutMs: 1000 }), hasKind('other', /needs SharedArrayBuffer.*cross-origin isolated/));
  } finally {
    globalThis.SharedArrayBuffer = saved;
  }
  // Without host functions the worker needs no shared memory.
  globalThis.SharedArrayBuffer = undefined;
  let p;
  try {
    p = await Plugin.load(plugin('count_vowels'), { timeoutMs: 10_000 });
  } finally {
    globalThis.SharedArrayBuffer = saved;
  }
  assert.equal(JSON.parse(await p.callString('count_vowels', 'aa')).count, 2);
  p.close();
});

test('http_request in a worker: the main thread fetches (no JSPI needed), allowed_hosts and redirects checked', async () => {
  const server = createServer((req, res) => {
    if (req.url === '/away') {
      res.writeHead(302, { location: `http://localhost:${req.socket.localPort}/hello` });
      return res.end();
    }
    res.statusCode = req.url === '/missing' ? 404 : 200;
    res.end(req.url === '/missing' ? 'no' : `you asked for ${req.url}`);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${server.address().port}`;
  try {
    const p = await Plugin.load({ wasm: [{ data: plugin('http_fetch') }], allowed_hosts: ['127.0.0.1'], timeout_ms: 20_000 });
    assert.equal(await p.callString('http_get', `${base}/hello`), 'you asked for /hello');
    await assert.rejects(p.call('http_get', `${base}/missing`), hasKind('guest', /returned HTTP status 404/));
    await assert.rejects(p.call('http_get', `${base}/away`), hasKind('http_denied', /localhost/), 'each redirect hop is checked');
    await assert.rejects(p.call('http_get', 'https://example.com/'), hasKind('http_denied', /example\.com/));
    assert.equal(await p.callString('http_get', `${base}/again`), 'you asked for /again');
    p.close();
    const small = await Plugin.load({ wasm: [{ data: plugin('http_fetch') }], allowed_hosts: ['127.0.0.1'], memory: { max_http_response_bytes: 5 } }, { timeoutMs: 20_000 });
    await assert.rejects(small.call('http_get', `${base}/hello`), hasKind('http', /larger than memory.max_http_response_bytes \(5 bytes\)/));
    small.close();
  } finally {
    server.close();
  }
});
