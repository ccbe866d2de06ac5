//! WASI preview 1 for plug-ins that ask for it: preopens from `allowed_paths` (with `ro:`
//! honoured), stdout/stderr inherited, captured or discarded, and a `poll_oneoff` that keeps
//! to the call's deadline and cancel (`poll.rs`).

use plinth_manifest::Preopen;
use wasmtime::Linker;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};

use crate::state::StoreData;
use crate::{poll, Error};

/// Adds WASI preview 1 to `linker`, with Plinth's `poll_oneoff` in place of wasmtime-wasi's.
pub(crate) fn add_to_linker(linker: &mut Linker<StoreData>) -> wasmtime::Result<()> {
    wasmtime_wasi::p1::add_to_linker_sync(linker, |d: &mut StoreData| {
        d.wasi.as_mut().expect("WASI is on for this plug-in")
    })?;
    // Replacing a definition needs shadowing, which a new linker does not allow: allow it for
    // this one definition only.
    linker.allow_shadowing(true);
    linker.func_wrap(poll::MODULE, poll::NAME, poll::poll_oneoff)?;
    linker.allow_shadowing(false);
    Ok(())
}

/// Where a WASI plug-in's stdout and stderr go.
#[derive(Clone, Debug, Default)]
pub enum WasiStdio {
    /// To the host process's own stdout and stderr.
    #[default]
    Inherit,
    /// Nowhere.
    Discard,
    /// Into memory buffers of at most `limit` bytes each, read with [`CapturedOutput`]; writes
    /// past the limit fail in the plug-in, so a flood cannot exhaust the host.
    Capture {
        stdout: CapturedOutput,
        stderr: CapturedOutput,
    },
}

impl WasiStdio {
    /// Captures both streams, each up to `limit` bytes.
    pub fn capture(limit: usize) -> Self {
        WasiStdio::Capture {
            stdout: CapturedOutput::new(limit),
            stderr: CapturedOutput::new(limit),
        }
    }
}

/// A buffer that collects what a plug-in wrote to a stream. Clones share the buffer.
#[derive(Clone, Debug)]
pub struct CapturedOutput(MemoryOutputPipe);

impl CapturedOutput {
    pub fn new(limit: usize) -> Self {
        CapturedOutput(MemoryOutputPipe::new(limit))
    }

    /// Everything written so far.
    pub fn contents(&self) -> Vec<u8> {
        self.0.contents().to_vec()
    }
}

#[derive(Clone, Debug)]
pub(crate) struct WasiOptions {
    pub preopens: Vec<Preopen>,
    pub stdio: WasiStdio,
}

impl WasiOptions {
    pub fn build(&self) -> Result<wasmtime_wasi::p1::WasiP1Ctx, Error> {
        let mut b = WasiCtxBuilder::new();
        match &self.stdio {
            WasiStdio::Inherit => {
                b.inherit_stdout().inherit_stderr();
            }
            WasiStdio::Discard => {}
            WasiStdio::Capture { stdout, stderr } => {
                b.stdout(stdout.0.clone()).stderr(stderr.0.clone());
            }
        }
        for p in &self.preopens {
            let perms = if p.read_only {
                FsPerms::ReadOnly
            } else {
                FsPerms::ReadWrite
            };
            b.preopened_dir(&p.host, &p.guest, perms).map_err(|e| {
                Error::Wasi(format!(
                    "cannot open allowed path `{}` (for `{}`): {e:#}; does the directory exist?",
                    p.host.display(),
                    p.guest
                ))
            })?;
        }
        Ok(b.build_p1())
    }
}
