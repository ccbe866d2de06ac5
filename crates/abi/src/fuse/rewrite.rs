//! `Fuser`: the re-encoding pass that appends the fused functions, Extism memory and the
//! host's exports, and splices the kernels into their call sites within a budget.

use std::collections::HashMap;

use wasm_encoder::reencode::{utils, Error as ReencodeError, Reencode};
use wasm_encoder::{
    CodeSection, ExportKind, ExportSection, Function, FunctionSection, Instruction, MemorySection,
    MemoryType, SectionId, TypeSection, ValType,
};
use wasmparser::Operator;

use super::kernels::{self, Kernel, MAX_LOCALS};
use super::shape::Shape;
use super::{encoder_types, fused_signatures, Fused};
use crate::sections::{reencode_appending, Appends};
use crate::{self as abi, AbiFunction, Fusion};

pub(super) struct Fuser {
    /// Fused import index -> index of the appended function that replaces it.
    pub(super) redirect: HashMap<u32, u32>,
    pub(super) shape: Shape,
    /// Sections that already carry the appended items.
    pub(super) emitted: Vec<SectionId>,
    /// The appended functions as data, for splicing; index = appended function index -
    /// `shape.funcs`.
    pub(super) kernels: Vec<Kernel>,
    /// For each kernel, the scratch local (relative to the caller's first scratch local) that
    /// holds each of its locals, parameters first.
    pub(super) slots: Vec<Vec<u32>>,
    /// Types of the scratch locals a caller gets when a kernel is spliced into it.
    pub(super) scratch: Vec<ValType>,
    /// Defined functions seen so far in the code section.
    pub(super) next_defined: usize,
    /// Instructions that splicing may still add, so that a module of nothing but ABI calls
    /// cannot make the rewrite (and its compile) many times larger than the original.
    pub(super) splice_budget: u64,
    pub(super) names: Fused,
}

impl Fuser {
    pub(super) fn new(shape: Shape, names: Fused) -> Fuser {
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
        for (import_index, f) in &fuser.shape.hot {
            let pos = abi::fused()
                .position(|g| g == *f)
                .expect("hot functions are fused ones") as u32;
            fuser.redirect.insert(*import_index, first_new_fn + pos);
        }
        fuser.kernels = kernels::kernels(fuser.appended(), fuser.memory());
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
    pub(super) fn calls_fused(&self, body: &wasmparser::FunctionBody<'_>) -> Result<bool> {
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
    pub(super) fn splice(&self, f: &mut Function, k: usize, base: u32) {
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

impl Fuser {
    pub(super) fn memory(&self) -> u32 {
        self.shape.memories
    }

    /// Whether the bulk copies are appended (and so take function indices).
    pub(super) fn bulk(&self) -> bool {
        self.shape.memory0_is_32
    }

    /// The fused functions this module gets, in table order: the bulk copies only when
    /// memory 0 allows them.
    pub(super) fn appended(&self) -> impl Iterator<Item = &'static AbiFunction> + '_ {
        abi::fused().filter(|f| f.fusion == Fusion::Memory || self.bulk())
    }
}

impl Appends for Fuser {
    const SECTIONS: &'static [SectionId] = &[
        SectionId::Type,
        SectionId::Function,
        SectionId::Memory,
        SectionId::Export,
        SectionId::Code,
    ];

    fn written(&mut self) -> &mut Vec<SectionId> {
        &mut self.emitted
    }

    fn add_types(&self, types: &mut TypeSection) {
        for (params, results) in fused_signatures() {
            types
                .ty()
                .function(encoder_types(params), encoder_types(results));
        }
    }

    fn add_functions(&self, funcs: &mut FunctionSection) {
        let sigs = fused_signatures();
        for f in self.appended() {
            let ty = sigs
                .iter()
                .position(|s| *s == (f.params, f.results))
                .expect("every fused signature is listed") as u32;
            funcs.function(self.shape.types + ty);
        }
    }

    fn add_memories(&self, memories: &mut MemorySection) {
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
        for (index, name) in &self.names.global_exports {
            exports.export(name, ExportKind::Global, *index);
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
}

type Result<T> = std::result::Result<T, ReencodeError<std::convert::Infallible>>;

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

    reencode_appending!();
}
