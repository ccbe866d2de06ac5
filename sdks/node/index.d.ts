// Plinth's Node.js host SDK. The API of the native addon is in binding.d.ts, generated from
// the Rust sources by napi-rs; PlinthError is defined in index.js.
export * from './binding'

/** What kind of failure a {@link PlinthError} reports. */
export type PlinthErrorKind =
  /** The manifest is malformed, has unknown fields, or names a file that cannot be read. */
  | 'Manifest'
  /** A module is not valid wasm or WAT. */
  | 'Compile'
  /** An import is missing (a host function, WASI) or the plug-in cannot be instantiated. */
  | 'Link'
  /** The called function is not exported. */
  | 'FunctionNotFound'
  /** The export exists but is not a plug-in function. */
  | 'NotCallable'
  /** The plug-in trapped (unreachable, out-of-bounds access, stack overflow, ...). */
  | 'Trap'
  /** The plug-in returned an error (its code is `code`). */
  | 'Guest'
  /** The plug-in called `proc_exit` with a non-zero code. */
  | 'Exit'
  /** The call ran past the manifest's `timeout_ms`. */
  | 'Timeout'
  /** `cancel()` stopped the call. */
  | 'Cancelled'
  /** The plug-in hit `memory.max_pages`. */
  | 'OutOfMemory'
  /** The call used up `fuelLimit`. */
  | 'OutOfFuel'
  /** An HTTP request to a host outside `allowed_hosts`. */
  | 'HttpDenied'
  /** An HTTP request failed. */
  | 'Http'
  /** The plug-in's vars outgrew `memory.max_var_bytes`. */
  | 'VarStoreFull'
  /** A host function threw (see `cause`) or returned a wrong result. */
  | 'HostFunction'
  /** A host function called back into the plug-in that called it. */
  | 'Reentrant'
  /** WASI could not be set up (an `allowed_paths` directory is missing, ...). */
  | 'Wasi'
  /** Data could not be converted (`callJson` on output that is not JSON). */
  | 'Convert'
  /** A `CurrentPlugin` operation on a bad handle, or memory exhausted there. */
  | 'Memory'
  /** The plug-in (or a `CurrentPlugin` after its host function returned) is closed. */
  | 'Closed'
  /** `callSync`, `reset` or `updateConfig` while a `call()` runs on the plug-in. */
  | 'Busy'
  /** A plug-in file could not be read. */
  | 'Io'
  | 'Other'

/**
 * The error of every failure in Plinth. `message` is the runtime's message, which says what
 * happened and what to do about it.
 */
export declare class PlinthError extends Error {
  readonly name: 'PlinthError'
  /** What kind of failure this is. */
  readonly kind: PlinthErrorKind
  /**
   * The failed call's return code: the plug-in's own code when it gave one (42 for
   * fail_with_code.wasm), 134 for a trap, -1 for errors the host produced (timeout, cancel,
   * memory, missing function, host function error). `null` for errors outside calls (loading,
   * config, closed plug-ins).
   */
  readonly code: number | null
  constructor(message: string, kind: PlinthErrorKind, code?: number | null, cause?: unknown)
}
