//! `componentize init` through the binary, on a component built with
//! `componentize generate --init-export` and `componentize link` from the
//! init stage's test interpreter (fixtures/libs/libsnapinterp); outputs are
//! run with the toolchain's wasmtime CLI. Needs the toolchain build:
//! `bash toolchain/build.sh`.

mod common;

use common::{componentize, ok, toolchain};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The linked snapdemo component with the init export, built once.
fn linked() -> &'static Path {
    static LINKED: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    let (_, path) = LINKED.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let bindings = dir.path().join("bindings.so");
        let wit = componentize_testkit::repo_file("fixtures/init/snapdemo.wit");
        ok(&componentize()
            .args([
                "generate",
                "--init-export",
                "--interpreter",
                "libsnapinterp.so",
                "-o",
            ])
            .arg(&bindings)
            .arg(wit)
            .output()
            .unwrap());
        let linked = dir.path().join("linked.wasm");
        let libc = toolchain(componentize_testkit::LIBC);
        ok(&componentize()
            .arg("link")
            .arg(&bindings)
            .arg(toolchain("lib/libsnapinterp.so"))
            .arg("-L")
            .arg(libc.parent().unwrap())
            .arg("-o")
            .arg(&linked)
            .output()
            .unwrap());
        (dir, linked)
    });
    path
}

/// `wasmtime run --invoke CALL component` with the toolchain's CLI.
fn invoke(component: &Path, call: &str) -> String {
    let o = Command::new(toolchain("bin/wasmtime"))
        .args(["run", "-W", "exceptions=y", "--invoke", call])
        .arg(component)
        .output()
        .unwrap();
    ok(&o).trim().to_string()
}

#[test]
fn init_with_a_script() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("app.snap");
    std::fs::write(&script, "count 5\nset greeting hello\nprint from init\n").unwrap();
    let out = dir.path().join("app.wasm");
    let o = componentize()
        .arg("init")
        .arg(linked())
        .arg("--script")
        .arg(&script)
        .arg("-v")
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    ok(&o);
    // -v shows what init printed.
    assert!(String::from_utf8_lossy(&o.stderr).contains("from init"));
    assert_eq!(
        invoke(&out, "state()"),
        r#""ctors=1/1 wit=1 init=1 marker=set by init(app.snap) counter=5 entries=1""#
    );
    assert_eq!(invoke(&out, r#"get("greeting")"#), r#"some("hello")"#);
    // Printing at runtime works after a snapshot that printed during init.
    let o = Command::new(toolchain("bin/wasmtime"))
        .args([
            "run",
            "-W",
            "exceptions=y",
            "--invoke",
            r#"run("print at runtime")"#,
        ])
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(ok(&o), "at runtime\nok(\"\")\n");
}

#[test]
fn init_func_prints_its_results() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.wasm");
    let o = componentize()
        .arg("init")
        .arg(linked())
        .args([
            "--init-func",
            r#"run("count 7")"#,
            "--keep-init-export",
            "-o",
        ])
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(ok(&o).trim(), r#"ok("7")"#);
    assert_eq!(invoke(&out, "bump()"), "8");
}

#[test]
fn sandbox_flags() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("cfg.txt"), "from a file").unwrap();
    let script = dir.path().join("sandbox.snap");
    std::fs::write(&script, "read cfg /data/cfg.txt\nenv MODE\nenv HOME\n").unwrap();
    let out = dir.path().join("out.wasm");
    let mut dir_arg = dir.path().as_os_str().to_owned();
    dir_arg.push("::/data");
    ok(&componentize()
        .arg("init")
        .arg(linked())
        .arg("--script")
        .arg(&script)
        .arg("--dir")
        .arg(dir_arg)
        .args(["--env", "MODE=test", "-o"])
        .arg(&out)
        .output()
        .unwrap());
    assert_eq!(invoke(&out, r#"get("cfg")"#), r#"some("from a file")"#);
    assert_eq!(invoke(&out, r#"get("MODE")"#), r#"some("test")"#);
    assert_eq!(invoke(&out, r#"get("HOME")"#), r#"some("(unset)")"#);
}

#[test]
fn failures_are_clear_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.wasm");
    let script = dir.path().join("bad.snap");
    // Runs `script` with `flags`; init must fail, write nothing, and say
    // `expected`.
    let fails = |source: &str, flags: &[&str], expected: &[&str]| {
        std::fs::write(&script, source).unwrap();
        let o = componentize()
            .arg("init")
            .arg(linked())
            .arg("--script")
            .arg(&script)
            .args(flags)
            .arg("-o")
            .arg(&out)
            .output()
            .unwrap();
        let stderr = common::failed(&o);
        for text in expected {
            assert!(stderr.contains(text), "`{text}` not in: {stderr}");
        }
        assert!(!out.exists());
    };
    fails(
        "print got this far\nfail no config found\n",
        &[],
        &[
            "bad.snap:2: no config found",
            "--- stdout of init ---\ngot this far",
        ],
    );
    fails(
        "spin\n",
        &["--init-timeout", "0.5"],
        &["init timeout of 0.5 s"],
    );
    fails(
        "alloc 100000000\n",
        &["--init-memory-limit", "16"],
        &["init memory limit of 16777216 bytes"],
    );
}

#[test]
fn the_pipeline_takes_an_init_func() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.wasm");
    let cache = dir.path().join("cache");
    // The pipeline with `--init-func CALL`; its progress output.
    let build = |call: &str| {
        let o = componentize()
            .env("COMPONENTIZE_CACHE_DIR", &cache)
            .arg("--interpreter")
            .arg(toolchain("lib/libsnapinterp.so"))
            .arg("--world")
            .arg(componentize_testkit::repo_file(
                "fixtures/init/snapdemo.wit",
            ))
            .args(["--init-func", call, "-L"])
            .arg(common::libc_dir())
            .arg("-o")
            .arg(&out)
            .output()
            .unwrap();
        ok(&o);
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    let stderr = build(r#"run("count 7")"#);
    assert!(!stderr.contains("(cached)"), "{stderr}");
    // The call ran at build time; its export is gone, the others work.
    assert_eq!(invoke(&out, "bump()"), "8");
    let o = Command::new(toolchain("bin/wasmtime"))
        .args(["run", "-W", "exceptions=y", "--invoke", r#"run("x")"#])
        .arg(&out)
        .output()
        .unwrap();
    assert!(!o.status.success(), "`run` is still exported");
    // The call is part of the init key: the same build is cached, another
    // call is not.
    let stderr = build(r#"run("count 7")"#);
    assert_eq!(stderr.matches("(cached)").count(), 3, "{stderr}");
    let stderr = build(r#"run("count 9")"#);
    assert_eq!(stderr.matches("(cached)").count(), 2, "{stderr}");
    assert_eq!(invoke(&out, "bump()"), "10");
}
