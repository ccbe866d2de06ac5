import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parents[3]
PLUGINS = REPO / "target" / "wasm-plugins"

# Hostile plug-in, as WAT: an endless loop, unbounded memory growth, a trap.
HOSTILE_WAT = b"""
(module
  (memory 1)
  (func (export "spin") (result i32) (loop $l (br $l)) (i32.const 0))
  (func (export "grow") (result i32)
    (loop $l (br_if $l (i32.ne (memory.grow (i32.const 1)) (i32.const -1))))
    unreachable)
  (func (export "boom") (result i32) unreachable)
  (func (export "ok") (result i32) (i32.const 0)))
"""


def host_wat(namespace="extism:host/user", name="greet"):
    """Imports NAMESPACE::NAME (i64 -> i64), calls it with the input and outputs its result."""
    return f"""
(module
  (import "{namespace}" "{name}" (func $greet (param i64) (result i64)))
  (import "extism:host/env" "input_offset" (func $input_offset (result i64)))
  (import "extism:host/env" "length" (func $length (param i64) (result i64)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
  (memory 1)
  (func (export "run") (result i32) (local $h i64)
    (local.set $h (call $greet (call $input_offset)))
    (call $output_set (local.get $h) (call $length (local.get $h))) (i32.const 0)))
""".encode()


def plugin_path(name):
    path = PLUGINS / f"{name}.wasm"
    if not path.exists():
        pytest.fail(f"{path} is missing: run `bash scripts/build-plugins.sh` first")
    return path


def rss_kib():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")
