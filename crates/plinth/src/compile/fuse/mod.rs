//! Fuses the hot part of the Extism ABI into a plug-in at load time.
//!
//! PDKs move data 8 bytes per ABI call (`input_load_u64`, `store_u64`, ...). As host functions
//! those calls cost a wasm-to-host transition each; fused into the module as ordinary wasm
//! functions over a second memory (the Extism memory), Cranelift inlines them into the
//! plug-in's loops. `cargo bench -p plinth-bench --bench abi_design` measured the difference
//! (BENCHMARKS.md): about 7x on a 1 MiB echo.
//!
//! The rewrite only appends (types, one memory, functions, exports), so no
//! existing index moves; calls to the hot imports are redirected to the new functions. The
//! imports themselves stay, so `ref.func`, tables and link-time type checks are unchanged, and
//! the host versions of those functions work on the same memory with the same semantics.

use std::borrow::Cow;
use std::collections::HashMap;

use wasm_encoder::reencode::{utils, Error as ReencodeError, Reencode};
use wasm_encoder::{
    CodeSection, ExportKind, ExportSection, Function, FunctionSection, Instruction, MemArg,
    MemorySection, MemoryType, SectionId, TypeSection, ValType,
};
use wasmparser::{Operator, Parser, Payload, TypeRef};

use crate::abi::{ENV, PLINTH_ENV};
use crate::abi::memory::{INPUT_LENGTH_AT, INPUT_OFFSET_AT, RESERVED};

/// Export name (or its stem, see [`Fused`]) through which the host reaches Extism memory.
pub const MEMORY_EXPORT: &str = "__plinth_extism_memory";
/// Export name stem of a fused module's deferred start function.
pub const START_EXPORT: &str = "__plinth_start";

/// The ABI functions fused into the module, in the order their bodies are appended: the
/// Extism ones, then Plinth's bulk copies (from `FIRST_BULK` on).
const FUSED: [(&str, &str); 10] = [
    (ENV, "input_length"),
    (ENV, "input_load_u8"),
    (ENV, "input_load_u64"),
    (ENV, "load_u8"),
    (ENV, "load_u64"),
    (ENV, "store_u8"),
    (ENV, "store_u64"),
    (PLINTH_ENV, "input_read"),
    (PLINTH_ENV, "read"),
    (PLINTH_ENV, "write"),
];
/// The bulk copies move bytes between Extism memory and the plug-in's memory 0 with
/// `memory.copy`; they are fused only when memory 0 is a 32-bit memory.
const FIRST_BULK: usize = 7;

/// Rewrites `wasm` if it imports any of the fused functions; `None` when there is nothing to
/// fuse (or the bytes are not a plain core module, which compilation will then report).
pub fn fuse(wasm: &[u8]) -> Option<Vec<u8>> {
    // Appending a memory could make an invalid module valid (code naming a memory it lacks
    // would reach Extism memory), so only valid modules are fused; wasmtime reports the rest.
    wasmparser::Validator::new().validate_all(wasm).ok()?;
    let shape = Shape::read(wasm, false)?;
    if shape.hot.is_empty() {
        return None;
    }
    let names = shape.fused_exports();
    let mut fuser = Fuser::new(shape, names);
    let mut module = wasm_encoder::Module::new();
    fuser
        .parse_core_module(&mut module, Parser::new(0), wasm)
        .ok()?;
    let fused = module.finish();
    Some(match fuser.shape.start {
        Some(_) => without_start_section(&fused)?,
        None => fused,
    })
}

/// What the rewrite of a module exports for the host, decided from the original bytes alone
/// (cheaply: only the sections before the code are read). `None` when the module is left as
/// it is. The names are chosen not to clash with the module's own exports, so a compiled
/// module has them only if the rewrite added them: a plug-in cannot pass for fused by
/// exporting a memory under a name of its choosing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fused {
    /// Export name of Extism memory.
    pub memory_export: String,
    /// Export name of the module's start function, when it has one. A fused module's Extism
    /// memory is one of its own memories, which the host can only reach after instantiation,
    /// so the rewrite removes the start section and the host calls this export right after
    /// instantiating, once Extism memory is set up, as the unfused form would have it.
    pub start_export: Option<String>,
}

/// See [`Fused`].
pub fn fused_exports(wasm: &[u8]) -> Option<Fused> {
    let shape = Shape::read(wasm, true)?;
    (!shape.hot.is_empty()).then(|| shape.fused_exports())
}

impl Shape {
    fn fused_exports(&self) -> Fused {
        let unused = |base: &str| {
            (0u32..)
                .map(|n| match n {
                    0 => base.to_string(),
                    n => format!("{base}_{n}"),
                })
                .find(|name| !self.exports.contains(name))
                .expect("some name is free")
        };
        let memory_export = unused(MEMORY_EXPORT);
        let start_export = self.start.map(|_| unused(START_EXPORT));
        Fused {
            memory_export,
            start_export,
        }
    }
}

/// `wasm` without its start section (section id 8).
fn without_start_section(wasm: &[u8]) -> Option<Vec<u8>> {
    let mut out = wasm.get(..8)?.to_vec();
    let mut reader = wasmparser::BinaryReader::new(wasm.get(8..)?, 8);
    while !reader.eof() {
        let from = reader.original_position();
        let id = reader.read_u8().ok()?;
        let size = reader.read_var_u32().ok()? as usize;
        let body = reader.original_position();
        reader.read_bytes(size).ok()?;
        if id != 8 {
            out.extend_from_slice(wasm.get(from..body + size)?);
        }
    }
    Some(out)
}

/// Counts of each index space and the hot imports, from a first pass over the module.
struct Shape {
    types: u32,
    /// Parameter and result types of each function type, to fuse only imports declared with
    /// the ABI's signature (others stay imports, and linking names them).
    sigs: Vec<Option<(Vec<wasmparser::ValType>, Vec<wasmparser::ValType>)>>,
    funcs: u32,
    memories: u32,
    /// Whether memory 0 (the plug-in's own) exists and is 32-bit, as the bulk copies need.
    memory0_is_32: bool,
    /// (function index, ABI name) of each fused import.
    hot: Vec<(u32, &'static str)>,
    /// Parameter count of each function the module defines, to place scratch locals after
    /// its own when fused bodies are spliced into it.
    defined_params: Vec<u32>,
    /// Size of the code section in bytes: the splicing budget is relative to it.
    code_bytes: u64,
    /// The module's own export names, so that the appended exports take names it does not use.
    exports: std::collections::HashSet<String>,
    /// The start function, which the rewrite defers (see [`Fused::start_export`]).
    start: Option<u32>,
}

impl Shape {
    /// Reads the module's shape; with `stop_at_code`, only what precedes the code section
    /// (all that [`fused_exports`] needs), which is quick even for a large module.
    fn read(wasm: &[u8], stop_at_code: bool) -> Option<Shape> {
        let mut s = Shape {
            types: 0,
            sigs: Vec::new(),
            funcs: 0,
            memories: 0,
            memory0_is_32: false,
            hot: Vec::new(),
            defined_params: Vec::new(),
            code_bytes: 0,
            exports: Default::default(),
            start: None,
        };
        for payload in Parser::new(0).parse_all(wasm) {
            match payload.ok()? {
                Payload::Version { encoding, .. } if encoding != wasmparser::Encoding::Module => {
                    return None;
                }
                Payload::TypeSection(r) => {
                    for group in r {
                        for sub in group.ok()?.types() {
                            s.sigs.push(match &sub.composite_type.inner {
                                wasmparser::CompositeInnerType::Func(f) => {
                                    Some((f.params().to_vec(), f.results().to_vec()))
                                }
                                _ => None,
                            });
                            s.types += 1;
                        }
                    }
                }
                Payload::ImportSection(r) => {
                    for imports in r {
                        for import in imports.ok()? {
                            let (_, import) = import.ok()?;
                            match import.ty {
                                TypeRef::Func(ty) | TypeRef::FuncExact(ty) => {
                                    if let Some((_, name)) = FUSED
                                        .iter()
                                        .find(|(m, n)| *m == import.module && *n == import.name)
                                    {
                                        let sig = s.sigs.get(ty as usize).cloned().flatten();
                                        if sig.as_ref().is_some_and(|(p, r)| {
                                            (p.as_slice(), r.as_slice()) == signature(name)
                                        }) {
                                            s.hot.push((s.funcs, name));
                                        }
                                    }
                                    s.funcs += 1;
                                }
                                TypeRef::Memory(m) => {
                                    if s.memories == 0 {
                                        s.memory0_is_32 = !m.memory64;
                                    }
                                    s.memories += 1
                                }
                                _ => {}
                            }
                        }
                    }
                }
                Payload::FunctionSection(r) => {
                    s.funcs += r.count();
                    for ty in r {
                        let ty = ty.ok()?;
                        let params = s.sigs.get(ty as usize).cloned().flatten();
                        s.defined_params
                            .push(params.map_or(0, |(p, _)| p.len() as u32));
                    }
                }
                Payload::ExportSection(r) => {
                    for e in r {
                        s.exports.insert(e.ok()?.name.to_string());
                    }
                }
                Payload::StartSection { func, .. } => s.start = Some(func),
                Payload::CodeSectionStart { size, .. } => {
                    s.code_bytes = size as u64;
                    if stop_at_code {
                        break;
                    }
                }
                Payload::MemorySection(r) => {
                    for m in r {
                        let m = m.ok()?;
                        if s.memories == 0 {
                            s.memory0_is_32 = !m.memory64;
                        }
                        s.memories += 1;
                    }
                }
                _ => {}
            }
        }
        // Without a 32-bit memory 0 the bulk copies stay host functions.
        if !s.memory0_is_32 {
            s.hot
                .retain(|(_, name)| FUSED[..FIRST_BULK].iter().any(|(_, n)| n == name));
        }
        Some(s)
    }
}

/// The ABI signature of a fused function.
fn signature(
    name: &str,
) -> (
    &'static [wasmparser::ValType],
    &'static [wasmparser::ValType],
) {
    use wasmparser::ValType::{I32, I64};
    match name {
        "input_length" => (&[], &[I64]),
        "input_load_u8" | "load_u8" => (&[I64], &[I32]),
        "input_load_u64" | "load_u64" => (&[I64], &[I64]),
        "store_u8" => (&[I64, I32], &[]),
        "store_u64" => (&[I64, I64], &[]),
        "input_read" | "read" | "write" => (&[I64, I32, I32], &[]),
        _ => unreachable!("not a fused function: {name}"),
    }
}

struct Fuser {
    /// Fused import index -> index of the appended function that replaces it.
    redirect: HashMap<u32, u32>,
    shape: Shape,
    /// Sections that already carry the appended items.
    emitted: Vec<SectionId>,
    /// The appended functions as data, for splicing; index = appended function index -
    /// `shape.funcs`.
    kernels: Vec<Kernel>,
    /// For each kernel, the scratch local (relative to the caller's first scratch local) that
    /// holds each of its locals, parameters first.
    slots: Vec<Vec<u32>>,
    /// Types of the scratch locals a caller gets when a kernel is spliced into it.
    scratch: Vec<ValType>,
    /// Defined functions seen so far in the code section.
    next_defined: usize,
    /// Instructions that splicing may still add, so that a module of nothing but ABI calls
    /// cannot make the rewrite (and its compile) many times larger than the original.
    splice_budget: u64,
    names: Fused,
}

/// A fused ABI function as data, so that it can be appended as a function (for calls that
/// are not spliced) and spliced into its call sites. Splicing is what makes the hot ABI fast:
/// Cranelift's own inliner is off, because its cost on hostile call graphs is unbounded.
struct Kernel {
    params: &'static [ValType],
    locals: Vec<ValType>,
    /// The body without its final `end`. It branches only within itself and never returns,
    /// so it can stand in for a `call` as it is.
    body: Vec<Instruction<'static>>,
}

/// The most locals a function may have (wasmparser's limit); a function that is that close to
/// it keeps plain calls.
const MAX_LOCALS: u64 = 50_000;

impl Kernel {
    /// Instructions a splice adds: the body, plus setting each parameter and zeroing each local.
    fn splice_cost(&self) -> u64 {
        (self.body.len() + self.params.len() + 2 * self.locals.len()) as u64
    }
}

impl Fuser {
    fn new(shape: Shape, names: Fused) -> Fuser {
        let mut fuser = Fuser {
            names,
            redirect: HashMap::new(),
            splice_budget: shape.code_bytes / 2,
            shape,
            emitted: Vec::new(),
            kernels: Vec::new(),
            slots: Vec::new(),
            scratch: Vec::new(),
            next_defined: 0,
        };
        let first_new_fn = fuser.shape.funcs;
        for (import_index, name) in &fuser.shape.hot {
            let pos = FUSED.iter().position(|(_, f)| f == name).unwrap() as u32;
            fuser.redirect.insert(*import_index, first_new_fn + pos);
        }
        fuser.kernels = fuser.kernels();
        // Scratch locals by type, shared by every kernel (splices never nest).
        let (mut n64, mut n32) = (0u32, 0u32);
        for k in &fuser.kernels {
            let all = k.params.iter().chain(&k.locals);
            n64 = n64.max(all.clone().filter(|t| **t == ValType::I64).count() as u32);
            n32 = n32.max(all.filter(|t| **t == ValType::I32).count() as u32);
        }
        fuser.scratch = std::iter::repeat_n(ValType::I64, n64 as usize)
            .chain(std::iter::repeat_n(ValType::I32, n32 as usize))
            .collect();
        fuser.slots = fuser
            .kernels
            .iter()
            .map(|k| {
                let (mut i64s, mut i32s) = (0u32, n64);
                k.params
                    .iter()
                    .chain(&k.locals)
                    .map(|t| {
                        let slot = if *t == ValType::I64 {
                            &mut i64s
                        } else {
                            &mut i32s
                        };
                        *slot += 1;
                        *slot - 1
                    })
                    .collect()
            })
            .collect();
        fuser
    }

    /// Whether `body` calls a fused import (and so gets scratch locals).
    fn calls_fused(&self, body: &wasmparser::FunctionBody<'_>) -> Result<bool> {
        for op in body.get_operators_reader()? {
            if let Operator::Call { function_index } | Operator::ReturnCall { function_index } = op?
            {
                if self.redirect.contains_key(&function_index) {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    /// Emits kernel `k` in place of a call to it: pops the arguments into scratch locals
    /// (starting at local `base`), zeroes its own locals, then its body over those locals.
    fn splice(&self, f: &mut Function, k: usize, base: u32) {
        use Instruction as I;
        let kernel = &self.kernels[k];
        let local = |n: u32| base + self.slots[k][n as usize];
        for p in (0..kernel.params.len() as u32).rev() {
            f.instruction(&I::LocalSet(local(p)));
        }
        for (j, ty) in kernel.locals.iter().enumerate() {
            f.instruction(&match ty {
                ValType::I64 => I::I64Const(0),
                _ => I::I32Const(0),
            });
            f.instruction(&I::LocalSet(local((kernel.params.len() + j) as u32)));
        }
        for i in &kernel.body {
            match i {
                I::LocalGet(n) => f.instruction(&I::LocalGet(local(*n))),
                I::LocalSet(n) => f.instruction(&I::LocalSet(local(*n))),
                I::LocalTee(n) => f.instruction(&I::LocalTee(local(*n))),
                other => f.instruction(other),
            };
        }
    }
}

// Type indices of the appended signatures, relative to the first new type.
const T_UNIT_TO_I64: u32 = 0;
const T_I64_TO_I64: u32 = 1;
const T_I64_TO_I32: u32 = 2;
const T_I64_I64: u32 = 3;
const T_I64_I32: u32 = 4;
const T_I64_I32_I32: u32 = 5;

impl Fuser {
    fn memory(&self) -> u32 {
        self.shape.memories
    }

    fn add_types(&self, types: &mut TypeSection) {
        use ValType::{I32, I64};
        types.ty().function([], [I64]);
        types.ty().function([I64], [I64]);
        types.ty().function([I64], [I32]);
        types.ty().function([I64, I64], []);
        types.ty().function([I64, I32], []);
        types.ty().function([I64, I32, I32], []);
    }

    /// Whether the bulk copies are appended (and so take function indices).
    fn bulk(&self) -> bool {
        self.shape.memory0_is_32
    }

    fn add_functions(&self, funcs: &mut FunctionSection) {
        let t = self.shape.types;
        for ty in [
            T_UNIT_TO_I64,
            T_I64_TO_I32,
            T_I64_TO_I64,
            T_I64_TO_I32,
            T_I64_TO_I64,
            T_I64_I32,
            T_I64_I64,
        ] {
            funcs.function(t + ty);
        }
        if self.bulk() {
            for _ in FIRST_BULK..FUSED.len() {
                funcs.function(t + T_I64_I32_I32);
            }
        }
    }

    fn add_memory(&self, memories: &mut MemorySection) {
        memories.memory(MemoryType {
            minimum: 1,
            maximum: None,
            memory64: false,
            shared: false,
            page_size_log2: None,
        });
    }

    fn add_exports(&self, exports: &mut ExportSection) {
        exports.export(&self.names.memory_export, ExportKind::Memory, self.memory());
        if let (Some(start), Some(name)) = (self.shape.start, &self.names.start_export) {
            exports.export(name, ExportKind::Func, start);
        }
    }

    fn add_code(&self, code: &mut CodeSection) {
        for kernel in &self.kernels {
            let mut f = Function::new(kernel.locals.iter().map(|ty| (1, *ty)));
            for i in &kernel.body {
                f.instruction(i);
            }
            f.instruction(&Instruction::End);
            code.function(&f);
        }
    }

    /// The fused functions, in `FUSED` order (the bulk copies only when they are fused).
    fn kernels(&self) -> Vec<Kernel> {
        let mut kernels = self.memory_kernels();
        if self.bulk() {
            kernels.extend(self.bulk_kernels());
        }
        kernels
    }

    /// `input_length`, `input_load_u8/u64`, `load_u8/u64`, `store_u8/u64`.
    fn memory_kernels(&self) -> Vec<Kernel> {
        use ValType::{I32, I64};
        let mem = self.memory();
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

        // input_length
        kernels.push(Kernel {
            params: &[],
            locals: vec![],
            body: vec![I::I32Const(0), I::I64Load(at(INPUT_LENGTH_AT))],
        });

        // input_load_u8(off): in range of the input, else 0.
        kernels.push(Kernel {
            params: &[I64],
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
        });

        // input_load_u64(off): 8 bytes; a tail shorter than 8 is zero-filled.
        // Locals 1: result, 2: remaining count.
        kernels.push(Kernel {
            params: &[I64],
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
        });

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
                       params: &'static [ValType],
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
            Kernel {
                params,
                locals: vec![],
                body,
            }
        };
        kernels.push(bounded(
            1,
            &[I64],
            I::I32Load8U(arg(0)),
            Some((I32, I::I32Const(0))),
        ));
        kernels.push(bounded(
            8,
            &[I64],
            I::I64Load(arg(3)),
            Some((I64, I::I64Const(0))),
        ));
        kernels.push(bounded(1, &[I64, I32], I::I32Store8(arg(0)), None));
        kernels.push(bounded(8, &[I64, I64], I::I64Store(arg(3)), None));
        kernels
    }

    /// `input_read(offset, dst, len)`, `read(src, dst, len)` and `write(dst, src, len)`:
    /// `memory.copy` between Extism memory and the plug-in's memory 0. A range outside the
    /// input or a memory traps; there is no partial copy. A length of 0 copies nothing and
    /// checks only what the host versions check (the input range for `input_read`), so that
    /// fused and host versions agree on every edge.
    fn bulk_kernels(&self) -> Vec<Kernel> {
        use Instruction as I;
        use ValType::{I32, I64};
        const PARAMS: &[ValType] = &[I64, I32, I32];
        let mem = self.memory();
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

        [input_read, read, write]
            .into_iter()
            .map(|body| Kernel {
                params: PARAMS,
                locals: vec![],
                body,
            })
            .collect()
    }

    /// Emits, as sections of their own, the appended items whose section the module lacks and
    /// whose place comes before `before`.
    fn emit_missing(&mut self, module: &mut wasm_encoder::Module, before: Option<SectionId>) {
        for id in [
            SectionId::Type,
            SectionId::Function,
            SectionId::Memory,
            SectionId::Export,
            SectionId::Code,
        ] {
            if self.emitted.contains(&id) {
                continue;
            }
            if before.is_some_and(|b| order(b) <= order(id)) {
                continue;
            }
            match id {
                SectionId::Type => {
                    let mut s = TypeSection::new();
                    self.add_types(&mut s);
                    module.section(&s);
                }
                SectionId::Function => {
                    let mut s = FunctionSection::new();
                    self.add_functions(&mut s);
                    module.section(&s);
                }
                SectionId::Memory => {
                    let mut s = MemorySection::new();
                    self.add_memory(&mut s);
                    module.section(&s);
                }
                SectionId::Export => {
                    let mut s = ExportSection::new();
                    self.add_exports(&mut s);
                    module.section(&s);
                }
                SectionId::Code => {
                    let mut s = CodeSection::new();
                    self.add_code(&mut s);
                    module.section(&s);
                }
                _ => unreachable!(),
            }
            self.emitted.push(id);
        }
    }
}

/// Position of a section in a module's binary order.
fn order(id: SectionId) -> u8 {
    match id {
        SectionId::Custom => 0,
        SectionId::Type => 1,
        SectionId::Import => 2,
        SectionId::Function => 3,
        SectionId::Table => 4,
        SectionId::Memory => 5,
        SectionId::Tag => 6,
        SectionId::Global => 7,
        SectionId::Export => 8,
        SectionId::Start => 9,
        SectionId::Element => 10,
        SectionId::DataCount => 11,
        SectionId::Code => 12,
        SectionId::Data => 13,
    }
}

type Result<T> = std::result::Result<T, ReencodeError<std::convert::Infallible>>;

/// A section parser that copies the module's entries, then appends ours.
macro_rules! append_to_section {
    ($method:ident, $section:ident, $reader:ident, $add:ident, $id:ident) => {
        fn $method(
            &mut self,
            section: &mut $section,
            reader: wasmparser::$reader<'_>,
        ) -> Result<()> {
            utils::$method(self, section, reader)?;
            self.$add(section);
            self.emitted.push(SectionId::$id);
            Ok(())
        }
    };
}

impl Reencode for Fuser {
    type Error = std::convert::Infallible;

    fn instruction<'a>(&mut self, op: Operator<'a>) -> Result<Instruction<'a>> {
        Ok(match op {
            Operator::Call { function_index } if self.redirect.contains_key(&function_index) => {
                Instruction::Call(self.redirect[&function_index])
            }
            Operator::ReturnCall { function_index }
                if self.redirect.contains_key(&function_index) =>
            {
                Instruction::ReturnCall(self.redirect[&function_index])
            }
            op => utils::instruction(self, op)?,
        })
    }

    fn parse_function_body(
        &mut self,
        code: &mut CodeSection,
        func: wasmparser::FunctionBody<'_>,
    ) -> Result<()> {
        let defined = self.next_defined;
        self.next_defined += 1;
        let params = u64::from(self.shape.defined_params.get(defined).copied().unwrap_or(0));
        let mut locals = Vec::new();
        let mut declared = 0u64;
        for pair in func.get_locals_reader()? {
            let (n, ty) = pair?;
            declared += u64::from(n);
            locals.push((n, self.val_type(ty)?));
        }
        let base = params + declared;
        let splicing = base + self.scratch.len() as u64 <= MAX_LOCALS && self.calls_fused(&func)?;
        if splicing {
            locals.extend(self.scratch.iter().map(|ty| (1, *ty)));
        }
        let mut f = Function::new(locals);
        let mut reader = func.get_operators_reader()?;
        while !reader.eof() {
            let op = reader.read()?;
            let (fused, is_tail) = match op {
                Operator::Call { function_index } => (self.redirect.get(&function_index), false),
                Operator::ReturnCall { function_index } => {
                    (self.redirect.get(&function_index), true)
                }
                _ => (None, false),
            };
            if let (true, Some(&new_index)) = (splicing, fused) {
                let k = (new_index - self.shape.funcs) as usize;
                let cost = self.kernels[k].splice_cost();
                if cost <= self.splice_budget {
                    self.splice_budget -= cost;
                    self.splice(&mut f, k, base as u32);
                    if is_tail {
                        f.instruction(&Instruction::Return);
                    }
                    continue;
                }
            }
            f.instruction(&self.instruction(op)?);
        }
        code.function(&f);
        Ok(())
    }

    fn intersperse_section_hook(
        &mut self,
        module: &mut wasm_encoder::Module,
        _after: Option<SectionId>,
        before: Option<SectionId>,
    ) -> Result<()> {
        self.emit_missing(module, before);
        Ok(())
    }

    append_to_section!(
        parse_type_section,
        TypeSection,
        TypeSectionReader,
        add_types,
        Type
    );
    append_to_section!(
        parse_function_section,
        FunctionSection,
        FunctionSectionReader,
        add_functions,
        Function
    );
    append_to_section!(
        parse_memory_section,
        MemorySection,
        MemorySectionReader,
        add_memory,
        Memory
    );
    append_to_section!(
        parse_export_section,
        ExportSection,
        ExportSectionReader,
        add_exports,
        Export
    );
    append_to_section!(
        parse_code_section,
        CodeSection,
        CodeSectionReader,
        add_code,
        Code
    );
}

/// The module bytes to compile: fused when the module uses the hot ABI imports.
pub fn prepare(wasm: &[u8]) -> Cow<'_, [u8]> {
    match fuse(wasm) {
        Some(fused) => Cow::Owned(fused),
        None => Cow::Borrowed(wasm),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validate(wasm: &[u8]) {
        wasmparser::Validator::new()
            .validate_all(wasm)
            .expect("fused module is valid");
    }

    fn exports(wasm: &[u8]) -> Vec<String> {
        let mut names = Vec::new();
        for p in Parser::new(0).parse_all(wasm) {
            if let Payload::ExportSection(r) = p.unwrap() {
                for e in r {
                    names.push(e.unwrap().name.to_string());
                }
            }
        }
        names
    }

    #[test]
    fn fuses_a_module_without_memory_global_or_export_sections() {
        // Only types, imports, functions and code: every appended section must be inserted.
        let wasm = wat::parse_str(
            r#"(module (import "extism:host/env" "load_u64" (func $l (param i64) (result i64)))
                 (func (drop (call $l (i64.const 8)))))"#,
        )
        .unwrap();
        let fused = fuse(&wasm).expect("has a hot import");
        validate(&fused);
        let names = exports(&fused);
        assert!(names.contains(&MEMORY_EXPORT.to_string()), "{names:?}");
    }

    #[test]
    fn keeps_existing_indices_and_redirects_calls() {
        let wasm = wat::parse_str(
            r#"(module
                 (import "extism:host/env" "input_length" (func $len (result i64)))
                 (import "other" "f" (func $f))
                 (memory (export "memory") 1)
                 (global $g (mut i32) (i32.const 5))
                 (func $a (export "a") (result i64) (call $f) (call $len))
                 (func (export "b") (result i32) (global.get $g)))"#,
        )
        .unwrap();
        let fused = fuse(&wasm).unwrap();
        validate(&fused);
        let names = exports(&fused);
        assert_eq!(&names[..3], ["memory", "a", "b"]);
        // `a` now has input_length spliced in: it reads the input length from Extism memory
        // (memory 1) itself, and calls neither the import nor the appended function (index 4).
        let mut loads_from_extism_memory = false;
        for p in Parser::new(0).parse_all(&fused) {
            if let Payload::CodeSectionEntry(body) = p.unwrap() {
                for op in body.get_operators_reader().unwrap() {
                    match op.unwrap() {
                        Operator::Call { function_index } => {
                            assert!(function_index == 1, "only `other.f` is still called");
                        }
                        Operator::I64Load { memarg } => {
                            loads_from_extism_memory |= memarg.memory == 1;
                        }
                        _ => {}
                    }
                }
                break;
            }
        }
        assert!(loads_from_extism_memory);
    }

    /// Counts calls to `index` and the size of the code section.
    fn calls_to(wasm: &[u8], index: u32) -> usize {
        let mut n = 0;
        for p in Parser::new(0).parse_all(wasm) {
            if let Payload::CodeSectionEntry(body) = p.unwrap() {
                for op in body.get_operators_reader().unwrap() {
                    if let Operator::Call { function_index } = op.unwrap() {
                        n += (function_index == index) as usize;
                    }
                }
            }
        }
        n
    }

    #[test]
    fn splices_within_a_budget_and_calls_past_it() {
        let calls = "(drop (call $l (i64.const 16)))".repeat(10_000);
        let wasm = wat::parse_str(format!(
            r#"(module (import "extism:host/env" "load_u64" (func $l (param i64) (result i64)))
                 (func {calls}))"#
        ))
        .unwrap();
        let fused = fuse(&wasm).unwrap();
        validate(&fused);
        // The appended load_u64 is function 2 (one import, one function, input_length first).
        let appended_load_u64 = 2 + 4;
        let still_called = calls_to(&fused, appended_load_u64);
        assert!(
            still_called > 0 && still_called < 10_000,
            "some calls spliced, the rest kept: {still_called}"
        );
        assert!(
            fused.len() < 3 * wasm.len(),
            "{} bytes from {}",
            fused.len(),
            wasm.len()
        );
    }

    #[test]
    fn tail_calls_are_spliced_then_return() {
        let wasm = wat::parse_str(
            r#"(module (import "extism:host/env" "load_u64" (func $l (param i64) (result i64)))
                 (func (export "f") (param i64) (result i64) (return_call $l (local.get 0))))"#,
        )
        .unwrap();
        let fused = fuse(&wasm).unwrap();
        validate(&fused);
        assert_eq!(calls_to(&fused, 0), 0);
    }

    #[test]
    fn the_start_function_is_deferred_under_a_free_name() {
        let wasm = wat::parse_str(
            r#"(module (import "extism:host/env" "load_u64" (func $l (param i64) (result i64)))
                 (memory (export "__plinth_extism_memory") 1)
                 (func $s (drop (call $l (i64.const 16))))
                 (func (export "__plinth_start"))
                 (start $s))"#,
        )
        .unwrap();
        let names = fused_exports(&wasm).unwrap();
        assert_eq!(names.memory_export, "__plinth_extism_memory_1");
        assert_eq!(names.start_export.as_deref(), Some("__plinth_start_1"));
        let fused = fuse(&wasm).unwrap();
        validate(&fused);
        let mut has_start = false;
        for p in Parser::new(0).parse_all(&fused) {
            has_start |= matches!(p.unwrap(), Payload::StartSection { .. });
        }
        assert!(!has_start, "the start section is gone");
        let names = exports(&fused);
        assert!(names.contains(&"__plinth_start_1".to_string()), "{names:?}");
        assert!(names.contains(&"__plinth_extism_memory_1".to_string()));
    }

    #[test]
    fn bulk_copies_are_fused_only_over_a_32_bit_memory_0() {
        let module = |memory: &str| {
            wat::parse_str(format!(
                r#"(module (import "plinth:host/env" "read" (func $r (param i64 i32 i32)))
                     {memory}
                     (func (call $r (i64.const 16) (i32.const 0) (i32.const 8))))"#
            ))
            .unwrap()
        };
        let fused = fuse(&module("(memory 1)")).expect("read is fused");
        validate(&fused);
        for p in Parser::new(0).parse_all(&fused) {
            if let Payload::CodeSectionEntry(body) = p.unwrap() {
                for op in body.get_operators_reader().unwrap() {
                    if let Operator::Call { function_index } = op.unwrap() {
                        assert_ne!(function_index, 0, "the call goes to the fused copy");
                    }
                }
            }
        }
        assert!(fuse(&module("(memory i64 1)")).is_none());
        assert!(fuse(&module("")).is_none());
    }

    #[test]
    fn leaves_modules_without_hot_imports_alone() {
        let plain = wat::parse_str(r#"(module (func (export "f")))"#).unwrap();
        assert!(fuse(&plain).is_none());
        let cold = wat::parse_str(
            r#"(module (import "extism:host/env" "alloc" (func (param i64) (result i64))))"#,
        )
        .unwrap();
        assert!(fuse(&cold).is_none());
        assert!(fuse(b"not wasm").is_none());
    }

    #[test]
    fn invalid_modules_and_mistyped_imports_are_not_fused() {
        // Names memory 1, which only the appended Extism memory would supply.
        let invalid = wat::parse_str(
            r#"(module (import "extism:host/env" "load_u64" (func (param i64) (result i64)))
                 (memory 1) (func (i64.store 1 (i32.const 0) (i64.const 1))))"#,
        )
        .unwrap();
        assert!(fuse(&invalid).is_none());
        let mistyped = wat::parse_str(
            r#"(module (import "extism:host/env" "load_u64" (func $l (param i32) (result i64)))
                 (func (drop (call $l (i32.const 0)))))"#,
        )
        .unwrap();
        assert!(fuse(&mistyped).is_none());
    }
}
