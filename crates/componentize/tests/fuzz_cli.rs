//! Fuzz targets of the command line (issue 17, target 5), on the testkit's
//! stable-Rust driver ([`componentize_testkit::fuzz`]):
//!
//! - `argument_vectors_give_an_error_never_a_panic`: argument vectors for
//!   the `componentize` binary, from its subcommands and flags mixed with
//!   arbitrary strings, numbers, sizes and paths (to files of a scratch
//!   folder: valid and invalid WIT, a script, a built component, garbage
//!   wasm, an empty file, a folder), run in that folder; they exit 0 or
//!   with an `error:` line, never panic, and leave no temporary file;
//! - `init_func_calls_parse_or_give_an_error`: `--init-func` strings, as
//!   arbitrary text and as mutations of valid WAVE calls, parsed by
//!   [`componentize_init::ExportCall`] against the exports of real worlds:
//!   a parsed call or an error that does not repeat the arguments.
//!
//! `COMPONENTIZE_FUZZ_SECONDS=s` runs each target for `s` seconds.

mod common;

use arbitrary::Unstructured;
use common::componentize;
use componentize_testkit::fuzz::Target;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use wasmtime::component::Component;

/// Flags and what each takes.
type Flags = &'static [(&'static str, Takes)];

/// What a flag takes.
#[derive(Clone, Copy)]
enum Takes {
    Nothing,
    Input,
    Output,
    Number,
    Value,
}

use Takes::{Input, Nothing, Number, Output, Value};

/// The flags of `init` and the pipeline (`componentize --help`,
/// `componentize init --help`).
const INIT_FLAGS: Flags = &[
    ("--dir", Value),
    ("--dir", Input),
    ("--env", Value),
    ("--module-path", Input),
    ("--init-timeout", Number),
    ("--init-memory-limit", Number),
    ("--keep-init-export", Nothing),
    ("--allow-http", Nothing),
];

/// The flags of `link` and the pipeline.
const LINK_FLAGS: Flags = &[
    ("-L", Input),
    ("--adapt", Value),
    ("--dl-openable", Value),
    ("--dl-openable", Input),
    ("--stub-missing-functions", Nothing),
    ("--stack-size", Number),
];

/// The flags of `generate` and the pipeline.
const GENERATE_FLAGS: Flags = &[
    ("--features", Value),
    ("--all-features", Nothing),
    ("--exclude-interface", Value),
    ("--exclude-export", Value),
];

/// The pipeline's own flags.
const PIPELINE_FLAGS: Flags = &[
    ("--interpreter", Input),
    ("--world", Input),
    ("--world-name", Value),
    ("--init", Input),
    ("--init-func", Value),
    ("--lib", Input),
    ("--no-cache", Nothing),
    ("--keep-intermediates", Output),
    ("-v", Nothing),
    ("-q", Nothing),
    ("-o", Output),
];

/// The flags of `generate` alone.
const GENERATE_ONLY: Flags = &[
    ("-w", Value),
    ("--init-export", Nothing),
    ("--interpreter", Value),
    ("--async", Value),
    ("--stack-pointer", Value),
    ("-o", Output),
];

/// The flags of `link` alone.
const LINK_ONLY: Flags = &[("-v", Nothing), ("-o", Output)];

/// The flags of `init` alone.
const INIT_ONLY: Flags = &[
    ("--script", Input),
    ("--init-func", Value),
    ("-v", Nothing),
    ("-o", Output),
];

/// The flags of `run` (`componentize run --help`).
const RUN_FLAGS: Flags = &[
    ("--invoke", Value),
    ("--no-cache", Nothing),
    ("--dir", Value),
    ("--env", Value),
    ("--", Nothing),
];

/// The flags of `serve` (`componentize serve --help`).
const SERVE_FLAGS: Flags = &[
    ("--no-cache", Nothing),
    ("--addr", Value),
    ("--max-request-body", Number),
    ("--max-response-body", Number),
    ("--dir", Value),
    ("--env", Value),
];

/// The flags of `header`.
const HEADER_FLAGS: Flags = &[("-o", Output)];

/// Flags every command has.
const HELP_FLAGS: Flags = &[("-h", Nothing), ("--help", Nothing), ("-V", Nothing)];

/// The commands: their words, how many positional arguments they take
/// (paths; `cache limit` takes a size, `help` a command), and the flags
/// that fit them.
const COMMANDS: &[(&[&str], usize, &[Flags])] = &[
    (
        &[],
        0,
        &[PIPELINE_FLAGS, GENERATE_FLAGS, LINK_FLAGS, INIT_FLAGS],
    ),
    (&["generate"], 1, &[GENERATE_FLAGS, GENERATE_ONLY]),
    (&["link"], 3, &[LINK_FLAGS, LINK_ONLY]),
    (&["init"], 1, &[INIT_FLAGS, INIT_ONLY]),
    (&["run"], 1, &[RUN_FLAGS]),
    (&["serve"], 1, &[SERVE_FLAGS]),
    (&["cache", "stats"], 0, &[HELP_FLAGS]),
    (&["cache", "clean"], 0, &[HELP_FLAGS]),
    (&["cache", "limit"], 1, &[HELP_FLAGS]),
    (&["cache"], 0, &[HELP_FLAGS]),
    (&["header"], 0, &[HEADER_FLAGS]),
    (&["interpreters"], 0, &[HELP_FLAGS]),
    (&["help"], 1, &[HELP_FLAGS]),
];

/// The subcommands, for `help`.
const SUBCOMMANDS: &[&str] = &[
    "generate",
    "link",
    "init",
    "run",
    "serve",
    "cache",
    "header",
    "interpreters",
    "help",
];

/// Paths to read: the scratch folder's files, paths that do not exist, odd
/// ones.
const PATHS: &[&str] = &[
    "valid.wit",
    "invalid.wit",
    "app.lua",
    "app.wasm",
    "garbage.wasm",
    "empty",
    "folder",
    "folder/",
    "folder/inner.wit",
    "missing.wasm",
    "out.wasm",
    "out/deep/x.wasm",
    "folder/out.wasm",
    ".",
    "..",
    "/",
    "/dev/null",
    "lua",
    "libc.so",
    "",
];

/// Paths to write: inside the scratch folder only (an output replaces what
/// was there, and the fuzzer runs as whoever runs the tests: `-o
/// /dev/null` as root replaced the device with a file), over inputs,
/// folders and missing folders.
const OUTPUTS: &[&str] = &[
    "out.wasm",
    "out/deep/x.wasm",
    "folder/out.wasm",
    "folder",
    "folder/",
    ".",
    "..",
    "valid.wit",
    "app.wasm",
    "empty",
    "",
];

/// Numbers and sizes, in range and not.
const NUMBERS: &[&str] = &[
    "0",
    "1",
    "-1",
    "2.5",
    "0.001",
    "1e300",
    "-0",
    "NaN",
    "inf",
    "4294967295",
    "4294967296",
    "18446744073709551615",
    "18446744073709551616",
    "17592186044416",
    "16MiB",
    "1GiB",
    "0B",
    "1K",
    "18446744073709551615GiB",
    "12XB",
    " 7 ",
];

/// Values of the other flags: worlds, calls, `--env`, `--dir`, `--adapt`,
/// `--addr`, features, exclusions.
const VALUES: &[&str] = &[
    "app",
    "nope",
    "run",
    "run(3)",
    "run(\"x\")",
    "run(4294967296)",
    "f()",
    "pkg:ns/iface.f(\"x\", 3)",
    "run(",
    "KEY=VALUE",
    "KEY",
    "=x",
    "PATH",
    "folder::/data",
    "folder::",
    "::",
    "wasi_snapshot_preview1=garbage.wasm",
    "x=",
    "127.0.0.1:0",
    "[::1]:0",
    "0.0.0.0:99999",
    "localhost",
    "a,b c",
    "wasi:cli/run@0.2",
];

/// The scratch folder's files, which the paths above name; `app` is a
/// component built from `valid.wit` and `app.lua`.
fn populate(dir: &Path, app: &[u8]) {
    std::fs::write(dir.join("valid.wit"), VALID_WIT).unwrap();
    std::fs::write(dir.join("app.lua"), APP_LUA).unwrap();
    std::fs::write(dir.join("app.wasm"), app).unwrap();
    std::fs::write(dir.join("invalid.wit"), "package fuzz:cli;\nworld {").unwrap();
    std::fs::write(dir.join("garbage.wasm"), b"\0asm\x0d\0\x01\0garbage").unwrap();
    std::fs::write(dir.join("empty"), b"").unwrap();
    std::fs::create_dir(dir.join("folder")).unwrap();
    std::fs::write(
        dir.join("folder/inner.wit"),
        "package fuzz:inner;\n\nworld w {\n  import f: func();\n}\n",
    )
    .unwrap();
}

/// A world the bundled Lua interpreter builds quickly.
const VALID_WIT: &str = "package fuzz:cli;\n\nworld app {\n  export run: func(n: u32) -> u64;\n}\n";

/// A script for [`VALID_WIT`].
const APP_LUA: &str =
    "counter = 0\nfunction run(n)\n  counter = counter + n\n  return counter\nend\n";

/// The component built from [`VALID_WIT`] and [`APP_LUA`] (not a wasi:cli
/// command, not an HTTP proxy: `run` needs `--invoke`, `serve` refuses it).
fn app() -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("valid.wit"), VALID_WIT).unwrap();
    std::fs::write(dir.path().join("app.lua"), APP_LUA).unwrap();
    common::ok(
        &componentize()
            .args([
                "--interpreter",
                "lua",
                "--world",
                "valid.wit",
                "--init",
                "app.lua",
            ])
            .args(["-q", "-o", "app.wasm"])
            .current_dir(dir.path())
            .env("COMPONENTIZE_CACHE_DIR", common::cache())
            .output()
            .unwrap(),
    );
    std::fs::read(dir.path().join("app.wasm")).unwrap()
}

/// A value for a flag that takes `takes` (nothing for a switch).
fn value(u: &mut Unstructured, takes: Takes) -> arbitrary::Result<Option<String>> {
    Ok(Some(match takes {
        Nothing => return Ok(None),
        Input => u.choose(PATHS)?.to_string(),
        Output => u.choose(OUTPUTS)?.to_string(),
        Number if u.ratio(1, 4)? => u.arbitrary::<u64>()?.to_string(),
        Number => u.choose(NUMBERS)?.to_string(),
        Value => u.choose(VALUES)?.to_string(),
    }))
}

/// An argument vector: a command, its positional arguments, flags that fit
/// it with values, and now and then an argument from anywhere or arbitrary
/// text (without NUL, which no argument can hold).
fn arguments(u: &mut Unstructured) -> arbitrary::Result<Vec<String>> {
    let (command, positional, flags) = *u.choose(COMMANDS)?;
    let mut args: Vec<String> = command.iter().map(|c| c.to_string()).collect();
    let positional = match u.ratio(7, 8)? {
        true => positional,
        false => u.int_in_range(0..=positional + 1)?,
    };
    for _ in 0..positional {
        args.push(match command {
            ["cache", "limit"] => u.choose(NUMBERS)?.to_string(),
            ["help"] => u.choose(SUBCOMMANDS)?.to_string(),
            _ => u.choose(PATHS)?.to_string(),
        });
    }
    if command.is_empty() {
        // The pipeline's required flags, mostly with inputs that build.
        for (flag, good) in [("--interpreter", "lua"), ("--world", "valid.wit")] {
            if u.ratio(7, 8)? {
                args.push(flag.into());
                args.push(match u.ratio(3, 4)? {
                    true => good.into(),
                    false => u.choose(PATHS)?.to_string(),
                });
            }
        }
    }
    for _ in 0..u.int_in_range(0..=4)? {
        let group = *u.choose(flags)?;
        let (flag, takes) = *u.choose(group)?;
        args.push(flag.into());
        args.extend(value(u, takes)?);
    }
    if u.ratio(1, 6)? {
        let noise = match u.int_in_range(0..=4)? {
            // Noise may land after `-o`: only paths that may be written.
            0 => u.choose(OUTPUTS)?.to_string(),
            1 => u.choose(HELP_FLAGS)?.0.to_string(),
            2 => u.choose(NUMBERS)?.to_string(),
            3 => u.choose(VALUES)?.to_string(),
            // Not absolute: that could write outside the scratch folder.
            _ => u
                .arbitrary::<String>()?
                .replace('\0', "")
                .trim_start_matches('/')
                .to_string(),
        };
        let at = u.int_in_range(0..=args.len())?;
        args.insert(at, noise);
    }
    Ok(args)
}

/// The longest a run may take; `serve` is the one command that may run
/// until killed.
const WATCHDOG: Duration = Duration::from_secs(30);

/// How a run ended: its status (`None`: killed by the watchdog) and stderr.
fn run(dir: &Path, cache: &Path, args: &[String]) -> (Option<ExitStatus>, String) {
    let stderr_path = dir.join("../stderr");
    let mut child = componentize()
        .args(args)
        .current_dir(dir)
        .env("COMPONENTIZE_CACHE_DIR", cache)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .expect("starting componentize");
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if start.elapsed() > WATCHDOG {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let stderr = std::fs::read(&stderr_path).unwrap();
    (status, String::from_utf8_lossy(&stderr).into_owned())
}

/// The names in `dir` and its subfolders that start with `prefix`.
fn find(dir: &Path, prefix: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(prefix) {
            found.push(name);
        }
        if entry.file_type().unwrap().is_dir() {
            found.extend(find(&entry.path(), prefix));
        }
    }
    found
}

#[test]
fn argument_vectors_give_an_error_never_a_panic() {
    let cache = common::cache();
    let app = app();
    Target::new(
        "argument_vectors_give_an_error_never_a_panic",
        "cargo test -p componentize --test fuzz_cli argument_vectors",
    )
    .iterations(150)
    .budget(Duration::from_secs(15))
    .run(|u| {
        let args = arguments(u)?;
        let scratch = tempfile::tempdir().unwrap();
        let dir = scratch.path().join("work");
        std::fs::create_dir(&dir).unwrap();
        populate(&dir, &app);
        let (status, stderr) = run(&dir, &cache, &args);
        let Some(status) = status else {
            assert!(
                args.iter().any(|a| a == "serve"),
                "componentize {args:?} ran for more than {WATCHDOG:?}; stderr:\n{stderr}"
            );
            return Ok(());
        };
        assert!(
            !stderr.contains("panicked at") && status.code() != Some(101),
            "componentize {args:?} panicked ({status}):\n{stderr}"
        );
        assert!(
            status.code().is_some(),
            "componentize {args:?} was killed by a signal ({status}):\n{stderr}"
        );
        // Errors are one `error: ...` (clap's usage errors too), after any
        // stage lines and warnings the pipeline printed. clap answers a
        // command group without its subcommand (`componentize cache`) with
        // the group's help instead.
        let group_help = status.code() == Some(2) && stderr.contains("\nUsage: ");
        if !status.success() && !group_help {
            assert!(
                stderr.lines().any(|l| l.starts_with("error: ")),
                "componentize {args:?} failed ({status}) without an `error:` line:\n{stderr}"
            );
        }
        let stray = find(&dir, ".componentize-");
        assert!(
            stray.is_empty(),
            "componentize {args:?} left temporary files {stray:?}"
        );
        Ok(())
    });
}

/// The worlds calls are parsed against (fixtures/wit): records, variants,
/// flags and maps in interfaces; scalars at the top level and in an
/// interface; resources.
const WORLDS: &[(&str, &str)] = &[
    ("compound.wit", "compound"),
    ("scalars.wit", "scalars"),
    ("resources.wit", "resources"),
];

/// Valid calls of the worlds' exports, the seeds of the mutations.
const CALLS: &[&str] = &[
    "run(3)",
    "run",
    "componentize:scalars/numbers.nothing",
    "componentize:scalars/numbers.mixed(1, -2, 3, -4, 1.5, nan, 'x', true, \"s\")",
    "componentize:scalars/numbers.echo-char('\\u{1F600}')",
    "componentize:scalars/numbers.echo-string(\"a\\nb\\\"\")",
    "componentize:scalars/numbers.echo-f64(-inf)",
    "componentize:compound/types.echo-point({x: 1, y: -2})",
    "componentize:compound/types.echo-person({name: \"ann\", age: 3, tags: [\"a\"], home: some({x: 0, y: 0})})",
    "componentize:compound/types.echo-flags({a}, {b0, b7}, {}, {d31})",
    "componentize:compound/types.echo-color(green)",
    "componentize:compound/types.echo-shape(rect((1.5, 2.0)))",
    "componentize:compound/types.echo-option(some(none))",
    "componentize:compound/types.echo-result(err(7))",
    "componentize:compound/types.echo-results(ok, ok(\"x\"), err(\"e\"))",
    "componentize:compound/types.echo-nested([[some(-1), none], []])",
    "componentize:compound/types.echo-pair((1, [\"a\", \"b\"]))",
    "componentize:compound/types.echo-tuple((1, -2, \"x\", 0.5))",
    "componentize:compound/maps.echo-map([(\"a\", 1)])",
    "componentize:compound/maps.echo-nested-map([(1, [(2, some(3))])])",
    "describe",
    "componentize:resources/counters.[constructor]counter(5)",
    "componentize:resources/counters.[method]counter.next",
];

/// A string argument the error messages must not repeat: arguments may
/// hold secrets.
const SECRET: &str = "s3cr3t-argument";

/// Pieces of WAVE and of names that mutations insert.
const TOKENS: &[&str] = &[
    "(",
    ")",
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "\"",
    "'",
    "\\",
    "\\u{",
    "%",
    "@",
    ".",
    "/",
    "-",
    "_",
    "0",
    "-1",
    "1.5e400",
    "nan",
    "inf",
    "true",
    "some(",
    "none",
    "ok(",
    "err(",
    "@1.0.0",
    "[method]",
    "[static]",
    "[constructor]",
    "é",
    "\u{1F600}",
    "\u{0}",
    " ",
    "\n",
    SECRET,
];

/// WAVE values of many types, for calls built from an export's name.
const ARGUMENTS: &[&str] = &[
    "1",
    "-2",
    "1.5e400",
    "nan",
    "true",
    "\"x\"",
    "'c'",
    "[1, 2]",
    "{x: 1, y: 2}",
    "{a, b0}",
    "red",
    "some(none)",
    "ok(1.5)",
    "err(\"e\")",
    "(1, \"x\")",
    "[(\"a\", 1)]",
    "\"\\u{1F600}\"",
    "\"s3cr3t-argument\"",
];

/// One of [`CALLS`], an arbitrary string, or a name of `names` with
/// arguments; then up to three mutations of a short span (a token
/// inserted, the span removed, replaced by a token or repeated).
fn call_text(u: &mut Unstructured, names: &[String]) -> arbitrary::Result<String> {
    let mut call = match u.int_in_range(0..=3)? {
        0 => u.choose(CALLS)?.to_string(),
        1 => u.arbitrary::<String>()?,
        _ => {
            let name = u.choose(names)?;
            let args: Vec<&str> = (0..u.int_in_range(0..=3)?)
                .map(|_| u.choose(ARGUMENTS).copied())
                .collect::<arbitrary::Result<_>>()?;
            match u.arbitrary()? {
                false => name.clone(),
                true => format!("{name}({})", args.join(", ")),
            }
        }
    };
    for _ in 0..u.int_in_range(0..=3)? {
        let boundaries: Vec<usize> = (0..=call.len())
            .filter(|i| call.is_char_boundary(*i))
            .collect();
        // A span of up to four characters.
        let first = u.choose_index(boundaries.len())?;
        let last = (first + u.int_in_range(0..=4)?).min(boundaries.len() - 1);
        let (from, to) = (boundaries[first], boundaries[last]);
        match u.int_in_range(0..=3)? {
            0 => call.insert_str(from, u.choose(TOKENS)?),
            1 => call.replace_range(from..to, ""),
            2 => call.replace_range(from..to, u.choose(TOKENS)?),
            _ => {
                let span = call[from..to].to_string();
                call.insert_str(to, &span);
            }
        }
    }
    Ok(call)
}

/// The fixture world `world` of `file` as a compiled component (generated
/// bindings linked with the toolchain's generic test interpreter and libc:
/// the calls are parsed, never made), and the names `--init-func` spells
/// its exported functions by.
fn world_component(file: &str, world: &str) -> (Component, Vec<String>) {
    use componentize_testkit::toolchain_file;
    use wasmtime::component::types::ComponentItem;
    let mut resolve = wit_parser::Resolve::default();
    let pkg = resolve.push_path(common::corpus(file)).unwrap().0;
    let world = resolve.select_world(&[pkg], Some(world)).unwrap();
    let interpreter = "libtestinterp.so";
    let bindings = componentize_generate::generate(
        &resolve,
        world,
        componentize_generate::Options::default().interpreter(interpreter),
    )
    .unwrap()
    .into_wasm();
    // The interpreter first: it defines `cabi_realloc`.
    let mut linker = wit_component::Linker::default();
    linker
        .library(interpreter, toolchain_file("lib/libtestinterp.so"), false)
        .unwrap();
    linker.library("bindings.so", &bindings, false).unwrap();
    linker
        .library("libc.so", toolchain_file(componentize_testkit::LIBC), false)
        .unwrap();
    let component = componentize_testkit::compile(&linker.encode().unwrap()).unwrap();
    let engine = componentize_testkit::engine();
    let mut names = Vec::new();
    for (name, item) in component.component_type().exports(engine) {
        match item.ty {
            ComponentItem::ComponentFunc(_) => names.push(name.to_string()),
            ComponentItem::ComponentInstance(instance) => {
                for (func, _) in instance.exports(engine) {
                    names.push(format!("{name}.{func}"));
                }
            }
            _ => {}
        }
    }
    (component, names)
}

/// [`WORLDS`], built once.
fn worlds() -> &'static [(Component, Vec<String>)] {
    static WORLD_COMPONENTS: OnceLock<Vec<(Component, Vec<String>)>> = OnceLock::new();
    WORLD_COMPONENTS.get_or_init(|| {
        WORLDS
            .iter()
            .map(|(file, world)| world_component(file, world))
            .collect()
    })
}

#[test]
fn init_func_calls_parse_or_give_an_error() {
    let worlds = worlds();
    let engine = componentize_testkit::engine();
    let (mut parsed, mut refused) = (0, 0);
    Target::new(
        "init_func_calls_parse_or_give_an_error",
        "cargo test -p componentize --test fuzz_cli init_func_calls",
    )
    .iterations(20_000)
    .budget(Duration::from_secs(10))
    .run(|u| {
        let (_, names) = u.choose(worlds)?;
        let call = call_text(u, names)?;
        // Against every world: a call of one world's function is a call of
        // a missing function in the others.
        for (component, _) in worlds {
            match componentize_init::ExportCall::parse(engine, component, &call) {
                Ok(_) => parsed += 1,
                Err(e) => {
                    let message = format!("{e:#}");
                    assert!(!message.trim().is_empty(), "no message for {call:?}");
                    let name = call.split('(').next().unwrap_or_default();
                    assert!(
                        name.contains(SECRET) || !message.contains(SECRET),
                        "the error for {call:?} repeats an argument: {message}"
                    );
                    refused += 1;
                }
            }
        }
        Ok(())
    });
    eprintln!("{parsed} parsed, {refused} errors (each call against each world)");
}

/// Found by `init_func_calls_parse_or_give_an_error`: WAVE's errors repeat
/// an unknown case (the first input), a field given twice and a value of
/// the wrong type (an enum case or flag it does not have), and the messages
/// passed them on. (A field the record does not have is dropped by
/// wasmtime; the one it then misses is named.)
#[test]
fn wave_errors_do_not_repeat_the_arguments() {
    let (compound, _) = &worlds()[0];
    let types = "componentize:compound/types";
    for (call, needle) in [
        (
            format!("{types}.echo-shape({SECRET}rect((1.5, 2.0)))"),
            "a case its type does not have",
        ),
        (
            format!("{types}.echo-color({SECRET})"),
            "expected enum { red, green, blue }",
        ),
        (
            format!("{types}.echo-point({{x: 1, {SECRET}: 3}})"),
            "missing field \"y\"",
        ),
        (
            format!("{types}.echo-point({{{SECRET}: 1, {SECRET}: 2}})"),
            "duplicate field",
        ),
        (
            format!("{types}.echo-flags({{a}}, {{{SECRET}}}, {{}}, {{}})"),
            "expected flags { b0, b1",
        ),
    ] {
        let e =
            componentize_init::ExportCall::parse(componentize_testkit::engine(), compound, &call)
                .expect_err(&call);
        let message = format!("{e:#}");
        assert!(message.contains(needle), "`{needle}` not in: {message}");
        assert!(!message.contains(SECRET), "{message}");
    }
}
