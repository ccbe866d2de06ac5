//! [`Plugin`](crate::Plugin): the plug-in a host holds and calls. A thin facade: it keeps what outlives one
//! instance (config, vars between instances, id, cancel flag) and hands each call to its
//! [`Instance`], made anew when the last one is spent.

use std::any::Any;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, RwLock};

use plinth_convert::{FromBytes, FromBytesOwned, ToBytes};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::engine::EngineHandle;
use crate::host::Function;
use crate::instance::{Instance, Seed, StreamStats};
use crate::store::Vars;
use crate::{CompiledPlugin, PluginBuilder, Result, Source};

/// A loaded plug-in instance. Calls on it run one at a time (`&mut self`); for calls from many
/// threads use [`SharedPlugin`](crate::SharedPlugin) or one instance per thread from a [`CompiledPlugin`].
pub struct Plugin {
    compiled: CompiledPlugin,
    instance: Option<Instance>,
    /// Vars while there is no instance (between a spent instance and its replacement).
    vars: Vars,
    config: Arc<RwLock<BTreeMap<String, String>>>,
    cancel: Arc<AtomicBool>,
    id: Arc<str>,
    http_headers: bool,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin").field("id", &self.id).finish()
    }
}

/// Stops the running call of a plug-in from any thread.
#[derive(Clone)]
pub struct CancelHandle {
    flag: Arc<AtomicBool>,
    engine: EngineHandle,
}

impl CancelHandle {
    /// Cancels the call in progress, which then fails with [`Error::Cancelled`](crate::Error::Cancelled). Does nothing
    /// when no call is running.
    pub fn cancel(&self) {
        self.flag.store(true, Ordering::SeqCst);
        self.engine.interrupt_now();
        crate::host::wake_cancelled(&self.flag);
    }
}

impl Plugin {
    /// Loads a plug-in: `Plugin::new(&manifest, [], false)`, like Extism.
    pub fn new(
        source: impl Into<Source>,
        functions: impl IntoIterator<Item = Function>,
        wasi: bool,
    ) -> Result<Plugin> {
        PluginBuilder::new(source)
            .with_functions(functions)
            .with_wasi(wasi)
            .build()
    }

    /// A builder for every load-time choice.
    pub fn builder(source: impl Into<Source>) -> PluginBuilder {
        PluginBuilder::new(source)
    }

    /// A new instance of a compiled plug-in.
    pub fn from_compiled(compiled: &CompiledPlugin) -> Result<Plugin> {
        let mut plugin = Plugin {
            compiled: compiled.clone(),
            instance: None,
            vars: Vars::default(),
            config: Arc::new(RwLock::new(compiled.inner.settings.config.clone())),
            cancel: Arc::new(AtomicBool::new(false)),
            id: new_id().into(),
            http_headers: false,
        };
        // Instantiate now so that link and start-up errors show at load time (a plug-in with
        // async host functions is instantiated at its first `call_async`).
        if !compiled.inner.has_async {
            plugin.instance()?;
        }
        Ok(plugin)
    }

    /// Which code this plug-in's instance runs (see
    /// [`PluginBuilder::with_tiering`](crate::PluginBuilder::with_tiering)): after the
    /// background compile, a plug-in moves to the optimized code at its next call.
    pub fn tier(&self) -> crate::Tier {
        match &self.instance {
            Some(instance) => instance.tier(),
            None => self.compiled.tier(),
        }
    }

    /// The id that tags this plug-in's log lines.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The compiled plug-in this instance came from.
    pub fn compiled(&self) -> &CompiledPlugin {
        &self.compiled
    }

    /// The names of the callable exports.
    pub fn functions(&self) -> Vec<String> {
        self.compiled.functions()
    }

    /// Whether `name` is a callable export.
    pub fn function_exists(&self, name: &str) -> bool {
        self.compiled.function_exists(name)
    }

    /// A handle that cancels this plug-in's running call from any thread.
    pub fn cancel_handle(&self) -> CancelHandle {
        CancelHandle {
            flag: self.cancel.clone(),
            engine: self.compiled.inner.engine.clone(),
        }
    }

    /// Lets this plug-in read the headers of its HTTP responses (`http_headers`), as
    /// `PluginBuilder::with_http_response_headers` does for every instance.
    pub fn allow_http_response_headers(&mut self) {
        self.http_headers = true;
        if let Some(instance) = &mut self.instance {
            instance.allow_http_response_headers();
        }
    }

    /// Current config (what `config_get` sees).
    pub fn config(&self) -> BTreeMap<String, String> {
        self.config.read().unwrap().clone()
    }

    /// Sets (`Some`) or removes (`None`) config keys; takes effect from the next call.
    pub fn update_config<K: Into<String>, V: Into<String>>(
        &mut self,
        changes: impl IntoIterator<Item = (K, Option<V>)>,
    ) {
        let mut config = self.config.write().unwrap();
        for (k, v) in changes {
            match v {
                Some(v) => config.insert(k.into(), v.into()),
                None => config.remove(&k.into()),
            };
        }
    }

    /// Sets one config key; takes effect from the next call.
    pub fn set_config(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.update_config([(key.into(), Some(value.into()))]);
    }

    fn vars(&self) -> &Vars {
        match &self.instance {
            Some(i) => i.vars(),
            None => &self.vars,
        }
    }

    fn vars_mut(&mut self) -> &mut Vars {
        match &mut self.instance {
            Some(i) => i.vars_mut(),
            None => &mut self.vars,
        }
    }

    /// A var the plug-in stored.
    pub fn var_get(&self, key: &str) -> Option<&[u8]> {
        self.vars().map.get(key).map(Vec::as_slice)
    }

    /// Sets or removes a var, within `memory.max_var_bytes`.
    pub fn var_set(&mut self, key: impl Into<String>, value: Option<&[u8]>) -> Result<()> {
        let limit = self.compiled.inner.settings.max_var_bytes;
        self.vars_mut()
            .set(key.into(), value.map(<[u8]>::to_vec), limit)
    }

    /// Releases all Extism memory of the last call (its output included).
    pub fn reset(&mut self) -> Result<()> {
        if let Some(instance) = &mut self.instance {
            instance.reset();
        }
        Ok(())
    }

    /// The instance to call: a new one if there is none or the last one is spent (it trapped,
    /// timed out, or ran `_start`); vars carry over.
    fn instance(&mut self) -> Result<&mut Instance> {
        if self.compiled.inner.has_async {
            return Err(crate::Error::other(
                "this plug-in has async host functions: call it with `call_async`",
            ));
        }
        Instance::renew(&mut self.instance, &mut self.vars);
        if let Some(instance) = &mut self.instance {
            instance.upgrade_if_ready();
        }
        match &mut self.instance {
            Some(instance) => Ok(instance),
            empty => {
                let seed = Seed {
                    // A copy, so that the vars survive an instantiation that fails (a start
                    // function that times out, say).
                    vars: self.vars.clone(),
                    config: self.config.clone(),
                    id: self.id.clone(),
                    cancel: self.cancel.clone(),
                    http_headers: self.http_headers,
                };
                let instance = Instance::new(&self.compiled.inner, seed)?;
                self.vars = Vars::default();
                Ok(empty.insert(instance))
            }
        }
    }

    /// [`Plugin::instance`] for async calls: instantiates through wasmtime's async path.
    async fn instance_async(&mut self) -> Result<&mut Instance> {
        Instance::renew(&mut self.instance, &mut self.vars);
        if self.instance.is_none() {
            let seed = Seed {
                vars: self.vars.clone(),
                config: self.config.clone(),
                id: self.id.clone(),
                cancel: self.cancel.clone(),
                http_headers: self.http_headers,
            };
            let instance = Instance::new_async(&self.compiled.inner, seed).await?;
            self.vars = Vars::default();
            self.instance = Some(instance);
        }
        Ok(self.instance.as_mut().expect("made above"))
    }

    /// Calls `function` with `input` and decodes its output.
    pub fn call<'a, 'b, I: ToBytes<'a>, O: FromBytes<'b>>(
        &'b mut self,
        function: impl AsRef<str>,
        input: I,
    ) -> Result<O> {
        let bytes = input.to_bytes()?;
        self.raw_call(function.as_ref(), bytes.as_ref(), None)?;
        Ok(O::from_bytes(self.output())?)
    }

    /// Calls `function` with `input` and awaits it: the plug-in's async host functions are
    /// awaited without holding a thread, and a plug-in that computes for long yields to the
    /// executor at every epoch tick (1 ms). Dropping the future cancels the call; the instance
    /// is then replaced at the next call, vars kept.
    pub async fn call_async<O: FromBytesOwned>(
        &mut self,
        function: impl AsRef<str>,
        input: impl AsRef<[u8]>,
    ) -> Result<O> {
        self.raw_call_async(function.as_ref(), input.as_ref(), None)
            .await?;
        Ok(O::from_bytes_owned(self.output())?)
    }

    /// Like [`Plugin::call_async`], with a value that host functions reach through
    /// [`CurrentPlugin::host_context`](crate::CurrentPlugin::host_context) during this call.
    pub async fn call_async_with_host_context<O: FromBytesOwned, T: Any + Send>(
        &mut self,
        function: impl AsRef<str>,
        input: impl AsRef<[u8]>,
        context: T,
    ) -> Result<O> {
        self.raw_call_async(function.as_ref(), input.as_ref(), Some(Box::new(context)))
            .await?;
        Ok(O::from_bytes_owned(self.output())?)
    }

    /// The async [`Plugin::raw_call`]: the output stays in the plug-in.
    pub async fn raw_call_async(
        &mut self,
        function: &str,
        input: &[u8],
        host_context: Option<Box<dyn Any + Send>>,
    ) -> Result<()> {
        self.forget_old_cancel();
        self.instance_async()
            .await?
            .call_async(function, input, host_context)
            .await
    }

    /// Like [`Plugin::call`], with a value that host functions reach through
    /// [`CurrentPlugin::host_context`](crate::CurrentPlugin::host_context) during this call.
    pub fn call_with_host_context<'a, 'b, I: ToBytes<'a>, O: FromBytes<'b>, T: Any + Send>(
        &'b mut self,
        function: impl AsRef<str>,
        input: I,
        context: T,
    ) -> Result<O> {
        let bytes = input.to_bytes()?;
        self.raw_call(function.as_ref(), bytes.as_ref(), Some(Box::new(context)))?;
        Ok(O::from_bytes(self.output())?)
    }

    /// The output of the last successful call (empty after a failed one).
    pub fn output(&self) -> &[u8] {
        self.instance.as_ref().map_or(&[], Instance::output)
    }

    /// Runs a call; the output stays in the plug-in until the next call (see [`Plugin::output`]).
    pub fn raw_call(
        &mut self,
        function: &str,
        input: &[u8],
        host_context: Option<Box<dyn Any + Send>>,
    ) -> Result<()> {
        self.forget_old_cancel();
        self.instance()?.call(function, input, host_context)
    }

    /// Calls `function` with `input` and `output` as its streams: the plug-in reads its input
    /// a chunk at a time as it asks for it, and each chunk it writes reaches `output` before
    /// its write returns, so a slow writer slows the plug-in and memory stays bounded. The
    /// call's limits apply (timeout, fuel, memory), and
    /// [`PluginBuilder::with_output_limit`] caps the output.
    ///
    /// A plug-in that does not stream (any Extism-PDK plug-in) still works: its whole input is
    /// read first (up to what its memory limit can hold) and its output written at the end.
    /// A failing reader or writer fails the call with [`Error::Stream`](crate::Error::Stream)
    /// after the plug-in saw the failure (see `docs/streaming.md`). Blocking reads and writes
    /// run on this thread: the deadline is checked after each one, so a reader that never
    /// returns holds the call; [`Plugin::call_stream_async`] awaits under the deadline instead.
    pub fn call_stream(
        &mut self,
        function: impl AsRef<str>,
        mut input: impl Read,
        mut output: impl Write,
    ) -> Result<StreamStats> {
        self.forget_old_cancel();
        self.instance()?
            .call_stream(function.as_ref(), &mut input, &mut output, None)
    }

    /// Like [`Plugin::call_stream`], with a value that host functions reach through
    /// [`CurrentPlugin::host_context`](crate::CurrentPlugin::host_context) during this call.
    pub fn call_stream_with_host_context<T: Any + Send>(
        &mut self,
        function: impl AsRef<str>,
        mut input: impl Read,
        mut output: impl Write,
        context: T,
    ) -> Result<StreamStats> {
        self.forget_old_cancel();
        self.instance()?.call_stream(
            function.as_ref(),
            &mut input,
            &mut output,
            Some(Box::new(context)),
        )
    }

    /// [`Plugin::call_stream`] with an async reader and writer: the plug-in's reads and
    /// writes await them under the call's deadline and cancel. The plug-in must be built with
    /// [`PluginBuilder::with_async`] when it reads its input as a stream; a plug-in that does
    /// not stream works either way.
    pub async fn call_stream_async(
        &mut self,
        function: impl AsRef<str>,
        mut input: impl AsyncRead + Unpin + Send,
        mut output: impl AsyncWrite + Unpin + Send,
    ) -> Result<StreamStats> {
        self.forget_old_cancel();
        self.instance_async()
            .await?
            .call_stream_async(function.as_ref(), &mut input, &mut output, None)
            .await
    }

    /// A cancel aimed at an earlier call must stop neither the next one nor the instantiation
    /// that may precede it.
    fn forget_old_cancel(&self) {
        if self.cancel.load(Ordering::Relaxed) {
            self.cancel.store(false, Ordering::SeqCst);
        }
    }

    /// Fuel the last call used (Extism's `fuel_consumed`); `None` without a fuel limit.
    pub fn fuel_consumed(&self) -> Option<u64> {
        self.instance.as_ref()?.fuel_consumed()
    }
}

impl PluginBuilder {
    /// Compiles the plug-in and makes its first instance. (Defined here rather than with the
    /// builder so that loading never depends on the facade above it.)
    pub fn build(self) -> Result<Plugin> {
        Plugin::from_compiled(&self.compile()?)
    }
}

impl CompiledPlugin {
    /// A new, independent instance.
    pub fn instantiate(&self) -> Result<Plugin> {
        Plugin::from_compiled(self)
    }

    /// Calls `function` on a fresh instance made for this call alone, then drops it: nothing
    /// one call leaves behind (memory, globals, vars, Extism memory) is seen by the next, which
    /// is the isolation a host wants between requests or tenants. With instance pooling (the
    /// default) the instance takes a pooled slot that wasmtime has reset to the module's
    /// initial image, so this costs microseconds, not a full instantiation.
    pub fn call_fresh<'a, I: ToBytes<'a>, O: FromBytesOwned>(
        &self,
        function: impl AsRef<str>,
        input: I,
    ) -> Result<O> {
        let mut plugin = self.instantiate()?;
        let bytes = input.to_bytes()?;
        plugin.raw_call(function.as_ref(), bytes.as_ref(), None)?;
        Ok(O::from_bytes_owned(plugin.output())?)
    }
}

/// A random-looking v4 UUID, unique in the process: a counter run through a bijective mixer
/// keyed by one random draw per process. Ids tag log lines, they are not secrets, and a
/// system call for fresh randomness per instance was a noticeable part of making one.
fn new_id() -> String {
    use std::sync::atomic::AtomicU64;
    static KEY: OnceLock<u64> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let key = *KEY.get_or_init(|| {
        u64::from_le_bytes(*uuid::Uuid::new_v4().as_bytes().first_chunk().unwrap())
    });
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let mix = |mut z: u64| {
        // splitmix64's finaliser: a bijection, so distinct counters give distinct ids.
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let hi = mix(n ^ key);
    let lo = mix(n.wrapping_add(key.rotate_left(32)) ^ 0x9e37_79b9_7f4a_7c15);
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&hi.to_le_bytes());
    bytes[8..].copy_from_slice(&lo.to_le_bytes());
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .to_string()
}
