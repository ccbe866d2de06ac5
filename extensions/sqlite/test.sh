#!/usr/bin/env bash
# Builds the SQLite extension and runs all its tests: the sqlite3 shell script (100,000 rows,
# output diffed with tests/shell.expected), the Python unittest suite with Debian's Python, and,
# when valgrind is installed (skip with PLINTH_SQLITE_VALGRIND=0), a short script under valgrind
# that must show no memory errors and no definite leaks. Exits non-zero on any failure.
# Needs: libplinth installed (scripts/install-libplinth.sh), sqlite3, libsqlite3-dev, and the
# plug-ins built (scripts/build-plugins.sh).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"

for p in checkout extism_count_vowels sql_stats sql_hostile extism_sql_longest; do
  if [ ! -f "target/wasm-plugins/$p.wasm" ]; then
    echo "test.sh: target/wasm-plugins/$p.wasm is missing; build the plug-ins with: bash scripts/build-plugins.sh" >&2
    exit 1
  fi
done
command -v sqlite3 >/dev/null || { echo "test.sh: the sqlite3 shell is missing; install Debian's sqlite3" >&2; exit 1; }

bash "$here/build.sh"

echo "== sqlite3 shell: tests/shell.sql"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# The script ends with one failing statement on purpose, so the shell exits 1.
set +e
sqlite3 :memory: < "$here/tests/shell.sql" > "$tmp/shell.out" 2> "$tmp/shell.err"
rc=$?
set -e
diff -u "$here/tests/shell.expected" "$tmp/shell.out" || { echo "test.sh: the shell's output differs from tests/shell.expected" >&2; exit 1; }
if [ "$rc" -ne 1 ] || ! grep -q "spin(): plug-in sql_hostile.wasm, export spin, call 1: timeout" "$tmp/shell.err" \
    || [ "$(wc -l < "$tmp/shell.err")" -ne 1 ]; then
  echo "test.sh: expected exactly one error, the spin() timeout (shell exit 1); got exit $rc and:" >&2
  cat "$tmp/shell.err" >&2
  exit 1
fi
echo "ok"

echo "== Python sqlite3: tests/test_sqlite.py"
/usr/bin/python3 -m unittest discover -s "$here/tests" -v

if [ "${PLINTH_SQLITE_VALGRIND:-1}" != 0 ] && command -v valgrind >/dev/null; then
  echo "== valgrind: tests/valgrind.sql"
  set +e
  valgrind --leak-check=full --errors-for-leak-kinds=definite --show-leak-kinds=definite \
    --error-exitcode=99 sqlite3 :memory: < "$here/tests/valgrind.sql" > "$tmp/vg.out" 2>&1
  rc=$?
  set -e
  if [ "$rc" -eq 99 ] || ! grep -q "ERROR SUMMARY: 0 errors" "$tmp/vg.out" || ! grep -q "definitely lost: 0 bytes" "$tmp/vg.out"; then
    cat "$tmp/vg.out" >&2
    echo "test.sh: valgrind found memory errors or leaks (output above)" >&2
    exit 1
  fi
  echo "ok"
else
  echo "== valgrind: skipped (not installed, or PLINTH_SQLITE_VALGRIND=0)"
fi
echo "extensions/sqlite: all tests passed"
