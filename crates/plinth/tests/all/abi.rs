//! One test per `extism:host/env` import: values and ownership rules.

use crate::common;
use crate::common::wat;
use plinth::{Error, Manifest, Plugin, Wasm};

fn load(body: &str) -> Plugin {
    Plugin::new(wat(body).as_bytes(), [], false).expect("plug-in loads")
}

fn call_u64(p: &mut Plugin, f: &str, input: &[u8]) -> u64 {
    p.call::<_, u64>(f, input).unwrap()
}

#[test]
fn alloc_and_length() {
    let mut p = load(
        r#"(func (export "len5") (result i32) (call $output_i64 (call $length (call $alloc (i64.const 5)))) (i32.const 0))
           (func (export "zero") (result i32) (call $output_i64 (call $alloc (i64.const 0))) (i32.const 0))
           (func (export "unsafe") (result i32) (call $output_i64 (call $length_unsafe (call $alloc (i64.const 7)))) (i32.const 0))
           (func (export "inner") (result i32) (call $output_i64 (call $length (i64.add (call $alloc (i64.const 16)) (i64.const 1)))) (i32.const 0))
           (func (export "distinct") (result i32)
             (call $output_i64 (i64.extend_i32_u (i64.ne (call $alloc (i64.const 1)) (call $alloc (i64.const 1))))) (i32.const 0))"#,
    );
    assert_eq!(call_u64(&mut p, "len5", b""), 5);
    assert_eq!(
        call_u64(&mut p, "zero", b""),
        0,
        "alloc(0) is the null handle"
    );
    assert_eq!(call_u64(&mut p, "unsafe", b""), 7);
    assert_eq!(
        call_u64(&mut p, "inner", b""),
        0,
        "an address inside a block is not a block"
    );
    assert_eq!(call_u64(&mut p, "distinct", b""), 1);
}

#[test]
fn alloc_beyond_the_budget_returns_zero() {
    let m = Manifest::new([Wasm::data(
        wat(r#"(func (export "f") (result i32) (call $output_i64 (call $alloc (i64.const 100000000))) (i32.const 0))"#).into_bytes(),
    )])
    .with_memory_max(4);
    let mut p = Plugin::new(m, [], false).unwrap();
    assert_eq!(call_u64(&mut p, "f", b""), 0);
}

#[test]
fn free_releases_blocks_and_the_input() {
    let mut p = load(
        r#"(func (export "free") (result i32) (local $h i64)
             (local.set $h (call $alloc (i64.const 4)))
             (call $free (local.get $h))
             (call $output_i64 (call $length (local.get $h))) (i32.const 0))
           (func (export "free_input") (result i32)
             (call $free (call $input_offset))
             (call $output_i64 (call $input_length)) (i32.const 0))
           (func (export "free_bogus") (result i32)
             (call $free (i64.const 0)) (call $free (i64.const -1)) (call $free (i64.const 3))
             (call $output_i64 (i64.const 1)) (i32.const 0))"#,
    );
    assert_eq!(call_u64(&mut p, "free", b""), 0);
    assert_eq!(
        call_u64(&mut p, "free_input", b"some input"),
        0,
        "freeing the input makes input_length 0"
    );
    assert_eq!(
        call_u64(&mut p, "free_bogus", b""),
        1,
        "bogus handles are ignored"
    );
}

#[test]
fn load_and_store_u8() {
    let mut p = load(
        r#"(func (export "f") (result i32) (local $h i64)
             (local.set $h (call $alloc (i64.const 2)))
             (call $store_u8 (i64.add (local.get $h) (i64.const 1)) (i32.const 200))
             (call $output_i64 (i64.extend_i32_u (call $load_u8 (i64.add (local.get $h) (i64.const 1))))) (i32.const 0))
           (func (export "oob") (result i32)
             (call $store_u8 (i64.const 999999999) (i32.const 1))
             (call $output_i64 (i64.extend_i32_u (call $load_u8 (i64.const 999999999)))) (i32.const 0))"#,
    );
    assert_eq!(call_u64(&mut p, "f", b""), 200);
    assert_eq!(call_u64(&mut p, "oob", b""), 0);
}

#[test]
fn load_and_store_u64_unaligned() {
    let mut p = load(
        r#"(func (export "f") (result i32) (local $h i64)
             (local.set $h (call $alloc (i64.const 16)))
             (call $store_u64 (i64.add (local.get $h) (i64.const 3)) (i64.const 0x0102030405060708))
             (call $output_i64 (call $load_u64 (i64.add (local.get $h) (i64.const 3)))) (i32.const 0))
           (func (export "bytes") (result i32) (local $h i64)
             (local.set $h (call $alloc (i64.const 8)))
             (call $store_u64 (local.get $h) (i64.const 0x0102030405060708))
             (call $output_i64 (i64.extend_i32_u (call $load_u8 (local.get $h)))) (i32.const 0))
           (func (export "oob") (result i32)
             (call $output_i64 (call $load_u64 (i64.const -8))) (i32.const 0))"#,
    );
    assert_eq!(call_u64(&mut p, "f", b""), 0x0102030405060708);
    assert_eq!(call_u64(&mut p, "bytes", b""), 8, "little-endian");
    assert_eq!(call_u64(&mut p, "oob", b""), 0);
}

#[test]
fn input_functions() {
    let mut p = load(
        r#"(func (export "echo") (result i32) (call $echo_input) (i32.const 0))
           (func (export "len") (result i32) (call $output_i64 (call $input_length)) (i32.const 0))
           (func (export "offset_len") (result i32) (call $output_i64 (call $length (call $input_offset))) (i32.const 0))
           (func (export "offset_u8") (result i32)
             (call $output_i64 (i64.extend_i32_u (call $load_u8 (i64.add (call $input_offset) (i64.const 1))))) (i32.const 0))
           (func (export "u8_past_end") (result i32)
             (call $output_i64 (i64.extend_i32_u (call $input_load_u8 (call $input_length)))) (i32.const 0))
           (func (export "u64_tail") (result i32)
             (call $output_i64 (call $input_load_u64 (i64.const 8))) (i32.const 0))"#,
    );
    let input: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
    assert_eq!(p.call::<_, Vec<u8>>("echo", &input[..]).unwrap(), input);
    assert_eq!(p.call::<_, Vec<u8>>("echo", "").unwrap(), b"");
    assert_eq!(call_u64(&mut p, "len", b"hello"), 5);
    assert_eq!(call_u64(&mut p, "offset_len", b"hello"), 5);
    assert_eq!(call_u64(&mut p, "offset_u8", b"hello"), b'e' as u64);
    assert_eq!(call_u64(&mut p, "u8_past_end", b"hello"), 0);
    // Bytes past the input read as zero, not as whatever follows it.
    assert_eq!(
        call_u64(&mut p, "u64_tail", b"0123456789"),
        u64::from_le_bytes(*b"89\0\0\0\0\0\0")
    );
}

#[test]
fn input_set_replaces_the_input() {
    let mut p = load(
        r#"(data (i32.const 0) "replaced")
           (func (export "f") (result i32)
             (call $input_set (call $copy_in (i32.const 0) (i32.const 8)) (i64.const 8))
             (call $echo_input) (i32.const 0))"#,
    );
    assert_eq!(p.call::<_, String>("f", "original").unwrap(), "replaced");
}

#[test]
fn output_set_length_and_offset() {
    let mut p = load(
        r#"(data (i32.const 0) "abcdef")
           (func (export "partial") (result i32) (local $h i64)
             (local.set $h (call $copy_in (i32.const 0) (i32.const 6)))
             (call $output_set (i64.add (local.get $h) (i64.const 1)) (i64.const 3)) (i32.const 0))
           (func (export "queries") (result i32) (local $h i64) (local $len i64) (local $off i64)
             (local.set $h (call $copy_in (i32.const 0) (i32.const 6)))
             (call $output_set (local.get $h) (i64.const 6))
             (local.set $len (call $output_length))
             (local.set $off (call $output_offset))
             (call $output_i64 (i64.add (i64.mul (local.get $len) (i64.const 1000))
                                        (i64.extend_i32_u (i64.eq (local.get $off) (local.get $h))))) (i32.const 0))
           (func (export "none") (result i32) (i32.const 0))
           (func (export "outside") (result i32) (call $output_set (i64.const 1000000) (i64.const 5)) (i32.const 0))"#,
    );
    assert_eq!(p.call::<_, String>("partial", "").unwrap(), "bcd");
    assert_eq!(call_u64(&mut p, "queries", b""), 6001);
    assert_eq!(p.call::<_, Vec<u8>>("none", "").unwrap(), b"");
    let err = p.call::<_, Vec<u8>>("outside", "").unwrap_err();
    assert!(matches!(err, Error::Memory(_)), "{err}");
    assert!(err.to_string().contains("outside"), "{err}");
}

#[test]
fn error_set_and_get() {
    let mut p = load(
        r#"(data (i32.const 0) "it went wrong")
           (func (export "fail0") (result i32) (call $fail (i32.const 0) (i32.const 13)) (i32.const 0))
           (func (export "fail7") (result i32) (call $fail (i32.const 0) (i32.const 13)) (i32.const 7))
           (func (export "code_only") (result i32) (i32.const 3))
           (func (export "cleared") (result i32)
             (call $fail (i32.const 0) (i32.const 13)) (call $error_set (i64.const 0)) (i32.const 0))
           (func (export "get") (result i32) (local $h i64)
             (local.set $h (call $copy_in (i32.const 0) (i32.const 2)))
             (call $error_set (local.get $h))
             (call $output_i64 (i64.extend_i32_u (i64.eq (call $error_get) (local.get $h))))
             (call $error_set (i64.const 0)) (i32.const 0))"#,
    );
    match p.call::<_, &[u8]>("fail0", "").unwrap_err() {
        Error::Guest { code, message, .. } => {
            assert_eq!(message, "it went wrong");
            assert_eq!(
                code, 0,
                "the returned code is kept, as in Extism; the error still fails the call"
            );
        }
        e => panic!("unexpected {e:?}"),
    }
    let e = p.call::<_, &[u8]>("fail7", "").unwrap_err();
    assert_eq!(e.code(), 7);
    assert!(e.to_string().contains("it went wrong"), "{e}");
    let e = p.call::<_, &[u8]>("code_only", "").unwrap_err();
    assert_eq!(e.code(), 3);
    assert!(e.to_string().contains("code 3"), "{e}");
    assert!(
        p.call::<_, &[u8]>("cleared", "").is_ok(),
        "error_set(0) clears the error"
    );
    assert_eq!(call_u64(&mut p, "get", b""), 1);
    // A failed call leaves the plug-in usable, and the next call starts without an error.
    assert_eq!(call_u64(&mut p, "get", b""), 1);
}

#[test]
fn reset_and_memory_bytes() {
    let mut p = load(
        r#"(func (export "reset") (result i32) (local $h i64)
             (local.set $h (call $alloc (i64.const 100)))
             (call $reset)
             (call $output_i64 (call $length (local.get $h))) (i32.const 0))
           (func (export "bytes") (result i32)
             (drop (call $alloc (i64.const 1000)))
             (call $output_i64 (i64.extend_i32_u (i64.ge_u (call $memory_bytes) (i64.const 1000)))) (i32.const 0))"#,
    );
    assert_eq!(call_u64(&mut p, "reset", b""), 0);
    assert_eq!(call_u64(&mut p, "bytes", b""), 1);
}

#[test]
fn extism_memory_is_released_between_calls() {
    let mut p = load(
        r#"(global $saved (mut i64) (i64.const 0))
           (func (export "keep") (result i32)
             (global.set $saved (call $alloc (i64.const 32))) (i32.const 0))
           (func (export "check") (result i32)
             (call $output_i64 (call $length (global.get $saved))) (i32.const 0))"#,
    );
    p.call::<_, &[u8]>("keep", "").unwrap();
    // The block from the previous call is gone; the output block of this call sits elsewhere.
    let len = call_u64(&mut p, "check", b"");
    assert_ne!(len, 32);
}

#[test]
fn config_get_returns_values_and_frees_the_key() {
    let m = Manifest::new([Wasm::data(
        wat(r#"(data (i32.const 0) "greetingmissing")
           (func (export "get") (result i32)
             (call $output_block (call $config_get (call $copy_in (i32.const 0) (i32.const 8)))) (i32.const 0))
           (func (export "missing") (result i32)
             (call $output_i64 (call $config_get (call $copy_in (i32.const 8) (i32.const 7)))) (i32.const 0))
           (func (export "key_freed") (result i32) (local $k i64)
             (local.set $k (call $copy_in (i32.const 8) (i32.const 7)))
             (drop (call $config_get (local.get $k)))
             (call $output_i64 (call $length (local.get $k))) (i32.const 0))"#)
        .into_bytes(),
    )])
    .with_config_key("greeting", "hej");
    let mut p = Plugin::new(m, [], false).unwrap();
    assert_eq!(p.call::<_, String>("get", "").unwrap(), "hej");
    assert_eq!(call_u64(&mut p, "missing", b""), 0);
    assert_eq!(call_u64(&mut p, "key_freed", b""), 0);
    // Config changes between calls are seen by the next call.
    p.set_config("greeting", "salut");
    assert_eq!(p.call::<_, String>("get", "").unwrap(), "salut");
    p.update_config([("greeting", None::<String>)]);
    assert_eq!(p.call::<_, String>("get", "").unwrap(), "");
}

const COUNTER: &str = r#"(data (i32.const 0) "count")
   (func (export "incr") (result i32) (local $v i64) (local $h i64)
     (local.set $v (call $var_get (call $copy_in (i32.const 0) (i32.const 5))))
     (if (i64.eqz (local.get $v))
       (then (local.set $h (call $alloc (i64.const 8))))
       (else (local.set $h (local.get $v))))
     (call $store_u64 (local.get $h) (i64.add (call $load_u64 (local.get $h)) (i64.const 1)))
     (call $var_set (call $copy_in (i32.const 0) (i32.const 5)) (local.get $h))
     (call $output_i64 (call $length (local.get $h))) (i32.const 0))
   (func (export "remove") (result i32)
     (call $var_set (call $copy_in (i32.const 0) (i32.const 5)) (i64.const 0)) (i32.const 0))"#;

#[test]
fn vars_persist_across_calls_and_free_their_handles() {
    let mut p = load(COUNTER);
    for i in 1..=3u64 {
        // var_set frees the value handle, so its length reads 0 afterwards.
        assert_eq!(call_u64(&mut p, "incr", b""), 0);
        assert_eq!(p.var_get("count"), Some(&i.to_le_bytes()[..]));
    }
    p.call::<_, &[u8]>("remove", "").unwrap();
    assert_eq!(p.var_get("count"), None);
    p.var_set("count", Some(&41u64.to_le_bytes())).unwrap();
    call_u64(&mut p, "incr", b"");
    assert_eq!(p.var_get("count"), Some(&42u64.to_le_bytes()[..]));
}

#[test]
fn var_store_is_capped() {
    let m = Manifest::new([Wasm::data(wat(COUNTER).into_bytes())]).with_var_max(10);
    let mut p = Plugin::new(m, [], false).unwrap();
    // "count" (5) + 8 bytes = 13 > 10.
    let err = p.call::<_, &[u8]>("incr", "").unwrap_err();
    assert!(
        matches!(err, Error::VarStoreFull { limit: 10, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("max_var_bytes"), "{err}");
    let m = Manifest::new([Wasm::data(wat(COUNTER).into_bytes())]).with_var_max(0);
    let mut p = Plugin::new(m, [], false).unwrap();
    assert!(matches!(
        p.call::<_, &[u8]>("incr", "").unwrap_err(),
        Error::VarStoreFull { .. }
    ));
    // Still callable afterwards.
    assert!(p.call::<_, &[u8]>("remove", "").is_ok());
}

#[test]
fn legacy_env_names_link() {
    let module = r#"(module
      (import "env" "extism_input_length" (func $len (result i64)))
      (import "env" "extism_alloc" (func $alloc (param i64) (result i64)))
      (import "env" "extism_store_u64" (func $store (param i64 i64)))
      (import "env" "extism_output_set" (func $out (param i64 i64)))
      (func (export "f") (result i32) (local $h i64)
        (local.set $h (call $alloc (i64.const 8)))
        (call $store (local.get $h) (call $len))
        (call $out (local.get $h) (i64.const 8)) (i32.const 0)))"#;
    let mut p = Plugin::new(module, [], false).unwrap();
    assert_eq!(p.call::<_, u64>("f", "four").unwrap(), 4);
}

/// The hot imports are fused into the plug-in; calls through a table still reach the host's
/// own versions. Both must give the same answers on every edge.
#[test]
fn fused_and_host_functions_agree() {
    let addrs: [i64; 16] = [
        0,
        1,
        7,
        8,
        9,
        15,
        16,
        100,
        65535,
        65536,
        0x7fff_ffff,
        0xffff_ffff,
        0x1_0000_0000,
        -1,
        -8,
        -9,
    ];
    let data: String = addrs
        .iter()
        .flat_map(|a| a.to_le_bytes())
        .map(|b| format!("\\{b:02x}"))
        .collect();
    let body = format!(
        r#"(type $to_i64 (func (param i64) (result i64)))
           (type $to_i32 (func (param i64) (result i32)))
           (table 4 funcref)
           (elem (i32.const 0) $load_u64 $load_u8 $input_load_u64 $input_load_u8)
           (data (i32.const 0) "{data}")
           (func $check (param $a i64) (result i64)
             (i64.add
               (i64.add
                 (i64.extend_i32_u (i64.ne (call $load_u64 (local.get $a))
                   (call_indirect (type $to_i64) (local.get $a) (i32.const 0))))
                 (i64.extend_i32_u (i32.ne (call $load_u8 (local.get $a))
                   (call_indirect (type $to_i32) (local.get $a) (i32.const 1)))))
               (i64.add
                 (i64.extend_i32_u (i64.ne (call $input_load_u64 (local.get $a))
                   (call_indirect (type $to_i64) (local.get $a) (i32.const 2))))
                 (i64.extend_i32_u (i32.ne (call $input_load_u8 (local.get $a))
                   (call_indirect (type $to_i32) (local.get $a) (i32.const 3)))))))
           (func (export "compare") (result i32) (local $i i32) (local $bad i64) (local $h i64) (local $size i64)
             ;; Fill a block with a pattern so that loads see non-zero bytes.
             (local.set $h (call $alloc (i64.const 64)))
             (loop $fill
               (call $store_u8 (i64.add (local.get $h) (i64.extend_i32_u (local.get $i))) (i32.add (local.get $i) (i32.const 1)))
               (local.set $i (i32.add (local.get $i) (i32.const 1)))
               (br_if $fill (i32.lt_u (local.get $i) (i32.const 64))))
             ;; Fixed addresses.
             (local.set $i (i32.const 0))
             (loop $fixed
               (local.set $bad (i64.add (local.get $bad) (call $check (i64.load (i32.mul (local.get $i) (i32.const 8))))))
               (local.set $i (i32.add (local.get $i) (i32.const 1)))
               (br_if $fixed (i32.lt_u (local.get $i) (i32.const 16))))
             ;; Around the end of Extism memory, around the block, and every input offset.
             (local.set $size (call $memory_bytes))
             (local.set $i (i32.const 0))
             (loop $edges
               (local.set $bad (i64.add (local.get $bad)
                 (call $check (i64.sub (local.get $size) (i64.extend_i32_u (local.get $i))))))
               (local.set $bad (i64.add (local.get $bad)
                 (call $check (i64.add (local.get $h) (i64.extend_i32_u (local.get $i))))))
               (local.set $bad (i64.add (local.get $bad) (call $check (i64.extend_i32_u (local.get $i)))))
               (local.set $i (i32.add (local.get $i) (i32.const 1)))
               (br_if $edges (i32.lt_u (local.get $i) (i32.const 80))))
             ;; A store through each path is seen by the other.
             (call $store_u64 (i64.sub (local.get $size) (i64.const 8)) (i64.const 0x1122334455667788))
             (if (i64.ne (call_indirect (type $to_i64) (i64.sub (local.get $size) (i64.const 8)) (i32.const 0))
                         (i64.const 0x1122334455667788))
               (then (local.set $bad (i64.add (local.get $bad) (i64.const 1000)))))
             (call $store_u64 (i64.sub (local.get $size) (i64.const 7)) (i64.const -1))
             (if (i32.ne (call $load_u8 (i64.sub (local.get $size) (i64.const 1))) (i32.const 0x11))
               (then (local.set $bad (i64.add (local.get $bad) (i64.const 1000)))))
             (call $output_i64 (local.get $bad)) (i32.const 0))"#
    );
    let mut p = load(&body);
    // Inputs of several lengths, so that the tail reads (1..7 bytes) are all compared.
    for len in [0usize, 1, 7, 8, 13, 64, 71] {
        let input: Vec<u8> = (1..=len as u8).collect();
        assert_eq!(call_u64(&mut p, "compare", &input), 0, "input length {len}");
    }
}

/// A guest that owns the key it allocated frees it after `config_get`, as Extism's Haskell PDK
/// does. The value must survive that: the host frees the key itself, so the value must not be
/// put in the key's block (Extism returns a new block too).
#[test]
fn config_get_value_survives_the_guest_freeing_its_key() {
    let m = Manifest::new([Wasm::data(
        wat(r#"(data (i32.const 0) "greeting")
           (func (export "get") (result i32) (local $k i64) (local $v i64)
             (local.set $k (call $copy_in (i32.const 0) (i32.const 8)))
             (local.set $v (call $config_get (local.get $k)))
             (call $free (local.get $k))
             (call $output_block (local.get $v)) (i32.const 0))"#)
        .into_bytes(),
    )])
    .with_config_key("greeting", "Howdy");
    let mut p = Plugin::new(m, [], false).unwrap();
    assert_eq!(p.call::<_, String>("get", "John").unwrap(), "Howdy");
}

#[test]
fn var_get_value_survives_the_guest_freeing_its_key() {
    let mut p = load(
        r#"(data (i32.const 0) "name")
           (func (export "get") (result i32) (local $k i64) (local $v i64)
             (local.set $k (call $copy_in (i32.const 0) (i32.const 4)))
             (local.set $v (call $var_get (local.get $k)))
             (call $free (local.get $k))
             (call $output_block (local.get $v)) (i32.const 0))"#,
    );
    p.var_set("name", Some(b"Ada")).unwrap();
    assert_eq!(p.call::<_, String>("get", "").unwrap(), "Ada");
}

#[test]
fn var_set_then_guest_free_of_both_handles_keeps_the_var() {
    let mut p = load(
        r#"(data (i32.const 0) "namevalue")
           (func (export "set") (result i32) (local $k i64) (local $v i64)
             (local.set $k (call $copy_in (i32.const 0) (i32.const 4)))
             (local.set $v (call $copy_in (i32.const 4) (i32.const 5)))
             (call $var_set (local.get $k) (local.get $v))
             (call $free (local.get $k))
             (call $free (local.get $v))
             (call $output_i64 (i64.const 1)) (i32.const 0))"#,
    );
    assert_eq!(call_u64(&mut p, "set", b""), 1);
    assert_eq!(p.var_get("name"), Some(&b"value"[..]));
}

#[test]
fn http_response_survives_the_guest_freeing_its_request() {
    let server = common::HttpServer::start();
    let req = format!(
        r#"{{"url":"http://127.0.0.1:{}/hello","method":"GET"}}"#,
        server.port
    );
    let m = Manifest::new([Wasm::data(
        wat(r#"(func (export "get") (result i32) (local $r i64) (local $resp i64)
             (local.set $r (call $alloc (call $input_length)))
             (call $copy_input_to (local.get $r))
             (local.set $resp (call $http_request (local.get $r) (i64.const 0)))
             (call $free (local.get $r))
             (call $output_block (local.get $resp)) (i32.const 0))
           (func $copy_input_to (param $h i64) (local $i i64)
             (block $d (loop $l
               (br_if $d (i64.ge_u (local.get $i) (call $input_length)))
               (call $store_u8 (i64.add (local.get $h) (local.get $i)) (call $input_load_u8 (local.get $i)))
               (local.set $i (i64.add (local.get $i) (i64.const 1)))
               (br $l))))"#)
        .into_bytes(),
    )])
    .with_allowed_host("127.0.0.1");
    let mut p = Plugin::new(m, [], false).unwrap();
    assert_eq!(
        p.call::<_, String>("get", req.as_str()).unwrap(),
        "hello from the server"
    );
}

#[path = "../../../../fuzz/interpreter.rs"]
mod interpreter;

/// The differential interpreter (also a fuzz target, `fused_vs_host`) on edge programs and on
/// pseudo-random ones: fused, indirect (host functions over fused memory) and legacy
/// (unfused) forms give the same log, or all trap.
#[test]
fn fused_and_host_functions_agree_on_random_programs() {
    use interpreter::{interpreter, op, outcome, Form};
    let mut forms =
        Form::ALL.map(|f| Plugin::new(interpreter(f).as_bytes(), [], false).expect("loads"));
    let mut run_all = |program: &[u8]| {
        let outcomes: Vec<Result<Vec<u8>, String>> =
            forms.iter_mut().map(|p| outcome(p, program)).collect();
        assert_eq!(outcomes[0], outcomes[1], "fused vs host: {program:?}");
        assert_eq!(outcomes[1], outcomes[2], "fused vs legacy: {program:?}");
        outcomes.into_iter().next().unwrap()
    };
    let edges: [u64; 12] = [
        0,
        1,
        15,
        16,
        17,
        65535,
        65536,
        0xffff_fff8,
        0xffff_ffff,
        1 << 32,
        u64::MAX - 7,
        u64::MAX,
    ];
    // Edge programs: every single-address operation at every edge, after an allocation.
    let mut any_ok = false;
    for code in 1u8..=13 {
        for &a in &edges {
            for &len in &[0u64, 1, 8] {
                let mut program = op(0, 100, 0, 0);
                program.extend(op(code, a, 7, len));
                program.extend(op(code | 0x40, a, 7, len));
                any_ok |= run_all(&program).is_ok();
            }
        }
    }
    assert!(any_ok, "some edge programs run to the end");
    // The fuzz target's seeds and any regression inputs saved beside them.
    let seeds =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds/fused_vs_host");
    let mut replayed = 0;
    for entry in std::fs::read_dir(&seeds).expect("the fuzz seeds") {
        let _outcome = run_all(&std::fs::read(entry.unwrap().path()).unwrap());
        replayed += 1;
    }
    assert!(replayed >= 3, "{replayed} seeds in {}", seeds.display());
    // Pseudo-random programs (xorshift, fixed seed): ops with every mode, arguments drawn
    // from the edges, small numbers and anything.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut oks = 0;
    for _ in 0..300 {
        let mut program = Vec::new();
        for _ in 0..(next() % 40) {
            let arg = |r: u64| match r % 3 {
                0 => edges[(r / 3 % edges.len() as u64) as usize],
                1 => r >> 40,
                _ => r,
            };
            let code = (next() % 14) as u8 | (next() as u8 & 0xe0);
            let (a, b, c) = (arg(next()), arg(next()), arg(next()));
            program.extend(op(code, a, b, c));
        }
        oks += run_all(&program).is_ok() as u32;
    }
    assert!(oks > 30, "enough random programs run to the end: {oks}");
}
