//! Host functions as Extism's docs write them: `host_fn!` with and without user data,
//! `Function::new` with a closure over `CurrentPlugin`'s memory API, host context, vars,
//! the manifest, errors and namespaces.

use std::sync::{Arc, Mutex};

use extism::convert::Json;
use extism::*;

use crate::{module, plugin};

host_fn!(greet(name: String) -> String {
    Ok(format!("Hello, {name}!"))
});

host_fn!(pub greet_and_remember(seen: Vec<String>; name: String) -> String {
    let seen = seen.get()?;
    seen.lock().unwrap().push(name.clone());
    Ok(format!("Hello, {name}!"))
});

#[test]
fn host_fn_without_user_data() {
    // extism-pdk's `#[host_fn] extern "ExtismHost" { fn greet(name: String) -> String; }`
    let manifest = Manifest::new([Wasm::file(plugin("extism_host_fn"))]);
    let f = Function::new("greet", [PTR], [PTR], UserData::new(()), greet);
    let mut plugin = Plugin::new(&manifest, [f], false).unwrap();
    let out = plugin.call::<&str, &str>("call_greet", "Ada").unwrap();
    assert_eq!(out, "Hello, Ada!");
}

#[test]
fn host_fn_with_user_data_sees_every_call() {
    let seen = UserData::new(Vec::<String>::new());
    // Plinth's PDK build of the same plug-in, through the builder.
    let mut plugin = PluginBuilder::new(Manifest::new([Wasm::file(plugin("host_greet"))]))
        .with_function("greet", [PTR], [PTR], seen.clone(), greet_and_remember)
        .build()
        .unwrap();
    for name in ["Ada", "Grace"] {
        let out: String = plugin.call("call_greet", name).unwrap();
        assert_eq!(out, format!("Hello, {name}!"));
    }
    assert_eq!(*seen.get().unwrap().lock().unwrap(), ["Ada", "Grace"]);
}

#[test]
fn raw_function_with_current_plugin_memory_api() {
    // The bytes-in, bytes-out plug-in: `reflect` passes its input to the host function
    // `reflect` and outputs what comes back.
    let calls = UserData::new(0u32);
    let reflect = Function::new(
        "reflect",
        [PTR],
        [PTR],
        calls.clone(),
        |plugin: &mut CurrentPlugin,
         inputs: &[Val],
         outputs: &mut [Val],
         user_data: UserData<u32>| {
            let handle = plugin.memory_from_val(&inputs[0]).unwrap();
            let text = plugin.memory_str(handle)?.to_string();
            let bytes = plugin.memory_bytes(handle)?.to_vec();
            assert_eq!(text.as_bytes(), bytes);
            plugin.memory_free(handle)?;
            let out = plugin.memory_alloc(text.len() as u64)?;
            plugin
                .memory_bytes_mut(out)?
                .copy_from_slice(text.to_uppercase().as_bytes());
            assert_eq!(plugin.memory_length(out.offset())?, text.len() as u64);
            outputs[0] = plugin.memory_to_val(out);
            *user_data.get()?.lock().unwrap() += 1;
            Ok(())
        },
    );
    let mut plugin = Plugin::new(
        Manifest::new([Wasm::file(plugin("extism_echo"))]),
        [reflect],
        false,
    )
    .unwrap();
    assert_eq!(
        plugin.call::<&str, &str>("reflect", "shout").unwrap(),
        "SHOUT"
    );
    assert_eq!(
        plugin.call::<&[u8], Vec<u8>>("reflect", b"again").unwrap(),
        b"AGAIN"
    );
    assert_eq!(*calls.get().unwrap().lock().unwrap(), 2);
}

#[test]
fn memory_get_and_set_val_with_typed_values() {
    // `memory_get_val`/`memory_set_val` with the convert types, in a raw host function.
    #[derive(serde::Serialize, serde::Deserialize)]
    struct Doubled {
        value: String,
        twice: String,
    }
    let double = Function::new(
        "reflect",
        [PTR],
        [PTR],
        UserData::<()>::default(),
        |plugin, inputs, outputs, _| {
            let input: String = plugin.memory_get_val(&inputs[0])?;
            let out = Doubled {
                twice: input.repeat(2),
                value: input,
            };
            plugin.memory_set_val(&mut outputs[0], Json(out))
        },
    );
    let mut plugin = Plugin::new(
        Manifest::new([Wasm::file(plugin("extism_echo"))]),
        [double],
        false,
    )
    .unwrap();
    let Json(out) = plugin.call::<&str, Json<Doubled>>("reflect", "ab").unwrap();
    assert_eq!((out.value.as_str(), out.twice.as_str()), ("ab", "abab"));
}

/// `inspect(handle) -> handle` in the user namespace; `var` outputs the var named by the input.
fn inspect_plugin() -> Wasm {
    Wasm::data(module(
        r#"(import "extism:host/user" "inspect" (func $inspect (param i64) (result i64)))"#,
        r#"
      (func (export "call_inspect") (result i32)
        (call $output_block (call $inspect (call $input_offset))) (i32.const 0))
      (func (export "var") (result i32)
        (call $output_block (call $var_get (call $input_offset))) (i32.const 0))
      (data (i32.const 0) "oops")
      ;; Fails with "oops", then lets the host function see and clear the error.
      (func (export "fail_then_recover") (result i32)
        (call $fail (i32.const 0) (i32.const 4))
        (call $output_block (call $inspect (call $input_offset))) (i32.const 0))"#,
    ))
}

#[test]
fn current_plugin_vars_manifest_id_and_host_context() {
    #[derive(Debug, Default)]
    struct Seen {
        ids: Vec<String>,
        contexts: Vec<String>,
        config: Option<String>,
        time_remaining: Option<std::time::Duration>,
    }
    let seen = UserData::new(Seen::default());
    let inspect = Function::new(
        "inspect",
        [PTR],
        [PTR],
        seen.clone(),
        |plugin, inputs, outputs, seen| {
            let name: String = plugin.memory_get_val(&inputs[0])?;
            let seen = seen.get()?;
            let mut seen = seen.lock().unwrap();
            seen.ids.push(plugin.id().to_string());
            seen.config = plugin.manifest().config.get("greeting").cloned();
            seen.time_remaining = plugin.time_remaining();
            if let Ok(ctx) = plugin.host_context::<String>() {
                seen.contexts.push(ctx.clone());
                ctx.push_str(" (seen)");
            }
            // A var the host sets for the plug-in, next to the count the host keeps in one.
            let count = plugin
                .vars()
                .get("count")
                .map_or(0, |v| u32::from_le_bytes(v[..].try_into().unwrap()));
            let vars = plugin.vars_mut();
            vars.insert("count".into(), (count + 1).to_le_bytes().to_vec());
            vars.insert("last".into(), name.clone().into_bytes());
            plugin.memory_set_val(&mut outputs[0], format!("{name} #{}", count + 1))
        },
    );
    let manifest = Manifest::new([inspect_plugin()])
        .with_config_key("greeting", "hi")
        .with_timeout(std::time::Duration::from_secs(30));
    let mut plugin = Plugin::new(&manifest, [inspect], false).unwrap();

    assert_eq!(
        plugin.call::<&str, &str>("call_inspect", "Ada").unwrap(),
        "Ada #1"
    );
    let context = String::from("request 7");
    assert_eq!(
        plugin
            .call_with_host_context::<&str, &str, _>("call_inspect", "Grace", context)
            .unwrap(),
        "Grace #2"
    );
    // The plug-in reads the vars the host function set.
    assert_eq!(plugin.call::<&str, &str>("var", "last").unwrap(), "Grace");
    assert_eq!(
        plugin.call::<&str, u32>("var", "count").unwrap(),
        2,
        "vars set by the host persist like the plug-in's own"
    );

    let seen = seen.get().unwrap();
    let seen = seen.lock().unwrap();
    let id = plugin.id.to_string();
    assert_eq!(seen.ids, [id.clone(), id]);
    assert_eq!(seen.contexts, ["request 7"]);
    assert_eq!(seen.config.as_deref(), Some("hi"));
    let left = seen.time_remaining.expect("a timeout is set");
    assert!(
        left > std::time::Duration::from_secs(20) && left <= std::time::Duration::from_secs(30)
    );
}

#[test]
fn host_function_can_read_and_clear_the_plugins_error() {
    let errors = UserData::new(Vec::<Option<String>>::new());
    let inspect = Function::new(
        "inspect",
        [PTR],
        [PTR],
        errors.clone(),
        |plugin, _, outputs, errors| {
            let error = plugin.get_error().map(str::to_string);
            errors.get()?.lock().unwrap().push(error);
            plugin.clear_error();
            plugin.memory_set_val(&mut outputs[0], "recovered")
        },
    );
    let mut plugin = Plugin::new(Manifest::new([inspect_plugin()]), [inspect], false).unwrap();
    assert_eq!(
        plugin.call::<&str, &str>("fail_then_recover", "").unwrap(),
        "recovered"
    );
    assert_eq!(
        *errors.get().unwrap().lock().unwrap(),
        [Some("oops".to_string())]
    );
}

#[test]
fn host_function_error_fails_the_call() {
    let f = Function::new("greet", [PTR], [PTR], UserData::new(()), |_, _, _, _| {
        Err(Error::msg("no greetings today"))
    });
    let mut plugin = Plugin::new(
        Manifest::new([Wasm::file(plugin("extism_host_fn"))]),
        [f],
        false,
    )
    .unwrap();
    let err = plugin.call::<&str, &str>("call_greet", "Ada").unwrap_err();
    assert!(format!("{err:#}").contains("no greetings today"), "{err:#}");
    // The plug-in is still usable after a failed call.
    let err = plugin.call::<&str, &str>("call_greet", "Ada").unwrap_err();
    assert!(format!("{err:#}").contains("no greetings today"), "{err:#}");
}

#[test]
fn namespaces_and_numeric_signatures() {
    let wat = module(
        r#"(import "math" "add" (func $add (param i32 i64 f32 f64) (result f64)))"#,
        r#"(func (export "sum") (result i32)
             (call $output_i64 (i64.trunc_f64_s
               (call $add (i32.const 1) (i64.const 2) (f32.const 3.5) (f64.const 4.25))))
             (i32.const 0))"#,
    );
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
    assert_eq!(add.namespace(), Some("math"));
    assert_eq!(
        add.params(),
        [ValType::I32, ValType::I64, ValType::F32, ValType::F64]
    );
    assert_eq!(add.results(), [ValType::F64]);
    let mut plugin = Plugin::new(wat.as_bytes(), [add], false).unwrap();
    assert_eq!(plugin.call::<&str, i64>("sum", "").unwrap(), 10);

    // The same through `with_function_in_namespace`.
    let mut plugin = PluginBuilder::new(wat.as_str())
        .with_function_in_namespace(
            "math",
            "add",
            [ValType::I32, ValType::I64, ValType::F32, ValType::F64],
            [ValType::F64],
            UserData::new(()),
            |_, inputs, outputs, _| {
                outputs[0] = Val::F64((inputs[1].unwrap_i64() as f64 * 10.0).to_bits());
                Ok(())
            },
        )
        .build()
        .unwrap();
    assert_eq!(plugin.call::<&str, i64>("sum", "").unwrap(), 20);
}

#[test]
fn user_data_shared_between_functions_and_threads() {
    // Host state behind the Arc<Mutex<_>> that `UserData::get` hands out.
    let log: UserData<Vec<String>> = UserData::default();
    let shared: Arc<Mutex<Vec<String>>> = log.get().unwrap();
    let manifest = Manifest::new([Wasm::file(plugin("extism_host_fn"))]);
    let compiled = PluginBuilder::new(&manifest)
        .with_function("greet", [PTR], [PTR], log.clone(), greet_and_remember)
        .compile()
        .unwrap();
    let threads: Vec<_> = ["a", "b", "c"]
        .into_iter()
        .map(|name| {
            let compiled = compiled.clone();
            std::thread::spawn(move || {
                let mut plugin = Plugin::new_from_compiled(&compiled).unwrap();
                plugin.call::<&str, String>("call_greet", name).unwrap()
            })
        })
        .collect();
    let mut outs: Vec<String> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    outs.sort();
    assert_eq!(outs, ["Hello, a!", "Hello, b!", "Hello, c!"]);
    let mut names = shared.lock().unwrap().clone();
    names.sort();
    assert_eq!(names, ["a", "b", "c"]);
}
