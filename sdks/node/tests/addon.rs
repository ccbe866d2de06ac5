//! Checks the addon library that this test build produced, before Node loads it (test.sh
//! installs it as `plinth.linux-x64-gnu.node`): Node finds a module through its registration
//! symbol, which only a build with napi-derive's module registration exports.

use std::path::PathBuf;
use std::process::Command;

fn addon() -> PathBuf {
    // Integration tests run from target/<profile>/deps, where cargo leaves the cdylib.
    let deps = std::env::current_exe()
        .expect("test executable path")
        .parent()
        .expect("deps folder")
        .to_path_buf();
    let lib = deps.join("libplinth_node.so");
    assert!(lib.exists(), "{} was not built", lib.display());
    lib
}

fn defined_dynamic_symbols() -> String {
    let out = Command::new("nm")
        .arg("-D")
        .arg("--defined-only")
        .arg(addon())
        .output()
        .expect("nm (binutils) runs");
    assert!(
        out.status.success(),
        "nm failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("nm prints text")
}

#[test]
#[cfg(target_os = "linux")]
fn the_addon_registers_a_node_module() {
    let defined = defined_dynamic_symbols();
    assert!(
        defined
            .lines()
            .any(|l| l.ends_with(" napi_register_module_v1")),
        "napi_register_module_v1 is not exported:\n{defined}"
    );
}
