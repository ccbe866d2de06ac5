#!/usr/bin/env bash
# Runs Plinth-built plug-ins (target/wasm-plugins, from scripts/build-plugins.sh) on the real
# Extism runtime: a venv in target/compat-venv with the pinned Python SDK, then pytest.
set -euo pipefail
cd "$(dirname "$0")/../.."
venv=target/compat-venv
if [ ! -x "$venv/bin/pip" ]; then
  if ! python3 -m venv "$venv"; then
    rm -rf "$venv"
    echo "tests/compat: cannot create a Python venv; on Debian: apt-get install -y python3-venv" >&2
    exit 1
  fi
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/compat/requirements.txt
# pytest exits 5 when it collected no tests: that is a failure here, never a pass.
set +e
"$venv/bin/python" -m pytest -q -rs -p no:cacheprovider tests/compat "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "tests/compat: pytest collected no tests" >&2
fi
exit "$rc"
