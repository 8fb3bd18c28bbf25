//! The bundled interpreters (Lua, JavaScript): a build through one needs no
//! toolchain, no search path and no file but the WIT and the script. (That the bundled
//! libraries are what the sources build is `interpreters/lua/tests/bundled.rs`.)

mod common;

use common::{componentize, failed, hello, js_hello, lua, ok, toolchain};
use componentize::bundled::{BUNDLED_INTERPRETERS, pipeline_for};
use componentize::{BundledInterpreter, Source};
use componentize_testkit::{HostBuilder, run_command};
use std::path::Path;
use std::process::Output;

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

/// The JavaScript binding does not run async functions yet: it refuses an
/// async world when the interpreter starts (at init, so the build fails),
/// naming the function, and nothing is written.
#[test]
fn the_bundled_js_refuses_an_async_world_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("app.wasm");
    let file = dir.path().join("app.js");
    std::fs::write(&file, "").unwrap();
    let err = failed(
        &componentize()
            .args([
                "--interpreter",
                "js",
                "--no-cache",
                "--world-name",
                "async-run",
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
    let expected =
        "export run is async; the JavaScript binding supports synchronous functions only";
    assert!(err.contains(expected), "{err}");
    assert!(!out.exists(), "wrote {}", out.display());
}

/// The Lua WASI 0.3 example (interpreters/lua/examples/command-p3): an async
/// `run` that waits on an async import (wasi:clocks' `wait-for`), built by
/// the one command (init stubs the async imports it does not call) and run
/// by `componentize run` and by the wasmtime CLI. It prints, waits, and
/// exits with 0, or with 1 and the Lua error when asked to fail. With
/// `upcase` it copies 1 MiB of stdin to stdout through WASI 0.3's streams.
#[test]
fn the_lua_wasi_0_3_command_waits_prints_streams_and_exits_with_its_code() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("command.wasm");
    let example = componentize_testkit::repo_file("interpreters/lua/examples/command-p3");
    let o = componentize()
        .env("COMPONENTIZE_CACHE_DIR", dir.path().join("cache"))
        .args(["--interpreter", "lua", "--world"])
        .arg(&example)
        .arg("--init")
        .arg(example.join("app.lua"))
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    ok(&o);
    let expected = "hello from Lua on WASI 0.3\nwaited at least 25 ms\nargument: a\n";
    let ours = |args: &[&str]| {
        componentize()
            .env("COMPONENTIZE_CACHE_DIR", dir.path().join("cache"))
            .arg("run")
            .arg(&out)
            .arg("--")
            .args(args)
            .output()
            .unwrap()
    };
    let wasmtime = |args: &[&str]| {
        std::process::Command::new(toolchain("bin/wasmtime"))
            .args(["run", "-W", "component-model-async", "-S", "p3"])
            .arg(&out)
            .args(args)
            .output()
            .unwrap()
    };
    // Text with every letter, in lines, of 1 MiB.
    let input: Vec<u8> = (0..1u32 << 20)
        .map(|i| match i % 61 {
            60 => b'\n',
            k => b"abcdefghijklmnopqrstuvwxyz0123456789 ABCDEFGHIJKLMNOPQRSTUVWXYZ"[k as usize],
        })
        .collect();
    let piped = |mut command: std::process::Command| {
        use std::io::Write;
        let mut child = command
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let data = input.clone();
        let feeder = std::thread::spawn(move || stdin.write_all(&data));
        let o = child.wait_with_output().unwrap();
        feeder.join().unwrap().unwrap();
        o
    };
    let mut ours_upcase = componentize();
    ours_upcase
        .env("COMPONENTIZE_CACHE_DIR", dir.path().join("cache"))
        .arg("run")
        .arg(&out)
        .args(["--", "upcase"]);
    let mut wasmtime_upcase = std::process::Command::new(toolchain("bin/wasmtime"));
    wasmtime_upcase
        .args(["run", "-W", "component-model-async", "-S", "p3"])
        .arg(&out)
        .arg("upcase");
    for (host, command) in [
        ("componentize run", ours_upcase),
        ("wasmtime run", wasmtime_upcase),
    ] {
        let o = piped(command);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "{host}: {stderr}");
        assert!(
            o.stdout == input.to_ascii_uppercase(),
            "{host}: stdout differs"
        );
        assert_eq!(stderr, format!("upcased {} bytes\n", 1 << 20), "{host}");
    }
    for (host, run) in [
        ("componentize run", &ours as &dyn Fn(&[&str]) -> Output),
        ("wasmtime run", &wasmtime),
    ] {
        let o = run(&["a"]);
        assert_eq!(ok(&o), expected, "{host}");
        let o = run(&["fail"]);
        let stdout = String::from_utf8_lossy(&o.stdout);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{host}: {stdout}{stderr}");
        assert!(stdout.ends_with("argument: fail\n"), "{host}: {stdout}");
        assert!(
            stderr.contains("lua: error in wasi:cli/run@0.3.0#run (Lua `run.run`): asked to fail"),
            "{host}: {stderr}"
        );
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

/// An async import called by the script while init runs it (outside any
/// async export) fails the build with a Lua error naming the import, and
/// nothing is written.
#[test]
fn an_async_import_called_at_init_fails_the_build_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("command.wasm");
    let script = dir.path().join("app.lua");
    std::fs::write(
        &script,
        "require('wasi:clocks/monotonic-clock').wait_for(1)\nrun = { run = function() end }\n",
    )
    .unwrap();
    let err = failed(
        &componentize()
            .args(["--interpreter", "lua", "--no-cache", "--world"])
            .arg(componentize_testkit::repo_file(
                "interpreters/lua/examples/command-p3",
            ))
            .arg("--init")
            .arg(&script)
            .arg("-o")
            .arg(&out)
            .output()
            .unwrap(),
    );
    assert!(
        err.contains("wasi:clocks/monotonic-clock@0.3.0#wait-for is an async import: call it from an async export"),
        "{err}"
    );
    assert!(!out.exists(), "wrote {}", out.display());
}

/// `--async` reaches the bindings from the one command. `-export:mode`
/// binds the `async func` `mode` synchronously: the Lua binding then runs
/// it on the main state, not in a coroutine, while `other` (the same Lua
/// function) stays async. The build's `commands.sh` repeats the flag. A
/// directive that would make a sync `func` async is refused by name.
#[test]
fn the_one_command_takes_the_async_filter() {
    let dir = tempfile::tempdir().unwrap();
    let wit = dir.path().join("app.wit");
    std::fs::write(
        &wit,
        "package example:app;\nworld app {\n  export mode: async func() -> string;\n  \
         export other: async func() -> string;\n  export name: func() -> string;\n}\n",
    )
    .unwrap();
    let script = dir.path().join("app.lua");
    std::fs::write(
        &script,
        "function mode() return coroutine.isyieldable() and 'in a coroutine' or 'sync' end\n\
         other = mode\n\
         function name() return 'app' end\n",
    )
    .unwrap();
    let out = dir.path().join("app.wasm");
    let kept = dir.path().join("kept");
    let build = |directive: &str, out: &Path| {
        componentize()
            .env("COMPONENTIZE_CACHE_DIR", dir.path().join("cache"))
            .args(["--interpreter", "lua"])
            .arg(format!("--async={directive}"))
            .arg("--world")
            .arg(&wit)
            .arg("--init")
            .arg(&script)
            .arg("--keep-intermediates")
            .arg(&kept)
            .arg("-o")
            .arg(out)
            .output()
            .unwrap()
    };
    ok(&build("-export:mode", &out));
    for (call, expected) in [
        ("mode()", "\"sync\"\n"),
        ("other()", "\"in a coroutine\"\n"),
        ("name()", "\"app\"\n"),
    ] {
        let o = componentize()
            .args(["run", "--invoke", call])
            .arg(&out)
            .output()
            .unwrap();
        assert_eq!(ok(&o), expected, "componentize run --invoke {call}");
    }
    let commands = std::fs::read_to_string(kept.join("commands.sh")).unwrap();
    assert!(commands.contains("--async=-export:mode"), "{commands}");

    let refused = dir.path().join("refused.wasm");
    let err = failed(&build("export:name", &refused));
    assert!(
        err.contains(
            "`--async export:name` makes `name` async, but the WIT declares it `func`: the \
             component model binds only an `async func` asynchronously"
        ),
        "{err}"
    );
    assert!(!refused.exists(), "wrote {}", refused.display());
}

/// The bundled interpreters' libc keeps the stack pointer in a global:
/// `--stack-pointer task-context` is refused by name, before any stage
/// runs, and nothing is written.
#[test]
fn the_bundled_lua_refuses_a_task_context_stack_pointer() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("app.wasm");
    let err = failed(
        &componentize()
            .args(["--interpreter", "lua", "--no-cache"])
            .args([
                "--stack-pointer",
                "task-context",
                "--world-name",
                "async-run",
            ])
            .arg("--world")
            .arg(common::corpus("async.wit"))
            .arg("-o")
            .arg(&out)
            .output()
            .unwrap(),
    );
    assert!(
        err.contains(
            "--stack-pointer task-context: the interpreter `lua.so` and its libc keep the stack \
             pointer in the `__stack_pointer` global; build with `--stack-pointer global`"
        ),
        "{err}"
    );
    assert!(!out.exists(), "wrote {}", out.display());
}
