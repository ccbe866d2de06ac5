'use strict'
// Streaming calls (issue 19): plugin.callStream over Node streams and iterables, with
// backpressure, failing inputs and outputs, the output limit, cancelling, and plug-ins that do
// not stream.
const test = require('node:test')
const assert = require('node:assert/strict')
const crypto = require('node:crypto')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { PassThrough, Readable, Writable } = require('node:stream')
const { Plugin, HostFunction, PlinthError } = require('..')
const { pluginPath, hostWat, sleep } = require('./helper')

const T = { timeout: 60_000 }
const CHUNK = 64 * 1024

function echo(options) {
  return new Plugin(pluginPath('stream_echo'), options)
}

// A Writable that keeps what it is given.
function collector(write = (chunk, cb) => cb()) {
  const chunks = []
  const w = new Writable({
    write(chunk, _encoding, cb) {
      chunks.push(chunk)
      write(chunk, cb)
    },
  })
  w.bytes = () => Buffer.concat(chunks)
  w.chunks = chunks
  return w
}

// A log of `n` lines, some with ERROR and multi-byte characters.
function logLines(n) {
  const levels = ['INFO', 'WARN', 'ERROR', 'DEBUG']
  let out = ''
  for (let i = 0; i < n; i++) out += `${i} ${levels[(i * 7) % 4]} héllo wörld ✓ ${'x'.repeat((i * 13) % 80)}\n`
  return Buffer.from(out)
}

function grepLines(data, pattern = 'ERROR') {
  return Buffer.from(data.toString('utf8').split(/(?<=\n)/).filter((l) => l.includes(pattern)).join(''))
}

// Resolves when `check()` holds, or rejects after `ms`.
async function until(check, ms = 30_000) {
  const start = Date.now()
  while (!check()) {
    if (Date.now() - start > ms) throw new Error('timed out waiting')
    await sleep(1)
  }
}

test('Readable.from(chunks) into a Writable', T, async () => {
  const plugin = echo()
  const out = collector()
  const stats = await plugin.callStream('echo', Readable.from([Buffer.from('héllo '), 'wörld', new Uint8Array([33])]), out)
  assert.equal(out.bytes().toString(), 'héllo wörld!')
  assert.deepEqual(stats, { inputBytes: 14, outputBytes: 14 })
  assert.ok(out.writableFinished, 'the Writable is ended')
  plugin.close()
})

test('empty input, a whole Buffer or string, and a function as the output', T, async () => {
  const plugin = echo()
  assert.deepEqual(await plugin.callStream('echo', Readable.from([]), collector()), { inputBytes: 0, outputBytes: 0 })
  const got = []
  await plugin.callStream('echo', 'abc', async (chunk) => {
    await sleep(1)
    got.push(chunk)
  })
  assert.equal(Buffer.concat(got).toString(), 'abc')
  const stats = await plugin.callStream('echo', Buffer.alloc(3 * CHUNK + 1, 7), () => {})
  assert.equal(stats.outputBytes, 3 * CHUNK + 1)
  plugin.close()
})

test('files of a few MB through a line filter and through echo', T, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'plinth-streams-'))
  try {
    const data = logLines(60_000)
    assert.ok(data.length > 3 * 1024 * 1024)
    const src = path.join(dir, 'in.log')
    fs.writeFileSync(src, data)
    const grep = new Plugin(pluginPath('stream_filter'))
    const dst = path.join(dir, 'errors.log')
    const stats = await grep.callStream('grep', fs.createReadStream(src), fs.createWriteStream(dst))
    const expected = grepLines(data)
    assert.ok(fs.readFileSync(dst).equals(expected))
    assert.deepEqual(stats, { inputBytes: data.length, outputBytes: expected.length })
    grep.close()

    const random = crypto.randomBytes(4 * 1024 * 1024 + 5)
    fs.writeFileSync(src, random)
    const plugin = echo()
    const copy = path.join(dir, 'copy.bin')
    await plugin.callStream('echo', fs.createReadStream(src), fs.createWriteStream(copy))
    assert.ok(fs.readFileSync(copy).equals(random))
    plugin.close()
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
})

test('output comes out before the input ends', T, async () => {
  const plugin = echo()
  const input = new PassThrough()
  const out = collector()
  const call = plugin.callStream('echo', input, out)
  input.write('first\n')
  // The input stays open until the plug-in's first chunk reached the Writable.
  await until(() => out.chunks.length > 0)
  assert.equal(out.bytes().toString(), 'first\n')
  input.end('second\n')
  await call
  assert.equal(out.bytes().toString(), 'first\nsecond\n')
  plugin.close()
})

test('an input stream that errors midway fails the call with its error as the cause', T, async () => {
  const plugin = echo()
  const boom = new Error('disk on fire')
  async function* source() {
    yield Buffer.from('ok')
    await sleep(5)
    throw boom
  }
  const out = collector()
  await assert.rejects(plugin.callStream('echo', source(), out), (e) => {
    assert.ok(e instanceof PlinthError)
    assert.equal(e.kind, 'stream')
    assert.equal(e.kindCode, 26)
    assert.equal(e.cause, boom)
    assert.match(e.message, /disk on fire/)
    return true
  })
  assert.equal(out.bytes().toString(), 'ok')
  // A Readable that is destroyed with an error: the same.
  const readable = new Readable({ read() {} })
  readable.push('abc')
  setTimeout(() => readable.destroy(new Error('socket reset')), 5)
  await assert.rejects(plugin.callStream('echo', readable, collector()), (e) => e.kind === 'stream' && e.cause.message === 'socket reset')
  // The plug-in keeps serving.
  assert.equal((await plugin.call('echo', 'still here')).toString(), 'still here')
  plugin.close()
})

test('a Writable that errors fails the call with its error as the cause', T, async () => {
  const plugin = echo()
  let taken = 0
  const out = new Writable({
    write(chunk, _encoding, cb) {
      if (taken > 0) return cb(new Error('reader went away'))
      taken += chunk.length
      cb()
    },
  })
  const input = Array.from({ length: 10 }, () => Buffer.alloc(CHUNK, 1))
  await assert.rejects(plugin.callStream('echo', input, out), (e) => {
    assert.equal(e.kind, 'stream')
    assert.equal(e.cause.message, 'reader went away')
    return true
  })
  assert.equal(taken, CHUNK)
  // An output function that throws: the same.
  const thrown = new Error('sink failed')
  await assert.rejects(plugin.callStream('echo', input, () => { throw thrown }), (e) => e.kind === 'stream' && e.cause === thrown)
  assert.equal((await plugin.call('echo', 'again')).toString(), 'again')
  plugin.close()
})

test('a slow Writable holds the plug-in back (backpressure)', T, async () => {
  const plugin = echo()
  const chunks = 64
  let pulled = 0
  let written = 0
  let mostAhead = 0
  // A plain async generator: it is asked for a chunk only when the call wants one.
  async function* source() {
    for (let i = 0; i < chunks; i++) {
      pulled += CHUNK
      yield Buffer.alloc(CHUNK, i)
    }
  }
  const out = new Writable({
    highWaterMark: CHUNK,
    write(chunk, _encoding, cb) {
      written += chunk.length
      mostAhead = Math.max(mostAhead, pulled - written)
      setTimeout(cb, 2)
    },
  })
  const stats = await plugin.callStream('echo', source(), out)
  assert.equal(stats.outputBytes, chunks * CHUNK)
  assert.equal(written, chunks * CHUNK)
  // Queued: one chunk each way, the plug-in's own, the one being written and the Writable's
  // buffer; the input read ahead of the output stays a few chunks, not the 4 MiB of input.
  assert.ok(mostAhead <= 8 * CHUNK, `the input ran ${mostAhead} bytes ahead of the output`)
  plugin.close()
})

test('outputLimit stops a flood', T, async () => {
  const limit = 300_000
  const plugin = echo({ outputLimit: limit })
  const out = collector()
  await assert.rejects(plugin.callStream('flood', '', out), (e) => {
    assert.equal(e.kind, 'stream')
    assert.match(e.message, /output limit of 300000 bytes/)
    return true
  })
  assert.ok(out.bytes().length > 0 && out.bytes().length <= limit)
  assert.equal((await plugin.callStream('echo', 'x'.repeat(1000), collector())).outputBytes, 1000)
  plugin.close()
  assert.throws(() => echo({ outputLimit: -1 }), (e) => e instanceof TypeError && /outputLimit/.test(e.message))
  assert.throws(() => echo({ outputLimit: 'lots' }), TypeError)
})

test('a plug-in that does not stream gets its whole input, and writes its output at the end', T, async () => {
  const data = logLines(5000)
  const plugin = new Plugin(pluginPath('extism_line_filter'))
  const out = collector()
  const stats = await plugin.callStream('grep', Readable.from([data.subarray(0, 1000), data.subarray(1000)]), out)
  assert.ok(out.bytes().equals(grepLines(data)))
  assert.deepEqual(stats, { inputBytes: data.length, outputBytes: out.bytes().length })
  plugin.close()
})

test('a plug-in that never reads: the call ends and the unread Readable is destroyed', T, async () => {
  const plugin = echo()
  const input = new PassThrough()
  input.write('never read')
  const out = collector()
  const stats = await plugin.callStream('never_reads', input, out)
  assert.equal(out.bytes().toString(), 'done')
  assert.equal(stats.outputBytes, 4)
  assert.ok(input.destroyed)
  plugin.close()
})

test('a streaming plug-in called the classic way', T, async () => {
  const plugin = echo()
  assert.equal((await plugin.call('read_all_then_write', 'x'.repeat(12345))).toString(), '12345')
  plugin.close()
})

test('an AbortSignal cancels a call that waits for input', T, async () => {
  const plugin = echo()
  const input = new PassThrough()
  const controller = new AbortController()
  const out = collector()
  const call = plugin.callStream('echo', input, out, { signal: controller.signal })
  input.write('x')
  await until(() => out.chunks.length > 0)
  controller.abort()
  await assert.rejects(call, (e) => e instanceof PlinthError && e.kind === 'cancelled')
  assert.equal((await plugin.call('echo', 'after')).toString(), 'after')
  const aborted = AbortSignal.abort()
  await assert.rejects(plugin.callStream('echo', 'x', collector(), { signal: aborted }), (e) => e.kind === 'cancelled')
  plugin.close()
})

test('JavaScript host functions run during a streaming call, with its hostContext', T, async () => {
  const greet = new HostFunction('greet', ['i64'], ['i64'], (plugin, [h]) =>
    plugin.writeString(`${plugin.hostContext}, ${plugin.readString(h)}`))
  const plugin = new Plugin(hostWat(), { functions: [greet] })
  const out = collector()
  await plugin.callStream('run', Readable.from(['A', 'da']), out, { hostContext: 'Hello' })
  assert.equal(out.bytes().toString(), 'Hello, Ada')
  plugin.close()
})

// An async host function that no plug-in here imports: it makes calls futures on the runtime.
const idle = () => new HostFunction('idle', [], [], async () => {})

test('plug-ins with async host functions stream as futures', T, async () => {
  const greet = new HostFunction('greet', ['i64'], ['i64'], async (plugin, [h]) => {
    const name = plugin.readString(h)
    await sleep(5)
    return plugin.writeString(`hi ${name}`)
  })
  const host = new Plugin(hostWat(), { functions: [greet] })
  const out = collector()
  await host.callStream('run', Readable.from(['A', 'da']), out)
  assert.equal(out.bytes().toString(), 'hi Ada')
  host.close()

  const plugin = echo({ functions: [idle()] })
  const input = new PassThrough()
  const echoed = collector()
  const call = plugin.callStream('echo', input, echoed)
  input.write('first')
  await until(() => echoed.chunks.length > 0)
  input.end(Buffer.alloc(3 * CHUNK, 1))
  assert.deepEqual(await call, { inputBytes: 5 + 3 * CHUNK, outputBytes: 5 + 3 * CHUNK })
  plugin.close()
})

test('with async host functions, timeout_ms covers a wait for input', T, async () => {
  const manifest = { wasm: [{ path: pluginPath('stream_echo') }], timeout_ms: 200 }
  const plugin = new Plugin(manifest, { functions: [idle()] })
  const input = new PassThrough()
  input.write('x')
  await assert.rejects(plugin.callStream('echo', input, collector()), (e) => e.kind === 'timeout')
  assert.equal((await plugin.callStream('echo', 'after', collector())).outputBytes, 5)
  plugin.close()
})

test('wrong arguments are TypeErrors', T, async () => {
  const plugin = echo()
  await assert.rejects(plugin.callStream('echo', 42, collector()), TypeError)
  await assert.rejects(plugin.callStream('echo', 'x', 42), TypeError)
  await assert.rejects(plugin.callStream('echo', [1, 2], collector()), (e) => e.kind === 'stream' && e.cause instanceof TypeError)
  await assert.rejects(plugin.callStream('missing', 'x', collector()), (e) => e.kind === 'function_not_found')
  plugin.close()
  await assert.rejects(plugin.callStream('echo', 'x', collector()), (e) => e.kind === 'closed')
})
