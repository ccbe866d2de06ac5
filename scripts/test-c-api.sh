#!/usr/bin/env bash
# libplinth as users get it: installs it (debug build) into target/libplinth-prefix, builds
# the C example host with pkg-config and runs it, builds and runs a host written for Extism's
# extism.h against the installed extism.h and the async-call tests (tests/c/async_calls.c)
# against the installed plinth.h, then runs the unmodified Extism Java SDK from Maven Central
# on it (JNA pointed at libextism.so).
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

# Async calls and async host functions (plinth_plugin_call_async, plinth_function_new_async,
# completions finished from other threads) through the installed plinth.h and libplinth.
cc -std=c11 -Wall -Wextra -Werror -D_DEFAULT_SOURCE crates/capi/tests/c/async_calls.c \
  -o "$host/async_calls" $(pkg-config --cflags --libs plinth) -lpthread
out=$("$host/async_calls")
expected='single call: ok
bad arguments: ok
errors: ok
many plug-ins at once: ok
one plug-in, calls queued: ok
timeout while a host function waits: ok
cancel while a host function waits: ok
done uses the plug-in: ok
namespace and user data: ok
all passed'
if [ "$out" != "$expected" ]; then
  printf 'async_calls printed:\n%s\nexpected:\n%s\n' "$out" "$expected" >&2
  exit 1
fi
echo "async calls (installed plinth.h, libplinth): ok"

(cd tests/java-sdk && mvn -B --no-transfer-progress test -Dplinth.lib.dir="$prefix/lib")
