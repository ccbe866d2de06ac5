//! The fused functions' bodies ([`Kernel`]), each keyed by its name in `abi::FUNCTIONS`.

use wasm_encoder::{Instruction, MemArg, ValType};

use super::encoder_types;
use crate::memory::{INPUT_LENGTH_AT, INPUT_OFFSET_AT, RESERVED};
use crate::AbiFunction;

/// A fused ABI function as data, so that it can be appended as a function (for calls that
/// are not spliced) and spliced into its call sites. Splicing is what makes the hot ABI fast:
/// Cranelift's own inliner is off, because its cost on hostile call graphs is unbounded.
pub(super) struct Kernel {
    pub(super) params: Vec<ValType>,
    pub(super) locals: Vec<ValType>,
    /// The body without its final `end`. It branches only within itself and never returns,
    /// so it can stand in for a `call` as it is.
    pub(super) body: Vec<Instruction<'static>>,
}

/// A fused function's body before it takes its parameters from the ABI table.
pub(super) struct Body {
    pub(super) locals: Vec<ValType>,
    pub(super) body: Vec<Instruction<'static>>,
}

/// The most locals a function may have (wasmparser's limit); a function that is that close to
/// it keeps plain calls.
pub(super) const MAX_LOCALS: u64 = 50_000;

impl Kernel {
    /// Instructions a splice adds: the body, plus setting each parameter and zeroing each local.
    pub(super) fn splice_cost(&self) -> u64 {
        (self.body.len() + self.params.len() + 2 * self.locals.len()) as u64
    }
}

/// The fused functions' bodies, in table order, each with the table's parameters.
pub(super) fn kernels(
    appended: impl Iterator<Item = &'static AbiFunction>,
    mem: u32,
) -> Vec<Kernel> {
    let mut bodies = memory_kernels(mem);
    bodies.extend(bulk_kernels(mem));
    appended
        .map(|f| {
            let at = bodies
                .iter()
                .position(|(name, _)| *name == f.name)
                .unwrap_or_else(|| panic!("no fused body for `{}`", f.name));
            let (_, body) = bodies.swap_remove(at);
            Kernel {
                params: encoder_types(f.params),
                locals: body.locals,
                body: body.body,
            }
        })
        .collect()
}

/// `input_length`, `input_load_u8/u64`, `load_u8/u64`, `store_u8/u64`.
fn memory_kernels(mem: u32) -> Vec<(&'static str, Body)> {
    use ValType::{I32, I64};
    let arg = |align: u32| MemArg {
        offset: 0,
        align,
        memory_index: mem,
    };
    use Instruction as I;
    // The input's offset and length, from the reserved bytes of Extism memory.
    let at = |addr: u64| MemArg {
        offset: addr,
        align: 3,
        memory_index: mem,
    };
    // Memory size in bytes, as i64.
    let mem_bytes = [
        I::MemorySize(mem),
        I::I64ExtendI32U,
        I::I64Const(16),
        I::I64Shl,
    ];
    let mut kernels = Vec::new();

    kernels.push((
        "input_length",
        Body {
            locals: vec![],
            body: vec![I::I32Const(0), I::I64Load(at(INPUT_LENGTH_AT))],
        },
    ));

    // input_load_u8(off): in range of the input, else 0.
    kernels.push((
        "input_load_u8",
        Body {
            locals: vec![],
            body: vec![
                I::LocalGet(0),
                I::I32Const(0),
                I::I64Load(at(INPUT_LENGTH_AT)),
                I::I64LtU,
                I::If(wasm_encoder::BlockType::Result(I32)),
                I::I32Const(0),
                I::I64Load(at(INPUT_OFFSET_AT)),
                I::LocalGet(0),
                I::I64Add,
                I::I32WrapI64,
                I::I32Load8U(arg(0)),
                I::Else,
                I::I32Const(0),
                I::End,
            ],
        },
    ));

    // input_load_u64(off): 8 bytes; a tail shorter than 8 is zero-filled.
    // Locals 1: result, 2: remaining count.
    kernels.push((
        "input_load_u64",
        Body {
            locals: vec![I64, I64],
            body: vec![
                I::LocalGet(0),
                I::I32Const(0),
                I::I64Load(at(INPUT_LENGTH_AT)),
                I::I64LtU,
                I::If(wasm_encoder::BlockType::Result(I64)),
                // off + 8 <= len (no overflow: off < len < 2^32)
                I::LocalGet(0),
                I::I64Const(8),
                I::I64Add,
                I::I32Const(0),
                I::I64Load(at(INPUT_LENGTH_AT)),
                I::I64LeU,
                I::If(wasm_encoder::BlockType::Result(I64)),
                I::I32Const(0),
                I::I64Load(at(INPUT_OFFSET_AT)),
                I::LocalGet(0),
                I::I64Add,
                I::I32WrapI64,
                I::I64Load(arg(3)),
                I::Else,
                // count = len - off; r = 0; do { count--; r = r << 8 | byte[base+off+count] } while count
                I::I32Const(0),
                I::I64Load(at(INPUT_LENGTH_AT)),
                I::LocalGet(0),
                I::I64Sub,
                I::LocalSet(2),
                I::Loop(wasm_encoder::BlockType::Empty),
                I::LocalGet(2),
                I::I64Const(1),
                I::I64Sub,
                I::LocalSet(2),
                I::LocalGet(1),
                I::I64Const(8),
                I::I64Shl,
                I::I32Const(0),
                I::I64Load(at(INPUT_OFFSET_AT)),
                I::LocalGet(0),
                I::I64Add,
                I::LocalGet(2),
                I::I64Add,
                I::I32WrapI64,
                I::I64Load8U(arg(0)),
                I::I64Or,
                I::LocalSet(1),
                I::LocalGet(2),
                I::I64Const(0),
                I::I64Ne,
                I::BrIf(0),
                I::End,
                I::LocalGet(1),
                I::End,
                I::Else,
                I::I64Const(0),
                I::End,
            ],
        },
    ));

    // Addresses are valid when RESERVED <= addr and addr + width <= memory size; one
    // unsigned compare: (addr - RESERVED) <= (size - RESERVED - width).
    let in_bounds = |width: i64| -> Vec<Instruction<'static>> {
        let mut v = vec![I::LocalGet(0), I::I64Const(RESERVED as i64), I::I64Sub];
        v.extend(mem_bytes.iter().cloned());
        v.extend([I::I64Const(RESERVED as i64 + width), I::I64Sub, I::I64LeU]);
        v
    };

    // load_u8, load_u64, store_u8, store_u64: the access when in bounds; out of bounds a
    // load gives 0 and a store is ignored.
    let bounded = |width: i64,
                   access: Instruction<'static>,
                   load: Option<(ValType, Instruction<'static>)>| {
        let mut body = in_bounds(width);
        body.push(I::If(match &load {
            Some((ty, _)) => wasm_encoder::BlockType::Result(*ty),
            None => wasm_encoder::BlockType::Empty,
        }));
        body.extend([I::LocalGet(0), I::I32WrapI64]);
        if load.is_none() {
            body.push(I::LocalGet(1));
        }
        body.push(access);
        if let Some((_, zero)) = load {
            body.extend([I::Else, zero]);
        }
        body.push(I::End);
        Body {
            locals: vec![],
            body,
        }
    };
    kernels.push((
        "load_u8",
        bounded(1, I::I32Load8U(arg(0)), Some((I32, I::I32Const(0)))),
    ));
    kernels.push((
        "load_u64",
        bounded(8, I::I64Load(arg(3)), Some((I64, I::I64Const(0)))),
    ));
    kernels.push(("store_u8", bounded(1, I::I32Store8(arg(0)), None)));
    kernels.push(("store_u64", bounded(8, I::I64Store(arg(3)), None)));
    kernels
}

/// `input_read(offset, dst, len)`, `read(src, dst, len)` and `write(dst, src, len)`:
/// `memory.copy` between Extism memory and the plug-in's memory 0. A range outside the
/// input or a memory traps; there is no partial copy. A length of 0 copies nothing and
/// checks only what the host versions check (the input range for `input_read`), so that
/// fused and host versions agree on every edge.
fn bulk_kernels(mem: u32) -> Vec<(&'static str, Body)> {
    use Instruction as I;
    let at = |addr: u64| MemArg {
        offset: addr,
        align: 3,
        memory_index: mem,
    };
    // The copy, skipped for a length of 0: `memory.copy` of 0 bytes still traps on an
    // address past the end, where the host versions do nothing.
    let unless_empty = |copy: Vec<Instruction<'static>>| {
        let mut v = vec![
            I::LocalGet(2),
            I::I32Const(0),
            I::I32Ne,
            I::If(wasm_encoder::BlockType::Empty),
        ];
        v.extend(copy);
        v.push(I::End);
        v
    };
    // Traps unless RESERVED <= addr (local 0) < 4 GiB, or nothing is copied (len, local
    // 2, is 0: any handle, the null one included, will do); memory.copy checks the rest.
    let extism_address_check = [
        I::LocalGet(0),
        I::I64Const(RESERVED as i64),
        I::I64LtU,
        I::LocalGet(0),
        I::I64Const(u32::MAX as i64),
        I::I64GtU,
        I::I32Or,
        I::LocalGet(2),
        I::I32Const(0),
        I::I32Ne,
        I::I32And,
        I::If(wasm_encoder::BlockType::Empty),
        I::Unreachable,
        I::End,
    ];

    // input_read: offset <= input length and len <= input length - offset.
    let mut input_read = vec![
        I::LocalGet(0),
        I::I32Const(0),
        I::I64Load(at(INPUT_LENGTH_AT)),
        I::I64GtU,
        I::LocalGet(2),
        I::I64ExtendI32U,
        I::I32Const(0),
        I::I64Load(at(INPUT_LENGTH_AT)),
        I::LocalGet(0),
        I::I64Sub,
        I::I64GtU,
        I::I32Or,
        I::If(wasm_encoder::BlockType::Empty),
        I::Unreachable,
        I::End,
    ];
    input_read.extend(unless_empty(vec![
        I::LocalGet(1),
        I::I32Const(0),
        I::I64Load(at(INPUT_OFFSET_AT)),
        I::LocalGet(0),
        I::I64Add,
        I::I32WrapI64,
        I::LocalGet(2),
        I::MemoryCopy {
            dst_mem: 0,
            src_mem: mem,
        },
    ]));

    // read: Extism memory -> plug-in memory.
    let mut read = extism_address_check.to_vec();
    read.extend(unless_empty(vec![
        I::LocalGet(1),
        I::LocalGet(0),
        I::I32WrapI64,
        I::LocalGet(2),
        I::MemoryCopy {
            dst_mem: 0,
            src_mem: mem,
        },
    ]));

    // write: plug-in memory -> Extism memory.
    let mut write = extism_address_check.to_vec();
    write.extend(unless_empty(vec![
        I::LocalGet(0),
        I::I32WrapI64,
        I::LocalGet(1),
        I::LocalGet(2),
        I::MemoryCopy {
            dst_mem: mem,
            src_mem: 0,
        },
    ]));

    [("input_read", input_read), ("read", read), ("write", write)]
        .into_iter()
        .map(|(name, body)| {
            (
                name,
                Body {
                    locals: vec![],
                    body,
                },
            )
        })
        .collect()
}
