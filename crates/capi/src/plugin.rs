//! Plug-ins: creation (from bytes or compiled), calls, output, errors, config, cancel.

use std::ffi::{c_char, c_void, CStr, CString};
use std::sync::Mutex;

use runtime::{CancelHandle, CompiledPlugin, Plugin, PluginBuilder, SharedPlugin};

use crate::function::{ExtismFunction, HostContext};
use crate::{bytes_arg, guard, slice_arg, str_arg, ExtismSize};

/// A loaded plug-in.
pub struct ExtismPlugin {
    plugin: SharedPlugin,
    cancel: ExtismCancelHandle,
    id: [u8; 16],
    error: Mutex<Errors>,
}

/// What `extism_plugin_error` returns, kept so that the pointer handed out stays valid until
/// the next call on the plug-in, whatever is done with the plug-in in between.
#[derive(Default)]
struct Errors {
    /// The last call's message; only the next call replaces (and frees) it.
    call: Option<CString>,
    shown: Shown,
}

#[derive(Default)]
enum Shown {
    #[default]
    Nothing,
    Call,
    /// Messages of calls other than `extism_plugin_call` are fixed text, so that they need no
    /// freeing either.
    Fixed(&'static CStr),
}

/// A compiled plug-in from which plug-ins are made without compiling again.
pub struct ExtismCompiledPlugin {
    compiled: CompiledPlugin,
}

/// Cancels the running call of one plug-in, from any thread.
pub struct ExtismCancelHandle {
    handle: CancelHandle,
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
            plugin: SharedPlugin::new(plugin),
            cancel,
            id,
            error: Mutex::new(Errors::default()),
        })
    }

    fn errors(&self) -> std::sync::MutexGuard<'_, Errors> {
        self.error.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A call's outcome: frees the previous call's message.
    fn set_call_error(&self, message: Option<String>) {
        let mut e = self.errors();
        e.call = message.map(|m| CString::new(m.replace('\0', " ")).unwrap_or_default());
        e.shown = if e.call.is_some() {
            Shown::Call
        } else {
            Shown::Nothing
        };
    }

    /// Another function's outcome: changes what `extism_plugin_error` shows, frees nothing.
    fn set_fixed_error(&self, message: Option<&'static CStr>) {
        self.errors().shown = message.map_or(Shown::Nothing, Shown::Fixed);
    }
}

/// Writes `message` to `*errmsg` (when `errmsg` is not null) for the caller to free with
/// `extism_plugin_new_error_free`.
unsafe fn report(errmsg: *mut *mut c_char, message: String) {
    if !errmsg.is_null() {
        let c = CString::new(message.replace('\0', " ")).unwrap_or_default();
        *errmsg = c.into_raw();
    }
}

unsafe fn builder(
    wasm: *const u8,
    wasm_size: ExtismSize,
    functions: *mut *const ExtismFunction,
    n_functions: ExtismSize,
    with_wasi: bool,
    fuel_limit: Option<u64>,
) -> Result<PluginBuilder, String> {
    let bytes = bytes_arg(wasm, wasm_size)
        .ok_or("wasm is null, or wasm_size is larger than any buffer can be")?;
    let functions = slice_arg(functions as *const *const ExtismFunction, n_functions)
        .ok_or("functions is null, or n_functions is larger than any array can be")?;
    let mut b = Plugin::builder(bytes).with_wasi(with_wasi);
    for (i, f) in functions.iter().enumerate() {
        let Some(f) = f.as_ref() else {
            return Err(format!("functions[{i}] is null"));
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
        wasm,
        wasm_size,
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
        wasm,
        wasm_size,
        functions,
        n_functions,
        with_wasi,
        Some(fuel_limit),
        errmsg,
    )
}

unsafe fn new_compiled(
    wasm: *const u8,
    wasm_size: ExtismSize,
    functions: *mut *const ExtismFunction,
    n_functions: ExtismSize,
    with_wasi: bool,
    fuel_limit: Option<u64>,
    errmsg: *mut *mut c_char,
) -> *mut ExtismCompiledPlugin {
    guard(std::ptr::null_mut(), || {
        let compiled = builder(
            wasm,
            wasm_size,
            functions,
            n_functions,
            with_wasi,
            fuel_limit,
        )
        .and_then(|b| b.compile().map_err(|e| e.to_string()));
        into_raw_or_report(
            compiled.map(|compiled| Box::new(ExtismCompiledPlugin { compiled })),
            errmsg,
        )
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
        wasm,
        wasm_size,
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
        wasm,
        wasm_size,
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
            report(errmsg, "compiled plug-in is null".into());
            return std::ptr::null_mut();
        }
        let plugin = (*compiled)
            .compiled
            .instantiate()
            .map_err(|e| e.to_string());
        finish_new(plugin, errmsg)
    })
}

/// Shared by the two `extism_plugin_new` forms.
unsafe fn new_plugin(
    wasm: *const u8,
    wasm_size: ExtismSize,
    functions: *mut *const ExtismFunction,
    n_functions: ExtismSize,
    with_wasi: bool,
    fuel_limit: Option<u64>,
    errmsg: *mut *mut c_char,
) -> *mut ExtismPlugin {
    guard(std::ptr::null_mut(), || {
        let plugin = builder(
            wasm,
            wasm_size,
            functions,
            n_functions,
            with_wasi,
            fuel_limit,
        )
        .and_then(|b| b.build().map_err(|e| e.to_string()));
        finish_new(plugin, errmsg)
    })
}

unsafe fn finish_new(
    plugin: Result<Plugin, String>,
    errmsg: *mut *mut c_char,
) -> *mut ExtismPlugin {
    into_raw_or_report(plugin.map(ExtismPlugin::new), errmsg)
}

/// Hands a new object to C, or reports why there is none and returns null.
unsafe fn into_raw_or_report<T>(made: Result<Box<T>, String>, errmsg: *mut *mut c_char) -> *mut T {
    match made {
        Ok(b) => Box::into_raw(b),
        Err(e) => {
            report(errmsg, e);
            std::ptr::null_mut()
        }
    }
}

/// Frees an error message from `extism_plugin_new` and friends.
#[no_mangle]
pub unsafe extern "C" fn extism_plugin_new_error_free(err: *mut c_char) {
    guard((), || {
        if !err.is_null() {
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
            let _ = p.plugin.with(|p| {
                p.allow_http_response_headers();
                Ok(())
            });
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
            p.set_fixed_error(Some(c"config JSON is null but json_size is not 0"));
            return false;
        };
        let parsed: Result<std::collections::BTreeMap<String, Option<String>>, _> =
            serde_json::from_slice(bytes);
        let Ok(changes) = parsed else {
            p.set_fixed_error(Some(
                c"config must be a JSON object of strings (a null value removes a key)",
            ));
            return false;
        };
        let r = p.plugin.with(|pl| {
            pl.update_config(changes);
            Ok(())
        });
        match r {
            Ok(()) => {
                p.set_fixed_error(None);
                true
            }
            Err(_) => {
                p.set_fixed_error(Some(
                    c"config cannot change during a call of the plug-in on this thread",
                ));
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
        p.plugin
            .with(|pl| Ok(pl.function_exists(name)))
            .unwrap_or(false)
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
            p.set_call_error(Some("function name is null or not UTF-8".into()));
            return -1;
        };
        let Some(input) = bytes_arg(data, data_len) else {
            p.set_call_error(Some(
                "data is null but data_len is not 0, or data_len is larger than any buffer can be"
                    .into(),
            ));
            return -1;
        };
        let context = HostContext(host_context);
        let result = p
            .plugin
            .with(|pl| pl.raw_call(name, input, Some(Box::new(context))));
        match result {
            Ok(()) => {
                p.set_call_error(None);
                0
            }
            Err(e) => {
                // Error::code is Extism's code: the guest's own, 134 for a trap, else -1.
                p.set_call_error(Some(e.to_string()));
                e.code()
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
                (Shown::Call, Some(c)) => c.as_ptr(),
                (Shown::Fixed(c), _) => c.as_ptr(),
                _ => std::ptr::null(),
            }
        }
        None => std::ptr::null(),
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
            .plugin
            .with(|pl| Ok(pl.output().len() as ExtismSize))
            .unwrap_or(0),
        None => 0,
    })
}

/// The last call's output; valid until the next call on this plug-in.
#[no_mangle]
pub unsafe extern "C" fn extism_plugin_output_data(plugin: *mut ExtismPlugin) -> *const u8 {
    guard(std::ptr::null(), || match plugin.as_ref() {
        Some(p) => p
            .plugin
            .with(|pl| Ok(pl.output().as_ptr()))
            .unwrap_or(std::ptr::null()),
        None => std::ptr::null(),
    })
}

/// Releases the plug-in's Extism memory (the last output included).
#[no_mangle]
pub unsafe extern "C" fn extism_plugin_reset(plugin: *mut ExtismPlugin) -> bool {
    guard(false, || match plugin.as_ref() {
        Some(p) => p.plugin.with(|pl| pl.reset()).is_ok(),
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
