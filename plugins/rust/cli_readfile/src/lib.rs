//! A jtool subcommand: prints the files named as arguments, read with plain std::fs over WASI.
//! Only the directories the plug-in's manifest lists in `allowed_paths` are reachable; any
//! other path fails in the plug-in, and the host's file is never opened.

use plinth_pdk::*;
use serde::Serialize;

#[derive(Serialize)]
struct Description {
    summary: &'static str,
    usage: &'static str,
}

#[plugin_fn]
pub fn describe() -> FnResult<Json<Description>> {
    Ok(Json(Description {
        summary: "Print files from the folders this plug-in's manifest allows",
        usage: "readfile PATH...\n\nPATH is a path as the plug-in sees it, under a guest \
                folder of the manifest's `allowed_paths` (e.g. /data/notes.txt). With no PATH, \
                stdin is printed.",
    }))
}

#[plugin_fn]
pub fn run(stdin: Vec<u8>) -> FnResult<Vec<u8>> {
    let args: Vec<String> = match config::get("args")? {
        Some(text) => serde_json::from_str(&text)
            .map_err(|e| Error::msg(format!("config key `args` is not a JSON array: {e}")))?,
        None => Vec::new(),
    };
    if args.is_empty() {
        return Ok(stdin);
    }
    let mut out = Vec::new();
    for path in &args {
        let data = std::fs::read(path).map_err(|e| {
            Error::msg(format!(
                "cannot read {path}: {e} (only the folders in the manifest's allowed_paths are visible)"
            ))
        })?;
        out.extend_from_slice(&data);
    }
    Ok(out)
}
