# Sourced by the build scripts: sets WASM_CARGO (the cargo command) and BUILD_STD (extra
# flags) for the Rust route that install-wasm-toolchain.sh set up.
if rustup target list --installed 2>/dev/null | grep -q '^wasm32-wasip1$' \
   && rustup target list --installed 2>/dev/null | grep -q '^wasm32-unknown-unknown$'; then
  WASM_CARGO=(cargo)
  BUILD_STD=()
else
  # Debian's 1.96 compiler builds std from source; rustup's 1.95 cargo must not be used here.
  export RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1
  export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER=wasm-ld
  export CARGO_TARGET_WASM32_WASIP1_LINKER=wasm-ld
  export CARGO_TARGET_WASM32_WASIP1_RUSTFLAGS="-L/usr/lib/wasm32-wasi"
  WASM_CARGO=(/usr/bin/cargo)
  BUILD_STD=(-Zbuild-std=std,panic_abort)
fi
