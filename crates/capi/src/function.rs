//! Host functions written in C, and the current-plug-in calls they use.

use std::ffi::{c_char, c_void};
use std::sync::Arc;

use runtime::{CurrentPlugin, Function, UserData, Val, ValType};

use crate::{guard, str_arg, ExtismMemoryHandle, ExtismSize};

/// A wasm value type.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExtismValType {
    I32,
    I64,
    F32,
    F64,
    V128,
    FuncRef,
    ExternRef,
}

/// The payload of an `ExtismVal`.
#[repr(C)]
#[derive(Clone, Copy)]
pub union ExtismValUnion {
    pub i32: i32,
    pub i64: i64,
    pub f32: f32,
    pub f64: f64,
}

/// A wasm value: its type and payload.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ExtismVal {
    pub t: ExtismValType,
    pub v: ExtismValUnion,
}

/// The plug-in that called a host function. Valid only during that call.
pub struct ExtismCurrentPlugin {
    _private: [u8; 0],
}

/// A host function callback.
pub type ExtismFunctionType = Option<
    unsafe extern "C" fn(
        plugin: *mut ExtismCurrentPlugin,
        inputs: *const ExtismVal,
        n_inputs: ExtismSize,
        outputs: *mut ExtismVal,
        n_outputs: ExtismSize,
        data: *mut c_void,
    ),
>;

/// Frees a host function's user data.
pub type ExtismFreeUserData = Option<unsafe extern "C" fn(data: *mut c_void)>;

/// A host function that plug-ins may import.
pub struct ExtismFunction {
    pub(crate) function: Function,
}

/// The `void *` a host passed to `extism_plugin_call_with_host_context`.
pub(crate) struct HostContext(pub *mut c_void);
// The pointer is only handed back to the host on the calling thread, during the call.
unsafe impl Send for HostContext {}

/// User data with its free function, run when the last plug-in using the function is gone.
struct CUserData {
    data: *mut c_void,
    free: ExtismFreeUserData,
}
// The host owns the data and promises it may be used from the threads that call plug-ins.
unsafe impl Send for CUserData {}
unsafe impl Sync for CUserData {}

impl Drop for CUserData {
    fn drop(&mut self) {
        if let Some(free) = self.free {
            guard((), || unsafe { free(self.data) });
        }
    }
}

fn val_type(t: ExtismValType) -> ValType {
    match t {
        ExtismValType::I32 => ValType::I32,
        ExtismValType::I64 => ValType::I64,
        ExtismValType::F32 => ValType::F32,
        ExtismValType::F64 => ValType::F64,
        ExtismValType::V128 => ValType::V128,
        ExtismValType::FuncRef => ValType::FUNCREF,
        ExtismValType::ExternRef => ValType::EXTERNREF,
    }
}

fn to_c(v: &Val) -> ExtismVal {
    match *v {
        Val::I32(i) => ExtismVal {
            t: ExtismValType::I32,
            v: ExtismValUnion { i32: i },
        },
        Val::I64(i) => ExtismVal {
            t: ExtismValType::I64,
            v: ExtismValUnion { i64: i },
        },
        Val::F32(bits) => ExtismVal {
            t: ExtismValType::F32,
            v: ExtismValUnion {
                f32: f32::from_bits(bits),
            },
        },
        Val::F64(bits) => ExtismVal {
            t: ExtismValType::F64,
            v: ExtismValUnion {
                f64: f64::from_bits(bits),
            },
        },
        // Reference and vector values are not representable; C sees a zero i64.
        _ => ExtismVal {
            t: ExtismValType::I64,
            v: ExtismValUnion { i64: 0 },
        },
    }
}

fn from_c(v: &ExtismVal) -> Val {
    unsafe {
        match v.t {
            ExtismValType::I32 => Val::I32(v.v.i32),
            ExtismValType::I64 => Val::I64(v.v.i64),
            ExtismValType::F32 => Val::F32(v.v.f32.to_bits()),
            ExtismValType::F64 => Val::F64(v.v.f64.to_bits()),
            _ => Val::I64(0),
        }
    }
}

unsafe fn types(p: *const ExtismValType, n: ExtismSize) -> Option<Vec<ValType>> {
    if n == 0 {
        return Some(Vec::new());
    }
    if p.is_null() {
        return None;
    }
    Some(
        std::slice::from_raw_parts(p, n as usize)
            .iter()
            .map(|t| val_type(*t))
            .collect(),
    )
}

/// Makes a host function named `name` with the given parameter and result types. `func` is
/// called with `user_data`; `free_user_data` (may be null) frees it when no plug-in uses the
/// function any more. Returns null if `name` or `func` is null. Namespace: `extism:host/user`
/// unless `extism_function_set_namespace` says otherwise.
#[no_mangle]
pub unsafe extern "C" fn extism_function_new(
    name: *const c_char,
    inputs: *const ExtismValType,
    n_inputs: ExtismSize,
    outputs: *const ExtismValType,
    n_outputs: ExtismSize,
    func: ExtismFunctionType,
    user_data: *mut c_void,
    free_user_data: ExtismFreeUserData,
) -> *mut ExtismFunction {
    guard(std::ptr::null_mut(), || {
        let (Some(name), Some(func)) = (str_arg(name), func) else {
            return std::ptr::null_mut();
        };
        let (Some(params), Some(results)) = (types(inputs, n_inputs), types(outputs, n_outputs))
        else {
            return std::ptr::null_mut();
        };
        let data = Arc::new(CUserData {
            data: user_data,
            free: free_user_data,
        });
        let function = Function::new(
            name,
            params,
            results,
            UserData::new(()),
            move |plugin: &mut CurrentPlugin, ins: &[Val], outs: &mut [Val], _| {
                let c_in: Vec<ExtismVal> = ins.iter().map(to_c).collect();
                let mut c_out: Vec<ExtismVal> = outs.iter().map(to_c).collect();
                let current = plugin as *mut CurrentPlugin as *mut ExtismCurrentPlugin;
                func(
                    current,
                    c_in.as_ptr(),
                    c_in.len() as ExtismSize,
                    c_out.as_mut_ptr(),
                    c_out.len() as ExtismSize,
                    data.data,
                );
                for (slot, v) in outs.iter_mut().zip(&c_out) {
                    *slot = from_c(v);
                }
                Ok(())
            },
        );
        Box::into_raw(Box::new(ExtismFunction { function }))
    })
}

/// Frees a host function. Plug-ins created with it keep working; its user data is freed when
/// the last of them is freed.
#[no_mangle]
pub unsafe extern "C" fn extism_function_free(f: *mut ExtismFunction) {
    guard((), || {
        if !f.is_null() {
            drop(Box::from_raw(f));
        }
    })
}

/// Sets the import namespace of a host function.
#[no_mangle]
pub unsafe extern "C" fn extism_function_set_namespace(
    f: *mut ExtismFunction,
    namespace: *const c_char,
) {
    guard((), || {
        if let (Some(f), Some(ns)) = (f.as_mut(), str_arg(namespace)) {
            f.function.set_namespace(ns);
        }
    })
}

unsafe fn current<'a>(p: *mut ExtismCurrentPlugin) -> Option<&'a mut CurrentPlugin<'static>> {
    (p as *mut CurrentPlugin<'static>).as_mut()
}

/// Base of the calling plug-in's Extism memory: a handle is an offset from it. Valid until
/// the plug-in allocates again.
#[no_mangle]
pub unsafe extern "C" fn extism_current_plugin_memory(plugin: *mut ExtismCurrentPlugin) -> *mut u8 {
    guard(std::ptr::null_mut(), || match current(plugin) {
        Some(p) => p.memory().as_mut_ptr(),
        None => std::ptr::null_mut(),
    })
}

/// Allocates `n` bytes of the calling plug-in's memory; 0 when that fails.
#[no_mangle]
pub unsafe extern "C" fn extism_current_plugin_memory_alloc(
    plugin: *mut ExtismCurrentPlugin,
    n: ExtismSize,
) -> ExtismMemoryHandle {
    guard(0, || match current(plugin) {
        Some(p) => p.memory_alloc(n).map(|h| h.offset).unwrap_or(0),
        None => 0,
    })
}

/// Length of the block at `handle`, 0 if there is none.
#[no_mangle]
pub unsafe extern "C" fn extism_current_plugin_memory_length(
    plugin: *mut ExtismCurrentPlugin,
    handle: ExtismMemoryHandle,
) -> ExtismSize {
    guard(0, || match current(plugin) {
        Some(p) => p.memory_length(handle),
        None => 0,
    })
}

/// Frees the block at `handle`.
#[no_mangle]
pub unsafe extern "C" fn extism_current_plugin_memory_free(
    plugin: *mut ExtismCurrentPlugin,
    handle: ExtismMemoryHandle,
) {
    guard((), || {
        if let Some(p) = current(plugin) {
            if let Some(h) = p.memory_handle(handle) {
                p.memory_free(h);
            }
        }
    })
}

/// The `host_context` given to `extism_plugin_call_with_host_context`, or null.
#[no_mangle]
pub unsafe extern "C" fn extism_current_plugin_host_context(
    plugin: *mut ExtismCurrentPlugin,
) -> *mut c_void {
    guard(std::ptr::null_mut(), || match current(plugin) {
        Some(p) => p
            .host_context::<HostContext>()
            .map_or(std::ptr::null_mut(), |c| c.0),
        None => std::ptr::null_mut(),
    })
}
