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
//! At the component level only the init export goes: the export entry is
//! removed and later references to its index space are renumbered.

use crate::parse::{ComponentInfo, ModuleInfo, Section, TopExport, module_sections};
use crate::snapshot::{GlobalValue, ModuleState};
use anyhow::{Context, Result, bail};
use std::ops::Range;
use wasm_encoder::reencode::{Reencode, ReencodeComponent, RoundtripReencoder};
use wasm_encoder::{
    ConstExpr, DataCountSection, DataSection, GlobalSection, MemorySection, RawSection,
};
use wasmparser::{Chunk, ComponentExternalKind, Parser, Payload};

/// The initializer of a global that starts at `value`.
fn const_expr(value: GlobalValue) -> ConstExpr {
    match value {
        GlobalValue::I32(v) => ConstExpr::i32_const(v),
        GlobalValue::I64(v) => ConstExpr::i64_const(v),
        GlobalValue::F32(v) => ConstExpr::f32_const(wasm_encoder::Ieee32::new(v)),
        GlobalValue::F64(v) => ConstExpr::f64_const(wasm_encoder::Ieee64::new(v)),
    }
}

/// The export to take out of the component.
pub(crate) struct Removal<'a> {
    pub export: &'a TopExport,
}

pub(crate) fn rewrite_component(
    wasm: &[u8],
    info: &ComponentInfo,
    states: &[ModuleState],
    removal: Option<Removal<'_>>,
) -> Result<Vec<u8>> {
    if let Some(r) = &removal
        && !matches!(
            r.export.kind,
            ComponentExternalKind::Func | ComponentExternalKind::Instance
        )
    {
        bail!(
            "cannot remove export `{}`: only function and instance exports can be removed",
            r.export.name
        );
    }
    let mut component = wasm_encoder::Component::new();
    let mut renumber = removal.as_ref().map(|r| Renumber {
        kind: r.export.kind,
        removed: r.export.introduced,
        depth: 0,
        dangling: false,
    });
    let removal_section = removal.as_ref().map(|r| r.export.section);

    let mut parser = Parser::new(0);
    let mut offset = 0usize;
    let mut ordinal = 0usize;
    loop {
        let (consumed, payload) = match parser.parse(&wasm[offset..], true)? {
            Chunk::Parsed { consumed, payload } => (consumed, payload),
            Chunk::NeedMoreData(_) => bail!("the component is truncated"),
        };
        let mut skip = 0usize;
        match &payload {
            Payload::Version { .. } => {
                offset += consumed;
                continue;
            }
            Payload::End(_) => break,
            Payload::ModuleSection {
                unchecked_range, ..
            }
            | Payload::ComponentSection {
                unchecked_range, ..
            } => skip = (unchecked_range.end - unchecked_range.start) as usize,
            _ => {}
        }
        let section = info
            .sections
            .get(ordinal)
            .context("internal error: section count changed")?;
        let after_removal = removal_section.is_some_and(|s| ordinal > s);
        match section {
            Section::Module(index) => {
                let module = &info.modules[*index as usize];
                let bytes = &wasm[module.range.clone()];
                let rewritten;
                let data = if module.instance.is_some() {
                    rewritten = rewrite_module(bytes, module, &states[*index as usize])
                        .with_context(|| format!("rewriting {}", module.label))?;
                    &rewritten[..]
                } else {
                    bytes
                };
                component.section(&RawSection {
                    id: wasm_encoder::ComponentSectionId::CoreModule as u8,
                    data,
                });
            }
            Section::Raw { id, range } => {
                if Some(ordinal) == removal_section {
                    let (Some(r), Some(renumber), Payload::ComponentExportSection(reader)) =
                        (&removal, renumber.as_mut(), payload)
                    else {
                        bail!("internal error: the export to remove is not in an export section");
                    };
                    let mut exports = wasm_encoder::ComponentExportSection::new();
                    for (position, export) in reader.into_iter().enumerate() {
                        let export = export?;
                        if position == r.export.position {
                            continue;
                        }
                        renumber
                            .parse_component_export(&mut exports, export)
                            .map_err(|e| anyhow::anyhow!("renumbering the component: {e}"))?;
                    }
                    if !exports.is_empty() {
                        component.section(&exports);
                    }
                } else if after_removal {
                    let Some(renumber) = renumber.as_mut() else {
                        bail!("internal error: no renumbering state");
                    };
                    renumber
                        .parse_component_payload(&mut component, payload, wasm)
                        .map_err(|e| anyhow::anyhow!("renumbering the component: {e}"))?;
                } else {
                    component.section(&RawSection {
                        id: *id,
                        data: &wasm[range.clone()],
                    });
                }
            }
        }
        offset += consumed + skip;
        ordinal += 1;
    }
    if let (Some(r), Some(renumber)) = (&removal, &renumber)
        && renumber.dangling
    {
        bail!(
            "cannot remove export `{}`: the component refers to it later",
            r.export.name
        );
    }
    Ok(component.finish())
}

/// Renumbers references to one index space after an item of it is removed.
struct Renumber {
    kind: ComponentExternalKind,
    removed: u32,
    depth: u32,
    dangling: bool,
}

impl Renumber {
    fn adjust(&mut self, kind: ComponentExternalKind, index: u32) -> u32 {
        if self.depth > 0 || kind != self.kind {
            return index;
        }
        if index == self.removed {
            self.dangling = true;
            index
        } else if index > self.removed {
            index - 1
        } else {
            index
        }
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

    /// Names of the removed item go; later ones are renumbered. (A name is
    /// not a use: it does not make the removal dangle.)
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
            let index = if self.depth == 0 && kind == self.kind {
                if naming.index == self.removed {
                    continue;
                }
                if naming.index > self.removed {
                    naming.index - 1
                } else {
                    naming.index
                }
            } else {
                naming.index
            };
            out.append(index, naming.name);
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
