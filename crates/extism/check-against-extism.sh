#!/usr/bin/env bash
# Type-checks this crate's test hosts against the real `extism` crate (1.30.0, the version the
# bench crate pins): proof that they are Extism code, unchanged. Two things differ from the
# test binary: tests/all/main.rs loses its `extern crate plinth_extism as extism;` line (here
# `extism` is the real crate), and a stub stands in for `plinth::Error`, which three tests
# downcast errors to. Shares the workspace's target directory, so that the extism build of
# the bench crate is reused.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/tests" "$work/src" "$work/plinth-stub/src"
cp "$root"/crates/extism/tests/all/*.rs "$work/tests/"
cp "$root/Cargo.lock" "$work/"
: > "$work/src/lib.rs"
sed -i -e '/^extern crate plinth_extism as extism;$/d' \
  -e "s|#\[path = \"../../../plinth/tests/all/common.rs\"\]|#[path = \"$root/crates/plinth/tests/all/common.rs\"]|" \
  "$work/tests/main.rs"

# Dependencies and profiles as the workspace has them, for the same builds of extism.
cat > "$work/Cargo.toml" <<'EOF'
[package]
name = "extism-check"
version = "0.0.0"
edition = "2021"
publish = false
autotests = false

[workspace]

[dependencies]
extism = { version = "=1.30.0", default-features = false }
wasmtime-for-extism = { package = "wasmtime", version = "43", default-features = false, features = ["anyhow"] }
serde = { version = "1", features = ["derive"] }
serde_json = "1"
tempfile = "3"
plinth = { path = "plinth-stub" }

[[test]]
name = "main"
path = "tests/main.rs"

[profile.dev]
debug = "line-tables-only"

[profile.dev.package."*"]
opt-level = 1
debug = false
EOF

cat > "$work/plinth-stub/Cargo.toml" <<'EOF'
[package]
name = "plinth"
version = "0.0.0"
edition = "2021"
EOF
cat > "$work/plinth-stub/src/lib.rs" <<'EOF'
//! The variants of plinth::Error that the tests match.
#[derive(Debug)]
pub enum Error {
    Guest { function: String, code: i32, message: String },
    Timeout { function: String },
    Cancelled { function: String },
}
impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?}")
    }
}
impl std::error::Error for Error {}
EOF

cd "$work"
CARGO_TARGET_DIR="$root/target" cargo check --tests
echo "the plinth-extism test hosts type-check against extism 1.30.0"
