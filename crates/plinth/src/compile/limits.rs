//! Bounds on compiling a plug-in, checked before Cranelift runs.
//!
//! - [`CompileLimits`]: the module size, function count and compile deadline a host allows.
//!
//! Compiling costs time and memory roughly in proportion to a module's code (Cranelift's
//! inliner, whose cost was not bounded, is off: `plinth-abi`'s `fuse/` (crates/abi/src/fuse/) splices the hot ABI instead), so a
//! host that loads modules it does not trust bounds their size and function count, and may set
//! a deadline for the whole compile.

use std::time::Duration;

use crate::Error;

/// What a host allows a module to cost to compile. The defaults admit every real plug-in seen
/// (the largest, Go and .NET ones, are tens of MiB) and refuse absurd ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompileLimits {
    /// The most bytes a module may have (after WAT is turned into binary).
    pub max_module_bytes: usize,
    /// The most functions, imported and defined, a module may have.
    pub max_functions: u32,
    /// The longest a compile may take. `None` (the default) waits for it. A compile past its
    /// deadline fails the load with [`Error::CompileLimit`]; Cranelift cannot be stopped
    /// midway, so it finishes on a background thread and its result is cached for the next
    /// load (the size and function bounds are what cap its cost).
    pub deadline: Option<Duration>,
}

impl Default for CompileLimits {
    fn default() -> Self {
        CompileLimits {
            max_module_bytes: 256 << 20,
            max_functions: 1_000_000,
            deadline: None,
        }
    }
}

impl CompileLimits {
    /// Refuses `binary` (the module called `module`) if it is over the size or function
    /// bounds. Reads only the sections before the code, so it costs little.
    pub(crate) fn check(&self, module: &str, binary: &[u8]) -> Result<(), Error> {
        let refuse = |message: String| Error::CompileLimit {
            module: module.to_string(),
            message,
        };
        if binary.len() > self.max_module_bytes {
            return Err(refuse(format!(
                "the module is {} bytes, over the limit of {} bytes; raise it with \
                 PluginBuilder::with_compile_limits if the module is trusted",
                binary.len(),
                self.max_module_bytes
            )));
        }
        let mut functions: u64 = 0;
        for payload in wasmparser::Parser::new(0).parse_all(binary) {
            // A malformed module is left for the compiler to report in full.
            let Ok(payload) = payload else { break };
            match payload {
                wasmparser::Payload::ImportSection(r) => {
                    for imports in r.into_iter().flatten() {
                        for import in imports.into_iter().flatten() {
                            if matches!(
                                import.1.ty,
                                wasmparser::TypeRef::Func(_) | wasmparser::TypeRef::FuncExact(_)
                            ) {
                                functions += 1;
                            }
                        }
                    }
                }
                wasmparser::Payload::FunctionSection(r) => functions += u64::from(r.count()),
                wasmparser::Payload::CodeSectionStart { .. } => break,
                _ => {}
            }
        }
        if functions > u64::from(self.max_functions) {
            return Err(refuse(format!(
                "the module has {functions} functions, over the limit of {}; raise it with \
                 PluginBuilder::with_compile_limits if the module is trusted",
                self.max_functions
            )));
        }
        Ok(())
    }

    /// Runs `compile` within the deadline, if there is one.
    pub(crate) fn run<T: Send + 'static>(
        &self,
        module: &str,
        compile: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Error> {
        let Some(deadline) = self.deadline else {
            return Ok(compile());
        };
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name("plinth-compile".into())
            .spawn(move || {
                let _ = tx.send(compile());
            })
            .map_err(|e| Error::other(format!("cannot start a compile thread: {e}")))?;
        rx.recv_timeout(deadline).map_err(|_| Error::CompileLimit {
            module: module.to_string(),
            message: format!(
                "compiling took longer than the deadline of {} ms; raise it with \
                 PluginBuilder::with_compile_limits, or load a smaller module",
                deadline.as_millis()
            ),
        })
    }
}
