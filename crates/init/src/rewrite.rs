//! Rewriting the original component with the measured state.
//!
//! Every instantiated module: mutable globals it defines start at their
//! measured values; memories it defines start at their measured size and
//! get active data segments with the measured bytes; every original active
//! data segment becomes an empty passive one (so data indices stay valid and
//! nothing overwrites the snapshot at instantiation); passive segments are
//! kept; the start function is dropped (it already ran: constructors,
//! `__wasm_apply_data_relocs`, `__wasm_init_memory`, wit-component's init
//! module). Uninstantiated modules are copied as they are.
//!
//! At the component level only the init export goes ([`Removal`]), in one
//! of three ways:
//!
//! - a top-level export (the function, or an instance whose only export it
//!   is): the export entry is removed and every later reference to its
//!   index space is renumbered, names included;
//! - a function of an instance made of exports (`(instance (export "f"
//!   (func 3)) ...)`): that entry is dropped;
//! - a function of an instance made by instantiating a shim component, as
//!   wit-component exports every interface (the shim imports each function
//!   and re-exports it with its type): the shim loses the function's import
//!   and export (its own function index space is renumbered) and the
//!   instantiation loses the matching `with` argument.
//!
//! The last two leave every top-level index space as it was (the lifted
//! function stays, unused). Any other shape is refused with the reason,
//! before the init call runs.

use crate::parse::{
    self, Arg, ComponentInfo, ComponentOrigin, InstanceOrigin, ModuleInfo, Section, Spaces,
    for_each_section, module_sections,
};
use crate::run::call::{InitExport, Removes};
use crate::snapshot::{GlobalValue, ModuleState};
use anyhow::{Context, Result, anyhow, bail};
use std::borrow::Cow;
use std::ops::Range;
use wasm_encoder::reencode::{Reencode, ReencodeComponent, RoundtripReencoder};
use wasm_encoder::{
    ComponentSectionId, ConstExpr, DataCountSection, DataSection, GlobalSection, MemorySection,
    RawSection,
};
use wasmparser::{ComponentExternalKind, ComponentInstance, Payload};

/// The initializer of a global that starts at `value`.
fn const_expr(value: GlobalValue) -> ConstExpr {
    match value {
        GlobalValue::I32(v) => ConstExpr::i32_const(v),
        GlobalValue::I64(v) => ConstExpr::i64_const(v),
        GlobalValue::F32(v) => ConstExpr::f32_const(wasm_encoder::Ieee32::new(v)),
        GlobalValue::F64(v) => ConstExpr::f64_const(wasm_encoder::Ieee64::new(v)),
    }
}

/// How the rewrite takes the init export out of the component.
pub(crate) struct Removal {
    /// The init function, for messages.
    function: String,
    cut: Cut,
}

impl Removal {
    /// Plans removing `export` from the component `wasm` (read into
    /// `info`), or refuses with the reason.
    pub(crate) fn plan(wasm: &[u8], info: &ComponentInfo, export: &InitExport) -> Result<Removal> {
        let cut = match &export.removes {
            Removes::Export(name) => cut_export(&info.spaces, name),
            Removes::Member { instance, func } => cut_member(wasm, info, instance, func),
        }
        .map_err(|reason| {
            anyhow!(
                "cannot remove the init export `{}`: {reason:#}; keep it in the output with \
                 --keep-init-export",
                export.function
            )
        })?;
        Ok(Removal {
            function: export.function.clone(),
            cut,
        })
    }
}

/// Changes to the sections of one component (the top level or a nested
/// one), by section ordinal (see [`for_each_section`]).
#[derive(Default)]
struct Cut {
    /// Imports and exports to drop: (section, position in the section).
    items: Vec<(usize, usize)>,
    /// Named items to drop from instance expressions: (section, position of
    /// the instance in the section, name): a `with` argument of an
    /// instantiation, or an export of an instance made of exports.
    entries: Vec<(usize, usize, String)>,
    /// Nested component sections to replace with these bytes.
    components: Vec<(usize, Vec<u8>)>,
    /// The items `items` took out of their index spaces: references after
    /// the first of them are renumbered.
    renumber: Renumber,
}

/// Removing the top-level export `name`.
fn cut_export(spaces: &Spaces, name: &str) -> Result<Cut> {
    let export = spaces
        .exports
        .iter()
        .find(|e| e.name == name)
        .ok_or_else(|| anyhow!("`{name}` is not a top-level export"))?;
    if !matches!(
        export.kind,
        ComponentExternalKind::Func | ComponentExternalKind::Instance
    ) {
        bail!("only function and instance exports can be removed");
    }
    Ok(Cut {
        items: vec![(export.section, export.position)],
        renumber: Renumber::new(vec![(export.kind, export.introduced)]),
        ..Cut::default()
    })
}

/// Removing function `func` from the exported instance `name`.
fn cut_member(wasm: &[u8], info: &ComponentInfo, name: &str, func: &str) -> Result<Cut> {
    let spaces = &info.spaces;
    let export = spaces
        .exports
        .iter()
        .find(|e| e.name == name && e.kind == ComponentExternalKind::Instance)
        .ok_or_else(|| anyhow!("`{name}` is not an exported instance"))?;
    if export.ascribed {
        bail!(
            "the export `{name}` ascribes a type to its instance, which would still name `{func}`"
        );
    }
    // The instance loses the function: nothing but this export may see the
    // instance, under its own index or the one the export introduces.
    let indices = [export.index, export.introduced];
    let is_this = |kind: ComponentExternalKind, index: u32| {
        kind == ComponentExternalKind::Instance && indices.contains(&index)
    };
    if let Some(other) = spaces
        .exports
        .iter()
        .find(|e| is_this(e.kind, e.index) && e.name != name)
    {
        bail!("its instance is exported as `{}` too", other.name);
    }
    if spaces
        .instance_aliases
        .iter()
        .any(|(instance, alias)| indices.contains(instance) && alias == func)
    {
        bail!("the component refers to it through an alias of an export of `{name}`");
    }
    if let Some(user) = instance_using(spaces, is_this) {
        bail!("its instance is an argument of component instance {user}");
    }
    let instance = spaces
        .instances
        .get(export.index as usize)
        .context("internal error: the exported instance is out of range")?;
    match &instance.origin {
        InstanceOrigin::FromExports(entries) => {
            if !entries
                .iter()
                .any(|e| e.name == func && e.kind == ComponentExternalKind::Func)
            {
                bail!("its instance has no function `{func}`");
            }
            Ok(Cut {
                entries: vec![(instance.section, instance.position, func.to_string())],
                ..Cut::default()
            })
        }
        InstanceOrigin::Instantiate { component, args } => {
            let (section, shim, import) = cut_shim(wasm, info, name, *component, func)?;
            if !args
                .iter()
                .any(|a| a.name == import && a.kind == ComponentExternalKind::Func)
            {
                bail!("the instantiation of its component gives no function `{import}`");
            }
            Ok(Cut {
                entries: vec![(instance.section, instance.position, import)],
                components: vec![(section, shim)],
                ..Cut::default()
            })
        }
        InstanceOrigin::Imported => bail!("`{name}` is an imported instance"),
        InstanceOrigin::Aliased => bail!("`{name}` is an export of another instance"),
        InstanceOrigin::Exported => bail!("`{name}` re-exports an instance exported before"),
    }
}

/// The named items of an instance expression.
fn instance_args(origin: &InstanceOrigin) -> impl Iterator<Item = &Arg> {
    let args: &[Arg] = match origin {
        InstanceOrigin::Instantiate { args, .. } | InstanceOrigin::FromExports(args) => args,
        _ => &[],
    };
    args.iter()
}

/// The first instance whose instance expression names an item `is_this`
/// picks (an instantiation argument or an inline export).
fn instance_using(
    spaces: &Spaces,
    is_this: impl Fn(ComponentExternalKind, u32) -> bool,
) -> Option<usize> {
    spaces
        .instances
        .iter()
        .position(|i| instance_args(&i.origin).any(|a| is_this(a.kind, a.index)))
}

/// The nested component `component`, which the exported instance `name`
/// instantiates, without function `func`: its section, its new bytes, and
/// the name of the import that gave it `func`.
fn cut_shim(
    wasm: &[u8],
    info: &ComponentInfo,
    name: &str,
    component: u32,
    func: &str,
) -> Result<(usize, Vec<u8>, String)> {
    let spaces = &info.spaces;
    let shim = format!("`{name}` is an instance of component {component}, which");
    // Changing the component changes every instance of it and its type.
    let instantiations = spaces
        .instances
        .iter()
        .filter(|i| matches!(i.origin, InstanceOrigin::Instantiate { component: c, .. } if c == component))
        .count();
    if instantiations > 1 {
        bail!("{shim} is instantiated {instantiations} times");
    }
    let is_this = |kind: ComponentExternalKind, index: u32| {
        kind == ComponentExternalKind::Component && index == component
    };
    if spaces.exports.iter().any(|e| is_this(e.kind, e.index))
        || instance_using(spaces, is_this).is_some()
    {
        bail!("{shim} the component also exports or passes to another instantiation");
    }
    let definition = spaces
        .components
        .get(component as usize)
        .context("internal error: the instantiated component is out of range")?;
    if definition.origin != ComponentOrigin::Nested {
        bail!("{shim} is imported or aliased rather than defined here");
    }
    let Some(Section::Raw { range, .. }) = info.sections.get(definition.section) else {
        bail!("internal error: the nested component's section is missing");
    };
    let bytes = &wasm[range.clone()];
    let inner = parse::spaces(bytes)?;
    let export = inner
        .exports
        .iter()
        .find(|e| e.name == func && e.kind == ComponentExternalKind::Func)
        .ok_or_else(|| anyhow!("{shim} exports no function `{func}`"))?;
    let import = inner
        .imports
        .iter()
        .find(|i| i.kind == ComponentExternalKind::Func && i.introduced == export.index)
        .ok_or_else(|| anyhow!("{shim} defines `{func}` rather than importing it"))?;
    let cut = Cut {
        items: vec![
            (import.section, import.position),
            (export.section, export.position),
        ],
        renumber: Renumber::new(vec![
            (ComponentExternalKind::Func, import.introduced),
            (ComponentExternalKind::Func, export.introduced),
        ]),
        ..Cut::default()
    };
    let edited = edit(bytes, &cut, &mut |_, module| Ok(Cow::Borrowed(module)))?;
    if edited.dangling {
        bail!("{shim} uses `{func}` for more than its export");
    }
    Ok((definition.section, edited.wasm, import.name.clone()))
}

pub(crate) fn rewrite_component(
    wasm: &[u8],
    info: &ComponentInfo,
    states: &[ModuleState],
    removal: Option<&Removal>,
) -> Result<Vec<u8>> {
    let unchanged = Cut::default();
    let cut = removal.map_or(&unchanged, |r| &r.cut);
    let edited = edit(wasm, cut, &mut |index, bytes| {
        let module = info
            .modules
            .get(index as usize)
            .context("internal error: the module count changed")?;
        if module.instance.is_none() {
            return Ok(Cow::Borrowed(bytes));
        }
        let state = states
            .get(index as usize)
            .context("internal error: a module has no measured state")?;
        let rewritten = rewrite_module(bytes, module, state)
            .with_context(|| format!("rewriting {}", module.label))?;
        Ok(Cow::Owned(rewritten))
    })?;
    if let Some(r) = removal
        && edited.dangling
    {
        bail!(
            "cannot remove the init export `{}`: the component refers to it later; keep it in the \
             output with --keep-init-export",
            r.function
        );
    }
    Ok(edited.wasm)
}

/// A component after [`edit`].
struct Edited {
    wasm: Vec<u8>,
    /// Whether something still refers to an item the cut removed.
    dangling: bool,
}

/// Rewrites the sections of the component `wasm` as `cut` says, and each
/// core module `i` (in order of definition) as `module(i, bytes)` says.
fn edit<'a>(
    wasm: &'a [u8],
    cut: &Cut,
    module: &mut dyn FnMut(u32, &'a [u8]) -> Result<Cow<'a, [u8]>>,
) -> Result<Edited> {
    let mut out = wasm_encoder::Component::new();
    let mut renumber = cut.renumber.clone();
    // References only point backwards: sections up to the first removed
    // item are unchanged.
    let first_removal = cut.items.iter().map(|(section, _)| *section).min();
    let mut modules = 0u32;
    let error = |e| anyhow!("renumbering the component: {e}");
    for_each_section(wasm, |ordinal, payload| {
        let dropped = |position: usize| cut.items.contains(&(ordinal, position));
        let renumbered =
            !renumber.removed.is_empty() && first_removal.is_some_and(|first| ordinal > first);
        match payload {
            Payload::ModuleSection {
                unchecked_range, ..
            } => {
                let bytes = &wasm[unchecked_range.start as usize..unchecked_range.end as usize];
                let data = module(modules, bytes)?;
                modules += 1;
                out.section(&RawSection {
                    id: ComponentSectionId::CoreModule as u8,
                    data: &data,
                });
            }
            // A nested component is copied even where indices move: its
            // indices are its own, and its outer aliases name types and
            // components, which a cut never removes.
            Payload::ComponentSection {
                unchecked_range, ..
            } => {
                let data = match cut.components.iter().find(|(s, _)| *s == ordinal) {
                    Some((_, replacement)) => &replacement[..],
                    None => &wasm[unchecked_range.start as usize..unchecked_range.end as usize],
                };
                out.section(&RawSection {
                    id: ComponentSectionId::Component as u8,
                    data,
                });
            }
            Payload::ComponentImportSection(reader) if cut.items.iter().any(|i| i.0 == ordinal) => {
                let mut imports = wasm_encoder::ComponentImportSection::new();
                for (position, import) in reader.into_iter().enumerate() {
                    let import = import?;
                    if !dropped(position) {
                        let ty = renumber.component_type_ref(import.ty).map_err(error)?;
                        imports.import(import.name, ty);
                    }
                }
                if !imports.is_empty() {
                    out.section(&imports);
                }
            }
            Payload::ComponentExportSection(reader) if cut.items.iter().any(|i| i.0 == ordinal) => {
                let mut exports = wasm_encoder::ComponentExportSection::new();
                for (position, export) in reader.into_iter().enumerate() {
                    let export = export?;
                    if !dropped(position) {
                        renumber
                            .parse_component_export(&mut exports, export)
                            .map_err(error)?;
                    }
                }
                if !exports.is_empty() {
                    out.section(&exports);
                }
            }
            Payload::ComponentInstanceSection(reader)
                if cut.entries.iter().any(|e| e.0 == ordinal) =>
            {
                let mut instances = wasm_encoder::ComponentInstanceSection::new();
                for (position, instance) in reader.into_iter().enumerate() {
                    let dropped = |name: &str| {
                        cut.entries
                            .iter()
                            .any(|(s, p, n)| (*s, *p) == (ordinal, position) && n == name)
                    };
                    let instance = match instance? {
                        ComponentInstance::Instantiate {
                            component_index,
                            args,
                        } => ComponentInstance::Instantiate {
                            component_index,
                            args: args.iter().filter(|a| !dropped(a.name)).cloned().collect(),
                        },
                        ComponentInstance::FromExports(exports) => ComponentInstance::FromExports(
                            exports
                                .iter()
                                .filter(|e| !dropped(e.name.name))
                                .cloned()
                                .collect(),
                        ),
                    };
                    renumber
                        .parse_component_instance(&mut instances, instance)
                        .map_err(error)?;
                }
                out.section(&instances);
            }
            payload if renumbered => renumber
                .parse_component_payload(&mut out, payload, wasm)
                .map_err(error)?,
            payload => {
                let Some((id, range)) = payload.as_section() else {
                    bail!("internal error: a component payload that is not a section");
                };
                out.section(&RawSection {
                    id,
                    data: &wasm[range.start as usize..range.end as usize],
                });
            }
        }
        Ok(())
    })?;
    Ok(Edited {
        wasm: out.finish(),
        dangling: renumber.dangling,
    })
}

/// Renumbers references to index spaces after items of them are removed.
#[derive(Clone, Default)]
struct Renumber {
    /// The removed items: (index space, index).
    removed: Vec<(ComponentExternalKind, u32)>,
    /// How deep in nested components the reencoder is (their indices are
    /// their own).
    depth: u32,
    /// Whether a reference to a removed item was seen.
    dangling: bool,
}

impl Renumber {
    fn new(removed: Vec<(ComponentExternalKind, u32)>) -> Renumber {
        Renumber {
            removed,
            ..Renumber::default()
        }
    }

    /// The new index of item `index` of `kind`, `None` if it is removed.
    fn new_index(&self, kind: ComponentExternalKind, index: u32) -> Option<u32> {
        if self.removed.contains(&(kind, index)) {
            return None;
        }
        let before = self
            .removed
            .iter()
            .filter(|(k, i)| *k == kind && *i < index)
            .count();
        Some(index - before as u32)
    }

    fn adjust(&mut self, kind: ComponentExternalKind, index: u32) -> u32 {
        if self.depth > 0 {
            return index;
        }
        self.new_index(kind, index).unwrap_or_else(|| {
            self.dangling = true;
            index
        })
    }
}

impl Reencode for Renumber {
    type Error = std::convert::Infallible;
}

impl ReencodeComponent for Renumber {
    fn component_instance_index(&mut self, i: u32) -> u32 {
        self.adjust(ComponentExternalKind::Instance, i)
    }

    fn component_func_index(&mut self, i: u32) -> u32 {
        self.adjust(ComponentExternalKind::Func, i)
    }

    fn push_depth(&mut self) {
        self.depth += 1;
    }

    /// Names of removed items go; later ones are renumbered. (A name is not
    /// a use: it does not make the removal dangle.)
    fn parse_custom_component_name_subsection(
        &mut self,
        names: &mut wasm_encoder::ComponentNameSection,
        section: wasmparser::ComponentName<'_>,
    ) -> Result<(), wasm_encoder::reencode::Error<Self::Error>> {
        let (map, kind) = match section {
            wasmparser::ComponentName::Funcs(map) => (map, ComponentExternalKind::Func),
            wasmparser::ComponentName::Instances(map) => (map, ComponentExternalKind::Instance),
            other => {
                return wasm_encoder::reencode::component_utils::parse_custom_component_name_subsection(
                    self, names, other,
                );
            }
        };
        let mut out = wasm_encoder::NameMap::new();
        for naming in map {
            let naming = naming?;
            let index = if self.depth == 0 {
                self.new_index(kind, naming.index)
            } else {
                Some(naming.index)
            };
            if let Some(index) = index {
                out.append(index, naming.name);
            }
        }
        match kind {
            ComponentExternalKind::Func => names.funcs(&out),
            _ => names.instances(&out),
        }
        Ok(())
    }

    fn pop_depth(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }
}

/// Where a new data section goes when a module has none: right after the
/// code section, or after the last standard section.
fn data_insert_point(sections: &[(u8, Range<usize>)]) -> usize {
    let code = wasm_encoder::SectionId::Code as u8;
    if let Some(i) = sections.iter().position(|(id, _)| *id == code) {
        return i + 1;
    }
    sections
        .iter()
        .rposition(|(id, _)| *id != 0)
        .map(|i| i + 1)
        .unwrap_or(sections.len())
}

pub(crate) fn rewrite_module(
    bytes: &[u8],
    module: &ModuleInfo,
    state: &ModuleState,
) -> Result<Vec<u8>> {
    use wasm_encoder::SectionId as S;
    let sections = module_sections(bytes)?;
    let new_segments: usize = state.memories.iter().map(|m| m.segments.len()).sum();
    let has_data = sections.iter().any(|(id, _)| *id == S::Data as u8);
    let insert_at = (!has_data && new_segments > 0).then(|| data_insert_point(&sections));
    let reader = |range: &Range<usize>| {
        wasmparser::BinaryReader::new(&bytes[range.clone()], range.start as u64)
    };
    let imported_memories = module.memories.first().map(|m| m.index).unwrap_or_default();
    let imported_globals = module.globals.first().map(|g| g.index).unwrap_or_default();

    let mut out = wasm_encoder::Module::new();
    for (i, (id, range)) in sections.iter().enumerate() {
        if insert_at == Some(i) {
            out.section(&snapshot_data(None, state)?);
        }
        let id = *id;
        if id == S::Start as u8 {
            continue;
        } else if id == S::Memory as u8 {
            let mut memories = MemorySection::new();
            for (i, ty) in wasmparser::MemorySectionReader::new(reader(range))?
                .into_iter()
                .enumerate()
            {
                let mut ty = RoundtripReencoder.memory_type(ty?)?;
                let index = imported_memories + i as u32;
                if let Some(m) = state.memories.iter().find(|m| m.index == index) {
                    ty.minimum = m.pages;
                    if ty.maximum.is_some_and(|max| max < m.pages) {
                        bail!("memory {index} was measured larger than its maximum");
                    }
                }
                memories.memory(ty);
            }
            out.section(&memories);
        } else if id == S::Global as u8 {
            let mut globals = GlobalSection::new();
            for (i, global) in wasmparser::GlobalSectionReader::new(reader(range))?
                .into_iter()
                .enumerate()
            {
                let global = global?;
                let index = imported_globals + i as u32;
                let ty = RoundtripReencoder.global_type(global.ty)?;
                let init = match state.globals.iter().find(|(g, _)| *g == index) {
                    Some((_, value)) if global.ty.mutable => const_expr(*value),
                    _ => RoundtripReencoder.const_expr(global.init_expr)?,
                };
                globals.global(ty, &init);
            }
            out.section(&globals);
        } else if id == S::DataCount as u8 {
            let mut r = reader(range);
            let count = r.read_var_u32()?;
            let count =
                u32::try_from(count as usize + new_segments).context("too many data segments")?;
            out.section(&DataCountSection { count });
        } else if id == S::Data as u8 {
            out.section(&snapshot_data(
                Some(wasmparser::DataSectionReader::new(reader(range))?),
                state,
            )?);
        } else {
            out.section(&RawSection {
                id,
                data: &bytes[range.clone()],
            });
        }
    }
    if insert_at == Some(sections.len()) {
        out.section(&snapshot_data(None, state)?);
    }
    Ok(out.finish())
}

/// The data section: original segments (active ones emptied and made
/// passive), then the snapshot's active segments.
fn snapshot_data(
    original: Option<wasmparser::DataSectionReader<'_>>,
    state: &ModuleState,
) -> Result<DataSection> {
    let mut data = DataSection::new();
    if let Some(reader) = original {
        for segment in reader {
            let segment = segment?;
            match segment.kind {
                wasmparser::DataKind::Active { .. } => {
                    data.passive(std::iter::empty::<u8>());
                }
                wasmparser::DataKind::Passive => {
                    data.passive(segment.data.iter().copied());
                }
            }
        }
    }
    for memory in &state.memories {
        for range in &memory.segments {
            let offset =
                u32::try_from(range.start).context("a data segment starts beyond 4 GiB")?;
            data.active(
                memory.index,
                &ConstExpr::i32_const(offset as i32),
                memory.image[range.clone()].iter().copied(),
            );
        }
    }
    Ok(data)
}
