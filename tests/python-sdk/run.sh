#!/usr/bin/env bash
# The unmodified Extism Python SDK (`extism` from PyPI) on libplinth: installs it in a venv
# with our stand-in for `extism-sys` (the same `extism_sys` module, over libplinth's installed
# libextism.so; see README.md), then runs the pytest suite in tests/.
#
# Uses the libplinth that scripts/test-c-api.sh installed in target/libplinth-prefix (debug
# build); installs it there the same way if it is missing. PLINTH_PREFIX=/usr/local uses an
# existing install instead. Needs the plug-ins from scripts/build-plugins.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD

# The SDK under test, and the extism-sys whose cffi interface the stand-in is compared with.
extism_version=${EXTISM_VERSION:-1.1.1}
extism_sys_version=${EXTISM_SYS_VERSION:-1.41.0}

prefix=${PLINTH_PREFIX:-$root/target/libplinth-prefix}
if [ ! -e "$prefix/lib/libextism.so" ] || [ ! -f "$prefix/include/extism.h" ]; then
  if [ -n "${PLINTH_PREFIX:-}" ]; then
    echo "no libplinth in $prefix (lib/libextism.so, include/extism.h)" >&2
    exit 1
  fi
  bash scripts/install-libplinth.sh --debug "$prefix"
fi
if [ ! -f target/wasm-plugins/count_vowels.wasm ]; then
  echo "target/wasm-plugins is empty: run bash scripts/build-plugins.sh first" >&2
  exit 1
fi

work=$root/target/python-sdk
venv=$work/venv
mkdir -p "$work"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
py=$venv/bin/python
"$py" -m pip install --quiet cffi pytest

# The stand-in extism-sys: a copy of extism-sys/ with its cffi module generated from
# libplinth's installed extism.h and the path of libextism.so recorded in it.
stage=$work/extism-sys
rm -rf "$stage"
cp -R tests/python-sdk/extism-sys "$stage"
"$py" "$stage/build_ffi.py" "$prefix" "$stage/extism_sys"
"$py" -m pip install --quiet --force-reinstall --no-deps "$stage"
# `extism` itself from PyPI; its requirement extism-sys>=1.9.1 is met by the stand-in, so pip
# does not fetch the real one.
"$py" -m pip install --quiet "extism==$extism_version"
"$py" -m pip check
"$py" -c 'import extism, extism_sys; print("extism", extism.__file__, "on", extism_sys._library.LIBRARY, "(" + extism.extism_version() + ")")'

# The real extism-sys wheel, only for its generated cffi module (tests/test_interface.py).
upstream=$work/upstream-extism-sys-$extism_sys_version
if [ ! -f "$upstream/ffi.py" ]; then
  rm -rf "$upstream" && mkdir -p "$upstream"
  "$py" -m pip download --quiet --no-deps --only-binary :all: -d "$upstream" \
    "extism-sys==$extism_sys_version"
  "$py" - "$upstream" <<'PY'
import glob, sys, zipfile
wheel, = glob.glob(sys.argv[1] + "/extism_sys-*.whl")
with zipfile.ZipFile(wheel) as z, open(sys.argv[1] + "/ffi.py", "wb") as out:
    out.write(z.read("extism_sys/ffi.py"))
PY
  rm -f "$upstream"/*.whl
fi
export UPSTREAM_EXTISM_SYS_FFI=$upstream/ffi.py
export PLINTH_ROOT=$root

# pytest runs in tests/, where nothing shadows the installed packages.
cd "$root/tests/python-sdk/tests"
status=0
"$py" -m pytest -q -rfEsx -p no:cacheprovider . || status=$?
if [ "$status" = 5 ]; then
  echo "pytest collected no tests" >&2
  exit 1
fi
exit "$status"
