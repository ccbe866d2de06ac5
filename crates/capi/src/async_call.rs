//! Calls that complete through a callback (`plinth_plugin_call_async`), run on a small tokio
//! runtime that libplinth owns.

use std::ffi::{c_char, c_void, CString};
use std::sync::OnceLock;

use runtime::{Error, ErrorKind};
use tokio::runtime::Runtime;

use crate::kind::PLINTH_ERROR_KIND_NONE;
use crate::plugin::{bad_argument, ExtismPlugin};
use crate::slot::Finish;
use crate::{bytes_arg, guard, str_arg, ExtismSize};

/// What `plinth_plugin_call_async` calls, exactly once, when the call is over, on one of
/// libplinth's worker threads. `rc` is `EXTISM_SUCCESS` (0) on success, else the code
/// `extism_plugin_call` would have returned (never 0). `error_kind` is a
/// `PLINTH_ERROR_KIND_*` number (`PLINTH_ERROR_KIND_NONE` on success). `output` holds
/// `output_len` bytes on success (null and 0 after a failure); `error` is the message (null on
/// success). Both pointers are valid only until the callback returns: copy what you keep.
/// The callback may call libplinth again, this plug-in included (for instance to start the
/// next async call).
pub type PlinthCallDone = Option<
    unsafe extern "C" fn(
        user_data: *mut c_void,
        rc: i32,
        error_kind: i32,
        output: *const u8,
        output_len: ExtismSize,
        error: *const c_char,
    ),
>;

/// The process-wide runtime, built at the first async call: a few named worker threads.
fn runtime() -> Result<&'static Runtime, String> {
    static RUNTIME: OnceLock<Result<Runtime, String>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            let threads = std::thread::available_parallelism().map_or(2, |n| n.get().clamp(2, 4));
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(threads)
                .thread_name("plinth-async")
                .build()
                .map_err(|e| format!("libplinth could not start its async worker threads: {e}"))
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// The `done` callback and its user data; calls it exactly once, also when the task is
/// dropped unfinished (a panic, or a runtime shut down), so that no caller waits for ever.
struct Done {
    f: unsafe extern "C" fn(*mut c_void, i32, i32, *const u8, ExtismSize, *const c_char),
    user_data: *mut c_void,
    called: bool,
}
// The host hands over `user_data` for the worker thread that completes the call.
unsafe impl Send for Done {}

impl Done {
    fn finish(mut self, outcome: Result<Vec<u8>, (i32, String, ErrorKind)>) {
        self.called = true;
        match outcome {
            Ok(out) => self.call(0, PLINTH_ERROR_KIND_NONE, &out, None),
            Err((rc, message, kind)) => {
                let message = CString::new(message.replace('\0', " ")).unwrap_or_default();
                self.call(rc, kind.number(), &[], Some(&message));
            }
        }
    }

    fn call(&self, rc: i32, kind: i32, out: &[u8], error: Option<&CString>) {
        let (ptr, len) = if error.is_some() {
            (std::ptr::null(), 0)
        } else {
            (out.as_ptr(), out.len() as ExtismSize)
        };
        let error = error.map_or(std::ptr::null(), |e| e.as_ptr());
        guard((), || unsafe {
            (self.f)(self.user_data, rc, kind, ptr, len, error)
        });
    }
}

impl Drop for Done {
    fn drop(&mut self) {
        if !self.called {
            self.called = true;
            let message = CString::from(c"the async call ended without a result (libplinth failed inside; please report it)");
            self.call(-1, ErrorKind::Other.number(), &[], Some(&message));
        }
    }
}

/// Calls `func_name` with `data` (copied) and returns at once; `done(user_data, ...)` is
/// called exactly once when the call is over, on one of libplinth's worker threads (see
/// `PlinthCallDone`). The call runs there without holding a thread while its async host
/// functions (`plinth_function_new_async`) wait, so many calls on many plug-ins can be in
/// flight on a few threads. This is how to call a plug-in that imports async host functions;
/// plug-ins without them may be called this way too.
///
/// Calls on one plug-in take turns, in the order they were made; freeing the plug-in does not
/// stop calls already made, which still end with `done`. While an async call of a plug-in is
/// queued or running, its synchronous functions (`extism_plugin_call`, `extism_plugin_config`,
/// `extism_plugin_output_*`, `extism_plugin_reset`) fail at once with
/// `PLINTH_ERROR_KIND_BUSY` instead of waiting. `extism_plugin_cancel` stops the running call,
/// also while a host function waits (`PLINTH_ERROR_KIND_CANCELLED`), and `timeout_ms` counts
/// the time host functions wait (`PLINTH_ERROR_KIND_TIMEOUT`).
///
/// Returns true when the call was started. Returns false, without calling `done`, when
/// `plugin` or `done` is null (nothing reported), or when `func_name` is null or not UTF-8,
/// `data` is null with a non-zero `data_len`, or the worker threads cannot start: then
/// `extism_plugin_error` and `plinth_plugin_error_kind` say why.
#[no_mangle]
pub unsafe extern "C" fn plinth_plugin_call_async(
    plugin: *mut ExtismPlugin,
    func_name: *const c_char,
    data: *const u8,
    data_len: ExtismSize,
    done: PlinthCallDone,
    user_data: *mut c_void,
) -> bool {
    guard(false, || {
        let (Some(p), Some(done)) = (plugin.as_ref(), done) else {
            return false;
        };
        let Some(name) = str_arg(func_name) else {
            p.set_call_error(Some(bad_argument("function name is null or not UTF-8")));
            return false;
        };
        let Some(input) = bytes_arg(data, data_len) else {
            p.set_call_error(Some(bad_argument(
                "data is null but data_len is not 0, or data_len is larger than any buffer can be",
            )));
            return false;
        };
        let rt = match runtime() {
            Ok(rt) => rt,
            Err(message) => {
                p.set_call_error(Some((message, ErrorKind::Other)));
                return false;
            }
        };
        let done = Done {
            f: done,
            user_data,
            called: false,
        };
        let (name, input) = (name.to_string(), input.to_vec());
        p.slot.submit(
            rt,
            Box::new(move |mut plugin, queued| {
                Box::pin(async move {
                    let outcome = queued
                        .holding(plugin.call_async::<Vec<u8>>(&name, &input))
                        .await;
                    // The plug-in is released and the call leaves the queue before `done`
                    // runs, so that `done` may use the plug-in.
                    drop(plugin);
                    drop(queued);
                    let outcome = outcome.map_err(|e: Error| {
                        let rc = match e.code() {
                            0 => -1,
                            rc => rc,
                        };
                        (rc, e.to_string(), e.kind())
                    });
                    Box::new(move || done.finish(outcome)) as Finish
                })
            }),
        );
        true
    })
}
