"""The Extism Python SDK (``extism`` from PyPI, unmodified) used as its documentation shows,
on libplinth: plug-in calls, state (vars), config, host functions, errors, timeouts and
cancellation, logging, HTTP and WASI.

The usage follows the SDK's README and its guide (docs/source/usage.rst in extism/python-sdk):
``extism.Plugin(manifest, wasi=True, functions=[...])``, ``plugin.call(name, input, parse=...)``,
``@extism.host_fn`` with type annotations or an explicit signature, and user data.
"""

import hashlib
import http.server
import json
import pathlib
import pickle
import subprocess
import sys
import textwrap
import threading
import time
import typing
import uuid

import pytest

import extism
from conftest import COUNT_VOWELS_WAT, manifest, plugin_path

PARSE_JSON = lambda output: json.loads(bytes(output).decode("utf-8"))  # noqa: E731

# The three builds of count_vowels: Plinth's PDK, the real extism-pdk, and hand-written WAT
# (which Plinth compiles as it loads it).
COUNT_VOWELS = {
    "plinth-pdk": lambda **extra: manifest("count_vowels", **extra),
    "extism-pdk": lambda **extra: manifest("extism_count_vowels", **extra),
    "wat": lambda **extra: {"wasm": [{"path": str(COUNT_VOWELS_WAT)}], **extra},
}


@pytest.fixture(params=sorted(COUNT_VOWELS))
def count_vowels(request):
    return COUNT_VOWELS[request.param]


# ---------------------------------------------------------------------------------------------
# Calling a plug-in (README, "Getting Started")


def test_readme_example(count_vowels):
    with extism.Plugin(count_vowels(), wasi=True) as plugin:
        wasm_vowel_count = plugin.call("count_vowels", "hello world", parse=PARSE_JSON)
    assert wasm_vowel_count == {"count": 3, "total": 3, "vowels": "aeiouAEIOU"}


def test_call_returns_bytes_by_default(count_vowels):
    with extism.Plugin(count_vowels(), wasi=True) as plugin:
        out = plugin.call("count_vowels", b"hello world")
    assert isinstance(out, bytes)
    assert json.loads(out)["count"] == 3


def test_unicode_input():
    with extism.Plugin(manifest("extism_count_vowels"), functions=[]) as plugin:
        assert json.loads(plugin.call("count_vowels", "🌎hello🌎world🌎"))["count"] == 3


def test_manifest_with_data_and_hash():
    # bytes in a manifest dict are sent base64-encoded, as Extism's manifest expects.
    wasm = pathlib.Path(plugin_path("count_vowels")).read_bytes()
    digest = hashlib.sha256(wasm).hexdigest()
    plugin = extism.Plugin({"wasm": [{"data": wasm, "hash": digest}]}, functions=[])
    assert json.loads(plugin.call("count_vowels", "this is a test"))["count"] == 4


def test_wrong_hash_is_an_error():
    wasm = pathlib.Path(plugin_path("count_vowels")).read_bytes()
    with pytest.raises(extism.Error):
        extism.Plugin({"wasm": [{"data": wasm, "hash": "00" * 32}]}, functions=[])


def test_raw_wasm_bytes_and_a_manifest_string():
    wasm = pathlib.Path(plugin_path("count_vowels")).read_bytes()
    with extism.Plugin(wasm, functions=[]) as plugin:
        assert plugin.call("count_vowels", "aaa", parse=PARSE_JSON)["count"] == 3
    as_json = json.dumps({"wasm": [{"path": plugin_path("count_vowels")}]})
    with extism.Plugin(as_json, functions=[]) as plugin:
        assert plugin.call("count_vowels", "aaa", parse=PARSE_JSON)["count"] == 3


def test_function_exists(count_vowels):
    with extism.Plugin(count_vowels(), wasi=True) as plugin:
        assert plugin.function_exists("count_vowels")
        assert not plugin.function_exists("i_dont_exist")


def test_plugin_id_and_version():
    first = extism.Plugin(manifest("count_vowels"), functions=[])
    second = extism.Plugin(manifest("count_vowels"), functions=[])
    assert isinstance(first.id, uuid.UUID)
    assert first.id == first.id
    assert first.id != second.id
    assert extism.extism_version()


def test_plugin_frees_itself():
    with extism.Plugin(manifest("count_vowels"), functions=[]) as plugin:
        assert plugin.call("count_vowels", "test", parse=PARSE_JSON)["count"] == 1
    assert plugin.plugin == -1
    assert plugin.compiled_plugin is None
    del plugin


# ---------------------------------------------------------------------------------------------
# State and configuration (guide, "State and Configuration")


def test_vars_persist_across_calls_and_reset_with_a_new_plugin(count_vowels):
    for _ in range(2):
        with extism.Plugin(count_vowels(), wasi=True) as plugin:
            totals = [
                plugin.call("count_vowels", "hello world", parse=PARSE_JSON)["total"]
                for _ in range(3)
            ]
        assert totals == [3, 6, 9]


def test_vars_set_and_removed_by_the_plugin():
    with extism.Plugin(manifest("extism_vars"), functions=[]) as plugin:
        assert [plugin.call("increment", b"") for _ in range(3)] == [b"1", b"2", b"3"]
        assert plugin.call("reset", b"") == b""
        assert plugin.call("increment", b"") == b"1"


def test_config_argument(count_vowels):
    # The guide passes `config` to `call`, which has no such parameter; the SDK takes it in
    # the Plugin constructor (extism_plugin_config), or in the manifest.
    with extism.Plugin(count_vowels(), wasi=True, config={"vowels": "h"}) as plugin:
        assert plugin.call("count_vowels", "hello world", parse=PARSE_JSON) == {
            "count": 1,
            "total": 1,
            "vowels": "h",
        }


def test_config_in_the_manifest(count_vowels):
    with extism.Plugin(count_vowels(config={"vowels": "o"}), wasi=True) as plugin:
        assert plugin.call("count_vowels", "hello world", parse=PARSE_JSON)["count"] == 2


def test_config_argument_overrides_the_manifest():
    m = manifest("extism_config", config={"name": "manifest", "kept": "yes"})
    with extism.Plugin(m, functions=[], config={"name": "argument"}) as plugin:
        assert plugin.call("get_config", "name") == b"argument"
        assert plugin.call("get_config", "kept") == b"yes"
        assert plugin.call("get_config", "absent") == b"missing"


def test_compiled_plugin_makes_independent_plugins():
    compiled = extism.extism.CompiledPlugin(manifest("count_vowels"), functions=[])
    first, second = extism.Plugin(compiled), extism.Plugin(compiled)
    assert first.call("count_vowels", "aaa", parse=PARSE_JSON)["total"] == 3
    assert first.call("count_vowels", "aaa", parse=PARSE_JSON)["total"] == 6
    assert second.call("count_vowels", "aaa", parse=PARSE_JSON)["total"] == 3
    first.__del__()
    second.__del__()
    assert compiled.pointer != -1
    compiled.__del__()


# ---------------------------------------------------------------------------------------------
# Host functions (guide, "Host Functions"; the host_fn docstring)

# The guide's guest, in its style (alloc, store_u8, output_set), with two bugs fixed: the
# guide's copy allocates 15 bytes for a 30-byte message, and its export returns nothing
# although it declares an i64 result.
MESSAGE = '{"message": "Hello from WAT!"}'
GUEST_WAT = textwrap.dedent(
    """
    (module
      (import "extism:host/user" "hello_world" (func $hello (param i64) (result i64)))
      (import "extism:host/env" "alloc" (func $extism_alloc (param i64) (result i64)))
      (import "extism:host/env" "store_u8" (func $extism_store_u8 (param i64 i32)))
      (import "extism:host/env" "output_set" (func $extism_output_set (param i64 i64)))
      (import "extism:host/env" "length" (func $extism_length (param i64) (result i64)))
      (memory $memory (export "mem") (data "%s"))
      (func $my_func (result i32)
        (local $result i64) (local $offset i64) (local $i i32)
        (local.set $offset (call $extism_alloc (i64.const %d)))
        (block $end
          (loop $loop
            (br_if $end (i32.eq (local.get $i) (i32.const %d)))
            (call $extism_store_u8
              (i64.add (local.get $offset) (i64.extend_i32_u (local.get $i)))
              (i32.load8_u (local.get $i)))
            (local.set $i (i32.add (i32.const 1) (local.get $i)))
            br $loop))
        (local.set $result (call $hello (local.get $offset)))
        (call $extism_output_set (local.get $result) (call $extism_length (local.get $result)))
        (i32.const 0))
      (export "my_func" (func $my_func)))
    """
    % (MESSAGE.replace('"', '\\"'), len(MESSAGE), len(MESSAGE))
).strip()  # Extism takes bytes as WAT when they start with "(module"


def test_guide_host_function_with_a_string():
    seen = []

    @extism.host_fn()
    def hello_world(input: str) -> str:
        seen.append(input)
        return "Hello from Python!"

    with extism.Plugin(GUEST_WAT.encode(), functions=[hello_world]) as plugin:
        assert plugin.call("my_func", b"") == b"Hello from Python!"
    assert seen == [MESSAGE]


def test_guide_host_function_with_json():
    @extism.host_fn()
    def hello_world(input: typing.Annotated[dict, extism.Json]) -> str:
        return "Python got: " + input["message"]

    with extism.Plugin(GUEST_WAT.encode(), functions=[hello_world]) as plugin:
        assert plugin.call("my_func", b"") == b"Python got: Hello from WAT!"


GUIDE_HOST_SCRIPT = """
from extism import host_fn, Plugin

@host_fn()
def hello_world(input: str) -> str:
    print(input)
    return "Hello from Python!"

with Plugin(open("guest.wat", "rb").read()) as plugin:
    print(plugin.call("my_func", b"").decode())
"""


def test_guide_host_script(tmp_path):
    # The guide's host.py as a program of its own: without `functions=`, a plug-in gets every
    # @host_fn registered in the process (a process-wide registry, hence the subprocess).
    (tmp_path / "guest.wat").write_text(GUEST_WAT)
    (tmp_path / "host.py").write_text(GUIDE_HOST_SCRIPT)
    done = subprocess.run(
        [sys.executable, "host.py"], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [MESSAGE, "Hello from Python!"]


@pytest.mark.parametrize("guest", ["host_greet", "extism_host_fn"])
def test_host_function_with_user_data(guest):
    @extism.host_fn(user_data=b"Hello")
    def greet(name: str, *user_data) -> str:
        return "%s, %s!" % (user_data[0].decode(), name)

    with extism.Plugin(manifest(guest), wasi=True, functions=[greet]) as plugin:
        assert plugin.call("call_greet", "Ada") == b"Hello, Ada!"
        assert plugin.call("call_greet", "Grace") == b"Hello, Grace!"


def test_host_function_with_an_explicit_signature():
    @extism.host_fn(
        name="greet",
        signature=([extism.ValType.PTR], [extism.ValType.PTR]),
        user_data=[b"Hi", b"there"],
    )
    def low_level(plugin, params, results, first, second):
        assert isinstance(plugin, extism.CurrentPlugin)
        name = plugin.input_string(params[0])
        answer = f"{first.decode()} {second.decode()}, {name}".encode()
        mem = plugin.alloc(len(answer))
        plugin.memory(mem)[:] = answer
        results[0].value = mem.offset

    with extism.Plugin(manifest("host_greet"), functions=[low_level]) as plugin:
        assert plugin.call("call_greet", "Ada") == b"Hi there, Ada"


def test_host_function_memory_access():
    @extism.host_fn(name="greet", signature=([extism.ValType.I64], [extism.ValType.I64]))
    def memory_ops(plugin, params, results):
        mem = plugin.memory_at_offset(params[0])
        assert len(mem) == 3
        assert bytes(plugin.memory(mem)) == b"Ada"
        scratch = plugin.alloc(16)
        plugin.free(scratch)
        plugin.return_bytes(results[0], b"bytes: " + plugin.input_bytes(params[0]))

    with extism.Plugin(manifest("extism_host_fn"), functions=[memory_ops]) as plugin:
        assert plugin.call("call_greet", "Ada") == b"bytes: Ada"


class Gribble:
    """A pickle-able object, as in the host_fn docstring."""

    def __init__(self, v):
        self.v = v


def test_json_pickle_and_codec_annotations():
    @extism.host_fn(name="reflect")
    def as_json(doc: typing.Annotated[dict, extism.Json]) -> typing.Annotated[dict, extism.Json]:
        return {**doc, "roundtrip": 1}

    with extism.Plugin(manifest("extism_echo"), functions=[as_json]) as plugin:
        assert plugin.call("reflect", json.dumps({"a": 1}), parse=PARSE_JSON) == {
            "a": 1,
            "roundtrip": 1,
        }

    @extism.host_fn(name="reflect")
    def as_pickle(raw: bytes) -> typing.Annotated[Gribble, extism.Pickle]:
        return Gribble(raw.decode())

    with extism.Plugin(manifest("extism_echo"), functions=[as_pickle]) as plugin:
        assert plugin.call("reflect", "robble", parse=pickle.loads).v == "robble"

    @extism.host_fn(name="reflect")
    def as_codec(
        text: typing.Annotated[str, extism.Codec(lambda xs: xs.decode().replace("o", "u"))],
    ) -> typing.Annotated[str, extism.Codec(lambda xs: xs.replace("u", "a").encode())]:
        return text

    with extism.Plugin(manifest("extism_echo"), functions=[as_codec]) as plugin:
        assert plugin.call("reflect", '{"count": 3}') == b'{"caant": 3}'


def test_host_context():
    @extism.host_fn(name="greet")
    def with_context(current_plugin: extism.CurrentPlugin, name: str) -> str:
        ctx = current_plugin.host_context()
        ctx.calls += 1
        return f"{ctx.greeting}, {name}"

    class Context:
        greeting = "Howdy"
        calls = 0

    ctx = Context()
    with extism.Plugin(manifest("extism_host_fn"), functions=[with_context]) as plugin:
        assert plugin.call("call_greet", "Ada", host_context=ctx) == b"Howdy, Ada"
        assert plugin.call("call_greet", "Bo", host_context=ctx) == b"Howdy, Bo"
    assert ctx.calls == 2


NAMESPACED_WAT = """(module
  (import "example" "double" (func $double (param i64) (result i64)))
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "store_u64" (func $store_u64 (param i64 i64)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
  (memory (export "memory") 1)
  (func (export "run") (result i32) (local $o i64)
    (local.set $o (call $alloc (i64.const 8)))
    (call $store_u64 (local.get $o) (call $double (i64.const 21)))
    (call $output_set (local.get $o) (i64.const 8))
    (i32.const 0)))
""".strip()


def test_host_function_namespace():
    @extism.host_fn(
        namespace="example", signature=([extism.ValType.I64], [extism.ValType.I64])
    )
    def double(plugin, params, results):
        results[0].value = params[0].value * 2

    with extism.Plugin(NAMESPACED_WAT.encode(), functions=[double]) as plugin:
        assert int.from_bytes(plugin.call("run", b""), "little") == 42


def test_missing_host_function_is_an_error():
    with pytest.raises(extism.Error):
        extism.Plugin(manifest("host_greet"), functions=[])


# ---------------------------------------------------------------------------------------------
# Errors: a failing plug-in raises extism.Error with the plug-in's message


def test_plugin_error_with_a_code():
    with extism.Plugin(manifest("fail_with_code"), functions=[]) as plugin:
        with pytest.raises(extism.Error, match="custom failure"):
            plugin.call("fail_with_code", b"")


def test_extism_pdk_errors_and_recovery():
    with extism.Plugin(manifest("extism_errors"), functions=[]) as plugin:
        with pytest.raises(extism.Error, match="failed on purpose: x"):
            plugin.call("fail", "x")
        with pytest.raises(extism.Error, match="failed with code 7: y"):
            plugin.call("fail_with_code", "y")
        # The plug-in stays usable, and the error is cleared by the next call.
        assert plugin.call("succeed", "z") == b"ok: z"


def test_unknown_function_is_an_error():
    with extism.Plugin(manifest("count_vowels"), functions=[]) as plugin:
        with pytest.raises(extism.Error):
            plugin.call("i_dont_exist", "someinput")


def test_bad_manifest_and_bad_wasm_are_errors():
    with pytest.raises(extism.Error):
        extism.Plugin({"invalid_manifest": True}, functions=[])
    with pytest.raises(extism.Error):
        extism.Plugin(b"\0asm\x01\0\0\0garbage", functions=[])
    with pytest.raises(extism.Error):
        extism.Plugin({"wasm": [{"path": "/nonexistent/plugin.wasm"}]}, functions=[])


def test_trap_is_an_error():
    wat = b'(module (func (export "boom") (result i32) unreachable))'
    with extism.Plugin(wat, functions=[]) as plugin:
        with pytest.raises(extism.Error):
            plugin.call("boom", b"")


# ---------------------------------------------------------------------------------------------
# Timeouts and cancellation (the SDK's cancel_handle)

LOOP_WAT = b"""(module
  (func (export "infinite_loop") (result i32) (loop $l (br $l)) (i32.const 0))
  (func (export "ok") (result i32) (i32.const 0)))
"""


def test_timeout_ms():
    wat = LOOP_WAT.decode()
    plugin = extism.Plugin({"wasm": [{"data": wat.encode()}], "timeout_ms": 300}, functions=[])
    start = time.monotonic()
    with pytest.raises(extism.Error):
        plugin.call("infinite_loop", b"")
    assert time.monotonic() - start < 5


def test_cancel_from_another_thread():
    plugin = extism.Plugin(LOOP_WAT, functions=[])
    handle = plugin.cancel_handle()

    def cancel():
        time.sleep(0.3)
        assert handle.cancel()

    canceller = threading.Thread(target=cancel)
    canceller.start()
    start = time.monotonic()
    with pytest.raises(extism.Error):
        plugin.call("infinite_loop", b"")
    canceller.join()
    assert time.monotonic() - start < 10
    # A cancelled call leaves the plug-in usable.
    assert plugin.call("ok", b"") == b""


# ---------------------------------------------------------------------------------------------
# Logging (set_log_custom, as in the SDK's example.py; set_log_file). Both are process-wide
# and take effect once, so each runs in a process of its own.

LOG_SCRIPT = """
import json, sys, extism
logs = []
if sys.argv[1] == "custom":
    buffer = extism.set_log_custom(lambda line: logs.append(line), "debug")
else:
    extism.set_log_file(sys.argv[3], "debug")
with extism.Plugin({"wasm": [{"path": sys.argv[2]}]}, functions=[]) as plugin:
    plugin.call("count_vowels", "hello world")
if sys.argv[1] == "custom":
    buffer.drain()
print(json.dumps(logs))
"""


def run_log_script(*args):
    done = subprocess.run(
        [sys.executable, "-c", LOG_SCRIPT, *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def test_set_log_custom():
    logs = run_log_script("custom", plugin_path("count_vowels"))
    assert any("3 vowels, 3 so far" in line for line in logs), logs


def test_set_log_file(tmp_path):
    log = tmp_path / "extism.log"
    run_log_script("file", plugin_path("count_vowels"), str(log))
    assert "3 vowels, 3 so far" in log.read_text()


# ---------------------------------------------------------------------------------------------
# What the manifest allows: HTTP hosts, WASI paths


@pytest.fixture
def http_server():
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = f"hello from {self.path}".encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_http_to_an_allowed_host(http_server):
    m = manifest("extism_http", allowed_hosts=["127.0.0.1"])
    with extism.Plugin(m, wasi=True, functions=[]) as plugin:
        assert plugin.call("http_get", f"{http_server}/greeting") == b"hello from /greeting"
        assert plugin.call("http_status", f"{http_server}/x") == b"200"


def test_http_to_a_host_not_allowed(http_server):
    with extism.Plugin(manifest("extism_http"), wasi=True, functions=[]) as plugin:
        with pytest.raises(extism.Error):
            plugin.call("http_get", f"{http_server}/greeting")


def test_wasi_with_allowed_paths(tmp_path):
    (tmp_path / "in.txt").write_text("some data")
    m = manifest("wasi_files", allowed_paths={str(tmp_path): "/data"})
    with extism.Plugin(m, wasi=True, functions=[]) as plugin:
        assert plugin.call("copy_file", "/data/in.txt") == b"/data/in.txt.out"
    assert (tmp_path / "in.txt.out").read_text() == "some data"
