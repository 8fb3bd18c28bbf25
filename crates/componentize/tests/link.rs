//! `componentize link` through the binary. Needs the toolchain build:
//! `bash toolchain/build.sh`.

mod common;

use common::{componentize, toolchain};
use std::path::{Path, PathBuf};

/// `componentize generate` for the demo world, into `dir/demo.so`.
fn demo_bindings(dir: &Path) -> PathBuf {
    let out = dir.join("demo.so");
    let wit = componentize_testkit::repo_file("fixtures/link/demo.wit");
    let o = componentize()
        .args([
            "generate",
            "--interpreter",
            "libdemo.so",
            "-w",
            "demo",
            "-o",
        ])
        .arg(&out)
        .arg(wit)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    out
}

#[test]
fn link_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let bindings = demo_bindings(dir.path());
    let sysroot = toolchain("sysroot/lib/wasm32-wasip2/libc.so")
        .ancestors()
        .nth(3)
        .unwrap()
        .to_path_buf();
    let out = dir.path().join("app.wasm");
    // libc.so comes from $WASI_SYSROOT/lib/wasm32-wasip2.
    let o = componentize()
        .env("WASI_SYSROOT", &sysroot)
        .arg("link")
        .arg(&bindings)
        .arg(toolchain("lib/libdemo.so"))
        .arg("-v")
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    assert!(stderr.contains("linked libdemo.so"), "{stderr}");
    assert!(stderr.contains("linked libc.so"), "{stderr}");
    let bytes = std::fs::read(&out).unwrap();
    assert!(wasmparser::Parser::is_component(&bytes));
    wasmparser::Validator::new_with_features(wasmparser::WasmFeatures::all())
        .validate_all(&bytes)
        .unwrap();

    // The same through -L, twice: identical bytes.
    let again = dir.path().join("again.wasm");
    for _ in 0..2 {
        let o = componentize()
            .arg("link")
            .arg(&bindings)
            .arg(toolchain("lib/libdemo.so"))
            .arg("-L")
            .arg(sysroot.join("lib/wasm32-wasip2"))
            .arg("-o")
            .arg(&again)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert!(std::fs::read(&again).unwrap() == bytes);
    }
}

#[test]
fn link_error_is_one_clear_line_and_leaves_no_output() {
    let dir = tempfile::tempdir().unwrap();
    let bindings = demo_bindings(dir.path());
    let out = dir.path().join("app.wasm");
    // No search path holds libc.so.
    let o = componentize()
        .arg("link")
        .arg(&bindings)
        .arg(toolchain("lib/libdemo.so"))
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        stderr.starts_with(
            "error: library `libc.so` not found; needed by `libdemo.so`; looked in:\n"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("(folder of an input)"), "{stderr}");
    assert!(
        stderr.contains("$WASI_SYSROOT/lib/wasm32-wasip2 ($WASI_SYSROOT is not set)"),
        "{stderr}"
    );
    assert_eq!(stderr.matches("error").count(), 1, "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!out.exists());
    // Only the bindings are left in the folder: no temporary file.
    let files: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(files, ["demo.so"]);

    // A malformed --adapt.
    let o = componentize()
        .arg("link")
        .arg(&bindings)
        .arg(toolchain("lib/libdemo.so"))
        .args(["--adapt", "nofile", "-o"])
        .arg(&out)
        .output()
        .unwrap();
    // A usage error: clap's, naming the flag and the value.
    let stderr = common::failed(&o);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--adapt"), "{stderr}");
    assert!(stderr.contains("nofile"), "{stderr}");
    assert!(stderr.contains("NAME=FILE"), "{stderr}");
    assert!(!out.exists());
}
