//! Hot reload (`plinth::reload`): a plug-in file rewritten while the host runs, in every way a
//! file can be rewritten badly, and calls in flight while the new code arrives.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant, SystemTime};

use crate::common::{self, warnings_of};
use plinth::reload::{HotPlugin, Reload};
use plinth::{Error, Function, PluginBuilder, UserData};

/// A plug-in that says which version it is (`which`), counts its calls in a var (`count`),
/// traps (`boom`), outputs config key `v` (`config`), and calls the host's `block` before
/// saying which version it is (`slow`).
fn version(n: i64) -> Vec<u8> {
    version_with(n, "")
}

/// [`version`] with extra WAT module fields (a start function, say).
fn version_with(n: i64, extra: &str) -> Vec<u8> {
    let text = format!(
        r#"(module
  (import "extism:host/user" "block" (func $block))
  {prelude}
  (memory (export "memory") 1)
  (data (i32.const 0) "count")
  (data (i32.const 16) "v")
  (func (export "which") (result i32) (call $output_i64 (i64.const {n})) (i32.const 0))
  (func (export "count") (result i32) (local $h i64) (local $n i64)
    (local.set $h (call $var_get (call $copy_in (i32.const 0) (i32.const 5))))
    (if (i64.ne (local.get $h) (i64.const 0))
      (then (local.set $n (call $load_u64 (local.get $h)))))
    (local.set $n (i64.add (local.get $n) (i64.const 1)))
    (local.set $h (call $alloc (i64.const 8)))
    (call $store_u64 (local.get $h) (local.get $n))
    (call $var_set (call $copy_in (i32.const 0) (i32.const 5)) (local.get $h))
    (call $output_i64 (local.get $n))
    (i32.const 0))
  (func (export "boom") (result i32) unreachable)
  (func (export "config") (result i32)
    (call $output_block (call $config_get (call $copy_in (i32.const 16) (i32.const 1))))
    (i32.const 0))
  (func (export "slow") (result i32)
    (call $block) (call $output_i64 (i64.const {n})) (i32.const 0))
  {extra})"#,
        prelude = common::PRELUDE
    );
    wat::parse_str(text).expect("the test plug-in is valid WAT")
}

/// A plug-in with no `which` export.
fn without_which() -> Vec<u8> {
    wat::parse_str(format!(
        r#"(module {} (memory (export "memory") 1)
             (func (export "other") (result i32) (i32.const 0)))"#,
        common::PRELUDE
    ))
    .unwrap()
}

fn noop_block() -> Function {
    Function::new("block", [], [], UserData::new(()), |_, _, _, _| Ok(()))
}

fn configure(block: Function) -> impl Fn(PluginBuilder) -> PluginBuilder + Send + Sync + 'static {
    move |b| b.with_function(block.clone()).with_cache_dir(None::<&str>)
}

fn open(path: &Path) -> HotPlugin {
    HotPlugin::open(path, configure(noop_block()))
        .expect("the first version loads")
        .with_check_interval(None)
}

fn num(hot: &HotPlugin, function: &str) -> i64 {
    let out: Vec<u8> = hot.call(function, "").expect("the call succeeds");
    i64::from_le_bytes(out.try_into().expect("8 bytes"))
}

/// Writes `bytes` to `path` the way an editor that rewrites in place does.
fn write(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap();
}

fn setup(first: &[u8]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mod.wasm");
    write(&path, first);
    (dir, path)
}

fn swapped(r: Reload) -> u64 {
    match r {
        Reload::Swapped { generation } => generation,
        other => panic!("expected a swap, got {other:?}"),
    }
}

fn failed(r: Reload) -> Arc<Error> {
    match r {
        Reload::Failed(e) => e,
        other => panic!("expected a failed reload, got {other:?}"),
    }
}

fn unchanged(r: Reload) {
    assert!(
        matches!(r, Reload::Unchanged),
        "expected no reload, got {r:?}"
    );
}

#[test]
fn hot_plugin_is_send_and_sync() {
    fn shareable<T: Send + Sync>() {}
    shareable::<HotPlugin>();
}

#[test]
fn a_changed_file_is_swapped_in_and_vars_carry_over() {
    let (_dir, path) = setup(&version(1));
    let hot = open(&path);
    assert_eq!(hot.generation(), 1);
    assert_eq!(num(&hot, "which"), 1);
    assert_eq!(num(&hot, "count"), 1);
    assert_eq!(num(&hot, "count"), 2);
    hot.var_set("host", Some(b"kept")).unwrap();
    unchanged(hot.check().unwrap());

    write(&path, &version(2));
    // Nothing happens before the host checks (no interval).
    assert_eq!(num(&hot, "which"), 1);
    assert_eq!(swapped(hot.check().unwrap()), 2);
    assert_eq!(hot.generation(), 2);
    assert_eq!(num(&hot, "which"), 2);
    // The plug-in's own var and the host's both moved to the new code.
    assert_eq!(num(&hot, "count"), 3);
    assert_eq!(hot.var_get("host").as_deref(), Some(&b"kept"[..]));
    assert!(hot.last_error().is_none());
    unchanged(hot.check().unwrap());
}

#[test]
fn the_same_bytes_written_again_or_touched_do_not_reload() {
    let (_dir, path) = setup(&version(1));
    let hot = open(&path);
    write(&path, &version(1));
    unchanged(hot.check().unwrap());
    let file = std::fs::File::options().write(true).open(&path).unwrap();
    file.set_modified(SystemTime::now() - Duration::from_secs(3600))
        .unwrap();
    unchanged(hot.check().unwrap());
    assert_eq!(hot.generation(), 1);
    // A forced reload compiles the same bytes anyway.
    assert_eq!(swapped(hot.reload().unwrap()), 2);
    assert_eq!(num(&hot, "which"), 1);
}

#[test]
fn garbage_empty_half_written_and_deleted_files_keep_the_old_code() {
    let (_dir, path) = setup(&version(1));
    let hot = open(&path);
    assert_eq!(num(&hot, "count"), 1);

    write(&path, b"this is not a plug-in");
    let e = failed(hot.check().unwrap());
    assert!(matches!(*e, Error::Compile { .. }), "{e}");
    assert_eq!(hot.last_error().unwrap().to_string(), e.to_string());
    assert_eq!(num(&hot, "which"), 1);
    // The same bad bytes are not tried (and reported) again.
    unchanged(hot.check().unwrap());

    // An empty file (an editor between truncating and writing) is not an empty module.
    write(&path, b"");
    let e = failed(hot.check().unwrap());
    assert!(e.to_string().contains("empty"), "{e}");
    assert_eq!(num(&hot, "which"), 1);

    let good = version(2);
    write(&path, &good[..good.len() - 7]);
    failed(hot.check().unwrap());
    assert_eq!(num(&hot, "which"), 1);

    std::fs::remove_file(&path).unwrap();
    let e = failed(hot.check().unwrap());
    assert!(
        e.to_string().contains(&*path.to_string_lossy()),
        "the error names the missing file: {e}"
    );
    unchanged(hot.check().unwrap());
    assert_eq!(num(&hot, "which"), 1);
    assert_eq!(hot.generation(), 1);

    // A good write later reloads, with the vars of the code that kept running.
    write(&path, &good);
    assert_eq!(swapped(hot.check().unwrap()), 2);
    assert!(hot.last_error().is_none());
    assert_eq!(num(&hot, "which"), 2);
    assert_eq!(num(&hot, "count"), 2);
}

#[test]
fn a_new_version_whose_start_function_traps_is_refused() {
    let (_dir, path) = setup(&version(1));
    let hot = open(&path);
    assert_eq!(num(&hot, "count"), 1);
    write(
        &path,
        &version_with(2, "(func $boom unreachable) (start $boom)"),
    );
    let e = failed(hot.check().unwrap());
    assert!(e.to_string().contains("unreachable"), "{e}");
    assert_eq!(num(&hot, "which"), 1);
    assert_eq!(num(&hot, "count"), 2);
    write(&path, &version(3));
    assert_eq!(swapped(hot.check().unwrap()), 2);
    assert_eq!(num(&hot, "which"), 3);
}

#[test]
fn a_new_version_without_a_required_export_is_refused() {
    let (_dir, path) = setup(&version(1));
    let hot = open(&path).require_exports(["which", "count"]).unwrap();
    write(&path, &without_which());
    let e = failed(hot.check().unwrap());
    assert!(
        matches!(&*e, Error::FunctionNotFound { name, .. } if name == "which"),
        "{e}"
    );
    assert_eq!(num(&hot, "which"), 1);

    // A write cut off between two sections is a valid module: with only the imports, here.
    // Required exports are what refuses it.
    let good = version(2);
    let imports_end = wasmparser::Parser::new(0)
        .parse_all(&good)
        .filter_map(|p| p.unwrap().as_section())
        .find(|(id, _)| *id == 2)
        .map(|(_, range)| range.end)
        .unwrap();
    write(&path, &good[..imports_end]);
    let e = failed(hot.check().unwrap());
    assert!(matches!(&*e, Error::FunctionNotFound { .. }), "{e}");
    assert_eq!(num(&hot, "which"), 1);

    // Requiring an export the loaded code lacks fails at once.
    let (_dir2, other) = setup(&without_which());
    let e = HotPlugin::open(&other, configure(noop_block()))
        .unwrap()
        .require_exports(["which"])
        .unwrap_err();
    assert!(matches!(e, Error::FunctionNotFound { .. }), "{e}");
}

#[test]
fn rapid_successive_writes_the_last_one_wins() {
    let (_dir, path) = setup(&version(1));
    let hot = open(&path);
    for n in 2..=9 {
        write(&path, &version(n));
    }
    assert_eq!(swapped(hot.check().unwrap()), 2);
    assert_eq!(num(&hot, "which"), 9);
    unchanged(hot.check().unwrap());
}

#[test]
fn every_version_gets_the_configured_fuel() {
    let (_dir, path) = setup(&version(1));
    let hot = HotPlugin::open(&path, |b| {
        configure(noop_block())(b).with_fuel_limit(1_000_000)
    })
    .unwrap()
    .with_check_interval(None);
    assert_eq!(num(&hot, "which"), 1);
    let used = hot.fuel_consumed().expect("a fuel limit is set");
    assert!(used > 0);
    write(
        &path,
        &version_with(
            2,
            "(func (export \"spin\") (result i32) (loop $l (br $l)) (i32.const 0))",
        ),
    );
    swapped(hot.check().unwrap());
    assert!(matches!(
        hot.call::<_, Vec<u8>>("spin", ""),
        Err(Error::OutOfFuel { .. })
    ));
    assert_eq!(num(&hot, "which"), 2);
    assert!(open(&path).fuel_consumed().is_none());
}

#[test]
fn a_trap_after_a_swap_keeps_the_vars() {
    let (_dir, path) = setup(&version(1));
    let hot = open(&path);
    assert_eq!(num(&hot, "count"), 1);
    write(&path, &version(2));
    swapped(hot.check().unwrap());
    assert!(matches!(
        hot.call::<_, Vec<u8>>("boom", ""),
        Err(Error::Trap { .. })
    ));
    // A new instance of the new code, with the vars.
    assert_eq!(num(&hot, "count"), 2);
    assert_eq!(num(&hot, "which"), 2);
}

#[test]
fn calls_check_on_their_own_at_the_interval() {
    let (_dir, path) = setup(&version(1));
    let hot = HotPlugin::open(&path, configure(noop_block()))
        .unwrap()
        .with_check_interval(Duration::ZERO);
    assert_eq!(num(&hot, "which"), 1);
    write(&path, &version(2));
    assert_eq!(num(&hot, "which"), 2);
    assert_eq!(hot.generation(), 2);
    // A failed reload inside a call: the call runs the old code, the error is kept.
    write(&path, b"garbage");
    assert_eq!(num(&hot, "which"), 2);
    assert!(hot.last_error().is_some());

    // Garbage does not load the first time either.
    assert!(HotPlugin::open(&path, configure(noop_block())).is_err());

    // With a long interval, calls do not check before it has passed.
    write(&path, &version(3));
    let hot = HotPlugin::open(&path, configure(noop_block()))
        .unwrap()
        .with_check_interval(Duration::from_secs(3600));
    write(&path, &version(4));
    assert_eq!(num(&hot, "which"), 3);
    assert_eq!(swapped(hot.check().unwrap()), 2);
    assert_eq!(num(&hot, "which"), 4);
}

#[test]
fn a_manifest_and_the_modules_it_names_are_watched() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = dir.path().join("code.wasm");
    let manifest = dir.path().join("mod.json");
    write(&wasm, &version(1));
    let manifest_text =
        |v: &str| format!(r#"{{"wasm": [{{"path": "code.wasm"}}], "config": {{"v": "{v}"}}}}"#);
    write(&manifest, manifest_text("one").as_bytes());
    let hot = open(&manifest);
    assert_eq!(hot.watched_files(), vec![manifest.clone(), wasm.clone()]);
    assert_eq!(hot.call::<_, String>("config", "").unwrap(), "one");
    assert_eq!(num(&hot, "count"), 1);

    write(&wasm, &version(2));
    assert_eq!(swapped(hot.check().unwrap()), 2);
    assert_eq!(num(&hot, "which"), 2);

    write(&manifest, manifest_text("two").as_bytes());
    assert_eq!(swapped(hot.check().unwrap()), 3);
    assert_eq!(hot.call::<_, String>("config", "").unwrap(), "two");
    assert_eq!(num(&hot, "count"), 2);

    // A manifest that no longer parses, or names a file that is not there, is refused.
    write(
        &manifest,
        br#"{"wasm": [{"path": "code.wasm"}], "nonsense": 1}"#,
    );
    let e = failed(hot.check().unwrap());
    assert!(matches!(*e, Error::Manifest(_)), "{e}");
    write(&manifest, br#"{"wasm": [{"path": "missing.wasm"}]}"#);
    let e = failed(hot.check().unwrap());
    assert!(e.to_string().contains("missing.wasm"), "{e}");
    assert_eq!(num(&hot, "which"), 2);

    // The new manifest names another file: that one is watched from now on.
    let other = dir.path().join("other.wasm");
    write(&other, &version(5));
    write(&manifest, br#"{"wasm": [{"path": "other.wasm"}]}"#);
    assert_eq!(swapped(hot.check().unwrap()), 4);
    assert_eq!(hot.watched_files(), vec![manifest.clone(), other.clone()]);
    write(&other, &version(6));
    assert_eq!(swapped(hot.check().unwrap()), 5);
    assert_eq!(num(&hot, "which"), 6);
}

/// A configure closure that, once armed, stops the next reload in the middle (after the
/// files were read, before the compile) until the test lets it go on.
struct Gate {
    armed: Mutex<bool>,
    reached: Barrier,
    release: Barrier,
}

impl Gate {
    fn new() -> Arc<Gate> {
        Arc::new(Gate {
            armed: Mutex::new(false),
            reached: Barrier::new(2),
            release: Barrier::new(2),
        })
    }

    fn configure(
        self: &Arc<Gate>,
    ) -> impl Fn(PluginBuilder) -> PluginBuilder + Send + Sync + 'static {
        let gate = self.clone();
        let inner = configure(noop_block());
        move |b| {
            if std::mem::take(&mut *gate.armed.lock().unwrap()) {
                gate.reached.wait();
                gate.release.wait();
            }
            inner(b)
        }
    }
}

#[test]
fn calls_run_on_the_old_code_while_the_new_code_compiles() {
    let (_dir, path) = setup(&version(1));
    let gate = Gate::new();
    let hot = Arc::new(
        HotPlugin::open(&path, gate.configure())
            .unwrap()
            .with_check_interval(Duration::ZERO),
    );
    write(&path, &version(2));
    *gate.armed.lock().unwrap() = true;
    let checker = std::thread::spawn({
        let hot = hot.clone();
        move || hot.check().unwrap()
    });
    gate.reached.wait();
    // The check holds version 2 and is compiling it: calls go on, on version 1, and
    // their own checks do not wait for it.
    assert_eq!(num(&hot, "which"), 1);
    assert_eq!(num(&hot, "count"), 1);
    // A file that changes while it is compiled: the compile goes on with what it read.
    write(&path, &version(3));
    gate.release.wait();
    assert_eq!(swapped(checker.join().unwrap()), 2);
    assert_eq!(hot.generation(), 2);
    let hot = Arc::try_unwrap(hot).unwrap().with_check_interval(None);
    assert_eq!(num(&hot, "which"), 2);
    // The write made during the compile is seen at the next check.
    assert_eq!(swapped(hot.check().unwrap()), 3);
    assert_eq!(num(&hot, "which"), 3);
    assert_eq!(num(&hot, "count"), 2);
}

#[test]
fn a_call_in_flight_finishes_on_the_old_code() {
    let (_dir, path) = setup(&version(1));
    let inside = Arc::new(Barrier::new(2));
    let leave = Arc::new(Barrier::new(2));
    let block = Function::new(
        "block",
        [],
        [],
        UserData::new((inside.clone(), leave.clone())),
        |_, _, _, barriers| {
            let (inside, leave) = barriers.lock().clone();
            inside.wait();
            leave.wait();
            Ok(())
        },
    );
    let hot = Arc::new(
        HotPlugin::open(&path, configure(block))
            .unwrap()
            .with_check_interval(None),
    );
    let in_flight = std::thread::spawn({
        let hot = hot.clone();
        move || num(&hot, "slow")
    });
    inside.wait();
    write(&path, &version(2));
    // The check compiles version 2, then waits for the call in flight to end to swap.
    let checker = std::thread::spawn({
        let hot = hot.clone();
        move || hot.check().unwrap()
    });
    leave.wait();
    assert_eq!(
        in_flight.join().unwrap(),
        1,
        "the call started on version 1"
    );
    assert_eq!(swapped(checker.join().unwrap()), 2);
    assert_eq!(num(&hot, "which"), 2);
}

#[test]
fn a_host_function_cannot_reload_the_plugin_that_called_it() {
    let (_dir, path) = setup(&version(1));
    let hot_cell: Arc<OnceLock<Weak<HotPlugin>>> = Arc::new(OnceLock::new());
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let block = Function::new(
        "block",
        [],
        [],
        UserData::new((hot_cell.clone(), seen.clone())),
        |_, _, _, data| {
            let (cell, seen) = data.lock().clone();
            let hot = cell
                .get()
                .and_then(Weak::upgrade)
                .expect("set before calls");
            let check = hot.check().map(|_| ()).unwrap_err();
            let call = hot.call::<_, Vec<u8>>("which", "").unwrap_err();
            seen.lock()
                .unwrap()
                .extend([check.to_string(), call.to_string()]);
            Ok(())
        },
    );
    let hot = Arc::new(HotPlugin::open(&path, configure(block)).unwrap());
    hot_cell.set(Arc::downgrade(&hot)).unwrap();
    assert_eq!(num(&hot, "slow"), 1);
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2);
    assert!(seen.iter().all(|m| m.contains("re-entrant")), "{seen:?}");
}

#[test]
fn a_panicking_configure_closure_fails_the_reload_only() {
    let (_dir, path) = setup(&version(1));
    let panic_now = Arc::new(Mutex::new(false));
    let hot = HotPlugin::open(&path, {
        let panic_now = panic_now.clone();
        let inner = configure(noop_block());
        move |b| {
            if *panic_now.lock().unwrap() {
                panic!("no builder today");
            }
            inner(b)
        }
    })
    .unwrap()
    .with_check_interval(None);
    *panic_now.lock().unwrap() = true;
    write(&path, &version(2));
    let e = failed(hot.check().unwrap());
    assert!(e.to_string().contains("no builder today"), "{e}");
    assert_eq!(num(&hot, "which"), 1);
    *panic_now.lock().unwrap() = false;
    assert_eq!(swapped(hot.reload().unwrap()), 2);
    assert_eq!(num(&hot, "which"), 2);
}

/// Not a speed assertion: prints what a check costs next to a warm call, for the docs
/// (`cargo test -p plinth --test all hot_reload::check_cost -- --nocapture`).
#[test]
fn check_cost() {
    let (_dir, path) = setup(&version(1));
    // An old modification time: the stamps are trusted, so a check is one `stat`.
    let file = std::fs::File::options().write(true).open(&path).unwrap();
    file.set_modified(SystemTime::now() - Duration::from_secs(3600))
        .unwrap();
    let hot = open(&path);
    let rounds = 20_000;
    for _ in 0..1000 {
        num(&hot, "which");
    }
    let start = Instant::now();
    for _ in 0..rounds {
        assert_eq!(num(&hot, "which"), 1);
    }
    let call = start.elapsed() / rounds;
    let start = Instant::now();
    for _ in 0..rounds {
        unchanged(hot.check().unwrap());
    }
    let check = start.elapsed() / rounds;
    let hot = hot.with_check_interval(Duration::ZERO);
    let start = Instant::now();
    for _ in 0..rounds {
        assert_eq!(num(&hot, "which"), 1);
    }
    let checked_call = start.elapsed() / rounds;
    eprintln!(
        "hot reload: warm call {call:?}, check (unchanged) {check:?}, call checking every time \
         {checked_call:?} (debug build unless --release)"
    );
    assert_eq!(hot.generation(), 1);
}

#[test]
fn a_failed_reload_is_logged_with_the_file_and_the_generation_that_runs() {
    let (_dir, path) = setup(&version(1));
    let hot = open(&path);
    write(&path, b"garbage");
    let (e, log) = warnings_of(|| failed(hot.check().unwrap()));
    assert!(log.contains("WARN"), "{log}");
    assert!(log.contains(&*path.to_string_lossy()), "{log}");
    assert!(log.contains("generation=1"), "{log}");
    assert!(log.contains(&e.to_string()), "{log}");
}
