//! Plug-ins: creation (from bytes, a path, compiled or a precompiled artifact), calls, output,
//! errors and their kinds, config, cancel; precompiled artifacts and fresh calls of compiled
//! plug-ins.

use std::ffi::{c_char, c_void, CStr, CString};
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use runtime::{
    ArtifactKey, CancelHandle, CompiledPlugin, Error, ErrorKind, Plugin, PluginBuilder, Source,
};

use crate::buffer::hand_out;
use crate::function::{ExtismFunction, HostContext};
use crate::kind::{report, ARGUMENT};
use crate::slot::Slot;
use crate::{bytes_arg, guard, slice_arg, str_arg, ExtismSize};

/// A loaded plug-in.
pub struct ExtismPlugin {
    pub(crate) slot: Arc<Slot>,
    /// Answers `extism_plugin_function_exists` without waiting for a running call.
    compiled: CompiledPlugin,
    pub(crate) cancel: ExtismCancelHandle,
    id: [u8; 16],
    error: Mutex<Errors>,
    /// `plinth_plugin_set_output_limit`'s cap on a streaming call's output.
    pub(crate) output_limit: AtomicU64,
}

/// What `extism_plugin_error` returns, kept so that the pointer handed out stays valid until
/// the next call on the plug-in, whatever is done with the plug-in in between.
#[derive(Default)]
struct Errors {
    /// The last call's message and kind; only the next call replaces (and frees) them.
    call: Option<(CString, ErrorKind)>,
    shown: Shown,
}

#[derive(Default)]
enum Shown {
    #[default]
    Nothing,
    Call,
    /// Messages of calls other than `extism_plugin_call` are fixed text, so that they need no
    /// freeing either.
    Fixed(&'static CStr, ErrorKind),
}

/// A compiled plug-in from which plug-ins are made without compiling again.
pub struct ExtismCompiledPlugin {
    compiled: CompiledPlugin,
}

/// Cancels the running call of one plug-in, from any thread.
pub struct ExtismCancelHandle {
    pub(crate) handle: CancelHandle,
}

impl ExtismPlugin {
    fn new(plugin: Plugin) -> Box<ExtismPlugin> {
        let id = uuid::Uuid::parse_str(plugin.id())
            .map(|u| *u.as_bytes())
            .unwrap_or_default();
        let cancel = ExtismCancelHandle {
            handle: plugin.cancel_handle(),
        };
        Box::new(ExtismPlugin {
            compiled: plugin.compiled().clone(),
            slot: Slot::new(plugin),
            cancel,
            id,
            error: Mutex::new(Errors::default()),
            output_limit: AtomicU64::new(u64::MAX),
        })
    }

    fn errors(&self) -> std::sync::MutexGuard<'_, Errors> {
        self.error.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A call's outcome: frees the previous call's message.
    pub(crate) fn set_call_error(&self, error: Option<(String, ErrorKind)>) {
        let mut e = self.errors();
        e.call =
            error.map(|(m, kind)| (CString::new(m.replace('\0', " ")).unwrap_or_default(), kind));
        e.shown = if e.call.is_some() {
            Shown::Call
        } else {
            Shown::Nothing
        };
    }

    /// Another function's outcome: changes what `extism_plugin_error` shows, frees nothing.
    pub(crate) fn set_fixed_error(&self, error: Option<(&'static CStr, ErrorKind)>) {
        self.errors().shown = error.map_or(Shown::Nothing, |(m, kind)| Shown::Fixed(m, kind));
    }
}

/// Why a plug-in could not be made: a message and its kind.
pub(crate) type Failure = (String, ErrorKind);

pub(crate) fn failure(e: Error) -> Failure {
    (e.to_string(), e.kind())
}

pub(crate) fn bad_argument(message: impl Into<String>) -> Failure {
    (message.into(), ARGUMENT)
}

/// A path argument: any bytes but NUL on Unix, UTF-8 elsewhere.
unsafe fn path_arg(path: *const c_char) -> Result<PathBuf, Failure> {
    if path.is_null() {
        return Err(bad_argument("path is null"));
    }
    let bytes = CStr::from_ptr(path).to_bytes();
    if bytes.is_empty() {
        return Err(bad_argument("path is empty"));
    }
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        Ok(PathBuf::from(std::ffi::OsStr::from_bytes(bytes)))
    }
    #[cfg(not(unix))]
    {
        std::str::from_utf8(bytes)
            .map(PathBuf::from)
            .map_err(|_| bad_argument("path is not UTF-8"))
    }
}

/// The source of the `extism_*_new` functions: wasm, WAT or a manifest, as bytes.
unsafe fn bytes_source(wasm: *const u8, wasm_size: ExtismSize) -> Result<Source, Failure> {
    let bytes = bytes_arg(wasm, wasm_size).ok_or_else(|| {
        bad_argument("wasm is null, or wasm_size is larger than any buffer can be")
    })?;
    Ok(Source::Bytes(bytes.to_vec()))
}

/// The key of the artifact functions: at least 16 secret bytes (`ArtifactKey::new`).
unsafe fn key_arg(key: *const u8, key_size: ExtismSize) -> Result<ArtifactKey, Failure> {
    let bytes = bytes_arg(key, key_size)
        .ok_or_else(|| bad_argument("key is null, or key_size is larger than any buffer can be"))?;
    ArtifactKey::new(bytes.to_vec()).map_err(failure)
}

/// The builder of a precompiled artifact, verified under `key` when it is compiled.
unsafe fn artifact_builder(
    artifact: *const u8,
    artifact_size: ExtismSize,
    key: *const u8,
    key_size: ExtismSize,
) -> Result<PluginBuilder, Failure> {
    let bytes = bytes_arg(artifact, artifact_size).ok_or_else(|| {
        bad_argument("artifact is null, or artifact_size is larger than any buffer can be")
    })?;
    let key = key_arg(key, key_size)?;
    Ok(PluginBuilder::from_artifact(bytes.to_vec(), &key))
}

unsafe fn builder(
    source: Result<Source, Failure>,
    functions: *mut *const ExtismFunction,
    n_functions: ExtismSize,
    with_wasi: bool,
    fuel_limit: Option<u64>,
) -> Result<PluginBuilder, Failure> {
    configure(
        source.map(Plugin::builder),
        functions,
        n_functions,
        with_wasi,
        fuel_limit,
    )
}

/// Adds the host functions, WASI and the fuel limit of the creation functions to `base`.
unsafe fn configure(
    base: Result<PluginBuilder, Failure>,
    functions: *mut *const ExtismFunction,
    n_functions: ExtismSize,
    with_wasi: bool,
    fuel_limit: Option<u64>,
) -> Result<PluginBuilder, Failure> {
    let base = base?;
    let functions =
        slice_arg(functions as *const *const ExtismFunction, n_functions).ok_or_else(|| {
            bad_argument("functions is null, or n_functions is larger than any array can be")
        })?;
    let mut b = base.with_wasi(with_wasi);
    for (i, f) in functions.iter().enumerate() {
        let Some(f) = f.as_ref() else {
            return Err(bad_argument(format!("functions[{i}] is null")));
        };
        b = b.with_function(f.function.clone());
    }
    if let Some(fuel) = fuel_limit {
        b = b.with_fuel_limit(fuel);
    }
    Ok(b)
}

/// Compiles a plug-in from wasm, WAT or a manifest (JSON or TOML). Returns null on failure,
/// with a message in `*errmsg` to free with `extism_plugin_new_error_free`.
#[no_mangle]
pub unsafe extern "C" fn extism_compiled_plugin_new(
    wasm: *const u8,
    wasm_size: ExtismSize,
    functions: *mut *const ExtismFunction,
    n_functions: ExtismSize,
    with_wasi: bool,
    errmsg: *mut *mut c_char,
) -> *mut ExtismCompiledPlugin {
    new_compiled(
        || bytes_source(wasm, wasm_size),
        functions,
        n_functions,
        with_wasi,
        None,
        errmsg,
    )
}

/// Like `extism_compiled_plugin_new`; every call of a plug-in made from it may use at most
/// `fuel_limit` units of fuel.
#[no_mangle]
pub unsafe extern "C" fn extism_compiled_plugin_new_with_fuel_limit(
    wasm: *const u8,
    wasm_size: ExtismSize,
    functions: *mut *const ExtismFunction,
    n_functions: ExtismSize,
    with_wasi: bool,
    fuel_limit: u64,
    errmsg: *mut *mut c_char,
) -> *mut ExtismCompiledPlugin {
    new_compiled(
        || bytes_source(wasm, wasm_size),
        functions,
        n_functions,
        with_wasi,
        Some(fuel_limit),
        errmsg,
    )
}

/// Compiles the plug-in in the file at `path` (a C string): a wasm binary, WAT text or a
/// manifest (JSON or TOML), told apart by content. In a manifest file, relative `wasm` paths
/// and `allowed_paths` are relative to the manifest's folder, not to the working directory.
/// Returns null on failure, with a message in `*errmsg` (free it with
/// `extism_plugin_new_error_free`) whose kind `plinth_plugin_new_error_kind` gives.
#[no_mangle]
pub unsafe extern "C" fn plinth_compiled_plugin_new_from_file(
    path: *const c_char,
    functions: *mut *const ExtismFunction,
    n_functions: ExtismSize,
    with_wasi: bool,
    errmsg: *mut *mut c_char,
) -> *mut ExtismCompiledPlugin {
    new_compiled(
        || path_arg(path).map(Source::file),
        functions,
        n_functions,
        with_wasi,
        None,
        errmsg,
    )
}

unsafe fn new_compiled(
    source: impl FnOnce() -> Result<Source, Failure>,
    functions: *mut *const ExtismFunction,
    n_functions: ExtismSize,
    with_wasi: bool,
    fuel_limit: Option<u64>,
    errmsg: *mut *mut c_char,
) -> *mut ExtismCompiledPlugin {
    compile_from(
        || source().map(Plugin::builder),
        functions,
        n_functions,
        with_wasi,
        fuel_limit,
        errmsg,
    )
}

/// Shared by every `*compiled_plugin_new*` function: `base` is the builder of its source.
unsafe fn compile_from(
    base: impl FnOnce() -> Result<PluginBuilder, Failure>,
    functions: *mut *const ExtismFunction,
    n_functions: ExtismSize,
    with_wasi: bool,
    fuel_limit: Option<u64>,
    errmsg: *mut *mut c_char,
) -> *mut ExtismCompiledPlugin {
    guard(std::ptr::null_mut(), || {
        let compiled = configure(base(), functions, n_functions, with_wasi, fuel_limit)
            .and_then(|b| b.compile().map_err(failure));
        into_raw_or_report(
            compiled.map(|compiled| Box::new(ExtismCompiledPlugin { compiled })),
            errmsg,
        )
    })
}

/// Compiles a plug-in ahead of time into a precompiled artifact signed with `key` (at least 16
/// secret bytes; 32 random bytes are best), what `plinth compile` writes. The source is what
/// `extism_compiled_plugin_new` takes (wasm, WAT or a manifest whose main module is the only
/// one), with the host functions it imports and WASI on or off: they are checked as at load
/// time, and an artifact holds neither. Returns the artifact, `*artifact_size` bytes, to free
/// with `plinth_buffer_free`; on failure returns null, with `*artifact_size` 0 and a message
/// in `*errmsg` (free it with `extism_plugin_new_error_free`) whose kind
/// `plinth_plugin_new_error_kind` gives (`PLINTH_ERROR_KIND_ARTIFACT` for a key that is too
/// short, or a manifest of several modules).
///
/// Whoever holds the key can make artifacts that a host holding it runs as native code: keep
/// it as private as the host's own binaries.
#[no_mangle]
pub unsafe extern "C" fn plinth_compile_artifact(
    wasm: *const u8,
    wasm_size: ExtismSize,
    key: *const u8,
    key_size: ExtismSize,
    functions: *mut *const ExtismFunction,
    n_functions: ExtismSize,
    with_wasi: bool,
    artifact_size: *mut ExtismSize,
    errmsg: *mut *mut c_char,
) -> *mut u8 {
    guard(std::ptr::null_mut(), || {
        if artifact_size.is_null() {
            report(errmsg, "artifact_size is null".into(), ARGUMENT);
            return std::ptr::null_mut();
        }
        *artifact_size = 0;
        let made = key_arg(key, key_size).and_then(|key| {
            builder(
                bytes_source(wasm, wasm_size),
                functions,
                n_functions,
                with_wasi,
                None,
            )?
            .compile_artifact(&key)
            .map_err(failure)
        });
        match made {
            Ok(bytes) => {
                let (ptr, len) = hand_out(bytes);
                *artifact_size = len;
                ptr
            }
            Err((message, kind)) => {
                report(errmsg, message, kind);
                std::ptr::null_mut()
            }
        }
    })
}

/// Loads a precompiled artifact (from `plinth_compile_artifact` or `plinth compile`) without
/// compiling: its signature must verify under `key`, the key it was made with. The host
/// functions and WASI are those of `extism_compiled_plugin_new`. An artifact made by another
/// wasmtime version or with other engine settings is compiled from the wasm it holds instead,
/// with a warning (`plinth_compiled_plugin_is_precompiled` then says false). Returns null on
/// failure, with a message in `*errmsg` (free it with `extism_plugin_new_error_free`) whose
/// kind `plinth_plugin_new_error_kind` gives: `PLINTH_ERROR_KIND_ARTIFACT` for bytes that are
/// not an artifact, an artifact altered after it was made, or one signed with another key.
#[no_mangle]
pub unsafe extern "C" fn plinth_compiled_plugin_new_from_artifact(
    artifact: *const u8,
    artifact_size: ExtismSize,
    key: *const u8,
    key_size: ExtismSize,
    functions: *mut *const ExtismFunction,
    n_functions: ExtismSize,
    with_wasi: bool,
    errmsg: *mut *mut c_char,
) -> *mut ExtismCompiledPlugin {
    compile_from(
        || artifact_builder(artifact, artifact_size, key, key_size),
        functions,
        n_functions,
        with_wasi,
        None,
        errmsg,
    )
}

/// Whether the compiled plug-in's main module runs native code from a precompiled artifact
/// (false when it was compiled, also from an artifact made for another engine, and for null).
#[no_mangle]
pub unsafe extern "C" fn plinth_compiled_plugin_is_precompiled(
    compiled: *const ExtismCompiledPlugin,
) -> bool {
    guard(false, || {
        compiled
            .as_ref()
            .is_some_and(|c| c.compiled.is_precompiled())
    })
}

/// Calls `func_name` with `data` on a fresh instance of the compiled plug-in made for this call
/// alone, then frees it: nothing a call leaves behind (memory, globals, vars) is seen by the
/// next, which isolates requests or tenants from each other. With instance pooling (the
/// default) a fresh instance costs microseconds. May be called from any number of threads at
/// once.
///
/// Returns `EXTISM_SUCCESS` (0) on success, with the output in `*output`, `*output_len` bytes,
/// to free with `plinth_buffer_free` (`output` may be null when the output is not wanted). On
/// failure returns `extism_plugin_call`'s codes (the plug-in's own code, 134 for a trap, -1 for
/// a failure the host found), except that a plug-in that set an error and returned 0 gives -1:
/// 0 always means success. The message is in `*errmsg` (free it with
/// `extism_plugin_new_error_free`); `plinth_plugin_new_error_kind` gives its kind.
#[no_mangle]
pub unsafe extern "C" fn plinth_compiled_plugin_call_fresh(
    compiled: *const ExtismCompiledPlugin,
    func_name: *const c_char,
    data: *const u8,
    data_len: ExtismSize,
    output: *mut *mut u8,
    output_len: *mut ExtismSize,
    errmsg: *mut *mut c_char,
) -> i32 {
    plinth_compiled_plugin_call_fresh_with_host_context(
        compiled,
        func_name,
        data,
        data_len,
        std::ptr::null_mut(),
        output,
        output_len,
        errmsg,
    )
}

/// Like `plinth_compiled_plugin_call_fresh`; host functions reach `host_context` through
/// `extism_current_plugin_host_context` during this call.
#[no_mangle]
pub unsafe extern "C" fn plinth_compiled_plugin_call_fresh_with_host_context(
    compiled: *const ExtismCompiledPlugin,
    func_name: *const c_char,
    data: *const u8,
    data_len: ExtismSize,
    host_context: *mut c_void,
    output: *mut *mut u8,
    output_len: *mut ExtismSize,
    errmsg: *mut *mut c_char,
) -> i32 {
    guard(-1, || {
        if !output.is_null() {
            *output = std::ptr::null_mut();
        }
        if !output_len.is_null() {
            *output_len = 0;
        }
        let fail = |(message, kind): Failure| {
            report(errmsg, message, kind);
            -1
        };
        let Some(c) = compiled.as_ref() else {
            return fail(bad_argument("compiled plug-in is null"));
        };
        let Some(name) = str_arg(func_name) else {
            return fail(bad_argument("function name is null or not UTF-8"));
        };
        let Some(input) = bytes_arg(data, data_len) else {
            return fail(bad_argument(
                "data is null but data_len is not 0, or data_len is larger than any buffer can be",
            ));
        };
        let result = if host_context.is_null() {
            c.compiled.call_fresh::<&[u8], Vec<u8>>(name, input)
        } else {
            // What `call_fresh` does, with the host context handed to the call.
            c.compiled.instantiate().and_then(|mut plugin| {
                plugin.raw_call(name, input, Some(Box::new(HostContext(host_context))))?;
                Ok(plugin.output().to_vec())
            })
        };
        match result {
            Ok(out) => {
                let len = out.len() as ExtismSize;
                if !output.is_null() {
                    *output = hand_out(out).0;
                }
                if !output_len.is_null() {
                    *output_len = len;
                }
                0
            }
            Err(e) => {
                let code = match e.code() {
                    0 => -1,
                    code => code,
                };
                report(errmsg, e.to_string(), e.kind());
                code
            }
        }
    })
}

/// Frees a compiled plug-in. Plug-ins made from it stay usable.
#[no_mangle]
pub unsafe extern "C" fn extism_compiled_plugin_free(plugin: *mut ExtismCompiledPlugin) {
    guard((), || {
        if !plugin.is_null() {
            drop(Box::from_raw(plugin));
        }
    })
}

/// Loads a plug-in. Returns null on failure, with a message in `*errmsg`.
#[no_mangle]
pub unsafe extern "C" fn extism_plugin_new(
    wasm: *const u8,
    wasm_size: ExtismSize,
    functions: *mut *const ExtismFunction,
    n_functions: ExtismSize,
    with_wasi: bool,
    errmsg: *mut *mut c_char,
) -> *mut ExtismPlugin {
    new_plugin(
        || bytes_source(wasm, wasm_size),
        functions,
        n_functions,
        with_wasi,
        None,
        errmsg,
    )
}

/// Loads a plug-in whose every call may use at most `fuel_limit` units of fuel.
#[no_mangle]
pub unsafe extern "C" fn extism_plugin_new_with_fuel_limit(
    wasm: *const u8,
    wasm_size: ExtismSize,
    functions: *mut *const ExtismFunction,
    n_functions: ExtismSize,
    with_wasi: bool,
    fuel_limit: u64,
    errmsg: *mut *mut c_char,
) -> *mut ExtismPlugin {
    new_plugin(
        || bytes_source(wasm, wasm_size),
        functions,
        n_functions,
        with_wasi,
        Some(fuel_limit),
        errmsg,
    )
}

/// Loads the plug-in in the file at `path` (a C string): a wasm binary, WAT text or a manifest
/// (JSON or TOML), told apart by content. In a manifest file, relative `wasm` paths and
/// `allowed_paths` are relative to the manifest's folder, not to the working directory (as
/// the `plinth` command and every Plinth SDK load a path). Returns null on failure, with a
/// message in `*errmsg` (free it with `extism_plugin_new_error_free`) whose kind
/// `plinth_plugin_new_error_kind` gives: a file that cannot be read is
/// `PLINTH_ERROR_KIND_MANIFEST`.
#[no_mangle]
pub unsafe extern "C" fn plinth_plugin_new_from_file(
    path: *const c_char,
    functions: *mut *const ExtismFunction,
    n_functions: ExtismSize,
    with_wasi: bool,
    errmsg: *mut *mut c_char,
) -> *mut ExtismPlugin {
    new_plugin(
        || path_arg(path).map(Source::file),
        functions,
        n_functions,
        with_wasi,
        None,
        errmsg,
    )
}

/// Like `plinth_plugin_new_from_file`; every call may use at most `fuel_limit` units of fuel.
#[no_mangle]
pub unsafe extern "C" fn plinth_plugin_new_from_file_with_fuel_limit(
    path: *const c_char,
    functions: *mut *const ExtismFunction,
    n_functions: ExtismSize,
    with_wasi: bool,
    fuel_limit: u64,
    errmsg: *mut *mut c_char,
) -> *mut ExtismPlugin {
    new_plugin(
        || path_arg(path).map(Source::file),
        functions,
        n_functions,
        with_wasi,
        Some(fuel_limit),
        errmsg,
    )
}

/// A new plug-in instance from a compiled plug-in.
#[no_mangle]
pub unsafe extern "C" fn extism_plugin_new_from_compiled(
    compiled: *const ExtismCompiledPlugin,
    errmsg: *mut *mut c_char,
) -> *mut ExtismPlugin {
    guard(std::ptr::null_mut(), || {
        if compiled.is_null() {
            report(errmsg, "compiled plug-in is null".into(), ARGUMENT);
            return std::ptr::null_mut();
        }
        let plugin = (*compiled).compiled.instantiate().map_err(failure);
        finish_new(plugin, errmsg)
    })
}

/// Shared by the `extism_plugin_new` and `plinth_plugin_new_from_file` forms.
unsafe fn new_plugin(
    source: impl FnOnce() -> Result<Source, Failure>,
    functions: *mut *const ExtismFunction,
    n_functions: ExtismSize,
    with_wasi: bool,
    fuel_limit: Option<u64>,
    errmsg: *mut *mut c_char,
) -> *mut ExtismPlugin {
    guard(std::ptr::null_mut(), || {
        let plugin = builder(source(), functions, n_functions, with_wasi, fuel_limit)
            .and_then(|b| b.build().map_err(failure));
        finish_new(plugin, errmsg)
    })
}

unsafe fn finish_new(
    plugin: Result<Plugin, Failure>,
    errmsg: *mut *mut c_char,
) -> *mut ExtismPlugin {
    into_raw_or_report(plugin.map(ExtismPlugin::new), errmsg)
}

/// Hands a new object to C, or reports why there is none and returns null.
unsafe fn into_raw_or_report<T>(made: Result<Box<T>, Failure>, errmsg: *mut *mut c_char) -> *mut T {
    match made {
        Ok(b) => Box::into_raw(b),
        Err((message, kind)) => {
            report(errmsg, message, kind);
            std::ptr::null_mut()
        }
    }
}

/// Frees an error message from `extism_plugin_new` and friends.
#[no_mangle]
pub unsafe extern "C" fn extism_plugin_new_error_free(err: *mut c_char) {
    guard((), || {
        if !err.is_null() {
            crate::kind::forget(err);
            drop(CString::from_raw(err));
        }
    })
}

/// Frees a plug-in.
#[no_mangle]
pub unsafe extern "C" fn extism_plugin_free(plugin: *mut ExtismPlugin) {
    guard((), || {
        if !plugin.is_null() {
            drop(Box::from_raw(plugin));
        }
    })
}

/// Lets the plug-in read the headers of its HTTP responses.
#[no_mangle]
pub unsafe extern "C" fn extism_plugin_allow_http_response_headers(plugin: *mut ExtismPlugin) {
    guard((), || {
        if let Some(p) = plugin.as_ref() {
            let _ = p.slot.with("", |p| p.allow_http_response_headers());
        }
    })
}

/// The handle that cancels this plug-in's running call; valid while the plug-in lives.
#[no_mangle]
pub unsafe extern "C" fn extism_plugin_cancel_handle(
    plugin: *const ExtismPlugin,
) -> *const ExtismCancelHandle {
    guard(std::ptr::null(), || match plugin.as_ref() {
        Some(p) => &p.cancel as *const ExtismCancelHandle,
        None => std::ptr::null(),
    })
}

/// Cancels the running call (which then fails). Returns false for a null handle.
#[no_mangle]
pub unsafe extern "C" fn extism_plugin_cancel(handle: *const ExtismCancelHandle) -> bool {
    guard(false, || match handle.as_ref() {
        Some(h) => {
            h.handle.cancel();
            true
        }
        None => false,
    })
}

/// Updates config from a JSON object of strings; a `null` value removes the key. On failure,
/// returns false and `extism_plugin_error` says why; on success it returns null. Either way
/// the string an earlier `extism_plugin_error` returned stays valid until the next call.
#[no_mangle]
pub unsafe extern "C" fn extism_plugin_config(
    plugin: *mut ExtismPlugin,
    json: *const u8,
    json_size: ExtismSize,
) -> bool {
    guard(false, || {
        let Some(p) = plugin.as_ref() else {
            return false;
        };
        let Some(bytes) = bytes_arg(json, json_size) else {
            p.set_fixed_error(Some((
                c"config JSON is null but json_size is not 0",
                ARGUMENT,
            )));
            return false;
        };
        let parsed: Result<std::collections::BTreeMap<String, Option<String>>, _> =
            serde_json::from_slice(bytes);
        let Ok(changes) = parsed else {
            p.set_fixed_error(Some((
                c"config must be a JSON object of strings (a null value removes a key)",
                ARGUMENT,
            )));
            return false;
        };
        match p.slot.with("", |pl| pl.update_config(changes)) {
            Ok(()) => {
                p.set_fixed_error(None);
                true
            }
            Err((_, kind)) if kind == ErrorKind::Busy => {
                p.set_fixed_error(Some((
                    c"config cannot change while an async call (plinth_plugin_call_async) of the plug-in is queued or running; change it after that call's done callback",
                    kind,
                )));
                false
            }
            Err((_, kind)) => {
                p.set_fixed_error(Some((
                    c"config cannot change during a call of the plug-in on this thread",
                    kind,
                )));
                false
            }
        }
    })
}

/// Whether the plug-in exports a callable function of that name.
#[no_mangle]
pub unsafe extern "C" fn extism_plugin_function_exists(
    plugin: *mut ExtismPlugin,
    func_name: *const c_char,
) -> bool {
    guard(false, || {
        let (Some(p), Some(name)) = (plugin.as_ref(), str_arg(func_name)) else {
            return false;
        };
        p.compiled.function_exists(name)
    })
}

/// Calls a function. Returns `EXTISM_SUCCESS` (0) on success. On failure, with the message in
/// `extism_plugin_error`, returns what Extism returns: the plug-in's own return code when it
/// set an error or returned non-zero, the WASI exit code after `proc_exit`, 134 for a trap, and
/// -1 for a failure the host found (function not found, timeout, cancel, fuel, memory limit,
/// host function error, re-entrant call). docs/extism-compat.md lists the differences.
#[no_mangle]
pub unsafe extern "C" fn extism_plugin_call(
    plugin: *mut ExtismPlugin,
    func_name: *const c_char,
    data: *const u8,
    data_len: ExtismSize,
) -> i32 {
    extism_plugin_call_with_host_context(plugin, func_name, data, data_len, std::ptr::null_mut())
}

/// Like `extism_plugin_call`; host functions reach `host_context` through
/// `extism_current_plugin_host_context` during this call.
#[no_mangle]
pub unsafe extern "C" fn extism_plugin_call_with_host_context(
    plugin: *mut ExtismPlugin,
    func_name: *const c_char,
    data: *const u8,
    data_len: ExtismSize,
    host_context: *mut c_void,
) -> i32 {
    guard(-1, || {
        let Some(p) = plugin.as_ref() else { return -1 };
        let Some(name) = str_arg(func_name) else {
            p.set_call_error(Some(bad_argument("function name is null or not UTF-8")));
            return -1;
        };
        let Some(input) = bytes_arg(data, data_len) else {
            p.set_call_error(Some(bad_argument(
                "data is null but data_len is not 0, or data_len is larger than any buffer can be",
            )));
            return -1;
        };
        let context = HostContext(host_context);
        let result = p
            .slot
            .with(name, |pl| pl.raw_call(name, input, Some(Box::new(context))));
        match result {
            Ok(Ok(())) => {
                p.set_call_error(None);
                0
            }
            Ok(Err(e)) => {
                // Error::code is Extism's code: the guest's own, 134 for a trap, else -1.
                let code = e.code();
                p.set_call_error(Some(failure(e)));
                code
            }
            Err(refused) => {
                p.set_call_error(Some(refused));
                -1
            }
        }
    })
}

/// The last error of the plug-in (of its last call, or of a later `extism_plugin_config`), or
/// null when there is none. Valid until the next call on the plug-in; needs no freeing.
#[no_mangle]
pub unsafe extern "C" fn extism_plugin_error(plugin: *mut ExtismPlugin) -> *const c_char {
    guard(std::ptr::null(), || match plugin.as_ref() {
        Some(p) => {
            let e = p.errors();
            match (&e.shown, &e.call) {
                (Shown::Call, Some((c, _))) => c.as_ptr(),
                (Shown::Fixed(c, _), _) => c.as_ptr(),
                _ => std::ptr::null(),
            }
        }
        None => std::ptr::null(),
    })
}

/// The kind of the error `extism_plugin_error` shows (a `PLINTH_ERROR_KIND_*` number; its
/// name is `plinth_error_kind_name(kind)`), or `PLINTH_ERROR_KIND_NONE` (0) when it shows
/// none, as after a call that succeeded. -1 for a null plug-in.
#[no_mangle]
pub unsafe extern "C" fn plinth_plugin_error_kind(plugin: *const ExtismPlugin) -> i32 {
    guard(-1, || match plugin.as_ref() {
        Some(p) => {
            let e = p.errors();
            match (&e.shown, &e.call) {
                (Shown::Call, Some((_, kind))) | (Shown::Fixed(_, kind), _) => kind.number(),
                _ => crate::kind::PLINTH_ERROR_KIND_NONE,
            }
        }
        None => -1,
    })
}

/// Older name of `extism_plugin_error`.
#[no_mangle]
pub unsafe extern "C" fn extism_error(plugin: *mut ExtismPlugin) -> *const c_char {
    extism_plugin_error(plugin)
}

/// Length of the last call's output.
#[no_mangle]
pub unsafe extern "C" fn extism_plugin_output_length(plugin: *mut ExtismPlugin) -> ExtismSize {
    guard(0, || match plugin.as_ref() {
        Some(p) => p
            .slot
            .with("", |pl| pl.output().len() as ExtismSize)
            .unwrap_or(0),
        None => 0,
    })
}

/// The last call's output; valid until the next call on this plug-in.
#[no_mangle]
pub unsafe extern "C" fn extism_plugin_output_data(plugin: *mut ExtismPlugin) -> *const u8 {
    guard(std::ptr::null(), || match plugin.as_ref() {
        Some(p) => p
            .slot
            .with("", |pl| pl.output().as_ptr())
            .unwrap_or(std::ptr::null()),
        None => std::ptr::null(),
    })
}

/// Releases the plug-in's Extism memory (the last output included).
#[no_mangle]
pub unsafe extern "C" fn extism_plugin_reset(plugin: *mut ExtismPlugin) -> bool {
    guard(false, || match plugin.as_ref() {
        Some(p) => matches!(p.slot.with("", |pl| pl.reset()), Ok(Ok(()))),
        None => false,
    })
}

/// The plug-in's 16-byte id (a UUID), valid while the plug-in lives.
#[no_mangle]
pub unsafe extern "C" fn extism_plugin_id(plugin: *mut ExtismPlugin) -> *const u8 {
    guard(std::ptr::null(), || match plugin.as_ref() {
        Some(p) => p.id.as_ptr(),
        None => std::ptr::null(),
    })
}
