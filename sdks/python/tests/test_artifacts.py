"""Precompiled artifacts (CompiledPlugin.compile_artifact / from_artifact / is_precompiled) and
fresh calls (CompiledPlugin.call_fresh)."""

import json
import threading

import pytest

import plinth
from conftest import host_wat, plugin_path

KEY = b"0123456789abcdef0123456789abcdef"

# count adds one to a global and outputs it as a digit: a kept instance answers 1, 2, 3, a
# fresh instance always 1.
COUNTER_WAT = b"""
(module
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "store_u8" (func $store_u8 (param i64 i32)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
  (memory 1) (global $n (mut i32) (i32.const 0))
  (func (export "count") (result i32) (local $h i64)
    (global.set $n (i32.add (global.get $n) (i32.const 1)))
    (local.set $h (call $alloc (i64.const 1)))
    (call $store_u8 (local.get $h) (i32.add (i32.const 48) (global.get $n)))
    (call $output_set (local.get $h) (i64.const 1)) (i32.const 0))
  (func (export "trap") (result i32) unreachable))
"""


def test_artifact_round_trip():
    artifact = plinth.CompiledPlugin.compile_artifact(plugin_path("count_vowels"), KEY)
    assert isinstance(artifact, bytes) and artifact.startswith(b"plinth artifact")
    compiled = plinth.CompiledPlugin.from_artifact(artifact, KEY)
    assert compiled.is_precompiled
    assert json.loads(compiled.call_fresh("count_vowels", "Hello, world"))["count"] == 3
    with compiled.instance() as p:
        assert json.loads(p.call("count_vowels", "aaa"))["count"] == 3
    assert compiled.functions == ["count_vowels"]
    assert not plinth.CompiledPlugin(plugin_path("count_vowels")).is_precompiled
    # bytearray and memoryview work too.
    again = plinth.CompiledPlugin.from_artifact(bytearray(artifact), memoryview(KEY))
    assert again.is_precompiled


def test_a_refused_artifact_raises_kind_artifact():
    artifact = plinth.CompiledPlugin.compile_artifact(plugin_path("count_vowels").read_bytes(), KEY)
    for at in [0, 40, len(artifact) // 2, len(artifact) - 1]:
        tampered = bytearray(artifact)
        tampered[at] ^= 1
        with pytest.raises(plinth.LoadError) as e:
            plinth.CompiledPlugin.from_artifact(bytes(tampered), KEY)
        assert (e.value.kind, e.value.kind_code, e.value.code) == ("artifact", 25, -1), at
    with pytest.raises(plinth.LoadError, match="another key") as e:
        plinth.CompiledPlugin.from_artifact(artifact, b"fedcba9876543210fedcba9876543210")
    assert e.value.kind == "artifact"
    with pytest.raises(plinth.LoadError) as e:
        plinth.CompiledPlugin.from_artifact(artifact[:-7], KEY)
    assert e.value.kind == "artifact"
    with pytest.raises(plinth.LoadError, match="plinth compile") as e:
        plinth.CompiledPlugin.from_artifact(plugin_path("count_vowels").read_bytes(), KEY)
    assert e.value.kind == "artifact"
    with pytest.raises(plinth.LoadError, match="16 bytes") as e:
        plinth.CompiledPlugin.compile_artifact(plugin_path("count_vowels"), b"short")
    assert e.value.kind == "artifact"
    with pytest.raises(TypeError, match="key"):
        plinth.CompiledPlugin.from_artifact(artifact, "a str is no key")
    assert plinth.ERROR_KINDS[25] == "artifact"


def test_call_fresh_isolates_calls():
    compiled = plinth.CompiledPlugin(COUNTER_WAT)
    with compiled.instance() as p:
        assert [p.call("count") for _ in range(3)] == [b"1", b"2", b"3"]
    from_artifact = plinth.CompiledPlugin.from_artifact(
        plinth.CompiledPlugin.compile_artifact(COUNTER_WAT, KEY), KEY
    )
    outs = []
    lock = threading.Lock()

    def count(c):
        got = [c.call_fresh("count") for _ in range(10)]
        with lock:
            outs.extend(got)

    threads = [threading.Thread(target=count, args=(c,)) for c in [compiled, from_artifact] * 2]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outs == [b"1"] * 40
    with pytest.raises(plinth.TrapError) as e:
        from_artifact.call_fresh("trap")
    assert (e.value.kind, e.value.code) == ("trap", 134)
    with pytest.raises(plinth.FunctionNotFoundError):
        from_artifact.call_fresh("missing")


def test_call_fresh_with_host_functions():
    @plinth.host_fn()
    def greet(plugin, handle):
        name = plugin.read_string(handle)
        if name == "bad":
            raise ValueError("no bad names")
        return plugin.write_string(f"{plugin.host_context or 'Hello'}, {name}")

    artifact = plinth.CompiledPlugin.compile_artifact(host_wat(), KEY, functions=[greet])
    compiled = plinth.CompiledPlugin.from_artifact(artifact, KEY, functions=[greet])
    assert compiled.call_fresh("run", "Ada") == b"Hello, Ada"
    assert compiled.call_fresh("run", "Bob", host_context="Howdy") == b"Howdy, Bob"
    with pytest.raises(plinth.HostFunctionError) as e:
        compiled.call_fresh("run", "bad")
    assert isinstance(e.value.__cause__, ValueError)
    with pytest.raises(plinth.LoadError) as e:
        plinth.CompiledPlugin.compile_artifact(host_wat(), KEY)
    assert e.value.kind == "link"
