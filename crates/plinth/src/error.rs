use std::time::Duration;

pub use plinth_manifest::ManifestError;

/// The return code Extism reports for a call that trapped.
pub const TRAP_CODE: i32 = 134;

/// Everything that can go wrong loading or calling a plug-in. Match on the variant; the
/// message says what happened and what to do about it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error(transparent)]
    Manifest(#[from] ManifestError),

    #[error("the manifest is invalid: {0}")]
    InvalidManifest(String),

    #[error("cannot compile the plug-in `{module}`: {message} (is it a valid WebAssembly module or WAT text?)")]
    Compile { module: String, message: String },

    #[error("cannot compile the plug-in `{module}`: {message}")]
    CompileLimit { module: String, message: String },

    #[error("{0}")]
    Link(String),

    #[error("function `{name}` not found in the plug-in; its callable exports are: {}", list_or_none(.available))]
    FunctionNotFound {
        name: String,
        available: Vec<String>,
    },

    #[error("export `{name}` is not callable: a plug-in function must have type () -> i32 or () -> (), but it is {signature}")]
    NotCallable { name: String, signature: String },

    #[error("the plug-in trapped in `{function}`: {message}")]
    Trap { function: String, message: String },

    #[error("the plug-in failed in `{function}` (code {code}): {message}")]
    Guest {
        function: String,
        code: i32,
        message: String,
    },

    #[error("the plug-in exited with code {code} in `{function}`")]
    Exit { function: String, code: i32 },

    #[error("`{function}` timed out after {} ms; raise the limit with `timeout_ms` in the manifest or --timeout", .limit.as_millis())]
    Timeout { function: String, limit: Duration },

    #[error("`{function}` was cancelled")]
    Cancelled { function: String },

    #[error("`{function}` ran out of memory: the plug-in may use at most {limit_pages} pages ({} MiB) of memory; raise `memory.max_pages` in the manifest or --memory-max", *.limit_pages as u64 * 64 / 1024)]
    OutOfMemory { function: String, limit_pages: u32 },

    #[error("`{function}` ran out of fuel after {limit} units; raise the fuel limit if the work is legitimate")]
    OutOfFuel { function: String, limit: u64 },

    #[error("HTTP request to `{host}` denied: it is not in `allowed_hosts`; add it (globs like `*.example.com` work) with the manifest or --allow-host")]
    HttpDenied { host: String },

    #[error("HTTP request failed: {0}")]
    Http(String),

    #[error("the var store is full: storing this value would use {needed} bytes, over `memory.max_var_bytes` = {limit}; raise it in the manifest or --var-max")]
    VarStoreFull { needed: u64, limit: u64 },

    #[error("host function `{function}` failed: {message}")]
    HostFunction { function: String, message: String },

    #[error("re-entrant call into plug-in `{function}` refused: the plug-in is already running a call on this thread (a host function may not call back into the plug-in that called it)")]
    Reentrant { function: String },

    #[error("WASI setup failed: {0}")]
    Wasi(String),

    #[error("cannot convert data: {0}")]
    Convert(#[from] plinth_convert::Error),

    #[error("memory error: {0}")]
    Memory(String),

    #[error("{0}")]
    Other(String),
}

fn list_or_none(names: &[String]) -> String {
    if names.is_empty() {
        "(none)".to_string()
    } else {
        names.join(", ")
    }
}

impl Error {
    /// The Extism-style return code of a failed call: the guest's own code when it gave one,
    /// 134 for traps, -1 for errors the host produced.
    pub fn code(&self) -> i32 {
        match self {
            Error::Guest { code, .. } | Error::Exit { code, .. } => *code,
            Error::Trap { .. } => TRAP_CODE,
            _ => -1,
        }
    }

    pub(crate) fn other(msg: impl Into<String>) -> Self {
        Error::Other(msg.into())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
