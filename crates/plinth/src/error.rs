use std::time::Duration;

pub use plinth_manifest::ManifestError;

/// The return code Extism reports for a call that trapped.
pub const TRAP_CODE: i32 = 134;

/// Everything that can go wrong loading or calling a plug-in. Match on the variant; the
/// message says what happened and what to do about it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The manifest could not be read, parsed or resolved (a hash mismatch, an unknown field, a
    /// module that cannot be fetched).
    #[error(transparent)]
    Manifest(#[from] ManifestError),

    /// The manifest parsed but is not usable as it is.
    #[error("the manifest is invalid: {0}")]
    InvalidManifest(String),

    /// A module is not valid WebAssembly or WAT.
    #[error("cannot compile the plug-in `{module}`: {message} (is it a valid WebAssembly module or WAT text?)")]
    Compile {
        /// The module, by its manifest name.
        module: String,
        /// What went wrong.
        message: String,
    },

    #[error("cannot compile the plug-in `{module}`: {message}")]
    /// A module is over a compile limit: its size, its function count, or the deadline.
    CompileLimit {
        /// The module, by its manifest name.
        module: String,
        /// What went wrong.
        message: String,
    },

    /// The plug-in's imports cannot be satisfied, or instantiating it failed.
    #[error("{0}")]
    Link(String),

    /// No callable export has the name called.
    #[error("function `{name}` not found in the plug-in; its callable exports are: {}", list_or_none(.available))]
    FunctionNotFound {
        /// The name called.
        name: String,
        /// The callable exports there are.
        available: Vec<String>,
    },

    /// The export called is not a function of a plug-in's type.
    #[error("export `{name}` is not callable: a plug-in function must have type () -> i32 or () -> (), but it is {signature}")]
    NotCallable {
        /// The name called.
        name: String,
        /// The export's type.
        signature: String,
    },

    /// The plug-in trapped (an `unreachable`, an out-of-bounds access, a stack overflow).
    #[error("the plug-in trapped in `{function}`: {message}")]
    Trap {
        /// The function called.
        function: String,
        /// What went wrong.
        message: String,
    },

    /// The plug-in reported a failure: `error_set`, or a non-zero return code.
    #[error("the plug-in failed in `{function}` (code {code}): {message}")]
    Guest {
        /// The function called.
        function: String,
        /// The return code.
        code: i32,
        /// What went wrong.
        message: String,
    },

    /// The plug-in called WASI `proc_exit` with a non-zero code.
    #[error("the plug-in exited with code {code} in `{function}`")]
    Exit {
        /// The function called.
        function: String,
        /// The return code.
        code: i32,
    },

    /// The call ran past the manifest's `timeout_ms`.
    #[error("`{function}` timed out after {} ms; raise the limit with `timeout_ms` in the manifest", .limit.as_millis())]
    Timeout {
        /// The function called.
        function: String,
        /// The time the call had.
        limit: Duration,
    },

    /// The call was cancelled through a [`CancelHandle`](crate::CancelHandle).
    #[error("`{function}` was cancelled")]
    Cancelled {
        /// The function called.
        function: String,
    },

    /// The plug-in tried to grow its memory past its budget.
    #[error("`{function}` ran out of memory: the plug-in may use at most {limit_pages} pages ({} MiB) of memory; raise `memory.max_pages` in the manifest", *.limit_pages as u64 * 64 / 1024)]
    OutOfMemory {
        /// The function called.
        function: String,
        /// The budget, in 64 KiB pages.
        limit_pages: u32,
    },

    /// The call used up its fuel.
    #[error("`{function}` ran out of fuel after {limit} units; raise the fuel limit if the work is legitimate")]
    OutOfFuel {
        /// The function called.
        function: String,
        /// The fuel the call had.
        limit: u64,
    },

    /// An HTTP request went to a host outside `allowed_hosts`.
    #[error("HTTP request to `{host}` denied: it is not in `allowed_hosts`; add it (globs like `*.example.com` work) with the manifest or --allow-host")]
    HttpDenied {
        /// The host asked for.
        host: String,
    },

    /// An HTTP request failed, or was refused for its shape.
    #[error("HTTP request failed: {0}")]
    Http(String),

    /// Storing a var would go over `memory.max_var_bytes`.
    #[error("the var store is full: storing this value would use {needed} bytes, over `memory.max_var_bytes` = {limit}; raise it in the manifest or --var-max")]
    VarStoreFull {
        /// The bytes the store would need.
        needed: u64,
        /// `memory.max_var_bytes`.
        limit: u64,
    },

    /// A host function returned an error or panicked.
    #[error("host function `{function}` failed: {message}")]
    HostFunction {
        /// The function called.
        function: String,
        /// What went wrong.
        message: String,
    },

    /// A host function called back into the plug-in that called it.
    #[error("re-entrant call{} refused: the plug-in is already running a call on this thread (a host function may not call back into the plug-in that called it)", in_function(.function))]
    Reentrant {
        /// The function called.
        function: String,
    },

    /// [`SharedPlugin::try_with`](crate::SharedPlugin::try_with) found the plug-in running a
    /// call on another thread.
    #[error("the plug-in is busy with a call on another thread; wait for it to finish")]
    Busy,

    /// WASI could not be set up (an `allowed_paths` directory that cannot be opened).
    #[error("WASI setup failed: {0}")]
    Wasi(String),

    /// Input or output could not be converted to or from bytes.
    #[error("cannot convert data: {0}")]
    Convert(#[from] plinth_convert::Error),

    /// A memory handle or allocation was refused.
    #[error("memory error: {0}")]
    Memory(String),

    /// The plug-in was closed and can take no more calls.
    #[error("the plug-in is closed; load it again to call it")]
    Closed,

    /// A precompiled artifact could not be used: not an artifact, altered, signed with another
    /// key, or compiled from another module than the one the host names.
    #[error("{0}")]
    Artifact(String),

    /// A streaming call's input or output failed: the caller's reader or writer returned an
    /// error, the output went over the call's output limit, or the input was too large to give
    /// whole to a plug-in that does not read it as a stream.
    #[error("{0}")]
    Stream(String),

    /// Anything else; the message says what.
    #[error("{0}")]
    Other(String),
}

fn in_function(name: &str) -> String {
    if name.is_empty() {
        String::new()
    } else {
        format!(" to `{name}`")
    }
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

    /// What kind of failure this is: a stable number and name shared by every SDK.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Manifest(_) | Error::InvalidManifest(_) => ErrorKind::Manifest,
            Error::Compile { .. } => ErrorKind::Compile,
            Error::CompileLimit { .. } => ErrorKind::CompileLimit,
            Error::Link(_) => ErrorKind::Link,
            Error::FunctionNotFound { .. } => ErrorKind::FunctionNotFound,
            Error::NotCallable { .. } => ErrorKind::NotCallable,
            Error::Trap { .. } => ErrorKind::Trap,
            Error::Guest { .. } => ErrorKind::Guest,
            Error::Exit { .. } => ErrorKind::Exit,
            Error::Timeout { .. } => ErrorKind::Timeout,
            Error::Cancelled { .. } => ErrorKind::Cancelled,
            Error::OutOfMemory { .. } => ErrorKind::OutOfMemory,
            Error::OutOfFuel { .. } => ErrorKind::OutOfFuel,
            Error::HttpDenied { .. } => ErrorKind::HttpDenied,
            Error::Http(_) => ErrorKind::Http,
            Error::VarStoreFull { .. } => ErrorKind::VarStoreFull,
            Error::HostFunction { .. } => ErrorKind::HostFunction,
            Error::Reentrant { .. } => ErrorKind::Reentrant,
            Error::Wasi(_) => ErrorKind::Wasi,
            Error::Convert(_) => ErrorKind::Convert,
            Error::Memory(_) => ErrorKind::Memory,
            Error::Closed => ErrorKind::Closed,
            Error::Busy => ErrorKind::Busy,
            Error::Other(_) => ErrorKind::Other,
            Error::Artifact(_) => ErrorKind::Artifact,
            Error::Stream(_) => ErrorKind::Stream,
        }
    }

    pub(crate) fn other(msg: impl Into<String>) -> Self {
        Error::Other(msg.into())
    }
}

/// What kind of failure an [`Error`] is, with a stable number and name that every SDK and the
/// C API report unchanged, so that one failure reads the same in every language.
///
/// The numbers never change meaning; new kinds get new numbers. 0 means "no error" in the C API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[repr(i32)]
pub enum ErrorKind {
    /// The manifest could not be read or parsed, or is invalid (a hash mismatch, an unknown field).
    Manifest = 1,
    /// A module is not valid WebAssembly or WAT.
    Compile = 2,
    /// A module is over a compile limit (size, function count, deadline).
    CompileLimit = 3,
    /// The plug-in's imports cannot be satisfied, or its start-up failed.
    Link = 4,
    /// No callable export has the name called.
    FunctionNotFound = 5,
    /// The export called is not a function of a plug-in's type.
    NotCallable = 6,
    /// The plug-in trapped.
    Trap = 7,
    /// The plug-in reported a failure of its own (`error_set` or a non-zero return).
    Guest = 8,
    /// The plug-in exited through WASI `proc_exit` with a non-zero code.
    Exit = 9,
    /// The call ran past its `timeout_ms`.
    Timeout = 10,
    /// The call was cancelled through a cancel handle.
    Cancelled = 11,
    /// The plug-in went over its memory budget.
    OutOfMemory = 12,
    /// The call used up its fuel.
    OutOfFuel = 13,
    /// An HTTP request went to a host outside `allowed_hosts`.
    HttpDenied = 14,
    /// An HTTP request failed or was refused for its shape.
    Http = 15,
    /// The var store is over `memory.max_var_bytes`.
    VarStoreFull = 16,
    /// A host function returned an error.
    HostFunction = 17,
    /// A host function called back into the plug-in that called it.
    Reentrant = 18,
    /// WASI could not be set up (a bad `allowed_paths` entry).
    Wasi = 19,
    /// Input or output could not be converted to or from bytes.
    Convert = 20,
    /// A memory handle or allocation was refused.
    Memory = 21,
    /// The plug-in was closed.
    Closed = 22,
    /// The plug-in is running a call on another thread and the caller asked not to wait.
    Busy = 23,
    /// Anything else.
    Other = 24,
    /// A precompiled artifact was refused: not an artifact, altered, signed with another key,
    /// or compiled from another module.
    Artifact = 25,
    /// A streaming call's input or output failed, or the output went over its limit.
    Stream = 26,
}

impl ErrorKind {
    /// Every kind, in number order.
    pub const ALL: [ErrorKind; 26] = [
        ErrorKind::Manifest,
        ErrorKind::Compile,
        ErrorKind::CompileLimit,
        ErrorKind::Link,
        ErrorKind::FunctionNotFound,
        ErrorKind::NotCallable,
        ErrorKind::Trap,
        ErrorKind::Guest,
        ErrorKind::Exit,
        ErrorKind::Timeout,
        ErrorKind::Cancelled,
        ErrorKind::OutOfMemory,
        ErrorKind::OutOfFuel,
        ErrorKind::HttpDenied,
        ErrorKind::Http,
        ErrorKind::VarStoreFull,
        ErrorKind::HostFunction,
        ErrorKind::Reentrant,
        ErrorKind::Wasi,
        ErrorKind::Convert,
        ErrorKind::Memory,
        ErrorKind::Closed,
        ErrorKind::Busy,
        ErrorKind::Other,
        ErrorKind::Artifact,
        ErrorKind::Stream,
    ];

    /// The stable number of this kind (1 and up).
    pub fn number(self) -> i32 {
        self as i32
    }

    /// The kind with this number, if any.
    pub fn from_number(number: i32) -> Option<ErrorKind> {
        ErrorKind::ALL.into_iter().find(|k| k.number() == number)
    }

    /// The stable name of this kind, in snake case (`"out_of_fuel"`).
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Manifest => "manifest",
            ErrorKind::Compile => "compile",
            ErrorKind::CompileLimit => "compile_limit",
            ErrorKind::Link => "link",
            ErrorKind::FunctionNotFound => "function_not_found",
            ErrorKind::NotCallable => "not_callable",
            ErrorKind::Trap => "trap",
            ErrorKind::Guest => "guest",
            ErrorKind::Exit => "exit",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::OutOfMemory => "out_of_memory",
            ErrorKind::OutOfFuel => "out_of_fuel",
            ErrorKind::HttpDenied => "http_denied",
            ErrorKind::Http => "http",
            ErrorKind::VarStoreFull => "var_store_full",
            ErrorKind::HostFunction => "host_function",
            ErrorKind::Reentrant => "reentrant",
            ErrorKind::Wasi => "wasi",
            ErrorKind::Convert => "convert",
            ErrorKind::Memory => "memory",
            ErrorKind::Closed => "closed",
            ErrorKind::Busy => "busy",
            ErrorKind::Other => "other",
            ErrorKind::Artifact => "artifact",
            ErrorKind::Stream => "stream",
        }
    }

    /// Whether the failure happened while loading a plug-in rather than in a call.
    pub fn is_load(self) -> bool {
        matches!(
            self,
            ErrorKind::Manifest
                | ErrorKind::Compile
                | ErrorKind::CompileLimit
                | ErrorKind::Link
                | ErrorKind::Wasi
                | ErrorKind::Artifact
        )
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Why an epoch callback stopped a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Interrupt {
    Timeout,
    Cancelled,
}

impl std::fmt::Display for Interrupt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Interrupt::Timeout => f.write_str("the call timed out"),
            Interrupt::Cancelled => f.write_str("the call was cancelled"),
        }
    }
}
impl std::error::Error for Interrupt {}

/// A result whose error is a Plinth [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
