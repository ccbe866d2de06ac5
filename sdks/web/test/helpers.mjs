// Shared by the tests: where the example plug-ins are, and a few hand-assembled modules.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { PlinthError } from '../dist/index.js';

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const pluginDir = process.env.PLINTH_PLUGINS ?? path.join(root, 'target/wasm-plugins');

/** The bytes of an example plug-in; a missing one says how to build them. */
export function plugin(name) {
  const file = path.join(pluginDir, `${name}.wasm`);
  if (!existsSync(file)) {
    throw new Error(`missing ${file}; build the example plug-ins first: bash scripts/build-plugins.sh`);
  }
  return new Uint8Array(readFileSync(file));
}

export function pluginPath(name) {
  plugin(name);
  return path.join(pluginDir, `${name}.wasm`);
}

const header = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
const name = (s) => [s.length, ...Buffer.from(s)];

/** (module (func (export "boom") (result i32) unreachable)) */
export const trapModule = new Uint8Array([
  ...header,
  0x01, 0x05, 0x01, 0x60, 0x00, 0x01, 0x7f, // type 0: () -> i32
  0x03, 0x02, 0x01, 0x00, // func 0: type 0
  0x07, 0x08, 0x01, ...name('boom'), 0x00, 0x00, // export "boom" = func 0
  0x0a, 0x05, 0x01, 0x03, 0x00, 0x00, 0x0b, // body: unreachable
]);

/** (module (import "extism:host/user" "missing" (func)) (func (export "run") (result i32) i32.const 0)) */
export const unlinkedModule = new Uint8Array([
  ...header,
  0x01, 0x08, 0x02, 0x60, 0x00, 0x00, 0x60, 0x00, 0x01, 0x7f, // types: () -> (), () -> i32
  0x02, 0x1c, 0x01, ...name('extism:host/user'), ...name('missing'), 0x00, 0x00, // import func type 0
  0x03, 0x02, 0x01, 0x01, // func 1: type 1
  0x07, 0x07, 0x01, ...name('run'), 0x00, 0x01, // export "run" = func 1
  0x0a, 0x06, 0x01, 0x04, 0x00, 0x41, 0x00, 0x0b, // body: i32.const 0
]);

/** For assert.rejects/throws: a PlinthError of `kind` and `code` whose message matches `pattern`. */
export function isKind(kind, pattern, code = -1) {
  return (e) => hasKind(kind, pattern)(e) && (assert.equal(e.code, code, e.message), true);
}

/** Like `isKind`, whatever the error's code. */
export function hasKind(kind, pattern) {
  return (e) => {
    assert.ok(e instanceof PlinthError, `expected a PlinthError, got ${e?.stack ?? e}`);
    assert.equal(e.kind, kind, e.message);
    assert.match(e.message, pattern);
    return true;
  };
}

/**
 * A counter with a var and a wasm global, to tell vars (kept across instances) from instance state
 * (fresh in a new instance), and a host call to await or a loop to stop. `wat2wasm` of:
 *
 *   (module
 *     (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
 *     (import "extism:host/env" "store_u8" (func $store_u8 (param i64 i32)))
 *     (import "extism:host/env" "load_u8" (func $load_u8 (param i64) (result i32)))
 *     (import "extism:host/env" "var_get" (func $var_get (param i64) (result i64)))
 *     (import "extism:host/env" "var_set" (func $var_set (param i64 i64)))
 *     (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
 *     (import "extism:host/user" "wait" (func $wait))
 *     (global $calls (mut i32) (i32.const 0))
 *     (func $byte (param $v i32) (result i64) (local $h i64)
 *       (local.set $h (call $alloc (i64.const 1)))
 *       (call $store_u8 (local.get $h) (local.get $v))
 *       (local.get $h))
 *     (func $count (export "count") (result i32) (local $old i64) (local $n i32) (local $out i64)
 *       (local.set $old (call $var_get (call $byte (i32.const 110))))
 *       (if (i64.ne (local.get $old) (i64.const 0)) (then (local.set $n (call $load_u8 (local.get $old)))))
 *       (local.set $n (i32.add (local.get $n) (i32.const 1)))
 *       (global.set $calls (i32.add (global.get $calls) (i32.const 1)))
 *       (call $var_set (call $byte (i32.const 110)) (call $byte (local.get $n)))
 *       (local.set $out (call $alloc (i64.const 2)))
 *       (call $store_u8 (local.get $out) (local.get $n))
 *       (call $store_u8 (i64.add (local.get $out) (i64.const 1)) (global.get $calls))
 *       (call $output_set (local.get $out) (i64.const 2))
 *       (i32.const 0))
 *     (func (export "wait") (result i32) (call $wait) (call $count))
 *     (func (export "spin") (result i32) (loop (br 0)) (i32.const 0)))
 *
 * `count` (and `wait`, after its host call) outputs two bytes: var `n` and the instance's call
 * count, each after adding one.
 */
export const counterModule = new Uint8Array(Buffer.from('AGFzbQEAAAABIQdgAX4BfmACfn8AYAF+AX9gAn5+AGAAAGABfwF+YAABfwK3AQcPZXh0aXNtOmhvc3QvZW52BWFsbG9jAAAPZXh0aXNtOmhvc3QvZW52CHN0b3JlX3U4AAEPZXh0aXNtOmhvc3QvZW52B2xvYWRfdTgAAg9leHRpc206aG9zdC9lbnYHdmFyX2dldAAAD2V4dGlzbTpob3N0L2Vudgd2YXJfc2V0AAMPZXh0aXNtOmhvc3QvZW52Cm91dHB1dF9zZXQAAxBleHRpc206aG9zdC91c2VyBHdhaXQABAMFBAUGBgYGBgF/AUEACwcXAwVjb3VudAAIBHdhaXQACQRzcGluAAoKewQSAQF+QgEQACEBIAEgABABIAELVQMBfgF/AX5B7gAQBxADIQAgAEIAUgRAIAAQAiEBCyABQQFqIQEjAEEBaiQAQe4AEAcgARAHEARCAhAAIQIgAiABEAEgAkIBfCMAEAEgAkICEAVBAAsGABAGEAgLCQADQAwAC0EACw==', 'base64'));
