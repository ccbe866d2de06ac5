//! `checkout [PLUGIN.wasm]`: runs the checkout plug-in on two sample carts.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let given = std::env::args_os().nth(1).map(PathBuf::from);
    let wasm = given
        .clone()
        .unwrap_or_else(plinth_example_checkout::default_plugin_path);
    match plinth_example_checkout::run(&wasm) {
        Ok(report) => {
            print!("{report}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("Error: {e}");
            if given.is_none() && !wasm.exists() {
                eprintln!("(build the plug-in first: bash scripts/build-plugins.sh)");
            }
            ExitCode::FAILURE
        }
    }
}
