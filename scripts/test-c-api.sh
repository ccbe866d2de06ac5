#!/usr/bin/env bash
# libplinth as users get it: installs it (debug build) into target/libplinth-prefix, builds
# the C example host with pkg-config and runs it, builds and runs a host written for Extism's
# extism.h against the installed extism.h, then runs the unmodified Extism Java SDK from Maven
# Central on it (JNA pointed at libextism.so).
set -euo pipefail
cd "$(dirname "$0")/.."
prefix=$PWD/target/libplinth-prefix
bash scripts/install-libplinth.sh --debug "$prefix"

export PKG_CONFIG_PATH=$prefix/lib/pkgconfig
make -s -C examples/c-host clean c-host
out=$(examples/c-host/c-host examples/plugins/count_vowels.wat count_vowels "Hello, world")
expected='{"count":3,"total":3,"vowels":"aeiouAEIOU"}'
if [ "$out" != "$expected" ]; then
  echo "c-host printed $out, expected $expected" >&2
  exit 1
fi
echo "c-host (pkg-config, installed libplinth): ok"

# A host written for Extism's own extism.h, built against the installed extism.h and
# libextism through pkg-config (extism.pc), as an Extism user would build it.
host=$(mktemp -d)
trap 'rm -rf "$host"' EXIT
cc -std=c11 -Wall -Wextra -Werror crates/capi/tests/c/extism_host.c -o "$host/extism_host" \
  $(pkg-config --cflags --libs extism)
out=$("$host/extism_host")
if [ "$out" != ok ]; then
  echo "extism_host printed $out, expected ok" >&2
  exit 1
fi
echo "Extism-style host (installed extism.h, libextism): ok"

(cd tests/java-sdk && mvn -B --no-transfer-progress test -Dplinth.lib.dir="$prefix/lib")
