// A plug-in in a worker, so that a call can be stopped (timeout_ms: the worker is terminated at
// the deadline and the next call starts a fresh one), or so that it can wait for the main
// thread's promises where the engine has no JSPI. Host functions stay on the main thread; the
// worker blocks on a SharedArrayBuffer (Atomics.wait) while the main thread runs one (sync or
// async) and writes its answer back.
//
// Protocol (main <-> worker messages):
//   main -> worker  { type: 'init', manifest, options, functions, sab, vars, config? }  -> { type: 'ready', functions } | { type: 'error', error }
//   main -> worker  { type: 'call', id, name, input, config?, vars? }       -> { type: 'result', id, output, vars? } | { type: 'error', id, error, vars? }
//   main -> worker  { type: 'reset' }                                     (no answer)
//   (vars: all of the plug-in's vars, sent after a call that changed them, so that a fresh worker
//   after a timeout or cancel starts with them; and to the worker with the next call after the
//   host changed them. config: the whole config, sent after the host changed it)
//   worker -> main  { type: 'host', fn, args, blocks }  (the worker then waits on the buffer)
//   worker -> main  { type: 'log', level, message } | { type: 'stdout' | 'stderr', bytes }
import { PlinthError, type ErrorKind } from './errors.js';
import { HTTP_TIMEOUT_MS, VarStore, type Logger, type LogLevel } from './host.js';
import { HttpPolicy, send, type GuestRequest } from './http.js';
import { DEFAULT_MAX_HTTP_RESPONSE_BYTES } from './manifest.js';
import { CurrentPlugin, type HostFunction, type HostValue, type ValType } from './hostfn.js';
import type { ExtismMemory } from './memory.js';
import type { Manifest } from './manifest.js';
import { CallQueue, cancelled } from './queue.js';
import type { HostScope } from './reentry.js';
import { nullDeviceFd, resolvedShimUrl, type WasiOptions } from './wasi.js';

/** Bytes of the shared buffer: a 16-byte header, then the answer. Bigger answers fail. */
export const SHARED_BYTES = 4 * 1024 * 1024;
const HEADER = 16;
/** The least time a worker gets to start (see Remote.startLimit). */
export const START_GRACE_MS = 10_000;
/** Handles of blocks the main thread wrote, before the worker gives them real places. */
export const PENDING_BASE = 2 ** 52;

export interface SerialError {
  kind: ErrorKind;
  message: string;
  code: number;
}

export function serialError(e: unknown): SerialError {
  if (e instanceof PlinthError) return { kind: e.kind, message: e.message, code: e.code };
  return { kind: 'other', message: e instanceof Error ? e.message : String(e), code: -1 };
}

export function fromSerial(e: SerialError): PlinthError {
  return new PlinthError(e.kind, e.message, { code: e.code });
}

/** A host function as the worker sees it: its signature only. */
export interface HostSignature {
  name: string;
  namespace: string;
  params: ValType[];
  results: ValType[];
}

/** The answer to a host call, written into the shared buffer as JSON then the new blocks' bytes. */
export interface HostAnswer {
  results?: string[];
  pending?: number[];
  freed?: string[];
  error?: SerialError;
  /** An HTTP answer: the status and headers; the body is the one pending block. */
  status?: number;
  headers?: Record<string, string>;
}

export function writeAnswer(sab: SharedArrayBuffer, answer: HostAnswer, blocks: Uint8Array[]): void {
  let json = new TextEncoder().encode(JSON.stringify(answer));
  let total = json.length + blocks.reduce((n, b) => n + b.length, 0);
  if (HEADER + total > sab.byteLength) {
    const error = answer.status !== undefined
      ? { kind: 'http' as const, message: `the HTTP response (${total} bytes) is larger than the ${SHARED_BYTES}-byte buffer shared with the plug-in's worker; lower memory.max_http_response_bytes to fit, or fetch less`, code: -1 }
      : { kind: 'host_function' as const, message: `a host function's answer (${total} bytes with the blocks it wrote) is larger than the ${SHARED_BYTES}-byte buffer shared with the plug-in's worker; write less per call`, code: -1 };
    json = new TextEncoder().encode(JSON.stringify({ error }));
    total = json.length;
    blocks = [];
  }
  const head = new Int32Array(sab, 0, 4);
  const bytes = new Uint8Array(sab);
  bytes.set(json, HEADER);
  let at = HEADER + json.length;
  for (const b of blocks) {
    bytes.set(b, at);
    at += b.length;
  }
  head[1] = json.length;
  Atomics.store(head, 0, 1);
  Atomics.notify(head, 0);
}

export function readAnswer(sab: SharedArrayBuffer): { answer: HostAnswer; data: Uint8Array } {
  const head = new Int32Array(sab, 0, 4);
  const len = head[1];
  const bytes = new Uint8Array(sab);
  const answer = JSON.parse(new TextDecoder().decode(bytes.slice(HEADER, HEADER + len))) as HostAnswer;
  const blockBytes = (answer.pending ?? []).reduce((n, b) => n + b, 0);
  const data = bytes.slice(HEADER + len, HEADER + len + blockBytes);
  Atomics.store(head, 0, 0);
  return { answer, data };
}

/**
 * The main thread's view of the plug-in's Extism memory during a host call: the blocks the
 * arguments name (copied by the worker), and new blocks kept until the worker places them.
 * Shaped like the few ExtismMemory methods CurrentPlugin uses.
 */
class MirrorMemory {
  readonly pending: Uint8Array[] = [];
  readonly freed: bigint[] = [];

  constructor(private readonly blocks: Map<bigint, Uint8Array>) {}

  private pendingIndex(h: bigint): number {
    const i = Number(h) - PENDING_BASE;
    return i >= 0 && i < this.pending.length ? i : -1;
  }

  length(h: bigint): number {
    const i = this.pendingIndex(h);
    if (i >= 0) return this.pending[i].length;
    const b = this.blocks.get(h);
    if (b !== undefined) return b.length;
    if (h !== 0n) {
      throw new PlinthError('memory', `handle ${h} was not an argument of this host call; in a plug-in with timeoutMs (run in a worker) a host function reads only the blocks its arguments name`);
    }
    return 0;
  }

  block(h: bigint): Uint8Array {
    const i = this.pendingIndex(h);
    if (i >= 0) return this.pending[i].slice();
    return (this.blocks.get(h) ?? new Uint8Array(0)).slice();
  }

  allocBytes(data: Uint8Array): number {
    this.pending.push(data.slice());
    return PENDING_BASE + this.pending.length - 1;
  }

  alloc(n: number): number {
    return this.allocBytes(new Uint8Array(n));
  }

  free(h: bigint): void {
    this.blocks.delete(h);
    this.freed.push(h);
  }
}

interface Endpoint {
  post(message: unknown): void;
  terminate(): void;
  /** Node.js: whether the worker keeps the process alive (only while a request waits). */
  keepAlive(on: boolean): void;
}

const IS_NODE = typeof process !== 'undefined' && typeof process.versions?.node === 'string';

async function spawn(onMessage: (m: Record<string, unknown>) => void, onFailure: (e: unknown) => void): Promise<Endpoint> {
  const url = new URL('./worker.js', import.meta.url);
  if (IS_NODE) {
    const spec = 'node:worker_threads';
    const { Worker } = await import(spec);
    const w = new Worker(url);
    w.on('message', onMessage);
    w.on('error', onFailure);
    // Referenced only while a request waits: a plug-in nobody closed does not keep Node.js running.
    w.unref();
    return { post: (m) => w.postMessage(m), terminate: () => void w.terminate(), keepAlive: (on) => (on ? w.ref() : w.unref()) };
  }
  if (typeof Worker === 'undefined') {
    throw new PlinthError('other', 'running the plug-in in a worker (timeoutMs, or async host functions and fetch on an engine without JSPI) needs Web Workers, which this JavaScript environment lacks; remove the limit, or make the host functions synchronous');
  }
  const w = new Worker(url, { type: 'module' });
  w.onmessage = (ev) => onMessage(ev.data as Record<string, unknown>);
  // A module worker that cannot be fetched or parsed fires a bare event with no message.
  w.onerror = (ev) =>
    onFailure(ev.message || `its module ${url} could not be loaded or failed before it started (the browser's console says why)`);
  return { post: (m) => w.postMessage(m), terminate: () => w.terminate(), keepAlive: () => {} };
}

export interface RemoteInit {
  manifest: Manifest;
  /** The time limit of each call; none for a plug-in in a worker only because it waits for promises. */
  timeoutMs: number | undefined;
  /** Why the plug-in runs in a worker (see CompiledParts.worker). */
  reason: 'timeout' | 'no_jspi';
  functions: HostFunction[];
  config?: Record<string, string>;
  allowedHosts?: string[];
  logger?: Logger;
  logLevel?: LogLevel;
  wasi?: boolean | WasiOptions;
  kernel?: unknown;
  /** The plug-in's host functions, to refuse calls they make into it. */
  hostScope: HostScope;
}

/** The main thread's side: one worker at a time, one call at a time. */
export class Remote {
  private worker: Endpoint | undefined;
  private ready: Promise<void> | undefined;
  private waiting: { resolve: (m: Record<string, unknown>) => void; reject: (e: unknown) => void } | undefined;
  private readonly queue = new CallQueue();
  private closed = false;
  private generation = 0;
  /**
   * The vars as the last call that changed them left them, or as the host set them since; a
   * fresh worker starts with them.
   */
  private readonly vars = new VarStore();
  /** The host changed the vars since the worker last got them: they go with the next call. */
  private varsChanged = false;
  /** The whole config once the host changed it (updateConfig); undefined: the load's. */
  private config: [string, string][] | undefined;
  /** The worker has not got `config` yet: it goes with the next call. */
  private configChanged = false;
  private readonly sab: SharedArrayBuffer | undefined;

  private readonly http: HttpPolicy;

  constructor(private readonly init: RemoteInit) {
    this.http = new HttpPolicy(init.allowedHosts ?? init.manifest.allowed_hosts);
    // Shared memory also lets the worker's http_request wait for the main thread's fetch.
    if (typeof SharedArrayBuffer !== 'undefined') this.sab = new SharedArrayBuffer(SHARED_BYTES);
    if (init.functions.length > 0) {
      if (typeof SharedArrayBuffer === 'undefined') {
        const what = init.reason === 'timeout' ? 'timeoutMs with host functions' : 'An async host function on an engine without JSPI (the plug-in then runs in a worker)';
        const fix = init.reason === 'timeout' ? 'or remove the limit' : 'or use a browser with JSPI (Chrome 137 or newer), or make the host functions synchronous';
        throw new PlinthError('other', `${what} needs SharedArrayBuffer (the worker waits for the main thread with Atomics), which this page lacks: serve it cross-origin isolated (headers Cross-Origin-Opener-Policy: same-origin and Cross-Origin-Embedder-Policy: require-corp), ${fix}`);
      }
    }
  }

  /** Starts the worker now, so that load fails as it would without timeoutMs. */
  async start(): Promise<void> {
    await this.deadline('starting the plug-in (its start function)', this.startLimit(), () => this.ensure());
  }

  /**
   * Starting a worker (thread, kernel, compile, the plug-in's start function) is not the call's
   * work, and is slow on a busy machine: it gets at least START_GRACE_MS, so that a short limit
   * does not fail the call after a timeout, while a start function that never returns still stops.
   */
  private startLimit(): number | undefined {
    // Without a time limit the start is not limited either, as on this thread.
    return this.init.timeoutMs === undefined ? undefined : Math.max(this.init.timeoutMs, START_GRACE_MS);
  }

  /** Why the plug-in runs in a worker. */
  get reason(): 'timeout' | 'no_jspi' {
    return this.init.reason;
  }

  /**
   * Runs `work`; at the deadline, or when `signal` aborts, the worker is terminated and the
   * result is kind `timeout` or `cancelled`.
   */
  private async deadline<T>(what: string, limit: number | undefined, work: () => Promise<T>, cancel?: { name: string; signal: AbortSignal }): Promise<T> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    let onAbort: (() => void) | undefined;
    const fresh = 'the next call starts a fresh instance, with the vars the last finished call left';
    const deadline = new Promise<never>((_, reject) => {
      if (limit !== undefined) timer = setTimeout(() => {
        this.generation++;
        this.stop();
        const within = limit === this.init.timeoutMs ? `timeout_ms = ${limit} ms` : `${limit} ms (a worker gets at least ${START_GRACE_MS} ms to start; timeout_ms = ${this.init.timeoutMs})`;
        reject(new PlinthError('timeout', `${what} did not finish within ${within}; it was stopped (its worker terminated), and ${fresh}`));
      }, limit);
      if (cancel !== undefined) {
        onAbort = () => {
          this.generation++;
          this.stop();
          reject(cancelled(cancel.name, cancel.signal, `while it ran; its worker was terminated, and ${fresh}`));
        };
        cancel.signal.addEventListener('abort', onAbort, { once: true });
      }
    });
    try {
      return await Promise.race([work(), deadline]);
    } finally {
      clearTimeout(timer);
      if (onAbort !== undefined) cancel?.signal.removeEventListener('abort', onAbort);
    }
  }

  private ensure(): Promise<void> {
    if (this.ready !== undefined) return this.ready;
    const generation = ++this.generation;
    this.ready = (async () => {
      const worker = await spawn(
        (m) => this.onMessage(generation, m),
        (e) => this.fail(generation, new PlinthError('other', `the plug-in's worker failed: ${e instanceof Error ? e.message : String(e)}`)),
      );
      if (generation !== this.generation) {
        // Stopped (deadline or close) while the worker was being made.
        worker.terminate();
        throw new PlinthError('timeout', 'the plug-in was stopped while its worker started');
      }
      this.worker = worker;
      // The fresh worker gets the current vars and config with init.
      this.varsChanged = false;
      this.configChanged = false;
      const { init } = this;
      const wasi = typeof init.wasi === 'object' ? { ...init.wasi, stdout: undefined, stderr: undefined } : init.wasi;
      const wasiOut = typeof init.wasi === 'object' ? { stdout: init.wasi.stdout !== undefined, stderr: init.wasi.stderr !== undefined } : undefined;
      const reply = await this.request({
        type: 'init',
        manifest: init.manifest,
        options: { config: init.config, allowedHosts: init.allowedHosts, logLevel: init.logLevel, wasi, kernel: init.kernel instanceof URL ? init.kernel.href : init.kernel },
        logger: init.logger !== undefined,
        wasiOut,
        functions: init.functions.map((f): HostSignature => ({ name: f.name, namespace: f.namespace, params: f.params, results: f.results })),
        sab: this.sab,
        nullFd: nullDeviceFd(),
        shimUrl: init.wasi ? resolvedShimUrl() : undefined,
        vars: [...this.vars],
        config: this.config,
      });
      if (reply.type === 'error') throw fromSerial(reply.error as SerialError);
    })();
    this.ready.catch(() => {
      if (generation === this.generation) this.stop();
    });
    return this.ready;
  }

  private request(message: Record<string, unknown>): Promise<Record<string, unknown>> {
    const worker = this.worker!;
    worker.keepAlive(true);
    return new Promise<Record<string, unknown>>((resolve, reject) => {
      this.waiting = { resolve, reject };
      worker.post(message);
    }).finally(() => worker.keepAlive(false));
  }

  private fail(generation: number, e: unknown): void {
    if (generation !== this.generation) return;
    const w = this.waiting;
    this.stop();
    w?.reject(e);
  }

  private stop(): void {
    this.worker?.terminate();
    this.worker = undefined;
    this.ready = undefined;
    this.waiting = undefined;
  }

  private onMessage(generation: number, m: Record<string, unknown>): void {
    if (generation !== this.generation) return;
    switch (m.type) {
      case 'log':
        this.init.logger?.(m.level as LogLevel, m.message as string);
        return;
      case 'stdout':
      case 'stderr': {
        const wasi = this.init.wasi;
        if (typeof wasi === 'object') wasi[m.type]?.(m.bytes as Uint8Array);
        return;
      }
      case 'host':
        void this.host(generation, m);
        return;
      case 'http':
        void this.fetch(generation, m);
        return;
      default: {
        const w = this.waiting;
        this.waiting = undefined;
        w?.resolve(m);
      }
    }
  }

  /** Runs a host function for the worker and writes its answer into the shared buffer. */
  private async host(generation: number, m: Record<string, unknown>): Promise<void> {
    const f = this.init.functions[m.fn as number];
    const blocks = new Map((m.blocks as [string, Uint8Array][]).map(([h, b]) => [BigInt(h), b]));
    const args = (m.args as string[]).map((a, i) => (f.params[i] === 'i64' ? BigInt(a) : Number(a)));
    const mirror = new MirrorMemory(blocks);
    const current = new CurrentPlugin(mirror as unknown as ExtismMemory);
    let answer: HostAnswer;
    try {
      let result: unknown = this.init.hostScope.enter(true, () => f.callback(current, args as HostValue[], f.userData));
      if (result !== null && typeof (result as PromiseLike<unknown>)?.then === 'function') result = await result;
      const values = Array.isArray(result) ? result : f.results.length === 0 ? [] : [result];
      answer = { results: values.map((v) => String(v ?? 0)), pending: mirror.pending.map((b) => b.length), freed: mirror.freed.map(String) };
    } catch (e) {
      answer = { error: e instanceof PlinthError && e.kind === 'reentrant' ? serialError(e) : { kind: 'host_function', message: `host function \`${f.name}\` failed: ${String(e)}`, code: -1 } };
    } finally {
      current.invalidate();
    }
    // A call stopped at its deadline has a new worker (or none); its answer goes nowhere.
    if (generation !== this.generation || this.sab === undefined) return;
    writeAnswer(this.sab, answer, answer.error === undefined ? mirror.pending : []);
  }

  /** Sends the worker's HTTP request (already checked against allowed_hosts there; send checks each redirect). */
  private async fetch(generation: number, m: Record<string, unknown>): Promise<void> {
    let answer: HostAnswer;
    let body: Uint8Array[] = [];
    try {
      const maxBytes = this.init.manifest.memory?.max_http_response_bytes ?? DEFAULT_MAX_HTTP_RESPONSE_BYTES;
      const response = await send(m.request as GuestRequest, new URL(m.url as string), m.body as Uint8Array | undefined, this.http, maxBytes, AbortSignal.timeout(HTTP_TIMEOUT_MS));
      answer = { status: response.status, headers: response.headers, pending: [response.body.length] };
      body = [response.body];
    } catch (e) {
      answer = { error: serialError(e) };
    }
    if (generation !== this.generation || this.sab === undefined) return;
    writeAnswer(this.sab, answer, body);
  }

  /** One call in the worker, after the calls queued before it; stopped at the deadline or on cancel. */
  call(name: string, input: Uint8Array, signal?: AbortSignal): Promise<Uint8Array> {
    return this.queue.run(name, signal, () => this.callNow(name, input, signal));
  }

  private async callNow(name: string, input: Uint8Array, signal: AbortSignal | undefined): Promise<Uint8Array> {
    if (this.closed) throw new PlinthError('closed', 'the plug-in was closed before the call started');
    if (signal?.aborted) throw cancelled(name, signal, 'before it started');
    const cancel = signal === undefined ? undefined : { name, signal };
    await this.deadline('starting a fresh instance of the plug-in (its start function)', this.startLimit(), () => this.ensure(), cancel);
    const message: Record<string, unknown> = { type: 'call', name, input };
    // What the host changed since the worker started or last heard: it applies them first.
    if (this.configChanged) message.config = this.config;
    if (this.varsChanged) message.vars = [...this.vars];
    this.configChanged = false;
    this.varsChanged = false;
    const reply = await this.deadline(`\`${name}\``, this.init.timeoutMs, () => this.request(message), cancel);
    if (reply.vars !== undefined) this.restoreVars(reply.vars as [string, Uint8Array][]);
    if (reply.type === 'error') throw fromSerial(reply.error as SerialError);
    return reply.output as Uint8Array;
  }

  private restoreVars(entries: [string, Uint8Array][]): void {
    this.vars.clear();
    for (const [key, value] of entries) this.vars.set(key, value);
  }

  /** Whether a call runs in the worker or waits its turn. */
  get busy(): boolean {
    return this.queue.active;
  }

  /** A var as the last finished call (or the host since) left it. */
  varGet(key: string): Uint8Array | undefined {
    return this.vars.get(key);
  }

  /** Sets or removes a var here; the worker gets the vars with the next call. */
  varSet(key: string, value: Uint8Array | undefined, maxBytes: number): void {
    this.vars.put(key, value, maxBytes);
    this.varsChanged = true;
  }

  /** The whole config; the worker gets it with the next call (a fresh worker, with init). */
  setConfig(config: [string, string][]): void {
    this.config = config;
    this.configChanged = true;
  }

  /** Frees the Extism memory the worker's instance holds, if a worker runs. */
  reset(): void {
    this.worker?.post({ type: 'reset' });
  }

  close(): void {
    this.closed = true;
    this.generation++;
    const w = this.waiting;
    this.stop();
    this.queue.failWaiting(() => new PlinthError('closed', 'the plug-in was closed while the call waited for the calls before it, so it never ran'));
    w?.reject(new PlinthError('closed', 'the plug-in was closed during the call'));
  }
}
