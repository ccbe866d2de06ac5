//! Async calls on asyncio: `await plugin.call_async(..)` and `async def` host functions.
//!
//! A call runs as a future on the tokio runtime that pyo3-async-runtimes owns (with its task
//! locals: the caller's event loop and contextvars), through `Plugin::call_async`; its asyncio
//! future is resolved on the caller's event loop, and cancelling it drops the Rust future,
//! which cancels the plug-in call. An `async def` host
//! function is a `Function::new_async` whose future starts the coroutine on the caller's event
//! loop (in a copy of the caller's contextvars) and awaits its end through a done-callback and
//! a oneshot channel: no thread waits for Python. Python code runs on the event loop, while the
//! host function's `CurrentPlugin` stays in the future on a runtime worker, so the coroutine's
//! `CurrentPlugin` methods are requests that the future runs and answers. Dropping the future
//! (a timeout, a cancel) cancels the coroutine. For these steps the GIL is taken on tokio's
//! blocking threads, not on the workers that run plug-ins (a sync host function of an async
//! call does run on a worker, with the GIL: it is called synchronously by the guest).

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use plinth::{anyhow, CurrentPlugin, Function, UserData, Val, ValType};
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyTuple};
use pyo3_async_runtimes::TaskLocals;
use tokio::sync::{mpsc, oneshot};

use crate::{store_results, to_py_err, to_py_err_with_cause, type_name, val_to_py};

/// What a call's host functions need from the caller: its event loop and contextvars, its
/// host context, the plug-in it holds; and where a host function's exception waits to become
/// the `__cause__` of the call's HostFunctionError.
pub(crate) struct CallState {
    locals: TaskLocals,
    host_context: Option<Py<PyAny>>,
    host_error: Mutex<Option<PyErr>>,
    key: usize,
}

impl CallState {
    pub(crate) fn host_context(&self, py: Python<'_>) -> Py<PyAny> {
        self.host_context
            .as_ref()
            .map_or_else(|| py.None(), |c| c.clone_ref(py))
    }

    pub(crate) fn set_host_error(&self, err: PyErr) {
        *self.host_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(err);
    }
}

thread_local! {
    /// The async call being polled on this thread; its host functions run inside that poll
    /// (wasmtime runs the guest on a fiber of the polling thread). None inside a sync call.
    static CURRENT: RefCell<Option<Arc<CallState>>> = const { RefCell::new(None) };
}

/// The async call that the running host function belongs to, if any.
pub(crate) fn current_call() -> Option<Arc<CallState>> {
    CURRENT.with(|c| c.borrow().clone())
}

/// Runs `f` with `call` as this thread's current call, then restores the one before: a sync
/// call made by a host function of an async call is not part of that call.
pub(crate) fn with_call<R>(call: Option<Arc<CallState>>, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<Arc<CallState>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            CURRENT.with(|c| *c.borrow_mut() = self.0.take());
        }
    }
    let _restore = Restore(CURRENT.with(|c| c.replace(call)));
    f()
}

/// A call's future, polled as its call: the call is current and its plug-in held.
struct InCall<F> {
    call: Arc<CallState>,
    future: Pin<Box<F>>,
}

impl<F: Future> Future for InCall<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.get_mut();
        let key = this.call.key;
        let future = this.future.as_mut();
        with_call(Some(this.call.clone()), || {
            crate::shared::holding(key, || future.poll(cx))
        })
    }
}

/// The plug-ins whose async host function the current Python context runs in: a tuple of
/// keys, so that a call back into one of them is refused instead of waiting for ever.
fn held_var(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    static HELD: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    HELD.get_or_try_init(py, || {
        let var = py
            .import("contextvars")?
            .getattr("ContextVar")?
            .call1(("plinth_async_holding",))?;
        Ok::<_, PyErr>(var.unbind())
    })
    .map(|v| v.bind(py))
}

/// Starts an async call of the plug-in `key` (0: a fresh instance, which nothing can call
/// back into) from the running event loop: `call` is the plug-in call, run with the call's
/// state; returns the asyncio future of its output.
pub(crate) fn spawn_call<'py, F>(
    py: Python<'py>,
    key: usize,
    function: &str,
    host_context: Option<Py<PyAny>>,
    call: F,
) -> PyResult<Bound<'py, PyAny>>
where
    F: Future<Output = plinth::Result<Vec<u8>>> + Send + 'static,
{
    let var = held_var(py)?;
    let held = var.call_method1("get", (PyTuple::empty(py),))?;
    let held: Vec<usize> = held.extract()?;
    if key != 0 && held.contains(&key) {
        return Err(to_py_err(
            py,
            plinth::Error::Reentrant {
                function: function.to_string(),
            },
        ));
    }
    let locals = pyo3_async_runtimes::tokio::get_current_locals(py)?;
    if key != 0 {
        let mut now = held;
        now.push(key);
        // The context is the call's own copy: the caller's stays as it was.
        locals
            .context(py)
            .call_method1("run", (var.getattr("set")?, PyTuple::new(py, now)?))?;
    }
    let state = Arc::new(CallState {
        locals: locals.clone(),
        host_context,
        host_error: Mutex::new(None),
        key,
    });
    // Not pyo3-async-runtimes' future_into_py: its last Python step runs on a thread that
    // interpreter exit does not wait for (see `quiesce`).
    let event_loop = locals.event_loop(py);
    let future = event_loop.call_method0("create_future")?;
    let (cancel, cancelled) = oneshot::channel::<()>();
    future.call_method1(
        "add_done_callback",
        (OnDone {
            cancel: Mutex::new(Some(cancel)),
        },),
    )?;
    let (target, event_loop) = (future.clone().unbind(), event_loop.unbind());
    let runtime = pyo3_async_runtimes::tokio::get_runtime();
    let mut inner = runtime.spawn(InCall {
        call: state.clone(),
        future: Box::pin(call),
    });
    runtime.spawn(async move {
        let result = tokio::select! {
            result = &mut inner => result,
            // The asyncio future was cancelled (or dropped): dropping the call cancels it.
            _ = cancelled => {
                inner.abort();
                return;
            }
        };
        let result = result.unwrap_or_else(|e| {
            Err(plinth::Error::Other(format!(
                "the async call failed inside the runtime: {e}"
            )))
        });
        let cause = state
            .host_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        let _ = with_python(move |py| {
            let outcome = match result {
                Ok(out) => Ok(PyBytes::new(py, &out).into_any().unbind()),
                Err(err) => Err(to_py_err_with_cause(py, err, cause)),
            };
            let resolve = Resolve {
                future: target,
                outcome: Mutex::new(Some(outcome)),
            };
            // A closed loop has nobody waiting any more.
            let _ = event_loop.call_method1(py, "call_soon_threadsafe", (resolve,));
        })
        .await;
    });
    Ok(future)
}

/// The done-callback of a call's asyncio future: cancels the call if it is not over.
#[pyclass(module = "plinth._native", frozen)]
struct OnDone {
    cancel: Mutex<Option<oneshot::Sender<()>>>,
}

#[pymethods]
impl OnDone {
    fn __call__(&self, _future: &Bound<'_, PyAny>) {
        if let Some(cancel) = self.cancel.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = cancel.send(());
        }
    }
}

/// Sets a call's asyncio future on its event loop, unless it was cancelled meanwhile.
#[pyclass(module = "plinth._native", frozen)]
struct Resolve {
    future: Py<PyAny>,
    outcome: Mutex<Option<PyResult<Py<PyAny>>>>,
}

#[pymethods]
impl Resolve {
    fn __call__(&self, py: Python<'_>) -> PyResult<()> {
        let future = self.future.bind(py);
        let outcome = self
            .outcome
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if future.call_method0("done")?.is_truthy()? {
            return Ok(());
        }
        match outcome {
            Some(Ok(value)) => future.call_method1("set_result", (value,))?,
            Some(Err(err)) => future.call_method1("set_exception", (err.into_value(py),))?,
            None => return Ok(()),
        };
        Ok(())
    }
}

/// Runtime threads in (or about to enter) Python; interpreter exit waits for them.
static IN_PYTHON: AtomicUsize = AtomicUsize::new(0);

/// Counts a runtime thread's stay in Python, from before it asks for the GIL until after it
/// gave it back.
pub(crate) struct InPython(());

impl InPython {
    pub(crate) fn enter() -> Self {
        IN_PYTHON.fetch_add(1, Ordering::SeqCst);
        InPython(())
    }
}

impl Drop for InPython {
    fn drop(&mut self) {
        IN_PYTHON.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Waits (without the GIL, at most `timeout` seconds) until no runtime thread is in Python:
/// registered with `atexit`. A thread that asks for the GIL once the interpreter finalizes is
/// ended by CPython with `pthread_exit`, which aborts the process when it unwinds Rust frames;
/// a thread that has just scheduled a call's result on the event loop can be there.
#[pyfunction]
pub(crate) fn quiesce(py: Python<'_>, timeout: f64) {
    let end = Instant::now() + Duration::from_secs_f64(timeout.clamp(0.0, 60.0));
    py.detach(|| {
        while IN_PYTHON.load(Ordering::SeqCst) > 0 && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(1));
        }
    });
}

/// Runs `f` with the GIL on one of tokio's blocking threads, so that no worker waits for it.
async fn with_python<T: Send + 'static>(
    f: impl for<'py> FnOnce(Python<'py>) -> T + Send + 'static,
) -> PyResult<T> {
    let in_python = InPython::enter();
    tokio::task::spawn_blocking(move || {
        let _in_python = in_python;
        Python::attach(f)
    })
    .await
    .map_err(|e| PyRuntimeError::new_err(format!("a Python step of an async call failed: {e}")))
}

/// A request from a coroutine's `CurrentPlugin`, run by its host function's future.
type Request = Box<dyn for<'a> FnOnce(&mut CurrentPlugin<'a>) + Send>;

/// Where an async host function's requests go: `None` once its future is over.
type RequestSlot = Arc<Mutex<Option<mpsc::UnboundedSender<Request>>>>;

/// The sending side of an async host function's requests.
pub(crate) struct Requests(RequestSlot);

/// The receiving side, in the host function's future. When the future ends or is dropped (a
/// timeout, a cancel), the sending side is closed under its lock and the requests already
/// queued are dropped, so a thread waiting for an answer gets an error instead of waiting for
/// ever: a request is sent under the same lock, so none can land after the queue was drained.
struct Incoming {
    requests: mpsc::UnboundedReceiver<Request>,
    slot: RequestSlot,
}

impl Drop for Incoming {
    fn drop(&mut self) {
        self.slot.lock().unwrap_or_else(|p| p.into_inner()).take();
        self.requests.close();
        while self.requests.try_recv().is_ok() {}
    }
}

impl Requests {
    /// Runs `f` on the plug-in in the host function's future and waits for its answer (a
    /// memory copy once the future is polled), without the GIL.
    pub(crate) fn run<R: Send + 'static>(
        &self,
        py: Python<'_>,
        f: impl for<'a> FnOnce(&mut CurrentPlugin<'a>) -> R + Send + 'static,
    ) -> PyResult<R> {
        let (reply, answer) = std::sync::mpsc::sync_channel(1);
        let request: Request = Box::new(move |c| {
            let _ = reply.send(f(c));
        });
        // Either fails once the host function is over (its future dropped the receiver).
        let gone = || crate::PlinthError::new_err(crate::NO_LONGER_VALID);
        let sent = match &*self.0.lock().unwrap_or_else(|p| p.into_inner()) {
            Some(requests) => requests.send(request).is_ok(),
            None => false,
        };
        if !sent {
            return Err(gone());
        }
        py.detach(move || answer.recv()).map_err(|_| gone())
    }
}

/// A host function whose Python callback returns a coroutine.
pub(crate) fn async_function(
    name: String,
    params: Vec<ValType>,
    results: Vec<ValType>,
    callback: Py<PyAny>,
) -> Function {
    let callback = Arc::new(callback);
    let types: Arc<[ValType]> = results.clone().into();
    let fn_name: Arc<str> = name.clone().into();
    Function::new_async(
        name,
        params,
        results,
        UserData::new(()),
        move |current, inputs, outputs, _| {
            let call = current_call();
            let (callback, types, name) = (callback.clone(), types.clone(), fn_name.clone());
            Box::pin(async move {
                let call = call.ok_or_else(|| {
                    anyhow::anyhow!(
                        "host function `{name}` is async: call the plug-in with `await plugin.call_async(...)`"
                    )
                })?;
                run_coroutine(&name, callback, types, current, inputs, outputs, call).await
            })
        },
    )
}

/// What a host coroutine ended with.
type Outcome = PyResult<Py<PyAny>>;

/// A Python failure of a host function: the exception and its text for the runtime.
struct Raised {
    text: String,
    err: PyErr,
}

impl Raised {
    fn new(py: Python<'_>, err: PyErr) -> Self {
        Raised {
            text: format!("{}: {}", type_name(py, &err), err.value(py)),
            err,
        }
    }
}

async fn run_coroutine(
    name: &str,
    callback: Arc<Py<PyAny>>,
    types: Arc<[ValType]>,
    mut current: CurrentPlugin<'_>,
    inputs: &[Val],
    outputs: &mut [Val],
    call: Arc<CallState>,
) -> anyhow::Result<()> {
    let fail = |call: &CallState, raised: Raised| {
        call.set_host_error(raised.err);
        anyhow::Error::from(plinth::Error::HostFunction {
            function: name.to_string(),
            message: format!("raised {}", raised.text),
        })
    };
    let (requests, incoming) = mpsc::unbounded_channel::<Request>();
    let request_slot: RequestSlot = Arc::new(Mutex::new(Some(requests)));
    let mut incoming = Incoming {
        requests: incoming,
        slot: request_slot.clone(),
    };
    let (done_tx, mut done) = oneshot::channel::<Outcome>();
    let args = inputs.to_vec();
    let state = call.clone();
    // Armed before the coroutine starts: this future may be dropped while it starts.
    let running = CancelOnDrop::default();
    let slot = running.0.clone();
    let started = with_python(move |py| {
        start(
            py,
            &callback,
            &args,
            Requests(request_slot),
            &state,
            done_tx,
            &slot,
        )
        .map_err(|e| Raised::new(py, e))
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    if let Err(raised) = started {
        return Err(fail(&call, raised));
    }
    let outcome = loop {
        tokio::select! {
            biased;
            outcome = &mut done => break outcome,
            Some(request) = incoming.requests.recv() => request(&mut current),
        }
    };
    running.disarm();
    // Later uses of the coroutine's CurrentPlugin fail.
    drop(incoming);
    let values = with_python(move |py| {
        let value = outcome.unwrap_or_else(|_| {
            Err(PyRuntimeError::new_err(
                "the host function's coroutine was dropped before it finished",
            ))
        });
        let mut values: Vec<Val> = types.iter().map(zero).collect();
        value
            .and_then(|v| store_results(v.bind(py), &types, &mut values))
            .map(|()| values)
            .map_err(|e| Raised::new(py, e))
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    match values {
        Ok(values) => {
            for (slot, value) in outputs.iter_mut().zip(values) {
                *slot = value;
            }
            Ok(())
        }
        Err(raised) => Err(fail(&call, raised)),
    }
}

fn zero(ty: &ValType) -> Val {
    match ty {
        ValType::I32 => Val::I32(0),
        ValType::F32 => Val::F32(0),
        ValType::F64 => Val::F64(0),
        _ => Val::I64(0),
    }
}

/// Calls the callback and schedules its coroutine on the call's event loop; its end is sent
/// on `done`, and its `concurrent.futures.Future` goes to `running` to be cancelled.
fn start(
    py: Python<'_>,
    callback: &Py<PyAny>,
    inputs: &[Val],
    requests: Requests,
    call: &CallState,
    done: oneshot::Sender<Outcome>,
    running: &Mutex<Running>,
) -> PyResult<()> {
    let handle = Py::new(
        py,
        crate::NativeCurrentPlugin {
            access: crate::Access::Remote(requests),
            host_context: Some(call.host_context(py)),
        },
    )?;
    let mut args = vec![handle.into_any()];
    for v in inputs {
        args.push(val_to_py(py, v)?);
    }
    let coroutine = callback.bind(py).call1(PyTuple::new(py, args)?)?;
    // A copy per coroutine, as asyncio gives each task: the call's contextvars and the held
    // plug-ins, and no change leaks from one host call to the next.
    let context = call.locals.context(py).call_method0("copy")?;
    let schedule = py.import("asyncio")?.getattr("run_coroutine_threadsafe")?;
    let future = context.call_method1("run", (schedule, coroutine, call.locals.event_loop(py)))?;
    future.call_method1(
        "add_done_callback",
        (HostDone {
            done: Mutex::new(Some(done)),
        },),
    )?;
    let mut running = running.lock().unwrap_or_else(|p| p.into_inner());
    if running.dropped {
        // The host function's future was dropped while this ran.
        future.call_method0("cancel")?;
    } else {
        running.future = Some(future.unbind());
    }
    Ok(())
}

/// The done-callback of a host coroutine: sends its result or exception to the host
/// function's future.
#[pyclass(module = "plinth._native", frozen)]
struct HostDone {
    done: Mutex<Option<oneshot::Sender<Outcome>>>,
}

#[pymethods]
impl HostDone {
    fn __call__(&self, future: &Bound<'_, PyAny>) {
        let outcome = future.call_method0("result").map(Bound::unbind);
        if let Some(done) = self.done.lock().unwrap_or_else(|p| p.into_inner()).take() {
            // The host function may be gone already (a timeout, a cancel).
            let _ = done.send(outcome);
        }
    }
}

/// A host coroutine's future once started; whether its host function's future is gone.
#[derive(Default)]
struct Running {
    future: Option<Py<PyAny>>,
    dropped: bool,
}

/// Cancels a host coroutine whose host function's future is dropped before it ends.
#[derive(Default)]
struct CancelOnDrop(Arc<Mutex<Running>>);

impl CancelOnDrop {
    /// The coroutine ended: nothing to cancel.
    fn disarm(self) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .future
            .take();
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        let future = {
            let mut running = self.0.lock().unwrap_or_else(|p| p.into_inner());
            running.dropped = true;
            running.future.take()
        };
        if let Some(future) = future {
            let in_python = InPython::enter();
            pyo3_async_runtimes::tokio::get_runtime().spawn_blocking(move || {
                let _in_python = in_python;
                Python::attach(|py| {
                    // The loop may be closed already; then the coroutine is gone with it.
                    let _ = future.call_method0(py, "cancel");
                })
            });
        }
    }
}
