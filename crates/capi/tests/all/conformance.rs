//! The cross-SDK fixtures of tests/conformance through the C API: tests/c/conformance.c runs
//! every error case and the relative-path fixture through `plinth_plugin_new_from_file`, the
//! kind functions and `extism_plugin_call` (compiled against include/plinth.h, linked against
//! the library cargo built), and these tests hold the C API's kind numbers and names to
//! `plinth::ErrorKind`.

use std::ffi::CStr;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::cc;
use plinth_capi::*;
use runtime::ErrorKind;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn the_conformance_fixtures_give_the_same_answers_through_c() {
    let wasm = repo().join("target/wasm-plugins/wasi_files.wasm");
    assert!(
        wasm.exists(),
        "{} is missing; run scripts/build-plugins.sh",
        wasm.display()
    );
    let out = tempfile::tempdir().unwrap();
    let exe = out.path().join("conformance");
    cc::compile(
        "conformance.c",
        &exe,
        &["-D_DEFAULT_SOURCE"],
        "conformance.c does not compile",
    );
    // The library of this build: cargo's LD_LIBRARY_PATH can put an older one of
    // target/debug before the rpath.
    let run = Command::new(&exe)
        .env("LD_LIBRARY_PATH", cc::deps_dir())
        .arg(repo().join("tests/conformance"))
        .arg(&wasm)
        .output()
        .expect("the conformance program runs");
    let text = cc::text(&run);
    println!("{text}");
    assert!(
        run.status.success() && text.contains(" passed, 0 failed"),
        "{text}"
    );
}

#[test]
fn kind_numbers_and_names_are_the_cores() {
    for kind in ErrorKind::ALL {
        let name = plinth_error_kind_name(kind.number());
        assert!(!name.is_null(), "{kind}");
        let name = unsafe { CStr::from_ptr(name) }.to_str().unwrap();
        assert_eq!(name, kind.name());
    }
    for n in [i32::MIN, -1, 0, ErrorKind::ALL.len() as i32 + 1, i32::MAX] {
        assert!(plinth_error_kind_name(n).is_null(), "{n}");
    }
    // The header's constants, one per kind.
    let constants = [
        (PLINTH_ERROR_KIND_MANIFEST, ErrorKind::Manifest),
        (PLINTH_ERROR_KIND_COMPILE, ErrorKind::Compile),
        (PLINTH_ERROR_KIND_COMPILE_LIMIT, ErrorKind::CompileLimit),
        (PLINTH_ERROR_KIND_LINK, ErrorKind::Link),
        (
            PLINTH_ERROR_KIND_FUNCTION_NOT_FOUND,
            ErrorKind::FunctionNotFound,
        ),
        (PLINTH_ERROR_KIND_NOT_CALLABLE, ErrorKind::NotCallable),
        (PLINTH_ERROR_KIND_TRAP, ErrorKind::Trap),
        (PLINTH_ERROR_KIND_GUEST, ErrorKind::Guest),
        (PLINTH_ERROR_KIND_EXIT, ErrorKind::Exit),
        (PLINTH_ERROR_KIND_TIMEOUT, ErrorKind::Timeout),
        (PLINTH_ERROR_KIND_CANCELLED, ErrorKind::Cancelled),
        (PLINTH_ERROR_KIND_OUT_OF_MEMORY, ErrorKind::OutOfMemory),
        (PLINTH_ERROR_KIND_OUT_OF_FUEL, ErrorKind::OutOfFuel),
        (PLINTH_ERROR_KIND_HTTP_DENIED, ErrorKind::HttpDenied),
        (PLINTH_ERROR_KIND_HTTP, ErrorKind::Http),
        (PLINTH_ERROR_KIND_VAR_STORE_FULL, ErrorKind::VarStoreFull),
        (PLINTH_ERROR_KIND_HOST_FUNCTION, ErrorKind::HostFunction),
        (PLINTH_ERROR_KIND_REENTRANT, ErrorKind::Reentrant),
        (PLINTH_ERROR_KIND_WASI, ErrorKind::Wasi),
        (PLINTH_ERROR_KIND_CONVERT, ErrorKind::Convert),
        (PLINTH_ERROR_KIND_MEMORY, ErrorKind::Memory),
        (PLINTH_ERROR_KIND_CLOSED, ErrorKind::Closed),
        (PLINTH_ERROR_KIND_BUSY, ErrorKind::Busy),
        (PLINTH_ERROR_KIND_OTHER, ErrorKind::Other),
        (PLINTH_ERROR_KIND_ARTIFACT, ErrorKind::Artifact),
        (PLINTH_ERROR_KIND_STREAM, ErrorKind::Stream),
    ];
    assert_eq!(constants.len(), ErrorKind::ALL.len(), "a constant per kind");
    for (constant, kind) in constants {
        assert_eq!(constant, kind.number(), "{kind}");
    }
    assert_eq!(PLINTH_ERROR_KIND_NONE, 0);
}

#[test]
fn a_creation_error_keeps_its_kind_until_freed() {
    let mut err = std::ptr::null_mut();
    let p = unsafe {
        plinth_plugin_new_from_file(
            c"/nonexistent/x.wasm".as_ptr(),
            std::ptr::null_mut(),
            0,
            false,
            &mut err,
        )
    };
    assert!(p.is_null() && !err.is_null());
    assert_eq!(
        plinth_plugin_new_error_kind(err),
        PLINTH_ERROR_KIND_MANIFEST
    );
    unsafe { extism_plugin_new_error_free(err) };
    // Messages from many threads at once each keep their own kind.
    let threads: Vec<_> = (0..4)
        .map(|i| {
            std::thread::spawn(move || {
                for _ in 0..50 {
                    let mut err = std::ptr::null_mut();
                    let (src, kind): (&[u8], i32) = if i % 2 == 0 {
                        (b"\0asm\x01\0\0\0x", PLINTH_ERROR_KIND_COMPILE)
                    } else {
                        (br#"{"wasm": [], "colour": 1}"#, PLINTH_ERROR_KIND_MANIFEST)
                    };
                    let p = unsafe {
                        extism_plugin_new(
                            src.as_ptr(),
                            src.len() as u64,
                            std::ptr::null_mut(),
                            0,
                            false,
                            &mut err,
                        )
                    };
                    assert!(p.is_null());
                    assert_eq!(plinth_plugin_new_error_kind(err), kind);
                    unsafe { extism_plugin_new_error_free(err) };
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}
