//! What JavaScript passes in: plug-in sources, options, call inputs, JSON values.
//!
//! The option objects are `#[napi(object)]` structs, so that napi-rs writes their TypeScript
//! interfaces from the fields and doc comments below. They convert themselves from
//! JavaScript (`object_from_js = false` and a `FromNapiValue` here) because they reject
//! unknown keys: a misspelt `fuelLimit` must not go unnoticed in JavaScript, where no compiler
//! checks it.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use napi::bindgen_prelude::{
    Array, BigInt, ClassInstance, Either, FromNapiValue, JsObjectValue, Object, Uint8ArraySlice,
    Unknown,
};
use napi::{sys, Env, JsValue, ValueType};
use napi_derive::napi;
use plinth::{Manifest, PluginBuilder, Source};
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::abort::{listen, Abort, Listening};
use crate::error::{type_error, Failure};
use crate::held::Held;
use crate::host::{HostFn, HostFunction};
use crate::{unscoped, Registered};

/// A plug-in source, `PluginSource` in TypeScript (src/binding-header.d.ts, since it includes
/// the manifest's JSON shape): bytes (wasm, WAT or a manifest), a file path, or a manifest
/// object. It is the core's `Source`: bytes are told apart by their content, a file by its
/// content too (a manifest file's relative paths are relative to its folder), and a manifest
/// object is checked by the core's manifest parser.
pub struct PluginSource(pub(crate) Source);

impl FromNapiValue for PluginSource {
    unsafe fn from_napi_value(env: sys::napi_env, value: sys::napi_value) -> napi::Result<Self> {
        let (env, value) = (Env::from_raw(env), Unknown::from_napi_value(env, value)?);
        let wrong = || {
            type_error(
                &env,
                "a plug-in source must be a Buffer or Uint8Array (wasm, WAT or manifest JSON), a file path string, or a manifest object",
            )
        };
        Ok(PluginSource(match value.get_type()? {
            ValueType::String => Source::file(String::from_unknown(value)?),
            ValueType::Object if value.is_typedarray()? => Source::Bytes(
                Uint8ArraySlice::from_unknown(value)
                    .map_err(|_| wrong())?
                    .to_vec(),
            ),
            ValueType::Object if !value.is_array()? => {
                let json = env.from_js_value::<ManifestJson, _>(value).map_err(|e| {
                    type_error(&env, format!("cannot read the manifest: {}", e.reason))
                })?;
                let text = serde_json::to_string(&json.0).expect("a JSON value serializes");
                let manifest = Manifest::from_json(&text)
                    .map_err(|e| Failure::from(plinth::Error::from(e)).into_napi(&env))?;
                Source::Manifest(manifest)
            }
            _ => return Err(wrong()),
        }))
    }
}

/// A call's input, `CallInput` in TypeScript (src/binding-header.d.ts): bytes, or a string
/// sent as UTF-8; nothing (`undefined` or `null`) is empty input. The bytes are copied: the
/// call may run JavaScript (host functions) or run on another thread, and JavaScript may
/// change a Buffer meanwhile.
pub struct CallInput(pub(crate) Vec<u8>);

impl FromNapiValue for CallInput {
    unsafe fn from_napi_value(env: sys::napi_env, value: sys::napi_value) -> napi::Result<Self> {
        let (env, value) = (Env::from_raw(env), Unknown::from_napi_value(env, value)?);
        let wrong = || {
            type_error(
                &env,
                "a call input must be a Buffer, a Uint8Array or a string",
            )
        };
        Ok(CallInput(match value.get_type()? {
            ValueType::String => String::from_unknown(value)?.into_bytes(),
            ValueType::Object if value.is_typedarray()? => Uint8ArraySlice::from_unknown(value)
                .map_err(|_| wrong())?
                .to_vec(),
            _ => return Err(wrong()),
        }))
    }
}

impl CallInput {
    pub fn bytes(input: Option<CallInput>) -> Vec<u8> {
        input.map(|i| i.0).unwrap_or_default()
    }
}

/// Bytes that are not a plug-in source nor a call input (a precompiled artifact, its key):
/// `Buffer | Uint8Array` in TypeScript (`ts_arg_type` where it is taken), copied. Anything else
/// is a `TypeError`.
pub struct Bytes(pub(crate) Vec<u8>);

impl FromNapiValue for Bytes {
    unsafe fn from_napi_value(env: sys::napi_env, value: sys::napi_value) -> napi::Result<Self> {
        let (env, value) = (Env::from_raw(env), Unknown::from_napi_value(env, value)?);
        if value.get_type()? == ValueType::Object && value.is_typedarray()? {
            if let Ok(bytes) = Uint8ArraySlice::from_unknown(value) {
                return Ok(Bytes(bytes.to_vec()));
            }
        }
        Err(type_error(
            &env,
            "an artifact and its key must be a Buffer or a Uint8Array",
        ))
    }
}

/// Config changes, `ConfigChanges` in TypeScript (src/binding-header.d.ts): keys to set to a
/// string (numbers, booleans and BigInts become their JavaScript strings), or to remove
/// (`null` or `undefined`).
pub struct ConfigChanges(pub(crate) Vec<(String, Option<String>)>);

impl FromNapiValue for ConfigChanges {
    unsafe fn from_napi_value(env: sys::napi_env, value: sys::napi_value) -> napi::Result<Self> {
        let (env, value) = (Env::from_raw(env), Unknown::from_napi_value(env, value)?);
        if value.get_type()? != ValueType::Object || value.is_array()? {
            return Err(type_error(
                &env,
                "updateConfig takes an object of config keys",
            ));
        }
        let object = Object::from_unknown(value)?;
        let mut changes = Vec::new();
        for key in Object::keys(&object)? {
            let v = object.get::<Unknown>(&key)?;
            let v = match v {
                None => None,
                Some(v) => match v.get_type()? {
                    ValueType::Null => None,
                    ValueType::String => Some(String::from_unknown(v)?),
                    ValueType::Number | ValueType::Boolean | ValueType::BigInt => {
                        Some(v.coerce_to_string()?.into_utf8()?.into_owned()?)
                    }
                    _ => {
                        return Err(type_error(
                            &env,
                            format!(
                            "config value `{key}` must be a string, a number, a boolean or null"
                        ),
                        ))
                    }
                },
            };
            changes.push((key, v));
        }
        Ok(ConfigChanges(changes))
    }
}

/// `JSON.stringify(value)`; `undefined` (and anything else JSON has no text for) becomes
/// `null`. What `JSON.stringify` throws (a BigInt, a cycle) is thrown as it is.
pub(crate) fn json_stringify(env: &Env, value: Option<Unknown<'_>>) -> napi::Result<Vec<u8>> {
    let Some(value) = value else {
        return Ok(b"null".to_vec());
    };
    let stringify = Registered::get(env)?.json_stringify.borrow_back(env)?;
    Ok(stringify
        .call(unscoped(value)?)?
        .map_or_else(|| b"null".to_vec(), String::into_bytes))
}

/// Options of `new Plugin(..)`, `Plugin.load(..)`, `new CompiledPlugin(..)` and
/// `CompiledPlugin.load(..)`. Unknown keys are rejected with a `TypeError`.
#[napi(object, object_from_js = false, object_to_js = false)]
pub struct PluginOptions<'a> {
    /// WASI preview 1 for the plug-in (default false).
    pub wasi: Option<bool>,
    /// Host functions the plug-in may import.
    pub functions: Option<Vec<ClassInstance<'a, HostFunction>>>,
    /// Caps the work of each call (roughly, wasm instructions); refilled for every call. A
    /// non-negative integer.
    pub fuel_limit: Option<Either<f64, BigInt>>,
    /// Caps the output of each streaming call (`callStream`), in bytes: a plug-in that writes
    /// more fails with kind `"stream"` after the bytes up to the cap were written. No cap by
    /// default. A non-negative integer.
    pub output_limit: Option<Either<f64, BigInt>>,
}

/// [`PluginOptions`] read, so that they can go to another thread and be used for a builder.
#[derive(Clone, Default)]
pub(crate) struct Settings {
    wasi: bool,
    functions: Vec<Arc<HostFn>>,
    fuel: Option<u64>,
    output_limit: Option<u64>,
}

impl Settings {
    /// Whether a host function is async: then calls must await (`call_async`).
    pub fn has_async(&self) -> bool {
        self.functions.iter().any(|f| f.is_async())
    }

    pub fn new(options: Option<PluginOptions<'_>>) -> Settings {
        let Some(o) = options else {
            return Settings::default();
        };
        Settings {
            wasi: o.wasi.unwrap_or(false),
            functions: o
                .functions
                .iter()
                .flatten()
                .map(|f| f.inner.clone())
                .collect(),
            // Checked when the options were read.
            fuel: o.fuel_limit.as_ref().and_then(|f| whole_number(f).ok()),
            output_limit: o.output_limit.as_ref().and_then(|f| whole_number(f).ok()),
        }
    }

    pub fn builder(&self, source: Source) -> PluginBuilder {
        self.configure(PluginBuilder::new(source))
    }

    /// Adds these settings to `b` (a builder made some other way, from an artifact say).
    pub fn configure(&self, b: PluginBuilder) -> PluginBuilder {
        let mut b = b.with_wasi(self.wasi).with_functions(
            self.functions
                .iter()
                .map(|f| f.to_function(self.has_async())),
        );
        if let Some(fuel) = self.fuel {
            b = b.with_fuel_limit(fuel);
        }
        if let Some(bytes) = self.output_limit {
            b = b.with_output_limit(bytes);
        }
        b
    }
}

/// The keys of [`PluginOptions`].
const PLUGIN_OPTIONS: [&str; 4] = ["wasi", "functions", "fuelLimit", "outputLimit"];

impl<'a> FromNapiValue for PluginOptions<'a> {
    unsafe fn from_napi_value(env: sys::napi_env, value: sys::napi_value) -> napi::Result<Self> {
        let (env, value) = (Env::from_raw(env), Unknown::from_napi_value(env, value)?);
        let o = options_object(&env, value, "plug-in option", &PLUGIN_OPTIONS)?;
        PluginOptions::read(&env, &o)
    }
}

impl<'a> PluginOptions<'a> {
    /// Reads the plug-in options of `o`, whose keys were checked.
    fn read(env: &Env, o: &Object<'a>) -> napi::Result<Self> {
        let env = *env;
        let wasi = match o.get::<Unknown>("wasi")? {
            None => None,
            Some(v) if v.get_type()? == ValueType::Boolean => Some(bool::from_unknown(v)?),
            Some(_) => return Err(type_error(&env, "`wasi` must be a boolean")),
        };
        let functions = match o.get::<Unknown>("functions")? {
            None => None,
            Some(v) if v.is_array()? => {
                let list = Array::from_unknown(v)?;
                let mut functions = Vec::with_capacity(list.len() as usize);
                for i in 0..list.len() {
                    let item = list
                        .get::<Unknown>(i)?
                        .ok_or_else(not_host_function(&env))?;
                    functions.push(
                        ClassInstance::<HostFunction>::from_unknown(item)
                            .map_err(|_| not_host_function(&env)())?,
                    );
                }
                Some(functions)
            }
            Some(_) => return Err(not_host_function(&env)()),
        };
        let fuel_limit = match o.get::<Unknown>("fuelLimit")? {
            None => None,
            Some(v) => {
                let n = match v.get_type()? {
                    ValueType::Number => Either::A(f64::from_unknown(v)?),
                    ValueType::BigInt => Either::B(BigInt::from_unknown(v)?),
                    _ => return Err(fuel_error(&env)),
                };
                whole_number(&n).map_err(|()| fuel_error(&env))?;
                Some(n)
            }
        };
        let output_limit = match o.get::<Unknown>("outputLimit")? {
            None => None,
            Some(v) => {
                let error = || {
                    type_error(
                        &env,
                        "`outputLimit` must be a non-negative integer of bytes (number or BigInt)",
                    )
                };
                let n = match v.get_type()? {
                    ValueType::Number => Either::A(f64::from_unknown(v)?),
                    ValueType::BigInt => Either::B(BigInt::from_unknown(v)?),
                    _ => return Err(error()),
                };
                whole_number(&n).map_err(|()| error())?;
                Some(n)
            }
        };
        Ok(PluginOptions {
            wasi,
            functions,
            fuel_limit,
            output_limit,
        })
    }
}

/// Options of `new HotPlugin(..)`: `HotPluginOptions` in TypeScript (src/binding-header.d.ts,
/// which states that they extend [`PluginOptions`]). Unknown keys are rejected with a
/// `TypeError`.
pub struct HotPluginOptions<'a> {
    pub plugin: PluginOptions<'a>,
    /// How often calls look at the file; `None`: never (only `check()` does).
    pub check_interval: Option<Duration>,
    pub require_exports: Vec<String>,
}

impl<'a> FromNapiValue for HotPluginOptions<'a> {
    unsafe fn from_napi_value(env: sys::napi_env, value: sys::napi_value) -> napi::Result<Self> {
        let (env, value) = (Env::from_raw(env), Unknown::from_napi_value(env, value)?);
        let mut known = PLUGIN_OPTIONS.to_vec();
        known.extend(["checkIntervalMs", "requireExports"]);
        let o = options_object(&env, value, "HotPlugin option", &known)?;
        let interval_error = || {
            type_error(
                &env,
                "`checkIntervalMs` must be a number of milliseconds, 0 or more, or null (calls never check)",
            )
        };
        // `Object::get` gives `undefined` as `None`, and `null` as a value.
        let check_interval = match o.get::<Unknown>("checkIntervalMs")? {
            None => Some(plinth::reload::DEFAULT_CHECK_INTERVAL),
            Some(v) => match v.get_type()? {
                ValueType::Null => None,
                ValueType::Number => {
                    let ms = f64::from_unknown(v)?;
                    let interval =
                        Duration::try_from_secs_f64(ms / 1000.0).map_err(|_| interval_error())?;
                    Some(interval)
                }
                _ => return Err(interval_error()),
            },
        };
        let exports_error = || type_error(&env, "`requireExports` must be an array of strings");
        let require_exports = match o.get::<Unknown>("requireExports")? {
            None => Vec::new(),
            Some(v) if v.is_array()? => {
                let list = Array::from_unknown(v)?;
                let mut names = Vec::with_capacity(list.len() as usize);
                for i in 0..list.len() {
                    match list.get::<Unknown>(i)? {
                        Some(s) if s.get_type()? == ValueType::String => {
                            names.push(String::from_unknown(s)?)
                        }
                        _ => return Err(exports_error()),
                    }
                }
                names
            }
            Some(_) => return Err(exports_error()),
        };
        Ok(HotPluginOptions {
            plugin: PluginOptions::read(&env, &o)?,
            check_interval,
            require_exports,
        })
    }
}

fn not_host_function(env: &Env) -> impl Fn() -> napi::Error + '_ {
    || type_error(env, "`functions` must be an array of HostFunction objects")
}

fn fuel_error(env: &Env) -> napi::Error {
    type_error(
        env,
        "`fuelLimit` must be a non-negative integer (number or BigInt)",
    )
}

/// A non-negative integer given as a number (exact, so at most 2^53 - 1) or a BigInt.
pub(crate) fn whole_number(n: &Either<f64, BigInt>) -> Result<u64, ()> {
    match n {
        Either::A(f) if *f >= 0.0 && f.fract() == 0.0 && *f <= 9007199254740991.0 => Ok(*f as u64),
        Either::B(b) => match b.get_u64() {
            (false, n, true) => Ok(n),
            _ => Err(()),
        },
        _ => Err(()),
    }
}

/// Options of a call (`call`, `callSync`, `callString`, ...). Unknown keys are rejected with a
/// `TypeError`.
#[napi(object, object_from_js = false, object_to_js = false)]
pub struct CallOptions<'a> {
    /// Any value, handed to the host functions of this one call as
    /// `CurrentPlugin.hostContext`.
    pub host_context: Option<Unknown<'a>>,
    /// Aborting it cancels this call: it rejects with a `PlinthError` of kind `"cancelled"`.
    /// A call still waiting for its turn on the plug-in never runs; a running one stops, also
    /// while an async host function's Promise is pending. An already aborted signal cancels at
    /// once (the `*Sync` methods check only that).
    #[napi(ts_type = "AbortSignal")]
    pub signal: Option<Object<'a>>,
}

/// A call's options as the call keeps them.
#[derive(Default)]
pub(crate) struct CallSettings {
    pub host_context: Option<Held>,
    pub abort: Option<Arc<Abort>>,
    pub listening: Option<Listening>,
}

impl CallSettings {
    /// Reads `options`, listening to its signal (see `abort.rs`).
    pub fn new(env: &Env, options: Option<CallOptions<'_>>) -> napi::Result<CallSettings> {
        let Some(o) = options else {
            return Ok(CallSettings::default());
        };
        let (abort, listening) = match o.signal {
            Some(signal) => {
                let (abort, listening) = listen(env, signal)?;
                (Some(abort), listening)
            }
            None => (None, None),
        };
        Ok(CallSettings {
            host_context: o.host_context.map(Held::new),
            abort,
            listening,
        })
    }
}

impl<'a> FromNapiValue for CallOptions<'a> {
    unsafe fn from_napi_value(env: sys::napi_env, value: sys::napi_value) -> napi::Result<Self> {
        let (env, value) = (Env::from_raw(env), Unknown::from_napi_value(env, value)?);
        let o = options_object(&env, value, "call option", &["hostContext", "signal"])?;
        let signal = match o.get::<Unknown>("signal")? {
            None => None,
            Some(v) if is_signal(v)? => Some(Object::from_unknown(v)?),
            Some(_) => {
                return Err(type_error(
                    &env,
                    "`signal` must be an AbortSignal (from an AbortController)",
                ))
            }
        };
        Ok(CallOptions {
            // `null` is a value to hand over; only `undefined` means none.
            host_context: o.get::<Unknown>("hostContext")?,
            signal,
        })
    }
}

/// Whether `v` looks like an AbortSignal: an object with `aborted` and `addEventListener`.
fn is_signal(v: Unknown<'_>) -> napi::Result<bool> {
    if v.get_type()? != ValueType::Object {
        return Ok(false);
    }
    let o = Object::from_unknown(v)?;
    let listen = o.get::<Unknown>("addEventListener")?;
    Ok(o.has_named_property("aborted")?
        && matches!(listen.map(|f| f.get_type()), Some(Ok(ValueType::Function))))
}

/// Options of `new HostFunction(..)`. Unknown keys are rejected with a `TypeError`.
#[napi(object, object_from_js = false, object_to_js = false)]
pub struct HostFunctionOptions<'a> {
    /// The import namespace (module name); `"extism:host/user"` by default.
    pub namespace: Option<String>,
    /// Passed to every call of the callback as its third argument.
    pub user_data: Option<Unknown<'a>>,
    /// The callback may return a Promise, which the plug-in awaits (see {@link HostFunction});
    /// by default, whether the callback is an `async` function.
    #[napi(js_name = "async")]
    pub is_async: Option<bool>,
}

impl<'a> FromNapiValue for HostFunctionOptions<'a> {
    unsafe fn from_napi_value(env: sys::napi_env, value: sys::napi_value) -> napi::Result<Self> {
        let (env, value) = (Env::from_raw(env), Unknown::from_napi_value(env, value)?);
        let o = options_object(
            &env,
            value,
            "HostFunction option",
            &["namespace", "userData", "async"],
        )?;
        let namespace = match o.get::<Unknown>("namespace")? {
            None => None,
            Some(v) if v.get_type()? == ValueType::String => Some(String::from_unknown(v)?),
            Some(_) => return Err(type_error(&env, "`namespace` must be a string")),
        };
        let is_async = match o.get::<Unknown>("async")? {
            None => None,
            Some(v) if v.get_type()? == ValueType::Boolean => Some(bool::from_unknown(v)?),
            Some(_) => return Err(type_error(&env, "`async` must be a boolean")),
        };
        Ok(HostFunctionOptions {
            namespace,
            user_data: o.get::<Unknown>("userData")?,
            is_async,
        })
    }
}

/// `value` as an object of options (each a `what`) whose keys are all in `known`; a
/// `TypeError` otherwise.
fn options_object<'a>(
    env: &Env,
    value: Unknown<'a>,
    what: &str,
    known: &[&str],
) -> napi::Result<Object<'a>> {
    if value.get_type()? != ValueType::Object || value.is_array()? {
        return Err(type_error(env, format!("{what}s must be an object")));
    }
    let object = Object::from_unknown(value)?;
    for key in Object::keys(&object)? {
        if !known.contains(&key.as_str()) {
            let list = match known {
                [only] => format!("the only option is {only}"),
                [first @ .., last] => format!("the options are {} and {last}", first.join(", ")),
                [] => "there are no options".to_string(),
            };
            return Err(type_error(env, format!("unknown {what} `{key}`; {list}")));
        }
    }
    Ok(object)
}

/// A manifest object as JSON, read through napi-rs's serde support: like `JSON.stringify`,
/// except that bytes (a Buffer or Uint8Array, for `wasm[].data`) become base64 strings and
/// keys whose value is `undefined` or `null` are left out.
struct ManifestJson(serde_json::Value);

/// How deep a manifest object may nest (a cycle would recurse for ever).
const MAX_DEPTH: u32 = 32;

impl<'de> serde::Deserialize<'de> for ManifestJson {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        JsonSeed(0).deserialize(d).map(ManifestJson)
    }
}

/// Reads one JSON value at a depth.
#[derive(Clone, Copy)]
struct JsonSeed(u32);

impl<'de> DeserializeSeed<'de> for JsonSeed {
    type Value = serde_json::Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        if self.0 > MAX_DEPTH {
            return Err(de::Error::custom(
                "it is nested too deeply (does it contain a cycle?)",
            ));
        }
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for JsonSeed {
    type Value = serde_json::Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value or bytes")
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(serde_json::Value::Null)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_bytes<E>(self, v: &[u8]) -> Result<Self::Value, E> {
        Ok(base64::engine::general_purpose::STANDARD.encode(v).into())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(JsonSeed(self.0 + 1))? {
            items.push(item);
        }
        Ok(items.into())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut object = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            match map.next_value_seed(JsonSeed(self.0 + 1))? {
                serde_json::Value::Null => {}
                value => {
                    object.insert(key, value);
                }
            }
        }
        Ok(object.into())
    }
}
