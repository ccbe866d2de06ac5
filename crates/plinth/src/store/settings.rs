//! [`Settings`]: what every instance of one compiled plug-in shares.

use std::collections::BTreeMap;
use std::time::Duration;

use super::WasiOptions;
use crate::http::HttpPolicy;

/// Settings every instance of a compiled plug-in shares.
pub(crate) struct Settings {
    pub max_var_bytes: u64,
    pub max_pages: Option<u32>,
    pub instance_memory_max: Option<u32>,
    pub timeout: Option<Duration>,
    pub fuel: Option<u64>,
    /// Fuel for instantiation and the start-up exports: the initialization limit, or `fuel`.
    pub init_fuel: Option<u64>,
    pub http: HttpPolicy,
    pub wasi: Option<WasiOptions>,
    pub config: BTreeMap<String, String>,
    /// The most a call may write to its output stream (`PluginBuilder::with_output_limit`).
    pub output_limit: Option<u64>,
}

impl Settings {
    /// The most Extism memory could hold for this plug-in: what a whole input or a collected
    /// output may take.
    pub(crate) fn memory_budget(&self) -> u64 {
        match self.max_pages {
            Some(pages) => u64::from(pages) * super::PAGE,
            None => 4 << 30,
        }
    }

    /// The most a classic call collects from `stream_write`: what its output could hold.
    pub(crate) fn classic_output_limit(&self) -> u64 {
        self.output_limit
            .map_or(self.memory_budget(), |l| l.min(self.memory_budget()))
    }
}
