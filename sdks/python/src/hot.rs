//! `NativeHotPlugin`: `plinth::reload::HotPlugin` for Python, a plug-in that follows its file.
//! The Python `plinth.HotPlugin` wraps it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use plinth::reload::{HotPlugin, Reload};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use super::{collect_functions, exception, to_py_err, NativeFunction, HOST_ERROR};

/// The exception for a failed reload: the runtime keeps the error (shared) for
/// `last_error`, so it is read, not taken, unlike `to_py_err`'s.
fn reload_error(py: Python<'_>, err: &plinth::Error) -> Py<PyAny> {
    let kind = err.kind();
    let pyerr = exception(kind, err.to_string());
    let value = pyerr.value(py);
    let _ = value.setattr("code", err.code());
    let _ = value.setattr("kind", kind.name());
    let _ = value.setattr("kind_code", kind.number());
    value.clone().into_any().unbind()
}

/// A check's outcome as `(status, generation, error)`: status is `"unchanged"`,
/// `"swapped"` or `"failed"`; error is the exception of a failed reload.
type Outcome = (&'static str, u64, Option<Py<PyAny>>);

#[pyclass(module = "plinth._native", frozen)]
pub(crate) struct NativeHotPlugin {
    hot: Arc<HotPlugin>,
}

impl NativeHotPlugin {
    fn outcome(&self, py: Python<'_>, reload: Reload) -> Outcome {
        match reload {
            Reload::Unchanged => ("unchanged", self.hot.generation(), None),
            Reload::Swapped { generation } => ("swapped", generation, None),
            Reload::Failed(e) => ("failed", self.hot.generation(), Some(reload_error(py, &e))),
        }
    }
}

#[pymethods]
impl NativeHotPlugin {
    /// `check_interval`: seconds between the checks calls make (0: before every call),
    /// or None for none.
    #[new]
    #[pyo3(signature = (path, wasi, functions, fuel_limit, check_interval, require_exports))]
    fn new(
        py: Python<'_>,
        path: PathBuf,
        wasi: bool,
        functions: Vec<PyRef<'_, NativeFunction>>,
        fuel_limit: Option<u64>,
        check_interval: Option<f64>,
        require_exports: Vec<String>,
    ) -> PyResult<Self> {
        let interval = match check_interval {
            None => None,
            Some(s) => Some(Duration::try_from_secs_f64(s).map_err(|_| {
                PyValueError::new_err(format!(
                    "check_interval must be a number of seconds, 0 or more, or None; got {s}"
                ))
            })?),
        };
        let functions = collect_functions(&functions);
        if functions.iter().any(plinth::Function::is_async) {
            return Err(to_py_err(
                py,
                plinth::Error::Other(
                    "a HotPlugin is called synchronously: its host functions cannot be async"
                        .to_string(),
                ),
            ));
        }
        let configure = move |b: plinth::PluginBuilder| {
            let b = b.with_wasi(wasi).with_functions(functions.clone());
            match fuel_limit {
                Some(fuel) => b.with_fuel_limit(fuel),
                None => b,
            }
        };
        let hot = py
            .detach(|| {
                HotPlugin::open(path, configure)?
                    .with_check_interval(interval)
                    .require_exports(require_exports)
            })
            .map_err(|e| to_py_err(py, e))?;
        Ok(NativeHotPlugin { hot: Arc::new(hot) })
    }

    /// Calls `name` with `input` on the code loaded now (after a check if one is due); the GIL
    /// is released while the plug-in runs and while a due check compiles.
    #[pyo3(signature = (name, input, host_context=None))]
    fn call<'py>(
        &self,
        py: Python<'py>,
        name: &str,
        input: &[u8],
        host_context: Option<Py<PyAny>>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let hot = self.hot.clone();
        HOST_ERROR.with(|slot| slot.borrow_mut().take());
        let result = py.detach(|| match host_context {
            Some(ctx) => hot.call_with_host_context::<&[u8], Vec<u8>, _>(name, input, ctx),
            None => hot.call::<&[u8], Vec<u8>>(name, input),
        });
        match result {
            Ok(out) => Ok(PyBytes::new(py, &out)),
            Err(e) => Err(to_py_err(py, e)),
        }
    }

    /// Looks at the files now and swaps new code in if they changed.
    fn check(&self, py: Python<'_>) -> PyResult<Outcome> {
        let hot = self.hot.clone();
        let reload = py.detach(|| hot.check()).map_err(|e| to_py_err(py, e))?;
        Ok(self.outcome(py, reload))
    }

    /// Compiles and swaps in the files' current bytes even if they did not change.
    fn reload(&self, py: Python<'_>) -> PyResult<Outcome> {
        let hot = self.hot.clone();
        let reload = py.detach(|| hot.reload()).map_err(|e| to_py_err(py, e))?;
        Ok(self.outcome(py, reload))
    }

    #[getter]
    fn generation(&self) -> u64 {
        self.hot.generation()
    }

    #[getter]
    fn last_error(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.hot.last_error().map(|e| reload_error(py, &e))
    }

    #[getter]
    fn path(&self) -> PathBuf {
        self.hot.path().to_path_buf()
    }

    fn watched_files(&self) -> Vec<PathBuf> {
        self.hot.watched_files()
    }

    fn function_exists(&self, name: &str) -> bool {
        self.hot.function_exists(name)
    }

    fn functions(&self) -> Vec<String> {
        self.hot.compiled().functions()
    }

    fn var_get<'py>(&self, py: Python<'py>, key: &str) -> Option<Bound<'py, PyBytes>> {
        let hot = self.hot.clone();
        py.detach(|| hot.var_get(key)).map(|v| PyBytes::new(py, &v))
    }

    fn var_set(&self, py: Python<'_>, key: String, value: Option<Vec<u8>>) -> PyResult<()> {
        let hot = self.hot.clone();
        py.detach(|| hot.var_set(key, value.as_deref()))
            .map_err(|e| to_py_err(py, e))
    }
}
