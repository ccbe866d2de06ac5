//! Input and output straight through the plug-in's own memory (feature `bulk-copy`, Plinth
//! hosts only): the host writes the input into a buffer this module hands out
//! (`plinth_input_buffer`), and reads an owned output from where it lies (`output_direct`), so
//! that bulk data skips Extism memory: a 1 MiB echo takes two copies instead of three.

use std::any::Any;
use std::cell::RefCell;

use crate::{abi, Error, ToMemory};

thread_local! {
    /// The buffer handed to the host for this call's input, and the input's length.
    static INPUT: RefCell<Option<(Vec<u8>, usize)>> = const { RefCell::new(None) };
    /// The last call's output, kept until the host has read it (the next call replaces it).
    static OUTPUT: RefCell<Option<Vec<u8>>> = const { RefCell::new(None) };
}

/// Called by a Plinth host before the export, with the input's length: returns where to write
/// the input. The buffer lives until the next call, and `input`/`input_bytes` read it.
#[unsafe(no_mangle)]
pub extern "C" fn plinth_input_buffer(len: i32) -> i32 {
    let len = len as u32 as usize;
    let mut buf = Vec::with_capacity(len);
    let ptr = buf.as_mut_ptr() as usize as i32;
    INPUT.with(|slot| *slot.borrow_mut() = Some((buf, len)));
    // The last output has been read by now: its memory can go.
    OUTPUT.with(|slot| slot.borrow_mut().take());
    ptr
}

/// Runs `f` on the input the host wrote into the buffer, if it did. The buffer stays for the
/// whole call, so the input can be read more than once.
pub(crate) fn with_input<R>(f: impl FnOnce(&[u8]) -> R) -> Option<R> {
    INPUT.with(|slot| {
        let mut slot = slot.borrow_mut();
        let (buf, len) = slot.as_mut()?;
        if buf.len() != *len {
            // SAFETY: the host wrote all `len` bytes of the buffer's capacity before the
            // export ran.
            unsafe { buf.set_len(*len) };
        }
        Some(f(buf))
    })
}

/// Ends a call's use of the input buffer. The host writes a buffer only for a non-empty input,
/// so a buffer kept past its call would be read as the next call's input.
pub(crate) fn end_call() {
    INPUT.with(|slot| slot.borrow_mut().take());
}

/// Sets the call's output: bytes the plug-in owns (`Vec<u8>`, `String`) are handed to the host
/// where they lie; other values go through Extism memory as usual.
pub(crate) fn output<T: ToMemory + 'static>(value: T) -> Result<(), Error> {
    let mut slot = Some(value);
    let any: &mut dyn Any = &mut slot;
    let bytes = if let Some(v) = any.downcast_mut::<Option<Vec<u8>>>() {
        v.take()
    } else if let Some(s) = any.downcast_mut::<Option<String>>() {
        s.take().map(String::into_bytes)
    } else {
        None
    };
    match bytes {
        Some(bytes) if bytes.len() <= u32::MAX as usize => {
            // SAFETY: the bytes stay in `OUTPUT` until the next call, after the host read them.
            unsafe { abi::output_direct(bytes.as_ptr(), bytes.len() as u32) };
            OUTPUT.with(|slot| *slot.borrow_mut() = Some(bytes));
            Ok(())
        }
        Some(bytes) => crate::output(bytes),
        None => crate::output(slot.take().expect("not taken above")),
    }
}
