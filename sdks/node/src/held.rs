//! [`Held`]: a JavaScript value of any type that Rust keeps alive.

use napi::bindgen_prelude::{ToNapiValue, Unknown};
use napi::Env;

/// A JavaScript value kept alive from Rust: a call's `hostContext` until its host functions
/// have run, the exception of a host function until the call's error is made. Any value may
/// be held (a string, `null`, an object), and a `Held` may be dropped on any thread.
///
/// napi-rs keeps such values in one place: the error it makes of a JavaScript exception, which
/// may be any value. It references the value through a holder object (Node-API before version
/// 10 references only objects) and sends the release back to the JavaScript thread when the
/// last owner drops elsewhere. `Held` is that error used as a box.
pub(crate) struct Held(napi::Error);

impl Held {
    /// Holds `value`.
    pub fn new(value: Unknown<'_>) -> Held {
        Held(napi::Error::from_unknown_without_coercion(value))
    }

    /// Holds the JavaScript value of `error`, a napi-rs error that came from a JavaScript
    /// exception (a failed `JSON.parse`).
    pub fn from_error(error: napi::Error) -> Held {
        Held(error)
    }

    /// The value. Only on the JavaScript thread of the environment that made it (elsewhere
    /// napi-rs gives a new `Error` with the same message instead).
    pub fn get<'env>(&self, env: &'env Env) -> napi::Result<Unknown<'env>> {
        self.0.try_clone()?.into_unknown(env)
    }
}
