'use strict'
// Async host functions (issue 16): the plug-in calls them synchronously through the Extism ABI
// while its call is a future that awaits the callback's Promise, so no thread blocks and the
// event loop keeps running.
const test = require('node:test')
const assert = require('node:assert/strict')
const { spawnSync } = require('node:child_process')
const path = require('node:path')
const { Plugin, CompiledPlugin, HostFunction, PlinthError } = require('..')
const { hostWat, sleep } = require('./helper')

const T = { timeout: 60_000 }

// `greet` that reads its argument, awaits `wait()`, then writes `prefix + argument`.
function asyncGreet(wait, prefix = 'hi ') {
  return new HostFunction('greet', ['i64'], ['i64'], async (plugin, [h]) => {
    const name = plugin.readString(h)
    await wait(name, plugin)
    return plugin.writeString(prefix + name)
  })
}

// A promise and the function that resolves it.
function deferred() {
  let resolve
  const promise = new Promise((r) => (resolve = r))
  return { promise, resolve }
}

// Resolves once `check()` is true, polling on timers (so only while the event loop runs).
async function until(check) {
  while (!check()) await sleep(1)
}

test('an async host function is awaited, and the event loop runs meanwhile', T, async () => {
  let entered = false
  const gate = deferred()
  const greet = asyncGreet(async () => {
    entered = true
    await gate.promise
  })
  assert.equal(greet.isAsync, true)
  const plugin = new Plugin(hostWat(), { functions: [greet] })
  const call = plugin.callString('run', 'Ada')
  // Only other JavaScript tasks let the host function finish: were the event loop blocked
  // while the plug-in waits, the call would never end.
  let ticks = 0
  const interval = setInterval(() => ticks++, 1)
  await until(() => entered && ticks >= 5)
  clearInterval(interval)
  gate.resolve()
  assert.equal(await call, 'hi Ada')
  plugin.close()
})

test('reset() during an async call is busy, and re-entrant from its own host function', T, async () => {
  const gate = deferred()
  let plugin
  let inside
  let entered = false
  const fn = asyncGreet(async () => {
    try { plugin.reset() } catch (e) { inside = e }
    entered = true
    await gate.promise
  })
  plugin = new Plugin(hostWat(), { functions: [fn] })
  const call = plugin.callString('run', 'x')
  await until(() => entered)
  assert.equal(inside.kind, 'reentrant')
  assert.throws(() => plugin.reset(), (e) => e instanceof PlinthError && e.kind === 'busy' && /await that call/.test(e.message))
  gate.resolve()
  assert.equal(await call, 'hi x')
  plugin.reset()
  plugin.close()
})

test('CurrentPlugin works across awaits and hostContext reaches the host function', T, async () => {
  const seen = []
  const fn = new HostFunction('greet', ['i64'], ['i64'], async (plugin, [h]) => {
    await sleep(2)
    const text = plugin.readString(h)
    const block = plugin.alloc(3)
    seen.push(plugin.length(block), plugin.hostContext, plugin.id)
    await sleep(2)
    return plugin.writeString(`${plugin.hostContext.user}:${text}`)
  })
  const plugin = new Plugin(hostWat(), { functions: [fn] })
  assert.equal(await plugin.callString('run', 'x', { hostContext: { user: 'ada' } }), 'ada:x')
  assert.deepEqual(seen, [3, { user: 'ada' }, plugin.id])
  plugin.close()
})

test('an async function declared with async: true may also return at once', T, async () => {
  // `async: true` on a plain function: a Promise or a plain value both work.
  const fn = new HostFunction('greet', ['i64'], ['i64'], (plugin, [h]) => {
    const text = plugin.readString(h)
    const json = (v) => plugin.writeString(JSON.stringify(v))
    return text === 'now' ? json('at once') : sleep(1).then(() => json(['later', text]))
  }, { async: true })
  assert.equal(fn.isAsync, true)
  const plugin = new Plugin(hostWat(), { functions: [fn] })
  assert.equal(await plugin.callString('run', 'now'), '"at once"')
  assert.deepEqual(await plugin.callJson('run', { a: 1 }), ['later', '{"a":1}'])
  plugin.close()
})

test('many concurrent calls on one plug-in queue in the order they were made and all get their own output', T, async () => {
  let inFlight = 0
  let most = 0
  const order = []
  const greet = asyncGreet(async (name) => {
    order.push(name)
    most = Math.max(most, ++inFlight)
    await sleep(1)
    inFlight--
  })
  const plugin = new Plugin(hostWat(), { functions: [greet] })
  const names = Array.from({ length: 200 }, (_, i) => `call ${i}`)
  const outputs = await Promise.all(names.map((name, i) =>
    i % 2 ? plugin.callString('run', name) : plugin.call('run', name).then(String)))
  outputs.forEach((out, i) => assert.equal(out, `hi call ${i}`))
  // One instance runs one call at a time: the others wait their turn without a thread, and
  // take it in the order of the calls.
  assert.equal(most, 1)
  assert.deepEqual(order, names)
  plugin.close()
})

test('fresh calls on a compiled plug-in await their host functions together', T, async () => {
  // Every call waits in its host function until all of them are there: far more than libuv's
  // 4 pool threads could hold were each waiting call to keep a thread.
  const n = 64
  let entered = 0
  const gate = deferred()
  const greet = asyncGreet(async () => {
    entered++
    await gate.promise
  })
  const compiled = new CompiledPlugin(hostWat(), { functions: [greet] })
  const calls = Array.from({ length: n }, (_, i) => compiled.callFresh('run', `f${i}`))
  await until(() => entered === n)
  gate.resolve()
  const outputs = await Promise.all(calls)
  outputs.forEach((out, i) => assert.equal(out.toString(), `hi f${i}`))
  const instance = compiled.instance()
  assert.equal(await instance.callString('run', 'inst'), 'hi inst')
  const loaded = await Plugin.load(hostWat(), { functions: [greet] })
  assert.equal(await loaded.callString('run', 'loaded'), 'hi loaded')
  instance.close()
  loaded.close()
  compiled.close()
})

test('a rejected promise or a thrown error fails the call with the error as cause', T, async () => {
  const failing = new HostFunction('greet', ['i64'], ['i64'], async (plugin, [h]) => {
    const what = plugin.readString(h)
    await sleep(1)
    if (what === 'error') throw new TypeError('no such customer')
    if (what === 'value') throw 'a string' // eslint-disable-line no-throw-literal
    if (what === 'bad') return 'not a number'
    return h
  })
  const plugin = new Plugin(hostWat(), { functions: [failing] })
  await assert.rejects(plugin.call('run', 'error'), (e) => {
    assert.ok(e instanceof PlinthError)
    assert.equal(e.kind, 'host_function')
    assert.equal(e.code, -1)
    assert.match(e.message, /greet.*TypeError: no such customer/)
    assert.ok(e.cause instanceof TypeError)
    return true
  })
  await assert.rejects(plugin.call('run', 'value'), (e) => e.kind === 'host_function' && e.cause === 'a string')
  await assert.rejects(plugin.call('run', 'bad'), (e) => e.kind === 'host_function' && /must be a number or a BigInt/.test(e.message))
  // A promise rejected without an async function, and an error thrown before any await.
  const rejecting = new HostFunction('greet', ['i64'], ['i64'], () => Promise.reject(new RangeError('later')), { async: true })
  const throwing = new HostFunction('greet', ['i64'], ['i64'], () => { throw new RangeError('at once') }, { async: true })
  for (const [fn, message] of [[rejecting, 'later'], [throwing, 'at once']]) {
    const p = new Plugin(hostWat(), { functions: [fn] })
    await assert.rejects(p.call('run', 'x'), (e) => e.kind === 'host_function' && e.cause instanceof RangeError && e.cause.message === message)
    p.close()
  }
  // The plug-in still works after its failures.
  assert.equal((await plugin.call('run', 'fine')).toString(), 'fine')
  plugin.close()
})

test('the sync call methods refuse a plug-in with async host functions', T, async () => {
  const plugin = new Plugin(hostWat(), { functions: [asyncGreet(() => sleep(1))] })
  for (const sync of [() => plugin.callSync('run', 'x'), () => plugin.callStringSync('run', 'x'), () => plugin.callJsonSync('run', 1)]) {
    assert.throws(sync, (e) => e instanceof PlinthError && /async host functions/.test(e.message) && /call\(\)/.test(e.message))
  }
  assert.equal(await plugin.callString('run', 'x'), 'hi x')
  plugin.close()
  await assert.rejects(plugin.call('run', 'x'), (e) => e.kind === 'closed')
})

test('cancel() stops a call while its host function awaits', T, async () => {
  let entered = false
  const never = new Promise(() => {})
  const fn = asyncGreet(async (name) => {
    if (name !== 'wait') return
    entered = true
    await never
  })
  const plugin = new Plugin(hostWat(), { functions: [fn] })
  // A cancel with no call running does not stop the next call.
  assert.equal(plugin.cancel(), true)
  assert.equal(await plugin.callString('run', 'first'), 'hi first')
  const call = plugin.call('run', 'wait')
  await until(() => entered)
  assert.equal(plugin.cancelHandle().cancel(), true)
  await assert.rejects(call, (e) => e instanceof PlinthError && e.kind === 'cancelled')
  // The next call gets a fresh instance and runs.
  assert.equal(await plugin.callString('run', 'after'), 'hi after')
  entered = false
  const queued = [plugin.call('run', 'wait'), plugin.callString('run', 'queued')]
  await until(() => entered)
  plugin.cancel()
  await assert.rejects(queued[0], (e) => e.kind === 'cancelled')
  // Only the running call was cancelled; the one queued behind it runs.
  assert.equal(await queued[1], 'hi queued')
  plugin.close()
})

test('aborting a call\'s signal cancels it mid-await, and only it', T, async () => {
  let entered = 0
  const fn = asyncGreet(async (name) => {
    if (name !== 'wait') return
    entered++
    await new Promise(() => {})
  })
  const plugin = new Plugin(hostWat(), { functions: [fn] })
  const controller = new AbortController()
  const call = plugin.call('run', 'wait', { signal: controller.signal })
  // Queued behind it, with signals of their own: one aborted before its turn, one not.
  const queued = new AbortController()
  const skipped = plugin.callString('run', 'never runs', { signal: queued.signal })
  const next = plugin.callString('run', 'next', { signal: new AbortController().signal })
  await until(() => entered === 1)
  queued.abort()
  await assert.rejects(skipped, (e) => e instanceof PlinthError && e.kind === 'cancelled' && /AbortSignal/.test(e.message))
  controller.abort()
  await assert.rejects(call, (e) => e instanceof PlinthError && e.kind === 'cancelled')
  assert.equal(await next, 'hi next')
  // An already aborted signal cancels at once, for every call method.
  const aborted = AbortSignal.abort()
  await assert.rejects(plugin.callJson('run', 1, { signal: aborted }), (e) => e.kind === 'cancelled')
  const compiled = new CompiledPlugin(hostWat(), { functions: [fn] })
  const fresh = new AbortController()
  const freshCall = compiled.callFresh('run', 'wait', { signal: fresh.signal })
  await until(() => entered === 2)
  fresh.abort()
  await assert.rejects(freshCall, (e) => e.kind === 'cancelled')
  assert.equal(entered, 2)
  // The listener of a finished call is removed: a long-lived signal does not collect them.
  const longLived = new AbortController()
  for (let i = 0; i < 20; i++) await plugin.callString('run', `n${i}`, { signal: longLived.signal })
  const { getEventListeners } = require('node:events')
  assert.equal(getEventListeners(longLived.signal, 'abort').length, 0)
  assert.throws(() => plugin.call('run', 'x', { signal: {} }), TypeError)
  plugin.close()
  compiled.close()
})

test('a signal also cancels calls of plug-ins with sync host functions', T, async () => {
  const { HOSTILE_WAT } = require('./helper')
  const plugin = new Plugin(HOSTILE_WAT)
  const controller = new AbortController()
  const spin = plugin.call('spin', '', { signal: controller.signal })
  await sleep(50)
  controller.abort()
  await assert.rejects(spin, (e) => e instanceof PlinthError && e.kind === 'cancelled')
  await assert.rejects(plugin.call('ok', '', { signal: AbortSignal.abort() }), (e) => e.kind === 'cancelled')
  assert.throws(() => plugin.callSync('ok', '', { signal: AbortSignal.abort() }), (e) => e.kind === 'cancelled')
  assert.equal((await plugin.call('ok', '', { signal: new AbortController().signal })).length, 0)
  const compiled = new CompiledPlugin(HOSTILE_WAT)
  const freshSpin = new AbortController()
  const fresh = compiled.callFresh('spin', '', { signal: freshSpin.signal })
  await sleep(50)
  freshSpin.abort()
  await assert.rejects(fresh, (e) => e.kind === 'cancelled')
  plugin.close()
})

test('timeout_ms ends a call whose host promise never settles', T, async () => {
  const fn = asyncGreet((name) => (name === 'hang' ? new Promise(() => {}) : undefined))
  const plugin = new Plugin({ wasm: [{ data: hostWat() }], timeout_ms: 100 }, { functions: [fn] })
  await assert.rejects(plugin.call('run', 'hang'), (e) => e instanceof PlinthError && e.kind === 'timeout')
  assert.equal(await plugin.callString('run', 'ok'), 'hi ok')
  plugin.close()
})

test('CurrentPlugin is invalid once the promise settled', T, async () => {
  let kept
  const fn = new HostFunction('greet', ['i64'], ['i64'], async (plugin, [h]) => {
    kept = plugin
    await sleep(1)
    assert.equal(plugin.valid, true)
    return h
  })
  const plugin = new Plugin(hostWat(), { functions: [fn] })
  assert.equal(await plugin.callString('run', 'x'), 'x')
  assert.equal(kept.valid, false)
  assert.throws(() => kept.readString(0), (e) => e instanceof PlinthError && e.kind === 'closed')
  plugin.close()
})

test('a host promise that never settles does not keep the process alive after a timeout', T, () => {
  // In a child process: the call times out and the script ends, with the promise still pending.
  const script = `
    const { Plugin, HostFunction } = require(${JSON.stringify(path.join(__dirname, '..'))})
    const { hostWat } = require(${JSON.stringify(path.join(__dirname, 'helper.js'))})
    const hang = new HostFunction('greet', ['i64'], ['i64'], async () => new Promise(() => {}))
    const plugin = new Plugin({ wasm: [{ data: hostWat() }], timeout_ms: 50 }, { functions: [hang] })
    plugin.call('run', 'x').then(() => console.log('resolved'), (e) => console.log('rejected', e.kind))
  `
  const child = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 30_000 })
  assert.equal(child.error, undefined, 'the child process did not exit by itself')
  assert.equal(child.stderr, '')
  assert.equal(child.stdout.trim(), 'rejected timeout')
  assert.equal(child.status, 0)
})

test('a plug-in with both sync and async host functions', T, async () => {
  // `run` outputs shout(greet(input)): greet is async, shout is sync.
  const wat = Buffer.from(`
(module
  (import "extism:host/user" "greet" (func $greet (param i64) (result i64)))
  (import "extism:host/user" "shout" (func $shout (param i64) (result i64)))
  (import "extism:host/env" "input_offset" (func $input_offset (result i64)))
  (import "extism:host/env" "length" (func $length (param i64) (result i64)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
  (memory 1)
  (func (export "run") (result i32) (local $h i64)
    (local.set $h (call $shout (call $greet (call $input_offset))))
    (call $output_set (local.get $h) (call $length (local.get $h))) (i32.const 0)))`)
  const shout = new HostFunction('shout', ['i64'], ['i64'], (p, [h]) => p.writeString(`${p.readString(h).toUpperCase()}! (${p.hostContext})`))
  const plugin = new Plugin(wat, { functions: [asyncGreet(() => sleep(1)), shout] })
  const outputs = await Promise.all(['a', 'b', 'c'].map((x) => plugin.callString('run', x, { hostContext: x })))
  assert.deepEqual(outputs, ['HI A! (a)', 'HI B! (b)', 'HI C! (c)'])
  plugin.close()
})

test('a CurrentPlugin kept past a timeout or an abort is closed', T, async () => {
  let kept, lateUse
  let release = deferred()
  const fn = new HostFunction('greet', ['i64'], ['i64'], async (plugin, [h]) => {
    kept = plugin
    await release.promise
    // Used after its call ended: throws at once (it once could wait for ever here).
    try {
      lateUse = `read ${plugin.readString(h)}`
    } catch (e) {
      lateUse = e instanceof PlinthError ? e.kind : String(e)
    }
    return h
  })
  const plugin = new Plugin({ wasm: [{ data: hostWat() }], timeout_ms: 50 }, { functions: [fn] })
  await assert.rejects(plugin.call('run', 'x'), (e) => e.kind === 'timeout')
  // Closed as the call's future was dropped, before its promise settles.
  assert.equal(kept.valid, false)
  assert.throws(() => kept.readString(0), (e) => e instanceof PlinthError && e.kind === 'closed')
  // What the promise settles to afterwards goes nowhere.
  release.resolve()
  await until(() => lateUse !== undefined)
  assert.equal(lateUse, 'closed')
  assert.equal(kept.valid, false)

  kept = lateUse = undefined
  release = deferred()
  const controller = new AbortController()
  const call = plugin.call('run', 'y', { signal: controller.signal })
  await until(() => kept !== undefined)
  assert.equal(kept.valid, true)
  controller.abort()
  await assert.rejects(call, (e) => e.kind === 'cancelled')
  assert.equal(kept.valid, false)
  release.resolve()
  await until(() => lateUse !== undefined)
  assert.equal(lateUse, 'closed')
  plugin.close()
})

test('async host functions work in worker threads', T, async () => {
  const { Worker } = require('node:worker_threads')
  const source = `
    const { parentPort, workerData } = require('node:worker_threads')
    const { Plugin, HostFunction } = require(workerData.sdk)
    const { hostWat, sleep } = require(workerData.helper)
    const fn = new HostFunction('greet', ['i64'], ['i64'], async (cp, [h]) => {
      const name = cp.readString(h)
      await sleep(5)
      return cp.writeString('w:' + name)
    })
    const p = new Plugin(hostWat(), { functions: [fn] })
    Promise.all([p.callString('run', 'a'), p.callString('run', 'b')]).then((out) => {
      p.close()
      parentPort.postMessage(out)
    })`
  const results = await Promise.all([1, 2].map(() => new Promise((resolve, reject) => {
    const w = new Worker(source, { eval: true, workerData: { sdk: require.resolve('..'), helper: require.resolve('./helper') } })
    w.once('message', resolve)
    w.once('error', reject)
  })))
  assert.deepEqual(results, [['w:a', 'w:b'], ['w:a', 'w:b']])
})

test('async calls, aborted and timed out ones included, do not grow RSS', T, async () => {
  const { gc, rssKiB } = require('./helper')
  const iterations = Number(process.env.PLINTH_CHURN || 1000)
  const greet = asyncGreet((name) => (name === 'hang' ? new Promise(() => {}) : sleep(0)))
  const plugin = new Plugin({ wasm: [{ data: hostWat() }], timeout_ms: 500 }, { functions: [greet] })
  const compiled = new CompiledPlugin(hostWat(), { functions: [greet] })
  const cycle = async (i) => {
    if ((await plugin.callString('run', 'x', { hostContext: { i } })) !== 'hi x') throw new Error('bad output')
    if ((await compiled.callFresh('run', 'y')).toString() !== 'hi y') throw new Error('bad fresh output')
    if (i % 10 === 0) {
      const aborted = new AbortController()
      const call = plugin.call('run', 'hang', { signal: aborted.signal })
      setImmediate(() => aborted.abort())
      await call.then(() => { throw new Error('not aborted') }, (e) => { if (e.kind !== 'cancelled') throw e })
    }
    if (i % 200 === 0) await plugin.call('run', 'hang').then(() => { throw new Error('no timeout') }, (e) => { if (e.kind !== 'timeout') throw e })
  }
  for (let i = 0; i < 200; i++) await cycle(i)
  gc()
  const before = rssKiB()
  for (let i = 0; i < iterations; i++) await cycle(i)
  gc()
  const growth = rssKiB() - before
  if (process.env.VERBOSE) console.log(`async churn: ${iterations} cycles, RSS grew ${growth} KiB`)
  assert.ok(growth < 16 * 1024, `RSS grew by ${growth} KiB over ${iterations} cycles`)
  plugin.close()
  compiled.close()
})
