"""extism_sys over libplinth.

The same interface as the real extism-sys wheel: ``ffi`` (a cffi ABI-mode FFI, generated from
libplinth's installed ``extism.h``) and ``lib`` (that FFI opened on libplinth's installed
``libextism.so``). The real wheel opens the ``libextism_sys.so`` that it bundles instead.
"""

__all__ = ["lib", "ffi"]

from .ffi import ffi
from ._library import LIBRARY

lib = ffi.dlopen(LIBRARY)
