#!/usr/bin/env bash
# Tests the Ruby SDK against the repository's libplinth and checks that the gem packs.
# Needs libplinth installed first: bash scripts/install-libplinth.sh --debug target/libplinth-prefix
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

bash "$here/install-deps.sh"

export PLINTH_LIB="${PLINTH_LIB:-$root/target/libplinth-prefix/lib/libplinth.so}"
if [ ! -f "$PLINTH_LIB" ]; then
  echo "libplinth not found at $PLINTH_LIB; run: bash scripts/install-libplinth.sh --debug target/libplinth-prefix" >&2
  exit 1
fi

cd "$here"
# Build the gem into target/ (not the source tree).
out="$root/target/ruby-gem"
mkdir -p "$out"
gem build plinth.gemspec --output "$out/plinth.gem"
# The gem must hold the library files.
files=$(tar -xOf "$out/plinth.gem" data.tar.gz | tar -tzf -)
grep -qx 'lib/plinth.rb' <<<"$files" && grep -qx 'lib/plinth/plugin.rb' <<<"$files"
echo "gem: $out/plinth.gem"

# The tests last, so the output ends with minitest's summary line.
ruby -w -Ilib -Itest -e 'ARGV.each { |f| require File.expand_path(f) }' test/*_test.rb
