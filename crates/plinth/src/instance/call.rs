//! The path of one call, top to bottom: [`Instance::call`] runs `select` (find the export),
//! `begin` (input, deadline, fuel), `invoke` (start-up exports on the first call, then the
//! export) and `finish` (the export's result, the guest's error, the output, a late deadline)
//! in that order.

use std::any::Any;
use std::sync::atomic::Ordering;
use std::time::Instant;

use wasmtime::{Memory, Store};

use super::failure::{classify_failure, out_of_memory};
use super::{Callable, Instance};
use crate::abi::{memory, INPUT_BUFFER_EXPORT};
use crate::store::{self, StoreData};
use crate::{Error, Result};

impl Instance {
    /// Calls `function` with `input`; the output stays in the instance (see
    /// [`Instance::output`]) until the next call.
    pub(crate) fn call(
        &mut self,
        function: &str,
        input: &[u8],
        host_context: Option<Box<dyn Any + Send>>,
    ) -> Result<()> {
        let result = self.run(function, input, host_context);
        self.settle_classic_streams(result)
    }

    /// [`Instance::call`] without settling what the stream functions did: the streams of a
    /// streaming call are its caller's to settle.
    pub(crate) fn run(
        &mut self,
        function: &str,
        input: &[u8],
        host_context: Option<Box<dyn Any + Send>>,
    ) -> Result<()> {
        self.joined_output = None;
        self.select(function)?;
        let (extism_input, direct_input) = self.route_input(input);
        self.begin(function, extism_input, host_context)?;
        let result = self.invoke(direct_input);
        if function == "_start" {
            self.spent = true;
        }
        self.finish(function, result)
    }

    /// Like [`Instance::call`], awaiting the plug-in's async host functions; epoch ticks
    /// yield to the executor. Dropping the future midway leaves the instance spent.
    pub(crate) async fn call_async(
        &mut self,
        function: &str,
        input: &[u8],
        host_context: Option<Box<dyn Any + Send>>,
    ) -> Result<()> {
        let result = self.run_async(function, input, host_context).await;
        self.settle_classic_streams(result)
    }

    /// [`Instance::run`] for async calls.
    pub(crate) async fn run_async(
        &mut self,
        function: &str,
        input: &[u8],
        host_context: Option<Box<dyn Any + Send>>,
    ) -> Result<()> {
        self.joined_output = None;
        self.select(function)?;
        let (extism_input, direct_input) = self.route_input(input);
        self.begin(function, extism_input, host_context)?;
        let result = self.invoke_async(direct_input).await;
        if function == "_start" {
            self.spent = true;
        }
        self.finish(function, result)
    }

    /// After a classic call that used the stream functions: what the plug-in streamed goes in
    /// front of its output, and the streams start over for the next call.
    fn settle_classic_streams(&mut self, result: Result<()>) -> Result<()> {
        if !std::mem::take(&mut self.store.data_mut().streams_touched) {
            return result;
        }
        let limit = self.compiled.settings.classic_output_limit();
        let slot = self.store.data().streams.clone();
        let streams = std::mem::replace(
            &mut *store::stream::lock(&slot),
            store::CallStreams::classic(limit),
        );
        if result.is_ok() {
            if let store::stream::StreamOutput::Collect(mut streamed) = streams.output {
                if !streamed.is_empty() {
                    streamed.extend_from_slice(self.output());
                    self.joined_output = Some(streamed);
                }
            }
        }
        result
    }

    /// [`Instance::invoke`] for async calls.
    async fn invoke_async(&mut self, direct_input: Option<&[u8]>) -> wasmtime::Result<i32> {
        let Instance {
            compiled,
            store,
            instance,
            last,
            initialized,
            input_buffer,
            plugin_memory,
            ..
        } = self;
        // The ticker runs for every async call: its ticks are where the call yields.
        let _running = compiled.engine.call_guard();
        let d = store.data_mut();
        d.yield_at_ticks = true;
        d.call_in_progress = true;
        if !*initialized {
            *initialized = true;
            initialize_async(store, *instance).await?;
            set_call_fuel(store, compiled.settings.fuel).map_err(wasmtime::Error::from)?;
        }
        if let (Some(input), Some(buffer), Some(memory)) =
            (direct_input, input_buffer, plugin_memory)
        {
            let ptr = buffer.call_async(&mut *store, input.len() as i32).await?;
            write_direct_input(store, memory, ptr, input)?;
        }
        let (_, f) = last.as_ref().expect("select ran first");
        let result = match f {
            Callable::I32(f) => f.call_async(&mut *store, ()).await,
            Callable::Unit(f) => f.call_async(&mut *store, ()).await.map(|()| 0),
        };
        let d = store.data_mut();
        d.yield_at_ticks = false;
        d.call_in_progress = false;
        result
    }

    /// Where the input goes: (into Extism memory, into the plug-in's own buffer). A plug-in
    /// that offers a buffer of its own gets the input written there, once, straight from the
    /// caller's bytes (see `abi::INPUT_BUFFER_EXPORT`).
    fn route_input<'i>(&self, input: &'i [u8]) -> (&'i [u8], Option<&'i [u8]>) {
        let direct =
            self.input_buffer.is_some() && !input.is_empty() && input.len() <= i32::MAX as usize;
        if direct {
            (&[], Some(input))
        } else {
            (input, None)
        }
    }

    /// Makes `function` the export to call. Hosts usually call one function over and over:
    /// the hash lookup is skipped then. The function is kept by reference: cloning a
    /// TypedFunc bumps a reference count that every instance of the engine shares, which
    /// threads calling at once fight over.
    fn select(&mut self, function: &str) -> Result<()> {
        if matches!(&self.last, Some((name, _)) if &**name == function) {
            return Ok(());
        }
        let f = match self.funcs.get(function) {
            Some(f) => f.clone(),
            None => {
                let f = self.lookup(function)?;
                self.funcs.insert(function.to_string(), f.clone());
                f
            }
        };
        self.last = Some((function.into(), f));
        Ok(())
    }

    /// Places the input in Extism memory and arms the deadline, the fuel and the cancel.
    fn begin(
        &mut self,
        function: &str,
        input: &[u8],
        host_context: Option<Box<dyn Any + Send>>,
    ) -> Result<()> {
        let settings = &*self.compiled.settings;
        let store = &mut self.store;
        store.data_mut().limiter.refused = None;
        if let Err(e) = store::begin_call(store, input) {
            return Err(match (e, store.data().limiter.refused) {
                (memory::AllocError::Budget, Some(r)) => out_of_memory(function, r, settings),
                _ => Error::Memory(format!(
                    "the input of `{function}` ({} bytes) is more than Extism memory can hold \
                     (4 GiB)",
                    input.len()
                )),
            });
        }
        let d = store.data_mut();
        d.host_context = host_context;
        d.deadline = settings.timeout.map(|t| Instant::now() + t);
        // A first call runs the start-up exports on what instantiation left of the
        // initialization fuel, and gets its own fuel after them (in `invoke`).
        if self.initialized {
            set_call_fuel(store, settings.fuel)?;
        }
        store.set_epoch_deadline(1);
        // A cancel that came in since the start of this call advanced the epoch before the
        // deadline above was set: stop at the first check instead.
        if store.data().cancel.load(Ordering::SeqCst) {
            store.set_epoch_deadline(0);
        }
        Ok(())
    }

    /// Runs the start-up exports on the first call, writes a direct input into the buffer the
    /// plug-in offers for it, then runs the selected export.
    fn invoke(&mut self, direct_input: Option<&[u8]>) -> wasmtime::Result<i32> {
        let Instance {
            compiled,
            store,
            instance,
            last,
            initialized,
            input_buffer,
            plugin_memory,
            ..
        } = self;
        // Only a deadline needs the ticker; a cancel advances the epoch itself.
        let _running = compiled
            .settings
            .timeout
            .is_some()
            .then(|| compiled.engine.call_guard());
        if !*initialized {
            *initialized = true;
            initialize(store, *instance)?;
            set_call_fuel(store, compiled.settings.fuel).map_err(wasmtime::Error::from)?;
        }
        if let (Some(input), Some(buffer), Some(memory)) =
            (direct_input, input_buffer, plugin_memory)
        {
            let ptr = buffer.call(&mut *store, input.len() as i32)?;
            write_direct_input(store, memory, ptr, input)?;
        }
        let (_, f) = last.as_ref().expect("select ran first");
        match f {
            Callable::I32(f) => f.call(&mut *store, ()),
            Callable::Unit(f) => f.call(&mut *store, ()).map(|()| 0),
        }
    }

    /// The call's result from what the export returned; a call that ends past its deadline is
    /// a timeout, and a failed call leaves no output.
    fn finish(&mut self, function: &str, result: wasmtime::Result<i32>) -> Result<()> {
        // Also after start-up exports that failed: the context lives for the call only, and
        // so do HTTP streams (dropping one abandons its request).
        let d = self.store.data_mut();
        d.host_context = None;
        if !d.http.streams.is_empty() {
            d.http.streams.clear();
        }
        let mut outcome = classify_return(self, function, result);
        // The deadline is checked only while wasm runs, so a host call (a big alloc, a host
        // function) can carry the call past it unnoticed: a call that ends late is a timeout,
        // never a success, and its instance is replaced like after any timeout.
        if let Some(deadline) = self.store.data().deadline {
            if !matches!(
                outcome,
                Err(Error::Timeout { .. } | Error::Cancelled { .. })
            ) && Instant::now() >= deadline
            {
                self.spent = true;
                outcome = Err(Error::Timeout {
                    function: function.to_string(),
                    limit: self.compiled.settings.timeout.unwrap_or_default(),
                });
            }
        }
        if outcome.is_err() {
            let d = self.store.data_mut();
            d.output = (0, 0);
            d.output_direct = None;
        }
        outcome
    }
}

/// Refills the call's fuel, when the plug-in has a fuel limit.
fn set_call_fuel(store: &mut Store<StoreData>, fuel: Option<u64>) -> Result<()> {
    if let Some(fuel) = fuel {
        store
            .set_fuel(fuel)
            .map_err(|e| Error::other(e.to_string()))?;
        store.data_mut().fuel_limit = fuel;
    }
    Ok(())
}

/// Runs the start-up exports once: `_initialize` (or `__wasm_call_ctors`), then `hs_init(0, 0)`.
fn initialize(store: &mut Store<StoreData>, inst: wasmtime::Instance) -> wasmtime::Result<i32> {
    if let Ok(f) = inst.get_typed_func::<(), ()>(&mut *store, "_initialize") {
        f.call(&mut *store, ())?;
    } else if let Ok(f) = inst.get_typed_func::<(), ()>(&mut *store, "__wasm_call_ctors") {
        f.call(&mut *store, ())?;
    }
    if let Ok(f) = inst.get_typed_func::<(i32, i32), ()>(&mut *store, "hs_init") {
        f.call(&mut *store, (0, 0))?;
    }
    Ok(0)
}

/// [`initialize`] for async calls.
async fn initialize_async(
    store: &mut Store<StoreData>,
    inst: wasmtime::Instance,
) -> wasmtime::Result<i32> {
    if let Ok(f) = inst.get_typed_func::<(), ()>(&mut *store, "_initialize") {
        f.call_async(&mut *store, ()).await?;
    } else if let Ok(f) = inst.get_typed_func::<(), ()>(&mut *store, "__wasm_call_ctors") {
        f.call_async(&mut *store, ()).await?;
    }
    if let Ok(f) = inst.get_typed_func::<(i32, i32), ()>(&mut *store, "hs_init") {
        f.call_async(&mut *store, (0, 0)).await?;
    }
    Ok(0)
}

/// Turns what the export returned into the call's result.
fn classify_return(
    live: &mut Instance,
    function: &str,
    result: wasmtime::Result<i32>,
) -> Result<()> {
    let name = || function.to_string();
    let guest_error = |live: &Instance| -> Option<String> {
        let error = live.store.data().error;
        (error != 0).then(|| match store::block(&live.store, error) {
            Some(msg) => String::from_utf8_lossy(msg).into_owned(),
            // Said plainly, rather than an empty message that tells nobody anything.
            None => format!(
                "the plug-in reported an error, but its message handle {error} is not a block                  of Extism memory (a bug in the plug-in or its PDK)"
            ),
        })
    };
    let code = match result {
        Ok(code) => code,
        Err(e) => {
            if let Some(exit) = e.downcast_ref::<wasmtime_wasi::I32Exit>() {
                // proc_exit ends the instance either way.
                live.spent = true;
                exit.0
            } else {
                live.spent = true;
                return Err(classify_failure(live.store.data(), function, e));
            }
        }
    };
    if let Some(message) = guest_error(live) {
        return Err(Error::Guest {
            function: name(),
            code,
            message,
        });
    }
    if code != 0 {
        return Err(if live.spent {
            Error::Exit {
                function: name(),
                code,
            }
        } else {
            Error::Guest {
                function: name(),
                code,
                message: format!("`{function}` returned code {code} without an error message"),
            }
        });
    }
    let (h, len) = live.store.data().output;
    // Inside the allocated part of memory is inside memory: no need to look the memory up.
    let allocated = h >= memory::RESERVED
        && h.checked_add(len)
            .is_some_and(|end| end <= live.store.data().arena.used());
    if (h != 0 || len != 0)
        && !allocated
        && memory::range(store::bytes(&live.store), h, len).is_none()
    {
        return Err(Error::Memory(format!(
            "`{function}` set its output to {len} bytes at {h}, which is outside its memory"
        )));
    }
    Ok(())
}

/// Writes a direct input at `ptr`, the buffer the plug-in's [`INPUT_BUFFER_EXPORT`] gave for
/// it; a buffer outside the plug-in's memory fails the call.
fn write_direct_input(
    store: &mut Store<StoreData>,
    memory: &Memory,
    ptr: i32,
    input: &[u8],
) -> wasmtime::Result<()> {
    let ptr = ptr as u32 as usize;
    memory.write(&mut *store, ptr, input).map_err(|_| {
        wasmtime::format_err!(
            "{INPUT_BUFFER_EXPORT} gave a buffer at {ptr} for {} bytes of input, which is \
             outside the plug-in's memory",
            input.len()
        )
    })
}
