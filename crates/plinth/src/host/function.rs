//! Host functions that plug-ins import, and the view of the calling plug-in they get.

use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use plinth_convert::{FromBytes, ToBytes};
use wasmtime::{Caller, Val, ValType};

use super::timer::until_stopped;
use crate::abi::memory::AllocError;
use crate::error::Interrupt;
use crate::store::{self, StoreData};
use crate::Error;

/// Extism handles are i64 values.
pub const PTR: ValType = ValType::I64;
/// The namespace host functions are imported from unless one is given.
pub const DEFAULT_NAMESPACE: &str = "extism:host/user";

/// Data shared between a host function and the program that made it.
pub struct UserData<T>(Arc<Mutex<T>>);

impl<T> UserData<T> {
    /// Wraps `value` for sharing between a host function and the program.
    pub fn new(value: T) -> Self {
        UserData(Arc::new(Mutex::new(value)))
    }
    /// Locks the data. A panic in another holder does not make it unusable.
    pub fn lock(&self) -> MutexGuard<'_, T> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
    /// The shared value itself.
    pub fn get(&self) -> Arc<Mutex<T>> {
        self.0.clone()
    }
}

impl<T> Clone for UserData<T> {
    fn clone(&self) -> Self {
        UserData(self.0.clone())
    }
}

impl<T: Default> Default for UserData<T> {
    fn default() -> Self {
        UserData::new(T::default())
    }
}

pub(crate) type Callback =
    dyn Fn(&mut CurrentPlugin<'_>, &[Val], &mut [Val]) -> anyhow::Result<()> + Send + Sync;

/// What an async host function returns: a future that may hold the calling plug-in across its
/// awaits.
pub type HostFuture<'a> = Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send + 'a>>;

pub(crate) type AsyncCallback =
    dyn for<'a> Fn(CurrentPlugin<'a>, &'a [Val], &'a mut [Val]) -> HostFuture<'a> + Send + Sync;

/// A host function's body: one that returns at once, or one that awaits.
#[derive(Clone)]
pub(crate) enum Body {
    Sync(Arc<Callback>),
    Async(Arc<AsyncCallback>),
}

/// A function the host offers to plug-ins.
#[derive(Clone)]
pub struct Function {
    pub(crate) name: String,
    pub(crate) namespace: String,
    pub(crate) params: Vec<ValType>,
    pub(crate) results: Vec<ValType>,
    pub(crate) body: Body,
}

impl std::fmt::Debug for Function {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Function({}::{})", self.namespace, self.name)
    }
}

impl Function {
    /// A host function named `name` with the given wasm parameter and result types (use [`PTR`]
    /// for Extism handles). `f` gets the calling plug-in, the arguments, the slots for results,
    /// and `user_data`. An `Err` fails the plug-in's call with that message.
    pub fn new<T, F>(
        name: impl Into<String>,
        params: impl IntoIterator<Item = ValType>,
        results: impl IntoIterator<Item = ValType>,
        user_data: UserData<T>,
        f: F,
    ) -> Function
    where
        T: Send + 'static,
        F: Fn(&mut CurrentPlugin<'_>, &[Val], &mut [Val], UserData<T>) -> anyhow::Result<()>
            + Send
            + Sync
            + 'static,
    {
        let body = Body::Sync(Arc::new(move |p, i, o| f(p, i, o, user_data.clone())));
        Function::with_body(name.into(), params, results, body)
    }

    /// An async host function: `f` returns a future, which the plug-in's call awaits while
    /// the plug-in itself waits, synchronously, in its import; the thread serves other tasks
    /// meanwhile. Plug-ins that import one are called with
    /// [`Plugin::call_async`](crate::Plugin::call_async). The future may use the calling
    /// plug-in (its memory, vars, config) across its awaits.
    pub fn new_async<T, F>(
        name: impl Into<String>,
        params: impl IntoIterator<Item = ValType>,
        results: impl IntoIterator<Item = ValType>,
        user_data: UserData<T>,
        f: F,
    ) -> Function
    where
        T: Send + 'static,
        F: for<'a> Fn(CurrentPlugin<'a>, &'a [Val], &'a mut [Val], UserData<T>) -> HostFuture<'a>
            + Send
            + Sync
            + 'static,
    {
        let body = Body::Async(Arc::new(move |p, i, o| f(p, i, o, user_data.clone())));
        Function::with_body(name.into(), params, results, body)
    }

    fn with_body(
        name: String,
        params: impl IntoIterator<Item = ValType>,
        results: impl IntoIterator<Item = ValType>,
        body: Body,
    ) -> Function {
        Function {
            name,
            namespace: DEFAULT_NAMESPACE.to_string(),
            params: params.into_iter().collect(),
            results: results.into_iter().collect(),
            body,
        }
    }

    /// Whether the function is async (made with [`Function::new_async`]).
    pub fn is_async(&self) -> bool {
        matches!(self.body, Body::Async(_))
    }

    /// The same function under another import namespace.
    pub fn with_namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// Moves the function to another import namespace.
    pub fn set_namespace(&mut self, namespace: impl Into<String>) {
        self.namespace = namespace.into();
    }

    /// The import name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The import namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Sets the results the callback may leave unset to zero, so that they read as zero
    /// instead of failing the call.
    fn zero_results(&self, results: &mut [Val]) {
        for (slot, ty) in results.iter_mut().zip(&self.results) {
            if let Some(zero) = Val::default_for_ty(ty) {
                *slot = zero;
            }
        }
    }

    /// Runs the callback so that neither its panic nor a bare error leaves the call unexplained.
    pub(crate) fn invoke(
        &self,
        caller: Caller<'_, StoreData>,
        params: &[Val],
        results: &mut [Val],
    ) -> wasmtime::Result<()> {
        let Body::Sync(callback) = &self.body else {
            return Err(Error::HostFunction {
                function: self.name.clone(),
                message: "this host function is async: call the plug-in with `call_async`".into(),
            }
            .into());
        };
        self.zero_results(results);
        let mut current = CurrentPlugin { caller };
        let outcome = catch_unwind(AssertUnwindSafe(|| callback(&mut current, params, results)));
        self.conclude(&current, outcome)
    }

    /// Awaits an async host function's future, with the same rules as [`Function::invoke`].
    pub(crate) async fn invoke_async<'a>(
        &self,
        caller: Caller<'a, StoreData>,
        params: &'a [Val],
        results: &'a mut [Val],
    ) -> wasmtime::Result<()> {
        let Body::Async(callback) = &self.body else {
            return self.invoke(caller, params, results);
        };
        self.zero_results(results);
        // The plug-in's view goes into the future; what the checks after it need is taken now.
        let (deadline, cancel) = {
            let d = caller.data();
            (d.deadline, d.cancel.clone())
        };
        let host = CatchUnwind(callback(CurrentPlugin { caller }, params, results));
        // `timeout_ms` covers the time a host function awaits, and a cancel stops it: its
        // future is dropped and the call fails, whatever it was waiting for.
        let outcome = until_stopped(host, deadline, &cancel).await?;
        if cancel.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(Interrupt::Cancelled.into());
        }
        if deadline.is_some_and(|t| Instant::now() >= t) {
            return Err(Interrupt::Timeout.into());
        }
        self.conclude_outcome(outcome)
    }

    /// The call's result from a host function's outcome, after the cancel and deadline
    /// checks.
    fn conclude(
        &self,
        current: &CurrentPlugin<'_>,
        outcome: std::thread::Result<anyhow::Result<()>>,
    ) -> wasmtime::Result<()> {
        // Plinth cannot stop a host function, so a cancel or deadline that came while it ran
        // is acted on as it returns, whatever it returned: otherwise the plug-in would run on
        // until wasm next checks, and a call could end late yet as a success.
        let d = current.caller.data();
        if d.cancelled() {
            return Err(Interrupt::Cancelled.into());
        }
        if d.deadline.is_some_and(|t| Instant::now() >= t) {
            return Err(Interrupt::Timeout.into());
        }
        self.conclude_outcome(outcome)
    }

    fn conclude_outcome(
        &self,
        outcome: std::thread::Result<anyhow::Result<()>>,
    ) -> wasmtime::Result<()> {
        let err = match outcome {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(e)) => match e.downcast::<Error>() {
                Ok(e @ (Error::Reentrant { .. } | Error::HostFunction { .. })) => e,
                Ok(e) => Error::HostFunction {
                    function: self.name.clone(),
                    message: e.to_string(),
                },
                Err(e) => Error::HostFunction {
                    function: self.name.clone(),
                    message: format!("{e:#}"),
                },
            },
            Err(panic) => Error::HostFunction {
                function: self.name.clone(),
                message: format!("panicked: {}", panic_message(&panic)),
            },
        };
        Err(err.into())
    }
}

/// A future that turns a panic while polling into an `Err`, as `catch_unwind` does for a call.
struct CatchUnwind<F>(F);

impl<F: Future + Unpin> Future for CatchUnwind<F> {
    type Output = std::thread::Result<F::Output>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = &mut self.0;
        match catch_unwind(AssertUnwindSafe(|| Pin::new(&mut *inner).poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(value)) => Poll::Ready(Ok(value)),
            Err(panic) => Poll::Ready(Err(panic)),
        }
    }
}

pub(crate) fn panic_message(p: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_string()
    }
}

/// A block of Extism memory: its handle (offset) and length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryHandle {
    /// The block's handle: its offset in Extism memory.
    pub offset: u64,
    /// The block's length in bytes.
    pub length: u64,
}

impl MemoryHandle {
    /// The null handle (offset 0), which names no block.
    pub fn null() -> Self {
        MemoryHandle {
            offset: 0,
            length: 0,
        }
    }
}

/// The plug-in that called a host function: its Extism memory, vars, config and the host
/// context of the current call.
pub struct CurrentPlugin<'a> {
    caller: Caller<'a, StoreData>,
}

impl CurrentPlugin<'_> {
    fn data(&self) -> &StoreData {
        self.caller.data()
    }

    fn data_mut(&mut self) -> &mut StoreData {
        self.caller.data_mut()
    }

    /// The plug-in's id, as used in its log lines.
    pub fn id(&self) -> &str {
        &self.data().plugin_id
    }

    /// How long the current call may still run before its `timeout_ms` ends it: zero once the
    /// deadline has passed, `None` when the call has no time limit.
    ///
    /// Plinth cannot interrupt a host function. One that waits (on the network, a lock, a
    /// child process) should wait at most this long, and give up early when
    /// [`is_cancelled`](Self::is_cancelled) turns true. Whatever it returns, a call whose host
    /// function returns past the deadline fails with [`Error::Timeout`], and one cancelled
    /// meanwhile with [`Error::Cancelled`].
    pub fn time_remaining(&self) -> Option<Duration> {
        self.data()
            .deadline
            .map(|t| t.saturating_duration_since(Instant::now()))
    }

    /// Whether the host has cancelled the current call (with a
    /// [`CancelHandle`](crate::CancelHandle)). A host function that waits should check it
    /// every so often and return early: the call fails with [`Error::Cancelled`] either way.
    pub fn is_cancelled(&self) -> bool {
        self.data().cancelled()
    }

    /// A new block of `n` bytes (zeroed).
    pub fn memory_alloc(&mut self, n: u64) -> Result<MemoryHandle, Error> {
        let offset = store::alloc(&mut self.caller, n).map_err(alloc_error(n))?;
        Ok(MemoryHandle { offset, length: n })
    }

    /// A new block holding `value` encoded.
    pub fn memory_new<'v, T: ToBytes<'v>>(&mut self, value: T) -> Result<MemoryHandle, Error> {
        let bytes = value.to_bytes()?;
        let bytes = bytes.as_ref();
        let offset =
            store::alloc_bytes(&mut self.caller, bytes).map_err(alloc_error(bytes.len() as u64))?;
        Ok(MemoryHandle {
            offset,
            length: bytes.len() as u64,
        })
    }

    /// Frees a block; a handle that names no block is ignored.
    pub fn memory_free(&mut self, handle: MemoryHandle) {
        store::free(&mut self.caller, handle.offset);
    }

    /// Length of the block starting at `offset`, 0 if there is none.
    pub fn memory_length(&self, offset: u64) -> u64 {
        self.data().arena.length(offset)
    }

    /// The handle of the block starting at `offset`, if it is an active block.
    pub fn memory_handle(&self, offset: u64) -> Option<MemoryHandle> {
        let length = self.memory_length(offset);
        (length > 0).then_some(MemoryHandle { offset, length })
    }

    /// The bytes of a block.
    pub fn memory_bytes(&self, handle: MemoryHandle) -> Result<&[u8], Error> {
        crate::abi::memory::range(store::bytes(&self.caller), handle.offset, handle.length)
            .ok_or_else(|| bad_handle(handle.offset))
    }

    /// The bytes of a block, writable.
    pub fn memory_bytes_mut(&mut self, handle: MemoryHandle) -> Result<&mut [u8], Error> {
        crate::abi::memory::range_mut(
            store::bytes_mut(&mut self.caller),
            handle.offset,
            handle.length,
        )
        .ok_or_else(|| bad_handle(handle.offset))
    }

    /// All of Extism memory: offsets into it are handles. For the C API.
    pub fn memory(&mut self) -> &mut [u8] {
        store::bytes_mut(&mut self.caller)
    }

    /// Decodes a block.
    pub fn memory_get<'s, T: FromBytes<'s>>(&'s self, handle: MemoryHandle) -> Result<T, Error> {
        Ok(T::from_bytes(self.memory_bytes(handle)?)?)
    }

    /// The block whose handle is in an i64 argument.
    pub fn memory_from_val(&self, val: &Val) -> Option<MemoryHandle> {
        match val {
            Val::I64(h) => self.memory_handle(*h as u64),
            _ => None,
        }
    }

    /// Decodes the block whose handle an argument holds. A 0 handle reads as empty input.
    pub fn memory_get_val<'s, T: FromBytes<'s>>(&'s self, val: &Val) -> Result<T, Error> {
        let handle = match val {
            Val::I64(0) => MemoryHandle::null(),
            Val::I64(h) => self
                .memory_handle(*h as u64)
                .ok_or_else(|| bad_handle(*h as u64))?,
            other => {
                return Err(Error::Memory(format!(
                    "expected an i64 memory handle argument, got {:?}",
                    other.ty(&self.caller)
                )))
            }
        };
        if handle.offset == 0 {
            return Ok(T::from_bytes(&[])?);
        }
        self.memory_get(handle)
    }

    /// Encodes `value` into a new block and puts its handle in a result slot.
    pub fn memory_set_val<'v, T: ToBytes<'v>>(
        &mut self,
        slot: &mut Val,
        value: T,
    ) -> Result<(), Error> {
        let h = self.memory_new(value)?;
        *slot = Val::I64(h.offset as i64);
        Ok(())
    }

    /// The context the host passed to this call, if it has type `T`.
    pub fn host_context<T: 'static>(&mut self) -> Option<&mut T> {
        self.data_mut().host_context.as_mut()?.downcast_mut::<T>()
    }

    /// A config value of the plug-in.
    pub fn config_get(&self, key: &str) -> Option<String> {
        self.data().config.read().unwrap().get(key).cloned()
    }

    /// A var of the plug-in.
    pub fn var_get(&self, key: &str) -> Option<Vec<u8>> {
        self.data().vars.map.get(key).cloned()
    }
}

/// The rest of Extism's `CurrentPlugin`: the var map itself and the call's error (for the
/// `plinth-extism` facade, and hosts that want them).
impl CurrentPlugin<'_> {
    /// The plug-in's vars.
    pub fn vars(&self) -> &std::collections::BTreeMap<String, Vec<u8>> {
        &self.data().vars.map
    }

    /// The plug-in's vars, writable. What the host stores here is not held to
    /// `memory.max_var_bytes`; the plug-in's own `var_set` counts it from then on.
    pub fn vars_mut(&mut self) -> &mut std::collections::BTreeMap<String, Vec<u8>> {
        let vars = &mut self.data_mut().vars;
        vars.recount = true;
        &mut vars.map
    }

    /// The error message block of the current call (set by the plug-in's `error_set` or by
    /// [`CurrentPlugin::set_error`]), if there is one.
    pub fn error(&self) -> Option<MemoryHandle> {
        self.memory_handle(self.data().error)
    }

    /// Sets the current call's error, as the plug-in's `error_set` does: the call fails with
    /// `message` once the plug-in returns. An empty message clears the error.
    pub fn set_error(&mut self, message: &str) -> Result<MemoryHandle, Error> {
        let handle = self.memory_new(message)?;
        self.data_mut().error = handle.offset;
        Ok(handle)
    }

    /// Clears the error the plug-in or a host function set during this call.
    pub fn clear_error(&mut self) {
        self.data_mut().error = 0;
    }
}

fn bad_handle(h: u64) -> Error {
    Error::Memory(format!("{h} is not the handle of an allocated block"))
}

fn alloc_error(n: u64) -> impl Fn(AllocError) -> Error {
    move |e| match e {
        AllocError::Budget => Error::Memory(format!(
            "cannot allocate {n} bytes: the plug-in's memory budget (memory.max_pages) is used up"
        )),
        AllocError::TooLarge => Error::Memory(format!("cannot allocate {n} bytes: too large")),
    }
}

/// Writes a host function that takes and returns encoded values instead of raw handles.
///
/// ```ignore
/// host_fn!(pub greet(user_data: (); name: String) -> String {
///     Ok(format!("Hello, {name}!"))
/// });
/// let f = Function::new("greet", [PTR], [PTR], UserData::default(), greet);
/// ```
///
/// With `async` first, the body may `.await` (and use `plugin`, the calling
/// [`CurrentPlugin`], across its awaits), and the function goes to [`Function::new_async`]:
///
/// ```ignore
/// host_fn!(async pub lookup(db: Db; key: String) -> String {
///     let db = db.get().lock().unwrap().clone();
///     Ok(db.get(&key).await?)
/// });
/// let f = Function::new_async("lookup", [PTR], [PTR], UserData::new(db), lookup);
/// ```
#[macro_export]
macro_rules! host_fn {
    (async $vis:vis $name:ident ($user_data:ident : $udty:ty $(; $arg:ident : $argty:ty)* $(;)?) -> $ret:ty $body:block) => {
        $vis fn $name<'a>(
            mut plugin: $crate::CurrentPlugin<'a>,
            inputs: &'a [$crate::Val],
            outputs: &'a mut [$crate::Val],
            $user_data: $crate::UserData<$udty>,
        ) -> $crate::HostFuture<'a> {
            ::std::boxed::Box::pin(async move {
                let mut _index = 0usize;
                $(
                    let $arg: $argty = {
                        let v = inputs.get(_index).ok_or_else(|| $crate::anyhow::anyhow!("missing argument `{}`", stringify!($arg)))?;
                        _index += 1;
                        plugin.memory_get_val::<$argty>(v)?
                    };
                )*
                let result: $crate::anyhow::Result<$ret> = async { $body }.await;
                let result = result?;
                if let Some(slot) = outputs.get_mut(0) {
                    plugin.memory_set_val(slot, result)?;
                }
                Ok(())
            })
        }
    };
    ($vis:vis $name:ident ($user_data:ident : $udty:ty $(; $arg:ident : $argty:ty)* $(;)?) -> $ret:ty $body:block) => {
        $vis fn $name(
            plugin: &mut $crate::CurrentPlugin<'_>,
            inputs: &[$crate::Val],
            outputs: &mut [$crate::Val],
            $user_data: $crate::UserData<$udty>,
        ) -> $crate::anyhow::Result<()> {
            let mut _index = 0usize;
            $(
                let $arg: $argty = {
                    let v = inputs.get(_index).ok_or_else(|| $crate::anyhow::anyhow!("missing argument `{}`", stringify!($arg)))?;
                    _index += 1;
                    plugin.memory_get_val::<$argty>(v)?
                };
            )*
            let result: $crate::anyhow::Result<$ret> = (move || $body)();
            let result = result?;
            if let Some(slot) = outputs.get_mut(0) {
                plugin.memory_set_val(slot, result)?;
            }
            Ok(())
        }
    };
}
