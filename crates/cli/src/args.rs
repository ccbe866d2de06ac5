//! Command-line syntax. Flags of `call` follow `extism call` so that scripts keep working.

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "plinth",
    version,
    about = "Call WebAssembly plug-ins written for the Extism ABI",
    long_about = None,
    propagate_version = true
)]
pub struct Cli {
    /// Log level for Plinth and the plug-in's log lines (written to stderr) [default: error;
    /// RUST_LOG is used when this is not given]
    #[arg(long, value_enum, global = true, value_name = "LEVEL")]
    pub log_level: Option<LogLevel>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Call a function of a plug-in and print its output (a drop-in for `extism call`)
    Call(Box<CallArgs>),
    /// List a plug-in's modules, functions and imports; exit 1 if an import is missing
    Info(InfoArgs),
    /// Compile a plug-in ahead of time into a signed artifact that loads without compiling
    Compile(CompileArgs),
}

/// Ordered from most to least verbose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
pub enum LogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
    Off,
}

impl LogLevel {
    pub fn directive(self) -> &'static str {
        match self {
            LogLevel::Trace => "trace",
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
            LogLevel::Off => "off",
        }
    }
}

/// How to find the plug-in; shared by `call` and `info`.
#[derive(Debug, Args)]
pub struct SourceArgs {
    /// A wasm file, a WAT file, an http(s) URL of a wasm module, or a manifest (JSON or TOML)
    #[arg(value_name = "WASM|URL|MANIFEST")]
    pub source: String,

    /// Treat the file as a manifest even if it does not look like one
    #[arg(short = 'm', long)]
    pub manifest: bool,

    /// Add the module at PATH (file or URL) under the name NAME, for the main module to import
    /// from (repeatable)
    #[arg(long, value_name = "NAME=PATH", value_parser = parse_link)]
    pub link: Vec<Link>,
}

#[derive(Debug, Clone)]
pub struct Link {
    pub name: String,
    pub path: String,
}

#[derive(Debug, Args)]
pub struct CallArgs {
    #[command(flatten)]
    pub source: SourceArgs,

    /// Name of the exported function to call
    #[arg(value_name = "FUNCTION")]
    pub function: String,

    /// Input passed to the function
    #[arg(short, long, value_name = "STR", conflicts_with = "stdin")]
    pub input: Option<String>,

    /// Stream stdin to the plug-in and its output to stdout as it comes, e.g.
    /// `cat big.log | plinth call --stdin filter.wasm grep > out`. The output's bytes pass
    /// unchanged, with no newline added after them. A plug-in that does not stream gets the
    /// whole input at once and writes its output at the end.
    #[arg(long)]
    pub stdin: bool,

    /// With --stdin: stop the call with an error once the plug-in has written more than BYTES
    /// (no limit by default)
    #[arg(long, value_name = "BYTES", requires = "stdin")]
    pub max_output: Option<u64>,

    /// Call the function N times on the same instance (vars and globals carry over)
    #[arg(long = "loop", value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub repeat: u64,

    /// Enable WASI (the plug-in's stdout and stderr go to this command's)
    #[arg(long)]
    pub wasi: bool,

    /// Let a WASI plug-in use a host directory: HOST:GUEST, or PATH for the same path on both
    /// sides; prefix with `ro:` for read-only (repeatable)
    #[arg(long, value_name = "[ro:]HOST[:GUEST]", value_parser = parse_allow_path)]
    pub allow_path: Vec<AllowPath>,

    /// Let the plug-in send HTTP requests to hosts matching GLOB, e.g. `*.example.com` or `*`
    /// (repeatable)
    #[arg(long, value_name = "GLOB")]
    pub allow_host: Vec<String>,

    /// Let the plug-in read the headers of its HTTP responses
    #[arg(long)]
    pub enable_http_response_headers: bool,

    /// Limit each call to MS milliseconds of wall-clock time
    #[arg(long, value_name = "MS")]
    pub timeout: Option<u64>,

    /// Limit the plug-in's memory to PAGES pages of 64 KiB
    #[arg(long, value_name = "PAGES")]
    pub memory_max: Option<u32>,

    /// Limit the size of HTTP response bodies the plug-in reads, in bytes
    #[arg(long, value_name = "BYTES")]
    pub http_response_max: Option<u64>,

    /// Limit the total size of the plug-in's vars, in bytes (0 disables vars)
    #[arg(long, value_name = "BYTES")]
    pub var_max: Option<u64>,

    /// Set config key K to V; `K` alone sets the empty string (repeatable; wins over
    /// --set-config and the manifest)
    #[arg(long, value_name = "K=V", value_parser = parse_config)]
    pub config: Vec<(String, String)>,

    /// Merge a JSON object of string values into the config (wins over the manifest)
    #[arg(long, value_name = "JSON", value_parser = parse_set_config)]
    pub set_config: Option<ConfigMap>,

    /// Limit each call to N units of fuel (about N wasm instructions)
    #[arg(long, value_name = "N")]
    pub fuel: Option<u64>,

    /// Give up loading a module whose compile takes longer than MS milliseconds
    #[arg(long, value_name = "MS")]
    pub compile_timeout: Option<u64>,

    /// Refuse modules larger than BYTES (default 256 MiB)
    #[arg(long, value_name = "BYTES")]
    pub module_max: Option<usize>,

    /// Load SOURCE as a precompiled artifact (`plinth compile`) signed with the key in FILE;
    /// an artifact is native code, so it loads only when its signature verifies
    #[arg(long, value_name = "FILE")]
    pub artifact_key: Option<PathBuf>,

    /// Print the output's bytes as they are even to a terminal (by default, control
    /// characters other than newline and tab are shown escaped there, e.g. `\x1b`)
    #[arg(long)]
    pub raw: bool,
}

#[derive(Debug, Args)]
pub struct CompileArgs {
    #[command(flatten)]
    pub source: SourceArgs,

    /// Where to write the artifact
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,

    /// The signing key: a file of at least 16 secret bytes, readable by its owner only; made
    /// (32 random bytes, mode 600) when it does not exist. Hosts load the artifact with the
    /// same key.
    #[arg(long, value_name = "FILE")]
    pub key: PathBuf,

    /// Make the artifact for hosts that meter fuel (`--fuel` on `plinth call`)
    #[arg(long)]
    pub metered: bool,
}

/// Newtype so that clap does not treat the map as a list of values.
#[derive(Debug, Clone)]
pub struct ConfigMap(pub BTreeMap<String, String>);

#[derive(Debug, Args)]
pub struct InfoArgs {
    #[command(flatten)]
    pub source: SourceArgs,

    /// Report imports as they would be with WASI on
    #[arg(long)]
    pub wasi: bool,
}

/// One `--allow-path`: `host` keeps its `ro:` prefix, as the manifest's `allowed_paths` keys do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowPath {
    pub host: String,
    pub guest: PathBuf,
}

fn parse_allow_path(s: &str) -> Result<AllowPath, String> {
    let (prefix, rest) = match s.strip_prefix("ro:") {
        Some(rest) => ("ro:", rest),
        None => ("", s),
    };
    let (host, guest) = rest.split_once(':').unwrap_or((rest, rest));
    if host.is_empty() || guest.is_empty() {
        return Err("expected [ro:]HOST[:GUEST] with non-empty paths".into());
    }
    Ok(AllowPath {
        host: format!("{prefix}{host}"),
        guest: PathBuf::from(guest),
    })
}

fn parse_config(s: &str) -> Result<(String, String), String> {
    let (k, v) = s.split_once('=').unwrap_or((s, ""));
    if k.is_empty() {
        return Err("expected K=V with a non-empty key".into());
    }
    Ok((k.to_string(), v.to_string()))
}

fn parse_set_config(s: &str) -> Result<ConfigMap, String> {
    serde_json::from_str::<BTreeMap<String, String>>(s)
        .map(ConfigMap)
        .map_err(|e| format!("expected a JSON object of string values: {e}"))
}

fn parse_link(s: &str) -> Result<Link, String> {
    match s.split_once('=') {
        Some((name, path)) if !name.is_empty() && !path.is_empty() => {
            if name == "main" {
                return Err("the name `main` is taken by the plug-in itself".into());
            }
            Ok(Link {
                name: name.to_string(),
                path: path.to_string(),
            })
        }
        _ => Err("expected NAME=PATH".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_path_forms() {
        let p = parse_allow_path("/a").unwrap();
        assert_eq!((p.host.as_str(), p.guest.as_path()), ("/a", "/a".as_ref()));
        let p = parse_allow_path("ro:/a:/b").unwrap();
        assert_eq!(
            (p.host.as_str(), p.guest.as_path()),
            ("ro:/a", "/b".as_ref())
        );
        let p = parse_allow_path("ro:/a").unwrap();
        assert_eq!(
            (p.host.as_str(), p.guest.as_path()),
            ("ro:/a", "/a".as_ref())
        );
        assert!(parse_allow_path("/a:").is_err());
        assert!(parse_allow_path("ro:").is_err());
    }

    #[test]
    fn config_forms() {
        assert_eq!(parse_config("k=v=w").unwrap(), ("k".into(), "v=w".into()));
        assert_eq!(parse_config("k").unwrap(), ("k".into(), String::new()));
        assert!(parse_config("=v").is_err());
        assert!(parse_set_config(r#"{"a":1}"#).is_err());
        assert_eq!(parse_set_config(r#"{"a":"1"}"#).unwrap().0["a"], "1");
    }

    #[test]
    fn link_forms() {
        let l = parse_link("lib=x.wasm").unwrap();
        assert_eq!((l.name.as_str(), l.path.as_str()), ("lib", "x.wasm"));
        assert!(parse_link("main=x.wasm").is_err());
        assert!(parse_link("x.wasm").is_err());
    }

    #[test]
    fn cli_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
