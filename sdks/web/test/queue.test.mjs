// Calls of one plug-in queue (one at a time, in order), can be cancelled with an AbortSignal,
// and fail with kind `closed` when the plug-in closes; vars outlive a dropped instance or worker.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { HostFunction, JSPI, Plugin } from '../dist/index.js';
import { counterModule, hasKind, isKind, plugin } from './helpers.mjs';

const skip = JSPI ? false : `this engine has no JSPI (WebAssembly.Suspending): Node.js ${process.versions.node}; Node.js 25 or newer, or Chrome 137, runs these tests`;

const tick = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** A promise and the function that resolves it. */
function gate() {
  let open;
  const opened = new Promise((resolve) => { open = resolve; });
  return { open, opened };
}

/** `count`'s two output bytes: var `n` (kept across instances) and the instance's own call count. */
async function count(p, options) {
  const [n, calls] = await p.call('count', undefined, options);
  return { n, calls };
}

test('50 calls made at once run one at a time, in the order they were made', { skip }, async () => {
  const order = [];
  let inside = 0;
  let most = 0;
  const greet = new HostFunction('greet', ['i64'], ['i64'], async (c, [h]) => {
    const name = c.readString(h);
    order.push(name);
    inside++;
    most = Math.max(most, inside);
    // Uneven waits: a call that overtook another would show in `order`.
    await tick(name.length % 3);
    inside--;
    return c.writeString(`<${name}>`);
  });
  const p = await Plugin.load(plugin('host_greet'), { functions: [greet] });
  const names = Array.from({ length: 50 }, (_, i) => `call ${i}${'.'.repeat(i % 5)}`);
  const results = await Promise.all(names.map((n) => p.callString('call_greet', n)));
  assert.deepEqual(results, names.map((n) => `<${n}>`));
  assert.deepEqual(order, names);
  assert.equal(most, 1, 'two calls ran at once');
  p.close();
});

test('a failing call in the queue does not block the calls after it', { skip }, async () => {
  const greet = new HostFunction('greet', ['i64'], ['i64'], async (c, [h]) => {
    const name = c.readString(h);
    await tick(1);
    if (name === 'fail') throw new Error('refused');
    return c.writeString(name);
  });
  const p = await Plugin.load(plugin('host_greet'), { functions: [greet] });
  const calls = [p.callString('call_greet', 'a'), p.callString('call_greet', 'fail'), p.callString('call_greet', 'b'), p.call('missing'), p.callString('call_greet', 'c')];
  const settled = await Promise.allSettled(calls);
  assert.deepEqual(settled.map((s) => s.status), ['fulfilled', 'rejected', 'fulfilled', 'rejected', 'fulfilled']);
  assert.deepEqual([settled[0].value, settled[2].value, settled[4].value], ['a', 'b', 'c']);
  hasKind('host_function', /`greet` failed: Error: refused/)(settled[1].reason);
  hasKind('function_not_found', /`missing` not found/)(settled[3].reason);
  p.close();
});

test('close() fails the call in flight and the queued ones with kind closed', { skip }, async () => {
  const entered = gate();
  const greet = new HostFunction('greet', ['i64'], ['i64'], async () => {
    entered.open();
    await new Promise(() => {});
  });
  const p = await Plugin.load(plugin('host_greet'), { functions: [greet] });
  const calls = [p.call('call_greet', 'in flight'), p.call('call_greet', 'queued 1'), p.call('call_greet', 'queued 2')];
  await entered.opened;
  p.close();
  const settled = await Promise.allSettled(calls);
  hasKind('closed', /closed while the call awaited a host function/)(settled[0].reason);
  hasKind('closed', /closed while the call waited for the calls before it/)(settled[1].reason);
  hasKind('closed', /closed while the call waited for the calls before it/)(settled[2].reason);
  await assert.rejects(p.call('call_greet', 'later'), hasKind('closed', /the plug-in is closed/));
});

test('a call cancelled while it waits in the queue never runs', { skip }, async () => {
  const release = gate();
  const ran = [];
  const greet = new HostFunction('greet', ['i64'], ['i64'], async (c, [h]) => {
    ran.push(c.readString(h));
    await release.opened;
    return c.writeString('ok');
  });
  const p = await Plugin.load(plugin('host_greet'), { functions: [greet] });
  const first = p.callString('call_greet', 'first');
  const controller = new AbortController();
  const second = p.callString('call_greet', 'second', { signal: controller.signal });
  const third = p.callString('call_greet', 'third');
  controller.abort();
  await assert.rejects(second, hasKind('cancelled', /`call_greet` was cancelled while it waited for the calls before it, so it never ran/));
  release.open();
  assert.deepEqual([await first, await third], ['ok', 'ok']);
  assert.deepEqual(ran, ['first', 'third']);
  p.close();
});

test('a call cancelled while its async host function awaits rejects; the next call has a fresh instance, vars kept', { skip }, async () => {
  const entered = gate();
  const release = gate();
  const wait = new HostFunction('wait', [], [], async () => {
    entered.open();
    await release.opened;
  });
  const p = await Plugin.load(counterModule, { functions: [wait] });
  assert.deepEqual(await count(p), { n: 1, calls: 1 });
  assert.deepEqual(await count(p), { n: 2, calls: 2 });
  const controller = new AbortController();
  const waiting = p.call('wait', undefined, { signal: controller.signal });
  const queued = count(p);
  await entered.opened;
  controller.abort(new Error('the user left'));
  await assert.rejects(waiting, (e) => hasKind('cancelled', /cancelled while the plug-in awaited a host function; its instance was dropped.*\(its AbortSignal aborted: the user left\)/)(e) && e.cause.message === 'the user left');
  // The call queued behind it runs on a fresh instance: var n kept, the instance's count from 0.
  assert.deepEqual(await queued, { n: 3, calls: 1 });
  // The old instance, resumed now, may not touch the vars.
  release.open();
  await tick(10);
  assert.deepEqual(await count(p), { n: 4, calls: 2 });
  p.close();
});

test('an already-aborted signal fails the call at once, and it never runs', async () => {
  const signal = AbortSignal.abort();
  const sync = await Plugin.load(plugin('count_vowels'));
  await assert.rejects(sync.call('count_vowels', 'aaa', { signal }), isKind('cancelled', /`count_vowels` was cancelled before it was made/));
  await assert.rejects(sync.callJson('count_vowels', 'aaa', { signal }), isKind('cancelled', /cancelled/));
  assert.equal(JSON.parse(await sync.callString('count_vowels', 'a')).total, 1, 'the cancelled calls did not count');
  await assert.rejects(sync.call('count_vowels', 'a', { signal: 'soon' }), (e) => e instanceof TypeError && /must be an AbortSignal/.test(e.message));
  await assert.rejects(sync.call('count_vowels', 'a', { timeout: 5 }), (e) => e instanceof TypeError && /unknown call options timeout; the options are signal/.test(e.message));
  sync.close();
  const wait = new HostFunction('wait', [], [], () => {});
  const worker = await Plugin.load(counterModule, { functions: [wait], timeoutMs: 20_000 });
  await assert.rejects(count(worker, { signal }), isKind('cancelled', /before it was made/));
  assert.deepEqual(await count(worker), { n: 1, calls: 1 });
  worker.close();
});

test('an already-aborted signal fails a JSPI call at once', { skip }, async () => {
  const wait = new HostFunction('wait', [], [], async () => {});
  const p = await Plugin.load(counterModule, { functions: [wait] });
  await assert.rejects(count(p, { signal: AbortSignal.abort() }), isKind('cancelled', /before it was made/));
  assert.deepEqual(await count(p), { n: 1, calls: 1 });
  p.close();
});

test('in a worker, cancel terminates a looping call; the next call has a fresh worker, vars kept', async () => {
  const wait = new HostFunction('wait', [], [], () => {});
  const p = await Plugin.load(counterModule, { functions: [wait], timeoutMs: 600_000 });
  assert.deepEqual(await count(p), { n: 1, calls: 1 });
  assert.deepEqual(await count(p), { n: 2, calls: 2 });
  const controller = new AbortController();
  const spinning = p.call('spin', undefined, { signal: controller.signal });
  const queued = count(p);
  setTimeout(() => controller.abort(), 100);
  await assert.rejects(spinning, hasKind('cancelled', /`spin` was cancelled while it ran; its worker was terminated, and the next call starts a fresh instance, with the vars the last finished call left/));
  assert.deepEqual(await queued, { n: 3, calls: 1 });
  p.close();
});

test('vars survive a worker timeout: the fresh worker starts with the vars of the last finished call', async () => {
  const wait = new HostFunction('wait', [], [], () => {});
  const p = await Plugin.load(counterModule, { functions: [wait], timeoutMs: 1000 });
  assert.deepEqual(await count(p), { n: 1, calls: 1 });
  assert.deepEqual(await count(p), { n: 2, calls: 2 });
  await assert.rejects(p.call('spin'), hasKind('timeout', /`spin` did not finish within timeout_ms = 1000 ms.*with the vars the last finished call left/));
  // var n kept (2 + 1); the instance's own count starts again.
  assert.deepEqual(await count(p), { n: 3, calls: 1 });
  p.close();
});

test('in a worker, calls made while one runs wait their turn; close() fails them with kind closed', async () => {
  const entered = gate();
  const wait = new HostFunction('wait', [], [], async () => {
    entered.open();
    await new Promise(() => {});
  });
  const p = await Plugin.load(counterModule, { functions: [wait], timeoutMs: 600_000 });
  const waiting = p.call('wait');
  await entered.opened;
  // Made while a host function of the plug-in awaits, by code outside it: queued, not refused.
  const controller = new AbortController();
  const cancelledInQueue = count(p, { signal: controller.signal });
  const queued = [count(p), count(p)];
  controller.abort();
  await assert.rejects(cancelledInQueue, hasKind('cancelled', /never ran/));
  p.close();
  await assert.rejects(waiting, hasKind('closed', /closed during the call/));
  for (const q of queued) await assert.rejects(q, hasKind('closed', /closed while the call waited for the calls before it/));
});

test('an async host function calling its own plug-in is refused as reentrant, before or after an await', { skip }, async () => {
  let p;
  let after = false;
  const wait = new HostFunction('wait', [], [], async () => {
    if (after) await tick(1);
    await p.call('count');
  });
  p = await Plugin.load(counterModule, { functions: [wait] });
  await assert.rejects(p.call('wait'), isKind('reentrant', /re-entrant call of `count` refused/));
  // Node.js follows the host function's awaits (AsyncLocalStorage); a browser cannot (README: Calls).
  after = true;
  await assert.rejects(p.call('wait'), isKind('reentrant', /re-entrant call of `count` refused/));
  assert.deepEqual(await count(p), { n: 1, calls: 1 });
  p.close();
});

test('in a worker, a host function calling its own plug-in after an await is refused as reentrant', async () => {
  let p;
  const wait = new HostFunction('wait', [], [], async () => {
    await tick(1);
    await p.call('count');
  });
  p = await Plugin.load(counterModule, { functions: [wait], timeoutMs: 20_000 });
  await assert.rejects(p.call('wait'), hasKind('reentrant', /re-entrant call of `count` refused/));
  p.close();
});
