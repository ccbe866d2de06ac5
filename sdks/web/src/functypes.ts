// The function types of a module's function imports and exports, read from its binary: the
// engines' type reflection (WebAssembly.Module.imports with types) is not shipped, and linking
// a cycle needs them to check types at load and to build forwarders of the right type.

/** A function type as its binary encoding (0x60, params, results), and as text for messages. */
export interface FuncType {
  bytes: Uint8Array;
  params: number;
  text: string;
}

export interface FuncTypes {
  /** Function imports, by "module::name". */
  imports: Map<string, FuncType>;
  /** Function exports, by name. */
  exports: Map<string, FuncType>;
}

const VALTYPES: Record<number, string> = { 0x7f: 'i32', 0x7e: 'i64', 0x7d: 'f32', 0x7c: 'f64', 0x7b: 'v128', 0x70: 'funcref', 0x6f: 'externref' };

class Reader {
  at = 0;
  constructor(readonly bytes: Uint8Array) {}
  byte(): number {
    if (this.at >= this.bytes.length) throw new RangeError('unexpected end');
    return this.bytes[this.at++];
  }
  u32(): number {
    let value = 0;
    for (let shift = 0; ; shift += 7) {
      const b = this.byte();
      value += (b & 0x7f) * 2 ** shift;
      if ((b & 0x80) === 0) return value;
    }
  }
  name(): string {
    const length = this.u32();
    const text = new TextDecoder().decode(this.bytes.subarray(this.at, this.at + length));
    this.at += length;
    return text;
  }
  /** A value type's text; a reference type with a heap type (0x63/0x64) reads that too. */
  valtype(): string {
    const b = this.byte();
    if (b === 0x63 || b === 0x64) {
      this.u32(); // heap type (an s33; its bits do not matter for skipping)
      return 'ref';
    }
    const t = VALTYPES[b];
    if (t === undefined) throw new RangeError(`value type 0x${b.toString(16)}`);
    return t;
  }
  limits(): void {
    const flags = this.byte();
    this.u32();
    if (flags & 1) this.u32();
  }
}

/**
 * The function types of `bytes`' function imports and exports, or undefined when the module
 * uses type encodings this reader does not know (GC rec groups, for one).
 */
export function funcTypes(bytes: Uint8Array): FuncTypes | undefined {
  try {
    return read(bytes);
  } catch {
    return undefined;
  }
}

function read(bytes: Uint8Array): FuncTypes {
  const r = new Reader(bytes);
  r.at = 8; // magic and version
  const types: FuncType[] = [];
  const funcs: number[] = []; // the type of each function index, imported ones first
  const result: FuncTypes = { imports: new Map(), exports: new Map() };
  while (r.at < bytes.length) {
    const id = r.byte();
    const size = r.u32();
    const end = r.at + size;
    if (id === 1) {
      for (let n = r.u32(); n > 0; n--) {
        const start = r.at;
        if (r.byte() !== 0x60) throw new RangeError('not a function type');
        const params = Array.from({ length: r.u32() }, () => r.valtype());
        const results = Array.from({ length: r.u32() }, () => r.valtype());
        types.push({ bytes: bytes.slice(start, r.at), params: params.length, text: `(${params.join(', ')}) -> (${results.join(', ')})` });
      }
    } else if (id === 2) {
      for (let n = r.u32(); n > 0; n--) {
        const module = r.name();
        const name = r.name();
        const kind = r.byte();
        if (kind === 0x00) {
          const type = r.u32();
          funcs.push(type);
          result.imports.set(`${module}::${name}`, types[type]);
        } else if (kind === 0x01) {
          r.valtype();
          r.limits();
        } else if (kind === 0x02) {
          r.limits();
        } else if (kind === 0x03) {
          r.valtype();
          r.byte();
        } else if (kind === 0x04) {
          r.byte();
          r.u32();
        } else {
          throw new RangeError(`import kind ${kind}`);
        }
      }
    } else if (id === 3) {
      for (let n = r.u32(); n > 0; n--) funcs.push(r.u32());
    } else if (id === 7) {
      for (let n = r.u32(); n > 0; n--) {
        const name = r.name();
        const kind = r.byte();
        const index = r.u32();
        if (kind === 0x00) result.exports.set(name, types[funcs[index]]);
      }
    }
    r.at = end;
  }
  for (const t of [...result.imports.values(), ...result.exports.values()]) {
    if (t === undefined) throw new RangeError('a function of an unknown type');
  }
  return result;
}
