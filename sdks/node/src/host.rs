//! Host functions written in JavaScript, and the `CurrentPlugin` view they get.
//!
//! A plug-in runs either on the JavaScript thread (`callSync`) or on a libuv worker thread
//! (`call`). Its wasm store is only ever touched by the thread that runs it:
//!
//! - **On the JavaScript thread** the host function is called directly, and `CurrentPlugin`
//!   works on the store through a pointer that is valid while the callback runs.
//! - **On a worker thread** the host function is queued on the JavaScript thread through a
//!   threadsafe function, and the worker blocks. While it waits it serves the memory requests
//!   of `CurrentPlugin` (read, write, alloc, ...) that arrive over a channel, until the
//!   callback's result arrives on the same channel.
//!
//! Either way `CurrentPlugin` is closed as soon as the callback returns, so a kept reference
//! fails cleanly instead of touching a store that moved on.

use std::ffi::c_void;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use napi::bindgen_prelude::JavaScriptClassExt;
use napi::threadsafe_function::{
    ThreadsafeCallContext, ThreadsafeFunction, ThreadsafeFunctionCallMode,
};
use napi::{sys, Env, Status};
use napi_derive::napi;
use plinth::Val;

use crate::error::{throw, Failure, Fallible};
use crate::js::{Js, JsArg, JsHandle, JsOut, Raw, Thrown};

/// The wasm value types of host function parameters and results. Extism memory handles are
/// `i64` (`ValType.I64`).
#[napi(string_enum = "lowercase")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValType {
    I32,
    I64,
    F32,
    F64,
}

impl ValType {
    fn parse(s: &str) -> Option<ValType> {
        Some(match s {
            "i32" => ValType::I32,
            "i64" => ValType::I64,
            "f32" => ValType::F32,
            "f64" => ValType::F64,
            _ => return None,
        })
    }

    fn wasm(self) -> plinth::ValType {
        match self {
            ValType::I32 => plinth::ValType::I32,
            ValType::I64 => plinth::ValType::I64,
            ValType::F32 => plinth::ValType::F32,
            ValType::F64 => plinth::ValType::F64,
        }
    }

    fn name(self) -> &'static str {
        match self {
            ValType::I32 => "i32",
            ValType::I64 => "i64",
            ValType::F32 => "f32",
            ValType::F64 => "f64",
        }
    }
}

/// A wasm number, free to cross threads.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Num {
    I32(i32),
    I64(i64),
    F32(f32),
    F64(f64),
}

impl Num {
    fn from_val(v: &Val) -> Option<Num> {
        Some(match v {
            Val::I32(n) => Num::I32(*n),
            Val::I64(n) => Num::I64(*n),
            Val::F32(bits) => Num::F32(f32::from_bits(*bits)),
            Val::F64(bits) => Num::F64(f64::from_bits(*bits)),
            _ => return None,
        })
    }

    fn to_val(self) -> Val {
        match self {
            Num::I32(n) => Val::I32(n),
            Num::I64(n) => Val::I64(n),
            Num::F32(f) => Val::F32(f.to_bits()),
            Num::F64(f) => Val::F64(f.to_bits()),
        }
    }

    fn to_js(self, js: Js) -> napi::Result<Raw> {
        match self {
            Num::I32(n) => js.number(n as f64),
            Num::I64(n) => js.bigint(n),
            Num::F32(f) => js.number(f as f64),
            Num::F64(f) => js.number(f),
        }
    }

    /// A JavaScript result value as the wasm type `ty`; `undefined` and `null` are 0.
    fn from_js(js: Js, v: Raw, ty: ValType) -> Result<Num, String> {
        let t = js.type_of(v).map_err(|e| e.reason)?;
        if t == sys::ValueType::napi_undefined || t == sys::ValueType::napi_null {
            return Ok(match ty {
                ValType::I32 => Num::I32(0),
                ValType::I64 => Num::I64(0),
                ValType::F32 => Num::F32(0.0),
                ValType::F64 => Num::F64(0.0),
            });
        }
        let wrong = || {
            let what = match t {
                sys::ValueType::napi_boolean => "a boolean",
                sys::ValueType::napi_string => "a string",
                sys::ValueType::napi_symbol => "a symbol",
                sys::ValueType::napi_object => "an object",
                sys::ValueType::napi_function => "a function",
                sys::ValueType::napi_bigint => "a BigInt",
                _ => "another value",
            };
            let want = match ty {
                ValType::I32 | ValType::I64 => "a number or a BigInt",
                ValType::F32 | ValType::F64 => "a number",
            };
            format!("its {} result must be {want}, not {what}", ty.name())
        };
        if t == sys::ValueType::napi_bigint {
            let (n, lossless) = js.get_bigint_i64(v).map_err(|e| e.reason)?;
            let (u, lossless_u) = js.get_bigint_u64(v).map_err(|e| e.reason)?;
            return match ty {
                ValType::I64 if lossless => Ok(Num::I64(n)),
                ValType::I64 if lossless_u => Ok(Num::I64(u as i64)),
                ValType::I32 if lossless && (i32::MIN as i64..=u32::MAX as i64).contains(&n) => {
                    Ok(Num::I32(n as i32))
                }
                ValType::I32 | ValType::I64 => {
                    Err(format!("its {} result {n}n is out of range", ty.name()))
                }
                _ => Err(wrong()),
            };
        }
        if t != sys::ValueType::napi_number {
            return Err(wrong());
        }
        let f = js.get_number(v).map_err(|e| e.reason)?;
        let integer = |lo: f64, hi: f64| -> Result<f64, String> {
            if f.fract() == 0.0 && f >= lo && f <= hi {
                Ok(f)
            } else {
                Err(format!(
                    "its {} result must be an integer from {lo} to {hi}, not {f}",
                    ty.name()
                ))
            }
        };
        Ok(match ty {
            ValType::I32 => Num::I32(integer(i32::MIN as f64, u32::MAX as f64)? as i64 as i32),
            // Past 2^53 a number is not exact; such values must be BigInts.
            ValType::I64 => Num::I64(integer(-9007199254740991.0, 9007199254740991.0)? as i64),
            ValType::F32 => Num::F32(f as f32),
            ValType::F64 => Num::F64(f),
        })
    }
}

/// How the plug-in of a call is run, and what the call hands to host functions.
pub(crate) struct CallShared {
    pub mode: Mode,
    /// `hostContext` of the call.
    pub host_context: Option<JsHandle>,
    /// What a host function threw, kept for the call error's `cause`.
    pub thrown: Mutex<Option<JsHandle>>,
    /// JavaScript host functions of the plug-in running right now (to tell a re-entrant
    /// `callSync` from one that finds the plug-in busy).
    pub in_host: Arc<AtomicUsize>,
}

impl CallShared {
    pub fn take_thrown(&self) -> Option<JsHandle> {
        self.thrown.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

pub(crate) enum Mode {
    /// The plug-in runs on the JavaScript thread of this environment.
    Direct(SendEnv),
    /// The plug-in runs on a worker thread.
    Remote,
}

/// An environment pointer. Only used on the thread that owns it; the type is Send only
/// because it travels inside the call's context, which the runtime requires to be Send.
pub(crate) struct SendEnv(pub sys::napi_env);
unsafe impl Send for SendEnv {}
unsafe impl Sync for SendEnv {}

/// The host context the SDK gives every call, so host functions find their way back.
pub(crate) struct CallCtx(pub Arc<CallShared>);

/// Messages to the thread that runs the plug-in while a host function runs elsewhere.
pub(crate) enum ToWorker {
    Op(Op, mpsc::SyncSender<Result<OpOut, String>>),
    Done(Fallible<Vec<Num>>),
}

/// A memory operation of `CurrentPlugin`.
pub(crate) enum Op {
    Read(u64),
    Write(Vec<u8>),
    Alloc(u64),
    Free(u64),
    Length(u64),
    Id,
}

pub(crate) enum OpOut {
    Bytes(Vec<u8>),
    Number(u64),
    Text(String),
    Unit,
}

fn run_op(cp: &mut plinth::CurrentPlugin<'_>, op: Op) -> Result<OpOut, String> {
    let err = |e: plinth::Error| e.to_string();
    match op {
        Op::Read(h) => cp
            .memory_get_val::<&[u8]>(&Val::I64(h as i64))
            .map(|b| OpOut::Bytes(b.to_vec()))
            .map_err(err),
        Op::Write(bytes) => cp
            .memory_new(&bytes[..])
            .map(|m| OpOut::Number(m.offset))
            .map_err(err),
        Op::Alloc(n) => cp
            .memory_alloc(n)
            .map(|m| OpOut::Number(m.offset))
            .map_err(err),
        Op::Free(h) => {
            if let Some(m) = cp.memory_handle(h) {
                cp.memory_free(m);
            }
            Ok(OpOut::Unit)
        }
        Op::Length(h) => Ok(OpOut::Number(cp.memory_length(h))),
        Op::Id => Ok(OpOut::Text(cp.id().to_string())),
    }
}

/// How a `CurrentPlugin` reaches the store of the running plug-in.
pub(crate) struct Link {
    state: Mutex<LinkState>,
}

enum LinkState {
    /// A `plinth::CurrentPlugin` on this (the JavaScript) thread's stack.
    Direct(*mut c_void),
    /// The worker thread that runs the plug-in and waits for requests.
    Remote(mpsc::Sender<ToWorker>),
    Closed,
}

// The Direct pointer is only dereferenced on the JavaScript thread, during the callback.
unsafe impl Send for Link {}
unsafe impl Sync for Link {}

impl Link {
    fn new(state: LinkState) -> Arc<Link> {
        Arc::new(Link {
            state: Mutex::new(state),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LinkState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn close(&self) {
        *self.lock() = LinkState::Closed;
    }

    fn is_open(&self) -> bool {
        !matches!(*self.lock(), LinkState::Closed)
    }

    fn run(&self, op: Op) -> Fallible<OpOut> {
        let state = self.lock();
        let out = match &*state {
            LinkState::Direct(p) => {
                // SAFETY: set by `HostFn::invoke` from the `&mut CurrentPlugin` it holds, which
                // it does not use while the callback runs; the link closes before it returns.
                let cp = unsafe { &mut *(*p as *mut plinth::CurrentPlugin<'static>) };
                run_op(cp, op)
            }
            LinkState::Remote(tx) => {
                let tx = tx.clone();
                drop(state);
                let (reply, answer) = mpsc::sync_channel(1);
                if tx.send(ToWorker::Op(op, reply)).is_err() {
                    return Err(invalid_current_plugin());
                }
                answer.recv().map_err(|_| invalid_current_plugin())?
            }
            LinkState::Closed => return Err(invalid_current_plugin()),
        };
        out.map_err(|m| Failure::new("Memory", m))
    }
}

fn invalid_current_plugin() -> Failure {
    Failure::new(
        "Closed",
        "this CurrentPlugin is no longer valid: use it only while its host function runs",
    )
}

type Tsfn = ThreadsafeFunction<HostRequest, (), (), Status, false, true, 0>;

/// A call of a host function, queued on the JavaScript thread by a worker.
pub(crate) struct HostRequest {
    hf: Arc<HostFn>,
    inputs: Vec<Num>,
    call: Arc<CallShared>,
    tx: mpsc::Sender<ToWorker>,
}

/// A host function: its signature, the JavaScript callback and how to reach it.
pub(crate) struct HostFn {
    name: String,
    namespace: String,
    params: Vec<ValType>,
    results: Vec<ValType>,
    callback: JsHandle,
    user_data: Option<JsHandle>,
    tsfn: Tsfn,
}

impl HostFn {
    /// The runtime's view of this function.
    pub fn to_function(self: &Arc<Self>) -> plinth::Function {
        let hf = self.clone();
        plinth::Function::new(
            self.name.clone(),
            self.params.iter().map(|t| t.wasm()),
            self.results.iter().map(|t| t.wasm()),
            plinth::UserData::new(()),
            move |cp, inputs, outputs, _| hf.invoke(cp, inputs, outputs),
        )
        .with_namespace(self.namespace.clone())
    }

    /// Runs on the thread that runs the plug-in.
    fn invoke(
        self: &Arc<Self>,
        cp: &mut plinth::CurrentPlugin<'_>,
        inputs: &[Val],
        outputs: &mut [Val],
    ) -> anyhow::Result<()> {
        let Some(call) = cp.host_context::<CallCtx>().map(|c| c.0.clone()) else {
            anyhow::bail!(
                "JavaScript host functions can only run during a call made through the Node SDK"
            );
        };
        let nums = inputs
            .iter()
            .map(Num::from_val)
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| anyhow::anyhow!("unsupported argument type"))?;
        let result = match &call.mode {
            Mode::Direct(env) => {
                let js = Js(env.0);
                let link = Link::new(LinkState::Direct(cp as *mut _ as *mut c_void));
                let result = in_handle_scope(js, || dispatch(js, self, &nums, &call, &link));
                link.close();
                result
            }
            Mode::Remote => self.remote(cp, nums, &call),
        };
        match result {
            Ok(values) => {
                for (slot, v) in outputs.iter_mut().zip(values) {
                    *slot = v.to_val();
                }
                Ok(())
            }
            Err(f) => {
                if let Some(cause) = f.cause {
                    *call.thrown.lock().unwrap_or_else(|p| p.into_inner()) = Some(cause);
                }
                Err(anyhow::anyhow!(f.message))
            }
        }
    }

    /// Has the JavaScript thread run the callback, serving memory requests meanwhile.
    fn remote(
        self: &Arc<Self>,
        cp: &mut plinth::CurrentPlugin<'_>,
        inputs: Vec<Num>,
        call: &Arc<CallShared>,
    ) -> Fallible<Vec<Num>> {
        let (tx, rx) = mpsc::channel();
        let request = HostRequest {
            hf: self.clone(),
            inputs,
            call: call.clone(),
            tx,
        };
        let status = self
            .tsfn
            .call(request, ThreadsafeFunctionCallMode::NonBlocking);
        if status != Status::Ok {
            return Err(Failure::new(
                "HostFunction",
                format!("cannot reach the JavaScript thread to run it ({status})"),
            ));
        }
        let gone = || {
            Err(Failure::new(
                "HostFunction",
                "the JavaScript thread went away before the host function returned",
            ))
        };
        loop {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(ToWorker::Op(op, reply)) => {
                    let _ = reply.send(run_op(cp, op));
                }
                Ok(ToWorker::Done(result)) => return result,
                // A worker thread's environment that shuts down drops the request unrun.
                Err(RecvTimeoutError::Timeout) if self.tsfn.aborted() => return gone(),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return gone(),
            }
        }
    }
}

/// The tsfn callback: runs a queued host function on the JavaScript thread.
fn serve(ctx: ThreadsafeCallContext<HostRequest>) -> napi::Result<()> {
    let HostRequest {
        hf,
        inputs,
        call,
        tx,
    } = ctx.value;
    let js = Js::new(&ctx.env);
    let link = Link::new(LinkState::Remote(tx.clone()));
    let result = dispatch(js, &hf, &inputs, &call, &link);
    link.close();
    let _ = tx.send(ToWorker::Done(result));
    Ok(())
}

fn in_handle_scope<T>(js: Js, f: impl FnOnce() -> T) -> T {
    let mut scope = std::ptr::null_mut();
    let opened = unsafe { sys::napi_open_handle_scope(js.0, &mut scope) } == sys::Status::napi_ok;
    let out = f();
    if opened {
        unsafe { sys::napi_close_handle_scope(js.0, scope) };
    }
    out
}

/// Calls the JavaScript callback (on the JavaScript thread) and converts its result.
fn dispatch(
    js: Js,
    hf: &HostFn,
    inputs: &[Num],
    call: &Arc<CallShared>,
    link: &Arc<Link>,
) -> Fallible<Vec<Num>> {
    let napi_failure = |e: napi::Error| Failure::new("HostFunction", e.reason);
    let env = js.env();
    let current = CurrentPlugin {
        link: link.clone(),
        call: call.clone(),
    }
    .into_instance(&env)
    .map_err(napi_failure)?
    .value;
    let args = inputs
        .iter()
        .map(|n| n.to_js(js))
        .collect::<napi::Result<Vec<_>>>()
        .map_err(napi_failure)?;
    let args = js.array(&args).map_err(napi_failure)?;
    let user_data = match &hf.user_data {
        Some(h) => h.get(js),
        None => js.undefined(),
    }
    .map_err(napi_failure)?;
    let func = hf.callback.get(js).map_err(napi_failure)?;
    let this = js.undefined().map_err(napi_failure)?;

    call.in_host.fetch_add(1, Ordering::SeqCst);
    let returned = js.call(func, this, &[current, args, user_data]);
    call.in_host.fetch_sub(1, Ordering::SeqCst);
    link.close();

    let value = match returned {
        Ok(v) => v,
        Err(Ok(Thrown(e))) => {
            return Err(Failure {
                kind: "HostFunction",
                message: js.describe(e),
                code: None,
                cause: JsHandle::new(js, e).ok(),
            })
        }
        Err(Err(e)) => return Err(napi_failure(e)),
    };
    results(js, hf, value).map_err(|m| Failure::new("HostFunction", m))
}

/// The callback's return value as the function's results.
fn results(js: Js, hf: &HostFn, value: Raw) -> Result<Vec<Num>, String> {
    let e = |e: napi::Error| e.reason;
    if js.is_promise(value).map_err(e)? {
        return Err(
            "it returned a Promise; host functions must return their result synchronously".into(),
        );
    }
    match hf.results.len() {
        0 => Ok(Vec::new()),
        1 => {
            let v = if js.is_array(value).map_err(e)? {
                let items = js.array_items(value).map_err(e)?;
                if items.len() != 1 {
                    return Err(format!(
                        "it returned an array of {} values for 1 result",
                        items.len()
                    ));
                }
                items[0]
            } else {
                value
            };
            Ok(vec![Num::from_js(js, v, hf.results[0])?])
        }
        n => {
            if js.is_nullish(value).map_err(e)? {
                return hf
                    .results
                    .iter()
                    .map(|t| Num::from_js(js, value, *t))
                    .collect();
            }
            if !js.is_array(value).map_err(e)? {
                return Err(format!(
                    "it has {n} results, so it must return an array of {n} values"
                ));
            }
            let items = js.array_items(value).map_err(e)?;
            if items.len() != n {
                return Err(format!(
                    "it returned {} values for {n} results",
                    items.len()
                ));
            }
            items
                .iter()
                .zip(&hf.results)
                .map(|(v, t)| Num::from_js(js, *v, *t))
                .collect()
        }
    }
}

unsafe extern "C" fn noop(_env: sys::napi_env, _info: sys::napi_callback_info) -> sys::napi_value {
    std::ptr::null_mut()
}

pub(crate) fn type_error(js: Js, message: &str) -> napi::Error {
    let mut err = std::ptr::null_mut();
    let status = js.string(message).map(|msg| unsafe {
        sys::napi_create_type_error(js.0, std::ptr::null_mut(), msg, &mut err)
    });
    match status {
        Ok(sys::Status::napi_ok) => js.rethrow(err),
        _ => napi::Error::new(Status::InvalidArg, message.to_string()),
    }
}

/// A function the host offers to plug-ins, written in JavaScript.
///
/// ```js
/// const greet = new HostFunction("greet", [ValType.I64], [ValType.I64],
///   (plugin, inputs, userData) => plugin.writeString(userData + plugin.readString(inputs[0])),
///   { userData: "Hello, " })
/// const plugin = new Plugin(wasm, { functions: [greet] })
/// ```
///
/// The callback gets the calling plug-in (a {@link CurrentPlugin}, valid only while the
/// callback runs), the arguments (`i64` as BigInt, the others as numbers) and `userData`. It
/// returns the result: a number or BigInt for one result, an array for several, nothing for
/// none (`undefined` and `null` count as 0). It must return synchronously.
///
/// It always runs on the JavaScript thread, also during `call()`, whose plug-in runs on a
/// worker thread. An exception it throws fails the plug-in's call with a `PlinthError` of
/// kind `"HostFunction"`; the exception is that error's `cause`.
#[napi]
pub struct HostFunction {
    pub(crate) inner: Arc<HostFn>,
}

#[napi]
impl HostFunction {
    /// `name` is the import name; `params` and `results` are the wasm types of the import
    /// (`ValType.I64` or `"i64"` for Extism memory handles). Options: `namespace` (default
    /// `"extism:host/user"`) and `userData` (passed to every call of the callback).
    #[napi(
        constructor,
        ts_args_type = "name: string, params: Array<ValType | ValTypeName>, results: Array<ValType | ValTypeName>, callback: HostCallback, options?: HostFunctionOptions"
    )]
    pub fn new(
        env: Env,
        name: String,
        params: Vec<String>,
        results: Vec<String>,
        callback: JsArg,
        options: Option<JsArg>,
    ) -> napi::Result<Self> {
        let js = Js::new(&env);
        let types = |list: Vec<String>, what: &str| {
            list.iter()
                .map(|s| {
                    ValType::parse(s).ok_or_else(|| {
                        type_error(
                            js,
                            &format!("unknown {what} type {s:?}; use \"i32\", \"i64\", \"f32\" or \"f64\" (ValType)"),
                        )
                    })
                })
                .collect::<napi::Result<Vec<_>>>()
        };
        let params = types(params, "parameter")?;
        let results = types(results, "result")?;
        if js.type_of(callback.0)? != sys::ValueType::napi_function {
            return Err(type_error(
                js,
                "the callback of a HostFunction must be a function",
            ));
        }
        let mut namespace = plinth::DEFAULT_NAMESPACE.to_string();
        let mut user_data = None;
        if let Some(JsArg(options)) = options {
            if !js.is_nullish(options)? {
                if js.type_of(options)? != sys::ValueType::napi_object {
                    return Err(type_error(js, "HostFunction options must be an object"));
                }
                for key in js.keys(options)? {
                    let value = js.get(options, &key)?;
                    match key.as_str() {
                        "namespace" => {
                            if js.type_of(value)? != sys::ValueType::napi_string {
                                return Err(type_error(js, "`namespace` must be a string"));
                            }
                            namespace = js.get_string(value)?;
                        }
                        "userData" => user_data = Some(JsHandle::new(js, value)?),
                        other => {
                            return Err(type_error(
                                js,
                                &format!("unknown HostFunction option `{other}`; the options are namespace and userData"),
                            ))
                        }
                    }
                }
            }
        }
        let tsfn = env
            .create_function::<(), ()>("plinthHostCall", noop)?
            .build_threadsafe_function::<HostRequest>()
            .weak::<true>()
            .callee_handled::<false>()
            .build_callback(serve)?;
        Ok(HostFunction {
            inner: Arc::new(HostFn {
                name,
                namespace,
                params,
                results,
                callback: JsHandle::new(js, callback.0)?,
                user_data,
                tsfn,
            }),
        })
    }

    /// The import name.
    #[napi(getter)]
    pub fn name(&self) -> String {
        self.inner.name.clone()
    }

    /// The import namespace (module name).
    #[napi(getter)]
    pub fn namespace(&self) -> String {
        self.inner.namespace.clone()
    }

    /// The parameter types.
    #[napi(getter, ts_return_type = "ValTypeName[]")]
    pub fn params(&self) -> Vec<String> {
        self.inner
            .params
            .iter()
            .map(|t| t.name().to_string())
            .collect()
    }

    /// The result types.
    #[napi(getter, ts_return_type = "ValTypeName[]")]
    pub fn results(&self) -> Vec<String> {
        self.inner
            .results
            .iter()
            .map(|t| t.name().to_string())
            .collect()
    }
}

/// The plug-in that called a host function: its Extism memory and the host context of the
/// call. Handles are offsets into Extism memory; they arrive as BigInt (`i64` arguments) and
/// are returned as numbers, and every method takes either.
///
/// Valid only while the host function runs: afterwards every method throws a `PlinthError`
/// of kind `"Closed"`.
#[napi]
pub struct CurrentPlugin {
    link: Arc<Link>,
    call: Arc<CallShared>,
}

fn handle_arg(js: Js, v: JsArg) -> napi::Result<u64> {
    let t = js.type_of(v.0)?;
    if t == sys::ValueType::napi_bigint {
        let (n, lossless) = js.get_bigint_u64(v.0)?;
        if lossless {
            return Ok(n);
        }
    } else if t == sys::ValueType::napi_number {
        let f = js.get_number(v.0)?;
        if f >= 0.0 && f.fract() == 0.0 && f <= 9007199254740991.0 {
            return Ok(f as u64);
        }
    }
    Err(type_error(
        js,
        "a memory handle must be a non-negative integer (number or BigInt)",
    ))
}

#[napi]
impl CurrentPlugin {
    fn run(&self, env: &Env, op: Op) -> napi::Result<OpOut> {
        throw(env, self.link.run(op))
    }

    /// The bytes of the block at `handle` (handle 0 reads as empty).
    #[napi(ts_args_type = "handle: number | bigint", ts_return_type = "Buffer")]
    pub fn read_bytes(&self, env: Env, handle: JsArg) -> napi::Result<JsOut> {
        let js = Js::new(&env);
        let h = handle_arg(js, handle)?;
        match self.run(&env, Op::Read(h))? {
            OpOut::Bytes(b) => Ok(JsOut(js.buffer(&b)?)),
            _ => unreachable!(),
        }
    }

    /// The block at `handle` as UTF-8 text (invalid sequences become U+FFFD).
    #[napi(ts_args_type = "handle: number | bigint")]
    pub fn read_string(&self, env: Env, handle: JsArg) -> napi::Result<String> {
        let h = handle_arg(Js::new(&env), handle)?;
        match self.run(&env, Op::Read(h))? {
            OpOut::Bytes(b) => Ok(String::from_utf8(b)
                .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())),
            _ => unreachable!(),
        }
    }

    /// Copies `data` into a new block and returns its handle. A string is stored as UTF-8.
    #[napi(ts_args_type = "data: Uint8Array | string")]
    pub fn write_bytes(&self, env: Env, data: JsArg) -> napi::Result<f64> {
        let js = Js::new(&env);
        let bytes = match js.bytes(data.0)? {
            Some(b) => b.to_vec(),
            None if js.type_of(data.0)? == sys::ValueType::napi_string => {
                js.get_string(data.0)?.into_bytes()
            }
            None => {
                return Err(type_error(
                    js,
                    "writeBytes takes a Buffer, a Uint8Array or a string",
                ))
            }
        };
        self.handle_out(&env, Op::Write(bytes))
    }

    /// Stores `text` as UTF-8 in a new block and returns its handle.
    #[napi]
    pub fn write_string(&self, env: Env, text: String) -> napi::Result<f64> {
        self.handle_out(&env, Op::Write(text.into_bytes()))
    }

    /// A new zeroed block of `size` bytes; returns its handle.
    #[napi]
    pub fn alloc(&self, env: Env, size: f64) -> napi::Result<f64> {
        if !(size >= 0.0 && size.fract() == 0.0) {
            return Err(type_error(
                Js::new(&env),
                "alloc takes a non-negative integer size",
            ));
        }
        self.handle_out(&env, Op::Alloc(size as u64))
    }

    /// Frees the block at `handle` (unknown handles are ignored).
    #[napi(ts_args_type = "handle: number | bigint")]
    pub fn free(&self, env: Env, handle: JsArg) -> napi::Result<()> {
        let h = handle_arg(Js::new(&env), handle)?;
        self.run(&env, Op::Free(h)).map(|_| ())
    }

    /// The length of the block at `handle`; 0 when there is no such block.
    #[napi(ts_args_type = "handle: number | bigint")]
    pub fn length(&self, env: Env, handle: JsArg) -> napi::Result<f64> {
        let h = handle_arg(Js::new(&env), handle)?;
        self.handle_out(&env, Op::Length(h))
    }

    /// The calling plug-in's id (the same as `Plugin.id`).
    #[napi(getter)]
    pub fn id(&self, env: Env) -> napi::Result<String> {
        match self.run(&env, Op::Id)? {
            OpOut::Text(s) => Ok(s),
            _ => unreachable!(),
        }
    }

    /// The `hostContext` given to the call (`plugin.call(name, input, { hostContext })`), or
    /// undefined.
    #[napi(getter, ts_return_type = "unknown")]
    pub fn host_context(&self, env: Env) -> napi::Result<JsOut> {
        let js = Js::new(&env);
        if !self.link.is_open() {
            return Err(invalid_current_plugin().into_napi(&env));
        }
        Ok(JsOut(match &self.call.host_context {
            Some(h) => h.get(js)?,
            None => js.undefined()?,
        }))
    }

    /// Whether the host function is still running, so that this object may be used.
    #[napi(getter)]
    pub fn valid(&self) -> bool {
        self.link.is_open()
    }

    fn handle_out(&self, env: &Env, op: Op) -> napi::Result<f64> {
        match self.run(env, op)? {
            OpOut::Number(n) => Ok(n as f64),
            OpOut::Unit => Ok(0.0),
            _ => unreachable!(),
        }
    }
}

/// Used by `Plugin` to build its `CallShared` for a call.
pub(crate) fn call_shared(
    mode: Mode,
    host_context: Option<JsHandle>,
    in_host: Arc<AtomicUsize>,
) -> Arc<CallShared> {
    Arc::new(CallShared {
        mode,
        host_context,
        thrown: Mutex::new(None),
        in_host,
    })
}
