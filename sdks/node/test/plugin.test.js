'use strict'
const test = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { Plugin, CompiledPlugin, PlinthError, version } = require('..')
const { pluginPath, pluginBytes, HOSTILE_WAT, json, gc, sleep } = require('./helper')

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

test('version', () => {
  assert.match(version(), /^\d+\.\d+\.\d+/)
})

test('loads from bytes, a path, a manifest object and manifest JSON', async () => {
  const bytes = pluginBytes('count_vowels')
  const sources = {
    buffer: bytes,
    uint8array: new Uint8Array(bytes),
    path: pluginPath('count_vowels'),
    manifestPath: { wasm: [{ path: pluginPath('count_vowels') }] },
    manifestData: { wasm: [{ data: bytes }] },
    manifestBase64: { wasm: [{ data: bytes.toString('base64') }] },
    manifestJson: Buffer.from(JSON.stringify({ wasm: [{ path: pluginPath('count_vowels') }] })),
  }
  for (const [how, source] of Object.entries(sources)) {
    const plugin = new Plugin(source)
    assert.equal(json(await plugin.call('count_vowels', 'Hello, world')).count, 3, how)
    assert.equal(json(plugin.callSync('count_vowels', 'Hello, world')).count, 3, how)
    assert.match(plugin.id, UUID)
    plugin.close()
  }
})

test('a manifest file keeps its relative paths', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'plinth-node-'))
  fs.copyFileSync(pluginPath('count_vowels'), path.join(dir, 'cv.wasm'))
  fs.writeFileSync(path.join(dir, 'plugin.json'), JSON.stringify({ wasm: [{ path: 'cv.wasm' }], config: { vowels: 'l' } }))
  const plugin = new Plugin(path.join(dir, 'plugin.json'))
  assert.equal(json(plugin.callSync('count_vowels', 'Hello, world')).count, 3)
  plugin.close()
  fs.rmSync(dir, { recursive: true })
})

test('Plugin.load and CompiledPlugin.load work off the main thread', async () => {
  const plugin = await Plugin.load({ wasm: [{ path: pluginPath('count_vowels') }] })
  assert.ok(plugin instanceof Plugin)
  assert.equal(json(await plugin.call('count_vowels', 'aaa')).count, 3)
  plugin.close()
  const compiled = await CompiledPlugin.load(pluginBytes('count_vowels'))
  assert.ok(compiled instanceof CompiledPlugin)
  const p = compiled.instance()
  assert.equal(json(p.callSync('count_vowels', 'ee')).count, 2)
  p.close()
  await assert.rejects(Plugin.load(Buffer.from('\0asm garbage')), (e) => e instanceof PlinthError && e.kind === 'compile')
})

test('output is a Buffer; callString returns a string', async () => {
  const plugin = new Plugin(pluginBytes('count_vowels'))
  const out = await plugin.call('count_vowels', Buffer.from('aaa'))
  assert.ok(Buffer.isBuffer(out))
  assert.equal(json(out).count, 3)
  assert.equal(typeof (await plugin.callString('count_vowels', 'a')), 'string')
  assert.equal(JSON.parse(plugin.callStringSync('count_vowels', 'a')).count, 1)
  assert.equal(json(plugin.callSync('count_vowels')).count, 0, 'no input is empty input')
  plugin.close()
})

test('callJson with the checkout plug-in', async () => {
  const plugin = new Plugin({ wasm: [{ path: pluginPath('checkout') }] })
  const cart = { cart_total: 12000, is_new_customer: true, provided_email: true }
  assert.deepEqual(await plugin.callJson('before_checkout_finalize', cart), { discount_percent: 20.0 })
  const returning = plugin.callJsonSync('before_checkout_finalize', { ...cart, is_new_customer: false })
  assert.equal(returning.discount_percent, 0.0)
  plugin.close()
})

test('count_vowels keeps a running total; config updates take effect', async () => {
  const plugin = new Plugin(pluginBytes('count_vowels'))
  const first = json(await plugin.call('count_vowels', 'Hello, world'))
  assert.deepEqual([first.count, first.total], [3, 3])
  assert.equal(json(plugin.callSync('count_vowels', 'aaa')).total, 6)
  const third = json(await plugin.call('count_vowels', 'Hello, world'))
  assert.equal(third.count, 3)
  assert.equal(third.total, 9, 'the var `total` carries over between calls')

  plugin.updateConfig({ vowels: 'o' })
  let out = json(await plugin.call('count_vowels', 'Hello, world'))
  assert.equal(out.count, 2)
  assert.equal(out.vowels, 'o')

  plugin.updateConfig({ vowels: null }) // null removes the key: back to the default vowels
  out = json(await plugin.call('count_vowels', 'Hello, world'))
  assert.equal(out.count, 3)
  assert.equal(out.vowels, 'aeiouAEIOU')

  plugin.updateConfig({ vowels: 1 })
  assert.equal(json(plugin.callSync('count_vowels', 'a1b1')).count, 2, 'numbers become strings')
  assert.throws(() => plugin.updateConfig({ vowels: {} }), TypeError)
  plugin.close()
})

test('config from the manifest', () => {
  const plugin = new Plugin({ wasm: [{ path: pluginPath('count_vowels') }], config: { vowels: 'l' } })
  assert.equal(json(plugin.callSync('count_vowels', 'Hello, world')).count, 3)
  plugin.close()
})

test('functionExists and functions', () => {
  const plugin = new Plugin(pluginBytes('count_vowels'))
  assert.equal(plugin.functionExists('count_vowels'), true)
  assert.equal(plugin.functionExists('nope'), false)
  assert.ok(plugin.functions().includes('count_vowels'))
  plugin.close()
})

test('reset frees memory and keeps the plug-in usable', () => {
  const plugin = new Plugin(pluginBytes('count_vowels'))
  plugin.callSync('count_vowels', 'a')
  plugin.reset()
  assert.equal(json(plugin.callSync('count_vowels', 'a')).count, 1)
  plugin.close()
})

test('WAT source, and WASI on', () => {
  const wat = new Plugin(HOSTILE_WAT)
  assert.equal(wat.callSync('ok').length, 0)
  wat.close()
  const wasi = new Plugin(pluginBytes('count_vowels'), { wasi: true })
  assert.equal(json(wasi.callSync('count_vowels', 'a')).count, 1)
  wasi.close()
})

test('WASI files through allowed_paths', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'plinth-node-wasi-'))
  fs.writeFileSync(path.join(dir, 'notes.txt'), 'hello from the host')
  const plugin = new Plugin({ wasm: [{ path: pluginPath('wasi_files') }], allowed_paths: { [dir]: '/data' } }, { wasi: true })
  assert.equal(await plugin.callString('copy_file', '/data/notes.txt'), '/data/notes.txt.out')
  assert.equal(fs.readFileSync(path.join(dir, 'notes.txt.out'), 'utf8'), 'hello from the host')
  await assert.rejects(plugin.call('copy_file', '/etc/passwd'), (e) => e.kind === 'guest' && /cannot read/.test(e.message))
  plugin.close()
  fs.rmSync(dir, { recursive: true })
})

test('close is idempotent; a closed plug-in fails clearly', async () => {
  const plugin = new Plugin(pluginBytes('count_vowels'))
  assert.equal(plugin.closed, false)
  plugin.close()
  plugin.close()
  assert.equal(plugin.closed, true)
  const closed = (e) => e instanceof PlinthError && e.kind === 'closed' && /closed/.test(e.message)
  assert.throws(() => plugin.callSync('count_vowels', 'a'), closed)
  await assert.rejects(plugin.call('count_vowels', 'a'), closed)
  assert.throws(() => plugin.functionExists('count_vowels'), closed)
  assert.throws(() => plugin.updateConfig({ a: 'b' }), closed)
  assert.throws(() => plugin.reset(), closed)
  assert.equal(plugin.cancel(), false)
})

test('close during a running call frees the plug-in when the call ends', async () => {
  const plugin = new Plugin({ wasm: [{ data: HOSTILE_WAT }], timeout_ms: 200 })
  const running = plugin.call('spin')
  await sleep(20)
  plugin.close()
  await assert.rejects(running, (e) => e.kind === 'timeout')
  await assert.rejects(plugin.call('ok'), (e) => e.kind === 'closed')
})

test('distinct ids', () => {
  const a = new Plugin(HOSTILE_WAT)
  const b = new Plugin(HOSTILE_WAT)
  assert.notEqual(a.id, b.id)
  a.close()
  b.close()
})

test('unreferenced plug-ins are freed by the garbage collector', async () => {
  const registry = new FinalizationRegistry(() => freed++)
  let freed = 0
  for (let i = 0; i < 50; i++) {
    const p = new Plugin(HOSTILE_WAT)
    p.callSync('ok')
    registry.register(p, i)
  }
  for (let i = 0; i < 10 && freed < 50; i++) {
    gc()
    await sleep(10)
  }
  assert.ok(freed > 0, 'no plug-in was collected')
})

test('CompiledPlugin makes independent instances', () => {
  const compiled = new CompiledPlugin(pluginBytes('count_vowels'))
  assert.equal(compiled.functionExists('count_vowels'), true)
  const a = compiled.instance()
  const b = compiled.instance()
  compiled.close()
  compiled.close()
  a.callSync('count_vowels', 'aaa')
  assert.equal(json(a.callSync('count_vowels', 'aaa')).total, 6)
  assert.equal(json(b.callSync('count_vowels', 'aaa')).total, 3, 'instances have their own vars')
  assert.throws(() => compiled.instance(), (e) => e instanceof PlinthError && e.kind === 'closed')
  a.close()
  b.close()
  assert.throws(() => new CompiledPlugin(Buffer.from('not wasm')), PlinthError)
})

test('argument checks', () => {
  assert.throws(() => new Plugin(42), TypeError)
  assert.throws(() => new Plugin(HOSTILE_WAT, { fuel_limit: 10 }), /unknown plug-in option `fuel_limit`/)
  assert.throws(() => new Plugin(HOSTILE_WAT, { wasi: 'yes' }), TypeError)
  assert.throws(() => new Plugin(HOSTILE_WAT, { fuelLimit: -1 }), TypeError)
  const plugin = new Plugin(HOSTILE_WAT)
  assert.throws(() => plugin.callSync('ok', 42), TypeError)
  assert.throws(() => plugin.callSync('ok', '', { context: 1 }), /unknown call option/)
  plugin.close()
})

test('plug-ins and host functions work in worker threads', async () => {
  const { Worker } = require('node:worker_threads')
  const source = `
    const { parentPort, workerData } = require('node:worker_threads')
    const { Plugin, HostFunction, PlinthError } = require(workerData.sdk)
    const fn = new HostFunction('greet', ['i64'], ['i64'], (cp, [h]) => cp.writeString('w:' + cp.readString(h)))
    const p = new Plugin(require('fs').readFileSync(workerData.wasm), { functions: [fn] })
    ;(async () => {
      const out = [await p.callString('call_greet', 'a'), p.callStringSync('call_greet', 'b')]
      try { p.callSync('nope') } catch (e) { out.push(e instanceof PlinthError && e.kind) }
      p.close()
      parentPort.postMessage(out)
    })()`
  const results = await Promise.all([1, 2].map(() => new Promise((resolve, reject) => {
    const w = new Worker(source, { eval: true, workerData: { sdk: require.resolve('..'), wasm: pluginPath('host_greet') } })
    w.once('message', resolve)
    w.once('error', reject)
  })))
  assert.deepEqual(results, [['w:a', 'w:b', 'function_not_found'], ['w:a', 'w:b', 'function_not_found']])
})
