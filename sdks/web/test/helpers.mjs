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
