//! `componentize run` through the binary: wasi:cli commands built from the
//! Lua hello example, exported functions of the snapdemo component
//! (fixtures/libs/libsnapinterp) called with `--invoke` next to `wasmtime
//! run --invoke`, the sandbox flags, the errors, and the code cache. Needs
//! the toolchain build: `bash toolchain/build.sh`.

mod common;

use common::{build_lua, cache, componentize, failed, hello, libc_dir, ok, scratch, toolchain};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::SystemTime;

/// The hello example, built once.
fn hello_wasm() -> &'static Path {
    static WASM: OnceLock<PathBuf> = OnceLock::new();
    WASM.get_or_init(|| {
        let out = scratch().join("hello.wasm");
        build_lua(&hello(), &hello().join("app.lua"), &out, &cache());
        out
    })
}

/// A command on the hello world whose first argument picks what it does:
/// `exit N`, `error`, `env` (print the environment), `read FILE`.
const MODES: &str = r#"
local env = require("wasi:cli/environment")
run = {}
function run.run()
  local args = env.get_arguments()
  local mode = args[2]
  if mode == "exit" then os.exit(tonumber(args[3])) end
  if mode == "error" then error("asked to fail") end
  if mode == "env" then
    for _, kv in ipairs(env.get_environment()) do print(kv[1] .. "=" .. kv[2]) end
  end
  if mode == "read" then
    local f = assert(io.open(args[3]))
    io.write(f:read("a"))
    f:close()
  end
end
"#;

/// The modes command, built once.
fn modes_wasm() -> &'static Path {
    static WASM: OnceLock<PathBuf> = OnceLock::new();
    WASM.get_or_init(|| {
        let script = scratch().join("modes.lua");
        std::fs::write(&script, MODES).unwrap();
        let out = scratch().join("modes.wasm");
        build_lua(&hello(), &script, &out, &cache());
        out
    })
}

/// The snapdemo component (exports `state`, `get`, `bump`, `run`) after
/// an init script, built once.
fn snap_wasm() -> &'static Path {
    static WASM: OnceLock<PathBuf> = OnceLock::new();
    WASM.get_or_init(|| {
        let script = scratch().join("setup.txt");
        std::fs::write(&script, "set greeting hello from init\ncount 41\n").unwrap();
        let out = scratch().join("snap.wasm");
        ok(&componentize()
            .env("COMPONENTIZE_CACHE_DIR", cache())
            .arg("--interpreter")
            .arg(toolchain("lib/libsnapinterp.so"))
            .arg("--world")
            .arg(componentize_testkit::repo_file(
                "fixtures/init/snapdemo.wit",
            ))
            .arg("--init")
            .arg(&script)
            .arg("-L")
            .arg(libc_dir())
            .args(["-q", "-o"])
            .arg(&out)
            .output()
            .unwrap());
        out
    })
}

/// `componentize run ARGS` with the shared cache.
fn run(args: &[&str]) -> Output {
    componentize()
        .env("COMPONENTIZE_CACHE_DIR", cache())
        .arg("run")
        .args(args)
        .output()
        .unwrap()
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The exit code and stdout of `componentize run ARGS`.
fn code_and_stdout(args: &[&str]) -> (Option<i32>, String) {
    let o = run(args);
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
    )
}

#[test]
fn a_command_gets_the_arguments_after_the_separator() {
    let o = run(&[path(hello_wasm()), "--", "x", "--y"]);
    assert_eq!(
        ok(&o),
        "hello from Lua\nargument: hello.wasm\nargument: x\nargument: --y\n"
    );
    // Without arguments, argv[0] alone: the file name, as wasmtime gives it.
    assert_eq!(
        ok(&run(&[path(hello_wasm())])),
        "hello from Lua\nargument: hello.wasm\n"
    );
}

#[test]
fn the_exit_code_is_the_commands() {
    let modes = path(modes_wasm());
    assert_eq!(code_and_stdout(&[modes, "--", "exit", "0"]).0, Some(0));
    // wasi:cli 0.2 (without the unstable exit-with-code) has success and
    // failure only: any other code is 1, as under wasmtime.
    assert_eq!(code_and_stdout(&[modes, "--", "exit", "1"]).0, Some(1));
    assert_eq!(code_and_stdout(&[modes, "--", "exit", "3"]).0, Some(1));
    // `run` returning err: 1, with the Lua error on stderr.
    let o = run(&[modes, "--", "error"]);
    assert_eq!(o.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("asked to fail"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    // A trap: 134, like wasmtime, with the error.
    let o = run(&["--invoke", r#"run("abort")"#, path(snap_wasm())]);
    assert_eq!(o.status.code(), Some(134));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("error: calling `run` failed"), "{stderr}");
    assert!(stderr.contains("wasm trap"), "{stderr}");
}

#[test]
fn env_and_dir_are_granted_like_wasmtime() {
    let modes = path(modes_wasm());
    // Nothing of the host's environment unless granted; `--env NAME`
    // passes the host's value.
    let o = componentize()
        .env("COMPONENTIZE_CACHE_DIR", cache())
        .env("COMPONENTIZE_RUN_TEST_INHERITED", "from the host")
        .env("COMPONENTIZE_RUN_TEST_SECRET", "not granted")
        .args([
            "run",
            "--env",
            "A=1=2",
            "--env",
            "COMPONENTIZE_RUN_TEST_INHERITED",
        ])
        .args([modes, "--", "env"])
        .output()
        .unwrap();
    assert_eq!(
        ok(&o),
        "A=1=2\nCOMPONENTIZE_RUN_TEST_INHERITED=from the host\n"
    );

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("note.txt"), "from a granted folder\n").unwrap();
    let grant = format!("{}::/data", dir.path().display());
    let o = run(&["--dir", &grant, modes, "--", "read", "/data/note.txt"]);
    assert_eq!(ok(&o), "from a granted folder\n");
    // Not granted: the command cannot open it (and fails, exit code 1).
    let o = run(&[modes, "--", "read", "/data/note.txt"]);
    assert_eq!(o.status.code(), Some(1));

    let missing = dir.path().join("missing");
    let grant = format!("{}::/data", missing.display());
    let e = failed(&run(&["--dir", &grant, modes]));
    assert!(
        e.contains(&format!("cannot open `{}` for --dir", missing.display())),
        "{e}"
    );
}

/// `wasmtime run --invoke CALL component`: its stdout.
fn wasmtime_invoke(component: &Path, call: &str) -> String {
    ok(&Command::new(toolchain("bin/wasmtime"))
        .args(["run", "-W", "exceptions=y", "--invoke", call])
        .arg(component)
        .output()
        .unwrap())
}

#[test]
fn invoke_prints_results_in_wave_like_wasmtime() {
    let snap = snap_wasm();
    for (call, expected) in [
        (r#"get("greeting")"#, "some(\"hello from init\")\n"),
        (r#"get("nothing")"#, "none\n"),
        ("bump()", "42\n"),
        (r#"run("count 7")"#, "ok(\"48\")\n"),
        (
            r#"run("nonsense")"#,
            "err(\"unknown command `nonsense`\")\n",
        ),
        (
            "state()",
            "\"ctors=1/1 wit=1 init=1 marker=set by init(setup.txt) counter=41 entries=1\"\n",
        ),
    ] {
        let ours = ok(&run(&["--invoke", call, path(snap)]));
        assert_eq!(ours, expected, "{call}");
        assert_eq!(ours, wasmtime_invoke(snap, call), "{call}");
    }
    // A function without parameters may be named alone; every run starts
    // from the snapshot.
    assert_eq!(ok(&run(&["--invoke", "bump", path(snap)])), "42\n");
}

#[test]
fn bad_input_gets_one_clear_error() {
    let snap = path(snap_wasm());
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "not wasm").unwrap();
    let missing = dir.path().join("missing.wasm");
    let lua_so = toolchain("lib/lua.so");
    let cases: [(&[&str], String); 8] = [
        (
            &[path(&missing)],
            format!("error: cannot read `{}`", missing.display()),
        ),
        (
            &[path(&text)],
            format!("error: `{}` is not a WebAssembly component", text.display()),
        ),
        (
            &[path(&lua_so)],
            format!(
                "error: `{}` is a core WebAssembly module, not a component",
                lua_so.display()
            ),
        ),
        (
            &[snap],
            "error: the component is not a wasi:cli command (it exports neither \
             `wasi:cli/run@0.2.x` nor `wasi:cli/run@0.3.x`); use --invoke to call one of its \
             exports: `state`, `get`, `bump`, `run`"
                .into(),
        ),
        (
            &["--invoke", "nope()", snap],
            "error: the component does not export the function `nope`".into(),
        ),
        (
            &["--invoke", r#"get("x""#, snap],
            "error: cannot parse the arguments of `get` as a WAVE call".into(),
        ),
        (
            &["--invoke", "get(1)", snap],
            "error: the arguments of `get` do not fit its parameters `(key: string)`".into(),
        ),
        (
            &["--invoke", "get", snap],
            "error: `get` takes 1 parameter(s) `(key: string)`: give them as a WAVE call".into(),
        ),
    ];
    for (args, expected) in cases {
        let o = run(args);
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        let stderr = failed(&o);
        assert!(stderr.starts_with(&expected), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
    }
}

/// The compiled components in code cache `dir`, with their modification
/// times (wasmtime's usage statistics next to them are left out: reading
/// an entry updates them).
fn code_entries(dir: &Path) -> BTreeMap<PathBuf, SystemTime> {
    let mut entries = BTreeMap::new();
    let Ok(versions) = std::fs::read_dir(dir.join("modules")) else {
        return entries;
    };
    for version in versions {
        for entry in std::fs::read_dir(version.unwrap().path()).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none() {
                let modified = path.metadata().unwrap().modified().unwrap();
                entries.insert(path, modified);
            }
        }
    }
    entries
}

#[test]
fn a_second_run_takes_the_compiled_code_from_the_cache() {
    let hello = path(hello_wasm());
    let fresh = tempfile::tempdir().unwrap();
    let run_with = |cache: &Path, extra: &[&str]| {
        ok(&componentize()
            .env("COMPONENTIZE_CACHE_DIR", cache)
            .arg("run")
            .args(extra)
            .arg(hello)
            .output()
            .unwrap())
    };
    let code = fresh.path().join("code/wasmtime");
    assert_eq!(
        run_with(fresh.path(), &[]),
        "hello from Lua\nargument: hello.wasm\n"
    );
    let first = code_entries(&code);
    assert_eq!(first.len(), 1, "{first:?}");
    assert_eq!(
        run_with(fresh.path(), &[]),
        "hello from Lua\nargument: hello.wasm\n"
    );
    assert_eq!(code_entries(&code), first, "the second run compiled again");

    // --no-cache neither reads nor writes it.
    let untouched = tempfile::tempdir().unwrap();
    run_with(untouched.path(), &["--no-cache"]);
    assert!(!untouched.path().join("code").exists());
}
