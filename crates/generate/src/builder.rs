//! The module's index spaces: types, imported and defined functions, and
//! globals. Indices are final when handed out, so function bodies can call
//! functions that are declared but not yet defined (helpers, post-returns).

use crate::StackPointer;
use crate::abi::{self, Intrinsic};
use crate::plan::{Plan, Side};
use std::collections::HashMap;
use wasm_encoder::{
    CodeSection, ConstExpr, EntityType, ExportKind, ExportSection, Function, FunctionSection,
    GlobalSection, GlobalType, ImportSection, InstructionSink, MemoryType, NameMap, RefType,
    TableType, TypeSection, ValType,
};
use wit_parser::Type;

/// Direction of a memory helper.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Helper {
    /// Reads a value from memory and pushes it to the interpreter.
    Lift,
    /// Pops a value from the interpreter and writes it to memory.
    Lower,
}

/// A helper declared but whose body is still to be generated.
pub struct PendingHelper {
    pub index: u32,
    pub dir: Helper,
    pub side: Side,
    pub ty: Type,
}

/// Global indices.
#[derive(Clone, Copy)]
pub struct Globals {
    /// `__table_base` (imported).
    pub table_base: u32,
    /// `__memory_base` (imported).
    pub memory_base: u32,
    /// Defined: the `cx` of the export whose post-return is pending.
    pub export_cx: u32,
}

/// How the generated code reads and writes the shadow stack pointer.
#[derive(Clone, Copy)]
pub enum StackPointerAccess {
    /// The imported `__stack_pointer` global.
    Global(u32),
    /// The imported `context.get`/`context.set` of slot 0.
    TaskContext { get: u32, set: u32 },
}

impl StackPointerAccess {
    /// Pushes the stack pointer.
    pub fn get(self, ins: &mut InstructionSink<'_>) {
        match self {
            StackPointerAccess::Global(g) => ins.global_get(g),
            StackPointerAccess::TaskContext { get, .. } => ins.call(get),
        };
    }

    /// Pops the new stack pointer.
    pub fn set(self, ins: &mut InstructionSink<'_>) {
        match self {
            StackPointerAccess::Global(g) => ins.global_set(g),
            StackPointerAccess::TaskContext { set, .. } => ins.call(set),
        };
    }
}

struct Defined {
    ty: u32,
    name: String,
    body: Option<Function>,
    export: bool,
}

/// The sections the index spaces make up, for `encode`.
pub struct Sections {
    pub types: TypeSection,
    pub imports: ImportSection,
    pub functions: FunctionSection,
    pub globals: GlobalSection,
    pub exports: ExportSection,
    pub code: CodeSection,
    /// Names of defined functions only (imports carry their names).
    pub function_names: NameMap,
    pub global_names: NameMap,
}

/// Accumulates types, imports, globals and functions.
pub struct ModuleBuilder {
    types: Vec<(Vec<ValType>, Vec<ValType>)>,
    type_index: HashMap<(Vec<ValType>, Vec<ValType>), u32>,
    imports: ImportSection,
    imported_funcs: u32,
    intrinsics: HashMap<Intrinsic, u32>,
    host_imports: Vec<u32>,
    globals: GlobalSection,
    global_names: NameMap,
    global_count: u32,
    /// The module's globals.
    pub global: Globals,
    /// Where the shadow stack pointer is.
    pub stack_pointer: StackPointerAccess,
    defined: Vec<Defined>,
    reexports: Vec<(&'static str, u32)>,
    helpers: HashMap<(Helper, Type, u32), u32>,
    pending: Vec<PendingHelper>,
}

impl ModuleBuilder {
    /// Imports the interpreter interface, the plan's host imports, and the
    /// dynamic linker's globals (or the task-context built-ins holding the
    /// stack pointer), memory and table, in that order.
    pub fn new(plan: &Plan<'_>, stack_pointer: StackPointer) -> ModuleBuilder {
        let mut m = ModuleBuilder {
            types: Vec::new(),
            type_index: HashMap::new(),
            imports: ImportSection::new(),
            imported_funcs: 0,
            intrinsics: HashMap::new(),
            host_imports: Vec::new(),
            globals: GlobalSection::new(),
            global_names: NameMap::new(),
            global_count: 0,
            global: Globals {
                table_base: 0,
                memory_base: 0,
                export_cx: 0,
            },
            stack_pointer: StackPointerAccess::Global(0),
            defined: Vec::new(),
            reexports: Vec::new(),
            helpers: HashMap::new(),
            pending: Vec::new(),
        };
        for &intrinsic in Intrinsic::ALL {
            let (params, results) = intrinsic.signature();
            let index = m.import_func(abi::ENV, intrinsic.name(), params, results);
            m.intrinsics.insert(intrinsic, index);
        }
        for h in &plan.host_imports {
            let index = m.import_func(&h.module, &h.name, &h.params, &h.results);
            m.host_imports.push(index);
        }
        let const_i32 = GlobalType {
            val_type: ValType::I32,
            mutable: false,
            shared: false,
        };
        let mut_i32 = GlobalType {
            mutable: true,
            ..const_i32
        };
        m.global.table_base = m.import_global(abi::TABLE_BASE, const_i32);
        m.global.memory_base = m.import_global(abi::MEMORY_BASE, const_i32);
        m.stack_pointer = match stack_pointer {
            StackPointer::Global => {
                StackPointerAccess::Global(m.import_global(abi::STACK_POINTER, mut_i32))
            }
            StackPointer::TaskContext => StackPointerAccess::TaskContext {
                get: m.import_func(abi::ROOT, abi::CONTEXT_GET_0, &[], &[ValType::I32]),
                set: m.import_func(abi::ROOT, abi::CONTEXT_SET_0, &[ValType::I32], &[]),
            },
        };
        m.global.export_cx = m.define_global("export_cx", mut_i32);
        m.imports.import(
            abi::ENV,
            abi::MEMORY,
            EntityType::Memory(MemoryType {
                minimum: 0,
                maximum: None,
                memory64: false,
                shared: false,
                page_size_log2: None,
            }),
        );
        m.imports.import(
            abi::ENV,
            abi::INDIRECT_FUNCTION_TABLE,
            EntityType::Table(TableType {
                element_type: RefType::FUNCREF,
                minimum: 0,
                maximum: None,
                table64: false,
                shared: false,
            }),
        );
        m
    }

    /// The type index of a function signature, added on first use.
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

    fn import_func(
        &mut self,
        module: &str,
        name: &str,
        params: &[ValType],
        results: &[ValType],
    ) -> u32 {
        let ty = self.ty(params, results);
        self.imports.import(module, name, EntityType::Function(ty));
        self.imported_funcs += 1;
        self.imported_funcs - 1
    }

    fn import_global(&mut self, name: &'static str, ty: GlobalType) -> u32 {
        self.imports.import(abi::ENV, name, EntityType::Global(ty));
        self.name_global(name)
    }

    fn define_global(&mut self, name: &'static str, ty: GlobalType) -> u32 {
        self.globals.global(ty, &ConstExpr::i32_const(0));
        self.name_global(name)
    }

    fn name_global(&mut self, name: &str) -> u32 {
        let index = self.global_count;
        self.global_names.append(index, name);
        self.global_count += 1;
        index
    }

    /// The function index of an intrinsic.
    pub fn intrinsic(&self, intrinsic: Intrinsic) -> u32 {
        self.intrinsics[&intrinsic]
    }

    /// The function index of the plan's `i`-th host import.
    pub fn host_import(&self, i: usize) -> u32 {
        self.host_imports[i]
    }

    /// Declares a function; its body follows with [`ModuleBuilder::define`].
    pub fn declare(
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

    /// Gives the declared function `index` its body.
    pub fn define(&mut self, index: u32, body: Function) {
        self.defined[(index - self.imported_funcs) as usize].body = Some(body);
    }

    /// Exports function `index` as `name`, ahead of the defined exports.
    pub fn reexport(&mut self, name: &'static str, index: u32) {
        self.reexports.push((name, index));
    }

    /// The function index of the `(cx, addr) -> ()` helper lifting or
    /// lowering `ty` in memory, declared on first use; its body is generated
    /// from [`ModuleBuilder::next_pending_helper`].
    pub fn helper(&mut self, plan: &Plan<'_>, dir: Helper, side: Side, ty: Type) -> u32 {
        // Keyed by the metadata code: types kept from the import side for
        // exports share one registration, hence one helper.
        let key = (dir, ty, plan.code(side, &ty).raw());
        if let Some(&i) = self.helpers.get(&key) {
            return i;
        }
        let verb = match dir {
            Helper::Lift => "lift",
            Helper::Lower => "lower",
        };
        let name = format!("{verb} {}", type_name(plan, &ty));
        let index = self.declare(name, &[ValType::I32, ValType::I32], &[], false);
        self.helpers.insert(key, index);
        self.pending.push(PendingHelper {
            index,
            dir,
            side,
            ty,
        });
        index
    }

    /// A declared helper still without a body (the most recent first).
    pub fn next_pending_helper(&mut self) -> Option<PendingHelper> {
        self.pending.pop()
    }

    /// The sections, once every declared function is defined.
    pub fn finish(self) -> Sections {
        let mut types = TypeSection::new();
        for (p, r) in &self.types {
            types.ty().function(p.iter().copied(), r.iter().copied());
        }
        let mut functions = FunctionSection::new();
        let mut code = CodeSection::new();
        let mut exports = ExportSection::new();
        let mut function_names = NameMap::new();
        for (name, index) in &self.reexports {
            exports.export(name, ExportKind::Func, *index);
        }
        for (i, d) in self.defined.iter().enumerate() {
            let index = self.imported_funcs + i as u32;
            functions.function(d.ty);
            code.function(d.body.as_ref().expect("every declared function is defined"));
            function_names.append(index, &d.name);
            if d.export {
                exports.export(&d.name, ExportKind::Func, index);
            }
        }
        Sections {
            types,
            imports: self.imports,
            functions,
            globals: self.globals,
            exports,
            code,
            function_names,
            global_names: self.global_names,
        }
    }
}

/// A type's name for function names: its WIT name, or its kind and id.
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
