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
}
