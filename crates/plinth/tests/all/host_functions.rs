//! Host functions: typed helpers, user data, raw memory access, errors, panics, namespaces,
//! per-call host context and re-entrancy.

use crate::common;
use plinth::{
    host_fn, CurrentPlugin, Error, Function, Plugin, SharedPlugin, UserData, Val, ValType, PTR,
};

const REFLECT: &str = r#"
  (import "extism:host/user" "greet" (func $greet (param i64) (result i64)))
  (func (export "call_greet") (result i32)
    (call $output_block (call $greet (call $input_offset))) (i32.const 0))"#;

host_fn!(greet(user_data: Vec<String>; name: String) -> String {
    user_data.lock().push(name.clone());
    Ok(format!("Hello, {name}!"))
});

fn with_prelude(imports_then_body: &str) -> String {
    // Host imports must come before the prelude's function definitions.
    let lines: Vec<&str> = imports_then_body.lines().collect();
    let split = lines
        .iter()
        .position(|l| l.trim_start().starts_with("(func"))
        .unwrap();
    let (imports, body) = (lines[..split].join("\n"), lines[split..].join("\n"));
    format!(
        "(module {imports}\n{}\n(memory (export \"memory\") 1)\n{body})",
        common::PRELUDE
    )
}

#[test]
fn typed_host_function_with_user_data() {
    let seen = UserData::new(Vec::<String>::new());
    let f = Function::new("greet", [PTR], [PTR], seen.clone(), greet);
    let mut p = Plugin::new(with_prelude(REFLECT).as_bytes(), [f], false).unwrap();
    assert_eq!(
        p.call::<_, &str>("call_greet", "Ada").unwrap(),
        "Hello, Ada!"
    );
    assert_eq!(
        p.call::<_, &str>("call_greet", "Grace").unwrap(),
        "Hello, Grace!"
    );
    assert_eq!(*seen.lock(), vec!["Ada".to_string(), "Grace".to_string()]);
}

#[test]
fn raw_host_function_reads_and_writes_memory() {
    let f = Function::new(
        "greet",
        [PTR],
        [PTR],
        UserData::new(()),
        |plugin: &mut CurrentPlugin, inputs: &[Val], outputs: &mut [Val], _| {
            let handle = plugin.memory_from_val(&inputs[0]).expect("a block");
            let upper = plugin.memory_bytes(handle)?.to_ascii_uppercase();
            let out = plugin.memory_alloc(upper.len() as u64)?;
            plugin.memory_bytes_mut(out)?.copy_from_slice(&upper);
            outputs[0] = Val::I64(out.offset as i64);
            Ok(())
        },
    );
    let mut p = Plugin::new(with_prelude(REFLECT).as_bytes(), [f], false).unwrap();
    assert_eq!(p.call::<_, &str>("call_greet", "shout").unwrap(), "SHOUT");
}

#[test]
fn numeric_parameters_and_namespaces() {
    let add = Function::new(
        "add",
        [ValType::I32, ValType::I64, ValType::F32, ValType::F64],
        [ValType::F64],
        UserData::new(()),
        |_, inputs, outputs, _| {
            let sum = inputs[0].unwrap_i32() as f64
                + inputs[1].unwrap_i64() as f64
                + inputs[2].unwrap_f32() as f64
                + inputs[3].unwrap_f64();
            outputs[0] = Val::F64(sum.to_bits());
            Ok(())
        },
    )
    .with_namespace("math");
    let src = with_prelude(
        r#"(import "math" "add" (func $add (param i32 i64 f32 f64) (result f64)))
           (func (export "f") (result i32)
             (call $output_i64 (i64.trunc_f64_s
               (call $add (i32.const 1) (i64.const 2) (f32.const 3.5) (f64.const 4.5))))
             (i32.const 0))"#,
    );
    let mut p = Plugin::new(src.as_bytes(), [add], false).unwrap();
    assert_eq!(p.call::<_, u64>("f", "").unwrap(), 11);
}

#[test]
fn host_function_errors_and_panics_fail_the_call_only() {
    let fails = Function::new("greet", [PTR], [PTR], UserData::new(()), |_, _, _, _| {
        anyhow::bail!("the database is down")
    });
    let mut p = Plugin::new(with_prelude(REFLECT).as_bytes(), [fails], false).unwrap();
    let err = p.call::<_, &[u8]>("call_greet", "x").unwrap_err();
    match &err {
        Error::HostFunction { function, message } => {
            assert_eq!(function, "greet");
            assert!(message.contains("the database is down"));
        }
        e => panic!("{e:?}"),
    }

    let panics = Function::new(
        "greet",
        [PTR],
        [PTR],
        UserData::new(0u32),
        |_, _, _, calls| {
            *calls.lock() += 1;
            if *calls.lock() == 1 {
                panic!("host bug");
            }
            Ok(())
        },
    );
    let mut p = Plugin::new(with_prelude(REFLECT).as_bytes(), [panics], false).unwrap();
    let err = p.call::<_, &[u8]>("call_greet", "x").unwrap_err();
    assert!(err.to_string().contains("panicked: host bug"), "{err}");
    // The host survives and the plug-in serves the next call.
    assert_eq!(p.call::<_, &[u8]>("call_greet", "x").unwrap(), b"");
}

#[test]
fn host_context_is_per_call() {
    struct Request {
        user: String,
        visits: u32,
    }
    let f = Function::new(
        "greet",
        [PTR],
        [PTR],
        UserData::new(()),
        |plugin, _inputs, outputs, _| {
            let text = match plugin.host_context::<Request>() {
                Some(req) => {
                    req.visits += 1;
                    format!("{} #{}", req.user, req.visits)
                }
                None => "anonymous".to_string(),
            };
            plugin.memory_set_val(&mut outputs[0], text)?;
            Ok(())
        },
    );
    let mut p = Plugin::new(with_prelude(REFLECT).as_bytes(), [f], false).unwrap();
    let ctx = Request {
        user: "ada".into(),
        visits: 0,
    };
    assert_eq!(
        p.call_with_host_context::<_, &str, _>("call_greet", "", ctx)
            .unwrap(),
        "ada #1"
    );
    assert_eq!(p.call::<_, &str>("call_greet", "").unwrap(), "anonymous");
}

#[test]
fn re_entrant_calls_are_refused() {
    let slot: UserData<Option<SharedPlugin>> = UserData::new(None);
    let f = Function::new("greet", [PTR], [PTR], slot.clone(), |_, _, _, slot| {
        let plugin = slot.lock().clone().expect("set");
        plugin.call("call_greet", "again")?;
        Ok(())
    });
    let plugin =
        SharedPlugin::new(Plugin::new(with_prelude(REFLECT).as_bytes(), [f], false).unwrap());
    *slot.lock() = Some(plugin.clone());
    let err = plugin.call("call_greet", "first").unwrap_err();
    assert!(matches!(err, Error::Reentrant { .. }), "{err:?}");
    assert!(err.to_string().contains("re-entrant"), "{err}");
    *slot.lock() = None;
}

#[test]
fn shared_plugin_serves_many_threads() {
    let plugin = SharedPlugin::new(Plugin::new(common::echo_wat().as_bytes(), [], false).unwrap());
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let plugin = plugin.clone();
            std::thread::spawn(move || {
                for i in 0..200 {
                    let msg = format!("{t}-{i}");
                    assert_eq!(plugin.call("echo", msg.as_str()).unwrap(), msg.as_bytes());
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn missing_host_function_names_namespace_and_name() {
    let err = Plugin::new(with_prelude(REFLECT).as_bytes(), [], false).unwrap_err();
    assert!(err.to_string().contains("extism:host/user::greet"), "{err}");
    // Registered in another namespace does not count.
    let f = Function::new(
        "greet",
        [PTR],
        [PTR],
        UserData::new(()),
        |_, _, _, _| Ok(()),
    )
    .with_namespace("other");
    assert!(Plugin::new(with_prelude(REFLECT).as_bytes(), [f], false).is_err());
}
