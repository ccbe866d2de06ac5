//! WASI settings: where stdout and stderr go ([`WasiStdio`], [`CapturedOutput`]) and the
//! preopened directories ([`WasiOptions`]), from which each instance builds its WASI context.

use plinth_manifest::Preopen;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};

use crate::Error;

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
        /// Where stdout goes.
        stdout: CapturedOutput,
        /// Where stderr goes.
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
    /// A capture that keeps at most `limit` bytes.
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
