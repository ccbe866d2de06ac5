// The manifest rules of the core (crates/manifest): unknown fields are refused, a wasm entry
// has exactly one of data, path or url, `hash` is a sha256 of the bytes in hex. Keys set to
// null or undefined count as absent, as in the Node SDK. TOML manifests are parsed by the
// kernel (the core's own parser) and then checked here like JSON ones.
import { PlinthError } from './errors.js';
import type { KernelApi } from './kernel.js';

/** One module of a manifest: exactly one of `data`, `path` or `url`. */
export interface WasmSource {
  /** The module's bytes, or standard base64 of them. */
  data?: Uint8Array | ArrayBuffer | number[] | string;
  /** A file path (Node.js only). */
  path?: string;
  /** Fetched with the platform's `fetch`. */
  url?: string;
  headers?: Record<string, string>;
  method?: string;
  /**
   * The module's name, which the other modules import it by; unnamed, it is "main". The main
   * module (the plug-in's functions) is the one named "main", else the last.
   */
  name?: string;
  /** sha256 of the module's bytes, 64 hex digits. */
  hash?: string;
}

export interface MemoryOptions {
  /** One budget in 64 KiB pages for the plug-in's memory and Extism memory. */
  max_pages?: number;
  max_http_response_bytes?: number;
  /** The most bytes of vars (keys and values) a plug-in may keep; 1 MiB by default. */
  max_var_bytes?: number;
}

export interface Manifest {
  wasm: WasmSource[];
  memory?: MemoryOptions;
  config?: Record<string, string>;
  allowed_hosts?: string[];
  allowed_paths?: Record<string, string>;
  timeout_ms?: number;
}

export const DEFAULT_MAX_VAR_BYTES = 1024 * 1024;
export const DEFAULT_MAX_HTTP_RESPONSE_BYTES = 50 * 1024 * 1024;

const MANIFEST_FIELDS = ['wasm', 'memory', 'config', 'allowed_hosts', 'allowed_paths', 'timeout_ms'];
const MEMORY_FIELDS = ['max_pages', 'max_http_response_bytes', 'max_var_bytes'];
const WASM_FIELDS = ['data', 'path', 'url', 'headers', 'method', 'name', 'hash'];

function bad(message: string): PlinthError {
  return new PlinthError('manifest', message);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !ArrayBuffer.isView(v);
}

/** The keys of `obj` whose values are set, after refusing any key outside `allowed`. */
function present(obj: Record<string, unknown>, allowed: string[], where: string): string[] {
  const keys = Object.keys(obj).filter((k) => obj[k] !== undefined && obj[k] !== null);
  for (const k of keys) {
    if (!allowed.includes(k)) {
      throw bad(`invalid manifest: unknown field \`${k}\` in ${where}, expected one of ${allowed.map((a) => `\`${a}\``).join(', ')}`);
    }
  }
  return keys;
}

function nonNegativeInteger(v: unknown, what: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
    throw bad(`invalid manifest: \`${what}\` must be a non-negative integer, got ${JSON.stringify(v)}`);
  }
  return v;
}

function stringMap(v: unknown, what: string): Record<string, string> {
  if (!isObject(v)) throw bad(`invalid manifest: \`${what}\` must be an object of strings`);
  const out: Record<string, string> = {};
  for (const [k, val] of Object.entries(v)) {
    if (typeof val !== 'string') {
      throw bad(`invalid manifest: \`${what}.${k}\` must be a string, got ${typeof val}`);
    }
    out[k] = val;
  }
  return out;
}

/** Checks a manifest's shape and returns a normalised copy (absent keys dropped). */
export function validateManifest(value: unknown): Manifest {
  if (!isObject(value)) throw bad('invalid manifest: a manifest is an object with a `wasm` list');
  present(value, MANIFEST_FIELDS, 'the manifest');
  const wasm = value.wasm;
  if (!Array.isArray(wasm) || wasm.length === 0) {
    throw bad('the manifest lists no wasm modules; add at least one entry to `wasm`');
  }
  const out: Manifest = { wasm: wasm.map((w, i) => validateWasm(w, i)) };
  const names = new Set<string>();
  for (const w of out.wasm) {
    const name = w.name ?? 'main';
    if (names.has(name)) {
      const unnamed = name === 'main' && out.wasm.filter((m) => m.name === undefined).length > 0 ? ' (an unnamed module is called "main")' : '';
      throw bad(`more than one wasm module is named ${JSON.stringify(name)}${unnamed}; give each module a unique \`name\`: in a manifest with several modules, every module but the main one needs the name the others import it by`);
    }
    names.add(name);
  }
  if (value.memory != null) {
    if (!isObject(value.memory)) throw bad('invalid manifest: `memory` must be an object');
    const memory: MemoryOptions = {};
    for (const k of present(value.memory, MEMORY_FIELDS, '`memory`')) {
      memory[k as keyof MemoryOptions] = nonNegativeInteger(value.memory[k], `memory.${k}`);
    }
    if (memory.max_pages !== undefined && memory.max_pages > 65536) {
      throw bad(`invalid manifest: \`memory.max_pages\` is ${memory.max_pages}, but a 32-bit memory holds at most 65536 pages`);
    }
    out.memory = memory;
  }
  if (value.config != null) out.config = stringMap(value.config, 'config');
  if (value.allowed_hosts != null) {
    const hosts = value.allowed_hosts;
    if (!Array.isArray(hosts) || hosts.some((h) => typeof h !== 'string')) {
      throw bad('invalid manifest: `allowed_hosts` must be a list of host globs (strings)');
    }
    out.allowed_hosts = [...hosts];
  }
  if (value.allowed_paths != null) out.allowed_paths = stringMap(value.allowed_paths, 'allowed_paths');
  if (value.timeout_ms != null) out.timeout_ms = nonNegativeInteger(value.timeout_ms, 'timeout_ms');
  return out;
}

function validateWasm(value: unknown, i: number): WasmSource {
  if (!isObject(value)) throw bad(`invalid wasm entry: wasm[${i}] must be an object with one of path, data or url`);
  const keys = present(value, WASM_FIELDS, `wasm[${i}]`);
  const label = typeof value.name === 'string' ? `wasm[${i}] (name ${JSON.stringify(value.name)})` : `wasm[${i}]`;
  const sources = keys.filter((k) => k === 'data' || k === 'path' || k === 'url');
  if (sources.length !== 1) {
    const found = sources.length === 0 ? 'none of them' : sources.join(' and ');
    throw bad(`invalid wasm entry: ${label}: a wasm entry needs exactly one of path, data or url (found ${found})`);
  }
  if (!keys.includes('url') && (keys.includes('headers') || keys.includes('method'))) {
    throw bad(`invalid wasm entry: ${label}: \`headers\` and \`method\` are only allowed together with \`url\``);
  }
  const out: WasmSource = {};
  for (const k of ['path', 'url', 'method', 'name', 'hash'] as const) {
    if (keys.includes(k)) {
      if (typeof value[k] !== 'string') throw bad(`invalid wasm entry: ${label}: \`${k}\` must be a string`);
      out[k] = value[k] as string;
    }
  }
  if (keys.includes('headers')) out.headers = stringMap(value.headers, `wasm[${i}].headers`);
  if (keys.includes('data')) {
    const d = value.data;
    if (!(typeof d === 'string' || d instanceof Uint8Array || d instanceof ArrayBuffer || Array.isArray(d))) {
      throw bad(`invalid wasm entry: ${label}: \`data\` must be bytes (a Uint8Array) or standard base64 text`);
    }
    out.data = d;
  }
  if (out.name === '') throw bad(`invalid wasm entry: ${label}: \`name\` must not be empty; remove it or pick a name`);
  if (out.hash !== undefined && !/^[0-9a-fA-F]{64}$/.test(out.hash)) {
    throw bad(`wasm module ${JSON.stringify(out.name ?? 'main')} has a malformed hash ${JSON.stringify(out.hash)}; \`hash\` must be the sha256 of the module as 64 hex digits`);
  }
  return out;
}

function decodeBase64(text: string, name: string): Uint8Array {
  const t = text.trim();
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(t) || t.length % 4 !== 0) {
    throw bad(`wasm module ${JSON.stringify(name)} has invalid \`data\`: not standard padded base64; \`data\` must be standard padded base64 or an array of bytes`);
  }
  const bin = atob(t);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/** The sha256 of `bytes` as lowercase hex, with WebCrypto. */
export async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const digest = await crypto.subtle.digest('SHA-256', bytes as Uint8Array<ArrayBuffer>);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, '0')).join('');
}

/** Reads, fetches or decodes one module's bytes and checks its hash. */
export async function loadWasm(source: WasmSource): Promise<Uint8Array> {
  const name = source.name ?? 'main';
  let bytes: Uint8Array;
  if (source.data !== undefined) {
    const d = source.data;
    if (typeof d === 'string') bytes = decodeBase64(d, name);
    else if (d instanceof ArrayBuffer) bytes = new Uint8Array(d);
    else if (Array.isArray(d)) {
      if (d.some((b) => !Number.isInteger(b) || b < 0 || b > 255)) {
        throw bad(`wasm module ${JSON.stringify(name)} has invalid \`data\`: an array of bytes holds integers from 0 to 255`);
      }
      bytes = Uint8Array.from(d);
    } else bytes = d;
  } else if (source.path !== undefined) {
    bytes = await readFile(source.path);
  } else {
    bytes = await fetchWasm(source);
  }
  if (source.hash !== undefined) {
    const actual = await sha256Hex(bytes);
    const expected = source.hash.toLowerCase();
    if (actual !== expected) {
      throw bad(`hash mismatch for wasm module ${JSON.stringify(name)}: the manifest expects sha256 ${expected} but the module's bytes hash to ${actual}; fix the \`hash\` field or use the right module`);
    }
  }
  return bytes;
}

async function readFile(path: string): Promise<Uint8Array> {
  let fs: typeof import('node:fs/promises');
  try {
    fs = await import('node:fs/promises');
  } catch {
    throw bad(`cannot read wasm file ${path}: this platform has no file system; give the module as \`data\` or \`url\``);
  }
  try {
    return new Uint8Array(await fs.readFile(path));
  } catch (e) {
    throw bad(`cannot read wasm file ${path}: ${(e as Error).message}`);
  }
}

async function fetchWasm(source: WasmSource): Promise<Uint8Array> {
  const url = source.url as string;
  let response: Response;
  try {
    response = await fetch(url, { method: source.method ?? 'GET', headers: source.headers });
  } catch (e) {
    throw bad(`cannot fetch wasm from ${url}: ${(e as Error).message}`);
  }
  if (!response.ok) throw bad(`cannot fetch wasm from ${url}: the server answered ${response.status} ${response.statusText}`);
  return new Uint8Array(await response.arrayBuffer());
}

/** The first byte after a UTF-8 byte-order mark and ASCII whitespace, as the core skips them. */
function firstByte(bytes: Uint8Array): number | undefined {
  let i = bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf ? 3 : 0;
  while (i < bytes.length && (bytes[i] === 0x20 || bytes[i] === 0x0a || bytes[i] === 0x0d || bytes[i] === 0x09 || bytes[i] === 0x0c)) i++;
  return bytes[i];
}

/** Whether `bytes` start with the wasm binary header. */
export function isWasmBinary(bytes: Uint8Array): boolean {
  return bytes[0] === 0 && bytes[1] === 0x61 && bytes[2] === 0x73 && bytes[3] === 0x6d;
}

/**
 * Whether `bytes` are a manifest rather than a module, told apart as the core does
 * (`Manifest::looks_like_manifest`): JSON starts with `{`, a module with `\0asm` or `(` (WAT),
 * and other text is a TOML manifest when its top-level table has a `wasm` key, which only the
 * kernel (the core's TOML parser) can tell; without `kernel` such text is taken as a module.
 */
export function looksLikeManifest(bytes: Uint8Array, kernel?: KernelApi): boolean {
  const first = firstByte(bytes);
  if (first === 0x7b) return true; // '{'
  if (first === undefined || first === 0x28 || first === 0x00 || kernel === undefined) return false;
  return kernel.looksLikeManifest(bytes);
}

/**
 * Parses manifest text: JSON here (the checks of validateManifest), TOML through the kernel,
 * with the core's parser and messages, then through the same checks.
 */
export function parseManifest(bytes: Uint8Array, kernel?: KernelApi): Manifest {
  if (firstByte(bytes) !== 0x7b) {
    if (kernel === undefined) throw bad('the manifest is not JSON (it does not start with `{`), and TOML manifests are read by the Plinth web kernel, which was not given');
    return validateManifest(kernel.manifest(bytes));
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw bad('the manifest is not valid UTF-8 text; manifests must be JSON or TOML');
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw bad(`invalid JSON manifest: ${(e as Error).message}`);
  }
  return validateManifest(value);
}

/** A file: URL's path, without importing node:url (this module also runs in browsers). */
export function fileURLToPath(url: URL): string {
  if (url.protocol !== 'file:') throw new PlinthError('manifest', `${url.href} is not a file: URL`);
  return decodeURIComponent(url.pathname);
}
