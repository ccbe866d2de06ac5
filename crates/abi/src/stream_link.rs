//! Links a Plinth PDK's streaming functions to the host at load time.
//!
//! An Extism host refuses a module that imports a namespace it does not know, so a plug-in
//! built with a Plinth PDK does not import `plinth:host/env`'s `stream_read`/`stream_write`:
//! it exports `plinth_stream_read`/`plinth_stream_write` (and `plinth_http_stream_*`) with
//! whole-buffer bodies of its own ([`abi::STREAM_EXPORTS`]). Here each such body is replaced by a call to the matching
//! import, which is added after the module's own imports; the defined functions move up by
//! the number of imports added (calls, `ref.func`, exports, tables, the start function and
//! the name section follow). On Extism the module's own bodies run. See `docs/streaming.md`.

use wasm_encoder::reencode::{utils, Error as ReencodeError, Reencode};
use wasm_encoder::{EntityType, Function, ImportSection, Instruction, SectionId};
use wasmparser::{CompositeInnerType, ExternalKind, Parser, Payload, TypeRef, ValType};

use crate::{self as abi, PLINTH_ENV};

/// One export to link: the defined function's index and the import it calls.
struct Target {
    func: u32,
    import: &'static str,
    ty: u32,
}

/// The module with its streaming exports linked to the host, or `None` when it has none
/// (or is not valid enough to say; wasmtime then reports what is wrong).
pub fn link(wasm: &[u8]) -> Option<Vec<u8>> {
    let targets = find(wasm)?;
    let mut linker = Linker {
        imported_funcs: 0,
        targets,
        import_section_seen: false,
        imports_added: false,
        next_defined: 0,
    };
    linker.imported_funcs = count_imported_funcs(wasm)?;
    let mut module = wasm_encoder::Module::new();
    linker
        .parse_core_module(&mut module, Parser::new(0), wasm)
        .ok()?;
    Some(module.finish())
}

/// The exports to link: defined functions exported under a name of
/// [`abi::STREAM_EXPORTS`] with the type of the import named beside it.
fn find(wasm: &[u8]) -> Option<Vec<Target>> {
    let mut fn_types: Vec<u32> = Vec::new();
    // Each type's (params, results), for function types.
    let mut types: Vec<Option<(Vec<ValType>, Vec<ValType>)>> = Vec::new();
    let mut imported = 0u32;
    let mut exports: Vec<(String, u32)> = Vec::new();
    for payload in Parser::new(0).parse_all(wasm) {
        match payload.ok()? {
            Payload::TypeSection(reader) => {
                for group in reader {
                    for sub in group.ok()?.into_types() {
                        types.push(match &sub.composite_type.inner {
                            CompositeInnerType::Func(f) => {
                                Some((f.params().to_vec(), f.results().to_vec()))
                            }
                            _ => None,
                        });
                    }
                }
            }
            Payload::ImportSection(reader) => {
                for import in reader.into_imports() {
                    if matches!(import.ok()?.ty, TypeRef::Func(_)) {
                        imported += 1;
                    }
                }
            }
            Payload::FunctionSection(reader) => {
                for ty in reader {
                    fn_types.push(ty.ok()?);
                }
            }
            Payload::ExportSection(reader) => {
                for export in reader {
                    let export = export.ok()?;
                    if export.kind == ExternalKind::Func {
                        exports.push((export.name.to_string(), export.index));
                    }
                }
            }
            _ => {}
        }
    }
    let mut targets = Vec::new();
    for (export, import) in abi::STREAM_EXPORTS {
        let Some(&(_, func)) = exports.iter().find(|(name, _)| name == export) else {
            continue;
        };
        let Some(&ty) = func
            .checked_sub(imported)
            .and_then(|i| fn_types.get(i as usize))
        else {
            continue;
        };
        let wanted = abi::find(PLINTH_ENV, import).expect("STREAM_EXPORTS names ABI imports");
        let as_val = |tys: &[abi::Ty]| -> Vec<ValType> {
            tys.iter()
                .map(|t| match t {
                    abi::Ty::I32 => ValType::I32,
                    abi::Ty::I64 => ValType::I64,
                })
                .collect()
        };
        let matches =
            types
                .get(ty as usize)
                .and_then(Option::as_ref)
                .is_some_and(|(params, results)| {
                    *params == as_val(wanted.params) && *results == as_val(wanted.results)
                });
        if matches {
            targets.push(Target { func, import, ty });
        }
    }
    (!targets.is_empty()).then_some(targets)
}

fn count_imported_funcs(wasm: &[u8]) -> Option<u32> {
    let mut n = 0;
    for payload in Parser::new(0).parse_all(wasm) {
        if let Payload::ImportSection(reader) = payload.ok()? {
            for import in reader.into_imports() {
                if matches!(import.ok()?.ty, TypeRef::Func(_)) {
                    n += 1;
                }
            }
        }
    }
    Some(n)
}

struct Linker {
    imported_funcs: u32,
    targets: Vec<Target>,
    import_section_seen: bool,
    imports_added: bool,
    /// Defined functions seen so far in the code section.
    next_defined: u32,
}

impl Linker {
    fn added(&self) -> u32 {
        self.targets.len() as u32
    }

    fn add_imports(&mut self, imports: &mut ImportSection) {
        for t in &self.targets {
            imports.import(PLINTH_ENV, t.import, EntityType::Function(t.ty));
        }
        self.imports_added = true;
    }
}

impl Reencode for Linker {
    type Error = std::convert::Infallible;

    fn function_index(&mut self, func: u32) -> Result<u32, ReencodeError<Self::Error>> {
        Ok(if func >= self.imported_funcs {
            func + self.added()
        } else {
            func
        })
    }

    fn parse_import_section(
        &mut self,
        imports: &mut ImportSection,
        section: wasmparser::ImportSectionReader<'_>,
    ) -> Result<(), ReencodeError<Self::Error>> {
        utils::parse_import_section(self, imports, section)?;
        self.import_section_seen = true;
        self.add_imports(imports);
        Ok(())
    }

    fn intersperse_section_hook(
        &mut self,
        module: &mut wasm_encoder::Module,
        _after: Option<SectionId>,
        before: Option<SectionId>,
    ) -> Result<(), ReencodeError<Self::Error>> {
        // A module without imports gets an import section where one would have been: before
        // the first section that follows it.
        let past_imports = before.is_none_or(|b| b as u8 > SectionId::Import as u8);
        if !self.import_section_seen && !self.imports_added && past_imports {
            let mut imports = ImportSection::new();
            self.add_imports(&mut imports);
            module.section(&imports);
        }
        Ok(())
    }

    fn parse_function_body(
        &mut self,
        code: &mut wasm_encoder::CodeSection,
        func: wasmparser::FunctionBody<'_>,
    ) -> Result<(), ReencodeError<Self::Error>> {
        let index = self.imported_funcs + self.next_defined;
        self.next_defined += 1;
        let Some(pos) = self.targets.iter().position(|t| t.func == index) else {
            return utils::parse_function_body(self, code, func);
        };
        // The added imports come right after the module's own; the body passes its
        // parameters on.
        let import = self.imported_funcs + pos as u32;
        let params =
            abi::find(PLINTH_ENV, self.targets[pos].import).map_or(0, |f| f.params.len() as u32);
        let mut f = Function::new([]);
        for i in 0..params {
            f.instruction(&Instruction::LocalGet(i));
        }
        f.instruction(&Instruction::Call(import));
        f.instruction(&Instruction::End);
        code.function(&f);
        Ok(())
    }

    fn parse_custom_section(
        &mut self,
        module: &mut wasm_encoder::Module,
        section: wasmparser::CustomSectionReader<'_>,
    ) -> Result<(), ReencodeError<Self::Error>> {
        // DWARF describes the code as it was; with bodies replaced it would point backtraces at
        // the wrong lines.
        if section.name().starts_with(".debug_") {
            return Ok(());
        }
        utils::parse_custom_section(self, module, section)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::bodies;

    fn imports_of(wasm: &[u8]) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for payload in Parser::new(0).parse_all(wasm) {
            if let Payload::ImportSection(r) = payload.unwrap() {
                for i in r.into_imports() {
                    let i = i.unwrap();
                    out.push((i.module.to_string(), i.name.to_string()));
                }
            }
        }
        out
    }

    #[test]
    fn a_module_without_the_exports_is_left_alone() {
        let wasm =
            wat::parse_str(r#"(module (func (export "run") (result i32) i32.const 0))"#).unwrap();
        assert!(link(&wasm).is_none());
    }

    #[test]
    fn an_export_of_another_type_is_left_alone() {
        let wasm = wat::parse_str(
            r#"(module (func (export "plinth_stream_read") (param i64 i64) (result i32) i32.const 0))"#,
        )
        .unwrap();
        assert!(link(&wasm).is_none());
    }

    #[test]
    fn the_exports_become_calls_to_added_imports_and_indices_follow() {
        let wasm = wat::parse_str(
            r#"(module
                (import "extism:host/env" "input_length" (func $len (result i64)))
                (memory (export "memory") 1)
                (table 2 funcref)
                (elem (i32.const 0) $run $read)
                (func $read (export "plinth_stream_read") (param i32 i32) (result i32)
                  (local i64) i32.const -7)
                (func $write (export "plinth_stream_write") (param i32 i32) (result i32)
                  i32.const -8)
                (func $run (export "run") (result i32)
                  (call $read (i32.const 0) (i32.const 4))
                  (call $write (i32.const 0) (i32.const 4))
                  i32.add
                  (call_indirect (param i32 i32) (result i32) (i32.const 0) (i32.const 0) (i32.const 1))
                  i32.add))"#,
        )
        .unwrap();
        let linked = link(&wasm).expect("linked");
        wasmparser::Validator::new()
            .validate_all(&linked)
            .expect("valid");
        assert_eq!(
            imports_of(&linked),
            [
                ("extism:host/env".into(), "input_length".into()),
                (PLINTH_ENV.into(), "stream_read".into()),
                (PLINTH_ENV.into(), "stream_write".into()),
            ]
        );
        let bodies = bodies(&linked);
        assert_eq!(
            bodies[0],
            [
                "LocalGet { local_index: 0 }",
                "LocalGet { local_index: 1 }",
                "Call { function_index: 1 }",
                "End"
            ]
        );
        assert_eq!(
            bodies[1],
            [
                "LocalGet { local_index: 0 }",
                "LocalGet { local_index: 1 }",
                "Call { function_index: 2 }",
                "End"
            ]
        );
        // `run` calls the moved functions at their new places.
        assert!(bodies[2].contains(&"Call { function_index: 3 }".to_string()));
        assert!(bodies[2].contains(&"Call { function_index: 4 }".to_string()));
    }

    #[test]
    fn http_stream_exports_are_linked_with_their_own_types() {
        let wasm = wat::parse_str(
            r#"(module
                (memory (export "memory") 1)
                (func (export "plinth_http_stream_read") (param i64 i32 i32) (result i32)
                  i32.const -1)
                (func (export "plinth_http_stream_close") (param i64))
                ;; The right name with another type stays as it is.
                (func (export "plinth_http_stream_start") (param i32) (result i64) i64.const 0))"#,
        )
        .unwrap();
        let linked = link(&wasm).expect("linked");
        wasmparser::Validator::new()
            .validate_all(&linked)
            .expect("valid");
        assert_eq!(
            imports_of(&linked),
            [
                (PLINTH_ENV.into(), "http_stream_read".into()),
                (PLINTH_ENV.into(), "http_stream_close".into()),
            ]
        );
        let bodies = bodies(&linked);
        assert_eq!(
            bodies[0],
            [
                "LocalGet { local_index: 0 }",
                "LocalGet { local_index: 1 }",
                "LocalGet { local_index: 2 }",
                "Call { function_index: 0 }",
                "End"
            ]
        );
        assert_eq!(
            bodies[1],
            [
                "LocalGet { local_index: 0 }",
                "Call { function_index: 1 }",
                "End"
            ]
        );
        assert_eq!(bodies[2], ["I64Const { value: 0 }", "End"]);
    }

    #[test]
    fn a_module_without_imports_gets_an_import_section() {
        let wasm = wat::parse_str(
            r#"(module
                (memory (export "memory") 1)
                (func (export "plinth_stream_write") (param i32 i32) (result i32) i32.const 0)
                (func (export "run") (result i32) i32.const 0))"#,
        )
        .unwrap();
        let linked = link(&wasm).expect("linked");
        wasmparser::Validator::new()
            .validate_all(&linked)
            .expect("valid");
        assert_eq!(
            imports_of(&linked),
            [(PLINTH_ENV.into(), "stream_write".into())]
        );
    }
}
