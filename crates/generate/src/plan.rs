//! Plan: walk a world and decide everything the module will contain: the
//! `wit_t` metadata tables (in wit-dylib 0.263's registration order, so type
//! indices agree with it), the imports, and which functions are generated.

use crate::abi::{self, RESOURCE_MANGLING, Transmit};
use crate::asyncness::{AsyncChooser, AsyncDirective};
use crate::metadata::{self, Code, FuncRef, Kind, Metadata};
use anyhow::{Result, bail};
use std::collections::{BTreeSet, HashMap};
use wit_parser::abi::{AbiVariant, WasmSignature};
use wit_parser::{
    Function, Handle, InterfaceId, LiveTypes, Resolve, SizeAlign, Type, TypeDefKind, TypeId,
    TypeOwner, WorldId, WorldItem, WorldKey,
};

/// Which view of the types a function is generated against. An interface both
/// imported and exported has two registrations of its types (as in wit-dylib):
/// imports and world-level exports use the first, interface exports the second.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub enum Side {
    Import,
    Export,
}

/// A world import function: the canonical import and its adapter.
pub struct ImportFunc<'a> {
    pub key: Option<&'a WorldKey>,
    pub func: &'a Function,
    /// Index of the `(module, name)` import in [`Plan::host_imports`].
    pub import: usize,
    /// Lowered asynchronously (`[async-lower]`): the adapter takes
    /// `(cx, area)` and returns the subtask status, and a second function
    /// lifts the results out of `area` once the call returns.
    pub is_async: bool,
}

impl ImportFunc<'_> {
    /// The core signature of the host import.
    pub fn signature(&self, resolve: &Resolve) -> WasmSignature {
        let variant = match self.is_async {
            true => AbiVariant::GuestImportAsync,
            false => AbiVariant::GuestImport,
        };
        resolve.wasm_signature(variant, self.func)
    }
}

/// A world export function.
pub struct ExportFunc<'a> {
    pub key: Option<&'a WorldKey>,
    pub func: &'a Function,
    pub side: Side,
    /// For an async (callback ABI) export, the index of its `[task-return]`
    /// import in [`Plan::host_imports`].
    pub task_return: Option<usize>,
}

impl ExportFunc<'_> {
    /// The core signature of the export.
    pub fn signature(&self, resolve: &Resolve) -> WasmSignature {
        let variant = match self.task_return {
            Some(_) => AbiVariant::GuestExportAsync,
            None => AbiVariant::GuestExport,
        };
        resolve.wasm_signature(variant, self.func)
    }
}

/// The item lift and lower functions of one registration of a future or
/// stream type with a payload: `(cx, buffer) -> ()` for one item.
pub struct Payload {
    pub side: Side,
    pub ty: Type,
    transmit: Transmit,
    ordinal: usize,
    function: String,
}

impl Payload {
    /// `[future-lift-N]f` or `[stream-lower-N]f`: `verb` and the type's
    /// place in the first function whose signature holds it.
    pub fn function_name(&self, verb: &str) -> String {
        format!(
            "[{}-{verb}-{}]{}",
            self.transmit.as_str(),
            self.ordinal,
            self.function
        )
    }
}

/// The host intrinsics of one future or stream type: seven consecutive
/// [`Plan::host_imports`] (new, read, write, cancel-read, cancel-write,
/// drop-readable, drop-writable), named after the first function whose
/// signature holds the type, as the canonical ABI names them.
struct TransmitImports {
    first: usize,
    ordinal: usize,
    function: String,
}

/// An exported resource, whose `[dtor]` the module exports.
pub struct ExportedResource<'a> {
    pub key: &'a WorldKey,
    pub id: TypeId,
    pub index: u32,
}

/// A function imported from the host (not from the interpreter).
pub struct HostImport {
    pub module: String,
    pub name: String,
    pub params: Vec<wasm_encoder::ValType>,
    pub results: Vec<wasm_encoder::ValType>,
    /// Whether the metadata holds a pointer to it (resource intrinsics).
    pub in_table: bool,
}

pub struct Plan<'a> {
    pub resolve: &'a Resolve,
    pub world: WorldId,
    pub sizes: SizeAlign,
    pub metadata: Metadata,
    pub host_imports: Vec<HostImport>,
    pub imports: Vec<ImportFunc<'a>>,
    pub exports: Vec<ExportFunc<'a>>,
    pub exported_resources: Vec<ExportedResource<'a>>,
    pub payloads: Vec<Payload>,
    codes: [HashMap<TypeId, Code>; 2],
    transmits: HashMap<TypeId, TransmitImports>,
}

impl<'a> Plan<'a> {
    pub fn new(
        resolve: &'a Resolve,
        world: WorldId,
        async_: &[AsyncDirective],
    ) -> Result<Plan<'a>> {
        check_type_count(resolve.types.len())?;
        let mut sizes = SizeAlign::default();
        sizes.fill(resolve)?;
        let mut plan = Plan {
            resolve,
            world,
            sizes,
            metadata: Metadata::default(),
            host_imports: Vec::new(),
            imports: Vec::new(),
            exports: Vec::new(),
            exported_resources: Vec::new(),
            payloads: Vec::new(),
            codes: [HashMap::new(), HashMap::new()],
            transmits: HashMap::new(),
        };
        plan.check_supported()?;
        let mut chooser = AsyncChooser::new(async_);
        plan.walk(&mut chooser);
        chooser.check()?;
        Ok(plan)
    }

    /// The metadata type code of `ty` as seen from `side`.
    pub fn code(&self, side: Side, ty: &Type) -> Code {
        code_in(&self.codes[side as usize], ty)
    }

    /// Refuses what the generated code cannot carry yet, naming the function
    /// and the type, before anything is emitted.
    fn check_supported(&self) -> Result<()> {
        let resolve = self.resolve;
        let world = &resolve.worlds[self.world];
        let items = world
            .imports
            .iter()
            .map(|i| ("import", i))
            .chain(world.exports.iter().map(|e| ("export", e)));
        for (dir, (key, item)) in items {
            let funcs: Vec<&Function> = match item {
                WorldItem::Function(f) => vec![f],
                WorldItem::Interface { id, .. } => {
                    let iface = &resolve.interfaces[*id];
                    for (_, ty) in iface.types.iter() {
                        if let Some(map) = map_of_handles(resolve, &Type::Id(*ty)) {
                            bail!(
                                "{dir}ed interface `{}` defines type `{}` using {map}, {MAP_OF_HANDLES}",
                                resolve.name_world_key(key),
                                resolve.types[*ty].name.as_deref().unwrap_or("<anonymous>"),
                            );
                        }
                    }
                    iface.functions.values().collect()
                }
                WorldItem::Type { .. } => continue,
            };
            for func in funcs {
                let place = describe(
                    resolve,
                    Some(key).filter(|_| !matches!(item, WorldItem::Function(_))),
                    func,
                );
                let types = func.params.iter().map(|p| &p.ty).chain(func.result.iter());
                for ty in types {
                    if let Some(what) = unsupported_in_signature(resolve, ty) {
                        bail!(
                            "{dir}ed function {place} uses {what}, which the interpreter ABI (wit_dylib.h version 3) has no operations for; remove it from the signature"
                        );
                    }
                    if let Some(map) = map_of_handles(resolve, ty) {
                        bail!("{dir}ed function {place} uses {map}, {MAP_OF_HANDLES}");
                    }
                }
            }
        }
        Ok(())
    }

    fn walk(&mut self, chooser: &mut AsyncChooser<'_>) {
        let resolve = self.resolve;
        let world = &resolve.worlds[self.world];

        // Host imports, in the order wit-dylib imports them: world imports
        // (functions, then resource drops, per item), then the intrinsics of
        // exported resources and the `[task-return]` of async exports, then
        // the built-ins of futures and streams.
        for (key, item) in world.imports.iter() {
            match item {
                WorldItem::Function(func) => {
                    let is_async = chooser.is_async(resolve, None, func, true);
                    self.import_func(None, func, is_async);
                }
                WorldItem::Interface { id, .. } => {
                    for func in resolve.interfaces[*id].functions.values() {
                        let is_async = chooser.is_async(resolve, Some(key), func, true);
                        self.import_func(Some(key), func, is_async);
                    }
                    for ty in resolve.interfaces[*id].types.values() {
                        self.imported_resource(Some(key), *ty);
                    }
                }
                WorldItem::Type { id, .. } => self.imported_resource(None, *id),
            }
        }
        let mut export_resources = HashMap::new();
        for (key, item) in world.exports.iter() {
            match item {
                WorldItem::Function(func) => {
                    let task_return = chooser
                        .is_async(resolve, None, func, false)
                        .then(|| self.task_return(None, func));
                    self.exports.push(ExportFunc {
                        key: None,
                        func,
                        side: Side::Import,
                        task_return,
                    });
                }
                WorldItem::Interface { id, .. } => {
                    for ty in resolve.interfaces[*id].types.values() {
                        if let Some(index) = self.exported_resource(key, *ty) {
                            export_resources.insert(*ty, (key, index));
                        }
                    }
                    for func in resolve.interfaces[*id].functions.values() {
                        let task_return = chooser
                            .is_async(resolve, Some(key), func, false)
                            .then(|| self.task_return(Some(key), func));
                        self.exports.push(ExportFunc {
                            key: Some(key),
                            func,
                            side: Side::Export,
                            task_return,
                        });
                    }
                }
                WorldItem::Type { .. } => {}
            }
        }
        // World-level exports come first in `export_funcs`.
        self.exports.sort_by_key(|e| e.side);
        for (key, item) in world.imports.iter() {
            self.transmit_imports(key, item, "");
        }
        for (key, item) in world.exports.iter() {
            self.transmit_imports(key, item, abi::EXPORT_PREFIX);
        }

        // Types reachable from imports and from world-level exports.
        let mut live = LiveTypes::default();
        let mut owners: HashMap<InterfaceId, &WorldKey> = HashMap::new();
        for (key, item) in world.imports.iter() {
            live.add_world_item(resolve, item);
            if let WorldItem::Interface { id, .. } = item {
                owners.insert(*id, key);
            }
        }
        for item in world.exports.values() {
            if let WorldItem::Function(func) = item {
                live.add_func(resolve, func);
            }
        }
        for id in live.iter() {
            self.register(Side::Import, &owners, id);
        }

        // Exported interfaces see the imported types they use plus their own
        // (a second registration when the interface is also imported).
        let kept = imported_types_used_by_exports(resolve, self.world);
        let mut export_codes: HashMap<TypeId, Code> = self.codes[0]
            .iter()
            .filter(|(id, _)| kept.contains(**id))
            .map(|(id, code)| (*id, *code))
            .collect();
        for (id, (_, index)) in &export_resources {
            export_codes.insert(*id, Code::new(Kind::Own, *index));
        }
        self.codes[1] = export_codes;
        let mut live = LiveTypes::default();
        let mut owners: HashMap<InterfaceId, &WorldKey> = HashMap::new();
        for (key, item) in world.exports.iter() {
            if let WorldItem::Interface { id, .. } = item {
                live.add_world_item(resolve, item);
                owners.insert(*id, key);
            }
        }
        for id in live.iter() {
            if self.codes[1].contains_key(&id) && !export_resources.contains_key(&id) {
                continue;
            }
            self.register(Side::Export, &owners, id);
            if let Some((key, index)) = export_resources.get(&id) {
                self.exported_resources.push(ExportedResource {
                    key,
                    id,
                    index: *index,
                });
            }
        }

        let exports = std::mem::take(&mut self.exports);
        for (which, export) in exports.iter().enumerate() {
            let side = export.side;
            let func = export.func;
            self.metadata.export_funcs.push(metadata::ExportFunc {
                interface: export.key.map(|k| resolve.name_world_key(k)),
                name: func.name.clone(),
                task_return: match export.task_return {
                    Some(_) => FuncRef::TaskReturn(which as u32),
                    None => FuncRef::Null,
                },
                params: func.params.iter().map(|p| self.code(side, &p.ty)).collect(),
                result: func.result.map(|t| self.code(side, &t)),
            });
        }
        self.exports = exports;
        for (i, import) in self.imports.iter().enumerate() {
            let func = import.func;
            let async_area = import.is_async.then(|| {
                let layout = self.sizes.record(&async_area_types(resolve, import));
                (
                    layout.size.size_wasm32() as u32,
                    layout.align.align_wasm32() as u32,
                )
            });
            self.metadata.import_funcs.push(metadata::ImportFunc {
                interface: import.key.map(|k| resolve.name_world_key(k)),
                name: func.name.clone(),
                adapter: i as u32,
                async_area,
                params: func
                    .params
                    .iter()
                    .map(|p| self.code(Side::Import, &p.ty))
                    .collect(),
                result: func.result.map(|t| self.code(Side::Import, &t)),
            });
        }
    }

    fn import_func(&mut self, key: Option<&'a WorldKey>, func: &'a Function, is_async: bool) {
        let resolve = self.resolve;
        let (module, name) = resolve.wasm_import_name(
            abi::mangling(is_async),
            wit_parser::WasmImport::Func {
                interface: key,
                func,
            },
        );
        let import = ImportFunc {
            key,
            func,
            import: self.host_imports.len(),
            is_async,
        };
        let sig = import.signature(resolve);
        self.imports.push(import);
        self.host_function(module, name, &sig);
    }

    /// Imports the `[task-return]` of an async export; returns its index.
    fn task_return(&mut self, key: Option<&WorldKey>, func: &Function) -> usize {
        let mangling = abi::mangling(true).mangling();
        let (module, name, sig) = func.task_return_import(self.resolve, key, mangling);
        self.host_function(module, name, &sig)
    }

    /// Imports a host function the metadata does not point to; returns its
    /// index in [`Plan::host_imports`].
    fn host_function(&mut self, module: String, name: String, sig: &WasmSignature) -> usize {
        self.host_imports.push(HostImport {
            module,
            name,
            params: abi::val_types(&sig.params),
            results: abi::val_types(&sig.results),
            in_table: false,
        });
        self.host_imports.len() - 1
    }

    /// Imports the built-ins of every future and stream type in the
    /// signatures of `item`'s functions not seen before: a type keeps the
    /// built-ins of the first function holding it, as wit-dylib does.
    fn transmit_imports(&mut self, key: &WorldKey, item: &WorldItem, prefix: &str) {
        let resolve = self.resolve;
        let (key, funcs): (Option<&WorldKey>, Vec<&Function>) = match item {
            WorldItem::Function(f) => (None, vec![f]),
            WorldItem::Interface { id, .. } => (
                Some(key),
                resolve.interfaces[*id].functions.values().collect(),
            ),
            WorldItem::Type { .. } => return,
        };
        let module = format!(
            "{prefix}{}",
            key.map_or_else(|| abi::ROOT.to_string(), |k| resolve.name_world_key(k))
        );
        for func in funcs {
            for (ordinal, id) in func
                .find_futures_and_streams(resolve)
                .into_iter()
                .enumerate()
            {
                if self.transmits.contains_key(&id) {
                    continue;
                }
                let transmit = match resolve.types[id].kind {
                    TypeDefKind::Future(_) => Transmit::Future,
                    _ => Transmit::Stream,
                };
                let first = self.host_imports.len();
                for builtin in abi::TransmitBuiltin::ALL {
                    let (name, params, results) = transmit.builtin(builtin, ordinal, &func.name);
                    self.host_imports.push(HostImport {
                        module: module.clone(),
                        name,
                        params,
                        results,
                        in_table: true,
                    });
                }
                let imports = TransmitImports {
                    first,
                    ordinal,
                    function: func.name.clone(),
                };
                self.transmits.insert(id, imports);
            }
        }
    }

    fn resource_intrinsic(
        &mut self,
        key: Option<&WorldKey>,
        id: TypeId,
        intrinsic: wit_parser::ResourceIntrinsic,
        results: usize,
    ) -> FuncRef {
        let (module, name) = self.resolve.wasm_import_name(
            RESOURCE_MANGLING,
            wit_parser::WasmImport::ResourceIntrinsic {
                interface: key,
                resource: id,
                intrinsic,
            },
        );
        let index = self.host_imports.len() as u32;
        self.host_imports.push(HostImport {
            module,
            name,
            params: vec![wasm_encoder::ValType::I32],
            results: vec![wasm_encoder::ValType::I32; results],
            in_table: true,
        });
        FuncRef::HostImport(index)
    }

    fn imported_resource(&mut self, key: Option<&WorldKey>, id: TypeId) {
        if !matches!(self.resolve.types[id].kind, TypeDefKind::Resource) {
            return;
        }
        use wit_parser::ResourceIntrinsic as R;
        let drop = self.resource_intrinsic(key, id, R::ImportedDrop, 0);
        let index = self.metadata.resources.len() as u32;
        self.metadata.resources.push(metadata::Resource {
            interface: key.map(|k| self.resolve.name_world_key(k)),
            name: self.resolve.types[id].name.clone().unwrap(),
            drop,
            new: FuncRef::Null,
            rep: FuncRef::Null,
        });
        self.codes[0].insert(id, Code::new(Kind::Own, index));
    }

    fn exported_resource(&mut self, key: &WorldKey, id: TypeId) -> Option<u32> {
        if !matches!(self.resolve.types[id].kind, TypeDefKind::Resource) {
            return None;
        }
        use wit_parser::ResourceIntrinsic as R;
        let drop = self.resource_intrinsic(Some(key), id, R::ExportedDrop, 0);
        let new = self.resource_intrinsic(Some(key), id, R::ExportedNew, 1);
        let rep = self.resource_intrinsic(Some(key), id, R::ExportedRep, 1);
        let index = self.metadata.resources.len() as u32;
        self.metadata.resources.push(metadata::Resource {
            interface: Some(self.resolve.name_world_key(key)),
            name: self.resolve.types[id].name.clone().unwrap(),
            drop,
            new,
            rep,
        });
        Some(index)
    }

    /// Appends the metadata entry of `id` and records its code for `side`.
    fn register(&mut self, side: Side, owners: &HashMap<InterfaceId, &WorldKey>, id: TypeId) {
        let resolve = self.resolve;
        let def = &resolve.types[id];
        let interface = owner_interface(resolve, id).and_then(|i| match owners.get(&i) {
            Some(key) => Some(resolve.name_world_key(key)),
            None => resolve.id_of(i),
        });
        let name = def.name.clone();
        let codes = &self.codes[side as usize];
        let code = |ty: &Type| code_in(codes, ty);
        let m = &mut self.metadata;
        let code = match &def.kind {
            TypeDefKind::Record(r) => m.push_record(
                interface,
                name.unwrap(),
                r.fields
                    .iter()
                    .map(|f| (f.name.clone(), code(&f.ty)))
                    .collect(),
            ),
            TypeDefKind::Flags(f) => m.push_flags(
                interface,
                name.unwrap(),
                f.flags.iter().map(|f| f.name.clone()).collect(),
            ),
            TypeDefKind::Tuple(t) => {
                m.push_tuple(interface, name, t.types.iter().map(code).collect())
            }
            TypeDefKind::Variant(v) => m.push_variant(
                interface,
                name.unwrap(),
                v.cases
                    .iter()
                    .map(|c| (c.name.clone(), c.ty.as_ref().map(code)))
                    .collect(),
            ),
            TypeDefKind::Enum(e) => m.push_enum(
                interface,
                name.unwrap(),
                e.cases.iter().map(|c| c.name.clone()).collect(),
            ),
            TypeDefKind::Option(t) => m.push_option(interface, name, code(t)),
            TypeDefKind::Result(r) => m.push_result(
                interface,
                name,
                r.ok.as_ref().map(code),
                r.err.as_ref().map(code),
            ),
            TypeDefKind::List(t) => m.push_list(interface, name, code(t)),
            TypeDefKind::Map(k, v) => m.push_map(interface, name, code(k), code(v)),
            TypeDefKind::FixedLengthList(t, n) => {
                m.push_fixed_length_list(interface, name, *n, code(t))
            }
            TypeDefKind::Type(t) => m.push_alias(interface, name.unwrap(), code(t)),
            TypeDefKind::Resource => codes[&id],
            TypeDefKind::Handle(Handle::Own(r)) => {
                Code::new(Kind::Own, codes[&dealias(resolve, *r)].index())
            }
            TypeDefKind::Handle(Handle::Borrow(r)) => {
                Code::new(Kind::Borrow, codes[&dealias(resolve, *r)].index())
            }
            TypeDefKind::Future(t) | TypeDefKind::Stream(t) => {
                let transmit = match def.kind {
                    TypeDefKind::Future(_) => Transmit::Future,
                    _ => Transmit::Stream,
                };
                let payload = t.map(|t| (code(&t), self.sizes.size(&t), self.sizes.align(&t)));
                // A type no function signature holds has no built-ins (the
                // canonical ABI names them after a function), and no value
                // of it can ever reach the interpreter: its entry only
                // describes it. (wit-dylib 0.263 panics on one.)
                let funcs = match self.transmits.get(&id) {
                    None => [FuncRef::Null; 9],
                    Some(imports) => {
                        let mut funcs = [FuncRef::Null; 9];
                        for (k, f) in funcs.iter_mut().take(7).enumerate() {
                            *f = FuncRef::HostImport((imports.first + k) as u32);
                        }
                        if let Some(ty) = t {
                            let p = self.payloads.len() as u32;
                            self.payloads.push(Payload {
                                side,
                                ty: *ty,
                                transmit,
                                ordinal: imports.ordinal,
                                function: imports.function.clone(),
                            });
                            funcs[7] = FuncRef::PayloadLift(p);
                            funcs[8] = FuncRef::PayloadLower(p);
                        }
                        funcs
                    }
                };
                m.push_transmit(
                    transmit,
                    interface,
                    name,
                    metadata::TransmitEntry {
                        payload: payload.map(|(c, ..)| c),
                        funcs,
                        size: payload.map_or(0, |(_, s, _)| s.size_wasm32() as u32),
                        align: payload.map_or(1, |(.., a)| a.align_wasm32() as u32),
                    },
                )
            }
            TypeDefKind::Unknown => unreachable!("a resolved world has no unknown types"),
        };
        self.codes[side as usize].insert(id, code);
    }
}

/// The code of `ty`, given the codes registered so far for one side.
fn code_in(codes: &HashMap<TypeId, Code>, ty: &Type) -> Code {
    metadata::primitive_code(ty).unwrap_or_else(|| match ty {
        Type::Id(id) => codes[id],
        _ => unreachable!("every type but `Id` has a primitive code"),
    })
}

fn owner_interface(resolve: &Resolve, id: TypeId) -> Option<InterfaceId> {
    match resolve.types[id].owner {
        TypeOwner::Interface(i) => Some(i),
        _ => None,
    }
}

fn dealias(resolve: &Resolve, mut id: TypeId) -> TypeId {
    while let TypeDefKind::Type(Type::Id(next)) = resolve.types[id].kind {
        id = next;
    }
    id
}

/// The types in the long-lived area of an async import call: the
/// parameters when they are passed indirectly, then the result.
pub fn async_area_types<'f>(resolve: &Resolve, import: &ImportFunc<'f>) -> Vec<Type> {
    let indirect = import.signature(resolve).indirect_params;
    let func = import.func;
    func.params
        .iter()
        .filter(|_| indirect)
        .map(|p| p.ty)
        .chain(func.result)
        .collect()
}

/// `` `f` `` or `` `f` in interface `a:b/c` `` for error messages.
fn describe(resolve: &Resolve, key: Option<&WorldKey>, func: &Function) -> String {
    match key {
        Some(key) => format!(
            "`{}` in interface `{}`",
            func.name,
            resolve.name_world_key(key)
        ),
        None => format!("`{}`", func.name),
    }
}

/// Names the first type reachable from `ty` that cannot cross the ABI.
fn unsupported_in_signature(resolve: &Resolve, ty: &Type) -> Option<String> {
    if let Type::ErrorContext = ty {
        return Some("`error-context`".to_string());
    }
    find_type(resolve, ty, &mut BTreeSet::new(), &|kind| match kind {
        TypeDefKind::FixedLengthList(_, n) => Some(format!("a fixed-length list (`list<_, {n}>`)")),
        _ => None,
    })
    .or_else(|| contains_error_context(resolve, ty).then(|| "`error-context`".to_string()))
}

/// Why [`map_of_handles`] is refused, after naming the map.
const MAP_OF_HANDLES: &str = "which the component model forbids (a map may drop the values of \
     duplicate keys, and a dropped handle would leak): use `list<tuple<K, V>>` instead";

/// Names the first map reachable from `ty` whose values hold a handle. WIT
/// accepts one, but the component-type section it makes does not validate,
/// so linking would fail on it far from its cause.
fn map_of_handles(resolve: &Resolve, ty: &Type) -> Option<String> {
    find_type(resolve, ty, &mut BTreeSet::new(), &|kind| match kind {
        TypeDefKind::Map(_, v) if holds_handle(resolve, v) => Some(
            "a `map` whose values hold a handle (of a resource, future, stream or `error-context`)"
                .to_string(),
        ),
        _ => None,
    })
}

/// Whether a value of `ty` holds a handle as the component model counts
/// them: of a resource, a future, a stream or an `error-context`.
fn holds_handle(resolve: &Resolve, ty: &Type) -> bool {
    let handle = |kind: &TypeDefKind| {
        matches!(
            kind,
            TypeDefKind::Handle(_)
                | TypeDefKind::Resource
                | TypeDefKind::Future(_)
                | TypeDefKind::Stream(_)
        )
        .then(String::new)
    };
    contains_error_context(resolve, ty)
        || find_type(resolve, ty, &mut BTreeSet::new(), &handle).is_some()
}

fn find_type(
    resolve: &Resolve,
    ty: &Type,
    seen: &mut BTreeSet<TypeId>,
    pred: &dyn Fn(&TypeDefKind) -> Option<String>,
) -> Option<String> {
    let Type::Id(id) = ty else { return None };
    if !seen.insert(*id) {
        return None;
    }
    let kind = &resolve.types[*id].kind;
    if let Some(found) = pred(kind) {
        return Some(found);
    }
    children(kind)
        .iter()
        .find_map(|t| find_type(resolve, t, seen, pred))
}

fn contains_error_context(resolve: &Resolve, ty: &Type) -> bool {
    match ty {
        Type::ErrorContext => true,
        Type::Id(id) => children(&resolve.types[*id].kind)
            .iter()
            .any(|t| contains_error_context(resolve, t)),
        _ => false,
    }
}

/// The types directly nested in a type definition (handles excluded: a
/// resource's own definition holds no values).
fn children(kind: &TypeDefKind) -> Vec<Type> {
    match kind {
        TypeDefKind::Record(r) => r.fields.iter().map(|f| f.ty).collect(),
        TypeDefKind::Tuple(t) => t.types.clone(),
        TypeDefKind::Variant(v) => v.cases.iter().filter_map(|c| c.ty).collect(),
        TypeDefKind::Option(t) | TypeDefKind::List(t) | TypeDefKind::Type(t) => vec![*t],
        TypeDefKind::FixedLengthList(t, _) => vec![*t],
        TypeDefKind::Result(r) => r.ok.iter().chain(r.err.iter()).copied().collect(),
        TypeDefKind::Map(k, v) => vec![*k, *v],
        TypeDefKind::Future(t) | TypeDefKind::Stream(t) => t.iter().copied().collect(),
        TypeDefKind::Flags(_)
        | TypeDefKind::Enum(_)
        | TypeDefKind::Resource
        | TypeDefKind::Handle(_)
        | TypeDefKind::Unknown => Vec::new(),
    }
}

/// Types owned by interfaces that are not exported but are used by exported
/// interfaces: these keep their import-side registration for exports.
fn imported_types_used_by_exports(resolve: &Resolve, world: WorldId) -> LiveTypes {
    let mut exported = BTreeSet::new();
    let mut used = LiveTypes::default();
    for item in resolve.worlds[world].exports.values() {
        if let WorldItem::Interface { id, .. } = item {
            exported.insert(*id);
            used.add_interface(resolve, *id);
        }
    }
    let mut kept = LiveTypes::default();
    for id in used.iter() {
        if let Some(owner) = owner_interface(resolve, id)
            && !exported.contains(&owner)
        {
            kept.add_interface(resolve, owner);
        }
    }
    kept
}

/// A `wit_t` type code keeps its table index in 24 bits, and each table
/// holds distinct types of one kind: a resolve with fewer types than that
/// fits whatever the world uses.
fn check_type_count(types: usize) -> Result<()> {
    if types >= metadata::MAX_TYPES_OF_ONE_KIND {
        bail!(
            "the WIT defines {types} types; the bindings' metadata (`wit_t`) holds at most {} \
             of one kind: split the packages, or leave out what the world does not use",
            metadata::MAX_TYPES_OF_ONE_KIND - 1
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn more_types_than_a_type_code_can_index_are_refused() {
        let max = crate::metadata::MAX_TYPES_OF_ONE_KIND;
        assert!(super::check_type_count(max - 1).is_ok());
        let err = super::check_type_count(max).unwrap_err().to_string();
        assert!(err.starts_with("the WIT defines 16777216 types;"), "{err}");
    }
}
