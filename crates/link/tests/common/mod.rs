//! Fixtures, hand-made dylibs and a wasmtime host for the link tests.

#![allow(dead_code)]

use componentize_testkit::{HostBuilder, LIBC, SYSROOT_LIB_DIR, toolchain_file, toolchain_path};
use std::borrow::Cow;
use std::path::PathBuf;
use wasm_encoder::{
    CodeSection, ConstExpr, CustomSection, DataSection, EntityType, ExportKind, ExportSection,
    Function, FunctionSection, GlobalSection, GlobalType, ImportSection, MemoryType, Module,
    RefType, TableType, TypeSection, ValType,
};
use wasmtime::Store;
use wasmtime::component::Instance;

// ---------------------------------------------------------------- fixtures

/// Where the fixture interpreter is, relative to the toolchain build.
const LIBDEMO: &str = "lib/libdemo.so";

/// The folder holding libc.so.
pub fn libc_dir() -> PathBuf {
    // Reading it first turns a missing toolchain build into a panic that
    // says how to build it.
    toolchain_file(LIBC);
    toolchain_path(SYSROOT_LIB_DIR)
}

/// libc.so's bytes.
pub fn libc() -> Vec<u8> {
    toolchain_file(LIBC).to_vec()
}

/// The fixture interpreter's file.
pub fn libdemo() -> PathBuf {
    toolchain_file(LIBDEMO);
    toolchain_path(LIBDEMO)
}

/// The fixture interpreter's bytes.
pub fn libdemo_bytes() -> Vec<u8> {
    toolchain_file(LIBDEMO).to_vec()
}

/// Bindings for a world of fixtures/link/demo.wit, made by
/// componentize-generate, with `interpreter` recorded as `needed`.
pub fn bindings(world: &str, interpreter: Option<&str>) -> Vec<u8> {
    let wit = componentize_testkit::repo_file("fixtures/link/demo.wit");
    let wit = componentize_generate::Wit::load(&wit, &Default::default()).unwrap();
    let world = wit.world(Some(world)).unwrap();
    let mut options = componentize_generate::Options::default();
    if let Some(name) = interpreter {
        options.interpreter(name);
    }
    componentize_generate::generate(&wit.resolve, world, &options)
        .unwrap()
        .into_wasm()
}

/// The usual inputs: demo bindings (needing libdemo.so), libdemo.so from
/// its file, libc.so found in the sysroot folder; no environment search.
pub fn demo_link() -> componentize_link::Link {
    let mut link = componentize_link::Link::new();
    link.search_env(false)
        .bindings("demo.so", bindings("demo", Some("libdemo.so")))
        .library_path(libdemo())
        .search_path(libc_dir());
    link
}

/// The message of an error, with its context chain.
pub fn error(link: &componentize_link::Link) -> String {
    match link.encode() {
        Ok(_) => panic!("linking succeeded; an error was expected"),
        Err(e) => format!("{e:#}"),
    }
}

/// Names of the core modules in a component (from its name section).
pub fn core_module_names(component: &[u8]) -> Vec<String> {
    let mut names = Vec::new();
    for payload in wasmparser::Parser::new(0).parse_all(component) {
        if let Ok(wasmparser::Payload::CustomSection(s)) = payload
            && let wasmparser::KnownCustom::ComponentName(reader) = s.as_known()
        {
            for sub in reader {
                if let Ok(wasmparser::ComponentName::CoreModules(map)) = sub {
                    for naming in map {
                        names.push(naming.unwrap().name.to_string());
                    }
                }
            }
        }
    }
    names
}

/// The linked library `name`; panics if it was not linked.
pub fn library<'a>(
    linked: &'a componentize_link::Linked,
    name: &str,
) -> &'a componentize_link::Library {
    linked
        .libraries()
        .iter()
        .find(|l| l.name == name)
        .unwrap_or_else(|| panic!("{name} not linked"))
}

// ---------------------------------------------------------------- dylibs

/// What a hand-made dynamic library contains.
#[derive(Default)]
pub struct Dylib<'a> {
    pub needed: Vec<&'a str>,
    /// Imported functions: (namespace, name, params, results).
    pub imports: Vec<(&'a str, &'a str, Vec<ValType>, Vec<ValType>)>,
    /// Data addresses imported from `GOT.mem`.
    pub data_imports: Vec<&'a str>,
    /// Functions `() -> i32` defined and exported: (name, body).
    pub funcs: Vec<(&'a str, Body)>,
    /// Data symbols exported (immutable i32 globals).
    pub data_exports: Vec<&'a str>,
    /// Indexes into `imports` to export again under the same name.
    pub reexports: Vec<usize>,
    /// WIT source of a package with one world to embed (`component-type`).
    pub world: Option<&'a str>,
    /// Custom sections to add: (name, contents).
    pub custom_sections: Vec<(&'a str, Vec<u8>)>,
    /// Export `_start`.
    pub start: bool,
    /// Leave out the `dylink.0` section (not a dylib).
    pub no_dylink: bool,
}

pub enum Body {
    /// Return the constant.
    Const(i32),
    /// Call import `n` (a `() -> i32` function) and add the constant.
    CallPlus(u32, i32),
}

fn dylink_section(needed: &[&str], memory_size: u32) -> Vec<u8> {
    fn leb(out: &mut Vec<u8>, mut v: u32) {
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }
    let mut out = Vec::new();
    // mem-info: memory size, memory alignment (log2), table size, table alignment.
    let mut mem = Vec::new();
    for v in [memory_size, 0, 0, 0] {
        leb(&mut mem, v);
    }
    out.push(1);
    leb(&mut out, mem.len() as u32);
    out.extend(mem);
    if !needed.is_empty() {
        let mut sub = Vec::new();
        leb(&mut sub, needed.len() as u32);
        for n in needed {
            leb(&mut sub, n.len() as u32);
            sub.extend(n.as_bytes());
        }
        out.push(2);
        leb(&mut out, sub.len() as u32);
        out.extend(sub);
    }
    out
}

fn custom_dylink(module: &mut Module, needed: &[&str], memory_size: u32) {
    module.section(&CustomSection {
        name: Cow::Borrowed("dylink.0"),
        data: Cow::Owned(dylink_section(needed, memory_size)),
    });
}

/// Embeds the only world of the WIT package `wit` into the module `bytes`
/// as its `component-type` section.
pub fn embed_world(bytes: &mut Vec<u8>, wit: &str) {
    let mut resolve = wit_parser::Resolve::default();
    let pkg = resolve.push_str("test.wit", wit).unwrap();
    let world = resolve.select_world(&[pkg], None).unwrap();
    wit_component::embed_component_metadata(
        bytes,
        &resolve,
        world,
        wit_component::StringEncoding::UTF8,
        false,
    )
    .unwrap();
}

impl Dylib<'_> {
    pub fn build(&self) -> Vec<u8> {
        let mut module = Module::new();
        if !self.no_dylink {
            custom_dylink(&mut module, &self.needed, 0);
        }
        let mut types = TypeSection::new();
        let mut imports = ImportSection::new();
        let mut ntypes = 0;
        for (ns, name, params, results) in &self.imports {
            types.ty().function(params.clone(), results.clone());
            imports.import(ns, name, EntityType::Function(ntypes));
            ntypes += 1;
        }
        for name in &self.data_imports {
            imports.import(
                "GOT.mem",
                name,
                EntityType::Global(GlobalType {
                    val_type: ValType::I32,
                    mutable: true,
                    shared: false,
                }),
            );
        }
        let nullary = ntypes;
        types.ty().function([], [ValType::I32]);
        let unit = nullary + 1;
        types.ty().function([], []);

        let mut functions = FunctionSection::new();
        let mut code = CodeSection::new();
        let mut exports = ExportSection::new();
        let nimports = self.imports.len() as u32;
        let mut index = nimports;
        for (name, body) in &self.funcs {
            functions.function(nullary);
            let mut f = Function::new([]);
            match body {
                Body::Const(c) => {
                    f.instructions().i32_const(*c).end();
                }
                Body::CallPlus(import, c) => {
                    f.instructions().call(*import).i32_const(*c).i32_add().end();
                }
            }
            code.function(&f);
            exports.export(name, ExportKind::Func, index);
            index += 1;
        }
        if self.start {
            functions.function(unit);
            let mut f = Function::new([]);
            f.instructions().end();
            code.function(&f);
            exports.export("_start", ExportKind::Func, index);
        }
        let mut globals = GlobalSection::new();
        for (i, name) in self.data_exports.iter().enumerate() {
            globals.global(
                GlobalType {
                    val_type: ValType::I32,
                    mutable: false,
                    shared: false,
                },
                &ConstExpr::i32_const(0),
            );
            let imported_globals = self.data_imports.len() as u32;
            exports.export(name, ExportKind::Global, imported_globals + i as u32);
        }
        for &i in &self.reexports {
            exports.export(self.imports[i].1, ExportKind::Func, i as u32);
        }
        module.section(&types);
        module.section(&imports);
        module.section(&functions);
        if !globals.is_empty() {
            module.section(&globals);
        }
        module.section(&exports);
        module.section(&code);
        for (name, data) in &self.custom_sections {
            module.section(&CustomSection {
                name: Cow::Borrowed(name),
                data: Cow::Borrowed(data),
            });
        }
        let mut bytes = module.finish();
        if let Some(wit) = self.world {
            embed_world(&mut bytes, wit);
        }
        bytes
    }
}

/// A library whose world exports `dl-probe: func() -> s32`, implemented as
/// `dlsym(dlopen("libcounter.so", 0), "counter_next")()`, through the
/// function table; `needed` is its `dylink.0` needed list.
pub fn dl_probe(needed: &[&str]) -> Vec<u8> {
    const DATA: &[u8] = b"libcounter.so\0counter_next\0";
    let mut module = Module::new();
    custom_dylink(&mut module, needed, DATA.len() as u32);
    let mut types = TypeSection::new();
    types
        .ty()
        .function([ValType::I32, ValType::I32], [ValType::I32]); // 0: dlopen, dlsym
    types.ty().function([], [ValType::I32]); // 1: probe, counter_next
    let mut imports = ImportSection::new();
    imports.import("env", "dlopen", EntityType::Function(0));
    imports.import("env", "dlsym", EntityType::Function(0));
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
            table64: false,
            minimum: 0,
            maximum: None,
            shared: false,
        }),
    );
    imports.import(
        "env",
        "__memory_base",
        EntityType::Global(GlobalType {
            val_type: ValType::I32,
            mutable: false,
            shared: false,
        }),
    );
    let mut functions = FunctionSection::new();
    functions.function(1);
    let mut exports = ExportSection::new();
    exports.export("dl-probe", ExportKind::Func, 2);
    let mut code = CodeSection::new();
    let mut f = Function::new([]);
    f.instructions()
        // dlopen(__memory_base, 0)
        .global_get(0)
        .i32_const(0)
        .call(0)
        // dlsym(handle, __memory_base + 14)
        .global_get(0)
        .i32_const(14)
        .i32_add()
        .call(1)
        .call_indirect(0, 1)
        .end();
    code.function(&f);
    let mut data = DataSection::new();
    data.active(0, &ConstExpr::global_get(0), DATA.iter().copied());
    module.section(&types);
    module.section(&imports);
    module.section(&functions);
    module.section(&exports);
    module.section(&code);
    module.section(&data);
    let mut bytes = module.finish();
    embed_world(
        &mut bytes,
        "package test:dl; world dl { export dl-probe: func() -> s32; }",
    );
    bytes
}

// ---------------------------------------------------------------- host

/// Compiles and instantiates a component with WASI preview 2.
pub fn instantiate(component: &[u8]) -> (Store<componentize_testkit::Host>, Instance) {
    let component = componentize_testkit::compile(component).unwrap();
    let (mut store, _output) = HostBuilder::new().store(());
    let instance = componentize_testkit::linker()
        .instantiate(&mut store, &component)
        .unwrap();
    (store, instance)
}
