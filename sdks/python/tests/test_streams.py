"""Streaming calls (issue 19): Plugin.call_stream over file-like objects and chunk iterables,
call_stream_async and Plugin.stream on asyncio, errors of readers and writers, the output
limit, and plug-ins that do not stream."""

import asyncio
import io
import os
import random
import threading

import pytest

import plinth
from conftest import host_wat, plugin_path

# Every async test runs under this bound, so that a hang fails instead of stalling.
GUARD = 60
CHUNK = 64 * 1024


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, GUARD))


def log_lines(n, seed=19):
    """A log of `n` lines, some with ERROR, some with multi-byte characters."""
    rng = random.Random(seed)
    lines = []
    for i in range(n):
        level = rng.choice(["INFO", "WARN", "ERROR", "DEBUG"])
        lines.append(f"{i} {level} héllo wörld ✓ {'x' * rng.randrange(0, 80)}\n")
    return "".join(lines).encode()


def grep_lines(data, pattern=b"ERROR"):
    return b"".join(line for line in data.splitlines(keepends=True) if pattern in line)


@pytest.fixture
def echo():
    with plinth.Plugin(plugin_path("stream_echo")) as p:
        yield p


def test_bytesio_in_and_out(echo):
    data = os.urandom(3 * CHUNK + 17)
    out = io.BytesIO()
    stats = echo.call_stream("echo", io.BytesIO(data), out)
    assert out.getvalue() == data
    assert stats == plinth.StreamStats(input_bytes=len(data), output_bytes=len(data))
    assert (stats.input_bytes, stats.output_bytes) == (len(data), len(data))


def test_empty_and_whole_bytes_input(echo):
    out = io.BytesIO()
    assert echo.call_stream("echo", io.BytesIO(), out) == (0, 0)
    assert out.getvalue() == b""
    chunks = []
    echo.call_stream("echo", "héllo", chunks.append)
    assert b"".join(chunks) == "héllo".encode()


def test_real_files_through_a_line_filter(tmp_path):
    data = log_lines(60_000)
    assert len(data) > 3 * 1024 * 1024
    src = tmp_path / "in.log"
    dst = tmp_path / "out.log"
    src.write_bytes(data)
    with plinth.Plugin(plugin_path("stream_filter")) as grep:
        with open(src, "rb") as fin, open(dst, "wb") as fout:
            stats = grep.call_stream("grep", fin, fout)
    expected = grep_lines(data)
    assert dst.read_bytes() == expected
    assert stats.input_bytes == len(data)
    assert stats.output_bytes == len(expected)


def test_chunk_iterables_as_input(echo):
    # Chunk boundaries fall inside multi-byte characters; empty chunks are not the end.
    text = "ünïcödé ✓ " * 5000
    raw = text.encode()
    pieces = [raw[i : i + 7] for i in range(0, len(raw), 7)]
    source = (bytearray(p) if i % 3 == 0 else memoryview(p) if i % 3 == 1 else p for i, p in enumerate(pieces))

    def with_empties():
        for piece in source:
            yield b""
            yield piece

    chunks = []
    stats = echo.call_stream("echo", with_empties(), chunks.append)
    assert b"".join(chunks).decode() == text
    assert stats.input_bytes == len(raw)
    # A list works too.
    out = io.BytesIO()
    echo.call_stream("echo", [b"a", b"bc", b"", b"d"], out)
    assert out.getvalue() == b"abcd"


def test_chunks_larger_than_the_plugins_buffer(echo):
    big = os.urandom(5 * CHUNK + 3)
    out = io.BytesIO()
    assert echo.call_stream("echo", [big, b"tail"], out).output_bytes == len(big) + 4
    assert out.getvalue() == big + b"tail"


def test_output_arrives_before_the_input_ends(echo):
    r, w = os.pipe()
    first_output = threading.Event()
    feeder_saw_output = []

    def feed():
        with os.fdopen(w, "wb", buffering=0) as pipe:
            pipe.write(b"first chunk\n")
            # The input stays open until the plug-in's first output came out.
            feeder_saw_output.append(first_output.wait(30))
            pipe.write(b"second chunk\n")

    class Sink:
        def __init__(self):
            self.chunks = []

        def write(self, b):
            self.chunks.append(bytes(b))
            first_output.set()

    feeder = threading.Thread(target=feed)
    feeder.start()
    sink = Sink()
    with os.fdopen(r, "rb") as pipe:
        echo.call_stream("echo", pipe, sink)
    feeder.join()
    assert feeder_saw_output == [True]
    assert sink.chunks[0] == b"first chunk\n"
    assert b"".join(sink.chunks) == b"first chunk\nsecond chunk\n"


def test_a_slow_writer_holds_the_plugin_back(echo):
    # Backpressure: the plug-in writes each chunk before it reads the next, so the input it
    # has pulled never runs far ahead of the output delivered.
    pulled = [0]
    lag = []

    def source():
        for _ in range(64):
            pulled[0] += CHUNK
            yield bytes(CHUNK)

    written = [0]

    def slow_write(b):
        written[0] += len(b)
        lag.append(pulled[0] - written[0])

    stats = echo.call_stream("echo", source(), slow_write)
    assert stats.output_bytes == 64 * CHUNK
    assert max(lag) <= 2 * CHUNK, max(lag)


class Boom(Exception):
    pass


def test_a_reader_that_raises_fails_the_call_with_its_exception_as_cause(echo):
    class Reader:
        def __init__(self):
            self.calls = 0

        def read(self, n):
            self.calls += 1
            if self.calls == 3:
                raise Boom("disk on fire")
            return b"x" * 100

    out = io.BytesIO()
    with pytest.raises(plinth.StreamError) as info:
        echo.call_stream("echo", Reader(), out)
    err = info.value
    assert err.kind == "stream"
    assert err.kind_code == 26
    assert isinstance(err.__cause__, Boom)
    assert "disk on fire" in str(err)
    # What came before the failure went through, and the plug-in keeps serving.
    assert out.getvalue() == b"x" * 200
    assert echo.call("echo", b"again") == b"again"


def test_an_iterator_that_raises(echo):
    def chunks():
        yield b"one"
        raise Boom("iterator broke")

    with pytest.raises(plinth.StreamError) as info:
        echo.call_stream("echo", chunks(), io.BytesIO())
    assert isinstance(info.value.__cause__, Boom)


def test_a_writer_that_raises_fails_the_call(echo):
    class Writer:
        def __init__(self):
            self.got = 0

        def write(self, b):
            if self.got:
                raise BrokenPipeError("reader went away")
            self.got += len(b)
            return len(b)

    writer = Writer()
    with pytest.raises(plinth.StreamError) as info:
        echo.call_stream("echo", [b"a" * CHUNK] * 5, writer)
    assert isinstance(info.value.__cause__, BrokenPipeError)
    assert "reader went away" in str(info.value)
    assert writer.got == CHUNK


def test_short_writes_are_completed(echo):
    class Raw:
        """Takes at most 1000 bytes per write, as a raw file or socket may."""

        def __init__(self):
            self.data = bytearray()

        def write(self, b):
            self.data += b[:1000]
            return min(len(b), 1000)

    raw = Raw()
    data = os.urandom(CHUNK + 10)
    echo.call_stream("echo", data, raw)
    assert bytes(raw.data) == data

    class Liar:
        def write(self, b):
            return len(b) + 1

    with pytest.raises(plinth.StreamError) as info:
        echo.call_stream("echo", b"abc", Liar())
    assert isinstance(info.value.__cause__, TypeError)
    assert "returned 4 for a chunk of 3 bytes" in str(info.value)


def test_a_failing_flush_fails_the_call(echo):
    class Writer:
        def write(self, b):
            return None

        def flush(self):
            raise Boom("flush failed")

    with pytest.raises(plinth.StreamError) as info:
        echo.call_stream("echo", [b"abc"], Writer())
    assert isinstance(info.value.__cause__, Boom)


def test_keyboard_interrupt_in_a_reader_is_raised_as_it_is(echo):
    def chunks():
        yield b"one"
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        echo.call_stream("echo", chunks(), io.BytesIO())
    assert echo.call("echo", b"ok") == b"ok"


def test_wrong_types_are_refused_with_a_clear_message(echo, tmp_path):
    with pytest.raises(TypeError, match="file-like object .* or an iterable"):
        echo.call_stream("echo", 42, io.BytesIO())
    with pytest.raises(TypeError, match="or a callable"):
        echo.call_stream("echo", b"x", 42)
    text = tmp_path / "t.txt"
    text.write_text("hello")
    with open(text) as f, pytest.raises(plinth.StreamError) as info:
        echo.call_stream("echo", f, io.BytesIO())
    assert isinstance(info.value.__cause__, TypeError)
    assert "binary mode" in str(info.value.__cause__)


def test_output_limit():
    limit = 300_000
    with plinth.Plugin(plugin_path("stream_echo"), output_limit=limit) as p:
        out = io.BytesIO()
        with pytest.raises(plinth.StreamError) as info:
            p.call_stream("flood", b"", out)
        assert f"output limit of {limit} bytes" in str(info.value)
        assert 0 < len(out.getvalue()) <= limit
        # Under the limit, a call goes through.
        assert p.call_stream("echo", b"x" * 1000, io.BytesIO()).output_bytes == 1000
    compiled = plinth.CompiledPlugin(plugin_path("stream_echo"), output_limit=limit)
    with compiled.instance() as p, pytest.raises(plinth.StreamError):
        p.call_stream("flood", b"", io.BytesIO())


def test_a_plugin_that_does_not_stream(tmp_path):
    data = log_lines(5000)
    src = tmp_path / "in.log"
    src.write_bytes(data)
    out = io.BytesIO()
    with plinth.Plugin(plugin_path("extism_line_filter")) as p:
        with open(src, "rb") as f:
            stats = p.call_stream("grep", f, out)
    assert out.getvalue() == grep_lines(data)
    assert stats == (len(data), len(out.getvalue()))


def test_a_plugin_that_never_reads(echo):
    out = io.BytesIO()
    echo.call_stream("never_reads", io.BytesIO(b"ignored"), out)
    assert out.getvalue() == b"done"


def test_a_streaming_plugin_called_the_classic_way(echo):
    assert echo.call("read_all_then_write", b"x" * 12345) == b"12345"


def test_gzip_round_trip_through_streams(tmp_path):
    import gzip

    data = log_lines(20_000)
    with plinth.Plugin(plugin_path("stream_gzip")) as p:
        packed = io.BytesIO()
        p.call_stream("gzip", io.BytesIO(data), packed)
        assert gzip.decompress(packed.getvalue()) == data
        unpacked = io.BytesIO()
        p.call_stream("gunzip", io.BytesIO(gzip.compress(data)), unpacked)
        assert unpacked.getvalue() == data


def test_host_functions_run_during_a_streaming_call():
    @plinth.host_fn()
    def greet(plugin, handle):
        return plugin.write_string(f"{plugin.host_context or 'Hello'}, {plugin.read_string(handle)}")

    with plinth.Plugin(host_wat(), functions=[greet]) as p:
        out = io.BytesIO()
        p.call_stream("run", [b"A", b"da"], out)
        assert out.getvalue() == b"Hello, Ada"
        out = io.BytesIO()
        p.call_stream("run", b"Ada", out, host_context="Hi")
        assert out.getvalue() == b"Hi, Ada"


# -- asyncio --------------------------------------------------------------------------------


async def agen(chunks, pause=0):
    for chunk in chunks:
        if pause:
            await asyncio.sleep(pause)
        yield chunk


def test_call_stream_async_with_async_source_and_sink(echo):
    class AsyncSink:
        def __init__(self):
            self.chunks = []
            self.on_loop = []

        async def write(self, b):
            self.on_loop.append(asyncio.get_running_loop() is loop)
            await asyncio.sleep(0)
            self.chunks.append(b)

    loop = None

    async def main():
        nonlocal loop
        loop = asyncio.get_running_loop()
        sink = AsyncSink()
        stats = await echo.call_stream_async("echo", agen([b"ab", b"", b"cd" * CHUNK], 0.001), sink)
        return sink, stats

    sink, stats = run(main())
    assert b"".join(sink.chunks) == b"ab" + b"cd" * CHUNK
    assert stats == (2 + 2 * CHUNK, 2 + 2 * CHUNK)
    assert all(sink.on_loop)


def test_call_stream_async_with_an_asyncio_stream_reader_and_a_callable(echo):
    async def main():
        reader = asyncio.StreamReader()
        data = os.urandom(200_000)

        async def feed():
            for i in range(0, len(data), 30_000):
                reader.feed_data(data[i : i + 30_000])
                await asyncio.sleep(0.001)
            reader.feed_eof()

        chunks = []
        feeder = asyncio.ensure_future(feed())
        stats = await echo.call_stream_async("echo", reader, chunks.append)
        await feeder
        return data, b"".join(chunks), stats

    data, out, stats = run(main())
    assert out == data
    assert stats.input_bytes == len(data)


def test_stream_yields_output_as_it_comes(echo):
    async def main():
        gate = asyncio.Event()
        got = []

        async def source():
            yield b"first"
            # The second chunk waits until the first output came out of the iterator.
            await asyncio.wait_for(gate.wait(), 30)
            yield b"second"

        async for chunk in echo.stream("echo", source()):
            got.append(chunk)
            gate.set()
        return got

    assert run(main()) == [b"first", b"second"]


def test_stream_errors_after_the_chunks_it_delivered(echo):
    async def main():
        async def source():
            yield b"ok"
            raise Boom("source broke")

        got = []
        with pytest.raises(plinth.StreamError) as info:
            async for chunk in echo.stream("echo", source()):
                got.append(chunk)
        return got, info.value

    got, err = run(main())
    assert got == [b"ok"]
    assert isinstance(err.__cause__, Boom)


def test_leaving_a_stream_early_stops_the_call(echo):
    async def main():
        seen = 0
        async for chunk in echo.stream("flood", b""):
            seen += len(chunk)
            if seen >= 3 * CHUNK:
                break
        # flood would never end by itself: the plug-in is free again only if it stopped.
        return seen, await echo.call_stream_async("echo", agen([b"after"]), io.BytesIO())

    seen, stats = run(main())
    assert seen >= 3 * CHUNK
    assert stats.output_bytes == 5


def test_cancelling_call_stream_async_stops_a_call_blocked_on_its_source(echo):
    async def main():
        async def stalled():
            yield b"x"
            await asyncio.Event().wait()  # never set
            yield b"never"

        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(echo.call_stream_async("echo", stalled(), io.BytesIO()), 0.5)
        out = io.BytesIO()
        await echo.call_stream_async("echo", agen([b"next"]), out)
        return out.getvalue()

    assert run(main()) == b"next"
