// Extism memory: blocks reached through i64 handles (byte offsets) in a wasm memory, either
// the one the fuse rewrite put into the plug-in or one this SDK makes. The bookkeeping (which
// offsets are blocks) is the kernel's Arena; this file only moves bytes and grows the memory.
import type { Arena, PlaceError } from './kernel.js';
import { INPUT_LENGTH_AT, INPUT_OFFSET_AT, RESERVED } from './kernel.js';

const PAGE = 65536;

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

  /** A view of the memory's buffer, made again only when growing the memory replaced it. */
  private view = new DataView(new ArrayBuffer(0));

  bytes(): Uint8Array {
    return new Uint8Array(this.memory.buffer);
  }

  private data(): DataView {
    if (this.view.buffer !== this.memory.buffer) this.view = new DataView(this.memory.buffer);
    return this.view;
  }

  /**
   * `addr` as an offset where `n` bytes fit, or -1. The loads and stores are the hot path of an
   * unfused plug-in (8 bytes a call), so they allocate nothing. An address past 2^53 loses
   * precision in `Number`, but is out of bounds either way.
   */
  private at(addr: bigint, n: number): number {
    const a = Number(addr);
    return a >= 0 && a + n <= this.memory.buffer.byteLength ? a : -1;
  }

  size(): number {
    return this.memory.buffer.byteLength;
  }

  /** Grows the memory to hold `end` bytes, within the page budget. */
  private ensure(end: number): PlaceError | undefined {
    const size = this.size();
    if (end <= size) return undefined;
    const pages = Math.ceil((end - size) / PAGE);
    if (this.maxPages !== undefined && size / PAGE + pages + this.otherPages() > this.maxPages) {
      return 'budget';
    }
    try {
      this.memory.grow(pages);
    } catch {
      return this.maxPages !== undefined ? 'budget' : 'too_large';
    }
    return undefined;
  }

  /** A new block of `n` bytes (zeroed unless `zero` is false); 0 for `n == 0`. */
  alloc(n: number, zero = true): number | PlaceError {
    if (n === 0) return 0;
    const placed = this.arena.place(n);
    if (typeof placed === 'string') return placed;
    const { offset, end } = placed;
    const refused = this.ensure(Math.max(end, offset + n));
    if (refused !== undefined) return refused;
    if (end > 0) this.arena.commit(offset, end);
    // Memory is not cleared between calls, so a block must not show earlier contents.
    if (zero) this.bytes().fill(0, offset, offset + n);
    return offset;
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
    const a = BigInt(addr);
    const n = BigInt(len);
    if (a < 0n || n < 0n || a + n > BigInt(this.size())) return undefined;
    return new Uint8Array(this.memory.buffer, Number(a), Number(n));
  }

  /** A copy of the active block at `h`, empty when `h` is not one. */
  block(h: bigint): Uint8Array {
    const len = this.arena.length(h);
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
    this.input = [h, len];
    if (this.size() >= RESERVED) {
      const view = this.data();
      view.setBigUint64(INPUT_OFFSET_AT, BigInt(h), true);
      view.setBigUint64(INPUT_LENGTH_AT, BigInt(len), true);
    }
  }

  /** Frees every block and copies the next call's input in. */
  beginCall(input: Uint8Array): PlaceError | undefined {
    this.arena.reset();
    this.setInput(0, 0);
    if (input.length === 0) return undefined;
    const h = this.allocBytes(input);
    if (typeof h === 'string') return h;
    this.setInput(h, input.length);
    return undefined;
  }
}
