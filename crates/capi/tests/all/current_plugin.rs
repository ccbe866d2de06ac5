//! `extism_current_plugin_memory` from a host function that runs before the plug-in has
//! Extism memory: the start function of a linked module, which runs while the plug-in is
//! being made (Extism memory comes with the main module).

use std::ffi::{c_char, c_void, CStr};
use std::ptr::{null, null_mut};
use std::sync::Mutex;

use plinth_capi::*;

/// What each probe saw: whether `extism_current_plugin_memory` was null.
static SEEN: Mutex<Vec<bool>> = Mutex::new(Vec::new());

unsafe extern "C" fn probe(
    plugin: *mut ExtismCurrentPlugin,
    _inputs: *const ExtismVal,
    _n_inputs: ExtismSize,
    _outputs: *mut ExtismVal,
    _n_outputs: ExtismSize,
    _data: *mut c_void,
) {
    let memory = extism_current_plugin_memory(plugin);
    SEEN.lock().unwrap().push(memory.is_null());
}

#[test]
fn current_plugin_memory_is_null_before_the_plugin_has_extism_memory() {
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join("lib.wat");
    std::fs::write(
        &lib,
        r#"(module (import "extism:host/user" "probe" (func $probe))
             (func $init (call $probe)) (start $init)
             (func (export "nothing")))"#,
    )
    .unwrap();
    let main = dir.path().join("main.wat");
    std::fs::write(
        &main,
        r#"(module (import "extism:host/user" "probe" (func $probe))
             (import "extism:host/env" "input_length" (func $input_length (result i64)))
             (import "lib" "nothing" (func))
             (memory 1)
             (func (export "run") (result i32)
               (drop (call $input_length)) (call $probe) (i32.const 0)))"#,
    )
    .unwrap();
    let manifest = format!(
        r#"{{"wasm": [{{"path": {:?}, "name": "lib"}}, {{"path": {:?}, "name": "main"}}]}}"#,
        lib.to_str().unwrap(),
        main.to_str().unwrap()
    );
    unsafe {
        let f = extism_function_new(
            c"probe".as_ptr(),
            null(),
            0,
            null(),
            0,
            Some(probe),
            null_mut(),
            None,
        );
        assert!(!f.is_null());
        let mut functions = [f as *const ExtismFunction];
        let mut err: *mut c_char = null_mut();
        let p = extism_plugin_new(
            manifest.as_ptr(),
            manifest.len() as u64,
            functions.as_mut_ptr(),
            1,
            false,
            &mut err,
        );
        assert!(!p.is_null(), "{}", CStr::from_ptr(err).to_string_lossy());
        assert_eq!(
            *SEEN.lock().unwrap(),
            [true],
            "null in the linked module's start function"
        );
        assert_eq!(extism_plugin_call(p, c"run".as_ptr(), null(), 0), 0);
        assert_eq!(
            *SEEN.lock().unwrap(),
            [true, false],
            "Extism memory during the call"
        );
        extism_plugin_free(p);
        extism_function_free(f);
    }
}
