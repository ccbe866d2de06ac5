"""Paths shared by the tests; run.sh sets the environment."""

import os
import pathlib

import pytest

ROOT = pathlib.Path(
    os.environ.get("PLINTH_ROOT", pathlib.Path(__file__).resolve().parents[3])
)
PLUGINS = ROOT / "target" / "wasm-plugins"
COUNT_VOWELS_WAT = ROOT / "examples" / "plugins" / "count_vowels.wat"


def plugin_path(name: str) -> str:
    """A plug-in built by scripts/build-plugins.sh."""
    path = PLUGINS / f"{name}.wasm"
    if not path.exists():
        pytest.fail(f"{path} is missing: run bash scripts/build-plugins.sh first")
    return str(path)


def manifest(name: str, **extra) -> dict:
    """An Extism manifest with one wasm module given by path."""
    return {"wasm": [{"path": plugin_path(name)}], **extra}
