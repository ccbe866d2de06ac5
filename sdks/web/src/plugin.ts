// A loaded plug-in: its manifest resolved, its module prepared by the kernel and compiled by
// the platform's WebAssembly, one instance with its Extism memory, called synchronously.
import { compilePlugin, type CompiledParts } from './compile.js';
import { PlinthError } from './errors.js';
import { abiImports, ENV, HostState, LEGACY_ENV, LEGACY_PREFIX, VarStore } from './host.js';
import { CurrentPlugin } from './hostfn.js';
import { HttpPolicy } from './http.js';
import { JSPI, suspending, type Jspi } from './jspi.js';
import type { Arena, KernelApi, PrepareInfo } from './kernel.js';
import { instantiateLibraries, type LibraryModule } from './link.js';
import { DEFAULT_MAX_HTTP_RESPONSE_BYTES, DEFAULT_MAX_VAR_BYTES, type Manifest } from './manifest.js';
import { ExtismMemory } from './memory.js';
import type { CallInput, CallOptions, ConfigChanges, ConfigValue, PluginOptions, PluginSource } from './options.js';
import { CallQueue, cancelled, checkSignal } from './queue.js';
import { HostScope } from './reentry.js';
import { Remote } from './remote.js';
import { makeWasi, type Wasi } from './wasi.js';

const CALL_OPTIONS = ['signal'];

/** A config value as a string, as @plinth/node converts it; anything else is a TypeError. */
function configString(what: string, key: string, value: unknown): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return String(value);
  throw new TypeError(`${what}: config value \`${key}\` must be a string, a number, a boolean or a BigInt (null or undefined removes the key), not ${value === null ? 'null' : typeof value}`);
}

/** A var's value from the host: bytes (copied), a string stored as UTF-8, or nothing to remove it. */
function varBytes(key: string, value: unknown): Uint8Array | undefined {
  if (value === null || value === undefined) return undefined;
  if (typeof value === 'string') return new TextEncoder().encode(value);
  if (value instanceof Uint8Array) return value.slice();
  throw new TypeError(`varSet: the value of var \`${key}\` must be a Uint8Array, a string (stored as UTF-8), or null to remove it, not ${typeof value}`);
}

function checkKey(what: string, key: unknown): asserts key is string {
  if (typeof key !== 'string') throw new TypeError(`${what} takes a string key, not ${key === null ? 'null' : typeof key}`);
}

function checkCallOptions(name: string, options: CallOptions | undefined): AbortSignal | undefined {
  if (options === undefined) return undefined;
  if (typeof options !== 'object' || options === null) throw new TypeError(`the options of a call of \`${name}\` are an object, such as { signal }`);
  const unknown = Object.keys(options).filter((k) => !CALL_OPTIONS.includes(k));
  if (unknown.length > 0) throw new TypeError(`unknown call options ${unknown.join(', ')}; the options are ${CALL_OPTIONS.join(', ')}`);
  checkSignal(name, options.signal);
  return options.signal;
}

const PAGE = 65536;
/**
 * The kernel's flag (plinth_limit_memory, under memory.max_pages): a global each module
 * exports that is 1 while its last memory.grow on memory 0 was refused.
 */
const GROW_REFUSED_EXPORT = '__plinth_grow_refused';
/** The global through which an unfused plug-in's growth sees Extism memory's pages. */
const EXTISM_PAGES_EXPORT = '__plinth_extism_pages';
/**
 * The traps a refused growth leads to, as the native runtime counts them: an abort
 * (`unreachable`) or an access past the memory that did not grow. Each engine words them its
 * own way (V8, SpiderMonkey, JavaScriptCore).
 */
const REFUSAL_TRAP = /unreachable|memory access out of bounds|^index out of bounds|out of bounds memory access/i;
/** Whether `g` is a mutable global (a plug-in's own immutable export of the name is not a flag). */
function resettable(g: WebAssembly.Global): boolean {
  try {
    g.value = 0;
    return true;
  } catch {
    return false;
  }
}

/** A plug-in's offer of a buffer in its own memory for the input (the Rust PDK's `bulk-copy`). */
const INPUT_BUFFER_EXPORT = 'plinth_input_buffer';

function toBytes(input: CallInput): Uint8Array {
  if (input === undefined) return new Uint8Array(0);
  if (typeof input === 'string') return new TextEncoder().encode(input);
  if (input instanceof Uint8Array) return input;
  throw new PlinthError('convert', `a call's input is a Uint8Array, a string or nothing, not ${typeof input}`);
}

function closedError(): PlinthError {
  return new PlinthError('closed', 'the plug-in is closed; load it again to call it');
}

function reentrant(name: string, why: string): PlinthError {
  return new PlinthError('reentrant', `re-entrant call of \`${name}\` refused: ${why} (a host function may not call back into the plug-in that called it: queued behind the call that waits for it, it would never run)`);
}

function describe(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/**
 * Points the hot memory imports (`input_load_u64`, `store_u64`, ..., also under their pre-1.0
 * names) at the kernel's memory-functions module over `memory`, instead of host functions.
 */
function linkMemoryFunctions(imports: Record<string, Record<string, unknown>>, module: WebAssembly.Module, memory: WebAssembly.Memory): void {
  const functions = new WebAssembly.Instance(module, { env: { memory } }).exports;
  for (const [name, f] of Object.entries(functions)) {
    imports[ENV][name] = f;
    imports[LEGACY_ENV][LEGACY_PREFIX + name] = f;
  }
}

const forgotten = new FinalizationRegistry<Arena>((arena) => arena.drop());
/** A plug-in with a timeout dropped without close() stops its worker when collected. */
const forgottenWorkers = new FinalizationRegistry<Remote>((remote) => remote.close());

/** A plug-in's instance; a failure drops it, and the next call gets a fresh one. */
interface Live {
  instance: WebAssembly.Instance;
  state: HostState;
  mem: ExtismMemory;
  /** The exports called so far, checked: the lookup and checks are not repeated per call. */
  callable: Map<string, () => unknown>;
  /** The plug-in's offer of a buffer for the input (`plinth_input_buffer`), if any. */
  inputBuffer: ((len: number) => number) | undefined;
  /** Each module's refused-growth flag (GROW_REFUSED_EXPORT), reset at each call's start. */
  growRefused: WebAssembly.Global[];
}

export class Plugin {
  private live: Live | undefined;
  private running: string | undefined;
  /** Ends the JSPI call in flight (cancel, close). */
  private stopRunning: ((e: PlinthError) => void) | undefined;
  private closed = false;
  private readonly vars = new VarStore();
  /** Calls of a JSPI plug-in wait here for the one in flight. */
  private readonly queue = new CallQueue();
  /** The plug-in's host functions, to refuse calls they make into it. */
  private readonly hostScope = new HostScope();
  /** With a timeout, the worker that runs the plug-in. */
  private remote: Remote | undefined;
  /** The callable export names; see callableNames(). */
  private callableExports: Set<string> | undefined;

  /**
   * Whether calls run through JSPI: the plug-in has async host functions, or imports
   * `http_request` on an engine with JSPI (fetch is asynchronous).
   */
  readonly async: boolean;

  private readonly kernel: KernelApi;
  private readonly module: WebAssembly.Module;
  private readonly info: PrepareInfo;
  /** The manifest's other modules, instantiated before the main one, in this order. */
  private readonly libraries: LibraryModule[];
  private readonly manifest: Manifest;
  private readonly options: PluginOptions;
  /** This instance's config, which config_get reads; updateConfig changes it. */
  private readonly configMap: Map<string, string>;
  private readonly http: HttpPolicy;

  private constructor(
    compiled: CompiledParts,
    private readonly wasi: Wasi | undefined,
    inWorker = false,
  ) {
    ({ kernel: this.kernel, module: this.module, info: this.info, libraries: this.libraries, manifest: this.manifest, options: this.options, http: this.http } = compiled);
    // Each instance's own: updateConfig on one leaves the others of a CompiledPlugin alone.
    this.configMap = new Map(compiled.config);
    // Without JSPI, a plug-in with async host functions runs in a worker (compilePlugin
    // decides), where they are synchronous stand-ins; http_request there waits with Atomics.
    this.async = inWorker || (this.options.functions ?? []).some((f) => f.isAsync) || (JSPI && compiled.importsHttp);
  }

  /** Loads, checks, prepares, compiles and instantiates a plug-in (see also CompiledPlugin). */
  static async load(source: PluginSource, options: PluginOptions = {}): Promise<Plugin> {
    return Plugin.fromCompiled(await compilePlugin(source, options));
  }

  /** @internal An instance of a compiled plug-in; use CompiledPlugin.instantiate(). */
  static async fromCompiled(compiled: CompiledParts): Promise<Plugin> {
    const { options, manifest, timeoutMs, worker } = compiled;
    const wasi = options.wasi ? await makeWasi(options.wasi === true ? {} : options.wasi, manifest.allowed_paths) : undefined;
    if (worker === undefined) return Plugin.fromCompiledSync(compiled, wasi);
    const plugin = new Plugin(compiled, wasi, true);
    plugin.remote = new Remote({
      manifest: compiled.workerManifest!,
      timeoutMs,
      reason: worker,
      functions: options.functions ?? [],
      config: options.config,
      allowedHosts: options.allowedHosts,
      logger: options.logger,
      logLevel: options.logLevel,
      wasi: options.wasi,
      kernel: options.kernel,
      hostScope: plugin.hostScope,
    });
    await plugin.remote.start();
    forgottenWorkers.register(plugin, plugin.remote, plugin.remote);
    return plugin;
  }

  /** @internal An instance on this thread; see CompiledPlugin.instantiateSync(). */
  static fromCompiledSync(compiled: CompiledParts, wasi: Wasi | undefined): Plugin {
    const plugin = new Plugin(compiled, wasi);
    plugin.live = plugin.instantiate();
    return plugin;
  }

  private get maxVarBytes(): number {
    return this.manifest.memory?.max_var_bytes ?? DEFAULT_MAX_VAR_BYTES;
  }

  private get maxPages(): number | undefined {
    return this.manifest.memory?.max_pages;
  }

  private instantiate(): Live {
    const state = new HostState(this.configMap, this.vars, this.maxVarBytes, this.http, this.manifest.memory?.max_http_response_bytes ?? DEFAULT_MAX_HTTP_RESPONSE_BYTES, this.options.logger, this.options.logLevel ?? 'info');
    const imports = abiImports(state, this.async) as Record<string, Record<string, unknown>>;
    const wasi = this.wasi?.instance();
    if (wasi !== undefined) Object.assign(imports, wasi.imports);
    for (const f of this.options.functions ?? []) {
      imports[f.namespace] ??= {};
      const current = () => new CurrentPlugin(state.m());
      if (f.isAsync) {
        const run = f.wrapAsync(current);
        imports[f.namespace][f.name] = suspending(async (...args: never[]) => {
          const result = await this.hostScope.enter(true, () => run(...args));
          // Cancelled meanwhile: the plug-in is not resumed with the answer.
          if (state.dropped) throw new PlinthError('cancelled', `host function \`${f.name}\` answered after its call was cancelled`);
          return result;
        });
      } else {
        const run = f.wrap(current);
        imports[f.namespace][f.name] = (...args: never[]) => this.hostScope.enter(false, () => run(...args));
      }
    }
    const arena = this.kernel.newArena();
    // Whatever fails while the instance is set up gives the arena back to the kernel.
    try {
      let pluginMemory: WebAssembly.Memory | undefined;
      const otherPages = () => (pluginMemory === undefined ? 0 : pluginMemory.buffer.byteLength / PAGE);
      const max = this.maxPages;
      if (!this.info.fused) {
        // Not fused: Extism memory is a memory of the host's, which the host functions reach.
        const memory = new WebAssembly.Memory({ initial: 1, maximum: max === undefined ? 65536 : Math.max(1, max) });
        state.mem = new ExtismMemory(arena, memory, max, otherPages);
        if (this.kernel.memoryFunctions !== undefined) linkMemoryFunctions(imports, this.kernel.memoryFunctions, memory);
      }
      let instance: WebAssembly.Instance;
      let libraries: Record<string, WebAssembly.Exports>;
      try {
        // The other modules share the host's imports (and, unfused or not, this Extism memory).
        libraries = instantiateLibraries(this.libraries, imports);
        instance = new WebAssembly.Instance(this.module, { ...imports, ...libraries } as WebAssembly.Imports);
      } catch (e) {
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
          throw new PlinthError('link', 'the fused plug-in lacks its Extism memory export (a bug in the Plinth web kernel)');
        }
        state.mem = new ExtismMemory(arena, memory, max, () => (memory === pluginMemory ? 0 : otherPages()));
        if (this.info.start_export !== null) {
          const start = instance.exports[this.info.start_export];
          try {
            if (typeof start === 'function') start();
          } catch (e) {
            if (e instanceof PlinthError) throw e;
            throw new PlinthError('trap', `the plug-in trapped in its start function: ${describe(e)}`, { cause: e });
          }
        }
      }
      if (wasi !== undefined) {
        try {
          wasi.initialize(instance);
        } catch (e) {
          if (e instanceof PlinthError) throw e;
          throw new PlinthError('wasi', `cannot start WASI for the plug-in: ${describe(e)}`, { cause: e });
        }
      }
      const mem = state.m();
      // What the plug-in declares must fit in the budget, with Extism memory's first pages.
      const extismPages = mem.memory === pluginMemory ? 0 : mem.size() / PAGE;
      if (max !== undefined && otherPages() + extismPages > max) {
        throw new PlinthError('out_of_memory', `the plug-in declares ${otherPages()} pages of memory, more than memory.max_pages = ${max} holds with the ${extismPages} of Extism memory; raise \`memory.max_pages\` in the manifest`);
      }
      const offer = instance.exports[INPUT_BUFFER_EXPORT];
      const inputBuffer = typeof offer === 'function' && pluginMemory !== undefined ? (offer as (len: number) => number) : undefined;
      const growRefused = [...Object.values(libraries), instance.exports]
        .map((exports) => exports[GROW_REFUSED_EXPORT])
        .filter((g): g is WebAssembly.Global => g instanceof WebAssembly.Global && resettable(g));
      // Unfused, the plug-in's memory.grow counts Extism memory (the host's) through this global,
      // kept at its pages, so that the two stay within max_pages together, as when fused.
      const pagesGlobal = instance.exports[EXTISM_PAGES_EXPORT];
      if (pagesGlobal instanceof WebAssembly.Global && resettable(pagesGlobal)) mem.onGrow((pages) => (pagesGlobal.value = pages));
      const live = { instance, state, mem, callable: new Map<string, () => unknown>(), inputBuffer, growRefused };
      // A plug-in dropped without close() gives its arena back to the kernel when collected.
      forgotten.register(this, arena, live);
      return live;
    } catch (e) {
      arena.drop();
      throw e;
    }
  }

  private hidden(name: string): boolean {
    return name === '_initialize' || name === this.info.memory_export || name === this.info.start_export || name === INPUT_BUFFER_EXPORT || name.startsWith('__plinth_');
  }

  /** @internal The worker's vars, for the main thread to keep across workers. */
  exportVars(): [string, Uint8Array][] {
    return [...this.vars];
  }

  /** @internal Changes with every var set or removed. */
  get varsVersion(): number {
    return this.vars.version;
  }

  /** @internal A fresh worker's vars: those its predecessor left. */
  restoreVars(entries: [string, Uint8Array][]): void {
    this.vars.clear();
    for (const [key, value] of entries) this.vars.set(key, value);
  }

  /** @internal A worker's config, as the main thread's updateConfig left it. */
  replaceConfig(entries: [string, string][]): void {
    this.configMap.clear();
    for (const [key, value] of entries) this.configMap.set(key, value);
  }

  /** The config the plug-in's config_get sees now, as a plain object. */
  config(): Record<string, string> {
    if (this.closed) throw closedError();
    return Object.fromEntries(this.configMap);
  }

  /**
   * Sets config keys (numbers, booleans and BigInts become strings) and removes those whose
   * value is `null` or `undefined`. Takes effect from the next call. Kind `busy` while a
   * call() is in flight (await it first), as in @plinth/node.
   */
  updateConfig(changes: ConfigChanges): void {
    if (this.closed) throw closedError();
    if (typeof changes !== 'object' || changes === null || Array.isArray(changes)) {
      throw new TypeError('updateConfig takes an object of config keys, such as { vowels: "aeiou", old: null }');
    }
    // All checked before any is applied.
    const parsed = Object.entries(changes).map(([key, value]): [string, string | undefined] => [key, value === null || value === undefined ? undefined : configString('updateConfig', key, value)]);
    this.checkIdle('updateConfig');
    for (const [key, value] of parsed) {
      if (value === undefined) this.configMap.delete(key);
      else this.configMap.set(key, value);
    }
    // The worker gets the whole config with the next call.
    this.remote?.setConfig([...this.configMap]);
  }

  /** Sets one config key (`updateConfig({ [key]: value })`); removing one is updateConfig's. */
  setConfig(key: string, value: ConfigValue): void {
    if (this.closed) throw closedError();
    checkKey('setConfig', key);
    if (value === null || value === undefined) throw new TypeError(`setConfig: config value \`${key}\` is ${String(value)}; to remove the key, use updateConfig({ ${JSON.stringify(key)}: null })`);
    this.updateConfig({ [key]: configString('setConfig', key, value) });
  }

  /**
   * A var the plug-in (or varSet) stored, or null. With a worker (`timeoutMs`), as the last
   * finished call left it.
   */
  varGet(key: string): Uint8Array | null {
    if (this.closed) throw closedError();
    checkKey('varGet', key);
    const value = this.remote !== undefined ? this.remote.varGet(key) : this.vars.get(key);
    return value === undefined ? null : value.slice();
  }

  /**
   * Sets a var (a string is stored as UTF-8), or removes it with null, within the manifest's
   * `memory.max_var_bytes` (kind `var_store_full`), as the plug-in's own var_set. Kind `busy`
   * while a call() is in flight.
   */
  varSet(key: string, value: Uint8Array | string | null | undefined): void {
    if (this.closed) throw closedError();
    checkKey('varSet', key);
    const bytes = varBytes(key, value);
    this.checkIdle('varSet');
    if (this.remote !== undefined) this.remote.varSet(key, bytes, this.maxVarBytes);
    else this.vars.put(key, bytes, this.maxVarBytes);
  }

  /**
   * Frees the plug-in's Extism memory (the last call's blocks, its output included); vars and
   * config stay. Kind `busy` while a call() is in flight.
   */
  reset(): void {
    this.checkIdle('reset');
    if (this.remote !== undefined) {
      this.remote.reset();
      return;
    }
    const live = this.live;
    if (live === undefined) return;
    live.mem.arena.reset();
    live.mem.setInput(0, 0);
    live.state.reset();
  }

  /**
   * Refuses a change while a call is in flight (kind `busy`, as @plinth/node: the JavaScript
   * thread does not wait for a call), or from the plug-in's own host function (`reentrant`).
   */
  private checkIdle(what: string): void {
    if (this.closed) throw closedError();
    if (this.hostScope.active) {
      throw new PlinthError('reentrant', `${what} refused: one of the plug-in's own host functions is running, inside a call of the plug-in; do it after the call ends`);
    }
    if (this.running !== undefined || this.queue.active || this.remote?.busy) {
      const whatRuns = this.running !== undefined ? `\`${this.running}\` is` : 'a call is';
      throw new PlinthError('busy', `${what} cannot run while a call() of the plug-in is in flight (${whatRuns} running or queued); await the call first`);
    }
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
    return [...this.callableNames()];
  }

  /** The callable exports, read from the module once (a worker's calls check each name). */
  private callableNames(): Set<string> {
    this.callableExports ??= new Set(
      WebAssembly.Module.exports(this.module)
        .filter((e) => e.kind === 'function' && !this.hidden(e.name))
        .map((e) => e.name),
    );
    return this.callableExports;
  }

  functionExists(name: string): boolean {
    return this.callableNames().has(name);
  }

  /**
   * Calls `name` with `input` and returns its output bytes. Calls of one plug-in run one at a
   * time, in the order they were made: a call made while another awaits a host function (JSPI)
   * or runs in the worker (`timeoutMs`) waits for it. `options.signal` cancels the call.
   */
  async call(name: string, input?: CallInput, options?: CallOptions): Promise<Uint8Array> {
    const signal = checkCallOptions(name, options);
    if (this.closed) throw closedError();
    // Queued behind the call that waits for it, a call from a host function would never run.
    if (this.hostScope.active) throw reentrant(name, 'one of its host functions is running');
    if (this.remote !== undefined) {
      if (!this.functionExists(name)) throw this.notFound(name);
      return this.remote.call(name, toBytes(input), signal);
    }
    // A synchronous plug-in's call runs to its end right here, so none is ever in flight.
    if (!this.async) return this.callSync(name, input);
    const bytes = toBytes(input);
    return this.queue.run(name, signal, () => this.callNow(name, bytes, signal));
  }

  async callString(name: string, input?: CallInput, options?: CallOptions): Promise<string> {
    return new TextDecoder().decode(await this.call(name, input, options));
  }

  /** `JSON.stringify` in, `JSON.parse` out. */
  async callJson(name: string, input: unknown, options?: CallOptions): Promise<unknown> {
    const text = new TextDecoder().decode(await this.call(name, JSON.stringify(input), options));
    try {
      return JSON.parse(text);
    } catch (e) {
      throw new PlinthError('convert', `the output of \`${name}\` is not JSON: ${describe(e)}`, { cause: e });
    }
  }

  /** A JSPI call, its turn come: it ends early, its instance dropped, if cancelled or closed. */
  private async callNow(name: string, input: Uint8Array, signal: AbortSignal | undefined): Promise<Uint8Array> {
    if (this.closed) throw new PlinthError('closed', 'the plug-in was closed before the call started');
    if (signal?.aborted) throw cancelled(name, signal, 'before it started');
    const { f, live } = this.begin(name, input);
    let stopped: PlinthError | undefined;
    let stop: (e: PlinthError) => void = () => {};
    const stopping = new Promise<never>((_, reject) => {
      stop = (e) => {
        stopped = e;
        reject(e);
      };
    });
    const onAbort = () => stop(cancelled(name, signal!, 'while the plug-in awaited a host function; its instance was dropped, and the next call starts a fresh one, with the vars kept'));
    signal?.addEventListener('abort', onAbort, { once: true });
    this.stopRunning = stop;
    let rc: unknown;
    try {
      // JSPI: the export runs on a stack of its own, which suspends while a host function awaits.
      rc = await Promise.race([(WebAssembly as unknown as Jspi).promising(f as (...args: never[]) => unknown)(), stopping]);
    } catch (e) {
      if (stopped !== undefined && e === stopped) {
        // The suspended stack cannot be unwound from here: its instance goes, and if it resumes,
        // its host calls fail (HostState.dropped).
        if (this.live === live) this.discard();
        throw stopped;
      }
      return this.threw(name, live, e);
    } finally {
      signal?.removeEventListener('abort', onAbort);
      this.stopRunning = undefined;
      this.running = undefined;
    }
    return this.finish(name, live, rc);
  }

  /** The call on this thread, without a Promise; not for plug-ins with async host functions. */
  callSync(name: string, input?: CallInput): Uint8Array {
    if (this.remote !== undefined) {
      const why = this.remote.reason === 'timeout' ? 'has a timeout' : 'waits for JavaScript promises (async host functions or fetch) on an engine without JSPI';
      throw new PlinthError('host_function', `callSync cannot call \`${name}\`: the plug-in ${why}, so it runs in a worker; use call(), callString() or callJson()`);
    }
    if (this.closed) throw closedError();
    if (this.async) {
      if (this.hostScope.active) throw reentrant(name, 'one of its host functions is running');
      // As @plinth/node: kind busy while a call is in flight (callSync cannot wait for it).
      if (this.running !== undefined) {
        throw new PlinthError('busy', `callSync cannot call \`${name}\` while \`${this.running}\` awaits a host function, and the plug-in awaits async host functions (or fetch, for http_request) anyway; use call(), callString() or callJson(), which wait their turn`);
      }
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

  private notFound(name: string): PlinthError {
    const list = this.functions();
    return new PlinthError('function_not_found', `function \`${name}\` not found in the plug-in; its callable exports are: ${list.length === 0 ? '(none)' : list.join(', ')}`);
  }

  /** Checks the call, finds the export and puts the input in place; marks the plug-in running. */
  private begin(name: string, input: CallInput): { f: () => unknown; live: Live } {
    if (this.closed) throw closedError();
    // Only a host function can call while a synchronous call runs; JSPI calls are queued.
    if (this.running !== undefined) throw reentrant(name, `the plug-in is already running \`${this.running}\``);
    const bytes = toBytes(input);
    this.live ??= this.instantiate();
    const live = this.live;
    const { state, mem, inputBuffer } = live;
    const f = live.callable.get(name) ?? this.export(live, name);
    state.reset();
    // A refusal in an earlier call explains nothing in this one (natively too).
    for (const flag of live.growRefused) flag.value = 0;
    // A plug-in that offers a buffer for the input gets it there, not in Extism memory.
    const direct = inputBuffer !== undefined && bytes.length > 0;
    const placed = mem.beginCall(direct ? new Uint8Array(0) : bytes);
    if (placed !== undefined) {
      throw new PlinthError('out_of_memory', `\`${name}\` ran out of memory: its ${bytes.length}-byte input does not fit in memory.max_pages = ${this.maxPages} pages; raise \`memory.max_pages\` in the manifest`);
    }
    if (direct) {
      let ptr: number;
      try {
        ptr = inputBuffer(bytes.length) >>> 0;
      } catch (e) {
        throw this.failed(INPUT_BUFFER_EXPORT, e, live);
      }
      const to = new Uint8Array(state.pluginMemory!.buffer);
      if (ptr + bytes.length > to.length) {
        this.discard();
        throw new PlinthError('memory', `${INPUT_BUFFER_EXPORT} gave a buffer at ${ptr} for ${bytes.length} bytes of input, which is outside the plug-in's memory`);
      }
      to.set(bytes, ptr);
    }
    this.running = name;
    return { f, live };
  }

  /** The export `name` of the live instance, checked callable, and kept for later calls. */
  private export(live: Live, name: string): () => unknown {
    const f = this.hidden(name) ? undefined : live.instance.exports[name];
    if (f === undefined) {
      const list = this.functions();
      throw new PlinthError('function_not_found', `function \`${name}\` not found in the plug-in; its callable exports are: ${list.length === 0 ? '(none)' : list.join(', ')}`);
    }
    if (typeof f !== 'function' || f.length !== 0) {
      throw new PlinthError('not_callable', `export \`${name}\` is not callable: a plug-in function must have type () -> i32 or () -> ()`);
    }
    live.callable.set(name, f as () => unknown);
    return f as () => unknown;
  }

  /** A call whose export threw: WASI proc_exit(0) is a success, anything else fails it. */
  private threw(name: string, live: Live, e: unknown): Uint8Array {
    if (this.wasi?.exitCode(e) === 0) return this.exitedCleanly(name, live);
    throw this.failed(name, e, live);
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
  private failed(name: string, e: unknown, live: Live): PlinthError {
    this.discard();
    // As natively: a trap that a refused growth leads to is the budget's, not a bug's, be it
    // the plug-in's memory.grow or Extism memory's growth for an alloc (which then gave 0).
    const refused = live.growRefused.some((flag) => flag.value === 1) || live.mem.refused;
    if (refused && e instanceof WebAssembly.RuntimeError && REFUSAL_TRAP.test(e.message)) {
      const max = this.maxPages ?? 0;
      return new PlinthError('out_of_memory', `\`${name}\` ran out of memory: the plug-in trapped (${e.message}) after its memory could not grow past memory.max_pages = ${max} pages (${(max * 64) / 1024} MiB); raise \`memory.max_pages\` in the manifest`, { cause: e });
    }
    const exit = this.wasi?.exitCode(e);
    if (exit !== undefined) return new PlinthError('exit', `the plug-in called WASI proc_exit with code ${exit} in \`${name}\``, { cause: e, code: exit });
    if (e instanceof PlinthError) {
      if (e.kind === 'trap' || e.kind === 'host_function' || e.kind === 'reentrant' || e.kind === 'cancelled') return e;
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
    const h = state.outputOffset;
    const len = state.outputLength;
    if (h === 0 && len === 0) return new Uint8Array(0);
    const out = mem.range(h, len);
    if (out === undefined) {
      throw new PlinthError('memory', `\`${name}\` set its output to ${len} bytes at ${h}, which is outside its memory`);
    }
    return out.slice();
  }

  private discard(): void {
    if (this.live !== undefined) {
      this.live.state.dropped = true;
      forgotten.unregister(this.live);
      this.live.mem.arena.drop();
    }
    this.live = undefined;
  }

  /**
   * Frees the instance; the call in flight and the queued ones fail with kind `closed`, and so
   * do later calls. Idempotent.
   */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.queue.failWaiting(() => new PlinthError('closed', 'the plug-in was closed while the call waited for the calls before it, so it never ran'));
    this.stopRunning?.(new PlinthError('closed', 'the plug-in was closed while the call awaited a host function'));
    this.discard();
    if (this.remote !== undefined) {
      forgottenWorkers.unregister(this.remote);
      this.remote.close();
    }
  }
}
