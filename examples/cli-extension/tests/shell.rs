//! jtool run as a user runs it: through `sh -c`, with pipes, against plug-ins built by
//! scripts/build-plugins.sh (target/wasm-plugins) copied into a plug-in directory per test.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Far above what any command here needs; only a hang reaches it.
const HANG: Duration = Duration::from_secs(120);

fn built_plugin(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/wasm-plugins");
    let path = dir.join(format!("{name}.wasm"));
    assert!(
        path.exists(),
        "{} is missing: run `bash scripts/build-plugins.sh` first",
        path.display()
    );
    path
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

/// A home, a config folder and a plug-in directory (`plugins/`) in a temporary folder.
struct World {
    root: tempfile::TempDir,
}

impl World {
    fn new() -> World {
        let w = World {
            root: tempfile::tempdir().unwrap(),
        };
        for d in ["home", "config", "plugins/lib"] {
            std::fs::create_dir_all(w.path(d)).unwrap();
        }
        w
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.root.path().join(rel)
    }

    fn write(&self, rel: &str, text: &str) {
        let path = self.path(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    /// Copies the built plug-in `wasm` to `rel` (e.g. `plugins/pick.wasm`).
    fn copy(&self, wasm: &str, rel: &str) {
        let path = self.path(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::copy(built_plugin(wasm), path).unwrap();
    }

    /// `plugins/NAME.toml`: the test-kit plug-in in `mode`, with `extra` manifest lines.
    fn testkit(&self, name: &str, mode: &str, extra: &str) {
        if !self.path("plugins/lib/cli_testkit.wasm").exists() {
            self.copy("cli_testkit", "plugins/lib/cli_testkit.wasm");
        }
        self.write(
            &format!("plugins/{name}.toml"),
            &format!(
                "wasm = [{{ path = \"lib/cli_testkit.wasm\" }}]\n{extra}\n[config]\nmode = \"{mode}\"\n"
            ),
        );
    }

    /// Runs `script` with `sh -c` in the world's folder, with jtool on PATH, no plug-in
    /// settings from the real user, and stdin closed.
    fn sh(&self, script: &str) -> Out {
        let bin = Path::new(env!("CARGO_BIN_EXE_jtool")).parent().unwrap();
        let path = format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("jtool-plinth-cache");
        let child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .current_dir(self.root.path())
            .env("PATH", path)
            .env("HOME", self.path("home"))
            .env("XDG_CONFIG_HOME", self.path("config"))
            .env("PLINTH_CACHE_DIR", cache)
            .env_remove("JTOOL_PLUGINS")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || tx.send(child.wait_with_output()));
        let out = rx
            .recv_timeout(HANG)
            .unwrap_or_else(|_| panic!("`{script}` did not finish in {HANG:?}"))
            .unwrap();
        let out = Out {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        assert!(
            !out.stderr.contains("panicked"),
            "`{script}` panicked: {}",
            out.stderr
        );
        out
    }
}

/// What `jtool list` shows after `name` (the columns' width depends on the longest name).
fn line_of<'a>(text: &'a str, name: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("  {name} ")))
        .map(str::trim_start)
        .unwrap_or_else(|| panic!("no line for `{name}` in:\n{text}"))
}

#[test]
fn a_plinth_pdk_plugin_runs_as_a_subcommand_with_stdin_and_args() {
    let w = World::new();
    w.copy("cli_wordfreq", "plugins/wordfreq.wasm");
    let out =
        w.sh("echo 'The cat, the dog; THE end. cat' | jtool --plugins plugins wordfreq --top 2");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout, "3\tthe\n2\tcat\n");

    let out = w.sh("echo a | jtool --plugins plugins wordfreq --top many");
    assert_eq!(out.code, 1);
    assert!(out.stdout.is_empty());
    assert!(
        out.stderr
            .contains("jtool: wordfreq failed: the plug-in failed in `run` (code 1): --top wants a whole number, not `many`"),
        "{}",
        out.stderr
    );
}

#[test]
fn an_extism_pdk_plugin_runs_as_a_subcommand() {
    let w = World::new();
    w.copy("extism_cli_pick", "plugins/pick.wasm");
    let out = w.sh(
        r#"printf '{"user": {"name": "Ada", "langs": ["en", "fr"]}, "n": 3}' | jtool --plugins plugins pick user.name user.langs.1 n missing"#,
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout, "Ada\nfr\n3\nnull\n");

    let out = w.sh("echo '{}' | jtool --plugins plugins pick");
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("usage: pick PATH"), "{}", out.stderr);
}

#[test]
fn list_shows_builtins_and_each_plugins_description_and_help_its_usage_and_grants() {
    let w = World::new();
    w.copy("cli_wordfreq", "plugins/wordfreq.wasm");
    w.copy("extism_cli_pick", "plugins/pick.wasm");
    let out = w.sh("jtool --plugins plugins list");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.is_empty(), "{}", out.stderr);
    // JSON description (Plinth PDK) and plain-text description (extism-pdk).
    assert_eq!(
        line_of(&out.stdout, "wordfreq"),
        "Word frequencies of the text on stdin"
    );
    assert_eq!(
        line_of(&out.stdout, "pick"),
        "Pick fields out of the JSON on stdin"
    );
    for builtin in ["pretty", "keys", "list", "help"] {
        line_of(&out.stdout, builtin);
    }

    let out = w.sh("jtool --plugins plugins help pick");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout
            .starts_with("pick: Pick fields out of the JSON on stdin\n\npick PATH...\n"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("Granted: no files; no network; at most 10000 ms and 64 MiB a call"),
        "{}",
        out.stdout
    );

    let out = w.sh("jtool help pretty");
    assert_eq!(out.code, 0);
    assert!(out.stdout.contains("Pretty-print the JSON on stdin"));
}

#[test]
fn the_plugin_directory_comes_from_the_flag_then_the_environment_then_the_config_file() {
    let w = World::new();
    w.copy("cli_wordfreq", "flagdir/from-flag.wasm");
    w.copy("cli_wordfreq", "envdir/from-env.wasm");
    w.copy("cli_wordfreq", "cfgdir/from-config.wasm");
    // Relative to the config file's folder, wherever jtool runs from.
    w.write("config/jtool/config.toml", "plugins = \"../../cfgdir\"\n");
    let listed = |script: &str| {
        let out = w.sh(script);
        assert_eq!(out.code, 0, "{script}: {}", out.stderr);
        ["from-flag", "from-env", "from-config"]
            .into_iter()
            .filter(|n| out.stdout.contains(&format!("  {n} ")))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        listed("JTOOL_PLUGINS=envdir jtool --plugins flagdir list"),
        ["from-flag"]
    );
    assert_eq!(listed("JTOOL_PLUGINS=envdir jtool list"), ["from-env"]);
    assert_eq!(listed("cd / && jtool list"), ["from-config"]);
    let out = w.sh("echo 'b a b' | (cd /tmp && jtool from-config)");
    assert_eq!(out.stdout, "2\tb\n1\ta\n", "{}", out.stderr);

    // --config names another file.
    w.write("other.toml", "plugins = \"flagdir\"\n");
    assert_eq!(listed("jtool --config other.toml list"), ["from-flag"]);

    // A config file named with --config must exist; a config file must be valid.
    let out = w.sh("jtool --config nowhere.toml list");
    assert_eq!(out.code, 2);
    assert!(
        out.stderr
            .contains("cannot read the config file nowhere.toml"),
        "{}",
        out.stderr
    );
    w.write("bad.toml", "plugin = \"x\"\n");
    let out = w.sh("jtool --config bad.toml list");
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("the config file bad.toml is invalid") && out.stderr.contains("plugin"),
        "{}",
        out.stderr
    );
    // A directory that does not exist is a usage error.
    let out = w.sh("jtool --plugins nowhere list");
    assert_eq!(out.code, 2);
    assert!(
        out.stderr
            .contains("nowhere (from --plugins) does not exist"),
        "{}",
        out.stderr
    );
}

#[test]
fn without_a_plugin_directory_builtins_work_and_plugin_commands_are_unknown() {
    let w = World::new();
    let out = w.sh("jtool list");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.contains("No plug-in commands: no plug-in directory is set: pass --plugins DIR, set JTOOL_PLUGINS"),
        "{}",
        out.stdout
    );
    let out = w.sh("echo hi | jtool wordfreq");
    assert_eq!(out.code, 3);
    assert!(
        out.stderr.contains("no such command `wordfreq`"),
        "{}",
        out.stderr
    );
}

#[test]
fn an_unknown_command_exits_3_and_names_the_commands_there_are() {
    let w = World::new();
    w.copy("extism_cli_pick", "plugins/pick.wasm");
    let out = w.sh("echo '{}' | jtool --plugins plugins pikc");
    assert_eq!(out.code, 3);
    assert!(out.stdout.is_empty());
    assert!(
        out.stderr.contains("no such command `pikc`")
            && out
                .stderr
                .contains("the commands are: help, keys, list, pick, pretty"),
        "{}",
        out.stderr
    );
    // Flags jtool does not know are usage errors.
    assert_eq!(w.sh("jtool --frobnicate list").code, 2);
}

fn readfile_world() -> World {
    let w = World::new();
    w.copy("cli_readfile", "plugins/lib/cli_readfile.wasm");
    w.write(
        "plugins/readfile.toml",
        "wasm = [{ path = \"lib/cli_readfile.wasm\" }]\nallowed_paths = { \"ro:../data\" = \"/data\" }\n",
    );
    w.write("data/notes.txt", "allowed notes\n");
    w.write("secret/key.txt", "TOP SECRET\n");
    w
}

#[test]
fn a_plugin_reads_a_file_its_manifest_allows() {
    let w = readfile_world();
    let out = w.sh("jtool --plugins plugins readfile /data/notes.txt");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout, "allowed notes\n");
    let out = w.sh("jtool --plugins plugins help readfile");
    assert!(out.stdout.contains("may read "), "{}", out.stdout);
    assert!(
        out.stdout.contains("data (seen as /data)"),
        "{}",
        out.stdout
    );
}

#[test]
fn a_plugin_is_denied_every_path_its_manifest_does_not_name() {
    let w = readfile_world();
    let secret = w.path("secret/key.txt");
    for path in [
        "/secret/key.txt".to_string(),
        "/data/../secret/key.txt".to_string(),
        secret.display().to_string(),
    ] {
        let out = w.sh(&format!("jtool --plugins plugins readfile '{path}'"));
        assert_eq!(out.code, 1, "{path}: {}", out.stdout);
        assert!(!out.stdout.contains("SECRET") && !out.stderr.contains("SECRET"));
        assert!(
            out.stderr.contains(&format!(
                "jtool: readfile failed: the plug-in failed in `run` (code 1): cannot read {path}:"
            )),
            "{}",
            out.stderr
        );
    }
    // A bare .wasm has no paths at all, not even its neighbours'.
    w.copy("cli_readfile", "bare/readfile.wasm");
    let out = w.sh("jtool --plugins bare readfile data/notes.txt");
    assert_eq!(out.code, 1);
    assert!(!out.stdout.contains("allowed notes"));
    let out = w.sh("jtool --plugins bare help readfile");
    assert!(
        out.stdout.contains("Granted: no files; no network"),
        "{}",
        out.stdout
    );
}

#[test]
fn a_plugin_that_traps_loops_or_floods_fails_cleanly() {
    let w = World::new();
    w.testkit("trap", "trap", "");
    w.testkit("spin", "loop", "timeout_ms = 300");
    w.write(
        "plugins/burst.toml",
        "wasm = [{ path = \"lib/cli_testkit.wasm\" }]\n[config]\nmode = \"flood\"\nbytes = \"8388608\"\n",
    );
    w.write(
        "plugins/flood.toml",
        "wasm = [{ path = \"lib/cli_testkit.wasm\" }]\n[config]\nmode = \"flood\"\nbytes = \"209715200\"\n",
    );

    let out = w.sh("jtool --plugins plugins trap");
    assert_eq!(out.code, 1);
    assert_eq!(
        out.stderr,
        "jtool: trap failed: the plug-in trapped in `run`: wasm trap: wasm `unreachable` instruction executed\n"
    );

    let out = w.sh("jtool --plugins plugins spin");
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("`run` timed out after 300 ms"),
        "{}",
        out.stderr
    );

    // 200 MiB of output does not fit in the default 64 MiB.
    let out = w.sh("jtool --plugins plugins flood");
    assert_eq!(out.code, 1);
    assert!(out.stdout.is_empty());
    assert!(
        out.stderr.contains("`run` ran out of memory"),
        "{}",
        out.stderr
    );

    // 8 MiB does, and goes down the pipe whole; a reader that stops early is no error.
    let out = w.sh("jtool --plugins plugins burst | wc -c");
    assert_eq!(out.stdout.trim(), "8388608", "{}", out.stderr);
    let out = w.sh("(jtool --plugins plugins burst; echo \"jtool exited $?\" >&2) | head -c 3");
    assert_eq!(out.stdout, "xxx");
    assert!(out.stderr.contains("jtool exited 0"), "{}", out.stderr);
}

#[test]
fn plugin_text_reaches_the_terminal_escaped() {
    let w = World::new();
    w.testkit("evil", "evil_describe", "");
    w.testkit("shout", "error", "");
    let out = w.sh("jtool --plugins plugins list");
    assert_eq!(out.code, 0);
    assert_eq!(
        line_of(&out.stdout, "evil"),
        r"innocent\x1b[2J\x1b]0;pwned\x07\nFAKE LINE"
    );
    let out = w.sh("jtool --plugins plugins help evil");
    assert!(out.stdout.contains(r"use me\x1b[31m red"), "{}", out.stdout);
    let out = w.sh("jtool --plugins plugins shout");
    assert_eq!(out.code, 1);
    assert_eq!(
        out.stderr,
        "jtool: shout failed: the plug-in failed in `run` (code 1): bad \\x1b[31mred\\x1b[0m\\nforged line\n"
    );
    for text in [&out.stdout, &out.stderr] {
        assert!(!text.contains('\x1b') && !text.contains('\x07'));
    }
}

#[test]
fn what_a_plugin_prints_itself_goes_to_stderr_escaped_and_stdout_is_only_its_result() {
    let w = World::new();
    w.testkit("chatty", "print", "");
    let out = w.sh("jtool --plugins plugins chatty");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout, "the result\n");
    assert_eq!(
        out.stderr,
        "chatty: to stdout \\x1b[31m\nchatty: to stderr\n"
    );
}

#[test]
fn a_bad_manifest_or_broken_wasm_is_reported_and_the_others_still_listed() {
    let w = World::new();
    w.copy("extism_cli_pick", "plugins/pick.wasm");
    w.testkit("typo", "echo", "timeout_msec = 100");
    w.write("plugins/broken.wasm", "\0asm\x01\0\0\0garbage");
    w.testkit("mute", "fail_describe", "");
    w.testkit("crash", "trap_describe", "");
    w.testkit("stuck", "loop_describe", "");
    w.copy("count_vowels", "plugins/vowels.wasm");

    let out = w.sh("jtool --plugins plugins list");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        line_of(&out.stdout, "pick"),
        "Pick fields out of the JSON on stdin"
    );
    let typo = line_of(&out.stdout, "typo");
    assert!(
        typo.contains("[cannot load: the manifest plugins/typo.toml is invalid")
            && typo.contains("unknown field `timeout_msec`"),
        "{typo}"
    );
    assert!(line_of(&out.stdout, "broken").contains("[cannot load: cannot compile"));
    assert!(line_of(&out.stdout, "mute").contains("[describe failed: the plug-in failed in `describe` (code 1): describe is broken on purpose]"));
    assert!(line_of(&out.stdout, "crash")
        .contains("[describe failed: the plug-in trapped in `describe`"));
    assert!(line_of(&out.stdout, "stuck").contains("`describe` timed out after 2000 ms"));
    assert!(line_of(&out.stdout, "vowels").contains("exports no `describe` function"));

    let out = w.sh("echo hi | jtool --plugins plugins typo");
    assert_eq!(out.code, 4);
    assert!(
        out.stderr
            .contains("cannot load the plug-in `typo` (plugins/typo.toml)")
            && out.stderr.contains("unknown field `timeout_msec`"),
        "{}",
        out.stderr
    );
    assert_eq!(w.sh("jtool --plugins plugins broken").code, 4);
    let out = w.sh("echo hi | jtool --plugins plugins vowels");
    assert_eq!(out.code, 4);
    assert!(
        out.stderr.contains("exports no `run` function"),
        "{}",
        out.stderr
    );
    // A folder the manifest grants must exist.
    w.testkit(
        "nodir",
        "echo",
        "allowed_paths = { \"ro:../missing\" = \"/data\" }",
    );
    let out = w.sh("jtool --plugins plugins nodir");
    assert_eq!(out.code, 4);
    assert!(
        out.stderr.contains("cannot open allowed path") && out.stderr.contains("missing"),
        "{}",
        out.stderr
    );
    // A plug-in whose describe fails can still run.
    let out = w.sh("echo hi | jtool --plugins plugins mute a b");
    assert_eq!((out.code, out.stdout.as_str()), (0, "[\"a\",\"b\"]\nhi\n"));
}

#[test]
fn unsafe_names_and_builtin_names_are_skipped_with_a_warning() {
    let w = World::new();
    w.copy("extism_cli_pick", "plugins/pick.wasm");
    w.copy("extism_cli_pick", "plugins/-rf.wasm");
    w.copy("extism_cli_pick", "plugins/two words.wasm");
    w.copy("extism_cli_pick", "plugins/pretty.wasm");
    w.write("plugins/notes.md", "not a plug-in");
    let out = w.sh("jtool --plugins plugins list");
    assert_eq!(out.code, 0);
    assert!(
        out.stderr
            .contains("warning: skipping -rf.wasm: its name is not a valid command name"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("warning: skipping two words.wasm"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("warning: skipping pretty.wasm: `pretty` is a built-in command"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("notes"));
    let plugin_lines: Vec<&str> = out
        .stdout
        .split("Plug-in commands")
        .nth(1)
        .unwrap()
        .lines()
        .skip(1)
        .collect();
    assert_eq!(
        plugin_lines,
        ["  pick    Pick fields out of the JSON on stdin"]
    );
    // The built-in keeps its name.
    let out = w.sh("echo '{\"b\": 1, \"a\": 2}' | jtool --plugins plugins pretty");
    assert_eq!(out.stdout, "{\n  \"a\": 2,\n  \"b\": 1\n}\n");
}

#[test]
fn builtins_read_json_from_stdin() {
    let w = World::new();
    let out = w.sh("echo '{\"z\": {\"y\": 1}, \"a\": [1, 2]}' | jtool keys");
    assert_eq!((out.code, out.stdout.as_str()), (0, "a\nz\n"));
    let out = w.sh("echo '{\"a\": ' | jtool pretty");
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .starts_with("jtool: pretty: stdin is not valid JSON: EOF"),
        "{}",
        out.stderr
    );
    let out = w.sh("jtool --help");
    assert_eq!(out.code, 0);
    assert!(
        out.stdout.contains("Exit status: 0 success"),
        "{}",
        out.stdout
    );
}

#[test]
fn the_shipped_plugin_folder_works_from_the_repository_root() {
    let w = World::new();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    for wasm in ["cli_wordfreq", "extism_cli_pick", "cli_readfile"] {
        built_plugin(wasm);
    }
    let script = format!(
        "cd '{}' && jtool --plugins examples/cli-extension/plugins list && jtool --plugins examples/cli-extension/plugins readfile /data/notes.txt && echo 'a b a' | jtool --plugins examples/cli-extension/plugins wordfreq",
        root.display()
    );
    let out = w.sh(&script);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.is_empty(), "{}", out.stderr);
    for (name, summary) in [
        ("pick", "Pick fields out of the JSON on stdin"),
        (
            "readfile",
            "Print files from the folders this plug-in's manifest allows",
        ),
        ("wordfreq", "Word frequencies of the text on stdin"),
    ] {
        assert_eq!(line_of(&out.stdout, name), summary);
    }
    assert!(
        out.stdout
            .ends_with("Plinth runs plug-ins in a sandbox.\nThis file is in the folder readfile.toml allows.\n2\ta\n1\tb\n"),
        "{}",
        out.stdout
    );
}
