'use strict'
// One test per kind of failure: each is a PlinthError with the runtime's message, its kind name
// and number (plinth::ErrorKind) and the Extism return code (-1 for every failure that is not
// the plug-in's own). tests/conformance (conformance.test.js) checks the same across SDKs.
const test = require('node:test')
const assert = require('node:assert/strict')
const { Plugin, PlinthError } = require('..')
const { pluginPath, pluginBytes, HOSTILE_WAT } = require('./helper')

// plinth::ErrorKind's numbers, which never change.
const KIND_CODES = { manifest: 1, compile: 2, link: 4, function_not_found: 5, trap: 7, guest: 8, convert: 20, other: 24 }

function plinthError(kind, { code, message } = {}) {
  return (e) => {
    assert.ok(e instanceof PlinthError, `expected a PlinthError, got ${e}`)
    assert.ok(e instanceof Error)
    assert.equal(e.name, 'PlinthError')
    assert.equal(e.kind, kind, e.message)
    assert.equal(e.kindCode, KIND_CODES[kind], `kindCode of ${kind}`)
    if (code !== undefined) assert.equal(e.code, code)
    if (message) assert.match(e.message, message)
    return true
  }
}

test('bad wasm', () => {
  assert.throws(() => new Plugin(Buffer.from('\0asm garbage')), plinthError('compile', { code: -1, message: /cannot compile/ }))
  assert.throws(() => new Plugin(Buffer.alloc(0)), PlinthError)
})

test('manifest with an unknown field', () => {
  assert.throws(
    () => new Plugin({ wasm: [{ path: pluginPath('count_vowels') }], extra: 1 }),
    plinthError('manifest', { code: -1, message: /extra/ }),
  )
  assert.throws(() => new Plugin({ wasm: [] }), plinthError('manifest', { message: /no wasm modules/ }))
  assert.throws(() => new Plugin({ wasm: [{ path: '/no/such.wasm' }] }), plinthError('manifest', { message: /no\/such\.wasm/ }))
})

test('missing plug-in file', () => {
  assert.throws(() => new Plugin('/no/such.wasm'), plinthError('manifest', { code: -1, message: /no\/such\.wasm/ }))
})

test('missing import', () => {
  assert.throws(() => new Plugin(pluginBytes('host_greet')), plinthError('link', { message: /greet/ }))
})

test('missing function', async () => {
  const plugin = new Plugin(pluginBytes('count_vowels'))
  const missing = plinthError('function_not_found', { code: -1, message: /not found/ })
  assert.throws(() => plugin.callSync('nope', 'x'), missing)
  await assert.rejects(plugin.call('nope', 'x'), missing)
  assert.equal(JSON.parse(plugin.callSync('count_vowels', 'aei')).count, 3, 'still usable')
  plugin.close()
})

test('trap', async () => {
  const plugin = new Plugin(HOSTILE_WAT)
  const trap = plinthError('trap', { code: 134, message: /trapped in `boom`.*unreachable/s })
  assert.throws(() => plugin.callSync('boom'), trap)
  await assert.rejects(plugin.call('boom'), trap)
  assert.equal(plugin.callSync('ok').length, 0, 'a fresh instance replaces the trapped one')
  plugin.close()
})

test('guest error code', async () => {
  const plugin = new Plugin(pluginBytes('fail_with_code'))
  const failure = plinthError('guest', { code: 42, message: /custom failure/ })
  await assert.rejects(plugin.call('fail_with_code', ''), failure)
  assert.throws(() => plugin.callSync('fail_with_code'), failure)
  plugin.close()
})

test('output that is not JSON', async () => {
  const plugin = new Plugin(pluginBytes('host_greet'), {
    functions: [new (require('..').HostFunction)('greet', ['i64'], ['i64'], (p) => p.writeString('not json'))],
  })
  await assert.rejects(plugin.callJson('call_greet', 'x'), plinthError('convert', { message: /not valid JSON/ }))
  assert.throws(() => plugin.callJsonSync('call_greet', 'x'), (e) => e.kind === 'convert' && e.cause instanceof SyntaxError)
  plugin.close()
})

test('PlinthError is exported and constructible', () => {
  const e = new PlinthError('boom', 'other')
  assert.ok(e instanceof Error)
  assert.equal(e.code, -1)
  assert.equal(e.kind, 'other')
  assert.equal(e.kindCode, 24)
  assert.equal(e.message, 'boom')
  const trap = new PlinthError('trapped', 'trap', 134, new Error('why'))
  assert.deepEqual([trap.kind, trap.kindCode, trap.code, trap.cause.message], ['trap', 7, 134, 'why'])
})

test('the PlinthErrorKind type in index.d.ts lists the runtime\'s kinds, numbered in order', () => {
  const dts = require('node:fs').readFileSync(require.resolve('../index.d.ts'), 'utf8')
  const type = dts.slice(dts.indexOf('export type PlinthErrorKind'), dts.indexOf('export declare class PlinthError'))
  const listed = [...type.matchAll(/\/\*\* (\d+): .*\*\/\n  \| '(\w+)'/g)].map((m) => [Number(m[1]), m[2]])
  assert.ok(listed.length >= 24, `only ${listed.length} kinds in index.d.ts`)
  assert.deepEqual(listed.map(([number]) => number), listed.map((_, i) => i + 1), 'numbered 1, 2, 3 ...')
  for (const [number, name] of listed) assert.equal(new PlinthError('', name).kindCode, number, name)
  // The runtime's own list (what index.js numbers kinds by): a new kind must be added to the type.
  assert.deepEqual(listed.map(([, name]) => name), require('../binding.js').__errorKinds())
})

// Timeout, out of memory, fuel and cancel are in limits.test.js; host function exceptions in
// host.test.js; closed plug-ins in plugin.test.js.
