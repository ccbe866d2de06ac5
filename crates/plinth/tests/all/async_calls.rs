//! Async host functions, `Plugin::call_async` and `PluginPool::call_async`: the plug-in calls
//! a host function synchronously through the unchanged ABI, while the host awaits a future
//! and its thread serves other calls; the built-ins that wait (WASI sleeps, `http_request`)
//! await too on plug-ins built `with_async`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use plinth::{
    host_fn, CompiledPlugin, Error, Function, Manifest, Plugin, PluginPool, UserData, Wasm, PTR,
};

use crate::common::{HttpServer, PRELUDE};

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

#[test]
fn a_pool_serves_many_async_calls_on_few_instances() {
    let (in_flight, most) = (Arc::default(), Arc::new(AtomicUsize::new(0)));
    let pool = PluginPool::new(plugin(vec![waiting(in_flight, most.clone())]), 4);
    let outputs = runtime().block_on(async {
        let tasks: Vec<_> = (0..100)
            .map(|i| {
                let pool = pool.clone();
                tokio::spawn(async move { pool.call_async::<String>("run", format!("{i}")).await })
            })
            .collect();
        let mut outputs = Vec::new();
        for t in tasks {
            outputs.push(t.await.unwrap().unwrap());
        }
        outputs
    });
    for (i, out) in outputs.into_iter().enumerate() {
        assert_eq!(out, format!("waited: {i}"));
    }
    assert!(pool.instances() <= 4, "{}", pool.instances());
    // Four instances were busy at once, never more.
    assert_eq!(most.load(Ordering::SeqCst), 4);
}

#[test]
fn dropped_pool_calls_give_their_instances_back() {
    let pool = PluginPool::new(plugin(vec![waiting(Arc::default(), Arc::default())]), 2);
    runtime().block_on(async {
        for _ in 0..3 {
            // Both instances are lent to calls that are aborted mid-await.
            let calls: Vec<_> = ["a", "b"]
                .into_iter()
                .map(|input| {
                    let pool = pool.clone();
                    tokio::spawn(async move { pool.call_async::<String>("run", input).await })
                })
                .collect();
            tokio::time::sleep(Duration::from_millis(5)).await;
            for call in calls {
                call.abort();
                assert!(call.await.unwrap_err().is_cancelled());
            }
        }
        assert_eq!(
            pool.call_async::<String>("run", "after").await.unwrap(),
            "waited: after"
        );
    });
    assert!(pool.instances() <= 2);
}

host_fn!(async shout(prefix: String; text: String) -> String {
    tokio::time::sleep(Duration::from_millis(1)).await;
    let prefix = prefix.lock().clone();
    Ok(format!("{prefix}{}", text.to_uppercase()))
});

#[test]
fn the_async_host_fn_macro_decodes_arguments_and_encodes_the_result() {
    let f = Function::new_async("wait", [PTR], [PTR], UserData::new("> ".to_string()), shout);
    let compiled = plugin(vec![f]);
    let mut p = compiled.instantiate().unwrap();
    let out = runtime()
        .block_on(p.call_async::<String>("run", "quiet"))
        .unwrap();
    assert_eq!(out, "> QUIET");
}

/// A WASI plug-in whose `nap` sleeps 50 ms in `poll_oneoff`, built to be called async.
fn napper() -> CompiledPlugin {
    let wasm = crate::deadlines::sleeper(
        r#"(func (export "nap") (result i32)
             (call $poll (i32.const 1) (i64.const 50_000_000) (i32.const 0)))"#,
    );
    Plugin::builder(Manifest::new([wasm]))
        .with_wasi(true)
        .with_async(true)
        .with_cache_dir(None::<&str>)
        .compile()
        .unwrap()
}

/// Runs `calls` futures at once on one thread and says how long they took together.
fn together_on_one_thread<F: std::future::Future<Output = ()>>(calls: Vec<F>) -> Duration {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async {
        let start = Instant::now();
        let mut set = Vec::new();
        for c in calls {
            set.push(c);
        }
        futures_join_all(set).await;
        start.elapsed()
    })
}

/// Polls all `futures` together until every one is done.
async fn futures_join_all<F: std::future::Future<Output = ()>>(futures: Vec<F>) {
    let mut futures: Vec<_> = futures.into_iter().map(Box::pin).map(Some).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for slot in &mut futures {
            if let Some(f) = slot {
                if f.as_mut().poll(cx).is_ready() {
                    *slot = None;
                } else {
                    pending = true;
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await
}

#[test]
fn wasi_sleeps_await_on_plugins_built_with_async() {
    let compiled = napper();
    // 20 naps of 50 ms on one thread: one second if each held the thread, about 50 ms when
    // they await. The bound only tells the two apart.
    let mut plugins: Vec<Plugin> = (0..20).map(|_| compiled.instantiate().unwrap()).collect();
    let calls = plugins
        .iter_mut()
        .map(|p| async move {
            let errno = p.call_async::<Vec<u8>>("nap", "").await;
            assert!(errno.is_ok(), "{errno:?}");
        })
        .collect();
    let took = together_on_one_thread(calls);
    assert!(took < Duration::from_millis(700), "{took:?}");
    // Such a plug-in is called async only.
    let err = compiled
        .instantiate()
        .unwrap()
        .call::<_, &[u8]>("nap", "")
        .unwrap_err();
    assert!(err.to_string().contains("call_async"), "{err}");
}

#[test]
fn wasi_sleeps_on_the_async_path_keep_to_the_timeout_and_cancel() {
    let wasm = crate::deadlines::sleeper(
        r#"(func (export "sleep_20s") (result i32)
             (call $poll (i32.const 1) (i64.const 20_000_000_000) (i32.const 0)))"#,
    );
    let manifest = Manifest::new([wasm]).with_timeout(Duration::from_millis(100));
    let compiled = Plugin::builder(manifest)
        .with_wasi(true)
        .with_async(true)
        .with_cache_dir(None::<&str>)
        .compile()
        .unwrap();
    let (timed_out, cancelled) = crate::common::within(Duration::from_secs(10), move || {
        runtime().block_on(async move {
            let mut p = compiled.instantiate().unwrap();
            let timed_out = p.call_async::<Vec<u8>>("sleep_20s", "").await.unwrap_err();
            let cancel = p.cancel_handle();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                cancel.cancel();
            });
            let cancelled = p.call_async::<Vec<u8>>("sleep_20s", "").await.unwrap_err();
            (timed_out, cancelled)
        })
    });
    assert!(matches!(timed_out, Error::Timeout { .. }), "{timed_out:?}");
    assert!(
        matches!(cancelled, Error::Cancelled { .. }),
        "{cancelled:?}"
    );
}

#[test]
fn http_requests_await_on_plugins_built_with_async() {
    let server = HttpServer::start();
    let wasm = Wasm::data(
        crate::common::wat(
            r#"(func (export "fetch") (result i32)
                 (call $output_block (call $http_request (call $input_offset) (i64.const 0)))
                 (i32.const 0))"#,
        )
        .into_bytes(),
    );
    let manifest = Manifest::new([wasm]).with_allowed_hosts(["127.0.0.1".to_string()]);
    let compiled = Plugin::builder(manifest)
        .with_async(true)
        .with_cache_dir(None::<&str>)
        .compile()
        .unwrap();
    let request = format!(r#"{{"url":"{}"}}"#, server.url("/sleep/150"));
    // Ten requests that each take 150 ms on the server, on one thread.
    let mut plugins: Vec<Plugin> = (0..10).map(|_| compiled.instantiate().unwrap()).collect();
    let calls = plugins
        .iter_mut()
        .map(|p| {
            let request = request.clone();
            async move {
                let body = p.call_async::<String>("fetch", request).await.unwrap();
                assert_eq!(body, "slept");
            }
        })
        .collect();
    let took = together_on_one_thread(calls);
    assert!(took < Duration::from_millis(1200), "{took:?}");
}

#[test]
fn a_cancel_left_from_an_earlier_call_does_not_stop_the_next_async_call() {
    let compiled = plugin(vec![waiting(Arc::default(), Arc::default())]);
    let mut p = compiled.instantiate().unwrap();
    let rt = runtime();
    // A cancel with no call running: aimed at a call that has ended.
    p.cancel_handle().cancel();
    let out = rt.block_on(p.call_async::<String>("run", "next")).unwrap();
    assert_eq!(out, "waited: next");
}

#[test]
fn host_functions_reach_the_host_context_of_an_async_call() {
    let from_context = Function::new_async(
        "wait",
        [PTR],
        [PTR],
        UserData::new(()),
        |mut plugin, _params, results, _| {
            Box::pin(async move {
                tokio::task::yield_now().await;
                let tenant = plugin
                    .host_context::<String>()
                    .cloned()
                    .unwrap_or_else(|| "none".into());
                plugin.memory_set_val(&mut results[0], tenant)?;
                Ok(())
            })
        },
    );
    let compiled = plugin(vec![from_context]);
    let mut p = compiled.instantiate().unwrap();
    let rt = runtime();
    let with = rt
        .block_on(p.call_async_with_host_context::<String, _>("run", "", "tenant-7".to_string()))
        .unwrap();
    assert_eq!(with, "tenant-7");
    let without = rt.block_on(p.call_async::<String>("run", "")).unwrap();
    assert_eq!(without, "none");
}
