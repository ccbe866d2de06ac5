//! The differential interpreter plug-in (see `fuzz_targets/fused_vs_host.rs`), shared by the
//! fuzz target and the workspace test `crates/plinth/tests/all/abi.rs`, which runs it on fixed
//! and pseudo-random programs in every CI run.
//!
//! One interpreter plug-in, in three forms:
//! - `Fused`: calls the `extism:host/env` and `plinth:host/env` imports directly, so the hot
//!   ones are spliced in and the bulk copies become `memory.copy`;
//! - `Indirect`: the same module, but every ABI call goes through a table, which reaches the
//!   host functions over the same fused Extism memory;
//! - `Legacy`: the legacy `env` names, never fused, and a 64-bit memory 0, so that the bulk
//!   copies are not fused either: host functions over a memory the host makes.
//!
//! Its input is also its program: 25-byte operations (an opcode and three little-endian u64
//! arguments) that allocate, free, load, store, read the input and copy in bulk, logging every
//! result; the log is the output. All three forms must give the same log, or all trap.

use plinth::abi::{self, Ty};

/// The ABI functions the interpreter uses, by namespace and name; their types come from the
/// runtime's ABI table.
const ABI: &[(&str, &str)] = &[
    (abi::ENV, "alloc"),
    (abi::ENV, "free"),
    (abi::ENV, "length"),
    (abi::ENV, "load_u8"),
    (abi::ENV, "load_u64"),
    (abi::ENV, "store_u8"),
    (abi::ENV, "store_u64"),
    (abi::ENV, "input_length"),
    (abi::ENV, "input_load_u8"),
    (abi::ENV, "input_load_u64"),
    (abi::ENV, "memory_bytes"),
    (abi::ENV, "output_set"),
    (abi::PLINTH_ENV, "input_read"),
    (abi::PLINTH_ENV, "read"),
    (abi::PLINTH_ENV, "write"),
];

/// The WAT type name of an ABI function's signature: `$i64_i64` for `(i64) -> i64`.
fn type_name(ns: &str, name: &str) -> String {
    let f = abi::find(ns, name).unwrap_or_else(|| panic!("{ns}::{name} is not in the ABI"));
    let list = |tys: &[Ty]| tys.iter().map(|t| t.wat()).collect::<String>();
    format!("${}_{}", list(f.params), list(f.results))
}

/// A type declaration for each signature the interpreter's imports use.
fn types() -> String {
    let mut out = String::new();
    let mut seen = Vec::new();
    for (ns, name) in ABI {
        let ty = type_name(ns, name);
        if seen.contains(&ty) {
            continue;
        }
        let f = abi::find(ns, name).expect("checked by type_name");
        let list = |tys: &[Ty]| tys.iter().map(|t| t.wat()).collect::<Vec<_>>().join(" ");
        out.push_str(&format!(
            "\n  (type {ty} (func (param {}) (result {})))",
            list(f.params),
            list(f.results)
        ));
        seen.push(ty);
    }
    out
}

#[derive(Clone, Copy, PartialEq, Debug)]
pub enum Form {
    Fused,
    Indirect,
    Legacy,
}

impl Form {
    pub const ALL: [Form; 3] = [Form::Fused, Form::Indirect, Form::Legacy];
}

/// The interpreter module in one of its forms.
pub fn interpreter(form: Form) -> String {
    let mut imports = String::new();
    for (ns, name) in ABI {
        let ty = type_name(ns, name);
        let (module, field) = match form {
            Form::Legacy if *ns == abi::ENV => (
                abi::LEGACY_ENV.to_string(),
                format!("{}{name}", abi::LEGACY_PREFIX),
            ),
            _ => (ns.to_string(), name.to_string()),
        };
        imports.push_str(&format!(
            "  (import \"{module}\" \"{field}\" (func ${name} (type {ty})))\n"
        ));
    }
    let names: Vec<String> = ABI.iter().map(|(_, n)| format!("${n}")).collect();
    // `abi!(name args)`: a direct call in the fused form, else through the table (the host
    // functions). Reading the program and writing the log always go through the table, so
    // that only the operations under test differ between the forms.
    let abi = |name: &str, args: &str, under_test: bool| -> String {
        let index = ABI.iter().position(|(_, n)| *n == name).unwrap();
        let ty = type_name(ABI[index].0, name);
        if under_test && form == Form::Fused {
            format!("(call ${name} {args})")
        } else {
            format!("(call_indirect (type {ty}) {args} (i32.const {index}))")
        }
    };
    let t = |name: &str, args: &str| abi(name, args, true);
    // The interpreter's own addresses are i32; a 64-bit memory takes them widened.
    let addr = |e: &str| match form {
        Form::Legacy => format!("(i64.extend_i32_u {e})"),
        _ => e.to_string(),
    };
    let host = |name: &str, args: &str| abi(name, args, false);
    let types = types();
    format!(
        r#"(module
{types}
{imports}
  (memory (export "memory") {memory_type} 2)
  (table {n} funcref)
  (elem (i32.const 0) {elems})
  ;; Scratch for bulk copies: [0, 64 KiB). The log: from 64 KiB, 8 bytes an entry.
  (global $log (mut i32) (i32.const 65536))
  (func $log (param $v i64)
    (if (i32.lt_u (global.get $log) (i32.const 131064))
      (then (i64.store {log_addr} (local.get $v))
            (global.set $log (i32.add (global.get $log) (i32.const 8))))))
  (func $scratch_sum (result i64) (local $i i32) (local $s i64)
    (loop $l
      (local.set $s (i64.add (i64.rotl (local.get $s) (i64.const 7)) (i64.load {i_addr})))
      (local.set $i (i32.add (local.get $i) (i32.const 8)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 65536))))
    (local.get $s))
  (func (export "run") (result i32)
    (local $pc i64) (local $n i64) (local $op i32) (local $a i64) (local $b i64) (local $c i64)
    (local $last i64) (local $out i64) (local $i i32)
    (local.set $n {input_length})
    (block $done (loop $next
      (br_if $done (i64.gt_u (i64.add (local.get $pc) (i64.const 25)) (local.get $n)))
      (local.set $op {op_byte})
      (local.set $a {arg_a})
      (local.set $b {arg_b})
      (local.set $c {arg_c})
      (local.set $pc (i64.add (local.get $pc) (i64.const 25)))
      ;; Modes: 0x80 addresses relative to the last block, 0x40 small copy ranges, 0x20 small
      ;; Extism addresses.
      (if (i32.and (local.get $op) (i32.const 0x80))
        (then (local.set $a (i64.add (local.get $last) (i64.and (local.get $a) (i64.const 0xff))))))
      (if (i32.and (local.get $op) (i32.const 0x40))
        (then (local.set $b (i64.and (local.get $b) (i64.const 0x7fff)))
              (local.set $c (i64.and (local.get $c) (i64.const 0x3ff)))))
      (if (i32.and (local.get $op) (i32.const 0x20))
        (then (local.set $a (i64.and (local.get $a) (i64.const 0xffff)))))
      (block $op0 (block $op1 (block $op2 (block $op3 (block $op4 (block $op5 (block $op6
      (block $op7 (block $op8 (block $op9 (block $op10 (block $op11 (block $op12 (block $op13
        (br_table $op0 $op1 $op2 $op3 $op4 $op5 $op6 $op7 $op8 $op9 $op10 $op11 $op12 $op13 $op0
          (i32.rem_u (i32.and (local.get $op) (i32.const 0x1f)) (i32.const 14))))
        ;; 13: input_read
        {input_read}
        (call $log (call $scratch_sum)) (br $next))
        ;; 12: write
        {write} (br $next))
        ;; 11: read
        {read}
        (call $log (call $scratch_sum)) (br $next))
        (call $log {memory_bytes}) (br $next))
        (call $log {input_length_t}) (br $next))
        (call $log {input_load_u64}) (br $next))
        (call $log (i64.extend_i32_u {input_load_u8})) (br $next))
        {store_u64} (br $next))
        {store_u8} (br $next))
        (call $log {load_u64}) (br $next))
        (call $log (i64.extend_i32_u {load_u8})) (br $next))
        (call $log {length}) (br $next))
        {free} (br $next))
      ;; 0: alloc
      (local.set $last {alloc})
      (call $log (local.get $last))
      (br $next)))
    ;; The log becomes the output, through the host functions.
    (local.set $out {out_alloc})
    (local.set $i (i32.const 65536))
    (block $d (loop $l
      (br_if $d (i32.ge_u (local.get $i) (global.get $log)))
      {out_store}
      (local.set $i (i32.add (local.get $i) (i32.const 8)))
      (br $l)))
    {out_set}
    (i32.const 0)))"#,
        n = ABI.len(),
        memory_type = if form == Form::Legacy { "i64" } else { "" },
        log_addr = addr("(global.get $log)"),
        i_addr = addr("(local.get $i)"),
        elems = names.join(" "),
        input_length = host("input_length", ""),
        op_byte = host("input_load_u8", "(local.get $pc)"),
        arg_a = host("input_load_u64", "(i64.add (local.get $pc) (i64.const 1))"),
        arg_b = host("input_load_u64", "(i64.add (local.get $pc) (i64.const 9))"),
        arg_c = host("input_load_u64", "(i64.add (local.get $pc) (i64.const 17))"),
        input_read = t(
            "input_read",
            "(local.get $a) (i32.wrap_i64 (local.get $b)) (i32.wrap_i64 (local.get $c))"
        ),
        write = t(
            "write",
            "(local.get $a) (i32.wrap_i64 (local.get $b)) (i32.wrap_i64 (local.get $c))"
        ),
        read = t(
            "read",
            "(local.get $a) (i32.wrap_i64 (local.get $b)) (i32.wrap_i64 (local.get $c))"
        ),
        memory_bytes = t("memory_bytes", ""),
        input_length_t = t("input_length", ""),
        input_load_u64 = t("input_load_u64", "(local.get $a)"),
        input_load_u8 = t("input_load_u8", "(local.get $a)"),
        store_u64 = t("store_u64", "(local.get $a) (local.get $b)"),
        store_u8 = t("store_u8", "(local.get $a) (i32.wrap_i64 (local.get $b))"),
        load_u64 = t("load_u64", "(local.get $a)"),
        load_u8 = t("load_u8", "(local.get $a)"),
        length = t("length", "(local.get $a)"),
        free = t("free", "(local.get $a)"),
        alloc = t("alloc", "(i64.and (local.get $a) (i64.const 0xfffff))"),
        out_alloc = host("alloc", "(i64.extend_i32_u (i32.sub (global.get $log) (i32.const 65536)))"),
        out_store = host(
            "store_u64",
            &format!(
                "(i64.add (local.get $out) (i64.extend_i32_u (i32.sub (local.get $i) (i32.const 65536)))) (i64.load {})",
                addr("(local.get $i)")
            ),
        ),
        out_set = host(
            "output_set",
            "(local.get $out) (i64.extend_i32_u (i32.sub (global.get $log) (i32.const 65536)))"
        ),
    )
}

/// One operation of a program: `op` (low 5 bits: which; 0x80, 0x40, 0x20: address modes)
/// and its arguments.
// Used by the workspace test to write programs; the fuzz target gets its programs made.
#[allow(dead_code)]
pub fn op(op: u8, a: u64, b: u64, c: u64) -> Vec<u8> {
    let mut v = vec![op];
    for x in [a, b, c] {
        v.extend_from_slice(&x.to_le_bytes());
    }
    v
}

/// What one form made of `program`: the log, or how it failed (a trap, or another failure by
/// kind: messages may word the same failure differently).
pub fn outcome(plugin: &mut plinth::Plugin, program: &[u8]) -> Result<Vec<u8>, String> {
    match plugin.call::<_, Vec<u8>>("run", program) {
        Ok(log) => Ok(log),
        Err(plinth::Error::Trap { .. }) => Err("trap".into()),
        Err(other) => Err(format!("{:?}", std::mem::discriminant(&other))),
    }
}
