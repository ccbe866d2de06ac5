'use strict'
const test = require('node:test')
const assert = require('node:assert/strict')
const { Plugin, CompiledPlugin, HostFunction, CurrentPlugin, ValType, PlinthError } = require('..')
const { pluginBytes, hostWat, gc, sleep, HOSTILE_WAT } = require('./helper')

function greeter(options = {}) {
  return new HostFunction('greet', [ValType.I64], [ValType.I64],
    (plugin, inputs, prefix) => plugin.writeString((prefix ?? 'Hello, ') + plugin.readString(inputs[0])), options)
}

test('host_greet round trip, with userData, in sync and async calls', async () => {
  const seen = []
  const greet = new HostFunction('greet', [ValType.I64], [ValType.I64], (plugin, inputs, data) => {
    seen.push([plugin instanceof CurrentPlugin, inputs.length, typeof inputs[0], plugin.length(inputs[0])])
    return plugin.writeString(data.prefix + plugin.readString(inputs[0]))
  }, { userData: { prefix: 'Howdy, ' } })
  assert.equal(greet.name, 'greet')
  assert.equal(greet.namespace, 'extism:host/user')
  assert.deepEqual(greet.params, ['i64'])
  const plugin = new Plugin(pluginBytes('host_greet'), { functions: [greet] })
  assert.equal(await plugin.callString('call_greet', 'Ada'), 'Howdy, Ada')
  assert.equal(plugin.callStringSync('call_greet', 'Bob'), 'Howdy, Bob')
  assert.deepEqual(seen, [[true, 1, 'bigint', 3], [true, 1, 'bigint', 3]])
  plugin.close()
})

test('the return value is the result', async () => {
  const plugin = new Plugin(hostWat(), { functions: [new HostFunction('greet', ['i64'], ['i64'], (p, [h]) => p.writeString(`<${p.readString(h)}>`))] })
  assert.equal((await plugin.call('run', 'x')).toString(), '<x>')
  assert.equal(plugin.callSync('run', 'y').toString(), '<y>')
  plugin.close()
})

test('binary data and free', async () => {
  const echo = new HostFunction('greet', ['i64'], ['i64'], (plugin, inputs) => {
    const bytes = plugin.readBytes(inputs[0])
    plugin.free(inputs[0])
    return plugin.writeBytes(Buffer.from(bytes).reverse())
  })
  const plugin = new Plugin(hostWat(), { functions: [echo] })
  assert.deepEqual(await plugin.call('run', Buffer.from([0xff, 0x00, 0x03])), Buffer.from([0x03, 0x00, 0xff]))
  assert.deepEqual(plugin.callSync('run', Buffer.from([1, 2])), Buffer.from([2, 1]))
  assert.equal((await plugin.call('run', '')).length, 0)
  plugin.close()
})

test('alloc, length and id', async () => {
  let id
  const fn = new HostFunction('greet', ['i64'], ['i64'], (plugin) => {
    const h = plugin.alloc(5)
    assert.equal(plugin.length(h), 5)
    assert.deepEqual(plugin.readBytes(h), Buffer.alloc(5))
    assert.equal(plugin.length(123456789), 0)
    id = plugin.id
    return h
  })
  const plugin = new Plugin(hostWat(), { functions: [fn] })
  assert.deepEqual(await plugin.call('run'), Buffer.alloc(5))
  assert.equal(id, plugin.id)
  plugin.close()
})

test('a bad handle is a PlinthError inside the host function', async () => {
  let caught
  const fn = new HostFunction('greet', ['i64'], ['i64'], (plugin, inputs) => {
    try {
      plugin.readBytes(987654)
    } catch (e) {
      caught = e
    }
    return inputs[0]
  })
  const plugin = new Plugin(hostWat(), { functions: [fn] })
  await plugin.call('run', 'x')
  assert.ok(caught instanceof PlinthError)
  assert.equal(caught.kind, 'memory')
  plugin.close()
})

test('custom namespace', async () => {
  const plugin = new Plugin(hostWat('custom'), { functions: [greeter({ namespace: 'custom', userData: 'Hi, ' })] })
  assert.equal(await plugin.callString('run', 'Cy'), 'Hi, Cy')
  plugin.close()
})

test('a missing host function fails the load', () => {
  assert.throws(() => new Plugin(pluginBytes('host_greet')), (e) => e instanceof PlinthError && e.kind === 'link' && /greet/.test(e.message))
  const other = new HostFunction('greet', ['i64'], ['i64'], () => 0, { namespace: 'elsewhere' })
  assert.throws(() => new Plugin(pluginBytes('host_greet'), { functions: [other] }), (e) => e.kind === 'link')
})

test('hostContext reaches the host functions of that call', async () => {
  const fn = new HostFunction('greet', ['i64'], ['i64'], (plugin) =>
    plugin.writeString(plugin.hostContext === undefined ? 'none' : plugin.hostContext.user))
  const plugin = new Plugin(hostWat(), { functions: [fn] })
  assert.equal(await plugin.callString('run', '', { hostContext: { user: 'ada' } }), 'ada')
  assert.equal(plugin.callStringSync('run', '', { hostContext: { user: 'bob' } }), 'bob')
  assert.equal(await plugin.callString('run', ''), 'none')
  assert.equal(plugin.callStringSync('run', ''), 'none')
  const calls = ['a', 'b', 'c'].map((user) => plugin.callString('run', '', { hostContext: { user } }))
  assert.deepEqual(await Promise.all(calls), ['a', 'b', 'c'])
  plugin.close()
  // Any value, null and primitives included.
  const seen = []
  const raw = new HostFunction('greet', ['i64'], ['i64'], (cp, [h]) => { seen.push(cp.hostContext); return h })
  const p = new Plugin(hostWat(), { functions: [raw] })
  for (const hostContext of [null, 'text', 7, undefined]) {
    await p.call('run', '', { hostContext })
    p.callSync('run', '', { hostContext })
  }
  assert.deepEqual(seen, [null, null, 'text', 'text', 7, 7, undefined, undefined])
  p.close()
})

test('an exception in the host function fails the call', async () => {
  let calls = 0
  const boom = new HostFunction('greet', ['i64'], ['i64'], () => {
    calls++
    throw new TypeError('no such customer')
  })
  const plugin = new Plugin(pluginBytes('host_greet'), { functions: [boom] })
  const check = (e) => {
    assert.ok(e instanceof PlinthError)
    assert.equal(e.kind, 'host_function')
    assert.equal(e.code, -1)
    assert.match(e.message, /greet/)
    assert.match(e.message, /TypeError: no such customer/)
    assert.ok(e.cause instanceof TypeError, 'the original exception is the cause')
    assert.equal(e.cause.message, 'no such customer')
    return true
  }
  await assert.rejects(plugin.call('call_greet', 'Ada'), check)
  assert.throws(() => plugin.callSync('call_greet', 'Ada'), check)
  assert.equal(calls, 2)
  assert.equal(plugin.functionExists('call_greet'), true, 'still usable')
  plugin.close()
})

test('throwing a non-Error', async () => {
  const plugin = new Plugin(hostWat(), { functions: [new HostFunction('greet', ['i64'], ['i64'], () => { throw 'plain string' })] })
  await assert.rejects(plugin.call('run'), (e) => e.kind === 'host_function' && /plain string/.test(e.message) && e.cause === 'plain string')
  plugin.close()
})

test('a bad return value fails the call', async () => {
  const bad = new HostFunction('greet', ['i64'], ['i64'], () => 'not a number')
  const plugin = new Plugin(hostWat(), { functions: [bad] })
  await assert.rejects(plugin.call('run', 'x'), (e) => e.kind === 'host_function' && /must be a number or a BigInt/.test(e.message))
  assert.throws(() => plugin.callSync('run', 'x'), (e) => e.kind === 'host_function')
  plugin.close()
})

test('a Promise from a host function not declared async is refused clearly', async () => {
  // A plain function that returns a Promise: not detected as async, so the plug-in cannot wait.
  const fn = new HostFunction('greet', ['i64'], ['i64'], (p, [h]) => Promise.resolve(h))
  assert.equal(fn.isAsync, false)
  const plugin = new Plugin(hostWat(), { functions: [fn] })
  const refused = (e) => e.kind === 'host_function' && /Promise/.test(e.message) && /async: true/.test(e.message)
  await assert.rejects(plugin.call('run', 'x'), refused)
  assert.throws(() => plugin.callSync('run', 'x'), refused)
  plugin.close()
})

test('CurrentPlugin is invalid after the callback returns', async () => {
  const kept = []
  const fn = new HostFunction('greet', ['i64'], ['i64'], (plugin, inputs) => {
    assert.equal(plugin.valid, true)
    kept.push(plugin)
    return inputs[0]
  })
  const plugin = new Plugin(hostWat(), { functions: [fn] })
  assert.equal(plugin.callStringSync('run', 'same'), 'same')
  assert.equal(await plugin.callString('run', 'same'), 'same')
  for (const cp of kept) {
    assert.equal(cp.valid, false)
    assert.throws(() => cp.readString(0), (e) => e instanceof PlinthError && e.kind === 'closed' && /no longer valid/.test(e.message))
    assert.throws(() => cp.writeString('x'), PlinthError)
    assert.throws(() => cp.hostContext, PlinthError)
  }
  plugin.close()
})

test('a re-entrant call is refused', async () => {
  let plugin
  const results = []
  const fn = new HostFunction('greet', ['i64'], ['i64'], (cp) => {
    for (const reenter of [() => plugin.callSync('run', 'again'), () => plugin.reset(), () => plugin.updateConfig({ a: 'b' })]) {
      try {
        reenter()
        results.push('not refused')
      } catch (e) {
        results.push(`${e.kind} ${e.kindCode} ${e.code}`)
      }
    }
    return cp.writeString('ok')
  })
  plugin = new Plugin(hostWat(), { functions: [fn] })
  // callSync: the plug-in runs on this thread, which holds it.
  assert.equal(plugin.callStringSync('run', 'x'), 'ok')
  // call: a worker holds it and waits for this host function on this thread.
  assert.equal(await plugin.callString('run', 'x'), 'ok')
  assert.deepEqual(results, Array(6).fill('reentrant 18 -1'))
  plugin.close()
})

test('a host function of one plug-in finds another plug-in busy with its own call()', async () => {
  const other = new Plugin({ wasm: [{ data: HOSTILE_WAT }], timeout_ms: 300 })
  const running = other.call('spin')
  await sleep(30)
  let seen
  const fn = new HostFunction('greet', ['i64'], ['i64'], (cp) => {
    try {
      other.callSync('ok')
    } catch (e) {
      seen = e.kind
    }
    return cp.writeString('ok')
  })
  const plugin = new Plugin(hostWat(), { functions: [fn] })
  assert.equal(await plugin.callString('run', 'x'), 'ok')
  assert.equal(seen, 'busy')
  await assert.rejects(running, (e) => e.kind === 'timeout')
  plugin.close()
  other.close()
})

test('a host function may call another plug-in', async () => {
  const counter = new Plugin(pluginBytes('count_vowels'))
  const fn = new HostFunction('greet', ['i64'], ['i64'], (cp, [h]) => {
    const out = JSON.parse(counter.callSync('count_vowels', cp.readString(h)))
    return cp.writeString(String(out.count))
  })
  const plugin = new Plugin(hostWat(), { functions: [fn] })
  assert.equal(await plugin.callString('run', 'aaaa'), '4')
  assert.equal(plugin.callStringSync('run', 'ee'), '2')
  plugin.close()
  counter.close()
})

test('many host calls in one async call', async () => {
  const wat = Buffer.from(`
(module
  (import "extism:host/user" "tick" (func $tick (param i64) (result i64)))
  (func (export "run") (result i32) (local $i i64)
    (loop $l
      (local.set $i (call $tick (local.get $i)))
      (br_if $l (i64.lt_u (local.get $i) (i64.const 2000))))
    (i32.const 0)))`)
  let n = 0
  const tick = new HostFunction('tick', ['i64'], ['i64'], (_p, [i]) => { n++; return i + 1n })
  const plugin = new Plugin(wat, { functions: [tick] })
  await plugin.call('run')
  plugin.callSync('run')
  assert.equal(n, 4000)
  plugin.close()
})

test('numeric types and several results', async () => {
  const wat = Buffer.from(`
(module
  (import "extism:host/user" "mix" (func $mix (param i32 i64 f32 f64) (result f64)))
  (import "extism:host/user" "answer" (func $answer (result i32)))
  (import "extism:host/user" "pair" (func $pair (result i64 i32)))
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "store_u64" (func $store_u64 (param i64 i64)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
  (memory 1)
  (func (export "run") (result i32) (local $h i64)
    (local.set $h (call $alloc (i64.const 8)))
    (call $store_u64 (local.get $h)
      (i64.trunc_f64_s (call $mix (call $answer) (i64.const 20) (f32.const 0.5) (f64.const 0.25))))
    (call $output_set (local.get $h) (i64.const 8)) (i32.const 0))
  (func (export "pairs") (result i32) (local $h i64) (local $b i32) (local $a i64)
    (call $pair)
    (local.set $b)
    (local.set $a)
    (local.set $h (call $alloc (i64.const 8)))
    (call $store_u64 (local.get $h) (i64.add (local.get $a) (i64.extend_i32_s (local.get $b))))
    (call $output_set (local.get $h) (i64.const 8))
    (i32.const 0)))`)
  let got
  const mix = new HostFunction('mix', [ValType.I32, ValType.I64, ValType.F32, ValType.F64], [ValType.F64], (_p, inputs) => {
    got = inputs
    return (inputs[0] + Number(inputs[1]) + inputs[2] + inputs[3]) * 2
  })
  const answer = new HostFunction('answer', [], ['i32'], () => 21)
  const pair = new HostFunction('pair', [], ['i64', 'i32'], () => [40n, 2])
  const plugin = new Plugin(wat, { functions: [mix, answer, pair] })
  assert.equal((await plugin.call('run')).readBigInt64LE(), 83n) // (21 + 20 + 0.5 + 0.25) * 2 = 83.5
  assert.deepEqual(got, [21, 20n, 0.5, 0.25])
  assert.equal(plugin.callSync('run').readBigInt64LE(), 83n)
  assert.equal(plugin.callSync('pairs').readBigInt64LE(), 42n)
  assert.equal((await plugin.call('pairs')).readBigInt64LE(), 42n)
  plugin.close()
})

test('host functions survive garbage collection while a plug-in uses them', async () => {
  const plugin = new Plugin(hostWat(), { functions: [greeter({ userData: 'GC, ' })] })
  for (let i = 0; i < 5; i++) {
    gc()
    await sleep(5)
  }
  for (let i = 0; i < 100; i++) assert.equal(await plugin.callString('run', String(i)), `GC, ${i}`)
  plugin.close()
})

test('CompiledPlugin with a host function', async () => {
  const compiled = new CompiledPlugin(hostWat(), { functions: [greeter()] })
  const a = compiled.instance()
  assert.equal(await a.callString('run', 'A'), 'Hello, A')
  const b = compiled.instance()
  compiled.close()
  gc()
  assert.equal(b.callStringSync('run', 'B'), 'Hello, B')
  a.close()
  b.close()
})

test('argument checks', () => {
  assert.throws(() => new HostFunction('x', ['v128'], [], () => 0), TypeError)
  assert.throws(() => new HostFunction('x', ['i64'], ['i64'], 'not a function'), TypeError)
  assert.throws(() => new HostFunction('x', ['i64'], ['i64'], () => 0, { nameSpace: 'x' }), /unknown HostFunction option/)
  assert.throws(() => new Plugin(hostWat(), { functions: ['greet'] }), TypeError)
  assert.throws(() => new Plugin(hostWat(), { functions: [{}] }), TypeError)
})

test('host functions of several plug-ins running at once', async () => {
  let calls = 0
  const fn = new HostFunction('greet', ['i64'], ['i64'], (cp, [h], tag) => {
    calls++
    return cp.writeString(`${tag}:${cp.readString(h)}`)
  }, { userData: 'p' })
  const plugins = Array.from({ length: 4 }, () => new Plugin(pluginBytes('host_greet'), { functions: [fn] }))
  const jobs = []
  for (let i = 0; i < 50; i++) for (const [n, p] of plugins.entries()) jobs.push(p.callString('call_greet', `${n}-${i}`))
  const outs = await Promise.all(jobs)
  assert.equal(outs.length, 200)
  assert.equal(outs[5], 'p:1-1')
  assert.equal(calls, 200)
  for (const p of plugins) p.close()
})

test('a script with live plug-ins and host functions exits by itself', () => {
  const { execFileSync } = require('node:child_process')
  const script = `
    const { Plugin, HostFunction } = require(${JSON.stringify(require.resolve('..'))})
    const fn = new HostFunction('greet', ['i64'], ['i64'], (cp, [h]) => h)
    const p = new Plugin(require('fs').readFileSync(${JSON.stringify(require('./helper').pluginPath('host_greet'))}), { functions: [fn] })
    p.callString('call_greet', 'bye').then((s) => console.log(s))`
  const out = execFileSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 20000 })
  assert.equal(out, 'bye\n')
})
