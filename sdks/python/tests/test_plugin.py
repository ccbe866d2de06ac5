import json
import threading

import pytest

import plinth
from conftest import HOSTILE_WAT, plugin_path


def test_load_from_path_bytes_and_manifest():
    path = plugin_path("count_vowels")
    sources = [
        str(path),
        path,  # os.PathLike
        path.read_bytes(),
        {"wasm": [{"path": str(path)}]},
        {"wasm": [{"data": path.read_bytes()}]},  # raw bytes in a manifest dict
        json.dumps({"wasm": [{"path": str(path)}]}).encode(),  # manifest JSON bytes
    ]
    for source in sources:
        with plinth.Plugin(source) as p:
            assert json.loads(p.call("count_vowels", "Hello, world"))["count"] == 3
    with plinth.Plugin.from_file(path) as p:
        assert p.function_exists("count_vowels")
        assert not p.function_exists("nope")
        assert "count_vowels" in p.functions


def test_inputs_and_outputs():
    with plinth.Plugin(plugin_path("count_vowels")) as p:
        out = p.call("count_vowels", b"aaa")
        assert isinstance(out, bytes)
        assert json.loads(p.call_str("count_vowels", bytearray(b"ee")))["count"] == 2
        assert json.loads(p.call("count_vowels", memoryview(b"i")))["count"] == 1
        assert json.loads(p.call_str("count_vowels", "héllo"))["count"] == 1
        with pytest.raises(TypeError, match="bytes or str"):
            p.call("count_vowels", 42)


def test_config_vars_and_running_total():
    with plinth.Plugin({"wasm": [{"path": str(plugin_path("count_vowels"))}], "config": {"vowels": "o"}}) as p:
        assert p.config == {"vowels": "o"}
        assert json.loads(p.call("count_vowels", "foo boo"))["count"] == 4
        p.update_config({"vowels": "f"})
        first = json.loads(p.call("count_vowels", "foo"))
        assert first["count"] == 1
        assert first["total"] == 5  # the running total is a var kept between calls
        p.update_config(vowels=None)
        assert p.config == {}
        assert json.loads(p.call("count_vowels", "aeiou"))["count"] == 5
        assert p.var_get("total") is not None
        p.var_set("total", None)
        assert p.var_get("total") is None


def test_call_json_checkout():
    with plinth.Plugin({"wasm": [{"path": str(plugin_path("checkout"))}]}) as p:
        cart = {"cart_total": 12000, "is_new_customer": True, "provided_email": True}
        assert p.call_json("before_checkout_finalize", cart) == {"discount_percent": 20.0}
        cart["is_new_customer"] = False
        assert p.call_json("before_checkout_finalize", cart) == {"discount_percent": 0.0}


def test_wat_source_and_wasi():
    with plinth.Plugin(HOSTILE_WAT) as p:
        assert p.call("ok") == b""
    with plinth.Plugin(plugin_path("count_vowels"), wasi=True) as p:
        assert json.loads(p.call("count_vowels", "a"))["count"] == 1


def test_reset_and_ids():
    a = plinth.Plugin(plugin_path("count_vowels"))
    b = plinth.Plugin(plugin_path("count_vowels"))
    assert a.id != b.id and len(a.id) == 36
    a.call("count_vowels", "a" * 1000)
    a.reset()
    assert json.loads(a.call("count_vowels", "a"))["count"] == 1
    a.close()
    b.close()


def test_close_is_idempotent_and_use_after_close_raises():
    p = plinth.Plugin(HOSTILE_WAT)
    assert not p.closed
    p.close()
    p.close()
    assert p.closed
    with pytest.raises(plinth.ClosedError, match="closed") as e:
        p.call("ok")
    assert e.value.kind == "closed"
    assert "closed" in repr(p)


def test_context_manager_closes_even_on_error():
    with pytest.raises(RuntimeError):
        with plinth.Plugin(HOSTILE_WAT) as p:
            raise RuntimeError("boom")
    assert p.closed


def test_compiled_plugin_instances_are_independent():
    compiled = plinth.CompiledPlugin(plugin_path("count_vowels"))
    assert "count_vowels" in compiled.functions
    with compiled.instance() as a, compiled.instance() as b:
        a.call("count_vowels", "aaaa")
        assert json.loads(b.call("count_vowels", "a"))["total"] == 1
        assert json.loads(a.call("count_vowels", "a"))["total"] == 5


def test_calls_from_many_threads_take_turns():
    with plinth.Plugin(plugin_path("count_vowels")) as p:
        def work():
            for _ in range(25):
                p.call("count_vowels", "ae")

        threads = [threading.Thread(target=work) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert json.loads(p.call("count_vowels", "ae"))["total"] == 202


def test_compiled_plugin_shared_by_threads():
    compiled = plinth.CompiledPlugin(plugin_path("count_vowels"))
    results = []

    def work():
        with compiled.instance() as p:
            for _ in range(10):
                out = json.loads(p.call("count_vowels", "aa"))
            results.append(out["total"])

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [20, 20, 20, 20]


def test_version():
    assert plinth.__version__.count(".") == 2
