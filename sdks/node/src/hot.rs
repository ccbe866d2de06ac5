//! `HotPlugin`: `plinth::reload::HotPlugin` for JavaScript, a plug-in that follows its file.
//!
//! Calls reuse `Plugin`'s machinery (plugin.rs): `call()` runs on a libuv worker thread, the
//! `*Sync` methods on the JavaScript thread, and JavaScript host functions find their way back
//! through the call's host context. The core's `HotPlugin` has no `try_call`, so a turn
//! ([`HotInner::gate`]) stands in for `SharedPlugin::try_with`: a worker call waits for it,
//! while everything on the JavaScript thread takes it without waiting, because the worker that
//! holds it may be waiting for a host function that needs the JavaScript thread.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, TryLockError};

use napi::bindgen_prelude::{AsyncTask, Buffer, Either, Object, Uint8ArraySlice, Unknown};
use napi::Env;
use napi_derive::napi;
use plinth::reload::Reload;
use plinth::ErrorKind;

use crate::abort::Abort;
use crate::args::{json_stringify, CallInput, CallOptions, HotPluginOptions, Settings};
use crate::error::{throw, Failure, Fallible};
use crate::host::{serving, CallCtx, CallShared};
use crate::plugin::{
    call_failure, direct_call, output_bytes, output_json, output_text, reentrant, Call, CallBytes,
    CallJson, CallText, Target,
};

/// The hot plug-in, shared by its JavaScript object and the calls in flight.
pub(crate) struct HotInner {
    /// `None` once closed; a call in flight keeps its own reference until it ends.
    hot: Mutex<Option<Arc<plinth::reload::HotPlugin>>>,
    /// Held by each call, check and reload (see the module doc).
    gate: Mutex<()>,
    /// Whether the JavaScript thread holds `gate` (a `callSync` whose host function is running).
    direct: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl HotInner {
    /// Tells this plug-in's calls apart from other plug-ins' (see `host::serving`).
    pub(crate) fn key(self: &Arc<Self>) -> usize {
        Arc::as_ptr(self) as usize
    }

    fn get(&self) -> plinth::Result<Arc<plinth::reload::HotPlugin>> {
        lock(&self.hot).clone().ok_or(plinth::Error::Closed)
    }

    /// A call on a worker thread: waits its turn. `None` when the signal was aborted before
    /// the call's turn came (a running call cannot be cancelled: the core's `HotPlugin` has
    /// no cancel handle).
    pub(crate) fn call_waiting(
        &self,
        function: &str,
        input: &[u8],
        call: &Arc<CallShared>,
        abort: &Option<Arc<Abort>>,
    ) -> plinth::Result<Option<Vec<u8>>> {
        let hot = self.get()?;
        let _turn = lock(&self.gate);
        if abort.as_ref().is_some_and(|a| a.is_aborted()) {
            return Ok(None);
        }
        hot.call_with_host_context::<&[u8], Vec<u8>, _>(function, input, CallCtx(call.clone()))
            .map(Some)
    }

    /// Runs `f` on the JavaScript thread without waiting for a worker's call (see the module
    /// doc). `function` names a call in a re-entrancy error.
    fn now<R>(
        self: &Arc<Self>,
        function: &str,
        f: impl FnOnce(&plinth::reload::HotPlugin) -> plinth::Result<R>,
    ) -> Fallible<R> {
        let hot = self.get()?;
        let _turn = match self.gate.try_lock() {
            Ok(turn) => turn,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock)
                if self.direct.load(Ordering::SeqCst) || serving(self.key()) =>
            {
                return Err(reentrant(function));
            }
            Err(TryLockError::WouldBlock) => {
                return Err(Failure::new(
                    ErrorKind::Busy,
                    "the hot plug-in is running a call started with call() on a worker \
                     thread; await it first (call() itself waits its turn)",
                ))
            }
        };
        self.direct.store(true, Ordering::SeqCst);
        let out = f(&hot);
        self.direct.store(false, Ordering::SeqCst);
        out.map_err(|e| match e {
            plinth::Error::Reentrant { function: f } if f.is_empty() => reentrant(function),
            e => e.into(),
        })
    }
}

/// A plug-in loaded from a file that follows the file: write a new version, and the next
/// check compiles it and swaps it in between two calls, with the plug-in's vars.
///
/// ```js
/// const mod = new HotPlugin('mods/greeter.wasm', { checkIntervalMs: null, requireExports: ['on_tick'] })
/// setInterval(() => {
///   const r = mod.check()
///   if (r.kind === 'failed') console.error(`greeter not reloaded, the old code runs: ${r.error.message}`)
///   console.log(mod.callStringSync('on_tick', 'tick'))
/// }, 100)
/// ```
///
/// The options are `Plugin`'s (host functions, WASI, fuel), applied to every version, plus
/// `checkIntervalMs` and `requireExports`. A version that cannot run (not wasm, a missing
/// required export, a start function that traps, ...) is refused and the old code keeps
/// running; `lastError` says why until a reload succeeds. What carries over to new code: the
/// vars. Not its memory and globals (the new code starts fresh), nor config, which comes from
/// the new manifest.
///
/// Calls work as on a `Plugin`: `call()` on a worker thread, the `*Sync` methods on the
/// JavaScript thread, and a `callSync()`, `check()` or `reload()` while a `call()` runs throws
/// a `PlinthError` of kind `"busy"`. Host functions must be synchronous: the core calls a hot
/// plug-in synchronously. A call's `signal` cancels it only while it waits for its turn.
#[napi]
pub struct HotPlugin {
    inner: Arc<HotInner>,
    path: String,
}

/// A check's outcome as JavaScript gets it (`HotReload` in TypeScript).
fn outcome<'env>(env: &'env Env, reload: Reload) -> napi::Result<Object<'env>> {
    let mut o = Object::new(env)?;
    match reload {
        Reload::Unchanged => o.set("kind", "unchanged")?,
        Reload::Swapped { generation } => {
            o.set("kind", "swapped")?;
            o.set("generation", generation as f64)?;
        }
        Reload::Failed(e) => {
            o.set("kind", "failed")?;
            o.set("error", Failure::of(&e).into_js(env)?)?;
        }
    }
    Ok(o)
}

#[napi]
impl HotPlugin {
    /// Loads the plug-in at `path` (a wasm or WAT file, or a manifest in JSON or TOML, whose
    /// module files are watched too), compiling it on this thread. Throws a `PlinthError` as
    /// `new Plugin()` does when this first load fails, or of kind `"function_not_found"` when
    /// it lacks one of `requireExports`.
    #[napi(constructor)]
    pub fn new(
        env: Env,
        path: String,
        #[napi(ts_arg_type = "HotPluginOptions | undefined | null")] options: Option<
            HotPluginOptions,
        >,
    ) -> napi::Result<Self> {
        let (settings, interval, required) = match options {
            Some(o) => (
                Settings::new(Some(o.plugin)),
                o.check_interval,
                o.require_exports,
            ),
            None => (
                Settings::default(),
                Some(plinth::reload::DEFAULT_CHECK_INTERVAL),
                Vec::new(),
            ),
        };
        if settings.has_async() {
            return Err(Failure::new(
                ErrorKind::Other,
                "a HotPlugin calls its host functions synchronously, and one of them is async; \
                 make it a plain function, or use a Plugin for async host functions",
            )
            .into_napi(&env));
        }
        let hot = plinth::reload::HotPlugin::open(&path, move |b| settings.configure(b))
            .map(|hot| hot.with_check_interval(interval))
            .and_then(|hot| hot.require_exports(required));
        let hot = throw(&env, hot.map_err(Failure::from))?;
        Ok(HotPlugin {
            inner: Arc::new(HotInner {
                hot: Mutex::new(Some(Arc::new(hot))),
                gate: Mutex::new(()),
                direct: AtomicBool::new(false),
            }),
            path,
        })
    }

    /// The path the plug-in was opened from, as given.
    #[napi(getter)]
    pub fn path(&self) -> String {
        self.path.clone()
    }

    /// Whether `close()` was called.
    #[napi(getter)]
    pub fn closed(&self) -> bool {
        lock(&self.inner.hot).is_none()
    }

    /// The generation of the code running: 1 at the first load, one more at each swap.
    #[napi(getter)]
    pub fn generation(&self, env: Env) -> napi::Result<f64> {
        let hot = throw(&env, self.inner.get().map_err(Failure::from))?;
        Ok(hot.generation() as f64)
    }

    /// Why the last reload failed (a `PlinthError`), or null; cleared when one succeeds.
    #[napi(getter, ts_return_type = "PlinthError | null")]
    pub fn last_error<'env>(&self, env: &'env Env) -> napi::Result<Option<Unknown<'env>>> {
        let hot = throw(env, self.inner.get().map_err(Failure::from))?;
        hot.last_error()
            .map(|e| Failure::of(&e).into_js(env))
            .transpose()
    }

    /// Looks at the file now and, if its bytes changed, compiles the new code and swaps it in,
    /// on this thread. Returns what it did: `{ kind: 'unchanged' }`, `{ kind: 'swapped',
    /// generation }`, or `{ kind: 'failed', error }`, when the old code keeps running (the same
    /// bytes are not tried again until they change). Throws only when the plug-in is closed,
    /// busy with a `call()`, or from one of its own host functions (`"reentrant"`).
    #[napi(ts_return_type = "HotReload")]
    pub fn check<'env>(&self, env: &'env Env) -> napi::Result<Object<'env>> {
        let reload = throw(env, self.inner.now("", |hot| hot.check()))?;
        outcome(env, reload)
    }

    /// Like `check()`, compiling the file's bytes even when they did not change.
    #[napi(ts_return_type = "HotReload")]
    pub fn reload<'env>(&self, env: &'env Env) -> napi::Result<Object<'env>> {
        let reload = throw(env, self.inner.now("", |hot| hot.reload()))?;
        outcome(env, reload)
    }

    fn task(
        &self,
        env: &Env,
        name: String,
        input: Vec<u8>,
        options: Option<CallOptions>,
    ) -> napi::Result<Call> {
        let target = Target::Hot(self.inner.clone());
        Call::new(env, target, name, input, options)
    }

    /// A call on the JavaScript thread.
    fn call_now(
        &self,
        env: &Env,
        function: &str,
        input: Vec<u8>,
        options: Option<CallOptions>,
    ) -> napi::Result<Vec<u8>> {
        let call = direct_call(env, self.inner.key(), function, options)?;
        let out = self.inner.now(function, |hot| {
            let ctx = CallCtx(call.clone());
            hot.call_with_host_context::<&[u8], Vec<u8>, _>(function, &input, ctx)
        });
        throw(env, out.map_err(|f| call_failure(f, &call)))
    }

    /// Calls `name` with `input` on a worker thread, after a check if one is due; resolves to
    /// the output bytes. Rejects with a `PlinthError` when the plug-in fails.
    #[napi(ts_return_type = "Promise<Buffer>")]
    pub fn call(
        &self,
        env: Env,
        name: String,
        input: Option<CallInput>,
        options: Option<CallOptions>,
    ) -> napi::Result<AsyncTask<CallBytes>> {
        let task = self.task(&env, name, CallInput::bytes(input), options)?;
        Ok(AsyncTask::new(CallBytes(task)))
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
    pub fn call_string(
        &self,
        env: Env,
        name: String,
        input: Option<CallInput>,
        options: Option<CallOptions>,
    ) -> napi::Result<AsyncTask<CallText>> {
        let task = self.task(&env, name, CallInput::bytes(input), options)?;
        Ok(AsyncTask::new(CallText(task)))
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
    /// `JSON.parse`, as `Plugin.callJson()` does.
    #[napi(ts_return_type = "Promise<any>")]
    pub fn call_json(
        &self,
        env: Env,
        name: String,
        value: Option<Unknown>,
        options: Option<CallOptions>,
    ) -> napi::Result<AsyncTask<CallJson>> {
        let input = json_stringify(&env, value)?;
        let task = self.task(&env, name, input, options)?;
        Ok(AsyncTask::new(CallJson(task)))
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

    /// The files watched: the path opened and, for a manifest, the module files it names (as
    /// of the last check).
    #[napi]
    pub fn watched_files(&self, env: Env) -> napi::Result<Vec<String>> {
        let hot = throw(&env, self.inner.get().map_err(Failure::from))?;
        let files = hot.watched_files().into_iter();
        Ok(files.map(|p| p.to_string_lossy().into_owned()).collect())
    }

    /// Whether the code running now exports a callable function `name`.
    #[napi]
    pub fn function_exists(&self, env: Env, name: String) -> napi::Result<bool> {
        let hot = throw(&env, self.inner.get().map_err(Failure::from))?;
        Ok(hot.function_exists(&name))
    }

    /// The names of the callable exports of the code running now.
    #[napi]
    pub fn functions(&self, env: Env) -> napi::Result<Vec<String>> {
        let hot = throw(&env, self.inner.get().map_err(Failure::from))?;
        Ok(hot.compiled().functions())
    }

    /// A var the plug-in (or `varSet`) stored, or null. Vars carry over to new code.
    #[napi]
    pub fn var_get(&self, env: Env, key: String) -> napi::Result<Option<Buffer>> {
        let value = self.inner.now("", |hot| Ok(hot.var_get(&key)));
        Ok(throw(&env, value)?.map(Buffer::from))
    }

    /// Sets a var (a string is stored as UTF-8), or removes it with null, within the
    /// manifest's `memory.max_var_bytes`.
    #[napi]
    pub fn var_set(
        &self,
        env: Env,
        key: String,
        value: Option<Either<Uint8ArraySlice, String>>,
    ) -> napi::Result<()> {
        let value = value.map(|v| match v {
            Either::A(bytes) => bytes.to_vec(),
            Either::B(text) => text.into_bytes(),
        });
        throw(
            &env,
            self.inner
                .now("", |hot| hot.var_set(key.clone(), value.as_deref())),
        )
    }

    /// Frees the plug-in. Idempotent. A call running at the time finishes first; calls made
    /// afterwards fail with kind `"closed"`.
    #[napi]
    pub fn close(&self) {
        lock(&self.inner.hot).take();
    }
}
