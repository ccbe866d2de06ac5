'use strict'
const test = require('node:test')
const assert = require('node:assert/strict')
const { Plugin, PlinthError } = require('..')
const { pluginPath, pluginBytes, HOSTILE_WAT, json, sleep } = require('./helper')

const kind = (k, re) => (e) => e instanceof PlinthError && e.kind === k && (!re || re.test(e.message))

test('a timeout stops an endless loop, and the plug-in works afterwards', async () => {
  const plugin = new Plugin({ wasm: [{ data: HOSTILE_WAT }], timeout_ms: 100 })
  let started = Date.now()
  await assert.rejects(plugin.call('spin'), (e) => kind('timeout', /timed out/)(e) && e.code === -1)
  assert.ok(Date.now() - started < 5000, 'stopped near the 100 ms limit')
  started = Date.now()
  assert.throws(() => plugin.callSync('spin'), kind('timeout'))
  assert.ok(Date.now() - started < 5000)
  assert.equal((await plugin.call('ok')).length, 0)
  plugin.close()
})

test('the event loop keeps running during a long call', async () => {
  const plugin = new Plugin({ wasm: [{ data: HOSTILE_WAT }], timeout_ms: 300 })
  let ticks = 0
  const ticker = setInterval(() => ticks++, 10)
  await assert.rejects(plugin.call('spin'), kind('timeout'))
  clearInterval(ticker)
  assert.ok(ticks >= 5, `only ${ticks} timer ticks during a 300 ms call`)
  plugin.close()
})

test('memory.max_pages stops growth', async () => {
  const plugin = new Plugin({ wasm: [{ data: HOSTILE_WAT }], memory: { max_pages: 4 } })
  await assert.rejects(plugin.call('grow'), (e) => kind('out_of_memory', /max_pages/)(e) && e.code === -1)
  assert.throws(() => plugin.callSync('grow'), kind('out_of_memory'))
  assert.equal(plugin.callSync('ok').length, 0, 'the plug-in works after running out of memory')
  plugin.close()
})

test('memory.max_pages covers the input', async () => {
  const plugin = new Plugin({ wasm: [{ path: pluginPath('count_vowels') }], memory: { max_pages: 40 } })
  await assert.rejects(plugin.call('count_vowels', Buffer.alloc(4 << 20, 'a')), kind('out_of_memory'))
  assert.equal(json(await plugin.call('count_vowels', 'a')).count, 1)
  plugin.close()
})

test('fuelLimit caps the work of each call', async () => {
  for (const fuelLimit of [10000, 10000n]) {
    const plugin = new Plugin(HOSTILE_WAT, { fuelLimit })
    await assert.rejects(plugin.call('spin'), (e) => kind('out_of_fuel', /fuel/)(e) && e.code === -1)
    assert.equal(plugin.callSync('ok').length, 0)
    plugin.close()
  }
  const counting = new Plugin(pluginBytes('count_vowels'), { fuelLimit: 50_000_000 })
  assert.equal(json(counting.callSync('count_vowels', 'aaa')).count, 3, 'enough fuel for real work')
  counting.close()
})

test('cancel stops a running async call', async () => {
  const plugin = new Plugin(HOSTILE_WAT)
  const started = Date.now()
  const running = plugin.call('spin')
  // Keep cancelling until the call ends: a cancel may land before the call starts.
  const canceller = setInterval(() => plugin.cancel(), 20)
  await assert.rejects(running, (e) => kind('cancelled', /cancelled/)(e) && e.code === -1)
  clearInterval(canceller)
  assert.ok(Date.now() - started < 5000)
  assert.equal((await plugin.call('ok')).length, 0)
  plugin.close()
})

test('a CancelHandle works from a timer and stops working after close', async () => {
  const plugin = new Plugin(HOSTILE_WAT)
  const handle = plugin.cancelHandle()
  const running = plugin.call('spin')
  const canceller = setInterval(() => handle.cancel(), 20)
  await assert.rejects(running, kind('cancelled'))
  clearInterval(canceller)
  assert.equal(handle.cancel(), true)
  plugin.close()
  assert.equal(handle.cancel(), false)
})

test('overlapping calls on one plug-in take turns', async () => {
  const plugin = new Plugin(pluginBytes('count_vowels'))
  const calls = []
  for (let i = 0; i < 100; i++) calls.push(plugin.call('count_vowels', 'ae'))
  const outs = (await Promise.all(calls)).map((o) => json(o).total)
  assert.deepEqual([...outs].sort((a, b) => a - b), Array.from({ length: 100 }, (_, i) => 2 * (i + 1)))
  assert.equal(json(plugin.callSync('count_vowels', 'ae')).total, 202)
  plugin.close()
})

test('callSync, updateConfig and reset do not wait for a running call', async () => {
  const plugin = new Plugin({ wasm: [{ data: HOSTILE_WAT }], timeout_ms: 300 })
  const running = plugin.call('spin')
  await sleep(30)
  assert.throws(() => plugin.callSync('ok'), kind('busy'))
  assert.throws(() => plugin.updateConfig({ a: 'b' }), kind('busy'))
  assert.throws(() => plugin.reset(), kind('busy'))
  await assert.rejects(running, kind('timeout'))
  assert.equal(plugin.callSync('ok').length, 0)
  plugin.close()
})

test('calls on different plug-ins run in parallel', async () => {
  const a = new Plugin({ wasm: [{ data: HOSTILE_WAT }], timeout_ms: 400 })
  const b = new Plugin({ wasm: [{ data: HOSTILE_WAT }], timeout_ms: 400 })
  const started = Date.now()
  const results = await Promise.allSettled([a.call('spin'), b.call('spin')])
  assert.deepEqual(results.map((r) => r.reason.kind), ['timeout', 'timeout'])
  assert.ok(Date.now() - started < 700, `two 400 ms calls took ${Date.now() - started} ms`)
  a.close()
  b.close()
})

test('HTTP: a plug-in fetches from a server in this process while call() runs', async () => {
  const http = require('node:http')
  const server = http.createServer((req, res) => res.end(`served ${req.url}`)).listen(0, '127.0.0.1')
  await new Promise((resolve) => server.once('listening', resolve))
  const url = `http://127.0.0.1:${server.address().port}/cart`
  try {
    // The event loop answers the plug-in's request while the call runs on a worker thread.
    const allowed = new Plugin({ wasm: [{ path: pluginPath('http_fetch') }], allowed_hosts: ['127.0.0.1'] })
    assert.equal(await allowed.callString('http_get', url), 'served /cart')
    allowed.close()
    const denied = new Plugin({ wasm: [{ path: pluginPath('http_fetch') }] })
    await assert.rejects(denied.call('http_get', url), (e) => kind('http_denied', /allowed_hosts/)(e) && e.code === -1)
    denied.close()
  } finally {
    server.close()
  }
})
