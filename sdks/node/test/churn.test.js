'use strict'
// Creates, calls and closes many plug-ins: resident memory must stay bounded.
const test = require('node:test')
const assert = require('node:assert/strict')
const { Plugin, CompiledPlugin, HostFunction } = require('..')
const { pluginBytes, json, gc, rssKiB } = require('./helper')

const ITERATIONS = Number(process.env.PLINTH_CHURN || 1000)
// RSS growth allowed over the loop (KiB).
const LIMIT_KIB = 16 * 1024

test(`create, call and close ${ITERATIONS} plug-ins without growing RSS`, async () => {
  const compiled = new CompiledPlugin(pluginBytes('count_vowels'))
  const greet = new HostFunction('greet', ['i64'], ['i64'], (cp, [h]) => cp.writeString(cp.readString(h)))
  const host = new Plugin(pluginBytes('host_greet'), { functions: [greet] })
  const cycle = async (i) => {
    const p = compiled.instance()
    const out = i % 2 ? json(p.callSync('count_vowels', 'churn')) : json(await p.call('count_vowels', 'churn'))
    if (out.count !== 1) throw new Error('bad output')
    p.close()
    if ((await host.callString('call_greet', 'x')) !== 'x') throw new Error('bad greeting')
  }
  for (let i = 0; i < 200; i++) await cycle(i) // warm up allocators and caches
  gc()
  const before = rssKiB()
  for (let i = 0; i < ITERATIONS; i++) await cycle(i)
  gc()
  const after = rssKiB()
  const growth = after - before
  if (process.env.VERBOSE) console.log(`churn: ${ITERATIONS} instances, RSS ${before} KiB -> ${after} KiB (${growth} KiB)`)
  assert.ok(growth < LIMIT_KIB, `RSS grew by ${growth} KiB over ${ITERATIONS} instances`)

  // Plug-ins that are never closed are freed by the garbage collector.
  const tiny = Buffer.from('(module (func (export "ok") (result i32) (i32.const 0)))')
  const unclosed = async (n) => {
    for (let i = 0; i < n; i++) {
      new Plugin(tiny).callSync('ok')
      if (i % 100 === 0) gc()
    }
    for (let i = 0; i < 3; i++) {
      gc()
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
  }
  await unclosed(ITERATIONS) // warm up: the allocators reach their high-water mark
  const beforeUnclosed = rssKiB()
  await unclosed(ITERATIONS)
  const unclosedGrowth = rssKiB() - beforeUnclosed
  if (process.env.VERBOSE) console.log(`unclosed: ${ITERATIONS} plug-ins, RSS grew ${unclosedGrowth} KiB`)
  assert.ok(unclosedGrowth < LIMIT_KIB, `RSS grew by ${unclosedGrowth} KiB over ${ITERATIONS} unclosed plug-ins`)
  host.close()
  compiled.close()
})
