//! The async census: which component-model async handles init made and did
//! not drop, by kind.
//!
//! A snapshot cannot hold a future or stream end, a waitable set, a subtask
//! or an error context: they live in the runtime, not in linear memory.
//! wasmtime 48 tells the host only how many entries its table of async
//! state has, not what they are, so the component counts them itself, in
//! the instrumented component only. Every core module that imports a
//! canonical built-in that makes or drops such a handle (found by following
//! the core instance it is instantiated with to the `canon` definition,
//! whatever the import is called) gets a wrapper around that import and a
//! counter per kind, an exported mutable `i32` global: `stream.new` adds two
//! stream ends, `waitable-set.drop` takes one waitable set away, an
//! async-lowered call that returns a subtask adds one. Every reference to
//! the import (calls, `ref.func`, element segments, exports) goes to the
//! wrapper instead. After init the host reads the counters through
//! accessors (see `instrument.rs`), and a leftover is named by its kind.
//! Handles that reach the component by lifting (a stream in a call's
//! result) pass no built-in: wasmtime's total still counts them.

use crate::parse::{AsyncBuiltin, ComponentInfo, CoreInstance, EXPORT_PREFIX, ModuleInfo};
use anyhow::{Context, Result};
use wasm_encoder::reencode::{Error, Reencode, utils};
use wasm_encoder::{
    CodeSection, ConstExpr, ExportKind, ExportSection, Function, FunctionSection, GlobalSection,
    GlobalType, SectionId, ValType,
};

/// A kind of component-model async handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum HandleKind {
    FutureEnd,
    StreamEnd,
    WaitableSet,
    Subtask,
    ErrorContext,
}

impl HandleKind {
    /// Every kind, in the order messages list them.
    pub(crate) const ALL: [HandleKind; 5] = [
        HandleKind::FutureEnd,
        HandleKind::StreamEnd,
        HandleKind::WaitableSet,
        HandleKind::Subtask,
        HandleKind::ErrorContext,
    ];

    /// The name of the kind in export names.
    fn slug(self) -> &'static str {
        match self {
            HandleKind::FutureEnd => "future-ends",
            HandleKind::StreamEnd => "stream-ends",
            HandleKind::WaitableSet => "waitable-sets",
            HandleKind::Subtask => "subtasks",
            HandleKind::ErrorContext => "error-contexts",
        }
    }

    /// `count` handles of this kind, in words, with the built-in that makes
    /// them.
    pub(crate) fn describe(self, count: i64) -> String {
        let (one, many, made_by) = match self {
            HandleKind::FutureEnd => ("future end", "future ends", "future.new"),
            HandleKind::StreamEnd => ("stream end", "stream ends", "stream.new"),
            HandleKind::WaitableSet => ("waitable set", "waitable sets", "waitable-set.new"),
            HandleKind::Subtask => ("subtask", "subtasks", "an async import call"),
            HandleKind::ErrorContext => ("error context", "error contexts", "error-context.new"),
        };
        let noun = if count == 1 { one } else { many };
        format!("{count} {noun} (made by {made_by})")
    }
}

/// The export of a module's counter of `kind`.
pub(crate) fn counter_export(kind: HandleKind) -> String {
    format!("{EXPORT_PREFIX}census-{}", kind.slug())
}

/// What a call of a built-in does to the count of its kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Effect {
    /// Makes this many handles (`future.new` and `stream.new` make two
    /// ends).
    Makes(i32),
    /// Drops the handle it is given.
    Drops,
    /// Makes a subtask unless the call finished at once: its result is the
    /// status in the low 4 bits and the subtask's handle above (0 if none).
    MaybeSubtask,
}

fn effect(builtin: AsyncBuiltin) -> (HandleKind, Effect) {
    use AsyncBuiltin as B;
    use HandleKind as K;
    match builtin {
        B::FutureNew => (K::FutureEnd, Effect::Makes(2)),
        B::FutureDrop => (K::FutureEnd, Effect::Drops),
        B::StreamNew => (K::StreamEnd, Effect::Makes(2)),
        B::StreamDrop => (K::StreamEnd, Effect::Drops),
        B::WaitableSetNew => (K::WaitableSet, Effect::Makes(1)),
        B::WaitableSetDrop => (K::WaitableSet, Effect::Drops),
        B::SubtaskDrop => (K::Subtask, Effect::Drops),
        B::AsyncLower => (K::Subtask, Effect::MaybeSubtask),
        B::ErrorContextNew => (K::ErrorContext, Effect::Makes(1)),
        B::ErrorContextDrop => (K::ErrorContext, Effect::Drops),
    }
}

/// An imported function of a module that is an async built-in.
#[derive(Debug, Clone, Copy)]
struct Wrap {
    /// Its function index (an import's).
    import: u32,
    /// Its type index, and how many parameters it has.
    ty: u32,
    params: u32,
    kind: HandleKind,
    effect: Effect,
}

/// The census of one module: the imports it wraps.
#[derive(Debug, Clone, Default)]
pub(crate) struct ModuleCensus {
    wraps: Vec<Wrap>,
}

impl ModuleCensus {
    /// The census `module` (of `info`) needs: empty unless it is
    /// instantiated with async built-ins among its imports.
    pub(crate) fn plan(info: &ComponentInfo, module: &ModuleInfo) -> ModuleCensus {
        let spaces = &info.spaces;
        let Some(CoreInstance::Instantiate(args)) = module
            .instance
            .and_then(|i| spaces.core_instances.get(i as usize))
        else {
            return ModuleCensus::default();
        };
        let mut wraps = Vec::new();
        for (import, (from, name, ty)) in module.func_imports.iter().enumerate() {
            let Some(&(_, instance)) = args.iter().find(|(n, _)| n == from) else {
                continue;
            };
            let Some(CoreInstance::FromExports(items)) =
                spaces.core_instances.get(instance as usize)
            else {
                continue;
            };
            let func = items.iter().find(|(n, kind, _)| {
                n == name
                    && matches!(
                        kind,
                        wasmparser::ExternalKind::Func | wasmparser::ExternalKind::FuncExact
                    )
            });
            let Some(Some(builtin)) =
                func.and_then(|&(_, _, f)| spaces.core_builtins.get(f as usize))
            else {
                continue;
            };
            let (kind, effect) = effect(*builtin);
            // The shapes the component model gives these built-ins; any
            // other would not have validated.
            let (params, results) = &module.func_types[import];
            let fits = match effect {
                Effect::Makes(_) => params.is_empty() && results.len() == 1,
                Effect::Drops => params.len() == 1 && results.is_empty(),
                Effect::MaybeSubtask => results.as_slice() == [wasmparser::ValType::I32],
            };
            if fits {
                wraps.push(Wrap {
                    import: import as u32,
                    ty: *ty,
                    params: params.len() as u32,
                    kind,
                    effect,
                });
            }
        }
        ModuleCensus { wraps }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.wraps.is_empty()
    }

    /// The kinds this module counts, each once, in [`HandleKind::ALL`]
    /// order: its counter globals, in global index order.
    pub(crate) fn kinds(&self) -> Vec<HandleKind> {
        HandleKind::ALL
            .into_iter()
            .filter(|k| self.wraps.iter().any(|w| w.kind == *k))
            .collect()
    }

    /// The module `bytes` (which `module` describes) with the wrappers, the
    /// counters and their exports.
    pub(crate) fn apply(&self, bytes: &[u8], module: &ModuleInfo) -> Result<Vec<u8>> {
        let mut rewriter = Rewriter {
            census: self,
            kinds: self.kinds(),
            first_wrapper: (module.func_imports.len() + module.defined_funcs) as u32,
            first_counter: module.global_count,
            added: Vec::new(),
        };
        let mut out = wasm_encoder::Module::new();
        rewriter
            .parse_core_module(&mut out, wasmparser::Parser::new(0), bytes)
            .map_err(|e| anyhow::anyhow!("{e:?}"))
            .with_context(|| format!("adding the async census to {}", module.label))?;
        Ok(out.finish())
    }
}

/// Re-encodes a module with its census (see [`ModuleCensus::apply`]).
struct Rewriter<'a> {
    census: &'a ModuleCensus,
    kinds: Vec<HandleKind>,
    /// The function index of the first wrapper: wrappers follow the
    /// module's own functions.
    first_wrapper: u32,
    /// The global index of the first counter: counters follow its globals.
    first_counter: u32,
    /// The sections the census adds to, once written.
    added: Vec<SectionId>,
}

/// Position of a section in a module's binary order.
fn rank(id: SectionId) -> u8 {
    use SectionId as S;
    match id {
        S::Type => 1,
        S::Import => 2,
        S::Function => 3,
        S::Table => 4,
        S::Memory => 5,
        S::Tag => 6,
        S::Global => 7,
        S::Export => 8,
        S::Start => 9,
        S::Element => 10,
        S::DataCount => 11,
        S::Code => 12,
        S::Data => 13,
        _ => 0,
    }
}

impl Rewriter<'_> {
    fn counter(&self, kind: HandleKind) -> u32 {
        let at = self.kinds.iter().position(|k| *k == kind).unwrap_or(0);
        self.first_counter + at as u32
    }

    fn add_functions(&mut self, functions: &mut FunctionSection) {
        for w in &self.census.wraps {
            functions.function(w.ty);
        }
        self.added.push(SectionId::Function);
    }

    fn add_globals(&mut self, globals: &mut GlobalSection) {
        for _ in &self.kinds {
            let ty = GlobalType {
                val_type: ValType::I32,
                mutable: true,
                shared: false,
            };
            globals.global(ty, &ConstExpr::i32_const(0));
        }
        self.added.push(SectionId::Global);
    }

    fn add_exports(&mut self, exports: &mut ExportSection) {
        for kind in &self.kinds {
            exports.export(
                &counter_export(*kind),
                ExportKind::Global,
                self.counter(*kind),
            );
        }
        self.added.push(SectionId::Export);
    }

    fn add_code(&mut self, code: &mut CodeSection) {
        for w in &self.census.wraps {
            code.function(&self.wrapper(w));
        }
        self.added.push(SectionId::Code);
    }

    /// Calls the import with the wrapper's arguments, keeps its results,
    /// and updates the counter.
    fn wrapper(&self, w: &Wrap) -> Function {
        let counter = self.counter(w.kind);
        // An async call's status goes in the one local after them.
        let params = w.params;
        let locals = if w.effect == Effect::MaybeSubtask {
            vec![(1, ValType::I32)]
        } else {
            Vec::new()
        };
        let mut f = Function::new(locals);
        let mut ins = f.instructions();
        for p in 0..params {
            ins.local_get(p);
        }
        ins.call(w.import);
        match w.effect {
            Effect::Makes(n) => {
                ins.global_get(counter).i32_const(n).i32_add();
            }
            Effect::Drops => {
                ins.global_get(counter).i32_const(1).i32_sub();
            }
            Effect::MaybeSubtask => {
                ins.local_tee(params)
                    .global_get(counter)
                    .local_get(params)
                    .i32_const(4)
                    .i32_shr_u()
                    .i32_const(0)
                    .i32_ne()
                    .i32_add();
            }
        }
        ins.global_set(counter).end();
        f
    }
}

impl Reencode for Rewriter<'_> {
    type Error = std::convert::Infallible;

    fn function_index(&mut self, func: u32) -> Result<u32, Error> {
        let wrapped = self.census.wraps.iter().position(|w| w.import == func);
        Ok(wrapped.map_or(func, |k| self.first_wrapper + k as u32))
    }

    fn parse_function_section(
        &mut self,
        functions: &mut FunctionSection,
        section: wasmparser::FunctionSectionReader<'_>,
    ) -> Result<(), Error> {
        utils::parse_function_section(self, functions, section)?;
        self.add_functions(functions);
        Ok(())
    }

    fn parse_global_section(
        &mut self,
        globals: &mut GlobalSection,
        section: wasmparser::GlobalSectionReader<'_>,
    ) -> Result<(), Error> {
        utils::parse_global_section(self, globals, section)?;
        self.add_globals(globals);
        Ok(())
    }

    fn parse_export_section(
        &mut self,
        exports: &mut ExportSection,
        section: wasmparser::ExportSectionReader<'_>,
    ) -> Result<(), Error> {
        utils::parse_export_section(self, exports, section)?;
        self.add_exports(exports);
        Ok(())
    }

    fn parse_code_section(
        &mut self,
        code: &mut CodeSection,
        section: wasmparser::CodeSectionReader<'_>,
    ) -> Result<(), Error> {
        utils::parse_code_section(self, code, section)?;
        self.add_code(code);
        Ok(())
    }

    /// Writes each section the census adds to that the module lacks, where
    /// it belongs.
    fn intersperse_section_hook(
        &mut self,
        module: &mut wasm_encoder::Module,
        _after: Option<SectionId>,
        before: Option<SectionId>,
    ) -> Result<(), Error> {
        let limit = before.map_or(u8::MAX, rank);
        let missing = |added: &[SectionId], id: SectionId| !added.contains(&id) && rank(id) < limit;
        if missing(&self.added, SectionId::Function) {
            let mut functions = FunctionSection::new();
            self.add_functions(&mut functions);
            module.section(&functions);
        }
        if missing(&self.added, SectionId::Global) {
            let mut globals = GlobalSection::new();
            self.add_globals(&mut globals);
            module.section(&globals);
        }
        if missing(&self.added, SectionId::Export) {
            let mut exports = ExportSection::new();
            self.add_exports(&mut exports);
            module.section(&exports);
        }
        if missing(&self.added, SectionId::Code) {
            let mut code = CodeSection::new();
            self.add_code(&mut code);
            module.section(&code);
        }
        Ok(())
    }
}
