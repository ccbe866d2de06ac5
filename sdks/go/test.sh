#!/usr/bin/env bash
# Tests the Go SDK and the Go checkout example against the libplinth installed in
# target/libplinth-prefix (bash scripts/install-libplinth.sh --debug target/libplinth-prefix).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
export PKG_CONFIG_PATH="$root/target/libplinth-prefix/lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
export CGO_ENABLED=1
for dir in sdks/go examples/checkout/go; do
  echo "== $dir"
  (cd "$root/$dir" && go vet ./... && go test -count=1 ./...)
done
