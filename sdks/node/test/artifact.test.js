'use strict'
// Precompiled artifacts (CompiledPlugin.compileArtifact, CompiledPlugin.fromArtifact,
// isPrecompiled) and fresh calls (CompiledPlugin.callFresh).
const test = require('node:test')
const assert = require('node:assert/strict')
const { CompiledPlugin, HostFunction, PlinthError } = require('..')
const { pluginPath, pluginBytes, hostWat, json } = require('./helper')

const KEY = Buffer.from('0123456789abcdef0123456789abcdef')

// count adds one to a global and outputs it as a digit: a kept instance answers 1, 2, 3, a
// fresh instance always 1.
const COUNTER_WAT = Buffer.from(`
(module
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "store_u8" (func $store_u8 (param i64 i32)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
  (memory 1) (global $n (mut i32) (i32.const 0))
  (func (export "count") (result i32) (local $h i64)
    (global.set $n (i32.add (global.get $n) (i32.const 1)))
    (local.set $h (call $alloc (i64.const 1)))
    (call $store_u8 (local.get $h) (i32.add (i32.const 48) (global.get $n)))
    (call $output_set (local.get $h) (i64.const 1)) (i32.const 0))
  (func (export "trap") (result i32) unreachable))
`)

const artifactError = (e) => {
  assert.ok(e instanceof PlinthError, `expected a PlinthError, got ${e}`)
  assert.deepEqual([e.kind, e.kindCode, e.code], ['artifact', 25, -1], e.message)
  return true
}

test('an artifact round trip', async () => {
  const artifact = CompiledPlugin.compileArtifact(pluginPath('count_vowels'), KEY)
  assert.ok(Buffer.isBuffer(artifact))
  assert.equal(artifact.subarray(0, 15).toString(), 'plinth artifact')
  const compiled = CompiledPlugin.fromArtifact(artifact, KEY)
  assert.equal(compiled.isPrecompiled, true)
  assert.equal(json(await compiled.callFresh('count_vowels', 'Hello, world')).count, 3)
  const instance = compiled.instance()
  assert.equal(json(instance.callSync('count_vowels', 'aaa')).count, 3)
  instance.close()
  // A Uint8Array works as well as a Buffer.
  assert.equal(CompiledPlugin.fromArtifact(new Uint8Array(artifact), new Uint8Array(KEY)).isPrecompiled, true)
  assert.equal(new CompiledPlugin(pluginBytes('count_vowels')).isPrecompiled, false)
  compiled.close()
  assert.equal(compiled.isPrecompiled, false, 'closed')
  assert.throws(() => compiled.callFresh('count_vowels'), (e) => e instanceof PlinthError && e.kind === 'closed')
})

test('a refused artifact throws kind "artifact"', () => {
  const artifact = CompiledPlugin.compileArtifact(pluginBytes('count_vowels'), KEY)
  for (const at of [0, 40, artifact.length >> 1, artifact.length - 1]) {
    const tampered = Buffer.from(artifact)
    tampered[at] ^= 1
    assert.throws(() => CompiledPlugin.fromArtifact(tampered, KEY), artifactError, `byte ${at}`)
  }
  assert.throws(() => CompiledPlugin.fromArtifact(artifact, Buffer.from('fedcba9876543210fedcba9876543210')),
    (e) => artifactError(e) && /another key/.test(e.message))
  assert.throws(() => CompiledPlugin.fromArtifact(artifact.subarray(0, artifact.length - 7), KEY), artifactError)
  assert.throws(() => CompiledPlugin.fromArtifact(pluginBytes('count_vowels'), KEY), artifactError)
  assert.throws(() => CompiledPlugin.compileArtifact(pluginBytes('count_vowels'), Buffer.from('short')), artifactError)
  assert.throws(() => CompiledPlugin.compileArtifact(Buffer.from('not wasm'), KEY),
    (e) => e instanceof PlinthError && e.kind === 'compile')
  assert.throws(() => CompiledPlugin.fromArtifact(artifact, 'a string is no key'), TypeError)
  assert.equal(new PlinthError('', 'artifact').kindCode, 25)
})

test('callFresh isolates calls', async () => {
  const compiled = new CompiledPlugin(COUNTER_WAT)
  const kept = compiled.instance()
  assert.deepEqual([1, 2, 3].map(() => kept.callStringSync('count')), ['1', '2', '3'])
  kept.close()
  const fromArtifact = CompiledPlugin.fromArtifact(CompiledPlugin.compileArtifact(COUNTER_WAT, KEY), KEY)
  const outs = await Promise.all(
    Array.from({ length: 40 }, (_, i) => (i % 2 ? fromArtifact : compiled).callFresh('count')),
  )
  assert.deepEqual(outs.map(String), Array(40).fill('1'))
  await assert.rejects(fromArtifact.callFresh('trap'),
    (e) => e instanceof PlinthError && e.kind === 'trap' && e.code === 134)
  await assert.rejects(fromArtifact.callFresh('missing'),
    (e) => e instanceof PlinthError && e.kind === 'function_not_found' && e.code === -1)
})

test('callFresh with host functions', async () => {
  const greet = new HostFunction('greet', ['i64'], ['i64'], (cp, [h]) => {
    const name = cp.readString(h)
    if (name === 'bad') throw new RangeError('no bad names')
    return cp.writeString(`${cp.hostContext ?? 'Hello'}, ${name}`)
  })
  const artifact = CompiledPlugin.compileArtifact(hostWat(), KEY, { functions: [greet] })
  const compiled = CompiledPlugin.fromArtifact(artifact, KEY, { functions: [greet] })
  assert.equal(String(await compiled.callFresh('run', 'Ada')), 'Hello, Ada')
  assert.equal(String(await compiled.callFresh('run', 'Bob', { hostContext: 'Howdy' })), 'Howdy, Bob')
  await assert.rejects(compiled.callFresh('run', 'bad'),
    (e) => e instanceof PlinthError && e.kind === 'host_function' && e.cause instanceof RangeError)
  assert.throws(() => CompiledPlugin.compileArtifact(hostWat(), KEY), (e) => e instanceof PlinthError && e.kind === 'link')
})
