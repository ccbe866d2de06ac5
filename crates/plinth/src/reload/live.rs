//! The running generation of a hot plug-in, and the next one, made ready before the swap.
//!
//! A hot plug-in holds its [`Instance`] itself rather than a [`Plugin`](crate::Plugin): the
//! swap moves every var to the new instance, and `Plugin` lists no vars, only looks them up.

use std::any::Any;
use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, RwLock};

use plinth_manifest::Manifest;

use super::Configure;
use crate::instance::{Instance, Seed};
use crate::store::Vars;
use crate::{CompiledPlugin, Error, PluginBuilder, Result, Source};

/// New code, compiled and instantiated, waiting to be swapped in.
pub(super) struct Next {
    compiled: CompiledPlugin,
    instance: Instance,
    config: Arc<RwLock<BTreeMap<String, String>>>,
    id: Arc<str>,
    cancel: Arc<AtomicBool>,
}

impl Next {
    /// Compiles `manifest` with the builder `configure` makes and instantiates it (running
    /// its start function), so that code that cannot run is refused before any swap.
    pub(super) fn prepare(
        configure: &Configure,
        manifest: Manifest,
        required: &[String],
        id: &Arc<str>,
    ) -> Result<Next> {
        // A panicking `configure` must not take the old code down with it.
        let compiled = catch_unwind(AssertUnwindSafe(|| {
            configure(PluginBuilder::new(Source::Manifest(manifest))).compile()
        }))
        .map_err(|panic| {
            let why = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Error::other(format!(
                "the hot plug-in's configure closure panicked: {why}; fix the closure"
            ))
        })??;
        if compiled.inner.has_async {
            return Err(Error::other(
                "a hot plug-in is called synchronously, and this one has async host \
                 functions; give it synchronous host functions (Function::new)",
            ));
        }
        check_exports(&compiled, required)?;
        let config = Arc::new(RwLock::new(compiled.inner.settings.config.clone()));
        let cancel = Arc::new(AtomicBool::new(false));
        let seed = Seed {
            vars: Vars::default(),
            config: config.clone(),
            id: id.clone(),
            cancel: cancel.clone(),
            http_headers: false,
        };
        let instance = Instance::new(&compiled.inner, seed)?;
        Ok(Next {
            compiled,
            instance,
            config,
            id: id.clone(),
            cancel,
        })
    }
}

/// Fails with [`Error::FunctionNotFound`] for the first of `required` that `compiled` lacks.
pub(super) fn check_exports(compiled: &CompiledPlugin, required: &[String]) -> Result<()> {
    let available = compiled.functions();
    match required.iter().find(|r| !available.contains(r)) {
        Some(name) => Err(Error::FunctionNotFound {
            name: name.clone(),
            available,
        }),
        None => Ok(()),
    }
}

/// The generation that calls run on.
pub(super) struct Live {
    pub compiled: CompiledPlugin,
    /// `None` after an instance was spent (a trap) and before the next call makes another.
    instance: Option<Instance>,
    /// The vars while there is no instance.
    vars: Vars,
    config: Arc<RwLock<BTreeMap<String, String>>>,
    id: Arc<str>,
    cancel: Arc<AtomicBool>,
    pub generation: u64,
}

impl Live {
    pub(super) fn first(next: Next) -> Live {
        Live {
            compiled: next.compiled,
            instance: Some(next.instance),
            vars: Vars::default(),
            config: next.config,
            id: next.id,
            cancel: next.cancel,
            generation: 1,
        }
    }

    /// Makes `next` the running generation, with this one's vars; returns the old instance
    /// so that the caller drops it outside the lock.
    pub(super) fn swap(&mut self, mut next: Next) -> Option<Instance> {
        let old = self.instance.take();
        let vars = match &old {
            Some(instance) => instance.vars().clone(),
            None => std::mem::take(&mut self.vars),
        };
        *next.instance.vars_mut() = vars;
        self.compiled = next.compiled;
        self.instance = Some(next.instance);
        self.vars = Vars::default();
        self.config = next.config;
        self.cancel = next.cancel;
        self.generation += 1;
        old
    }

    pub(super) fn vars(&self) -> &Vars {
        match &self.instance {
            Some(i) => i.vars(),
            None => &self.vars,
        }
    }

    pub(super) fn vars_mut(&mut self) -> &mut Vars {
        match &mut self.instance {
            Some(i) => i.vars_mut(),
            None => &mut self.vars,
        }
    }

    /// Runs a call on the instance, first making a new one (vars kept) if the last one is
    /// spent, as [`Plugin`](crate::Plugin) does.
    pub(super) fn call(
        &mut self,
        function: &str,
        input: &[u8],
        context: Option<Box<dyn Any + Send>>,
    ) -> Result<()> {
        Instance::renew(&mut self.instance, &mut self.vars);
        if let Some(instance) = &mut self.instance {
            instance.upgrade_if_ready();
        }
        let instance = match &mut self.instance {
            Some(instance) => instance,
            empty => {
                let seed = Seed {
                    // A copy, so that the vars survive an instantiation that fails.
                    vars: self.vars.clone(),
                    config: self.config.clone(),
                    id: self.id.clone(),
                    cancel: self.cancel.clone(),
                    http_headers: false,
                };
                let instance = Instance::new(&self.compiled.inner, seed)?;
                self.vars = Vars::default();
                empty.insert(instance)
            }
        };
        instance.call(function, input, context)
    }

    /// Fuel the last call used; `None` without a fuel limit.
    pub(super) fn fuel_consumed(&self) -> Option<u64> {
        self.instance.as_ref()?.fuel_consumed()
    }

    /// The output of the last successful call.
    pub(super) fn output(&self) -> &[u8] {
        self.instance.as_ref().map_or(&[], Instance::output)
    }
}
