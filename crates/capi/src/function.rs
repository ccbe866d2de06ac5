//! Host functions written in C, and the current-plug-in calls they use.

use std::ffi::{c_char, c_void};
use std::sync::Arc;

use runtime::{CurrentPlugin, Function, UserData, Val, ValType};

use crate::{guard, str_arg, ExtismMemoryHandle, ExtismSize};

/// A wasm value type: one of the `ExtismValType_*` enumerators of the header (which declares
/// the enum; see cbindgen.toml). Rust takes it as an integer because C can store any value in
/// an enum, and a Rust enum holding a value outside its variants is undefined behaviour; each
/// use checks it.
#[repr(transparent)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExtismValType(pub u32);

impl ExtismValType {
    pub const I32: Self = Self(0);
    pub const I64: Self = Self(1);
    pub const F32: Self = Self(2);
    pub const F64: Self = Self(3);
    pub const V128: Self = Self(4);
    pub const FUNC_REF: Self = Self(5);
    pub const EXTERN_REF: Self = Self(6);

    /// The wasm type, or `None` for a value that is none of the enumerators.
    fn to_wasm(self) -> Option<ValType> {
        Some(match self {
            Self::I32 => ValType::I32,
            Self::I64 => ValType::I64,
            Self::F32 => ValType::F32,
            Self::F64 => ValType::F64,
            Self::V128 => ValType::V128,
            Self::FUNC_REF => ValType::FUNCREF,
            Self::EXTERN_REF => ValType::EXTERNREF,
            _ => return None,
        })
    }
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

/// A host function that plug-ins may import.
pub struct ExtismFunction {
    pub(crate) function: Function,
}

/// The `void *` a host passed to `extism_plugin_call_with_host_context`.
pub(crate) struct HostContext(pub *mut c_void);
// The pointer is only handed back to the host on the calling thread, during the call.
unsafe impl Send for HostContext {}

/// User data with its free function, run when the last plug-in using the function is gone.
pub(crate) struct CUserData {
    pub(crate) data: *mut c_void,
    pub(crate) free: Option<unsafe extern "C" fn(_: *mut c_void)>,
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

pub(crate) fn to_c(v: &Val) -> ExtismVal {
    let (t, v) = match *v {
        Val::I32(i) => (ExtismValType::I32, ExtismValUnion { i32: i }),
        Val::I64(i) => (ExtismValType::I64, ExtismValUnion { i64: i }),
        Val::F32(bits) => (
            ExtismValType::F32,
            ExtismValUnion {
                f32: f32::from_bits(bits),
            },
        ),
        Val::F64(bits) => (
            ExtismValType::F64,
            ExtismValUnion {
                f64: f64::from_bits(bits),
            },
        ),
        // Vectors and references have no C form; C sees the type and a zero payload.
        Val::V128(_) => (ExtismValType::V128, ExtismValUnion { i64: 0 }),
        Val::FuncRef(_) => (ExtismValType::FUNC_REF, ExtismValUnion { i64: 0 }),
        _ => (ExtismValType::EXTERN_REF, ExtismValUnion { i64: 0 }),
    };
    ExtismVal { t, v }
}

/// A result written by C, checked: `t` may hold anything.
pub(crate) fn from_c(v: &ExtismVal) -> Result<Val, String> {
    // Every bit pattern of the union's members is a valid value; C wrote all 8 bytes or the
    // zeroed slot from `to_c` still holds them.
    unsafe {
        Ok(match v.t {
            ExtismValType::I32 => Val::I32(v.v.i32),
            ExtismValType::I64 => Val::I64(v.v.i64),
            ExtismValType::F32 => Val::F32(v.v.f32.to_bits()),
            ExtismValType::F64 => Val::F64(v.v.f64.to_bits()),
            ExtismValType::V128 => Val::V128(0u128.into()),
            ExtismValType::FUNC_REF => Val::FuncRef(None),
            ExtismValType::EXTERN_REF => Val::ExternRef(None),
            ExtismValType(other) => {
                return Err(format!(
                    "it returned a value of type {other}, which is not an ExtismValType"
                ))
            }
        })
    }
}

/// The wasm types of a C array of `ExtismValType`s; `None` when the array or a value is bad.
pub(crate) unsafe fn types(p: *const ExtismValType, n: ExtismSize) -> Option<Vec<ValType>> {
    crate::slice_arg(p, n)?
        .iter()
        .map(|t| t.to_wasm())
        .collect()
}

/// Makes a host function named `name` with the given parameter and result types. `func` is
/// called with `user_data`; `free_user_data` (may be null) frees it when no plug-in uses the
/// function any more. Returns null if `name` or `func` is null, if a type array is null with a
/// non-zero count, or if a type is not an `ExtismValType`. Namespace: `extism:host/user` unless
/// `extism_function_set_namespace` says otherwise. The callback gets null arrays when there
/// are no inputs or outputs, as with Extism; a result whose `t` it sets to something that is not
/// an `ExtismValType` fails the plug-in's call.
#[no_mangle]
pub unsafe extern "C" fn extism_function_new(
    name: *const c_char,
    inputs: *const ExtismValType,
    n_inputs: ExtismSize,
    outputs: *const ExtismValType,
    n_outputs: ExtismSize,
    func: ExtismFunctionType,
    user_data: *mut c_void,
    // Spelt out rather than named: Extism's header has no name for this type.
    free_user_data: Option<unsafe extern "C" fn(_: *mut c_void)>,
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
                let in_ptr = if c_in.is_empty() {
                    std::ptr::null()
                } else {
                    c_in.as_ptr()
                };
                let out_ptr = if c_out.is_empty() {
                    std::ptr::null_mut()
                } else {
                    c_out.as_mut_ptr()
                };
                func(
                    current,
                    in_ptr,
                    c_in.len() as ExtismSize,
                    out_ptr,
                    c_out.len() as ExtismSize,
                    data.data,
                );
                for (slot, v) in outs.iter_mut().zip(&c_out) {
                    *slot = from_c(v).map_err(|e| runtime::anyhow::anyhow!(e))?;
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
/// the plug-in allocates again. Null when the plug-in has no Extism memory yet (a host
/// function called from a start function, during `extism_plugin_new`).
#[no_mangle]
pub unsafe extern "C" fn extism_current_plugin_memory(plugin: *mut ExtismCurrentPlugin) -> *mut u8 {
    guard(std::ptr::null_mut(), || match current(plugin) {
        // An empty slice's pointer is dangling (0x1), not null.
        Some(p) => match p.memory() {
            [] => std::ptr::null_mut(),
            memory => memory.as_mut_ptr(),
        },
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

/// The `host_context` given to `extism_plugin_call_with_host_context` (or
/// `plinth_plugin_call_stream_with_host_context`), or null.
#[no_mangle]
pub unsafe extern "C" fn extism_current_plugin_host_context(
    plugin: *mut ExtismCurrentPlugin,
) -> *mut c_void {
    guard(std::ptr::null_mut(), || match current(plugin) {
        Some(p) => match p.host_context::<HostContext>() {
            Some(c) => c.0,
            None => std::ptr::null_mut(),
        },
        None => std::ptr::null_mut(),
    })
}
