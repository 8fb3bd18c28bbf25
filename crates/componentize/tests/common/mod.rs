//! Shared by the `componentize` binary's tests: running it, and its inputs.
#![allow(dead_code)] // each test binary uses a part

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The `componentize` binary, with no WASI sysroot from the environment:
/// only what a test passes is searched.
pub fn componentize() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_componentize"));
    c.env_remove("WASI_SYSROOT").env_remove("WASI_SDK_PATH");
    c
}

/// Asserts that the command succeeded; its stdout.
#[track_caller]
pub fn ok(o: &Output) -> String {
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "failed: {stderr}");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Asserts that the command failed with one clean error and no panic; its
/// stderr.
#[track_caller]
pub fn failed(o: &Output) -> String {
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(!o.status.success(), "succeeded: {stderr}");
    assert!(stderr.contains("error"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

/// A file of the toolchain build; panics, saying how to build it, if
/// missing.
pub fn toolchain(rel: &str) -> PathBuf {
    let path = componentize_testkit::toolchain_path(rel);
    assert!(
        path.is_file(),
        "missing {}; run `bash toolchain/build.sh` in the repository root first",
        path.display()
    );
    path
}

/// The folder of the toolchain's `libc.so`.
pub fn libc_dir() -> PathBuf {
    toolchain(componentize_testkit::LIBC)
        .parent()
        .unwrap()
        .to_path_buf()
}

/// A WIT file or folder of the test corpus, `fixtures/wit/<name>`.
pub fn corpus(name: &str) -> PathBuf {
    componentize_testkit::repo_file("fixtures/wit").join(name)
}

/// The Lua binding's build.
pub fn lua() -> &'static componentize_lua::Binding {
    static B: OnceLock<componentize_lua::Binding> = OnceLock::new();
    B.get_or_init(|| componentize_lua::binding().unwrap_or_else(|e| panic!("{e}")))
}

/// The Lua hello example, `interpreters/lua/examples/hello`.
pub fn hello() -> PathBuf {
    componentize_testkit::repo_file("interpreters/lua/examples/hello")
}

/// Copies folder `from` to `to`.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let dest = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_dir(&path, &dest);
        } else {
            std::fs::copy(&path, &dest).unwrap();
        }
    }
}

/// The Lua HTTP example, `interpreters/lua/examples/http`.
pub fn http_example() -> PathBuf {
    componentize_testkit::repo_file("interpreters/lua/examples/http")
}

/// The Lua wasi:http 0.3 example, `interpreters/lua/examples/http-p3`.
pub fn http_p3_example() -> PathBuf {
    componentize_testkit::repo_file("interpreters/lua/examples/http-p3")
}

/// `componentize` building `world` with the Lua binding and `script` into
/// `out`, quietly, with the stage cache in `cache`.
pub fn build_lua(world: &Path, script: &Path, out: &Path, cache: &Path) {
    let mut libc = std::ffi::OsString::from("-L");
    libc.push(libc_dir());
    let interpreter = lua().interpreter().path;
    build(&[interpreter.as_os_str(), &libc], world, script, out, cache);
}

/// `componentize` building `world` with the bundled JavaScript
/// interpreter and `script` into `out`, quietly, with the stage cache in
/// `cache`.
pub fn build_js(world: &Path, script: &Path, out: &Path, cache: &Path) {
    build(&["js".as_ref()], world, script, out, cache);
}

/// `componentize --interpreter INTERPRETER [FLAGS]` building `world` and
/// `script` into `out` (`interpreter` is the value and any flags after it).
fn build(interpreter: &[&std::ffi::OsStr], world: &Path, script: &Path, out: &Path, cache: &Path) {
    ok(&componentize()
        .env("COMPONENTIZE_CACHE_DIR", cache)
        .arg("--interpreter")
        .args(interpreter)
        .arg("--world")
        .arg(world)
        .arg("--init")
        .arg(script)
        .arg("-q")
        .arg("-o")
        .arg(out)
        .output()
        .unwrap());
}

/// The JavaScript HTTP example, `interpreters/js/examples/http`.
pub fn js_http_example() -> PathBuf {
    componentize_testkit::repo_file("interpreters/js/examples/http")
}

/// The JavaScript hello example, `interpreters/js/examples/hello`.
pub fn js_hello() -> PathBuf {
    componentize_testkit::repo_file("interpreters/js/examples/hello")
}

/// A folder for this test binary (components, caches), removed when it
/// ends.
pub fn scratch() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().unwrap()).path()
}

/// The stage and code cache every build and run of this test binary
/// shares (not the user's).
pub fn cache() -> PathBuf {
    scratch().join("cache")
}

/// A child process killed (and reaped) when dropped, so a failing test
/// leaves no server behind.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
