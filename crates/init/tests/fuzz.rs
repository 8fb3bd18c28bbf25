//! Fuzz targets of the init stage (issue 17, target 4), on the testkit's
//! stable-Rust driver ([`componentize_testkit::fuzz`]):
//!
//! - `smith_components_snapshot_like_init_then_calls`: wasm-smith modules,
//!   given glue exports and wrapped as components, are refused with a
//!   reason, or snapshotted so that the snapshot answers a sequence of calls
//!   exactly like the original after its init call;
//! - `mutated_linked_components_never_panic`: byte flips, inserted bytes and
//!   cut sections of the linked `snapdemo` component give an error or a
//!   valid snapshot, never a panic (needs the toolchain build:
//!   `bash toolchain/build.sh`).
//!
//! `COMPONENTIZE_FUZZ_SECONDS=s` runs each target for `s` seconds.

mod common;

use arbitrary::{Arbitrary, Unstructured};
use componentize_testkit::fuzz::Target;
use std::ops::Range;
use std::sync::OnceLock;
use std::time::Duration;
use wasm_encoder::reencode::{Reencode, RoundtripReencoder};
use wasm_encoder::{
    CodeSection, ExportKind, ExportSection, Function, FunctionSection, InstructionSink, MemArg,
    MemArgTarget, RawSection, TypeSection, ValType as Ty,
};
use wasmparser::{Payload, ValType};
use wasmtime::component::{Component, Linker, Val};
use wasmtime::{Engine, Store, StoreLimits, StoreLimitsBuilder, Trap};

/// The world of the wrapped modules: `init` is the init function, the
/// others read the state (`digest`) or change it (`step-*`).
const WORLD: &str = "package fuzz:init;

world smith {
    export init: func();
    export digest: func() -> u64;
    export step-a: func() -> u64;
    export step-b: func() -> u64;
}
";

/// The exports replayed after init, in the order the input picks them.
const CALLS: [&str; 3] = ["digest", "step-a", "step-b"];

/// Linear memories stay small, so digests and snapshots are quick; init and
/// the replays cap growth at the same size.
const MEMORY_LIMIT: usize = 16 << 20;

/// Fuel for each call after init: enough for a few thousand loop rounds, so
/// a call that loops forever stops in both instances at the same point.
const STEP_FUEL: u64 = 200_000;

/// Fuel for a digest: it reads every byte of a memory of [`MEMORY_LIMIT`].
const DIGEST_FUEL: u64 = 1 << 30;

/// Fuel for the replayed init call: unbounded in practice, since init
/// finished within its timeout.
const INIT_FUEL: u64 = 1 << 50;

/// An init call that loops is a refusal (a timeout), not a hang.
const INIT_TIMEOUT: Duration = Duration::from_millis(200);

/// The engine the original and the snapshot are replayed on: the testkit's
/// configuration (init's wasm features, and more) with fuel, so a call that
/// loops stops after the same work in both instances. The testkit engine
/// has no fuel or epochs: a looping call would hang it.
fn replay_engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let mut config = componentize_testkit::config();
        config.consume_fuel(true);
        Engine::new(&config).expect("replay engine")
    })
}

/// What a wasm-smith module has that the glue functions use.
#[derive(Default)]
struct Shape {
    /// Parameters and results of each type index (empty for GC types).
    types: Vec<(Vec<ValType>, Vec<ValType>)>,
    /// The type index of each defined function (nothing is imported).
    funcs: Vec<u32>,
    /// Each global: mutable, and its type.
    globals: Vec<(bool, ValType)>,
    /// Each memory.
    memories: Vec<wasmparser::MemoryType>,
}

impl Shape {
    fn of(wasm: &[u8]) -> Shape {
        let mut shape = Shape::default();
        for payload in wasmparser::Parser::new(0).parse_all(wasm) {
            match payload.expect("wasm-smith output parses") {
                Payload::TypeSection(reader) => {
                    for group in reader {
                        for sub in group.unwrap().into_types() {
                            shape.types.push(match &sub.composite_type.inner {
                                wasmparser::CompositeInnerType::Func(f) => {
                                    (f.params().to_vec(), f.results().to_vec())
                                }
                                _ => Default::default(),
                            });
                        }
                    }
                }
                Payload::FunctionSection(reader) => {
                    shape.funcs = reader.into_iter().map(Result::unwrap).collect();
                }
                Payload::GlobalSection(reader) => {
                    for global in reader {
                        let ty = global.unwrap().ty;
                        shape.globals.push((ty.mutable, ty.content_type));
                    }
                }
                Payload::MemorySection(reader) => {
                    shape.memories = reader.into_iter().map(Result::unwrap).collect();
                }
                _ => {}
            }
        }
        shape
    }

    /// The functions the glue can call: those whose parameters are all
    /// numbers or vectors (constants make their arguments).
    fn callable(&self) -> Vec<u32> {
        (0..self.funcs.len() as u32)
            .filter(|f| {
                self.types[self.funcs[*f as usize] as usize]
                    .0
                    .iter()
                    .all(|p| !matches!(p, ValType::Ref(_)))
            })
            .collect()
    }
}

/// A function body of the glue, mixing values into the accumulator local.
struct Glue {
    func: Function,
}

/// The glue's locals: the accumulator, a position and an end in a memory,
/// and a vector being mixed.
const ACC: u32 = 0;
const POS: u32 = 1;
const END: u32 = 2;
const VEC: u32 = 3;

/// The accumulator's multiplier (FNV-1's 64-bit prime): the digest depends
/// on the order of the values, so a byte at another place changes it.
const MIX: i64 = 0x100_0000_01b3;

impl Glue {
    fn new() -> Glue {
        Glue {
            func: Function::new([(1, Ty::I64), (2, Ty::I32), (1, Ty::V128)]),
        }
    }

    fn sink(&mut self) -> InstructionSink<'_> {
        self.func.instructions()
    }

    /// Pops a value of type `ty` into the accumulator (`acc * K + v`);
    /// drops what has no bits to mix (references).
    fn mix(&mut self, ty: ValType) {
        let mut s = self.sink();
        match ty {
            ValType::I32 => {
                s.i64_extend_i32_u();
            }
            ValType::I64 => {}
            ValType::F32 => {
                s.i32_reinterpret_f32().i64_extend_i32_u();
            }
            ValType::F64 => {
                s.i64_reinterpret_f64();
            }
            ValType::V128 => {
                // Both halves: the low one now, the high one below.
                s.local_tee(VEC)
                    .i64x2_extract_lane(0)
                    .local_get(ACC)
                    .i64_const(MIX)
                    .i64_mul()
                    .i64_add()
                    .local_set(ACC)
                    .local_get(VEC)
                    .i64x2_extract_lane(1);
            }
            ValType::Ref(_) => {
                s.drop();
                return;
            }
        }
        s.local_get(ACC)
            .i64_const(MIX)
            .i64_mul()
            .i64_add()
            .local_set(ACC);
    }

    /// Calls defined function `f` with arguments from `u` and mixes its
    /// results (the last result is on top).
    fn call(&mut self, u: &mut Unstructured, shape: &Shape, f: u32) -> arbitrary::Result<()> {
        let (params, results) = &shape.types[shape.funcs[f as usize] as usize];
        for p in params {
            let mut s = self.sink();
            match p {
                ValType::I32 => s.i32_const(u.arbitrary()?),
                ValType::I64 => s.i64_const(u.arbitrary()?),
                ValType::F32 => s.f32_const(f32::from_bits(u.arbitrary()?).into()),
                ValType::F64 => s.f64_const(f64::from_bits(u.arbitrary()?).into()),
                ValType::V128 => s.v128_const(u.arbitrary()?),
                ValType::Ref(_) => unreachable!("not callable"),
            };
        }
        self.sink().call(f);
        for r in results.iter().rev() {
            self.mix(*r);
        }
        Ok(())
    }

    /// Mixes every mutable global and every byte and size of every 32-bit
    /// memory: the state a snapshot must carry.
    fn digest(&mut self, shape: &Shape) {
        for (index, (mutable, ty)) in shape.globals.iter().enumerate() {
            if *mutable && !matches!(ty, ValType::Ref(_)) {
                self.sink().global_get(index as u32);
                self.mix(*ty);
            }
        }
        for (index, memory) in shape.memories.iter().enumerate() {
            if memory.memory64 {
                continue;
            }
            let index = index as u32;
            let word = MemArg {
                offset: 0,
                align: 3,
                target: MemArgTarget::Memory(index),
                ordering: None,
            };
            self.sink().memory_size(index).local_tee(END);
            self.mix(ValType::I32);
            self.sink()
                .local_get(END)
                .i32_const(16)
                .i32_shl()
                .local_set(END)
                .i32_const(0)
                .local_set(POS)
                .block(wasm_encoder::BlockType::Empty)
                .loop_(wasm_encoder::BlockType::Empty)
                .local_get(POS)
                .local_get(END)
                .i32_ge_u()
                .br_if(1)
                .local_get(POS)
                .i64_load(word);
            self.mix(ValType::I64);
            self.sink()
                .local_get(POS)
                .i32_const(8)
                .i32_add()
                .local_set(POS)
                .br(0)
                .end()
                .end();
        }
    }

    /// The body, returning the accumulator if `result`.
    fn finish(mut self, result: bool) -> Function {
        let mut s = self.sink();
        if result {
            s.local_get(ACC);
        }
        s.end();
        self.func
    }
}

/// `wasm` (a wasm-smith module without imports or exports) with the glue
/// functions of [`WORLD`] appended and exported: `init` and the steps call
/// functions of the module with arguments from `u`.
fn with_glue(u: &mut Unstructured, wasm: &[u8]) -> arbitrary::Result<Vec<u8>> {
    let shape = Shape::of(wasm);
    let callable = shape.callable();
    let calls = |u: &mut Unstructured, glue: &mut Glue, max: usize| -> arbitrary::Result<()> {
        if callable.is_empty() {
            return Ok(());
        }
        for _ in 0..u.int_in_range(0..=max)? {
            let f = *u.choose(&callable)?;
            glue.call(u, &shape, f)?;
        }
        Ok(())
    };
    let mut init = Glue::new();
    calls(u, &mut init, 6)?;
    let mut digest = Glue::new();
    digest.digest(&shape);
    let mut bodies = vec![
        ("init", init.finish(false)),
        ("digest", digest.finish(true)),
    ];
    for name in ["step-a", "step-b"] {
        let mut step = Glue::new();
        calls(u, &mut step, 3)?;
        bodies.push((name, step.finish(true)));
    }

    // The glue's types go last, so no type index moves.
    let unit = shape.types.len() as u32;
    let returns_u64 = unit + 1;
    let first_glue = shape.funcs.len() as u32;
    let mut sections: Vec<(u8, Range<usize>)> = Vec::new();
    let mut types = TypeSection::new();
    let mut funcs = FunctionSection::new();
    let mut code = CodeSection::new();
    for payload in wasmparser::Parser::new(0).parse_all(wasm) {
        let payload = payload.expect("wasm-smith output parses");
        match &payload {
            Payload::TypeSection(reader) => {
                RoundtripReencoder
                    .parse_type_section(&mut types, reader.clone())
                    .expect("re-encoding types");
            }
            Payload::FunctionSection(reader) => {
                for ty in reader.clone() {
                    funcs.function(ty.unwrap());
                }
            }
            Payload::CodeSectionEntry(body) => {
                code.raw(body.as_bytes());
            }
            _ => {}
        }
        if let Some((id, range)) = payload.as_section() {
            sections.push((id, range.start as usize..range.end as usize));
        }
    }
    types.ty().function([], []);
    types.ty().function([], [Ty::I64]);
    let mut exports = ExportSection::new();
    for (i, (name, body)) in bodies.iter().enumerate() {
        funcs.function(if i == 0 { unit } else { returns_u64 });
        code.function(body);
        exports.export(name, ExportKind::Func, first_glue + i as u32);
    }

    // Sections in the binary's order; the rebuilt ones replace the originals.
    let mut module = wasm_encoder::Module::new();
    for id in [1, 2, 3, 4, 5, 13, 6, 7, 8, 9, 12, 10, 11] {
        match id {
            1 => module.section(&types),
            3 => module.section(&funcs),
            7 => module.section(&exports),
            10 => module.section(&code),
            _ => match sections.iter().find(|(s, _)| *s == id) {
                Some((_, range)) => module.section(&RawSection {
                    id,
                    data: &wasm[range.clone()],
                }),
                None => &mut module,
            },
        };
    }
    Ok(module.finish())
}

/// A wasm-smith configuration drawn from `u`: any feature and shape, within
/// sizes that keep an iteration short, mostly what init can snapshot (a
/// 64-bit or shared memory is refused).
fn smith_config(u: &mut Unstructured) -> arbitrary::Result<wasm_smith::Config> {
    let mut config = wasm_smith::Config::arbitrary(u)?;
    // Nothing to import (init provides no core imports) and no exports but
    // the glue's.
    config.max_imports = 0;
    config.max_exports = 0;
    // Left to itself wasm-smith mostly stops before the first function
    // (and has none without a function type).
    config.min_types = u.int_in_range(1..=4)?;
    config.max_types = config.max_types.clamp(config.min_types, 30);
    config.min_funcs = u.int_in_range(1..=12)?;
    config.max_funcs = config.max_funcs.clamp(config.min_funcs, 30);
    config.max_instructions = config.max_instructions.min(120);
    config.max_globals = config.max_globals.min(20);
    config.max_memories = config.max_memories.min(3);
    config.max_tables = config.max_tables.min(3);
    config.max_tags = config.max_tags.min(5);
    config.max_table_elements = config.max_table_elements.min(1000);
    config.max_data_segments = config.max_data_segments.min(10);
    config.max_element_segments = config.max_element_segments.min(10);
    config.max_elements = config.max_elements.min(20);
    config.max_memory32_bytes = u.int_in_range(0..=4 << 20)?;
    config.max_memory64_bytes = config.max_memory32_bytes.into();
    // What init refuses (64-bit and shared memories, v128 and reference
    // globals, GC object mutations) comes up often enough at lower odds.
    config.memory64_enabled &= u.ratio(1, 8)?;
    config.threads_enabled &= u.ratio(1, 4)?;
    config.simd_enabled &= u.ratio(1, 3)?;
    config.reference_types_enabled &= u.ratio(1, 3)?;
    Ok(config)
}

/// The outcome of a call, comparable between two instances on one engine:
/// the result, or the trap (other errors, such as an uncaught exception,
/// by their root cause).
fn outcome(result: wasmtime::Result<Option<u64>>) -> Result<Option<u64>, String> {
    result.map_err(|e| match e.downcast_ref::<Trap>() {
        Some(trap) => format!("trap: {trap:?}"),
        None => format!("error: {}", e.root_cause()),
    })
}

/// An instance of `wasm` on the replay engine, with the same memory cap as
/// init.
struct Replay {
    store: Store<StoreLimits>,
    instance: wasmtime::component::Instance,
}

impl Replay {
    fn new(wasm: &[u8]) -> Replay {
        let engine = replay_engine();
        let component = Component::new(engine, wasm).expect("compiling for the replay");
        let limits = StoreLimitsBuilder::new().memory_size(MEMORY_LIMIT).build();
        let mut store = Store::new(engine, limits);
        store.limiter(|l| l);
        store.set_fuel(INIT_FUEL).unwrap();
        let instance = Linker::new(engine)
            .instantiate(&mut store, &component)
            .expect("instantiating for the replay");
        Replay { store, instance }
    }

    /// Calls the export `name` with `fuel`.
    fn call(&mut self, name: &str, fuel: u64) -> Result<Option<u64>, String> {
        self.store.set_fuel(fuel).unwrap();
        let func = self
            .instance
            .get_func(&mut self.store, name)
            .unwrap_or_else(|| panic!("no export `{name}`"));
        let mut results = vec![Val::Bool(false); func.ty(&self.store).results().len()];
        outcome(
            func.call(&mut self.store, &[], &mut results)
                .map(|()| match results.first() {
                    Some(Val::U64(v)) => Some(*v),
                    None => None,
                    Some(other) => panic!("`{name}` returned {other:?}"),
                }),
        )
    }

    /// The outcomes of `calls`, each with its fuel.
    fn transcript(&mut self, calls: &[&str]) -> Vec<Result<Option<u64>, String>> {
        calls
            .iter()
            .map(|name| {
                let fuel = if *name == "digest" {
                    DIGEST_FUEL
                } else {
                    STEP_FUEL
                };
                self.call(name, fuel)
            })
            .collect()
    }
}

/// `module` with the metadata of [`WORLD`], as a component.
fn componentize(mut module: Vec<u8>) -> anyhow::Result<Vec<u8>> {
    let mut resolve = wit_parser::Resolve::default();
    let pkg = resolve.push_str("smith.wit", WORLD)?;
    let world = resolve.select_world(&[pkg], Some("smith"))?;
    wit_component::embed_component_metadata(
        &mut module,
        &resolve,
        world,
        wit_component::StringEncoding::UTF8,
        false,
    )?;
    wit_component::ComponentEncoder::default()
        .module(&module)?
        .validate(true)
        .encode()
}

/// Asserts that an error of init says what went wrong, and that it is not
/// one of init's own failures.
#[track_caller]
fn assert_clean_error(e: &anyhow::Error) {
    let message = format!("{e:#}");
    assert!(
        !message.trim().is_empty(),
        "an init error without a message"
    );
    assert!(
        !message.contains("internal error"),
        "init failed on its own: {message}"
    );
}

#[test]
fn smith_components_snapshot_like_init_then_calls() {
    let (mut compared, mut refused) = (0, 0);
    let tally = Target::new(
        "smith_components_snapshot_like_init_then_calls",
        "cargo test -p componentize-init --test fuzz smith_components",
    )
    .iterations(400)
    .budget(Duration::from_secs(15))
    .run(|u| {
        let config = smith_config(u)?;
        // wasm-smith takes what it is given: half the input, so the glue
        // and the calls get the rest.
        let half = u.bytes(u.len() / 2)?;
        let module = wasm_smith::Module::new(config, &mut Unstructured::new(half))?.to_bytes();
        let module = with_glue(u, &module)?;
        let mut calls: Vec<&str> = (0..u.int_in_range(1..=5)?)
            .map(|_| u.choose(&CALLS).copied())
            .collect::<arbitrary::Result<_>>()?;
        calls.push("digest");
        // wit-component may refuse a module (its validation, its features):
        // not a case for init.
        let Ok(component) = componentize(module) else {
            return Err(arbitrary::Error::IncorrectFormat);
        };

        let snapshot = match common::init(&component)
            .init_func("init")
            .timeout(INIT_TIMEOUT)
            .memory_limit(MEMORY_LIMIT)
            .run()
        {
            Ok(snapshot) => snapshot,
            Err(e) => {
                assert_clean_error(&e);
                refused += 1;
                return Ok(());
            }
        };
        let mut original = Replay::new(&component);
        assert_eq!(
            original.call("init", INIT_FUEL),
            Ok(None),
            "init snapshotted, but the init call fails when replayed"
        );
        let mut snap = Replay::new(&snapshot.wasm);
        assert!(
            snap.instance.get_func(&mut snap.store, "init").is_none(),
            "the init export is still there"
        );
        assert_eq!(
            snap.transcript(&calls),
            original.transcript(&calls),
            "the snapshot differs from init followed by {calls:?}"
        );
        compared += 1;
        Ok(())
    });
    eprintln!("{compared} snapshots compared, {refused} components refused by init");
    // A run of several inputs that compares nothing tests nothing.
    if tally.iterations >= 20 {
        assert!(compared > 0, "no snapshot to compare in {tally:?}");
    }
}

/// What the mutated components run at init (the snapdemo interpreter's
/// commands).
const SCRIPT: &str = "count 2\nset greeting hello\n";

/// The content ranges of every section of `wasm`: the component's and
/// those of its core modules, so mutations hit small sections (types,
/// imports, aliases, exports) as often as code.
fn section_ranges(wasm: &[u8]) -> Vec<Range<usize>> {
    wasmparser::Parser::new(0)
        .parse_all(wasm)
        .filter_map(|payload| payload.expect("the linked component parses").as_section())
        .map(|(_, range)| range.start as usize..range.end as usize)
        .collect()
}

/// `wasm` after one to three mutations drawn from `u`, each inside one of
/// `sections` (ranges of the original; later mutations clamp them to what
/// is left): a bit flip, a byte overwritten, bytes inserted, the rest of
/// the section cut, or the file cut there.
fn mutate(
    u: &mut Unstructured,
    wasm: &[u8],
    sections: &[Range<usize>],
) -> arbitrary::Result<Vec<u8>> {
    let mut out = wasm.to_vec();
    for _ in 0..u.int_in_range(1..=3)? {
        let section = u.choose(sections)?;
        let end = section.end.min(out.len());
        let at = u.int_in_range(section.start..=section.end)?.min(end);
        match u.int_in_range(0..=4)? {
            0 if at < end => out[at] ^= 1 << u.int_in_range(0..=7)?,
            1 if at < end => out[at] = u.arbitrary()?,
            2 => {
                let bytes: Vec<u8> = (0..u.int_in_range(1..=8)?)
                    .map(|_| u.arbitrary())
                    .collect::<arbitrary::Result<_>>()?;
                out.splice(at..at, bytes);
            }
            3 => drop(out.drain(at..end)),
            _ => out.truncate(at),
        }
    }
    Ok(out)
}

#[test]
fn mutated_linked_components_never_panic() {
    let linked = common::linked();
    let sections = section_ranges(linked);
    let (mut snapshotted, mut refused) = (0, 0);
    Target::new(
        "mutated_linked_components_never_panic",
        "cargo test -p componentize-init --test fuzz mutated_linked",
    )
    .iterations(300)
    .budget(Duration::from_secs(15))
    .run(|u| {
        let mutated = mutate(u, linked, &sections)?;
        match common::init(&mutated)
            .script("fuzz.snap", SCRIPT)
            .timeout(Duration::from_secs(5))
            .run()
        {
            Ok(snapshot) => {
                wasmparser::Validator::new_with_features(wasmparser::WasmFeatures::all())
                    .validate_all(&snapshot.wasm)
                    .expect("the snapshot validates");
                snapshotted += 1;
            }
            Err(e) => {
                assert_clean_error(&e);
                refused += 1;
            }
        }
        Ok(())
    });
    eprintln!("{snapshotted} mutated components snapshotted, {refused} refused");
}
