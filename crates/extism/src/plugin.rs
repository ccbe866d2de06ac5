//! `Plugin`, `PluginBuilder`, `CompiledPlugin` and `CancelHandle`, as Extism has them, over
//! Plinth's.

use std::any::Any;
use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use crate::convert::{FromBytes, ToBytes};
use crate::current_plugin::uuid_of;
use crate::{CurrentPlugin, Error, Function, Manifest, UserData, Val, ValType};

/// What a plug-in is loaded from: `Plugin::new` and `PluginBuilder::new` take anything that
/// converts into it (a manifest, by value or by reference, or the bytes of a wasm module, WAT
/// text or a JSON/TOML manifest).
#[derive(Clone)]
pub enum WasmInput<'a> {
    Data(Cow<'a, [u8]>),
    Manifest(Manifest),
    ManifestRef(&'a Manifest),
}

impl From<Manifest> for WasmInput<'_> {
    fn from(m: Manifest) -> Self {
        WasmInput::Manifest(m)
    }
}

impl<'a> From<&'a Manifest> for WasmInput<'a> {
    fn from(m: &'a Manifest) -> Self {
        WasmInput::ManifestRef(m)
    }
}

impl<'a> From<&'a mut Manifest> for WasmInput<'a> {
    fn from(m: &'a mut Manifest) -> Self {
        WasmInput::ManifestRef(m)
    }
}

impl<'a> From<&'a [u8]> for WasmInput<'a> {
    fn from(b: &'a [u8]) -> Self {
        WasmInput::Data(b.into())
    }
}

impl<'a, const N: usize> From<&'a [u8; N]> for WasmInput<'a> {
    fn from(b: &'a [u8; N]) -> Self {
        WasmInput::Data(b.as_slice().into())
    }
}

impl<'a> From<&'a str> for WasmInput<'a> {
    fn from(s: &'a str) -> Self {
        WasmInput::Data(s.as_bytes().into())
    }
}

impl From<Vec<u8>> for WasmInput<'_> {
    fn from(b: Vec<u8>) -> Self {
        WasmInput::Data(b.into())
    }
}

impl<'a> From<&'a Vec<u8>> for WasmInput<'a> {
    fn from(b: &'a Vec<u8>) -> Self {
        WasmInput::Data(b.as_slice().into())
    }
}

impl WasmInput<'_> {
    fn into_manifest(self) -> Result<Manifest, Error> {
        Ok(match self {
            WasmInput::Manifest(m) => m,
            WasmInput::ManifestRef(m) => m.clone(),
            WasmInput::Data(bytes) => plinth::Source::from(bytes.into_owned())
                .into_manifest()
                .map_err(from_plinth)?,
        })
    }
}

/// Extism's debugging options. Plinth has no coredumps, memory dumps or profiler hooks: the
/// options are accepted so that hosts compile, and have no effect.
#[derive(Clone)]
pub struct DebugOptions {
    pub profiling_strategy: wasmtime::ProfilingStrategy,
    pub coredump: Option<PathBuf>,
    pub memdump: Option<PathBuf>,
    pub debug_info: bool,
}

impl Default for DebugOptions {
    fn default() -> Self {
        DebugOptions {
            profiling_strategy: wasmtime::ProfilingStrategy::None,
            coredump: None,
            memdump: None,
            debug_info: false,
        }
    }
}

/// Configures and builds a [`Plugin`] or a [`CompiledPlugin`].
#[derive(Clone)]
pub struct PluginBuilder<'a> {
    source: WasmInput<'a>,
    wasi: bool,
    functions: Vec<Function>,
    fuel: Option<u64>,
    cache_disabled: bool,
    http_response_headers: bool,
    debug_options: DebugOptions,
    cache_config: Option<PathBuf>,
    wasmtime_config: Option<wasmtime::Config>,
}

impl<'a> PluginBuilder<'a> {
    pub fn new(plugin: impl Into<WasmInput<'a>>) -> Self {
        PluginBuilder {
            source: plugin.into(),
            wasi: false,
            functions: Vec::new(),
            fuel: None,
            cache_disabled: false,
            http_response_headers: false,
            debug_options: DebugOptions::default(),
            cache_config: None,
            wasmtime_config: None,
        }
    }

    /// WASI preview 1 for the plug-in (off by default). Its stdout and stderr are discarded
    /// unless `EXTISM_ENABLE_WASI_OUTPUT` is set, as in Extism.
    pub fn with_wasi(mut self, wasi: bool) -> Self {
        self.wasi = wasi;
        self
    }

    /// Adds a host function, as [`Function::new`] makes it.
    pub fn with_function<T, F>(
        mut self,
        name: impl Into<String>,
        args: impl IntoIterator<Item = ValType>,
        returns: impl IntoIterator<Item = ValType>,
        user_data: UserData<T>,
        f: F,
    ) -> Self
    where
        T: Send + 'static,
        F: Fn(&mut CurrentPlugin<'_, '_>, &[Val], &mut [Val], UserData<T>) -> Result<(), Error>
            + Send
            + Sync
            + 'static,
    {
        self.functions
            .push(Function::new(name, args, returns, user_data, f));
        self
    }

    /// Adds a host function in `namespace` instead of `extism:host/user`.
    pub fn with_function_in_namespace<T, F>(
        mut self,
        namespace: impl Into<String>,
        name: impl Into<String>,
        args: impl IntoIterator<Item = ValType>,
        returns: impl IntoIterator<Item = ValType>,
        user_data: UserData<T>,
        f: F,
    ) -> Self
    where
        T: Send + 'static,
        F: Fn(&mut CurrentPlugin<'_, '_>, &[Val], &mut [Val], UserData<T>) -> Result<(), Error>
            + Send
            + Sync
            + 'static,
    {
        self.functions
            .push(Function::new(name, args, returns, user_data, f).with_namespace(namespace));
        self
    }

    pub fn with_functions(mut self, f: impl IntoIterator<Item = Function>) -> Self {
        self.functions.extend(f);
        self
    }

    /// Accepted, no effect (see [`DebugOptions`]).
    pub fn with_profiling_strategy(mut self, p: wasmtime::ProfilingStrategy) -> Self {
        self.debug_options.profiling_strategy = p;
        self
    }

    /// Accepted, no effect (see [`DebugOptions`]).
    pub fn with_coredump(mut self, path: impl Into<PathBuf>) -> Self {
        self.debug_options.coredump = Some(path.into());
        self
    }

    /// Accepted, no effect (see [`DebugOptions`]).
    pub fn with_memdump(mut self, path: impl Into<PathBuf>) -> Self {
        self.debug_options.memdump = Some(path.into());
        self
    }

    /// Accepted, no effect (see [`DebugOptions`]).
    pub fn with_debug_info(mut self) -> Self {
        self.debug_options.debug_info = true;
        self
    }

    /// Accepted, no effect (see [`DebugOptions`]).
    pub fn with_debug_options(mut self, options: DebugOptions) -> Self {
        self.debug_options = options;
        self
    }

    /// Accepted, no effect: Plinth keeps compiled modules in its own cache (in memory, and on
    /// disk under `$PLINTH_CACHE_DIR`, else `~/.cache/plinth`), not wasmtime's.
    pub fn with_cache_config(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cache_config = Some(dir.into());
        self
    }

    /// Turns the on-disk cache of compiled modules off for this plug-in.
    pub fn with_cache_disabled(mut self) -> Self {
        self.cache_disabled = true;
        self
    }

    /// Limits each call to `fuel` units of work (roughly, wasm instructions).
    pub fn with_fuel_limit(mut self, fuel: u64) -> Self {
        self.fuel = Some(fuel);
        self
    }

    /// Accepted, no effect: Plinth configures its engines itself.
    pub fn with_wasmtime_config(mut self, config: wasmtime::Config) -> Self {
        self.wasmtime_config = Some(config);
        self
    }

    /// Lets the plug-in read the headers of its HTTP responses.
    pub fn with_http_response_headers(mut self, allow: bool) -> Self {
        self.http_response_headers = allow;
        self
    }

    pub fn build(self) -> Result<Plugin, Error> {
        Plugin::new_from_compiled(&self.compile()?)
    }

    pub fn compile(self) -> Result<CompiledPlugin, Error> {
        CompiledPlugin::new(self)
    }
}

/// A compiled plug-in, from which [`Plugin::new_from_compiled`] makes instances without
/// compiling again. Cheap to clone, and shareable between threads.
#[derive(Clone)]
pub struct CompiledPlugin {
    inner: plinth::CompiledPlugin,
    wasi: bool,
}

impl CompiledPlugin {
    pub fn new(builder: PluginBuilder) -> Result<CompiledPlugin, Error> {
        let manifest = Arc::new(builder.source.into_manifest()?);
        let stdio = if std::env::var_os("EXTISM_ENABLE_WASI_OUTPUT").is_some() {
            plinth::WasiStdio::Inherit
        } else {
            plinth::WasiStdio::Discard
        };
        let mut b = plinth::PluginBuilder::new(&*manifest)
            .with_wasi(builder.wasi)
            .with_wasi_stdio(stdio)
            .with_functions(builder.functions.iter().map(|f| f.to_plinth(&manifest)))
            .with_http_response_headers(builder.http_response_headers);
        if let Some(fuel) = builder.fuel {
            b = b.with_fuel_limit(fuel);
        }
        if builder.cache_disabled {
            b = b.with_cache_dir(None::<PathBuf>);
        }
        Ok(CompiledPlugin {
            inner: b.compile().map_err(from_plinth)?,
            wasi: builder.wasi,
        })
    }

    /// Plinth's compiled plug-in.
    pub fn plinth(&self) -> &plinth::CompiledPlugin {
        &self.inner
    }
}

/// Cancels the running call of a plug-in from any thread.
#[derive(Clone)]
pub struct CancelHandle {
    inner: plinth::CancelHandle,
    /// The id of the plug-in this handle cancels.
    pub id: uuid::Uuid,
}

impl CancelHandle {
    /// Stops the call in progress, which then fails with the error "timeout" (as in Extism).
    /// Does nothing when no call is running. Never fails.
    pub fn cancel(&self) -> Result<(), Error> {
        self.inner.cancel();
        Ok(())
    }
}

/// A loaded plug-in instance.
pub struct Plugin {
    /// Unique id of the plug-in; its log lines carry it too.
    pub id: uuid::Uuid,
    // A Mutex only to make `Plugin` Sync, as Extism's is: the `&mut self` methods reach it
    // with `get_mut`, without locking.
    inner: Mutex<plinth::Plugin>,
    cancel: CancelHandle,
    wasi: bool,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Plugin({})", self.id)
    }
}

impl Plugin {
    /// Loads a plug-in with these host functions, with WASI or without.
    pub fn new<'a>(
        wasm: impl Into<WasmInput<'a>>,
        imports: impl IntoIterator<Item = Function>,
        with_wasi: bool,
    ) -> Result<Plugin, Error> {
        PluginBuilder::new(wasm)
            .with_functions(imports)
            .with_wasi(with_wasi)
            .build()
    }

    /// A new instance of a compiled plug-in.
    pub fn new_from_compiled(compiled: &CompiledPlugin) -> Result<Plugin, Error> {
        let inner = plinth::Plugin::from_compiled(&compiled.inner).map_err(from_plinth)?;
        let id = uuid_of(inner.id());
        Ok(Plugin {
            id,
            cancel: CancelHandle {
                inner: inner.cancel_handle(),
                id,
            },
            inner: Mutex::new(inner),
            wasi: compiled.wasi,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, plinth::Plugin> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Plinth's plug-in, for what Extism's API does not have (config updates, host vars, ...).
    pub fn plinth(&mut self) -> &mut plinth::Plugin {
        self.inner.get_mut().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether the plug-in exports `function` with a callable type (`() -> i32` or `() -> ()`).
    pub fn function_exists(&self, function: impl AsRef<str>) -> bool {
        self.lock().function_exists(function.as_ref())
    }

    /// Releases the Extism memory of the last call (its output included).
    pub fn reset(&mut self) -> Result<(), Error> {
        self.plinth().reset().map_err(from_plinth)
    }

    pub fn has_wasi(&self) -> bool {
        self.wasi
    }

    /// Calls `name` with `input` and decodes its output, which borrows from the plug-in until
    /// the next call:
    ///
    /// ```no_run
    /// # extern crate plinth_extism as extism;
    /// # use extism::*;
    /// # let mut plugin = Plugin::new(Manifest::new([Wasm::file("greet.wasm")]), [], false)?;
    /// let output = plugin.call::<&str, &str>("greet", "Benjamin")?;
    /// # Ok::<(), Error>(())
    /// ```
    pub fn call<'a, 'b, T: ToBytes<'a>, U: FromBytes<'b>>(
        &'b mut self,
        name: impl AsRef<str>,
        input: T,
    ) -> Result<U, Error> {
        let input = input.to_bytes()?;
        let plugin = self.plinth();
        plugin
            .raw_call(name.as_ref(), input.as_ref(), None)
            .map_err(from_plinth)?;
        U::from_bytes(plugin.output())
    }

    /// Like [`Plugin::call`], with a value host functions reach through
    /// [`CurrentPlugin::host_context`] during this call.
    pub fn call_with_host_context<'a, 'b, T, U, C>(
        &'b mut self,
        name: impl AsRef<str>,
        input: T,
        host_context: C,
    ) -> Result<U, Error>
    where
        T: ToBytes<'a>,
        U: FromBytes<'b>,
        C: Any + Send + Sync + 'static,
    {
        let input = input.to_bytes()?;
        let plugin = self.plinth();
        plugin
            .raw_call(name.as_ref(), input.as_ref(), Some(Box::new(host_context)))
            .map_err(from_plinth)?;
        U::from_bytes(plugin.output())
    }

    /// Like [`Plugin::call`], but a failure comes with the call's return code: the plug-in's
    /// own code when it gave one, 134 for a trap, -1 for a failure outside the plug-in.
    pub fn call_get_error_code<'a, 'b, T: ToBytes<'a>, U: FromBytes<'b>>(
        &'b mut self,
        name: impl AsRef<str>,
        input: T,
    ) -> Result<U, (Error, i32)> {
        let input = input.to_bytes().map_err(|e| (e, -1))?;
        let plugin = self.plinth();
        if let Err(e) = plugin.raw_call(name.as_ref(), input.as_ref(), None) {
            let code = e.code();
            return Err((from_plinth(e), code));
        }
        U::from_bytes(plugin.output()).map_err(|e| (e, -1))
    }

    pub fn cancel_handle(&self) -> CancelHandle {
        self.cancel.clone()
    }

    /// Fuel the last call used; `None` without a fuel limit.
    pub fn fuel_consumed(&self) -> Option<u64> {
        self.lock().fuel_consumed()
    }
}

/// Plinth's error, under the message Extism gives for the same failure where hosts are known
/// to match on it ("timeout", "oom", the plug-in's own error message, ...). Plinth's full
/// message stays in the chain (`{:#}`), and `downcast_ref::<plinth::Error>()` finds the error.
pub(crate) fn from_plinth(e: plinth::Error) -> Error {
    use plinth::Error as P;
    let message = match &e {
        P::Guest {
            function,
            code,
            message,
        } => {
            if *message == format!("`{function}` returned code {code} without an error message") {
                format!("Returned non-zero exit code: {code}")
            } else {
                message.clone()
            }
        }
        P::Timeout { .. } | P::Cancelled { .. } => "timeout".to_string(),
        P::OutOfMemory { .. } => "oom".to_string(),
        P::OutOfFuel { .. } => "plugin ran out of fuel".to_string(),
        P::FunctionNotFound { name, .. } => format!("Function not found: {name}"),
        _ => return Error::new(e),
    };
    Error::new(e).context(message)
}

/// Declares a type that wraps a [`Plugin`] with one typed method per export:
///
/// ```no_run
/// # extern crate plinth_extism as extism;
/// #[derive(serde::Deserialize)]
/// struct Count {
///     count: usize,
/// }
///
/// extism::typed_plugin!(VowelCounter {
///     count_vowels(&str) -> extism::convert::Json<Count>;
/// });
///
/// let plugin = extism::Plugin::new(std::fs::read("count_vowels.wasm")?, [], true)?;
/// // Fails unless the plug-in exports every function named.
/// let mut counter: VowelCounter = plugin.try_into()?;
/// let extism::convert::Json(count) = counter.count_vowels("this is a test")?;
/// # Ok::<(), extism::Error>(())
/// ```
#[macro_export]
macro_rules! typed_plugin {
    ($vis:vis $name:ident {$($f:ident $(< $( $lt:tt $( : $clt:path )? ),+ >)? ($input:ty) -> $output:ty);* $(;)?}) => {
        $vis struct $name(pub $crate::Plugin);

        impl ::std::convert::TryFrom<$crate::Plugin> for $name {
            type Error = $crate::Error;
            fn try_from(plugin: $crate::Plugin) -> ::std::result::Result<Self, Self::Error> {
                $(
                    if !plugin.function_exists(stringify!($f)) {
                        return ::std::result::Result::Err($crate::Error::msg(
                            concat!("Invalid function: ", stringify!($f)),
                        ));
                    }
                )*
                ::std::result::Result::Ok($name(plugin))
            }
        }

        impl ::std::convert::From<$name> for $crate::Plugin {
            fn from(typed: $name) -> Self {
                typed.0
            }
        }

        impl $name {
            $(
                pub fn $f<'a $(, $( $lt $( : $clt )? ),+ )?>(
                    &'a mut self,
                    input: $input,
                ) -> ::std::result::Result<$output, $crate::Error> {
                    self.0.call(stringify!($f), input)
                }
            )*
        }
    };
}
