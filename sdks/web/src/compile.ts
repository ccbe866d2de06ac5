// The compile step of a plug-in, done once however many instances follow (CompiledPlugin, or
// Plugin.load's one): the manifest checks, hashing, WAT to binary, the kernel's prepare and
// memory limit, WebAssembly.compile, and the import check; CompiledParts is what instances
// are made from (plugin.ts).
import { PlinthError } from './errors.js';
import { abiImports, HostState, inPluginWorker, VarStore } from './host.js';
import { HttpPolicy } from './http.js';
import { compileLibrary, checkModuleImports, instantiationOrder, MAIN_MODULE, moduleNames, type LibraryModule } from './link.js';
import { JSPI } from './jspi.js';
import { loadKernel, MULTI_MEMORY, type KernelApi, type PrepareInfo } from './kernel.js';
import { fileURLToPath, isWasmBinary, loadWasm, looksLikeManifest, parseManifest, sha256Hex, validateManifest, type Manifest, type WasmSource } from './manifest.js';
import type { PluginOptions, PluginSource } from './options.js';
import { makeWasi, type Wasi } from './wasi.js';

const OPTIONS = ['functions', 'config', 'allowedHosts', 'timeoutMs', 'wasi', 'logger', 'logLevel', 'kernel'];

/** What every instance of a plug-in shares; made once by compilePlugin. */
export interface CompiledParts {
  kernel: KernelApi;
  /** The main module, as the kernel prepared it, and what the rewrite exported. */
  module: WebAssembly.Module;
  info: PrepareInfo;
  /** The other modules, in the order they are instantiated. */
  libraries: LibraryModule[];
  manifest: Manifest;
  options: PluginOptions;
  config: Map<string, string>;
  http: HttpPolicy;
  /** The call time limit; with one, each instance runs in a worker. */
  timeoutMs: number | undefined;
  /**
   * Why each instance runs in a worker, which gets `workerManifest`: a time limit, or a plug-in
   * that must wait for JavaScript (async host functions, `http_request`'s fetch) on an engine
   * without JSPI, where only a worker can wait (with Atomics) while this thread does the work.
   * Undefined: the instance runs on this thread.
   */
  worker: 'timeout' | 'no_jspi' | undefined;
  workerManifest: Manifest | undefined;
  /** Whether a module imports `http_request`, whose fetch a call then waits for. */
  importsHttp: boolean;
}

/** Whether one of `modules` imports `http_request` (also under its pre-1.0 name). */
function importsHttpRequest(modules: WebAssembly.Module[]): boolean {
  return modules.some((m) => WebAssembly.Module.imports(m).some((i) => i.kind === 'function' && (i.name === 'http_request' || i.name === 'extism_http_request')));
}

/**
 * The manifest `source` stands for. Bytes (and a file: URL's contents) are told apart by
 * content, as natively: a wasm binary or WAT text is a module, JSON or TOML a manifest; the
 * kernel reads TOML, so it is awaited only for bytes that are neither a binary nor JSON.
 */
async function toManifest(source: PluginSource, kernelLoad: Promise<KernelApi>): Promise<Manifest> {
  // The manifest in `bytes`, or undefined for a module.
  const read = async (bytes: Uint8Array): Promise<Manifest | undefined> => {
    const kernel = isWasmBinary(bytes) || looksLikeManifest(bytes) ? undefined : await kernelLoad;
    return looksLikeManifest(bytes, kernel) ? parseManifest(bytes, kernel) : undefined;
  };
  if (source instanceof URL) {
    // A file: URL (Node.js) may name a module or a manifest file, told apart by content.
    if (source.protocol !== 'file:') return { wasm: [{ url: source.href }] };
    const bytes = await loadWasm({ path: fileURLToPath(source) });
    const manifest = await read(bytes);
    if (manifest === undefined) return { wasm: [{ data: bytes }] };
    // The core's one rule: a manifest file's relative paths are relative to its folder.
    for (const w of manifest.wasm) {
      if (w.path !== undefined && !w.path.startsWith('/')) w.path = fileURLToPath(new URL(w.path, source));
    }
    return manifest;
  }
  if (source instanceof Uint8Array || source instanceof ArrayBuffer) {
    const bytes = source instanceof ArrayBuffer ? new Uint8Array(source) : source;
    return (await read(bytes)) ?? { wasm: [{ data: bytes }] };
  }
  return validateManifest(source);
}

function describe(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** The main module, compiled from the kernel's rewrite of its bytes. */
interface CompiledModule {
  module: WebAssembly.Module;
  info: PrepareInfo;
}

/**
 * Compiled main modules by kernel and by the sha256 of their bytes with the page budget they
 * were capped at, so that loading the same plug-in again skips validation, the rewrite and
 * compilation (the native runtime keeps a module cache for the same reason). The newest few
 * are kept.
 */
const compiledModules = new WeakMap<KernelApi, Map<string, CompiledModule>>();
const COMPILED_MODULES_KEPT = 32;

/**
 * Validates, rewrites (the kernel's `prepare`, then its memory cap when `maxPages` is set) and
 * compiles `bytes`, or finds them compiled.
 */
async function compileMain(kernelLoad: Promise<KernelApi>, kernel: KernelApi | undefined, bytes: Uint8Array, name: string, maxPages: number | undefined): Promise<CompiledModule> {
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

/** Names every import nothing provides, before instantiation says less. */
function checkImports(parts: CompiledParts, wasi: Wasi | undefined, mainName: string): void {
  const provided = new Set<string>();
  for (const [ns, fns] of Object.entries(abiImports(new HostState(new Map(), new VarStore(), 0, parts.http, 0, undefined, 'info'), false))) {
    for (const n of Object.keys(fns)) provided.add(`${ns}::${n}`);
  }
  for (const f of parts.options.functions ?? []) provided.add(`${f.namespace}::${f.name}`);
  if (wasi !== undefined) {
    for (const [ns, fns] of Object.entries(wasi.instance().imports)) {
      for (const n of Object.keys(fns as object)) provided.add(`${ns}::${n}`);
    }
  }
  const several = parts.libraries.length > 0;
  const modules = [...parts.libraries, { name: MAIN_MODULE, module: parts.module }];
  checkModuleImports(modules, provided, (name, imp) => {
    const what = `${several ? `module \`${name}\`` : 'the plug-in'} imports ${imp.kind} \`${imp.name}\` from \`${imp.module}\``;
    if (imp.module === 'plinth:host/env' && /^(http_)?stream_/.test(imp.name)) {
      return new PlinthError('link', `${what}: the plug-in streams its input or output, which @plinth/web does not do yet; call it with @plinth/node or the Rust runtime`);
    }
    if (imp.module.startsWith('wasi_')) {
      return new PlinthError('link', `${what}, which is WASI: load the plug-in with \`wasi: true\` (or \`wasi: { files, stdout, … }\`)`);
    }
    if (several && imp.module === mainName && mainName !== MAIN_MODULE) {
      return new PlinthError('link', `${what}: \`${mainName}\` is the main module (no module is named "main", so the last one is, and is called "main"), and only the main module imports from the others; name the main module "main", or list it last`);
    }
    const noModule = several ? `no module of the manifest is named \`${imp.module}\` (they are ${modules.map((m) => `\`${m.name}\``).join(', ')}), and ` : '';
    return new PlinthError('link', `${what}, which nothing provides: ${noModule}no host function has that name and namespace; pass a HostFunction for it in \`functions\``);
  });
}

/** Reads, checks, prepares and compiles every module of a plug-in; see CompiledPlugin.load. */
export async function compilePlugin(source: PluginSource, options: PluginOptions): Promise<CompiledParts> {
  const unknown = Object.keys(options).filter((k) => !OPTIONS.includes(k));
  if (unknown.length > 0) throw new TypeError(`unknown plug-in options ${unknown.join(', ')}; the options are ${OPTIONS.join(', ')}`);
  const kernelLoad = loadKernel(options.kernel);
  kernelLoad.catch(() => {}); // awaited where needed; a bad module is reported first
  const manifest = await toManifest(source, kernelLoad);
  const timeoutMs = options.timeoutMs ?? manifest.timeout_ms;
  if (timeoutMs !== undefined && (!Number.isInteger(timeoutMs) || timeoutMs <= 0)) {
    throw new TypeError(`timeoutMs must be a positive integer of milliseconds, not ${String(timeoutMs)}`);
  }
  if (manifest.allowed_paths !== undefined && Object.keys(manifest.allowed_paths).length > 0 && !options.wasi) {
    throw new PlinthError('wasi', '`allowed_paths` needs WASI; load the plug-in with `wasi: true` (or `wasi: { files }` for an in-memory file system)');
  }
  // Made once here to check the options and the imports; each instance gets its own.
  const wasi = options.wasi ? await makeWasi(options.wasi === true ? {} : options.wasi, manifest.allowed_paths) : undefined;
  const http = new HttpPolicy(options.allowedHosts ?? manifest.allowed_hosts);
  const config = new Map(Object.entries({ ...manifest.config, ...options.config }));
  for (const [k, v] of config) {
    if (typeof v !== 'string') throw new TypeError(`config \`${k}\` must be a string, got ${typeof v}`);
  }
  const names = moduleNames(manifest);
  const mainAt = names.indexOf(MAIN_MODULE);
  // loadWasm checks each module's hash, of the bytes as given (WAT text too), as natively.
  const given = await Promise.all(manifest.wasm.map((w, i) => loadWasm({ ...w, name: names[i] })));
  // WAT text becomes a binary with the native runtime's parser (the kernel's), before
  // anything reads the module.
  const bytes = await Promise.all(given.map(async (b, i) => (isWasmBinary(b) ? b : (await kernelLoad).wat(b, i === mainAt ? manifest.wasm[mainAt].name ?? MAIN_MODULE : names[i], i === mainAt ? 'plug-in' : 'module'))));
  const maxPages = manifest.memory?.max_pages;
  const libraries: LibraryModule[] = [];
  for (let i = 0; i < names.length; i++) {
    if (i === mainAt) continue;
    // A library's own memories are capped at the budget too (each on its own: they are not
    // fused, so their growth cannot see the other memories).
    const capped = maxPages === undefined ? bytes[i] : (await kernelLoad).limitMemory(bytes[i], maxPages, names[i], false);
    libraries.push(await compileLibrary(capped, names[i]));
  }
  const kernel = await kernelLoad.catch(() => undefined);
  const { module, info } = await compileMain(kernelLoad, kernel, bytes[mainAt], manifest.wasm[mainAt].name ?? MAIN_MODULE, maxPages);
  // In a plug-in's worker already, host functions and fetch are answered synchronously.
  const importsHttp = importsHttpRequest([module, ...libraries.map((l) => l.module)]);
  // Without JSPI a plug-in that waits for promises (async host functions, fetch) cannot run here.
  const waits = importsHttp || (options.functions ?? []).some((f) => f.isAsync);
  const worker = timeoutMs !== undefined ? 'timeout' : !JSPI && !inPluginWorker() && waits ? 'no_jspi' : undefined;
  let workerManifest: Manifest | undefined;
  if (worker !== undefined) {
    // The worker loads the same bytes (hashes checked here, WAT already a binary) in the same
    // order, without the limit.
    const wasm: WasmSource[] = manifest.wasm.map(({ hash: _hash, url: _url, path: _path, headers: _headers, method: _method, ...entry }, i) => ({ ...entry, data: bytes[i] }));
    workerManifest = { ...manifest, wasm, timeout_ms: undefined };
  }
  const parts: CompiledParts = {
    kernel: await kernelLoad,
    module,
    info,
    libraries: instantiationOrder(libraries, module),
    manifest,
    options,
    config,
    http,
    timeoutMs,
    worker,
    workerManifest,
    importsHttp,
  };
  checkImports(parts, wasi, manifest.wasm[mainAt].name ?? MAIN_MODULE);
  return parts;
}
