//! Appending items to a module's sections while re-encoding it, shared by the rewrites that
//! add functions, memories, globals or exports ([`crate::fuse`], [`crate::limit`]).
//!
//! - [`Appends`]: a pass's appended items, section by section, and the sections that carry
//!   them so far;
//! - [`emit_missing`]: the appended items whose section the module lacks, as sections of their
//!   own in their binary place (called from `Reencode::intersperse_section_hook`);
//! - `reencode_appending!`: the `Reencode` methods of such a pass, the hook that calls
//!   [`emit_missing`] and, for each section a pass may append to, a parser that copies the
//!   module's entries, then appends the pass's (`append_to_section!`).

use wasm_encoder::{
    CodeSection, ExportSection, FunctionSection, GlobalSection, MemorySection, Module, SectionId,
    TypeSection,
};

/// A re-encoding pass that appends items to some sections; each `add_*` appends the pass's
/// items of one section (none by default).
pub(crate) trait Appends {
    /// The sections the pass appends to, in binary order.
    const SECTIONS: &'static [SectionId];

    /// The sections that already carry the appended items.
    fn written(&mut self) -> &mut Vec<SectionId>;

    fn add_types(&self, _: &mut TypeSection) {}
    fn add_functions(&self, _: &mut FunctionSection) {}
    fn add_memories(&self, _: &mut MemorySection) {}
    fn add_globals(&self, _: &mut GlobalSection) {}
    fn add_exports(&self, _: &mut ExportSection) {}
    fn add_code(&self, _: &mut CodeSection) {}
}

/// Emits, as sections of their own, the appended items whose section the module lacks and
/// whose place comes before `before` (every one left, at the end of the module).
pub(crate) fn emit_missing<A: Appends>(
    pass: &mut A,
    module: &mut Module,
    before: Option<SectionId>,
) {
    for &id in A::SECTIONS {
        if pass.written().contains(&id) || before.is_some_and(|b| order(b) <= order(id)) {
            continue;
        }
        match id {
            SectionId::Type => {
                let mut s = TypeSection::new();
                pass.add_types(&mut s);
                module.section(&s);
            }
            SectionId::Function => {
                let mut s = FunctionSection::new();
                pass.add_functions(&mut s);
                module.section(&s);
            }
            SectionId::Memory => {
                let mut s = MemorySection::new();
                pass.add_memories(&mut s);
                module.section(&s);
            }
            SectionId::Global => {
                let mut s = GlobalSection::new();
                pass.add_globals(&mut s);
                module.section(&s);
            }
            SectionId::Export => {
                let mut s = ExportSection::new();
                pass.add_exports(&mut s);
                module.section(&s);
            }
            SectionId::Code => {
                let mut s = CodeSection::new();
                pass.add_code(&mut s);
                module.section(&s);
            }
            // No pass appends to other sections (`SECTIONS` is a constant of each pass).
            _ => continue,
        }
        pass.written().push(id);
    }
}

/// A section's place in a module's binary order (custom sections go anywhere).
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

/// A `Reencode` section parser (`$method`, e.g. `parse_type_section`) that copies the module's
/// entries, then appends the pass's (`Appends::$add`), and records section `$id` as written.
macro_rules! append_to_section {
    ($method:ident, $section:ident, $reader:ident, $add:ident, $id:ident) => {
        fn $method(
            &mut self,
            section: &mut wasm_encoder::$section,
            reader: wasmparser::$reader<'_>,
        ) -> ::core::result::Result<(), wasm_encoder::reencode::Error<std::convert::Infallible>> {
            wasm_encoder::reencode::utils::$method(self, section, reader)?;
            $crate::sections::Appends::$add(self, section);
            $crate::sections::Appends::written(self).push(wasm_encoder::SectionId::$id);
            Ok(())
        }
    };
}
pub(crate) use append_to_section;

/// The `Reencode` methods every [`Appends`] pass shares, written inside its `impl Reencode`:
/// the hook that emits the appended items whose section the module lacks, and a parser for each
/// section with an `add_*` (one the pass does not append to gets nothing, as `add_*` defaults).
macro_rules! reencode_appending {
    () => {
        fn intersperse_section_hook(
            &mut self,
            module: &mut wasm_encoder::Module,
            _after: Option<wasm_encoder::SectionId>,
            before: Option<wasm_encoder::SectionId>,
        ) -> ::core::result::Result<(), wasm_encoder::reencode::Error<std::convert::Infallible>> {
            $crate::sections::emit_missing(self, module, before);
            Ok(())
        }

        $crate::sections::append_to_section!(
            parse_type_section,
            TypeSection,
            TypeSectionReader,
            add_types,
            Type
        );
        $crate::sections::append_to_section!(
            parse_function_section,
            FunctionSection,
            FunctionSectionReader,
            add_functions,
            Function
        );
        $crate::sections::append_to_section!(
            parse_memory_section,
            MemorySection,
            MemorySectionReader,
            add_memories,
            Memory
        );
        $crate::sections::append_to_section!(
            parse_global_section,
            GlobalSection,
            GlobalSectionReader,
            add_globals,
            Global
        );
        $crate::sections::append_to_section!(
            parse_export_section,
            ExportSection,
            ExportSectionReader,
            add_exports,
            Export
        );
        $crate::sections::append_to_section!(
            parse_code_section,
            CodeSection,
            CodeSectionReader,
            add_code,
            Code
        );
    };
}
pub(crate) use reencode_appending;
