// The wasm kernel (sdks/web/kernel, crate plinth-web-kernel): the core's load-time rewrites and
// its Extism-memory allocator, compiled from the same Rust code the native runtime uses, so
// that this SDK neither re-implements them nor drifts from them.
import { PlinthError, type ErrorKind } from './errors.js';

/** The kernel's exports (sdks/web/kernel/README.md states the contract). */
export interface Kernel {
  memory: WebAssembly.Memory;
  plinth_bytes_alloc(len: number): number;
  plinth_bytes_free(ptr: number, len: number): void;
  plinth_prepare(ptr: number, len: number): number;
  plinth_prepare_info(h: number): number;
  plinth_limit_memory(ptr: number, len: number, maxPages: bigint, fused: number): number;
  plinth_result_ok(h: number): number;
  plinth_result_ptr(h: number): number;
  plinth_result_len(h: number): number;
  plinth_result_free(h: number): void;
  plinth_arena_new(): number;
  plinth_arena_drop(id: number): void;
  plinth_arena_reset(id: number): void;
  plinth_arena_place(id: number, n: bigint): bigint;
  plinth_arena_end(id: number): bigint;
  plinth_arena_commit(id: number, offset: bigint, end: bigint): number;
  plinth_arena_free(id: number, handle: bigint): number;
  plinth_arena_length(id: number, handle: bigint): bigint;
  plinth_arena_used(id: number): bigint;
  plinth_arena_alloc(id: number, n: number, pages: number): number;
  plinth_arena_begin(id: number, n: number, pages: number): number;
  plinth_arena_length32(id: number, handle: bigint): number;
  plinth_memory_functions(): number;
  plinth_wat(ptr: number, len: number): number;
  plinth_manifest(ptr: number, len: number): number;
  plinth_looks_like_manifest(ptr: number, len: number): number;
}

const REQUIRED: (keyof Kernel)[] = [
  'memory', 'plinth_bytes_alloc', 'plinth_bytes_free', 'plinth_prepare', 'plinth_prepare_info',
  'plinth_limit_memory', 'plinth_result_ok', 'plinth_result_ptr', 'plinth_result_len', 'plinth_result_free',
  'plinth_arena_new', 'plinth_arena_drop', 'plinth_arena_reset', 'plinth_arena_place',
  'plinth_arena_end', 'plinth_arena_commit', 'plinth_arena_free', 'plinth_arena_length',
  'plinth_arena_used', 'plinth_arena_alloc', 'plinth_arena_begin', 'plinth_arena_length32',
  'plinth_memory_functions', 'plinth_wat', 'plinth_manifest', 'plinth_looks_like_manifest',
];

/** Bytes at the start of Extism memory no block uses (handle 0 means null). */
export const RESERVED = 16;
/** Where the current input's handle is kept, for fused code. */
export const INPUT_OFFSET_AT = 0;
/** Where the current input's length is kept. */
export const INPUT_LENGTH_AT = 8;

/** `plinth_arena_alloc`/`_begin`: no block (`n == 0`). Offsets of blocks are >= RESERVED. */
export const ALLOC_NULL = 0;
/** `plinth_arena_alloc`/`_begin`: over the arena's budget. */
export const ALLOC_OVER_BUDGET = 1;
/** `plinth_arena_alloc`/`_begin`: larger than Extism memory can hold. */
export const ALLOC_TOO_LARGE = 2;
/** `plinth_arena_alloc`/`_begin`: the memory must grow first (then place and commit). */
export const ALLOC_GROW = 4;
/** How `plinth_limit_memory` marks a refusal that is the page budget's. */
const OUT_OF_MEMORY_PREFIX = 'out_of_memory: ';

/** What the rewrite exported for the host (`plinth_prepare_info`). */
export interface PrepareInfo {
  fused: boolean;
  memory_export: string | null;
  start_export: string | null;
  global_exports: { index: number; name: string }[];
  stream_linked: boolean;
}

/** Where the kernel is loaded from: its bytes, a compiled module, or a URL. */
export type KernelSource = Uint8Array | ArrayBuffer | WebAssembly.Module | URL | string;

const DEFAULT_KERNEL = new URL('../kernel/dist/plinth_web_kernel.wasm', import.meta.url);

let shared: Promise<KernelApi> | undefined;

/** The kernel, instantiated once per source; the default one is shared by every plug-in. */
export function loadKernel(source?: KernelSource): Promise<KernelApi> {
  if (source === undefined) {
    shared ??= instantiateKernel(DEFAULT_KERNEL).catch((e) => {
      shared = undefined;
      throw e;
    });
    return shared;
  }
  return instantiateKernel(source);
}

async function kernelBytes(source: URL | string): Promise<Uint8Array> {
  const url = typeof source === 'string' ? new URL(source, import.meta.url) : source;
  try {
    if (url.protocol === 'file:') {
      const fs = await import('node:fs/promises');
      return new Uint8Array(await fs.readFile(url));
    }
    const response = await fetch(url);
    if (!response.ok) throw new Error(`the server answered ${response.status}`);
    return new Uint8Array(await response.arrayBuffer());
  } catch (e) {
    throw new PlinthError('other', `cannot load the Plinth web kernel from ${url.href}: ${(e as Error).message}; build it with \`bash sdks/web/kernel/build.sh\`, or pass its bytes as the \`kernel\` option`, { cause: e });
  }
}

async function instantiateKernel(source: KernelSource): Promise<KernelApi> {
  let module: WebAssembly.Module;
  if (source instanceof WebAssembly.Module) module = source;
  else {
    const bytes = source instanceof URL || typeof source === 'string' ? await kernelBytes(source) : source;
    module = await WebAssembly.compile(bytes as Uint8Array<ArrayBuffer>);
  }
  const instance = await WebAssembly.instantiate(module, {});
  const exports = instance.exports as Record<string, unknown>;
  const missing = REQUIRED.filter((name) => exports[name] === undefined);
  if (missing.length > 0) {
    throw new PlinthError('other', `the Plinth web kernel lacks the exports ${missing.join(', ')}; it is older or newer than this SDK, rebuild it with \`bash sdks/web/kernel/build.sh\``);
  }
  // The layout constants are compiled into this SDK too (fused code reads the input's place).
  const constants: [string, number][] = [['plinth_const_reserved', RESERVED], ['plinth_const_input_offset_at', INPUT_OFFSET_AT], ['plinth_const_input_length_at', INPUT_LENGTH_AT]];
  for (const [name, expected] of constants) {
    const f = exports[name];
    if (typeof f === 'function' && f() !== BigInt(expected)) {
      throw new PlinthError('other', `the Plinth web kernel's ${name} is ${f()}, this SDK expects ${expected}; use the kernel built from the same Plinth version`);
    }
  }
  const api = new KernelApi(exports as unknown as Kernel);
  if (!MULTI_MEMORY) api.memoryFunctions = await WebAssembly.compile(api.memoryFunctionsBytes() as Uint8Array<ArrayBuffer>);
  return api;
}

/** (module (memory 0) (memory 0)): valid only where the engine has multi-memory. */
const TWO_MEMORIES = new Uint8Array([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, 0x05, 0x05, 0x02, 0x00, 0x00, 0x00, 0x00]);

/**
 * Whether this engine runs modules with several memories, which a fused plug-in is (its Extism
 * memory is a second memory). Chrome 120, Firefox 125 and Node.js 22 have them; Node.js 20 and
 * Safari do not, and get the unfused module, whose memory calls are host functions.
 */
export const MULTI_MEMORY = WebAssembly.validate(TWO_MEMORIES);

/** Why an arena refused a block. */
export type PlaceError = 'budget' | 'too_large';

/** Typed calls into the kernel. */
export class KernelApi {
  /**
   * Where the engine cannot fuse (no multi-memory): the fused memory functions as a module
   * that imports Extism memory as `env.memory`, to which an unfused plug-in's hot imports
   * link, so that they stay in wasm rather than call into JavaScript with BigInts.
   */
  memoryFunctions: WebAssembly.Module | undefined;

  constructor(readonly raw: Kernel) {}

  /** The bytes of the memory-functions module (`plinth_memory_functions`). */
  memoryFunctionsBytes(): Uint8Array {
    return this.take(this.raw.plinth_memory_functions(), 'compile');
  }

  /** Copies `bytes` into a kernel scratch buffer, runs `f` on it, frees it. */
  private withBytes<T>(bytes: Uint8Array, f: (ptr: number, len: number) => T, what = 'wasm'): T {
    const len = bytes.length;
    const ptr = this.raw.plinth_bytes_alloc(len) >>> 0; // unsigned: past 2 GiB the i32 is negative
    if (ptr === 0 && len > 0) {
      throw new PlinthError('out_of_memory', `the Plinth web kernel could not take ${len} bytes of ${what}`);
    }
    try {
      new Uint8Array(this.raw.memory.buffer, ptr, len).set(bytes);
      return f(ptr, len);
    } finally {
      this.raw.plinth_bytes_free(ptr, len);
    }
  }

  /** Reads and frees a result handle: its bytes, or throws its error message. */
  private take(h: number, kind: ErrorKind): Uint8Array {
    try {
      const ptr = this.raw.plinth_result_ptr(h) >>> 0;
      const len = this.raw.plinth_result_len(h) >>> 0;
      const bytes = new Uint8Array(this.raw.memory.buffer, ptr, len).slice();
      if (this.raw.plinth_result_ok(h) !== 1) {
        throw new PlinthError(kind, new TextDecoder().decode(bytes));
      }
      return bytes;
    } finally {
      this.raw.plinth_result_free(h);
    }
  }

  /** The bytes to compile (stream-linked then fused, as the native runtime does) and what to wire. */
  prepare(wasm: Uint8Array): { wasm: Uint8Array; info: PrepareInfo } {
    return this.withBytes(wasm, (ptr, len) => {
      try {
        const h = this.raw.plinth_prepare(ptr, len);
        if (this.raw.plinth_result_ok(h) !== 1) this.take(h, 'compile'); // throws its message
        let info: PrepareInfo;
        try {
          info = JSON.parse(new TextDecoder().decode(this.take(this.raw.plinth_prepare_info(h), 'compile'))) as PrepareInfo;
        } catch (e) {
          this.raw.plinth_result_free(h);
          throw e;
        }
        return { wasm: this.take(h, 'compile'), info };
      } catch (e) {
        if (e instanceof PlinthError) throw e;
        throw new PlinthError('compile', `the Plinth web kernel could not prepare the module: ${(e as Error).message}`, { cause: e });
      }
    });
  }

  /**
   * `wasm` with every memory it defines capped at `maxPages` pages, so that the engine refuses
   * the plug-in's own `memory.grow` past the budget; when `fused` (`wasm` is `prepare`'s fused
   * output) the plug-in's memory 0 and Extism memory share the budget, as natively. Each
   * `memory.grow` on memory 0 also sets the exported global `__plinth_grow_refused` to whether
   * it was refused, for the host to report the trap that follows as out of memory. A memory
   * whose minimum is already over the budget is refused (kind `out_of_memory`); imported
   * memories are left as they are.
   */
  limitMemory(wasm: Uint8Array, maxPages: number, name: string, fused: boolean): Uint8Array {
    return this.withBytes(wasm, (ptr, len) => {
      const h = this.raw.plinth_limit_memory(ptr, len, BigInt(maxPages), fused ? 1 : 0);
      try {
        return this.take(h, 'compile');
      } catch (e) {
        if (!(e instanceof PlinthError)) throw e;
        // The kernel marks the budget's refusal apart from a module it cannot read.
        const budget = e.message.startsWith(OUT_OF_MEMORY_PREFIX);
        const message = budget ? e.message.slice(OUT_OF_MEMORY_PREFIX.length) : e.message;
        throw new PlinthError(budget ? 'out_of_memory' : 'compile', `cannot load the plug-in \`${name}\`: ${message}`);
      }
    });
  }

  /**
   * `bytes` as a wasm binary: WAT text parsed as the native runtime parses it (the `wat`
   * crate), a binary unchanged. A parse error is kind `compile`, naming the module `name`,
   * with the parser's message (its line and column, and the line itself).
   */
  wat(bytes: Uint8Array, name: string, what: 'plug-in' | 'module'): Uint8Array {
    return this.withBytes(bytes, (ptr, len) => {
      try {
        return this.take(this.raw.plinth_wat(ptr, len), 'compile');
      } catch (e) {
        if (!(e instanceof PlinthError)) throw e;
        throw new PlinthError('compile', `cannot compile the ${what} \`${name}\`: ${e.message} (is it a valid WebAssembly module or WAT text?)`);
      }
    }, 'WAT text');
  }

  /**
   * A JSON or TOML manifest parsed with the native rules (crates/manifest), as the native
   * runtime writes it back (`Manifest::to_json`: JSON, `data` as base64). An error is kind
   * `manifest` with the native message.
   */
  manifest(bytes: Uint8Array): unknown {
    const json = this.withBytes(bytes, (ptr, len) => this.take(this.raw.plinth_manifest(ptr, len), 'manifest'), 'manifest');
    return JSON.parse(new TextDecoder().decode(json));
  }

  /** Whether `bytes` are a manifest (JSON, or TOML with a `wasm` key) rather than a module, as natively. */
  looksLikeManifest(bytes: Uint8Array): boolean {
    return this.withBytes(bytes, (ptr, len) => this.raw.plinth_looks_like_manifest(ptr, len) === 1, 'manifest');
  }

  newArena(): Arena {
    return new Arena(this.raw, this.raw.plinth_arena_new());
  }
}

/** One instance's Extism-memory bookkeeping, kept in the kernel. */
export class Arena {
  constructor(private readonly k: Kernel, readonly id: number) {}

  /**
   * Where the placement `alloc` or `begin` left pending (`ALLOC_GROW`) ends: the size the memory
   * must reach before `commit` takes it. The block is the `n` bytes just before.
   */
  pendingEnd(): number {
    return Number(this.k.plinth_arena_end(this.id));
  }

  /** Takes a bump placement once the memory holds `end` bytes. */
  commit(offset: number, end: number): void {
    if (this.k.plinth_arena_commit(this.id, BigInt(offset), BigInt(end)) !== 1) {
      throw new PlinthError('memory', `Extism memory's arena refused the block at ${offset}..${end} (a bug in @plinth/web: it was not the placement just made)`);
    }
  }

  /**
   * Places and takes `n` bytes in a memory of `pages` pages in one kernel call: the block's
   * offset, or an `ALLOC_*` code (`ALLOC_GROW`: nothing taken, grow through `place`).
   */
  alloc(n: number, pages: number): number {
    return this.k.plinth_arena_alloc(this.id, n, pages) >>> 0;
  }

  /** `reset` then `alloc`: the start of a call. */
  begin(n: number, pages: number): number {
    return this.k.plinth_arena_begin(this.id, n, pages) >>> 0;
  }

  free(handle: bigint): boolean {
    return this.k.plinth_arena_free(this.id, handle) === 1;
  }

  length(handle: bigint): number {
    return this.k.plinth_arena_length32(this.id, handle) >>> 0;
  }

  reset(): void {
    this.k.plinth_arena_reset(this.id);
  }

  used(): number {
    return Number(this.k.plinth_arena_used(this.id));
  }

  drop(): void {
    this.k.plinth_arena_drop(this.id);
  }
}
