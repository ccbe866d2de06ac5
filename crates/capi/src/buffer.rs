//! Byte buffers libplinth hands to C that outlive any plug-in (an artifact from
//! `plinth_compile_artifact`, the output of `plinth_compiled_plugin_call_fresh`): C owns each
//! one until it passes it to `plinth_buffer_free`.
//!
//! The buffers are kept here by address, so that freeing needs only the pointer, and a
//! pointer that is no such buffer (or one already freed) is ignored instead of being undefined
//! behaviour.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, OnceLock};

use crate::{guard, ExtismSize};

fn buffers() -> MutexGuard<'static, HashMap<usize, Box<[u8]>>> {
    static BUFFERS: OnceLock<Mutex<HashMap<usize, Box<[u8]>>>> = OnceLock::new();
    BUFFERS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner())
}

/// Hands `bytes` to C: a pointer that is never null (an empty buffer still has an address of
/// its own) and the length.
pub(crate) fn hand_out(bytes: Vec<u8>) -> (*mut u8, ExtismSize) {
    let len = bytes.len() as ExtismSize;
    let mut boxed = if bytes.is_empty() {
        Box::new([0u8]) as Box<[u8]>
    } else {
        bytes.into_boxed_slice()
    };
    // Moving the box into the map does not move the bytes it points to.
    let ptr = boxed.as_mut_ptr();
    buffers().insert(ptr as usize, boxed);
    (ptr, len)
}

/// Frees a buffer that libplinth handed out (`plinth_compile_artifact`'s artifact,
/// `plinth_compiled_plugin_call_fresh`'s output). Null, a pointer libplinth did not hand out
/// and one already freed are ignored.
#[no_mangle]
pub unsafe extern "C" fn plinth_buffer_free(data: *mut u8) {
    guard((), || {
        if !data.is_null() {
            buffers().remove(&(data as usize));
        }
    })
}
