// WAT compiled with wabt for the tests that need small modules of their own (no plug-in rebuilds).
import wabtInit from 'wabt';

const wabt = await wabtInit();

/** The wasm bytes of WAT text. */
export function wat(text) {
  const parsed = wabt.parseWat('test.wat', text);
  try {
    parsed.resolveNames();
    parsed.validate();
    return new Uint8Array(parsed.toBinary({}).buffer);
  } finally {
    parsed.destroy();
  }
}

/** The Extism ABI imports a main module below uses, by local name. */
export const extismImports = `
  (import "extism:host/env" "input_length" (func $input_length (result i64)))
  (import "extism:host/env" "input_load_u8" (func $input_load_u8 (param i64) (result i32)))
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "store_u8" (func $store_u8 (param i64 i32)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))`;

/**
 * A main module whose `run` maps each input byte through `$map` (an import from `from`) into
 * its output.
 */
export function mapperMain(from, name = 'double') {
  return wat(`(module ${extismImports}
    (import "${from}" "${name}" (func $map (param i32) (result i32)))
    (memory (export "memory") 1)
    (func (export "run") (result i32)
      (local $n i64) (local $i i64) (local $out i64)
      (local.set $n (call $input_length))
      (local.set $out (call $alloc (local.get $n)))
      (block $done
        (loop $next
          (br_if $done (i64.ge_u (local.get $i) (local.get $n)))
          (call $store_u8 (i64.add (local.get $out) (local.get $i))
            (call $map (call $input_load_u8 (local.get $i))))
          (local.set $i (i64.add (local.get $i) (i64.const 1)))
          (br $next)))
      (call $output_set (local.get $out) (local.get $n))
      (i32.const 0)))`);
}

/** A library: (func (export "double") (param i32) (result i32)) */
export const doubleLib = wat(`(module
  (func (export "double") (param i32) (result i32) (i32.mul (local.get 0) (i32.const 2))))`);
