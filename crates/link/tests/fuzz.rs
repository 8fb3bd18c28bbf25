//! Fuzz target of the link stage (issue 17), on the stable-Rust driver of
//! `componentize_testkit::fuzz`: each seed is one input, a failure prints
//! its seed and the command that replays it.
//!
//! `link`: the real inputs of the demo link (bindings of
//! fixtures/link/demo.wit from componentize-generate, the libdemo.so
//! fixture interpreter, libc.so from the toolchain), with one to four
//! structural mutations: the `dylink.0` section (mem-info sizes and
//! alignments, the needed list, export and import info, unknown
//! subsections, the section dropped or doubled), imports (module and field
//! names, types, removal), exports (names, removal, additions), the `name`
//! and `component-type` sections, and raw byte flips or truncation. Linking
//! them never panics and never hangs (each link runs under a 30-second
//! watchdog): it gives an error, or a component that validates. An error
//! that is a caught panic of wit-component, or an internal error, counts as
//! a failure too: a check of the link stage should have caught the input.
//!
//! Needs the toolchain build: `bash toolchain/build.sh`.
//!
//! CI runs the target on its first seeds. To run longer, or other seeds:
//!
//! ```sh
//! COMPONENTIZE_FUZZ_SECONDS=600 cargo test -p componentize-link --test fuzz -- --nocapture
//! COMPONENTIZE_FUZZ_FIRST_SEED=100000 COMPONENTIZE_FUZZ_SECONDS=600 cargo test -p componentize-link --test fuzz
//! COMPONENTIZE_FUZZ_SEED=17 cargo test -p componentize-link --test fuzz
//! ```

mod common;

use arbitrary::{Result, Unstructured};
use componentize_link::{Link, Linked};
use componentize_testkit::fuzz::Target;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;
use wasm_encoder::reencode::{Reencode, RoundtripReencoder};
use wasm_encoder::{Encode, EntityType, ExportSection, ImportSection};
use wasmparser::{Dylink0Subsection, Parser, Payload, TypeRef};

/// How long one link may take before it counts as a hang.
const WATCHDOG: Duration = Duration::from_secs(30);

/// One input of the link.
#[derive(Clone)]
struct Input {
    name: &'static str,
    bytes: Vec<u8>,
    bindings: bool,
}

/// The demo link's inputs, unmutated.
fn real_inputs() -> Vec<Input> {
    vec![
        Input {
            name: "demo.so",
            bytes: common::bindings("demo", Some("libdemo.so")),
            bindings: true,
        },
        Input {
            name: "libdemo.so",
            bytes: common::libdemo_bytes(),
            bindings: false,
        },
        Input {
            name: "libc.so",
            bytes: common::libc(),
            bindings: false,
        },
    ]
}

/// Links `inputs` on a thread; a panic there is resumed here, and a link
/// that outlives [`WATCHDOG`] fails the property.
fn link_with_watchdog(inputs: &[Input]) -> anyhow::Result<Linked> {
    let mut link = Link::new();
    link.search_env(false);
    for input in inputs {
        if input.bindings {
            link.bindings(input.name, input.bytes.clone());
        } else {
            link.library(input.name, input.bytes.clone());
        }
    }
    let (done, outcome) = mpsc::channel();
    std::thread::spawn(move || {
        // The receiver is gone only after a timeout, which already failed.
        let _ = done.send(catch_unwind(AssertUnwindSafe(|| link.encode())));
    });
    match outcome.recv_timeout(WATCHDOG) {
        Ok(Ok(result)) => result,
        Ok(Err(panic)) => resume_unwind(panic),
        Err(RecvTimeoutError::Timeout) => panic!("linking took more than {WATCHDOG:?}"),
        Err(RecvTimeoutError::Disconnected) => unreachable!("the link thread always sends"),
    }
}

// ------------------------------------------------------------- modules

/// A module as its sections, in order: id and contents (a custom section's
/// contents start with its name).
struct Module {
    sections: Vec<(u8, Vec<u8>)>,
}

const CUSTOM: u8 = 0;
const IMPORT: u8 = 2;
const EXPORT: u8 = 7;

impl Module {
    fn parse(wasm: &[u8]) -> Module {
        let mut sections = Vec::new();
        for payload in Parser::new(0).parse_all(wasm) {
            let payload = payload.expect("the real inputs parse");
            if let Some((id, range)) = payload.as_section() {
                sections.push((id, wasm[range.start as usize..range.end as usize].to_vec()));
            }
        }
        Module { sections }
    }

    fn encode(&self) -> Vec<u8> {
        let mut module = wasm_encoder::Module::new();
        for (id, data) in &self.sections {
            module.section(&wasm_encoder::RawSection { id: *id, data });
        }
        module.finish()
    }

    /// Index of the first section with `id` (custom: whose name is `name`).
    fn find(&self, id: u8, name: &str) -> Option<usize> {
        self.sections
            .iter()
            .position(|(i, data)| *i == id && (id != CUSTOM || custom_name(data) == Some(name)))
    }
}

/// The name of a custom section, from its contents.
fn custom_name(data: &[u8]) -> Option<&str> {
    wasmparser::BinaryReader::new(data, 0).read_string().ok()
}

/// A custom section's contents: its name, then `payload`.
fn custom(name: &str, payload: &[u8]) -> Vec<u8> {
    let mut data = Vec::new();
    name.encode(&mut data);
    data.extend_from_slice(payload);
    data
}

/// The payload of custom section `data` (after its name).
fn custom_payload(data: &[u8]) -> &[u8] {
    let mut reader = wasmparser::BinaryReader::new(data, 0);
    reader.read_string().expect("a custom section has a name");
    &data[reader.original_position() as usize..]
}

// ------------------------------------------------------------- dylink.0

/// The `dylink.0` subsections, decoded enough to mutate.
enum Sub {
    MemInfo([u32; 4]),
    Needed(Vec<String>),
    ExportInfo(Vec<(String, u32)>),
    ImportInfo(Vec<(String, String, u32)>),
    Other(u8, Vec<u8>),
}

/// `None` if an earlier mutation left the section unreadable.
fn decode_dylink(payload: &[u8]) -> Option<Vec<Sub>> {
    let reader = wasmparser::Dylink0SectionReader::new(wasmparser::BinaryReader::new(payload, 0));
    let strings = |v: Vec<&str>| v.into_iter().map(String::from).collect::<Vec<_>>();
    let encoded = |v: Vec<&str>| {
        let mut data = Vec::new();
        v.as_slice().encode(&mut data);
        data
    };
    reader
        .into_iter()
        .map(|sub| {
            Some(match sub.ok()? {
                Dylink0Subsection::MemInfo(m) => Sub::MemInfo([
                    m.memory_size,
                    m.memory_alignment,
                    m.table_size,
                    m.table_alignment,
                ]),
                Dylink0Subsection::Needed(n) => Sub::Needed(strings(n)),
                Dylink0Subsection::ExportInfo(e) => Sub::ExportInfo(
                    e.into_iter()
                        .map(|e| (e.name.to_string(), e.flags.bits()))
                        .collect(),
                ),
                Dylink0Subsection::ImportInfo(i) => Sub::ImportInfo(
                    i.into_iter()
                        .map(|i| (i.module.to_string(), i.field.to_string(), i.flags.bits()))
                        .collect(),
                ),
                Dylink0Subsection::RuntimePath(p) => Sub::Other(5, encoded(p)),
                Dylink0Subsection::TargetArch(a) => Sub::Other(6, encoded(vec![a])),
                Dylink0Subsection::Unknown { ty, data, .. } => Sub::Other(ty, data.to_vec()),
            })
        })
        .collect()
}

fn encode_dylink(subs: &[Sub]) -> Vec<u8> {
    let mut out = Vec::new();
    for sub in subs {
        let mut data = Vec::new();
        let id = match sub {
            Sub::MemInfo(fields) => {
                fields.iter().for_each(|f| f.encode(&mut data));
                1
            }
            Sub::Needed(names) => {
                names.len().encode(&mut data);
                names.iter().for_each(|n| n.as_str().encode(&mut data));
                2
            }
            Sub::ExportInfo(entries) => {
                entries.len().encode(&mut data);
                for (name, flags) in entries {
                    name.as_str().encode(&mut data);
                    flags.encode(&mut data);
                }
                3
            }
            Sub::ImportInfo(entries) => {
                entries.len().encode(&mut data);
                for (module, field, flags) in entries {
                    module.as_str().encode(&mut data);
                    field.as_str().encode(&mut data);
                    flags.encode(&mut data);
                }
                4
            }
            Sub::Other(id, bytes) => {
                data.extend_from_slice(bytes);
                *id
            }
        };
        out.push(id);
        data.as_slice().encode(&mut out);
    }
    out
}

// ------------------------------------------------------------- mutations

/// Names worth colliding with: the linker's and the ABI's, and every import
/// and export name of the real inputs.
fn name_pool(inputs: &[Input]) -> Vec<String> {
    let mut pool: Vec<String> = [
        "",
        "env",
        "GOT.mem",
        "GOT.func",
        "wasi_snapshot_preview1",
        "libc.so",
        "libdemo.so",
        "demo.so",
        "libdl.so",
        "libmissing.so",
        "memory",
        "__indirect_function_table",
        "__stack_pointer",
        "__memory_base",
        "__table_base",
        "__wasm_call_ctors",
        "__wasm_apply_data_relocs",
        "_initialize",
        "_start",
        "cabi_realloc",
        "malloc",
        "free",
        "getenv",
        "greet",
        "cabi_post_greet",
        "wit_dylib_initialize",
        "wit_dylib_export_call",
        "wit_dylib_pop_string",
        "$root",
    ]
    .map(String::from)
    .to_vec();
    for input in inputs {
        for payload in Parser::new(0).parse_all(&input.bytes) {
            match payload.expect("the real inputs parse") {
                Payload::ImportSection(s) => {
                    for import in s.into_imports() {
                        let import = import.unwrap();
                        pool.push(import.module.into());
                        pool.push(import.name.into());
                    }
                }
                Payload::ExportSection(s) => {
                    pool.extend(s.into_iter().map(|e| e.unwrap().name.to_string()))
                }
                _ => {}
            }
        }
    }
    pool.sort();
    pool.dedup();
    pool
}

/// A name: mostly one of the pool, sometimes arbitrary.
fn name(u: &mut Unstructured<'_>, pool: &[String]) -> Result<String> {
    if u.ratio(3, 4)? {
        Ok(u.choose(pool)?.clone())
    } else {
        u.arbitrary()
    }
}

/// A number: an edge value or an arbitrary one.
fn number(u: &mut Unstructured<'_>) -> Result<u32> {
    Ok(match u.int_in_range(0..=7)? {
        0 => 0,
        1 => 1,
        2 => 31,
        3 => 32,
        4 => 1 << 16,
        5 => u32::MAX,
        6 => u.int_in_range(0..=64)?,
        _ => u.arbitrary()?,
    })
}

/// Symbol flags: the meaningful bits or arbitrary ones.
fn flags(u: &mut Unstructured<'_>) -> Result<u32> {
    let f = wasmparser::SymbolFlags::all().bits();
    Ok(if u.ratio(3, 4)? {
        u.arbitrary::<u32>()? & f
    } else {
        u.arbitrary()?
    })
}

/// Mutates the `dylink.0` section of `m` (adding one if there is none).
fn mutate_dylink(u: &mut Unstructured<'_>, m: &mut Module, pool: &[String]) -> Result<()> {
    let index = match m.find(CUSTOM, "dylink.0") {
        Some(i) => i,
        None => {
            m.sections.insert(0, (CUSTOM, custom("dylink.0", &[])));
            0
        }
    };
    let Some(mut subs) = decode_dylink(custom_payload(&m.sections[index].1)) else {
        return Ok(());
    };
    let pick = |u: &mut Unstructured<'_>, subs: &mut Vec<Sub>, want: u8| -> Result<usize> {
        let found = subs.iter().position(|s| {
            matches!(
                (s, want),
                (Sub::MemInfo(_), 1)
                    | (Sub::Needed(_), 2)
                    | (Sub::ExportInfo(_), 3)
                    | (Sub::ImportInfo(_), 4)
            )
        });
        Ok(match found {
            Some(i) if u.ratio(7, 8)? => i,
            _ => {
                subs.push(match want {
                    1 => Sub::MemInfo([0; 4]),
                    2 => Sub::Needed(Vec::new()),
                    3 => Sub::ExportInfo(Vec::new()),
                    _ => Sub::ImportInfo(Vec::new()),
                });
                subs.len() - 1
            }
        })
    };
    match u.int_in_range(0..=7)? {
        0 => {
            let i = pick(u, &mut subs, 1)?;
            if let Sub::MemInfo(fields) = &mut subs[i] {
                fields[u.choose_index(4)?] = number(u)?;
            }
        }
        1 => {
            let i = pick(u, &mut subs, 2)?;
            if let Sub::Needed(names) = &mut subs[i] {
                match u.int_in_range(0..=2)? {
                    0 => names.push(name(u, pool)?),
                    1 if !names.is_empty() => drop(names.remove(u.choose_index(names.len())?)),
                    _ if !names.is_empty() => {
                        let n = names[u.choose_index(names.len())?].clone();
                        names.push(n);
                    }
                    _ => names.push(name(u, pool)?),
                }
            }
        }
        2 => {
            let i = pick(u, &mut subs, 3)?;
            if let Sub::ExportInfo(entries) = &mut subs[i] {
                match entries.len() {
                    n if n > 0 && u.arbitrary()? => entries[u.choose_index(n)?].1 = flags(u)?,
                    _ => entries.push((name(u, pool)?, flags(u)?)),
                }
            }
        }
        3 => {
            let i = pick(u, &mut subs, 4)?;
            if let Sub::ImportInfo(entries) = &mut subs[i] {
                match entries.len() {
                    n if n > 0 && u.arbitrary()? => entries[u.choose_index(n)?].2 = flags(u)?,
                    _ => entries.push((name(u, pool)?, name(u, pool)?, flags(u)?)),
                }
            }
        }
        4 => subs.push(Sub::Other(u.arbitrary()?, u.arbitrary()?)),
        5 if subs.len() > 1 => {
            let (a, b) = (u.choose_index(subs.len())?, u.choose_index(subs.len())?);
            subs.swap(a, b);
        }
        6 => {
            m.sections.remove(index);
            return Ok(());
        }
        _ => {
            let copy = m.sections[index].clone();
            m.sections.insert(index, copy);
        }
    }
    m.sections[index].1 = custom("dylink.0", &encode_dylink(&subs));
    Ok(())
}

/// Mutates one import of `m`: its module, its name, its type, or removes it.
fn mutate_imports(u: &mut Unstructured<'_>, m: &mut Module, pool: &[String]) -> Result<()> {
    let Some(index) = m.find(IMPORT, "") else {
        return Ok(());
    };
    // Earlier byte flips may have made the section unreadable: then leave
    // it alone.
    let Ok(reader) = wasmparser::ImportSectionReader::new(wasmparser::BinaryReader::new(
        &m.sections[index].1,
        0,
    )) else {
        return Ok(());
    };
    let Ok(mut imports) = reader
        .into_imports()
        .map(|i| i.map(|i| (i.module.to_string(), i.name.to_string(), i.ty)))
        .collect::<std::result::Result<Vec<(String, String, TypeRef)>, _>>()
    else {
        return Ok(());
    };
    if imports.is_empty() {
        return Ok(());
    }
    let i = u.choose_index(imports.len())?;
    match u.int_in_range(0..=3)? {
        0 => imports[i].0 = name(u, pool)?,
        1 => imports[i].1 = name(u, pool)?,
        2 => {
            imports[i].2 = match imports[i].2 {
                TypeRef::Func(_) => TypeRef::Func(u.int_in_range(0..=31)?),
                TypeRef::Global(mut g) => {
                    if u.arbitrary()? {
                        g.mutable = !g.mutable;
                    } else {
                        g.content_type = *u.choose(&[
                            wasmparser::ValType::I32,
                            wasmparser::ValType::I64,
                            wasmparser::ValType::F32,
                        ])?;
                    }
                    TypeRef::Global(g)
                }
                TypeRef::Memory(mut mem) => {
                    mem.initial = u64::from(number(u)?);
                    TypeRef::Memory(mem)
                }
                TypeRef::Table(mut t) => {
                    t.initial = u64::from(number(u)?);
                    TypeRef::Table(t)
                }
                other => other,
            }
        }
        _ => drop(imports.remove(i)),
    }
    let mut section = ImportSection::new();
    for (module, field, ty) in imports {
        let ty: EntityType = RoundtripReencoder
            .entity_type(ty)
            .expect("wasmparser's types re-encode");
        section.import(&module, &field, ty);
    }
    m.sections[index].1 = section_contents(&section);
    Ok(())
}

/// Mutates the exports of `m`: renames one, removes one, or exports an
/// exported item again under another name.
fn mutate_exports(u: &mut Unstructured<'_>, m: &mut Module, pool: &[String]) -> Result<()> {
    let Some(index) = m.find(EXPORT, "") else {
        return Ok(());
    };
    // Earlier byte flips may have made the section unreadable: then leave
    // it alone.
    let Ok(reader) = wasmparser::ExportSectionReader::new(wasmparser::BinaryReader::new(
        &m.sections[index].1,
        0,
    )) else {
        return Ok(());
    };
    let Ok(mut exports) = reader
        .into_iter()
        .map(|e| e.map(|e| (e.name.to_string(), e.kind, e.index)))
        .collect::<std::result::Result<Vec<(String, wasmparser::ExternalKind, u32)>, _>>()
    else {
        return Ok(());
    };
    if exports.is_empty() {
        return Ok(());
    }
    let i = u.choose_index(exports.len())?;
    match u.int_in_range(0..=2)? {
        0 => exports[i].0 = name(u, pool)?,
        1 => drop(exports.remove(i)),
        _ => {
            let (_, kind, item) = exports[i];
            exports.push((name(u, pool)?, kind, item));
        }
    }
    let mut section = ExportSection::new();
    for (name, kind, item) in exports {
        section.export(&name, RoundtripReencoder.export_kind(kind).unwrap(), item);
    }
    m.sections[index].1 = section_contents(&section);
    Ok(())
}

/// The contents of an encoded section (without its id and size).
fn section_contents(section: &impl wasm_encoder::Section) -> Vec<u8> {
    let mut framed = Vec::new();
    section.encode(&mut framed);
    let mut reader = wasmparser::BinaryReader::new(&framed, 0);
    reader.read_var_u32().expect("a section has a size");
    framed[reader.original_position() as usize..].to_vec()
}

/// Drops, empties or replaces the `name` or `component-type` section.
fn mutate_custom(u: &mut Unstructured<'_>, m: &mut Module) -> Result<()> {
    let names: Vec<usize> = (0..m.sections.len())
        .filter(|&i| {
            m.sections[i].0 == CUSTOM
                && custom_name(&m.sections[i].1)
                    .is_some_and(|n| n == "name" || n.starts_with("component-type"))
        })
        .collect();
    if names.is_empty() {
        return Ok(());
    }
    let index = *u.choose(&names)?;
    let name = custom_name(&m.sections[index].1).unwrap().to_string();
    match u.int_in_range(0..=2)? {
        0 => drop(m.sections.remove(index)),
        1 => {
            let payload = custom_payload(&m.sections[index].1);
            let keep = u.choose_index(payload.len() + 1)?;
            m.sections[index].1 = custom(&name, &payload[..keep]);
        }
        _ => m.sections[index].1 = custom(&name, u.arbitrary()?),
    }
    Ok(())
}

/// Flips some bytes of `wasm`, or cuts it short.
fn mutate_bytes(u: &mut Unstructured<'_>, wasm: &mut Vec<u8>) -> Result<()> {
    if u.ratio(1, 4)? {
        wasm.truncate(u.choose_index(wasm.len())?);
        return Ok(());
    }
    for _ in 0..u.int_in_range(1..=8)? {
        let at = u.choose_index(wasm.len())?;
        wasm[at] ^= u.int_in_range(1..=255)?;
    }
    Ok(())
}

/// Applies one to four mutations to `inputs`.
fn mutate(u: &mut Unstructured<'_>, inputs: &mut [Input], pool: &[String]) -> Result<()> {
    for _ in 0..u.int_in_range(1..=4)? {
        let input = &mut inputs[u.choose_index(inputs.len())?];
        let what = u.int_in_range(0..=9)?;
        if what == 9 {
            mutate_bytes(u, &mut input.bytes)?;
            continue;
        }
        // Raw byte flips may have broken the module's framing: then leave it
        // alone.
        if Parser::new(0).parse_all(&input.bytes).any(|p| p.is_err()) {
            continue;
        }
        let mut m = Module::parse(&input.bytes);
        match what {
            0..=3 => mutate_dylink(u, &mut m, pool)?,
            4 | 5 => mutate_imports(u, &mut m, pool)?,
            6 | 7 => mutate_exports(u, &mut m, pool)?,
            _ => mutate_custom(u, &mut m)?,
        }
        input.bytes = m.encode();
    }
    Ok(())
}

#[test]
fn link_fuzz() {
    let real = real_inputs();
    let pool = name_pool(&real);
    // `COMPONENTIZE_FUZZ_SHOW_ERRORS=1` prints the first line of every
    // refusal, to see which checks the mutations reach.
    let show_errors = std::env::var_os("COMPONENTIZE_FUZZ_SHOW_ERRORS").is_some();
    let (mut linked_count, mut refused) = (0, 0);
    Target::new(
        "link",
        "cargo test -p componentize-link --test fuzz link_fuzz",
    )
    .iterations(300)
    .budget(Duration::from_secs(20))
    .run(|u| {
        let mut inputs = real.clone();
        mutate(u, &mut inputs, &pool)?;
        match link_with_watchdog(&inputs) {
            Ok(linked) => {
                if let Err(e) =
                    wasmparser::Validator::new_with_features(wasmparser::WasmFeatures::all())
                        .validate_all(linked.component())
                {
                    panic!("the linked component does not validate: {e}");
                }
                linked_count += 1;
            }
            Err(e) => {
                let msg = format!("{e:#}");
                assert!(
                    !msg.contains("panicked") && !msg.contains("internal error"),
                    "{msg}"
                );
                if show_errors {
                    eprintln!("refused: {}", msg.lines().next().unwrap_or_default());
                }
                refused += 1;
            }
        }
        Ok(())
    });
    eprintln!("link: {linked_count} linked, {refused} refused");
}

// ------------------------------------------------------------- found by link_fuzz

/// The demo link's inputs, libdemo.so's `dylink.0` mem-info replaced by
/// `mem_info` (memory size, memory alignment, table size, table alignment).
fn with_libdemo_mem_info(mem_info: [u32; 4]) -> Vec<Input> {
    let mut inputs = real_inputs();
    let libdemo = &mut inputs[1];
    let mut m = Module::parse(&libdemo.bytes);
    let index = m.find(CUSTOM, "dylink.0").unwrap();
    let mut subs = decode_dylink(custom_payload(&m.sections[index].1)).unwrap();
    for sub in &mut subs {
        if let Sub::MemInfo(fields) = sub {
            *fields = mem_info;
        }
    }
    m.sections[index].1 = custom("dylink.0", &encode_dylink(&subs));
    libdemo.bytes = m.encode();
    inputs
}

fn link_error(inputs: &[Input]) -> String {
    match link_with_watchdog(inputs) {
        Ok(_) => panic!("linking succeeded; an error was expected"),
        Err(e) => format!("{e:#}"),
    }
}

/// Seed 40: wit-component shifted `1 << 32` ("attempt to shift left with
/// overflow").
#[test]
fn a_mem_info_alignment_past_32_bits_is_refused() {
    let msg = link_error(&with_libdemo_mem_info([1684, 32, 0, 0]));
    assert!(
        msg.contains(
            "library `libdemo.so`: its `dylink.0` mem-info asks for a memory alignment of 2^32"
        ),
        "{msg}"
    );
}

/// Seed 461: a table area aligned to 2^31 slots made wit-component's
/// `i32::try_from(table_offset).unwrap()` panic.
#[test]
fn a_table_area_past_2_31_slots_is_refused() {
    let msg = link_error(&with_libdemo_mem_info([1684, 2, 0, 31]));
    assert!(
        msg.contains("the libraries do not fit in a 32-bit table")
            && msg.contains("library `libdemo.so`"),
        "{msg}"
    );
}

/// The memory areas add up past 4 GiB: wit-component's `u32` sum
/// overflows (found while fixing seed 40: the same sum as its alignment).
#[test]
fn memory_areas_past_4_gib_are_refused() {
    let msg = link_error(&with_libdemo_mem_info([u32::MAX, 2, 0, 0]));
    assert!(
        msg.contains("the libraries do not fit in a 32-bit memory")
            && msg.contains("library `libdemo.so`, which reserves 4294967295 bytes"),
        "{msg}"
    );
}

/// A stack the thread-local area after it cannot follow in an `i32.const`.
#[test]
fn a_stack_past_2_gib_is_refused() {
    let mut link = common::demo_link();
    link.stack_size(u32::MAX);
    let msg = common::error(&link);
    assert!(
        msg.contains("a stack of 4294967295 bytes is too large"),
        "{msg}"
    );
}
