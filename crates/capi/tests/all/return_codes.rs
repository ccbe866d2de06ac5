//! `extism_plugin_call`'s return codes, case by case, against what Extism returns (the table
//! in docs/extism-compat.md).

use std::ffi::{c_char, CStr};
use std::ptr::{null, null_mut};

use plinth_capi::*;

const PLUGIN: &str = r#"(module
  (import "extism:host/env" "input_offset" (func $input_offset (result i64)))
  (import "extism:host/env" "error_set" (func $error_set (param i64)))
  (memory 1)
  (func (export "ok") (result i32) (i32.const 0))
  (func (export "trap") (result i32) unreachable)
  (func (export "fail_0") (result i32) (call $error_set (call $input_offset)) (i32.const 0))
  (func (export "fail_7") (result i32) (call $error_set (call $input_offset)) (i32.const 7))
  (func (export "fail_minus_1") (result i32) (call $error_set (call $input_offset)) (i32.const -1))
  (func (export "code_9") (result i32) (i32.const 9)))"#;

struct Plugin(*mut ExtismPlugin);

impl Plugin {
    fn new() -> Plugin {
        let mut err: *mut c_char = null_mut();
        let p = unsafe {
            extism_plugin_new(
                PLUGIN.as_ptr(),
                PLUGIN.len() as u64,
                null_mut(),
                0,
                false,
                &mut err,
            )
        };
        assert!(!p.is_null());
        Plugin(p)
    }

    /// The return code and `extism_plugin_error`'s message.
    fn call(&self, name: &CStr, input: &str) -> (i32, Option<String>) {
        unsafe {
            let rc = extism_plugin_call(self.0, name.as_ptr(), input.as_ptr(), input.len() as u64);
            let e = extism_plugin_error(self.0);
            let msg = (!e.is_null()).then(|| CStr::from_ptr(e).to_string_lossy().into_owned());
            (rc, msg)
        }
    }
}

impl Drop for Plugin {
    fn drop(&mut self) {
        unsafe { extism_plugin_free(self.0) }
    }
}

#[test]
fn success_returns_extism_success() {
    assert_eq!(Plugin::new().call(c"ok", ""), (0, None));
}

#[test]
fn a_trap_returns_134_as_on_extism() {
    let (rc, msg) = Plugin::new().call(c"trap", "");
    assert_eq!(rc, 134);
    assert!(msg.unwrap().contains("unreachable"));
}

#[test]
fn an_error_with_the_plugins_own_code_returns_that_code() {
    let p = Plugin::new();
    let (rc, msg) = p.call(c"fail_7", "bad input");
    assert_eq!(rc, 7);
    assert!(msg.unwrap().contains("bad input"));
    let (rc, msg) = p.call(c"fail_minus_1", "worse input");
    assert_eq!(rc, -1);
    assert!(msg.unwrap().contains("worse input"));
}

#[test]
fn a_non_zero_code_without_an_error_returns_that_code() {
    let (rc, msg) = Plugin::new().call(c"code_9", "");
    assert_eq!(rc, 9);
    // Extism gives no message here; Plinth says what happened (a kept difference).
    assert!(msg.unwrap().contains("returned code 9"));
}

#[test]
fn a_missing_function_and_bad_arguments_return_minus_one() {
    let p = Plugin::new();
    assert_eq!(p.call(c"nope", "").0, -1);
    let rc = unsafe { extism_plugin_call(p.0, null(), null(), 0) };
    assert_eq!(rc, -1);
    let rc = unsafe { extism_plugin_call(null_mut(), c"ok".as_ptr(), null(), 0) };
    assert_eq!(rc, -1);
}

#[test]
fn an_error_with_return_code_0_returns_0_as_on_extism() {
    let (rc, msg) = Plugin::new().call(c"fail_0", "quietly bad");
    assert_eq!(rc, 0);
    assert!(msg.unwrap().contains("quietly bad"));
}
