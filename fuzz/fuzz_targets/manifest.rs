//! Manifest parsing (JSON and TOML) never panics, and whatever parses survives a round trip
//! through `to_json` (and `to_toml` when TOML can hold it) unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use plinth::Manifest;

fuzz_target!(|data: &[u8]| {
    let _ = Manifest::looks_like_manifest(data);
    if let Ok(m) = Manifest::parse(data) {
        check(&m);
    }
    // Both parsers on the same text, whatever its first byte says.
    let text = String::from_utf8_lossy(data);
    if let Ok(m) = Manifest::from_json(&text) {
        check(&m);
    }
    if let Ok(m) = Manifest::from_toml(&text) {
        check(&m);
    }
});

fn check(m: &Manifest) {
    let json = m.to_json();
    let back = Manifest::from_json(&json)
        .unwrap_or_else(|e| panic!("to_json output does not parse: {e}\n{json}"));
    assert_eq!(&back, m, "JSON round trip changed the manifest:\n{json}");
    // TOML cannot hold integers above i64::MAX; anything it can write must read back equal.
    if let Ok(toml) = m.to_toml() {
        let back = Manifest::from_toml(&toml)
            .unwrap_or_else(|e| panic!("to_toml output does not parse: {e}\n{toml}"));
        assert_eq!(&back, m, "TOML round trip changed the manifest:\n{toml}");
    }
    // The accessors the runtime uses must not panic either.
    let _ = (
        m.preopens(),
        m.timeout(),
        m.max_var_bytes(),
        m.max_http_response_bytes(),
    );
}
