//! [`Instance`]: one wasmtime instance of a compiled plug-in, its store, and the call path.
//!
//! - [`Instance`] (this file): made from an `Arc<Compiled>` and a [`Seed`] (what the
//!   [`Plugin`](crate::Plugin) holding it carries over between instances: vars, config, id,
//!   cancel flag); finds and caches the exports it is asked to call.
//! - `call.rs`: the path of one call, begin → invoke → finish, in that order.
//! - `stream.rs`: a streaming call: lends the caller's reader and writer to the stream
//!   functions for one call, or buffers for a plug-in that does not stream;
//! - `upgrade.rs`: moves a live instance from the baseline tier to the optimized code at a
//!   call boundary, state and all;
//! - `failure.rs`: turns what wasmtime reports (traps, interrupts, refused growth, fuel) into
//!   the one [`Error`] a caller sees.

mod call;
mod failure;
mod stream;
mod upgrade;

pub use stream::StreamStats;

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use wasmtime::{
    Memory, MemoryType, PoolConcurrencyLimitError, Store, Trap, TypedFunc, UpdateDeadline,
};

use crate::abi::memory::{self, Arena};
use crate::abi::INPUT_BUFFER_EXPORT;
use crate::compile::imports::{callable_exports, callable_type, describe_type};
use crate::compile::link::{bind_late, late_bind};
use crate::compile::Compiled;
use crate::error::Interrupt;
use crate::store::{self, HttpState, Kernel, Limiter, StoreData, Vars};
use crate::{Error, Result};
use failure::{classify_failure, out_of_memory, INSTANTIATION};

/// A plug-in export that can be called: `() -> i32` or `() -> ()`.
#[derive(Clone)]
enum Callable {
    I32(TypedFunc<(), i32>),
    Unit(TypedFunc<(), ()>),
}

/// What a new instance takes over from the plug-in that holds it.
pub(crate) struct Seed {
    pub vars: Vars,
    pub config: Arc<RwLock<BTreeMap<String, String>>>,
    pub id: Arc<str>,
    pub cancel: Arc<AtomicBool>,
    pub http_headers: bool,
}

/// Why an instance did not start.
enum Failure {
    Failed(Error),
    /// The instance pool had no free slot; the seed, back for an instance made on demand.
    PoolFull(Seed),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Failed(e)
    }
}

/// One wasmtime instance of a plug-in and its store.
pub(crate) struct Instance {
    compiled: Arc<Compiled>,
    store: Store<StoreData>,
    instance: wasmtime::Instance,
    funcs: HashMap<String, Callable>,
    last: Option<(Box<str>, Callable)>,
    /// The plug-in's `memory` export, where direct input and output live.
    plugin_memory: Option<Memory>,
    /// The plug-in's `plinth_input_buffer` export (see `abi::INPUT_BUFFER_EXPORT`).
    input_buffer: Option<TypedFunc<i32, i32>>,
    initialized: bool,
    /// The instance may not be called again (`_start` ran, or a call trapped).
    spent: bool,
    /// Moving to the optimized tier failed once: the instance stays where it is.
    stay_on_tier: bool,
    /// The output of a classic call that streamed some of it: the streamed bytes, then what
    /// `output_set` set.
    joined_output: Option<Vec<u8>>,
}

impl Instance {
    /// A new instance of `compiled`, started with `seed`'s vars and identity: instantiates
    /// the modules (cyclic imports bound late), sets Extism memory up, and runs start
    /// functions under the call's time limit and the initialization fuel.
    pub(crate) fn new(compiled: &Arc<Compiled>, seed: Seed) -> Result<Instance> {
        // A plug-in on the baseline tier starts new instances on its optimized code once
        // that is ready.
        let compiled = compiled.upgraded().unwrap_or(compiled);
        match Self::start(compiled, seed) {
            Ok(instance) => Ok(instance),
            Err(Failure::Failed(e)) => Err(e),
            // Every slot of the instance pool is taken: this instance is allocated on demand.
            Err(Failure::PoolFull(seed)) => match compiled.on_demand() {
                Some(twin) => match Self::start(&twin?, seed) {
                    Ok(instance) => Ok(instance),
                    Err(Failure::Failed(e)) => Err(e),
                    Err(Failure::PoolFull(_)) => Err(Error::Link(
                        "cannot instantiate the plug-in: no instance slot is free".into(),
                    )),
                },
                None => Err(Error::Link(
                    "cannot instantiate the plug-in: every pooled instance slot is in use; drop \
                     instances no longer needed"
                        .into(),
                )),
            },
        }
    }

    /// [`Instance::new`] for plug-ins with async host functions, whose instantiation wasmtime
    /// runs on a fiber.
    pub(crate) async fn new_async(compiled: &Arc<Compiled>, seed: Seed) -> Result<Instance> {
        let compiled = compiled.upgraded().unwrap_or(compiled);
        match Self::start_with(compiled, seed, true).await {
            Ok(instance) => Ok(instance),
            Err(Failure::Failed(e)) => Err(e),
            Err(Failure::PoolFull(seed)) => match compiled.on_demand() {
                Some(twin) => match Self::start_with(&twin?, seed, true).await {
                    Ok(instance) => Ok(instance),
                    Err(Failure::Failed(e)) => Err(e),
                    Err(Failure::PoolFull(_)) => Err(Error::Link(
                        "cannot instantiate the plug-in: no instance slot is free".into(),
                    )),
                },
                None => Err(Error::Link(
                    "cannot instantiate the plug-in: every pooled instance slot is in use; drop \
                     instances no longer needed"
                        .into(),
                )),
            },
        }
    }

    fn start(compiled: &Arc<Compiled>, seed: Seed) -> std::result::Result<Instance, Failure> {
        // Nothing awaits on the synchronous path, so the future is ready at its first poll.
        let mut future = std::pin::pin!(Self::start_with(compiled, seed, false));
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match future.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(started) => started,
            std::task::Poll::Pending => unreachable!("a synchronous instantiation never waits"),
        }
    }

    /// Makes the store and instantiates: with `asyncly`, through wasmtime's `*_async`
    /// functions (required once a plug-in has async host functions).
    async fn start_with(
        compiled: &Arc<Compiled>,
        seed: Seed,
        asyncly: bool,
    ) -> std::result::Result<Instance, Failure> {
        let c = compiled;
        let shared = c.settings.clone();
        let wasi = match &shared.wasi {
            Some(opts) => Some(opts.build()?),
            None => None,
        };
        let data = StoreData {
            arena: Arena::new(),
            kernel: None,
            input: (0, 0),
            output: (0, 0),
            output_direct: None,
            error: 0,
            limiter: Limiter::new(shared.max_pages, shared.instance_memory_max),
            fuel_limit: shared.init_fuel.unwrap_or(0),
            vars: seed.vars,
            config: seed.config,
            http: HttpState {
                headers_enabled: seed.http_headers,
                ..HttpState::default()
            },
            shared: shared.clone(),
            plugin_id: seed.id,
            deadline: None,
            cancel: seed.cancel,
            host_context: None,
            yield_at_ticks: false,
            call_in_progress: false,
            wasi,
            streams: std::sync::Arc::new(std::sync::Mutex::new(store::CallStreams::classic(
                c.settings.classic_output_limit(),
            ))),
            streams_touched: false,
        };
        let mut store = Store::new(c.engine.engine(), data);
        store.limiter(|d| &mut d.limiter);
        store.epoch_deadline_callback(|ctx| {
            let d = ctx.data();
            if d.cancelled() {
                return Err(Interrupt::Cancelled.into());
            }
            if d.deadline.is_some_and(|t| Instant::now() >= t) {
                return Err(Interrupt::Timeout.into());
            }
            if d.yield_at_ticks {
                // An async call gives its thread back to the executor at every tick.
                return Ok(UpdateDeadline::Yield(1));
            }
            Ok(UpdateDeadline::Continue(1))
        });
        store.set_epoch_deadline(1);
        // One initialization budget for instantiation, start functions and (at the first
        // call) the start-up exports.
        if let Some(f) = shared.init_fuel {
            store.set_fuel(f).map_err(|e| Error::other(e.to_string()))?;
        }
        // A start function runs here: it gets the call's time limit and can be cancelled, so
        // a module that loops in it cannot hang the host.
        store.data_mut().deadline = shared.timeout.map(|t| Instant::now() + t);
        // Only a deadline needs the ticker (as for calls); an idle ticker also spares every
        // memory remap the cross-core TLB flush a running one would cost.
        let _running = shared.timeout.is_some().then(|| c.engine.call_guard());
        let link = |e: wasmtime::Error, store: &Store<StoreData>| -> Error {
            let refused = store.data().limiter.refused;
            if e.is::<Interrupt>() || (e.is::<Trap>() && refused.is_some()) {
                return classify_failure(store.data(), INSTANTIATION, e);
            }
            match refused {
                // A memory or table the limiter refused to create.
                Some(r) if r.is_budget() => out_of_memory(INSTANTIATION, r, &shared),
                Some(r) => Error::Link(format!(
                    "cannot instantiate the plug-in: it asks for {r}; it cannot be loaded"
                )),
                None if e.downcast_ref::<Trap>() == Some(&Trap::OutOfFuel) => {
                    classify_failure(store.data(), INSTANTIATION, e)
                }
                None => Error::Link(format!("cannot instantiate the plug-in: {e:#}")),
            }
        };
        let started = Self::instantiate(c, &mut store, asyncly).await;
        let instance = match started {
            Ok(instance) => instance,
            Err(e) if e.is::<PoolConcurrencyLimitError>() => {
                let data = store.into_data();
                return Err(Failure::PoolFull(Seed {
                    vars: data.vars,
                    config: data.config,
                    id: data.plugin_id,
                    cancel: data.cancel,
                    http_headers: data.http.headers_enabled,
                }));
            }
            Err(e) => return Err(Failure::Failed(link(e, &store))),
        };
        // Instantiation is over: from here on, growth is charged (Extism resets its limiter
        // at this point).
        store.data_mut().limiter.run();
        let plugin_memory = instance.get_memory(&mut store, "memory");
        let input_buffer = plugin_memory
            .and_then(|_| instance.get_func(&mut store, INPUT_BUFFER_EXPORT))
            .and_then(|f| f.typed::<i32, i32>(&store).ok());
        Ok(Instance {
            compiled: compiled.clone(),
            store,
            instance,
            funcs: HashMap::new(),
            last: None,
            plugin_memory,
            input_buffer,
            initialized: false,
            spent: false,
            stay_on_tier: false,
            joined_output: None,
        })
    }

    /// Instantiates the modules of `c` in `store` and runs their start functions.
    async fn instantiate(
        c: &Compiled,
        store: &mut Store<StoreData>,
        asyncly: bool,
    ) -> wasmtime::Result<wasmtime::Instance> {
        let fused_memory = c.fused.is_some();
        if !fused_memory {
            let memory = Memory::new(&mut *store, MemoryType::new(1, None))?;
            store.data_mut().kernel = Some(Kernel { memory });
        }
        // What the main module declares is checked against `max_pages`, not charged.
        let declare = |store: &mut Store<StoreData>| store.data_mut().limiter.declare(fused_memory);
        let instance = match &c.pre {
            Some(pre) => {
                declare(store);
                if asyncly {
                    pre.instantiate_async(&mut *store).await?
                } else {
                    pre.instantiate(&mut *store)?
                }
            }
            None => {
                let mut linker = c.linker.clone();
                // Imports from modules not instantiated yet (a cycle), until they are.
                let mut late = Vec::new();
                for (i, (name, module)) in c.deps.iter().enumerate() {
                    late_bind(&mut linker, name, module, &c.deps[i + 1..], &mut late)?;
                    let inst = if asyncly {
                        linker.instantiate_async(&mut *store, module).await?
                    } else {
                        linker.instantiate(&mut *store, module)?
                    };
                    bind_late(&mut *store, name, inst, &mut late)?;
                    if let Ok(init) = inst.get_typed_func::<(), ()>(&mut *store, "_initialize") {
                        if asyncly {
                            init.call_async(&mut *store, ()).await?;
                        } else {
                            init.call(&mut *store, ())?;
                        }
                    }
                    linker.instance(&mut *store, name, inst)?;
                }
                declare(store);
                if asyncly {
                    linker.instantiate_async(&mut *store, &c.main).await?
                } else {
                    linker.instantiate(&mut *store, &c.main)?
                }
            }
        };
        if let Some(fused) = &c.fused {
            let Some(memory) = instance.get_memory(&mut *store, &fused.memory_export) else {
                wasmtime::bail!("the fused plug-in lacks its Extism memory export");
            };
            store.data_mut().kernel = Some(Kernel { memory });
            // The start function, deferred by fusing until Extism memory is reachable.
            if let Some(name) = &fused.start_export {
                let start = instance.get_typed_func::<(), ()>(&mut *store, name)?;
                if asyncly {
                    start.call_async(&mut *store, ()).await?;
                } else {
                    start.call(&mut *store, ())?;
                }
            }
        }
        Ok(instance)
    }

    /// Whether the instance may not be called again: it is spent, or an async call on it was
    /// dropped midway.
    pub(crate) fn is_spent(&self) -> bool {
        self.spent || self.store.data().call_in_progress
    }

    /// The vars, for the instance that replaces this one.
    pub(crate) fn into_vars(self) -> Vars {
        self.store.into_data().vars
    }

    /// Drops a holder's spent instance between calls, its vars going to `vars`, from which
    /// the holder makes the next instance. `Plugin` and `HotPlugin` both hold one this way.
    pub(crate) fn renew(slot: &mut Option<Instance>, vars: &mut Vars) {
        if slot.as_ref().is_some_and(Instance::is_spent) {
            *vars = slot.take().expect("checked above").into_vars();
        }
    }

    pub(crate) fn vars(&self) -> &Vars {
        &self.store.data().vars
    }

    pub(crate) fn vars_mut(&mut self) -> &mut Vars {
        &mut self.store.data_mut().vars
    }

    /// Lets the plug-in read its HTTP responses' headers.
    pub(crate) fn allow_http_response_headers(&mut self) {
        self.store.data_mut().http.headers_enabled = true;
    }

    /// Releases all Extism memory of the last call (its output included).
    pub(crate) fn reset(&mut self) {
        self.joined_output = None;
        let d = self.store.data_mut();
        d.arena.reset();
        d.output = (0, 0);
        d.output_direct = None;
        d.error = 0;
        store::set_input(&mut self.store, 0, 0);
    }

    /// The output of the last successful call (empty after a failed one).
    pub(crate) fn output(&self) -> &[u8] {
        if let Some(joined) = &self.joined_output {
            return joined;
        }
        if let (Some((ptr, len)), Some(memory)) =
            (self.store.data().output_direct, self.plugin_memory)
        {
            // Checked against the memory's size when set, and memories never shrink.
            let (ptr, len) = (ptr as usize, len as usize);
            return memory
                .data(&self.store)
                .get(ptr..ptr + len)
                .unwrap_or_default();
        }
        let (h, len) = self.store.data().output;
        if h == 0 || len == 0 {
            return &[];
        }
        memory::range(store::bytes(&self.store), h, len).unwrap_or(&[])
    }

    /// Fuel the last call used; `None` without a fuel limit.
    pub(crate) fn fuel_consumed(&self) -> Option<u64> {
        let limit = self.compiled.settings.fuel?;
        let left = self.store.get_fuel().ok()?;
        Some(limit.saturating_sub(left))
    }

    /// The export `function`, unless it is `hidden` (a fused module's deferred start function,
    /// which the host runs once at instantiation and never again).
    fn lookup(&mut self, function: &str) -> Result<Callable> {
        let hidden = self
            .compiled
            .fused
            .as_ref()
            .and_then(|f| f.start_export.as_deref());
        let found = match hidden {
            Some(h) if h == function => None,
            _ => self.instance.get_func(&mut self.store, function),
        };
        let Some(func) = found else {
            let module = self.instance.module(&self.store).clone();
            // An export that is not a function (a global, a memory, a table) says what it is.
            if let Some(ty) = module
                .get_export(function)
                .filter(|_| hidden != Some(function))
            {
                return Err(Error::NotCallable {
                    name: function.to_string(),
                    signature: describe_type(&ty),
                });
            }
            return Err(Error::FunctionNotFound {
                name: function.to_string(),
                available: callable_exports(&module, hidden),
            });
        };
        let ty = func.ty(&self.store);
        match callable_type(&ty) {
            Some(true) => Ok(Callable::I32(
                func.typed(&self.store).expect("type checked"),
            )),
            Some(false) => Ok(Callable::Unit(
                func.typed(&self.store).expect("type checked"),
            )),
            None => Err(Error::NotCallable {
                name: function.to_string(),
                signature: format!("{ty}"),
            }),
        }
    }
}
