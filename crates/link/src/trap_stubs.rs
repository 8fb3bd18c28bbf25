//! The library standing in for the intrinsics an interpreter lacks: one
//! function per missing intrinsic, which traps. Unlike the stubs
//! wit-component makes for other missing functions, each one is named in
//! the module's name section, so the backtrace of the trap says which
//! intrinsic was called (`componentize:missing-intrinsics!wit_dylib_push_map`).

use crate::abi::INTRINSIC_STUBS_LIBRARY;
use crate::dylib::FuncSig;
use anyhow::{Result, bail};
use std::collections::BTreeMap;
use wasm_encoder::{
    CodeSection, ExportKind, ExportSection, Function, FunctionSection, Module, NameMap,
    NameSection, TypeSection, ValType,
};

/// The module defining and exporting each of `funcs` (name -> type) as a
/// function that traps. It needs no memory, table or `dylink.0` section:
/// wit-component links its own stub module the same way.
pub fn library(funcs: &BTreeMap<String, FuncSig>) -> Result<Vec<u8>> {
    let mut types = TypeSection::new();
    let mut functions = FunctionSection::new();
    let mut exports = ExportSection::new();
    let mut code = CodeSection::new();
    let mut names = NameMap::new();
    for (index, (name, sig)) in (0u32..).zip(funcs) {
        types.ty().function(
            val_types(name, &sig.params)?,
            val_types(name, &sig.results)?,
        );
        functions.function(index);
        exports.export(name, ExportKind::Func, index);
        let mut body = Function::new([]);
        body.instructions().unreachable().end();
        code.function(&body);
        names.append(index, name);
    }
    let mut name_section = NameSection::new();
    name_section.module(INTRINSIC_STUBS_LIBRARY);
    name_section.functions(&names);
    let mut module = Module::new();
    module
        .section(&types)
        .section(&functions)
        .section(&exports)
        .section(&code)
        .section(&name_section);
    Ok(module.finish())
}

/// The wasm-encoder form of the number types intrinsics take and return.
fn val_types(name: &str, types: &[wasmparser::ValType]) -> Result<Vec<ValType>> {
    types
        .iter()
        .map(|t| match t {
            wasmparser::ValType::I32 => Ok(ValType::I32),
            wasmparser::ValType::I64 => Ok(ValType::I64),
            wasmparser::ValType::F32 => Ok(ValType::F32),
            wasmparser::ValType::F64 => Ok(ValType::F64),
            wasmparser::ValType::V128 => Ok(ValType::V128),
            other => bail!("cannot stub `{name}`: it is imported with the type {other}, and intrinsics take and return numbers only"),
        })
        .collect()
}
