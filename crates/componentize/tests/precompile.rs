//! Precompiled components (`.cwasm`) through the binary: `componentize
//! --precompile` and `componentize compile` on the Lua hello example, `run`
//! of the `.cwasm` (`serve` of one is in serve.rs), that the bytes are wasmtime's artifact with a
//! checksum and the same for every compile, and that a corrupted, truncated
//! or foreign `.cwasm` is refused with one clean error. Needs the toolchain
//! build: `bash toolchain/build.sh`.

mod common;

use common::{cache, componentize, failed, hello, ok, scratch};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::OnceLock;

/// What `componentize --precompile` built from the hello example.
struct Built {
    wasm: PathBuf,
    cwasm: PathBuf,
    /// The build's progress (stderr).
    stderr: String,
}

/// The hello example built once with `--precompile`, as the README's
/// command (the bundled Lua).
fn built() -> &'static Built {
    static BUILT: OnceLock<Built> = OnceLock::new();
    BUILT.get_or_init(|| {
        let dir = scratch().join("built");
        std::fs::create_dir_all(&dir).unwrap();
        let wasm = dir.join("app.wasm");
        let o = componentize()
            .env("COMPONENTIZE_CACHE_DIR", cache())
            .args(["--interpreter", "lua", "--world"])
            .arg(hello())
            .arg("--init")
            .arg(hello().join("app.lua"))
            .arg("--precompile")
            .arg("-o")
            .arg(&wasm)
            .output()
            .unwrap();
        ok(&o);
        Built {
            cwasm: dir.join("app.cwasm"),
            wasm,
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    })
}

/// `componentize ARGS` with the shared cache.
fn componentize_with(args: &[&str]) -> Output {
    componentize()
        .env("COMPONENTIZE_CACHE_DIR", cache())
        .args(args)
        .output()
        .unwrap()
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Asserts that `componentize run COMPONENT` fails with exit code 1 and
/// one clean error naming the file; that error.
#[track_caller]
fn refused(component: &Path) -> String {
    let o = componentize_with(&["run", path(component)]);
    let stderr = failed(&o);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("`{}`", component.display())),
        "{stderr}"
    );
    stderr
}

#[cfg(unix)]
fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
#[cfg(unix)]
fn a_build_with_precompile_writes_a_cwasm_that_runs_like_the_wasm() {
    let built = built();
    // Like every output: 0666 less the umask, as a file any tool creates
    // (0644 under the usual umask 022).
    let created = scratch().join("created");
    std::fs::write(&created, b"").unwrap();
    assert_eq!(mode(&built.cwasm), mode(&created));
    assert_eq!(mode(&built.cwasm), mode(&built.wasm));
    // A line of its own among the stages' lines.
    assert!(
        built
            .stderr
            .lines()
            .any(|l| l.starts_with("precompile ") && l.ends_with('s')),
        "{}",
        built.stderr
    );

    let from_wasm = ok(&componentize_with(&["run", path(&built.wasm), "--", "x"]));
    let from_cwasm = ok(&componentize_with(&["run", path(&built.cwasm), "--", "x"]));
    assert_eq!(
        from_wasm,
        "hello from Lua\nargument: app.wasm\nargument: x\n"
    );
    // The same, but for argv[0]: the file's name.
    assert_eq!(
        from_cwasm,
        "hello from Lua\nargument: app.cwasm\nargument: x\n"
    );
    // Recognized by its contents, not its name.
    let renamed = scratch().join("precompiled.bin");
    std::fs::copy(&built.cwasm, &renamed).unwrap();
    assert!(ok(&componentize_with(&["run", path(&renamed)])).starts_with("hello from Lua\n"));
}

#[test]
fn compile_writes_the_same_bytes_every_time_and_they_run() {
    let built = built();
    let dir = scratch().join("compile");
    std::fs::create_dir_all(&dir).unwrap();
    // Without the code cache, so both are compiled by Cranelift.
    let first = dir.join("x.cwasm");
    let second = dir.join("y.cwasm");
    for out in [&first, &second] {
        ok(&componentize_with(&[
            "compile",
            path(&built.wasm),
            "--no-cache",
            "-o",
            path(out),
        ]));
    }
    let bytes = std::fs::read(&first).unwrap();
    assert!(
        bytes == std::fs::read(&second).unwrap(),
        "two compiles differ"
    );
    // And the same as the build's, which went through the code cache.
    assert!(
        bytes == std::fs::read(&built.cwasm).unwrap(),
        "differs from --precompile's"
    );
    assert!(ok(&componentize_with(&["run", path(&first)])).starts_with("hello from Lua\n"));

    // Without -o: next to the input, with .cwasm.
    let copy = dir.join("copy.wasm");
    std::fs::copy(&built.wasm, &copy).unwrap();
    ok(&componentize_with(&["compile", path(&copy)]));
    assert!(std::fs::read(dir.join("copy.cwasm")).unwrap() == bytes);
}

#[test]
fn precompile_is_wasmtimes_artifact_followed_by_its_checksum() {
    let wasm = std::fs::read(&built().wasm).unwrap();
    let engine = componentize_run::engine(None).unwrap();
    let ours = componentize_run::precompile(&engine, &wasm).unwrap();
    let wasmtimes = engine.precompile_component(&wasm).unwrap();
    assert_eq!(ours.len(), wasmtimes.len() + 48);
    let (artifact, trailer) = ours.split_at(wasmtimes.len());
    assert!(artifact == wasmtimes.as_slice(), "not wasmtime's artifact");
    assert_eq!(&trailer[..32], Sha256::digest(artifact).as_slice());
    assert_eq!(&trailer[32..], b"\0componentize-v1");
}

/// Writes `bytes` as `name` in a fresh folder of the scratch folder.
fn file(name: &str, bytes: &[u8]) -> PathBuf {
    let dir = scratch().join("files");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// The bytes of `built().cwasm` with wasmtime's artifact changed by `f`
/// and the checksum made to match again: a `.cwasm` as another engine
/// would have written it.
fn resealed(f: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut bytes = std::fs::read(&built().cwasm).unwrap();
    bytes.truncate(bytes.len() - 48);
    f(&mut bytes);
    let checksum = Sha256::digest(&bytes);
    bytes.extend_from_slice(&checksum);
    bytes.extend_from_slice(b"\0componentize-v1");
    bytes
}

#[test]
fn a_corrupted_or_truncated_cwasm_is_refused_cleanly() {
    let cwasm = std::fs::read(&built().cwasm).unwrap();
    let rebuild = "rebuild it with `componentize compile <component.wasm>`";

    // A flipped byte anywhere in the artifact (wasmtime would not see one
    // in the code): the checksum does not match.
    for at in [cwasm.len() / 2, cwasm.len() / 3, 20, 0, cwasm.len() - 49] {
        let mut bytes = cwasm.clone();
        bytes[at] ^= 0x40;
        let e = refused(&file(&format!("flipped-{at}.cwasm"), &bytes));
        assert!(e.contains("is corrupt"), "{e}");
        assert!(e.contains(rebuild), "{e}");
    }
    // A flipped byte in the checksum itself.
    let mut bytes = cwasm.clone();
    let at = cwasm.len() - 40;
    bytes[at] ^= 1;
    let e = refused(&file("bad-checksum.cwasm", &bytes));
    assert!(e.contains("is corrupt"), "{e}");

    // Truncated: the checksum is gone, and so are the ELF section headers.
    for keep in [cwasm.len() - 1, cwasm.len() - 48, cwasm.len() / 2, 100] {
        let e = refused(&file(&format!("truncated-{keep}.cwasm"), &cwasm[..keep]));
        assert!(e.contains(rebuild), "{e}");
    }
    // wasmtime's artifact alone (as `wasmtime compile` writes one): no
    // checksum, not loaded.
    let e = refused(&file("bare.cwasm", &cwasm[..cwasm.len() - 48]));
    assert!(
        e.contains("is a precompiled component without componentize's checksum"),
        "{e}"
    );
    assert!(e.contains(rebuild), "{e}");
    // Serving one is refused the same way, before listening.
    let served = file("served.cwasm", &cwasm[..cwasm.len() / 2]);
    let o = componentize_with(&["serve", "--addr", "127.0.0.1:0", path(&served)]);
    let e = failed(&o);
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert!(e.contains(rebuild), "{e}");
}

#[test]
fn a_cwasm_of_another_wasmtime_or_configuration_is_refused_with_the_fix() {
    let rebuild = "rebuild it with `componentize compile <component.wasm>` from this componentize";
    let wasm = std::fs::read(&built().wasm).unwrap();

    // Another configuration: the same features, with epoch interruption.
    let mut config = wasmtime::Config::new();
    config
        .wasm_component_model(true)
        .wasm_component_model_map(true)
        .wasm_exceptions(true)
        .epoch_interruption(true);
    let other = wasmtime::Engine::new(&config).unwrap();
    let bytes = componentize_run::precompile(&other, &wasm).unwrap();
    let e = refused(&file("epochs.cwasm", &bytes));
    assert!(
        e.contains("precompiled by another wasmtime version, engine configuration or machine"),
        "{e}"
    );
    assert!(e.contains("epoch interruption"), "{e}");
    assert!(e.contains(rebuild), "{e}");

    // Another wasmtime: the version in the artifact's engine section (a
    // format byte, the length, wasmtime's major version) says 49.
    let bytes = resealed(|artifact| {
        // It is the first section, right after the 64-byte ELF header.
        let version = b"\0\x0248";
        assert_eq!(&artifact[64..68], version, "the engine section moved");
        artifact[66..68].copy_from_slice(b"49");
    });
    let e = refused(&file("wasmtime49.cwasm", &bytes));
    assert!(e.contains("incompatible version '49'"), "{e}");
    assert!(e.contains(rebuild), "{e}");
}

#[test]
fn compile_errors_name_the_file() {
    let dir = scratch().join("compile-errors");
    std::fs::create_dir_all(&dir).unwrap();
    let compile = |input: &Path| {
        let o = componentize_with(&["compile", path(input)]);
        let e = failed(&o);
        assert_eq!(o.status.code(), Some(1), "{e}");
        assert!(e.contains(&format!("`{}`", input.display())), "{e}");
        e
    };

    let e = compile(&dir.join("missing.wasm"));
    assert!(e.contains("cannot read"), "{e}");
    let text = dir.join("notes.txt");
    std::fs::write(&text, "not wasm\n").unwrap();
    let e = compile(&text);
    assert!(e.contains("not a WebAssembly component"), "{e}");
    let module = dir.join("module.wasm");
    std::fs::write(&module, b"\0asm\x01\0\0\0").unwrap();
    let e = compile(&module);
    assert!(
        e.contains("a core WebAssembly module, not a component"),
        "{e}"
    );
    // Already precompiled, under either name.
    let e = compile(&built().cwasm);
    assert!(e.contains("already precompiled"), "{e}");
    let renamed = dir.join("renamed.wasm");
    std::fs::copy(&built().cwasm, &renamed).unwrap();
    let e = compile(&renamed);
    assert!(e.contains("already precompiled"), "{e}");
    // Nothing was written.
    assert!(!dir.join("notes.cwasm").exists());
    assert!(!dir.join("module.cwasm").exists());
    assert!(!dir.join("renamed.cwasm").exists());
    // `run` of a file that is not a component keeps its errors.
    let e = refused(&text);
    assert!(e.contains("is not a WebAssembly component"), "{e}");
    let e = refused(&module);
    assert!(e.contains("is a core WebAssembly module"), "{e}");
}
