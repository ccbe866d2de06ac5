//! `plinth._native`: the PyO3 layer under the `plinth` Python package. The package's Python
//! code (python/plinth/__init__.py) turns Python values into bytes, paths and manifests; this
//! layer owns the plug-ins (a path loads through `plinth::Source::file`, with its rule for a
//! manifest file's relative paths), shares them between threads and async calls (`shared.rs`),
//! releases the GIL while guest code runs, and maps errors to exceptions by
//! `plinth::Error::kind`. Async calls and `async def` host functions are in `aio.rs`.

mod aio;
mod hot;
mod shared;
mod stream;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::thread::ThreadId;

use plinth::{
    ArtifactKey, CompiledPlugin, CurrentPlugin, ErrorKind, Function, PluginBuilder, Source,
    UserData, Val, ValType,
};
use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};

use shared::Shared;

create_exception!(plinth, PlinthError, PyException, "Base class of every error Plinth raises. `code` is the call's return code (the guest's own code, 134 for a trap, else -1); `kind` is the name of the kind of failure and `kind_code` its number, the same in every Plinth SDK (`plinth.ERROR_KINDS`).");
create_exception!(plinth, LoadError, PlinthError, "The plug-in could not be loaded: a missing file, bad wasm, bad manifest, hash mismatch, missing import, failed start-up, a refused precompiled artifact.");
create_exception!(
    plinth,
    FunctionNotFoundError,
    PlinthError,
    "The plug-in has no callable export of that name."
);
create_exception!(plinth, CallError, PlinthError, "The plug-in reported a failure (its own error message and code), or exited with a non-zero code.");
create_exception!(
    plinth,
    TrapError,
    PlinthError,
    "The plug-in trapped (unreachable, out-of-bounds access, ...). Code 134."
);
create_exception!(
    plinth,
    PluginTimeoutError,
    PlinthError,
    "The call ran longer than the manifest's `timeout_ms`."
);
create_exception!(
    plinth,
    CancelledError,
    PlinthError,
    "The call was cancelled through a `CancelHandle`."
);
create_exception!(
    plinth,
    OutOfMemoryError,
    PlinthError,
    "The plug-in went over its memory budget (`memory.max_pages`)."
);
create_exception!(
    plinth,
    OutOfFuelError,
    PlinthError,
    "The call used up its fuel (`fuel_limit`)."
);
create_exception!(
    plinth,
    HostFunctionError,
    PlinthError,
    "A host function failed; `__cause__` holds the Python exception it raised, if any."
);
create_exception!(
    plinth,
    ReentrantCallError,
    PlinthError,
    "A host function tried to call back into the plug-in that called it."
);
create_exception!(
    plinth,
    HttpError,
    PlinthError,
    "An HTTP request of the plug-in was denied or failed."
);
create_exception!(plinth, ClosedError, PlinthError, "The plug-in was closed.");
create_exception!(
    plinth,
    StreamError,
    PlinthError,
    "A streaming call failed: its input or output raised (the exception is the `__cause__`), the output went over `output_limit`, or the input was too large for a plug-in that does not stream."
);

thread_local! {
    /// The Python exception a host function raised during the call running on this thread;
    /// becomes the `__cause__` of the HostFunctionError the call raises.
    static HOST_ERROR: RefCell<Option<PyErr>> = const { RefCell::new(None) };
}

/// The exception class for a kind of failure.
fn exception(kind: ErrorKind, message: String) -> PyErr {
    match kind {
        // A non-callable export was a load error before kinds existed; it stays one.
        k if k.is_load() || k == ErrorKind::NotCallable => LoadError::new_err(message),
        ErrorKind::FunctionNotFound => FunctionNotFoundError::new_err(message),
        ErrorKind::Guest | ErrorKind::Exit => CallError::new_err(message),
        ErrorKind::Trap => TrapError::new_err(message),
        ErrorKind::Timeout => PluginTimeoutError::new_err(message),
        ErrorKind::Cancelled => CancelledError::new_err(message),
        ErrorKind::OutOfMemory => OutOfMemoryError::new_err(message),
        ErrorKind::OutOfFuel => OutOfFuelError::new_err(message),
        ErrorKind::HostFunction => HostFunctionError::new_err(message),
        ErrorKind::Reentrant => ReentrantCallError::new_err(message),
        ErrorKind::HttpDenied | ErrorKind::Http => HttpError::new_err(message),
        ErrorKind::Closed => ClosedError::new_err(message),
        ErrorKind::Stream => StreamError::new_err(message),
        _ => PlinthError::new_err(message),
    }
}

/// The exception for a runtime error: its class follows `err.kind()`, and it carries `code`,
/// `kind` (the kind's name) and `kind_code` (its number).
fn to_py_err(py: Python<'_>, err: plinth::Error) -> PyErr {
    let cause = match err.kind() {
        ErrorKind::HostFunction => HOST_ERROR.with(|slot| slot.borrow_mut().take()),
        _ => None,
    };
    to_py_err_with_cause(py, err, cause)
}

/// [`to_py_err`] with the Python exception a host function raised, if any, as `__cause__`.
fn to_py_err_with_cause(py: Python<'_>, err: plinth::Error, cause: Option<PyErr>) -> PyErr {
    let kind = err.kind();
    let message = match kind {
        // The runtime's text speaks of threads; here the holder is usually a call_async.
        ErrorKind::Busy => "the plug-in is busy with a call_async: await that call first (waiting here could block the event loop the call needs)".to_string(),
        _ => err.to_string(),
    };
    let pyerr = exception(kind, message);
    let value = pyerr.value(py);
    // Setting attributes on a fresh exception instance cannot fail in practice; if it did, the
    // exception would still carry its message.
    let _ = value.setattr("code", err.code());
    let _ = value.setattr("kind", kind.name());
    let _ = value.setattr("kind_code", kind.number());
    if kind == ErrorKind::HostFunction {
        if let Some(cause) = cause {
            pyerr.set_cause(py, Some(cause));
        }
    }
    pyerr
}

fn parse_type(name: &str) -> PyResult<ValType> {
    Ok(match name {
        "i32" => ValType::I32,
        "i64" => ValType::I64,
        "f32" => ValType::F32,
        "f64" => ValType::F64,
        other => {
            return Err(PyValueError::new_err(format!(
                "unknown wasm type {other:?}: use \"i32\", \"i64\", \"f32\" or \"f64\" (handles are \"i64\")"
            )))
        }
    })
}

/// A host function: a Python callable the plug-in may import.
#[pyclass(module = "plinth._native", frozen)]
struct NativeFunction {
    function: Function,
}

#[pymethods]
impl NativeFunction {
    /// `callback(current_plugin, *args)` returns None, one value, or a tuple/list of values;
    /// with `is_async` it returns a coroutine that gives them, run on the caller's event loop.
    #[new]
    #[pyo3(signature = (name, namespace, params, results, callback, is_async=false))]
    fn new(
        name: String,
        namespace: String,
        params: Vec<String>,
        results: Vec<String>,
        callback: Py<PyAny>,
        is_async: bool,
    ) -> PyResult<Self> {
        let params = params
            .iter()
            .map(|p| parse_type(p))
            .collect::<PyResult<Vec<_>>>()?;
        let result_types = results
            .iter()
            .map(|r| parse_type(r))
            .collect::<PyResult<Vec<_>>>()?;
        let function = if is_async {
            aio::async_function(name, params, result_types, callback)
        } else {
            let types = result_types.clone();
            let fn_name = name.clone();
            Function::new(
                name,
                params,
                result_types,
                UserData::new(()),
                move |current, inputs, outputs, _| {
                    run_callback(&fn_name, &callback, &types, current, inputs, outputs)
                },
            )
        };
        Ok(NativeFunction {
            function: function.with_namespace(namespace),
        })
    }

    #[getter]
    fn name(&self) -> &str {
        self.function.name()
    }

    #[getter]
    fn namespace(&self) -> &str {
        self.function.namespace()
    }

    #[getter]
    fn is_async(&self) -> bool {
        self.function.is_async()
    }
}

/// Runs the Python callback of a host function with the GIL held. A Python exception is kept
/// for the call's error and reported to the runtime as a plain failure.
fn run_callback(
    name: &str,
    callback: &Py<PyAny>,
    types: &[ValType],
    current: &mut CurrentPlugin<'_>,
    inputs: &[Val],
    outputs: &mut [Val],
) -> plinth::anyhow::Result<()> {
    // Inside a call_async this runs on a runtime worker; the call's state comes with it.
    let call = aio::current_call();
    let _in_python = call.is_some().then(aio::InPython::enter);
    Python::attach(|py| {
        let handle = Py::new(
            py,
            NativeCurrentPlugin {
                access: Access::Local {
                    ptr: Mutex::new(Some(current as *mut CurrentPlugin<'_> as usize)),
                    thread: std::thread::current().id(),
                },
                host_context: call.as_ref().map(|c| c.host_context(py)),
            },
        )
        .map_err(|e| plinth::anyhow::anyhow!("{e}"))?;
        let result = (|| -> PyResult<()> {
            let mut args = vec![handle.clone_ref(py).into_any()];
            for v in inputs {
                args.push(val_to_py(py, v)?);
            }
            let args = PyTuple::new(py, args)?;
            let ret = callback.bind(py).call1(args)?;
            store_results(&ret, types, outputs)
        })();
        // The CurrentPlugin object may outlive the callback; it must not reach the store then.
        if let Access::Local { ptr, .. } = &handle.get().access {
            *ptr.lock().unwrap_or_else(|p| p.into_inner()) = None;
        }
        match result {
            Ok(()) => Ok(()),
            Err(err) => {
                let text = format!("{}: {}", type_name(py, &err), err.value(py));
                match &call {
                    Some(call) => call.set_host_error(err),
                    None => HOST_ERROR.with(|slot| *slot.borrow_mut() = Some(err)),
                }
                Err(plinth::Error::HostFunction {
                    function: name.to_string(),
                    message: format!("raised {text}"),
                }
                .into())
            }
        }
    })
}

fn type_name(py: Python<'_>, err: &PyErr) -> String {
    err.get_type(py)
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "Exception".to_string())
}

fn val_to_py(py: Python<'_>, v: &Val) -> PyResult<Py<PyAny>> {
    Ok(match v {
        Val::I32(x) => x.into_pyobject(py)?.into_any().unbind(),
        Val::I64(x) => x.into_pyobject(py)?.into_any().unbind(),
        Val::F32(x) => f32::from_bits(*x).into_pyobject(py)?.into_any().unbind(),
        Val::F64(x) => f64::from_bits(*x).into_pyobject(py)?.into_any().unbind(),
        other => {
            return Err(PyTypeError::new_err(format!(
                "unsupported argument type {other:?}"
            )))
        }
    })
}

fn store_results(ret: &Bound<'_, PyAny>, types: &[ValType], outputs: &mut [Val]) -> PyResult<()> {
    let values: Vec<Bound<'_, PyAny>> = if ret.is_none() {
        Vec::new()
    } else if ret.is_instance_of::<PyTuple>() || ret.is_instance_of::<PyList>() {
        ret.try_iter()?.collect::<PyResult<_>>()?
    } else {
        vec![ret.clone()]
    };
    if !values.is_empty() && values.len() != types.len() {
        return Err(PyValueError::new_err(format!(
            "the host function returned {} value(s) but declares {} result(s)",
            values.len(),
            types.len()
        )));
    }
    for ((slot, ty), value) in outputs.iter_mut().zip(types).zip(&values) {
        *slot = match ty {
            ValType::I32 => Val::I32(value.extract::<i64>()? as i32),
            ValType::I64 => Val::I64(value.extract::<i64>()?),
            ValType::F32 => Val::F32((value.extract::<f64>()? as f32).to_bits()),
            ValType::F64 => Val::F64(value.extract::<f64>()?.to_bits()),
            _ => return Err(PyTypeError::new_err("unsupported result type")),
        };
    }
    Ok(())
}

/// How a [`NativeCurrentPlugin`] reaches the plug-in.
enum Access {
    /// A sync host function's: the `CurrentPlugin` on the calling thread's stack, usable only
    /// on that thread while the callback runs. The address of a `*mut CurrentPlugin`, cleared
    /// before the callback's frame ends.
    Local {
        ptr: Mutex<Option<usize>>,
        thread: ThreadId,
    },
    /// An async host function's: the `CurrentPlugin` stays in the host function's future on a
    /// runtime worker, which runs each request and answers; usable from any thread until the
    /// coroutine ends.
    Remote(aio::Requests),
}

/// The plug-in that called a host function. Valid only while that host function runs.
#[pyclass(module = "plinth._native", name = "CurrentPlugin", frozen)]
struct NativeCurrentPlugin {
    access: Access,
    /// The call's host context when the runtime does not hold it (async calls).
    host_context: Option<Py<PyAny>>,
}

const NO_LONGER_VALID: &str =
    "this CurrentPlugin is no longer valid: it may only be used while its host function runs";

impl NativeCurrentPlugin {
    /// Runs `f` on the plug-in, wherever it is (see [`Access`]).
    fn with<R: Send + 'static>(
        &self,
        py: Python<'_>,
        f: impl for<'a> FnOnce(&mut CurrentPlugin<'a>) -> R + Send + 'static,
    ) -> PyResult<R> {
        match &self.access {
            Access::Local { .. } => self.with_local(f),
            Access::Remote(requests) => requests.run(py, f),
        }
    }

    fn with_local<R>(&self, f: impl FnOnce(&mut CurrentPlugin<'_>) -> R) -> PyResult<R> {
        let Access::Local { ptr, thread } = &self.access else {
            return Err(PlinthError::new_err(NO_LONGER_VALID));
        };
        if std::thread::current().id() != *thread {
            return Err(PlinthError::new_err(
                "a CurrentPlugin can only be used on the thread of the host function that received it",
            ));
        }
        let guard = ptr.lock().unwrap_or_else(|p| p.into_inner());
        let Some(addr) = *guard else {
            return Err(PlinthError::new_err(NO_LONGER_VALID));
        };
        // SAFETY: the address was set from a live `&mut CurrentPlugin` by `run_callback`, which
        // clears it before returning; we are on that thread, inside that callback, and the lock
        // keeps two uses from overlapping.
        let current = unsafe { &mut *(addr as *mut CurrentPlugin<'_>) };
        Ok(f(current))
    }
}

#[pymethods]
impl NativeCurrentPlugin {
    /// The bytes of the block with this handle (0 reads as empty).
    fn read_bytes<'py>(&self, py: Python<'py>, handle: i64) -> PyResult<Bound<'py, PyBytes>> {
        let bytes = self
            .with(py, move |c| {
                c.memory_get_val::<&[u8]>(&Val::I64(handle))
                    .map(<[u8]>::to_vec)
            })?
            .map_err(|e| to_py_err(py, e))?;
        Ok(PyBytes::new(py, &bytes))
    }

    /// The block with this handle, decoded as UTF-8.
    fn read_string(&self, py: Python<'_>, handle: i64) -> PyResult<String> {
        self.with(py, move |c| c.memory_get_val::<String>(&Val::I64(handle)))?
            .map_err(|e| to_py_err(py, e))
    }

    /// A new block holding `text` as UTF-8; returns its handle.
    fn write_string(&self, py: Python<'_>, text: String) -> PyResult<i64> {
        self.with(py, move |c| {
            c.memory_new(text.as_str()).map(|h| h.offset as i64)
        })?
        .map_err(|e| to_py_err(py, e))
    }

    /// A new block holding `data`; returns its handle.
    fn write_bytes(&self, py: Python<'_>, data: &[u8]) -> PyResult<i64> {
        let data = data.to_vec();
        self.with(py, move |c| {
            c.memory_new(data.as_slice()).map(|h| h.offset as i64)
        })?
        .map_err(|e| to_py_err(py, e))
    }

    /// A new zeroed block of `n` bytes; returns its handle.
    fn alloc(&self, py: Python<'_>, n: u64) -> PyResult<i64> {
        self.with(py, move |c| c.memory_alloc(n).map(|h| h.offset as i64))?
            .map_err(|e| to_py_err(py, e))
    }

    fn free(&self, py: Python<'_>, handle: i64) -> PyResult<()> {
        self.with(py, move |c| {
            if let Some(h) = c.memory_handle(handle as u64) {
                c.memory_free(h);
            }
        })
    }

    /// The length of the block with this handle, 0 if there is none.
    fn length(&self, py: Python<'_>, handle: i64) -> PyResult<u64> {
        self.with(py, move |c| c.memory_length(handle as u64))
    }

    /// The object passed as `host_context` to the current call, or None.
    #[getter]
    fn host_context(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        if let Some(context) = &self.host_context {
            return Ok(context.clone_ref(py));
        }
        match &self.access {
            Access::Local { .. } => self.with_local(|c| {
                c.host_context::<Py<PyAny>>()
                    .map(|o| o.clone_ref(py))
                    .unwrap_or_else(|| py.None())
            }),
            Access::Remote(_) => Ok(py.None()),
        }
    }

    fn config_get(&self, py: Python<'_>, key: String) -> PyResult<Option<String>> {
        self.with(py, move |c| c.config_get(&key))
    }

    fn var_get<'py>(&self, py: Python<'py>, key: String) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let value = self.with(py, move |c| c.var_get(&key))?;
        Ok(value.map(|v| PyBytes::new(py, &v)))
    }

    #[getter]
    fn plugin_id(&self, py: Python<'_>) -> PyResult<String> {
        self.with(py, |c| c.id().to_string())
    }
}

fn collect_functions(functions: &[PyRef<'_, NativeFunction>]) -> Vec<Function> {
    functions.iter().map(|f| f.function.clone()).collect()
}

fn any_async(functions: &[PyRef<'_, NativeFunction>]) -> bool {
    functions.iter().any(|f| f.function.is_async())
}

/// The error of a sync call on a plug-in with async host functions.
fn sync_call_refused(py: Python<'_>) -> PyErr {
    to_py_err(
        py,
        plinth::Error::Other(
            "this plug-in has async host functions: call it with `await plugin.call_async(...)`"
                .to_string(),
        ),
    )
}

/// What the Python layer loads from: `bytes` (wasm, WAT or a manifest) or a path (`str` or
/// `os.PathLike`), which loads through `Source::file`, so that a manifest file's relative
/// paths are relative to its folder.
fn source(source: &Bound<'_, PyAny>) -> PyResult<Source> {
    if let Ok(bytes) = source.cast::<PyBytes>() {
        return Ok(Source::Bytes(bytes.as_bytes().to_vec()));
    }
    match source.extract::<PathBuf>() {
        Ok(path) => Ok(Source::file(path)),
        Err(_) => Err(PyTypeError::new_err(format!(
            "a plug-in source is bytes or a path, not {}",
            source.get_type().name()?
        ))),
    }
}

fn builder(
    source: Source,
    wasi: bool,
    functions: &[PyRef<'_, NativeFunction>],
    fuel_limit: Option<u64>,
    output_limit: Option<u64>,
) -> plinth::PluginBuilder {
    configure(
        plinth::Plugin::builder(source),
        wasi,
        functions,
        fuel_limit,
        output_limit,
    )
}

/// Adds the load options every constructor takes to `b`.
fn configure(
    b: PluginBuilder,
    wasi: bool,
    functions: &[PyRef<'_, NativeFunction>],
    fuel_limit: Option<u64>,
    output_limit: Option<u64>,
) -> PluginBuilder {
    let mut b = b
        .with_wasi(wasi)
        .with_functions(collect_functions(functions));
    if let Some(fuel) = fuel_limit {
        b = b.with_fuel_limit(fuel);
    }
    if let Some(bytes) = output_limit {
        b = b.with_output_limit(bytes);
    }
    b
}

/// A compiled plug-in: cheap to instantiate many times, safe to share between threads.
#[pyclass(module = "plinth._native", frozen)]
struct NativeCompiled {
    compiled: CompiledPlugin,
    has_async: bool,
}

#[pymethods]
impl NativeCompiled {
    #[new]
    #[pyo3(signature = (source, wasi, functions, fuel_limit, output_limit=None))]
    fn new(
        py: Python<'_>,
        source: &Bound<'_, PyAny>,
        wasi: bool,
        functions: Vec<PyRef<'_, NativeFunction>>,
        fuel_limit: Option<u64>,
        output_limit: Option<u64>,
    ) -> PyResult<Self> {
        let b = builder(
            self::source(source)?,
            wasi,
            &functions,
            fuel_limit,
            output_limit,
        );
        let compiled = py.detach(|| b.compile()).map_err(|e| to_py_err(py, e))?;
        Ok(NativeCompiled {
            compiled,
            has_async: any_async(&functions),
        })
    }

    /// Loads a precompiled artifact without compiling; it must verify under `key`.
    #[staticmethod]
    #[pyo3(signature = (artifact, key, wasi, functions, fuel_limit, output_limit=None))]
    fn from_artifact(
        py: Python<'_>,
        artifact: &[u8],
        key: &[u8],
        wasi: bool,
        functions: Vec<PyRef<'_, NativeFunction>>,
        fuel_limit: Option<u64>,
        output_limit: Option<u64>,
    ) -> PyResult<Self> {
        let key = ArtifactKey::new(key).map_err(|e| to_py_err(py, e))?;
        let b = configure(
            PluginBuilder::from_artifact(artifact, &key),
            wasi,
            &functions,
            fuel_limit,
            output_limit,
        );
        let compiled = py.detach(|| b.compile()).map_err(|e| to_py_err(py, e))?;
        Ok(NativeCompiled {
            compiled,
            has_async: any_async(&functions),
        })
    }

    /// Compiles a plug-in ahead of time into an artifact signed with `key`.
    #[staticmethod]
    #[pyo3(signature = (source, key, wasi, functions, fuel_limit))]
    fn compile_artifact<'py>(
        py: Python<'py>,
        source: &Bound<'_, PyAny>,
        key: &[u8],
        wasi: bool,
        functions: Vec<PyRef<'_, NativeFunction>>,
        fuel_limit: Option<u64>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let key = ArtifactKey::new(key).map_err(|e| to_py_err(py, e))?;
        let b = builder(self::source(source)?, wasi, &functions, fuel_limit, None);
        let artifact = py
            .detach(|| b.compile_artifact(&key))
            .map_err(|e| to_py_err(py, e))?;
        Ok(PyBytes::new(py, &artifact))
    }

    /// Whether the main module's native code came from a precompiled artifact.
    #[getter]
    fn is_precompiled(&self) -> bool {
        self.compiled.is_precompiled()
    }

    /// Calls `name` on a fresh instance made for this call alone (`CompiledPlugin::call_fresh`),
    /// without the GIL while the plug-in runs.
    #[pyo3(signature = (name, input, host_context=None))]
    fn call_fresh<'py>(
        &self,
        py: Python<'py>,
        name: &str,
        input: &[u8],
        host_context: Option<Py<PyAny>>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        if self.has_async {
            return Err(sync_call_refused(py));
        }
        let compiled = self.compiled.clone();
        HOST_ERROR.with(|slot| slot.borrow_mut().take());
        let result = py.detach(|| {
            aio::with_call(None, || match host_context {
                // `call_fresh` takes no host context: the same steps, with one.
                Some(ctx) => compiled.instantiate().and_then(|mut p| {
                    p.call_with_host_context::<&[u8], &[u8], _>(name, input, ctx)
                        .map(<[u8]>::to_vec)
                }),
                None => compiled.call_fresh::<&[u8], Vec<u8>>(name, input),
            })
        });
        match result {
            Ok(out) => Ok(PyBytes::new(py, &out)),
            Err(e) => Err(to_py_err(py, e)),
        }
    }

    /// `call_fresh` as an asyncio future, through `Plugin::call_async`: many run at once.
    #[pyo3(signature = (name, input, host_context=None))]
    fn call_fresh_async<'py>(
        &self,
        py: Python<'py>,
        name: String,
        input: &[u8],
        host_context: Option<Py<PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let compiled = self.compiled.clone();
        let input = input.to_vec();
        aio::spawn_call(py, 0, &name.clone(), host_context, async move {
            let mut plugin = compiled.instantiate()?;
            plugin.call_async::<Vec<u8>>(&name, &input).await
        })
    }

    fn instantiate(&self, py: Python<'_>) -> PyResult<NativePlugin> {
        let compiled = self.compiled.clone();
        let plugin = py
            .detach(|| plinth::Plugin::from_compiled(&compiled))
            .map_err(|e| to_py_err(py, e))?;
        Ok(NativePlugin::wrap(plugin, self.has_async))
    }

    fn functions(&self) -> Vec<String> {
        self.compiled.functions()
    }
}

/// Stops a running call from any thread.
#[pyclass(module = "plinth._native", name = "CancelHandle", frozen)]
struct NativeCancelHandle {
    handle: plinth::CancelHandle,
}

#[pymethods]
impl NativeCancelHandle {
    /// Cancels the call in progress (it raises CancelledError); does nothing when none runs.
    fn cancel(&self) {
        self.handle.cancel();
    }
}

/// A plug-in instance. Calls from several threads and asyncio tasks take turns (`Shared`);
/// after `close` every use fails with the runtime's `Error::Closed`.
#[pyclass(module = "plinth._native", frozen)]
struct NativePlugin {
    plugin: Shared,
    id: String,
}

impl NativePlugin {
    fn wrap(plugin: plinth::Plugin, has_async: bool) -> Self {
        NativePlugin {
            id: plugin.id().to_string(),
            plugin: Shared::new(plugin, has_async),
        }
    }

    /// A clone to move into a call made without the GIL.
    fn shared(&self) -> Shared {
        self.plugin.clone()
    }

    fn open(&self, py: Python<'_>) -> PyResult<()> {
        if self.plugin.is_closed() {
            return Err(to_py_err(py, plinth::Error::Closed));
        }
        Ok(())
    }
}

#[pymethods]
impl NativePlugin {
    #[new]
    #[pyo3(signature = (source, wasi, functions, fuel_limit, output_limit=None))]
    fn new(
        py: Python<'_>,
        source: &Bound<'_, PyAny>,
        wasi: bool,
        functions: Vec<PyRef<'_, NativeFunction>>,
        fuel_limit: Option<u64>,
        output_limit: Option<u64>,
    ) -> PyResult<Self> {
        let b = builder(
            self::source(source)?,
            wasi,
            &functions,
            fuel_limit,
            output_limit,
        );
        let plugin = py.detach(|| b.build()).map_err(|e| to_py_err(py, e))?;
        Ok(NativePlugin::wrap(plugin, any_async(&functions)))
    }

    /// Calls `name` with `input`; returns the output bytes. The GIL is released while the
    /// plug-in runs.
    #[pyo3(signature = (name, input, host_context=None))]
    fn call<'py>(
        &self,
        py: Python<'py>,
        name: &str,
        input: &[u8],
        host_context: Option<Py<PyAny>>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        if self.plugin.has_async() {
            return Err(sync_call_refused(py));
        }
        let shared = self.shared();
        HOST_ERROR.with(|slot| slot.borrow_mut().take());
        let result = py.detach(|| {
            shared.with(|p| match host_context {
                Some(ctx) => p
                    .call_with_host_context::<&[u8], &[u8], _>(name, input, ctx)
                    .map(<[u8]>::to_vec),
                None => p.call::<&[u8], &[u8]>(name, input).map(<[u8]>::to_vec),
            })
        });
        match result {
            Ok(out) => Ok(PyBytes::new(py, &out)),
            Err(e) => Err(to_py_err(py, e)),
        }
    }

    /// Calls `name` with `input` and `output` as its streams (`Plugin::call_stream`): the GIL
    /// is released while the plug-in runs and taken for each read and write. Returns
    /// `(input_bytes, output_bytes)`.
    #[pyo3(signature = (name, input, output, host_context=None))]
    fn call_stream(
        &self,
        py: Python<'_>,
        name: &str,
        input: &Bound<'_, PyAny>,
        output: &Bound<'_, PyAny>,
        host_context: Option<Py<PyAny>>,
    ) -> PyResult<(u64, u64)> {
        if self.plugin.has_async() {
            return Err(sync_call_refused(py));
        }
        let mut reader = stream::PyReader::new(input)?;
        let mut writer = stream::PyWriter::new(output)?;
        let shared = self.shared();
        HOST_ERROR.with(|slot| slot.borrow_mut().take());
        let result = py.detach(|| {
            shared.with(|p| match host_context {
                Some(ctx) => p.call_stream_with_host_context(name, &mut reader, &mut writer, ctx),
                None => p.call_stream(name, &mut reader, &mut writer),
            })
        });
        let cause = reader.take_error().or_else(|| writer.take_error());
        match result {
            Ok(stats) => Ok((stats.input_bytes, stats.output_bytes)),
            Err(e) => Err(stream::with_cause(py, to_py_err(py, e), cause)),
        }
    }

    /// Calls `name` with `input` through `Plugin::call_async`; returns an asyncio future of
    /// the output bytes. Calls on one plug-in take turns, in order.
    #[pyo3(signature = (name, input, host_context=None))]
    fn call_async<'py>(
        &self,
        py: Python<'py>,
        name: String,
        input: &[u8],
        host_context: Option<Py<PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.open(py)?;
        let shared = self.shared();
        let input = input.to_vec();
        let turn = shared.queue();
        aio::spawn_call(
            py,
            shared.key(),
            &name.clone(),
            host_context,
            shared.call_async(turn, name, input),
        )
    }

    // The exports are the compiled plug-in's: no need to wait for a running call.
    fn function_exists(&self, py: Python<'_>, name: &str) -> PyResult<bool> {
        self.open(py)?;
        Ok(self.plugin.compiled().function_exists(name))
    }

    fn functions(&self, py: Python<'_>) -> PyResult<Vec<String>> {
        self.open(py)?;
        Ok(self.plugin.compiled().functions())
    }

    /// Sets (str) or removes (None) config keys; takes effect from the next call.
    fn update_config(
        &self,
        py: Python<'_>,
        changes: BTreeMap<String, Option<String>>,
    ) -> PyResult<()> {
        let shared = self.shared();
        py.detach(|| {
            shared.with(|p| {
                p.update_config(changes);
                Ok(())
            })
        })
        .map_err(|e| to_py_err(py, e))
    }

    fn config(&self, py: Python<'_>) -> PyResult<BTreeMap<String, String>> {
        let shared = self.shared();
        py.detach(|| shared.with(|p| Ok(p.config())))
            .map_err(|e| to_py_err(py, e))
    }

    fn var_get<'py>(&self, py: Python<'py>, key: &str) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let shared = self.shared();
        let value = py
            .detach(|| shared.with(|p| Ok(p.var_get(key).map(<[u8]>::to_vec))))
            .map_err(|e| to_py_err(py, e))?;
        Ok(value.map(|v| PyBytes::new(py, &v)))
    }

    #[pyo3(signature = (key, value))]
    fn var_set(&self, py: Python<'_>, key: String, value: Option<Vec<u8>>) -> PyResult<()> {
        let shared = self.shared();
        py.detach(|| shared.with(|p| p.var_set(key, value.as_deref())))
            .map_err(|e| to_py_err(py, e))
    }

    /// Frees the plug-in's Extism memory from earlier calls.
    fn reset(&self, py: Python<'_>) -> PyResult<()> {
        let shared = self.shared();
        py.detach(|| shared.with(|p| p.reset()))
            .map_err(|e| to_py_err(py, e))
    }

    fn cancel_handle(&self, py: Python<'_>) -> PyResult<NativeCancelHandle> {
        self.open(py)?;
        Ok(NativeCancelHandle {
            handle: self.plugin.cancel_handle(),
        })
    }

    #[getter]
    fn id(&self) -> &str {
        &self.id
    }

    #[getter]
    fn closed(&self) -> bool {
        self.plugin.is_closed()
    }

    /// Closes the plug-in without waiting: later uses raise ClosedError; a call running on
    /// another thread finishes and the instance is freed after it.
    fn close(&self) {
        self.plugin.close();
    }
}

/// Every kind of failure as `(number, name)`, in number order: `plinth::ErrorKind`.
#[pyfunction]
fn error_kinds() -> Vec<(i32, &'static str)> {
    ErrorKind::ALL
        .into_iter()
        .map(|k| (k.number(), k.name()))
        .collect()
}

/// The version of the plinth runtime this package carries.
#[pyfunction]
fn runtime_version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    // The runtime of async calls, made at the first one. At least two workers: a coroutine's
    // CurrentPlugin request waits for a worker to poll its host function.
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get().max(2));
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime
        .worker_threads(workers)
        .thread_name("plinth-async")
        .enable_all();
    pyo3_async_runtimes::tokio::init(runtime);
    m.add_class::<NativePlugin>()?;
    m.add_class::<NativeCompiled>()?;
    m.add_class::<NativeFunction>()?;
    m.add_class::<NativeCurrentPlugin>()?;
    m.add_class::<NativeCancelHandle>()?;
    m.add_class::<hot::NativeHotPlugin>()?;
    m.add_function(wrap_pyfunction!(runtime_version, m)?)?;
    m.add_function(wrap_pyfunction!(error_kinds, m)?)?;
    m.add_function(wrap_pyfunction!(aio::quiesce, m)?)?;
    m.add("PlinthError", py.get_type::<PlinthError>())?;
    m.add("LoadError", py.get_type::<LoadError>())?;
    m.add(
        "FunctionNotFoundError",
        py.get_type::<FunctionNotFoundError>(),
    )?;
    m.add("CallError", py.get_type::<CallError>())?;
    m.add("TrapError", py.get_type::<TrapError>())?;
    m.add("PluginTimeoutError", py.get_type::<PluginTimeoutError>())?;
    m.add("CancelledError", py.get_type::<CancelledError>())?;
    m.add("OutOfMemoryError", py.get_type::<OutOfMemoryError>())?;
    m.add("OutOfFuelError", py.get_type::<OutOfFuelError>())?;
    m.add("HostFunctionError", py.get_type::<HostFunctionError>())?;
    m.add("ReentrantCallError", py.get_type::<ReentrantCallError>())?;
    m.add("HttpError", py.get_type::<HttpError>())?;
    m.add("ClosedError", py.get_type::<ClosedError>())?;
    m.add("StreamError", py.get_type::<StreamError>())?;
    Ok(())
}
