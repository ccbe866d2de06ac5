'use strict'
// One test per kind of failure: each is a PlinthError with the runtime's message, a kind and a
// code (the call's return code, or null outside calls).
const test = require('node:test')
const assert = require('node:assert/strict')
const { Plugin, PlinthError } = require('..')
const { pluginPath, pluginBytes, HOSTILE_WAT } = require('./helper')

function plinthError(kind, { code, message } = {}) {
  return (e) => {
    assert.ok(e instanceof PlinthError, `expected a PlinthError, got ${e}`)
    assert.ok(e instanceof Error)
    assert.equal(e.name, 'PlinthError')
    assert.equal(e.kind, kind, e.message)
    if (code !== undefined) assert.equal(e.code, code)
    if (message) assert.match(e.message, message)
    return true
  }
}

test('bad wasm', () => {
  assert.throws(() => new Plugin(Buffer.from('\0asm garbage')), plinthError('Compile', { code: null, message: /cannot compile/ }))
  assert.throws(() => new Plugin(Buffer.alloc(0)), PlinthError)
})

test('manifest with an unknown field', () => {
  assert.throws(
    () => new Plugin({ wasm: [{ path: pluginPath('count_vowels') }], extra: 1 }),
    plinthError('Manifest', { code: null, message: /extra/ }),
  )
  assert.throws(() => new Plugin({ wasm: [] }), plinthError('Manifest', { message: /no wasm modules/ }))
  assert.throws(() => new Plugin({ wasm: [{ path: '/no/such.wasm' }] }), plinthError('Manifest', { message: /no\/such\.wasm/ }))
})

test('missing plug-in file', () => {
  assert.throws(() => new Plugin('/no/such.wasm'), plinthError('Io', { code: null, message: /no\/such\.wasm/ }))
})

test('missing import', () => {
  assert.throws(() => new Plugin(pluginBytes('host_greet')), plinthError('Link', { message: /greet/ }))
})

test('missing function', async () => {
  const plugin = new Plugin(pluginBytes('count_vowels'))
  const missing = plinthError('FunctionNotFound', { code: -1, message: /not found/ })
  assert.throws(() => plugin.callSync('nope', 'x'), missing)
  await assert.rejects(plugin.call('nope', 'x'), missing)
  assert.equal(JSON.parse(plugin.callSync('count_vowels', 'aei')).count, 3, 'still usable')
  plugin.close()
})

test('trap', async () => {
  const plugin = new Plugin(HOSTILE_WAT)
  const trap = plinthError('Trap', { code: 134, message: /trapped in `boom`.*unreachable/s })
  assert.throws(() => plugin.callSync('boom'), trap)
  await assert.rejects(plugin.call('boom'), trap)
  assert.equal(plugin.callSync('ok').length, 0, 'a fresh instance replaces the trapped one')
  plugin.close()
})

test('guest error code', async () => {
  const plugin = new Plugin(pluginBytes('fail_with_code'))
  const failure = plinthError('Guest', { code: 42, message: /custom failure/ })
  await assert.rejects(plugin.call('fail_with_code', ''), failure)
  assert.throws(() => plugin.callSync('fail_with_code'), failure)
  plugin.close()
})

test('output that is not JSON', async () => {
  const plugin = new Plugin(pluginBytes('host_greet'), {
    functions: [new (require('..').HostFunction)('greet', ['i64'], ['i64'], (p) => p.writeString('not json'))],
  })
  await assert.rejects(plugin.callJson('call_greet', 'x'), plinthError('Convert', { message: /not valid JSON/ }))
  assert.throws(() => plugin.callJsonSync('call_greet', 'x'), (e) => e.kind === 'Convert' && e.cause instanceof SyntaxError)
  plugin.close()
})

test('PlinthError is exported and constructible', () => {
  const e = new PlinthError('boom', 'Other', null)
  assert.ok(e instanceof Error)
  assert.equal(e.code, null)
  assert.equal(e.kind, 'Other')
  assert.equal(e.message, 'boom')
})

// Timeout, out of memory, fuel and cancel are in limits.test.js; host function exceptions in
// host.test.js; closed plug-ins in plugin.test.js.
