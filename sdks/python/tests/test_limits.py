import json
import threading
import time

import pytest

import plinth
from conftest import HOSTILE_WAT, plugin_path


def test_timeout_stops_an_infinite_loop():
    with plinth.Plugin({"wasm": [{"data": HOSTILE_WAT}], "timeout_ms": 100}) as p:
        started = time.monotonic()
        with pytest.raises(plinth.PluginTimeoutError, match="timed out") as e:
            p.call("spin")
        assert time.monotonic() - started < 5
        assert e.value.code == -1 and e.value.kind == "timeout"
        assert p.call("ok") == b"", "the plug-in works after a timeout"


def test_memory_limit_stops_growth():
    with plinth.Plugin({"wasm": [{"data": HOSTILE_WAT}], "memory": {"max_pages": 4}}) as p:
        with pytest.raises(plinth.OutOfMemoryError, match="max_pages"):
            p.call("grow")
        assert p.call("ok") == b""


def test_memory_limit_covers_input():
    manifest = {"wasm": [{"path": str(plugin_path("count_vowels"))}], "memory": {"max_pages": 40}}
    with plinth.Plugin(manifest) as p:
        with pytest.raises(plinth.PlinthError):
            p.call("count_vowels", b"a" * (4 << 20))
        assert json.loads(p.call("count_vowels", "a"))["count"] == 1


def test_fuel_limit():
    with plinth.Plugin(HOSTILE_WAT, fuel_limit=100_000) as p:
        with pytest.raises(plinth.OutOfFuelError, match="fuel") as e:
            p.call("spin")
        assert e.value.kind == "out_of_fuel"
        assert p.call("ok") == b"", "fuel is refilled for each call"
    compiled = plinth.CompiledPlugin(HOSTILE_WAT, fuel_limit=100_000)
    with compiled.instance() as p, pytest.raises(plinth.OutOfFuelError):
        p.call("spin")


def test_cancel_from_another_thread():
    with plinth.Plugin(HOSTILE_WAT) as p:
        handle = p.cancel_handle()
        done = threading.Event()

        def canceller():
            # Keep cancelling until the call has ended: a cancel may land before it starts.
            while not done.wait(0.05):
                handle.cancel()

        t = threading.Thread(target=canceller)
        t.start()
        started = time.monotonic()
        try:
            with pytest.raises(plinth.CancelledError, match="cancelled"):
                p.call("spin")
        finally:
            done.set()
            t.join()
        assert time.monotonic() - started < 5
        assert p.call("ok") == b""


def test_other_threads_run_while_a_plugin_runs():
    ticks = []
    stop = threading.Event()

    def ticker():
        while not stop.wait(0.01):
            ticks.append(1)

    t = threading.Thread(target=ticker)
    t.start()
    with plinth.Plugin({"wasm": [{"data": HOSTILE_WAT}], "timeout_ms": 300}) as p:
        with pytest.raises(plinth.PluginTimeoutError):
            p.call("spin")
    stop.set()
    t.join()
    assert len(ticks) > 5, "the GIL is released while the plug-in runs"


def test_close_while_another_thread_calls_does_not_wait_for_the_call():
    p = plinth.Plugin({"wasm": [{"data": HOSTILE_WAT}], "timeout_ms": 500})
    errors = []

    def call():
        try:
            p.call("spin")
        except plinth.PlinthError as e:
            errors.append(e)

    t = threading.Thread(target=call)
    t.start()
    time.sleep(0.05)
    start = time.monotonic()
    p.close()
    assert time.monotonic() - start < 0.3, "close() returns while the call still runs"
    assert p.closed
    t.join()
    assert len(errors) == 1
    assert isinstance(errors[0], (plinth.PluginTimeoutError, plinth.ClosedError))
    with pytest.raises(plinth.ClosedError):
        p.call("ok")
