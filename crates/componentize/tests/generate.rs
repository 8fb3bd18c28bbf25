//! `componentize generate` and `componentize header` through the binary.

mod common;

use common::{componentize, corpus};
use std::path::PathBuf;

#[test]
fn generate_writes_a_valid_module() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("bindings.so");
    let status = componentize()
        .args(["generate", "--interpreter", "lua.so", "-w", "scalars", "-o"])
        .arg(&out)
        .arg(corpus("scalars.wit"))
        .status()
        .unwrap();
    assert!(status.success());
    let bytes = std::fs::read(&out).unwrap();
    wasmparser::Validator::new_with_features(wasmparser::WasmFeatures::all())
        .validate_all(&bytes)
        .unwrap();
    // dylink.0 names the interpreter.
    assert!(bytes.windows(6).any(|w| w == b"lua.so"));
    // Readable by others like any file made under the same umask, not 0600.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let reference = dir.path().join("reference");
        std::fs::write(&reference, b"").unwrap();
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode();
        assert_eq!(mode(&out) & 0o777, mode(&reference) & 0o777);
    }
}

#[test]
fn errors_are_one_clear_line_and_leave_no_output() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("bindings.so");
    let cases: [(&[&str], PathBuf, &str); 5] = [
        (
            &["-w", "nope"],
            corpus("scalars.wit"),
            "world `nope` not found (available worlds in `componentize:scalars`: scalars)",
        ),
        (&[], dir.path().join("missing.wit"), "does not exist"),
        (
            &["-w", "uses-error-context"],
            corpus("unsupported.wit"),
            "exported function `fail` uses `error-context`",
        ),
        (
            &["-w", "async-exports", "--async", "export:nope"],
            corpus("async.wit"),
            "`--async export:nope` matches no function of the world",
        ),
        (
            &["-w", "mixed", "--async", "all"],
            corpus("async.wit"),
            "`--async all` makes `",
        ),
    ];
    for (args, wit, expected) in cases {
        let o = componentize()
            .arg("generate")
            .args(args)
            .arg("-o")
            .arg(&out)
            .arg(&wit)
            .output()
            .unwrap();
        let stderr = common::failed(&o);
        assert!(stderr.starts_with("error: "), "{stderr}");
        assert!(stderr.contains(expected), "`{expected}` not in: {stderr}");
        // One cause, said once.
        assert!(
            stderr.to_lowercase().matches("not found").count() <= 1,
            "{stderr}"
        );
        assert!(!out.exists(), "output written despite: {stderr}");
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "temporary file left behind"
        );
    }
}

#[test]
fn header_prints_the_interface() {
    let o = componentize().arg("header").output().unwrap();
    assert!(o.status.success());
    let text = String::from_utf8(o.stdout).unwrap();
    assert!(text.contains("size_t wit_dylib_pop_map(void *cx, size_t ty);"));
    assert!(text.contains("void wit_dylib_push_map(void *cx, size_t ty, size_t len);"));
    assert!(text.contains("uint32_t wit_dylib_export_async_call(void *cx, size_t which);"));
}

/// The async options through the command line, on the WASI 0.3 command
/// world: `run` is an `async func`, so it is lifted async (`[async-lift]`,
/// with a `[callback]`) unless `--async=-all` binds everything
/// synchronously; `--stack-pointer task-context` replaces the
/// `__stack_pointer` global with the task-context built-ins.
#[test]
fn generate_takes_the_async_filter_and_the_stack_pointer_placement() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("bindings.so");
    let run = "[async-lift]wasi:cli/run@0.3.0#run";
    for (args, async_run, task_context) in [
        (&[][..], true, false),
        (&["--async=-all"][..], false, false),
        (&["--stack-pointer", "task-context"][..], true, true),
    ] {
        let o = componentize()
            .args(["generate", "-w", "command", "-o"])
            .arg(&out)
            .args(args)
            .arg(corpus("wasi-p3"))
            .output()
            .unwrap();
        common::ok(&o);
        let bytes = std::fs::read(&out).unwrap();
        let (mut exports, mut imports) = (Vec::new(), Vec::new());
        for payload in wasmparser::Parser::new(0).parse_all(&bytes) {
            match payload.unwrap() {
                wasmparser::Payload::ExportSection(s) => {
                    exports.extend(s.into_iter().map(|e| e.unwrap().name.to_string()))
                }
                wasmparser::Payload::ImportSection(s) => imports.extend(
                    s.into_imports()
                        .map(|i| i.unwrap())
                        .map(|i| format!("{}.{}", i.module, i.name)),
                ),
                _ => {}
            }
        }
        let has = |list: &[String], name: &str| list.iter().any(|n| n == name);
        assert_eq!(has(&exports, run), async_run, "{args:?}: {exports:?}");
        assert_eq!(
            has(&exports, &format!("[callback]{run}")),
            async_run,
            "{args:?}"
        );
        assert_eq!(
            has(&imports, "$root.[context-get-0]"),
            task_context,
            "{args:?}"
        );
        assert_eq!(
            has(&imports, "env.__stack_pointer"),
            !task_context,
            "{args:?}"
        );
    }
}
