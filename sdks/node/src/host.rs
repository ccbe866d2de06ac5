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
//! - **Async host functions** (`{ async: true }`) run in a plug-in whose call is a future
//!   (`call_async`, see plugin.rs); so do the sync ones of such a plug-in. The host function's
//!   future queues the callback on the JavaScript thread like a worker does, then awaits its
//!   outcome on a channel: at once, or when the Promise the callback returned settles (index.js
//!   then calls [`settle`]). Meanwhile it serves `CurrentPlugin`'s memory requests from the
//!   same channel. The core's `call_async` takes no host context, so the future finds its call
//!   by plug-in id ([`calls`]).
//!
//! Either way the callback is reached through the function that index.js's `hostRunner` made
//! of it: it passes `userData`, and reports a thrown value (which may be any value) as a
//! result, `[false, thrown, description]`, so that it can become the call error's `cause`.
//! `CurrentPlugin` is closed as soon as the callback returns, so a kept reference fails
//! cleanly instead of touching a store that moved on.

use std::cell::RefCell;
use std::ffi::c_void;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use napi::bindgen_prelude::{
    Array, BigInt, Either, FnArgs, FromNapiValue, Function, FunctionRef, JsObjectValue,
    ToNapiValue, Uint8ArraySlice, Unknown,
};
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::{Env, JsValue, Status, ValueType};
use napi_derive::napi;
use plinth::{ErrorKind, Val};

use crate::args::{whole_number, HostFunctionOptions};
use crate::error::{throw, type_error, Failure, Fallible};
use crate::held::Held;
use crate::{unscoped, Registered};

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

    /// An argument as JavaScript gets it: `i64` as a BigInt, the others as numbers.
    fn to_js(self) -> Either<f64, BigInt> {
        match self {
            Num::I32(n) => Either::A(n as f64),
            Num::I64(n) => Either::B(BigInt::from(n)),
            Num::F32(f) => Either::A(f as f64),
            Num::F64(f) => Either::A(f),
        }
    }

    /// A result value as the wasm type `ty`; `undefined` and `null` are 0.
    fn from_js(v: Unknown<'_>, ty: ValType) -> Result<Num, String> {
        let js = |e: napi::Error| e.reason;
        let t = v.get_type().map_err(js)?;
        if t == ValueType::Undefined || t == ValueType::Null {
            return Ok(match ty {
                ValType::I32 => Num::I32(0),
                ValType::I64 => Num::I64(0),
                ValType::F32 => Num::F32(0.0),
                ValType::F64 => Num::F64(0.0),
            });
        }
        let wrong = || {
            let what = match t {
                ValueType::Boolean => "a boolean",
                ValueType::String => "a string",
                ValueType::Symbol => "a symbol",
                ValueType::Object => "an object",
                ValueType::Function => "a function",
                ValueType::BigInt => "a BigInt",
                _ => "another value",
            };
            let want = match ty {
                ValType::I32 | ValType::I64 => "a number or a BigInt",
                ValType::F32 | ValType::F64 => "a number",
            };
            format!("its {} result must be {want}, not {what}", ty.name())
        };
        if t == ValueType::BigInt {
            let b = BigInt::from_unknown(v).map_err(js)?;
            let (n, lossless) = b.get_i64();
            let (negative, u, lossless_u) = b.get_u64();
            return match ty {
                ValType::I64 if lossless => Ok(Num::I64(n)),
                ValType::I64 if lossless_u && !negative => Ok(Num::I64(u as i64)),
                ValType::I32 if lossless && (i32::MIN as i64..=u32::MAX as i64).contains(&n) => {
                    Ok(Num::I32(n as i32))
                }
                ValType::I32 | ValType::I64 => {
                    Err(format!("its {} result {n}n is out of range", ty.name()))
                }
                _ => Err(wrong()),
            };
        }
        if t != ValueType::Number {
            return Err(wrong());
        }
        let f = f64::from_unknown(v).map_err(js)?;
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
    pub host_context: Option<Held>,
    /// What a host function threw, kept for the call error's `cause`.
    pub thrown: Mutex<Option<Held>>,
    /// Which plug-in runs the call (see [`serving`]).
    pub plugin: usize,
}

impl CallShared {
    pub fn new(mode: Mode, host_context: Option<Held>, plugin: usize) -> Arc<CallShared> {
        Arc::new(CallShared {
            mode,
            host_context,
            thrown: Mutex::new(None),
            plugin,
        })
    }

    pub fn take_thrown(&self) -> Option<Held> {
        self.thrown.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

pub(crate) enum Mode {
    /// The plug-in runs on the JavaScript thread of this environment.
    Direct(JsThread),
    /// The plug-in runs on a worker thread.
    Remote,
}

/// The environment of the JavaScript thread that runs a `callSync`. Used only on that thread;
/// the type is Send only because it travels inside the call's context, which the runtime
/// requires to be Send.
pub(crate) struct JsThread(pub Env);
unsafe impl Send for JsThread {}
unsafe impl Sync for JsThread {}

/// The host context the SDK gives every call, so host functions find their way back.
pub(crate) struct CallCtx(pub Arc<CallShared>);

thread_local! {
    /// The plug-ins for whose call on a worker thread this JavaScript thread is running a host
    /// function right now.
    static SERVING: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
}

/// Whether this JavaScript thread is running a host function for a call of `plugin` on a
/// worker thread. That call holds the plug-in and waits for the host function: the core sees
/// another thread holding it (`Error::Busy`), but from here a call into it is re-entrant.
pub(crate) fn serving(plugin: usize) -> bool {
    SERVING.with(|s| s.borrow().contains(&plugin))
}

fn serve_begin(plugin: usize) {
    SERVING.with(|s| s.borrow_mut().push(plugin));
}

fn serve_end(plugin: usize) {
    SERVING.with(|s| {
        let mut s = s.borrow_mut();
        if let Some(i) = s.iter().rposition(|p| *p == plugin) {
            s.remove(i);
        }
    });
}

/// Messages to the thread that runs the plug-in while a host function runs elsewhere.
pub(crate) enum ToWorker {
    Op(Op, mpsc::SyncSender<Result<OpOut, plinth::Error>>),
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

fn run_op(cp: &mut plinth::CurrentPlugin<'_>, op: Op) -> Result<OpOut, plinth::Error> {
    Ok(match op {
        Op::Read(h) => OpOut::Bytes(cp.memory_get_val::<&[u8]>(&Val::I64(h as i64))?.to_vec()),
        Op::Write(bytes) => OpOut::Number(cp.memory_new(&bytes[..])?.offset),
        Op::Alloc(n) => OpOut::Number(cp.memory_alloc(n)?.offset),
        Op::Free(h) => {
            if let Some(m) = cp.memory_handle(h) {
                cp.memory_free(m);
            }
            OpOut::Unit
        }
        Op::Length(h) => OpOut::Number(cp.memory_length(h)),
        Op::Id => OpOut::Text(cp.id().to_string()),
    })
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
    /// The future of an async host function, which serves requests while it awaits.
    Async(tokio::sync::mpsc::UnboundedSender<ToWorker>),
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

    fn close(&self) {
        *self.lock() = LinkState::Closed;
    }

    fn is_open(&self) -> bool {
        !matches!(*self.lock(), LinkState::Closed)
    }

    fn run(&self, op: Op) -> Fallible<OpOut> {
        let state = self.lock();
        let out = match &*state {
            LinkState::Direct(p) => {
                // SAFETY: set by `HostFn::direct` from the `&mut CurrentPlugin` it holds, which
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
            LinkState::Async(tx) => {
                // Sent under the lock: the future's `Serving` guard closes the link under it
                // before it drains its queue, so a request is either refused here or dropped
                // (unanswered) there, never left in a queue that nobody reads while this
                // thread waits for its answer.
                let (reply, answer) = mpsc::sync_channel(1);
                let sent = tx.send(ToWorker::Op(op, reply));
                drop(state);
                if sent.is_err() {
                    return Err(invalid_current_plugin());
                }
                // Brief: the future runs the operation as soon as its executor polls it.
                answer.recv().map_err(|_| invalid_current_plugin())?
            }
            LinkState::Closed => return Err(invalid_current_plugin()),
        };
        out.map_err(Failure::from)
    }
}

fn invalid_current_plugin() -> Failure {
    Failure::new(
        ErrorKind::Closed,
        "this CurrentPlugin is no longer valid: use it only while its host function runs",
    )
}

/// The arguments of a host function's runner: the calling plug-in and the wasm arguments.
type RunnerArgs = FnArgs<(CurrentPlugin, Vec<Either<f64, BigInt>>)>;

/// A host function's runner, callable from worker threads. Weak: it does not keep the process
/// alive.
type RemoteRunner =
    ThreadsafeFunction<HostRequest, Unknown<'static>, RunnerArgs, Status, false, true>;

/// A call of a host function, queued on the JavaScript thread by a worker.
pub(crate) struct HostRequest {
    link: Arc<Link>,
    call: Arc<CallShared>,
    inputs: Vec<Num>,
    /// An async host function's outcome slot.
    pending: Option<Arc<Pending>>,
}

fn runner_args(
    link: Arc<Link>,
    call: Arc<CallShared>,
    pending: Option<Arc<Pending>>,
    inputs: &[Num],
) -> RunnerArgs {
    let inputs = inputs.iter().map(|n| n.to_js()).collect();
    FnArgs::from((
        CurrentPlugin {
            link,
            call,
            pending,
        },
        inputs,
    ))
}

/// A host function: its signature and its runner (see the module doc).
pub(crate) struct HostFn {
    name: String,
    namespace: String,
    params: Vec<ValType>,
    results: Vec<ValType>,
    runner: FunctionRef<RunnerArgs, Unknown<'static>>,
    remote: RemoteRunner,
    /// Declared `async`: the plug-in awaits the callback's Promise (see `invoke_async`).
    is_async: bool,
}

impl HostFn {
    pub fn is_async(&self) -> bool {
        self.is_async
    }

    /// The runtime's view of this function. `awaited`: the plug-in has async host functions,
    /// so its calls are futures; then even a sync JavaScript function is awaited, so that no
    /// runtime thread blocks on the JavaScript thread (which may itself wait for a future to
    /// serve a `CurrentPlugin` request).
    pub fn to_function(self: &Arc<Self>, awaited: bool) -> plinth::Function {
        let hf = self.clone();
        if self.is_async || awaited {
            return plinth::Function::new_async(
                self.name.clone(),
                self.params.iter().map(|t| t.wasm()),
                self.results.iter().map(|t| t.wasm()),
                plinth::UserData::new(()),
                move |cp, inputs, outputs, _| {
                    Box::pin(hf.clone().invoke_async(cp, inputs, outputs))
                },
            )
            .with_namespace(self.namespace.clone());
        }
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
            Mode::Direct(js) => self.direct(js.0, cp, &nums, &call),
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

    /// An async host function: has the JavaScript thread call the runner, then awaits the
    /// outcome (at once, or when the callback's Promise settles), serving the memory requests
    /// of `CurrentPlugin` meanwhile. No thread waits: the plug-in's call is a future.
    async fn invoke_async(
        self: Arc<Self>,
        mut cp: plinth::CurrentPlugin<'_>,
        inputs: &[Val],
        outputs: &mut [Val],
    ) -> anyhow::Result<()> {
        let Some(call) = calls::get(cp.id()) else {
            anyhow::bail!(
                "JavaScript host functions can only run during a call made through the Node SDK"
            );
        };
        let inputs = inputs
            .iter()
            .map(Num::from_val)
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| anyhow::anyhow!("unsupported argument type"))?;
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let link = Link::new(LinkState::Async(tx.clone()));
        let mut serving = Serving {
            link: link.clone(),
            requests: rx,
        };
        let pending = Arc::new(Pending {
            link: link.clone(),
            done: Mutex::new(Some(tx)),
            hf: self.clone(),
        });
        let request = HostRequest {
            link,
            call: call.clone(),
            inputs,
            pending: Some(pending.clone()),
        };
        let (hf, plugin) = (self.clone(), call.plugin);
        let status = self.remote.call_with_return_value(
            request,
            ThreadsafeFunctionCallMode::NonBlocking,
            // On the JavaScript thread, after the runner returned its outcome or a Promise of it.
            move |returned, _env| {
                serve_end(plugin);
                match returned {
                    // The callback returned a thenable: index.js calls `__settle` when it settles.
                    Ok(value) if value.get_type().ok() == Some(ValueType::Null) => {}
                    returned => pending.done(hf.finish(returned)),
                }
                Ok(())
            },
        );
        if status != Status::Ok {
            anyhow::bail!("cannot reach the JavaScript thread to run it ({status})");
        }
        let result = loop {
            match serving.requests.recv().await {
                Some(ToWorker::Op(op, reply)) => {
                    let _ = reply.send(run_op(&mut cp, op));
                }
                Some(ToWorker::Done(result)) => break result,
                // The request was dropped unrun: the environment shuts down.
                None => anyhow::bail!(
                    "the JavaScript thread went away before the host function returned"
                ),
            }
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

    /// Calls the runner here, on the JavaScript thread.
    fn direct(
        &self,
        env: Env,
        cp: &mut plinth::CurrentPlugin<'_>,
        inputs: &[Num],
        call: &Arc<CallShared>,
    ) -> Fallible<Vec<Num>> {
        let link = Link::new(LinkState::Direct(cp as *mut _ as *mut c_void));
        let result = env.run_in_scope(|| {
            let runner = self.runner.borrow_back(&env)?;
            let returned = runner.call(runner_args(link.clone(), call.clone(), None, inputs));
            Ok(self.finish(returned))
        });
        link.close();
        result.unwrap_or_else(|e| Err(Failure::new(ErrorKind::HostFunction, e.reason)))
    }

    /// Has the JavaScript thread call the runner, serving memory requests meanwhile.
    fn remote(
        self: &Arc<Self>,
        cp: &mut plinth::CurrentPlugin<'_>,
        inputs: Vec<Num>,
        call: &Arc<CallShared>,
    ) -> Fallible<Vec<Num>> {
        let (tx, rx) = mpsc::channel();
        let link = Link::new(LinkState::Remote(tx.clone()));
        let request = HostRequest {
            link: link.clone(),
            call: call.clone(),
            inputs,
            pending: None,
        };
        let (hf, plugin) = (self.clone(), call.plugin);
        let status = self.remote.call_with_return_value(
            request,
            ThreadsafeFunctionCallMode::NonBlocking,
            // On the JavaScript thread, after the runner returned.
            move |returned, _env| {
                serve_end(plugin);
                let result = hf.finish(returned);
                link.close();
                let _ = tx.send(ToWorker::Done(result));
                Ok(())
            },
        );
        if status != Status::Ok {
            return Err(Failure::new(
                ErrorKind::HostFunction,
                format!("cannot reach the JavaScript thread to run it ({status})"),
            ));
        }
        let gone = || {
            Err(Failure::new(
                ErrorKind::HostFunction,
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
                Err(RecvTimeoutError::Timeout) if self.remote.aborted() => return gone(),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return gone(),
            }
        }
    }

    /// What the runner returned (`[true, value]` or `[false, thrown, description]`) as the
    /// function's results. On the JavaScript thread.
    fn finish(&self, returned: napi::Result<Unknown<'_>>) -> Fallible<Vec<Num>> {
        let failed = |m: String| Failure::new(ErrorKind::HostFunction, m);
        let outcome = returned
            .and_then(Array::from_unknown)
            .map_err(|e| failed(e.reason))?;
        let item = |i| -> Fallible<Unknown<'_>> {
            outcome
                .get::<Unknown>(i)
                .map_err(|e| failed(e.reason))?
                .ok_or_else(|| failed("the host function runner returned too little".into()))
        };
        let ok = bool::from_unknown(item(0)?).map_err(|e| failed(e.reason))?;
        let value = item(1)?;
        if !ok {
            return Err(Failure {
                message: String::from_unknown(item(2)?).map_err(|e| failed(e.reason))?,
                cause: Some(Held::new(value)),
                ..failed(String::new())
            });
        }
        self.results(value).map_err(failed)
    }

    /// The callback's return value as the function's results.
    fn results(&self, value: Unknown<'_>) -> Result<Vec<Num>, String> {
        let e = |e: napi::Error| e.reason;
        if value.is_promise().map_err(e)? {
            return Err(
                "it returned a Promise; declare it with `new HostFunction(.., { async: true })` \
                 so that the plug-in awaits it (and call the plug-in with call())"
                    .into(),
            );
        }
        let items = || -> Result<Vec<Unknown<'_>>, String> {
            let array = Array::from_unknown(value).map_err(e)?;
            // Within the length, so every index gives a value (`undefined` for a hole).
            (0..array.len())
                .filter_map(|i| array.get::<Unknown>(i).map_err(e).transpose())
                .collect()
        };
        match self.results.len() {
            0 => Ok(Vec::new()),
            1 => {
                let v = if value.is_array().map_err(e)? {
                    let items = items()?;
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
                Ok(vec![Num::from_js(v, self.results[0])?])
            }
            n => {
                let t = value.get_type().map_err(e)?;
                if t == ValueType::Undefined || t == ValueType::Null {
                    return self
                        .results
                        .iter()
                        .map(|ty| Num::from_js(value, *ty))
                        .collect();
                }
                if !value.is_array().map_err(e)? {
                    return Err(format!(
                        "it has {n} results, so it must return an array of {n} values"
                    ));
                }
                let items = items()?;
                if items.len() != n {
                    return Err(format!(
                        "it returned {} values for {n} results",
                        items.len()
                    ));
                }
                items
                    .into_iter()
                    .zip(&self.results)
                    .map(|(v, ty)| Num::from_js(v, *ty))
                    .collect()
            }
        }
    }
}

/// The outcome of an async host function, sent once to its future (from the JavaScript thread).
pub(crate) struct Pending {
    link: Arc<Link>,
    done: Mutex<Option<tokio::sync::mpsc::UnboundedSender<ToWorker>>>,
    hf: Arc<HostFn>,
}

/// The requests of an async host function's `CurrentPlugin`, as its future serves them. When
/// the future ends or is dropped (a timeout, a cancel, an abort), the link closes and the
/// requests already queued are dropped, so the JavaScript thread waiting for an answer gets an
/// error instead of waiting for ever.
struct Serving {
    link: Arc<Link>,
    requests: tokio::sync::mpsc::UnboundedReceiver<ToWorker>,
}

impl Drop for Serving {
    fn drop(&mut self) {
        self.link.close();
        self.requests.close();
        while self.requests.try_recv().is_ok() {}
    }
}

impl Pending {
    fn done(&self, result: Fallible<Vec<Num>>) {
        self.link.close();
        let tx = self.done.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(tx) = tx {
            // The future is gone when the call timed out or was cancelled meanwhile.
            let _ = tx.send(ToWorker::Done(result));
        }
    }
}

/// The calls in flight that run plug-ins with async host functions, by plug-in id. The core's
/// `call_async` takes no host context, so an async host function finds its call here.
pub(crate) mod calls {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex, OnceLock};

    use super::CallShared;

    fn table() -> &'static Mutex<HashMap<String, Arc<CallShared>>> {
        static CALLS: OnceLock<Mutex<HashMap<String, Arc<CallShared>>>> = OnceLock::new();
        CALLS.get_or_init(Default::default)
    }

    pub fn get(id: &str) -> Option<Arc<CallShared>> {
        let table = table().lock().unwrap_or_else(|p| p.into_inner());
        table.get(id).cloned()
    }

    /// Registers the call of the plug-in `id` until the guard drops (also when the call's
    /// future is dropped midway). A plug-in runs one call at a time.
    pub fn register(id: &str, call: Arc<CallShared>) -> Registered {
        let mut table = table().lock().unwrap_or_else(|p| p.into_inner());
        table.insert(id.to_string(), call);
        Registered(id.to_string())
    }

    pub struct Registered(String);

    impl Drop for Registered {
        fn drop(&mut self) {
            let mut table = table().lock().unwrap_or_else(|p| p.into_inner());
            table.remove(&self.0);
        }
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
/// none (`undefined` and `null` count as 0).
///
/// An async host function (option `async: true`, the default for an `async` callback) may
/// return a Promise of the result: the plug-in waits for it while no thread blocks and the
/// event loop keeps running. A plug-in given one must be called with `call()`,
/// `callString()`, `callJson()` or `callFresh()` (not the `*Sync` methods).
///
/// It always runs on the JavaScript thread, also during `call()`, whose plug-in runs on a
/// worker thread. An exception it throws (or a Promise it returns that rejects) fails the
/// plug-in's call with a `PlinthError` of kind `"host_function"`; the exception is that
/// error's `cause`.
#[napi]
pub struct HostFunction {
    pub(crate) inner: Arc<HostFn>,
}

#[napi]
impl HostFunction {
    /// `name` is the import name; `params` and `results` are the wasm types of the import
    /// (`ValType.I64` or `"i64"` for Extism memory handles). Options: `namespace` (default
    /// `"extism:host/user"`), `userData` (passed to every call of the callback) and `async`
    /// (the callback may return a Promise; default: whether it is an `async` function).
    #[napi(constructor)]
    pub fn new(
        env: Env,
        name: String,
        #[napi(ts_arg_type = "Array<ValType | ValTypeName>")] params: Vec<String>,
        #[napi(ts_arg_type = "Array<ValType | ValTypeName>")] results: Vec<String>,
        #[napi(ts_arg_type = "HostCallback")] callback: Unknown,
        options: Option<HostFunctionOptions>,
    ) -> napi::Result<Self> {
        let types = |list: Vec<String>, what: &str| {
            list.iter()
                .map(|s| {
                    ValType::parse(s).ok_or_else(|| {
                        type_error(
                            &env,
                            format!("unknown {what} type {s:?}; use \"i32\", \"i64\", \"f32\" or \"f64\" (ValType)"),
                        )
                    })
                })
                .collect::<napi::Result<Vec<_>>>()
        };
        let params = types(params, "parameter")?;
        let results = types(results, "result")?;
        if callback.get_type()? != ValueType::Function {
            return Err(type_error(
                &env,
                "the callback of a HostFunction must be a function",
            ));
        }
        let (namespace, user_data, declared_async) = match options {
            Some(o) => (o.namespace, o.user_data, o.is_async),
            None => (None, None, None),
        };
        let is_async = match declared_async {
            Some(a) => a,
            None => is_async_function(&callback),
        };
        let user_data = match user_data {
            Some(v) => v,
            None => ().into_unknown(&env)?,
        };
        let make_runner = Registered::get(&env)?.host_runner.borrow_back(&env)?;
        let runner = make_runner.call(FnArgs::from((
            unscoped(callback)?,
            unscoped(user_data)?,
            is_async,
        )))?;
        let runner = Function::<RunnerArgs, Unknown<'static>>::from_unknown(runner)?;
        let remote = runner
            .build_threadsafe_function::<HostRequest>()
            .weak::<true>()
            .callee_handled::<false>()
            .build_callback(|ctx| {
                let HostRequest {
                    link,
                    call,
                    inputs,
                    pending,
                } = ctx.value;
                // Until the return callback in `HostFn::remote` or `HostFn::invoke_async`.
                serve_begin(call.plugin);
                Ok(runner_args(link, call, pending, &inputs))
            })?;
        Ok(HostFunction {
            inner: Arc::new(HostFn {
                name,
                namespace: namespace.unwrap_or_else(|| plinth::DEFAULT_NAMESPACE.to_string()),
                params,
                results,
                runner: runner.create_ref()?,
                remote,
                is_async,
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
    pub fn params(&self) -> Vec<&'static str> {
        self.inner.params.iter().map(|t| t.name()).collect()
    }

    /// The result types.
    #[napi(getter, ts_return_type = "ValTypeName[]")]
    pub fn results(&self) -> Vec<&'static str> {
        self.inner.results.iter().map(|t| t.name()).collect()
    }

    /// Whether the plug-in awaits the callback's Promise (option `async`).
    #[napi(getter)]
    pub fn is_async(&self) -> bool {
        self.inner.is_async
    }
}

/// Whether `callback` is an `async` function (its constructor is `AsyncFunction`). A plain
/// function that returns a Promise must say `async: true` itself.
fn is_async_function(callback: &Unknown<'_>) -> bool {
    let name = || -> napi::Result<String> {
        let f = Function::<Unknown<'static>, Unknown<'static>>::from_unknown(*callback)?;
        let constructor: Function<Unknown<'static>, Unknown<'static>> =
            f.get_named_property("constructor")?;
        constructor.get_named_property("name")
    };
    matches!(name().as_deref(), Ok("AsyncFunction"))
}

/// The plug-in that called a host function: its Extism memory and the host context of the
/// call. Handles are offsets into Extism memory; they arrive as BigInt (`i64` arguments) and
/// are returned as numbers, and every method takes either.
///
/// Valid only while the host function runs: afterwards every method throws a `PlinthError`
/// of kind `"closed"`.
#[napi]
pub struct CurrentPlugin {
    link: Arc<Link>,
    call: Arc<CallShared>,
    /// Where an async host function's outcome goes (see [`settle`]).
    pending: Option<Arc<Pending>>,
}

/// Called by index.js when the thenable an async host function returned settles, with
/// `[true, value]` or `[false, thrown, description]`: the outcome goes to the waiting plug-in
/// (nowhere, once its call ended). Never throws: index.js calls it from a Promise reaction.
#[napi(js_name = "__settle", skip_typescript)]
pub fn settle(plugin: &CurrentPlugin, outcome: Unknown) {
    if let Some(pending) = &plugin.pending {
        pending.done(pending.hf.finish(Ok(outcome)));
    }
}

fn handle(env: &Env, handle: Either<f64, BigInt>) -> napi::Result<u64> {
    whole_number(&handle).map_err(|()| {
        type_error(
            env,
            "a memory handle must be a non-negative integer (number or BigInt)",
        )
    })
}

#[napi]
impl CurrentPlugin {
    fn run(&self, env: &Env, op: Op) -> napi::Result<OpOut> {
        throw(env, self.link.run(op))
    }

    fn number(&self, env: &Env, op: Op) -> napi::Result<f64> {
        match self.run(env, op)? {
            OpOut::Number(n) => Ok(n as f64),
            _ => Ok(0.0),
        }
    }

    fn bytes(&self, env: &Env, h: Either<f64, BigInt>) -> napi::Result<Vec<u8>> {
        match self.run(env, Op::Read(handle(env, h)?))? {
            OpOut::Bytes(b) => Ok(b),
            _ => Ok(Vec::new()),
        }
    }

    /// The bytes of the block at `handle` (handle 0 reads as empty).
    #[napi]
    pub fn read_bytes(
        &self,
        env: Env,
        handle: Either<f64, BigInt>,
    ) -> napi::Result<napi::bindgen_prelude::Buffer> {
        Ok(self.bytes(&env, handle)?.into())
    }

    /// The block at `handle` as UTF-8 text (invalid sequences become U+FFFD).
    #[napi]
    pub fn read_string(&self, env: Env, handle: Either<f64, BigInt>) -> napi::Result<String> {
        Ok(String::from_utf8(self.bytes(&env, handle)?)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
    }

    /// Copies `data` into a new block and returns its handle. A string is stored as UTF-8.
    #[napi]
    pub fn write_bytes(
        &self,
        env: Env,
        data: Either<Uint8ArraySlice, String>,
    ) -> napi::Result<f64> {
        let bytes = match data {
            Either::A(bytes) => bytes.to_vec(),
            Either::B(text) => text.into_bytes(),
        };
        self.number(&env, Op::Write(bytes))
    }

    /// Stores `text` as UTF-8 in a new block and returns its handle.
    #[napi]
    pub fn write_string(&self, env: Env, text: String) -> napi::Result<f64> {
        self.number(&env, Op::Write(text.into_bytes()))
    }

    /// A new zeroed block of `size` bytes; returns its handle.
    #[napi]
    pub fn alloc(&self, env: Env, size: f64) -> napi::Result<f64> {
        if !(size >= 0.0 && size.fract() == 0.0) {
            return Err(type_error(&env, "alloc takes a non-negative integer size"));
        }
        self.number(&env, Op::Alloc(size as u64))
    }

    /// Frees the block at `handle` (unknown handles are ignored).
    #[napi]
    pub fn free(&self, env: Env, handle: Either<f64, BigInt>) -> napi::Result<()> {
        let h = self::handle(&env, handle)?;
        self.run(&env, Op::Free(h)).map(|_| ())
    }

    /// The length of the block at `handle`; 0 when there is no such block.
    #[napi]
    pub fn length(&self, env: Env, handle: Either<f64, BigInt>) -> napi::Result<f64> {
        let h = self::handle(&env, handle)?;
        self.number(&env, Op::Length(h))
    }

    /// The calling plug-in's id (the same as `Plugin.id`).
    #[napi(getter)]
    pub fn id(&self, env: Env) -> napi::Result<String> {
        match self.run(&env, Op::Id)? {
            OpOut::Text(s) => Ok(s),
            _ => Ok(String::new()),
        }
    }

    /// The `hostContext` given to the call (`plugin.call(name, input, { hostContext })`), or
    /// undefined.
    #[napi(getter)]
    pub fn host_context<'env>(&self, env: &'env Env) -> napi::Result<Unknown<'env>> {
        if !self.link.is_open() {
            return Err(invalid_current_plugin().into_napi(env));
        }
        match &self.call.host_context {
            Some(held) => held.get(env),
            None => ().into_unknown(env),
        }
    }

    /// Whether the host function is still running, so that this object may be used.
    #[napi(getter)]
    pub fn valid(&self) -> bool {
        self.link.is_open()
    }
}
