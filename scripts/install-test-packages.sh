#!/usr/bin/env bash
# Installs the Debian packages the tests need besides the wasm toolchain: SQLite's shell and
# headers (extensions/sqlite is a SQLite extension, tested in the `sqlite3` shell and in
# Debian's Python, whose sqlite3 module can load extensions), and Chromium, in which the web
# SDK's browser test runs (driven by puppeteer-core, which never downloads a browser of its
# own). Idempotent.
set -euo pipefail
source "$(dirname "$0")/apt-install.sh"
apt_install sqlite3 libsqlite3-dev python3 pkg-config chromium
