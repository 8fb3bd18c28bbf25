//! Section assembly: declares every function in its final order, has
//! `bindgen` generate the bodies, and lays out the module with its element
//! and data segments, `dylink.0`, `__wasm_apply_data_relocs` and the name
//! section.

use crate::Options;
use crate::abi::{self, Intrinsic, val_types};
use crate::bindgen;
use crate::builder::{Globals, Helper, ModuleBuilder};
use crate::metadata::{Encoded, FuncRef};
use crate::plan::Plan;
use std::collections::HashMap;
use wasm_encoder::{
    BlockType, ConstExpr, CustomSection, DataSection, ElementSection, Elements, Function, MemArg,
    Module, NameSection, ValType,
};
use wit_parser::{WasmExport, WasmExportKind, WorldKey};

/// Builds the whole module; [`Options::interpreter`] is recorded as
/// `needed`.
pub fn module(plan: &Plan<'_>, options: &Options) -> Vec<u8> {
    let mut m = ModuleBuilder::new(plan, options.async_options.stack_pointer);

    // Element segment: host built-ins, then import adapters (and the result
    // lifts of async ones), then the `task.return`s of async exports, then
    // future/stream item lifts and lowers. Functions are declared here, in
    // final index order, and defined below.
    let mut elems: Vec<u32> = Vec::new();
    let mut elem_of: HashMap<FuncRef, u32> = HashMap::new();
    let mut in_table = |elems: &mut Vec<u32>, f: FuncRef, index: u32| {
        elem_of.insert(f, elems.len() as u32);
        elems.push(index);
    };
    for (i, h) in plan.host_imports.iter().enumerate() {
        if h.in_table {
            in_table(&mut elems, FuncRef::HostImport(i as u32), m.host_import(i));
        }
    }
    let mut adapters = Vec::new();
    for (i, import) in plan.imports.iter().enumerate() {
        let name = qualified(plan, import.key, &import.func.name);
        let (params, results): (&[ValType], &[ValType]) = match import.is_async {
            true => (&[ValType::I32, ValType::I32], &[ValType::I32]),
            false => (&[ValType::I32], &[]),
        };
        let adapter = m.declare(format!("adapter {name}"), params, results, false);
        in_table(&mut elems, FuncRef::Adapter(i as u32), adapter);
        let lift = import.is_async.then(|| {
            let f = m.declare(
                format!("lift results {name}"),
                &[ValType::I32; 2],
                &[],
                false,
            );
            in_table(&mut elems, FuncRef::LiftResults(i as u32), f);
            f
        });
        adapters.push((adapter, lift));
    }
    let mut task_returns = Vec::new();
    for (which, export) in plan.exports.iter().enumerate() {
        if export.task_return.is_some() {
            let name = qualified(plan, export.key, &export.func.name);
            let f = m.declare(format!("task.return {name}"), &[ValType::I32], &[], false);
            in_table(&mut elems, FuncRef::TaskReturn(which as u32), f);
            task_returns.push((which, f));
        }
    }
    let mut payloads = Vec::new();
    for (p, payload) in plan.payloads.iter().enumerate() {
        let p = p as u32;
        for (dir, verb, f) in [
            (Helper::Lift, "lift", FuncRef::PayloadLift(p)),
            (Helper::Lower, "lower", FuncRef::PayloadLower(p)),
        ] {
            let name = payload.function_name(verb);
            let index = m.declare(name, &[ValType::I32; 2], &[], false);
            in_table(&mut elems, f, index);
            payloads.push((p as usize, dir, index));
        }
    }

    let encoded = plan.metadata.encode(|f| elem_of.get(&f).copied());
    // The return area of sync exports follows the metadata, 8-byte aligned.
    let ret_area_offset = (encoded.bytes.len() as u32).next_multiple_of(8);
    let ret_area_size = plan
        .exports
        .iter()
        .filter(|e| e.task_return.is_none())
        .filter_map(|e| e.func.result)
        .map(|t| plan.sizes.size(&t).size_wasm32() as u32)
        .max()
        .unwrap_or(0);

    for (i, (adapter, lift)) in adapters.into_iter().enumerate() {
        let body = bindgen::import_adapter(plan, &mut m, i);
        m.define(adapter, body);
        if let Some(lift) = lift {
            let body = bindgen::lift_results(plan, &mut m, i);
            m.define(lift, body);
        }
    }
    for (which, index) in task_returns {
        let body = bindgen::task_return(plan, &mut m, which);
        m.define(index, body);
    }
    for (p, dir, index) in payloads {
        let body = bindgen::payload(plan, &mut m, p, dir);
        m.define(index, body);
    }
    for (which, export) in plan.exports.iter().enumerate() {
        let resolve = plan.resolve;
        let sig = export.signature(resolve);
        let params = val_types(&sig.params);
        let results = val_types(&sig.results);
        let name = |kind| {
            resolve.wasm_export_name(
                abi::mangling(export.task_return.is_some()),
                WasmExport::Func {
                    interface: export.key,
                    func: export.func,
                    kind,
                },
            )
        };
        // The export's body may declare helpers: the post-return (or
        // callback) follows them.
        let index = m.declare(name(WasmExportKind::Normal), &params, &results, true);
        let body = bindgen::export_function(plan, &mut m, which, &params, ret_area_offset);
        m.define(index, body);
        if export.task_return.is_some() {
            let callback = m.declare(
                name(WasmExportKind::Callback),
                &[ValType::I32; 3],
                &[ValType::I32],
                true,
            );
            m.define(callback, bindgen::export_callback(&m, which));
        } else {
            let post = m.declare(name(WasmExportKind::PostReturn), &results, &[], true);
            m.define(post, bindgen::post_return(&m, which));
        }
    }
    for r in &plan.exported_resources {
        let name = plan.resolve.wasm_export_name(
            abi::RESOURCE_MANGLING,
            WasmExport::ResourceDtor {
                interface: r.key,
                resource: r.id,
            },
        );
        let index = m.declare(name, &[ValType::I32], &[], true);
        m.define(index, bindgen::resource_dtor(&m, r.index));
    }
    let relocs = m.declare(abi::APPLY_DATA_RELOCS.into(), &[], &[], true);
    m.define(relocs, apply_relocs(&encoded, m.global));
    let ctors = m.declare(abi::CALL_CTORS.into(), &[], &[], true);
    m.define(ctors, bindgen::call_ctors(&m));
    bindgen::define_helpers(plan, &mut m);
    // The canonical ABI calls `cabi_realloc` of the bindings: the
    // interpreter's, re-exported under its own name.
    m.reexport(
        Intrinsic::CabiRealloc.name(),
        m.intrinsic(Intrinsic::CabiRealloc),
    );

    let globals = m.global;
    let sections = m.finish();
    let mut elements = ElementSection::new();
    if !elems.is_empty() {
        elements.active(
            Some(0),
            &ConstExpr::global_get(globals.table_base),
            Elements::Functions(elems.as_slice().into()),
        );
    }
    let mut data = DataSection::new();
    data.active(
        0,
        &ConstExpr::global_get(globals.memory_base),
        encoded.bytes.iter().copied(),
    );
    let mut names = NameSection::new();
    names.module(abi::BINDINGS_MODULE_NAME);
    names.functions(&sections.function_names);
    names.globals(&sections.global_names);

    let mut module = Module::new();
    module.section(&CustomSection {
        name: abi::DYLINK_SECTION.into(),
        data: dylink0(
            ret_area_offset + ret_area_size,
            elems.len() as u32,
            options.interpreter.as_deref(),
        )
        .into(),
    });
    module.section(&sections.types);
    module.section(&sections.imports);
    module.section(&sections.functions);
    module.section(&sections.globals);
    module.section(&sections.exports);
    if !elems.is_empty() {
        module.section(&elements);
    }
    module.section(&sections.code);
    module.section(&data);
    module.section(&names);
    module.finish()
}

/// `f` or `a:b/c#f`, for function names.
fn qualified(plan: &Plan<'_>, key: Option<&WorldKey>, name: &str) -> String {
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
    abi::DYLINK_MEMORY_ALIGN_LOG2.encode(&mut mem_info);
    table_size.encode(&mut mem_info);
    0u32.encode(&mut mem_info); // table alignment
    let mut out = vec![abi::DYLINK_MEM_INFO];
    mem_info.encode(&mut out);
    if let Some(name) = needed {
        let mut sub = Vec::new();
        1u32.encode(&mut sub); // one library
        name.encode(&mut sub);
        out.push(abi::DYLINK_NEEDED);
        sub.encode(&mut out);
    }
    out
}

fn memarg(offset: u32) -> MemArg {
    MemArg {
        offset: offset.into(),
        align: 2,
        target: wasm_encoder::MemArgTarget::Memory(0),
        ordering: None,
    }
}

/// Rebases the pointer words the bitmaps mark (see `metadata`).
fn apply_relocs(enc: &Encoded, globals: Globals) -> Function {
    let mut f = Function::new([(2, ValType::I32)]);
    let (i, p) = (0, 1);
    let mut ins = f.instructions();
    ins.block(BlockType::Empty).loop_(BlockType::Empty);
    ins.local_get(i)
        .i32_const(enc.words as i32)
        .i32_ge_u()
        .br_if(1);
    ins.global_get(globals.memory_base)
        .local_get(i)
        .i32_const(2)
        .i32_shl()
        .i32_add()
        .local_set(p);
    for (bitmap, base) in [
        (enc.data_bitmap, globals.memory_base),
        (enc.table_bitmap, globals.table_base),
    ] {
        // bit i of the bitmap: word (i >> 5), bit (i & 31) (shr_u masks it).
        ins.global_get(globals.memory_base)
            .local_get(i)
            .i32_const(5)
            .i32_shr_u()
            .i32_const(2)
            .i32_shl()
            .i32_add()
            .i32_load(memarg(bitmap))
            .local_get(i)
            .i32_shr_u()
            .i32_const(1)
            .i32_and()
            .if_(BlockType::Empty)
            .local_get(p)
            .local_get(p)
            .i32_load(memarg(0))
            .global_get(base)
            .i32_add()
            .i32_store(memarg(0))
            .end();
    }
    ins.local_get(i).i32_const(1).i32_add().local_set(i).br(0);
    ins.end().end().end();
    f
}
