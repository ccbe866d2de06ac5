"""Plug-ins built in this repository, run on the real Extism runtime (Python SDK over
libextism from extism_sys). They must give the outputs they give on Plinth
(tests/plugins/tests/*.rs check the same things there).

- C PDK plug-ins (plugins/c): required.
- Rust PDK plug-ins (plugins/rust): skipped, with the reason shown, only while their .wasm is
  not built; when present they must pass.
- extism-pdk fixtures (plugins/extism-pdk): run here too, so that what the Plinth tests expect
  of them is what Extism itself does.
"""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import extism
import pytest
from extism_sys import ffi, lib

ROOT = Path(__file__).resolve().parents[2]
PLUGINS = ROOT / "target" / "wasm-plugins"
BUILD = "bash scripts/build-plugins.sh"


def required(name):
    path = PLUGINS / f"{name}.wasm"
    assert path.exists(), f"{path} is missing: run `{BUILD}` first"
    return str(path)


def optional(name):
    """A Rust PDK example: skip (visibly) while it is not built."""
    path = PLUGINS / f"{name}.wasm"
    if not path.exists():
        pytest.skip(f"{path.name} not built (Rust PDK example missing)")
    return str(path)


def load(path, functions=(), wasi=False, **manifest):
    return extism.Plugin(
        {"wasm": [{"path": path}], **manifest}, wasi=wasi, functions=list(functions)
    )


def raw_call(plugin, function, data=b""):
    """(return code, error message or None, output) straight from libextism: the SDK's
    Plugin.call hides the return code whenever an error message is set."""
    if isinstance(data, str):
        data = data.encode()
    rc = lib.extism_plugin_call(plugin.plugin, function.encode(), data, len(data))
    err = lib.extism_plugin_error(plugin.plugin)
    message = ffi.string(err).decode() if err != ffi.NULL else None
    n = lib.extism_plugin_output_length(plugin.plugin)
    out = bytes(ffi.buffer(lib.extism_plugin_output_data(plugin.plugin), n)) if n else b""
    return rc, message, out


def call_str(plugin, function, data=b""):
    return plugin.call(function, data, parse=lambda b: bytes(b).decode())


def call_json(plugin, function, data=b""):
    return plugin.call(function, data, parse=lambda b: json.loads(bytes(b)))


# ---- host function -----------------------------------------------------------------------

GREETED = []


@extism.host_fn(name="greet")
def greet(name: str) -> str:
    GREETED.append(name)
    return f"Hello, {name}!"


# ---- loopback HTTP server (same routes as tests/plugins/tests/loopback) -------------------


class _Handler(BaseHTTPRequestHandler):
    def _reply(self, status, text):
        body = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _any(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n).decode(errors="replace")
        if self.command == "GET" and self.path == "/hello":
            return self._reply(200, "hello from loopback")
        if self.command == "GET" and self.path == "/missing":
            return self._reply(404, "not here")
        if self.command == "GET" and self.path == "/feed/acme":
            return self._reply(200, '{"type":"order.paid","id":"o-17"}\nnot json\n{"note":"x"}\n')
        x = self.headers.get("X-Plinth") or ""
        self._reply(200, f"{self.command} x-plinth={x} body={body}")

    do_GET = do_POST = _any

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


# ---- count_vowels: C, Rust PDK and extism-pdk builds share one contract -------------------

COUNT_VOWELS = {
    "count_vowels_c": required,
    "count_vowels": optional,
    "extism_count_vowels": required,
}


@pytest.mark.parametrize("name", COUNT_VOWELS)
def test_count_vowels_hello_world(name):
    p = load(COUNT_VOWELS[name](name))
    assert call_json(p, "count_vowels", "Hello, World!") == {
        "count": 3,
        "total": 3,
        "vowels": "aeiouAEIOU",
    }


@pytest.mark.parametrize("name", COUNT_VOWELS)
def test_count_vowels_total_accumulates(name):
    p = load(COUNT_VOWELS[name](name))
    totals = [call_json(p, "count_vowels", "Hello, World!")["total"] for _ in range(3)]
    assert totals == [3, 6, 9]


@pytest.mark.parametrize("name", COUNT_VOWELS)
def test_count_vowels_config(name):
    p = load(COUNT_VOWELS[name](name), config={"vowels": "o"})
    assert call_json(p, "count_vowels", "Hello, World!") == {
        "count": 2,
        "total": 2,
        "vowels": "o",
    }


@pytest.mark.parametrize("name", COUNT_VOWELS)
def test_count_vowels_unicode_and_escapes(name):
    p = load(COUNT_VOWELS[name](name), config={"vowels": 'éö"'})
    assert call_json(p, "count_vowels", 'Héllö "wörld"') == {
        "count": 5,
        "total": 5,
        "vowels": 'éö"',
    }


# ---- host functions -----------------------------------------------------------------------

HOST_GREET = {"host_greet_c": required, "host_greet": optional, "extism_host_fn": required}


@pytest.mark.parametrize("name", HOST_GREET)
def test_host_greet_round_trip(name):
    p = load(HOST_GREET[name](name), functions=[greet])
    GREETED.clear()
    assert call_str(p, "call_greet", "Ada") == "Hello, Ada!"
    long = "x" * 1000
    assert call_str(p, "call_greet", long) == f"Hello, {long}!"
    assert GREETED == ["Ada", long]


@pytest.mark.parametrize("name", HOST_GREET)
def test_host_greet_without_the_function_fails_to_load(name):
    path = HOST_GREET[name](name)
    with pytest.raises(extism.Error, match="greet"):
        load(path)


def test_host_greet_c_with_greet_written_in_wasm():
    # The module named extism:host/user supplies the import, as on Plinth.
    manifest = {
        "wasm": [
            {"path": required("host_greet_c"), "name": "main"},
            {"path": required("greeter_c"), "name": "extism:host/user"},
        ]
    }
    p = extism.Plugin(manifest, functions=[])
    assert call_str(p, "call_greet", "World") == "Hello, World!"


# ---- checkout (the Rust PDK quick start) --------------------------------------------------


@pytest.mark.parametrize(
    "cart, discount",
    [
        ({"cart_total": 12000, "is_new_customer": True, "provided_email": False}, 20.0),
        ({"cart_total": 12000, "is_new_customer": False, "provided_email": True}, 0.0),
        ({"cart_total": 9999, "is_new_customer": True, "provided_email": True}, 0.0),
    ],
)
def test_checkout_discount(cart, discount):
    p = load(optional("checkout"))
    out = call_json(p, "before_checkout_finalize", json.dumps(cart))
    assert out == {"discount_percent": discount}


# ---- errors and return codes --------------------------------------------------------------


def test_rust_pdk_fail_with_code():
    p = load(optional("fail_with_code"))
    assert raw_call(p, "fail_with_code") == (42, "custom failure", b"")
    with pytest.raises(extism.Error, match="custom failure"):
        p.call("fail_with_code", b"")


def test_c_errors_and_codes():
    p = load(required("pdk_checks_c"))
    assert raw_call(p, "fail", "x") == (1, "failed on purpose: x", b"")
    assert raw_call(p, "fail_with_code") == (7, "failed with code 7", b"")
    # An error set with return code 0 still fails the call. Extism reports code 0 with the
    # message; Plinth reports -1 (see tests/compat/README.md).
    assert raw_call(p, "error_only") == (0, "error set, code 0", b"")
    with pytest.raises(extism.Error, match="error set, code 0"):
        p.call("error_only", b"")
    # A clean failure keeps the instance usable.
    assert call_str(p, "get_config", "k") == "missing"


def test_extism_pdk_errors():
    p = load(required("extism_errors"))
    assert raw_call(p, "fail", "x") == (-1, "failed on purpose: x", b"")
    assert raw_call(p, "fail_with_code", "x") == (7, "failed with code 7: x", b"")
    assert call_str(p, "succeed", "y") == "ok: y"


# ---- config and vars ----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["pdk_checks_c", "extism_config"])
def test_config(name):
    p = load(required(name), config={"greeting": "hi there"})
    assert call_str(p, "get_config", "greeting") == "hi there"
    assert call_str(p, "get_config", "nope") == "missing"


def test_config_empty_value_reads_as_missing():
    p = load(required("extism_config"), config={"empty": ""})
    assert call_str(p, "get_config", "empty") == "missing"


@pytest.mark.parametrize("name", ["pdk_checks_c", "extism_vars"])
def test_vars_counter(name):
    p = load(required(name))
    assert [call_str(p, "increment") for _ in range(3)] == ["1", "2", "3"]
    p.call("reset", b"")
    assert call_str(p, "increment") == "1"


# ---- HTTP ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["pdk_checks_c", "extism_http"])
def test_http_get_and_status(name, server):
    p = load(required(name), allowed_hosts=["127.0.0.1"])
    assert call_str(p, "http_get", f"{server}/hello") == "hello from loopback"
    assert call_str(p, "http_status", f"{server}/missing") == "404"
    assert call_str(p, "http_get", f"{server}/missing") == "not here"


def test_c_http_post_with_header_and_body(server):
    p = load(required("pdk_checks_c"), allowed_hosts=["127.0.0.1"])
    out = call_str(p, "http_post", f"{server}/echo")
    assert out == 'POST x-plinth=c "pdk" body=payload from C'


@pytest.mark.parametrize("name", ["pdk_checks_c", "extism_http"])
def test_http_denied_host(name, server):
    p = load(required(name), allowed_hosts=["example.com"])
    with pytest.raises(extism.Error):
        p.call("http_get", f"{server}/hello")


def test_rust_pdk_http_fetch(server):
    p = load(optional("http_fetch"), allowed_hosts=["127.0.0.1"])
    assert call_str(p, "http_get", f"{server}/hello") == "hello from loopback"
    rc, message, _ = raw_call(p, "http_get", f"{server}/missing")
    assert rc == 404 and "404" in message


def test_streamed_http_falls_back_to_http_request_on_extism(server):
    """The PDKs' http_stream_* exports keep their own bodies on Extism: the whole request goes
    through http_request, and the answer is read from memory, with the same output."""
    relay = load(
        required("sse_relay"),
        allowed_hosts=["127.0.0.1"],
        config={"upstream": f"{server}/feed/acme"},
    )
    out = call_str(relay, "relay")
    assert out == (
        'id: 1\nevent: order.paid\ndata: {"id":"o-17","type":"order.paid"}\n\n'
        ": skipped a line of 8 bytes that is not JSON\n\n"
        'id: 2\nevent: message\ndata: {"note":"x"}\n\n'
        'event: end\ndata: {"events":2}\n\n'
    )
    fetch = load(
        required("stream_fetch_c"),
        allowed_hosts=["127.0.0.1"],
        config={"request": f'{{"url":"{server}/hello"}}'},
    )
    assert call_str(fetch, "fetch") == "200\nhello from loopback"
    upload = load(
        required("stream_fetch_c"),
        allowed_hosts=["127.0.0.1"],
        config={"request": f'{{"url":"{server}/echo","method":"POST"}}'},
    )
    assert call_str(upload, "upload", "streamed body") == "200\nPOST x-plinth= body=streamed body"


# ---- logging and WASI ---------------------------------------------------------------------


def test_c_logging_runs():
    p = load(required("pdk_checks_c"))
    level = int(call_str(p, "log_all", "hello"))
    assert 0 <= level <= 4 or level == 2**31 - 1


def test_rust_pdk_wasi_files(tmp_path):
    path = optional("wasi_files")
    (tmp_path / "in.txt").write_text("some data")
    p = load(path, wasi=True, allowed_paths={str(tmp_path): "/data"})
    assert call_str(p, "copy_file", "/data/in.txt") == "/data/in.txt.out"
    assert (tmp_path / "in.txt.out").read_text() == "some data"


# ---- streaming plug-ins (docs/streaming.md): on Extism, the PDKs' whole-buffer fallback ----
#
# Extism does not link plinth_stream_read/plinth_stream_write, so the modules' own bodies run:
# reads serve the classic input, writes collect into a buffer that becomes the output. The
# outputs must be what a Plinth host would have streamed.

STREAM_CHUNK = 64 * 1024  # what stream_filter's BufReader asks for per read


def _leb128(data, i):
    value = shift = 0
    while True:
        byte = data[i]
        i += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, i


def wasm_exports(path):
    """{export name: (params, results)} for the functions a module exports, types as
    wasm value-type bytes (0x7f is i32)."""
    data = Path(path).read_bytes()
    assert data[:4] == b"\0asm", f"{path} is not a wasm module"
    types, imported_funcs, funcs, exports = [], 0, [], {}
    i = 8
    while i < len(data):
        section = data[i]
        size, i = _leb128(data, i + 1)
        end, j = i + size, i
        if section == 1:  # types
            count, j = _leb128(data, j)
            for _ in range(count):
                assert data[j] == 0x60, "only function types are expected"
                n, j = _leb128(data, j + 1)
                params, j = tuple(data[j : j + n]), j + n
                n, j = _leb128(data, j)
                results, j = tuple(data[j : j + n]), j + n
                types.append((params, results))
        elif section == 2:  # imports: function imports come first in the index space
            count, j = _leb128(data, j)
            for _ in range(count):
                for _ in range(2):
                    n, j = _leb128(data, j)
                    j += n
                kind = data[j]
                j += 1
                if kind == 0:
                    _, j = _leb128(data, j)
                    imported_funcs += 1
                elif kind == 1:  # table: reftype, limits
                    flags, j = _leb128(data, j + 1)
                    _, j = _leb128(data, j)
                    if flags & 1:
                        _, j = _leb128(data, j)
                elif kind == 2:  # memory: limits
                    flags, j = _leb128(data, j)
                    _, j = _leb128(data, j)
                    if flags & 1:
                        _, j = _leb128(data, j)
                else:  # global: valtype, mutability
                    j += 2
        elif section == 3:  # functions
            count, j = _leb128(data, j)
            for _ in range(count):
                t, j = _leb128(data, j)
                funcs.append(t)
        elif section == 7:  # exports
            count, j = _leb128(data, j)
            for _ in range(count):
                n, j = _leb128(data, j)
                name, j = data[j : j + n].decode(), j + n
                kind = data[j]
                index, j = _leb128(data, j + 1)
                if kind == 0:
                    exports[name] = types[funcs[index - imported_funcs]]
        i = end
    return exports


def log_lines():
    """A few hundred lines of log, one of which has a UTF-8 character cut by the 64 KiB
    boundary of stream_filter's reads, in a line that matches."""
    words = ["ok", "ERROR", "warn", "Grüße", "日本語", "défaut"]
    lines = [
        f"{n:04} {words[n % len(words)]} {'x' * (150 + n % 97)} {words[(n * 7) % len(words)]}\n"
        for n in range(400)
    ]
    data = "".join(lines).encode()
    assert len(data) > STREAM_CHUNK
    # Rewrite the line around the boundary so that "é" (2 bytes) starts at 65535.
    start = data.rfind(b"\n", 0, STREAM_CHUNK - 1) + 1
    head = b"ERROR "
    pad = STREAM_CHUNK - 1 - start - len(head) - len(b"d")
    assert pad >= 0
    cut_line = head + b"-" * pad + "défaut at the boundary\n".encode()
    end = data.index(b"\n", STREAM_CHUNK + 32) + 1
    data = data[:start] + cut_line + data[end:]
    assert data[STREAM_CHUNK - 1 : STREAM_CHUNK + 1] == "é".encode()
    return data


def expected_grep(data, pattern):
    return b"".join(line for line in data.splitlines(keepends=True) if pattern in line)


STREAMING = ["stream_filter", "stream_echo", "stream_gzip", "stream_upper_c"]


@pytest.mark.parametrize("name", STREAMING)
def test_streaming_plugins_export_the_stream_functions(name):
    path = required(name) if name.endswith("_c") else optional(name)
    exports = wasm_exports(path)
    i32 = 0x7F
    for fn in ("plinth_stream_read", "plinth_stream_write"):
        assert exports.get(fn) == ((i32, i32), (i32,)), f"{name}: {fn} is {exports.get(fn)}"


def test_extism_pdk_plugins_do_not_export_stream_functions():
    assert "plinth_stream_read" not in wasm_exports(required("extism_line_filter"))


GREP = {"stream_filter": optional, "extism_line_filter": required}


@pytest.mark.parametrize("name", GREP)
def test_grep_default_pattern(name):
    data = log_lines()
    p = load(GREP[name](name))
    out = p.call("grep", data, parse=bytes)
    assert out == expected_grep(data, b"ERROR")
    assert out.count(b"\n") > 50  # the case is not vacuous
    assert "défaut at the boundary".encode() in out


@pytest.mark.parametrize("name", GREP)
def test_grep_multibyte_pattern_across_the_chunk_boundary(name):
    data = log_lines()
    p = load(GREP[name](name), config={"pattern": "défaut"})
    out = p.call("grep", data, parse=bytes)
    assert out == expected_grep(data, "défaut".encode())
    assert "défaut at the boundary".encode() in out


@pytest.mark.parametrize("name", GREP)
def test_grep_last_line_without_newline_and_repeated_calls(name):
    p = load(GREP[name](name), config={"pattern": "日本"})
    data = "a\n日本 one\nb\n最後の日本".encode()
    for _ in range(3):  # a call must not see what an earlier call read or wrote
        assert p.call("grep", data, parse=bytes) == "日本 one\n最後の日本".encode()
    assert p.call("grep", b"", parse=bytes) == b""


@pytest.mark.parametrize("name", GREP)
def test_grep_rejects_a_pattern_with_a_newline(name):
    p = load(GREP[name](name), config={"pattern": "a\nb"})
    with pytest.raises(extism.Error, match="newline"):
        p.call("grep", b"a\nb\n")


def test_stream_filter_count_lines():
    p = load(optional("stream_filter"))
    data = log_lines()
    assert call_str(p, "count_lines", data) == str(data.count(b"\n"))
    assert call_str(p, "count_lines", b"one\ntwo") == "2"
    assert call_str(p, "count_lines", b"") == "0"
    assert call_str(p, "count_lines", b"\n\n") == "2"


def test_stream_echo_200_kib_twice():
    p = load(optional("stream_echo"))
    data = bytes((i * 131 + i // 251) % 256 for i in range(200 * 1024))
    for _ in range(2):
        assert p.call("echo", data, parse=bytes) == data
    assert p.call("echo", b"", parse=bytes) == b""
    assert p.call("echo", b"x", parse=bytes) == b"x"


def test_stream_echo_never_reads_and_read_all_then_write():
    p = load(optional("stream_echo"))
    assert call_str(p, "never_reads", b"ignored input") == "done"
    assert call_str(p, "read_all_then_write", b"y" * 300_000) == "300000"
    assert call_str(p, "read_all_then_write", b"") == "0"


def test_stream_echo_whole_input_and_returned_output_follow_the_streamed_output():
    p = load(optional("stream_echo"))
    data = bytes(range(256)) * 400
    for _ in range(2):
        assert p.call("stream_then_return", data, parse=bytes) == b"streamed:" + data
    assert p.call("stream_then_return", b"", parse=bytes) == b"streamed:"


def test_stream_upper_c():
    p = load(required("stream_upper_c"))
    data = ("abc xyz Grüße 日本 " * 12000).encode()  # > 3 chunks of 64 KiB
    for _ in range(2):
        assert p.call("upper", data, parse=bytes) == data.upper()
        assert p.call("upper_whole", data, parse=bytes) == data.upper()
    assert p.call("upper", b"", parse=bytes) == b""
    assert p.call("upper_whole", b"", parse=bytes) == b""


def test_stream_gzip_round_trip_with_python_gzip():
    import gzip

    p = load(optional("stream_gzip"))
    data = log_lines() * 3
    packed = p.call("gzip", data, parse=bytes)
    assert gzip.decompress(packed) == data
    assert len(packed) < len(data) // 2
    assert p.call("gunzip", gzip.compress(data), parse=bytes) == data
    assert p.call("gunzip", packed, parse=bytes) == data


def test_stream_gzip_corrupt_input_is_a_clear_error():
    p = load(optional("stream_gzip"))
    with pytest.raises(extism.Error, match="not valid gzip"):
        p.call("gunzip", b"this is not gzip data at all")
    p2 = load(optional("stream_gzip"), config={"level": "11"})
    with pytest.raises(extism.Error, match="level"):
        p2.call("gzip", b"abc")
