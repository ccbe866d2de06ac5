//! Errors: every failure the SDK reports reaches JavaScript as a `PlinthError` (defined in
//! index.js) with the runtime's message, a `kind` and a `code`.

use napi::Env;

use crate::js::{Js, JsHandle, Raw};

/// A failure on its way to JavaScript. Plain data, so it can cross threads.
pub(crate) struct Failure {
    pub kind: &'static str,
    pub message: String,
    /// The call's return code (see `PlinthError.code`); None outside calls.
    pub code: Option<i32>,
    /// What a JavaScript host function threw, for `error.cause`.
    pub cause: Option<JsHandle>,
}

impl Failure {
    pub fn new(kind: &'static str, message: impl Into<String>) -> Failure {
        Failure {
            kind,
            message: message.into(),
            code: None,
            cause: None,
        }
    }

    /// An error from loading a plug-in or changing its settings: no return code.
    pub fn from_load(e: plinth::Error) -> Failure {
        Failure::new(kind_of(&e), e.to_string())
    }

    /// An error from a call: carries the call's return code.
    pub fn from_call(e: plinth::Error) -> Failure {
        Failure {
            code: Some(e.code()),
            ..Failure::from_load(e)
        }
    }

    pub fn closed() -> Failure {
        Failure::new(
            "Closed",
            "the plug-in is closed; make a new one (close() was called on it)",
        )
    }

    /// The JavaScript error for this failure. Falls back to a plain Error with the same
    /// properties when index.js has not registered the PlinthError class.
    pub fn into_js(self, js: Js) -> napi::Result<Raw> {
        let message = js.string(&self.message)?;
        let kind = js.string(self.kind)?;
        let code = match self.code {
            Some(c) => js.number(c as f64)?,
            None => js.null()?,
        };
        let cause = match &self.cause {
            Some(h) => h.get(js)?,
            None => js.undefined()?,
        };
        let class = js
            .env()
            .get_instance_data::<ErrorClass>()?
            .map(|c| c.0.get(js))
            .transpose()?;
        if let Some(class) = class {
            return js.new_instance(class, &[message, kind, code, cause]);
        }
        let mut err = std::ptr::null_mut();
        let status =
            unsafe { napi::sys::napi_create_error(js.0, std::ptr::null_mut(), message, &mut err) };
        if status != napi::sys::Status::napi_ok {
            return Err(napi::Error::from_reason(self.message));
        }
        js.set(err, "name", js.string("PlinthError")?)?;
        js.set(err, "kind", kind)?;
        js.set(err, "code", code)?;
        if self.cause.is_some() {
            js.set(err, "cause", cause)?;
        }
        Ok(err)
    }

    /// A Rust error that throws (or rejects with) this failure's `PlinthError`.
    pub fn into_napi(self, env: &Env) -> napi::Error {
        let js = Js::new(env);
        let fallback = self.message.clone();
        match self.into_js(js) {
            Ok(value) => js.rethrow(value),
            Err(_) => napi::Error::from_reason(fallback),
        }
    }
}

/// The `PlinthError` class that index.js registers (one per JavaScript environment).
pub(crate) struct ErrorClass(pub JsHandle);

/// The `kind` of a runtime error: the name of its `plinth::Error` variant.
fn kind_of(e: &plinth::Error) -> &'static str {
    use plinth::Error as E;
    match e {
        E::Manifest(_) => "Manifest",
        E::InvalidManifest(_) => "Manifest",
        E::Compile { .. } => "Compile",
        E::Link(_) => "Link",
        E::FunctionNotFound { .. } => "FunctionNotFound",
        E::NotCallable { .. } => "NotCallable",
        E::Trap { .. } => "Trap",
        E::Guest { .. } => "Guest",
        E::Exit { .. } => "Exit",
        E::Timeout { .. } => "Timeout",
        E::Cancelled { .. } => "Cancelled",
        E::OutOfMemory { .. } => "OutOfMemory",
        E::OutOfFuel { .. } => "OutOfFuel",
        E::HttpDenied { .. } => "HttpDenied",
        E::Http(_) => "Http",
        E::VarStoreFull { .. } => "VarStoreFull",
        E::HostFunction { .. } => "HostFunction",
        E::Reentrant { .. } => "Reentrant",
        E::Wasi(_) => "Wasi",
        E::Convert(_) => "Convert",
        E::Memory(_) => "Memory",
        _ => "Other",
    }
}

/// Shorthand for results whose error is a [`Failure`].
pub(crate) type Fallible<T> = Result<T, Failure>;

/// Converts a [`Failure`] result for a synchronous method.
pub(crate) fn throw<T>(env: &Env, r: Fallible<T>) -> napi::Result<T> {
    r.map_err(|f| f.into_napi(env))
}
