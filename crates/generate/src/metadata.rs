//! The `wit_t` metadata (version 3 of `wit_dylib.h`) and its encoding into
//! one data segment.
//!
//! Layout of the segment (every structure is made of little-endian 4-byte
//! words, as on wasm32):
//!
//! ```text
//! [wit_t][tables and their arrays ...][string pool][data bitmap][table bitmap]
//! ```
//!
//! `wit_t` sits at offset 0, so the pointer handed to `wit_dylib_initialize`
//! is `__memory_base` itself. Pointer words hold segment offsets and function
//! pointer words hold element-segment indices; the two bitmaps (one bit per
//! word of the structure part) say which words `__wasm_apply_data_relocs` must
//! rebase by `__memory_base` and which by `__table_base`. A loop over bitmaps
//! keeps that function a constant ~60 bytes instead of ~12 bytes per pointer.

use std::collections::HashMap;

/// `WIT_CURRENT_VERSION` of `wit_dylib.h`.
pub const VERSION: u32 = 3;

/// `wit_type_t` kinds (`WIT_TYPE_*`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u32)]
pub enum Kind {
    U8 = 0,
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
    Record,
    Own,
    Borrow,
    Flags,
    Tuple,
    Variant,
    Enum,
    Option,
    Result,
    List,
    Map,
    FixedLengthList,
    Future,
    Stream,
    Alias,
}

/// How many entries one metadata table may hold: a [`Code`] keeps the index
/// in its upper 24 bits.
pub const MAX_TYPES_OF_ONE_KIND: usize = 1 << 24;

/// A `wit_type_t`: kind in the low byte, table index above it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Code(u32);

impl Code {
    /// `0xffff_ffff`: no type (absent result or payload).
    pub const EMPTY: u32 = u32::MAX;

    pub fn new(kind: Kind, index: u32) -> Code {
        // `Plan::new` refuses a resolve with that many types.
        assert!(
            (index as usize) < MAX_TYPES_OF_ONE_KIND,
            "more than 2^24 types of one kind"
        );
        Code(kind as u32 | (index << 8))
    }

    pub fn index(self) -> u32 {
        self.0 >> 8
    }

    /// The `wit_type_t` value.
    pub fn raw(self) -> u32 {
        self.0
    }

    fn or_empty(code: Option<Code>) -> u32 {
        code.map_or(Code::EMPTY, |c| c.0)
    }
}

/// Code of a primitive WIT type, `None` for `Type::Id`.
pub fn primitive_code(ty: &wit_parser::Type) -> Option<Code> {
    use wit_parser::Type as T;
    let kind = match ty {
        T::U8 => Kind::U8,
        T::U16 => Kind::U16,
        T::U32 => Kind::U32,
        T::U64 => Kind::U64,
        T::S8 => Kind::S8,
        T::S16 => Kind::S16,
        T::S32 => Kind::S32,
        T::S64 => Kind::S64,
        T::Bool => Kind::Bool,
        T::Char => Kind::Char,
        T::F32 => Kind::F32,
        T::F64 => Kind::F64,
        T::String => Kind::String,
        T::ErrorContext => Kind::ErrorContext,
        T::Id(_) => return None,
    };
    Some(Code::new(kind, 0))
}

/// A function pointer stored in the metadata.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum FuncRef {
    Null,
    /// The n-th host import of the plan (resource and future/stream
    /// built-ins).
    HostImport(u32),
    /// The adapter of the n-th world import function.
    Adapter(u32),
    /// The result lift of the n-th world import function (async only).
    LiftResults(u32),
    /// The `task.return` adapter of the n-th export (async only).
    TaskReturn(u32),
    /// The item lift of the plan's n-th future/stream payload.
    PayloadLift(u32),
    /// The item lower of the plan's n-th future/stream payload.
    PayloadLower(u32),
}

pub struct ImportFunc {
    pub interface: Option<String>,
    pub name: String,
    pub adapter: u32,
    /// For an async import, the size and alignment of the area its
    /// adapter and result lift share.
    pub async_area: Option<(u32, u32)>,
    pub params: Vec<Code>,
    pub result: Option<Code>,
}

pub struct ExportFunc {
    pub interface: Option<String>,
    pub name: String,
    pub task_return: FuncRef,
    pub params: Vec<Code>,
    pub result: Option<Code>,
}

/// The kind-specific part of a `wit_future_t` or `wit_stream_t`.
pub struct TransmitEntry {
    pub payload: Option<Code>,
    /// new, read, write, cancel-read, cancel-write, drop-readable,
    /// drop-writable, item lift, item lower.
    pub funcs: [FuncRef; 9],
    pub size: u32,
    pub align: u32,
}

pub struct Resource {
    pub interface: Option<String>,
    pub name: String,
    pub drop: FuncRef,
    pub new: FuncRef,
    pub rep: FuncRef,
}

/// One entry of a type table: `interface`, `name`, then kind-specific words.
struct Entry {
    interface: Option<String>,
    name: Option<String>,
    body: Body,
}

enum Body {
    /// `nfields, fields` where a field is `{name, ty}` (records, variants).
    Named(Vec<(String, u32)>),
    /// `n, names` (flags, enums).
    Names(Vec<String>),
    /// `n, types` (tuples).
    Types(Vec<u32>),
    /// Plain words (options, results, lists, maps, fixed-length lists, aliases).
    Words(Vec<u32>),
    /// `ty`, nine function pointers, size, alignment (futures, streams).
    Transmit(TransmitEntry),
}

/// The tables of `wit_t`, in the order of the struct's fields.
const TABLES: usize = 13;
const RECORDS: usize = 0;
const FLAGS: usize = 1;
const TUPLES: usize = 2;
const VARIANTS: usize = 3;
const ENUMS: usize = 4;
const OPTIONS: usize = 5;
const RESULTS: usize = 6;
const LISTS: usize = 7;
const MAPS: usize = 8;
const FIXED_LENGTH_LISTS: usize = 9;
const FUTURES: usize = 10;
const STREAMS: usize = 11;
const ALIASES: usize = 12;

#[derive(Default)]
pub struct Metadata {
    pub import_funcs: Vec<ImportFunc>,
    pub export_funcs: Vec<ExportFunc>,
    pub resources: Vec<Resource>,
    tables: [Vec<Entry>; TABLES],
}

impl Metadata {
    fn push(&mut self, table: usize, kind: Kind, entry: Entry) -> Code {
        let list = &mut self.tables[table];
        list.push(entry);
        Code::new(kind, list.len() as u32 - 1)
    }

    pub fn push_record(
        &mut self,
        interface: Option<String>,
        name: String,
        fields: Vec<(String, Code)>,
    ) -> Code {
        let body = Body::Named(fields.into_iter().map(|(n, c)| (n, c.0)).collect());
        self.push(
            RECORDS,
            Kind::Record,
            Entry {
                interface,
                name: Some(name),
                body,
            },
        )
    }

    pub fn push_flags(
        &mut self,
        interface: Option<String>,
        name: String,
        names: Vec<String>,
    ) -> Code {
        self.push(
            FLAGS,
            Kind::Flags,
            Entry {
                interface,
                name: Some(name),
                body: Body::Names(names),
            },
        )
    }

    pub fn push_tuple(
        &mut self,
        interface: Option<String>,
        name: Option<String>,
        types: Vec<Code>,
    ) -> Code {
        let body = Body::Types(types.into_iter().map(|c| c.0).collect());
        self.push(
            TUPLES,
            Kind::Tuple,
            Entry {
                interface,
                name,
                body,
            },
        )
    }

    pub fn push_variant(
        &mut self,
        interface: Option<String>,
        name: String,
        cases: Vec<(String, Option<Code>)>,
    ) -> Code {
        let body = Body::Named(
            cases
                .into_iter()
                .map(|(n, c)| (n, Code::or_empty(c)))
                .collect(),
        );
        self.push(
            VARIANTS,
            Kind::Variant,
            Entry {
                interface,
                name: Some(name),
                body,
            },
        )
    }

    pub fn push_enum(
        &mut self,
        interface: Option<String>,
        name: String,
        names: Vec<String>,
    ) -> Code {
        self.push(
            ENUMS,
            Kind::Enum,
            Entry {
                interface,
                name: Some(name),
                body: Body::Names(names),
            },
        )
    }

    pub fn push_option(
        &mut self,
        interface: Option<String>,
        name: Option<String>,
        ty: Code,
    ) -> Code {
        self.push(
            OPTIONS,
            Kind::Option,
            Entry {
                interface,
                name,
                body: Body::Words(vec![ty.0]),
            },
        )
    }

    pub fn push_result(
        &mut self,
        interface: Option<String>,
        name: Option<String>,
        ok: Option<Code>,
        err: Option<Code>,
    ) -> Code {
        let body = Body::Words(vec![Code::or_empty(ok), Code::or_empty(err)]);
        self.push(
            RESULTS,
            Kind::Result,
            Entry {
                interface,
                name,
                body,
            },
        )
    }

    pub fn push_list(&mut self, interface: Option<String>, name: Option<String>, ty: Code) -> Code {
        self.push(
            LISTS,
            Kind::List,
            Entry {
                interface,
                name,
                body: Body::Words(vec![ty.0]),
            },
        )
    }

    pub fn push_map(
        &mut self,
        interface: Option<String>,
        name: Option<String>,
        key: Code,
        value: Code,
    ) -> Code {
        let body = Body::Words(vec![key.0, value.0]);
        self.push(
            MAPS,
            Kind::Map,
            Entry {
                interface,
                name,
                body,
            },
        )
    }

    pub fn push_fixed_length_list(
        &mut self,
        interface: Option<String>,
        name: Option<String>,
        len: u32,
        ty: Code,
    ) -> Code {
        let body = Body::Words(vec![len, ty.0]);
        self.push(
            FIXED_LENGTH_LISTS,
            Kind::FixedLengthList,
            Entry {
                interface,
                name,
                body,
            },
        )
    }

    pub fn push_transmit(
        &mut self,
        transmit: crate::abi::Transmit,
        interface: Option<String>,
        name: Option<String>,
        entry: TransmitEntry,
    ) -> Code {
        let (table, kind) = match transmit {
            crate::abi::Transmit::Future => (FUTURES, Kind::Future),
            crate::abi::Transmit::Stream => (STREAMS, Kind::Stream),
        };
        self.push(
            table,
            kind,
            Entry {
                interface,
                name,
                body: Body::Transmit(entry),
            },
        )
    }

    pub fn push_alias(&mut self, interface: Option<String>, name: String, ty: Code) -> Code {
        self.push(
            ALIASES,
            Kind::Alias,
            Entry {
                interface,
                name: Some(name),
                body: Body::Words(vec![ty.0]),
            },
        )
    }

    /// Encodes the segment. `elem` maps a function pointer to its index in
    /// the module's element segment.
    pub fn encode(&self, elem: impl Fn(FuncRef) -> Option<u32>) -> Encoded {
        let mut w = Writer::default();
        // wit_t: version + 16 (count, pointer) pairs.
        w.word(VERSION);
        let header = w.words.len();
        w.words.resize(header + 32, 0);
        let mut slot = header;
        let mut array = |w: &mut Writer, count: usize, write: &mut dyn FnMut(&mut Writer)| {
            w.words[slot] = count as u32;
            if count > 0 {
                let at = w.words.len();
                write(w);
                w.point(slot + 1, at);
            }
            slot += 2;
        };

        array(&mut w, self.import_funcs.len(), &mut |w| {
            let starts: Vec<usize> = self
                .import_funcs
                .iter()
                .map(|f| {
                    let at = w.words.len();
                    w.opt_str(f.interface.as_deref());
                    w.str(&f.name);
                    let adapter = elem(FuncRef::Adapter(f.adapter));
                    match f.async_area {
                        None => {
                            w.func(adapter);
                            w.word(0); // async_impl
                            w.word(0); // async_lift_impl
                        }
                        Some(_) => {
                            w.word(0); // impl
                            w.func(adapter);
                            w.func(elem(FuncRef::LiftResults(f.adapter)));
                        }
                    }
                    w.word(f.params.len() as u32);
                    w.word(0); // params, patched below
                    w.word(Code::or_empty(f.result));
                    let (size, align) = f.async_area.unwrap_or((0, 0));
                    w.word(size);
                    w.word(align);
                    at
                })
                .collect();
            for (f, at) in self.import_funcs.iter().zip(starts) {
                w.code_array(at + 6, f.params.iter().map(|c| c.0));
            }
        });
        array(&mut w, self.export_funcs.len(), &mut |w| {
            let starts: Vec<usize> = self
                .export_funcs
                .iter()
                .map(|f| {
                    let at = w.words.len();
                    w.opt_str(f.interface.as_deref());
                    w.str(&f.name);
                    w.func(elem(f.task_return));
                    w.word(f.params.len() as u32);
                    w.word(0);
                    w.word(Code::or_empty(f.result));
                    at
                })
                .collect();
            for (f, at) in self.export_funcs.iter().zip(starts) {
                w.code_array(at + 4, f.params.iter().map(|c| c.0));
            }
        });
        array(&mut w, self.resources.len(), &mut |w| {
            for r in &self.resources {
                w.opt_str(r.interface.as_deref());
                w.str(&r.name);
                for f in [r.drop, r.new, r.rep] {
                    w.func(elem(f));
                }
            }
        });
        for table in &self.tables {
            array(&mut w, table.len(), &mut |w| w.entries(table, &elem));
        }
        w.finish()
    }
}

/// The encoded segment and what `__wasm_apply_data_relocs` needs to know.
pub struct Encoded {
    pub bytes: Vec<u8>,
    /// Number of words covered by the bitmaps.
    pub words: u32,
    pub data_bitmap: u32,
    pub table_bitmap: u32,
}

#[derive(Default)]
struct Writer {
    words: Vec<u32>,
    data_relocs: Vec<usize>,
    table_relocs: Vec<usize>,
    /// (word, string index) pairs patched once the pool's offset is known.
    string_refs: Vec<(usize, usize)>,
    strings: Vec<u8>,
    string_offsets: HashMap<String, usize>,
    interned: Vec<usize>,
}

impl Writer {
    fn word(&mut self, w: u32) {
        self.words.push(w);
    }

    /// Makes word `at` a pointer to word `target`.
    fn point(&mut self, at: usize, target: usize) {
        self.words[at] = (target * 4) as u32;
        self.data_relocs.push(at);
    }

    fn str(&mut self, s: &str) {
        let index = match self.string_offsets.get(s) {
            Some(&i) => i,
            None => {
                let i = self.interned.len();
                self.interned.push(self.strings.len());
                self.strings.extend_from_slice(s.as_bytes());
                self.strings.push(0);
                self.string_offsets.insert(s.to_string(), i);
                i
            }
        };
        self.string_refs.push((self.words.len(), index));
        self.words.push(0);
    }

    fn opt_str(&mut self, s: Option<&str>) {
        match s {
            Some(s) => self.str(s),
            None => self.word(0),
        }
    }

    fn func(&mut self, elem: Option<u32>) {
        match elem {
            Some(e) => {
                self.table_relocs.push(self.words.len());
                self.word(e);
            }
            None => self.word(0),
        }
    }

    /// Writes an array of type codes and points word `slot` at it (NULL if
    /// empty).
    fn code_array(&mut self, slot: usize, codes: impl ExactSizeIterator<Item = u32>) {
        if codes.len() == 0 {
            return;
        }
        let at = self.words.len();
        self.words.extend(codes);
        self.point(slot, at);
    }

    fn entries(&mut self, table: &[Entry], elem: &dyn Fn(FuncRef) -> Option<u32>) {
        let mut nested = Vec::new();
        for e in table {
            self.opt_str(e.interface.as_deref());
            self.opt_str(e.name.as_deref());
            match &e.body {
                Body::Named(items) => {
                    self.word(items.len() as u32);
                    nested.push(self.words.len());
                    self.word(0);
                }
                Body::Names(items) => {
                    self.word(items.len() as u32);
                    nested.push(self.words.len());
                    self.word(0);
                }
                Body::Types(items) => {
                    self.word(items.len() as u32);
                    nested.push(self.words.len());
                    self.word(0);
                }
                Body::Words(words) => self.words.extend(words),
                Body::Transmit(t) => {
                    self.word(Code::or_empty(t.payload));
                    for f in t.funcs {
                        self.func(elem(f));
                    }
                    self.word(t.size);
                    self.word(t.align);
                }
            }
        }
        let mut slots = nested.into_iter();
        for e in table {
            match &e.body {
                Body::Named(items) => {
                    let slot = slots.next().unwrap();
                    if !items.is_empty() {
                        let at = self.words.len();
                        for (name, code) in items {
                            self.str(name);
                            self.word(*code);
                        }
                        self.point(slot, at);
                    }
                }
                Body::Names(items) => {
                    let slot = slots.next().unwrap();
                    if !items.is_empty() {
                        let at = self.words.len();
                        for name in items {
                            self.str(name);
                        }
                        self.point(slot, at);
                    }
                }
                Body::Types(items) => {
                    let slot = slots.next().unwrap();
                    self.code_array(slot, items.iter().copied());
                }
                Body::Words(_) | Body::Transmit(_) => {}
            }
        }
    }

    fn finish(mut self) -> Encoded {
        let pool = self.words.len() * 4;
        for (at, index) in std::mem::take(&mut self.string_refs) {
            self.words[at] = (pool + self.interned[index]) as u32;
            self.data_relocs.push(at);
        }
        let nwords = self.words.len();
        let mut bytes: Vec<u8> = self.words.iter().flat_map(|w| w.to_le_bytes()).collect();
        bytes.extend_from_slice(&self.strings);
        bytes.resize(bytes.len().next_multiple_of(4), 0);
        let bitmap_words = nwords.div_ceil(32);
        let bitmap = |relocs: &[usize], bytes: &mut Vec<u8>| {
            let mut bits = vec![0u32; bitmap_words];
            for &r in relocs {
                bits[r / 32] |= 1 << (r % 32);
            }
            let at = bytes.len() as u32;
            bytes.extend(bits.iter().flat_map(|w| w.to_le_bytes()));
            at
        };
        let data_bitmap = bitmap(&self.data_relocs, &mut bytes);
        let table_bitmap = bitmap(&self.table_relocs, &mut bytes);
        Encoded {
            bytes,
            words: nwords as u32,
            data_bitmap,
            table_bitmap,
        }
    }
}
