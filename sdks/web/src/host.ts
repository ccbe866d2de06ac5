// The host side of the ABI: `extism:host/env` (and its pre-1.0 names in `env`), Plinth's bulk
// copies in `plinth:host/env`, over Extism memory. Ownership follows the Extism reference:
// config_get, var_get, var_set, http_request and the log_* calls free the handles they get.
import { PlinthError } from './errors.js';
import { HttpPolicy, parseRequest, send, type GuestRequest, type HttpResponse } from './http.js';
import { suspending } from './jspi.js';
import type { ExtismMemory } from './memory.js';

export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error';
/** Gets each line a plug-in logs, unescaped. */
export type Logger = (level: LogLevel, message: string) => void;

const LEVELS: LogLevel[] = ['trace', 'debug', 'info', 'warn', 'error'];
/** The time limit of a whole request, as the native runtime's default. */
export const HTTP_TIMEOUT_MS = 30_000;

/** A synchronous fetch: in a plug-in's worker, the main thread sends the request while it waits. */
export type SyncFetch = (request: GuestRequest, url: URL, body: Uint8Array | undefined) => HttpResponse;
let syncFetch: SyncFetch | undefined;

/** Set in a plug-in's worker (without JSPI there, http_request waits for the main thread). */
export function useSyncFetch(f: SyncFetch | undefined): void {
  syncFetch = f;
}

let pluginWorker = false;

/** Marks this thread as a plug-in's worker (src/worker.ts), which runs its plug-in itself. */
export function markPluginWorker(): void {
  pluginWorker = true;
}

/** Whether this thread is a plug-in's worker: its plug-in never moves to another worker. */
export function inPluginWorker(): boolean {
  return pluginWorker;
}

/** A plug-in's vars, kept across its instances; counts its bytes, as `memory.max_var_bytes` caps them. */
export class VarStore extends Map<string, Uint8Array> {
  /** Bytes of the keys (UTF-8) and values. */
  bytes = 0;
  /** Bumped by every change, so that a worker sends its vars back only when they changed. */
  version = 0;

  override set(key: string, value: Uint8Array): this {
    return this.store(key, value, this.bytes + this.growth(key, value));
  }

  /** How many bytes setting `key` to `value` adds (negative when it shrinks). */
  private growth(key: string, value: Uint8Array): number {
    const old = super.get(key);
    return (old === undefined ? utf8Length(key) : -old.length) + value.length;
  }

  /** Sets `key`, which makes the store `bytes` long. */
  private store(key: string, value: Uint8Array, bytes: number): this {
    this.bytes = bytes;
    this.version++;
    return super.set(key, value);
  }

  override delete(key: string): boolean {
    const old = super.get(key);
    if (old === undefined) return false;
    this.bytes -= utf8Length(key) + old.length;
    this.version++;
    return super.delete(key);
  }

  override clear(): void {
    this.bytes = 0;
    this.version++;
    super.clear();
  }

  /**
   * Stores a var (or removes it when `value` is undefined) within `maxBytes`
   * (`memory.max_var_bytes`), for the plug-in's var_set and the host's varSet alike.
   */
  put(key: string, value: Uint8Array | undefined, maxBytes: number): void {
    if (value === undefined) {
      this.delete(key);
      return;
    }
    const needed = this.bytes + this.growth(key, value);
    if (needed > maxBytes) {
      throw new PlinthError('var_store_full', `the var store is full: storing this value would use ${needed} bytes, over \`memory.max_var_bytes\` = ${maxBytes}; raise it in the manifest`);
    }
    this.store(key, value, needed);
  }
}

function utf8Length(text: string): number {
  return new TextEncoder().encode(text).length;
}

/** One instance's call state: what the host functions read and write. */
export class HostState {
  mem: ExtismMemory | undefined;
  /** The output block (`output_set`), as unsigned numbers. */
  outputOffset = 0;
  outputLength = 0;
  /** Output straight from the plug-in's memory (`plinth:host/env::output_direct`). */
  outputDirect: [number, number] | undefined;
  error = 0;
  httpStatus = 0;
  httpHeaders: Record<string, string> | undefined;
  /** The plug-in's own `memory` export, for the bulk copies. */
  pluginMemory: WebAssembly.Memory | undefined;
  /**
   * Set when the instance is dropped while its call is suspended (a cancelled JSPI call): if
   * the plug-in resumes, its next host call fails instead of touching the plug-in's vars.
   */
  dropped = false;

  constructor(
    readonly config: Map<string, string>,
    readonly vars: VarStore,
    readonly maxVarBytes: number,
    readonly http: HttpPolicy,
    readonly maxHttpResponseBytes: number,
    readonly logger: Logger | undefined,
    readonly logLevel: LogLevel,
  ) {}

  m(): ExtismMemory {
    if (this.dropped) throw new PlinthError('cancelled', 'this instance of the plug-in was dropped (its call was cancelled); it makes no more host calls');
    if (this.mem === undefined) throw new PlinthError('memory', 'the plug-in used Extism memory before it was set up (during its start function)');
    return this.mem;
  }

  /** Clears the state of the previous call. */
  reset(): void {
    this.outputOffset = 0;
    this.outputLength = 0;
    this.outputDirect = undefined;
    this.error = 0;
  }

  /** Stores a var (or removes it when `value` is undefined) within `maxVarBytes`. */
  setVar(key: string, value: Uint8Array | undefined): void {
    if (this.dropped) throw new PlinthError('cancelled', 'this instance of the plug-in was dropped (its call was cancelled); it sets no more vars');
    this.vars.put(key, value, this.maxVarBytes);
  }
}

/** An http_request's start: takes its request and body blocks, clears the last answer, and
 * parses the request (checking the allow-list). */
function startRequest(s: HostState, req: bigint, body: bigint): { request: GuestRequest; url: URL; payload: Uint8Array | undefined } {
  const mem = s.m();
  const json = mem.take(req);
  const payload = body === 0n ? undefined : mem.take(body);
  s.httpStatus = 0;
  s.httpHeaders = undefined;
  return { ...parseRequest(json, s.http), payload };
}

/** An http_request's end: keeps the status and headers, and hands the body to the plug-in. */
function answer(s: HostState, response: HttpResponse): bigint {
  s.httpStatus = response.status;
  s.httpHeaders = response.headers;
  return response.body.length === 0 ? 0n : allocOrFail(s.m(), response.body, 'HTTP response body');
}

function utf8(bytes: Uint8Array, what: string): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new PlinthError('other', `${what} is not valid UTF-8`);
  }
}

/** Allocates host-produced data; a refused allocation fails the call clearly rather than giving 0. */
function allocOrFail(mem: ExtismMemory, bytes: Uint8Array, what: string): bigint {
  const h = mem.allocBytes(bytes);
  if (typeof h === 'string') throw new PlinthError('memory', `no room in plug-in memory for the ${what} (${bytes.length} bytes)`);
  return BigInt(h);
}

type Fn = (...args: never[]) => unknown;

/**
 * An i64 from the plug-in as the unsigned number it means, without the BigInts of
 * `BigInt.asUintN` (this runs on every call); exact below 2^53, and anything larger is out of
 * bounds of a 32-bit memory either way.
 */
function unsigned(v: bigint): number {
  const n = Number(v);
  return n < 0 ? n + 2 ** 64 : n;
}

/** The `extism:host/env` functions. */
function envFunctions(s: HostState, async: boolean): Record<string, Fn | object> {
  const alloc = (n: bigint): bigint => {
    const h = s.m().alloc(unsigned(n));
    return typeof h === 'string' ? 0n : BigInt(h);
  };
  const length = (h: bigint): bigint => BigInt(s.m().length(h));
  const log = (level: LogLevel) => (h: bigint) => {
    const mem = s.m();
    if (s.logger !== undefined && LEVELS.indexOf(level) >= LEVELS.indexOf(s.logLevel)) {
      s.logger(level, new TextDecoder().decode(mem.block(h)));
    }
    mem.free(h);
  };
  return {
    alloc,
    free: (h: bigint) => s.m().free(h),
    length,
    length_unsafe: length,
    load_u8: (a: bigint) => s.m().loadU8(a),
    load_u64: (a: bigint) => s.m().loadU64(a),
    store_u8: (a: bigint, v: number) => s.m().storeU8(a, v),
    store_u64: (a: bigint, v: bigint) => s.m().storeU64(a, v),
    reset: () => {
      const mem = s.m();
      mem.arena.reset();
      s.reset();
      mem.setInput(0, 0);
    },
    memory_bytes: () => BigInt(s.m().size()),
    input_length: () => BigInt(s.m().input[1]),
    input_offset: () => BigInt(s.m().input[0]),
    input_load_u8: (off: bigint) => {
      const mem = s.m();
      const [base, len] = mem.input;
      return off >= 0n && off < BigInt(len) ? mem.loadU8(BigInt(base) + off) : 0;
    },
    input_load_u64: (off: bigint) => {
      const mem = s.m();
      const [base, len] = mem.input;
      const o = BigInt.asUintN(64, off);
      if (o >= BigInt(len)) return 0n;
      // All 8 bytes inside the input: one load (the common case, and the hot one).
      if (o + 8n <= BigInt(len)) return mem.loadU64(BigInt(base) + o);
      const n = Math.min(len - Number(o), 8);
      const bytes = mem.range(BigInt(base) + o, n);
      if (bytes === undefined) return 0n;
      let v = 0n;
      for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(bytes[i]);
      return v;
    },
    input_set: (h: bigint, len: bigint) => {
      const mem = s.m();
      // Only a range inside Extism memory becomes the input; fused reads rely on that.
      if (mem.range(h, len) !== undefined) mem.setInput(Number(h), Number(len));
      else mem.setInput(0, 0);
    },
    output_set: (h: bigint, len: bigint) => {
      s.outputOffset = unsigned(h);
      s.outputLength = unsigned(len);
      s.outputDirect = undefined;
    },
    output_length: () => BigInt(s.outputLength),
    output_offset: () => BigInt(s.outputOffset),
    error_set: (h: bigint) => {
      s.error = unsigned(h);
    },
    error_get: () => BigInt(s.error),
    config_get: (key: bigint) => {
      const mem = s.m();
      const name = utf8(mem.block(key), 'config key');
      const value = s.config.get(name);
      const result = value === undefined ? 0n : allocOrFail(mem, new TextEncoder().encode(value), 'config value');
      mem.free(key);
      return result;
    },
    var_get: (key: bigint) => {
      const mem = s.m();
      const name = utf8(mem.block(key), 'var key');
      const value = s.vars.get(name);
      const result = value === undefined ? 0n : allocOrFail(mem, value, 'var value');
      mem.free(key);
      return result;
    },
    var_set: (key: bigint, val: bigint) => {
      const mem = s.m();
      const name = utf8(mem.take(key), 'var key');
      const value = val === 0n ? undefined : mem.take(val);
      s.setVar(name, value);
    },
    http_request: async
      ? suspending(async (req: bigint, body: bigint) => {
          const { request, url, payload } = startRequest(s, req, body);
          return answer(s, await send(request, url, payload, s.http, s.maxHttpResponseBytes, AbortSignal.timeout(HTTP_TIMEOUT_MS)));
        })
      : (req: bigint, body: bigint) => {
          // The allow-list is checked first, so that a denied host says so on every platform.
          const { request, url, payload } = startRequest(s, req, body);
          if (syncFetch !== undefined) return answer(s, syncFetch(request, url, payload));
          throw new PlinthError('http', 'http_request needs to wait for `fetch`, which a synchronous call cannot do: it needs JSPI (WebAssembly.Suspending, in Chrome 137 and Node.js 25), which this engine lacks, or SharedArrayBuffer, through which the plug-in\'s worker waits for the main thread\'s fetch, which this page lacks: serve it cross-origin isolated (headers Cross-Origin-Opener-Policy: same-origin and Cross-Origin-Embedder-Policy: require-corp), or use @plinth/node or the Rust runtime for plug-ins that make HTTP requests');
        },
    http_status_code: () => s.httpStatus,
    http_headers: () => (s.httpHeaders === undefined ? 0n : allocOrFail(s.m(), new TextEncoder().encode(JSON.stringify(s.httpHeaders)), 'HTTP headers')),
    log_trace: log('trace'),
    log_debug: log('debug'),
    log_info: log('info'),
    log_warn: log('warn'),
    log_error: log('error'),
    get_log_level: () => (s.logger === undefined ? 0x7fffffff : LEVELS.indexOf(s.logLevel)),
  };
}

/** Plinth's bulk copies between the plug-in's memory (`memory`) and Extism memory. */
function plinthFunctions(s: HostState): Record<string, Fn> {
  const plugin = (): Uint8Array => {
    if (s.pluginMemory === undefined) throw new PlinthError('link', 'bulk copies need the plug-in\'s memory exported as `memory`');
    return new Uint8Array(s.pluginMemory.buffer);
  };
  const copyOut = (src: bigint, dst: number, len: number) => {
    if (len === 0) return;
    const from = s.m().range(src, len);
    if (from === undefined) throw new PlinthError('memory', `read of ${len} bytes at ${src} is outside Extism memory`);
    const to = plugin();
    if (dst + len > to.length) throw new PlinthError('memory', `read of ${len} bytes to ${dst} is outside the plug-in's memory`);
    to.set(from, dst);
  };
  return {
    alloc_uninit: (n: bigint) => {
      const h = s.m().alloc(unsigned(n), false);
      return typeof h === 'string' ? 0n : BigInt(h);
    },
    output_direct: (ptr: number, len: number) => {
      const [p, n] = [ptr >>> 0, len >>> 0];
      const size = plugin().length;
      if (p + n > size) throw new PlinthError('memory', `output_direct of ${n} bytes at ${p} is outside the plug-in's ${size}-byte memory`);
      s.outputOffset = 0;
      s.outputLength = 0;
      s.outputDirect = [p, n];
    },
    input_read: (off: bigint, dst: number, len: number) => {
      const [base, n] = s.m().input;
      const l = len >>> 0;
      if (off < 0n || off > BigInt(n) || BigInt(l) > BigInt(n) - off) {
        throw new PlinthError('memory', `input_read of ${l} bytes at offset ${off} is outside the ${n}-byte input`);
      }
      copyOut(BigInt(base) + off, dst >>> 0, l);
    },
    read: (src: bigint, dst: number, len: number) => copyOut(src, dst >>> 0, len >>> 0),
    write: (dst: bigint, src: number, len: number) => {
      const l = len >>> 0;
      if (l === 0) return;
      const from = plugin();
      const p = src >>> 0;
      if (p + l > from.length) throw new PlinthError('memory', `write of ${l} bytes from ${p} is outside the plug-in's memory`);
      const to = s.m().range(dst, l);
      if (to === undefined) throw new PlinthError('memory', `write of ${l} bytes to ${dst} is outside Extism memory`);
      to.set(from.subarray(p, p + l));
    },
  };
}

export const ENV = 'extism:host/env';
export const LEGACY_ENV = 'env';
export const LEGACY_PREFIX = 'extism_';
export const PLINTH_ENV = 'plinth:host/env';

/** The ABI's import namespaces, keyed by module name. */
export function abiImports(s: HostState, async: boolean): Record<string, Record<string, Fn | object>> {
  const env = envFunctions(s, async);
  const legacy: Record<string, Fn | object> = {};
  for (const [name, f] of Object.entries(env)) legacy[LEGACY_PREFIX + name] = f;
  return { [ENV]: env, [LEGACY_ENV]: legacy, [PLINTH_ENV]: plinthFunctions(s) };
}
