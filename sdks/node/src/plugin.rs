//! `Plugin`, `CompiledPlugin` and `CancelHandle`, and the tasks that run calls and loads on
//! libuv worker threads.
//!
//! A `Plugin` is a `plinth::SharedPlugin`, the core's primitive for one instance that several
//! threads use in turn. A call on a worker thread waits its turn (`with`). Everything on the
//! JavaScript thread uses `try_with`, which never waits: the call that holds the plug-in may
//! need the JavaScript thread for a host function, so waiting could wait for ever. It fails
//! with the core's `Busy` (another thread holds the plug-in), `Reentrant` (this thread does,
//! from one of the plug-in's host functions) or `Closed` (after `close()`, which never waits
//! either: a running call finishes and the core frees the instance after it).
//!
//! A plug-in with async host functions is not a `SharedPlugin`: its calls are futures on
//! napi-rs's tokio runtime (`call_async`), which hold the instance across awaits, so it lives
//! in an async lock ([`AsyncSlot`]) where calls queue in the order they were made ([`Place`]).
//! No thread waits for its turn or for a host function's Promise.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll, Waker};

use napi::bindgen_prelude::{
    AsyncTask, Buffer, Either, ObjectFinalize, PromiseRaw, ToNapiValue, Unknown,
};
use napi::{Env, Task};
use napi_derive::napi;
use plinth::ErrorKind;

use crate::abort::{Abort, Listening};
use crate::args::{
    json_stringify, Bytes, CallInput, CallOptions, CallSettings, ConfigChanges, PluginOptions,
    PluginSource, Settings,
};
use crate::error::{throw, Failure, Fallible};
use crate::held::Held;
use crate::host::{calls, serving, CallCtx, CallShared, JsThread, Mode};
use crate::hot::HotInner;
use crate::stream::StreamCall;
use crate::Registered;

/// One plug-in instance, shared by its JavaScript object and the calls in flight.
pub(crate) struct PluginInner {
    slot: Slot,
    cancel: plinth::CancelHandle,
    compiled: plinth::CompiledPlugin,
    id: String,
}

/// Where the instance lives (see the module doc).
enum Slot {
    Sync(plinth::SharedPlugin),
    Async(Box<AsyncSlot>),
}

/// The instance of a plug-in with async host functions.
struct AsyncSlot {
    /// Held by a call for as long as it runs, awaits included; calls queue in order.
    plugin: Arc<tokio::sync::Mutex<Option<plinth::Plugin>>>,
    closed: AtomicBool,
}

type SlotGuard = tokio::sync::OwnedMutexGuard<Option<plinth::Plugin>>;

/// A call's place in the queue of an [`AsyncSlot`], taken on the JavaScript thread when the call
/// is made. tokio's lock serves its waiters in the order they first polled it, and the runtime
/// may first poll a call made later; so the place is polled once here, with a waker that does
/// nothing, and the call's task polls it again with its own.
pub(crate) enum Place {
    Holding(SlotGuard),
    Waiting(Pin<Box<dyn Future<Output = SlotGuard> + Send>>),
}

impl Place {
    fn take(slot: &AsyncSlot) -> Place {
        let mut waiting = Box::pin(slot.plugin.clone().lock_owned());
        match waiting
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()))
        {
            Poll::Ready(guard) => Place::Holding(guard),
            Poll::Pending => Place::Waiting(waiting),
        }
    }

    /// The instance, once the calls made before this one are done.
    async fn turn(self) -> SlotGuard {
        match self {
            Place::Holding(guard) => guard,
            Place::Waiting(waiting) => waiting.await,
        }
    }
}

impl PluginInner {
    fn new(plugin: plinth::Plugin, has_async: bool) -> Arc<PluginInner> {
        let (compiled, id, cancel) = (
            plugin.compiled().clone(),
            plugin.id().to_string(),
            plugin.cancel_handle(),
        );
        let slot = if has_async {
            Slot::Async(Box::new(AsyncSlot {
                plugin: Arc::new(tokio::sync::Mutex::new(Some(plugin))),
                closed: AtomicBool::new(false),
            }))
        } else {
            Slot::Sync(plinth::SharedPlugin::new(plugin))
        };
        Arc::new(PluginInner {
            slot,
            cancel,
            compiled,
            id,
        })
    }

    pub(crate) fn is_async(&self) -> bool {
        matches!(self.slot, Slot::Async(_))
    }

    /// A new call's place in the queue; `None` for a plug-in without async host functions.
    pub(crate) fn place(&self) -> Option<Place> {
        match &self.slot {
            Slot::Async(slot) => Some(Place::take(slot)),
            Slot::Sync(_) => None,
        }
    }

    fn is_closed(&self) -> bool {
        match &self.slot {
            Slot::Sync(shared) => shared.is_closed(),
            Slot::Async(slot) => slot.closed.load(Ordering::SeqCst),
        }
    }

    fn close(&self) {
        match &self.slot {
            Slot::Sync(shared) => {
                shared.close();
            }
            Slot::Async(slot) => {
                slot.closed.store(true, Ordering::SeqCst);
                // A running call drops the instance when it ends.
                if let Ok(mut guard) = slot.plugin.try_lock() {
                    guard.take();
                }
            }
        }
    }

    /// Cancels the running call; false once closed.
    fn cancel(&self) -> bool {
        if self.is_closed() {
            return false;
        }
        match &self.slot {
            Slot::Sync(_) => self.cancel.cancel(),
            // Only while a call holds the instance: the core's `call_async` would take a cancel
            // left over from no call at all for its own.
            Slot::Async(slot) => {
                if slot.plugin.try_lock().is_err() {
                    self.cancel.cancel();
                }
            }
        }
        true
    }

    /// `SharedPlugin::try_with` for either slot: never waits.
    fn try_with<R>(
        &self,
        f: impl FnOnce(&mut plinth::Plugin) -> plinth::Result<R>,
    ) -> plinth::Result<R> {
        match &self.slot {
            Slot::Sync(shared) => shared.try_with(f),
            Slot::Async(slot) => {
                let mut guard = slot.plugin.try_lock().map_err(|_| plinth::Error::Busy)?;
                if slot.closed.load(Ordering::SeqCst) {
                    guard.take();
                }
                f(guard.as_mut().ok_or(plinth::Error::Closed)?)
            }
        }
    }

    /// Tells this plug-in's calls apart from other plug-ins' (see `host::serving`).
    fn key(self: &Arc<Self>) -> usize {
        Arc::as_ptr(self) as usize
    }

    /// Runs `f` with the plug-in on the JavaScript thread, without waiting (see the module
    /// doc). `function` names a call in a re-entrancy error.
    fn now<R>(
        self: &Arc<Self>,
        function: &str,
        f: impl FnOnce(&mut plinth::Plugin) -> plinth::Result<R>,
    ) -> Fallible<R> {
        self.try_with(f).map_err(|e| match e {
            // The core knows the thread that holds the plug-in, not that it is a worker
            // waiting for the host function this thread runs: then it is re-entrant.
            plinth::Error::Busy if serving(self.key()) => reentrant(function),
            plinth::Error::Busy if self.is_async() => Failure::new(
                ErrorKind::Busy,
                "the plug-in is running a call() that may be awaiting one of its host \
                 functions; await that call first (call() itself waits its turn)",
            ),
            plinth::Error::Busy => Failure::new(
                ErrorKind::Busy,
                "the plug-in is running a call started with call() on a worker thread; \
                 await it first (call() itself waits its turn)",
            ),
            plinth::Error::Reentrant { function: f } if f.is_empty() => reentrant(function),
            e => e.into(),
        })
    }

    pub(crate) fn cancel_handle(&self) -> plinth::CancelHandle {
        self.cancel.clone()
    }

    /// A streaming call of `function`, on this (non-JavaScript) thread once it is its turn.
    pub(crate) fn call_stream(
        &self,
        function: &str,
        input: &mut impl std::io::Read,
        output: &mut impl std::io::Write,
        call: &Arc<CallShared>,
    ) -> Fallible<plinth::StreamStats> {
        let Slot::Sync(shared) = &self.slot else {
            return Err(Failure::new(
                ErrorKind::Other,
                "a plug-in with async host functions cannot be called with callStream",
            ));
        };
        shared
            .with(|p| {
                let ctx = CallCtx(call.clone());
                p.call_stream_with_host_context(function, &mut *input, &mut *output, ctx)
            })
            .map_err(|e| call_failure(e.into(), call))
    }

    /// A streaming call of `function` on a plug-in with async host functions, as a future
    /// that waits its turn (`place`) on the instance.
    pub(crate) async fn call_stream_async(
        &self,
        place: Option<Place>,
        function: &str,
        input: &mut (impl tokio::io::AsyncRead + Unpin + Send),
        output: &mut (impl tokio::io::AsyncWrite + Unpin + Send),
        call: &Arc<CallShared>,
    ) -> Fallible<plinth::StreamStats> {
        let (Slot::Async(slot), Some(place)) = (&self.slot, place) else {
            return Err(no_async_functions());
        };
        let mut guard = place.turn().await;
        let result = match guard.as_mut() {
            Some(p) if !slot.closed.load(Ordering::SeqCst) => {
                let _registered = calls::register(p.id(), call.clone());
                p.call_stream_async(function, &mut *input, &mut *output)
                    .await
            }
            _ => Err(plinth::Error::Closed),
        };
        if slot.closed.load(Ordering::SeqCst) {
            guard.take();
        }
        result.map_err(|e| call_failure(e.into(), call))
    }

    /// Calls `function`, returning the output.
    fn call(
        plugin: &mut plinth::Plugin,
        function: &str,
        input: &[u8],
        call: &Arc<CallShared>,
    ) -> plinth::Result<Vec<u8>> {
        plugin.raw_call(function, input, Some(Box::new(CallCtx(call.clone()))))?;
        Ok(plugin.output().to_vec())
    }
}

fn no_async_functions() -> Failure {
    Failure::new(ErrorKind::Other, "the plug-in has no async host functions")
}

pub(crate) fn reentrant(function: &str) -> Failure {
    plinth::Error::Reentrant {
        function: function.to_string(),
    }
    .into()
}

/// A call's failure, with what a host function threw as its cause.
pub(crate) fn call_failure(f: Failure, call: &CallShared) -> Failure {
    Failure {
        cause: call.take_thrown(),
        ..f
    }
}

/// What a [`Call`] runs on.
pub(crate) enum Target {
    Plugin(Arc<PluginInner>),
    Hot(Arc<HotInner>),
}

/// A call of a plug-in on a libuv worker thread; waits its turn.
pub(crate) struct Call {
    target: Target,
    function: String,
    input: Vec<u8>,
    call: Arc<CallShared>,
    failure: Option<Failure>,
    abort: Option<Arc<Abort>>,
    listening: Option<Listening>,
}

impl Call {
    /// A call of `function` on `target`, with the call's options read.
    pub(crate) fn new(
        env: &Env,
        target: Target,
        function: String,
        input: Vec<u8>,
        options: Option<CallOptions>,
    ) -> napi::Result<Call> {
        let settings = CallSettings::new(env, options)?;
        let key = match &target {
            Target::Plugin(inner) => inner.key(),
            Target::Hot(hot) => hot.key(),
        };
        Ok(Call {
            call: CallShared::new(Mode::Remote, settings.host_context, key),
            target,
            function,
            input,
            failure: None,
            abort: settings.abort,
            listening: settings.listening,
        })
    }

    fn compute(&mut self) -> napi::Result<Vec<u8>> {
        let (function, input, call) = (&self.function, &self.input, &self.call);
        let abort = &self.abort;
        let out = match &self.target {
            Target::Plugin(inner) => {
                let Slot::Sync(shared) = &inner.slot else {
                    return Err(napi::Error::from_reason(
                        "a plug-in with async host functions is called with call_async",
                    ));
                };
                shared.with(|p| {
                    run_abortable(p, abort, |p| PluginInner::call(p, function, input, call))
                })
            }
            Target::Hot(hot) => hot.call_waiting(function, input, call, abort),
        };
        match out {
            Ok(Some(out)) => Ok(out),
            Ok(None) => {
                self.failure = Some(Abort::failure(function));
                Err(napi::Error::from_reason("the call was aborted"))
            }
            Err(e) => {
                self.failure = Some(call_failure(e.into(), call));
                Err(napi::Error::from_reason("the call failed"))
            }
        }
    }

    /// Stops listening to the call's signal; on the JavaScript thread, once the call ended.
    fn unlisten(&mut self, env: &Env) {
        if let Some(l) = self.listening.take() {
            l.remove(env);
        }
    }

    fn reject(&mut self, env: &Env, err: napi::Error) -> napi::Error {
        self.unlisten(env);
        self.failure
            .take()
            .unwrap_or_else(|| Failure::new(ErrorKind::Other, err.reason))
            .into_napi(env)
    }

    /// The call as a future, for a plug-in with async host functions. Its place in the queue
    /// is taken now (see [`Place`]); the future waits its turn, then runs with `call_async`.
    fn run_async(self) -> impl Future<Output = Fallible<Vec<u8>>> + Send + 'static {
        let place = match &self.target {
            Target::Plugin(inner) => inner.place(),
            Target::Hot(_) => None,
        };
        let Call {
            target,
            function,
            input,
            call,
            abort,
            ..
        } = self;
        async move {
            let (Target::Plugin(inner), Some(place)) = (&target, place) else {
                return Err(no_async_functions());
            };
            let Slot::Async(slot) = &inner.slot else {
                return Err(no_async_functions());
            };
            // Dropped midway when the signal fires: the place or the lock is released, and the
            // core replaces the instance at the next call.
            let work = async {
                let mut guard = place.turn().await;
                let result = match guard.as_mut() {
                    Some(p) if !slot.closed.load(Ordering::SeqCst) => {
                        let _registered = calls::register(p.id(), call.clone());
                        p.call_async::<Vec<u8>>(&function, &input).await
                    }
                    _ => Err(plinth::Error::Closed),
                };
                if slot.closed.load(Ordering::SeqCst) {
                    guard.take();
                }
                result.map_err(|e| call_failure(e.into(), &call))
            };
            Abort::race(abort, &function, work).await
        }
    }
}

/// Runs `f` on `p` unless the call's signal was aborted (then `None`); an abort while it runs
/// cancels it through the instance's cancel handle.
fn run_abortable<R>(
    p: &mut plinth::Plugin,
    abort: &Option<Arc<Abort>>,
    f: impl FnOnce(&mut plinth::Plugin) -> plinth::Result<R>,
) -> plinth::Result<Option<R>> {
    let Some(abort) = abort else {
        return f(p).map(Some);
    };
    if !abort.start(p.cancel_handle()) {
        return Ok(None);
    }
    let out = f(p);
    abort.stop();
    out.map(Some)
}

/// Runs a call's future on napi-rs's tokio runtime; `done` makes the output a JavaScript value
/// (on the JavaScript thread), a failure rejects with its `PlinthError`.
fn spawn_call<'env, V: ToNapiValue>(
    env: &'env Env,
    call: impl Future<Output = Fallible<Vec<u8>>> + Send + 'static,
    listening: Option<Listening>,
    done: impl FnOnce(&'env Env, Vec<u8>) -> napi::Result<V> + 'static,
) -> napi::Result<PromiseRaw<'env, V>> {
    env.spawn_future_with_callback(async move { Ok(call.await) }, move |env, out| {
        if let Some(l) = listening {
            l.remove(env);
        }
        match out {
            Ok(out) => done(env, out),
            Err(f) => Err(f.into_napi(env)),
        }
    })
}

/// A call on a fresh instance of a plug-in with async host functions.
async fn fresh_async(
    compiled: plinth::CompiledPlugin,
    function: String,
    input: Vec<u8>,
    call: Arc<CallShared>,
    abort: Option<Arc<Abort>>,
) -> Fallible<Vec<u8>> {
    let work = async {
        let result = async {
            let mut p = compiled.instantiate()?;
            let _registered = calls::register(p.id(), call.clone());
            p.call_async::<Vec<u8>>(&function, &input).await
        }
        .await;
        result.map_err(|e| call_failure(e.into(), &call))
    };
    Abort::race(abort, &function, work).await
}

/// The output of a call as bytes.
pub(crate) fn output_bytes(out: Vec<u8>) -> Buffer {
    out.into()
}

/// The output of a call decoded as UTF-8 (invalid sequences become U+FFFD).
pub(crate) fn output_text(out: Vec<u8>) -> String {
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// The output of a call parsed with `JSON.parse`.
pub(crate) fn output_json<'env>(
    env: &'env Env,
    function: &str,
    out: &[u8],
) -> Fallible<Unknown<'env>> {
    let text = std::str::from_utf8(out).map_err(|_| {
        Failure::new(
            ErrorKind::Convert,
            format!("the output of `{function}` is not UTF-8, so not JSON"),
        )
    })?;
    let parse = Registered::get(env)
        .and_then(|r| r.json_parse.borrow_back(env))
        .map_err(|e| Failure::new(ErrorKind::Other, e.reason))?;
    parse.call(text.to_string()).map_err(|e| Failure {
        message: format!("the output of `{function}` is not valid JSON: {}", e.reason),
        cause: Some(Held::from_error(e)),
        ..Failure::new(ErrorKind::Convert, "")
    })
}

/// `Plugin.call`: a call on a worker thread whose output is a Buffer.
pub struct CallBytes(pub(crate) Call);

#[napi]
impl Task for CallBytes {
    type Output = Vec<u8>;
    type JsValue = Buffer;

    fn compute(&mut self) -> napi::Result<Vec<u8>> {
        self.0.compute()
    }

    fn resolve(&mut self, env: Env, out: Vec<u8>) -> napi::Result<Buffer> {
        self.0.unlisten(&env);
        Ok(output_bytes(out))
    }

    fn reject(&mut self, env: Env, err: napi::Error) -> napi::Result<Buffer> {
        Err(self.0.reject(&env, err))
    }
}

/// `Plugin.callString`: a call on a worker thread whose output is text.
pub struct CallText(pub(crate) Call);

#[napi]
impl Task for CallText {
    type Output = Vec<u8>;
    type JsValue = String;

    fn compute(&mut self) -> napi::Result<Vec<u8>> {
        self.0.compute()
    }

    fn resolve(&mut self, env: Env, out: Vec<u8>) -> napi::Result<String> {
        self.0.unlisten(&env);
        Ok(output_text(out))
    }

    fn reject(&mut self, env: Env, err: napi::Error) -> napi::Result<String> {
        Err(self.0.reject(&env, err))
    }
}

/// `Plugin.callJson`: a call on a worker thread whose output is parsed as JSON.
pub struct CallJson(pub(crate) Call);

#[napi]
impl Task for CallJson {
    type Output = Vec<u8>;
    type JsValue = Unknown<'static>;

    fn compute(&mut self) -> napi::Result<Vec<u8>> {
        self.0.compute()
    }

    fn resolve(&mut self, env: Env, out: Vec<u8>) -> napi::Result<Unknown<'static>> {
        self.0.unlisten(&env);
        let value = throw(&env, output_json(&env, &self.0.function, &out))?;
        crate::unscoped(value)
    }

    fn reject(&mut self, env: Env, err: napi::Error) -> napi::Result<Unknown<'static>> {
        Err(self.0.reject(&env, err))
    }
}

/// `CompiledPlugin.callFresh`: a call on an instance made for it alone, on a worker thread.
pub struct CallFresh {
    compiled: plinth::CompiledPlugin,
    function: String,
    input: Vec<u8>,
    call: Arc<CallShared>,
    failure: Option<Failure>,
    abort: Option<Arc<Abort>>,
    listening: Option<Listening>,
}

/// The `plugin` of a fresh call's [`CallShared`]: no `PluginInner` has it (theirs are
/// addresses), since nothing else can reach the fresh instance.
const FRESH_INSTANCE: usize = 0;

#[napi]
impl Task for CallFresh {
    type Output = Vec<u8>;
    type JsValue = Buffer;

    fn compute(&mut self) -> napi::Result<Vec<u8>> {
        let (function, input, call) = (&self.function, &self.input, &self.call);
        // What `plinth::CompiledPlugin::call_fresh` does, with the host context that JavaScript
        // host functions need to find their way back.
        let out = self.compiled.instantiate().and_then(|mut p| {
            run_abortable(&mut p, &self.abort, |p| {
                PluginInner::call(p, function, input, call)
            })
        });
        match out {
            Ok(Some(out)) => Ok(out),
            Ok(None) => {
                self.failure = Some(Abort::failure(function));
                Err(napi::Error::from_reason("the call was aborted"))
            }
            Err(e) => {
                self.failure = Some(call_failure(e.into(), call));
                Err(napi::Error::from_reason("the call failed"))
            }
        }
    }

    fn resolve(&mut self, env: Env, out: Vec<u8>) -> napi::Result<Buffer> {
        if let Some(l) = self.listening.take() {
            l.remove(&env);
        }
        Ok(output_bytes(out))
    }

    fn reject(&mut self, env: Env, err: napi::Error) -> napi::Result<Buffer> {
        if let Some(l) = self.listening.take() {
            l.remove(&env);
        }
        Err(self
            .failure
            .take()
            .unwrap_or_else(|| Failure::new(ErrorKind::Other, err.reason))
            .into_napi(&env))
    }
}

/// An artifact key from JavaScript bytes: at least 16 of them.
fn artifact_key(env: &Env, key: Bytes) -> napi::Result<plinth::ArtifactKey> {
    throw(env, plinth::ArtifactKey::new(key.0).map_err(Failure::from))
}

/// Compiles (and instantiates) a plug-in on a worker thread, for `Plugin.load`.
pub struct LoadPlugin(Load);

/// Compiles a plug-in on a worker thread, for `CompiledPlugin.load`.
pub struct CompilePlugin(Load);

struct Load {
    source: Option<plinth::Source>,
    settings: Settings,
    failure: Option<Failure>,
}

impl Load {
    fn new(source: PluginSource, options: Option<PluginOptions<'_>>) -> Load {
        Load {
            source: Some(source.0),
            settings: Settings::new(options),
            failure: None,
        }
    }

    fn builder(&mut self) -> plinth::PluginBuilder {
        self.settings
            .builder(self.source.take().expect("computed once"))
    }

    fn failed(&mut self, e: plinth::Error) -> napi::Error {
        self.failure = Some(e.into());
        napi::Error::from_reason("loading failed")
    }

    fn reject(&mut self, env: &Env, err: napi::Error) -> napi::Error {
        self.failure
            .take()
            .unwrap_or_else(|| Failure::new(ErrorKind::Other, err.reason))
            .into_napi(env)
    }
}

#[napi]
impl Task for LoadPlugin {
    type Output = plinth::Plugin;
    type JsValue = Plugin;

    fn compute(&mut self) -> napi::Result<plinth::Plugin> {
        let built = self.0.builder().build();
        built.map_err(|e| self.0.failed(e))
    }

    fn resolve(&mut self, env: Env, plugin: plinth::Plugin) -> napi::Result<Plugin> {
        Ok(Plugin::wrap(&env, plugin, self.0.settings.has_async()))
    }

    fn reject(&mut self, env: Env, err: napi::Error) -> napi::Result<Plugin> {
        Err(self.0.reject(&env, err))
    }
}

#[napi]
impl Task for CompilePlugin {
    type Output = plinth::CompiledPlugin;
    type JsValue = CompiledPlugin;

    fn compute(&mut self) -> napi::Result<plinth::CompiledPlugin> {
        let compiled = self.0.builder().compile();
        compiled.map_err(|e| self.0.failed(e))
    }

    fn resolve(
        &mut self,
        _env: Env,
        compiled: plinth::CompiledPlugin,
    ) -> napi::Result<CompiledPlugin> {
        Ok(CompiledPlugin {
            compiled: Some(compiled),
            has_async: self.0.settings.has_async(),
        })
    }

    fn reject(&mut self, env: Env, err: napi::Error) -> napi::Result<CompiledPlugin> {
        Err(self.0.reject(&env, err))
    }
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
/// keeps running; `callSync()` runs it on the JavaScript thread. A plug-in with async host
/// functions is called only with `call()` and its kin, whose calls are futures that hold no
/// thread while a host function's Promise is pending, and queue in order on the instance.
/// Calls on one plug-in take turns: a `call()` waits (on its worker thread) for the calls
/// before it. A `callSync()`, a
/// `reset()` or an `updateConfig()` that finds a `call()` running does not wait, because the
/// running call may need the JavaScript thread for a host function: it throws a
/// `PlinthError` of kind `"busy"` (or `"reentrant"` from inside one of the plug-in's own host
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
    fn wrap(env: &Env, plugin: plinth::Plugin, has_async: bool) -> Plugin {
        let _ = env.adjust_external_memory(EXTERNAL_BYTES);
        Plugin {
            inner: PluginInner::new(plugin, has_async),
        }
    }

    fn closed_check(&self, env: &Env) -> napi::Result<()> {
        if self.inner.is_closed() {
            return Err(Failure::from(plinth::Error::Closed).into_napi(env));
        }
        Ok(())
    }

    fn call_task(
        &self,
        env: &Env,
        function: String,
        input: Vec<u8>,
        options: Option<CallOptions>,
    ) -> napi::Result<Call> {
        let target = Target::Plugin(self.inner.clone());
        Call::new(env, target, function, input, options)
    }

    /// A call on the JavaScript thread.
    fn call_now(
        &self,
        env: &Env,
        function: &str,
        input: Vec<u8>,
        options: Option<CallOptions>,
    ) -> napi::Result<Vec<u8>> {
        if self.inner.is_async() && !self.inner.is_closed() {
            return Err(Failure::new(
                ErrorKind::Other,
                format!(
                    "cannot call `{function}` synchronously: the plug-in has async host \
                     functions, which it awaits while the event loop runs; use call(), \
                     callString() or callJson()"
                ),
            )
            .into_napi(env));
        }
        let call = direct_call(env, self.inner.key(), function, options)?;
        throw(
            env,
            self.inner
                .now(function, |p| PluginInner::call(p, function, &input, &call))
                .map_err(|f| call_failure(f, &call)),
        )
    }
}

/// The [`CallShared`] of a call on the JavaScript thread of the plug-in `key`; fails when the
/// call's signal is aborted already.
pub(crate) fn direct_call(
    env: &Env,
    key: usize,
    function: &str,
    options: Option<CallOptions>,
) -> napi::Result<Arc<CallShared>> {
    let settings = CallSettings::new(env, options)?;
    // The signal cannot fire while this thread runs the plug-in; only an aborted one counts.
    if let Some(l) = settings.listening {
        l.remove(env);
    }
    if settings.abort.is_some_and(|a| a.is_aborted()) {
        return Err(Abort::failure(function).into_napi(env));
    }
    Ok(CallShared::new(
        Mode::Direct(JsThread(*env)),
        settings.host_context,
        key,
    ))
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
    #[napi(constructor)]
    pub fn new(
        env: Env,
        source: PluginSource,
        options: Option<PluginOptions>,
    ) -> napi::Result<Self> {
        let settings = Settings::new(options);
        let built = settings.builder(source.0).build();
        let plugin = throw(&env, built.map_err(Failure::from))?;
        Ok(Plugin::wrap(&env, plugin, settings.has_async()))
    }

    /// Loads a plug-in on a worker thread (compiling, downloading, instantiating).
    #[napi]
    pub fn load(source: PluginSource, options: Option<PluginOptions>) -> AsyncTask<LoadPlugin> {
        AsyncTask::new(LoadPlugin(Load::new(source, options)))
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

    /// Calls `name` with `input` on a worker thread; resolves to the output bytes. Rejects
    /// with a `PlinthError` when the plug-in fails. A plug-in with async host functions runs
    /// as a future instead, which holds no thread while a host function's Promise is pending.
    #[napi(ts_return_type = "Promise<Buffer>")]
    pub fn call<'env>(
        &self,
        env: &'env Env,
        name: String,
        input: Option<CallInput>,
        options: Option<CallOptions>,
    ) -> napi::Result<Either<AsyncTask<CallBytes>, PromiseRaw<'env, Buffer>>> {
        let mut task = self.call_task(env, name, CallInput::bytes(input), options)?;
        if self.inner.is_async() {
            let listening = task.listening.take();
            let done = |_: &Env, out| Ok(output_bytes(out));
            return Ok(Either::B(spawn_call(
                env,
                task.run_async(),
                listening,
                done,
            )?));
        }
        Ok(Either::A(AsyncTask::new(CallBytes(task))))
    }

    /// Calls `name` with `input` on the JavaScript thread and returns the output bytes.
    #[napi]
    pub fn call_sync(
        &self,
        env: Env,
        name: String,
        input: Option<CallInput>,
        options: Option<CallOptions>,
    ) -> napi::Result<Buffer> {
        let out = self.call_now(&env, &name, CallInput::bytes(input), options)?;
        Ok(output_bytes(out))
    }

    /// Like `call()`, resolving to the output decoded as UTF-8.
    #[napi(ts_return_type = "Promise<string>")]
    pub fn call_string<'env>(
        &self,
        env: &'env Env,
        name: String,
        input: Option<CallInput>,
        options: Option<CallOptions>,
    ) -> napi::Result<Either<AsyncTask<CallText>, PromiseRaw<'env, String>>> {
        let mut task = self.call_task(env, name, CallInput::bytes(input), options)?;
        if self.inner.is_async() {
            let listening = task.listening.take();
            let done = |_: &Env, out| Ok(output_text(out));
            return Ok(Either::B(spawn_call(
                env,
                task.run_async(),
                listening,
                done,
            )?));
        }
        Ok(Either::A(AsyncTask::new(CallText(task))))
    }

    /// Like `callSync()`, returning the output decoded as UTF-8.
    #[napi]
    pub fn call_string_sync(
        &self,
        env: Env,
        name: String,
        input: Option<CallInput>,
        options: Option<CallOptions>,
    ) -> napi::Result<String> {
        let out = self.call_now(&env, &name, CallInput::bytes(input), options)?;
        Ok(output_text(out))
    }

    /// Calls `name` with `JSON.stringify(value)` and resolves to the output parsed with
    /// `JSON.parse`. An output that is not JSON rejects with a `PlinthError` of kind
    /// `"convert"`, whose `cause` is the `SyntaxError`.
    #[napi(ts_return_type = "Promise<any>")]
    pub fn call_json<'env>(
        &self,
        env: &'env Env,
        name: String,
        value: Option<Unknown>,
        options: Option<CallOptions>,
    ) -> napi::Result<Either<AsyncTask<CallJson>, PromiseRaw<'env, Unknown<'env>>>> {
        let input = json_stringify(env, value)?;
        let mut task = self.call_task(env, name.clone(), input, options)?;
        if self.inner.is_async() {
            let listening = task.listening.take();
            let done =
                move |env: &'env Env, out: Vec<u8>| throw(env, output_json(env, &name, &out));
            return Ok(Either::B(spawn_call(
                env,
                task.run_async(),
                listening,
                done,
            )?));
        }
        Ok(Either::A(AsyncTask::new(CallJson(task))))
    }

    /// Like `callJson()`, on the JavaScript thread.
    #[napi(ts_return_type = "any")]
    pub fn call_json_sync<'env>(
        &self,
        env: &'env Env,
        name: String,
        value: Option<Unknown>,
        options: Option<CallOptions>,
    ) -> napi::Result<Unknown<'env>> {
        let input = json_stringify(env, value)?;
        let out = self.call_now(env, &name, input, options)?;
        throw(env, output_json(env, &name, &out))
    }

    /// Starts a streaming call of `name` on a thread of its own and returns its handle, which
    /// takes input chunks and gives output chunks. `callStream()` drives it from Node streams,
    /// with backpressure: use that unless you need the chunks one by one. `options` may have a
    /// `hostContext`; cancel with the handle's `cancel()` (a `signal` is for `callStream()`).
    // catch_unwind: napi-rs's `spawn` panics if its runtime is gone (at shutdown).
    #[napi(catch_unwind)]
    pub fn open_stream(
        &self,
        env: Env,
        name: String,
        options: Option<CallOptions>,
    ) -> napi::Result<StreamCall> {
        self.closed_check(&env)?;
        let settings = CallSettings::new(&env, options)?;
        if let Some(l) = settings.listening {
            l.remove(&env);
            return Err(crate::error::type_error(
                &env,
                "openStream() takes no `signal`: call the StreamCall's cancel(), or pass the signal to callStream()",
            ));
        }
        let call = CallShared::new(Mode::Remote, settings.host_context, self.inner.key());
        throw(&env, StreamCall::start(self.inner.clone(), name, call))
    }

    /// Whether the plug-in exports a callable function `name`.
    #[napi]
    pub fn function_exists(&self, env: Env, name: String) -> napi::Result<bool> {
        self.closed_check(&env)?;
        Ok(self.inner.compiled.function_exists(&name))
    }

    /// The names of the plug-in's callable exports.
    #[napi]
    pub fn functions(&self, env: Env) -> napi::Result<Vec<String>> {
        self.closed_check(&env)?;
        Ok(self.inner.compiled.functions())
    }

    /// Sets config keys (numbers and booleans become strings) and removes those whose value is
    /// `null` or `undefined`. Takes effect from the next call.
    #[napi]
    pub fn update_config(&self, env: Env, changes: ConfigChanges) -> napi::Result<()> {
        throw(
            &env,
            self.inner.now("", |p| {
                p.update_config(changes.0);
                Ok(())
            }),
        )
    }

    /// Frees the plug-in's Extism memory (the last output included).
    #[napi]
    pub fn reset(&self, env: Env) -> napi::Result<()> {
        throw(&env, self.inner.now("", plinth::Plugin::reset))
    }

    /// Cancels the running call (it rejects with kind `"cancelled"`). Returns false when the
    /// plug-in is closed. A cancel when no call runs does nothing.
    #[napi]
    pub fn cancel(&self) -> bool {
        self.inner.cancel()
    }

    /// A handle that cancels this plug-in's running call, usable after the plug-in itself is
    /// out of reach (it does not keep the plug-in alive).
    #[napi]
    pub fn cancel_handle(&self) -> CancelHandle {
        CancelHandle {
            inner: Arc::downgrade(&self.inner),
        }
    }

    /// Frees the plug-in. Idempotent. A call running at the time finishes first; calls made
    /// afterwards fail with kind `"closed"`.
    #[napi]
    pub fn close(&self) {
        self.inner.close();
    }
}

/// Cancels the running call of a plug-in, from anywhere (a timer, a signal handler, a host
/// function).
#[napi]
pub struct CancelHandle {
    inner: Weak<PluginInner>,
}

#[napi]
impl CancelHandle {
    /// Cancels the plug-in's running call. Returns false once the plug-in is closed or freed.
    #[napi]
    pub fn cancel(&self) -> bool {
        self.inner.upgrade().is_some_and(|inner| inner.cancel())
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
    /// Whether a host function is async: then calls run as futures (see the module doc).
    has_async: bool,
}

#[napi]
impl CompiledPlugin {
    /// Compiles a plug-in on this thread. The options apply to every instance.
    #[napi(constructor)]
    pub fn new(
        env: Env,
        source: PluginSource,
        options: Option<PluginOptions>,
    ) -> napi::Result<Self> {
        let settings = Settings::new(options);
        let compiled = settings.builder(source.0).compile();
        Ok(CompiledPlugin {
            compiled: Some(throw(&env, compiled.map_err(Failure::from))?),
            has_async: settings.has_async(),
        })
    }

    /// Compiles a plug-in on a worker thread.
    #[napi]
    pub fn load(source: PluginSource, options: Option<PluginOptions>) -> AsyncTask<CompilePlugin> {
        AsyncTask::new(CompilePlugin(Load::new(source, options)))
    }

    /// Loads a precompiled artifact (from {@link CompiledPlugin.compileArtifact} or
    /// `plinth compile`) without compiling. Its signature must verify under `key`, the key it
    /// was made with: bytes that are not an artifact, an artifact altered after it was made,
    /// or one signed with another key throw a `PlinthError` of kind `"artifact"`, and nothing
    /// of it runs. An artifact made by another Plinth version or with other settings (a
    /// `fuelLimit` on one side only) is compiled from the wasm it holds instead
    /// (`isPrecompiled` is then false). The options are those of the constructor.
    #[napi(factory)]
    pub fn from_artifact(
        env: Env,
        #[napi(ts_arg_type = "Buffer | Uint8Array")] artifact: Bytes,
        #[napi(ts_arg_type = "Buffer | Uint8Array")] key: Bytes,
        options: Option<PluginOptions>,
    ) -> napi::Result<Self> {
        let key = artifact_key(&env, key)?;
        let builder = plinth::PluginBuilder::from_artifact(artifact.0, &key);
        let settings = Settings::new(options);
        let compiled = settings.configure(builder).compile();
        Ok(CompiledPlugin {
            compiled: Some(throw(&env, compiled.map_err(Failure::from))?),
            has_async: settings.has_async(),
        })
    }

    /// Compiles a plug-in ahead of time, on this thread, into a precompiled artifact signed
    /// with `key` (at least 16 secret bytes; 32 random bytes such as `crypto.randomBytes(32)`
    /// are best), as `plinth compile` does. The source and options are the constructor's (a
    /// manifest may have only its main module): host functions and WASI are checked as at
    /// load time, and the artifact holds neither. Whoever holds the key can make artifacts that
    /// a host holding it runs as native code: keep it as private as the host's own binaries.
    #[napi]
    pub fn compile_artifact(
        env: Env,
        source: PluginSource,
        #[napi(ts_arg_type = "Buffer | Uint8Array")] key: Bytes,
        options: Option<PluginOptions>,
    ) -> napi::Result<Buffer> {
        let key = artifact_key(&env, key)?;
        let artifact = Settings::new(options)
            .builder(source.0)
            .compile_artifact(&key);
        Ok(throw(&env, artifact.map_err(Failure::from))?.into())
    }

    /// Whether the native code came from a precompiled artifact rather than compiling (false
    /// once closed).
    #[napi(getter)]
    pub fn is_precompiled(&self) -> bool {
        self.compiled
            .as_ref()
            .is_some_and(plinth::CompiledPlugin::is_precompiled)
    }

    /// Calls `name` with `input` on a fresh instance made for this call alone, on a worker
    /// thread, and resolves to the output bytes. Nothing one call leaves behind (memory,
    /// globals, vars) is seen by the next, which isolates requests or tenants from each other;
    /// a fresh instance costs microseconds (instances are pooled). Fresh calls run in parallel.
    /// Rejects with a `PlinthError` as `Plugin.call()` does.
    #[napi(ts_return_type = "Promise<Buffer>")]
    pub fn call_fresh<'env>(
        &self,
        env: &'env Env,
        name: String,
        input: Option<CallInput>,
        options: Option<CallOptions>,
    ) -> napi::Result<Either<AsyncTask<CallFresh>, PromiseRaw<'env, Buffer>>> {
        let compiled = self.get(env)?.clone();
        let settings = CallSettings::new(env, options)?;
        let host_context = settings.host_context;
        if self.has_async {
            let call = CallShared::new(Mode::Remote, host_context, FRESH_INSTANCE);
            let input = CallInput::bytes(input);
            let fresh = fresh_async(compiled, name, input, call, settings.abort);
            let done = |_: &Env, out| Ok(output_bytes(out));
            return Ok(Either::B(spawn_call(env, fresh, settings.listening, done)?));
        }
        Ok(Either::A(AsyncTask::new(CallFresh {
            compiled,
            function: name,
            input: CallInput::bytes(input),
            call: CallShared::new(Mode::Remote, host_context, FRESH_INSTANCE),
            failure: None,
            abort: settings.abort,
            listening: settings.listening,
        })))
    }

    fn get(&self, env: &Env) -> napi::Result<&plinth::CompiledPlugin> {
        self.compiled.as_ref().ok_or_else(|| {
            Failure::new(
                ErrorKind::Closed,
                "the compiled plug-in is closed; its instances stay usable",
            )
            .into_napi(env)
        })
    }

    /// A new instance (cheap: no compiling).
    #[napi]
    pub fn instance(&self, env: Env) -> napi::Result<Plugin> {
        let plugin = self.get(&env)?.instantiate();
        Ok(Plugin::wrap(
            &env,
            throw(&env, plugin.map_err(Failure::from))?,
            self.has_async,
        ))
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
