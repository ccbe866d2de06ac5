import assert from 'node:assert/strict';
import { test } from 'node:test';
import { HostFunction, JSPI, MULTI_MEMORY, Plugin, ValType } from '../dist/index.js';
import { isKind, plugin, trapModule, unlinkedModule } from './helpers.mjs';

test('plug-ins loaded from the same bytes share the compiled module, not their state', async () => {
  const bytes = plugin('count_vowels');
  const [a, b] = [await Plugin.load(bytes), await Plugin.load(new Uint8Array(bytes))];
  // A different config on the same compiled module.
  const c = await Plugin.load(bytes, { config: { vowels: 'l' } });
  assert.equal(JSON.parse(await a.callString('count_vowels', 'aaa')).total, 3);
  assert.equal(JSON.parse(await a.callString('count_vowels', 'aaa')).total, 6);
  assert.equal(JSON.parse(await b.callString('count_vowels', 'aaa')).total, 3);
  assert.deepEqual(JSON.parse(await c.callString('count_vowels', 'Hello')), { count: 2, total: 2, vowels: 'l' });
  a.close();
  // A closed plug-in does not affect the others.
  assert.equal(JSON.parse(await b.callString('count_vowels', 'e')).total, 4);
  b.close();
  c.close();
});

test('count_vowels counts with the default vowels, config, and a var kept across calls', async () => {
  const p = await Plugin.load(plugin('count_vowels'));
  assert.deepEqual(JSON.parse(await p.callString('count_vowels')), { count: 0, total: 0, vowels: 'aeiouAEIOU' });
  assert.deepEqual(JSON.parse(await p.callString('count_vowels', 'Hello, World!')), { count: 3, total: 3, vowels: 'aeiouAEIOU' });
  assert.deepEqual(JSON.parse(await p.callString('count_vowels', 'aaa')), { count: 3, total: 6, vowels: 'aeiouAEIOU' });
  const bytes = await p.call('count_vowels', new TextEncoder().encode('e'));
  assert.ok(bytes instanceof Uint8Array);
  assert.equal(JSON.parse(new TextDecoder().decode(bytes)).total, 7);
  p.close();

  const custom = await Plugin.load({ wasm: [{ data: plugin('count_vowels') }], config: { vowels: 'l' } }, { config: { vowels: 'lo' } });
  assert.deepEqual(JSON.parse(await custom.callString('count_vowels', 'Hello')), { count: 3, total: 3, vowels: 'lo' });
});

test('a large input and output go through Extism memory intact', async () => {
  const p = await Plugin.load(plugin('count_vowels'));
  const text = 'ab'.repeat(300_000);
  assert.equal(JSON.parse(await p.callString('count_vowels', text)).count, 300_000);
  // The arena is reset between calls: a small call after a large one still works.
  assert.equal(JSON.parse(await p.callString('count_vowels', 'a')).count, 1);
});

test('vars over memory.max_var_bytes fail the call with var_store_full', async () => {
  const p = await Plugin.load({ wasm: [{ data: plugin('count_vowels') }], memory: { max_var_bytes: 4 } });
  await assert.rejects(p.call('count_vowels', 'aaa'), isKind('var_store_full', /max_var_bytes` = 4/));
});

test('the plug-in logs to the logger, unescaped, at or above logLevel', async () => {
  const lines = [];
  const p = await Plugin.load(plugin('count_vowels'), { logger: (level, message) => lines.push([level, message]), logLevel: 'debug' });
  await p.call('count_vowels', 'aa');
  assert.deepEqual(lines, [['debug', '2 vowels, 2 so far']]);
  const quiet = [];
  const q = await Plugin.load(plugin('count_vowels'), { logger: (level, message) => quiet.push([level, message]) });
  await q.call('count_vowels', 'aa');
  assert.deepEqual(quiet, []);
});

test('checkout gives the new-customer discount', async () => {
  const p = await Plugin.load(plugin('checkout'));
  assert.deepEqual(await p.callJson('before_checkout_finalize', { cart_total: 12000, is_new_customer: true, provided_email: true }), { discount_percent: 20 });
  assert.deepEqual(await p.callJson('before_checkout_finalize', { cart_total: 12000, is_new_customer: false, provided_email: true }), { discount_percent: 0 });
  assert.equal(p.functionExists('before_checkout_finalize'), true);
  assert.equal(p.functionExists('count_vowels'), false);
  assert.ok(!p.functions().some((f) => f.startsWith('__plinth')), p.functions().join());
});

test('an Extism-PDK plug-in runs unchanged', async () => {
  const p = await Plugin.load({ wasm: [{ data: plugin('extism_count_vowels') }], config: { vowels: 'aA' } });
  assert.deepEqual(JSON.parse(await p.callString('count_vowels', 'Banana')), { count: 3, total: 3, vowels: 'aA' });
  assert.deepEqual(JSON.parse(await p.callString('count_vowels', 'a')), { count: 1, total: 4, vowels: 'aA' });
});

test('a synchronous host function reads and writes through CurrentPlugin', async () => {
  const seen = [];
  const greet = new HostFunction('greet', [ValType.I64], [ValType.I64], (current, inputs, prefix) => {
    seen.push(typeof inputs[0]);
    return current.writeString(prefix + current.readString(inputs[0]));
  }, { userData: 'Hello, ' });
  const p = await Plugin.load(plugin('host_greet'), { functions: [greet] });
  assert.equal(await p.callString('call_greet', 'Ada'), 'Hello, Ada');
  assert.equal(await p.callString('call_greet', 'Grace'), 'Hello, Grace');
  assert.deepEqual(seen, ['bigint', 'bigint']);
});

test('a throwing host function fails the call with host_function and the cause', async () => {
  const boom = new TypeError('no such customer');
  const greet = new HostFunction('greet', ['i64'], ['i64'], () => { throw boom; });
  const p = await Plugin.load(plugin('host_greet'), { functions: [greet] });
  await assert.rejects(p.call('call_greet', 'Ada'), (e) => isKind('host_function', /host function `greet` failed: TypeError: no such customer/)(e) && e.cause === boom);
  // The instance is replaced: the next call works with a working function.
  const ok = new HostFunction('greet', ['i64'], ['i64'], (c, [h]) => c.writeString(c.readString(h).toUpperCase()));
  const q = await Plugin.load(plugin('host_greet'), { functions: [ok] });
  assert.equal(await q.callString('call_greet', 'ada'), 'ADA');
});

test('a CurrentPlugin kept past its callback refuses use', async () => {
  let kept;
  const greet = new HostFunction('greet', ['i64'], ['i64'], (c, [h]) => { kept = c; return c.writeString(c.readString(h)); });
  const p = await Plugin.load(plugin('host_greet'), { functions: [greet] });
  await p.call('call_greet', 'x');
  assert.equal(kept.valid, false);
  assert.throws(() => kept.writeString('late'), isKind('closed', /after its host function returned/));
});

test('a host function calling back into its plug-in is refused as reentrant', async () => {
  let p;
  const greet = new HostFunction('greet', ['i64'], ['i64'], (c) => { p.callSync('call_greet', 'again'); return c.writeString('no'); });
  p = await Plugin.load(plugin('host_greet'), { functions: [greet] });
  await assert.rejects(p.call('call_greet', 'x'), isKind('reentrant', /re-entrant call of `call_greet` refused/));
});

test('error_set fails the call with kind guest, the message and the code', async () => {
  const p = await Plugin.load(plugin('fail_with_code'));
  await assert.rejects(p.call('fail_with_code'), isKind('guest', /the plug-in failed in `fail_with_code` \(code 42\): custom failure/, 42));
});

test('a trap names the function, has code 134, and the next call gets a fresh instance', async () => {
  const p = await Plugin.load(trapModule);
  await assert.rejects(p.call('boom'), isKind('trap', /trapped in `boom`: unreachable/, 134));
  await assert.rejects(p.call('boom'), isKind('trap', /`boom`/, 134));
});

test('a missing export lists the exports there are', async () => {
  const p = await Plugin.load(plugin('count_vowels'));
  await assert.rejects(p.call('count_consonants', 'x'), isKind('function_not_found', /`count_consonants` not found.*count_vowels/));
  assert.equal(JSON.parse(await p.callString('count_vowels', 'a')).count, 1);
});

test('malformed wasm is a compile error', async () => {
  // Neither wasm nor a manifest: WAT to the core, whose parser says where it went wrong.
  await assert.rejects(Plugin.load(new TextEncoder().encode('not wasm at all')), isKind('compile', /cannot compile the plug-in `main`: [^]*<anon>:1:1[^]*is it a valid WebAssembly module or WAT text\?/));
  const cut = plugin('count_vowels').slice(0, 200);
  await assert.rejects(Plugin.load(cut), isKind('compile', /cannot compile the plug-in `main`/));
});

test('an import nothing provides is a link error naming it', async () => {
  await assert.rejects(Plugin.load(unlinkedModule), isKind('link', /imports function `missing` from `extism:host\/user`/));
});

let declaredPages;

test('memory.max_pages refuses a plug-in that declares more', async () => {
  await assert.rejects(Plugin.load({ wasm: [{ data: plugin('count_vowels') }], memory: { max_pages: 2 } }), (e) => {
    isKind('out_of_memory', /memory 0 declares a minimum of \d+ pages, more than memory.max_pages = 2/)(e);
    declaredPages = Number(/minimum of (\d+) pages/.exec(e.message)[1]);
    return true;
  });
});

test('memory.max_pages caps Extism memory: an input past the budget is out_of_memory', async () => {
  const pages = declaredPages;
  assert.ok(pages > 2, 'the previous test found the declared size');
  const p = await Plugin.load({ wasm: [{ data: plugin('count_vowels') }], memory: { max_pages: pages + 3 } });
  assert.equal(JSON.parse(await p.callString('count_vowels', 'a')).count, 1);
  await assert.rejects(p.call('count_vowels', 'a'.repeat(8 << 20)), isKind('out_of_memory', /max_pages/));
});

test('http_request: a host outside allowed_hosts is denied', async () => {
  // Sent requests: test/jspi.test.mjs (with JSPI, and in a worker without it).
  const denied = await Plugin.load(plugin('http_fetch'));
  await assert.rejects(denied.call('http_get', 'https://example.com/'), isKind('http_denied', /example\.com/));
  denied.close();
});

test('a closed plug-in refuses calls', async () => {
  const p = await Plugin.load(plugin('count_vowels'));
  p.close();
  p.close();
  await assert.rejects(p.call('count_vowels', 'a'), isKind('closed', /closed/));
});

test('bulk copies, direct input and direct output (echo_bulk) carry bytes exactly', async () => {
  const reflect = new HostFunction('reflect', ['i64'], ['i64'], (c, [h]) => c.writeBytes(c.readBytes(h).reverse()));
  for (const name of ['echo_bulk', 'echo']) {
    const p = await Plugin.load(plugin(name), { functions: [reflect] });
    const big = new Uint8Array(3 << 20).map((_, i) => (i * 7) & 0xff);
    assert.deepEqual(await p.call('echo', big), big, name);
    assert.deepEqual(await p.call('echo', 'x'), new TextEncoder().encode('x'), `${name}: a short input after a long one`);
    assert.deepEqual(await p.call('echo'), new Uint8Array(0), name);
    assert.deepEqual(await p.call('empty', 'ignored'), new Uint8Array(0), name);
    assert.equal(await p.callString('reflect', 'abc'), 'cba', name);
    assert.ok(!p.functions().includes('plinth_input_buffer'), p.functions().join());
  }
});

test('the hot ABI calls are fused exactly when the engine has multi-memory', async () => {
  const p = await Plugin.load(plugin('count_vowels'));
  assert.equal(p.fused, MULTI_MEMORY, `multi-memory: ${MULTI_MEMORY}`);
  assert.equal(JSON.parse(await p.callString('count_vowels', 'aei')).count, 3);
  const unfused = await Plugin.load(trapModule);
  assert.equal(unfused.fused, false, 'a module without ABI imports is left as it is');
});

test('a streaming plug-in is refused at load, saying streams are not done', async () => {
  // Its prepared (stream-linked) form is also fused, which needs multi-memory to compile.
  const expected = MULTI_MEMORY ? isKind('link', /streams its input or output/) : isKind('compile', /multi-memory/);
  await assert.rejects(Plugin.load(plugin('stream_filter')), expected);
});
