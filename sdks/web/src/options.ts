// The types of the public API's arguments: where a plug-in comes from, how it is loaded, what
// a call takes. Apart from the classes that use them, so that compiling (compile.ts) and
// instantiating (plugin.ts) share them without importing each other.
import type { Logger, LogLevel } from './host.js';
import type { HostFunction } from './hostfn.js';
import type { KernelSource } from './kernel.js';
import type { Manifest } from './manifest.js';
import type { WasiOptions } from './wasi.js';

/**
 * What a plug-in is loaded from: wasm bytes, manifest JSON bytes, a manifest, the URL of a
 * module, or (Node.js) the file: URL of a module or a manifest file.
 */
export type PluginSource = Uint8Array | ArrayBuffer | Manifest | URL;

/** A call's input: bytes, or a string sent as UTF-8. */
export type CallInput = Uint8Array | string | undefined;

export interface CallOptions {
  /**
   * Cancels the call (kind `cancelled`): while it waits for the calls before it, it never runs;
   * while the plug-in awaits an async host function (JSPI) or runs in a worker (`timeoutMs`),
   * the instance is dropped and the next call gets a fresh one, vars kept. A synchronous
   * plug-in on the calling thread cannot be interrupted (README: Cancel).
   */
  signal?: AbortSignal;
}

/**
 * Config changes for `updateConfig`, as in @plinth/node: a key set to a string (numbers,
 * booleans and BigInts become their strings) is set; one set to `null` or `undefined` is removed.
 */
export type ConfigChanges = Record<string, string | number | boolean | bigint | null | undefined>;
/** A config value `setConfig` takes: a string, or a number, boolean or BigInt made a string. */
export type ConfigValue = string | number | boolean | bigint;

export interface PluginOptions {
  /** Host functions the plug-in may import. */
  functions?: HostFunction[];
  /** Config keys, over the manifest's `config`. */
  config?: Record<string, string>;
  /** Host globs, over the manifest's `allowed_hosts`. */
  allowedHosts?: string[];
  /**
   * Over the manifest's `timeout_ms`: the plug-in runs in a worker, terminated at the deadline
   * (kind `timeout`); the next call starts a fresh instance (see README: Timeouts).
   */
  timeoutMs?: number;
  /** WASI preview 1 for plug-ins built for wasm32-wasip1 (see README: WASI). */
  wasi?: boolean | WasiOptions;
  /** Gets the plug-in's log lines; without one, the plug-in's log level is "off". */
  logger?: Logger;
  /** The least level passed to `logger`; `info` by default. */
  logLevel?: LogLevel;
  /** The kernel's bytes, module or URL, when it is not next to the package. */
  kernel?: KernelSource;
}
