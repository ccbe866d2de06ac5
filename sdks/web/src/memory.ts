// Extism memory: blocks reached through i64 handles (byte offsets) in a wasm memory, either
// the one the fuse rewrite put into the plug-in or one this SDK makes. The bookkeeping (which
// offsets are blocks) is the kernel's Arena; this file only moves bytes and grows the memory.
import { PlinthError } from './errors.js';
import type { Arena, PlaceError } from './kernel.js';
import { ALLOC_GROW, ALLOC_NULL, ALLOC_OVER_BUDGET, ALLOC_TOO_LARGE, INPUT_LENGTH_AT, INPUT_OFFSET_AT, RESERVED } from './kernel.js';

const PAGE = 65536;
/** The largest block a 32-bit Extism memory could hold (the kernel takes sizes as u32). */
const MAX_BLOCK = 0xffff_ffff;

export class ExtismMemory {
  /** The current input's handle and length. */
  input: [number, number] = [0, 0];

  /**
   * `otherPages` counts the plug-in's own memory, which shares `maxPages` with this one, as
   * in the native runtime.
   */
  constructor(
    readonly arena: Arena,
    readonly memory: WebAssembly.Memory,
    private readonly maxPages: number | undefined,
    private readonly otherPages: () => number,
  ) {}

  /**
   * The memory's buffer and views of it, made again only when the memory grew. Growing a wasm
   * memory detaches its old buffer (its byteLength becomes 0), which is how a stale view is
   * noticed: `memory.buffer` itself costs more than the rest of a small call's memory work.
   */
  private buffer = new ArrayBuffer(0);
  private u8 = new Uint8Array(0);
  private view = new DataView(this.buffer);

  private refresh(): void {
    this.buffer = this.memory.buffer;
    this.u8 = new Uint8Array(this.buffer);
    this.view = new DataView(this.buffer);
  }

  /** The memory's bytes (a view that a later growth of the memory detaches). */
  bytes(): Uint8Array {
    if (this.buffer.byteLength === 0) this.refresh();
    return this.u8;
  }

  private data(): DataView {
    if (this.buffer.byteLength === 0) this.refresh();
    return this.view;
  }

  /**
   * `addr` as an offset where `n` bytes fit, or -1. The loads and stores are the hot path of an
   * unfused plug-in (8 bytes a call), so they allocate nothing. An address past 2^53 loses
   * precision in `Number`, but is out of bounds either way.
   */
  private at(addr: bigint, n: number): number {
    const a = Number(addr);
    return a >= 0 && a + n <= this.bytes().length ? a : -1;
  }

  size(): number {
    return this.bytes().length;
  }

  private grown: ((pages: number) => void) | undefined;

  /**
   * Whether the last growth this memory needed was refused by `memory.max_pages` (cleared by a
   * growth that succeeds, and at each call's start): a trap that follows is the budget's, as
   * the native runtime's limiter counts it.
   */
  refused = false;

  /** Calls `f` with the memory's pages now and after each growth. */
  onGrow(f: (pages: number) => void): void {
    this.grown = f;
    f(this.size() / PAGE);
  }

  /** Grows the memory to hold `end` bytes, within the page budget. */
  private ensure(end: number): PlaceError | undefined {
    const size = this.size();
    if (end <= size) return undefined;
    const pages = Math.ceil((end - size) / PAGE);
    if (this.maxPages !== undefined && size / PAGE + pages + this.otherPages() > this.maxPages) {
      this.refused = true;
      return 'budget';
    }
    try {
      this.memory.grow(pages);
    } catch {
      this.refused = this.maxPages !== undefined;
      return this.maxPages !== undefined ? 'budget' : 'too_large';
    }
    this.refused = false;
    this.grown?.(this.size() / PAGE);
    return undefined;
  }

  /** A new block of `n` bytes (zeroed unless `zero` is false); 0 for `n == 0`. */
  alloc(n: number, zero = true): number | PlaceError {
    if (n === 0) return 0;
    if (n > MAX_BLOCK) return 'too_large';
    const placed = this.placed(this.arena.alloc(n, this.size() / PAGE), n);
    // Memory is not cleared between calls, so a block must not show earlier contents.
    if (typeof placed === 'number' && zero) this.bytes().fill(0, placed, placed + n);
    return placed;
  }

  /**
   * A block from the kernel's one-call allocation (`Arena.alloc`/`begin`): its offset, or, when
   * the memory must grow first, the pending placement taken once it has grown (the rare path).
   */
  private placed(code: number, n: number): number | PlaceError {
    if (code >= RESERVED || code === ALLOC_NULL) return code;
    if (code === ALLOC_OVER_BUDGET) return 'budget';
    if (code === ALLOC_TOO_LARGE) return 'too_large';
    if (code !== ALLOC_GROW) throw new PlinthError('memory', `Extism memory's arena ${this.arena.id} is gone (the plug-in instance was dropped)`);
    const end = this.arena.pendingEnd();
    const refused = this.ensure(end);
    if (refused !== undefined) return refused;
    this.arena.commit(end - n, end);
    return end - n;
  }

  /** A new block holding `data`; 0 for empty data. */
  allocBytes(data: Uint8Array): number | PlaceError {
    const h = this.alloc(data.length, false);
    if (typeof h === 'number' && h !== 0) this.bytes().set(data, h);
    return h;
  }

  free(h: bigint): void {
    if (this.arena.free(h) && Number(h) === this.input[0]) this.setInput(0, 0);
  }

  length(h: bigint): number {
    return this.arena.length(h);
  }

  /** `len` bytes at `addr`, or undefined when any of them is out of bounds. */
  range(addr: bigint | number, len: bigint | number): Uint8Array | undefined {
    // Numbers, not BigInts, so that a check allocates nothing; a value past 2^53 loses
    // precision but lies out of bounds either way, and a negative one (a signed i64) too.
    const a = Number(addr);
    const n = Number(len);
    const bytes = this.bytes();
    if (!(a >= 0 && n >= 0 && a + n <= bytes.length)) return undefined;
    return bytes.subarray(a, a + n);
  }

  /** A copy of the active block at `h`, empty when `h` is not one. */
  block(h: bigint, len = this.arena.length(h)): Uint8Array {
    if (len === 0) return new Uint8Array(0);
    return this.range(h, len)?.slice() ?? new Uint8Array(0);
  }

  /** Reads the block at `h` and frees it (the imports that take ownership). */
  take(h: bigint): Uint8Array {
    const out = this.block(h);
    this.free(h);
    return out;
  }

  loadU8(addr: bigint): number {
    const a = this.at(addr, 1);
    return a < 0 ? 0 : this.data().getUint8(a);
  }

  loadU64(addr: bigint): bigint {
    const a = this.at(addr, 8);
    return a < 0 ? 0n : this.data().getBigUint64(a, true);
  }

  storeU8(addr: bigint, v: number): void {
    const a = this.at(addr, 1);
    if (a >= 0) this.data().setUint8(a, v & 0xff);
  }

  storeU64(addr: bigint, v: bigint): void {
    const a = this.at(addr, 8);
    if (a >= 0) this.data().setBigUint64(a, BigInt.asUintN(64, v), true);
  }

  /** Sets the current input, for the host functions and for fused code. */
  setInput(h: number, len: number): void {
    this.input[0] = h;
    this.input[1] = len;
    const bytes = this.bytes();
    if (bytes.length >= RESERVED) {
      // Two little-endian u64s, written as 32-bit halves: no BigInt for each call.
      const view = this.data();
      view.setUint32(INPUT_OFFSET_AT, h, true);
      view.setUint32(INPUT_OFFSET_AT + 4, 0, true);
      view.setUint32(INPUT_LENGTH_AT, len, true);
      view.setUint32(INPUT_LENGTH_AT + 4, 0, true);
    }
  }

  /** Frees every block and copies the next call's input in. */
  beginCall(input: Uint8Array): PlaceError | undefined {
    this.refused = false;
    const n = input.length;
    const h = n > MAX_BLOCK ? 'too_large' : this.placed(this.arena.begin(n, this.size() / PAGE), n);
    if (typeof h === 'string') {
      this.setInput(0, 0);
      return h;
    }
    if (h !== 0) this.bytes().set(input, h);
    this.setInput(h, n);
    return undefined;
  }
}
