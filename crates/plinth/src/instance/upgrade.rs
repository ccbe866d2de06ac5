//! Moving a live instance from the baseline tier to the optimized code, at a call boundary
//! (see `compile/tier.rs`): a new instance of the optimized build gets the old one's memories,
//! mutable globals and host-side state, so that the plug-in cannot tell it moved.

use std::sync::Arc;

use wasmtime::Extern;

use super::{Instance, Seed};
use crate::compile::Compiled;
use crate::{Error, Result};

impl Instance {
    /// The optimized build this instance moves to before its next call: set once the
    /// background compile is done, for modules whose state can move.
    fn upgrade_target(&self) -> Option<Arc<Compiled>> {
        if !self.compiled.movable || self.stay_on_tier {
            return None;
        }
        self.compiled.upgraded().cloned()
    }

    /// Moves to the optimized build between calls once it is ready (sync instances only: the
    /// move instantiates synchronously). A failed move leaves the instance on its tier.
    pub(crate) fn upgrade_if_ready(&mut self) {
        if let Some(to) = self.upgrade_target() {
            if let Err(e) = self.upgrade(&to) {
                tracing::debug!("the plug-in stays on its baseline code: {e}");
            }
        }
    }

    /// Replaces this instance with a new instance of `to` that has its state. On failure it
    /// stays as it was, and on its tier from then on.
    fn upgrade(&mut self, to: &Arc<Compiled>) -> Result<()> {
        let d = self.store.data();
        let seed = Seed {
            vars: d.vars.clone(),
            config: d.config.clone(),
            id: d.plugin_id.clone(),
            cancel: d.cancel.clone(),
            http_headers: d.http.headers_enabled,
        };
        let copied = Instance::new(to, seed).and_then(|mut new| {
            self.copy_wasm_state(&mut new)?;
            Ok(new)
        });
        let mut new = match copied {
            Ok(new) => new,
            Err(e) => {
                self.stay_on_tier = true;
                return Err(e);
            }
        };
        // Host-side state, last, once nothing can fail.
        let (old, moved) = (self.store.data_mut(), new.store.data_mut());
        std::mem::swap(&mut old.arena, &mut moved.arena);
        std::mem::swap(&mut old.http, &mut moved.http);
        std::mem::swap(&mut old.wasi, &mut moved.wasi);
        new.initialized = self.initialized;
        std::mem::swap(self, &mut new);
        Ok(())
    }

    /// Copies every exported memory (the plug-in's and Extism memory) and every mutable
    /// global (exported by the fusing rewrite) into `new`, a fresh instance of the same module.
    fn copy_wasm_state(&mut self, new: &mut Instance) -> Result<()> {
        let fail = |what: String| Error::other(format!("cannot move the plug-in's state: {what}"));
        let exports: Vec<(String, Extern)> = self
            .instance
            .exports(&mut self.store)
            .map(|e| (e.name().to_string(), e.into_extern()))
            .collect();
        for (name, export) in exports {
            let Extern::Memory(from) = export else {
                continue;
            };
            let Some(to) = new.instance.get_memory(&mut new.store, &name) else {
                return Err(fail(format!("the new instance lacks memory `{name}`")));
            };
            let (have, want) = (to.size(&new.store), from.size(&self.store));
            if want > have {
                to.grow(&mut new.store, want - have)
                    .map_err(|e| fail(format!("memory `{name}`: {e}")))?;
            }
            let bytes = from.data(&self.store);
            to.data_mut(&mut new.store)[..bytes.len()].copy_from_slice(bytes);
        }
        let globals = self
            .compiled
            .fused
            .as_ref()
            .map(|f| f.global_exports.clone())
            .unwrap_or_default();
        for (_, name) in globals {
            let (Some(from), Some(to)) = (
                self.instance.get_global(&mut self.store, &name),
                new.instance.get_global(&mut new.store, &name),
            ) else {
                return Err(fail(format!("global `{name}` is missing")));
            };
            let value = from.get(&mut self.store);
            to.set(&mut new.store, value)
                .map_err(|e| fail(format!("global `{name}`: {e}")))?;
        }
        Ok(())
    }

    /// Which code this instance runs.
    pub(crate) fn tier(&self) -> crate::Tier {
        self.compiled.tier()
    }
}
