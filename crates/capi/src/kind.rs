//! Error kinds: the stable number and name of each kind of failure (`plinth::ErrorKind`), as C
//! sees them, and the kind of a failed creation, found from its `errmsg`.

use std::collections::HashMap;
use std::ffi::{c_char, CString};
use std::sync::{Mutex, OnceLock};

use runtime::ErrorKind;

use crate::guard;

/// No error: what `plinth_plugin_error_kind` returns after a call that succeeded.
pub const PLINTH_ERROR_KIND_NONE: i32 = 0;
/// The manifest could not be read or parsed, or is invalid (a missing file, a hash mismatch,
/// an unknown field).
pub const PLINTH_ERROR_KIND_MANIFEST: i32 = 1;
/// A module is not valid WebAssembly or WAT.
pub const PLINTH_ERROR_KIND_COMPILE: i32 = 2;
/// A module is over a compile limit (size, function count, deadline).
pub const PLINTH_ERROR_KIND_COMPILE_LIMIT: i32 = 3;
/// The plug-in's imports cannot be satisfied, or its start-up failed.
pub const PLINTH_ERROR_KIND_LINK: i32 = 4;
/// No callable export has the name called.
pub const PLINTH_ERROR_KIND_FUNCTION_NOT_FOUND: i32 = 5;
/// The export called is not a function of a plug-in's type.
pub const PLINTH_ERROR_KIND_NOT_CALLABLE: i32 = 6;
/// The plug-in trapped (the call returned 134).
pub const PLINTH_ERROR_KIND_TRAP: i32 = 7;
/// The plug-in reported a failure of its own (the call returned the plug-in's code).
pub const PLINTH_ERROR_KIND_GUEST: i32 = 8;
/// The plug-in exited through WASI `proc_exit` with a non-zero code.
pub const PLINTH_ERROR_KIND_EXIT: i32 = 9;
/// The call ran past its `timeout_ms`.
pub const PLINTH_ERROR_KIND_TIMEOUT: i32 = 10;
/// The call was cancelled (`extism_plugin_cancel`).
pub const PLINTH_ERROR_KIND_CANCELLED: i32 = 11;
/// The plug-in went over its memory budget.
pub const PLINTH_ERROR_KIND_OUT_OF_MEMORY: i32 = 12;
/// The call used up its fuel.
pub const PLINTH_ERROR_KIND_OUT_OF_FUEL: i32 = 13;
/// An HTTP request went to a host outside `allowed_hosts`.
pub const PLINTH_ERROR_KIND_HTTP_DENIED: i32 = 14;
/// An HTTP request failed or was refused for its shape.
pub const PLINTH_ERROR_KIND_HTTP: i32 = 15;
/// The var store is over `memory.max_var_bytes`.
pub const PLINTH_ERROR_KIND_VAR_STORE_FULL: i32 = 16;
/// A host function returned an error.
pub const PLINTH_ERROR_KIND_HOST_FUNCTION: i32 = 17;
/// A host function called back into the plug-in that called it.
pub const PLINTH_ERROR_KIND_REENTRANT: i32 = 18;
/// WASI could not be set up (a bad `allowed_paths` entry).
pub const PLINTH_ERROR_KIND_WASI: i32 = 19;
/// Input or output could not be converted.
pub const PLINTH_ERROR_KIND_CONVERT: i32 = 20;
/// A memory handle or allocation was refused.
pub const PLINTH_ERROR_KIND_MEMORY: i32 = 21;
/// The plug-in was closed.
pub const PLINTH_ERROR_KIND_CLOSED: i32 = 22;
/// The plug-in is running a call on another thread and the caller asked not to wait.
pub const PLINTH_ERROR_KIND_BUSY: i32 = 23;
/// Anything else, including a bad argument (a null pointer, a length no buffer can have).
pub const PLINTH_ERROR_KIND_OTHER: i32 = 24;
/// A precompiled artifact was refused: not an artifact, altered after it was made, signed with
/// another key, or compiled from another module (or the key is shorter than 16 bytes).
pub const PLINTH_ERROR_KIND_ARTIFACT: i32 = 25;
/// A streaming call's input or output failed (a read or write callback returned an error),
/// its output went over the output limit, or its input is too large for a plug-in that does
/// not stream.
pub const PLINTH_ERROR_KIND_STREAM: i32 = 26;

/// The kind of failures that are the caller's mistake (null pointers and the like).
pub(crate) const ARGUMENT: ErrorKind = ErrorKind::Other;

/// The stable name of an error kind ("trap", "function_not_found", "timeout", ...), or null
/// for a number that is no kind (0 included). The string is static: never free it.
#[no_mangle]
pub extern "C" fn plinth_error_kind_name(kind: i32) -> *const c_char {
    guard(std::ptr::null(), || match ErrorKind::from_number(kind) {
        Some(k) => names()[k.number() as usize].as_ptr(),
        None => std::ptr::null(),
    })
}

/// The names as C strings, indexed by number (index 0 unused); made once, never freed.
fn names() -> &'static [CString] {
    static NAMES: OnceLock<Vec<CString>> = OnceLock::new();
    NAMES.get_or_init(|| {
        let mut names = vec![CString::default()];
        for kind in ErrorKind::ALL {
            debug_assert_eq!(kind.number() as usize, names.len());
            names.push(CString::new(kind.name()).unwrap_or_default());
        }
        names
    })
}

/// The kinds of the messages handed out through `errmsg`, by address, until they are freed.
fn new_errors() -> std::sync::MutexGuard<'static, HashMap<usize, i32>> {
    static KINDS: OnceLock<Mutex<HashMap<usize, i32>>> = OnceLock::new();
    KINDS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner())
}

/// Hands `message` to C through `errmsg` (when not null), remembering its kind.
pub(crate) unsafe fn report(errmsg: *mut *mut c_char, message: String, kind: ErrorKind) {
    if !errmsg.is_null() {
        let c = CString::new(message.replace('\0', " "))
            .unwrap_or_default()
            .into_raw();
        new_errors().insert(c as usize, kind.number());
        *errmsg = c;
    }
}

/// Forgets the kind of a message about to be freed.
pub(crate) fn forget(errmsg: *const c_char) {
    new_errors().remove(&(errmsg as usize));
}

/// The kind of a failed creation (`extism_plugin_new`, `plinth_plugin_new_from_file`,
/// `extism_compiled_plugin_new`, `extism_plugin_new_from_compiled`,
/// `plinth_compiled_plugin_new_from_artifact` and their variants), of a failed
/// `plinth_compile_artifact` or of a failed `plinth_compiled_plugin_call_fresh`, read from the
/// message it left in `*errmsg`: call it before `extism_plugin_new_error_free`. 0 for null or a
/// pointer that is no such message (or one already freed).
#[no_mangle]
pub extern "C" fn plinth_plugin_new_error_kind(errmsg: *const c_char) -> i32 {
    guard(PLINTH_ERROR_KIND_NONE, || {
        if errmsg.is_null() {
            return PLINTH_ERROR_KIND_NONE;
        }
        new_errors()
            .get(&(errmsg as usize))
            .copied()
            .unwrap_or(PLINTH_ERROR_KIND_NONE)
    })
}
