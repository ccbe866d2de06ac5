#!/usr/bin/env bash
# Builds the SQLite extension into target/sqlite/libplinth_sqlite.so, with libplinth linked in
# statically so that the extension is one file to copy. Needs gcc, libsqlite3-dev and libplinth
# installed (bash scripts/install-libplinth.sh; pkg-config plinth finds it).
# Usage: extensions/sqlite/build.sh [OUTPUT_DIR]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${1:-$root/target/sqlite}
mkdir -p "$out"

if ! pkg-config --exists plinth; then
  echo "build.sh: libplinth is not installed (pkg-config plinth finds nothing)." >&2
  echo "Install it with: bash scripts/install-libplinth.sh   (or --debug to reuse the test build)" >&2
  exit 1
fi
libdir=$(pkg-config --variable=libdir plinth)
if [ ! -f "$libdir/libplinth.a" ]; then
  echo "build.sh: $libdir/libplinth.a is missing; run bash scripts/install-libplinth.sh" >&2
  exit 1
fi
if [ ! -f /usr/include/sqlite3ext.h ] && ! pkg-config --exists sqlite3; then
  echo "build.sh: sqlite3ext.h is missing; install libsqlite3-dev" >&2
  exit 1
fi

# -l:libplinth.a picks the static library over libplinth.so; the version script exports only
# the entry points; --gc-sections and -s drop what the extension does not use.
gcc -O2 -g0 -shared -fPIC -std=c11 -D_POSIX_C_SOURCE=200809L -Wall -Wextra -Werror \
  $(pkg-config --cflags plinth) \
  -o "$out/libplinth_sqlite.so" "$here/plinth_sqlite.c" \
  -L"$libdir" -l:libplinth.a $(pkg-config --static --libs-only-l plinth | sed 's/-lplinth//') \
  -Wl,--version-script="$here/exports.map" -Wl,--gc-sections -Wl,-z,defs -s
echo "built $out/libplinth_sqlite.so ($(du -h "$out/libplinth_sqlite.so" | cut -f1), libplinth $(pkg-config --modversion plinth) static)"
