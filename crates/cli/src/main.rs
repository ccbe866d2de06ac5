//! `plinth`: call WebAssembly plug-ins from the shell. A thin layer over the `plinth` crate.

mod args;
mod call;
mod compile;
mod escape;
mod info;
mod source;
mod stream;

use std::fmt;
use std::io::{self, IsTerminal};
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use args::{Cli, Command, LogLevel};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help and --version.
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            // Same shape and status as every other failure, as `extism` does.
            let text = e.render().to_string();
            let text = text.strip_prefix("error: ").unwrap_or(&text);
            eprintln!("Error: {}", text.trim_end());
            return ExitCode::FAILURE;
        }
    };
    init_logging(cli.log_level);

    let result = match &cli.command {
        Command::Call(a) => call::run(a),
        Command::Info(a) => info::run(a),
        Command::Compile(a) => compile::run(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // Quiet, with status 0, as ripgrep does.
        Err(e) if reader_went_away(&e) => ExitCode::SUCCESS,
        Err(e) => {
            // Errors quote plug-in text (error_set messages, export names): one line, escaped
            // and cut, so that a plug-in cannot clear the screen, forge lines or flood it.
            let text = escape::one_line(message(&e).as_bytes(), escape::MAX_ERROR);
            eprintln!("Error: {text}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(level: Option<LogLevel>) {
    let filter = match (level, std::env::var_os("RUST_LOG")) {
        (None, Some(_)) => EnvFilter::from_default_env(),
        (level, _) => {
            let level = level.unwrap_or(LogLevel::Error);
            // The level is for Plinth and plug-ins; the compiler's debug logs would drown
            // them, so other crates stop at warn (RUST_LOG can still ask for them).
            let others = level.max(LogLevel::Warn);
            EnvFilter::new(format!(
                "{},plinth={}",
                others.directive(),
                level.directive()
            ))
        }
    };
    // A second subscriber cannot exist here, so an error is impossible; ignore it anyway.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .without_time()
        .try_init();
}

/// Writing the command's own output to stdout failed. Its own type so that `main` can tell a
/// reader that went away from a real failure (a full disk, a closed descriptor), which is
/// reported as `cannot write to stdout: ...`.
#[derive(Debug)]
struct StdoutError(io::Error);

impl fmt::Display for StdoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("cannot write to stdout")
    }
}

impl std::error::Error for StdoutError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

/// Whether the reader of stdout closed it before the output was all written, as in
/// `plinth call ... | head -c1`: it has what it wanted, so that is no failure. (Rust ignores
/// SIGPIPE, so the write returns this error instead of the signal ending the process.)
fn reader_went_away(e: &anyhow::Error) -> bool {
    e.downcast_ref::<StdoutError>()
        .is_some_and(|e| e.0.kind() == io::ErrorKind::BrokenPipe)
}

/// The error and its causes on one line, skipping a cause that the message above it already
/// quotes (library errors often include their source's text).
fn message(e: &anyhow::Error) -> String {
    let mut text = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !text.contains(&c) {
            text = format!("{text}: {c}");
        }
    }
    // The runtime's messages name the manifest's fields; this command has flags for them too.
    let flag = e
        .chain()
        .find_map(|c| match c.downcast_ref::<plinth::Error>()?.kind() {
            plinth::ErrorKind::Timeout => Some("--timeout MS"),
            plinth::ErrorKind::OutOfMemory => Some("--memory-max PAGES"),
            // The kind covers failing streams too; only these two messages name a limit.
            plinth::ErrorKind::Stream if text.contains("output limit") => {
                Some("--max-output BYTES")
            }
            plinth::ErrorKind::Stream if text.contains("memory limit") => {
                Some("--memory-max PAGES")
            }
            plinth::ErrorKind::Http if text.contains("max_http_response_bytes") => {
                Some("--http-response-max BYTES")
            }
            _ => None,
        });
    if let Some(flag) = flag {
        text = format!("{text} (or {flag})");
    }
    text
}
