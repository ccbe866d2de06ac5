//! Errors: every failure the SDK reports reaches JavaScript as a `PlinthError` (defined in
//! index.js) with a message, the core's error kind (`kind`, and `kindCode` from it) and the
//! Extism return code (`code`).

use napi::bindgen_prelude::{FnArgs, JsTypeError, ToNapiValue, Unknown};
use napi::{Env, Status};
use plinth::ErrorKind;

use crate::held::Held;
use crate::{unscoped, Registered};

/// A failure on its way to JavaScript. Plain data, so that it can cross threads.
pub(crate) struct Failure {
    pub kind: ErrorKind,
    pub message: String,
    /// `plinth::Error::code()`: the plug-in's own code, 134 for a trap, -1 otherwise.
    pub code: i32,
    /// What a JavaScript host function threw, or the `SyntaxError` of `JSON.parse`: the
    /// error's `cause`.
    pub cause: Option<Held>,
}

impl From<plinth::Error> for Failure {
    fn from(e: plinth::Error) -> Failure {
        Failure::of(&e)
    }
}

impl Failure {
    /// The failure of an error that is kept elsewhere too (a hot plug-in's last reload error).
    pub fn of(e: &plinth::Error) -> Failure {
        Failure {
            kind: e.kind(),
            code: e.code(),
            message: e.to_string(),
            cause: None,
        }
    }

    /// A failure the SDK finds itself, of one of the core's kinds; its code is -1, as for
    /// every failure that is not the plug-in's own.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Failure {
        Failure {
            kind,
            message: message.into(),
            code: -1,
            cause: None,
        }
    }

    /// A Rust error that throws (or rejects with) this failure's `PlinthError`.
    pub fn into_napi(self, env: &Env) -> napi::Error {
        let message = self.message.clone();
        match self.into_js(env) {
            Ok(error) => napi::Error::from_unknown_without_coercion(error),
            // No PlinthError (index.js did not register it): a plain Error with the message.
            Err(_) => napi::Error::new(Status::GenericFailure, message),
        }
    }

    /// This failure's `PlinthError`.
    pub fn into_js(self, env: &Env) -> napi::Result<Unknown<'_>> {
        let class = Registered::get(env)?.error_class.borrow_back(env)?;
        let cause = match &self.cause {
            Some(held) => held.get(env)?,
            None => ().into_unknown(env)?,
        };
        let args = (self.message, self.kind.name(), self.code, unscoped(cause)?);
        class.new_instance(FnArgs::from(args))
    }
}

/// Shorthand for results whose error is a [`Failure`].
pub(crate) type Fallible<T> = Result<T, Failure>;

/// Converts a [`Failure`] result for a method that JavaScript called.
pub(crate) fn throw<T>(env: &Env, r: Fallible<T>) -> napi::Result<T> {
    r.map_err(|f| f.into_napi(env))
}

/// A `TypeError`: an argument JavaScript passed is not what the SDK accepts.
pub(crate) fn type_error(env: &Env, message: impl Into<String>) -> napi::Error {
    let message = message.into();
    let error = JsTypeError::from(napi::Error::new(Status::InvalidArg, message)).into_unknown(*env);
    napi::Error::from_unknown_without_coercion(error)
}
