//! Instrumentation: make every piece of core state readable from outside.
//!
//! Each instantiated module with state gets extra exports for its mutable
//! globals and memories (`componentize-init:global{N}`,
//! `componentize-init:memory{N}`); the module is rewritten in place (only
//! its export section changes), so no index in the component moves. Then an
//! accessor core module, its instance, the canonical lifts of its functions
//! and an exported component instance ([`ACCESS_EXPORT`]) are appended at
//! the end of the component, where they shift nothing either.
//!
//! The accessor functions, exported from that instance as `f0`, `f1`, ...:
//! - a global: its value (f32/f64 as their bits, so NaN payloads survive the
//!   canonical ABI), lifted as `s32`/`s64`;
//! - a memory, three functions: its size in bytes (`s64`); the 8 bytes at
//!   `ret = (size - 8) & !3` (`s64`); and the whole memory as `list<u8>`,
//!   whose (pointer, length) pair is written at `ret`. The host puts the 8
//!   saved bytes back into its copy, so memory never grows for reading;
//! - libc's reset hooks (see [`Hook`]), lifted straight from its instance;
//! - a module's async census counter (see `census.rs`): its value (`s32`).

use crate::census::{HandleKind, ModuleCensus, counter_export};
use crate::parse::{ComponentInfo, EXPORT_PREFIX, ModuleInfo, Section, module_sections};
use anyhow::Result;
use wasm_encoder::{
    Alias, CanonicalFunctionSection, CanonicalOption, CodeSection, Component,
    ComponentAliasSection, ComponentExportKind, ComponentExportSection, ComponentInstanceSection,
    ComponentTypeSection, ComponentValType, ExportKind, ExportSection, Function, FunctionSection,
    ImportSection, InstanceSection, MemArg, ModuleArg, PrimitiveValType, RawSection, TypeSection,
    ValType,
};

/// Name of the instance of accessor functions in the instrumented component.
pub(crate) const ACCESS_EXPORT: &str = "componentize:init-snapshot/access";

/// A libc function called after init so that no host handle outlives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hook {
    /// `fflush(NULL)`: what the script printed reaches the captured output
    /// now instead of at the first flush after the snapshot.
    Fflush,
    /// `__wasilibc_reset_preopens()`: closes the preopens and clears the
    /// descriptor table (dropping the cached stdin/stdout/stderr streams), so
    /// that the snapshot opens them again at first use.
    ResetPreopens,
    /// `__wasilibc_deinitialize_environ()`: forgets the environment seen
    /// during init; the snapshot reads the runtime's at first use.
    DeinitEnviron,
}

impl Hook {
    pub(crate) const ALL: [Hook; 3] = [Hook::Fflush, Hook::ResetPreopens, Hook::DeinitEnviron];

    pub(crate) fn symbol(self) -> &'static str {
        match self {
            Hook::Fflush => "fflush",
            Hook::ResetPreopens => "__wasilibc_reset_preopens",
            Hook::DeinitEnviron => "__wasilibc_deinitialize_environ",
        }
    }

    fn signature(
        self,
    ) -> (
        &'static [wasmparser::ValType],
        &'static [wasmparser::ValType],
    ) {
        use wasmparser::ValType::I32;
        match self {
            Hook::Fflush => (&[I32], &[I32]),
            Hook::ResetPreopens | Hook::DeinitEnviron => (&[], &[]),
        }
    }
}

/// One accessor function, exported as `f{position}`.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Accessor {
    Global {
        module: u32,
        global: u32,
        ty: wasmparser::ValType,
    },
    MemorySize {
        module: u32,
        memory: u32,
    },
    /// Follows its `MemorySize`.
    MemoryTail,
    /// Follows its `MemoryTail`.
    Memory,
    Hook {
        module: u32,
        hook: Hook,
    },
    /// A module's census counter of `kind`.
    Census {
        kind: HandleKind,
    },
}

/// The instrumented component and what its accessors read.
pub(crate) struct Instrumented {
    pub wasm: Vec<u8>,
    pub accessors: Vec<Accessor>,
}

pub(crate) fn global_export(index: u32) -> String {
    format!("{EXPORT_PREFIX}global{index}")
}

pub(crate) fn memory_export(index: u32) -> String {
    format!("{EXPORT_PREFIX}memory{index}")
}

/// Export names for accessor `i` in [`ACCESS_EXPORT`].
pub(crate) fn accessor_name(i: usize) -> String {
    format!("f{i}")
}

pub(crate) fn instrument(wasm: &[u8], info: &ComponentInfo) -> Result<Instrumented> {
    let censuses: Vec<ModuleCensus> = info
        .modules
        .iter()
        .map(|m| ModuleCensus::plan(info, m))
        .collect();
    let mut component = Component::new();
    for section in &info.sections {
        match section {
            Section::Module(index) => {
                let module = &info.modules[*index as usize];
                let census = &censuses[*index as usize];
                let bytes = &wasm[module.range.clone()];
                if module.instance.is_some() && (module.has_state() || !census.is_empty()) {
                    let counted;
                    let bytes = if census.is_empty() {
                        bytes
                    } else {
                        counted = census.apply(bytes, module)?;
                        &counted
                    };
                    let instrumented = add_state_exports(bytes, module)?;
                    component.section(&RawSection {
                        id: wasm_encoder::ComponentSectionId::CoreModule as u8,
                        data: &instrumented,
                    });
                } else {
                    component.section(&RawSection {
                        id: wasm_encoder::ComponentSectionId::CoreModule as u8,
                        data: bytes,
                    });
                }
            }
            Section::Raw { id, range } => {
                component.section(&RawSection {
                    id: *id,
                    data: &wasm[range.clone()],
                });
            }
        }
    }
    let accessors = append_accessors(&mut component, info, &censuses);
    Ok(Instrumented {
        wasm: component.finish(),
        accessors,
    })
}

/// The module with an export for each mutable global and each memory it
/// defines.
fn add_state_exports(bytes: &[u8], module: &ModuleInfo) -> Result<Vec<u8>> {
    let mut extra: Vec<(String, ExportKind, u32)> = Vec::new();
    for g in module.mutable_globals() {
        extra.push((global_export(g.index), ExportKind::Global, g.index));
    }
    for m in &module.memories {
        extra.push((memory_export(m.index), ExportKind::Memory, m.index));
    }
    let mut out = wasm_encoder::Module::new();
    let mut done = false;
    let emit_extra = |exports: &mut ExportSection| {
        for (name, kind, index) in &extra {
            exports.export(name, *kind, *index);
        }
    };
    for (id, range) in module_sections(bytes)? {
        if id == wasm_encoder::SectionId::Export as u8 {
            let reader = wasmparser::ExportSectionReader::new(wasmparser::BinaryReader::new(
                &bytes[range.clone()],
                range.start as u64,
            ))?;
            let mut exports = ExportSection::new();
            for e in reader {
                let e = e?;
                exports.export(e.name, e.kind.into(), e.index);
            }
            emit_extra(&mut exports);
            out.section(&exports);
            done = true;
            continue;
        }
        if !done && comes_after_exports(id) {
            let mut exports = ExportSection::new();
            emit_extra(&mut exports);
            out.section(&exports);
            done = true;
        }
        out.section(&RawSection {
            id,
            data: &bytes[range],
        });
    }
    if !done {
        let mut exports = ExportSection::new();
        emit_extra(&mut exports);
        out.section(&exports);
    }
    Ok(out.finish())
}

/// Whether a core section must come after the export section.
pub(crate) fn comes_after_exports(id: u8) -> bool {
    use wasm_encoder::SectionId as S;
    [S::Start, S::Element, S::DataCount, S::Code, S::Data]
        .iter()
        .any(|s| *s as u8 == id)
}

fn page_size_log2(ty: &wasmparser::MemoryType) -> i64 {
    i64::from(ty.page_size_log2.unwrap_or(16))
}

/// `memory.size` in bytes, as an i64 on the stack.
fn size_in_bytes(f: &mut Function, memory: u32, log2: i64) {
    f.instructions()
        .memory_size(memory)
        .i64_extend_i32_u()
        .i64_const(log2)
        .i64_shl();
}

/// `(size - 8) & !3` as an i32 on the stack.
fn return_area(f: &mut Function, memory: u32, log2: i64) {
    size_in_bytes(f, memory, log2);
    f.instructions()
        .i64_const(8)
        .i64_sub()
        .i64_const(-4)
        .i64_and()
        .i32_wrap_i64();
}

/// The functions of the accessor module, each exported under its index.
#[derive(Default)]
struct AccessorFuncs {
    types: TypeSection,
    functions: FunctionSection,
    code: CodeSection,
    exports: ExportSection,
}

impl AccessorFuncs {
    /// Adds a function without parameters that returns `results`.
    fn add(&mut self, results: &[ValType], body: &Function) {
        let ty = self.types.len();
        self.types.ty().function([], results.iter().copied());
        let index = self.functions.len();
        self.functions.function(ty);
        self.code.function(body);
        self.exports
            .export(&index.to_string(), ExportKind::Func, index);
    }
}

/// A plain (non-atomic) access to `memory` at `offset` with alignment
/// `2^align`.
fn mem_arg(memory: u32, offset: u64, align: u32) -> MemArg {
    MemArg {
        offset,
        align,
        target: wasm_encoder::MemArgTarget::Memory(memory),
        ordering: None,
    }
}

fn append_accessors(
    component: &mut Component,
    info: &ComponentInfo,
    censuses: &[ModuleCensus],
) -> Vec<Accessor> {
    let counts = info.spaces.counts;
    let mut accessors = Vec::new();
    // The accessor module.
    let mut imports = ImportSection::new();
    let mut funcs = AccessorFuncs::default();
    let mut nglobals = 0u32;
    let mut nmemories = 0u32;
    let mut args: Vec<(String, u32)> = Vec::new();
    // Memories to alias from their instances, in accessor-memory order.
    let mut memory_aliases: Vec<(u32, String)> = Vec::new();

    for (module_index, module) in info.modules.iter().enumerate() {
        let module_index = module_index as u32;
        let Some(instance) = module.instance else {
            continue;
        };
        let kinds = censuses[module_index as usize].kinds();
        if !module.has_state() && kinds.is_empty() {
            continue;
        }
        let name = instance.to_string();
        args.push((name.clone(), instance));
        for g in module.mutable_globals() {
            let val_type = match g.ty.content_type {
                wasmparser::ValType::I32 => ValType::I32,
                wasmparser::ValType::I64 => ValType::I64,
                wasmparser::ValType::F32 => ValType::F32,
                wasmparser::ValType::F64 => ValType::F64,
                // Refused by `parse`.
                _ => continue,
            };
            imports.import(
                &name,
                &global_export(g.index),
                wasm_encoder::GlobalType {
                    val_type,
                    mutable: true,
                    shared: false,
                },
            );
            let mut body = Function::new([]);
            body.instructions().global_get(nglobals);
            let result = match val_type {
                ValType::F32 => {
                    body.instructions().i32_reinterpret_f32();
                    ValType::I32
                }
                ValType::F64 => {
                    body.instructions().i64_reinterpret_f64();
                    ValType::I64
                }
                other => other,
            };
            body.instructions().end();
            nglobals += 1;
            funcs.add(&[result], &body);
            accessors.push(Accessor::Global {
                module: module_index,
                global: g.index,
                ty: g.ty.content_type,
            });
        }
        for m in &module.memories {
            imports.import(
                &name,
                &memory_export(m.index),
                wasm_encoder::MemoryType {
                    minimum: 0,
                    maximum: None,
                    memory64: false,
                    shared: false,
                    page_size_log2: m.ty.page_size_log2,
                },
            );
            let log2 = page_size_log2(&m.ty);
            let mem = nmemories;
            nmemories += 1;
            memory_aliases.push((instance, memory_export(m.index)));

            let mut size = Function::new([]);
            size_in_bytes(&mut size, mem, log2);
            size.instructions().end();
            funcs.add(&[ValType::I64], &size);
            accessors.push(Accessor::MemorySize {
                module: module_index,
                memory: m.index,
            });

            let mut tail = Function::new([]);
            return_area(&mut tail, mem, log2);
            tail.instructions().i64_load(mem_arg(mem, 0, 0)).end();
            funcs.add(&[ValType::I64], &tail);
            accessors.push(Accessor::MemoryTail);

            let mut list = Function::new([(1, ValType::I32)]);
            return_area(&mut list, mem, log2);
            list.instructions()
                .local_set(0)
                .local_get(0)
                .i32_const(0)
                .i32_store(mem_arg(mem, 0, 2));
            list.instructions().local_get(0);
            size_in_bytes(&mut list, mem, log2);
            list.instructions()
                .i32_wrap_i64()
                .i32_store(mem_arg(mem, 4, 2))
                .local_get(0)
                .end();
            funcs.add(&[ValType::I32], &list);
            accessors.push(Accessor::Memory);
        }
        for kind in kinds {
            imports.import(
                &name,
                &counter_export(kind),
                wasm_encoder::GlobalType {
                    val_type: ValType::I32,
                    mutable: true,
                    shared: false,
                },
            );
            let mut body = Function::new([]);
            body.instructions().global_get(nglobals).end();
            nglobals += 1;
            funcs.add(&[ValType::I32], &body);
            accessors.push(Accessor::Census { kind });
        }
    }
    let accessor_funcs = accessors.len();

    // libc's reset hooks: the first instantiated module that exports each.
    for hook in Hook::ALL {
        let (params, results) = hook.signature();
        let found =
            info.modules.iter().enumerate().find(|(_, m)| {
                m.instance.is_some() && m.exported_func(hook.symbol(), params, results)
            });
        if let Some((module, _)) = found {
            accessors.push(Accessor::Hook {
                module: module as u32,
                hook,
            });
        }
    }

    let mut module = wasm_encoder::Module::new();
    module.section(&funcs.types);
    module.section(&imports);
    module.section(&funcs.functions);
    module.section(&funcs.exports);
    module.section(&funcs.code);
    component.section(&wasm_encoder::ModuleSection(&module));

    let accessor_module = counts.core_modules;
    let accessor_instance = counts.core_instances;
    let mut instances = InstanceSection::new();
    instances.instantiate(
        accessor_module,
        args.iter()
            .map(|(name, i)| (name.as_str(), ModuleArg::Instance(*i))),
    );
    component.section(&instances);

    // Core functions to lift and the memories their lifts use.
    let mut aliases = ComponentAliasSection::new();
    let mut hook_names = Vec::new();
    for (i, accessor) in accessors.iter().enumerate() {
        match accessor {
            Accessor::Hook { module, hook } => {
                // `instance` is Some: checked when the hook was found.
                let instance = info.modules[*module as usize].instance.unwrap_or_default();
                hook_names.push((instance, hook.symbol()));
            }
            _ => debug_assert!(i < accessor_funcs),
        }
    }
    let names: Vec<String> = (0..accessor_funcs).map(|i| i.to_string()).collect();
    for name in &names {
        aliases.alias(Alias::CoreInstanceExport {
            instance: accessor_instance,
            kind: ExportKind::Func,
            name,
        });
    }
    for (instance, name) in &hook_names {
        aliases.alias(Alias::CoreInstanceExport {
            instance: *instance,
            kind: ExportKind::Func,
            name,
        });
    }
    for (instance, name) in &memory_aliases {
        aliases.alias(Alias::CoreInstanceExport {
            instance: *instance,
            kind: ExportKind::Memory,
            name,
        });
    }
    component.section(&aliases);

    let mut ctypes = ComponentTypeSection::new();
    let ty_s32 = counts.types;
    ctypes
        .function()
        .params::<_, ComponentValType>([])
        .result(Some(ComponentValType::Primitive(PrimitiveValType::S32)));
    let ty_s64 = counts.types + 1;
    ctypes
        .function()
        .params::<_, ComponentValType>([])
        .result(Some(ComponentValType::Primitive(PrimitiveValType::S64)));
    let ty_bytes = counts.types + 2;
    ctypes
        .defined_type()
        .list(ComponentValType::Primitive(PrimitiveValType::U8));
    let ty_list = counts.types + 3;
    ctypes
        .function()
        .params::<_, ComponentValType>([])
        .result(Some(ComponentValType::Type(ty_bytes)));
    let ty_unit = counts.types + 4;
    ctypes
        .function()
        .params::<_, ComponentValType>([])
        .result(None);
    let ty_fflush = counts.types + 5;
    ctypes
        .function()
        .params([("stream", ComponentValType::Primitive(PrimitiveValType::S32))])
        .result(Some(ComponentValType::Primitive(PrimitiveValType::S32)));
    component.section(&ctypes);

    let mut canon = CanonicalFunctionSection::new();
    let mut next_memory = counts.core_memories;
    for (i, accessor) in accessors.iter().enumerate() {
        let core_func = counts.core_funcs + i as u32;
        match accessor {
            Accessor::Global { ty, .. } => {
                let ty = match ty {
                    wasmparser::ValType::I32 | wasmparser::ValType::F32 => ty_s32,
                    _ => ty_s64,
                };
                canon.lift(core_func, ty, []);
            }
            Accessor::MemorySize { .. } | Accessor::MemoryTail => {
                canon.lift(core_func, ty_s64, []);
            }
            Accessor::Census { .. } => {
                canon.lift(core_func, ty_s32, []);
            }
            Accessor::Memory => {
                canon.lift(core_func, ty_list, [CanonicalOption::Memory(next_memory)]);
                next_memory += 1;
            }
            Accessor::Hook { hook, .. } => {
                let ty = match hook {
                    Hook::Fflush => ty_fflush,
                    _ => ty_unit,
                };
                canon.lift(core_func, ty, []);
            }
        }
    }
    component.section(&canon);

    let item_names: Vec<String> = (0..accessors.len()).map(accessor_name).collect();
    let mut cinstances = ComponentInstanceSection::new();
    cinstances.export_items(item_names.iter().enumerate().map(|(i, n)| {
        (
            n.as_str(),
            ComponentExportKind::Func,
            counts.funcs + i as u32,
        )
    }));
    component.section(&cinstances);

    let mut cexports = ComponentExportSection::new();
    cexports.export(
        ACCESS_EXPORT,
        ComponentExportKind::Instance,
        counts.instances,
        None,
    );
    component.section(&cexports);
    accessors
}
