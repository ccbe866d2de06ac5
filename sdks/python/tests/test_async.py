"""Async host functions and `await plugin.call_async(..)` on asyncio (issue 16)."""

import asyncio
import contextvars
import json
import pathlib
import subprocess
import sys
import time

import pytest

import plinth
from conftest import HOSTILE_WAT, host_wat, plugin_path

# Every test runs its coroutine under this bound, so that a hang fails instead of stalling.
GUARD = 60

REQUEST_ID = contextvars.ContextVar("request_id", default="none")


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, GUARD))


class Counter:
    """Host coroutines in flight now, and the most at once."""

    def __init__(self):
        self.now = 0
        self.most = 0

    def __enter__(self):
        self.now += 1
        self.most = max(self.most, self.now)

    def __exit__(self, *exc):
        self.now -= 1


def waiting(counter=None, delay=0.01, started=None, ended=None):
    """An async `wait`: reads its argument, sleeps on asyncio's timer, answers "waited: <arg>"."""

    async def wait(current, handle):
        text = current.read_string(handle)
        if started is not None:
            started.set()
        try:
            with counter or Counter():
                await asyncio.sleep(delay)
        finally:
            if ended is not None:
                ended.set()
        # The CurrentPlugin is still valid after the await.
        return current.write_string(f"waited: {text}")

    return plinth.HostFunction("wait", [plinth.PTR], [plinth.PTR], wait)


def test_an_async_host_function_is_awaited_by_the_plugin():
    seen = {}

    @plinth.host_fn()
    async def wait(current, handle):
        seen["loop"] = asyncio.get_running_loop()
        text = current.read_string(handle)
        await asyncio.sleep(0.01)
        seen["request"] = REQUEST_ID.get()
        seen["context"] = current.host_context
        return current.write_string(f"waited: {text} ({current.length(handle)} bytes)")

    assert wait.is_async and "async" in repr(wait)

    async def main():
        with plinth.Plugin(host_wat(name="wait"), functions=[wait]) as p:
            REQUEST_ID.set("req-7")
            out = await p.call_async("run", "Ada", host_context={"user": 1})
            assert out == b"waited: Ada (3 bytes)"
            assert await p.call_str_async("run", "Bob") == "waited: Bob (3 bytes)"
            assert seen["context"] is None
            return asyncio.get_running_loop()

    loop = run(main())
    # The coroutine ran on the caller's loop, with the caller's contextvars.
    assert seen["loop"] is loop
    assert seen["request"] == "req-7"


def test_host_context_reaches_async_and_sync_host_functions_in_async_calls():
    got = []

    async def wait(current, handle, user_data):
        got.append(("async", current.host_context, user_data))
        return handle

    def greet(current, handle):
        got.append(("sync", current.host_context, None))
        return current.write_string("hi " + current.read_string(handle))

    af = plinth.HostFunction("wait", [plinth.PTR], [plinth.PTR], wait, user_data="ud")
    sf = plinth.HostFunction("greet", [plinth.PTR], [plinth.PTR], greet)

    async def main():
        ctx = object()
        with plinth.Plugin(host_wat(name="wait"), functions=[af]) as p:
            assert await p.call_async("run", "x", host_context=ctx) == b"x"
        # A plug-in with only sync host functions can be called either way.
        with plinth.Plugin(host_wat(), functions=[sf]) as p:
            assert await p.call_async("run", "Ada", host_context=ctx) == b"hi Ada"
            assert p.call("run", "Bob") == b"hi Bob"
        return ctx

    ctx = run(main())
    assert got == [("async", ctx, "ud"), ("sync", ctx, None), ("sync", None, None)]


def test_async_numeric_results_and_awaitables():
    wat = b"""
(module
  (import "extism:host/user" "mix" (func $mix (param i32 f64) (result i32 f64)))
  (import "extism:host/user" "none" (func $none (result i64)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "store_u64" (func $store (param i64 i64)))
  (memory 1)
  (func (export "run") (result i32) (local $a i32) (local $d f64) (local $h i64)
    (call $mix (i32.const -7) (f64.const 2.25))
    (local.set $d) (local.set $a)
    (local.set $h (call $alloc (i64.const 24)))
    (call $store (local.get $h) (i64.extend_i32_s (local.get $a)))
    (call $store (i64.add (local.get $h) (i64.const 8)) (i64.reinterpret_f64 (local.get $d)))
    (call $store (i64.add (local.get $h) (i64.const 16)) (call $none))
    (call $output_set (local.get $h) (i64.const 24)) (i32.const 0)))
"""

    async def mix(current, a, d):
        await asyncio.sleep(0)
        return a * 2, d * 2

    async def none(current):
        await asyncio.sleep(0)  # returns None: the result reads 0

    # Not an `async def`, but returns an awaitable: is_async says so.
    def mix_awaitable(current, a, d):
        return asyncio.sleep(0, result=(a * 3, d * 3))

    import struct

    async def main():
        nf = plinth.HostFunction("none", [], [plinth.I64], none)
        types = ([plinth.I32, plinth.F64], [plinth.I32, plinth.F64])
        f = plinth.HostFunction("mix", *types, mix)
        with plinth.Plugin(wat, functions=[f, nf]) as p:
            assert struct.unpack("<qdq", await p.call_async("run")) == (-14, 4.5, 0)
        g = plinth.HostFunction("mix", *types, mix_awaitable, is_async=True)
        assert g.is_async
        with plinth.Plugin(wat, functions=[g, nf]) as p:
            assert struct.unpack("<qdq", await p.call_async("run")) == (-21, 6.75, 0)

    run(main())


def test_call_async_on_plugins_without_host_functions():
    async def main():
        with plinth.Plugin(plugin_path("count_vowels")) as p:
            out = await p.call_json_async("count_vowels", None)
            assert out is not None
            out = json.loads(await p.call_async("count_vowels", "Hello, world"))
            assert out["count"] == 3
        compiled = plinth.CompiledPlugin(plugin_path("count_vowels"))
        outs = await asyncio.gather(*(compiled.call_fresh_async("count_vowels", "aeiou" * i) for i in range(10)))
        assert [json.loads(o)["count"] for o in outs] == [5 * i for i in range(10)]

    run(main())


def test_sync_calls_of_a_plugin_with_async_host_functions_are_refused():
    f = waiting()
    with plinth.Plugin(host_wat(name="wait"), functions=[f]) as p:
        with pytest.raises(plinth.PlinthError, match="call_async"):
            p.call("run", "x")
    with pytest.raises(plinth.PlinthError, match="call_async"):
        plinth.CompiledPlugin(host_wat(name="wait"), functions=[f]).call_fresh("run", "x")


def test_many_concurrent_calls_overlap():
    counter = Counter()
    f = waiting(counter, delay=0.05)
    compiled = plinth.CompiledPlugin(host_wat(name="wait"), functions=[f])
    n = 50

    async def main():
        # One instance per call: fresh ones, and instances made up front.
        started = time.monotonic()
        fresh = await asyncio.gather(*(compiled.call_fresh_async("run", f"call {i}") for i in range(n)))
        elapsed = time.monotonic() - started
        plugins = [compiled.instance() for _ in range(n)]
        own = await asyncio.gather(*(p.call_async("run", f"own {i}") for i, p in enumerate(plugins)))
        for p in plugins:
            p.close()
        return fresh, own, elapsed

    fresh, own, elapsed = run(main())
    assert fresh == [f"waited: call {i}".encode() for i in range(n)]
    assert own == [f"waited: own {i}".encode() for i in range(n)]
    # Many calls were inside the host function at once; one after another would take 2.5 s.
    assert counter.most > n // 2, counter.most
    assert elapsed < n * 0.05 * 0.8, elapsed


def test_calls_on_one_plugin_take_turns_in_order():
    counter = Counter()
    order = []

    async def wait(current, handle):
        with counter:
            order.append(current.read_string(handle))
            await asyncio.sleep(0.005)
        return handle

    f = plinth.HostFunction("wait", [plinth.PTR], [plinth.PTR], wait)

    async def main():
        with plinth.Plugin(host_wat(name="wait"), functions=[f]) as p:
            return await asyncio.gather(*(p.call_async("run", str(i)) for i in range(8)))

    assert run(main()) == [str(i).encode() for i in range(8)]
    assert counter.most == 1
    assert order == [str(i) for i in range(8)]


def test_cancelling_the_task_stops_the_call_and_the_host_coroutine():
    gate = {"hold": True}

    async def main():
        started, ended = asyncio.Event(), asyncio.Event()

        async def wait(current, handle):
            if not gate["hold"]:
                return handle
            started.set()
            try:
                await asyncio.sleep(3600)
            finally:
                ended.set()

        f = plinth.HostFunction("wait", [plinth.PTR], [plinth.PTR], wait)
        with plinth.Plugin(host_wat(name="wait"), functions=[f]) as p:
            p.var_set("kept", b"1")
            task = asyncio.create_task(p.call_async("run", "x"))
            await started.wait()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            # The host coroutine was cancelled too (its finally ran).
            await asyncio.wait_for(ended.wait(), 10)
            # The plug-in works after it (a new instance), its vars kept.
            gate["hold"] = False
            assert await p.call_async("run", "again") == b"again"
            assert p.var_get("kept") == b"1"

    run(main())


def test_a_cancelled_call_leaves_the_plugin_usable():
    gate = {"hold": True}

    async def wait(current, handle):
        if gate["hold"]:
            await asyncio.sleep(3600)
        return handle

    f = plinth.HostFunction("wait", [plinth.PTR], [plinth.PTR], wait)

    async def main():
        with plinth.Plugin(host_wat(name="wait"), functions=[f]) as p:
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(p.call_async("run", "x"), 0.2)
            gate["hold"] = False
            assert await p.call_async("run", "after") == b"after"

    run(main())


def test_timeout_fires_while_a_host_function_awaits():
    async def main():
        ended = asyncio.Event()
        late_use = []

        async def wait(current, handle):
            try:
                await asyncio.Event().wait()  # never set: a coroutine that never finishes
            finally:
                # The call is over: its CurrentPlugin fails at once instead of waiting.
                try:
                    late_use.append(current.read_bytes(handle))
                except plinth.PlinthError as e:
                    late_use.append(str(e))
                ended.set()

        f = plinth.HostFunction("wait", [plinth.PTR], [plinth.PTR], wait)
        manifest = {"wasm": [{"data": host_wat(name="wait")}], "timeout_ms": 100}
        with plinth.Plugin(manifest, functions=[f]) as p:
            started = time.monotonic()
            with pytest.raises(plinth.PluginTimeoutError) as e:
                await p.call_async("run", "x")
            assert time.monotonic() - started < 30
            assert e.value.kind == "timeout"
            # The coroutine was cancelled at the deadline.
            await asyncio.wait_for(ended.wait(), 10)
            assert len(late_use) == 1 and "no longer valid" in late_use[0], late_use

    run(main())


def test_a_guest_that_spins_times_out_without_blocking_the_loop():
    async def main():
        ticks = 0

        async def ticker():
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.005)

        t = asyncio.create_task(ticker())
        with plinth.Plugin({"wasm": [{"data": HOSTILE_WAT}], "timeout_ms": 300}) as p:
            with pytest.raises(plinth.PluginTimeoutError):
                await p.call_async("spin")
            assert await p.call_async("ok") == b""
        t.cancel()
        return ticks

    # The loop ran other tasks while the plug-in computed.
    assert run(main()) > 5


def test_cancel_handle_stops_a_call_while_a_host_function_awaits():
    async def main():
        started = asyncio.Event()
        f = waiting(delay=3600, started=started)
        with plinth.Plugin(host_wat(name="wait"), functions=[f]) as p:
            task = asyncio.create_task(p.call_async("run", "x"))
            await started.wait()
            p.cancel_handle().cancel()
            with pytest.raises(plinth.CancelledError) as e:
                await task
            assert e.value.kind == "cancelled"

    run(main())


def test_errors_in_async_host_functions_reach_the_caller():
    async def bad(current, handle):
        await asyncio.sleep(0)
        raise ValueError("bad name " + current.read_string(handle))

    async def wrong_shape(current, handle):
        return 1, 2

    async def main():
        f = plinth.HostFunction("wait", [plinth.PTR], [plinth.PTR], bad)
        with plinth.Plugin(host_wat(name="wait"), functions=[f]) as p:
            with pytest.raises(plinth.HostFunctionError, match="ValueError: bad name Ada") as e:
                await p.call_async("run", "Ada")
            assert isinstance(e.value.__cause__, ValueError)
            assert e.value.kind == "host_function" and e.value.code == -1
        f = plinth.HostFunction("wait", [plinth.PTR], [plinth.PTR], wrong_shape)
        with plinth.Plugin(host_wat(name="wait"), functions=[f]) as p:
            with pytest.raises(plinth.HostFunctionError, match="2 value"):
                await p.call_async("run", "x")
        # A sync host function's exception too, in an async call.
        g = plinth.HostFunction("greet", [plinth.PTR], [plinth.PTR], lambda c, h: 1 / 0)
        with plinth.Plugin(host_wat(), functions=[g]) as p:
            with pytest.raises(plinth.HostFunctionError, match="ZeroDivisionError") as e:
                await p.call_async("run", "x")
            assert isinstance(e.value.__cause__, ZeroDivisionError)

    run(main())


def test_a_host_function_calling_back_into_its_plugin_is_refused():
    holder = {}

    async def wait(current, handle):
        await holder["plugin"].call_async("run", "again")
        return handle

    f = plinth.HostFunction("wait", [plinth.PTR], [plinth.PTR], wait)

    async def main():
        with plinth.Plugin(host_wat(name="wait"), functions=[f]) as p:
            holder["plugin"] = p
            with pytest.raises(plinth.HostFunctionError) as e:
                await p.call_async("run", "x")
            assert isinstance(e.value.__cause__, plinth.ReentrantCallError)

    run(main())


def test_sync_host_functions_in_async_calls_see_their_own_call():
    holder, seen = {}, []

    def inner(current, handle):
        seen.append(current.host_context)
        raise KeyError("inner")

    def outer(current, handle):
        seen.append(current.host_context)
        # A sync call of another plug-in, from a host function of an async call.
        with pytest.raises(plinth.HostFunctionError) as e:
            holder["b"].call("run", "x", host_context="b")
        assert isinstance(e.value.__cause__, KeyError)
        # A call back into the plug-in that is calling: refused, not a deadlock.
        holder["a"].call("run", "again")
        return handle

    a = plinth.Plugin(host_wat(), functions=[plinth.HostFunction("greet", [plinth.PTR], [plinth.PTR], outer)])
    b = plinth.Plugin(host_wat(), functions=[plinth.HostFunction("greet", [plinth.PTR], [plinth.PTR], inner)])
    holder.update(a=a, b=b)

    async def main():
        with pytest.raises(plinth.HostFunctionError) as e:
            await a.call_async("run", "x", host_context="a")
        assert isinstance(e.value.__cause__, plinth.ReentrantCallError)

    run(main())
    assert seen == ["a", "b"]
    a.close()
    b.close()


def test_sync_methods_do_not_block_the_loop_during_an_async_call():
    async def main():
        started, release = asyncio.Event(), asyncio.Event()

        async def wait(current, handle):
            started.set()
            await release.wait()
            return handle

        f = plinth.HostFunction("wait", [plinth.PTR], [plinth.PTR], wait)
        with plinth.Plugin(host_wat(name="wait"), functions=[f]) as p:
            task = asyncio.create_task(p.call_async("run", "x"))
            await started.wait()
            with pytest.raises(plinth.PlinthError, match="busy") as e:
                p.var_get("k")
            assert e.value.kind == "busy"
            assert p.function_exists("run")
            release.set()
            assert await task == b"x"
            p.var_set("k", b"v")
            assert p.var_get("k") == b"v"

    run(main())


def test_current_plugin_of_an_async_host_function_expires():
    kept = []

    async def wait(current, handle):
        kept.append(current)
        return handle

    f = plinth.HostFunction("wait", [plinth.PTR], [plinth.PTR], wait)

    async def main():
        with plinth.Plugin(host_wat(name="wait"), functions=[f]) as p:
            assert await p.call_async("run", "x") == b"x"

    run(main())
    with pytest.raises(plinth.PlinthError, match="no longer valid"):
        kept[0].read_bytes(0)


def test_closed_plugin_refuses_async_calls():
    async def main():
        p = plinth.Plugin(host_wat(name="wait"), functions=[waiting()])
        p.close()
        with pytest.raises(plinth.ClosedError):
            await p.call_async("run", "x")

    run(main())


def test_close_during_an_async_call_lets_it_finish_and_refuses_the_queued_ones():
    async def main():
        started, release = asyncio.Event(), asyncio.Event()

        async def wait(current, handle):
            started.set()
            await release.wait()
            return handle

        f = plinth.HostFunction("wait", [plinth.PTR], [plinth.PTR], wait)
        p = plinth.Plugin(host_wat(name="wait"), functions=[f])
        running = asyncio.create_task(p.call_async("run", "first"))
        await started.wait()
        queued = asyncio.create_task(p.call_async("run", "second"))
        await asyncio.sleep(0.01)
        p.close()
        release.set()
        assert await running == b"first"
        with pytest.raises(plinth.ClosedError):
            await queued
        with pytest.raises(plinth.ClosedError):
            await p.call_async("run", "third")

    run(main())


EXIT_SCRIPT = """
import asyncio, sys
sys.path.insert(0, sys.argv[1])
import plinth
from conftest import host_wat

async def wait(current, handle):
    await asyncio.sleep(0.01)
    return handle

f = plinth.HostFunction("wait", [plinth.PTR], [plinth.PTR], wait)
compiled = plinth.CompiledPlugin(host_wat(name="wait"), functions=[f])

async def main():
    outs = await asyncio.gather(*(compiled.call_fresh_async("run", str(i)) for i in range(50)))
    assert outs == [str(i).encode() for i in range(50)]

asyncio.run(main())
"""


def test_the_interpreter_exits_cleanly_right_after_async_calls():
    # A runtime thread still leaving Python when the interpreter finalizes aborted the
    # process; `plinth` waits for them at exit.
    here = str(pathlib.Path(__file__).resolve().parent)
    for _ in range(8):
        done = subprocess.run([sys.executable, "-c", EXIT_SCRIPT, here], capture_output=True, timeout=GUARD)
        assert done.returncode == 0, done.stderr.decode()
