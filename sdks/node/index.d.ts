// Plinth's Node.js host SDK. The API of the native addon is in binding.d.ts, generated from
// the Rust sources by napi-rs; PlinthError is defined in index.js.
export * from './binding'

import type { CallOptions, StreamStats } from './binding'

/** A streaming call's input: a Readable, any iterable or async iterable of chunks, or one chunk. */
export type StreamInput =
  | NodeJS.ReadableStream
  | AsyncIterable<Buffer | Uint8Array | string>
  | Iterable<Buffer | Uint8Array | string>
  | Buffer
  | Uint8Array
  | string

/** A streaming call's output: a Writable, or a function given each chunk (awaited if it returns a Promise). */
export type StreamOutput = NodeJS.WritableStream | ((chunk: Buffer) => void | Promise<void>)

/** Options of {@link Plugin.callStream}. */
export interface CallStreamOptions extends CallOptions {
  /** End the Writable (and wait for it to finish) when the call succeeds; default true. */
  end?: boolean
}

declare module './binding' {
  interface Plugin {
    /**
     * Calls `name` with `input` and `output` as its streams; resolves to what it moved.
     *
     * The input is read one chunk at a time, as the plug-in takes it; each chunk the plug-in
     * writes goes to `output` while it runs, and when `write()` returns false the plug-in
     * waits for `'drain'`. A plug-in that does not stream gets its whole input first and its
     * output at the end. Rejects with a `PlinthError` of kind `"stream"` when the input or
     * output fails (their error is the `cause`) or the output goes over `outputLimit`, of kind
     * `"cancelled"` when `signal` aborts, and as `call()` does otherwise. The Writable is
     * ended on success (unless `end: false`); a Readable the plug-in did not read to the end
     * is destroyed, as `stream.pipeline` does.
     *
     * ```js
     * await plugin.callStream('grep', fs.createReadStream('big.log'), fs.createWriteStream('errors.log'))
     * ```
     */
    callStream(name: string, input: StreamInput, output: StreamOutput, options?: CallStreamOptions | null): Promise<StreamStats>
  }
}

/**
 * What kind of failure a {@link PlinthError} reports: the runtime's error kind
 * (`plinth::ErrorKind`), the same name in every Plinth SDK. The comment of each gives its
 * number, {@link PlinthError.kindCode}.
 */
export type PlinthErrorKind =
  /** 1: the manifest could not be read or parsed, or is invalid (unknown field, hash mismatch, missing file). */
  | 'manifest'
  /** 2: a module is not valid wasm or WAT. */
  | 'compile'
  /** 3: a module is over a compile limit (size, function count, deadline). */
  | 'compile_limit'
  /** 4: an import is missing (a host function, WASI) or the plug-in cannot be instantiated. */
  | 'link'
  /** 5: the called function is not exported. */
  | 'function_not_found'
  /** 6: the export exists but is not a plug-in function. */
  | 'not_callable'
  /** 7: the plug-in trapped (unreachable, out-of-bounds access, stack overflow, ...). */
  | 'trap'
  /** 8: the plug-in returned an error (its code is `code`). */
  | 'guest'
  /** 9: the plug-in called `proc_exit` with a non-zero code. */
  | 'exit'
  /** 10: the call ran past the manifest's `timeout_ms`. */
  | 'timeout'
  /** 11: `cancel()` or the call's `signal` (AbortSignal) stopped the call. */
  | 'cancelled'
  /** 12: the plug-in hit `memory.max_pages`. */
  | 'out_of_memory'
  /** 13: the call used up `fuelLimit`. */
  | 'out_of_fuel'
  /** 14: an HTTP request to a host outside `allowed_hosts`. */
  | 'http_denied'
  /** 15: an HTTP request failed. */
  | 'http'
  /** 16: the plug-in's vars outgrew `memory.max_var_bytes`. */
  | 'var_store_full'
  /** 17: a host function threw (see `cause`) or returned a wrong result. */
  | 'host_function'
  /** 18: a call into a plug-in from one of its own host functions. */
  | 'reentrant'
  /** 19: WASI could not be set up (an `allowed_paths` directory is missing, ...). */
  | 'wasi'
  /** 20: data could not be converted (`callJson` on output that is not JSON). */
  | 'convert'
  /** 21: a `CurrentPlugin` operation on a bad handle, or memory exhausted there. */
  | 'memory'
  /** 22: the plug-in (or a `CurrentPlugin` after its host function returned) is closed. */
  | 'closed'
  /** 23: `callSync`, `reset` or `updateConfig` while a `call()` runs on the plug-in. */
  | 'busy'
  /** 24: anything else. */
  | 'other'
  /** 25: a precompiled artifact was refused (not an artifact, altered, signed with another key, compiled from another module, a key under 16 bytes). */
  | 'artifact'
  /** 26: a streaming call's input or output failed (see `cause`), its output went over `outputLimit`, or its input was too large for a plug-in that does not stream. */
  | 'stream'

/**
 * The error of every failure in Plinth. `message` is the runtime's message, which says what
 * happened and what to do about it.
 */
export declare class PlinthError extends Error {
  readonly name: 'PlinthError'
  /** What kind of failure this is: the runtime's kind name. */
  readonly kind: PlinthErrorKind
  /** The stable number of {@link kind} (1 for `'manifest'` ... 26 for `'stream'`). */
  readonly kindCode: number
  /**
   * The Extism return code: the plug-in's own code when it gave one (42 for
   * fail_with_code.wasm), 134 for a trap, -1 for everything else (a failure the host found, a
   * failure to load, a closed plug-in).
   */
  readonly code: number
  constructor(message: string, kind: PlinthErrorKind, code?: number, cause?: unknown)
}
