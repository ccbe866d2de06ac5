//! Plinth's plug-in ABI and the load-time rewrites, without a runtime: shared by the native
//! runtime (`plinth`, which compiles the result with wasmtime) and the web kernel
//! (`plinth-web-kernel`, the same code built for wasm32 and called from JavaScript), so both
//! hosts make the same bytes of the same plug-in.
//!
//! - [`FUNCTIONS`]: every function the host offers a plug-in ([`AbiFunction`]: namespace, name,
//!   signature as [`Ty`]s, and whether the load-time rewrite fuses it, [`Fusion`]). The
//!   runtime's linker registrations are checked against it, the fused kernels ([`fuse`]) take
//!   their signatures and order from it, the runtime's import checks accept what it lists, and
//!   the tests' WAT prelude is generated from it ([`wat_imports`]).
//! - [`memory`]: Extism memory, the blocks plug-ins reach through `i64` handles
//!   ([`memory::Arena`]), and its fixed layout (where the input's offset and length live).
//! - [`stream_link`]: links a Plinth PDK's streaming exports to the host's stream imports.
//! - [`fuse`]: puts the hot ABI functions into the plug-in; [`fuse::Fused`] names what the
//!   rewritten module exports for the host.
//! - [`limit`]: caps the memories a module defines at `memory.max_pages`, for hosts without a
//!   resource limiter (the web kernel; the native runtime uses wasmtime's).
//! - [`prepare`] and [`Prepared`]: both rewrites in the order every host applies them, the
//!   one entry point; [`PrepareError`] when the module is not valid wasm.
//!
//! Nothing here depends on wasmtime or on `std` APIs missing from `wasm32-unknown-unknown`.

pub mod fuse;
pub mod limit;
pub mod memory;
mod sections;
pub mod stream_link;
#[cfg(test)]
mod testing;

use std::borrow::Cow;
use std::fmt;

/// The namespace of the Extism 1.x ABI.
pub const ENV: &str = "extism:host/env";
/// Before Extism 1.0 the same imports lived here with an `extism_` prefix.
pub const LEGACY_ENV: &str = "env";
/// The prefix of the pre-1.0 names in [`LEGACY_ENV`].
pub const LEGACY_PREFIX: &str = "extism_";
/// Plinth's own imports, offered by Plinth hosts only: bulk copies between the plug-in's
/// memory and Extism memory, output straight from the plug-in's memory (`output_direct`), for
/// the Rust PDK's `bulk-copy` feature, and the input and output streams
/// ([`STREAM_READ`], [`STREAM_WRITE`]).
pub const PLINTH_ENV: &str = "plinth:host/env";
/// The export through which a plug-in offers a buffer of its own memory for the call's input:
/// `(len: i32) -> (ptr: i32)`. A Plinth host that finds it writes the input there, straight
/// from the caller's bytes, instead of into Extism memory (where the plug-in would copy it
/// from again); Extism's input functions then see an empty input.
pub const INPUT_BUFFER_EXPORT: &str = "plinth_input_buffer";

/// A value type of the ABI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ty {
    /// A 32-bit integer.
    I32,
    /// A 64-bit integer: handles, offsets and lengths.
    I64,
}

impl Ty {
    /// The type's name in WAT.
    pub fn wat(self) -> &'static str {
        match self {
            Ty::I32 => "i32",
            Ty::I64 => "i64",
        }
    }
}

/// Whether the load-time rewrite puts a function's body into the plug-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fusion {
    /// Always a host function.
    No,
    /// Fused: a load or store on Extism memory, too small to pay for a call into the host.
    Memory,
    /// Fused when the plug-in's memory 0 is a 32-bit memory: a `memory.copy` between it and
    /// Extism memory.
    Bulk,
}

/// One function of the ABI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbiFunction {
    /// [`ENV`] or [`PLINTH_ENV`].
    pub namespace: &'static str,
    /// The import name.
    pub name: &'static str,
    /// Parameter types.
    pub params: &'static [Ty],
    /// Result types.
    pub results: &'static [Ty],
    /// Whether the rewrite fuses it.
    pub fusion: Fusion,
}

const fn f(
    namespace: &'static str,
    name: &'static str,
    params: &'static [Ty],
    results: &'static [Ty],
    fusion: Fusion,
) -> AbiFunction {
    AbiFunction {
        namespace,
        name,
        params,
        results,
        fusion,
    }
}

use Fusion::{Bulk, Memory as Fused, No};
use Ty::{I32, I64};

/// Every function the host offers. Fused functions are appended to a plug-in in this order.
pub static FUNCTIONS: &[AbiFunction] = &[
    f(ENV, "input_length", &[], &[I64], Fused),
    f(ENV, "input_load_u8", &[I64], &[I32], Fused),
    f(ENV, "input_load_u64", &[I64], &[I64], Fused),
    f(ENV, "load_u8", &[I64], &[I32], Fused),
    f(ENV, "load_u64", &[I64], &[I64], Fused),
    f(ENV, "store_u8", &[I64, I32], &[], Fused),
    f(ENV, "store_u64", &[I64, I64], &[], Fused),
    f(PLINTH_ENV, "input_read", &[I64, I32, I32], &[], Bulk),
    f(PLINTH_ENV, "read", &[I64, I32, I32], &[], Bulk),
    f(PLINTH_ENV, "write", &[I64, I32, I32], &[], Bulk),
    f(PLINTH_ENV, "alloc_uninit", &[I64], &[I64], No),
    f(PLINTH_ENV, "output_direct", &[I32, I32], &[], No),
    f(ENV, "alloc", &[I64], &[I64], No),
    f(ENV, "free", &[I64], &[], No),
    f(ENV, "length", &[I64], &[I64], No),
    f(ENV, "length_unsafe", &[I64], &[I64], No),
    f(ENV, "input_offset", &[], &[I64], No),
    f(ENV, "input_set", &[I64, I64], &[], No),
    f(ENV, "output_set", &[I64, I64], &[], No),
    f(ENV, "output_length", &[], &[I64], No),
    f(ENV, "output_offset", &[], &[I64], No),
    f(ENV, "error_set", &[I64], &[], No),
    f(ENV, "error_get", &[], &[I64], No),
    f(ENV, "reset", &[], &[], No),
    f(ENV, "memory_bytes", &[], &[I64], No),
    f(ENV, "config_get", &[I64], &[I64], No),
    f(ENV, "var_get", &[I64], &[I64], No),
    f(ENV, "var_set", &[I64, I64], &[], No),
    f(ENV, "http_request", &[I64, I64], &[I64], No),
    f(ENV, "http_status_code", &[], &[I32], No),
    f(ENV, "http_headers", &[], &[I64], No),
    f(ENV, "log_trace", &[I64], &[], No),
    f(ENV, "log_debug", &[I64], &[], No),
    f(ENV, "log_info", &[I64], &[], No),
    f(ENV, "log_warn", &[I64], &[], No),
    f(ENV, "log_error", &[I64], &[], No),
    f(ENV, "get_log_level", &[], &[I32], No),
    f(PLINTH_ENV, "stream_read", &[I32, I32], &[I32], No),
    f(PLINTH_ENV, "stream_write", &[I32, I32], &[I32], No),
    f(PLINTH_ENV, "http_stream_start", &[I64], &[I64], No),
    f(PLINTH_ENV, "http_stream_send", &[I64, I32, I32], &[I32], No),
    f(PLINTH_ENV, "http_stream_status", &[I64], &[I32], No),
    f(PLINTH_ENV, "http_stream_read", &[I64, I32, I32], &[I32], No),
    f(PLINTH_ENV, "http_stream_close", &[I64], &[], No),
];

/// Exports through which a plug-in built with a Plinth PDK offers its streaming functions with
/// whole-buffer bodies of its own (so that it also runs on Extism hosts, which refuse unknown
/// imports): the loader replaces each body with a call to the `plinth:host/env` import named
/// beside it, when the export has that import's type (see `docs/streaming.md`).
pub const STREAM_EXPORTS: [(&str, &str); 7] = [
    ("plinth_stream_read", STREAM_READ),
    ("plinth_stream_write", STREAM_WRITE),
    ("plinth_http_stream_start", "http_stream_start"),
    ("plinth_http_stream_send", "http_stream_send"),
    ("plinth_http_stream_status", "http_stream_status"),
    ("plinth_http_stream_read", "http_stream_read"),
    ("plinth_http_stream_close", "http_stream_close"),
];
/// `stream_read(ptr: i32, len: i32) -> i32`: up to `len` bytes of the input stream into the
/// plug-in's memory; the count, 0 at the end, -1 when the input failed.
pub const STREAM_READ: &str = "stream_read";
/// `stream_write(ptr: i32, len: i32) -> i32`: `len` bytes of the plug-in's memory to the
/// output stream, delivered before it returns; 0, or -1 when the output is closed.
pub const STREAM_WRITE: &str = "stream_write";

/// The ABI function `namespace::name`, also under its pre-1.0 name (`env::extism_alloc`).
pub fn find(namespace: &str, name: &str) -> Option<&'static AbiFunction> {
    let (namespace, name) = match name.strip_prefix(LEGACY_PREFIX) {
        Some(short) if namespace == LEGACY_ENV => (ENV, short),
        _ => (namespace, name),
    };
    FUNCTIONS
        .iter()
        .find(|f| f.namespace == namespace && f.name == name)
}

/// The names the host offers in `namespace`, in table order.
pub fn names(namespace: &str) -> impl Iterator<Item = &'static str> + '_ {
    FUNCTIONS
        .iter()
        .filter(move |f| f.namespace == namespace)
        .map(|f| f.name)
}

/// The fused functions, in the order their bodies are appended to a plug-in.
pub fn fused() -> impl Iterator<Item = &'static AbiFunction> {
    FUNCTIONS.iter().filter(|f| f.fusion != Fusion::No)
}

/// WAT import declarations of the functions in `namespace`, each named `$<name>`: the prelude
/// of test plug-ins written in WAT.
pub fn wat_imports(namespace: &str) -> String {
    let list = |tys: &[Ty]| tys.iter().map(|t| t.wat()).collect::<Vec<_>>().join(" ");
    let mut out = String::new();
    for f in FUNCTIONS.iter().filter(|f| f.namespace == namespace) {
        out.push_str(&format!(
            "(import \"{}\" \"{}\" (func ${} (param {}) (result {})))\n",
            f.namespace,
            f.name,
            f.name,
            list(f.params),
            list(f.results)
        ));
    }
    out
}

/// A module made ready to compile by [`prepare`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared<'a> {
    /// The bytes to compile: the input itself when no rewrite applied.
    pub wasm: Cow<'a, [u8]>,
    /// Whether [`stream_link::link`] linked streaming exports to the host's imports.
    pub stream_linked: bool,
    /// What the fuse rewrite exported for the host; `None` when it left the module unfused.
    pub fused: Option<fuse::Fused>,
}

/// Why [`prepare`] refused a module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrepareError {
    /// The validator's message.
    pub message: String,
}

impl fmt::Display for PrepareError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "not a valid WebAssembly module: {}", self.message)
    }
}

impl std::error::Error for PrepareError {}

/// The load-time rewrites of a plug-in's main module, in the order every host applies them:
/// streaming exports linked first (so that fusing sees the final imports), then the hot ABI
/// functions fused. Fails only when the (linked) module is not valid wasm, which fusing must
/// know anyway: appending a memory could make an invalid module valid.
pub fn prepare(wasm: &[u8]) -> Result<Prepared<'_>, PrepareError> {
    let linked = stream_link::link(wasm);
    let stream_linked = linked.is_some();
    let input: Cow<'_, [u8]> = match linked {
        Some(bytes) => Cow::Owned(bytes),
        None => Cow::Borrowed(wasm),
    };
    match fuse::fuse_named(&input)? {
        Some((bytes, names)) => Ok(Prepared {
            wasm: Cow::Owned(bytes),
            stream_linked,
            fused: Some(names),
        }),
        None => Ok(Prepared {
            wasm: input,
            stream_linked,
            fused: None,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_per_namespace_and_legacy_names_resolve() {
        for (i, a) in FUNCTIONS.iter().enumerate() {
            for b in &FUNCTIONS[i + 1..] {
                assert!(
                    (a.namespace, a.name) != (b.namespace, b.name),
                    "{} twice",
                    a.name
                );
            }
        }
        assert_eq!(
            find(LEGACY_ENV, "extism_alloc").map(|f| f.name),
            Some("alloc")
        );
        assert!(find(LEGACY_ENV, "extism_input_read").is_none());
        assert!(find(ENV, "nope").is_none());
    }

    #[test]
    fn prepare_links_then_fuses_and_refuses_invalid_modules() {
        let plain = wat::parse_str("(module (memory 1))").unwrap();
        let p = prepare(&plain).unwrap();
        assert!(matches!(p.wasm, Cow::Borrowed(_)) && !p.stream_linked && p.fused.is_none());

        // Streams and uses a hot import: linked (the export calls the added import) and fused.
        let both = wat::parse_str(
            r#"(module
                (import "extism:host/env" "load_u8" (func (param i64) (result i32)))
                (func (export "plinth_stream_read") (param i32 i32) (result i32) i32.const -1))"#,
        )
        .unwrap();
        let p = prepare(&both).unwrap();
        assert!(p.stream_linked);
        assert_eq!(
            p.fused.as_ref().map(|f| f.memory_export.as_str()),
            Some(fuse::MEMORY_EXPORT)
        );
        // The runtime reads the names from the original bytes (a cache hit skips prepare).
        assert_eq!(p.fused, fuse::fused_exports(&both));
        let linked = stream_link::link(&both).unwrap();
        assert_eq!(p.wasm.as_ref(), fuse::fuse(&linked).unwrap().as_slice());

        let err = prepare(b"\0asm garbage").unwrap_err();
        assert!(err
            .to_string()
            .starts_with("not a valid WebAssembly module: "));
    }

    #[test]
    fn fused_functions_come_first_memory_then_bulk() {
        let kinds: Vec<Fusion> = FUNCTIONS.iter().map(|f| f.fusion).collect();
        let first_no = kinds.iter().position(|k| *k == Fusion::No).unwrap();
        assert!(kinds[first_no..].iter().all(|k| *k == Fusion::No));
        let first_bulk = kinds.iter().position(|k| *k == Fusion::Bulk).unwrap();
        assert!(kinds[..first_bulk].iter().all(|k| *k == Fusion::Memory));
    }
}
