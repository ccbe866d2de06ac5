//! Compiles tests/c/streams.c (streaming calls through callbacks, the output limit,
//! `PLINTH_ERROR_KIND_STREAM`) against include/plinth.h and the library, runs it, and runs it
//! again under valgrind (when installed) with leak checking; streams the PDK plug-ins of
//! target/wasm-plugins through the C API.

use std::ffi::{c_void, CStr, CString};
use std::path::Path;
use std::ptr::null_mut;

use plinth_capi::*;

use crate::cc;

#[test]
fn stream_c_tests_pass() {
    let dir = tempfile::tempdir().unwrap();
    let exe = dir.path().join("streams");
    cc::compile(
        "streams.c",
        &exe,
        &["-D_DEFAULT_SOURCE"],
        "compiling the C stream tests failed",
    );
    // The library of this build: cargo's LD_LIBRARY_PATH can put an older one first.
    let deps = cc::deps_dir();
    let library = [("LD_LIBRARY_PATH", deps.to_str().expect("a UTF-8 path"))];
    cc::run_checked(
        &exe,
        "the C stream tests",
        &library,
        &[("ITERATIONS", "1"), ("MIB", "1")],
    );
}

/// Input from a slice, output into a Vec: the callbacks' user data.
struct Buffers {
    input: Vec<u8>,
    pos: usize,
    output: Vec<u8>,
}

unsafe extern "C" fn read_buffer(user_data: *mut c_void, buf: *mut u8, len: u64) -> i64 {
    let b = &mut *(user_data as *mut Buffers);
    let n = (b.input.len() - b.pos).min(len as usize);
    std::ptr::copy_nonoverlapping(b.input[b.pos..].as_ptr(), buf, n);
    b.pos += n;
    n as i64
}

unsafe extern "C" fn write_buffer(user_data: *mut c_void, buf: *const u8, len: u64) -> i64 {
    let b = &mut *(user_data as *mut Buffers);
    b.output
        .extend_from_slice(std::slice::from_raw_parts(buf, len as usize));
    0
}

fn load_file(path: &Path) -> *mut ExtismPlugin {
    assert!(
        path.exists(),
        "{} is missing; run scripts/build-plugins.sh",
        path.display()
    );
    let c_path = CString::new(path.to_str().unwrap()).unwrap();
    let mut err = null_mut();
    let p = unsafe { plinth_plugin_new_from_file(c_path.as_ptr(), null_mut(), 0, false, &mut err) };
    assert!(!p.is_null(), "loading {} failed", path.display());
    p
}

/// Plug-ins of the Plinth PDK export their stream functions, which the loader links: through
/// the C API they stream as well, and an Extism-PDK plug-in gets its input whole.
#[test]
fn pdk_plugins_stream_through_the_c_api() {
    let plugins = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/wasm-plugins");
    let echo = load_file(&plugins.join("stream_echo.wasm"));
    let input: Vec<u8> = (0..3_000_000u32).map(|i| (i % 253) as u8).collect();
    let mut b = Buffers {
        input: input.clone(),
        pos: 0,
        output: Vec::new(),
    };
    let mut stats = PlinthStreamStats::default();
    let rc = unsafe {
        plinth_plugin_call_stream(
            echo,
            c"echo".as_ptr(),
            Some(read_buffer),
            Some(write_buffer),
            &mut b as *mut Buffers as *mut c_void,
            &mut stats,
        )
    };
    assert_eq!(rc, 0, "{:?}", unsafe { error(echo) });
    assert!(b.output == input, "{} bytes out", b.output.len());
    assert_eq!(
        stats,
        PlinthStreamStats {
            input_bytes: 3_000_000,
            output_bytes: 3_000_000
        }
    );
    // flood writes until told to stop: the output limit stops it.
    assert!(unsafe { plinth_plugin_set_output_limit(echo, 100_000) });
    b.output.clear();
    let rc = unsafe {
        plinth_plugin_call_stream(
            echo,
            c"flood".as_ptr(),
            Some(read_buffer),
            Some(write_buffer),
            &mut b as *mut Buffers as *mut c_void,
            null_mut(),
        )
    };
    assert_ne!(rc, 0);
    assert_eq!(
        unsafe { plinth_plugin_error_kind(echo) },
        PLINTH_ERROR_KIND_STREAM
    );
    assert!(b.output.len() <= 100_000, "{} bytes out", b.output.len());
    unsafe { extism_plugin_free(echo) };

    let whole = load_file(&plugins.join("extism_line_filter.wasm"));
    let mut b = Buffers {
        input: b"ok\nERROR one\nfine\nERROR two".to_vec(),
        pos: 0,
        output: Vec::new(),
    };
    let rc = unsafe {
        plinth_plugin_call_stream(
            whole,
            c"grep".as_ptr(),
            Some(read_buffer),
            Some(write_buffer),
            &mut b as *mut Buffers as *mut c_void,
            null_mut(),
        )
    };
    assert_eq!(rc, 0, "{:?}", unsafe { error(whole) });
    assert_eq!(b.output, b"ERROR one\nERROR two");
    unsafe { extism_plugin_free(whole) };
}

unsafe fn error(p: *mut ExtismPlugin) -> Option<String> {
    let e = extism_plugin_error(p);
    (!e.is_null()).then(|| CStr::from_ptr(e).to_string_lossy().into_owned())
}
