"""The `extism` SDK runs on libplinth through our stand-in extism_sys, and that stand-in has
the real extism-sys's C interface.

The real extism-sys wheel ships ``extism_sys/ffi.py``, a cffi module generated from libextism's
header. run.sh extracts it from the wheel on PyPI (UPSTREAM_EXTISM_SYS_FFI); here it is opened
on libplinth, so every function it declares must resolve there, with the same C type as in
the stand-in's cffi module (generated from libplinth's installed extism.h).
"""

import importlib.metadata
import importlib.util
import inspect
import os
import re

import pytest

import extism
import extism_sys


def upstream_ffi():
    path = os.environ.get("UPSTREAM_EXTISM_SYS_FFI")
    if not path:
        pytest.fail("UPSTREAM_EXTISM_SYS_FFI is not set: run tests/python-sdk/run.sh")
    spec = importlib.util.spec_from_file_location("upstream_extism_sys_ffi", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.ffi


def shape(ffi, ctype):
    """What the ABI sees of a C type: the same for `uint64_t` and `unsigned long` (upstream's
    module was made from preprocessed stdint types), for `const char *` and `char *`."""
    kind = ctype.kind
    if kind == "primitive":
        if ctype.cname in ("float", "double"):
            return ("float", ffi.sizeof(ctype))
        if ctype.cname in ("_Bool", "char"):
            return (ctype.cname,)
        return ("int", ffi.sizeof(ctype), int(ffi.cast(ctype, -1)) < 0)
    if kind in ("pointer", "array"):
        return (kind, shape(ffi, ctype.item))
    if kind == "function":
        args = tuple(shape(ffi, arg) for arg in ctype.args)
        return ("function", args, shape(ffi, ctype.result), ctype.ellipsis)
    return (kind, ctype.cname)  # struct, union, enum (by name), void


def functions_of(ffi, lib):
    """Name -> (ABI shape, C type) of every function of a cffi ABI-mode library."""
    out = {}
    for name in dir(lib):
        try:
            ctype = ffi.typeof(getattr(lib, name))
        except TypeError:
            continue  # an integer constant (enum value)
        out[name] = (shape(ffi, ctype), ctype.cname)
    return out


def sdk_calls():
    """The libextism functions that the installed `extism` package calls."""
    return set(re.findall(r"_lib\.(\w+)", inspect.getsource(extism.extism)))


def test_the_sdk_loads_libplinth():
    # `extism` imports our extism_sys, which opened libplinth, not a bundled libextism.
    assert extism.extism._lib is extism_sys.lib
    assert importlib.metadata.version("extism-sys").endswith("+plinth")
    library = os.path.realpath(extism_sys._library.LIBRARY)
    assert os.path.basename(library) == "libplinth.so"
    with open("/proc/self/maps") as maps:
        mapped = {line.split()[-1] for line in maps if "/" in line}
    assert library in mapped
    assert not [path for path in mapped if "libextism_sys" in path]


def test_the_functions_the_sdk_calls_match_extism_sys():
    ffi = upstream_ffi()
    upstream = ffi.dlopen(extism_sys._library.LIBRARY)
    ours = functions_of(extism_sys.ffi, extism_sys.lib)
    used = sdk_calls()
    assert len(used) > 20, used
    for name in sorted(used):
        # getattr resolves the symbol in libplinth (AttributeError if it is missing).
        theirs = ffi.typeof(getattr(upstream, name))
        assert shape(ffi, theirs) == ours[name][0], (name, theirs.cname, ours[name][1])


def test_every_function_of_extism_sys_resolves_with_the_same_type():
    ffi = upstream_ffi()
    # What the real extism_sys/__init__.py does, with libplinth instead of its bundled library.
    upstream_lib = ffi.dlopen(extism_sys._library.LIBRARY)
    declared = [n for n in dir(upstream_lib) if n.startswith("extism_")]
    assert len(declared) > 30, declared
    ours = functions_of(extism_sys.ffi, extism_sys.lib)
    missing, different = [], []
    for name in declared:
        try:
            theirs = ffi.typeof(getattr(upstream_lib, name))
        except AttributeError:
            missing.append(name)
            continue
        if name not in ours:
            different.append((name, theirs.cname, "not declared in extism.h"))
        elif ours[name][0] != shape(ffi, theirs):
            different.append((name, theirs.cname, ours[name][1]))
    assert not different, different
    assert not missing, f"not exported by libplinth: {sorted(missing)}"


def test_types_and_enum_match_extism_sys():
    ffi = upstream_ffi()
    ours = extism_sys.ffi
    for ctype in ["ExtismVal", "ExtismValUnion", "ExtismValType", "ExtismSize"]:
        assert ffi.sizeof(ctype) == ours.sizeof(ctype), ctype
    for field in ["t", "v"]:
        assert ffi.offsetof("ExtismVal", field) == ours.offsetof("ExtismVal", field)
    # Enumerator names: ExtismValType_I32 in extism-sys's module; libplinth's header may say
    # I32 or ExtismValType_I32. The values must be the same.
    strip = lambda names: {k.rsplit("_", 1)[-1]: v for k, v in names.items()}  # noqa: E731
    theirs_enum = strip(ffi.typeof("ExtismValType").relements)
    ours_enum = strip(ours.typeof("ExtismValType").relements)
    assert theirs_enum == ours_enum
    # and they are the numbers the SDK's ValType uses.
    for member in extism.ValType:
        if member.name in ("PTR", "FUNC_REF", "EXTERN_REF"):
            continue
        assert ours_enum[member.name] == member.value
