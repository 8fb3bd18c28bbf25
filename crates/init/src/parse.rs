//! Reading a component: its top-level sections, index spaces, core modules
//! and their state, and everything a snapshot cannot represent (refused with
//! the reason, before anything runs).

use anyhow::{Context, Result, bail};
use std::ops::Range;
use wasmparser::{
    CanonicalFunction, Chunk, ComponentAlias, ComponentExternalKind, ComponentInstance,
    ComponentOuterAliasKind, ComponentTypeRef, Encoding, ExternalKind, Instance, Operator, Parser,
    Payload, TypeRef, ValType, WasmFeatures,
};

/// Prefix of every export this crate adds to a module; an input that already
/// uses it is refused.
pub(crate) const EXPORT_PREFIX: &str = "componentize-init:";

/// One top-level section of the component, in order.
#[derive(Debug, Clone)]
pub(crate) enum Section {
    /// A core module section: the index of the module.
    Module(u32),
    /// Any other section: its id and the range of its contents.
    Raw { id: u8, range: Range<usize> },
}

/// Sizes of the component's index spaces (at the end of the component).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Counts {
    pub core_funcs: u32,
    pub core_memories: u32,
    pub core_instances: u32,
    pub core_modules: u32,
    pub types: u32,
    pub funcs: u32,
    pub instances: u32,
}

/// An export of a component (the top level or a nested one).
#[derive(Debug, Clone)]
pub(crate) struct Export {
    pub name: String,
    pub kind: ComponentExternalKind,
    /// The index of the exported item in `kind`'s index space.
    pub index: u32,
    /// Whether the export ascribes a type to the item.
    pub ascribed: bool,
    /// Index in `kind`'s index space that the export itself introduces.
    pub introduced: u32,
    /// Ordinal of its section (see [`for_each_section`]).
    pub section: usize,
    /// Position of the export in its section.
    pub position: usize,
}

/// An import of a component.
#[derive(Debug, Clone)]
pub(crate) struct Import {
    pub name: String,
    pub kind: ComponentExternalKind,
    /// Index in `kind`'s index space that the import introduces.
    pub introduced: u32,
    /// Ordinal of its section.
    pub section: usize,
    /// Position of the import in its section.
    pub position: usize,
}

/// A named item of an instance expression: a `with` argument of an
/// instantiation, or an export of an instance made of exports.
#[derive(Debug, Clone)]
pub(crate) struct Arg {
    pub name: String,
    pub kind: ComponentExternalKind,
    pub index: u32,
}

/// How a component instance comes to be.
#[derive(Debug, Clone)]
pub(crate) enum InstanceOrigin {
    /// `(instance (instantiate C (with "name" (func N)) ...))`.
    Instantiate {
        component: u32,
        args: Vec<Arg>,
    },
    /// `(instance (export "name" (func N)) ...)`.
    FromExports(Vec<Arg>),
    Imported,
    /// An alias of an instance's export.
    Aliased,
    /// An export, which introduces a new index for the instance it exports.
    Exported,
}

/// A canonical built-in that makes or drops a component-model async
/// handle: what the async census (`census.rs`) counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AsyncBuiltin {
    FutureNew,
    /// `future.drop-readable` or `future.drop-writable`.
    FutureDrop,
    StreamNew,
    /// `stream.drop-readable` or `stream.drop-writable`.
    StreamDrop,
    WaitableSetNew,
    WaitableSetDrop,
    SubtaskDrop,
    /// `canon lower` with the `async` option: a call that returns a
    /// subtask unless it finished at once.
    AsyncLower,
    ErrorContextNew,
    ErrorContextDrop,
}

impl AsyncBuiltin {
    /// The built-in `canon` defines, if it is one of these.
    fn of(canon: &CanonicalFunction) -> Option<AsyncBuiltin> {
        use CanonicalFunction as C;
        Some(match canon {
            C::FutureNew { .. } => AsyncBuiltin::FutureNew,
            C::FutureDropReadable { .. } | C::FutureDropWritable { .. } => AsyncBuiltin::FutureDrop,
            C::StreamNew { .. } => AsyncBuiltin::StreamNew,
            C::StreamDropReadable { .. } | C::StreamDropWritable { .. } => AsyncBuiltin::StreamDrop,
            C::WaitableSetNew => AsyncBuiltin::WaitableSetNew,
            C::WaitableSetDrop => AsyncBuiltin::WaitableSetDrop,
            C::SubtaskDrop => AsyncBuiltin::SubtaskDrop,
            C::Lower { options, .. } if options.contains(&wasmparser::CanonicalOption::Async) => {
                AsyncBuiltin::AsyncLower
            }
            C::ErrorContextNew { .. } => AsyncBuiltin::ErrorContextNew,
            C::ErrorContextDrop => AsyncBuiltin::ErrorContextDrop,
            _ => return None,
        })
    }
}

/// How a core instance comes to be.
#[derive(Debug, Clone)]
pub(crate) enum CoreInstance {
    /// `(instance (instantiate M (with "name" (instance N)) ...))`: the
    /// arguments.
    Instantiate(Vec<(String, u32)>),
    /// `(instance (export "name" (func N)) ...)`.
    FromExports(Vec<(String, ExternalKind, u32)>),
}

/// How a component (an item of the component index space) comes to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ComponentOrigin {
    /// A nested component section.
    Nested,
    Imported,
    /// An alias (of an instance's export or of an outer component).
    Aliased,
    Exported,
}

/// An item of an index space: how it is made and where.
#[derive(Debug, Clone)]
pub(crate) struct Item<O> {
    pub origin: O,
    /// Ordinal of its section.
    pub section: usize,
    /// Position in its section (0 for a nested component section).
    pub position: usize,
}

/// The index spaces of one component, the top level or a nested one, as
/// its sections define them (nested components and modules are not
/// entered).
#[derive(Debug, Default)]
pub(crate) struct Spaces {
    pub counts: Counts,
    /// Every component instance, by index.
    pub instances: Vec<Item<InstanceOrigin>>,
    /// Every component, by index.
    pub components: Vec<Item<ComponentOrigin>>,
    pub imports: Vec<Import>,
    pub exports: Vec<Export>,
    /// Aliases of an instance's export: (instance, export name).
    pub instance_aliases: Vec<(u32, String)>,
    /// Every core function, by index: the async built-in it is, if any.
    pub core_builtins: Vec<Option<AsyncBuiltin>>,
    /// Every core instance, by index.
    pub core_instances: Vec<CoreInstance>,
}

impl Spaces {
    /// Records what the section `payload`, whose ordinal is `section`,
    /// adds to the index spaces.
    fn add(&mut self, section: usize, payload: &Payload<'_>) -> Result<()> {
        let at = |position: usize| (section, position);
        match payload {
            Payload::ModuleSection { .. } => self.counts.core_modules += 1,
            Payload::ComponentSection { .. } => {
                self.add_component(ComponentOrigin::Nested, at(0));
            }
            Payload::InstanceSection(reader) => {
                for instance in reader.clone() {
                    self.core_instances.push(match instance? {
                        Instance::Instantiate { args, .. } => CoreInstance::Instantiate(
                            args.iter().map(|a| (a.name.to_string(), a.index)).collect(),
                        ),
                        Instance::FromExports(exports) => CoreInstance::FromExports(
                            exports
                                .iter()
                                .map(|e| (e.name.to_string(), e.kind, e.index))
                                .collect(),
                        ),
                    });
                    self.counts.core_instances += 1;
                }
            }
            Payload::ComponentTypeSection(reader) => self.counts.types += reader.count(),
            Payload::ComponentInstanceSection(reader) => {
                for (position, instance) in reader.clone().into_iter().enumerate() {
                    let origin = match instance? {
                        ComponentInstance::Instantiate {
                            component_index,
                            args,
                        } => InstanceOrigin::Instantiate {
                            component: component_index,
                            args: args
                                .iter()
                                .map(|a| Arg {
                                    name: a.name.to_string(),
                                    kind: a.kind,
                                    index: a.index,
                                })
                                .collect(),
                        },
                        ComponentInstance::FromExports(exports) => InstanceOrigin::FromExports(
                            exports
                                .iter()
                                .map(|e| Arg {
                                    name: e.name.name.to_string(),
                                    kind: e.kind,
                                    index: e.index,
                                })
                                .collect(),
                        ),
                    };
                    self.add_instance(origin, at(position));
                }
            }
            Payload::ComponentAliasSection(reader) => {
                for (position, alias) in reader.clone().into_iter().enumerate() {
                    match alias? {
                        ComponentAlias::InstanceExport {
                            kind,
                            instance_index,
                            name,
                        } => {
                            self.instance_aliases
                                .push((instance_index, name.to_string()));
                            self.add_item(kind, Via::Alias, at(position));
                        }
                        ComponentAlias::CoreInstanceExport { kind, .. } => match kind {
                            ExternalKind::Func | ExternalKind::FuncExact => {
                                self.add_core_func(None)
                            }
                            ExternalKind::Memory => self.counts.core_memories += 1,
                            _ => {}
                        },
                        ComponentAlias::Outer { kind, .. } => match kind {
                            ComponentOuterAliasKind::CoreModule => self.counts.core_modules += 1,
                            ComponentOuterAliasKind::Type => self.counts.types += 1,
                            ComponentOuterAliasKind::Component => {
                                self.add_component(ComponentOrigin::Aliased, at(position));
                            }
                            ComponentOuterAliasKind::CoreType => {}
                        },
                    }
                }
            }
            Payload::ComponentCanonicalSection(reader) => {
                for func in reader.clone() {
                    match func? {
                        CanonicalFunction::Lift { .. } => self.counts.funcs += 1,
                        other => self.add_core_func(AsyncBuiltin::of(&other)),
                    }
                }
            }
            Payload::ComponentImportSection(reader) => {
                for (position, import) in reader.clone().into_iter().enumerate() {
                    let import = import?;
                    let kind = match import.ty {
                        ComponentTypeRef::Module(_) => ComponentExternalKind::Module,
                        ComponentTypeRef::Func(_) => ComponentExternalKind::Func,
                        ComponentTypeRef::Value(_) => ComponentExternalKind::Value,
                        ComponentTypeRef::Type(_) => ComponentExternalKind::Type,
                        ComponentTypeRef::Instance(_) => ComponentExternalKind::Instance,
                        ComponentTypeRef::Component(_) => ComponentExternalKind::Component,
                    };
                    let introduced = self.add_item(kind, Via::Import, at(position));
                    self.imports.push(Import {
                        name: import.name.name.to_string(),
                        kind,
                        introduced,
                        section,
                        position,
                    });
                }
            }
            Payload::ComponentExportSection(reader) => {
                for (position, export) in reader.clone().into_iter().enumerate() {
                    let export = export?;
                    let introduced = self.add_item(export.kind, Via::Export, at(position));
                    self.exports.push(Export {
                        name: export.name.name.to_string(),
                        kind: export.kind,
                        index: export.index,
                        ascribed: export.ty.is_some(),
                        introduced,
                        section,
                        position,
                    });
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Adds an item of `kind` that an import, alias or export (`via`)
    /// introduces and returns its index. Values have no index space here:
    /// init refuses them.
    fn add_item(&mut self, kind: ComponentExternalKind, via: Via, at: (usize, usize)) -> u32 {
        let counter = match kind {
            ComponentExternalKind::Func => &mut self.counts.funcs,
            ComponentExternalKind::Type => &mut self.counts.types,
            ComponentExternalKind::Module => &mut self.counts.core_modules,
            ComponentExternalKind::Value => return 0,
            ComponentExternalKind::Instance => {
                let origin = match via {
                    Via::Import => InstanceOrigin::Imported,
                    Via::Alias => InstanceOrigin::Aliased,
                    Via::Export => InstanceOrigin::Exported,
                };
                return self.add_instance(origin, at);
            }
            ComponentExternalKind::Component => {
                let origin = match via {
                    Via::Import => ComponentOrigin::Imported,
                    Via::Alias => ComponentOrigin::Aliased,
                    Via::Export => ComponentOrigin::Exported,
                };
                return self.add_component(origin, at);
            }
        };
        *counter += 1;
        *counter - 1
    }

    fn add_core_func(&mut self, builtin: Option<AsyncBuiltin>) {
        self.core_builtins.push(builtin);
        self.counts.core_funcs += 1;
    }

    fn add_instance(&mut self, origin: InstanceOrigin, (section, position): (usize, usize)) -> u32 {
        self.instances.push(Item {
            origin,
            section,
            position,
        });
        self.counts.instances += 1;
        self.counts.instances - 1
    }

    fn add_component(
        &mut self,
        origin: ComponentOrigin,
        (section, position): (usize, usize),
    ) -> u32 {
        self.components.push(Item {
            origin,
            section,
            position,
        });
        self.components.len() as u32 - 1
    }
}

/// What introduces an item that is neither defined nor instantiated.
#[derive(Debug, Clone, Copy)]
enum Via {
    Import,
    Alias,
    Export,
}

/// The index spaces of the component `wasm` (a nested component's bytes).
pub(crate) fn spaces(wasm: &[u8]) -> Result<Spaces> {
    let mut spaces = Spaces::default();
    for_each_section(wasm, |section, payload| spaces.add(section, &payload))?;
    Ok(spaces)
}

/// Calls `each` with the ordinal and the payload of every section of the
/// component `wasm`, in order, without entering nested modules and
/// components (whose payload is their whole section). Ordinals count every
/// section, custom ones included: they are the positions in
/// [`ComponentInfo::sections`].
pub(crate) fn for_each_section<'a>(
    wasm: &'a [u8],
    mut each: impl FnMut(usize, Payload<'a>) -> Result<()>,
) -> Result<()> {
    let mut parser = Parser::new(0);
    let mut offset = 0usize;
    let mut ordinal = 0usize;
    loop {
        let (consumed, payload) = match parser.parse(&wasm[offset..], true)? {
            Chunk::Parsed { consumed, payload } => (consumed, payload),
            Chunk::NeedMoreData(_) => bail!("the component is truncated"),
        };
        offset += consumed;
        match &payload {
            Payload::Version { encoding, .. } => {
                if *encoding != Encoding::Component {
                    bail!("the input is not a WebAssembly component");
                }
                continue;
            }
            Payload::End(_) => return Ok(()),
            Payload::ModuleSection {
                unchecked_range, ..
            }
            | Payload::ComponentSection {
                unchecked_range, ..
            } => offset += (unchecked_range.end - unchecked_range.start) as usize,
            _ => {}
        }
        each(ordinal, payload)?;
        ordinal += 1;
    }
}

/// A defined global of a module.
#[derive(Debug, Clone, Copy)]
pub(crate) struct GlobalInfo {
    /// Index in the module's global index space (imports first).
    pub index: u32,
    pub ty: wasmparser::GlobalType,
    /// The initial value when it is a plain `i32.const`.
    pub init_i32: Option<i32>,
}

/// A defined memory of a module.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MemoryInfo {
    /// Index in the module's memory index space (imports first).
    pub index: u32,
    pub ty: wasmparser::MemoryType,
}

/// A core module of the component.
#[derive(Debug, Clone)]
pub(crate) struct ModuleInfo {
    /// Byte range of the module in the component.
    pub range: Range<usize>,
    /// A name for messages: `core module 3 (libc.so)`.
    pub label: String,
    /// The core instance created from it, if any.
    pub instance: Option<u32>,
    /// Defined globals (mutable or not).
    pub globals: Vec<GlobalInfo>,
    /// Defined memories.
    pub memories: Vec<MemoryInfo>,
    /// Exports: name, kind, index.
    pub exports: Vec<(String, ExternalKind, u32)>,
    /// Type of each function in the function index space (imports first), as
    /// (params, results).
    pub func_types: Vec<(Vec<ValType>, Vec<ValType>)>,
    /// The imported functions, in index order: (module, name, type index).
    pub func_imports: Vec<(String, String, u32)>,
    /// Imported and defined globals: the index a new global would get.
    pub global_count: u32,
    /// What a snapshot of this module cannot represent, if instantiated.
    pub problems: Vec<String>,
    /// The first thing in the module that Winch cannot compile (a feature
    /// and where it is used), if any.
    pub winch_blocker: Option<String>,
    /// How many functions it defines (has code for).
    pub defined_funcs: usize,
}

impl ModuleInfo {
    /// Mutable defined globals: the state to snapshot.
    pub fn mutable_globals(&self) -> impl Iterator<Item = &GlobalInfo> {
        self.globals.iter().filter(|g| g.ty.mutable)
    }

    /// Whether an instance of this module carries state to read.
    pub fn has_state(&self) -> bool {
        self.mutable_globals().next().is_some() || !self.memories.is_empty()
    }

    /// The index of the global exported as `name`.
    pub fn exported_global(&self, name: &str) -> Option<u32> {
        self.exports
            .iter()
            .find(|(n, kind, _)| n == name && *kind == ExternalKind::Global)
            .map(|(_, _, index)| *index)
    }

    /// Whether the module exports the function `name` with this signature.
    pub fn exported_func(&self, name: &str, params: &[ValType], results: &[ValType]) -> bool {
        self.exports.iter().any(|(n, kind, index)| {
            n == name
                && *kind == ExternalKind::Func
                && self
                    .func_types
                    .get(*index as usize)
                    .is_some_and(|(p, r)| p == params && r == results)
        })
    }
}

/// What [`parse`] learns about a component.
#[derive(Debug)]
pub(crate) struct ComponentInfo {
    pub sections: Vec<Section>,
    pub modules: Vec<ModuleInfo>,
    pub spaces: Spaces,
}

impl ComponentInfo {
    /// How many functions its core modules define.
    pub fn defined_functions(&self) -> usize {
        self.modules.iter().map(|m| m.defined_funcs).sum()
    }

    /// Why Winch cannot compile the component: the first module that uses a
    /// feature it lacks, naming the feature and where.
    pub fn winch_blocker(&self) -> Option<String> {
        self.modules.iter().find_map(|m| {
            m.winch_blocker
                .as_ref()
                .map(|why| format!("{}: {why}", m.label))
        })
    }
}

fn features() -> WasmFeatures {
    WasmFeatures::all()
}

/// Validates and reads `wasm`, refusing what a snapshot cannot represent.
pub(crate) fn parse(wasm: &[u8]) -> Result<ComponentInfo> {
    if !wasmparser::Parser::is_component(wasm) {
        if wasmparser::Parser::is_core_wasm(wasm) {
            bail!("the input is a core wasm module; init works on components");
        }
        bail!("the input is not a WebAssembly component");
    }
    wasmparser::Validator::new_with_features(features())
        .validate_all(wasm)
        .context("the input component does not validate")?;

    let module_names = core_module_names(wasm)?;
    let mut info = ComponentInfo {
        sections: Vec::new(),
        modules: Vec::new(),
        spaces: Spaces::default(),
    };
    for_each_section(wasm, |ordinal, payload| {
        refuse(&payload)?;
        match &payload {
            Payload::ModuleSection {
                unchecked_range, ..
            } => {
                let index = info.spaces.counts.core_modules;
                let range = unchecked_range.start as usize..unchecked_range.end as usize;
                let name = module_names
                    .iter()
                    .find(|(i, _)| *i == index)
                    .map(|(_, n)| n.as_str());
                let label = match name {
                    Some(n) => format!("core module {index} ({n})"),
                    None => format!("core module {index}"),
                };
                let module = parse_module(&wasm[range.clone()], range, label)?;
                info.modules.push(module);
                info.sections.push(Section::Module(index));
            }
            Payload::ComponentSection {
                unchecked_range, ..
            } => {
                let range = unchecked_range.start as usize..unchecked_range.end as usize;
                if nested_has_modules(&wasm[range.clone()])? {
                    bail!(
                        "cannot snapshot: nested component {} contains core modules or \
                         instances, whose state a snapshot cannot capture (only module-free nested \
                         components, like wit-component's type shims, are supported)",
                        info.spaces.components.len()
                    );
                }
                info.sections.push(Section::Raw {
                    id: wasm_encoder::ComponentSectionId::Component as u8,
                    range,
                });
            }
            other => {
                if let Payload::InstanceSection(reader) = other {
                    let first = info.spaces.counts.core_instances;
                    for (i, instance) in reader.clone().into_iter().enumerate() {
                        let index = first + i as u32;
                        if let Instance::Instantiate { module_index, .. } = instance? {
                            let Some(module) = info.modules.get_mut(module_index as usize) else {
                                bail!("core instance {index} instantiates an unknown module");
                            };
                            if let Some(first) = module.instance {
                                bail!(
                                    "cannot snapshot: {} is instantiated twice (core instances \
                                     {first} and {index}); a snapshot has one state per module",
                                    module.label
                                );
                            }
                            module.instance = Some(index);
                        }
                    }
                }
                let Some((id, range)) = other.as_section() else {
                    bail!("internal error: a component payload that is not a section");
                };
                info.sections.push(Section::Raw {
                    id,
                    range: range.start as usize..range.end as usize,
                });
            }
        }
        info.spaces.add(ordinal, &payload)
    })?;

    for module in &info.modules {
        if module.instance.is_some()
            && let Some(problem) = module.problems.first()
        {
            bail!("cannot snapshot: {}: {problem}", module.label);
        }
    }
    Ok(info)
}

/// Refuses the component-level items a snapshot cannot represent: a start
/// function, values, and core modules it does not define itself.
fn refuse(payload: &Payload<'_>) -> Result<()> {
    match payload {
        Payload::ComponentStartSection { .. } => bail!(
            "cannot snapshot: the component has a start function; it would run again on \
             every instantiation of the snapshot, or not at all if removed"
        ),
        Payload::ComponentAliasSection(reader) => {
            for alias in reader.clone() {
                match alias? {
                    ComponentAlias::InstanceExport {
                        kind: ComponentExternalKind::Module,
                        name,
                        ..
                    } => bail!(
                        "cannot snapshot: the component aliases module `{name}` of an \
                         instance; only modules defined in the component can be rewritten"
                    ),
                    ComponentAlias::InstanceExport {
                        kind: ComponentExternalKind::Value,
                        ..
                    } => bail!("cannot snapshot: component values are not supported"),
                    ComponentAlias::Outer {
                        kind: ComponentOuterAliasKind::CoreModule,
                        ..
                    } => bail!("cannot snapshot: the component aliases an outer core module"),
                    _ => {}
                }
            }
        }
        Payload::ComponentImportSection(reader) => {
            for import in reader.clone() {
                let import = import?;
                match import.ty {
                    ComponentTypeRef::Module(_) => bail!(
                        "cannot snapshot: the component imports core module `{}`; only modules \
                         defined in the component can be rewritten",
                        import.name.name
                    ),
                    ComponentTypeRef::Value(_) => bail!(
                        "cannot snapshot: the component imports value `{}`; component values \
                         are not supported",
                        import.name.name
                    ),
                    _ => {}
                }
            }
        }
        Payload::ComponentExportSection(reader) => {
            for export in reader.clone() {
                let export = export?;
                match export.kind {
                    ComponentExternalKind::Value => bail!(
                        "cannot snapshot: the component exports value `{}`; component values \
                         are not supported",
                        export.name.name
                    ),
                    // The export would be the rewritten module (no start
                    // function, emptied data), not the one the component had.
                    ComponentExternalKind::Module => bail!(
                        "cannot snapshot: the component exports core module `{}`; only modules \
                         the component keeps to itself can be rewritten",
                        export.name.name
                    ),
                    _ => {}
                }
            }
        }
        _ => {}
    }
    Ok(())
}

/// Names of core modules from the component's `component-name` section.
fn core_module_names(wasm: &[u8]) -> Result<Vec<(u32, String)>> {
    let mut names = Vec::new();
    for_each_section(wasm, |_, payload| {
        if let Payload::CustomSection(c) = payload
            && let wasmparser::KnownCustom::ComponentName(reader) = c.as_known()
        {
            for name in reader.into_iter().flatten() {
                if let wasmparser::ComponentName::CoreModules(map) = name {
                    for naming in map.into_iter().flatten() {
                        names.push((naming.index, naming.name.to_string()));
                    }
                }
            }
        }
        Ok(())
    })?;
    Ok(names)
}

/// Whether a nested component (recursively) defines or instantiates core
/// modules.
fn nested_has_modules(wasm: &[u8]) -> Result<bool> {
    for payload in Parser::new(0).parse_all(wasm) {
        match payload? {
            Payload::ModuleSection { .. } | Payload::InstanceSection(_) => return Ok(true),
            _ => {}
        }
    }
    Ok(false)
}

/// The sections of a core module: (id, contents range relative to `wasm`).
pub(crate) fn module_sections(wasm: &[u8]) -> Result<Vec<(u8, Range<usize>)>> {
    let mut sections = Vec::new();
    let mut parser = Parser::new(0);
    let mut offset = 0usize;
    loop {
        let (consumed, payload) = match parser.parse(&wasm[offset..], true)? {
            Chunk::Parsed { consumed, payload } => (consumed, payload),
            Chunk::NeedMoreData(_) => bail!("a core module is truncated"),
        };
        let section = payload.as_section();
        let skip = match &payload {
            Payload::CodeSectionStart { size, .. } => Some(*size as usize),
            Payload::End(_) => break,
            _ => None,
        };
        if let Some((id, range)) = section {
            sections.push((id, range.start as usize..range.end as usize));
        }
        offset += consumed;
        if let Some(size) = skip {
            parser.skip_section();
            offset += size;
        }
    }
    Ok(sections)
}

fn parse_module(wasm: &[u8], range: Range<usize>, label: String) -> Result<ModuleInfo> {
    let mut module = ModuleInfo {
        range,
        label,
        instance: None,
        globals: Vec::new(),
        memories: Vec::new(),
        exports: Vec::new(),
        func_types: Vec::new(),
        func_imports: Vec::new(),
        global_count: 0,
        problems: Vec::new(),
        winch_blocker: None,
        defined_funcs: 0,
    };
    let mut types: Vec<(Vec<ValType>, Vec<ValType>)> = Vec::new();
    let mut imported_globals = 0u32;
    let mut imported_memories = 0u32;
    let mut imported_funcs = 0u32;
    let mut func_names: Vec<(u32, String)> = Vec::new();
    let mut bodies = Vec::new();
    for payload in Parser::new(0).parse_all(wasm) {
        match payload? {
            Payload::TypeSection(reader) => {
                for group in reader {
                    for sub in group?.into_types() {
                        types.push(match &sub.composite_type.inner {
                            wasmparser::CompositeInnerType::Func(f) => {
                                (f.params().to_vec(), f.results().to_vec())
                            }
                            _ => {
                                module.winch_blocker.get_or_insert_with(|| {
                                    format!("type {} is a GC type (gc)", types.len())
                                });
                                Default::default()
                            }
                        });
                    }
                }
            }
            Payload::ImportSection(reader) => {
                for import in reader.into_imports() {
                    let import = import?;
                    if import.name.starts_with(EXPORT_PREFIX)
                        || import.module.starts_with(EXPORT_PREFIX)
                    {
                        module.problems.push(format!(
                            "it imports `{}`, a name reserved for componentize-init",
                            import.name
                        ));
                    }
                    match import.ty {
                        TypeRef::Func(t) | TypeRef::FuncExact(t) => {
                            imported_funcs += 1;
                            module.func_imports.push((
                                import.module.to_string(),
                                import.name.to_string(),
                                t,
                            ));
                            module
                                .func_types
                                .push(types.get(t as usize).cloned().unwrap_or_default());
                        }
                        TypeRef::Global(_) => imported_globals += 1,
                        TypeRef::Memory(_) => imported_memories += 1,
                        TypeRef::Tag(_) => {
                            module.winch_blocker.get_or_insert_with(|| {
                                format!("it imports the tag `{}` (exceptions)", import.name)
                            });
                        }
                        _ => {}
                    }
                }
            }
            Payload::FunctionSection(reader) => {
                for t in reader {
                    module
                        .func_types
                        .push(types.get(t? as usize).cloned().unwrap_or_default());
                }
            }
            Payload::MemorySection(reader) => {
                for (i, ty) in reader.into_iter().enumerate() {
                    let ty = ty?;
                    let index = imported_memories + i as u32;
                    if ty.shared {
                        module.problems.push(format!(
                            "memory {index} is shared; shared memories are not supported"
                        ));
                    }
                    if ty.memory64 {
                        module.problems.push(format!(
                            "memory {index} is a 64-bit memory; only 32-bit memories are supported"
                        ));
                    }
                    module.memories.push(MemoryInfo { index, ty });
                }
            }
            Payload::GlobalSection(reader) => {
                for (i, global) in reader.into_iter().enumerate() {
                    let global = global?;
                    let index = imported_globals + i as u32;
                    let ty = global.ty;
                    if ty.mutable {
                        match ty.content_type {
                            ValType::I32 | ValType::I64 | ValType::F32 | ValType::F64 => {}
                            ValType::V128 => module.problems.push(format!(
                                "mutable global {index} has type v128; only i32, i64, f32 and f64 \
                                 mutable globals can be snapshotted"
                            )),
                            ValType::Ref(_) => module.problems.push(format!(
                                "mutable global {index} holds a reference; references cannot be \
                                 snapshotted"
                            )),
                        }
                    }
                    let mut ops = global.init_expr.get_operators_reader();
                    let init_i32 = match (ops.read(), ops.read()) {
                        (Ok(Operator::I32Const { value }), Ok(Operator::End)) => Some(value),
                        _ => None,
                    };
                    module.globals.push(GlobalInfo {
                        index,
                        ty,
                        init_i32,
                    });
                }
            }
            Payload::ExportSection(reader) => {
                for export in reader {
                    let export = export?;
                    if export.name.starts_with(EXPORT_PREFIX) {
                        module.problems.push(format!(
                            "it exports `{}`, a name reserved for componentize-init",
                            export.name
                        ));
                    }
                    module
                        .exports
                        .push((export.name.to_string(), export.kind, export.index));
                }
            }
            Payload::TagSection(_) => {
                module
                    .winch_blocker
                    .get_or_insert_with(|| "it defines exception tags (exceptions)".to_string());
            }
            Payload::CodeSectionEntry(body) => bodies.push(body),
            Payload::CustomSection(c) => {
                if let wasmparser::KnownCustom::Name(reader) = c.as_known() {
                    for name in reader.into_iter().flatten() {
                        if let wasmparser::Name::Function(map) = name {
                            for naming in map.into_iter().flatten() {
                                func_names.push((naming.index, naming.name.to_string()));
                            }
                        }
                    }
                }
            }
            _ => {}
        }
    }
    module.defined_funcs = bodies.len();
    module.global_count = imported_globals + module.globals.len() as u32;
    for (i, body) in bodies.into_iter().enumerate() {
        let func = imported_funcs + i as u32;
        let name = || {
            func_names
                .iter()
                .find(|(i, _)| *i == func)
                .map(|(_, n)| format!(" `{n}`"))
                .unwrap_or_default()
        };
        let mut reader = body.get_operators_reader()?;
        while !reader.eof() {
            let op = reader.read()?;
            if module.winch_blocker.is_none()
                && let proposal = proposal(&op)
                && WINCH_LACKS.contains(&proposal)
            {
                module.winch_blocker = Some(format!(
                    "function {func}{} uses `{}` ({proposal})",
                    name(),
                    operator_name(&op)
                ));
            }
            if let Some(what) = state_mutation(&op) {
                let name = name();
                module.problems.push(format!(
                    "function {func}{name} uses `{what}`, which changes state that a snapshot cannot \
                     hold (tables, dropped segments and GC objects are not captured)"
                ));
                break;
            }
        }
        if module.problems.len() > 8 {
            break;
        }
    }
    Ok(module)
}

/// The proposals of the instructions Winch, wasmtime 48's baseline compiler,
/// cannot compile (wasmtime's own list for it; exceptions are what a C
/// library's setjmp/longjmp compiles to).
const WINCH_LACKS: [&str; 7] = [
    "exceptions",
    "legacy_exceptions",
    "tail_call",
    "gc",
    "function_references",
    "relaxed_simd",
    "stack_switching",
];

/// Generates [`proposal`] and [`operator_name`] from wasmparser's list of
/// every operator and the proposal it belongs to.
macro_rules! define_operator_facts {
    ($( @$proposal:ident $op:ident $({ $($arg:ident: $argty:ty),* })? => $visit:ident ($($ann:tt)*) )*) => {
        /// The proposal that introduced `op` (`mvp`, `exceptions`, ...).
        fn proposal(op: &Operator<'_>) -> &'static str {
            match op {
                $( Operator::$op { .. } => stringify!($proposal), )*
                _ => "unknown",
            }
        }

        /// The text-format name of `op`, for messages (`try_table`).
        fn operator_name(op: &Operator<'_>) -> &'static str {
            match op {
                // `visit_try_table` -> `try_table`.
                $( Operator::$op { .. } => &stringify!($visit)["visit_".len()..], )*
                _ => "an unknown operator",
            }
        }
    };
}
wasmparser::for_each_operator!(define_operator_facts);

/// Instructions whose effect a snapshot cannot represent.
fn state_mutation(op: &Operator<'_>) -> Option<&'static str> {
    Some(match op {
        Operator::TableSet { .. } => "table.set",
        Operator::TableGrow { .. } => "table.grow",
        Operator::TableFill { .. } => "table.fill",
        Operator::TableCopy { .. } => "table.copy",
        Operator::TableInit { .. } => "table.init",
        Operator::ElemDrop { .. } => "elem.drop",
        Operator::DataDrop { .. } => "data.drop",
        Operator::StructSet { .. } => "struct.set",
        Operator::ArraySet { .. } => "array.set",
        Operator::ArrayFill { .. } => "array.fill",
        Operator::ArrayCopy { .. } => "array.copy",
        Operator::ArrayInitData { .. } => "array.init_data",
        Operator::ArrayInitElem { .. } => "array.init_elem",
        _ => return None,
    })
}
