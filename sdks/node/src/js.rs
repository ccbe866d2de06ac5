//! Thin, checked helpers over the raw Node-API calls the SDK needs, and a handle that keeps a
//! JavaScript value alive from Rust.
//!
//! Every function here must run on the JavaScript thread that owns `env`.

use std::ffi::c_void;
use std::ptr;

use napi::bindgen_prelude::{FromNapiValue, FunctionRef, ToNapiValue, TypeName, ValidateNapiValue};
use napi::{sys, Env, JsValue, Status, ValueType};

pub(crate) type Raw = sys::napi_value;

/// A JavaScript value received as an argument, kept raw so that the SDK can inspect it.
#[derive(Clone, Copy)]
pub struct JsArg(pub(crate) Raw);

impl FromNapiValue for JsArg {
    unsafe fn from_napi_value(_env: sys::napi_env, value: Raw) -> napi::Result<Self> {
        Ok(JsArg(value))
    }
}
impl TypeName for JsArg {
    fn type_name() -> &'static str {
        "unknown"
    }
    fn value_type() -> ValueType {
        ValueType::Unknown
    }
}
impl ValidateNapiValue for JsArg {}

/// A JavaScript value to return as it is.
pub struct JsOut(pub(crate) Raw);

impl ToNapiValue for JsOut {
    unsafe fn to_napi_value(_env: sys::napi_env, value: Self) -> napi::Result<Raw> {
        Ok(value.0)
    }
}
impl TypeName for JsOut {
    fn type_name() -> &'static str {
        "unknown"
    }
    fn value_type() -> ValueType {
        ValueType::Unknown
    }
}

/// What a JavaScript call threw.
pub(crate) struct Thrown(pub(crate) Raw);

/// The helpers, bound to one environment.
#[derive(Clone, Copy)]
pub(crate) struct Js(pub(crate) sys::napi_env);

fn status(code: sys::napi_status, what: &str) -> napi::Result<()> {
    if code == sys::Status::napi_ok {
        Ok(())
    } else {
        Err(napi::Error::new(
            Status::from(code),
            format!("{what} failed"),
        ))
    }
}

impl Js {
    pub(crate) fn new(env: &Env) -> Js {
        Js(env.raw())
    }

    pub(crate) fn env(self) -> Env {
        Env::from_raw(self.0)
    }

    pub(crate) fn type_of(self, v: Raw) -> napi::Result<i32> {
        let mut t = 0;
        status(unsafe { sys::napi_typeof(self.0, v, &mut t) }, "typeof")?;
        Ok(t)
    }

    pub(crate) fn is_nullish(self, v: Raw) -> napi::Result<bool> {
        let t = self.type_of(v)?;
        Ok(t == sys::ValueType::napi_undefined || t == sys::ValueType::napi_null)
    }

    pub(crate) fn undefined(self) -> napi::Result<Raw> {
        let mut v = ptr::null_mut();
        status(
            unsafe { sys::napi_get_undefined(self.0, &mut v) },
            "undefined",
        )?;
        Ok(v)
    }

    pub(crate) fn null(self) -> napi::Result<Raw> {
        let mut v = ptr::null_mut();
        status(unsafe { sys::napi_get_null(self.0, &mut v) }, "null")?;
        Ok(v)
    }

    pub(crate) fn string(self, s: &str) -> napi::Result<Raw> {
        let mut v = ptr::null_mut();
        status(
            unsafe {
                sys::napi_create_string_utf8(self.0, s.as_ptr().cast(), s.len() as isize, &mut v)
            },
            "creating a string",
        )?;
        Ok(v)
    }

    /// The value of a JavaScript string (no coercion).
    pub(crate) fn get_string(self, v: Raw) -> napi::Result<String> {
        let mut len = 0;
        status(
            unsafe { sys::napi_get_value_string_utf8(self.0, v, ptr::null_mut(), 0, &mut len) },
            "reading a string",
        )?;
        let mut buf = vec![0u8; len + 1];
        let mut written = 0;
        status(
            unsafe {
                sys::napi_get_value_string_utf8(
                    self.0,
                    v,
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    &mut written,
                )
            },
            "reading a string",
        )?;
        buf.truncate(written);
        Ok(String::from_utf8(buf)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
    }

    pub(crate) fn number(self, n: f64) -> napi::Result<Raw> {
        let mut v = ptr::null_mut();
        status(
            unsafe { sys::napi_create_double(self.0, n, &mut v) },
            "creating a number",
        )?;
        Ok(v)
    }

    pub(crate) fn get_number(self, v: Raw) -> napi::Result<f64> {
        let mut n = 0.0;
        status(
            unsafe { sys::napi_get_value_double(self.0, v, &mut n) },
            "reading a number",
        )?;
        Ok(n)
    }

    pub(crate) fn get_bool(self, v: Raw) -> napi::Result<bool> {
        let mut b = false;
        status(
            unsafe { sys::napi_get_value_bool(self.0, v, &mut b) },
            "reading a boolean",
        )?;
        Ok(b)
    }

    pub(crate) fn bigint(self, n: i64) -> napi::Result<Raw> {
        let mut v = ptr::null_mut();
        status(
            unsafe { sys::napi_create_bigint_int64(self.0, n, &mut v) },
            "creating a BigInt",
        )?;
        Ok(v)
    }

    /// A BigInt as i64, and whether it fit.
    pub(crate) fn get_bigint_i64(self, v: Raw) -> napi::Result<(i64, bool)> {
        let (mut n, mut lossless) = (0i64, false);
        status(
            unsafe { sys::napi_get_value_bigint_int64(self.0, v, &mut n, &mut lossless) },
            "reading a BigInt",
        )?;
        Ok((n, lossless))
    }

    /// A BigInt as u64, and whether it fit.
    pub(crate) fn get_bigint_u64(self, v: Raw) -> napi::Result<(u64, bool)> {
        let (mut n, mut lossless) = (0u64, false);
        status(
            unsafe { sys::napi_get_value_bigint_uint64(self.0, v, &mut n, &mut lossless) },
            "reading a BigInt",
        )?;
        Ok((n, lossless))
    }

    pub(crate) fn object(self) -> napi::Result<Raw> {
        let mut v = ptr::null_mut();
        status(
            unsafe { sys::napi_create_object(self.0, &mut v) },
            "creating an object",
        )?;
        Ok(v)
    }

    pub(crate) fn array(self, items: &[Raw]) -> napi::Result<Raw> {
        let mut v = ptr::null_mut();
        status(
            unsafe { sys::napi_create_array_with_length(self.0, items.len(), &mut v) },
            "creating an array",
        )?;
        for (i, item) in items.iter().enumerate() {
            status(
                unsafe { sys::napi_set_element(self.0, v, i as u32, *item) },
                "filling an array",
            )?;
        }
        Ok(v)
    }

    pub(crate) fn is_array(self, v: Raw) -> napi::Result<bool> {
        let mut b = false;
        status(unsafe { sys::napi_is_array(self.0, v, &mut b) }, "isArray")?;
        Ok(b)
    }

    pub(crate) fn array_items(self, v: Raw) -> napi::Result<Vec<Raw>> {
        let mut len = 0u32;
        status(
            unsafe { sys::napi_get_array_length(self.0, v, &mut len) },
            "array length",
        )?;
        (0..len)
            .map(|i| {
                let mut item = ptr::null_mut();
                status(
                    unsafe { sys::napi_get_element(self.0, v, i, &mut item) },
                    "array element",
                )?;
                Ok(item)
            })
            .collect()
    }

    /// `obj[name]`; a getter that throws gives an error.
    pub(crate) fn get(self, obj: Raw, name: &str) -> napi::Result<Raw> {
        let key = self.string(name)?;
        let mut v = ptr::null_mut();
        let code = unsafe { sys::napi_get_property(self.0, obj, key, &mut v) };
        self.check_call(code, "reading a property")?;
        Ok(v)
    }

    pub(crate) fn set(self, obj: Raw, name: &str, value: Raw) -> napi::Result<()> {
        let key = self.string(name)?;
        let code = unsafe { sys::napi_set_property(self.0, obj, key, value) };
        self.check_call(code, "setting a property")
    }

    /// The object's own enumerable string keys.
    pub(crate) fn keys(self, obj: Raw) -> napi::Result<Vec<String>> {
        let mut names = ptr::null_mut();
        let code = unsafe {
            sys::napi_get_all_property_names(
                self.0,
                obj,
                sys::KeyCollectionMode::own_only,
                sys::KeyFilter::enumerable | sys::KeyFilter::skip_symbols,
                sys::KeyConversion::numbers_to_strings,
                &mut names,
            )
        };
        self.check_call(code, "listing properties")?;
        self.array_items(names)?
            .into_iter()
            .map(|k| self.get_string(k))
            .collect()
    }

    /// The bytes of a Buffer or Uint8Array, or None for any other value. The slice is valid
    /// until JavaScript runs again.
    pub(crate) fn bytes<'a>(self, v: Raw) -> napi::Result<Option<&'a [u8]>> {
        let mut is = false;
        status(
            unsafe { sys::napi_is_typedarray(self.0, v, &mut is) },
            "isTypedArray",
        )?;
        if !is {
            return Ok(None);
        }
        let (mut kind, mut len, mut data) = (0, 0usize, ptr::null_mut::<c_void>());
        let (mut buffer, mut offset) = (ptr::null_mut(), 0usize);
        status(
            unsafe {
                sys::napi_get_typedarray_info(
                    self.0,
                    v,
                    &mut kind,
                    &mut len,
                    &mut data,
                    &mut buffer,
                    &mut offset,
                )
            },
            "reading a typed array",
        )?;
        if kind != sys::TypedarrayType::uint8_array {
            return Ok(None);
        }
        if len == 0 || data.is_null() {
            return Ok(Some(&[]));
        }
        Ok(Some(unsafe {
            std::slice::from_raw_parts(data as *const u8, len)
        }))
    }

    pub(crate) fn buffer(self, bytes: &[u8]) -> napi::Result<Raw> {
        let (mut v, mut data) = (ptr::null_mut(), ptr::null_mut());
        status(
            unsafe {
                sys::napi_create_buffer_copy(
                    self.0,
                    bytes.len(),
                    bytes.as_ptr().cast(),
                    &mut data,
                    &mut v,
                )
            },
            "creating a Buffer",
        )?;
        Ok(v)
    }

    pub(crate) fn is_promise(self, v: Raw) -> napi::Result<bool> {
        let mut b = false;
        status(
            unsafe { sys::napi_is_promise(self.0, v, &mut b) },
            "isPromise",
        )?;
        Ok(b)
    }

    pub(crate) fn global(self) -> napi::Result<Raw> {
        let mut v = ptr::null_mut();
        status(unsafe { sys::napi_get_global(self.0, &mut v) }, "global")?;
        Ok(v)
    }

    /// Calls `func` with `this` undefined. What it throws comes back as `Err(Ok(thrown))`;
    /// a failure of Node-API itself as `Err(Err(e))`.
    pub(crate) fn call(
        self,
        func: Raw,
        this: Raw,
        args: &[Raw],
    ) -> Result<Raw, Result<Thrown, napi::Error>> {
        let mut out = ptr::null_mut();
        let code = unsafe {
            sys::napi_call_function(self.0, this, func, args.len(), args.as_ptr(), &mut out)
        };
        match self.take_exception() {
            Ok(Some(thrown)) => Err(Ok(thrown)),
            Ok(None) if code == sys::Status::napi_ok => Ok(out),
            Ok(None) => Err(Err(napi::Error::new(
                Status::from(code),
                "calling a JavaScript function failed".to_string(),
            ))),
            Err(e) => Err(Err(e)),
        }
    }

    pub(crate) fn new_instance(self, ctor: Raw, args: &[Raw]) -> napi::Result<Raw> {
        let mut out = ptr::null_mut();
        let code =
            unsafe { sys::napi_new_instance(self.0, ctor, args.len(), args.as_ptr(), &mut out) };
        self.check_call(code, "constructing an object")?;
        Ok(out)
    }

    /// Takes and clears the pending exception, if there is one.
    pub(crate) fn take_exception(self) -> napi::Result<Option<Thrown>> {
        let mut pending = false;
        status(
            unsafe { sys::napi_is_exception_pending(self.0, &mut pending) },
            "checking for an exception",
        )?;
        if !pending {
            return Ok(None);
        }
        let mut e = ptr::null_mut();
        status(
            unsafe { sys::napi_get_and_clear_last_exception(self.0, &mut e) },
            "taking an exception",
        )?;
        Ok(Some(Thrown(e)))
    }

    /// Turns a Node-API status into a Rust error, keeping a thrown JavaScript value as it is.
    fn check_call(self, code: sys::napi_status, what: &str) -> napi::Result<()> {
        if code == sys::Status::napi_ok {
            return Ok(());
        }
        if let Some(Thrown(e)) = self.take_exception()? {
            return Err(self.rethrow(e));
        }
        status(code, what)
    }

    /// A Rust error that throws `value` itself when it reaches JavaScript.
    pub(crate) fn rethrow(self, value: Raw) -> napi::Error {
        napi::Error::from(unsafe {
            napi::bindgen_prelude::Unknown::from_raw_unchecked(self.0, value)
        })
    }

    /// `String(value)` for a primitive, or `name: message` for an error-like object, without
    /// letting a throwing getter or `toString` escape.
    pub(crate) fn describe(self, v: Raw) -> String {
        let text = (|| -> napi::Result<String> {
            let t = self.type_of(v)?;
            if t == sys::ValueType::napi_object || t == sys::ValueType::napi_function {
                let message = self.get(v, "message")?;
                let name = self.get(v, "name")?;
                let message = if self.type_of(message)? == sys::ValueType::napi_string {
                    self.get_string(message)?
                } else {
                    String::new()
                };
                let name = if self.type_of(name)? == sys::ValueType::napi_string {
                    self.get_string(name)?
                } else {
                    String::new()
                };
                return Ok(match (name.is_empty(), message.is_empty()) {
                    (false, false) => format!("{name}: {message}"),
                    (true, false) => message,
                    (false, true) => name,
                    (true, true) => "a non-Error object was thrown".to_string(),
                });
            }
            if t == sys::ValueType::napi_symbol {
                return Ok("a symbol was thrown".to_string());
            }
            let mut s = ptr::null_mut();
            status(
                unsafe { sys::napi_coerce_to_string(self.0, v, &mut s) },
                "String()",
            )?;
            self.get_string(s)
        })();
        let _ = self.take_exception();
        text.unwrap_or_else(|_| "an unprintable value was thrown".to_string())
    }
}

/// Keeps a JavaScript value alive for as long as Rust holds it. It may be dropped on any
/// thread: napi-rs sends the release back to the JavaScript thread.
pub(crate) struct JsHandle(FunctionRef<(), ()>);

impl JsHandle {
    pub(crate) fn new(js: Js, value: Raw) -> napi::Result<JsHandle> {
        // A holder object, because references to primitives need a newer Node-API version.
        let holder = js.object()?;
        js.set(holder, "value", value)?;
        // FunctionRef is napi-rs's reference with a thread-safe release; it does not check that
        // the value is a function.
        Ok(JsHandle(unsafe {
            FunctionRef::from_napi_value(js.0, holder)?
        }))
    }

    pub(crate) fn get(&self, js: Js) -> napi::Result<Raw> {
        let env = js.env();
        let holder = self.0.borrow_back(&env)?.raw();
        js.get(holder, "value")
    }
}
