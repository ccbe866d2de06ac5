//! Differential fuzzing: the fused ABI (spliced into the plug-in by crates/abi/src/fuse/) against the host
//! functions, on the same random programs; see `fuzz/interpreter.rs` for the three forms of the
//! interpreter plug-in the programs run on.
#![no_main]

use std::sync::{Mutex, OnceLock};

use libfuzzer_sys::fuzz_target;
use plinth::Plugin;

#[path = "../interpreter.rs"]
mod interpreter;
use interpreter::{interpreter, outcome, Form};

fn plugins() -> &'static [Mutex<Plugin>; 3] {
    static PLUGINS: OnceLock<[Mutex<Plugin>; 3]> = OnceLock::new();
    PLUGINS.get_or_init(|| {
        Form::ALL.map(|form| {
            let wat = interpreter(form);
            Mutex::new(Plugin::new(wat.as_bytes(), [], false).expect("interpreter loads"))
        })
    })
}

fuzz_target!(|program: &[u8]| {
    let outcomes: Vec<Result<Vec<u8>, String>> = plugins()
        .iter()
        .map(|p| outcome(&mut p.lock().unwrap(), program))
        .collect();
    assert_eq!(outcomes[0], outcomes[1], "fused and host functions differ");
    assert_eq!(
        outcomes[1], outcomes[2],
        "fused and legacy (unfused) memory differ"
    );
});
