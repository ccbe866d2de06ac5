// Async host functions and http_request through JSPI (WebAssembly.Suspending/promising).
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { test } from 'node:test';
import { CompiledPlugin, HostFunction, JSPI, Plugin } from '../dist/index.js';
import { isKind, plugin } from './helpers.mjs';

const skip = JSPI ? false : `this engine has no JSPI (WebAssembly.Suspending): Node.js ${process.versions.node}; Node.js 25 or newer, or Chrome 137, runs these tests`;

const tick = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

test('without JSPI an async host function runs the plug-in in a worker, which waits for it, with no time limit', { skip: JSPI ? 'this engine has JSPI' : false }, async () => {
  const greet = new HostFunction('greet', ['i64'], ['i64'], async (c, [h]) => {
    const name = c.readString(h);
    // Longer than a worker's start grace would allow a call if a limit applied by mistake.
    await tick(300);
    return c.writeString(`Hi ${name}, later`);
  });
  assert.equal(greet.isAsync, true);
  const p = await Plugin.load(plugin('host_greet'), { functions: [greet] });
  try {
    assert.equal(await p.callString('call_greet', 'Grace'), 'Hi Grace, later');
    const [a, b] = await Promise.all([p.callString('call_greet', 'Ada'), p.callString('call_greet', 'Alan')]);
    assert.deepEqual([a, b], ['Hi Ada, later', 'Hi Alan, later'], 'calls queue in the worker');
    assert.throws(() => p.callSync('call_greet', 'x'), isKind('host_function', /without JSPI, so it runs in a worker; use call\(\)/));
  } finally {
    p.close();
  }
  const compiled = await CompiledPlugin.load(plugin('host_greet'), { functions: [greet] });
  assert.throws(() => compiled.instantiateSync(), isKind('other', /without JSPI, so its instance starts a worker/));
});

test('without JSPI http_request runs the plug-in in a worker, whose requests this thread fetches', { skip: JSPI ? 'this engine has JSPI' : false }, async () => {
  const server = createServer((req, res) => res.end(`you asked for ${req.url}`));
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${server.address().port}`;
  const p = await Plugin.load({ wasm: [{ data: plugin('http_fetch') }], allowed_hosts: ['127.0.0.1'] });
  try {
    assert.equal(await p.callString('http_get', `${base}/hello`), 'you asked for /hello');
    await assert.rejects(p.call('http_get', 'https://example.com/'), isKind('http_denied', /example\.com/));
  } finally {
    p.close();
    server.close();
  }
});

test('a sync host function that returns a Promise says to mark it async', async () => {
  const greet = new HostFunction('greet', ['i64'], ['i64'], (c) => Promise.resolve(c.writeString('x')));
  assert.equal(greet.isAsync, false);
  const p = await Plugin.load(plugin('host_greet'), { functions: [greet] });
  await assert.rejects(p.call('call_greet', 'a'), isKind('host_function', /pass `async: true`/));
});

test('an async host function suspends the plug-in while it awaits', { skip }, async () => {
  let timerFired = false;
  const greet = new HostFunction('greet', ['i64'], ['i64'], async (c, [h]) => {
    const name = c.readString(h);
    setTimeout(() => { timerFired = true; }, 1);
    await tick(20);
    // The CurrentPlugin is still valid after the await.
    return c.writeString(`Hello, ${name}`);
  });
  const p = await Plugin.load(plugin('host_greet'), { functions: [greet] });
  assert.equal(p.async, true);
  assert.equal(await p.callString('call_greet', 'Ada'), 'Hello, Ada');
  assert.equal(timerFired, true, 'the event loop ran while the plug-in waited');
  assert.equal(await p.callString('call_greet', 'Grace'), 'Hello, Grace');
  assert.throws(() => p.callSync('call_greet', 'x'), isKind('host_function', /use call\(\)/));
});

test('a rejected async host function fails the call; the next call works', { skip }, async () => {
  let fail = true;
  const reason = new Error('database down');
  const greet = new HostFunction('greet', ['i64'], ['i64'], async (c, [h]) => {
    await tick(1);
    if (fail) throw reason;
    return c.writeString(c.readString(h));
  });
  const p = await Plugin.load(plugin('host_greet'), { functions: [greet] });
  await assert.rejects(p.call('call_greet', 'a'), (e) => isKind('host_function', /`greet` failed: Error: database down/)(e) && e.cause === reason);
  fail = false;
  assert.equal(await p.callString('call_greet', 'again'), 'again');
});

test('a second call while one awaits waits its turn; callSync is refused meanwhile', { skip }, async () => {
  let release;
  const gate = new Promise((resolve) => { release = resolve; });
  const greet = new HostFunction('greet', ['i64'], ['i64'], async (c, [h]) => {
    await gate;
    return c.writeString(c.readString(h));
  });
  const p = await Plugin.load(plugin('host_greet'), { functions: [greet] });
  const first = p.callString('call_greet', 'first');
  const second = p.callString('call_greet', 'second');
  await tick(5);
  assert.throws(() => p.callSync('call_greet', 'x'), isKind('busy', /callSync cannot call `call_greet` while `call_greet` awaits a host function.*use call\(\)/));
  release();
  assert.deepEqual([await first, await second], ['first', 'second']);
});

async function withServer(handler, f) {
  const server = createServer(handler);
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    return await f(`http://127.0.0.1:${server.address().port}`);
  } finally {
    server.close();
  }
}

test('http_request fetches from an allowed host, follows redirects only to allowed hosts, and is denied elsewhere', { skip }, async () => {
  await withServer((req, res) => {
    if (req.url === '/hop') {
      res.writeHead(302, { location: '/hello-again' });
      return res.end();
    }
    if (req.url === '/away') {
      res.writeHead(302, { location: `http://localhost:${req.socket.localPort}/hello` });
      return res.end();
    }
    res.statusCode = req.url === '/missing' ? 404 : 200;
    res.setHeader('content-type', 'text/plain');
    res.end(req.url === '/missing' ? 'no' : `you asked for ${req.url}`);
  }, async (base) => {
    const p = await Plugin.load({ wasm: [{ data: plugin('http_fetch') }], allowed_hosts: ['127.0.0.1'] });
    assert.equal(p.async, true);
    assert.equal(await p.callString('http_get', `${base}/hello`), 'you asked for /hello');
    await assert.rejects(p.call('http_get', `${base}/missing`), isKind('guest', /returned HTTP status 404/, 404));
    assert.equal(await p.callString('http_get', `${base}/hop`), 'you asked for /hello-again', 'a redirect to an allowed host is followed');
    await assert.rejects(p.call('http_get', `${base}/away`), isKind('http_denied', /localhost/), 'each redirect hop is checked');
    await assert.rejects(p.call('http_get', 'http://localhost:1/'), isKind('http_denied', /localhost/));
    const portOnly = await Plugin.load({ wasm: [{ data: plugin('http_fetch') }], allowed_hosts: ['127.0.0.1:1'] });
    await assert.rejects(portOnly.call('http_get', `${base}/`), isKind('http_denied', /127\.0\.0\.1:\d+ denied/));
  });
});

test('http_request: a response over max_http_response_bytes fails with kind http', { skip }, async () => {
  await withServer((req, res) => res.end('x'.repeat(1000)), async (base) => {
    const p = await Plugin.load({ wasm: [{ data: plugin('http_fetch') }], allowed_hosts: ['127.0.0.1'], memory: { max_http_response_bytes: 100 } });
    await assert.rejects(p.call('http_get', `${base}/`), isKind('http', /larger than memory.max_http_response_bytes \(100 bytes\)/));
  });
});
