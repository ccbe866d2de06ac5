//! Async host functions and `Plugin::call_async` (issue 16, first slice): the plug-in calls a
//! host function synchronously through the unchanged ABI, while the host awaits a future and
//! its thread serves other calls.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use plinth::{CompiledPlugin, Error, Function, Plugin, UserData, PTR};

use crate::common::PRELUDE;

/// `run` passes its input to the host function `wait` and outputs what it returns.
fn wasm_text() -> String {
    let body = r#"
      (func (export "run") (result i32) (local $h i64)
        (local.set $h (call $alloc (call $input_length)))
        (call $copy_input (local.get $h))
        (local.set $h (call $wait (local.get $h)))
        (call $output_set (local.get $h) (call $length (local.get $h)))
        (i32.const 0))
      (func $copy_input (param $h i64) (local $i i64)
        (block $d (loop $l
          (br_if $d (i64.ge_u (local.get $i) (call $input_length)))
          (call $store_u8 (i64.add (local.get $h) (local.get $i))
            (call $input_load_u8 (local.get $i)))
          (local.set $i (i64.add (local.get $i) (i64.const 1)))
          (br $l))))"#;
    let module = format!(
        "(module (import \"extism:host/user\" \"wait\" (func $wait (param i64) (result i64)))\n {PRELUDE}\n (memory (export \"memory\") 1)\n {body})"
    );
    module
}

fn plugin(functions: Vec<Function>) -> CompiledPlugin {
    Plugin::builder(wasm_text().as_bytes())
        .with_functions(functions)
        .with_cache_dir(None::<&str>)
        .compile()
        .unwrap()
}

/// An async `wait`: reads its argument, sleeps 20 ms on tokio's timer, returns "waited: " and
/// the argument. `in_flight` counts futures asleep at once; `most` keeps the largest count.
fn waiting(in_flight: Arc<AtomicUsize>, most: Arc<AtomicUsize>) -> Function {
    Function::new_async(
        "wait",
        [PTR],
        [PTR],
        UserData::new(()),
        move |mut plugin, params, results, _| {
            let (in_flight, most) = (in_flight.clone(), most.clone());
            Box::pin(async move {
                let text: String = plugin.memory_get_val(&params[0])?;
                let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
                in_flight.fetch_sub(1, Ordering::SeqCst);
                if text == "fail" {
                    anyhow::bail!("the store refused");
                }
                plugin.memory_set_val(&mut results[0], format!("waited: {text}"))?;
                Ok(())
            })
        },
    )
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap()
}

#[test]
fn many_calls_await_host_functions_at_once_on_two_threads() {
    let (in_flight, most) = (Arc::default(), Arc::new(AtomicUsize::new(0)));
    let compiled = plugin(vec![waiting(in_flight, most.clone())]);
    let outputs = runtime().block_on(async {
        let tasks: Vec<_> = (0..200)
            .map(|i| {
                let compiled = compiled.clone();
                tokio::spawn(async move {
                    let mut p = compiled.instantiate().unwrap();
                    p.call_async::<String>("run", format!("call {i}")).await
                })
            })
            .collect();
        let mut outputs = Vec::new();
        for t in tasks {
            outputs.push(t.await.unwrap());
        }
        outputs
    });
    for (i, out) in outputs.into_iter().enumerate() {
        assert_eq!(out.unwrap(), format!("waited: call {i}"));
    }
    // Two worker threads held far more than two calls in the host function at once.
    assert!(
        most.load(Ordering::SeqCst) > 50,
        "{}",
        most.load(Ordering::SeqCst)
    );
}

#[test]
fn async_host_function_errors_reach_the_caller_and_sync_calls_are_told_to_use_call_async() {
    let compiled = plugin(vec![waiting(Arc::default(), Arc::default())]);
    let mut p = compiled.instantiate().unwrap();
    let err = runtime()
        .block_on(p.call_async::<String>("run", "fail"))
        .unwrap_err();
    assert!(matches!(err, Error::HostFunction { .. }), "{err:?}");
    assert!(err.to_string().contains("the store refused"), "{err}");
    let err = p.call::<_, &[u8]>("run", "sync").unwrap_err();
    assert!(err.to_string().contains("call_async"), "{err}");
}

#[test]
fn a_dropped_call_leaves_the_plugin_usable() {
    let compiled = plugin(vec![waiting(Arc::default(), Arc::default())]);
    let mut p = compiled.instantiate().unwrap();
    let rt = runtime();
    rt.block_on(async {
        // Abandoned while the host function sleeps.
        let abandoned =
            tokio::time::timeout(Duration::from_millis(5), p.call_async::<String>("run", "x"))
                .await;
        assert!(abandoned.is_err(), "the call should still be waiting");
        assert_eq!(
            p.call_async::<String>("run", "again").await.unwrap(),
            "waited: again"
        );
    });
}

#[test]
fn a_timeout_fires_while_a_host_function_awaits() {
    // The host function would wait a minute; the call has 50 ms.
    let forever = Function::new_async(
        "wait",
        [PTR],
        [PTR],
        UserData::new(()),
        |_plugin, _params, _results, _| {
            Box::pin(async move {
                tokio::time::sleep(Duration::from_secs(60)).await;
                Ok(())
            })
        },
    );
    let manifest_wasm = wat::parse_str(wasm_text()).unwrap();
    let compiled = Plugin::builder(
        plinth::Manifest::new([plinth::Wasm::data(manifest_wasm)])
            .with_timeout(Duration::from_millis(50)),
    )
    .with_function(forever)
    .with_cache_dir(None::<&str>)
    .compile()
    .unwrap();
    let err = crate::common::within(Duration::from_secs(10), move || {
        runtime().block_on(async move {
            let mut p = compiled.instantiate().unwrap();
            p.call_async::<String>("run", "x").await.unwrap_err()
        })
    });
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
}

#[test]
fn a_cancel_stops_a_host_function_that_awaits() {
    let forever = Function::new_async(
        "wait",
        [PTR],
        [PTR],
        UserData::new(()),
        |_plugin, _params, _results, _| {
            Box::pin(async move {
                tokio::time::sleep(Duration::from_secs(60)).await;
                Ok(())
            })
        },
    );
    let compiled = plugin(vec![forever]);
    let err = crate::common::within(Duration::from_secs(10), move || {
        runtime().block_on(async move {
            let mut p = compiled.instantiate().unwrap();
            let cancel = p.cancel_handle();
            let canceller = tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(30)).await;
                cancel.cancel();
            });
            let err = p.call_async::<String>("run", "x").await.unwrap_err();
            canceller.await.unwrap();
            err
        })
    });
    assert!(matches!(err, Error::Cancelled { .. }), "{err:?}");
}
