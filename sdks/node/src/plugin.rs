//! `Plugin`, `CompiledPlugin` and `CancelHandle`, and the tasks that run calls off the
//! JavaScript thread.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError, Weak};

use napi::bindgen_prelude::{AsyncTask, ObjectFinalize};
use napi::{sys, Env, Task};
use napi_derive::napi;

use crate::error::{throw, Failure, Fallible};
use crate::host::{call_shared, type_error, CallCtx, CallShared, Mode, SendEnv};
use crate::js::{Js, JsArg, JsOut, Raw};
use crate::source::{
    json_stringify, parse_call_options, parse_input, parse_options, parse_source, Options,
};

/// One plug-in instance, shared by its JavaScript object and the calls in flight.
pub(crate) struct PluginInner {
    /// `None` once closed. Calls take turns on this lock.
    plugin: Mutex<Option<plinth::Plugin>>,
    closed: AtomicBool,
    cancel: plinth::CancelHandle,
    compiled: plinth::CompiledPlugin,
    id: String,
    /// JavaScript host functions of this plug-in that are running now.
    in_host: Arc<AtomicUsize>,
}

impl PluginInner {
    fn new(plugin: plinth::Plugin) -> Arc<PluginInner> {
        Arc::new(PluginInner {
            cancel: plugin.cancel_handle(),
            compiled: plugin.compiled().clone(),
            id: plugin.id().to_string(),
            plugin: Mutex::new(Some(plugin)),
            closed: AtomicBool::new(false),
            in_host: Arc::new(AtomicUsize::new(0)),
        })
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// The lock, without waiting: the JavaScript thread must never block on a plug-in whose
    /// call on a worker may be waiting for a host function on this very thread.
    fn try_lock(&self, function: &str) -> Fallible<MutexGuard<'_, Option<plinth::Plugin>>> {
        if self.is_closed() {
            return Err(Failure::closed());
        }
        match self.plugin.try_lock() {
            Ok(g) => Ok(g),
            Err(TryLockError::Poisoned(p)) => Ok(p.into_inner()),
            Err(TryLockError::WouldBlock) if self.in_host.load(Ordering::SeqCst) > 0 => {
                Err(Failure {
                    code: Some(-1),
                    ..Failure::from_load(plinth::Error::Reentrant {
                        function: function.to_string(),
                    })
                })
            }
            Err(TryLockError::WouldBlock) => Err(Failure::new(
                "Busy",
                "the plug-in is running a call started with call(); await it first (call() itself waits its turn)",
            )),
        }
    }

    /// Runs a call with the plug-in locked and returns its output.
    fn run(
        &self,
        guard: &mut MutexGuard<'_, Option<plinth::Plugin>>,
        function: &str,
        input: &[u8],
        call: &Arc<CallShared>,
    ) -> Fallible<Vec<u8>> {
        let plugin = guard.as_mut().ok_or_else(Failure::closed)?;
        let result = plugin.raw_call(function, input, Some(Box::new(CallCtx(call.clone()))));
        let out = match result {
            Ok(()) => Ok(plugin.output().to_vec()),
            Err(e) => {
                let mut f = Failure::from_call(e);
                f.cause = call.take_thrown();
                Err(f)
            }
        };
        if self.is_closed() {
            // close() came while this call ran; the plug-in goes now.
            guard.take();
        }
        out
    }

    /// A call on a worker thread: waits its turn.
    fn call_blocking(
        &self,
        function: &str,
        input: &[u8],
        call: &Arc<CallShared>,
    ) -> Fallible<Vec<u8>> {
        let mut guard = self.plugin.lock().unwrap_or_else(|p| p.into_inner());
        self.run(&mut guard, function, input, call)
    }

    /// A call on the JavaScript thread: fails at once when the plug-in is busy.
    fn call_now(&self, function: &str, input: &[u8], call: &Arc<CallShared>) -> Fallible<Vec<u8>> {
        let mut guard = self.try_lock(function)?;
        self.run(&mut guard, function, input, call)
    }
}

/// What the caller wants the output as.
#[derive(Clone, Copy)]
pub(crate) enum OutKind {
    Buffer,
    String,
    Json,
}

fn output_to_js(js: Js, function: &str, out: &[u8], kind: OutKind) -> Fallible<Raw> {
    let napi = |e: napi::Error| Failure::new("Other", e.reason);
    match kind {
        OutKind::Buffer => js.buffer(out).map_err(napi),
        OutKind::String => js.string(&String::from_utf8_lossy(out)).map_err(napi),
        OutKind::Json => {
            let text = std::str::from_utf8(out).map_err(|_| {
                Failure::new(
                    "Convert",
                    format!("the output of `{function}` is not UTF-8, so not JSON"),
                )
            })?;
            let global = js.global().map_err(napi)?;
            let json = js.get(global, "JSON").map_err(napi)?;
            let parse = js.get(json, "parse").map_err(napi)?;
            let arg = js.string(text).map_err(napi)?;
            js.call(parse, json, &[arg]).map_err(|e| match e {
                Ok(thrown) => Failure {
                    cause: crate::js::JsHandle::new(js, thrown.0).ok(),
                    ..Failure::new(
                        "Convert",
                        format!(
                            "the output of `{function}` is not valid JSON: {}",
                            js.describe(thrown.0)
                        ),
                    )
                },
                Err(e) => napi(e),
            })
        }
    }
}

/// A call running on a libuv worker thread.
pub struct CallTask {
    inner: Arc<PluginInner>,
    function: String,
    input: Vec<u8>,
    call: Arc<CallShared>,
    kind: OutKind,
    failure: Option<Failure>,
}

impl Task for CallTask {
    type Output = Vec<u8>;
    type JsValue = JsOut;

    fn compute(&mut self) -> napi::Result<Vec<u8>> {
        self.inner
            .call_blocking(&self.function, &self.input, &self.call)
            .map_err(|f| {
                self.failure = Some(f);
                napi::Error::from_reason("the call failed")
            })
    }

    fn resolve(&mut self, env: Env, output: Vec<u8>) -> napi::Result<JsOut> {
        throw(
            &env,
            output_to_js(Js::new(&env), &self.function, &output, self.kind),
        )
        .map(JsOut)
    }

    fn reject(&mut self, env: Env, err: napi::Error) -> napi::Result<JsOut> {
        let f = self
            .failure
            .take()
            .unwrap_or_else(|| Failure::new("Other", err.reason));
        Err(f.into_napi(&env))
    }
}

/// Compiles (and for `Plugin.load`, instantiates) a plug-in on a libuv worker thread.
pub struct LoadTask {
    source: Option<plinth::Source>,
    options: Options,
    instantiate: bool,
    failure: Option<Failure>,
}

pub enum Loaded {
    Plugin(Box<plinth::Plugin>),
    Compiled(plinth::CompiledPlugin),
}

impl Task for LoadTask {
    type Output = Loaded;
    type JsValue = JsOut;

    fn compute(&mut self) -> napi::Result<Loaded> {
        let builder = self
            .options
            .builder(self.source.take().expect("computed once"));
        let result = if self.instantiate {
            builder.build().map(|p| Loaded::Plugin(Box::new(p)))
        } else {
            builder.compile().map(Loaded::Compiled)
        };
        result.map_err(|e| {
            self.failure = Some(Failure::from_load(e));
            napi::Error::from_reason("loading failed")
        })
    }

    fn resolve(&mut self, env: Env, output: Loaded) -> napi::Result<JsOut> {
        use napi::bindgen_prelude::ToNapiValue;
        let raw = match output {
            Loaded::Plugin(p) => unsafe {
                ToNapiValue::to_napi_value(env.raw(), Plugin::wrap(&env, *p))?
            },
            Loaded::Compiled(c) => unsafe {
                ToNapiValue::to_napi_value(env.raw(), CompiledPlugin { compiled: Some(c) })?
            },
        };
        Ok(JsOut(raw))
    }

    fn reject(&mut self, env: Env, err: napi::Error) -> napi::Result<JsOut> {
        let f = self
            .failure
            .take()
            .unwrap_or_else(|| Failure::new("Other", err.reason));
        Err(f.into_napi(&env))
    }
}

fn load_task(
    env: &Env,
    source: JsArg,
    options: Option<JsArg>,
    instantiate: bool,
) -> napi::Result<AsyncTask<LoadTask>> {
    let js = Js::new(env);
    let options = parse_options(js, options)?;
    let source = parse_source(js, source.0).map_err(|e| e.into_napi(env))?;
    Ok(AsyncTask::new(LoadTask {
        source: Some(source),
        options,
        instantiate,
        failure: None,
    }))
}

/// A loaded plug-in: one instance with its own memory, vars and config.
///
/// ```js
/// const plugin = new Plugin({ wasm: [{ path: "checkout.wasm" }] })
/// const out = await plugin.callJson("before_checkout_finalize", { cart_total: 12000, is_new_customer: true, provided_email: true })
/// plugin.close()
/// ```
///
/// `call()` runs the plug-in on a libuv worker thread and returns a Promise, so the event loop
/// keeps running; `callSync()` runs it on the JavaScript thread. Calls on one plug-in take
/// turns: a `call()` waits (on its worker thread) for the calls before it. A `callSync()`, a
/// `reset()` or an `updateConfig()` that finds a `call()` running does not wait, because the
/// running call may need the JavaScript thread for a host function: it throws a
/// `PlinthError` of kind `"Busy"` (or `"Reentrant"` from inside one of the plug-in's own host
/// functions).
///
/// `close()` frees the plug-in at once; one that is no longer referenced is freed by the
/// garbage collector.
#[napi(custom_finalize)]
pub struct Plugin {
    pub(crate) inner: Arc<PluginInner>,
}

/// What V8 is told each instance costs outside its heap (roughly what a small plug-in's
/// instance takes), so that the collector frees forgotten plug-ins in time.
const EXTERNAL_BYTES: i64 = 64 * 1024;

impl Plugin {
    fn wrap(env: &Env, plugin: plinth::Plugin) -> Plugin {
        let _ = env.adjust_external_memory(EXTERNAL_BYTES);
        Plugin {
            inner: PluginInner::new(plugin),
        }
    }
}

impl ObjectFinalize for Plugin {
    fn finalize(self, env: Env) -> napi::Result<()> {
        let _ = env.adjust_external_memory(-EXTERNAL_BYTES);
        Ok(())
    }
}

#[napi]
impl Plugin {
    /// Loads a plug-in, compiling it on this thread. A manifest whose wasm has a `url` is also
    /// downloaded on this thread: prefer {@link Plugin.load} for large plug-ins and URLs.
    #[napi(
        constructor,
        ts_args_type = "source: PluginSource, options?: PluginOptions"
    )]
    pub fn new(env: Env, source: JsArg, options: Option<JsArg>) -> napi::Result<Self> {
        let js = Js::new(&env);
        let options = parse_options(js, options)?;
        let source = parse_source(js, source.0).map_err(|e| e.into_napi(&env))?;
        let plugin = throw(
            &env,
            options.builder(source).build().map_err(Failure::from_load),
        )?;
        Ok(Plugin::wrap(&env, plugin))
    }

    /// Loads a plug-in on a worker thread (compiling, downloading, instantiating).
    #[napi(
        ts_args_type = "source: PluginSource, options?: PluginOptions",
        ts_return_type = "Promise<Plugin>"
    )]
    pub fn load(
        env: Env,
        source: JsArg,
        options: Option<JsArg>,
    ) -> napi::Result<AsyncTask<LoadTask>> {
        load_task(&env, source, options, true)
    }

    /// The plug-in's id (a UUID), as in its log lines.
    #[napi(getter)]
    pub fn id(&self) -> String {
        self.inner.id.clone()
    }

    /// Whether `close()` was called.
    #[napi(getter)]
    pub fn closed(&self) -> bool {
        self.inner.is_closed()
    }

    fn task(
        &self,
        env: &Env,
        function: String,
        input: Vec<u8>,
        options: Option<JsArg>,
        kind: OutKind,
    ) -> napi::Result<AsyncTask<CallTask>> {
        let host_context = parse_call_options(Js::new(env), options)?;
        Ok(AsyncTask::new(CallTask {
            call: call_shared(Mode::Remote, host_context, self.inner.in_host.clone()),
            inner: self.inner.clone(),
            function,
            input,
            kind,
            failure: None,
        }))
    }

    fn now(
        &self,
        env: &Env,
        function: String,
        input: Vec<u8>,
        options: Option<JsArg>,
        kind: OutKind,
    ) -> napi::Result<JsOut> {
        let js = Js::new(env);
        let host_context = parse_call_options(js, options)?;
        let call = call_shared(
            Mode::Direct(SendEnv(env.raw())),
            host_context,
            self.inner.in_host.clone(),
        );
        let out = throw(env, self.inner.call_now(&function, &input, &call))?;
        throw(env, output_to_js(js, &function, &out, kind)).map(JsOut)
    }

    /// Calls `name` with `input` on a worker thread; resolves to the output bytes. Rejects
    /// with a `PlinthError` when the plug-in fails.
    #[napi(
        ts_args_type = "name: string, input?: CallInput, options?: CallOptions",
        ts_return_type = "Promise<Buffer>"
    )]
    pub fn call(
        &self,
        env: Env,
        name: String,
        input: Option<JsArg>,
        options: Option<JsArg>,
    ) -> napi::Result<AsyncTask<CallTask>> {
        let input = parse_input(Js::new(&env), input)?;
        self.task(&env, name, input, options, OutKind::Buffer)
    }

    /// Calls `name` with `input` on the JavaScript thread and returns the output bytes.
    #[napi(
        ts_args_type = "name: string, input?: CallInput, options?: CallOptions",
        ts_return_type = "Buffer"
    )]
    pub fn call_sync(
        &self,
        env: Env,
        name: String,
        input: Option<JsArg>,
        options: Option<JsArg>,
    ) -> napi::Result<JsOut> {
        let input = parse_input(Js::new(&env), input)?;
        self.now(&env, name, input, options, OutKind::Buffer)
    }

    /// Like `call()`, resolving to the output decoded as UTF-8.
    #[napi(
        ts_args_type = "name: string, input?: CallInput, options?: CallOptions",
        ts_return_type = "Promise<string>"
    )]
    pub fn call_string(
        &self,
        env: Env,
        name: String,
        input: Option<JsArg>,
        options: Option<JsArg>,
    ) -> napi::Result<AsyncTask<CallTask>> {
        let input = parse_input(Js::new(&env), input)?;
        self.task(&env, name, input, options, OutKind::String)
    }

    /// Like `callSync()`, returning the output decoded as UTF-8.
    #[napi(
        ts_args_type = "name: string, input?: CallInput, options?: CallOptions",
        ts_return_type = "string"
    )]
    pub fn call_string_sync(
        &self,
        env: Env,
        name: String,
        input: Option<JsArg>,
        options: Option<JsArg>,
    ) -> napi::Result<JsOut> {
        let input = parse_input(Js::new(&env), input)?;
        self.now(&env, name, input, options, OutKind::String)
    }

    /// Calls `name` with `JSON.stringify(value)` and resolves to the output parsed as JSON. An
    /// output that is not JSON rejects with a `PlinthError` of kind `"Convert"`.
    #[napi(
        ts_args_type = "name: string, value?: unknown, options?: CallOptions",
        ts_return_type = "Promise<any>"
    )]
    pub fn call_json(
        &self,
        env: Env,
        name: String,
        value: Option<JsArg>,
        options: Option<JsArg>,
    ) -> napi::Result<AsyncTask<CallTask>> {
        let js = Js::new(&env);
        let input = json_stringify(js, value.map_or(js.undefined()?, |v| v.0))?;
        self.task(&env, name, input, options, OutKind::Json)
    }

    /// Like `callJson()`, on the JavaScript thread.
    #[napi(
        ts_args_type = "name: string, value?: unknown, options?: CallOptions",
        ts_return_type = "any"
    )]
    pub fn call_json_sync(
        &self,
        env: Env,
        name: String,
        value: Option<JsArg>,
        options: Option<JsArg>,
    ) -> napi::Result<JsOut> {
        let js = Js::new(&env);
        let input = json_stringify(js, value.map_or(js.undefined()?, |v| v.0))?;
        self.now(&env, name, input, options, OutKind::Json)
    }

    /// Whether the plug-in exports a callable function `name`.
    #[napi]
    pub fn function_exists(&self, env: Env, name: String) -> napi::Result<bool> {
        if self.inner.is_closed() {
            return Err(Failure::closed().into_napi(&env));
        }
        Ok(self.inner.compiled.function_exists(&name))
    }

    /// The names of the plug-in's callable exports.
    #[napi]
    pub fn functions(&self, env: Env) -> napi::Result<Vec<String>> {
        if self.inner.is_closed() {
            return Err(Failure::closed().into_napi(&env));
        }
        Ok(self.inner.compiled.functions())
    }

    /// Sets config keys (numbers and booleans become strings) and removes those whose value is
    /// `null` or `undefined`. Takes effect from the next call.
    #[napi(ts_args_type = "changes: Record<string, string | number | boolean | null | undefined>")]
    pub fn update_config(&self, env: Env, changes: JsArg) -> napi::Result<()> {
        let js = Js::new(&env);
        let v = changes.0;
        if js.type_of(v)? != sys::ValueType::napi_object {
            return Err(type_error(
                js,
                "updateConfig takes an object of config keys",
            ));
        }
        let mut list = Vec::new();
        for key in js.keys(v)? {
            let value = js.get(v, &key)?;
            let t = js.type_of(value)?;
            let value = match t {
                sys::ValueType::napi_undefined | sys::ValueType::napi_null => None,
                sys::ValueType::napi_string => Some(js.get_string(value)?),
                sys::ValueType::napi_number
                | sys::ValueType::napi_boolean
                | sys::ValueType::napi_bigint => Some(js.describe(value)),
                _ => {
                    return Err(type_error(
                        js,
                        &format!(
                            "config value `{key}` must be a string, a number, a boolean or null"
                        ),
                    ))
                }
            };
            list.push((key, value));
        }
        let mut guard = throw(&env, self.inner.try_lock("updateConfig"))?;
        let plugin = throw(&env, guard.as_mut().ok_or_else(Failure::closed))?;
        plugin.update_config(list);
        Ok(())
    }

    /// Frees the plug-in's Extism memory (the last output included).
    #[napi]
    pub fn reset(&self, env: Env) -> napi::Result<()> {
        let mut guard = throw(&env, self.inner.try_lock("reset"))?;
        let plugin = throw(&env, guard.as_mut().ok_or_else(Failure::closed))?;
        throw(&env, plugin.reset().map_err(Failure::from_load))
    }

    /// Cancels the running call (it rejects with kind `"Cancelled"`). Returns false when the
    /// plug-in is closed. A cancel when no call runs does nothing.
    #[napi]
    pub fn cancel(&self) -> bool {
        if self.inner.is_closed() {
            return false;
        }
        self.inner.cancel.cancel();
        true
    }

    /// A handle that cancels this plug-in's running call, usable after the plug-in itself is
    /// out of reach (it does not keep the plug-in alive).
    #[napi]
    pub fn cancel_handle(&self) -> CancelHandle {
        CancelHandle {
            cancel: self.inner.cancel.clone(),
            inner: Arc::downgrade(&self.inner),
        }
    }

    /// Frees the plug-in. Idempotent. A call running at the time finishes first; calls made
    /// afterwards fail with kind `"Closed"`.
    #[napi]
    pub fn close(&self) {
        self.inner.closed.store(true, Ordering::SeqCst);
        let taken = match self.inner.plugin.try_lock() {
            Ok(mut g) => g.take(),
            Err(TryLockError::Poisoned(p)) => p.into_inner().take(),
            // A running call frees it when it ends.
            Err(TryLockError::WouldBlock) => None,
        };
        drop(taken);
    }
}

/// Cancels the running call of a plug-in, from anywhere (a timer, a signal handler, a host
/// function).
#[napi]
pub struct CancelHandle {
    cancel: plinth::CancelHandle,
    inner: Weak<PluginInner>,
}

#[napi]
impl CancelHandle {
    /// Cancels the plug-in's running call. Returns false once the plug-in is closed or freed.
    #[napi]
    pub fn cancel(&self) -> bool {
        match self.inner.upgrade() {
            Some(inner) if !inner.is_closed() => {
                self.cancel.cancel();
                true
            }
            _ => false,
        }
    }
}

/// A compiled plug-in: makes new instances without compiling again. Instances share nothing
/// but the code: each has its own memory, vars and config.
///
/// ```js
/// const compiled = new CompiledPlugin(fs.readFileSync("count_vowels.wasm"))
/// const a = compiled.instance(), b = compiled.instance()
/// ```
#[napi]
pub struct CompiledPlugin {
    compiled: Option<plinth::CompiledPlugin>,
}

#[napi]
impl CompiledPlugin {
    /// Compiles a plug-in on this thread. The options apply to every instance.
    #[napi(
        constructor,
        ts_args_type = "source: PluginSource, options?: PluginOptions"
    )]
    pub fn new(env: Env, source: JsArg, options: Option<JsArg>) -> napi::Result<Self> {
        let js = Js::new(&env);
        let options = parse_options(js, options)?;
        let source = parse_source(js, source.0).map_err(|e| e.into_napi(&env))?;
        let compiled = throw(
            &env,
            options
                .builder(source)
                .compile()
                .map_err(Failure::from_load),
        )?;
        Ok(CompiledPlugin {
            compiled: Some(compiled),
        })
    }

    /// Compiles a plug-in on a worker thread.
    #[napi(
        ts_args_type = "source: PluginSource, options?: PluginOptions",
        ts_return_type = "Promise<CompiledPlugin>"
    )]
    pub fn load(
        env: Env,
        source: JsArg,
        options: Option<JsArg>,
    ) -> napi::Result<AsyncTask<LoadTask>> {
        load_task(&env, source, options, false)
    }

    fn get(&self, env: &Env) -> napi::Result<&plinth::CompiledPlugin> {
        self.compiled.as_ref().ok_or_else(|| {
            Failure::new(
                "Closed",
                "the compiled plug-in is closed; its instances stay usable",
            )
            .into_napi(env)
        })
    }

    /// A new instance (cheap: no compiling).
    #[napi]
    pub fn instance(&self, env: Env) -> napi::Result<Plugin> {
        let plugin = throw(
            &env,
            self.get(&env)?.instantiate().map_err(Failure::from_load),
        )?;
        Ok(Plugin::wrap(&env, plugin))
    }

    /// Whether the plug-in exports a callable function `name`.
    #[napi]
    pub fn function_exists(&self, env: Env, name: String) -> napi::Result<bool> {
        Ok(self.get(&env)?.function_exists(&name))
    }

    /// The names of the plug-in's callable exports.
    #[napi]
    pub fn functions(&self, env: Env) -> napi::Result<Vec<String>> {
        Ok(self.get(&env)?.functions())
    }

    /// Drops the compiled code (once no instance uses it). Idempotent; instances stay usable.
    #[napi]
    pub fn close(&mut self) {
        self.compiled = None;
    }
}
