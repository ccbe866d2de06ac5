// User host functions in JavaScript, with the Extism calling convention: i64 handles to
// blocks of Extism memory, which the callback reads and writes through a CurrentPlugin.
import { PlinthError } from './errors.js';
import type { ExtismMemory } from './memory.js';

/** A wasm value type. */
export const ValType = { I32: 'i32', I64: 'i64', F32: 'f32', F64: 'f64' } as const;
export type ValType = (typeof ValType)[keyof typeof ValType];

export type HostValue = number | bigint;
export type HostCallback = (plugin: CurrentPlugin, inputs: HostValue[], userData: unknown) => HostValue | HostValue[] | void | null;

export interface HostFunctionOptions {
  /** The import module; `extism:host/user` by default. */
  namespace?: string;
  /** Passed to every call of the callback. */
  userData?: unknown;
  /**
   * The callback returns a Promise, which the plug-in waits for (JSPI). Defaults to whether
   * the callback is an `async` function.
   */
  async?: boolean;
}

const TYPES: readonly string[] = Object.values(ValType);

/** A function the plug-in imports, written in JavaScript. */
export class HostFunction {
  readonly namespace: string;
  readonly userData: unknown;
  /** Whether the plug-in awaits the callback's Promise (through JSPI). */
  readonly isAsync: boolean;

  constructor(
    readonly name: string,
    readonly params: ValType[],
    readonly results: ValType[],
    readonly callback: HostCallback,
    options: HostFunctionOptions = {},
  ) {
    if (typeof name !== 'string' || name === '') throw new TypeError('a HostFunction needs a name');
    for (const t of [...params, ...results]) {
      if (!TYPES.includes(t)) throw new TypeError(`host function \`${name}\`: unknown wasm type ${JSON.stringify(t)}; use ValType.I32, I64, F32 or F64`);
    }
    if (typeof callback !== 'function') throw new TypeError(`host function \`${name}\`: the callback must be a function`);
    const unknown = Object.keys(options).filter((k) => k !== 'namespace' && k !== 'userData' && k !== 'async');
    if (unknown.length > 0) throw new TypeError(`host function \`${name}\`: unknown options ${unknown.join(', ')}; the options are namespace, userData and async`);
    this.namespace = options.namespace ?? 'extism:host/user';
    this.userData = options.userData;
    this.isAsync = options.async ?? callback.constructor.name === 'AsyncFunction';
  }

  /** The results as the plug-in's import returns them. */
  private results_(result: unknown): unknown {
    // The common shape, one result given as a value, without the arrays of the general case.
    if (this.results.length === 1 && !Array.isArray(result)) return convert(result, this.results[0], this.name);
    const values = Array.isArray(result) ? result : this.results.length === 0 ? [] : [result];
    if (values.length !== this.results.length) {
      throw new PlinthError('host_function', `host function \`${this.name}\` returned ${values.length} values, but it declares ${this.results.length} results`);
    }
    const out = values.map((v, i) => convert(v, this.results[i], this.name));
    return out.length === 0 ? undefined : out.length === 1 ? out[0] : out;
  }

  private failure(e: unknown): PlinthError {
    if (e instanceof PlinthError && (e.kind === 'reentrant' || e.kind === 'busy')) return e;
    return new PlinthError('host_function', `host function \`${this.name}\` failed: ${String(e)}`, { cause: e });
  }

  /** The async import (for WebAssembly.Suspending): the CurrentPlugin stays valid across awaits. */
  wrapAsync(current: () => CurrentPlugin): (...args: HostValue[]) => Promise<unknown> {
    return async (...args: HostValue[]) => {
      const plugin = current();
      let result: unknown;
      try {
        result = await this.callback(plugin, args, this.userData);
      } catch (e) {
        throw this.failure(e);
      } finally {
        plugin.invalidate();
      }
      return this.results_(result);
    };
  }

  /** The import the plug-in links to: converts values and wraps failures. */
  wrap(current: () => CurrentPlugin): (...args: HostValue[]) => unknown {
    return (...args: HostValue[]) => {
      const plugin = current();
      let result: unknown;
      try {
        result = this.callback(plugin, args, this.userData);
      } catch (e) {
        throw this.failure(e);
      } finally {
        plugin.invalidate();
      }
      if (result !== null && typeof (result as PromiseLike<unknown>)?.then === 'function') {
        throw new PlinthError('host_function', `host function \`${this.name}\` returned a Promise, but it is not async; pass \`async: true\` in its options (the plug-in then awaits it, through JSPI)`);
      }
      return this.results_(result);
    };
  }
}

function convert(v: unknown, type: ValType, name: string): HostValue {
  const value = v === undefined || v === null ? 0 : v;
  if (type === 'i64') {
    if (typeof value === 'bigint') return BigInt.asIntN(64, value);
    if (typeof value === 'number' && Number.isInteger(value)) return BigInt(value);
  } else if (typeof value === 'number') {
    return value;
  } else if (typeof value === 'bigint' && type === 'i32') {
    return Number(BigInt.asIntN(32, value));
  }
  throw new PlinthError('host_function', `host function \`${name}\` returned ${typeof value} ${String(value)} for an ${type} result`);
}

/** The calling plug-in, valid only while the host function runs. */
export class CurrentPlugin {
  private valid_ = true;

  constructor(private readonly memory: ExtismMemory) {}

  get valid(): boolean {
    return this.valid_;
  }

  /** @internal */
  invalidate(): void {
    this.valid_ = false;
  }

  private mem(): ExtismMemory {
    if (!this.valid_) throw new PlinthError('closed', 'this CurrentPlugin is used after its host function returned; read and write the plug-in\'s memory inside the callback');
    return this.memory;
  }

  /** A copy of the block at `handle`; handle 0 reads as empty. */
  readBytes(handle: HostValue): Uint8Array {
    const mem = this.mem();
    const h = BigInt(handle);
    if (h === 0n) return new Uint8Array(0);
    const len = mem.length(h);
    if (len === 0) throw new PlinthError('memory', `handle ${h} is not a block of the plug-in's Extism memory`);
    return mem.block(h, len);
  }

  readString(handle: HostValue): string {
    return new TextDecoder().decode(this.readBytes(handle));
  }

  /** Copies `data` into a new block and returns its handle. */
  writeBytes(data: Uint8Array): number {
    const h = this.mem().allocBytes(data);
    if (typeof h === 'string') throw new PlinthError('out_of_memory', `no room in the plug-in's memory for ${data.length} bytes (${h === 'budget' ? 'over memory.max_pages' : 'too large'})`);
    return h;
  }

  writeString(text: string): number {
    return this.writeBytes(new TextEncoder().encode(text));
  }

  /** A new zeroed block of `size` bytes. */
  alloc(size: HostValue): number {
    const n = Number(size);
    const h = this.mem().alloc(n);
    if (typeof h === 'string') throw new PlinthError('out_of_memory', `no room in the plug-in's memory for ${n} bytes (${h === 'budget' ? 'over memory.max_pages' : 'too large'})`);
    return h;
  }

  free(handle: HostValue): void {
    this.mem().free(BigInt(handle));
  }

  length(handle: HostValue): number {
    return this.mem().length(BigInt(handle));
  }
}
