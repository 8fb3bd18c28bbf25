//! The bundled interpreters (Lua, JavaScript): a build through one needs no
//! toolchain, no search path and no file but the WIT and the script. (That the bundled
//! libraries are what the sources build is `interpreters/lua/tests/bundled.rs`.)

mod common;

use common::{componentize, failed, hello, js_hello, lua, ok, toolchain};
use componentize::bundled::{BUNDLED_INTERPRETERS, pipeline_for};
use componentize::{BundledInterpreter, Source};
use componentize_testkit::{HostBuilder, run_command};
use std::path::Path;

#[test]
fn a_bundled_build_needs_nothing_but_the_wit_and_the_script() {
    // No search path: every library comes from the bundle.
    let mut bundled = BundledInterpreter::find("lua").unwrap().pipeline(hello());
    bundled.script(Source::path(hello().join("app.lua")));
    let bundled = bundled.run(&mut |_| {}).unwrap().component;

    let run = run_command(&bundled, &["Ada"], &mut HostBuilder::new()).unwrap();
    assert_eq!(run.status, Ok(()));
    assert!(
        run.output.stdout().contains("hello from Lua"),
        "{}",
        run.output.stdout()
    );
}

#[test]
fn interpreter_names_and_paths_resolve() {
    assert_eq!(
        BUNDLED_INTERPRETERS
            .iter()
            .map(|i| i.name)
            .collect::<Vec<_>>(),
        ["lua", "js"]
    );
    // A path is a file (a missing one fails when the pipeline reads it);
    // an unknown bare name says what exists.
    assert!(pipeline_for(&lua().interpreter().path, hello()).is_ok());
    assert!(pipeline_for(Path::new("missing/lua"), hello()).is_ok());
    assert!(pipeline_for(Path::new("lua.so"), hello()).is_ok());
    let err = pipeline_for(Path::new("python"), hello())
        .err()
        .unwrap()
        .to_string();
    assert_eq!(
        err,
        "no interpreter `python`: it is not a file, nor a bundled interpreter (bundled: lua, js; \
         `componentize interpreters` lists them)"
    );
}

#[test]
fn the_one_command_builds_with_the_bundled_lua_and_lists_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("hello.wasm");
    // As on a machine with no toolchain: no PATH (no clang, no wasm-tools)
    // and no toolchain build to find.
    let o = componentize()
        .env("COMPONENTIZE_CACHE_DIR", dir.path().join("cache"))
        .env("PATH", "")
        .env_remove("TOOLCHAIN_DIR")
        .env("CARGO_TARGET_DIR", dir.path().join("no-target"))
        .args(["--interpreter", "lua", "-q", "--world"])
        .arg(hello())
        .arg("--init")
        .arg(hello().join("app.lua"))
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    ok(&o);
    let o = componentize()
        .env("COMPONENTIZE_CACHE_DIR", dir.path().join("cache"))
        .arg("run")
        .arg(&out)
        .output()
        .unwrap();
    assert!(ok(&o).starts_with("hello from Lua\n"));

    // `componentize interpreters` shows each bundled file's sha256, as
    // sha256sum computes it from the checked-in files.
    let listed = ok(&componentize().arg("interpreters").output().unwrap());
    assert!(listed.starts_with("lua 5.4.9: "), "{listed}");
    assert!(listed.contains("\njs 0.16.2: "), "{listed}");
    for (dir, name) in [
        ("lua", "lua.so"),
        ("lua", "liblua.so"),
        ("lua", "libsetjmp.so"),
        ("lua", "libc.so"),
        ("js", "js.so"),
        ("js", "libqjs.so"),
    ] {
        let bundled = componentize_testkit::repo_file(&format!("interpreters/{dir}/bundled"));
        let sum = std::process::Command::new("sha256sum")
            .arg(bundled.join(name))
            .output()
            .unwrap();
        let sum = String::from_utf8(sum.stdout).unwrap();
        let hash = sum.split_whitespace().next().unwrap();
        assert!(
            listed.contains(&format!("  {hash}  {name} (")),
            "{name}: {listed}"
        );
    }

    // A name that is neither a file nor bundled fails naming both.
    let err = failed(
        &componentize()
            .args(["--interpreter", "python", "--world"])
            .arg(hello())
            .output()
            .unwrap(),
    );
    assert!(err.contains("no interpreter `python`"), "{err}");
}

#[test]
fn the_one_command_builds_the_js_hello_byte_identically_and_both_runtimes_run_it() {
    let dir = tempfile::tempdir().unwrap();
    let build = |out: &Path| {
        // As on a machine with no toolchain, and with no stage cache: each
        // build does all the work.
        ok(&componentize()
            .env("COMPONENTIZE_CACHE_DIR", dir.path().join("cache"))
            .env("PATH", "")
            .env_remove("TOOLCHAIN_DIR")
            .env("CARGO_TARGET_DIR", dir.path().join("no-target"))
            .args(["--interpreter", "js", "--no-cache", "-q", "--world"])
            .arg(js_hello())
            .arg("--init")
            .arg(js_hello().join("app.js"))
            .arg("-o")
            .arg(out)
            .output()
            .unwrap());
    };
    let (first, second) = (dir.path().join("a.wasm"), dir.path().join("b.wasm"));
    build(&first);
    build(&second);
    let bytes = std::fs::read(&first).unwrap();
    assert!(
        bytes == std::fs::read(&second).unwrap(),
        "two builds differ"
    );

    let expected = "hello from JS\nargument: a.wasm\nargument: Ada\nargument: Grace\n";
    let o = componentize()
        .env("COMPONENTIZE_CACHE_DIR", dir.path().join("cache"))
        .arg("run")
        .arg(&first)
        .args(["--", "Ada", "Grace"])
        .output()
        .unwrap();
    assert_eq!(ok(&o), expected);
    let o = std::process::Command::new(toolchain("bin/wasmtime"))
        .arg("run")
        .arg(&first)
        .args(["Ada", "Grace"])
        .output()
        .unwrap();
    assert_eq!(ok(&o), expected);
}

/// What the bundled bindings do not run yet is refused by name, and nothing
/// is written: an async export in JavaScript when the interpreter starts
/// (at init, so the build fails), and async imports (in either) by init.
#[test]
fn the_bundled_interpreters_refuse_what_they_do_not_run_async_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("app.wasm");
    let async_import = "the import `componentize:concurrency/types#[method]blob.read` is an `async func`, \
                        and init does not run components with async imports yet";
    let cases = [
        (
            "js",
            "async-run",
            "export run is async; the JavaScript binding supports synchronous functions only",
        ),
        ("lua", "async-imports", async_import),
    ];
    for (interpreter, world, expected) in cases {
        let file = dir.path().join(format!("app.{interpreter}"));
        std::fs::write(&file, "").unwrap();
        let err = failed(
            &componentize()
                .args([
                    "--interpreter",
                    interpreter,
                    "--no-cache",
                    "--world-name",
                    world,
                ])
                .arg("--world")
                .arg(common::corpus("async.wit"))
                .arg("--init")
                .arg(&file)
                .arg("-o")
                .arg(&out)
                .output()
                .unwrap(),
        );
        assert!(err.contains(expected), "{interpreter} {world}: {err}");
        assert!(!out.exists(), "{interpreter}: wrote {}", out.display());
    }
}

/// A Lua world with async exports builds with the bundled interpreter, and
/// its exports run under `componentize run --invoke` and the wasmtime CLI
/// (with component-model async on): each call in a coroutine of its own,
/// yielding to the host between items.
#[test]
fn a_lua_world_with_async_exports_builds_and_runs() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("app.wasm");
    let script = dir.path().join("app.lua");
    std::fs::write(
        &script,
        "function run() print('run ran') end\n\
         function sum(xs)\n\
           local total = 0\n\
           for _, x in ipairs(xs) do total = total + x; coroutine.yield() end\n\
           return total\n\
         end\n",
    )
    .unwrap();
    let o = componentize()
        .env("COMPONENTIZE_CACHE_DIR", dir.path().join("cache"))
        .args(["--interpreter", "lua", "--world-name", "async-run"])
        .arg("--world")
        .arg(common::corpus("async.wit"))
        .arg("--init")
        .arg(&script)
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    ok(&o);
    // Both print a unit result as `()`.
    for (call, expected) in [("sum([1, 2, -40])", "-37\n"), ("run()", "run ran\n()\n")] {
        let o = componentize()
            .env("COMPONENTIZE_CACHE_DIR", dir.path().join("cache"))
            .args(["run", "--invoke", call])
            .arg(&out)
            .output()
            .unwrap();
        assert_eq!(ok(&o), expected, "componentize run --invoke {call}");
        let o = std::process::Command::new(toolchain("bin/wasmtime"))
            .args(["run", "-W", "component-model-async", "--invoke", call])
            .arg(&out)
            .output()
            .unwrap();
        assert_eq!(ok(&o), expected, "wasmtime run --invoke {call}");
    }
}
