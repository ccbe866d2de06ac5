// Plinth's Node.js host SDK. The API of the native addon is in binding.d.ts, generated from
// the Rust sources by napi-rs; PlinthError is defined in index.js.
export * from './binding'

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

/**
 * The error of every failure in Plinth. `message` is the runtime's message, which says what
 * happened and what to do about it.
 */
export declare class PlinthError extends Error {
  readonly name: 'PlinthError'
  /** What kind of failure this is: the runtime's kind name. */
  readonly kind: PlinthErrorKind
  /** The stable number of {@link kind} (1 for `'manifest'` ... 25 for `'artifact'`). */
  readonly kindCode: number
  /**
   * The Extism return code: the plug-in's own code when it gave one (42 for
   * fail_with_code.wasm), 134 for a trap, -1 for everything else (a failure the host found, a
   * failure to load, a closed plug-in).
   */
  readonly code: number
  constructor(message: string, kind: PlinthErrorKind, code?: number, cause?: unknown)
}
