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
use crate::memory::{INPUT_LENGTH_AT, INPUT_OFFSET_AT, RESERVED};

/// Export names through which the host reaches the fused kernel's state.
pub const MEMORY_EXPORT: &str = "__plinth_extism_memory";

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
    let shape = Shape::read(wasm)?;
    if shape.hot.is_empty() {
        return None;
    }
    let mut fuser = Fuser {
        redirect: HashMap::new(),
        shape,
        emitted: Vec::new(),
    };
    let first_new_fn = fuser.shape.funcs;
    for (import_index, name) in &fuser.shape.hot {
        let pos = FUSED.iter().position(|(_, f)| f == name).unwrap() as u32;
        fuser.redirect.insert(*import_index, first_new_fn + pos);
    }
    let mut module = wasm_encoder::Module::new();
    fuser
        .parse_core_module(&mut module, Parser::new(0), wasm)
        .ok()?;
    Some(module.finish())
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
}

impl Shape {
    fn read(wasm: &[u8]) -> Option<Shape> {
        let mut s = Shape {
            types: 0,
            sigs: Vec::new(),
            funcs: 0,
            memories: 0,
            memory0_is_32: false,
            hot: Vec::new(),
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
                Payload::FunctionSection(r) => s.funcs += r.count(),
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
    redirect: HashMap<u32, u32>,
    shape: Shape,
    /// Sections that already carry the appended items.
    emitted: Vec<SectionId>,
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
        exports.export(MEMORY_EXPORT, ExportKind::Memory, self.memory());
    }

    fn add_code(&self, code: &mut CodeSection) {
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
        let len = [I::I32Const(0), I::I64Load(at(INPUT_LENGTH_AT))];
        // Memory size in bytes, as i64.
        let mem_bytes = [
            I::MemorySize(mem),
            I::I64ExtendI32U,
            I::I64Const(16),
            I::I64Shl,
        ];

        // input_length
        let mut f = Function::new([]);
        for i in len.iter().chain([&I::End]) {
            f.instruction(i);
        }
        code.function(&f);

        // input_load_u8(off): in range of the input, else 0.
        let mut f = Function::new([]);
        for i in [
            I::LocalGet(0),
            I::I32Const(0),
            I::I64Load(at(INPUT_LENGTH_AT)),
            I::I64LtU,
            I::If(wasm_encoder::BlockType::Result(ValType::I32)),
            I::I32Const(0),
            I::I64Load(at(INPUT_OFFSET_AT)),
            I::LocalGet(0),
            I::I64Add,
            I::I32WrapI64,
            I::I32Load8U(arg(0)),
            I::Else,
            I::I32Const(0),
            I::End,
            I::End,
        ] {
            f.instruction(&i);
        }
        code.function(&f);

        // input_load_u64(off): 8 bytes; a tail shorter than 8 is zero-filled.
        let mut f = Function::new([(2, ValType::I64)]); // locals 1: result, 2: remaining count
        for i in [
            I::LocalGet(0),
            I::I32Const(0),
            I::I64Load(at(INPUT_LENGTH_AT)),
            I::I64LtU,
            I::If(wasm_encoder::BlockType::Result(ValType::I64)),
            // off + 8 <= len (no overflow: off < len < 2^32)
            I::LocalGet(0),
            I::I64Const(8),
            I::I64Add,
            I::I32Const(0),
            I::I64Load(at(INPUT_LENGTH_AT)),
            I::I64LeU,
            I::If(wasm_encoder::BlockType::Result(ValType::I64)),
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
            I::End,
        ] {
            f.instruction(&i);
        }
        code.function(&f);

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
            body.extend([I::End, I::End]);
            let mut f = Function::new([]);
            for i in &body {
                f.instruction(i);
            }
            f
        };
        code.function(&bounded(
            1,
            I::I32Load8U(arg(0)),
            Some((ValType::I32, I::I32Const(0))),
        ));
        code.function(&bounded(
            8,
            I::I64Load(arg(3)),
            Some((ValType::I64, I::I64Const(0))),
        ));
        code.function(&bounded(1, I::I32Store8(arg(0)), None));
        code.function(&bounded(8, I::I64Store(arg(3)), None));
        if self.bulk() {
            self.add_bulk_code(code);
        }
    }

    /// `input_read(offset, dst, len)`, `read(src, dst, len)` and `write(dst, src, len)`:
    /// `memory.copy` between Extism memory and the plug-in's memory 0. A range outside the
    /// input or a memory traps; there is no partial copy.
    fn add_bulk_code(&self, code: &mut CodeSection) {
        use Instruction as I;
        let mem = self.memory();
        let at = |addr: u64| MemArg {
            offset: addr,
            align: 3,
            memory_index: mem,
        };
        let emit = |body: &[Instruction<'_>]| {
            let mut f = Function::new([]);
            for i in body {
                f.instruction(i);
            }
            f.instruction(&I::End);
            f
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
        let mut body = vec![
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
        body.extend([
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
        ]);
        code.function(&emit(&body));

        // read: Extism memory -> plug-in memory.
        let mut body = extism_address_check.to_vec();
        body.extend([
            I::LocalGet(1),
            I::LocalGet(0),
            I::I32WrapI64,
            I::LocalGet(2),
            I::MemoryCopy {
                dst_mem: 0,
                src_mem: mem,
            },
        ]);
        code.function(&emit(&body));

        // write: plug-in memory -> Extism memory.
        let mut body = extism_address_check.to_vec();
        body.extend([
            I::LocalGet(0),
            I::I32WrapI64,
            I::LocalGet(1),
            I::LocalGet(2),
            I::MemoryCopy {
                dst_mem: mem,
                src_mem: 0,
            },
        ]);
        code.function(&emit(&body));
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
        // `a` now calls the appended input_length (index 4: two imports, two functions).
        let mut saw_redirect = false;
        for p in Parser::new(0).parse_all(&fused) {
            if let Payload::CodeSectionEntry(body) = p.unwrap() {
                for op in body.get_operators_reader().unwrap() {
                    if let Operator::Call { function_index } = op.unwrap() {
                        assert_ne!(function_index, 0, "no call reaches the import any more");
                        saw_redirect |= function_index == 4;
                    }
                }
            }
        }
        assert!(saw_redirect);
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
