"""The cross-SDK fixtures of tests/conformance (see its README.md): every Plinth SDK runs the
same cases and must give the same answers (the Rust reference:
crates/plinth/tests/all/conformance.rs)."""

import json
import shutil

import pytest

import plinth
from conftest import PLUGINS, REPO

FIXTURES = REPO / "tests" / "conformance"
CASES = json.loads((FIXTURES / "errors" / "cases.json").read_text())["cases"]


def test_there_are_cases():
    assert len(CASES) >= 8


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c['file']}-{c['function']}")
def test_error_case(case, tmp_path, monkeypatch):
    # Loaded by path from another working directory: a manifest's relative paths must not
    # resolve against it.
    monkeypatch.chdir(tmp_path)
    path = FIXTURES / "errors" / case["file"]
    if case["stage"] == "load":
        with pytest.raises(plinth.PlinthError) as e:
            plinth.Plugin.from_file(path)
        assert isinstance(e.value, plinth.LoadError)
    else:
        with plinth.Plugin.from_file(path) as p:
            with pytest.raises(plinth.PlinthError) as e:
                p.call(case["function"])
    err = e.value
    assert err.kind == case["kind"], str(err)
    assert err.kind_code == case["kind_code"], str(err)
    assert err.code == case["code"], str(err)
    assert plinth.ERROR_KINDS[err.kind_code] == err.kind


def test_error_kinds_are_the_runtimes():
    assert list(plinth.ERROR_KINDS) == list(range(1, len(plinth.ERROR_KINDS) + 1))
    assert plinth.ERROR_KINDS[7] == "trap" and plinth.ERROR_KINDS[10] == "timeout"
    assert len(set(plinth.ERROR_KINDS.values())) == len(plinth.ERROR_KINDS)


def test_a_manifest_file_resolves_its_paths_against_its_own_folder(tmp_path, monkeypatch):
    wasm = PLUGINS / "wasi_files.wasm"
    if not wasm.exists():
        pytest.fail(f"{wasm} is missing: run `bash scripts/build-plugins.sh` first")
    src = FIXTURES / "paths"
    home = tmp_path / "plugin"
    (home / "data").mkdir(parents=True)
    shutil.copy(src / "manifest.json", home / "manifest.json")
    shutil.copy(src / "data" / "hello.txt", home / "data" / "hello.txt")
    shutil.copy(wasm, home / "wasi_files.wasm")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # neither wasi_files.wasm nor data/ is here

    with plinth.Plugin.from_file(home / "manifest.json", wasi=True) as p:
        assert p.call_str("copy_file", "/data/hello.txt") == "/data/hello.txt.out"
    assert (home / "data" / "hello.txt.out").read_bytes() == (src / "data" / "hello.txt").read_bytes()
    # The same through Plugin(path) and CompiledPlugin(path).
    with plinth.Plugin(str(home / "manifest.json"), wasi=True) as p:
        assert p.call_str("copy_file", "/data/hello.txt") == "/data/hello.txt.out"
    with plinth.CompiledPlugin(home / "manifest.json", wasi=True).instance() as p:
        assert p.call_str("copy_file", "/data/hello.txt") == "/data/hello.txt.out"
