//! WASI file access: inside preopens, outside them, `..` and symlink escapes, read-only mounts.

use crate::common;
use plinth::{Error, Manifest, Plugin, Wasm};

/// `read`: opens the path given as input (relative to the first preopen, fd 3) and outputs
/// its contents; `write`: writes "written by plugin" to it. WASI errors come back as the
/// return code (the errno).
fn fs_plugin() -> Wasm {
    let src = format!(
        r#"(module
      (import "wasi_snapshot_preview1" "path_open" (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
      (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
      (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
      (import "wasi_snapshot_preview1" "fd_close" (func $fd_close (param i32) (result i32)))
      {}
      (memory (export "memory") 1)
      (data (i32.const 2048) "written by plugin")
      (func $input_to_mem (param $dst i32) (result i32) (local $i i32) (local $n i32)
        (local.set $n (i32.wrap_i64 (call $input_length)))
        (block $d (loop $l
          (br_if $d (i32.ge_u (local.get $i) (local.get $n)))
          (i32.store8 (i32.add (local.get $dst) (local.get $i)) (call $input_load_u8 (i64.extend_i32_u (local.get $i))))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br $l)))
        (local.get $n))
      (func (export "read") (result i32) (local $len i32) (local $err i32) (local $fd i32)
        (local.set $len (call $input_to_mem (i32.const 1024)))
        (local.set $err (call $path_open (i32.const 3) (i32.const 0) (i32.const 1024) (local.get $len)
                          (i32.const 0) (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 16)))
        (if (local.get $err) (then (return (local.get $err))))
        (local.set $fd (i32.load (i32.const 16)))
        (i32.store (i32.const 0) (i32.const 4096))
        (i32.store (i32.const 4) (i32.const 4096))
        (local.set $err (call $fd_read (local.get $fd) (i32.const 0) (i32.const 1) (i32.const 8)))
        (if (local.get $err) (then (return (local.get $err))))
        (drop (call $fd_close (local.get $fd)))
        (call $output_set (call $copy_in (i32.const 4096) (i32.load (i32.const 8)))
                          (i64.extend_i32_u (i32.load (i32.const 8))))
        (i32.const 0))
      (func (export "write") (result i32) (local $len i32) (local $err i32) (local $fd i32)
        (local.set $len (call $input_to_mem (i32.const 1024)))
        (local.set $err (call $path_open (i32.const 3) (i32.const 0) (i32.const 1024) (local.get $len)
                          (i32.const 9) (i64.const 64) (i64.const 0) (i32.const 0) (i32.const 16)))
        (if (local.get $err) (then (return (local.get $err))))
        (local.set $fd (i32.load (i32.const 16)))
        (i32.store (i32.const 0) (i32.const 2048))
        (i32.store (i32.const 4) (i32.const 17))
        (local.set $err (call $fd_write (local.get $fd) (i32.const 0) (i32.const 1) (i32.const 8)))
        (if (local.get $err) (then (return (local.get $err))))
        (drop (call $fd_close (local.get $fd)))
        (i32.const 0)))"#,
        common::PRELUDE
    );
    Wasm::data(src.into_bytes())
}

struct Dirs {
    _root: tempfile::TempDir,
    inside: std::path::PathBuf,
    outside: std::path::PathBuf,
}

fn dirs() -> Dirs {
    let root = tempfile::tempdir().unwrap();
    let inside = root.path().join("inside");
    let outside = root.path().join("outside");
    std::fs::create_dir_all(&inside).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(inside.join("hello.txt"), "hello from inside").unwrap();
    std::fs::write(outside.join("secret.txt"), "top secret").unwrap();
    std::os::unix::fs::symlink(outside.join("secret.txt"), inside.join("link.txt")).unwrap();
    Dirs {
        _root: root,
        inside,
        outside,
    }
}

#[test]
fn reads_and_writes_inside_the_preopen() {
    let d = dirs();
    let m = Manifest::new([fs_plugin()]).with_allowed_path(d.inside.clone(), "/data");
    let mut p = Plugin::new(m, [], true).unwrap();
    assert_eq!(
        p.call::<_, &str>("read", "hello.txt").unwrap(),
        "hello from inside"
    );
    p.call::<_, &[u8]>("write", "new.txt").unwrap();
    assert_eq!(
        std::fs::read_to_string(d.inside.join("new.txt")).unwrap(),
        "written by plugin"
    );
    let err = p.call::<_, &[u8]>("read", "missing.txt").unwrap_err();
    assert_eq!(err.code(), 44, "ENOENT: {err}");
}

#[test]
fn escapes_are_refused() {
    let d = dirs();
    let m = Manifest::new([fs_plugin()]).with_allowed_path(d.inside.clone(), "/data");
    let mut p = Plugin::new(m, [], true).unwrap();
    for path in [
        "../outside/secret.txt",
        "link.txt",
        "/etc/passwd",
        "../../../../etc/passwd",
    ] {
        let err = p.call::<_, &[u8]>("read", path).unwrap_err();
        assert!(matches!(err, Error::Guest { .. }), "{path}: {err:?}");
        assert!(!err.to_string().contains("top secret"));
    }
    let err = p
        .call::<_, &[u8]>("write", "../outside/planted.txt")
        .unwrap_err();
    assert!(matches!(err, Error::Guest { .. }), "{err:?}");
    assert!(!d.outside.join("planted.txt").exists());
}

#[test]
fn read_only_mounts_refuse_writes() {
    let d = dirs();
    let ro = format!("ro:{}", d.inside.display());
    let m = Manifest::new([fs_plugin()]).with_allowed_path(ro, "/data");
    let mut p = Plugin::new(m, [], true).unwrap();
    assert_eq!(
        p.call::<_, &str>("read", "hello.txt").unwrap(),
        "hello from inside"
    );
    let err = p.call::<_, &[u8]>("write", "new.txt").unwrap_err();
    assert!(matches!(err, Error::Guest { .. }), "{err:?}");
    assert!(!d.inside.join("new.txt").exists());
    let err = p.call::<_, &[u8]>("write", "hello.txt").unwrap_err();
    assert!(matches!(err, Error::Guest { .. }), "{err:?}");
    assert_eq!(
        std::fs::read_to_string(d.inside.join("hello.txt")).unwrap(),
        "hello from inside"
    );
}

#[test]
fn without_preopens_there_is_no_file_system() {
    let mut p = Plugin::new(Manifest::new([fs_plugin()]), [], true).unwrap();
    let err = p.call::<_, &[u8]>("read", "hello.txt").unwrap_err();
    assert_eq!(err.code(), 8, "EBADF: fd 3 does not exist: {err}");
}

#[test]
fn a_missing_allowed_path_is_a_clear_error() {
    let m = Manifest::new([fs_plugin()]).with_allowed_path("/no/such/dir", "/data");
    let err = Plugin::new(m, [], true).unwrap_err();
    assert!(matches!(err, Error::Wasi(_)), "{err:?}");
    assert!(err.to_string().contains("/no/such/dir"), "{err}");
}
