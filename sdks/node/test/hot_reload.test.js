'use strict'
// HotPlugin: a plug-in file rewritten while JavaScript calls it.
const test = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { HotPlugin, HostFunction, PlinthError } = require('..')

// WAT text of a plug-in whose `which` outputs the digit `n`, and whose `read` outputs the var
// named by its input. `extra` adds definitions.
function version(n, extra = '') {
  return `
(module
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "store_u8" (func $store_u8 (param i64 i32)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
  (import "extism:host/env" "input_offset" (func $input_offset (result i64)))
  (import "extism:host/env" "length" (func $length (param i64) (result i64)))
  (import "extism:host/env" "var_get" (func $var_get (param i64) (result i64)))
  (memory 1)
  (func (export "which") (result i32) (local $h i64)
    (local.set $h (call $alloc (i64.const 1)))
    (call $store_u8 (local.get $h) (i32.const ${48 + n}))
    (call $output_set (local.get $h) (i64.const 1))
    (i32.const 0))
  (func (export "read") (result i32) (local $h i64)
    (local.set $h (call $var_get (call $input_offset)))
    (call $output_set (local.get $h) (call $length (local.get $h)))
    (i32.const 0))
  ${extra})
`
}

// A plug-in whose `run` passes its input through the host function `greet` `times` times.
function greeting(times) {
  let h = '(call $input_offset)'
  for (let i = 0; i < times; i++) h = `(call $greet ${h})`
  return `
(module
  (import "extism:host/user" "greet" (func $greet (param i64) (result i64)))
  (import "extism:host/env" "input_offset" (func $input_offset (result i64)))
  (import "extism:host/env" "length" (func $length (param i64) (result i64)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
  (memory 1)
  (func (export "run") (result i32) (local $h i64)
    (local.set $h ${h})
    (call $output_set (local.get $h) (call $length (local.get $h))) (i32.const 0)))
`
}

function modFile(t, text) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'plinth-hot-'))
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }))
  const file = path.join(dir, 'mod.wat')
  fs.writeFileSync(file, text)
  return file
}

function bracket() {
  return new HostFunction('greet', ['i64'], ['i64'], (p, [h]) => p.writeString(`<${p.readString(h)}>`))
}

test('a changed file is swapped in by check(), with the vars', async (t) => {
  const file = modFile(t, version(1))
  const hot = new HotPlugin(file, { checkIntervalMs: null })
  t.after(() => hot.close())
  assert.equal(hot.path, file)
  assert.equal(hot.generation, 1)
  assert.equal(hot.callStringSync('which'), '1')
  hot.varSet('score', '42')
  assert.deepEqual(hot.check(), { kind: 'unchanged' })

  fs.writeFileSync(file, version(2))
  assert.equal(hot.callStringSync('which'), '1', 'no check without an interval')
  assert.deepEqual(hot.check(), { kind: 'swapped', generation: 2 })
  assert.equal(hot.generation, 2)
  assert.equal(hot.lastError, null)
  assert.equal(await hot.callString('which'), '2')
  assert.deepEqual(hot.varGet('score'), Buffer.from('42'))
  assert.equal(hot.callStringSync('read', 'score'), '42', 'the new code reads the old vars')
  assert.equal(hot.varGet('missing'), null)
  assert.equal(hot.callJsonSync('which'), 2)
  assert.equal(await hot.callJson('which'), 2)

  // reload() compiles the same bytes again.
  assert.deepEqual(hot.reload(), { kind: 'swapped', generation: 3 })
  assert.equal(hot.callStringSync('read', 'score'), '42')
})

test('a bad version keeps the old code and says why; a good one then loads', async (t) => {
  const file = modFile(t, version(1))
  const hot = new HotPlugin(file, { checkIntervalMs: null, requireExports: ['which'] })
  t.after(() => hot.close())

  fs.writeFileSync(file, '(module (func (export "which")') // cut short
  const garbage = hot.check()
  assert.equal(garbage.kind, 'failed')
  assert.ok(garbage.error instanceof PlinthError)
  assert.equal(garbage.error.kind, 'compile')
  assert.equal(hot.lastError.kind, 'compile')
  assert.equal(hot.lastError.message, garbage.error.message)
  assert.equal(hot.generation, 1)
  assert.equal(await hot.callString('which'), '1')
  assert.deepEqual(hot.check(), { kind: 'unchanged' }, 'the same bytes are not tried again')

  fs.writeFileSync(file, '(module (memory 1) (func (export "other") (result i32) (i32.const 0)))')
  const missing = hot.check()
  assert.equal(missing.kind, 'failed')
  assert.equal(missing.error.kind, 'function_not_found')
  assert.match(missing.error.message, /which/)
  assert.equal(hot.lastError.kind, 'function_not_found')
  assert.equal(hot.callStringSync('which'), '1')
  assert.equal(hot.functionExists('other'), false)

  fs.writeFileSync(file, version(3))
  assert.deepEqual(hot.check(), { kind: 'swapped', generation: 2 })
  assert.equal(hot.lastError, null)
  assert.equal(hot.callStringSync('which'), '3')
  assert.ok(hot.functionExists('read'))
  assert.deepEqual(hot.functions().sort(), ['read', 'which'])
})

test('the first load fails as new Plugin() does, and options are checked', (t) => {
  const file = modFile(t, '(module (memory 1))')
  assert.throws(() => new HotPlugin(file, { requireExports: ['which'] }),
    (e) => e instanceof PlinthError && e.kind === 'function_not_found')
  assert.throws(() => new HotPlugin(path.join(path.dirname(file), 'nothing.wasm')),
    (e) => e instanceof PlinthError && e.kind === 'manifest')
  assert.throws(() => new HotPlugin(file, { checkIntervalMs: -1 }), TypeError)
  assert.throws(() => new HotPlugin(file, { checkIntervalMs: '10' }), TypeError)
  assert.throws(() => new HotPlugin(file, { requireExports: [1] }), TypeError)
  assert.throws(() => new HotPlugin(file, { checkInterval: 0 }), /unknown HotPlugin option `checkInterval`/)
  const slow = new HostFunction('greet', ['i64'], ['i64'], async (_p, [h]) => h)
  assert.throws(() => new HotPlugin(file, { functions: [slow] }),
    (e) => e instanceof PlinthError && /async/.test(e.message))
})

test('with checkIntervalMs: 0 every call checks first', async (t) => {
  const file = modFile(t, version(1))
  const hot = new HotPlugin(file, { checkIntervalMs: 0 })
  t.after(() => hot.close())
  assert.equal(hot.callStringSync('which'), '1')
  fs.writeFileSync(file, version(2))
  assert.equal(await hot.callString('which'), '2')
  assert.equal(hot.generation, 2)
  fs.writeFileSync(file, version(3))
  assert.equal(hot.callStringSync('which'), '3')
  fs.writeFileSync(file, 'not wasm')
  assert.equal(hot.callStringSync('which'), '3', 'a failed reload in a call runs the old code')
  assert.equal(hot.lastError.kind, 'compile')
  assert.equal(hot.generation, 3)
})

test('host functions keep working after a reload, in sync and worker calls', async (t) => {
  const file = modFile(t, greeting(1))
  const hot = new HotPlugin(file, { checkIntervalMs: null, functions: [bracket()] })
  t.after(() => hot.close())
  assert.equal(hot.callStringSync('run', 'x'), '<x>')
  assert.equal(await hot.callString('run', 'x'), '<x>')
  fs.writeFileSync(file, greeting(2))
  assert.equal(hot.check().kind, 'swapped')
  assert.equal(hot.callStringSync('run', 'x'), '<<x>>')
  assert.equal(await hot.callString('run', 'y'), '<<y>>')
})

test('a host function cannot call into or check its own hot plug-in', async (t) => {
  const seen = []
  let hot
  const greet = new HostFunction('greet', ['i64'], ['i64'], (p, [h]) => {
    for (const f of [() => hot.callSync('run', 'x'), () => hot.check()]) {
      try {
        f()
      } catch (e) {
        seen.push(e.kind)
      }
    }
    return h
  })
  const file = modFile(t, greeting(1))
  hot = new HotPlugin(file, { checkIntervalMs: null, functions: [greet] })
  t.after(() => hot.close())
  assert.equal(hot.callStringSync('run', 'a'), 'a')
  assert.equal(await hot.callString('run', 'b'), 'b')
  assert.deepEqual(seen, ['reentrant', 'reentrant', 'reentrant', 'reentrant'])
})

test('a closed hot plug-in fails with kind closed', async (t) => {
  const file = modFile(t, version(1))
  const hot = new HotPlugin(file)
  assert.equal(hot.closed, false)
  hot.close()
  hot.close()
  assert.equal(hot.closed, true)
  const closed = (e) => e instanceof PlinthError && e.kind === 'closed'
  assert.throws(() => hot.callSync('which'), closed)
  await assert.rejects(hot.call('which'), closed)
  assert.throws(() => hot.check(), closed)
  assert.throws(() => hot.reload(), closed)
  assert.throws(() => hot.generation, closed)
  assert.throws(() => hot.functionExists('which'), closed)
})

test('a manifest is watched with its module; the JavaScript thread never waits for call()', async (t) => {
  const wat = modFile(t, version(1, `(func (export "spin") (result i32) (loop $l (br $l)) (i32.const 0))`))
  const manifest = path.join(path.dirname(wat), 'mod.json')
  fs.writeFileSync(manifest, JSON.stringify({ wasm: [{ path: 'mod.wat' }], timeout_ms: 2000 }))
  const hot = new HotPlugin(manifest, { checkIntervalMs: null })
  t.after(() => hot.close())
  assert.equal(hot.callStringSync('which'), '1')
  assert.deepEqual(hot.watchedFiles().map((f) => path.basename(f)).sort(), ['mod.json', 'mod.wat'])

  const spinning = hot.call('spin')
  // The worker takes its turn soon; until then a sync call may still run first.
  let busy
  const deadline = Date.now() + 30000
  while (!busy && Date.now() < deadline) {
    try {
      hot.callSync('which')
      await new Promise((resolve) => setTimeout(resolve, 2))
    } catch (e) {
      busy = e
    }
  }
  assert.equal(busy?.kind, 'busy')
  assert.throws(() => hot.check(), (e) => e instanceof PlinthError && e.kind === 'busy')
  await assert.rejects(spinning, (e) => e instanceof PlinthError && e.kind === 'timeout')

  fs.writeFileSync(wat, version(2))
  assert.deepEqual(hot.check(), { kind: 'swapped', generation: 2 })
  assert.equal(await hot.callString('which'), '2')
})

test('call options: hostContext reaches host functions, an aborted signal cancels', async (t) => {
  const greet = new HostFunction('greet', ['i64'], ['i64'], (p, [h]) => p.writeString(`${p.hostContext}:${p.readString(h)}`))
  const file = modFile(t, greeting(1))
  const hot = new HotPlugin(file, { functions: [greet] })
  t.after(() => hot.close())
  assert.equal(await hot.callString('run', 'x', { hostContext: 'async' }), 'async:x')
  assert.equal(hot.callStringSync('run', 'y', { hostContext: 'sync' }), 'sync:y')
  const cancelled = (e) => e instanceof PlinthError && e.kind === 'cancelled'
  await assert.rejects(hot.call('run', 'z', { signal: AbortSignal.abort() }), cancelled)
  assert.throws(() => hot.callSync('run', 'z', { signal: AbortSignal.abort() }), cancelled)
})
