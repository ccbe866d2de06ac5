//! Host functions written in C that complete later (`plinth_function_new_async`), through a
//! completion handle that any thread may finish.

use std::ffi::{c_char, c_void};
use std::sync::Arc;

use runtime::anyhow::{anyhow, bail};
use runtime::{CurrentPlugin, Function, HostFuture, UserData, Val};
use tokio::sync::oneshot;

use crate::function::{from_c, to_c, types, CUserData, ExtismCurrentPlugin, ExtismFunction};
use crate::function::{ExtismVal, ExtismValType};
use crate::{bytes_arg, guard, slice_arg, str_arg, ExtismSize};

/// An async host function callback. It is called on one of libplinth's worker threads while
/// the plug-in waits in its import; it may read and write the plug-in's memory through
/// `plugin` during this callback only, and must finish `completion` exactly once, now or
/// later, from any thread: with `plinth_completion_return`, `plinth_completion_return_bytes`
/// or `plinth_completion_fail`. It should return soon: the worker thread serves other calls
/// only once it has returned. `inputs` is null when there are none.
pub type PlinthAsyncFunction = Option<
    unsafe extern "C" fn(
        plugin: *mut ExtismCurrentPlugin,
        inputs: *const ExtismVal,
        n_inputs: ExtismSize,
        completion: *mut PlinthCompletion,
        user_data: *mut c_void,
    ),
>;

/// The pending result of one async host function call. Finishing it (return, return bytes or
/// fail) frees it; it must be finished exactly once.
pub struct PlinthCompletion {
    tx: oneshot::Sender<Outcome>,
}

enum Outcome {
    Values(Vec<Val>),
    Bytes(Vec<u8>),
    Fail(String),
}

struct AsyncFn {
    f: unsafe extern "C" fn(
        *mut ExtismCurrentPlugin,
        *const ExtismVal,
        ExtismSize,
        *mut PlinthCompletion,
        *mut c_void,
    ),
    data: CUserData,
}

/// Makes an async host function: like `extism_function_new`, but `func` does not produce the
/// results before it returns; it gets a `PlinthCompletion` to finish later, from any thread
/// (see `PlinthAsyncFunction`). Meanwhile the plug-in waits in its import, and the worker
/// thread serves other calls. The function may be used wherever an `ExtismFunction` is
/// (`extism_function_set_namespace`, the `functions` of `extism_plugin_new` and friends); a
/// plug-in that imports it must be called with `plinth_plugin_call_async` (a synchronous call
/// fails with an error that says so). `free_user_data` (may be null) frees `user_data` when no
/// plug-in uses the function any more. Returns null if `name` or `func` is null, if a type
/// array is null with a non-zero count, or if a type is not an `ExtismValType`.
#[no_mangle]
pub unsafe extern "C" fn plinth_function_new_async(
    name: *const c_char,
    inputs: *const ExtismValType,
    n_inputs: ExtismSize,
    outputs: *const ExtismValType,
    n_outputs: ExtismSize,
    func: PlinthAsyncFunction,
    user_data: *mut c_void,
    free_user_data: Option<unsafe extern "C" fn(_: *mut c_void)>,
) -> *mut ExtismFunction {
    guard(std::ptr::null_mut(), || {
        let (Some(name), Some(f)) = (str_arg(name), func) else {
            return std::ptr::null_mut();
        };
        let (Some(params), Some(results)) = (types(inputs, n_inputs), types(outputs, n_outputs))
        else {
            return std::ptr::null_mut();
        };
        let shared = Arc::new(AsyncFn {
            f,
            data: CUserData {
                data: user_data,
                free: free_user_data,
            },
        });
        let function = Function::new_async(
            name,
            params,
            results,
            UserData::new(()),
            move |plugin, ins, outs, _| wait(shared.clone(), plugin, ins, outs),
        );
        Box::into_raw(Box::new(ExtismFunction { function }))
    })
}

/// One call of an async host function: hands C a completion, then awaits it.
fn wait<'a>(
    shared: Arc<AsyncFn>,
    mut plugin: CurrentPlugin<'a>,
    ins: &'a [Val],
    outs: &'a mut [Val],
) -> HostFuture<'a> {
    Box::pin(async move {
        let rx = {
            let (tx, rx) = oneshot::channel();
            let completion = Box::into_raw(Box::new(PlinthCompletion { tx }));
            let c_in: Vec<ExtismVal> = ins.iter().map(to_c).collect();
            let in_ptr = if c_in.is_empty() {
                std::ptr::null()
            } else {
                c_in.as_ptr()
            };
            let current = &mut plugin as *mut CurrentPlugin<'a> as *mut ExtismCurrentPlugin;
            // The host promised `f` may be called from libplinth's threads; it owns
            // `completion` from here.
            unsafe {
                (shared.f)(
                    current,
                    in_ptr,
                    c_in.len() as ExtismSize,
                    completion,
                    shared.data.data,
                )
            };
            rx
        };
        // A cancel or the call's deadline drops this future, and with it `rx`: a late finish
        // then finds the channel closed.
        let outcome = rx
            .await
            .map_err(|_| anyhow!("the completion was dropped unfinished"))?;
        match outcome {
            Outcome::Values(values) => {
                if values.len() != outs.len() {
                    bail!(
                        "plinth_completion_return got {} outputs, but the host function has {} \
                         results",
                        values.len(),
                        outs.len()
                    );
                }
                for (slot, v) in outs.iter_mut().zip(values) {
                    *slot = v;
                }
            }
            Outcome::Bytes(bytes) => {
                if !matches!(outs.first(), Some(Val::I64(_))) {
                    bail!(
                        "plinth_completion_return_bytes needs a host function whose first \
                         result is an i64 (EXTISM_PTR), for the bytes' handle"
                    );
                }
                let handle = plugin.memory_new(&bytes[..])?;
                outs[0] = Val::I64(handle.offset as i64);
            }
            Outcome::Fail(message) => bail!("{message}"),
        }
        Ok(())
    })
}

/// Takes back a completion handed to C; `None` for null.
unsafe fn take(completion: *mut PlinthCompletion) -> Option<Box<PlinthCompletion>> {
    (!completion.is_null()).then(|| Box::from_raw(completion))
}

/// Finishes with `outcome` (or, when it is an `Err`, fails the call with that message).
/// True when the call was still waiting and `outcome` was valid.
fn send(completion: PlinthCompletion, outcome: Result<Outcome, String>) -> bool {
    let valid = outcome.is_ok();
    let outcome = outcome.unwrap_or_else(Outcome::Fail);
    completion.tx.send(outcome).is_ok() && valid
}

/// Finishes an async host function call with its results: `n_outputs` values, as many as the
/// function has results, of its result types (a wrong count or type is found when the plug-in
/// resumes, and fails its call with a message that says so). Frees the completion. Returns
/// true when the call was waiting and takes these values; false when `completion` is null,
/// when `outputs` is null with a non-zero count or holds a value that is not an
/// `ExtismValType` (the call then fails, saying so), or when the call is gone (cancelled, timed
/// out): finishing it is then a harmless no-op.
#[no_mangle]
pub unsafe extern "C" fn plinth_completion_return(
    completion: *mut PlinthCompletion,
    outputs: *const ExtismVal,
    n_outputs: ExtismSize,
) -> bool {
    guard(false, || {
        let Some(c) = take(completion) else {
            return false;
        };
        let outcome = match slice_arg(outputs, n_outputs) {
            None => Err(
                "plinth_completion_return got a null outputs array with a non-zero \
                         n_outputs"
                    .to_string(),
            ),
            Some(values) => values
                .iter()
                .map(from_c)
                .collect::<Result<Vec<_>, _>>()
                .map(Outcome::Values)
                .map_err(|e| format!("the async host function failed: {e}")),
        };
        send(*c, outcome)
    })
}

/// Finishes an async host function call with bytes: they are copied now, and into the
/// plug-in's memory when it resumes; their handle becomes the first result (which must be an
/// i64, `EXTISM_PTR`), other results are 0. Frees the completion. Returns what
/// `plinth_completion_return` returns.
#[no_mangle]
pub unsafe extern "C" fn plinth_completion_return_bytes(
    completion: *mut PlinthCompletion,
    data: *const u8,
    len: ExtismSize,
) -> bool {
    guard(false, || {
        let Some(c) = take(completion) else {
            return false;
        };
        let outcome = bytes_arg(data, len)
            .map(|b| Outcome::Bytes(b.to_vec()))
            .ok_or_else(|| {
                "plinth_completion_return_bytes got null data with a non-zero len".to_string()
            });
        send(*c, outcome)
    })
}

/// Fails the async host function call: the plug-in's call fails with `message` (a C string;
/// null gives a generic one), as `PLINTH_ERROR_KIND_HOST_FUNCTION`. Frees the completion.
/// Returns true when the call was waiting; false for a null completion or a call that is gone
/// (a harmless no-op).
#[no_mangle]
pub unsafe extern "C" fn plinth_completion_fail(
    completion: *mut PlinthCompletion,
    message: *const c_char,
) -> bool {
    guard(false, || {
        let Some(c) = take(completion) else {
            return false;
        };
        let message = if message.is_null() {
            "the async host function failed (no message given)".to_string()
        } else {
            std::ffi::CStr::from_ptr(message)
                .to_string_lossy()
                .into_owned()
        };
        send(*c, Ok(Outcome::Fail(message)))
    })
}

/// Whether the call that `completion` belongs to still waits for it: false once that call
/// was cancelled or timed out (or `completion` is null), so that a host may stop the work
/// early. The completion must still be finished (which then does nothing) to free it.
#[no_mangle]
pub unsafe extern "C" fn plinth_completion_is_waiting(completion: *const PlinthCompletion) -> bool {
    guard(false, || {
        completion.as_ref().is_some_and(|c| !c.tx.is_closed())
    })
}
