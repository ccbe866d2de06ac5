#!/usr/bin/env bash
# Installs what the Ruby SDK needs from Debian: Ruby and ruby-ffi. Idempotent: does nothing
# when both are already there. Needs root (apt-get) the first time.
set -euo pipefail
if command -v ruby >/dev/null 2>&1 && ruby -rffi -e 'exit 0' >/dev/null 2>&1 && command -v gem >/dev/null 2>&1; then
  exit 0
fi
apt-get install -y ruby ruby-ffi || { apt-get update && apt-get install -y ruby ruby-ffi; }
