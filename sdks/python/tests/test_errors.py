import json
import pathlib

import pytest

import plinth
from conftest import HOSTILE_WAT, plugin_path


def test_every_error_is_a_plinth_error_with_code_and_kind():
    for cls in [plinth.LoadError, plinth.FunctionNotFoundError, plinth.CallError, plinth.TrapError,
                plinth.PluginTimeoutError, plinth.CancelledError, plinth.OutOfMemoryError,
                plinth.OutOfFuelError, plinth.HostFunctionError, plinth.ReentrantCallError,
                plinth.HttpError, plinth.ClosedError]:
        assert issubclass(cls, plinth.PlinthError)
    assert issubclass(plinth.PlinthError, Exception)


def test_bad_wasm():
    with pytest.raises(plinth.LoadError, match="compile") as e:
        plinth.Plugin(b"\0asm\x01\0\0\0garbage")
    assert e.value.kind == "compile" and e.value.kind_code == 2 and e.value.code == -1


def test_manifest_with_unknown_field():
    with pytest.raises(plinth.LoadError, match="colour"):
        plinth.Plugin({"wasm": [{"path": str(plugin_path("count_vowels"))}], "colour": "blue"})


def test_hash_mismatch_names_both_hashes():
    with pytest.raises(plinth.LoadError, match="0000") as e:
        plinth.Plugin({"wasm": [{"path": str(plugin_path("count_vowels")), "hash": "0" * 64}]})
    assert "hash" in str(e.value)


def test_missing_file_and_bad_source_type():
    with pytest.raises(plinth.LoadError, match="/nonexistent/plugin.wasm") as e:
        plinth.Plugin("/nonexistent/plugin.wasm")
    assert e.value.kind == "manifest" and e.value.kind_code == 1 and e.value.code == -1
    with pytest.raises(plinth.LoadError):
        plinth.Plugin.from_file(pathlib.Path("/nonexistent/plugin.wasm"))
    with pytest.raises(TypeError, match="manifest dict"):
        plinth.Plugin(12)
    with pytest.raises(TypeError, match="path"):
        plinth.Plugin.from_file(b"(module)")


def test_missing_import():
    wat = b'(module (import "extism:host/user" "nope" (func)) (func (export "run")))'
    with pytest.raises(plinth.LoadError, match="nope"):
        plinth.Plugin(wat)


def test_missing_function():
    with plinth.Plugin(plugin_path("count_vowels")) as p:
        with pytest.raises(plinth.FunctionNotFoundError, match="count_vowels") as e:
            p.call("nope")
        assert e.value.kind == "function_not_found"


def test_guest_error_carries_its_code_and_message():
    with plinth.Plugin(plugin_path("fail_with_code")) as p:
        name = p.functions[0]
        with pytest.raises(plinth.CallError, match="custom failure") as e:
            p.call(name)
        assert e.value.code == 42
        assert e.value.kind == "guest"


def test_trap():
    with plinth.Plugin(HOSTILE_WAT) as p:
        with pytest.raises(plinth.TrapError, match="unreachable") as e:
            p.call("boom")
        assert e.value.code == 134
        assert p.call("ok") == b"", "a fresh instance serves the next call"


def test_call_json_on_empty_and_non_json_output():
    with plinth.Plugin(HOSTILE_WAT) as p:
        assert p.call_json("ok") is None, "empty output reads as None"
    with plinth.Plugin(plugin_path("host_greet"), functions=[
        plinth.HostFunction("greet", [plinth.PTR], [plinth.PTR],
                            lambda cur, h: cur.write_string("not json"))
    ]) as p:
        with pytest.raises(json.JSONDecodeError):
            p.call_json("call_greet", "x")
