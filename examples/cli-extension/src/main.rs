//! jtool: a JSON/text tool whose subcommands are plug-ins. Run `jtool --help`.

use std::ffi::OsString;
use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};
use plinth_example_cli_extension::config::{self, PluginDir};
use plinth_example_cli_extension::discover::{self, Found, PluginFile, BUILTINS};
use plinth_example_cli_extension::host::{self, Failure};
use plinth_example_cli_extension::{
    builtin, escape, escape_bytes, EXIT_FAILED, EXIT_LOAD, EXIT_NO_COMMAND, EXIT_OK, EXIT_USAGE,
};

const AFTER_HELP: &str = "\
Plug-in commands come from a directory of NAME.wasm files and NAME.toml / NAME.json manifests.
The directory is --plugins DIR, else $JTOOL_PLUGINS, else `plugins = \"DIR\"` in the config
file (--config PATH, else $XDG_CONFIG_HOME/jtool/config.toml, else ~/.config/jtool/config.toml),
relative to the config file's folder. `jtool list` shows them, `jtool help NAME` their usage.

Exit status: 0 success, 1 the command failed, 2 usage error, 3 no such command,
4 the plug-in cannot be loaded.";

#[derive(Parser)]
#[command(
    name = "jtool",
    version,
    about = "A JSON and text tool whose commands can be WebAssembly plug-ins",
    disable_help_subcommand = true,
    after_help = AFTER_HELP
)]
struct Cli {
    /// The plug-in directory (before JTOOL_PLUGINS and the config file)
    #[arg(long, value_name = "DIR")]
    plugins: Option<PathBuf>,
    /// The config file [default: $XDG_CONFIG_HOME/jtool/config.toml]
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Pretty-print the JSON on stdin (keys sorted)
    Pretty,
    /// Print the keys of the JSON object on stdin, one a line (sorted)
    Keys,
    /// List the commands, built-in and from plug-ins, with their descriptions
    List,
    /// Show how to use a command, and what a plug-in is granted
    Help {
        /// The command
        name: Option<String>,
    },
    /// A plug-in command: `jtool NAME [ARGS..]` runs NAME's `run` with stdin as its input
    #[command(external_subcommand)]
    Plugin(Vec<OsString>),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { EXIT_USAGE as u8 } else { 0 });
        }
    };
    ExitCode::from(dispatch(cli) as u8)
}

fn fail(code: i32, message: &str) -> i32 {
    eprintln!("jtool: {message}");
    code
}

fn dispatch(cli: Cli) -> i32 {
    match cli.command {
        Command::Pretty => builtin_command("pretty", builtin::pretty),
        Command::Keys => builtin_command("keys", builtin::keys),
        Command::List => list(&cli),
        Command::Help { ref name } => help(&cli, name.as_deref()),
        Command::Plugin(ref argv) => run_plugin(&cli, argv),
    }
}

/// Writes to stdout; a reader that went away (`jtool x | head`) is not an error.
fn write_stdout(bytes: &[u8]) -> i32 {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Ok(()) => EXIT_OK,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => EXIT_OK,
        Err(e) => fail(EXIT_FAILED, &format!("cannot write to stdout: {e}")),
    }
}

fn read_stdin() -> Result<Vec<u8>, String> {
    let mut input = Vec::new();
    std::io::stdin()
        .read_to_end(&mut input)
        .map_err(|e| format!("cannot read stdin: {e}"))?;
    Ok(input)
}

fn builtin_command(name: &str, f: fn(&[u8]) -> Result<String, String>) -> i32 {
    if std::io::stdin().is_terminal() {
        return fail(
            EXIT_USAGE,
            &format!(
                "`{name}` reads JSON from stdin; pipe some in: echo '{{\"a\": 1}}' | jtool {name}"
            ),
        );
    }
    let input = match read_stdin() {
        Ok(input) => input,
        Err(e) => return fail(EXIT_FAILED, &e),
    };
    match f(&input) {
        Ok(out) => write_stdout(out.as_bytes()),
        Err(e) => fail(EXIT_FAILED, &format!("{name}: {}", escape(&e))),
    }
}

/// The plug-in directory and what is in it; `Ok(None)` when none is configured.
fn plugins(cli: &Cli) -> Result<Option<(PluginDir, Found)>, String> {
    let Some(dir) = config::plugin_dir(cli.plugins.as_deref(), cli.config.as_deref())? else {
        return Ok(None);
    };
    if !dir.path.is_dir() {
        return Err(format!(
            "the plug-in directory {} (from {}) does not exist; create it or point {} elsewhere",
            escape(&dir.path.display().to_string()),
            escape(&dir.origin),
            escape(&dir.origin)
        ));
    }
    let found = discover::discover(&dir.path)?;
    Ok(Some((dir, found)))
}

fn no_dir_hint(cli: &Cli) -> String {
    let config = cli
        .config
        .clone()
        .or_else(config::default_config_path)
        .map_or("the config file".into(), |p| {
            escape(&p.display().to_string())
        });
    format!(
        "no plug-in directory is set: pass --plugins DIR, set {}, or put plugins = \"DIR\" in {config}",
        config::PLUGINS_ENV
    )
}

fn warn_all(found: &Found) {
    for w in &found.warnings {
        eprintln!("jtool: warning: {w}");
    }
}

/// At most `max` characters, with an ellipsis when cut.
fn clip(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}

fn builtin_about(name: &str) -> String {
    Cli::command()
        .find_subcommand(name)
        .and_then(|c| c.get_about().map(|a| a.to_string()))
        .unwrap_or_default()
}

fn list(cli: &Cli) -> i32 {
    let plugins = match plugins(cli) {
        Ok(p) => p,
        Err(e) => return fail(EXIT_USAGE, &e),
    };
    let mut rows: Vec<(String, String)> = Vec::new();
    if let Some((_, found)) = &plugins {
        warn_all(found);
        for (name, file) in &found.plugins {
            let summary = match host::describe(file) {
                Ok(d) if d.summary.is_empty() => "(no summary)".to_string(),
                Ok(d) => clip(&escape(&d.summary), 100),
                Err(f @ Failure::Load(_)) => format!("[cannot load: {}]", clip(f.message(), 300)),
                Err(f) => format!("[describe failed: {}]", clip(f.message(), 300)),
            };
            rows.push((name.clone(), summary));
        }
    }
    let width = BUILTINS
        .iter()
        .map(|b| b.len())
        .chain(rows.iter().map(|r| r.0.len()))
        .max()
        .unwrap_or(0);
    let mut out = String::from("Built-in commands:\n");
    let mut builtins = BUILTINS.to_vec();
    builtins.sort();
    for b in builtins {
        out.push_str(&format!("  {b:width$}  {}\n", builtin_about(b)));
    }
    match &plugins {
        None => out.push_str(&format!("\nNo plug-in commands: {}.\n", no_dir_hint(cli))),
        Some((dir, _)) => {
            out.push_str(&format!(
                "\nPlug-in commands in {} (from {}):\n",
                escape(&dir.path.display().to_string()),
                escape(&dir.origin)
            ));
            if rows.is_empty() {
                out.push_str("  (none: add NAME.wasm or NAME.toml files)\n");
            }
            for (name, summary) in rows {
                out.push_str(&format!("  {name:width$}  {summary}\n"));
            }
        }
    }
    write_stdout(out.as_bytes())
}

/// Multi-line plug-in text for the terminal: each line escaped, the line breaks kept.
fn escape_lines(text: &str) -> String {
    text.lines().map(escape).collect::<Vec<_>>().join("\n")
}

fn help(cli: &Cli, name: Option<&str>) -> i32 {
    let Some(name) = name else {
        let _ = Cli::command().print_long_help();
        return EXIT_OK;
    };
    if let Some(mut sub) = Cli::command().find_subcommand(name).cloned() {
        let text = sub.render_long_help().to_string();
        return write_stdout(format!("jtool {text}").as_bytes());
    }
    let file = match find(cli, name) {
        Ok(file) => file,
        Err(code) => return code,
    };
    let manifest = match host::manifest(&file) {
        Ok(m) => m,
        Err(f) => return load_failed(name, &file, &f),
    };
    let (description, code) = match host::describe(&file) {
        Ok(d) => (d, EXIT_OK),
        Err(f) => {
            let code = if matches!(f, Failure::Load(_)) {
                EXIT_LOAD
            } else {
                EXIT_FAILED
            };
            eprintln!("jtool: {name}: describe failed: {}", f.message());
            (host::Description::default(), code)
        }
    };
    let mut out = format!("{name}: {}\n\n", escape(&description.summary));
    if description.usage.is_empty() {
        out.push_str(&format!("Usage: jtool {name} [ARGS...] < INPUT\n"));
    } else {
        out.push_str(&format!("{}\n", escape_lines(&description.usage)));
    }
    out.push_str(&format!(
        "\nPlug-in: {}\nGranted: {}\n",
        escape(&file.path().display().to_string()),
        host::grants(&manifest).join("; ")
    ));
    let written = write_stdout(out.as_bytes());
    if code != EXIT_OK {
        code
    } else {
        written
    }
}

/// The plug-in called `name`, or the exit code after saying why there is none.
fn find(cli: &Cli, name: &str) -> Result<PluginFile, i32> {
    let shown = escape(name);
    let (dir, mut found) = match plugins(cli) {
        Ok(Some(p)) => p,
        Ok(None) => {
            return Err(fail(
                EXIT_NO_COMMAND,
                &format!("no such command `{shown}`; {}", no_dir_hint(cli)),
            ))
        }
        Err(e) => return Err(fail(EXIT_USAGE, &e)),
    };
    if let Some(file) = found.plugins.remove(name) {
        return Ok(file);
    }
    // The skipped files may be why the command is missing.
    warn_all(&found);
    let mut names: Vec<&str> = BUILTINS.to_vec();
    names.extend(found.plugins.keys().map(String::as_str));
    names.sort();
    Err(fail(
        EXIT_NO_COMMAND,
        &format!(
            "no such command `{shown}` (not built in, and no {shown}.wasm, {shown}.toml or {shown}.json in {}); the commands are: {}",
            escape(&dir.path.display().to_string()),
            names.join(", ")
        ),
    ))
}

fn load_failed(name: &str, file: &PluginFile, f: &Failure) -> i32 {
    fail(
        EXIT_LOAD,
        &format!(
            "cannot load the plug-in `{name}` ({}): {}",
            escape(&file.path().display().to_string()),
            f.message()
        ),
    )
}

/// What the plug-in wrote to its own stdout or stderr goes to stderr, escaped, a line at a
/// time under its name: the command's output is only what `run` returns.
fn forward(name: &str, bytes: &[u8]) {
    if bytes.is_empty() {
        return;
    }
    let text = String::from_utf8_lossy(bytes);
    let mut err = std::io::stderr().lock();
    for line in text.lines() {
        let _ = writeln!(err, "{name}: {}", escape_bytes(line.as_bytes()));
    }
}

fn run_plugin(cli: &Cli, argv: &[OsString]) -> i32 {
    let name = argv[0].to_string_lossy().into_owned();
    let file = match find(cli, &name) {
        Ok(file) => file,
        Err(code) => return code,
    };
    let mut args = Vec::new();
    for a in &argv[1..] {
        match a.to_str() {
            Some(a) => args.push(a.to_string()),
            None => {
                return fail(
                    EXIT_USAGE,
                    &format!(
                        "argument {} is not UTF-8; plug-ins take text arguments",
                        escape(&a.to_string_lossy())
                    ),
                )
            }
        }
    }
    // A terminal on stdin means no input, rather than a wait for an EOF the user must type.
    let input = if std::io::stdin().is_terminal() {
        Vec::new()
    } else {
        match read_stdin() {
            Ok(input) => input,
            Err(e) => return fail(EXIT_FAILED, &e),
        }
    };
    let out = host::run(&file, &args, &input);
    forward(&name, &out.wasi_stdout);
    forward(&name, &out.wasi_stderr);
    match out.result {
        Ok(bytes) => write_stdout(&bytes),
        Err(f @ Failure::Load(_)) => load_failed(&name, &file, &f),
        Err(Failure::Call(m)) => fail(EXIT_FAILED, &format!("{name} failed: {m}")),
    }
}
