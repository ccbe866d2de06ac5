import gc

import pytest

import plinth
from conftest import host_wat, plugin_path


def test_greet_round_trip_with_user_data():
    seen = []

    def greet(current, handle, user_data):
        seen.append((type(current).__name__, current.length(handle)))
        return current.write_string(user_data["prefix"] + current.read_string(handle))

    f = plinth.HostFunction("greet", [plinth.PTR], [plinth.PTR], greet, user_data={"prefix": "Howdy, "})
    with plinth.Plugin(plugin_path("host_greet"), functions=[f]) as p:
        assert p.call_str("call_greet", "Ada") == "Howdy, Ada"
        assert p.call_str("call_greet", "Bob") == "Howdy, Bob"
    assert seen == [("CurrentPlugin", 3), ("CurrentPlugin", 3)]


def test_decorator_binary_data_and_free():
    @plinth.host_fn()
    def greet(current, handle):
        data = current.read_bytes(handle)
        current.free(handle)
        assert current.length(handle) == 0
        return current.write_bytes(data[::-1])

    assert greet.name == "greet" and greet.namespace == plinth.DEFAULT_NAMESPACE
    with plinth.Plugin(host_wat(), functions=[greet]) as p:
        assert p.call("run", b"\xff\x00\x03") == b"\x03\x00\xff"
        assert p.call("run", b"") == b""


def test_custom_namespace_and_missing_host_function():
    f = plinth.HostFunction("greet", [plinth.I64], [plinth.I64],
                            lambda c, h: c.write_string("ns"), namespace="my:ns")
    with plinth.Plugin(host_wat("my:ns"), functions=[f]) as p:
        assert p.call("run", "x") == b"ns"
    with pytest.raises(plinth.LoadError, match="greet"):
        plinth.Plugin(host_wat("other:ns"), functions=[f])


def test_host_context_per_call():
    def greet(current, handle):
        ctx = current.host_context
        ctx.append(current.read_string(handle))
        return current.write_string(str(len(ctx)))

    f = plinth.HostFunction("greet", [plinth.PTR], [plinth.PTR], greet)
    with plinth.Plugin(host_wat(), functions=[f]) as p:
        log = []
        assert p.call("run", "a", host_context=log) == b"1"
        assert p.call("run", "b", host_context=log) == b"2"
        assert log == ["a", "b"]
        with pytest.raises(plinth.HostFunctionError, match="NoneType"):
            p.call("run", "c")  # no host context: None has no append


def test_exception_fails_the_call_with_the_cause():
    def greet(current, handle):
        raise ValueError("bad name " + current.read_string(handle))

    f = plinth.HostFunction("greet", [plinth.PTR], [plinth.PTR], greet)
    with plinth.Plugin(plugin_path("host_greet"), functions=[f]) as p:
        with pytest.raises(plinth.HostFunctionError, match="ValueError: bad name Ada") as e:
            p.call("call_greet", "Ada")
        assert isinstance(e.value.__cause__, ValueError)
        assert e.value.kind == "host_function" and e.value.code == -1


def test_wrong_result_shape_is_an_error():
    f = plinth.HostFunction("greet", [plinth.PTR], [plinth.PTR], lambda c, h: (1, 2))
    with plinth.Plugin(host_wat(), functions=[f]) as p:
        with pytest.raises(plinth.HostFunctionError, match="2 value"):
            p.call("run", "x")
    f = plinth.HostFunction("greet", [plinth.PTR], [plinth.PTR], lambda c, h: "text")
    with plinth.Plugin(host_wat(), functions=[f]) as p:
        with pytest.raises(plinth.HostFunctionError):
            p.call("run", "x")


def test_bad_handle_is_an_error_not_a_crash():
    f = plinth.HostFunction("greet", [plinth.PTR], [plinth.PTR], lambda c, h: c.read_bytes(123456789))
    with plinth.Plugin(host_wat(), functions=[f]) as p:
        with pytest.raises(plinth.HostFunctionError, match="not the handle"):
            p.call("run", "x")


def test_current_plugin_is_invalid_after_the_call():
    kept = []

    def greet(current, handle):
        kept.append(current)
        return handle

    f = plinth.HostFunction("greet", [plinth.PTR], [plinth.PTR], greet)
    with plinth.Plugin(host_wat(), functions=[f]) as p:
        assert p.call("run", "x") == b"x"
    with pytest.raises(plinth.PlinthError, match="no longer valid"):
        kept[0].read_bytes(0)


def test_reentrant_call_is_refused():
    holder = {}

    def greet(current, handle):
        holder["plugin"].call("run", "again")
        return handle

    f = plinth.HostFunction("greet", [plinth.PTR], [plinth.PTR], greet)
    with plinth.Plugin(host_wat(), functions=[f]) as p:
        holder["plugin"] = p
        with pytest.raises(plinth.HostFunctionError) as e:
            p.call("run", "x")
        assert isinstance(e.value.__cause__, plinth.ReentrantCallError)


def test_numeric_types():
    wat = b"""
(module
  (import "extism:host/user" "mix" (func $mix (param i32 i64 f32 f64) (result i32 i64 f32 f64)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "store_u64" (func $store (param i64 i64)))
  (memory 1)
  (func (export "run") (result i32)
    (local $a i32) (local $b i64) (local $c f32) (local $d f64) (local $h i64)
    (call $mix (i32.const -7) (i64.const 9000000000) (f32.const 1.5) (f64.const 2.25))
    (local.set $d) (local.set $c) (local.set $b) (local.set $a)
    (local.set $h (call $alloc (i64.const 32)))
    (call $store (local.get $h) (i64.extend_i32_s (local.get $a)))
    (call $store (i64.add (local.get $h) (i64.const 8)) (local.get $b))
    (call $store (i64.add (local.get $h) (i64.const 16)) (i64.reinterpret_f64 (f64.promote_f32 (local.get $c))))
    (call $store (i64.add (local.get $h) (i64.const 24)) (i64.reinterpret_f64 (local.get $d)))
    (call $output_set (local.get $h) (i64.const 32)) (i32.const 0)))
"""
    got = []

    def mix(current, a, b, c, d):
        got.extend([a, b, c, d])
        return a * 2, b + 1, c * 2, d * 2

    f = plinth.HostFunction("mix", [plinth.I32, plinth.I64, plinth.F32, plinth.F64],
                            [plinth.I32, plinth.I64, plinth.F32, plinth.F64], mix)
    import struct
    with plinth.Plugin(wat, functions=[f]) as p:
        out = p.call("run")
    assert got == [-7, 9000000000, 1.5, 2.25]
    assert struct.unpack("<qqdd", out) == (-14, 9000000001, 3.0, 4.5)


def test_argument_checks():
    with pytest.raises(ValueError, match="unknown wasm type"):
        plinth.HostFunction("f", ["i128"], [], lambda c: None)
    with pytest.raises(TypeError, match="callable"):
        plinth.HostFunction("f", [], [], 42)
    with pytest.raises(TypeError, match="HostFunction"):
        plinth.Plugin(host_wat(), functions=[lambda c, h: h])


def test_function_outlives_python_references():
    def make():
        return plinth.Plugin(plugin_path("host_greet"), functions=[
            plinth.HostFunction("greet", [plinth.PTR], [plinth.PTR],
                                lambda c, h: c.write_string("hi " + c.read_string(h)))])

    p = make()
    gc.collect()
    assert p.call("call_greet", "x") == b"hi x"
    p.close()


def test_compiled_plugin_with_host_function():
    f = plinth.HostFunction("greet", [plinth.PTR], [plinth.PTR], lambda c, h: c.write_string("c"))
    compiled = plinth.CompiledPlugin(host_wat(), functions=[f])
    for _ in range(3):
        with compiled.instance() as p:
            assert p.call("run", "x") == b"c"
