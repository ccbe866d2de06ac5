// A loaded plug-in: its manifest resolved, its module prepared by the kernel and compiled by
// the platform's WebAssembly, one instance with its Extism memory, called synchronously.
import { PlinthError } from './errors.js';
import { abiImports, HostState, type Logger, type LogLevel } from './host.js';
import { CurrentPlugin, HostFunction } from './hostfn.js';
import { HttpPolicy } from './http.js';
import { JSPI, suspending, type Jspi } from './jspi.js';
import { loadKernel, MULTI_MEMORY, type Arena, type KernelApi, type KernelSource, type PrepareInfo } from './kernel.js';
import { DEFAULT_MAX_HTTP_RESPONSE_BYTES, DEFAULT_MAX_VAR_BYTES, fileURLToPath, loadWasm, looksLikeManifest, parseManifest, sha256Hex, validateManifest, type Manifest } from './manifest.js';
import { ExtismMemory } from './memory.js';
import { Remote } from './remote.js';
import { makeWasi, type Wasi, type WasiOptions } from './wasi.js';

/**
 * What a plug-in is loaded from: wasm bytes, manifest JSON bytes, a manifest, the URL of a
 * module, or (Node.js) the file: URL of a module or a manifest file.
 */
export type PluginSource = Uint8Array | ArrayBuffer | Manifest | URL;

/** A call's input: bytes, or a string sent as UTF-8. */
export type CallInput = Uint8Array | string | undefined;

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

const OPTIONS = ['functions', 'config', 'allowedHosts', 'timeoutMs', 'wasi', 'logger', 'logLevel', 'kernel'];
const PAGE = 65536;
/** A plug-in's offer of a buffer in its own memory for the input (the Rust PDK's `bulk-copy`). */
const INPUT_BUFFER_EXPORT = 'plinth_input_buffer';

async function toManifest(source: PluginSource): Promise<Manifest> {
  if (source instanceof URL) {
    // A file: URL (Node.js) may name a module or a manifest file, told apart by content.
    if (source.protocol !== 'file:') return { wasm: [{ url: source.href }] };
    const bytes = await loadWasm({ path: fileURLToPath(source) });
    if (!looksLikeManifest(bytes)) return { wasm: [{ data: bytes }] };
    // The core's one rule: a manifest file's relative paths are relative to its folder.
    const manifest = parseManifest(bytes);
    for (const w of manifest.wasm) {
      if (w.path !== undefined && !w.path.startsWith('/')) w.path = fileURLToPath(new URL(w.path, source));
    }
    return manifest;
  }
  if (source instanceof Uint8Array || source instanceof ArrayBuffer) {
    const bytes = source instanceof ArrayBuffer ? new Uint8Array(source) : source;
    return looksLikeManifest(bytes) ? parseManifest(bytes) : { wasm: [{ data: bytes }] };
  }
  return validateManifest(source);
}

function toBytes(input: CallInput): Uint8Array {
  if (input === undefined) return new Uint8Array(0);
  if (typeof input === 'string') return new TextEncoder().encode(input);
  if (input instanceof Uint8Array) return input;
  throw new PlinthError('convert', `a call's input is a Uint8Array, a string or nothing, not ${typeof input}`);
}

function describe(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** A plug-in's module, compiled from the kernel's rewrite of its bytes. */
interface CompiledModule {
  module: WebAssembly.Module;
  info: PrepareInfo;
}

/**
 * Compiled modules by kernel and by the sha256 of the plug-in's bytes with the page budget
 * they were capped at, so that loading the same plug-in again skips validation, the rewrite
 * and compilation (the native runtime keeps a module cache for the same reason). The newest
 * few are kept.
 */
const compiledModules = new WeakMap<KernelApi, Map<string, CompiledModule>>();
const COMPILED_MODULES_KEPT = 32;

/**
 * Validates, rewrites (the kernel's `prepare`, then its memory cap when `maxPages` is set) and
 * compiles `bytes`, or finds them compiled.
 */
async function compiled(
  kernelLoad: Promise<KernelApi>,
  kernel: KernelApi | undefined,
  bytes: Uint8Array,
  name: string,
  maxPages: number | undefined,
): Promise<CompiledModule> {
  // A module capped at one budget must not serve a load with another (or with none).
  const key = kernel === undefined ? undefined : `${await sha256Hex(bytes)}/${maxPages ?? 'unlimited'}`;
  const kept = kernel === undefined ? undefined : compiledModules.get(kernel);
  const found = key === undefined ? undefined : kept?.get(key);
  if (found !== undefined) return found;
  try {
    // compile() says why the bytes are not valid; the kernel's rewrite only takes valid modules.
    if (!WebAssembly.validate(bytes as Uint8Array<ArrayBuffer>)) await WebAssembly.compile(bytes as Uint8Array<ArrayBuffer>);
  } catch (e) {
    throw new PlinthError('compile', `cannot compile the plug-in \`${name}\`: ${describe(e)} (is it a valid WebAssembly module?)`, { cause: e });
  }
  let prepared = (await kernelLoad).prepare(bytes);
  if (prepared.info.fused && !MULTI_MEMORY) {
    if (prepared.info.stream_linked) {
      throw new PlinthError('compile', `cannot compile the plug-in \`${name}\`: it streams, and its prepared form needs WebAssembly multi-memory, which this engine lacks (Node.js 20, Safari); use Node.js 22 or a current Chrome or Firefox`);
    }
    // Unfused, the module is the original: the host functions do what fused code would.
    prepared = { wasm: bytes, info: { fused: false, memory_export: null, start_export: null, global_exports: [], stream_linked: false } };
  }
  // The engine then stops the plug-in's own memory.grow at the budget (it gets -1), as
  // wasmtime's resource limiter does natively; fused, counting Extism memory's pages too.
  if (maxPages !== undefined) {
    prepared = { wasm: (await kernelLoad).limitMemory(prepared.wasm, maxPages, name, prepared.info.fused), info: prepared.info };
  }
  let module: WebAssembly.Module;
  try {
    module = await WebAssembly.compile(prepared.wasm as Uint8Array<ArrayBuffer>);
  } catch (e) {
    throw new PlinthError('compile', `cannot compile the plug-in \`${name}\`: ${describe(e)}`, { cause: e });
  }
  const entry = { module, info: prepared.info };
  if (kernel !== undefined && key !== undefined) {
    const map = kept ?? new Map<string, CompiledModule>();
    if (kept === undefined) compiledModules.set(kernel, map);
    map.set(key, entry);
    // A Map iterates in insertion order: the first key is the oldest.
    if (map.size > COMPILED_MODULES_KEPT) map.delete(map.keys().next().value as string);
  }
  return entry;
}

const forgotten = new FinalizationRegistry<Arena>((arena) => arena.drop());
/** A plug-in with a timeout dropped without close() stops its worker when collected. */
const forgottenWorkers = new FinalizationRegistry<Remote>((remote) => remote.close());

/** A plug-in's instance; a failure drops it, and the next call gets a fresh one. */
interface Live {
  instance: WebAssembly.Instance;
  state: HostState;
  mem: ExtismMemory;
}

export class Plugin {
  private live: Live | undefined;
  private running: string | undefined;
  private closed = false;
  private readonly vars = new Map<string, Uint8Array>();
  /** With a timeout, the worker that runs the plug-in. */
  private remote: Remote | undefined;

  /**
   * Whether calls run through JSPI: the plug-in has async host functions, or imports
   * `http_request` on an engine with JSPI (fetch is asynchronous).
   */
  readonly async: boolean;

  private constructor(
    private readonly kernel: KernelApi,
    private readonly module: WebAssembly.Module,
    private readonly info: PrepareInfo,
    private readonly manifest: Manifest,
    private readonly options: PluginOptions,
    private readonly config: Map<string, string>,
    private readonly http: HttpPolicy,
    private readonly wasi: Wasi | undefined,
    inWorker = false,
  ) {
    const asyncFunctions = (options.functions ?? []).filter((f) => f.isAsync);
    const importsHttp = WebAssembly.Module.imports(module).some((i) => i.name === 'http_request' || i.name === 'extism_http_request');
    this.async = inWorker || asyncFunctions.length > 0 || (JSPI && importsHttp);
    // In a worker, the main thread awaits host functions for it: no JSPI needed.
    if (asyncFunctions.length > 0 && !JSPI && !inWorker) {
      throw new PlinthError('host_function', `the host functions ${asyncFunctions.map((f) => `\`${f.name}\``).join(', ')} are async, which needs JSPI (WebAssembly.Suspending and WebAssembly.promising); this engine lacks it (Node.js 20-24 without flags, Safari, Chrome before 137): make them synchronous, or use @plinth/node`);
    }
  }

  /** Loads, checks, prepares, compiles and instantiates a plug-in. */
  static async load(source: PluginSource, options: PluginOptions = {}): Promise<Plugin> {
    const unknown = Object.keys(options).filter((k) => !OPTIONS.includes(k));
    if (unknown.length > 0) throw new TypeError(`unknown plug-in options ${unknown.join(', ')}; the options are ${OPTIONS.join(', ')}`);
    const manifest = await toManifest(source);
    const timeout = options.timeoutMs ?? manifest.timeout_ms;
    if (timeout !== undefined && (!Number.isInteger(timeout) || timeout <= 0)) {
      throw new TypeError(`timeoutMs must be a positive integer of milliseconds, not ${String(timeout)}`);
    }
    if (manifest.wasm.length !== 1) {
      throw new PlinthError('link', `the manifest lists ${manifest.wasm.length} wasm modules; @plinth/web links only one module per plug-in so far`);
    }
    if (manifest.allowed_paths !== undefined && Object.keys(manifest.allowed_paths).length > 0 && !options.wasi) {
      throw new PlinthError('wasi', '`allowed_paths` needs WASI; load the plug-in with `wasi: true` (or `wasi: { files }` for an in-memory file system)');
    }
    const wasi = options.wasi ? await makeWasi(options.wasi === true ? {} : options.wasi, manifest.allowed_paths) : undefined;
    const http = new HttpPolicy(options.allowedHosts ?? manifest.allowed_hosts);
    const config = new Map(Object.entries({ ...manifest.config, ...options.config }));
    for (const [k, v] of config) {
      if (typeof v !== 'string') throw new TypeError(`config \`${k}\` must be a string, got ${typeof v}`);
    }
    const kernelLoad = loadKernel(options.kernel);
    kernelLoad.catch(() => {}); // awaited below; a bad module is reported first
    const bytes = await loadWasm(manifest.wasm[0]);
    const name = manifest.wasm[0].name ?? 'main';
    if (!(bytes[0] === 0 && bytes[1] === 0x61 && bytes[2] === 0x73 && bytes[3] === 0x6d)) {
      throw new PlinthError('compile', `cannot compile the plug-in \`${name}\`: it is not a WebAssembly module (no \\0asm header; WAT text is not supported by @plinth/web, compile it to wasm first)`);
    }
    const kernel = await kernelLoad.catch(() => undefined);
    const { module, info } = await compiled(kernelLoad, kernel, bytes, name, manifest.memory?.max_pages);
    const plugin = new Plugin(await kernelLoad, module, info, manifest, options, config, http, wasi, timeout !== undefined);
    plugin.checkImports();
    if (timeout === undefined) {
      plugin.live = plugin.instantiate();
      return plugin;
    }
    // The worker loads the same bytes (hash checked here), without the limit.
    const { hash: _hash, url: _url, path: _path, ...entry } = manifest.wasm[0];
    const workerManifest: Manifest = { ...manifest, wasm: [{ ...entry, data: bytes }], timeout_ms: undefined };
    plugin.remote = new Remote({
      manifest: workerManifest,
      timeoutMs: timeout,
      functions: options.functions ?? [],
      config: options.config,
      allowedHosts: options.allowedHosts,
      logger: options.logger,
      logLevel: options.logLevel,
      wasi: options.wasi,
      kernel: options.kernel,
    });
    await plugin.remote.start();
    forgottenWorkers.register(plugin, plugin.remote, plugin.remote);
    return plugin;
  }

  private get maxPages(): number | undefined {
    return this.manifest.memory?.max_pages;
  }

  /** Names every import nothing provides, before instantiation says less. */
  private checkImports(): void {
    const provided = new Set<string>();
    for (const [ns, fns] of Object.entries(abiImports(new HostState(new Map(), new Map(), 0, this.http, 0, undefined, 'info'), false))) {
      for (const n of Object.keys(fns)) provided.add(`${ns}::${n}`);
    }
    for (const f of this.options.functions ?? []) provided.add(`${f.namespace}::${f.name}`);
    if (this.wasi !== undefined) {
      for (const [ns, fns] of Object.entries(this.wasi.instance().imports)) {
        for (const n of Object.keys(fns as object)) provided.add(`${ns}::${n}`);
      }
    }
    for (const imp of WebAssembly.Module.imports(this.module)) {
      if (imp.kind === 'function' && provided.has(`${imp.module}::${imp.name}`)) continue;
      const what = `the plug-in imports ${imp.kind} \`${imp.name}\` from \`${imp.module}\``;
      if (imp.module === 'plinth:host/env' && /^(http_)?stream_/.test(imp.name)) {
        throw new PlinthError('link', `${what}: the plug-in streams its input or output, which @plinth/web does not do yet; call it with @plinth/node or the Rust runtime`);
      }
      if (imp.module.startsWith('wasi_')) {
        throw new PlinthError('link', `${what}, which is WASI: load the plug-in with \`wasi: true\` (or \`wasi: { files, stdout, … }\`)`);
      }
      throw new PlinthError('link', `${what}, which nothing provides; pass a HostFunction with that name and namespace in \`functions\``);
    }
  }

  private instantiate(): Live {
    const state = new HostState(this.config, this.vars, this.manifest.memory?.max_var_bytes ?? DEFAULT_MAX_VAR_BYTES, this.http, this.manifest.memory?.max_http_response_bytes ?? DEFAULT_MAX_HTTP_RESPONSE_BYTES, this.options.logger, this.options.logLevel ?? 'info');
    const imports = abiImports(state, this.async) as Record<string, Record<string, unknown>>;
    const wasi = this.wasi?.instance();
    if (wasi !== undefined) Object.assign(imports, wasi.imports);
    for (const f of this.options.functions ?? []) {
      imports[f.namespace] ??= {};
      const current = () => new CurrentPlugin(state.m());
      imports[f.namespace][f.name] = f.isAsync ? suspending(f.wrapAsync(current)) : f.wrap(current);
    }
    const arena = this.kernel.newArena();
    let pluginMemory: WebAssembly.Memory | undefined;
    const otherPages = () => (pluginMemory === undefined ? 0 : pluginMemory.buffer.byteLength / PAGE);
    const max = this.maxPages;
    if (!this.info.fused) {
      // Not fused: Extism memory is a memory of the host's, which the host functions reach.
      const memory = new WebAssembly.Memory({ initial: 1, maximum: max === undefined ? 65536 : Math.max(1, max) });
      state.mem = new ExtismMemory(arena, memory, max, otherPages);
    }
    let instance: WebAssembly.Instance;
    try {
      instance = new WebAssembly.Instance(this.module, imports as WebAssembly.Imports);
    } catch (e) {
      arena.drop();
      if (e instanceof PlinthError) throw e;
      if (e instanceof WebAssembly.LinkError) throw new PlinthError('link', `cannot link the plug-in: ${describe(e)}`, { cause: e });
      throw new PlinthError('trap', `the plug-in trapped while starting: ${describe(e)}`, { cause: e });
    }
    const exported = instance.exports.memory;
    pluginMemory = exported instanceof WebAssembly.Memory ? exported : undefined;
    state.pluginMemory = pluginMemory;
    if (this.info.fused) {
      const memory = this.info.memory_export === null ? undefined : instance.exports[this.info.memory_export];
      if (!(memory instanceof WebAssembly.Memory)) {
        arena.drop();
        throw new PlinthError('link', 'the fused plug-in lacks its Extism memory export (a bug in the Plinth web kernel)');
      }
      state.mem = new ExtismMemory(arena, memory, max, () => (memory === pluginMemory ? 0 : otherPages()));
      if (this.info.start_export !== null) {
        const start = instance.exports[this.info.start_export];
        try {
          if (typeof start === 'function') start();
        } catch (e) {
          arena.drop();
          if (e instanceof PlinthError) throw e;
          throw new PlinthError('trap', `the plug-in trapped in its start function: ${describe(e)}`, { cause: e });
        }
      }
    }
    if (wasi !== undefined) {
      try {
        wasi.initialize(instance);
      } catch (e) {
        arena.drop();
        if (e instanceof PlinthError) throw e;
        throw new PlinthError('wasi', `cannot start WASI for the plug-in: ${describe(e)}`, { cause: e });
      }
    }
    const mem = state.m();
    // What the plug-in declares must fit in the budget, with Extism memory's first pages.
    const extismPages = mem.memory === pluginMemory ? 0 : mem.size() / PAGE;
    if (max !== undefined && otherPages() + extismPages > max) {
      arena.drop();
      throw new PlinthError('out_of_memory', `the plug-in declares ${otherPages()} pages of memory, more than memory.max_pages = ${max} holds with the ${extismPages} of Extism memory; raise \`memory.max_pages\` in the manifest`);
    }
    const live = { instance, state, mem };
    // A plug-in dropped without close() gives its arena back to the kernel when collected.
    forgotten.register(this, arena, live);
    return live;
  }

  private hidden(name: string): boolean {
    return name === '_initialize' || name === this.info.memory_export || name === this.info.start_export || name === INPUT_BUFFER_EXPORT || name.startsWith('__plinth_');
  }

  /** A file of the in-memory WASI file system (`wasi.files`), as the plug-in left it. */
  readWasiFile(path: string): Uint8Array | undefined {
    // With a timeout the file system lives in the worker.
    if (this.remote !== undefined) return undefined;
    return this.wasi?.readFile(path);
  }

  /** Whether the hot ABI calls were fused into the module (needs multi-memory). */
  get fused(): boolean {
    return this.info.fused;
  }

  /** The exported functions a caller may call. */
  functions(): string[] {
    return WebAssembly.Module.exports(this.module)
      .filter((e) => e.kind === 'function' && !this.hidden(e.name))
      .map((e) => e.name);
  }

  functionExists(name: string): boolean {
    return this.functions().includes(name);
  }

  /** Calls `name` with `input` and returns its output bytes. */
  async call(name: string, input?: CallInput): Promise<Uint8Array> {
    if (this.remote !== undefined) {
      if (this.closed) throw new PlinthError('closed', 'the plug-in is closed; load it again to call it');
      if (!this.functionExists(name)) {
        const list = this.functions();
        throw new PlinthError('function_not_found', `function \`${name}\` not found in the plug-in; its callable exports are: ${list.length === 0 ? '(none)' : list.join(', ')}`);
      }
      return this.remote.call(name, toBytes(input));
    }
    if (!this.async) return this.callSync(name, input);
    const { f, live } = this.begin(name, input);
    let rc: unknown;
    try {
      // JSPI: the export runs on a stack of its own, which suspends while a host function awaits.
      rc = await (WebAssembly as unknown as Jspi).promising(f as (...args: never[]) => unknown)();
    } catch (e) {
      return this.threw(name, live, e);
    } finally {
      this.running = undefined;
    }
    return this.finish(name, live, rc);
  }

  async callString(name: string, input?: CallInput): Promise<string> {
    return new TextDecoder().decode(await this.call(name, input));
  }

  /** `JSON.stringify` in, `JSON.parse` out. */
  async callJson(name: string, input: unknown): Promise<unknown> {
    const text = new TextDecoder().decode(await this.call(name, JSON.stringify(input)));
    try {
      return JSON.parse(text);
    } catch (e) {
      throw new PlinthError('convert', `the output of \`${name}\` is not JSON: ${describe(e)}`, { cause: e });
    }
  }

  /** The call on this thread, without a Promise; not for plug-ins with async host functions. */
  callSync(name: string, input?: CallInput): Uint8Array {
    if (this.remote !== undefined) {
      throw new PlinthError('host_function', `callSync cannot call \`${name}\`: the plug-in has a timeout and runs in a worker; use call(), callString() or callJson()`);
    }
    if (this.async && !this.closed && this.running === undefined) {
      throw new PlinthError('host_function', `callSync cannot call \`${name}\`: the plug-in awaits async host functions (or fetch, for http_request); use call(), callString() or callJson()`);
    }
    const { f, live } = this.begin(name, input);
    let rc: unknown;
    try {
      rc = f();
    } catch (e) {
      return this.threw(name, live, e);
    } finally {
      this.running = undefined;
    }
    return this.finish(name, live, rc);
  }

  /** Checks the call, finds the export and puts the input in place; marks the plug-in running. */
  private begin(name: string, input: CallInput): { f: () => unknown; live: Live } {
    if (this.closed) throw new PlinthError('closed', 'the plug-in is closed; load it again to call it');
    if (this.running !== undefined) {
      if (this.async) {
        throw new PlinthError('busy', `the plug-in is running \`${this.running}\`, which awaits a host function; await that call before calling \`${name}\` (a host function may not call back into its own plug-in)`);
      }
      throw new PlinthError('reentrant', `re-entrant call of \`${name}\` refused: the plug-in is already running \`${this.running}\` (a host function may not call back into the plug-in that called it)`);
    }
    const bytes = toBytes(input);
    this.live ??= this.instantiate();
    const live = this.live;
    const { instance, state, mem } = live;
    const f = this.hidden(name) ? undefined : instance.exports[name];
    if (f === undefined) {
      const list = this.functions();
      throw new PlinthError('function_not_found', `function \`${name}\` not found in the plug-in; its callable exports are: ${list.length === 0 ? '(none)' : list.join(', ')}`);
    }
    if (typeof f !== 'function' || f.length !== 0) {
      throw new PlinthError('not_callable', `export \`${name}\` is not callable: a plug-in function must have type () -> i32 or () -> ()`);
    }
    state.reset();
    // A plug-in that offers a buffer for the input gets it there, not in Extism memory.
    const inputBuffer = instance.exports[INPUT_BUFFER_EXPORT];
    const direct = typeof inputBuffer === 'function' && state.pluginMemory !== undefined && bytes.length > 0;
    const placed = mem.beginCall(direct ? new Uint8Array(0) : bytes);
    if (placed !== undefined) {
      throw new PlinthError('out_of_memory', `\`${name}\` ran out of memory: its ${bytes.length}-byte input does not fit in memory.max_pages = ${this.maxPages} pages; raise \`memory.max_pages\` in the manifest`);
    }
    if (direct) {
      let ptr: number;
      try {
        ptr = (inputBuffer as (len: number) => number)(bytes.length) >>> 0;
      } catch (e) {
        throw this.failed(INPUT_BUFFER_EXPORT, e);
      }
      const to = new Uint8Array(state.pluginMemory!.buffer);
      if (ptr + bytes.length > to.length) {
        this.discard();
        throw new PlinthError('memory', `${INPUT_BUFFER_EXPORT} gave a buffer at ${ptr} for ${bytes.length} bytes of input, which is outside the plug-in's memory`);
      }
      to.set(bytes, ptr);
    }
    this.running = name;
    return { f: f as () => unknown, live };
  }

  /** A call whose export threw: WASI proc_exit(0) is a success, anything else fails it. */
  private threw(name: string, live: Live, e: unknown): Uint8Array {
    if (this.wasi?.exitCode(e) === 0) return this.exitedCleanly(name, live);
    throw this.failed(name, e);
  }

  /**
   * WASI proc_exit(0) ends the call as a success with the output set so far (docs/errors.md:
   * only a non-zero code is kind `exit`); the instance, unwound mid-run, is replaced.
   */
  private exitedCleanly(name: string, live: Live): Uint8Array {
    try {
      return this.finish(name, live, 0);
    } finally {
      this.discard();
    }
  }

  /** The error for a call that threw; the instance may be half-way through anything, so it goes. */
  private failed(name: string, e: unknown): PlinthError {
    this.discard();
    const exit = this.wasi?.exitCode(e);
    if (exit !== undefined) return new PlinthError('exit', `the plug-in called WASI proc_exit with code ${exit} in \`${name}\``, { cause: e, code: exit });
    if (e instanceof PlinthError) {
      if (e.kind === 'trap' || e.kind === 'host_function' || e.kind === 'reentrant' || e.kind === 'busy') return e;
      return new PlinthError(e.kind, `\`${name}\` failed: ${e.message}`, { cause: e, code: e.code });
    }
    return new PlinthError('trap', `the plug-in trapped in \`${name}\`: ${describe(e)}`, { cause: e });
  }

  /** The output, or the plug-in's own failure. */
  private finish(name: string, live: Live, rc: unknown): Uint8Array {
    const { state, mem } = live;
    const code = typeof rc === 'number' ? rc : 0;
    if (state.error !== 0) {
      const block = mem.block(BigInt(state.error));
      const message = block.length > 0 ? new TextDecoder().decode(block) : `the plug-in reported an error, but its message handle ${state.error} is not a block of Extism memory (a bug in the plug-in or its PDK)`;
      throw new PlinthError('guest', `the plug-in failed in \`${name}\` (code ${code}): ${message}`, { code });
    }
    if (code !== 0) {
      throw new PlinthError('guest', `the plug-in failed in \`${name}\` (code ${code}): \`${name}\` returned code ${code} without an error message`, { code });
    }
    if (state.outputDirect !== undefined) {
      const [p, n] = state.outputDirect;
      return new Uint8Array(state.pluginMemory!.buffer, p, n).slice();
    }
    const [h, len] = state.output;
    if (h === 0 && len === 0) return new Uint8Array(0);
    const out = mem.range(h, len);
    if (out === undefined) {
      throw new PlinthError('memory', `\`${name}\` set its output to ${len} bytes at ${h}, which is outside its memory`);
    }
    return out.slice();
  }

  private discard(): void {
    if (this.live !== undefined) {
      forgotten.unregister(this.live);
      this.live.mem.arena.drop();
    }
    this.live = undefined;
  }

  /** Frees the instance; later calls fail with kind `closed`. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.discard();
    if (this.remote !== undefined) {
      forgottenWorkers.unregister(this.remote);
      this.remote.close();
    }
  }
}
