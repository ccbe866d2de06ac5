#!/usr/bin/env bash
# Installs the Python SDK the way users do (`pip install ./sdks/python`, which builds an abi3
# wheel with maturin) into a venv under target/, then runs its pytest suite, which includes
# the checkout example. Needs the plug-ins from scripts/build-plugins.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD

if [ ! -f target/wasm-plugins/checkout.wasm ]; then
  echo "target/wasm-plugins is empty: run bash scripts/build-plugins.sh first" >&2
  exit 1
fi

venv=$root/target/python-venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet pytest
# The wheel's cargo build shares the workspace's target/ directory (release profile).
# PLINTH_SDK_PROFILE=debug builds with the dev profile instead, which reuses the workspace's
# test build (scripts/test-all.sh sets it).
if [ "${PLINTH_SDK_PROFILE:-release}" = debug ]; then
  export MATURIN_PEP517_ARGS="--profile dev"
fi
"$venv/bin/python" -m pip install --quiet --force-reinstall ./sdks/python
"$venv/bin/python" -c 'import plinth; print("plinth", plinth.__version__, "from", plinth.__file__)'

# Tests run from outside the source tree, so that they import the installed wheel.
cd "$root/sdks/python/tests"
# A hang fails here, with the output so far, instead of at the CI's time limit.
status=0
timeout --kill-after=10 900 "$venv/bin/python" -m pytest -q -p no:cacheprovider . || status=$?
if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
  echo "the Python SDK tests did not finish within 15 minutes: a test hung" >&2
fi
exit "$status"
