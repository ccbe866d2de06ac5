#!/usr/bin/env bash
# Builds libplinth and installs it under PREFIX (default /usr/local):
#   lib/libplinth.so, lib/libplinth.a, include/plinth.h, lib/pkgconfig/plinth.pc
# and under libextism's names, so existing Extism bindings load it unchanged:
#   lib/libextism.so, lib/libextism.a (links to libplinth), include/extism.h, lib/pkgconfig/extism.pc
# Usage: scripts/install-libplinth.sh [--debug] [PREFIX]   (--debug reuses the test build)
set -euo pipefail
cd "$(dirname "$0")/.."
profile=release
if [ "${1:-}" = "--debug" ]; then profile=debug; shift; fi
prefix=$(mkdir -p "${1:-/usr/local}" && cd "${1:-/usr/local}" && pwd)

if [ "$profile" = release ]; then
  cargo build --release --locked -p plinth-capi
  src=target/release
else
  # Exactly the test build (dev-dependencies change feature resolution, so a plain `cargo
  # build` would compile wasmtime again); cargo leaves the libraries in deps/.
  cargo test --locked --workspace --no-run
  src=target/debug/deps
fi

install -d "$prefix/lib/pkgconfig" "$prefix/include"
# Cargo names the artifacts after the crate (plinth_capi); users get libplinth.
install -m 755 "$src/libplinth_capi.so" "$prefix/lib/libplinth.so"
install -m 644 "$src/libplinth_capi.a" "$prefix/lib/libplinth.a"
install -m 644 crates/capi/include/plinth.h "$prefix/include/plinth.h"
# extism.h includes plinth.h, which declares all of Extism's extism.h under the same names.
install -m 644 crates/capi/include/extism.h "$prefix/include/extism.h"
ln -sf libplinth.so "$prefix/lib/libextism.so"
ln -sf libplinth.a "$prefix/lib/libextism.a"

version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
for name in plinth extism; do
  cat > "$prefix/lib/pkgconfig/$name.pc" <<PC
prefix=$prefix
libdir=\${prefix}/lib
includedir=\${prefix}/include

Name: $name
Description: Plinth WebAssembly plug-in runtime (libextism-compatible C API)
Version: $version
Libs: -L\${libdir} -Wl,-rpath,\${libdir} -l$name
Libs.private: -lpthread -ldl -lm
Cflags: -I\${includedir}
PC
done
echo "installed libplinth ($profile) in $prefix"
