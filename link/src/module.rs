//! What the link stage needs to know about one dynamic library: its `needed`
//! list, the symbols it imports and exports (and whether an export is a
//! definition or just hands on one of its own imports), and whether its
//! embedded WIT world has exports.

use anyhow::{Context, Result, bail};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use wasmparser::{
    Dylink0Subsection, ExternalKind, FuncType, KnownCustom, Parser, Payload, SymbolFlags, TypeRef,
    ValType, Validator, WasmFeatures,
};

/// Imports the linker itself satisfies from the `env` namespace.
const ENV_PROVIDED: &[&str] = &[
    "memory",
    "__indirect_function_table",
    "__memory_base",
    "__table_base",
    "__stack_pointer",
    "__init_stack_pointer",
    "__asyncify_data",
    "__asyncify_state",
    "__wasm_get_stack_pointer",
    "__wasm_set_stack_pointer",
    "__wasm_get_tls_base",
    "__wasm_set_tls_base",
];

/// Data addresses (`GOT.mem`) the linker itself provides.
const GOT_MEM_PROVIDED: &[&str] = &[
    "__heap_base",
    "__heap_end",
    "__stack_high",
    "__stack_low",
    "__wasm_libdl_libraries",
    "__wasm_program_tls_info",
];

/// Exports the linker calls per library; they are not symbols other
/// libraries can import, so several libraries may have them.
const LINKER_CALLED: &[&str] = &[
    "__wasm_apply_data_relocs",
    "__wasm_call_ctors",
    "_initialize",
    "__wasm_library_tls_info",
];

/// The program entry point; at most one library may export it.
pub const START: &str = "_start";

/// A core function type.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct FuncSig {
    pub params: Vec<ValType>,
    pub results: Vec<ValType>,
}

impl FuncSig {
    pub fn new(params: &[ValType], results: &[ValType]) -> FuncSig {
        FuncSig {
            params: params.to_vec(),
            results: results.to_vec(),
        }
    }

    fn from_wasm(ty: &FuncType) -> FuncSig {
        FuncSig::new(ty.params(), ty.results())
    }
}

impl fmt::Display for FuncSig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |v: &[ValType]| {
            v.iter()
                .map(|t| t.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        write!(f, "({})", list(&self.params))?;
        match self.results.as_slice() {
            [] => Ok(()),
            [one] => write!(f, " -> {one}"),
            many => write!(f, " -> ({})", list(many)),
        }
    }
}

/// The type of an exported symbol.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Sig {
    Func(FuncSig),
    Global {
        ty: ValType,
        mutable: bool,
    },
    Tag(FuncSig),
    /// Memories and tables: never symbols, the linker rejects them.
    Other(&'static str),
}

impl Sig {
    /// The type of a data symbol's address, as `GOT.mem` imports expect it.
    pub fn data_address() -> Sig {
        Sig::Global {
            ty: ValType::I32,
            mutable: false,
        }
    }
}

impl fmt::Display for Sig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Sig::Func(sig) => write!(f, "function {sig}"),
            Sig::Global { ty, mutable: false } => write!(f, "global {ty}"),
            Sig::Global { ty, mutable: true } => write!(f, "global mut {ty}"),
            Sig::Tag(sig) => write!(f, "tag {sig}"),
            Sig::Other(kind) => f.write_str(kind),
        }
    }
}

/// One export of a library.
#[derive(Clone, Debug)]
pub struct Export {
    pub sig: Sig,
    /// The export is the library's own import of the same name from `env`,
    /// handed on: it provides nothing, and resolving the import to it would
    /// make it call itself.
    pub reexport: bool,
    /// Marked weak in `dylink.0` (`export-info`).
    pub weak: bool,
}

/// A function imported from `env`.
#[derive(Clone, Debug)]
pub struct FuncImport {
    pub sig: FuncSig,
    pub weak: bool,
}

/// The linking-relevant facts about one dynamic library.
#[derive(Clone, Debug, Default)]
pub struct ModuleInfo {
    /// `dylink.0` `needed`, duplicates removed, in order.
    pub needed: Vec<String>,
    /// Functions imported from `env` (not counting what the linker provides).
    pub funcs: BTreeMap<String, FuncImport>,
    /// Data addresses imported from `GOT.mem`; the flag is "weak".
    pub data: BTreeMap<String, bool>,
    /// Function addresses imported from `GOT.func`.
    pub func_addrs: BTreeSet<String>,
    /// Exception tags imported from `env`.
    pub tags: BTreeMap<String, FuncSig>,
    /// Every other import namespace (adapters such as
    /// `wasi_snapshot_preview1`, WIT interfaces, ...).
    pub namespaces: BTreeSet<String>,
    /// Symbols exported, without the ones the linker calls itself.
    pub exports: BTreeMap<String, Export>,
    /// Exports `_start`.
    pub has_start: bool,
    /// Carries a `component-type` custom section.
    pub has_world: bool,
    /// Names of the world-level functions its WIT world exports; their core
    /// exports are the component's entry points.
    pub world_exports: BTreeSet<String>,
    /// The WIT world has exports of any kind (makes the library a root of
    /// the link, like wit-component's linker counts it).
    pub has_component_exports: bool,
}

/// Reads and checks one library. Errors do not name the library: the
/// caller adds that.
pub fn inspect(bytes: &[u8]) -> Result<ModuleInfo> {
    if !bytes.starts_with(b"\0asm") {
        bail!("not a WebAssembly file (no `\\0asm` header)");
    }
    if Parser::is_component(bytes) {
        bail!(
            "is a component, not a core module: linking takes core wasm dynamic libraries (`.so` files built with `-shared`, bindings from `componentize generate`)"
        );
    }
    Validator::new_with_features(WasmFeatures::all())
        .validate_all(bytes)
        .context("is not a valid core wasm module")?;

    let mut info = ModuleInfo::default();
    let mut has_dylink = false;
    let mut types: Vec<Option<FuncType>> = Vec::new();
    let mut func_types: Vec<u32> = Vec::new();
    let mut global_types: Vec<wasmparser::GlobalType> = Vec::new();
    let mut tag_types: Vec<u32> = Vec::new();
    // (module, name) of each imported function, global and tag, by index.
    let mut imported_funcs: Vec<(String, String)> = Vec::new();
    let mut imported_globals: Vec<(String, String)> = Vec::new();
    let mut imported_tags: Vec<(String, String)> = Vec::new();
    let mut import_weak: BTreeSet<(String, String)> = BTreeSet::new();
    let mut export_weak: BTreeSet<String> = BTreeSet::new();
    let mut exports: Vec<(String, ExternalKind, u32)> = Vec::new();

    let func_sig = |types: &[Option<FuncType>], index: u32| -> Result<FuncSig> {
        match types.get(index as usize) {
            Some(Some(ty)) => Ok(FuncSig::from_wasm(ty)),
            _ => bail!("type {index} is not a function type"),
        }
    };

    for payload in Parser::new(0).parse_all(bytes) {
        match payload? {
            Payload::CustomSection(section) => {
                if section.name().starts_with("component-type") {
                    info.has_world = true;
                }
                if let KnownCustom::Dylink0(reader) = section.as_known() {
                    has_dylink = true;
                    for sub in reader {
                        match sub.context("malformed `dylink.0` section")? {
                            Dylink0Subsection::Needed(needed) => {
                                for n in needed {
                                    if !info.needed.iter().any(|x| x == n) {
                                        info.needed.push(n.to_string());
                                    }
                                }
                            }
                            Dylink0Subsection::ImportInfo(list) => {
                                for i in list {
                                    if i.flags.contains(SymbolFlags::BINDING_WEAK) {
                                        import_weak.insert((i.module.into(), i.field.into()));
                                    }
                                }
                            }
                            Dylink0Subsection::ExportInfo(list) => {
                                for e in list {
                                    if e.flags.contains(SymbolFlags::BINDING_WEAK) {
                                        export_weak.insert(e.name.into());
                                    }
                                }
                            }
                            _ => {}
                        }
                    }
                }
            }
            Payload::TypeSection(reader) => {
                for group in reader {
                    for sub in group?.into_types() {
                        types.push(match sub.composite_type.inner {
                            wasmparser::CompositeInnerType::Func(f) => Some(f),
                            _ => None,
                        });
                    }
                }
            }
            Payload::ImportSection(reader) => {
                for import in reader.into_imports() {
                    let import = import?;
                    let key = (import.module.to_string(), import.name.to_string());
                    match import.ty {
                        TypeRef::Func(ty) => {
                            func_types.push(ty);
                            imported_funcs.push(key);
                        }
                        TypeRef::Global(ty) => {
                            global_types.push(ty);
                            imported_globals.push(key);
                        }
                        TypeRef::Tag(ty) => {
                            tag_types.push(ty.func_type_idx);
                            imported_tags.push(key);
                        }
                        _ => {}
                    }
                    let weak =
                        import_weak.contains(&(import.module.to_string(), import.name.to_string()));
                    match (import.module, import.ty) {
                        ("env", _) if ENV_PROVIDED.contains(&import.name) => {}
                        ("env", TypeRef::Func(ty)) => {
                            let sig = func_sig(&types, ty)?;
                            info.funcs
                                .insert(import.name.into(), FuncImport { sig, weak });
                        }
                        ("env", TypeRef::Tag(tag)) => {
                            info.tags
                                .insert(import.name.into(), func_sig(&types, tag.func_type_idx)?);
                        }
                        // Anything else from `env` is left to wit-component,
                        // which reports it.
                        ("env", _) => {}
                        ("GOT.mem", _) if GOT_MEM_PROVIDED.contains(&import.name) => {}
                        ("GOT.mem", _) => {
                            info.data.insert(import.name.into(), weak);
                        }
                        ("GOT.func", _) => {
                            info.func_addrs.insert(import.name.into());
                        }
                        (module, _) => {
                            info.namespaces.insert(module.into());
                        }
                    }
                }
            }
            Payload::FunctionSection(reader) => {
                for ty in reader {
                    func_types.push(ty?);
                }
            }
            Payload::GlobalSection(reader) => {
                for g in reader {
                    global_types.push(g?.ty);
                }
            }
            Payload::TagSection(reader) => {
                for t in reader {
                    tag_types.push(t?.func_type_idx);
                }
            }
            Payload::ExportSection(reader) => {
                for e in reader {
                    let e = e?;
                    exports.push((e.name.to_string(), e.kind, e.index));
                }
            }
            _ => {}
        }
    }
    if !has_dylink {
        bail!(
            "is not a dynamic library: it has no `dylink.0` section (compile with -fPIC and link with -shared)"
        );
    }

    for (name, kind, index) in exports {
        if LINKER_CALLED.contains(&name.as_str()) {
            continue;
        }
        if name == START {
            info.has_start = true;
            continue;
        }
        let i = index as usize;
        let out_of_range = || anyhow::anyhow!("export `{name}` refers to a missing item");
        let (sig, forwarded) = match kind {
            ExternalKind::Func => (
                Sig::Func(func_sig(
                    &types,
                    *func_types.get(i).ok_or_else(out_of_range)?,
                )?),
                imported_funcs.get(i),
            ),
            ExternalKind::Global => {
                let ty = *global_types.get(i).ok_or_else(out_of_range)?;
                (
                    Sig::Global {
                        ty: ty.content_type,
                        mutable: ty.mutable,
                    },
                    imported_globals.get(i),
                )
            }
            ExternalKind::Tag => (
                Sig::Tag(func_sig(
                    &types,
                    *tag_types.get(i).ok_or_else(out_of_range)?,
                )?),
                imported_tags.get(i),
            ),
            ExternalKind::Memory => (Sig::Other("memory"), None),
            ExternalKind::Table => (Sig::Other("table"), None),
            _ => (Sig::Other("other"), None),
        };
        let reexport = forwarded.is_some_and(|(m, n)| m == "env" && *n == name);
        let weak = export_weak.contains(&name);
        info.exports.insert(
            name,
            Export {
                sig,
                reexport,
                weak,
            },
        );
    }

    if info.has_world {
        let decoded = crate::quiet::catch(|| wit_component::metadata::decode(bytes))
            .map_err(|panic| anyhow::anyhow!("wit-component panicked reading it ({panic})"));
        let (_, bindgen) = decoded
            .and_then(|r| r)
            .context("cannot read its WIT world (`component-type` section)")?;
        let world = &bindgen.resolve.worlds[bindgen.world];
        info.has_component_exports = !world.exports.is_empty();
        for item in world.exports.values() {
            if let wit_parser::WorldItem::Function(f) = item {
                info.world_exports.insert(f.name.clone());
            }
        }
    }
    Ok(info)
}

/// Checks an adapter module (e.g. `wasi_snapshot_preview1`): a valid core
/// module, not a component.
pub fn check_adapter(bytes: &[u8]) -> Result<()> {
    if !bytes.starts_with(b"\0asm") {
        bail!("not a WebAssembly file (no `\\0asm` header)");
    }
    if Parser::is_component(bytes) {
        bail!("is a component; an adapter must be a core wasm module");
    }
    Validator::new_with_features(WasmFeatures::all())
        .validate_all(bytes)
        .context("is not a valid core wasm module")?;
    Ok(())
}

/// The `libdl.so` wit-component adds for `use_built_in_libdl`, described by
/// hand (its bytes are private to wit-component): it needs libc.so, imports
/// `strlen` and `memcmp`, and defines the four dlfcn.h functions.
pub fn built_in_libdl() -> ModuleInfo {
    use ValType::I32;
    let f = |p: &[ValType], r: &[ValType]| FuncSig::new(p, r);
    let def = |sig| Export {
        sig: Sig::Func(sig),
        reexport: false,
        weak: false,
    };
    ModuleInfo {
        needed: vec!["libc.so".into()],
        funcs: [
            ("strlen", f(&[I32], &[I32])),
            ("memcmp", f(&[I32, I32, I32], &[I32])),
        ]
        .into_iter()
        .map(|(n, sig)| (n.to_string(), FuncImport { sig, weak: false }))
        .collect(),
        exports: [
            ("dlopen", f(&[I32, I32], &[I32])),
            ("dlsym", f(&[I32, I32], &[I32])),
            ("dlclose", f(&[I32], &[I32])),
            ("dlerror", f(&[], &[I32])),
        ]
        .into_iter()
        .map(|(n, sig)| (n.to_string(), def(sig)))
        .collect(),
        ..ModuleInfo::default()
    }
}
