//! The library the link stage makes for an interpreter that runs async
//! exports: `componentize_task_context_get`/`_set` over the component
//! model's `context.get`/`context.set` of slot 0, the waitable-set and
//! subtask built-ins an async import's caller waits with, and the two that
//! cancel: `subtask.cancel` (of an import call) and `task.cancel` (of the
//! export's own task, once its caller cancelled it).
//!
//! An interpreter finds the task an async export's callback is for in the
//! task's context slot. Importing the built-ins itself (from `$root`) would
//! make every component it links use component-model async, sync worlds
//! too, and those would then not run where that feature is off. So it
//! imports these functions weakly from `env` instead: in a world with
//! async exports this library defines them; in any other world it is left
//! out, and wit-component's trapping stubs stand in for functions that are
//! never called.

use crate::abi::{DYLINK_SECTION, TASK_BUILTINS, TASK_CONTEXT_LIBRARY};
use crate::dylib::{Dylib, Wit};
use crate::report::Origin;
use anyhow::Result;
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
    let names = || TASK_BUILTINS.iter().map(|b| b.name);
    let wants = |l: &&Dylib| names().any(|name| l.funcs.contains_key(name));
    let Some(needed_by) = libs.iter().find(wants).map(|l| l.name.clone()) else {
        return Ok(());
    };
    let defined = libs
        .iter()
        .any(|l| names().any(|name| l.exports.contains_key(name)));
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

/// The module: a `dylink.0` section with no memory or table, the
/// built-ins imported from `$root` (or `[export]$root`), and one function
/// calling each.
fn module() -> Vec<u8> {
    // Memory info: memory size, memory alignment, table size, table
    // alignment, all zero.
    const MEM_INFO: u8 = 1;
    let dylink = CustomSection {
        name: Cow::Borrowed(DYLINK_SECTION),
        data: Cow::Borrowed(&[MEM_INFO, 4, 0, 0, 0, 0]),
    };
    let mut types = TypeSection::new();
    let mut imports = ImportSection::new();
    let mut functions = FunctionSection::new();
    let mut exports = ExportSection::new();
    let mut code = CodeSection::new();
    let count = TASK_BUILTINS.len() as u32;
    for (index, b) in (0u32..).zip(&TASK_BUILTINS) {
        types
            .ty()
            .function(vec![ValType::I32; b.params], vec![ValType::I32; b.results]);
        imports.import(b.module, b.builtin, EntityType::Function(index));
        functions.function(index);
        exports.export(b.name, ExportKind::Func, count + index);
        let mut body = Function::new([]);
        let mut instructions = body.instructions();
        for param in 0..b.params as u32 {
            instructions.local_get(param);
        }
        instructions.call(index).end();
        code.function(&body);
    }
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
