//! The pipeline end to end with the Lua binding: through the binary, through
//! the library (per-stage cache), and stage by stage.

mod common;

use common::{componentize, copy_dir, hello, libc_dir, lua};
use componentize::cache::Cache;
use componentize::{Event, Pipeline, Source, Stage};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Copies the hello example into a scratch folder the test may edit.
fn scratch_example(dir: &Path) -> PathBuf {
    let app = dir.join("app");
    copy_dir(&hello(), &app);
    app
}

/// Runs a wasi:cli command component and returns its stdout.
fn run_command(wasm: &[u8], args: &[&str]) -> String {
    let run = componentize_testkit::run_command(wasm, args, &mut Default::default()).unwrap();
    assert_eq!(run.status, Ok(()), "stderr: {}", run.output.stderr());
    run.output.stdout()
}

/// `componentize` on the hello example, writing `out`.
fn build_hello(out: &Path) -> Command {
    let mut cmd = componentize();
    cmd.arg("--interpreter")
        .arg(lua().interpreter().path)
        .arg("--world")
        .arg(hello())
        .arg("--init")
        .arg(hello().join("app.lua"))
        .arg("-L")
        .arg(libc_dir())
        .arg("-o")
        .arg(out);
    cmd
}

fn pipeline(app: &Path, cache: Option<Cache>) -> Pipeline {
    let mut pipeline = Pipeline::new(Source::path(lua().interpreter().path), app);
    pipeline
        .script(Source::path(app.join("app.lua")))
        .search_path(libc_dir())
        .cache(cache);
    pipeline
}

/// Builds `app` with `cache`: the result and, per stage, whether it was
/// taken from the cache.
fn build(app: &Path, cache: &Cache) -> (componentize::Built, Vec<(Stage, bool)>) {
    let built = pipeline(app, Some(cache.clone())).run(&mut |_| {}).unwrap();
    let cached = built.stages.iter().map(|s| (s.stage, s.cached)).collect();
    (built, cached)
}

#[test]
fn lua_demo_builds_with_the_cli_and_runs() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("hello.wasm");
    let o = build_hello(&out).arg("--no-cache").output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    for stage in ["generate", "link", "init"] {
        assert!(stderr.contains(stage), "progress lacks {stage}: {stderr}");
    }
    let stdout = run_command(&std::fs::read(&out).unwrap(), &["x", "y"]);
    assert_eq!(
        stdout,
        "hello from Lua\nargument: app.wasm\nargument: x\nargument: y\n"
    );
}

#[test]
fn cache_reuses_reruns_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let app = scratch_example(dir.path());
    let cache = Cache::at(dir.path().join("cache"));
    use Stage::*;

    let (first, cached) = build(&app, &cache);
    assert_eq!(cached, [(Generate, false), (Link, false), (Init, false)]);
    let (again, cached) = build(&app, &cache);
    assert_eq!(cached, [(Generate, true), (Link, true), (Init, true)]);
    assert_eq!(first.component, again.component);

    // Only the script changed: only init reruns.
    let script = app.join("app.lua");
    let text = std::fs::read_to_string(&script)
        .unwrap()
        .replace("hello from Lua", "hi from Lua");
    std::fs::write(&script, text).unwrap();
    let (changed, cached) = build(&app, &cache);
    assert_eq!(cached, [(Generate, true), (Link, true), (Init, false)]);
    assert!(run_command(&changed.component, &[]).starts_with("hi from Lua\n"));

    // The WIT changed (one more import): everything reruns. (A change that
    // leaves the bindings identical, like a comment, reruns only generate:
    // the later keys hash bytes, not file dates.)
    let wit = app.join("app.wit");
    let text = std::fs::read_to_string(&wit).unwrap().replace(
        "include wasi:cli/command@0.2.12;",
        "include wasi:cli/command@0.2.12;\n  import wasi:random/insecure@0.2.12;",
    );
    std::fs::write(&wit, text).unwrap();
    let (rebuilt, cached) = build(&app, &cache);
    assert_eq!(cached, [(Generate, false), (Link, false), (Init, false)]);

    // A corrupt entry is detected and recomputed, with the same result.
    for stage in ["generate", "link", "init"] {
        for entry in std::fs::read_dir(cache.dir().join(stage)).unwrap() {
            let path = entry.unwrap().path();
            let mut data = std::fs::read(&path).unwrap();
            let last = data.len() - 1;
            data[last] ^= 0xff;
            std::fs::write(&path, data).unwrap();
        }
    }
    let (recovered, cached) = build(&app, &cache);
    assert_eq!(cached, [(Generate, false), (Link, false), (Init, false)]);
    assert_eq!(recovered.component, rebuilt.component);
}

#[test]
fn concurrent_runs_share_a_cache() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let run = |out: PathBuf| {
        let cache = cache.clone();
        std::thread::spawn(move || {
            let o = build_hello(&out)
                .env("COMPONENTIZE_CACHE_DIR", &cache)
                .arg("-q")
                .output()
                .unwrap();
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            std::fs::read(&out).unwrap()
        })
    };
    let a = run(dir.path().join("a.wasm"));
    let b = run(dir.path().join("b.wasm"));
    let (a, b) = (a.join().unwrap(), b.join().unwrap());
    assert_eq!(a, b);
}

#[test]
fn stage_commands_reproduce_the_pipeline() {
    let dir = tempfile::tempdir().unwrap();
    // Paths and values the shell would split or expand, and every kind of
    // stage option, so commands.sh must quote and carry all of them.
    let app = dir.path().join("my app's $dir");
    copy_dir(&hello(), &app);
    let keep = dir.path().join("keep");
    let out = dir.path().join("hello.wasm");
    let o = componentize()
        .arg("--interpreter")
        .arg(lua().interpreter().path)
        .arg("--world")
        .arg(&app)
        .args(["--world-name", "app", "--features", "one two"])
        .arg("--init")
        .arg(app.join("app.lua"))
        .arg("-L")
        .arg(libc_dir())
        .args([
            "--env",
            "GREETING=it's `a` \"test\"",
            "--init-timeout",
            "120",
        ])
        .args(["--init-memory-limit", "512", "--stack-size", "1048576"])
        .arg("--no-cache")
        .arg("--keep-intermediates")
        .arg(&keep)
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let commands = std::fs::read_to_string(keep.join("commands.sh")).unwrap();
    for flag in [
        "--world app",
        "--init-timeout",
        "--init-memory-limit",
        "--stack-size",
        "--env",
        "--features",
    ] {
        assert!(commands.contains(flag), "{flag} missing from {commands}");
    }
    assert_eq!(
        commands
            .lines()
            .filter(|l| l.starts_with("componentize "))
            .count(),
        3,
        "{commands}"
    );

    // Run the recorded stage commands with this binary, into a fresh
    // folder, from another working directory.
    let redo = dir.path().join("redo");
    std::fs::create_dir_all(&redo).unwrap();
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_componentize"))
        .parent()
        .unwrap();
    let path = std::env::join_paths(std::iter::once(bin_dir.to_path_buf()).chain(
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
    ))
    .unwrap();
    let o = Command::new("sh")
        .arg(keep.join("commands.sh"))
        .arg(&redo)
        .env("PATH", path)
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{commands}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    for (a, b) in [
        ("bindings.so", "bindings.so"),
        ("linked.wasm", "linked.wasm"),
        ("hello.wasm", "hello.wasm"),
    ] {
        assert!(
            std::fs::read(keep.join(a)).unwrap() == std::fs::read(redo.join(b)).unwrap(),
            "{a} differs between the pipeline and its stage commands"
        );
    }
    assert_eq!(
        std::fs::read(&out).unwrap(),
        std::fs::read(redo.join("hello.wasm")).unwrap()
    );
}

#[test]
fn bad_inputs_fail_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let app = scratch_example(dir.path());
    std::fs::write(app.join("broken.lua"), "run = {}\nfunction run.run(\n").unwrap();
    let not_a_dylib = dir.path().join("notwasm.so");
    std::fs::write(&not_a_dylib, b"hello").unwrap();
    let lua_so = lua().interpreter().path;
    let wit = app.clone();
    let script = app.join("app.lua");
    let missing = dir.path().join("missing");
    let cases: Vec<(Vec<std::ffi::OsString>, &str)> = vec![
        (args(&[&lua_so, &missing, &script], &[]), "does not exist"),
        (
            args(&[&missing, &wit, &script], &[]),
            "cannot read the interpreter",
        ),
        (
            args(&[&lua_so, &wit, &missing], &[]),
            "cannot read the script",
        ),
        (
            args(&[&lua_so, &wit, &script], &["--world-name", "nope"]),
            "world `nope` not found",
        ),
        (args(&[&not_a_dylib, &wit, &script], &[]), "notwasm.so"),
        (
            args(&[&lua_so, &wit, &app.join("broken.lua")], &[]),
            "broken.lua:",
        ),
    ];
    let out = dir.path().join("out.wasm");
    for (a, expected) in cases {
        let o = componentize()
            .args(&a)
            .arg("-L")
            .arg(libc_dir())
            .arg("--no-cache")
            .arg("-q")
            .arg("-o")
            .arg(&out)
            .output()
            .unwrap();
        let stderr = common::failed(&o);
        assert!(stderr.starts_with("error: "), "{stderr}");
        assert!(stderr.contains(expected), "`{expected}` not in: {stderr}");
        assert!(!out.exists(), "output left behind after: {stderr}");
    }
}

fn args(paths: &[&Path; 3], extra: &[&str]) -> Vec<std::ffi::OsString> {
    let mut v: Vec<std::ffi::OsString> = vec![
        "--interpreter".into(),
        paths[0].into(),
        "--world".into(),
        paths[1].into(),
        "--init".into(),
        paths[2].into(),
    ];
    v.extend(extra.iter().map(|s| s.into()));
    v
}

/// A change of one stage option: what to set, and the stage whose key it is
/// part of (stages before it stay cached).
type OptionChange = (&'static str, Stage, Box<dyn Fn(&mut Pipeline, &Path)>);

#[test]
fn every_stage_option_is_part_of_its_stage_key() {
    let dir = tempfile::tempdir().unwrap();
    let app = scratch_example(dir.path());
    let cache = Cache::at(dir.path().join("cache"));
    let (base, _) = build(&app, &cache);
    // The pipeline's link options hold its -L folder: every change keeps it.
    let link = |change: &dyn Fn(&mut componentize_link::Options)| {
        let mut options = componentize_link::Options::default();
        options.search.push(libc_dir());
        change(&mut options);
        options
    };
    let init = |change: &dyn Fn(&mut componentize_init::Options)| {
        let mut options = componentize_init::Options::default();
        change(&mut options);
        options
    };
    // An adapter for a namespace nothing imports: in the key, not linked.
    let adapter = dir.path().join("adapter.wasm");
    std::fs::write(&adapter, b"\0asm\x01\0\0\0").unwrap();
    let changes: Vec<OptionChange> = vec![
        (
            "--features",
            Stage::Generate,
            Box::new(|p, _| {
                let mut wit = componentize_generate::WitOptions::default();
                wit.feature("not-used");
                p.wit_options(wit);
            }),
        ),
        (
            "--exclude-interface",
            Stage::Generate,
            Box::new(|p, _| {
                // An import the script never uses: the bindings leave it out.
                let mut generate = componentize_generate::Options::default();
                generate.exclude_interface("wasi:cli/terminal-stdin@0.2");
                p.generate_options(generate);
            }),
        ),
        (
            "--dl-openable",
            Stage::Link,
            Box::new(move |p, _| {
                p.link_options(link(&|o| o.dl_openable.push("liblua.so".into())));
            }),
        ),
        (
            "--stack-size",
            Stage::Link,
            Box::new(move |p, _| {
                p.link_options(link(&|o| o.stack_size = Some(2 << 20)));
            }),
        ),
        (
            "--stub-missing-functions",
            Stage::Link,
            Box::new(move |p, _| {
                p.link_options(link(&|o| o.stub_missing_functions = true));
            }),
        ),
        (
            "--adapt",
            Stage::Link,
            Box::new(move |p, adapter| {
                let adapter = adapter.to_path_buf();
                p.link_options(link(&move |o| {
                    o.adapt
                        .push(componentize_link::AdapterFile::new("unused", &adapter))
                }));
            }),
        ),
        (
            "--env",
            Stage::Init,
            Box::new(move |p, _| {
                p.init_options(init(&|o| {
                    o.env.push(componentize_init::EnvVar::new("MODE", "test"))
                }));
            }),
        ),
        (
            "--init-timeout",
            Stage::Init,
            Box::new(move |p, _| {
                p.init_options(init(&|o| o.timeout = std::time::Duration::from_secs(100)));
            }),
        ),
        (
            "--init-memory-limit",
            Stage::Init,
            Box::new(move |p, _| {
                p.init_options(init(&|o| o.memory_limit = 1 << 30));
            }),
        ),
        (
            "--keep-init-export",
            Stage::Init,
            Box::new(move |p, _| {
                p.init_options(init(&|o| o.keep_init_export = true));
            }),
        ),
    ];
    for (flag, stage, change) in &changes {
        let mut pipeline = pipeline(&app, Some(cache.clone()));
        change(&mut pipeline, &adapter);
        let built = pipeline.run(&mut |_| {}).unwrap();
        // The first stage not taken from the cache is the option's own.
        let first_rerun = built.stages.iter().find(|s| !s.cached).map(|s| s.stage);
        assert_eq!(first_rerun, Some(*stage), "{flag}: {:?}", built.stages);
        // The same options again: all cached.
        let again = pipeline.run(&mut |_| {}).unwrap();
        assert!(
            again.stages.iter().all(|s| s.cached),
            "{flag}: {:?}",
            again.stages
        );
    }

    // `--dir` makes init uncacheable (granted folders may change between
    // runs), so it has no key to be part of; `--init-func` replaces the
    // script and is the init key's call.

    // Where the effect is visible in the bytes, it reached the stage.
    let mut bigger_stack = pipeline(&app, Some(cache.clone()));
    bigger_stack.link_options(link(&|o| o.stack_size = Some(2 << 20)));
    assert_ne!(bigger_stack.run(&mut |_| {}).unwrap().linked, base.linked);
    let mut kept = pipeline(&app, Some(cache.clone()));
    kept.init_options(init(&|o| o.keep_init_export = true));
    let kept = kept.run(&mut |_| {}).unwrap().component;
    let exports = |wasm: &[u8]| -> Vec<String> {
        let component = componentize_testkit::compile(wasm).unwrap();
        let ty = component.component_type();
        ty.exports(componentize_testkit::engine())
            .map(|(name, _)| name.to_string())
            .collect()
    };
    let contract = componentize_contract::INIT_INTERFACE.to_string();
    assert!(exports(&kept).contains(&contract));
    assert!(!exports(&base.component).contains(&contract));
    let mut partial = pipeline(&app, Some(cache.clone()));
    let mut generate = componentize_generate::Options::default();
    generate.exclude_interface("wasi:cli/terminal-stdin");
    partial.generate_options(generate);
    let partial = partial.run(&mut |_| {}).unwrap();
    let imports = |wasm: &[u8]| -> Vec<String> {
        let component = componentize_testkit::compile(wasm).unwrap();
        let ty = component.component_type();
        ty.imports(componentize_testkit::engine())
            .map(|(name, _)| name.to_string())
            .collect()
    };
    let stdin = "wasi:cli/terminal-stdin@0.2.12".to_string();
    assert!(imports(&base.component).contains(&stdin));
    assert!(!imports(&partial.component).contains(&stdin));
    assert_eq!(
        run_command(&partial.component, &[]),
        run_command(&base.component, &[])
    );
    let mut dl = pipeline(&app, Some(cache.clone()));
    dl.link_options(link(&|o| o.dl_openable.push("liblua.so".into())));
    let dl = dl.run(&mut |_| {}).unwrap();
    assert_ne!(dl.linked, base.linked);
}

/// Files under `dir`, recursively (none when it does not exist).
fn files_under(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .map(|e| {
            let path = e.unwrap().path();
            if path.is_dir() { files_under(&path) } else { 1 }
        })
        .sum()
}

#[test]
fn a_new_world_with_the_same_interpreter_reuses_its_compiled_functions() {
    let dir = tempfile::tempdir().unwrap();
    let app = scratch_example(dir.path());
    let cache = Cache::at(dir.path().join("cache"));
    let functions = || files_under(&dir.path().join("cache/code/functions"));
    let (mut details, mut progress) = (Vec::new(), Vec::new());
    let built = pipeline(&app, Some(cache.clone()))
        .run(&mut |event| match event {
            Event::Detail(Stage::Init, text) => details.push(text),
            Event::Progress(Stage::Init, text) => progress.push(text),
            _ => {}
        })
        .unwrap();
    // Compiling takes long enough to report progress: functions counted
    // through the function cache, never more than the component has.
    let init_time = built.stages[2].time;
    if init_time > componentize::PROGRESS_INTERVAL * 3 {
        assert!(!progress.is_empty(), "no progress in {init_time:?}");
    }
    for line in &progress {
        let (done, total) = line
            .strip_prefix("compiling ")
            .and_then(|l| l.strip_suffix(" functions (Cranelift)"))
            .map(|l| l.split_once(" of ").unwrap_or(("0", l)))
            .unwrap_or_else(|| panic!("progress `{line}`"));
        let (done, total): (usize, usize) = (done.parse().unwrap(), total.parse().unwrap());
        assert!(done <= total && total > 1000, "{line}");
    }
    // The Lua binding's setjmp/longjmp are wasm exceptions, which Winch
    // lacks: init says so and compiles with Cranelift.
    assert!(
        details.iter().any(|d| d.starts_with(
            "compiled with Cranelift (unoptimized): Winch lacks a feature: core module"
        ) && d.contains("(exceptions)")),
        "{details:?}"
    );
    let first = functions();
    assert!(first > 1000, "only {first} compiled functions cached");

    // Another world (one more export) with the same interpreter: only the
    // bindings' functions, and what wit-component made for this world, are
    // new.
    let wit = std::fs::read_to_string(app.join("app.wit")).unwrap();
    std::fs::write(
        app.join("app.wit"),
        wit.replacen(
            "world app {",
            "world app {\n  export extra: func() -> u32;",
            1,
        ),
    )
    .unwrap();
    let script = std::fs::read_to_string(app.join("app.lua")).unwrap();
    std::fs::write(
        app.join("app.lua"),
        format!("{script}\nfunction extra() return 7 end\n"),
    )
    .unwrap();
    let (built, cached) = build(&app, &cache);
    assert_eq!(
        cached,
        [
            (Stage::Generate, false),
            (Stage::Link, false),
            (Stage::Init, false)
        ]
    );
    let added = functions() - first;
    assert!(
        added * 10 < first,
        "the new world compiled {added} functions anew (the first build {first})"
    );
    let component = componentize_testkit::compile(&built.component).unwrap();
    let (mut store, _output) = componentize_testkit::HostBuilder::new().store(());
    let instance = componentize_testkit::linker()
        .instantiate(&mut store, &component)
        .unwrap();
    let results =
        componentize_testkit::call_export(&mut store, &instance, None, "extra", &[]).unwrap();
    assert_eq!(results, [wasmtime::component::Val::U32(7)]);
}
