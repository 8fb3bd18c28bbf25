//! Test support: read back the `wit_t` type metadata (ABI version 3) that a
//! wit-dylib-compatible "bindings dylib" carries in its data segment.
//!
//! The module itself is never instantiated. Instead:
//!
//! * the single active data segment at `global.get $__memory_base` is taken
//!   as the pre-relocation image of the metadata;
//! * `__wasm_apply_data_relocs` is run (alone, in wasmtime, at two pairs of
//!   bases) to learn which 4-byte slots of that image become
//!   `__memory_base + k` (a data pointer to segment offset `k`) or
//!   `__table_base + k` (a function pointer to element `k` of the element
//!   segment at `global.get $__table_base`);
//! * `__wasm_call_ctors` is evaluated symbolically to find the argument of
//!   `env.wit_dylib_initialize`, i.e. the segment offset of `wit_t`;
//! * `wit_t` and everything reachable from it is decoded into owned values
//!   with strings, arrays and function pointers resolved, so that the output
//!   of two generators can be compared with `==`.
//!
//! Function pointers are described by what they point at rather than by
//! their table slot, since two generators can legitimately order their
//! element segments differently.

#![allow(dead_code)]

use anyhow::{Context, Result, anyhow, bail, ensure};
use std::collections::{BTreeMap, BTreeSet};
use wasmparser::{
    CompositeInnerType, DataKind, Dylink0Subsection, ElementItems, ElementKind, ExternalKind,
    FunctionBody, KnownCustom, Operator, Parser, Payload, TypeRef, ValType, Validator,
    WasmFeatures,
};

/// `WIT_CURRENT_VERSION` of `wit_dylib.h` that this decoder understands.
pub const WIT_VERSION: u32 = 3;

/// The `wit_type_t` value meaning "no type" (kind `WIT_TYPE_EMPTY`).
pub const TYPE_EMPTY: u32 = 0xffff_ffff;

// Sizes (bytes, wasm32) of the structs in `wit_dylib.h`.
const SIZE_WIT: u32 = 4 + 16 * 8;
const SIZE_IMPORT_FUNC: u32 = 40;
const SIZE_EXPORT_FUNC: u32 = 24;
const SIZE_RESOURCE: u32 = 20;
const SIZE_FIELD: u32 = 8;
const SIZE_RECORD: u32 = 16;
const SIZE_FLAGS: u32 = 16;
const SIZE_TUPLE: u32 = 16;
const SIZE_CASE: u32 = 8;
const SIZE_VARIANT: u32 = 16;
const SIZE_ENUM: u32 = 16;
const SIZE_OPTION: u32 = 12;
const SIZE_RESULT: u32 = 16;
const SIZE_LIST: u32 = 12;
const SIZE_MAP: u32 = 16;
const SIZE_FIXED_LENGTH_LIST: u32 = 16;
const SIZE_FUTURE_OR_STREAM: u32 = 56;
const SIZE_ALIAS: u32 = 12;
const SIZE_PTR: u32 = 4;

// ---------------------------------------------------------------------------
// Public data model
// ---------------------------------------------------------------------------

/// A core wasm value type, in a form that can be compared and sorted.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ValTy {
    I32,
    I64,
    F32,
    F64,
    V128,
    /// A reference type, spelled as wasmparser displays it.
    Ref(String),
}

impl From<ValType> for ValTy {
    fn from(v: ValType) -> ValTy {
        match v {
            ValType::I32 => ValTy::I32,
            ValType::I64 => ValTy::I64,
            ValType::F32 => ValTy::F32,
            ValType::F64 => ValTy::F64,
            ValType::V128 => ValTy::V128,
            ValType::Ref(r) => ValTy::Ref(r.to_string()),
        }
    }
}

/// The type of an imported or exported core item.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CoreType {
    Func {
        params: Vec<ValTy>,
        results: Vec<ValTy>,
    },
    Table {
        element: String,
        table64: bool,
        shared: bool,
        initial: u64,
        maximum: Option<u64>,
    },
    Memory {
        memory64: bool,
        shared: bool,
        initial: u64,
        maximum: Option<u64>,
        page_size_log2: Option<u32>,
    },
    Global {
        content: ValTy,
        mutable: bool,
        shared: bool,
    },
    Tag {
        params: Vec<ValTy>,
        results: Vec<ValTy>,
    },
}

/// Kind of an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ExportKind {
    Func,
    Table,
    Memory,
    Global,
    Tag,
}

/// What a function pointer stored in the metadata refers to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FnRef {
    /// The slot holds 0 and has no relocation.
    Null,
    /// The table element is an imported function (e.g. `[resource-drop]r`).
    Import { module: String, name: String },
    /// The table element is a function defined in the module; only its core
    /// signature `(params, results)` is recorded.
    Defined { signature: (Vec<ValTy>, Vec<ValTy>) },
}

impl FnRef {
    pub fn is_null(&self) -> bool {
        matches!(self, FnRef::Null)
    }
}

/// A decoded `wit_type_t`. `EMPTY` is represented as `Option::None` where the
/// ABI allows it; the index of the non-primitive kinds is the index into the
/// corresponding array of `wit_t` (`resources` for `Own`/`Borrow`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Ty {
    U8,
    U16,
    U32,
    U64,
    S8,
    S16,
    S32,
    S64,
    Bool,
    Char,
    F32,
    F64,
    String,
    ErrorContext,
    Record(u32),
    Own(u32),
    Borrow(u32),
    Flags(u32),
    Tuple(u32),
    Variant(u32),
    Enum(u32),
    Option(u32),
    Result(u32),
    List(u32),
    Map(u32),
    FixedLengthList(u32),
    Future(u32),
    Stream(u32),
    Alias(u32),
}

impl Ty {
    /// Decodes a raw `wit_type_t`; `Ok(None)` for `EMPTY`.
    pub fn from_code(code: u32) -> Result<Option<Ty>> {
        if code == TYPE_EMPTY {
            return Ok(None);
        }
        let kind = code & 0xff;
        let index = code >> 8;
        let primitive = |t: Ty| -> Result<Option<Ty>> {
            ensure!(
                index == 0,
                "type code {code:#x}: primitive kind {kind} with non-zero index {index}"
            );
            Ok(Some(t))
        };
        match kind {
            0 => primitive(Ty::U8),
            1 => primitive(Ty::U16),
            2 => primitive(Ty::U32),
            3 => primitive(Ty::U64),
            4 => primitive(Ty::S8),
            5 => primitive(Ty::S16),
            6 => primitive(Ty::S32),
            7 => primitive(Ty::S64),
            8 => primitive(Ty::Bool),
            9 => primitive(Ty::Char),
            10 => primitive(Ty::F32),
            11 => primitive(Ty::F64),
            12 => primitive(Ty::String),
            13 => primitive(Ty::ErrorContext),
            14 => Ok(Some(Ty::Record(index))),
            15 => Ok(Some(Ty::Own(index))),
            16 => Ok(Some(Ty::Borrow(index))),
            17 => Ok(Some(Ty::Flags(index))),
            18 => Ok(Some(Ty::Tuple(index))),
            19 => Ok(Some(Ty::Variant(index))),
            20 => Ok(Some(Ty::Enum(index))),
            21 => Ok(Some(Ty::Option(index))),
            22 => Ok(Some(Ty::Result(index))),
            23 => Ok(Some(Ty::List(index))),
            24 => Ok(Some(Ty::Map(index))),
            25 => Ok(Some(Ty::FixedLengthList(index))),
            26 => Ok(Some(Ty::Future(index))),
            27 => Ok(Some(Ty::Stream(index))),
            28 => Ok(Some(Ty::Alias(index))),
            0xff => bail!("type code {code:#x}: kind EMPTY but not exactly 0xffffffff"),
            _ => bail!("type code {code:#x}: unknown kind {kind}"),
        }
    }

    /// The raw `wit_type_t` encoding of this type.
    pub fn code(self) -> u32 {
        let (kind, index) = self.kind_and_index();
        (index.unwrap_or(0) << 8) | kind
    }

    /// `WIT_TYPE_KIND` and, for non-primitive kinds, `WIT_TYPE_INDEX`.
    pub fn kind_and_index(self) -> (u32, Option<u32>) {
        match self {
            Ty::U8 => (0, None),
            Ty::U16 => (1, None),
            Ty::U32 => (2, None),
            Ty::U64 => (3, None),
            Ty::S8 => (4, None),
            Ty::S16 => (5, None),
            Ty::S32 => (6, None),
            Ty::S64 => (7, None),
            Ty::Bool => (8, None),
            Ty::Char => (9, None),
            Ty::F32 => (10, None),
            Ty::F64 => (11, None),
            Ty::String => (12, None),
            Ty::ErrorContext => (13, None),
            Ty::Record(i) => (14, Some(i)),
            Ty::Own(i) => (15, Some(i)),
            Ty::Borrow(i) => (16, Some(i)),
            Ty::Flags(i) => (17, Some(i)),
            Ty::Tuple(i) => (18, Some(i)),
            Ty::Variant(i) => (19, Some(i)),
            Ty::Enum(i) => (20, Some(i)),
            Ty::Option(i) => (21, Some(i)),
            Ty::Result(i) => (22, Some(i)),
            Ty::List(i) => (23, Some(i)),
            Ty::Map(i) => (24, Some(i)),
            Ty::FixedLengthList(i) => (25, Some(i)),
            Ty::Future(i) => (26, Some(i)),
            Ty::Stream(i) => (27, Some(i)),
            Ty::Alias(i) => (28, Some(i)),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportFunc {
    pub interface: Option<String>,
    pub name: String,
    /// `impl`: non-null iff the import is called synchronously.
    pub sync_impl: FnRef,
    pub async_impl: FnRef,
    pub async_lift_impl: FnRef,
    pub params: Vec<Ty>,
    pub result: Option<Ty>,
    pub async_abi_area_size: u32,
    pub async_abi_area_align: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportFunc {
    pub interface: Option<String>,
    pub name: String,
    pub task_return: FnRef,
    pub params: Vec<Ty>,
    pub result: Option<Ty>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    pub interface: Option<String>,
    pub name: String,
    pub drop: FnRef,
    pub new: FnRef,
    pub rep: FnRef,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub interface: Option<String>,
    pub name: String,
    pub fields: Vec<(String, Ty)>,
}

/// Shared shape of `wit_flags_t` and `wit_enum_t`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedList {
    pub interface: Option<String>,
    pub name: String,
    pub names: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tuple {
    pub interface: Option<String>,
    pub name: Option<String>,
    pub types: Vec<Ty>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variant {
    pub interface: Option<String>,
    pub name: String,
    pub cases: Vec<(String, Option<Ty>)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptionTy {
    pub interface: Option<String>,
    pub name: Option<String>,
    pub ty: Ty,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultTy {
    pub interface: Option<String>,
    pub name: Option<String>,
    pub ok: Option<Ty>,
    pub err: Option<Ty>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct List {
    pub interface: Option<String>,
    pub name: Option<String>,
    pub ty: Ty,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Map {
    pub interface: Option<String>,
    pub name: Option<String>,
    pub key: Ty,
    pub value: Ty,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FixedLengthList {
    pub interface: Option<String>,
    pub name: Option<String>,
    pub size: u32,
    pub ty: Ty,
}

/// Shared shape of `wit_future_t` and `wit_stream_t`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FutureOrStream {
    pub interface: Option<String>,
    pub name: Option<String>,
    pub ty: Option<Ty>,
    pub new: FnRef,
    pub read: FnRef,
    pub write: FnRef,
    pub cancel_read: FnRef,
    pub cancel_write: FnRef,
    pub drop_readable: FnRef,
    pub drop_writable: FnRef,
    pub lift: FnRef,
    pub lower: FnRef,
    pub abi_payload_size: u32,
    pub abi_payload_align: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alias {
    pub interface: Option<String>,
    pub name: String,
    pub ty: Ty,
}

/// Everything reachable from the `wit_t` handed to `wit_dylib_initialize`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    pub version: u32,
    pub import_funcs: Vec<ImportFunc>,
    pub export_funcs: Vec<ExportFunc>,
    pub resources: Vec<Resource>,
    pub records: Vec<Record>,
    pub flags: Vec<NamedList>,
    pub tuples: Vec<Tuple>,
    pub variants: Vec<Variant>,
    pub enums: Vec<NamedList>,
    pub options: Vec<OptionTy>,
    pub results: Vec<ResultTy>,
    pub lists: Vec<List>,
    pub maps: Vec<Map>,
    pub fixed_length_lists: Vec<FixedLengthList>,
    pub futures: Vec<FutureOrStream>,
    pub streams: Vec<FutureOrStream>,
    pub aliases: Vec<Alias>,
}

impl Decoded {
    /// Array lengths of `wit_t`, in `wit_t` field order.
    pub fn counts(&self) -> [(&'static str, usize); 16] {
        [
            ("import_funcs", self.import_funcs.len()),
            ("export_funcs", self.export_funcs.len()),
            ("resources", self.resources.len()),
            ("records", self.records.len()),
            ("flags", self.flags.len()),
            ("tuples", self.tuples.len()),
            ("variants", self.variants.len()),
            ("enums", self.enums.len()),
            ("options", self.options.len()),
            ("results", self.results.len()),
            ("lists", self.lists.len()),
            ("maps", self.maps.len()),
            ("fixed_length_lists", self.fixed_length_lists.len()),
            ("futures", self.futures.len()),
            ("streams", self.streams.len()),
            ("aliases", self.aliases.len()),
        ]
    }

    /// Number of entries of the array that a type of this kind indexes
    /// (`None` for primitive kinds).
    pub fn len_for(&self, ty: Ty) -> Option<usize> {
        Some(match ty {
            Ty::Record(_) => self.records.len(),
            Ty::Own(_) | Ty::Borrow(_) => self.resources.len(),
            Ty::Flags(_) => self.flags.len(),
            Ty::Tuple(_) => self.tuples.len(),
            Ty::Variant(_) => self.variants.len(),
            Ty::Enum(_) => self.enums.len(),
            Ty::Option(_) => self.options.len(),
            Ty::Result(_) => self.results.len(),
            Ty::List(_) => self.lists.len(),
            Ty::Map(_) => self.maps.len(),
            Ty::FixedLengthList(_) => self.fixed_length_lists.len(),
            Ty::Future(_) => self.futures.len(),
            Ty::Stream(_) => self.streams.len(),
            Ty::Alias(_) => self.aliases.len(),
            _ => return None,
        })
    }
}

/// A relocation applied by `__wasm_apply_data_relocs` to one 4-byte slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reloc {
    /// Slot becomes `__memory_base + offset` (a pointer into the segment).
    Data(u32),
    /// Slot becomes `__table_base + index` (element `index` of the segment
    /// placed at `__table_base`).
    Table(u32),
}

/// `dylink.0` `WASM_DYLINK_MEM_INFO`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemInfo {
    pub memory_size: u32,
    pub memory_alignment: u32,
    pub table_size: u32,
    pub table_alignment: u32,
}

/// The decoded metadata together with the module-level facts around it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Module {
    pub metadata: Decoded,
    /// Imports in module order: `(module, name, type)`.
    pub imports: Vec<(String, String, CoreType)>,
    /// Exports in module order: `(name, kind, type)`.
    pub exports: Vec<(String, ExportKind, CoreType)>,
    pub mem_info: MemInfo,
    /// `dylink.0` `WASM_DYLINK_NEEDED` (empty if absent).
    pub needed: Vec<String>,
    /// The metadata data segment before relocation.
    pub segment: Vec<u8>,
    /// Segment offset of each relocated slot -> what it becomes.
    pub relocs: BTreeMap<u32, Reloc>,
    /// The element segment at `__table_base`, in order.
    pub elements: Vec<FnRef>,
    /// Segment offset of `wit_t`.
    pub wit_offset: u32,
    /// Relocated slots that the `wit_t` graph never read (sorted).
    pub unused_relocs: Vec<u32>,
}

impl Module {
    /// Imports as a set, for order-insensitive comparison.
    pub fn import_set(&self) -> BTreeSet<(String, String, CoreType)> {
        self.imports.iter().cloned().collect()
    }

    /// Exports as a set, for order-insensitive comparison.
    pub fn export_set(&self) -> BTreeSet<(String, ExportKind, CoreType)> {
        self.exports.iter().cloned().collect()
    }
}

// ---------------------------------------------------------------------------
// Entry points
// ---------------------------------------------------------------------------

/// Decodes the `wit_t` metadata of a bindings dylib.
pub fn decode(module: &[u8]) -> Result<Decoded> {
    Ok(decode_module(module)?.metadata)
}

/// Decodes the metadata plus imports, exports, `dylink.0`, relocations and
/// the element segment of a bindings dylib.
pub fn decode_module(bytes: &[u8]) -> Result<Module> {
    Validator::new_with_features(WasmFeatures::all())
        .validate_all(bytes)
        .context("module does not validate")?;
    let raw = RawModule::parse(bytes)?;

    let memory_base = raw.imported_global("env", "__memory_base")?;
    let table_base = raw.imported_global("env", "__table_base")?;

    // The metadata segment.
    let mut segment = None;
    for (i, (kind, data)) in raw.data_segments.iter().enumerate() {
        match kind {
            SegmentPlace::Passive => bail!("data segment {i} is passive"),
            SegmentPlace::Active { index, offset } => {
                ensure!(*index == 0, "data segment {i} targets memory {index}");
                ensure!(
                    *offset == ConstPlace::Global(memory_base),
                    "data segment {i} is placed at {offset:?}, not at `global.get $__memory_base`"
                );
                ensure!(
                    segment.is_none(),
                    "more than one data segment at `global.get $__memory_base`"
                );
                segment = Some(data.to_vec());
            }
        }
    }
    let segment =
        segment.ok_or_else(|| anyhow!("no data segment at `global.get $__memory_base`"))?;
    u32::try_from(segment.len()).context("data segment too large")?;

    // The element segment at `__table_base`.
    let mut elements: Option<Vec<FnRef>> = None;
    for (i, (kind, funcs)) in raw.elem_segments.iter().enumerate() {
        match kind {
            SegmentPlace::Passive => continue,
            SegmentPlace::Active { index, offset } => {
                ensure!(
                    *offset == ConstPlace::Global(table_base),
                    "element segment {i} (table {index}) is placed at {offset:?}, not at `global.get $__table_base`"
                );
                ensure!(
                    elements.is_none(),
                    "more than one element segment at `global.get $__table_base`"
                );
                let mut refs = Vec::with_capacity(funcs.len());
                for (j, f) in funcs.iter().enumerate() {
                    let f = f.ok_or_else(|| anyhow!("element segment entry {j} is ref.null"))?;
                    refs.push(raw.describe_func(f)?);
                }
                elements = Some(refs);
            }
        }
    }
    let elements = elements.unwrap_or_default();

    // Relocations: run `__wasm_apply_data_relocs` for real, twice, with
    // different bases; a word that moves with `__memory_base` is a data
    // pointer, one that moves with `__table_base` a function pointer. This
    // reads any encoding of the relocations (straight-line stores, loops over
    // bitmaps, ...).
    let relocs = match raw.exported_func("__wasm_apply_data_relocs") {
        Some(f) => execute_relocs(&raw, bytes, raw.body(f)?, &segment)
            .context("running `__wasm_apply_data_relocs`")?,
        None => BTreeMap::new(),
    };

    // The `wit_t` pointer from the constructor.
    let ctors = raw
        .exported_func("__wasm_call_ctors")
        .ok_or_else(|| anyhow!("no exported function `__wasm_call_ctors`"))?;
    let init = raw.imported_func("env", "wit_dylib_initialize")?;
    let mut m = Machine::new(&raw, memory_base, table_base, raw.body(ctors)?)?;
    m.init_func = Some(init);
    m.run().context("interpreting `__wasm_call_ctors`")?;
    let wit_offset = match m.init_args.as_slice() {
        [Val::Mem(k)] if *k >= 0 => *k as u32,
        [other] => {
            bail!("`wit_dylib_initialize` is called with {other:?}, not `__memory_base + const`")
        }
        [] => bail!("`__wasm_call_ctors` never calls `wit_dylib_initialize`"),
        _ => bail!("`__wasm_call_ctors` calls `wit_dylib_initialize` more than once"),
    };

    // The metadata itself.
    let mut reader = Reader {
        seg: &segment,
        relocs: &relocs,
        elements: &elements,
        used: BTreeSet::new(),
    };
    let metadata = reader
        .wit(wit_offset)
        .with_context(|| format!("decoding wit_t at segment offset {wit_offset}"))?;
    let unused_relocs = relocs
        .keys()
        .filter(|k| !reader.used.contains(k))
        .copied()
        .collect();

    Ok(Module {
        metadata,
        imports: raw
            .imports
            .iter()
            .map(|(m, n, t)| (m.clone(), n.clone(), t.clone()))
            .collect(),
        exports: raw.exports.clone(),
        mem_info: raw
            .mem_info
            .ok_or_else(|| anyhow!("no `dylink.0` mem-info subsection"))?,
        needed: raw.needed.clone(),
        segment,
        relocs,
        elements,
        wit_offset,
        unused_relocs,
    })
}

/// Sanity checks on decoded metadata: version, every type index in range for
/// its kind, the type graph is acyclic, function-pointer presence rules.
pub fn check_metadata(d: &Decoded) -> Result<()> {
    ensure!(
        d.version == WIT_VERSION,
        "wit_t version {} != {WIT_VERSION}",
        d.version
    );

    let in_range = |ty: Ty, what: &dyn Fn() -> String| -> Result<()> {
        if let (Some(len), (_, Some(i))) = (d.len_for(ty), ty.kind_and_index()) {
            ensure!(
                (i as usize) < len,
                "{}: type {ty:?} out of range (only {len} of that kind)",
                what()
            );
        }
        Ok(())
    };

    // Every type reference, with a description of where it sits.
    let mut refs: Vec<(Ty, String)> = Vec::new();
    for (i, f) in d.import_funcs.iter().enumerate() {
        for (j, t) in f.params.iter().enumerate() {
            refs.push((*t, format!("import_funcs[{i}].params[{j}]")));
        }
        refs.extend(f.result.map(|t| (t, format!("import_funcs[{i}].result"))));

        let sync = !f.sync_impl.is_null();
        let asy = !f.async_impl.is_null();
        ensure!(
            sync != asy,
            "import_funcs[{i}] ({}): exactly one of impl/async_impl must be set",
            f.name
        );
        ensure!(
            asy != f.async_lift_impl.is_null(),
            "import_funcs[{i}] ({}): async_lift_impl must be set iff async_impl is",
            f.name
        );
        if sync {
            ensure!(
                f.async_abi_area_size == 0 && f.async_abi_area_align == 0,
                "import_funcs[{i}] ({}): sync import with a non-zero async abi area",
                f.name
            );
        } else {
            ensure!(
                f.async_abi_area_align.is_power_of_two(),
                "import_funcs[{i}] ({}): async abi area align {} is not a power of two",
                f.name,
                f.async_abi_area_align
            );
        }
    }
    for (i, f) in d.export_funcs.iter().enumerate() {
        for (j, t) in f.params.iter().enumerate() {
            refs.push((*t, format!("export_funcs[{i}].params[{j}]")));
        }
        refs.extend(f.result.map(|t| (t, format!("export_funcs[{i}].result"))));
    }
    for (i, r) in d.resources.iter().enumerate() {
        ensure!(
            !r.drop.is_null(),
            "resources[{i}] ({}): drop is NULL",
            r.name
        );
        ensure!(
            r.new.is_null() == r.rep.is_null(),
            "resources[{i}] ({}): new and rep must both be set or both be NULL",
            r.name
        );
    }
    for (i, r) in d.records.iter().enumerate() {
        unique_names(r.fields.iter().map(|f| &f.0), || {
            format!("records[{i}] ({})", r.name)
        })?;
        for (j, (_, t)) in r.fields.iter().enumerate() {
            refs.push((*t, format!("records[{i}].fields[{j}]")));
        }
    }
    for (i, f) in d.flags.iter().enumerate() {
        ensure!(
            f.names.len() <= 32,
            "flags[{i}] ({}): more than 32 flags",
            f.name
        );
        unique_names(f.names.iter(), || format!("flags[{i}] ({})", f.name))?;
    }
    for (i, t) in d.tuples.iter().enumerate() {
        for (j, t) in t.types.iter().enumerate() {
            refs.push((*t, format!("tuples[{i}].types[{j}]")));
        }
    }
    for (i, v) in d.variants.iter().enumerate() {
        unique_names(v.cases.iter().map(|c| &c.0), || {
            format!("variants[{i}] ({})", v.name)
        })?;
        for (j, (_, t)) in v.cases.iter().enumerate() {
            refs.extend(t.map(|t| (t, format!("variants[{i}].cases[{j}]"))));
        }
    }
    for (i, e) in d.enums.iter().enumerate() {
        unique_names(e.names.iter(), || format!("enums[{i}] ({})", e.name))?;
    }
    for (i, o) in d.options.iter().enumerate() {
        refs.push((o.ty, format!("options[{i}].ty")));
    }
    for (i, r) in d.results.iter().enumerate() {
        refs.extend(r.ok.map(|t| (t, format!("results[{i}].ok"))));
        refs.extend(r.err.map(|t| (t, format!("results[{i}].err"))));
    }
    for (i, l) in d.lists.iter().enumerate() {
        refs.push((l.ty, format!("lists[{i}].ty")));
    }
    for (i, m) in d.maps.iter().enumerate() {
        refs.push((m.key, format!("maps[{i}].key")));
        refs.push((m.value, format!("maps[{i}].value")));
    }
    for (i, l) in d.fixed_length_lists.iter().enumerate() {
        refs.push((l.ty, format!("fixed_length_lists[{i}].ty")));
    }
    for (what, arr) in [("futures", &d.futures), ("streams", &d.streams)] {
        for (i, p) in arr.iter().enumerate() {
            refs.extend(p.ty.map(|t| (t, format!("{what}[{i}].ty"))));
            let builtins = [
                ("new", &p.new),
                ("read", &p.read),
                ("write", &p.write),
                ("cancel_read", &p.cancel_read),
                ("cancel_write", &p.cancel_write),
                ("drop_readable", &p.drop_readable),
                ("drop_writable", &p.drop_writable),
            ];
            // A type no function holds has no built-ins at all (componentize's
            // entry for it; wit-dylib panics instead), and then no lift/lower.
            let unused = builtins.iter().all(|(_, f)| f.is_null());
            if !unused {
                for (fname, f) in builtins {
                    ensure!(!f.is_null(), "{what}[{i}].{fname} is NULL");
                }
            }
            let has_payload = p.ty.is_some() && !unused;
            ensure!(
                has_payload != p.lift.is_null() && has_payload != p.lower.is_null(),
                "{what}[{i}]: lift/lower must be set iff there is a payload type and built-ins"
            );
            if p.ty.is_none() {
                ensure!(
                    p.abi_payload_size == 0 && p.abi_payload_align == 1,
                    "{what}[{i}]: no payload but size/align {}/{}",
                    p.abi_payload_size,
                    p.abi_payload_align
                );
            }
        }
    }
    for (i, a) in d.aliases.iter().enumerate() {
        refs.push((a.ty, format!("aliases[{i}].ty")));
    }
    for (ty, what) in &refs {
        in_range(*ty, &|| what.clone())?;
    }

    // The type graph must be acyclic (handles point at resources, which are
    // leaves, so every cycle is a bug).
    let mut state: BTreeMap<Ty, bool> = BTreeMap::new(); // false = in progress
    fn visit(d: &Decoded, ty: Ty, state: &mut BTreeMap<Ty, bool>) -> Result<()> {
        match state.get(&ty) {
            Some(true) => return Ok(()),
            Some(false) => bail!("type graph has a cycle through {ty:?}"),
            None => {}
        }
        state.insert(ty, false);
        for child in children(d, ty) {
            visit(d, child, state)?;
        }
        state.insert(ty, true);
        Ok(())
    }
    for (ty, _) in &refs {
        visit(d, *ty, &mut state)?;
    }
    Ok(())
}

/// [`check_metadata`] plus module-level consistency (every relocation was
/// reached from `wit_t`, `dylink.0` sizes cover the segment and elements).
pub fn check_module(m: &Module) -> Result<()> {
    check_metadata(&m.metadata)?;
    ensure!(
        m.unused_relocs.is_empty(),
        "relocated slots never reached from wit_t: {:?}",
        m.unused_relocs
    );
    ensure!(
        m.mem_info.memory_size as usize >= m.segment.len(),
        "dylink.0 memory_size {} < data segment length {}",
        m.mem_info.memory_size,
        m.segment.len()
    );
    ensure!(
        m.mem_info.memory_alignment >= 2,
        "dylink.0 memory_alignment 2^{} is below the 4-byte alignment of wit_t",
        m.mem_info.memory_alignment
    );
    ensure!(
        m.mem_info.table_size as usize >= m.elements.len(),
        "dylink.0 table_size {} < element segment length {}",
        m.mem_info.table_size,
        m.elements.len()
    );
    Ok(())
}

/// Decodes and runs [`check_module`].
pub fn decode_checked(bytes: &[u8]) -> Result<Module> {
    let m = decode_module(bytes)?;
    check_module(&m)?;
    Ok(m)
}

fn unique_names<'a>(
    names: impl Iterator<Item = &'a String>,
    what: impl Fn() -> String,
) -> Result<()> {
    let mut seen = BTreeSet::new();
    for n in names {
        ensure!(seen.insert(n), "{}: duplicate name {n:?}", what());
    }
    Ok(())
}

/// Types directly referenced by `ty` (indices assumed in range).
fn children(d: &Decoded, ty: Ty) -> Vec<Ty> {
    let at = |i: u32| i as usize;
    match ty {
        Ty::Record(i) => d.records[at(i)].fields.iter().map(|f| f.1).collect(),
        Ty::Tuple(i) => d.tuples[at(i)].types.clone(),
        Ty::Variant(i) => d.variants[at(i)].cases.iter().filter_map(|c| c.1).collect(),
        Ty::Option(i) => vec![d.options[at(i)].ty],
        Ty::Result(i) => d.results[at(i)]
            .ok
            .into_iter()
            .chain(d.results[at(i)].err)
            .collect(),
        Ty::List(i) => vec![d.lists[at(i)].ty],
        Ty::Map(i) => vec![d.maps[at(i)].key, d.maps[at(i)].value],
        Ty::FixedLengthList(i) => vec![d.fixed_length_lists[at(i)].ty],
        Ty::Future(i) => d.futures[at(i)].ty.into_iter().collect(),
        Ty::Stream(i) => d.streams[at(i)].ty.into_iter().collect(),
        Ty::Alias(i) => vec![d.aliases[at(i)].ty],
        _ => Vec::new(),
    }
}

// ---------------------------------------------------------------------------
// Module scanning
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ConstPlace {
    I32(i32),
    Global(u32),
    Other,
}

#[derive(Debug, Clone, Copy)]
enum SegmentPlace {
    Passive,
    Active { index: u32, offset: ConstPlace },
}

struct RawModule<'a> {
    /// Core func types by type index (`None` for non-function types).
    types: Vec<Option<(Vec<ValTy>, Vec<ValTy>)>>,
    imports: Vec<(String, String, CoreType)>,
    /// Type index of every function (imports first).
    func_types: Vec<u32>,
    /// `(module, name)` of every imported function, by function index.
    func_imports: Vec<(String, String)>,
    /// `(module, name)` of every imported global, by global index.
    global_imports: Vec<(String, String)>,
    global_import_mutable: Vec<bool>,
    table_types: Vec<CoreType>,
    memory_types: Vec<CoreType>,
    global_types: Vec<CoreType>,
    tag_types: Vec<CoreType>,
    exports: Vec<(String, ExportKind, CoreType)>,
    raw_exports: Vec<(String, ExternalKind, u32)>,
    bodies: Vec<FunctionBody<'a>>,
    data_segments: Vec<(SegmentPlace, &'a [u8])>,
    elem_segments: Vec<(SegmentPlace, Vec<Option<u32>>)>,
    mem_info: Option<MemInfo>,
    needed: Vec<String>,
}

fn const_place(expr: &wasmparser::ConstExpr<'_>) -> Result<ConstPlace> {
    let mut ops = expr.get_operators_reader();
    let first = ops.read()?;
    let place = match first {
        Operator::I32Const { value } => ConstPlace::I32(value),
        Operator::GlobalGet { global_index } => ConstPlace::Global(global_index),
        _ => return Ok(ConstPlace::Other),
    };
    match ops.read()? {
        Operator::End if ops.eof() => Ok(place),
        _ => Ok(ConstPlace::Other),
    }
}

impl<'a> RawModule<'a> {
    fn parse(bytes: &'a [u8]) -> Result<RawModule<'a>> {
        let mut m = RawModule {
            types: Vec::new(),
            imports: Vec::new(),
            func_types: Vec::new(),
            func_imports: Vec::new(),
            global_imports: Vec::new(),
            global_import_mutable: Vec::new(),
            table_types: Vec::new(),
            memory_types: Vec::new(),
            global_types: Vec::new(),
            tag_types: Vec::new(),
            exports: Vec::new(),
            raw_exports: Vec::new(),
            bodies: Vec::new(),
            data_segments: Vec::new(),
            elem_segments: Vec::new(),
            mem_info: None,
            needed: Vec::new(),
        };
        let mut parser = Parser::new(0);
        parser.set_features(WasmFeatures::all());
        for payload in parser.parse_all(bytes) {
            match payload? {
                Payload::TypeSection(r) => {
                    for group in r {
                        for sub in group?.into_types() {
                            m.types.push(match &sub.composite_type.inner {
                                CompositeInnerType::Func(f) => Some((
                                    f.params().iter().map(|v| ValTy::from(*v)).collect(),
                                    f.results().iter().map(|v| ValTy::from(*v)).collect(),
                                )),
                                _ => None,
                            });
                        }
                    }
                }
                Payload::ImportSection(r) => {
                    for import in r.into_imports() {
                        let import = import?;
                        let ty = match import.ty {
                            TypeRef::Func(t) | TypeRef::FuncExact(t) => {
                                m.func_types.push(t);
                                m.func_imports
                                    .push((import.module.to_string(), import.name.to_string()));
                                m.func_core_type(t)?
                            }
                            TypeRef::Table(t) => {
                                let c = table_core_type(&t);
                                m.table_types.push(c.clone());
                                c
                            }
                            TypeRef::Memory(t) => {
                                let c = memory_core_type(&t);
                                m.memory_types.push(c.clone());
                                c
                            }
                            TypeRef::Global(g) => {
                                m.global_imports
                                    .push((import.module.to_string(), import.name.to_string()));
                                m.global_import_mutable.push(g.mutable);
                                let c = global_core_type(&g);
                                m.global_types.push(c.clone());
                                c
                            }
                            TypeRef::Tag(t) => {
                                let c = m.tag_core_type(t.func_type_idx)?;
                                m.tag_types.push(c.clone());
                                c
                            }
                        };
                        m.imports
                            .push((import.module.to_string(), import.name.to_string(), ty));
                    }
                }
                Payload::FunctionSection(r) => {
                    for t in r {
                        m.func_types.push(t?);
                    }
                }
                Payload::TableSection(r) => {
                    for t in r {
                        m.table_types.push(table_core_type(&t?.ty));
                    }
                }
                Payload::MemorySection(r) => {
                    for t in r {
                        m.memory_types.push(memory_core_type(&t?));
                    }
                }
                Payload::GlobalSection(r) => {
                    for g in r {
                        m.global_types.push(global_core_type(&g?.ty));
                    }
                }
                Payload::TagSection(r) => {
                    for t in r {
                        let c = m.tag_core_type(t?.func_type_idx)?;
                        m.tag_types.push(c);
                    }
                }
                Payload::ExportSection(r) => {
                    for e in r {
                        let e = e?;
                        m.raw_exports.push((e.name.to_string(), e.kind, e.index));
                    }
                }
                Payload::ElementSection(r) => {
                    for e in r {
                        let e = e?;
                        let place = match &e.kind {
                            ElementKind::Active {
                                table_index,
                                offset_expr,
                            } => SegmentPlace::Active {
                                index: table_index.unwrap_or(0),
                                offset: const_place(offset_expr)?,
                            },
                            ElementKind::Passive | ElementKind::Declared => SegmentPlace::Passive,
                        };
                        let mut funcs = Vec::new();
                        match e.items {
                            ElementItems::Functions(r) => {
                                for f in r {
                                    funcs.push(Some(f?));
                                }
                            }
                            ElementItems::Expressions(_, r) => {
                                for expr in r {
                                    let expr = expr?;
                                    let mut ops = expr.get_operators_reader();
                                    funcs.push(match ops.read()? {
                                        Operator::RefFunc { function_index } => {
                                            Some(function_index)
                                        }
                                        Operator::RefNull { .. } => None,
                                        other => bail!("unsupported element expression {other:?}"),
                                    });
                                }
                            }
                        }
                        m.elem_segments.push((place, funcs));
                    }
                }
                Payload::DataSection(r) => {
                    for d in r {
                        let d = d?;
                        let place = match &d.kind {
                            DataKind::Passive => SegmentPlace::Passive,
                            DataKind::Active {
                                memory_index,
                                offset_expr,
                            } => SegmentPlace::Active {
                                index: *memory_index,
                                offset: const_place(offset_expr)?,
                            },
                        };
                        m.data_segments.push((place, d.data));
                    }
                }
                Payload::CodeSectionEntry(body) => m.bodies.push(body),
                Payload::CustomSection(c) => {
                    if let KnownCustom::Dylink0(r) = c.as_known() {
                        for sub in r {
                            match sub? {
                                Dylink0Subsection::MemInfo(mi) => {
                                    ensure!(
                                        m.mem_info.is_none(),
                                        "two dylink.0 mem-info subsections"
                                    );
                                    m.mem_info = Some(MemInfo {
                                        memory_size: mi.memory_size,
                                        memory_alignment: mi.memory_alignment,
                                        table_size: mi.table_size,
                                        table_alignment: mi.table_alignment,
                                    });
                                }
                                Dylink0Subsection::Needed(n) => {
                                    m.needed.extend(n.iter().map(|s| s.to_string()))
                                }
                                _ => {}
                            }
                        }
                    }
                }
                _ => {}
            }
        }

        for (name, kind, index) in m.raw_exports.clone() {
            let i = index as usize;
            let missing = || anyhow!("export {name:?} refers to a missing item {index}");
            let (kind, ty) = match kind {
                ExternalKind::Func | ExternalKind::FuncExact => (
                    ExportKind::Func,
                    m.func_core_type(*m.func_types.get(i).ok_or_else(missing)?)?,
                ),
                ExternalKind::Table => (
                    ExportKind::Table,
                    m.table_types.get(i).ok_or_else(missing)?.clone(),
                ),
                ExternalKind::Memory => (
                    ExportKind::Memory,
                    m.memory_types.get(i).ok_or_else(missing)?.clone(),
                ),
                ExternalKind::Global => (
                    ExportKind::Global,
                    m.global_types.get(i).ok_or_else(missing)?.clone(),
                ),
                ExternalKind::Tag => (
                    ExportKind::Tag,
                    m.tag_types.get(i).ok_or_else(missing)?.clone(),
                ),
            };
            m.exports.push((name, kind, ty));
        }
        Ok(m)
    }

    fn sig(&self, type_index: u32) -> Result<(Vec<ValTy>, Vec<ValTy>)> {
        self.types
            .get(type_index as usize)
            .cloned()
            .flatten()
            .ok_or_else(|| anyhow!("type {type_index} is not a function type"))
    }

    fn func_core_type(&self, type_index: u32) -> Result<CoreType> {
        let (params, results) = self.sig(type_index)?;
        Ok(CoreType::Func { params, results })
    }

    fn tag_core_type(&self, type_index: u32) -> Result<CoreType> {
        let (params, results) = self.sig(type_index)?;
        Ok(CoreType::Tag { params, results })
    }

    fn imported_global(&self, module: &str, name: &str) -> Result<u32> {
        let hits: Vec<usize> = self
            .global_imports
            .iter()
            .enumerate()
            .filter(|(_, (m, n))| m == module && n == name)
            .map(|(i, _)| i)
            .collect();
        match hits.as_slice() {
            [i] => Ok(*i as u32),
            [] => bail!("no imported global `{module}.{name}`"),
            _ => bail!("global `{module}.{name}` imported more than once"),
        }
    }

    fn imported_func(&self, module: &str, name: &str) -> Result<u32> {
        let hits: Vec<usize> = self
            .func_imports
            .iter()
            .enumerate()
            .filter(|(_, (m, n))| m == module && n == name)
            .map(|(i, _)| i)
            .collect();
        match hits.as_slice() {
            [i] => Ok(*i as u32),
            [] => bail!("no imported function `{module}.{name}`"),
            _ => bail!("function `{module}.{name}` imported more than once"),
        }
    }

    fn exported_func(&self, name: &str) -> Option<u32> {
        self.raw_exports
            .iter()
            .find(|(n, k, _)| {
                n == name && matches!(k, ExternalKind::Func | ExternalKind::FuncExact)
            })
            .map(|(_, _, i)| *i)
    }

    /// Body of a defined `() -> ()` function.
    fn body(&self, func: u32) -> Result<FunctionBody<'a>> {
        let n_imported = self.func_imports.len() as u32;
        ensure!(
            func >= n_imported,
            "function {func} is imported, expected a definition"
        );
        let t = self.func_types[func as usize];
        ensure!(
            self.sig(t)? == (vec![], vec![]),
            "function {func} has type {:?}, expected `() -> ()`",
            self.sig(t)?
        );
        self.bodies
            .get((func - n_imported) as usize)
            .cloned()
            .ok_or_else(|| anyhow!("no body for function {func}"))
    }

    fn describe_func(&self, func: u32) -> Result<FnRef> {
        if let Some((module, name)) = self.func_imports.get(func as usize) {
            return Ok(FnRef::Import {
                module: module.clone(),
                name: name.clone(),
            });
        }
        let t = *self
            .func_types
            .get(func as usize)
            .ok_or_else(|| anyhow!("no function {func}"))?;
        Ok(FnRef::Defined {
            signature: self.sig(t)?,
        })
    }
}

fn table_core_type(t: &wasmparser::TableType) -> CoreType {
    CoreType::Table {
        element: t.element_type.to_string(),
        table64: t.table64,
        shared: t.shared,
        initial: t.initial,
        maximum: t.maximum,
    }
}

fn memory_core_type(t: &wasmparser::MemoryType) -> CoreType {
    CoreType::Memory {
        memory64: t.memory64,
        shared: t.shared,
        initial: t.initial,
        maximum: t.maximum,
        page_size_log2: t.page_size_log2,
    }
}

fn global_core_type(g: &wasmparser::GlobalType) -> CoreType {
    CoreType::Global {
        content: g.content_type.into(),
        mutable: g.mutable,
        shared: g.shared,
    }
}

// ---------------------------------------------------------------------------
// Concrete execution of `__wasm_apply_data_relocs`
// ---------------------------------------------------------------------------

/// Runs the relocation function alone (copied with the module's global
/// imports into a tiny module) over the segment image at two pairs of
/// bases, and classifies each 4-byte word by how it moved.
fn execute_relocs(
    raw: &RawModule<'_>,
    bytes: &[u8],
    body: FunctionBody<'_>,
    segment: &[u8],
) -> Result<BTreeMap<u32, Reloc>> {
    use wasm_encoder as enc;
    let mut types = enc::TypeSection::new();
    types.ty().function([], []);
    let mut imports = enc::ImportSection::new();
    for ((module, name), mutable) in raw.global_imports.iter().zip(&raw.global_import_mutable) {
        let ty = enc::GlobalType {
            val_type: enc::ValType::I32,
            mutable: *mutable,
            shared: false,
        };
        imports.import(module, name, ty);
    }
    let mem = enc::MemoryType {
        minimum: 0,
        maximum: None,
        memory64: false,
        shared: false,
        page_size_log2: None,
    };
    imports.import("env", "memory", mem);
    let mut funcs = enc::FunctionSection::new();
    funcs.function(0);
    let mut exports = enc::ExportSection::new();
    let func_index = 0;
    exports.export("relocs", enc::ExportKind::Func, func_index);
    let mut code = enc::CodeSection::new();
    let range = body.range();
    code.raw(&bytes[range.start as usize..range.end as usize]);
    let mut module = enc::Module::new();
    module
        .section(&types)
        .section(&imports)
        .section(&funcs)
        .section(&exports)
        .section(&code);
    let wasm = module.finish();

    let engine = componentize_testkit::engine();
    let module = wasmtime::Module::new(engine, &wasm)
        .map_err(anyhow::Error::from)
        .context(
            "the relocation function does not stand alone (it may only use globals and memory)",
        )?;
    let run = |memory_base: u32, table_base: u32| -> Result<Vec<u8>> {
        let mut store = wasmtime::Store::new(engine, ());
        let pages = (u64::from(memory_base) + segment.len() as u64).div_ceil(65536) + 1;
        let memory =
            wasmtime::Memory::new(&mut store, wasmtime::MemoryType::new(pages as u32, None))?;
        memory.write(&mut store, memory_base as usize, segment)?;
        let mut linker = wasmtime::Linker::new(engine);
        for ((m, n), mutable) in raw.global_imports.iter().zip(&raw.global_import_mutable) {
            let value = match n.as_str() {
                "__memory_base" => memory_base,
                "__table_base" => table_base,
                _ => 0,
            };
            let mutability = if *mutable {
                wasmtime::Mutability::Var
            } else {
                wasmtime::Mutability::Const
            };
            let ty = wasmtime::GlobalType::new(wasmtime::ValType::I32, mutability);
            let global = wasmtime::Global::new(&mut store, ty, wasmtime::Val::I32(value as i32))?;
            linker.define(&mut store, m, n, global)?;
        }
        linker.define(&mut store, "env", "memory", memory)?;
        let instance = linker.instantiate(&mut store, &module)?;
        instance
            .get_typed_func::<(), ()>(&mut store, "relocs")?
            .call(&mut store, ())?;
        let data = memory.data(&store);
        let base = memory_base as usize;
        ensure!(
            data[..base]
                .iter()
                .chain(&data[base + segment.len()..])
                .all(|b| *b == 0),
            "relocation wrote outside the metadata segment"
        );
        Ok(data[base..base + segment.len()].to_vec())
    };
    let (m1, t1, m2, t2) = (0x1_0000u32, 16u32, 0x3_0000u32, 1000u32);
    let (a, b) = (run(m1, t1)?, run(m2, t2)?);
    let mut relocs = BTreeMap::new();
    for at in (0..segment.len() / 4 * 4).step_by(4) {
        let word = |img: &[u8]| u32::from_le_bytes(img[at..at + 4].try_into().unwrap());
        let (orig, x, y) = (word(segment), word(&a), word(&b));
        let reloc = if x == orig && y == orig {
            continue;
        } else if y.wrapping_sub(x) == m2 - m1 {
            Reloc::Data(x.wrapping_sub(m1))
        } else if y.wrapping_sub(x) == t2 - t1 {
            Reloc::Table(x.wrapping_sub(t1))
        } else {
            bail!(
                "word at segment offset {at} changes in a way no base explains ({orig:#x} -> {x:#x} / {y:#x})"
            );
        };
        ensure!(
            !matches!(reloc, Reloc::Data(k) if k as usize > segment.len()),
            "data pointer at segment offset {at} points outside the segment"
        );
        relocs.insert(at as u32, reloc);
    }
    Ok(relocs)
}

// ---------------------------------------------------------------------------
// Symbolic evaluation of `__wasm_call_ctors`
// ---------------------------------------------------------------------------

/// A symbolic i32.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Val {
    Const(i32),
    /// `__memory_base + k`
    Mem(i32),
    /// `__table_base + k`
    Table(i32),
    /// Anything else (a call result, a parameter).
    Unknown,
}

struct Machine<'m, 'a> {
    raw: &'m RawModule<'a>,
    memory_base: u32,
    table_base: u32,
    body: FunctionBody<'a>,
    locals: Vec<Val>,
    stack: Vec<Val>,
    init_func: Option<u32>,
    init_args: Vec<Val>,
}

impl<'m, 'a> Machine<'m, 'a> {
    fn new(
        raw: &'m RawModule<'a>,
        memory_base: u32,
        table_base: u32,
        body: FunctionBody<'a>,
    ) -> Result<Self> {
        let mut locals = Vec::new();
        for l in body.get_locals_reader()? {
            let (count, _) = l?;
            ensure!(count < 100_000, "implausible number of locals ({count})");
            locals.extend(std::iter::repeat_n(Val::Const(0), count as usize));
        }
        Ok(Machine {
            raw,
            memory_base,
            table_base,
            body,
            locals,
            stack: Vec::new(),
            init_func: None,
            init_args: Vec::new(),
        })
    }

    fn pop(&mut self, op: &str) -> Result<Val> {
        self.stack
            .pop()
            .ok_or_else(|| anyhow!("stack underflow at `{op}`"))
    }

    fn local(&mut self, index: u32) -> Result<&mut Val> {
        // Both functions take no parameters, so local indices are exactly
        // the declared locals.
        self.locals
            .get_mut(index as usize)
            .ok_or_else(|| anyhow!("local {index} out of range"))
    }

    fn run(&mut self) -> Result<()> {
        let mut ops = self.body.get_operators_reader()?;
        let mut ended = false;
        while !ops.eof() {
            let offset = ops.original_position();
            let op = ops.read()?;
            ensure!(!ended, "instruction {op:?} after the final `end`");
            if let Operator::Return = op {
                // Straight-line code: nothing after `return` executes.
                return Ok(());
            }
            let name = format!("{op:?}");
            let r: Result<()> = (|| {
                match op {
                    Operator::Nop => {}
                    Operator::End => ended = true,
                    Operator::I32Const { value } => self.stack.push(Val::Const(value)),
                    Operator::GlobalGet { global_index } => {
                        self.stack.push(if global_index == self.memory_base {
                            Val::Mem(0)
                        } else if global_index == self.table_base {
                            Val::Table(0)
                        } else {
                            Val::Unknown
                        });
                    }
                    Operator::LocalGet { local_index } => {
                        let v = *self.local(local_index)?;
                        self.stack.push(v);
                    }
                    Operator::LocalSet { local_index } => {
                        let v = self.pop(&name)?;
                        *self.local(local_index)? = v;
                    }
                    Operator::LocalTee { local_index } => {
                        let v = self.pop(&name)?;
                        *self.local(local_index)? = v;
                        self.stack.push(v);
                    }
                    Operator::Drop => {
                        self.pop(&name)?;
                    }
                    Operator::I32Add => {
                        let b = self.pop(&name)?;
                        let a = self.pop(&name)?;
                        self.stack.push(match (a, b) {
                            (Val::Const(x), Val::Const(y)) => Val::Const(x.wrapping_add(y)),
                            (Val::Mem(x), Val::Const(y)) | (Val::Const(y), Val::Mem(x)) => {
                                Val::Mem(x.wrapping_add(y))
                            }
                            (Val::Table(x), Val::Const(y)) | (Val::Const(y), Val::Table(x)) => {
                                Val::Table(x.wrapping_add(y))
                            }
                            (Val::Unknown, _) | (_, Val::Unknown) => Val::Unknown,
                            (a, b) => bail!("`i32.add` of {a:?} and {b:?}"),
                        });
                    }
                    Operator::I32Sub => {
                        let b = self.pop(&name)?;
                        let a = self.pop(&name)?;
                        self.stack.push(match (a, b) {
                            (Val::Const(x), Val::Const(y)) => Val::Const(x.wrapping_sub(y)),
                            (Val::Mem(x), Val::Const(y)) => Val::Mem(x.wrapping_sub(y)),
                            (Val::Table(x), Val::Const(y)) => Val::Table(x.wrapping_sub(y)),
                            (Val::Mem(x), Val::Mem(y)) | (Val::Table(x), Val::Table(y)) => {
                                Val::Const(x.wrapping_sub(y))
                            }
                            (Val::Unknown, _) | (_, Val::Unknown) => Val::Unknown,
                            (a, b) => bail!("`i32.sub` of {a:?} and {b:?}"),
                        });
                    }
                    Operator::Call { function_index } => {
                        let t = *self
                            .raw
                            .func_types
                            .get(function_index as usize)
                            .ok_or_else(|| anyhow!("call of missing function {function_index}"))?;
                        let (params, results) = self.raw.sig(t)?;
                        let mut args = Vec::new();
                        for _ in &params {
                            args.push(self.pop(&name)?);
                        }
                        args.reverse();
                        if Some(function_index) == self.init_func {
                            self.init_args.extend(args);
                        }
                        for _ in &results {
                            self.stack.push(Val::Unknown);
                        }
                    }
                    _ => bail!("unsupported instruction"),
                }
                Ok(())
            })();
            r.with_context(|| format!("at `{name}` (byte offset {offset:#x})"))?;
        }
        ensure!(ended, "function body does not end with `end`");
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Metadata reading
// ---------------------------------------------------------------------------

struct Reader<'s> {
    seg: &'s [u8],
    relocs: &'s BTreeMap<u32, Reloc>,
    elements: &'s [FnRef],
    used: BTreeSet<u32>,
}

impl<'s> Reader<'s> {
    fn len(&self) -> u32 {
        self.seg.len() as u32
    }

    /// The raw bytes of a 4-byte slot.
    fn raw(&self, off: u32) -> Result<u32> {
        let end = u64::from(off) + 4;
        ensure!(
            end <= u64::from(self.len()),
            "slot at segment offset {off} extends past the {}-byte segment",
            self.len()
        );
        let o = off as usize;
        Ok(u32::from_le_bytes(self.seg[o..o + 4].try_into().unwrap()))
    }

    /// A plain (non-pointer) 32-bit field.
    fn word(&mut self, off: u32, what: &str) -> Result<u32> {
        if let Some(r) = self.relocs.get(&off) {
            bail!("{what} (segment offset {off}) is relocated ({r:?}) but is not a pointer");
        }
        self.raw(off)
    }

    /// A data pointer: `None` for NULL, otherwise the segment offset.
    fn data_ptr(&mut self, off: u32, what: &str) -> Result<Option<u32>> {
        let raw = self.raw(off)?;
        match self.relocs.get(&off) {
            Some(Reloc::Data(target)) => {
                self.used.insert(off);
                ensure!(
                    *target <= self.len(),
                    "{what} (segment offset {off}) points to offset {target}, outside the {}-byte segment",
                    self.len()
                );
                Ok(Some(*target))
            }
            Some(Reloc::Table(i)) => {
                bail!(
                    "{what} (segment offset {off}) is a data pointer but has a table relocation (element {i})"
                )
            }
            None => {
                ensure!(
                    raw == 0,
                    "{what} (segment offset {off}) holds {raw:#x} but has no relocation"
                );
                Ok(None)
            }
        }
    }

    fn fn_ptr(&mut self, off: u32, what: &str) -> Result<FnRef> {
        let raw = self.raw(off)?;
        match self.relocs.get(&off) {
            Some(Reloc::Table(i)) => {
                self.used.insert(off);
                self.elements.get(*i as usize).cloned().ok_or_else(|| {
                    anyhow!(
                        "{what} (segment offset {off}) refers to element {i}, but the element segment has {} entries",
                        self.elements.len()
                    )
                })
            }
            Some(Reloc::Data(t)) => bail!(
                "{what} (segment offset {off}) is a function pointer but has a data relocation (offset {t})"
            ),
            None => {
                ensure!(
                    raw == 0,
                    "{what} (segment offset {off}) is a non-null function pointer ({raw:#x}) without relocation"
                );
                Ok(FnRef::Null)
            }
        }
    }

    fn opt_string(&mut self, off: u32, what: &str) -> Result<Option<String>> {
        let Some(start) = self.data_ptr(off, what)? else {
            return Ok(None);
        };
        let bytes = &self.seg[start as usize..];
        let nul = bytes.iter().position(|b| *b == 0).ok_or_else(|| {
            anyhow!("{what}: string at segment offset {start} has no NUL before the segment ends")
        })?;
        let s = std::str::from_utf8(&bytes[..nul])
            .with_context(|| format!("{what}: string at segment offset {start} is not UTF-8"))?;
        Ok(Some(s.to_string()))
    }

    fn string(&mut self, off: u32, what: &str) -> Result<String> {
        self.opt_string(off, what)?
            .ok_or_else(|| anyhow!("{what} (segment offset {off}) is NULL but required"))
    }

    fn opt_ty(&mut self, off: u32, what: &str) -> Result<Option<Ty>> {
        let code = self.word(off, what)?;
        Ty::from_code(code).with_context(|| format!("{what} (segment offset {off})"))
    }

    fn ty(&mut self, off: u32, what: &str) -> Result<Ty> {
        self.opt_ty(off, what)?
            .ok_or_else(|| anyhow!("{what} (segment offset {off}) is EMPTY but a type is required"))
    }

    /// A `(count, pointer)` pair at `off`; returns the segment offsets of the
    /// `count` elements of `elem_size` bytes each.
    fn array(&mut self, off: u32, elem_size: u32, what: &str) -> Result<Vec<u32>> {
        let count = self.word(off, &format!("{what} count"))?;
        let ptr = self.data_ptr(off + 4, &format!("{what} pointer"))?;
        if count == 0 {
            return Ok(Vec::new());
        }
        let Some(start) = ptr else {
            bail!("{what}: count is {count} but the pointer is NULL");
        };
        ensure!(
            start.is_multiple_of(4),
            "{what}: array at segment offset {start} is not 4-byte aligned"
        );
        let end = u64::from(start) + u64::from(count) * u64::from(elem_size);
        ensure!(
            end <= u64::from(self.len()),
            "{what}: {count} x {elem_size} bytes at segment offset {start} extend past the {}-byte segment",
            self.len()
        );
        Ok((0..count).map(|i| start + i * elem_size).collect())
    }

    fn types(&mut self, off: u32, what: &str) -> Result<Vec<Ty>> {
        let mut out = Vec::new();
        for (j, at) in self.array(off, 4, what)?.into_iter().enumerate() {
            out.push(self.ty(at, &format!("{what}[{j}]"))?);
        }
        Ok(out)
    }

    fn strings(&mut self, off: u32, what: &str) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for (j, at) in self.array(off, SIZE_PTR, what)?.into_iter().enumerate() {
            out.push(self.string(at, &format!("{what}[{j}]"))?);
        }
        Ok(out)
    }

    /// Decodes array `k` of `wit_t` (field pair at `wit + 4 + 8k`) with
    /// `each` on every element.
    fn table<T>(
        &mut self,
        wit: u32,
        k: u32,
        what: &str,
        size: u32,
        each: impl FnMut(&mut Entry<'_, 's>) -> Result<T>,
    ) -> Result<Vec<T>> {
        self.entries(wit + 4 + 8 * k, size, what, each)
    }

    /// Decodes the `(count, pointer)` array at `off`, of `size`-byte
    /// elements, with `each` on every element.
    fn entries<T>(
        &mut self,
        off: u32,
        size: u32,
        what: &str,
        mut each: impl FnMut(&mut Entry<'_, 's>) -> Result<T>,
    ) -> Result<Vec<T>> {
        let mut out = Vec::new();
        for (i, at) in self.array(off, size, what)?.into_iter().enumerate() {
            let label = format!("{what}[{i}]");
            let mut entry = Entry {
                r: &mut *self,
                at,
                label: &label,
            };
            out.push(each(&mut entry).with_context(|| format!("decoding {label}"))?);
        }
        Ok(out)
    }

    fn wit(&mut self, at: u32) -> Result<Decoded> {
        ensure!(
            at.is_multiple_of(4),
            "wit_t at segment offset {at} is not 4-byte aligned"
        );
        ensure!(
            u64::from(at) + u64::from(SIZE_WIT) <= u64::from(self.len()),
            "wit_t at segment offset {at} extends past the {}-byte segment",
            self.len()
        );
        let version = self.word(at, "wit_t.version")?;
        ensure!(
            version == WIT_VERSION,
            "wit_t.version is {version}; only version {WIT_VERSION} is understood"
        );

        let import_funcs = self.table(at, 0, "import_funcs", SIZE_IMPORT_FUNC, |e| {
            Ok(ImportFunc {
                interface: e.interface()?,
                name: e.read(4, "name", Reader::string)?,
                sync_impl: e.read(8, "impl", Reader::fn_ptr)?,
                async_impl: e.read(12, "async_impl", Reader::fn_ptr)?,
                async_lift_impl: e.read(16, "async_lift_impl", Reader::fn_ptr)?,
                params: e.read(20, "params", Reader::types)?,
                result: e.read(28, "result", Reader::opt_ty)?,
                async_abi_area_size: e.read(32, "async_abi_area_size", Reader::word)?,
                async_abi_area_align: e.read(36, "async_abi_area_align", Reader::word)?,
            })
        })?;
        let export_funcs = self.table(at, 1, "export_funcs", SIZE_EXPORT_FUNC, |e| {
            Ok(ExportFunc {
                interface: e.interface()?,
                name: e.read(4, "name", Reader::string)?,
                task_return: e.read(8, "task_return", Reader::fn_ptr)?,
                params: e.read(12, "params", Reader::types)?,
                result: e.read(20, "result", Reader::opt_ty)?,
            })
        })?;
        let resources = self.table(at, 2, "resources", SIZE_RESOURCE, |e| {
            Ok(Resource {
                interface: e.interface()?,
                name: e.read(4, "name", Reader::string)?,
                drop: e.read(8, "drop", Reader::fn_ptr)?,
                new: e.read(12, "new", Reader::fn_ptr)?,
                rep: e.read(16, "rep", Reader::fn_ptr)?,
            })
        })?;
        let records = self.table(at, 3, "records", SIZE_RECORD, |e| {
            Ok(Record {
                interface: e.interface()?,
                name: e.read(4, "name", Reader::string)?,
                fields: e.entries(8, SIZE_FIELD, "fields", |f| {
                    Ok((
                        f.read(0, "name", Reader::string)?,
                        f.read(4, "ty", Reader::ty)?,
                    ))
                })?,
            })
        })?;
        let named_list = |e: &mut Entry<'_, '_>| -> Result<NamedList> {
            Ok(NamedList {
                interface: e.interface()?,
                name: e.read(4, "name", Reader::string)?,
                names: e.read(8, "names", Reader::strings)?,
            })
        };
        let flags = self.table(at, 4, "flags", SIZE_FLAGS, named_list)?;
        let tuples = self.table(at, 5, "tuples", SIZE_TUPLE, |e| {
            Ok(Tuple {
                interface: e.interface()?,
                name: e.read(4, "name", Reader::opt_string)?,
                types: e.read(8, "types", Reader::types)?,
            })
        })?;
        let variants = self.table(at, 6, "variants", SIZE_VARIANT, |e| {
            Ok(Variant {
                interface: e.interface()?,
                name: e.read(4, "name", Reader::string)?,
                cases: e.entries(8, SIZE_CASE, "cases", |c| {
                    Ok((
                        c.read(0, "name", Reader::string)?,
                        c.read(4, "ty", Reader::opt_ty)?,
                    ))
                })?,
            })
        })?;
        let enums = self.table(at, 7, "enums", SIZE_ENUM, named_list)?;
        let options = self.table(at, 8, "options", SIZE_OPTION, |e| {
            Ok(OptionTy {
                interface: e.interface()?,
                name: e.read(4, "name", Reader::opt_string)?,
                ty: e.read(8, "ty", Reader::ty)?,
            })
        })?;
        let results = self.table(at, 9, "results", SIZE_RESULT, |e| {
            Ok(ResultTy {
                interface: e.interface()?,
                name: e.read(4, "name", Reader::opt_string)?,
                ok: e.read(8, "ok", Reader::opt_ty)?,
                err: e.read(12, "err", Reader::opt_ty)?,
            })
        })?;
        let lists = self.table(at, 10, "lists", SIZE_LIST, |e| {
            Ok(List {
                interface: e.interface()?,
                name: e.read(4, "name", Reader::opt_string)?,
                ty: e.read(8, "ty", Reader::ty)?,
            })
        })?;
        let maps = self.table(at, 11, "maps", SIZE_MAP, |e| {
            Ok(Map {
                interface: e.interface()?,
                name: e.read(4, "name", Reader::opt_string)?,
                key: e.read(8, "key_type", Reader::ty)?,
                value: e.read(12, "value_type", Reader::ty)?,
            })
        })?;
        let fixed_length_lists =
            self.table(at, 12, "fixed_length_lists", SIZE_FIXED_LENGTH_LIST, |e| {
                Ok(FixedLengthList {
                    interface: e.interface()?,
                    name: e.read(4, "name", Reader::opt_string)?,
                    size: e.read(8, "size", Reader::word)?,
                    ty: e.read(12, "ty", Reader::ty)?,
                })
            })?;
        let future_or_stream = |e: &mut Entry<'_, '_>| -> Result<FutureOrStream> {
            Ok(FutureOrStream {
                interface: e.interface()?,
                name: e.read(4, "name", Reader::opt_string)?,
                ty: e.read(8, "ty", Reader::opt_ty)?,
                new: e.read(12, "new", Reader::fn_ptr)?,
                read: e.read(16, "read", Reader::fn_ptr)?,
                write: e.read(20, "write", Reader::fn_ptr)?,
                cancel_read: e.read(24, "cancel_read", Reader::fn_ptr)?,
                cancel_write: e.read(28, "cancel_write", Reader::fn_ptr)?,
                drop_readable: e.read(32, "drop_readable", Reader::fn_ptr)?,
                drop_writable: e.read(36, "drop_writable", Reader::fn_ptr)?,
                lift: e.read(40, "lift", Reader::fn_ptr)?,
                lower: e.read(44, "lower", Reader::fn_ptr)?,
                abi_payload_size: e.read(48, "abi_payload_size", Reader::word)?,
                abi_payload_align: e.read(52, "abi_payload_align", Reader::word)?,
            })
        };
        let futures = self.table(at, 13, "futures", SIZE_FUTURE_OR_STREAM, future_or_stream)?;
        let streams = self.table(at, 14, "streams", SIZE_FUTURE_OR_STREAM, future_or_stream)?;
        let aliases = self.table(at, 15, "aliases", SIZE_ALIAS, |e| {
            Ok(Alias {
                interface: e.interface()?,
                name: e.read(4, "name", Reader::string)?,
                ty: e.read(8, "ty", Reader::ty)?,
            })
        })?;

        Ok(Decoded {
            version,
            import_funcs,
            export_funcs,
            resources,
            records,
            flags,
            tuples,
            variants,
            enums,
            options,
            results,
            lists,
            maps,
            fixed_length_lists,
            futures,
            streams,
            aliases,
        })
    }
}

/// One element of a metadata array being decoded: reads its fields at
/// offsets from its start, labelled `<array>[i].<field>` in errors.
struct Entry<'e, 's> {
    r: &'e mut Reader<'s>,
    at: u32,
    label: &'e str,
}

impl<'s> Entry<'_, 's> {
    fn what(&self, field: &str) -> String {
        format!("{}.{field}", self.label)
    }

    /// Field `field` at `off`, read with `read` (one of [`Reader`]'s
    /// readers).
    fn read<T>(
        &mut self,
        off: u32,
        field: &str,
        read: impl FnOnce(&mut Reader<'s>, u32, &str) -> Result<T>,
    ) -> Result<T> {
        let what = self.what(field);
        read(self.r, self.at + off, &what)
    }

    /// The `interface` every entry starts with.
    fn interface(&mut self) -> Result<Option<String>> {
        self.read(0, "interface", Reader::opt_string)
    }

    /// The nested array `field` at `off` (record fields, variant cases),
    /// decoded with `each` on every element.
    fn entries<T>(
        &mut self,
        off: u32,
        size: u32,
        field: &str,
        each: impl FnMut(&mut Entry<'_, 's>) -> Result<T>,
    ) -> Result<Vec<T>> {
        let what = self.what(field);
        self.r.entries(self.at + off, size, &what, each)
    }
}
