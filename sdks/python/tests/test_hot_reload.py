"""plinth.HotPlugin: a plug-in file rewritten while Python calls it."""

import os
import threading
import time

import pytest

import plinth


def version(n, extra=""):
    """WAT text of a plug-in whose `which` outputs the digit N."""
    return f"""
(module
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "store_u8" (func $store_u8 (param i64 i32)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
  (memory 1)
  (func (export "which") (result i32) (local $h i64)
    (local.set $h (call $alloc (i64.const 1)))
    (call $store_u8 (local.get $h) (i32.const {ord("0") + n}))
    (call $output_set (local.get $h) (i64.const 1))
    (i32.const 0))
  {extra})
""".encode()


@pytest.fixture
def mod(tmp_path):
    path = tmp_path / "mod.wat"
    path.write_bytes(version(1))
    return path


def test_a_changed_file_is_swapped_in_with_the_vars(mod):
    hot = plinth.HotPlugin(mod, check_interval=None)
    assert hot.generation == 1
    assert hot.call_str("which") == "1"
    hot.var_set("score", b"42")
    assert hot.check().status == "unchanged"

    mod.write_bytes(version(2))
    assert hot.call_str("which") == "1", "no check without an interval"
    r = hot.check()
    assert (r.status, r.generation, r.error) == ("swapped", 2, None)
    assert r.swapped
    assert hot.generation == 2
    assert hot.call_str("which") == "2"
    assert hot.var_get("score") == b"42"
    assert hot.watched_files == [os.fspath(mod)]


def test_a_bad_version_keeps_the_old_code_and_says_why(mod):
    hot = plinth.HotPlugin(mod, check_interval=None)
    mod.write_bytes(b"(module (func (export \"which\")")  # cut short
    r = hot.check()
    assert r.failed
    assert isinstance(r.error, plinth.LoadError)
    assert r.error.kind == "compile"
    assert r.generation == 1
    assert hot.last_error is not None and hot.last_error.kind == "compile"
    assert hot.call_str("which") == "1"
    # The same bytes are not tried again.
    assert hot.check().status == "unchanged"

    mod.unlink()
    r = hot.check()
    assert r.failed and r.error.kind == "manifest"
    assert os.fspath(mod) in str(r.error)
    assert hot.call_str("which") == "1"

    mod.write_bytes(version(3, '(func $boom unreachable) (start $boom)'))
    assert hot.check().failed, "a start function that traps is refused"

    mod.write_bytes(version(4))
    assert hot.check().swapped
    assert hot.last_error is None
    assert hot.call_str("which") == "4"


def test_touching_the_file_does_not_reload(mod):
    hot = plinth.HotPlugin(mod, check_interval=None)
    mod.write_bytes(version(1))
    old = time.time() - 3600
    os.utime(mod, (old, old))
    assert hot.check().status == "unchanged"
    assert hot.generation == 1
    assert hot.reload().swapped


def test_calls_check_on_their_own(mod):
    hot = plinth.HotPlugin(mod, check_interval=0)
    assert hot.call_str("which") == "1"
    mod.write_bytes(version(2))
    assert hot.call_str("which") == "2"
    assert hot.generation == 2


def test_required_exports(mod, tmp_path):
    hot = plinth.HotPlugin(mod, check_interval=None, require_exports=["which"])
    mod.write_bytes(b"(module (memory 1))")
    r = hot.check()
    assert r.failed and isinstance(r.error, plinth.FunctionNotFoundError)
    assert hot.call_str("which") == "1"

    other = tmp_path / "other.wat"
    other.write_bytes(b"(module (memory 1))")
    with pytest.raises(plinth.FunctionNotFoundError):
        plinth.HotPlugin(other, require_exports=["which"])
    with pytest.raises(ValueError, match="check_interval"):
        plinth.HotPlugin(mod, check_interval=-1)
    with pytest.raises(plinth.LoadError):
        plinth.HotPlugin(tmp_path / "missing.wasm")


def test_a_call_in_flight_finishes_on_the_old_code(tmp_path):
    inside, leave = threading.Event(), threading.Event()

    @plinth.host_fn(params=[], results=[])
    def block(current):
        inside.set()
        assert leave.wait(30)

    path = tmp_path / "slow.wat"
    # Imports come before definitions: build the module text in that order.
    def text(n):
        return f"""
(module
  (import "extism:host/user" "block" (func $block))
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "store_u8" (func $store_u8 (param i64 i32)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
  (memory 1)
  (func $which (export "which") (result i32) (local $h i64)
    (local.set $h (call $alloc (i64.const 1)))
    (call $store_u8 (local.get $h) (i32.const {ord("0") + n}))
    (call $output_set (local.get $h) (i64.const 1))
    (i32.const 0))
  (func (export "slow") (result i32) (call $block) (call $which)))
""".encode()

    path.write_bytes(text(1))
    hot = plinth.HotPlugin(path, functions=[block], check_interval=None)
    results = {}
    caller = threading.Thread(target=lambda: results.setdefault("slow", hot.call_str("slow")))
    caller.start()
    assert inside.wait(30)
    path.write_bytes(text(2))
    checker = threading.Thread(target=lambda: results.setdefault("check", hot.check()))
    checker.start()
    leave.set()
    caller.join(30)
    checker.join(30)
    assert results["slow"] == "1", "the call started on version 1 finishes there"
    assert results["check"].swapped
    assert hot.call_str("which") == "2"
