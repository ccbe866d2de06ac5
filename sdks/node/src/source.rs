//! Reading what JavaScript passes in: plug-in sources, options, call inputs.

use std::sync::Arc;

use base64::Engine as _;
use napi::bindgen_prelude::{ClassInstance, FromNapiValue};
use napi::sys;
use plinth::{Manifest, PluginBuilder, Source};

use crate::error::Failure;
use crate::host::{type_error, HostFn, HostFunction};
use crate::js::{Js, JsArg, JsHandle, Raw};

/// A source error: a wrong argument type (TypeError) or a bad plug-in (PlinthError).
pub(crate) enum SourceError {
    Type(napi::Error),
    Plinth(Failure),
}

impl From<napi::Error> for SourceError {
    fn from(e: napi::Error) -> Self {
        SourceError::Type(e)
    }
}

impl SourceError {
    pub fn into_napi(self, env: &napi::Env) -> napi::Error {
        match self {
            SourceError::Type(e) => e,
            SourceError::Plinth(f) => f.into_napi(env),
        }
    }
}

/// `PluginSource`: bytes (wasm, WAT or manifest), a file path, or a manifest object.
pub(crate) fn parse_source(js: Js, v: Raw) -> Result<Source, SourceError> {
    if let Some(bytes) = js.bytes(v)? {
        return Ok(Source::Bytes(bytes.to_vec()));
    }
    let t = js.type_of(v)?;
    if t == sys::ValueType::napi_string {
        let path = js.get_string(v)?;
        let bytes = std::fs::read(&path).map_err(|e| {
            SourceError::Plinth(Failure::new(
                "Io",
                format!("cannot read plug-in file {path}: {e}"),
            ))
        })?;
        // A manifest file: read it as one, so that its relative paths are taken from its
        // directory.
        if !bytes.starts_with(b"\0asm") && Manifest::looks_like_manifest(&bytes) {
            return Manifest::from_file(&path)
                .map(Source::Manifest)
                .map_err(|e| SourceError::Plinth(Failure::from_load(e.into())));
        }
        return Ok(Source::Bytes(bytes));
    }
    if t == sys::ValueType::napi_object && !js.is_array(v)? {
        let json = to_json(js, v, 0)?.unwrap_or(serde_json::Value::Null);
        let text = serde_json::to_string(&json).expect("a JSON value serializes");
        return Manifest::from_json(&text)
            .map(Source::Manifest)
            .map_err(|e| SourceError::Plinth(Failure::from_load(e.into())));
    }
    Err(SourceError::Type(type_error(
        js,
        "a plug-in source must be a Buffer or Uint8Array (wasm, WAT or manifest JSON), a file path string, or a manifest object",
    )))
}

/// A manifest object as JSON: bytes (Buffer, Uint8Array) become base64 strings, and, as in
/// `JSON.stringify`, undefined, functions and symbols are left out.
fn to_json(js: Js, v: Raw, depth: u32) -> napi::Result<Option<serde_json::Value>> {
    use serde_json::Value;
    if depth > 32 {
        return Err(type_error(
            js,
            "the manifest is nested too deeply (does it contain a cycle?)",
        ));
    }
    let t = js.type_of(v)?;
    Ok(Some(match t {
        sys::ValueType::napi_null => Value::Null,
        sys::ValueType::napi_boolean => Value::Bool(js.get_bool(v)?),
        sys::ValueType::napi_number => {
            let f = js.get_number(v)?;
            if f.fract() == 0.0 && f.abs() < 9.2e18 {
                Value::from(f as i64)
            } else {
                serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)
            }
        }
        sys::ValueType::napi_bigint => {
            let (n, lossless) = js.get_bigint_i64(v)?;
            let (u, lossless_u) = js.get_bigint_u64(v)?;
            match (lossless, lossless_u) {
                (true, _) => Value::from(n),
                (_, true) => Value::from(u),
                _ => return Err(type_error(js, "a BigInt in the manifest is out of range")),
            }
        }
        sys::ValueType::napi_string => Value::String(js.get_string(v)?),
        sys::ValueType::napi_object => {
            if let Some(bytes) = js.bytes(v)? {
                Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else if js.is_array(v)? {
                let mut items = Vec::new();
                for item in js.array_items(v)? {
                    items.push(to_json(js, item, depth + 1)?.unwrap_or(Value::Null));
                }
                Value::Array(items)
            } else {
                let mut map = serde_json::Map::new();
                for key in js.keys(v)? {
                    let value = js.get(v, &key)?;
                    if let Some(value) = to_json(js, value, depth + 1)? {
                        map.insert(key, value);
                    }
                }
                Value::Object(map)
            }
        }
        _ => return Ok(None),
    }))
}

/// `PluginOptions`.
#[derive(Clone, Default)]
pub(crate) struct Options {
    pub wasi: bool,
    pub functions: Vec<Arc<HostFn>>,
    pub fuel: Option<u64>,
}

impl Options {
    pub fn builder(&self, source: Source) -> PluginBuilder {
        let mut b = PluginBuilder::new(source)
            .with_wasi(self.wasi)
            .with_functions(self.functions.iter().map(|f| f.to_function()));
        if let Some(fuel) = self.fuel {
            b = b.with_fuel_limit(fuel);
        }
        b
    }
}

fn check_object(js: Js, v: Raw, what: &str) -> napi::Result<bool> {
    if js.is_nullish(v)? {
        return Ok(false);
    }
    if js.type_of(v)? != sys::ValueType::napi_object {
        return Err(type_error(js, &format!("{what} must be an object")));
    }
    Ok(true)
}

pub(crate) fn parse_options(js: Js, v: Option<JsArg>) -> napi::Result<Options> {
    let mut o = Options::default();
    let Some(JsArg(v)) = v else { return Ok(o) };
    if !check_object(js, v, "plug-in options")? {
        return Ok(o);
    }
    for key in js.keys(v)? {
        let value = js.get(v, &key)?;
        if js.type_of(value)? == sys::ValueType::napi_undefined {
            continue;
        }
        match key.as_str() {
            "wasi" => {
                if js.type_of(value)? != sys::ValueType::napi_boolean {
                    return Err(type_error(js, "`wasi` must be a boolean"));
                }
                o.wasi = js.get_bool(value)?;
            }
            "functions" => {
                if !js.is_array(value)? {
                    return Err(type_error(js, "`functions` must be an array of HostFunction"));
                }
                for item in js.array_items(value)? {
                    let f = unsafe { ClassInstance::<HostFunction>::from_napi_value(js.0, item) }
                        .map_err(|_| type_error(js, "`functions` must contain only HostFunction objects"))?;
                    o.functions.push(f.inner.clone());
                }
            }
            "fuelLimit" => o.fuel = Some(parse_fuel(js, value)?),
            other => {
                return Err(type_error(
                    js,
                    &format!("unknown plug-in option `{other}`; the options are wasi, functions and fuelLimit"),
                ))
            }
        }
    }
    Ok(o)
}

fn parse_fuel(js: Js, v: Raw) -> napi::Result<u64> {
    let t = js.type_of(v)?;
    if t == sys::ValueType::napi_bigint {
        let (n, lossless) = js.get_bigint_u64(v)?;
        if lossless {
            return Ok(n);
        }
    } else if t == sys::ValueType::napi_number {
        let f = js.get_number(v)?;
        if f >= 0.0 && f.fract() == 0.0 && f <= 9007199254740991.0 {
            return Ok(f as u64);
        }
    }
    Err(type_error(
        js,
        "`fuelLimit` must be a non-negative integer (number or BigInt)",
    ))
}

/// `CallInput`: the bytes of a Buffer or Uint8Array, a string as UTF-8, or nothing.
pub(crate) fn parse_input(js: Js, v: Option<JsArg>) -> napi::Result<Vec<u8>> {
    let Some(JsArg(v)) = v else {
        return Ok(Vec::new());
    };
    if let Some(bytes) = js.bytes(v)? {
        return Ok(bytes.to_vec());
    }
    let t = js.type_of(v)?;
    if t == sys::ValueType::napi_string {
        return Ok(js.get_string(v)?.into_bytes());
    }
    if t == sys::ValueType::napi_undefined || t == sys::ValueType::napi_null {
        return Ok(Vec::new());
    }
    Err(type_error(
        js,
        "a call input must be a Buffer, a Uint8Array or a string",
    ))
}

/// `CallOptions`: the host context.
pub(crate) fn parse_call_options(js: Js, v: Option<JsArg>) -> napi::Result<Option<JsHandle>> {
    let Some(JsArg(v)) = v else { return Ok(None) };
    if !check_object(js, v, "call options")? {
        return Ok(None);
    }
    let mut context = None;
    for key in js.keys(v)? {
        let value = js.get(v, &key)?;
        match key.as_str() {
            "hostContext" => {
                if !js.is_nullish(value)? || js.type_of(value)? == sys::ValueType::napi_null {
                    context = Some(JsHandle::new(js, value)?);
                }
            }
            other => {
                return Err(type_error(
                    js,
                    &format!("unknown call option `{other}`; the only option is hostContext"),
                ))
            }
        }
    }
    Ok(context)
}

/// `JSON.stringify(value)` (undefined becomes `null`).
pub(crate) fn json_stringify(js: Js, v: Raw) -> napi::Result<Vec<u8>> {
    let json = js.get(js.global()?, "JSON")?;
    let stringify = js.get(json, "stringify")?;
    let out = js.call(stringify, json, &[v]).map_err(|e| match e {
        Ok(thrown) => js.rethrow(thrown.0),
        Err(e) => e,
    })?;
    if js.type_of(out)? == sys::ValueType::napi_string {
        Ok(js.get_string(out)?.into_bytes())
    } else {
        Ok(b"null".to_vec())
    }
}
