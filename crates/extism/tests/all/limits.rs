//! Timeouts, cancel, fuel and the memory limit, with the errors Extism gives for them; the
//! plug-in keeps working afterwards.

use std::time::{Duration, Instant};

use extism::*;

use crate::module;

fn spin_and_echo() -> Wasm {
    Wasm::data(module(
        "",
        r#"
      (func (export "spin") (result i32) (loop $l (br $l)) (i32.const 0))
      (func (export "echo") (result i32) (call $echo_input) (i32.const 0))
      (func (export "grow") (result i32)
        (loop $l (br_if $l (i32.ne (memory.grow (i32.const 1)) (i32.const -1))))
        unreachable)"#,
    ))
}

#[test]
fn timeout_stops_a_runaway_call() {
    let manifest = Manifest::new([spin_and_echo()]).with_timeout(Duration::from_millis(100));
    let mut plugin = Plugin::new(&manifest, [], false).unwrap();
    let start = Instant::now();
    let err = plugin.call::<&str, &str>("spin", "").unwrap_err();
    let took = start.elapsed();
    assert_eq!(err.to_string(), "timeout");
    assert!(
        took >= Duration::from_millis(100),
        "stopped early: {took:?}"
    );
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert!(
        matches!(
            err.downcast_ref::<plinth::Error>(),
            Some(plinth::Error::Timeout { .. })
        ),
        "{err:?}"
    );
    assert_eq!(plugin.call::<&str, &str>("echo", "after").unwrap(), "after");
}

#[test]
fn cancel_from_another_thread() {
    let mut plugin = Plugin::new(Manifest::new([spin_and_echo()]), [], false).unwrap();
    let handle = plugin.cancel_handle();
    assert_eq!(handle.id, plugin.id);
    let canceller = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        handle.cancel().unwrap();
    });
    let start = Instant::now();
    let err = plugin.call::<&str, &str>("spin", "").unwrap_err();
    canceller.join().unwrap();
    // Extism reports a cancelled call as a timeout too.
    assert_eq!(err.to_string(), "timeout");
    assert!(
        matches!(
            err.downcast_ref::<plinth::Error>(),
            Some(plinth::Error::Cancelled { .. })
        ),
        "{err:?}"
    );
    assert!(start.elapsed() < Duration::from_secs(5));
    assert_eq!(plugin.call::<&str, &str>("echo", "next").unwrap(), "next");
}

#[test]
fn fuel_limit_and_fuel_consumed() {
    let mut plugin = PluginBuilder::new(Manifest::new([spin_and_echo()]))
        .with_fuel_limit(100_000)
        .build()
        .unwrap();
    let err = plugin.call::<&str, &str>("spin", "").unwrap_err();
    assert_eq!(err.to_string(), "plugin ran out of fuel");
    assert_eq!(
        plugin.call::<&str, &str>("echo", "fuelled").unwrap(),
        "fuelled"
    );
    let used = plugin.fuel_consumed().expect("a fuel limit is set");
    assert!(used > 0 && used < 100_000, "{used}");

    let unlimited = Plugin::new(Manifest::new([spin_and_echo()]), [], false).unwrap();
    assert_eq!(unlimited.fuel_consumed(), None);
}

#[test]
fn memory_limit_is_oom() {
    let manifest = Manifest::new([spin_and_echo()]).with_memory_max(8);
    let mut plugin = Plugin::new(&manifest, [], false).unwrap();
    let err = plugin.call::<&str, &str>("grow", "").unwrap_err();
    assert_eq!(err.to_string(), "oom");
    assert!(format!("{err:#}").contains("max_pages"), "{err:#}");
    assert_eq!(plugin.call::<&str, &str>("echo", "fits").unwrap(), "fits");
}

#[test]
fn manifest_ext_methods() {
    let manifest = Manifest::new([spin_and_echo()])
        .with_allowed_host("example.com")
        .disallow_all_hosts()
        .with_allowed_paths([("ro:/tmp".to_string(), "/data".into())].into_iter());
    assert_eq!(manifest.allowed_hosts, Some(vec![]));
    assert_eq!(
        manifest.allowed_paths.as_ref().unwrap()["ro:/tmp"],
        std::path::PathBuf::from("/data")
    );
    let mut plugin = Plugin::new(manifest, [], true).unwrap();
    assert_eq!(plugin.call::<&str, &str>("echo", "ok").unwrap(), "ok");
}

#[test]
fn wasi_reaches_only_allowed_paths() {
    // As in Extism's `fs` example: a directory mounted with `with_allowed_path`, read-only
    // with the `ro:` prefix.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("data.txt"), "some data").unwrap();
    let host = dir.path().display().to_string();
    let url = Wasm::file(crate::plugin("wasi_files"));

    let manifest = Manifest::new([url.clone()]).with_allowed_path(host.clone(), "/data");
    let mut plugin = PluginBuilder::new(manifest)
        .with_wasi(true)
        .build()
        .unwrap();
    let res = plugin
        .call::<&str, &str>("copy_file", "/data/data.txt")
        .unwrap();
    assert_eq!(res, "/data/data.txt.out");
    let copied = std::fs::read_to_string(dir.path().join("data.txt.out")).unwrap();
    assert_eq!(copied, "some data");

    let manifest = Manifest::new([url]).with_allowed_path(format!("ro:{host}"), "/data");
    let mut plugin = PluginBuilder::new(manifest)
        .with_wasi(true)
        .build()
        .unwrap();
    let err = plugin
        .call::<&str, &str>("copy_file", "/data/data.txt")
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("cannot write /data/data.txt.out"),
        "{err}"
    );
}
