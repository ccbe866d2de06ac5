'use strict'
// Shared by the tests: where the example plug-ins are, small hostile WAT plug-ins, and GC/RSS
// helpers.
const fs = require('node:fs')
const path = require('node:path')
const v8 = require('node:v8')
const vm = require('node:vm')

const ROOT = path.resolve(__dirname, '../../..')
const PLUGINS = process.env.PLINTH_PLUGINS || path.join(ROOT, 'target/wasm-plugins')

function pluginPath(name) {
  return path.join(PLUGINS, `${name}.wasm`)
}

function pluginBytes(name) {
  return fs.readFileSync(pluginPath(name))
}

// An endless loop, unbounded memory growth, and a function that does nothing.
const HOSTILE_WAT = Buffer.from(`
(module
  (memory 1)
  (func (export "spin") (result i32) (loop $l (br $l)) (i32.const 0))
  (func (export "grow") (result i32)
    (loop $l (br_if $l (i32.ne (memory.grow (i32.const 1)) (i32.const -1))))
    unreachable)
  (func (export "boom") (result i32) unreachable)
  (func (export "ok") (result i32) (i32.const 0)))
`)

// Imports `greet` (i64 -> i64) from `namespace` and outputs what it returns for the input.
function hostWat(namespace = 'extism:host/user') {
  return Buffer.from(`
(module
  (import "${namespace}" "greet" (func $greet (param i64) (result i64)))
  (import "extism:host/env" "input_offset" (func $input_offset (result i64)))
  (import "extism:host/env" "length" (func $length (param i64) (result i64)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
  (memory 1)
  (func (export "run") (result i32) (local $h i64)
    (local.set $h (call $greet (call $input_offset)))
    (call $output_set (local.get $h) (call $length (local.get $h))) (i32.const 0)))
`)
}

const json = (buf) => JSON.parse(buf.toString('utf8'))

// The collector, without starting node with --expose-gc.
v8.setFlagsFromString('--expose-gc')
const gc = vm.runInNewContext('gc')

const rssKiB = () => Math.round(process.memoryUsage.rss() / 1024)

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

module.exports = { ROOT, pluginPath, pluginBytes, HOSTILE_WAT, hostWat, json, gc, rssKiB, sleep }
