"""Run WebAssembly plug-ins (Extism ABI) from Python, sandboxed.

Quick start::

    import plinth

    with plinth.Plugin({"wasm": [{"path": "checkout.wasm"}]}) as plugin:
        plugin.call_json("before_checkout_finalize",
                         {"cart_total": 12000, "is_new_customer": True, "provided_email": True})
        # -> {'discount_percent': 20.0}

A plug-in comes from a file path (``str`` or ``os.PathLike``), from ``bytes`` (a wasm binary,
WAT text, or a manifest in JSON or TOML), or from a manifest ``dict``. A file is a wasm binary,
WAT text or a manifest, told apart by content; in a manifest file, relative ``wasm`` paths and
``allowed_paths`` are relative to the manifest's folder (as in every Plinth SDK and the
``plinth`` command). Calls take ``bytes`` or ``str`` and return ``bytes`` (``call``), ``str``
(``call_str``) or parsed JSON (``call_json``).

Every error is a :class:`PlinthError` with ``kind`` (the name of the kind of failure, such as
``"trap"`` or ``"timeout"``), ``kind_code`` (its stable number) and ``code`` (the Extism return
code): the same answers as every other Plinth SDK gives. :data:`ERROR_KINDS` lists the kinds.

Streams: :meth:`Plugin.call_stream` gives a plug-in its input from a binary file-like object
(or an iterable of bytes chunks) and writes its output to another as the plug-in produces it,
so a large input or output never sits whole in memory; :meth:`Plugin.call_stream_async` and
:meth:`Plugin.stream` do the same for asyncio sources and sinks.

Async: ``await plugin.call_async(...)`` runs a call without holding the event loop (the plug-in
runs on a runtime thread, without the GIL), and a host function may be an ``async def``: the
plug-in calls it as it calls any host function, and the coroutine runs on the caller's event
loop. Cancelling the task that awaits a call stops the call. The sync API is unchanged.

A :class:`CompiledPlugin` makes many instances without compiling again, and runs one call on
an instance of its own with :meth:`CompiledPlugin.call_fresh`. A precompiled artifact
(:meth:`CompiledPlugin.compile_artifact`, or ``plinth compile``) skips compiling at load time:
:meth:`CompiledPlugin.from_artifact` loads it only if it is signed with the host's key.
"""

from __future__ import annotations

import asyncio
import atexit
import base64
import concurrent.futures
import inspect
import io
import json
import os
import threading
from typing import (
    Any,
    AsyncIterator,
    Callable,
    Dict,
    Iterable,
    List,
    Mapping,
    NamedTuple,
    Optional,
    Sequence,
    Union,
)

from . import _native
from ._native import (
    CallError,
    CancelledError,
    ClosedError,
    FunctionNotFoundError,
    HostFunctionError,
    HttpError,
    LoadError,
    OutOfFuelError,
    OutOfMemoryError,
    PlinthError,
    PluginTimeoutError,
    ReentrantCallError,
    StreamError,
    TrapError,
)
from ._native import CancelHandle, CurrentPlugin

__all__ = [
    "Plugin",
    "CompiledPlugin",
    "HotPlugin",
    "Reload",
    "HostFunction",
    "host_fn",
    "CurrentPlugin",
    "CancelHandle",
    "I32",
    "I64",
    "F32",
    "F64",
    "PTR",
    "DEFAULT_NAMESPACE",
    "PlinthError",
    "LoadError",
    "FunctionNotFoundError",
    "CallError",
    "TrapError",
    "PluginTimeoutError",
    "CancelledError",
    "OutOfMemoryError",
    "OutOfFuelError",
    "HostFunctionError",
    "ReentrantCallError",
    "HttpError",
    "ClosedError",
    "StreamError",
    "StreamStats",
    "ERROR_KINDS",
]

__version__ = _native.runtime_version()

# At exit, let the async runtime's threads leave Python before the interpreter finalizes.
atexit.register(_native.quiesce, 2.0)

#: Every kind of failure, number to name (``{7: "trap", 10: "timeout", ...}``): the values of a
#: :class:`PlinthError`'s ``kind_code`` and ``kind``, the same in every Plinth SDK.
ERROR_KINDS: Dict[int, str] = dict(_native.error_kinds())

#: Wasm value types of host function parameters and results.
I32 = "i32"
I64 = "i64"
F32 = "f32"
F64 = "f64"
#: The type of an Extism memory handle (an offset into the plug-in's Extism memory).
PTR = I64
#: The namespace plug-ins import host functions from unless told otherwise.
DEFAULT_NAMESPACE = "extism:host/user"

Source = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview, Mapping[str, Any]]
Input = Union[bytes, bytearray, memoryview, str]


class HostFunction:
    """A function written in Python that plug-ins can import.

    ``func(current_plugin, *args)`` gets a :class:`CurrentPlugin` (the calling plug-in's
    memory, config, vars and the call's host context) and one Python number per wasm
    parameter. It returns ``None`` (results read as 0), one number, or a tuple with one
    number per result. Memory handles are ``I64`` numbers: read them with
    ``current_plugin.read_string(h)``/``read_bytes(h)``, make new ones with
    ``write_string(s)``/``write_bytes(b)``.

    An exception raised by ``func`` fails the plug-in's call with
    :class:`HostFunctionError`, whose ``__cause__`` is the original exception.

    ``func`` may be an ``async def``: the plug-in then waits for its coroutine, which runs on
    the event loop of the caller of :meth:`Plugin.call_async` (with the caller's contextvars)
    and may ``await`` anything meanwhile; ``current_plugin`` stays valid until it returns. A
    plug-in given an async host function can only be called with :meth:`Plugin.call_async`
    (or :meth:`CompiledPlugin.call_fresh_async`). ``is_async`` overrides the detection, for a
    callable that returns an awaitable without being an ``async def``. A call's
    ``timeout_ms`` covers the time spent awaiting; at the deadline, or when the call is
    cancelled, the coroutine is cancelled.
    """

    def __init__(
        self,
        name: str,
        params: Sequence[str],
        results: Sequence[str],
        func: Callable[..., Any],
        *,
        namespace: str = DEFAULT_NAMESPACE,
        user_data: Any = None,
        is_async: Optional[bool] = None,
    ) -> None:
        if not callable(func):
            raise TypeError(f"host function {name!r}: func must be callable, got {type(func).__name__}")
        self.name = name
        self.namespace = namespace
        self.params = list(params)
        self.results = list(results)
        self.func = func
        self.user_data = user_data
        if is_async is None:
            is_async = inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(
                getattr(func, "__call__", None)
            )
        self.is_async = bool(is_async)
        extra = {} if user_data is None else {"user_data": user_data}
        if self.is_async:
            # asyncio schedules coroutines only: any awaitable becomes one here.
            async def callback(current: CurrentPlugin, *args: Any) -> Any:
                return await func(current, *args, **extra)
        elif user_data is None:
            callback = func
        else:
            def callback(current: CurrentPlugin, *args: Any) -> Any:
                return func(current, *args, **extra)
        self._native = _native.NativeFunction(
            name, namespace, self.params, self.results, callback, self.is_async
        )

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.func(*args, **kwargs)

    def __repr__(self) -> str:
        kind = "async " if self.is_async else ""
        return f"HostFunction({kind}{self.namespace}::{self.name}, {self.params} -> {self.results})"


def host_fn(
    name: Optional[str] = None,
    *,
    params: Sequence[str] = (I64,),
    results: Sequence[str] = (I64,),
    namespace: str = DEFAULT_NAMESPACE,
    user_data: Any = None,
    is_async: Optional[bool] = None,
) -> Callable[[Callable[..., Any]], HostFunction]:
    """Decorator form of :class:`HostFunction`; the name defaults to the function's own::

        @plinth.host_fn()
        def greet(plugin, handle):
            return plugin.write_string("Hello, " + plugin.read_string(handle))

        @plinth.host_fn()
        async def lookup(plugin, handle):
            row = await db.fetch(plugin.read_string(handle))
            return plugin.write_string(row)
    """

    def wrap(func: Callable[..., Any]) -> HostFunction:
        return HostFunction(
            name or func.__name__,
            params,
            results,
            func,
            namespace=namespace,
            user_data=user_data,
            is_async=is_async,
        )

    return wrap


def _native_source(source: Source) -> Union[bytes, str]:
    """What the runtime loads: bytes (wasm, WAT or manifest JSON), or a path, which the runtime
    reads itself (``plinth::Source::file``), so that a manifest file's relative paths are
    relative to its folder."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source)
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        return os.fsdecode(path)
    if isinstance(source, Mapping):
        return json.dumps(_jsonable_manifest(source)).encode()
    raise TypeError(
        "a plug-in source is a path (str or os.PathLike), bytes (wasm, WAT or manifest JSON) "
        f"or a manifest dict, not {type(source).__name__}"
    )


def _jsonable_manifest(manifest: Mapping[str, Any]) -> Dict[str, Any]:
    """A copy of ``manifest`` where raw ``data`` bytes become base64 and paths become str."""
    out = dict(manifest)
    wasm = out.get("wasm")
    if isinstance(wasm, list):
        items = []
        for item in wasm:
            if isinstance(item, Mapping):
                item = dict(item)
                data = item.get("data")
                if isinstance(data, (bytes, bytearray, memoryview)):
                    item["data"] = base64.b64encode(bytes(data)).decode()
                if isinstance(item.get("path"), os.PathLike):
                    item["path"] = os.fspath(item["path"])
            items.append(item)
        out["wasm"] = items
    return out


def _input_bytes(data: Input) -> bytes:
    if isinstance(data, str):
        return data.encode("utf-8")
    if isinstance(data, bytes):
        return data
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data)
    raise TypeError(f"plug-in input must be bytes or str, not {type(data).__name__}")


class StreamStats(NamedTuple):
    """What a streaming call moved: the bytes it read from its input and wrote to its output."""

    input_bytes: int
    output_bytes: int


def _stream_input(data: Any) -> Any:
    """Whole bytes or text as a stream; anything else goes to the runtime as it is (a
    file-like object with ``read(n)`` or an iterable of bytes chunks)."""
    if isinstance(data, str):
        return io.BytesIO(data.encode("utf-8"))
    if isinstance(data, (bytes, bytearray, memoryview)):
        return io.BytesIO(bytes(data))
    return data


class _LoopBridge:
    """A sync streaming call on a worker thread, fed from the caller's event loop: each read
    of an async source and each write to the sink runs as a coroutine on the loop, and the
    worker waits for it, so a slow sink slows the plug-in. A sync source is read on the
    worker thread directly."""

    def __init__(self, loop: asyncio.AbstractEventLoop, source: Any, sink: Any) -> None:
        self._loop = loop
        self._lock = threading.Lock()
        self._pending: Optional["concurrent.futures.Future[Any]"] = None
        self._aborted = False
        source = _stream_input(source)
        read = getattr(source, "read", None)
        if read is not None and inspect.iscoroutinefunction(read):
            async def next_chunk(n: int) -> Any:
                return await read(n)

            self.input: Any = self._Reader(self, next_chunk)
        elif hasattr(source, "__aiter__"):
            chunks = source.__aiter__()

            async def next_chunk(n: int) -> Any:
                async for chunk in chunks:
                    if chunk:
                        return chunk
                return b""

            self.input = self._Reader(self, next_chunk)
        else:
            self.input = source
        write = getattr(sink, "write", None)
        if write is None and not callable(sink):
            raise TypeError(
                "a stream's sink is an object with write(b) (sync or async; an asyncio "
                f"StreamWriter is drained) or a callable taking bytes, not {type(sink).__name__}"
            )
        drain = getattr(sink, "drain", None) if write is not None else None
        put = write if write is not None else sink

        async def write_chunk(chunk: bytes) -> None:
            ret = put(chunk)
            if inspect.isawaitable(ret):
                await ret
            if drain is not None:
                ret = drain()
                if inspect.isawaitable(ret):
                    await ret

        self.output = lambda chunk: self._run(write_chunk, chunk)

    class _Reader:
        def __init__(self, bridge: "_LoopBridge", next_chunk: Callable[[int], Any]) -> None:
            self._bridge = bridge
            self._next = next_chunk

        def read(self, n: int) -> Any:
            return self._bridge._run(self._next, n)

    def _run(self, coroutine_function: Callable[..., Any], arg: Any) -> Any:
        with self._lock:
            if self._aborted:
                raise asyncio.CancelledError("the streaming call was cancelled")
            future = asyncio.run_coroutine_threadsafe(coroutine_function(arg), self._loop)
            self._pending = future
        try:
            return future.result()
        finally:
            self._pending = None

    def abort(self) -> None:
        """Fails the worker's current and later reads and writes."""
        with self._lock:
            self._aborted = True
            pending = self._pending
        if pending is not None:
            pending.cancel()


def _key_bytes(key: Union[bytes, bytearray, memoryview]) -> bytes:
    if isinstance(key, (bytes, bytearray, memoryview)):
        return bytes(key)
    raise TypeError(f"an artifact key is bytes (at least 16 secret bytes), not {type(key).__name__}")


def _natives(functions: Iterable[HostFunction]) -> List[Any]:
    out = []
    for f in functions:
        if not isinstance(f, HostFunction):
            raise TypeError(f"functions must be plinth.HostFunction objects, got {type(f).__name__}")
        out.append(f._native)
    return out


class Plugin:
    """A loaded plug-in instance.

    ``Plugin(source, *, wasi=False, functions=(), fuel_limit=None, output_limit=None)``

    - ``source``: a path (see :meth:`from_file`), ``bytes`` (wasm, WAT or a manifest) or a
      manifest ``dict`` such as
      ``{"wasm": [{"path": "p.wasm"}], "config": {...}, "memory": {"max_pages": 16},
      "timeout_ms": 100, "allowed_hosts": [...], "allowed_paths": {...}}``. In a dict,
      ``{"data": b"..."}`` may hold raw bytes.
    - ``wasi``: give the plug-in WASI preview 1 (off by default).
    - ``functions``: :class:`HostFunction` objects the plug-in may import.
    - ``fuel_limit``: at most this many units of work (about one per wasm instruction) per call.
    - ``output_limit``: at most this many bytes of output per streaming call
      (:meth:`call_stream`); unlimited by default, as a streaming call's output is not held.

    Use it as a context manager, or call :meth:`close`; a plug-in the garbage collector
    collects is freed too. Calls from several threads take turns; the GIL is released while
    the plug-in runs. :meth:`call_async` calls take turns with them too, in order: for calls
    that run side by side, use one instance each (:meth:`CompiledPlugin.instance`) or
    :meth:`CompiledPlugin.call_fresh_async`.
    """

    def __init__(
        self,
        source: Source,
        *,
        wasi: bool = False,
        functions: Iterable[HostFunction] = (),
        fuel_limit: Optional[int] = None,
        output_limit: Optional[int] = None,
        _native_plugin: Any = None,
    ) -> None:
        if _native_plugin is not None:
            self._plugin = _native_plugin
            self._functions: List[HostFunction] = list(functions)
            return
        self._functions = list(functions)
        self._plugin = _native.NativePlugin(
            _native_source(source), bool(wasi), _natives(self._functions), fuel_limit, output_limit
        )

    @classmethod
    def from_file(cls, path: Union[str, "os.PathLike[str]"], **options: Any) -> "Plugin":
        """Loads the file at ``path``: a wasm binary, WAT text or a manifest (JSON or TOML),
        told apart by content. A manifest file's relative ``wasm`` paths and ``allowed_paths``
        are relative to its folder, not to the working directory. A file that cannot be read
        raises :class:`LoadError` (``kind`` ``"manifest"``)."""
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"a plug-in path is str or os.PathLike, not {type(path).__name__}")
        return cls(path, **options)

    # -- calls -------------------------------------------------------------------------------

    def call(self, function: str, data: Input = b"", *, host_context: Any = None) -> bytes:
        """Calls ``function`` with ``data`` and returns its output bytes.

        ``host_context`` is handed to host functions for this call
        (``current_plugin.host_context``). Raises a :class:`PlinthError` subclass on failure.
        """
        return self._plugin.call(function, _input_bytes(data), host_context)

    def call_str(self, function: str, data: Input = b"", *, host_context: Any = None) -> str:
        """Like :meth:`call`, with the output decoded as UTF-8."""
        return self.call(function, data, host_context=host_context).decode("utf-8")

    def call_json(self, function: str, value: Any = None, *, host_context: Any = None) -> Any:
        """Sends ``value`` as JSON and parses the output as JSON (None for empty output)."""
        out = self.call(function, json.dumps(value).encode(), host_context=host_context)
        return json.loads(out) if out else None

    async def call_async(self, function: str, data: Input = b"", *, host_context: Any = None) -> bytes:
        """Like :meth:`call`, awaited on the running asyncio event loop: the plug-in runs on a
        runtime thread without the GIL while the loop serves other tasks, and its ``async def``
        host functions run on this loop. Calls on one plug-in take turns (they queue, in
        order); while one runs, this plug-in's sync methods raise :class:`PlinthError` with
        ``kind`` ``"busy"`` if it has async host functions, rather than block the loop.

        Cancelling the awaiting task (``task.cancel()``, ``asyncio.wait_for``) stops the call
        and cancels a host coroutine it waits for; the plug-in stays usable (its instance is
        replaced at the next call, vars kept). ``timeout_ms`` and :meth:`cancel_handle` work as
        for :meth:`call`, also while a host function awaits. A host function that calls back
        into this plug-in fails the call with :class:`HostFunctionError` caused by
        :class:`ReentrantCallError`.
        """
        return await self._plugin.call_async(function, _input_bytes(data), host_context)

    async def call_str_async(self, function: str, data: Input = b"", *, host_context: Any = None) -> str:
        """Like :meth:`call_async`, with the output decoded as UTF-8."""
        out = await self.call_async(function, data, host_context=host_context)
        return out.decode("utf-8")

    async def call_json_async(self, function: str, value: Any = None, *, host_context: Any = None) -> Any:
        """Like :meth:`call_json`, awaited as :meth:`call_async` is."""
        out = await self.call_async(function, json.dumps(value).encode(), host_context=host_context)
        return json.loads(out) if out else None

    # -- streams -----------------------------------------------------------------------------

    def call_stream(
        self, function: str, input: Any, output: Any, *, host_context: Any = None
    ) -> StreamStats:
        """Calls ``function`` with ``input`` and ``output`` as its streams, and returns
        :class:`StreamStats`.

        - ``input``: a binary file-like object (``read(n)``: an open file, ``io.BytesIO``, a
          pipe, ``sys.stdin.buffer``), an iterable of bytes chunks (a generator, a list), or
          whole ``bytes``/``str``.
        - ``output``: a binary file-like object (``write(b)``, and ``flush()`` after each chunk
          if it has one), or a callable given each chunk (``chunks.append``).

        A plug-in that streams (``plinth_pdk::stream``, the C PDK's stream functions) reads the
        input a chunk at a time as it asks for it, and each chunk it writes reaches ``output``
        before the plug-in goes on: a slow writer slows the plug-in and memory stays bounded. A
        plug-in that does not stream gets the whole input read first and its output written at
        the end. The GIL is released while the plug-in runs and taken for each read and write.

        An exception raised by ``input`` or ``output`` fails the call with
        :class:`StreamError`, whose ``__cause__`` is that exception (``KeyboardInterrupt`` and
        ``SystemExit`` are raised as they are). Output past ``output_limit`` also raises
        :class:`StreamError`, after the bytes up to the limit were written. The call's other
        limits (``timeout_ms``, fuel, memory) apply as for :meth:`call`; a read that blocks
        holds the call, as the deadline is checked between reads. ``host_context`` is as for
        :meth:`call`.
        """
        return StreamStats(
            *self._plugin.call_stream(function, _stream_input(input), output, host_context)
        )

    async def call_stream_async(
        self, function: str, source: Any, sink: Any, *, host_context: Any = None
    ) -> StreamStats:
        """:meth:`call_stream` awaited on the running event loop.

        - ``source``: an async iterable of bytes chunks (an async generator, an aiohttp body),
          an object with ``async read(n)`` (``asyncio.StreamReader``), or anything
          :meth:`call_stream` takes (read on a worker thread).
        - ``sink``: an object with ``write(b)``, sync or async (an ``asyncio.StreamWriter`` is
          ``drain()``-ed after each chunk), or a callable taking bytes, sync or async
          (``queue.put``). It runs on this event loop, and the plug-in waits for it.

        The plug-in runs on a worker thread without the GIL; its reads and writes wait for
        the coroutines on this loop. Cancelling the awaiting task stops the call. Raises as
        :meth:`call_stream` does. A plug-in with async host functions cannot be called this
        way.
        """
        loop = asyncio.get_running_loop()
        bridge = _LoopBridge(loop, source, sink)
        cancel = self._plugin.cancel_handle()
        work = loop.run_in_executor(
            None, self._plugin.call_stream, function, bridge.input, bridge.output, host_context
        )
        try:
            return StreamStats(*await work)
        except asyncio.CancelledError:
            bridge.abort()
            cancel.cancel()
            raise

    async def stream(
        self, function: str, source: Any, *, host_context: Any = None
    ) -> AsyncIterator[bytes]:
        """The plug-in's output as an async iterator of chunks, as it produces them::

            async for chunk in plugin.stream("grep", request.content):
                await response.write(chunk)

        ``source`` is what :meth:`call_stream_async` takes. The plug-in waits while the
        consumer has a chunk it has not taken yet. Leaving the loop early (``break``) stops
        the call; a failed call raises from the iteration after the chunks it delivered.
        """
        chunks: "asyncio.Queue[bytes]" = asyncio.Queue(maxsize=1)
        call = asyncio.ensure_future(
            self.call_stream_async(function, source, chunks.put, host_context=host_context)
        )
        get: Optional["asyncio.Future[bytes]"] = None
        try:
            while True:
                get = asyncio.ensure_future(chunks.get())
                await asyncio.wait({get, call}, return_when=asyncio.FIRST_COMPLETED)
                if get.done():
                    yield get.result()
                    continue
                get.cancel()
                while not chunks.empty():
                    yield chunks.get_nowait()
                call.result()
                return
        finally:
            if get is not None and not get.done():
                get.cancel()
            if not call.done():
                call.cancel()
                try:
                    await call
                except BaseException:
                    pass

    # -- state -------------------------------------------------------------------------------

    def function_exists(self, name: str) -> bool:
        return self._plugin.function_exists(name)

    @property
    def functions(self) -> List[str]:
        """The plug-in's callable exports."""
        return self._plugin.functions()

    def update_config(self, changes: Optional[Mapping[str, Optional[Any]]] = None, **kw: Any) -> None:
        """Sets config keys (values become ``str``) or removes them (``None``), from the next call."""
        merged: Dict[str, Optional[str]] = {}
        for k, v in {**(changes or {}), **kw}.items():
            merged[str(k)] = None if v is None else str(v)
        self._plugin.update_config(merged)

    @property
    def config(self) -> Dict[str, str]:
        return self._plugin.config()

    def var_get(self, key: str) -> Optional[bytes]:
        """A var the plug-in stored (``var_set``), or None."""
        return self._plugin.var_get(key)

    def var_set(self, key: str, value: Optional[Input]) -> None:
        """Sets a var (within ``memory.max_var_bytes``), or removes it with None."""
        self._plugin.var_set(key, None if value is None else _input_bytes(value))

    def reset(self) -> None:
        """Frees the plug-in's Extism memory from earlier calls."""
        self._plugin.reset()

    def cancel_handle(self) -> CancelHandle:
        """A handle whose ``cancel()`` stops this plug-in's running call from any thread."""
        return self._plugin.cancel_handle()

    @property
    def id(self) -> str:
        return self._plugin.id

    @property
    def closed(self) -> bool:
        return self._plugin.closed

    def close(self) -> None:
        """Closes the plug-in without waiting. Idempotent; later calls raise
        :class:`ClosedError`. A call running on another thread finishes (cancel it to end it
        early) and the instance is freed after it."""
        self._plugin.close()

    def __enter__(self) -> "Plugin":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<plinth.Plugin {self.id} {state}>"


class CompiledPlugin:
    """A plug-in compiled once, to make many instances cheaply. Safe to share between threads.

    Takes the same arguments as :class:`Plugin`; :meth:`instance` returns a new
    :class:`Plugin`.
    """

    def __init__(
        self,
        source: Source,
        *,
        wasi: bool = False,
        functions: Iterable[HostFunction] = (),
        fuel_limit: Optional[int] = None,
        output_limit: Optional[int] = None,
    ) -> None:
        self._functions = list(functions)
        self._compiled = _native.NativeCompiled(
            _native_source(source), bool(wasi), _natives(self._functions), fuel_limit, output_limit
        )

    @classmethod
    def from_artifact(
        cls,
        artifact: Union[bytes, bytearray, memoryview],
        key: Union[bytes, bytearray, memoryview],
        *,
        wasi: bool = False,
        functions: Iterable[HostFunction] = (),
        fuel_limit: Optional[int] = None,
        output_limit: Optional[int] = None,
    ) -> "CompiledPlugin":
        """Loads a precompiled artifact (from :meth:`compile_artifact` or ``plinth compile``)
        without compiling. Its signature must verify under ``key``, the key it was made with:
        bytes that are not an artifact, an artifact altered after it was made, or one signed
        with another key raise :class:`LoadError` with ``kind`` ``"artifact"``, and nothing of
        it runs. An artifact made by another Plinth version or with other settings (a
        ``fuel_limit`` on one side only) is compiled from the wasm it holds instead
        (:attr:`is_precompiled` is then False). The options are those of the constructor."""
        if not isinstance(artifact, (bytes, bytearray, memoryview)):
            raise TypeError(f"an artifact is bytes, not {type(artifact).__name__}")
        self = cls.__new__(cls)
        self._functions = list(functions)
        self._compiled = _native.NativeCompiled.from_artifact(
            bytes(artifact),
            _key_bytes(key),
            bool(wasi),
            _natives(self._functions),
            fuel_limit,
            output_limit,
        )
        return self

    @staticmethod
    def compile_artifact(
        source: Source,
        key: Union[bytes, bytearray, memoryview],
        *,
        wasi: bool = False,
        functions: Iterable[HostFunction] = (),
        fuel_limit: Optional[int] = None,
    ) -> bytes:
        """Compiles a plug-in ahead of time into a precompiled artifact signed with ``key`` (at
        least 16 secret bytes; 32 random bytes such as ``os.urandom(32)`` are best), as
        ``plinth compile`` does. ``source`` is what the constructor takes (a manifest may have
        only its main module); the host functions and WASI are checked as at load time, and
        the artifact holds neither. Whoever holds the key can make artifacts that a host
        holding it runs as native code: keep it as private as the host's own binaries."""
        functions = list(functions)
        return _native.NativeCompiled.compile_artifact(
            _native_source(source), _key_bytes(key), bool(wasi), _natives(functions), fuel_limit
        )

    @property
    def is_precompiled(self) -> bool:
        """Whether the native code came from a precompiled artifact rather than compiling."""
        return self._compiled.is_precompiled

    def call_fresh(self, function: str, data: Input = b"", *, host_context: Any = None) -> bytes:
        """Calls ``function`` on a fresh instance made for this call alone, and returns its
        output bytes. Nothing one call leaves behind (memory, globals, vars) is seen by the
        next, which isolates requests or tenants from each other; a fresh instance costs
        microseconds (instances are pooled). Safe to call from many threads at once; the GIL is
        released while the plug-in runs. Raises as :meth:`Plugin.call` does."""
        return self._compiled.call_fresh(function, _input_bytes(data), host_context)

    async def call_fresh_async(
        self, function: str, data: Input = b"", *, host_context: Any = None
    ) -> bytes:
        """:meth:`call_fresh` awaited as :meth:`Plugin.call_async` is. Each call has an
        instance of its own, so many calls (``asyncio.gather``) run and await their host
        functions at the same time."""
        return await self._compiled.call_fresh_async(function, _input_bytes(data), host_context)

    def instance(self) -> Plugin:
        """A new, independent instance (its own memory, vars and config)."""
        return Plugin(b"", functions=self._functions, _native_plugin=self._compiled.instantiate())

    @property
    def functions(self) -> List[str]:
        return self._compiled.functions()


class Reload:
    """What a :meth:`HotPlugin.check` did.

    ``status`` is ``"unchanged"`` (the files hold the bytes already loaded or already tried),
    ``"swapped"`` (new code runs from the next call) or ``"failed"`` (the new code cannot run;
    the old code keeps running and ``error`` says why). ``generation`` is the generation of
    the code running after the check (1 at the first load).
    """

    __slots__ = ("status", "generation", "error")

    def __init__(self, status: str, generation: int, error: Optional[PlinthError]) -> None:
        self.status = status
        self.generation = generation
        self.error = error

    @property
    def swapped(self) -> bool:
        return self.status == "swapped"

    @property
    def failed(self) -> bool:
        return self.status == "failed"

    def __repr__(self) -> str:
        extra = f", error={self.error!r}" if self.error is not None else ""
        return f"Reload({self.status!r}, generation={self.generation}{extra})"


class HotPlugin:
    """A plug-in that follows its file: write a new version and it is swapped in between two
    calls, with the plug-in's vars (Rust: ``plinth::reload::HotPlugin``; docs/hot-reload.md).

    ``HotPlugin(path, *, wasi=False, functions=(), fuel_limit=None, check_interval=0.25,
    require_exports=())``

    - ``path``: a wasm binary, WAT text or a manifest (JSON or TOML); for a manifest, the
      manifest and the module files it names are watched. Every version is loaded with the
      same ``wasi``, ``functions`` and ``fuel_limit``.
    - ``check_interval``: :meth:`call` looks at the files at most once per this many seconds
      (0: before every call; None: never, call :meth:`check` yourself).
    - ``require_exports``: a version without one of these exports is refused.

    A look is one ``stat`` per file while nothing changes; bytes that did not change (a
    ``touch``) do not reload. The new code is compiled while calls go on with the old code; a
    call in flight finishes on the old code. A version that cannot run (bad wasm, an empty or
    missing file, a start function that traps) is refused: the old code keeps running,
    :meth:`check` returns ``Reload("failed", error=...)`` and :attr:`last_error` keeps the
    error until a reload succeeds. Calls from several threads take turns on one instance.
    Host functions must be synchronous.
    """

    def __init__(
        self,
        path: Union[str, "os.PathLike[str]"],
        *,
        wasi: bool = False,
        functions: Iterable[HostFunction] = (),
        fuel_limit: Optional[int] = None,
        check_interval: Optional[float] = 0.25,
        require_exports: Iterable[str] = (),
    ) -> None:
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"a hot plug-in is loaded from a path (str or os.PathLike), not {type(path).__name__}")
        self._functions = list(functions)
        self._hot = _native.NativeHotPlugin(
            os.fspath(path),
            bool(wasi),
            _natives(self._functions),
            fuel_limit,
            None if check_interval is None else float(check_interval),
            [str(name) for name in require_exports],
        )

    def call(self, function: str, data: Input = b"", *, host_context: Any = None) -> bytes:
        """Calls ``function`` on the code loaded now (after a check, if one is due) and returns
        its output bytes. Raises as :meth:`Plugin.call` does."""
        return self._hot.call(function, _input_bytes(data), host_context)

    def call_str(self, function: str, data: Input = b"", *, host_context: Any = None) -> str:
        """Like :meth:`call`, with the output decoded as UTF-8."""
        return self.call(function, data, host_context=host_context).decode("utf-8")

    def call_json(self, function: str, value: Any = None, *, host_context: Any = None) -> Any:
        """Sends ``value`` as JSON and parses the output as JSON (None for empty output)."""
        out = self.call(function, json.dumps(value).encode(), host_context=host_context)
        return json.loads(out) if out else None

    def check(self) -> Reload:
        """Looks at the files now and, if their bytes changed, compiles the new code and swaps
        it in. Whatever was written before this call is seen."""
        return Reload(*self._hot.check())

    def reload(self) -> Reload:
        """Compiles and swaps in the files' current bytes even if they did not change."""
        return Reload(*self._hot.reload())

    @property
    def generation(self) -> int:
        """The generation of the code running: 1 at the first load, one more at each swap."""
        return self._hot.generation

    @property
    def last_error(self) -> Optional[PlinthError]:
        """Why the last reload failed; None once one succeeds."""
        return self._hot.last_error

    @property
    def path(self) -> str:
        return os.fspath(self._hot.path)

    @property
    def watched_files(self) -> List[str]:
        return [os.fspath(p) for p in self._hot.watched_files()]

    def function_exists(self, name: str) -> bool:
        return self._hot.function_exists(name)

    @property
    def functions(self) -> List[str]:
        """The callable exports of the code running now."""
        return self._hot.functions()

    def var_get(self, key: str) -> Optional[bytes]:
        """A var the plug-in stored, or None; vars carry over to new code."""
        return self._hot.var_get(key)

    def var_set(self, key: str, value: Optional[Input]) -> None:
        """Sets a var (within ``memory.max_var_bytes``), or removes it with None."""
        self._hot.var_set(key, None if value is None else _input_bytes(value))

    def __repr__(self) -> str:
        return f"<plinth.HotPlugin {self.path!r} generation {self.generation}>"
