//! Encode: assemble the planned module (imports, generated functions,
//! element and data segments, `dylink.0`, names).

use crate::codegen::{Emitter, Loc, Local, needs_scratch};
use crate::metadata::{Encoded, FuncRef};
use crate::plan::{Plan, Side, legacy_sync};
use std::collections::HashMap;
use wasm_encoder::{
    BlockType, CodeSection, ConstExpr, CustomSection, DataSection, ElementSection, Elements,
    EntityType, ExportKind, ExportSection, Function, FunctionSection, GlobalSection, GlobalType,
    ImportSection, MemArg, MemoryType, Module, NameMap, NameSection, RefType, TableType,
    TypeSection, ValType,
};
use wit_parser::abi::AbiVariant;
use wit_parser::{Type, WasmExport, WasmExportKind};

macro_rules! intrinsics {
    ($($variant:ident = $name:literal : [$($p:ident)*] -> [$($r:ident)*],)*) => {
        /// The interpreter interface, imported from `env` in this order (the
        /// order and signatures of wit-dylib 0.263's `bindgen.rs`); the
        /// discriminant is the function index.
        #[derive(Clone, Copy, PartialEq, Eq, Debug)]
        // All are imported; the async and future/stream ones are not called
        // until async support lands.
        #[allow(dead_code)]
        pub enum Intrinsic { $($variant,)* }

        const INTRINSICS: &[(&str, &[ValType], &[ValType])] = &[
            $(($name, &[$(ValType::$p),*], &[$(ValType::$r),*]),)*
        ];
    };
}

intrinsics! {
    Initialize = "wit_dylib_initialize": [I32] -> [],
    CabiRealloc = "cabi_realloc": [I32 I32 I32 I32] -> [I32],
    DeallocBytes = "wit_dylib_dealloc_bytes": [I32 I32 I32 I32 I32] -> [],
    ExportStart = "wit_dylib_export_start": [I32] -> [I32],
    ExportCall = "wit_dylib_export_call": [I32 I32] -> [],
    ExportAsyncCall = "wit_dylib_export_async_call": [I32 I32] -> [I32],
    ExportAsyncCallback = "wit_dylib_export_async_callback": [I32 I32 I32 I32] -> [I32],
    ExportFinish = "wit_dylib_export_finish": [I32 I32] -> [],
    ResourceDtor = "wit_dylib_resource_dtor": [I32 I32] -> [],
    PopU8 = "wit_dylib_pop_u8": [I32] -> [I32],
    PopU16 = "wit_dylib_pop_u16": [I32] -> [I32],
    PopU32 = "wit_dylib_pop_u32": [I32] -> [I32],
    PopU64 = "wit_dylib_pop_u64": [I32] -> [I64],
    PopS8 = "wit_dylib_pop_s8": [I32] -> [I32],
    PopS16 = "wit_dylib_pop_s16": [I32] -> [I32],
    PopS32 = "wit_dylib_pop_s32": [I32] -> [I32],
    PopS64 = "wit_dylib_pop_s64": [I32] -> [I64],
    PopBool = "wit_dylib_pop_bool": [I32] -> [I32],
    PopChar = "wit_dylib_pop_char": [I32] -> [I32],
    PopF32 = "wit_dylib_pop_f32": [I32] -> [F32],
    PopF64 = "wit_dylib_pop_f64": [I32] -> [F64],
    PopFlags = "wit_dylib_pop_flags": [I32 I32] -> [I32],
    PopEnum = "wit_dylib_pop_enum": [I32 I32] -> [I32],
    PopBorrow = "wit_dylib_pop_borrow": [I32 I32] -> [I32],
    PopOwn = "wit_dylib_pop_own": [I32 I32] -> [I32],
    PopFuture = "wit_dylib_pop_future": [I32 I32] -> [I32],
    PopStream = "wit_dylib_pop_stream": [I32 I32] -> [I32],
    PopRecord = "wit_dylib_pop_record": [I32 I32] -> [],
    PopTuple = "wit_dylib_pop_tuple": [I32 I32] -> [],
    PopVariant = "wit_dylib_pop_variant": [I32 I32] -> [I32],
    PopOption = "wit_dylib_pop_option": [I32 I32] -> [I32],
    PopResult = "wit_dylib_pop_result": [I32 I32] -> [I32],
    PopString = "wit_dylib_pop_string": [I32 I32] -> [I32],
    PopList = "wit_dylib_pop_list": [I32 I32 I32] -> [I32],
    PopListIterNext = "wit_dylib_pop_list_iter_next": [I32 I32] -> [],
    PopListIter = "wit_dylib_pop_list_iter": [I32 I32] -> [],
    PopMap = "wit_dylib_pop_map": [I32 I32] -> [I32],
    PopMapIterNext = "wit_dylib_pop_map_iter_next": [I32 I32] -> [],
    PopMapIter = "wit_dylib_pop_map_iter": [I32 I32] -> [],
    PushBool = "wit_dylib_push_bool": [I32 I32] -> [],
    PushChar = "wit_dylib_push_char": [I32 I32] -> [],
    PushU8 = "wit_dylib_push_u8": [I32 I32] -> [],
    PushS8 = "wit_dylib_push_s8": [I32 I32] -> [],
    PushU16 = "wit_dylib_push_u16": [I32 I32] -> [],
    PushS16 = "wit_dylib_push_s16": [I32 I32] -> [],
    PushU32 = "wit_dylib_push_u32": [I32 I32] -> [],
    PushS32 = "wit_dylib_push_s32": [I32 I32] -> [],
    PushU64 = "wit_dylib_push_u64": [I32 I64] -> [],
    PushS64 = "wit_dylib_push_s64": [I32 I64] -> [],
    PushF32 = "wit_dylib_push_f32": [I32 F32] -> [],
    PushF64 = "wit_dylib_push_f64": [I32 F64] -> [],
    PushString = "wit_dylib_push_string": [I32 I32 I32] -> [],
    PushRecord = "wit_dylib_push_record": [I32 I32] -> [],
    PushTuple = "wit_dylib_push_tuple": [I32 I32] -> [],
    PushFlags = "wit_dylib_push_flags": [I32 I32 I32] -> [],
    PushEnum = "wit_dylib_push_enum": [I32 I32 I32] -> [],
    PushBorrow = "wit_dylib_push_borrow": [I32 I32 I32] -> [],
    PushOwn = "wit_dylib_push_own": [I32 I32 I32] -> [],
    PushFuture = "wit_dylib_push_future": [I32 I32 I32] -> [],
    PushStream = "wit_dylib_push_stream": [I32 I32 I32] -> [],
    PushVariant = "wit_dylib_push_variant": [I32 I32 I32] -> [],
    PushOption = "wit_dylib_push_option": [I32 I32 I32] -> [],
    PushResult = "wit_dylib_push_result": [I32 I32 I32] -> [],
    PushList = "wit_dylib_push_list": [I32 I32 I32 I32] -> [I32],
    ListAppend = "wit_dylib_list_append": [I32 I32] -> [],
    PushMap = "wit_dylib_push_map": [I32 I32 I32] -> [],
    MapAppend = "wit_dylib_map_append": [I32 I32] -> [],
}

// Imported globals, in import order.
const TABLE_BASE: u32 = 0;
const MEMORY_BASE: u32 = 1;
const STACK_POINTER: u32 = 2;
/// Defined global: the `cx` of the export whose post-return is pending.
const EXPORT_CX: u32 = 3;

/// Direction of a memory helper.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Helper {
    Lift,
    Lower,
}

struct Defined {
    ty: u32,
    name: String,
    body: Option<Function>,
    export: bool,
}

/// Accumulates types and functions; function indices are final on creation.
pub struct ModuleBuilder {
    types: Vec<(Vec<ValType>, Vec<ValType>)>,
    type_index: HashMap<(Vec<ValType>, Vec<ValType>), u32>,
    imported_funcs: u32,
    defined: Vec<Defined>,
    helpers: HashMap<(Helper, Type, u32), u32>,
    pending: Vec<(u32, Helper, Side, Type)>,
}

impl ModuleBuilder {
    fn ty(&mut self, params: &[ValType], results: &[ValType]) -> u32 {
        let key = (params.to_vec(), results.to_vec());
        if let Some(&i) = self.type_index.get(&key) {
            return i;
        }
        let i = self.types.len() as u32;
        self.types.push(key.clone());
        self.type_index.insert(key, i);
        i
    }

    fn declare(
        &mut self,
        name: String,
        params: &[ValType],
        results: &[ValType],
        export: bool,
    ) -> u32 {
        let ty = self.ty(params, results);
        self.defined.push(Defined {
            ty,
            name,
            body: None,
            export,
        });
        self.imported_funcs + self.defined.len() as u32 - 1
    }

    fn define(&mut self, index: u32, body: Function) {
        self.defined[(index - self.imported_funcs) as usize].body = Some(body);
    }

    /// The function index of the `(cx, addr) -> ()` helper lifting or
    /// lowering `ty` in memory, created on first use.
    pub fn helper(&mut self, plan: &Plan<'_>, dir: Helper, side: Side, ty: Type) -> u32 {
        // Keyed by the metadata code: types kept from the import side for
        // exports share one registration, hence one helper.
        let key = (dir, ty, plan.code(side, &ty).raw());
        if let Some(&i) = self.helpers.get(&key) {
            return i;
        }
        let name = format!(
            "{} {}",
            match dir {
                Helper::Lift => "lift",
                Helper::Lower => "lower",
            },
            type_name(plan, &ty)
        );
        let i = self.declare(name, &[ValType::I32, ValType::I32], &[], false);
        self.helpers.insert(key, i);
        self.pending.push((i, dir, side, ty));
        i
    }

    fn drain_helpers(&mut self, plan: &Plan<'_>) {
        while let Some((index, dir, side, ty)) = self.pending.pop() {
            let mut e = Emitter::new(plan, self, side, 2);
            e.set_cx(0);
            let loc = Loc::Mem { addr: 1, offset: 0 };
            match dir {
                Helper::Lift => e.lift(&ty, &loc, true),
                Helper::Lower => e.lower(&ty, &loc, true),
            }
            let body = e.finish();
            self.define(index, body);
        }
    }
}

fn type_name(plan: &Plan<'_>, ty: &Type) -> String {
    match ty {
        Type::Id(id) => {
            let def = &plan.resolve.types[*id];
            match &def.name {
                Some(name) => name.clone(),
                None => format!("{}#{}", def.kind.as_str(), id.index()),
            }
        }
        other => format!("{other:?}"),
    }
}

/// Builds the whole module.
pub fn encode(plan: &Plan<'_>, interpreter: Option<&str>) -> Vec<u8> {
    let mut m = ModuleBuilder {
        types: Vec::new(),
        type_index: HashMap::new(),
        imported_funcs: 0,
        defined: Vec::new(),
        helpers: HashMap::new(),
        pending: Vec::new(),
    };
    let mut imports = ImportSection::new();
    // Names of defined functions only, for backtraces: imports already
    // carry their names.
    let mut func_names = NameMap::new();
    for (name, params, results) in INTRINSICS {
        let ty = m.ty(params, results);
        imports.import("env", name, EntityType::Function(ty));
        m.imported_funcs += 1;
    }
    let host_base = m.imported_funcs;
    for h in &plan.host_imports {
        let ty = m.ty(&h.params, &h.results);
        imports.import(&h.module, &h.name, EntityType::Function(ty));
        m.imported_funcs += 1;
    }
    let const_i32 = GlobalType {
        val_type: ValType::I32,
        mutable: false,
        shared: false,
    };
    imports.import("env", "__table_base", EntityType::Global(const_i32));
    imports.import("env", "__memory_base", EntityType::Global(const_i32));
    imports.import(
        "env",
        "__stack_pointer",
        EntityType::Global(GlobalType {
            mutable: true,
            ..const_i32
        }),
    );
    imports.import(
        "env",
        "memory",
        EntityType::Memory(MemoryType {
            minimum: 0,
            maximum: None,
            memory64: false,
            shared: false,
            page_size_log2: None,
        }),
    );
    imports.import(
        "env",
        "__indirect_function_table",
        EntityType::Table(TableType {
            element_type: RefType::FUNCREF,
            minimum: 0,
            maximum: None,
            table64: false,
            shared: false,
        }),
    );

    // Element segment: resource intrinsics, then import adapters.
    let mut elems: Vec<u32> = Vec::new();
    let mut host_elem = HashMap::new();
    for (i, h) in plan.host_imports.iter().enumerate() {
        if h.in_table {
            host_elem.insert(i as u32, elems.len() as u32);
            elems.push(host_base + i as u32);
        }
    }
    let adapter_elem = elems.len() as u32;
    for import in &plan.imports {
        let name = format!("adapter {}", qualified(plan, import.key, &import.func.name));
        let index = m.declare(name, &[ValType::I32], &[], false);
        elems.push(index);
    }

    let encoded = plan.metadata.encode(|f| match f {
        FuncRef::Null => None,
        FuncRef::HostImport(i) => Some(host_elem[&i]),
        FuncRef::Adapter(i) => Some(adapter_elem + i),
    });
    // The return area of exports follows the metadata, 8-byte aligned.
    let ret_area_offset = (encoded.bytes.len() as u32).next_multiple_of(8);
    let ret_area_size = plan
        .exports
        .iter()
        .filter_map(|e| e.func.result)
        .map(|t| plan.sizes.size(&t).size_wasm32() as u32)
        .max()
        .unwrap_or(0);

    for i in 0..plan.imports.len() {
        let body = import_adapter(plan, &mut m, i, host_base);
        m.define(m.imported_funcs + i as u32, body);
    }
    for (which, export) in plan.exports.iter().enumerate() {
        let resolve = plan.resolve;
        let sig = resolve.wasm_signature(AbiVariant::GuestExport, export.func);
        let params: Vec<ValType> = sig
            .params
            .iter()
            .map(|t| crate::codegen::val_type(*t))
            .collect();
        let results: Vec<ValType> = sig
            .results
            .iter()
            .map(|t| crate::codegen::val_type(*t))
            .collect();
        let name = |kind| {
            resolve.wasm_export_name(
                legacy_sync(),
                WasmExport::Func {
                    interface: export.key,
                    func: export.func,
                    kind,
                },
            )
        };
        let index = m.declare(name(WasmExportKind::Normal), &params, &results, true);
        let body = export_function(plan, &mut m, which, &params, ret_area_offset);
        m.define(index, body);
        let post = m.declare(name(WasmExportKind::PostReturn), &results, &[], true);
        let mut f = Function::new([]);
        f.instructions()
            .global_get(EXPORT_CX)
            .i32_const(which as i32)
            .call(Intrinsic::ExportFinish as u32)
            .end();
        m.define(post, f);
    }
    for r in &plan.exported_resources {
        let name = plan.resolve.wasm_export_name(
            legacy_sync(),
            WasmExport::ResourceDtor {
                interface: r.key,
                resource: r.id,
            },
        );
        let index = m.declare(name, &[ValType::I32], &[], true);
        let mut f = Function::new([]);
        f.instructions()
            .i32_const(r.index as i32)
            .local_get(0)
            .call(Intrinsic::ResourceDtor as u32)
            .end();
        m.define(index, f);
    }
    let relocs = m.declare("__wasm_apply_data_relocs".into(), &[], &[], true);
    m.define(relocs, apply_relocs(&encoded));
    let ctors = m.declare("__wasm_call_ctors".into(), &[], &[], true);
    let mut f = Function::new([]);
    f.instructions()
        .global_get(MEMORY_BASE)
        .call(Intrinsic::Initialize as u32)
        .end();
    m.define(ctors, f);
    m.drain_helpers(plan);

    // Sections.
    let mut types = TypeSection::new();
    for (p, r) in &m.types {
        types.ty().function(p.iter().copied(), r.iter().copied());
    }
    let mut functions = FunctionSection::new();
    let mut code = CodeSection::new();
    let mut exports = ExportSection::new();
    exports.export(
        "cabi_realloc",
        ExportKind::Func,
        Intrinsic::CabiRealloc as u32,
    );
    for (i, d) in m.defined.iter().enumerate() {
        let index = m.imported_funcs + i as u32;
        functions.function(d.ty);
        code.function(d.body.as_ref().expect("every declared function is defined"));
        func_names.append(index, &d.name);
        if d.export {
            exports.export(&d.name, ExportKind::Func, index);
        }
    }
    let mut globals = GlobalSection::new();
    globals.global(
        GlobalType {
            val_type: ValType::I32,
            mutable: true,
            shared: false,
        },
        &ConstExpr::i32_const(0),
    );
    let mut elements = ElementSection::new();
    if !elems.is_empty() {
        elements.active(
            Some(0),
            &ConstExpr::global_get(TABLE_BASE),
            Elements::Functions(elems.as_slice().into()),
        );
    }
    let mut data = DataSection::new();
    data.active(
        0,
        &ConstExpr::global_get(MEMORY_BASE),
        encoded.bytes.iter().copied(),
    );

    let mut global_names = NameMap::new();
    for (i, n) in [
        "__table_base",
        "__memory_base",
        "__stack_pointer",
        "export_cx",
    ]
    .iter()
    .enumerate()
    {
        global_names.append(i as u32, n);
    }
    let mut names = NameSection::new();
    names.functions(&func_names);
    names.globals(&global_names);

    let mut module = Module::new();
    module.section(&CustomSection {
        name: "dylink.0".into(),
        data: dylink0(
            ret_area_offset + ret_area_size,
            elems.len() as u32,
            interpreter,
        )
        .into(),
    });
    module.section(&types);
    module.section(&imports);
    module.section(&functions);
    module.section(&globals);
    module.section(&exports);
    if !elems.is_empty() {
        module.section(&elements);
    }
    module.section(&code);
    module.section(&data);
    module.section(&names);
    module.finish()
}

fn qualified(plan: &Plan<'_>, key: Option<&wit_parser::WorldKey>, name: &str) -> String {
    match key {
        Some(k) => format!("{}#{name}", plan.resolve.name_world_key(k)),
        None => name.to_string(),
    }
}

/// `dylink.0` with a mem-info subsection and, when given, `needed`.
fn dylink0(memory_size: u32, table_size: u32, needed: Option<&str>) -> Vec<u8> {
    use wasm_encoder::Encode;
    let mut mem_info = Vec::new();
    memory_size.encode(&mut mem_info);
    3u32.encode(&mut mem_info); // alignment 2^3: the export return area holds 8-byte values
    table_size.encode(&mut mem_info);
    0u32.encode(&mut mem_info);
    let mut out = vec![1u8]; // WASM_DYLINK_MEM_INFO
    mem_info.encode(&mut out);
    if let Some(name) = needed {
        let mut sub = Vec::new();
        1u32.encode(&mut sub);
        name.encode(&mut sub);
        out.push(2); // WASM_DYLINK_NEEDED
        sub.encode(&mut out);
    }
    out
}

/// Rebases the pointer words the bitmaps mark (see `metadata`).
fn apply_relocs(enc: &Encoded) -> Function {
    let mut f = Function::new([(2, ValType::I32)]);
    let (i, p) = (0, 1);
    let mut ins = f.instructions();
    ins.block(BlockType::Empty).loop_(BlockType::Empty);
    ins.local_get(i)
        .i32_const(enc.words as i32)
        .i32_ge_u()
        .br_if(1);
    ins.global_get(MEMORY_BASE)
        .local_get(i)
        .i32_const(2)
        .i32_shl()
        .i32_add()
        .local_set(p);
    for (bitmap, base) in [
        (enc.data_bitmap, MEMORY_BASE),
        (enc.table_bitmap, TABLE_BASE),
    ] {
        // bit i of the bitmap: word (i >> 5), bit (i & 31) (shr_u masks it).
        ins.global_get(MEMORY_BASE)
            .local_get(i)
            .i32_const(5)
            .i32_shr_u()
            .i32_const(2)
            .i32_shl()
            .i32_add()
            .i32_load(MemArg {
                offset: bitmap.into(),
                align: 2,
                target: wasm_encoder::MemArgTarget::Memory(0),
                ordering: None,
            })
            .local_get(i)
            .i32_shr_u()
            .i32_const(1)
            .i32_and()
            .if_(BlockType::Empty)
            .local_get(p)
            .local_get(p)
            .i32_load(MemArg {
                offset: 0,
                align: 2,
                target: wasm_encoder::MemArgTarget::Memory(0),
                ordering: None,
            })
            .global_get(base)
            .i32_add()
            .i32_store(MemArg {
                offset: 0,
                align: 2,
                target: wasm_encoder::MemArgTarget::Memory(0),
                ordering: None,
            })
            .end();
    }
    ins.local_get(i).i32_const(1).i32_add().local_set(i).br(0);
    ins.end().end().end();
    f
}

/// `adapter f(cx)`: pops the arguments, calls the host import, pushes the
/// result. Indirect parameters, the return area and the scratch slot live in
/// a shadow-stack frame, allocated only when needed (an interpreter may call
/// imports re-entrantly while values are popped, so static areas won't do).
fn import_adapter(plan: &Plan<'_>, m: &mut ModuleBuilder, i: usize, host_base: u32) -> Function {
    let import = &plan.imports[i];
    let resolve = plan.resolve;
    let func = import.func;
    let sig = resolve.wasm_signature(AbiVariant::GuestImport, func);
    let param_types: Vec<Type> = func.params.iter().map(|p| p.ty).collect();

    let scratch = !sig.indirect_params && param_types.iter().any(|t| needs_scratch(resolve, t));
    let mut size: u32 = if scratch { 4 } else { 0 };
    let mut area = |layout: wit_parser::ElementInfo| {
        let off = size.next_multiple_of(layout.align.align_wasm32() as u32);
        size = off + layout.size.size_wasm32() as u32;
        off
    };
    let params_off = sig
        .indirect_params
        .then(|| area(plan.sizes.record(&param_types)));
    let ret_off = sig
        .retptr
        .then(|| area(plan.sizes.record(func.result.iter())));
    let frame = size.next_multiple_of(16);

    let mut e = Emitter::new(plan, m, Side::Import, 1);
    e.set_cx(0);
    let fp = (frame > 0).then(|| {
        let fp = e.local(ValType::I32);
        e.ins()
            .global_get(STACK_POINTER)
            .i32_const(frame as i32)
            .i32_sub()
            .local_tee(fp.idx)
            .global_set(STACK_POINTER);
        fp.idx
    });
    if scratch {
        e.set_temp(fp.unwrap(), 0);
    }
    let mut args: Vec<Local> = Vec::new();
    if let Some(off) = params_off {
        let loc = Loc::Mem {
            addr: fp.unwrap(),
            offset: off,
        };
        for (t, l) in param_types.iter().zip(e.fields(&loc, &param_types)) {
            e.lower(t, &l, false);
        }
    } else {
        let flat_params = &sig.params[..sig.params.len() - usize::from(sig.retptr)];
        args = flat_params
            .iter()
            .map(|t| e.local(crate::codegen::val_type(*t)))
            .collect();
        let loc = Loc::Flat(args.clone());
        for (t, l) in param_types.iter().zip(e.fields(&loc, &param_types)) {
            e.lower(t, &l, false);
        }
    }
    if let Some(off) = params_off {
        e.ins()
            .local_get(fp.unwrap())
            .i32_const(off as i32)
            .i32_add();
    }
    for a in &args {
        e.ins().local_get(a.idx);
    }
    if let Some(off) = ret_off {
        e.ins()
            .local_get(fp.unwrap())
            .i32_const(off as i32)
            .i32_add();
    }
    e.ins().call(host_base + import.import as u32);
    if let Some(result) = &func.result {
        match ret_off {
            Some(off) => e.lift(
                result,
                &Loc::Mem {
                    addr: fp.unwrap(),
                    offset: off,
                },
                false,
            ),
            None => {
                let r = e.local(crate::codegen::val_type(sig.results[0]));
                e.ins().local_set(r.idx);
                e.lift(result, &Loc::Flat(vec![r]), false);
            }
        }
    }
    if let Some(fp) = fp {
        e.ins()
            .local_get(fp)
            .i32_const(frame as i32)
            .i32_add()
            .global_set(STACK_POINTER);
    }
    e.finish()
}

/// An export: lifts the arguments onto a fresh `cx`, runs the interpreter,
/// lowers the result into flat form or the static return area, and keeps
/// `cx` for the post-return. Sync exports never re-enter an instance, so one
/// static area serves all of them.
fn export_function(
    plan: &Plan<'_>,
    m: &mut ModuleBuilder,
    which: usize,
    params: &[ValType],
    ret_area_offset: u32,
) -> Function {
    let export = &plan.exports[which];
    let resolve = plan.resolve;
    let func = export.func;
    let sig = resolve.wasm_signature(AbiVariant::GuestExport, func);
    let param_types: Vec<Type> = func.params.iter().map(|p| p.ty).collect();
    let mut e = Emitter::new(plan, m, export.side, params.len() as u32);
    let cx = e.local(ValType::I32);
    e.ins()
        .i32_const(which as i32)
        .call(Intrinsic::ExportStart as u32)
        .local_set(cx.idx);
    e.set_cx(cx.idx);
    let loc = if sig.indirect_params {
        Loc::Mem { addr: 0, offset: 0 }
    } else {
        Loc::Flat(
            params
                .iter()
                .enumerate()
                .map(|(i, ty)| Local {
                    idx: i as u32,
                    ty: *ty,
                })
                .collect(),
        )
    };
    for (t, l) in param_types.iter().zip(e.fields(&loc, &param_types)) {
        e.lift(t, &l, false);
    }
    if sig.indirect_params {
        // The caller allocated the argument record; its values now belong
        // to the interpreter, so the record itself is freed here.
        let layout = plan.sizes.record(&param_types);
        e.ins()
            .local_get(cx.idx)
            .local_get(0)
            .i32_const(layout.size.size_wasm32() as i32)
            .i32_const(layout.align.align_wasm32() as i32)
            .i32_const(0)
            .call(Intrinsic::DeallocBytes as u32);
    }
    e.ins()
        .local_get(cx.idx)
        .i32_const(which as i32)
        .call(Intrinsic::ExportCall as u32);
    let result = match &func.result {
        None => None,
        Some(t) if sig.retptr => {
            let area = e.local(ValType::I32);
            e.ins()
                .global_get(MEMORY_BASE)
                .i32_const(ret_area_offset as i32)
                .i32_add()
                .local_set(area.idx);
            e.lower(
                t,
                &Loc::Mem {
                    addr: area.idx,
                    offset: 0,
                },
                false,
            );
            Some(area)
        }
        Some(t) => {
            let r = e.local(crate::codegen::val_type(sig.results[0]));
            e.lower(t, &Loc::Flat(vec![r]), false);
            Some(r)
        }
    };
    e.ins().local_get(cx.idx).global_set(EXPORT_CX);
    if let Some(r) = result {
        e.ins().local_get(r.idx);
    }
    e.finish()
}
