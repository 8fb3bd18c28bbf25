//! The library the link stage makes for an interpreter that runs async
//! exports: `componentize_task_context_get`/`_set`, over the component
//! model's `context.get`/`context.set` of slot 0.
//!
//! An interpreter finds the task an async export's callback is for in the
//! task's context slot. Importing the built-ins itself (from `$root`) would
//! make every component it links use component-model async, sync worlds
//! too, and those would then not run where that feature is off. So it
//! imports these two functions weakly from `env` instead: in a world with
//! async exports this library defines them; in any other world it is left
//! out, and wit-component's trapping stubs stand in for functions that are
//! never called.

use crate::abi::{DYLINK_SECTION, TASK_CONTEXT_GET, TASK_CONTEXT_LIBRARY, TASK_CONTEXT_SET};
use crate::dylib::{Dylib, Wit};
use crate::report::Origin;
use anyhow::Result;
use componentize_generate::{CONTEXT_GET_0, CONTEXT_SET_0, ROOT};
use std::borrow::Cow;
use wasm_encoder::{
    CodeSection, CustomSection, EntityType, ExportKind, ExportSection, Function, FunctionSection,
    ImportSection, Module, TypeSection, ValType,
};
use wit_parser::WorldItem;

/// Adds the task-context library to `libs` when a library imports one of
/// its functions, none defines them, and a bindings world has an async
/// export.
pub fn add_if_needed(libs: &mut Vec<Dylib>) -> Result<()> {
    let wants = |l: &&Dylib| {
        l.funcs.contains_key(TASK_CONTEXT_GET) || l.funcs.contains_key(TASK_CONTEXT_SET)
    };
    let Some(needed_by) = libs.iter().find(wants).map(|l| l.name.clone()) else {
        return Ok(());
    };
    let defined = libs.iter().any(|l| {
        l.exports.contains_key(TASK_CONTEXT_GET) || l.exports.contains_key(TASK_CONTEXT_SET)
    });
    let async_exports = libs
        .iter()
        .filter_map(|l| l.wit.as_ref())
        .any(has_async_export);
    if defined || !async_exports {
        return Ok(());
    }
    let origin = Origin::Provided { needed_by };
    libs.push(Dylib::read(
        "library",
        TASK_CONTEXT_LIBRARY.into(),
        module(),
        origin,
    )?);
    Ok(())
}

/// Whether the world exports an `async func` (at the world level, in an
/// interface, or as a resource's method).
fn has_async_export(wit: &Wit) -> bool {
    let world = &wit.resolve.worlds[wit.world];
    world.exports.values().any(|item| match item {
        WorldItem::Function(f) => f.kind.is_async(),
        WorldItem::Interface { id, .. } => wit.resolve.interfaces[*id]
            .functions
            .values()
            .any(|f| f.kind.is_async()),
        WorldItem::Type { .. } => false,
    })
}

/// The module: a `dylink.0` section with no memory or table, the two
/// built-ins imported from `$root`, and the two functions calling them.
fn module() -> Vec<u8> {
    // Memory info: memory size, memory alignment, table size, table
    // alignment, all zero.
    const MEM_INFO: u8 = 1;
    let dylink = CustomSection {
        name: Cow::Borrowed(DYLINK_SECTION),
        data: Cow::Borrowed(&[MEM_INFO, 4, 0, 0, 0, 0]),
    };
    let mut types = TypeSection::new();
    types.ty().function([], [ValType::I32]);
    types.ty().function([ValType::I32], []);
    let mut imports = ImportSection::new();
    imports.import(ROOT, CONTEXT_GET_0, EntityType::Function(0));
    imports.import(ROOT, CONTEXT_SET_0, EntityType::Function(1));
    let mut functions = FunctionSection::new();
    functions.function(0);
    functions.function(1);
    let mut exports = ExportSection::new();
    exports.export(TASK_CONTEXT_GET, ExportKind::Func, 2);
    exports.export(TASK_CONTEXT_SET, ExportKind::Func, 3);
    let mut code = CodeSection::new();
    let mut get = Function::new([]);
    get.instructions().call(0).end();
    code.function(&get);
    let mut set = Function::new([]);
    set.instructions().local_get(0).call(1).end();
    code.function(&set);
    let mut module = Module::new();
    module
        .section(&dylink)
        .section(&types)
        .section(&imports)
        .section(&functions)
        .section(&exports)
        .section(&code);
    module.finish()
}
