//! The pipeline end to end with the Lua binding: through the binary, through
//! the library (per-stage cache), and stage by stage.

use componentize::cache::Cache;
use componentize::{Pipeline, Source, Stage};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

fn componentize() -> Command {
    Command::new(env!("CARGO_BIN_EXE_componentize"))
}

fn lua() -> &'static componentize_lua::Binding {
    static B: OnceLock<componentize_lua::Binding> = OnceLock::new();
    B.get_or_init(|| componentize_lua::Binding::locate().unwrap_or_else(|e| panic!("{e}")))
}

fn hello() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/lua/examples/hello")
}

fn libc_dir() -> PathBuf {
    lua().dir().join("sysroot/lib/wasm32-wasip2")
}

/// Copies the hello example into a scratch folder the test may edit.
fn scratch_example(dir: &Path) -> PathBuf {
    let app = dir.join("app");
    copy_dir(&hello(), &app);
    app
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let dest = to.join(path.file_name().unwrap());
        // `deps` may be a symlink to the WASI WIT: copy what it points at.
        if std::fs::metadata(&path).unwrap().is_dir() {
            copy_dir(&path, &dest);
        } else {
            std::fs::copy(&path, &dest).unwrap();
        }
    }
}

/// Runs a wasi:cli command component and returns its stdout.
fn run_command(wasm: &[u8], args: &[&str]) -> String {
    use wasmtime::component::{Component, Linker, ResourceTable};
    use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
    use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
    struct Host {
        ctx: WasiCtx,
        table: ResourceTable,
    }
    impl WasiView for Host {
        fn ctx(&mut self) -> WasiCtxView<'_> {
            WasiCtxView {
                ctx: &mut self.ctx,
                table: &mut self.table,
            }
        }
    }
    let mut config = wasmtime::Config::new();
    config.wasm_component_model(true).wasm_exceptions(true);
    let engine = wasmtime::Engine::new(&config).unwrap();
    let component = Component::new(&engine, wasm).unwrap();
    let mut linker = Linker::new(&engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker).unwrap();
    let stdout = MemoryOutputPipe::new(1 << 20);
    let mut args_all = vec!["app.wasm"];
    args_all.extend(args);
    let ctx = WasiCtx::builder()
        .stdout(stdout.clone())
        .args(&args_all)
        .build();
    let mut store = wasmtime::Store::new(
        &engine,
        Host {
            ctx,
            table: ResourceTable::new(),
        },
    );
    let command =
        wasmtime_wasi::p2::bindings::sync::Command::instantiate(&mut store, &component, &linker)
            .unwrap();
    command
        .wasi_cli_run()
        .call_run(&mut store)
        .unwrap()
        .unwrap();
    String::from_utf8(stdout.contents().to_vec()).unwrap()
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
    Pipeline::new(Source::path(lua().interpreter().path), app)
        .script(Source::path(app.join("app.lua")))
        .search_path(libc_dir())
        .cache(cache)
}

fn cached(built: &componentize::Built) -> Vec<(Stage, bool)> {
    built.stages.iter().map(|s| (s.stage, s.cached)).collect()
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

    let first = pipeline(&app, Some(cache.clone()))
        .run(&mut |_| {})
        .unwrap();
    assert_eq!(
        cached(&first),
        [(Generate, false), (Link, false), (Init, false)]
    );
    let again = pipeline(&app, Some(cache.clone()))
        .run(&mut |_| {})
        .unwrap();
    assert_eq!(
        cached(&again),
        [(Generate, true), (Link, true), (Init, true)]
    );
    assert_eq!(first.component, again.component);

    // Only the script changed: only init reruns.
    let script = app.join("app.lua");
    let text = std::fs::read_to_string(&script)
        .unwrap()
        .replace("hello from Lua", "hi from Lua");
    std::fs::write(&script, text).unwrap();
    let changed = pipeline(&app, Some(cache.clone()))
        .run(&mut |_| {})
        .unwrap();
    assert_eq!(
        cached(&changed),
        [(Generate, true), (Link, true), (Init, false)]
    );
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
    let rebuilt = pipeline(&app, Some(cache.clone()))
        .run(&mut |_| {})
        .unwrap();
    assert_eq!(
        cached(&rebuilt),
        [(Generate, false), (Link, false), (Init, false)]
    );

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
    let recovered = pipeline(&app, Some(cache.clone()))
        .run(&mut |_| {})
        .unwrap();
    assert_eq!(
        cached(&recovered),
        [(Generate, false), (Link, false), (Init, false)]
    );
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
    let keep = dir.path().join("keep");
    let out = dir.path().join("hello.wasm");
    let o = build_hello(&out)
        .arg("--no-cache")
        .arg("--keep-intermediates")
        .arg(&keep)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let commands = std::fs::read_to_string(keep.join("commands.sh")).unwrap();

    // Run each recorded stage command with this binary, in a fresh folder.
    let redo = dir.path().join("redo");
    std::fs::create_dir_all(&redo).unwrap();
    for line in commands.lines().filter(|l| l.starts_with("componentize ")) {
        let o = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "{} {}",
                env!("CARGO_BIN_EXE_componentize"),
                &line["componentize ".len()..]
            ))
            .current_dir(&redo)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{line}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
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
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{expected}: succeeded");
        assert!(stderr.starts_with("error: "), "{stderr}");
        assert!(stderr.contains(expected), "`{expected}` not in: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
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
