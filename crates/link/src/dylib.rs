//! One dynamic library of the link, from its bytes to the report: its name
//! and origin, and what linking needs to know about it, read from the
//! module: the `dylink.0` `needed` list and export info, the symbols it
//! imports and exports (and whether an export is a definition or just
//! hands on one of its own imports), whether its code uses each imported
//! function, its embedded WIT world and the world exports its bindings
//! leave to other libraries.

use crate::abi::{
    BUILT_IN_LIBDL, CABI_POST, COMPONENT_TYPE_SECTION, DYLINK_SECTION, ENV, ENV_PROVIDED, GOT_FUNC,
    GOT_MEM, GOT_MEM_PROVIDED, INTRINSIC_STUBS_LIBRARY, LIBC, LINKER_CALLED, START, STUBS_LIBRARY,
};
use crate::report::{Library, Origin};
use anyhow::{Context, Result, anyhow, bail};
use componentize_contract::excluded::{EXCLUDED_EXPORTS_SECTION, decode_excluded_exports};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use wasmparser::{
    ConstExpr, Dylink0Subsection, ElementItems, ExternalKind, FuncType, KnownCustom, Operator,
    OperatorsReader, Parser, Payload, SymbolFlags, TypeRef, ValType, Validator, WasmFeatures,
};
use wit_parser::{Resolve, WorldId, WorldItem};

/// A core function type.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct FuncSig {
    pub params: Vec<ValType>,
    pub results: Vec<ValType>,
}

impl FuncSig {
    fn new(params: &[ValType], results: &[ValType]) -> FuncSig {
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
    /// The library's code can reach it: it is called (`call`,
    /// `return_call`), its reference is taken (`ref.func`), it is in an
    /// element segment, or it is exported or the start function. An import
    /// that is none of these is dead: a stub for it is never called.
    pub used: bool,
}

/// The WIT world a library embeds (its `component-type` section).
#[derive(Clone, Debug)]
pub struct Wit {
    pub resolve: Resolve,
    pub world: WorldId,
}

/// A library of the link, with the linking-relevant facts about it.
#[derive(Clone, Debug)]
pub struct Dylib {
    /// Its name in the component (what `needed` entries refer to).
    pub name: String,
    /// The module; `None` for the built-in libdl, whose bytes are private
    /// to wit-component.
    pub bytes: Option<Vec<u8>>,
    pub origin: Origin,
    /// Loadable with `dlopen`.
    pub dl_openable: bool,
    /// `dylink.0` `needed`, duplicates removed, in order.
    pub needed: Vec<String>,
    /// `dylink.0` mem-info: what the library reserves in the memory and
    /// the table.
    pub mem_info: MemInfo,
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
    /// That section's world, decoded.
    pub wit: Option<Wit>,
    /// The names of its world's exports as the component names them (`f`,
    /// `pkg:ns/iface@1.0.0`), in world order.
    pub export_names: Vec<String>,
    /// The world exports these bindings leave to other libraries (their
    /// `componentize-excluded-exports` section), in order.
    pub excluded_exports: Vec<String>,
    /// Names of the world-level functions its WIT world exports; their core
    /// exports are the component's entry points.
    pub world_exports: BTreeSet<String>,
    /// The WIT world has exports of any kind (makes the library a root of
    /// the link, like wit-component's linker counts it).
    pub has_component_exports: bool,
}

/// The `dylink.0` mem-info of a library (all zero without one).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemInfo {
    pub memory_size: u32,
    /// log2 of the memory area's alignment.
    pub memory_alignment: u32,
    pub table_size: u32,
    /// log2 of the table area's alignment.
    pub table_alignment: u32,
}

/// Checks a library's name: one wit-component can link it under.
pub fn check_name(name: &str) -> Result<()> {
    if name.is_empty() {
        bail!("a library needs a name (e.g. `libfoo.so`)");
    }
    if name == STUBS_LIBRARY {
        bail!("`{STUBS_LIBRARY}` is reserved for wit-component's stub library");
    }
    if name == INTRINSIC_STUBS_LIBRARY {
        bail!("`{INTRINSIC_STUBS_LIBRARY}` is reserved for the stubs of missing intrinsics");
    }
    Ok(())
}

/// Checks that `bytes` are a valid core module; `if_component` is the
/// complaint when they are a component instead.
pub fn check_core_module(bytes: &[u8], if_component: &str) -> Result<()> {
    if !bytes.starts_with(b"\0asm") {
        bail!("not a WebAssembly file (no `\\0asm` header)");
    }
    if Parser::is_component(bytes) {
        bail!("{if_component}");
    }
    Validator::new_with_features(WasmFeatures::all())
        .validate_all(bytes)
        .context("is not a valid core wasm module")?;
    Ok(())
}

impl Dylib {
    /// A library that imports and exports nothing.
    fn empty(name: String, origin: Origin) -> Dylib {
        Dylib {
            name,
            bytes: None,
            origin,
            dl_openable: false,
            needed: Vec::new(),
            mem_info: MemInfo::default(),
            funcs: BTreeMap::new(),
            data: BTreeMap::new(),
            func_addrs: BTreeSet::new(),
            tags: BTreeMap::new(),
            namespaces: BTreeSet::new(),
            exports: BTreeMap::new(),
            has_start: false,
            has_world: false,
            wit: None,
            export_names: Vec::new(),
            excluded_exports: Vec::new(),
            world_exports: BTreeSet::new(),
            has_component_exports: false,
        }
    }

    /// Reads and checks the library `name`; errors name it as the `kind`
    /// of input it is ("library", "bindings") and say where it came from.
    pub fn read(kind: &str, name: String, bytes: Vec<u8>, origin: Origin) -> Result<Dylib> {
        let mut lib = Dylib::empty(name, origin);
        lib.inspect(&bytes)
            .with_context(|| format!("{kind} `{}` ({})", lib.name, lib.origin.describe()))?;
        lib.bytes = Some(bytes);
        Ok(lib)
    }

    /// The `libdl.so` wit-component adds for `use_built_in_libdl`,
    /// described by hand (its bytes are private to wit-component): it needs
    /// libc.so, imports `strlen` and `memcmp`, and defines the four dlfcn.h
    /// functions.
    pub fn built_in_libdl() -> Dylib {
        use ValType::I32;
        let f = |p: &[ValType], r: &[ValType]| FuncSig::new(p, r);
        let mut lib = Dylib::empty(BUILT_IN_LIBDL.into(), Origin::BuiltIn { needed_by: None });
        lib.needed = vec![LIBC.into()];
        lib.funcs = [
            ("strlen", f(&[I32], &[I32])),
            ("memcmp", f(&[I32, I32, I32], &[I32])),
        ]
        .into_iter()
        .map(|(n, sig)| {
            let import = FuncImport {
                sig,
                weak: false,
                used: true,
            };
            (n.to_string(), import)
        })
        .collect();
        lib.exports = [
            ("dlopen", f(&[I32, I32], &[I32])),
            ("dlsym", f(&[I32, I32], &[I32])),
            ("dlclose", f(&[I32], &[I32])),
            ("dlerror", f(&[], &[I32])),
        ]
        .into_iter()
        .map(|(n, sig)| {
            let export = Export {
                sig: Sig::Func(sig),
                reexport: false,
                weak: false,
            };
            (n.to_string(), export)
        })
        .collect();
        lib
    }

    /// wit-component's own libdl.so, which its linker appends last.
    pub fn is_built_in(&self) -> bool {
        matches!(self.origin, Origin::BuiltIn { .. })
    }

    /// Whether `sym` is one of the core exports that implement the
    /// library's WIT world exports (`f` and `cabi_post_f` for a world-level
    /// function `f`).
    pub fn is_entry_point(&self, sym: &str) -> bool {
        let base = sym.strip_prefix(CABI_POST).unwrap_or(sym);
        self.world_exports.contains(base) || self.world_exports.contains(sym)
    }

    /// The library as the report lists it.
    pub fn to_library(&self) -> Library {
        Library {
            name: self.name.clone(),
            origin: self.origin.clone(),
            dl_openable: self.dl_openable,
        }
    }

    /// Fills in the facts from the module. Errors do not name the library:
    /// [`read`](Dylib::read) adds that.
    fn inspect(&mut self, bytes: &[u8]) -> Result<()> {
        check_core_module(
            bytes,
            "is a component, not a core module: linking takes core wasm dynamic libraries (`.so` files built with `-shared`, bindings from `componentize generate`)",
        )?;

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
        // Function index of each function imported from `env`, by name.
        let mut env_func_index: BTreeMap<String, u32> = BTreeMap::new();
        // Imported functions (by index) the module's code can reach.
        let mut reached: BTreeSet<u32> = BTreeSet::new();
        let mut imported_func_count = 0u32;

        let func_sig = |types: &[Option<FuncType>], index: u32| -> Result<FuncSig> {
            match types.get(index as usize) {
                Some(Some(ty)) => Ok(FuncSig::from_wasm(ty)),
                _ => bail!("type {index} is not a function type"),
            }
        };

        for payload in Parser::new(0).parse_all(bytes) {
            match payload? {
                Payload::CustomSection(section) => {
                    if section.name().starts_with(COMPONENT_TYPE_SECTION) {
                        self.has_world = true;
                    }
                    if section.name() == EXCLUDED_EXPORTS_SECTION {
                        self.excluded_exports
                            .extend(decode_excluded_exports(section.data())?);
                    }
                    if let KnownCustom::Dylink0(reader) = section.as_known() {
                        has_dylink = true;
                        for sub in reader {
                            match sub
                                .with_context(|| format!("malformed `{DYLINK_SECTION}` section"))?
                            {
                                Dylink0Subsection::Needed(needed) => {
                                    for n in needed {
                                        if !self.needed.iter().any(|x| x == n) {
                                            self.needed.push(n.to_string());
                                        }
                                    }
                                }
                                Dylink0Subsection::MemInfo(m) => {
                                    self.mem_info = MemInfo {
                                        memory_size: m.memory_size,
                                        memory_alignment: m.memory_alignment,
                                        table_size: m.table_size,
                                        table_alignment: m.table_alignment,
                                    };
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
                        let weak = import_weak.contains(&key);
                        match import.ty {
                            TypeRef::Func(ty) => {
                                func_types.push(ty);
                                imported_funcs.push(key);
                                imported_func_count += 1;
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
                        match (import.module, import.ty) {
                            (ENV, _) if ENV_PROVIDED.contains(&import.name) => {}
                            (ENV, TypeRef::Func(ty)) => {
                                let sig = func_sig(&types, ty)?;
                                let import_info = FuncImport {
                                    sig,
                                    weak,
                                    used: false,
                                };
                                self.funcs.insert(import.name.into(), import_info);
                                env_func_index.insert(import.name.into(), imported_func_count - 1);
                            }
                            (ENV, TypeRef::Tag(tag)) => {
                                self.tags.insert(
                                    import.name.into(),
                                    func_sig(&types, tag.func_type_idx)?,
                                );
                            }
                            // Anything else from `env` is left to wit-component,
                            // which reports it.
                            (ENV, _) => {}
                            (GOT_MEM, _) if GOT_MEM_PROVIDED.contains(&import.name) => {}
                            (GOT_MEM, _) => {
                                self.data.insert(import.name.into(), weak);
                            }
                            (GOT_FUNC, _) => {
                                self.func_addrs.insert(import.name.into());
                            }
                            (module, _) => {
                                self.namespaces.insert(module.into());
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
                        let g = g?;
                        global_types.push(g.ty);
                        reach_const(&g.init_expr, &mut reached)?;
                    }
                }
                Payload::ElementSection(reader) => {
                    for element in reader {
                        match element?.items {
                            ElementItems::Functions(funcs) => {
                                for f in funcs {
                                    reached.insert(f?);
                                }
                            }
                            ElementItems::Expressions(_, exprs) => {
                                for e in exprs {
                                    reach_const(&e?, &mut reached)?;
                                }
                            }
                        }
                    }
                }
                Payload::StartSection { func, .. } => {
                    reached.insert(func);
                }
                Payload::CodeSectionEntry(body) => {
                    reach(body.get_operators_reader()?, &mut reached)?;
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
                "is not a dynamic library: it has no `{DYLINK_SECTION}` section (compile with -fPIC and link with -shared)"
            );
        }

        for (_, kind, index) in &exports {
            if *kind == ExternalKind::Func {
                reached.insert(*index);
            }
        }
        for (name, index) in &env_func_index {
            if let Some(import) = self.funcs.get_mut(name) {
                import.used = reached.contains(index);
            }
        }

        for (name, kind, index) in exports {
            if LINKER_CALLED.contains(&name.as_str()) {
                continue;
            }
            if name == START {
                self.has_start = true;
                continue;
            }
            let i = index as usize;
            let out_of_range = || anyhow!("export `{name}` refers to a missing item");
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
            let reexport = forwarded.is_some_and(|(m, n)| m == ENV && *n == name);
            let weak = export_weak.contains(&name);
            self.exports.insert(
                name,
                Export {
                    sig,
                    reexport,
                    weak,
                },
            );
        }

        if self.has_world {
            let decoded = crate::quiet::catch(|| wit_component::metadata::decode(bytes))
                .map_err(|panic| anyhow!("wit-component panicked reading it ({panic})"));
            let (_, bindgen) = decoded
                .and_then(|r| r)
                .context("cannot read its WIT world (`component-type` section)")?;
            let world = &bindgen.resolve.worlds[bindgen.world];
            self.has_component_exports = !world.exports.is_empty();
            for (key, item) in &world.exports {
                if let WorldItem::Function(f) = item {
                    self.world_exports.insert(f.name.clone());
                }
                self.export_names.push(bindgen.resolve.name_world_key(key));
            }
            self.wit = Some(Wit {
                resolve: bindgen.resolve,
                world: bindgen.world,
            });
        }
        Ok(())
    }
}

/// Adds to `reached` the functions `code` calls or takes the reference of.
fn reach(code: OperatorsReader<'_>, reached: &mut BTreeSet<u32>) -> Result<()> {
    for op in code {
        match op? {
            Operator::Call { function_index }
            | Operator::ReturnCall { function_index }
            | Operator::RefFunc { function_index } => {
                reached.insert(function_index);
            }
            _ => {}
        }
    }
    Ok(())
}

/// Adds to `reached` the functions a constant expression takes the
/// reference of.
fn reach_const(expr: &ConstExpr<'_>, reached: &mut BTreeSet<u32>) -> Result<()> {
    reach(expr.get_operators_reader(), reached)
}
