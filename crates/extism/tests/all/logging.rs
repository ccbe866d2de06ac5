//! Extism's `log_callback` example: plug-in logs handed to a callback.

use extism::*;

use crate::plugin;

static LOGS: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

fn handle_logs(msg: &str) {
    LOGS.lock().unwrap().push(msg.to_string())
}

#[test]
fn log_callback_receives_plugin_logs() {
    // The only test of this binary that installs a global subscriber.
    set_log_callback(handle_logs, "extism=trace").unwrap();
    let url = Wasm::file(plugin("count_vowels"));
    let manifest = Manifest::new([url]);
    let mut plugin = PluginBuilder::new(manifest)
        .with_wasi(true)
        .build()
        .unwrap();

    for _ in 0..2 {
        let res = plugin
            .call::<&str, &str>("count_vowels", "Hello, world!")
            .unwrap();
        assert!(res.contains(r#""count":3"#), "{res}");
    }

    // count_vowels logs `{count} vowels, {total} so far` at debug level.
    let logs = LOGS.lock().unwrap().concat();
    assert!(logs.contains("3 vowels, 3 so far"), "{logs}");
    assert!(logs.contains("3 vowels, 6 so far"), "{logs}");
    // A second subscriber cannot be installed.
    assert!(set_log_callback(handle_logs, "info").is_err());
}
