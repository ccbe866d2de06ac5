#!/usr/bin/env bash
# Installs what building plug-ins needs on a fresh Debian machine:
#  - Rust: the wasm32 targets from rustup; when rustup cannot fetch them, Debian's rustc-web
#    with its library source, so that cargo can build std itself (-Zbuild-std);
#  - C: clang, lld and wasi-libc.
# Idempotent: a second run installs nothing. Prints the Rust route it chose.
set -euo pipefail

source "$(dirname "$0")/apt-install.sh"

apt_install clang lld wasi-libc libclang-rt-14-dev-wasm32

if rustup target add wasm32-unknown-unknown wasm32-wasip1 >/dev/null 2>&1; then
  echo "wasm toolchain: rustup targets"
else
  apt_install rustc-web cargo-web rust-web-src
  echo "wasm toolchain: Debian rustc-web with -Zbuild-std (rustup targets were not available)"
fi
