import ctypes
import gc
import os

import plinth
from conftest import plugin_path, rss_kib


def settled_rss_kib():
    # glibc keeps freed memory in its per-thread arenas (compilation runs on several threads);
    # hand it back so that RSS shows what is still in use.
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    return rss_kib()


def test_create_call_close_loop_does_not_grow_rss():
    n = int(os.environ.get("PLINTH_CHURN", "1000"))
    wasm = plugin_path("count_vowels").read_bytes()
    compiled = plinth.CompiledPlugin(wasm)

    def round_trip(i):
        # Half loaded from bytes (the runtime reuses the module it compiled), half instances of
        # a compiled plug-in; a third left to the garbage collector instead of close().
        p = plinth.Plugin(wasm) if i % 2 else compiled.instance()
        p.call("count_vowels", "hello")
        if i % 3:
            p.close()

    for i in range(100):  # warm-up
        round_trip(i)
    before = settled_rss_kib()
    for i in range(n):
        round_trip(i)
    grown = settled_rss_kib() - before
    assert grown < 32 * 1024, f"RSS grew by {grown} KiB over {n} plug-ins"
