// WASI preview 1 for plug-ins built for wasm32-wasip1. Two engines behind one option:
// - the in-memory file system of @bjorn3/browser_wasi_shim (browsers, and Node.js when the host
//   gives `files` or stdout/stderr callbacks): `allowed_paths`' guest paths are directories in
//   memory, filled from `files`;
// - node:wasi on Node.js otherwise: `allowed_paths` are real host directories, as in the native
//   runtime.
import type { Fd, Inode } from '@bjorn3/browser_wasi_shim';
import { PlinthError } from './errors.js';

type Shim = typeof import('@bjorn3/browser_wasi_shim');
/** Loaded on first use, so that a page (or worker) without WASI never imports it. */
let shim: Shim | undefined;
/**
 * node:wasi's stdin/stdout/stderr: the null device, opened once per process and kept (fds are
 * per process, so a worker is given the main thread's rather than opening one it would leak
 * when terminated).
 */
let nullFd: number | undefined;

/** The null device's fd, for a worker (Node.js); undefined until node:wasi is used. */
export function nullDeviceFd(): number | undefined {
  return nullFd;
}

const SHIM = '@bjorn3/browser_wasi_shim';
/** Where a worker imports the shim from (an import map does not reach into workers). */
let shimUrl: string | undefined;

/** The shim's URL as this thread resolves it (import maps included), for a worker. */
export function resolvedShimUrl(): string | undefined {
  if (shimUrl !== undefined) return shimUrl;
  try {
    return import.meta.resolve(SHIM);
  } catch {
    return undefined; // a bundler that has no import.meta.resolve: the worker's own import decides
  }
}

/** A worker imports the shim from where its main thread found it. */
export function useShimUrl(url: string | undefined): void {
  if (url !== undefined) shimUrl = url;
}

/** A worker uses the main thread's null device. */
export function useNullDeviceFd(fd: number | undefined): void {
  if (fd !== undefined) nullFd = fd;
}

/** WASI's settings (`Plugin.load(source, { wasi: { … } })`); `wasi: true` is `{}`. */
export interface WasiOptions {
  /** The plug-in's argv (the first is the program name); `[]` by default. */
  args?: string[];
  /** Environment variables; none by default (the host's are never passed). */
  env?: Record<string, string>;
  /** Gets each write to stdout; without it stdout is discarded. */
  stdout?: (bytes: Uint8Array) => void;
  /** Gets each write to stderr; without it stderr is discarded. */
  stderr?: (bytes: Uint8Array) => void;
  /**
   * An in-memory file system: guest path → content. Each path must be inside a guest
   * directory of `allowed_paths`. With `files` (and always in browsers) `allowed_paths`' host
   * directories are not read: the guest sees only these files, and what it writes stays in
   * memory (`plugin.readWasiFile`). A `ro:` mount makes these files read-only (the shim cannot
   * stop the guest from creating new files in memory there).
   */
  files?: Record<string, Uint8Array | string>;
}

const READ_ONLY = 'ro:';
const IS_NODE = typeof process !== 'undefined' && typeof process.versions?.node === 'string';

/** One preopened directory: where the guest sees it, what the host named, read-only or not. */
interface Preopen {
  guest: string;
  host: string;
  readOnly: boolean;
}

function preopens(allowedPaths: Record<string, string> | undefined): Preopen[] {
  return Object.entries(allowedPaths ?? {}).map(([host, guest]) => {
    const readOnly = host.startsWith(READ_ONLY);
    return { host: readOnly ? host.slice(READ_ONLY.length) : host, guest, readOnly };
  });
}

/** Splits `/a/b/` into `['a', 'b']`; `.` and `..` are refused. */
function parts(path: string, what: string): string[] {
  const out = path.split('/').filter((p) => p !== '');
  if (out.some((p) => p === '.' || p === '..')) {
    throw new PlinthError('wasi', `${what} \`${path}\` contains \`.\` or \`..\`; give an absolute path without them`);
  }
  return out;
}

/** Per-instance WASI: the imports and how to start it on the instance. */
export interface WasiInstance {
  imports: Record<string, unknown>;
  initialize(instance: WebAssembly.Instance): void;
}

/** A plug-in's WASI, made once at load; `instance()` makes what one wasm instance needs. */
export interface Wasi {
  readonly engine: 'memory' | 'node:wasi';
  instance(): WasiInstance;
  /** A file of the in-memory file system (undefined with node:wasi or when there is none). */
  readFile(path: string): Uint8Array | undefined;
  /** The code of a `proc_exit` that `e` (a call's exception) stands for, if it is one. */
  exitCode(e: unknown): number | undefined;
}

/** Builds WASI from the options and the manifest's `allowed_paths`. */
export async function makeWasi(options: WasiOptions, allowedPaths: Record<string, string> | undefined): Promise<Wasi> {
  const known = ['args', 'env', 'stdout', 'stderr', 'files'];
  const unknown = Object.keys(options).filter((k) => !known.includes(k));
  if (unknown.length > 0) throw new TypeError(`unknown wasi options ${unknown.join(', ')}; they are ${known.join(', ')}`);
  const args = options.args ?? [];
  const env = Object.entries(options.env ?? {}).map(([k, v]) => `${k}=${v}`);
  const dirs = preopens(allowedPaths);
  if (IS_NODE && options.files === undefined && options.stdout === undefined && options.stderr === undefined) {
    return nodeWasi(args, options.env ?? {}, dirs);
  }
  shim ??= (await (shimUrl === undefined ? import('@bjorn3/browser_wasi_shim') : import(shimUrl))) as Shim;
  return memoryWasi(shim, args, env, dirs, options);
}

async function nodeWasi(args: string[], env: Record<string, string>, dirs: Preopen[]): Promise<Wasi> {
  const ro = dirs.filter((d) => d.readOnly);
  if (ro.length > 0) {
    throw new PlinthError('wasi', `node:wasi cannot mount \`${ro[0].host}\` read-only (\`ro:\`); drop the prefix, or pass \`wasi.files\` to use the in-memory file system`);
  }
  // A variable specifier, so browser bundlers do not try to resolve node: modules.
  const [wasiSpec, fsSpec, osSpec] = ['node:wasi', 'node:fs', 'node:os'];
  const [{ WASI }, fs, os] = await Promise.all([import(wasiSpec), import(fsSpec), import(osSpec)]);
  for (const d of dirs) {
    let isDir = false;
    try {
      isDir = fs.statSync(d.host).isDirectory();
    } catch {
      isDir = false;
    }
    if (!isDir) throw new PlinthError('wasi', `cannot open the allowed_paths directory \`${d.host}\`: it does not exist or is not a directory; create it or fix the path`);
  }
  const preopenMap = Object.fromEntries(dirs.map((d) => [d.guest, d.host]));
  // Output with no callback is discarded, as with the in-memory engine.
  nullFd ??= fs.openSync(os.devNull, 'r+') as number;
  const devNull = nullFd;
  let last: object | undefined;
  return {
    engine: 'node:wasi',
    instance() {
      const wasi = new WASI({ version: 'preview1', args, env, preopens: preopenMap, stdin: devNull, stdout: devNull, stderr: devNull, returnOnExit: true });
      last = wasi;
      return {
        imports: wasi.getImportObject() as Record<string, unknown>,
        initialize: (instance) => wasi.initialize(instance),
      };
    },
    readFile: () => undefined,
    exitCode(e) {
      // With returnOnExit, node:wasi's proc_exit throws its private symbol kExitCode and keeps
      // the code on the WASI object under that symbol (what its start() returns).
      if (typeof e !== 'symbol' || e.description !== 'kExitCode' || last === undefined) return undefined;
      const code = (last as Record<symbol, unknown>)[e];
      return typeof code === 'number' ? code : undefined;
    },
  };
}

function memoryWasi({ ConsoleStdout, Directory, File, OpenFile, PreopenDirectory, WASI: ShimWasi, WASIProcExit }: Shim, args: string[], env: string[], dirs: Preopen[], options: WasiOptions): Wasi {
  const roots = dirs.map((d) => ({ ...d, path: parts(d.guest, 'the allowed_paths guest path'), dir: new Directory(new Map<string, Inode>()) }));
  for (const [path, content] of Object.entries(options.files ?? {})) {
    const p = parts(path, 'the file');
    // The deepest guest directory the file is in.
    const root = roots
      .filter((r) => r.path.length < p.length && r.path.every((s, i) => p[i] === s))
      .sort((a, b) => b.path.length - a.path.length)[0];
    if (root === undefined) {
      throw new PlinthError('wasi', `the file \`${path}\` is not inside a guest directory of allowed_paths (${dirs.length === 0 ? 'there are none' : dirs.map((d) => d.guest).join(', ')}); add one, e.g. allowed_paths: { "/data": "/data" }`);
    }
    let dir = root.dir;
    for (const s of p.slice(root.path.length, -1)) {
      let next = dir.contents.get(s);
      if (next === undefined) {
        next = new Directory(new Map<string, Inode>());
        dir.contents.set(s, next);
      }
      if (!(next instanceof Directory)) throw new PlinthError('wasi', `the file \`${path}\` is under \`${s}\`, which is a file`);
      dir = next;
    }
    const bytes = typeof content === 'string' ? new TextEncoder().encode(content) : content;
    dir.contents.set(p[p.length - 1], new File(bytes.slice(), { readonly: root.readOnly }));
  }
  const discard = () => {};
  return {
    engine: 'memory',
    instance() {
      // The directories are shared by every instance: what one writes, the next reads.
      const fds: Fd[] = [
        new OpenFile(new File(new Uint8Array(0), { readonly: true })),
        new ConsoleStdout(options.stdout ?? discard),
        new ConsoleStdout(options.stderr ?? discard),
        ...roots.map((r) => new PreopenDirectory(r.guest, r.dir.contents)),
      ];
      // debug: undefined turns the shim's console tracing on.
      const wasi = new ShimWasi(args, env, fds, { debug: false });
      return {
        imports: { wasi_snapshot_preview1: wasi.wasiImport, wasi_unstable: wasi.wasiImport },
        initialize: (instance) => wasi.initialize(instance as unknown as { exports: { memory: WebAssembly.Memory } }),
      };
    },
    readFile(path) {
      const p = parts(path, 'the file');
      for (const r of roots) {
        if (!(r.path.length < p.length && r.path.every((s, i) => p[i] === s))) continue;
        let node: Inode | undefined = r.dir;
        for (const s of p.slice(r.path.length)) node = node instanceof Directory ? node.contents.get(s) : undefined;
        if (node instanceof File) return node.data.slice();
      }
      return undefined;
    },
    exitCode: (e) => (e instanceof WASIProcExit ? e.code : undefined),
  };
}
