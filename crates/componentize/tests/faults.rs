//! Faults around the build, caused for real on the `componentize` binary
//! building the Lua hello with the bundled interpreter: builds killed with
//! SIGKILL at random points, eight concurrent builds on one cache, and the
//! cache (or the output) on a full or read-only filesystem (a small tmpfs;
//! these tests mount one, so they run as root, as CI does).
//!
//! Every output is compared with a reference built without a cache: the
//! build is byte-reproducible, so a cache entry used wrongly would show as
//! different bytes.
//!
//! - `COMPONENTIZE_FAULT_KILLS=n`: how many builds are killed (CI: 12);
//! - `COMPONENTIZE_FAULT_SEED=n`: the seed of the kill delays (printed).

mod common;

use common::{componentize, copy_dir, failed, hello, ok, scratch};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// What the cache's entries start with (see `componentize::cache`).
const ENTRY_MAGIC: &[u8] = b"czcache1";

/// Two apps that share the WIT and interpreter (generate and link are the
/// same work) and differ in their script (init is not).
struct App {
    world: PathBuf,
    reference: Vec<u8>,
}

/// The two apps.
struct Apps {
    apps: Vec<App>,
}

fn apps() -> &'static Apps {
    static APPS: OnceLock<Apps> = OnceLock::new();
    APPS.get_or_init(|| {
        let mut apps = Vec::new();
        for (i, greeting) in ["hello from Lua", "hello again"].iter().enumerate() {
            let world = scratch().join(format!("app{i}"));
            copy_dir(&hello(), &world);
            let script = std::fs::read_to_string(world.join("app.lua")).unwrap();
            let script = script.replace("hello from Lua", greeting);
            std::fs::write(world.join("app.lua"), script).unwrap();
            let out = scratch().join(format!("reference{i}.wasm"));
            ok(&build(&world, &out, None).output().unwrap());
            let reference = std::fs::read(&out).unwrap();
            apps.push(App { world, reference });
        }
        assert_ne!(apps[0].reference, apps[1].reference);
        Apps { apps }
    })
}

/// The one command, with the cache at `cache` (none: `--no-cache`).
fn build(world: &Path, out: &Path, cache: Option<&Path>) -> Command {
    let mut c = componentize();
    c.arg("--interpreter")
        .arg("lua")
        .arg("--world")
        .arg(world)
        .arg("--init")
        .arg(world.join("app.lua"))
        .arg("-o")
        .arg(out)
        .stdin(Stdio::null());
    match cache {
        Some(dir) => c.env("COMPONENTIZE_CACHE_DIR", dir),
        None => c.arg("--no-cache"),
    };
    c
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name}={v} is not a number"))
        })
        .unwrap_or(default)
}

/// The files in `dir` (a file name each, sorted).
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Asserts that every stage entry in `cache` is whole: its hash matches
/// its payload, so no later build can take a partial one. (Entries in
/// `code/` are wasmtime's, which checks them itself.)
#[track_caller]
fn assert_entries_whole(cache: &Path) {
    let Ok(stages) = std::fs::read_dir(cache) else {
        return;
    };
    for stage in stages {
        let stage = stage.unwrap().path();
        if !stage.is_dir() || stage.ends_with("code") {
            continue;
        }
        for entry in std::fs::read_dir(&stage).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy();
            assert!(
                !name.starts_with('.'),
                "a temporary file is left: {}",
                path.display()
            );
            let data = std::fs::read(&path).unwrap();
            let rest = data
                .strip_prefix(ENTRY_MAGIC)
                .unwrap_or_else(|| panic!("{} is not a cache entry", path.display()));
            let (hash, payload) = rest.split_at(32);
            assert_eq!(
                hash,
                Sha256::digest(payload).as_slice(),
                "{}",
                path.display()
            );
        }
    }
}

#[test]
fn builds_killed_at_random_points_leave_no_partial_file_and_no_bad_entry() {
    let apps = apps();
    let kills = env_number("COMPONENTIZE_FAULT_KILLS", 12);
    let seed = env_number("COMPONENTIZE_FAULT_SEED", 1);
    eprintln!("killing {kills} builds (COMPONENTIZE_FAULT_SEED={seed})");
    let mut rng = componentize_testkit::fuzz::SplitMix64(seed);
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let outputs = dir.path().join("out");
    std::fs::create_dir(&outputs).unwrap();
    let out = outputs.join("app.wasm");
    // Each kill starts from one of these states of the shared cache, so
    // kills land in every stage and in the writes of the code, the cache
    // and the output, not only in fully cached builds.
    let states: [(&str, &[&str]); 4] = [
        ("fully cached", &[]),
        ("script changed", &["init"]),
        ("code cached", &["generate", "link", "init"]),
        ("cold", &["generate", "link", "init", "code"]),
    ];
    let forget = |folders: &[&str]| {
        for folder in folders {
            let _ = std::fs::remove_dir_all(cache.join(folder));
        }
    };
    // How long a build from each state takes, measured by its first
    // build once the cache holds both apps; kills land up to 1.2x that,
    // so some come after the end.
    for app in &apps.apps {
        ok(&build(&app.world, &out, Some(&cache)).output().unwrap());
    }
    let mut durations: [Option<Duration>; 4] = [None; 4];
    let mut finished = 0;
    let mut per_state = [0u64; 4];
    for i in 0..kills {
        let app = &apps.apps[(i % 2) as usize];
        let state = (rng.next_u64() % states.len() as u64) as usize;
        let (_, folders) = states[state];
        let window = *durations[state].get_or_insert_with(|| {
            forget(folders);
            let start = Instant::now();
            ok(&build(&app.world, &out, Some(&cache)).output().unwrap());
            start.elapsed()
        });
        forget(folders);
        per_state[state] += 1;
        let _ = std::fs::remove_file(&out);
        let mut child = build(&app.world, &out, Some(&cache))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let window = window.as_micros() as u64 * 6 / 5;
        std::thread::sleep(Duration::from_micros(rng.next_u64() % window.max(1)));
        let _ = child.kill();
        let status = child.wait().unwrap();
        finished += u64::from(status.success());
        // The output is absent or whole; nothing else is in its folder.
        match names(&outputs).as_slice() {
            [] => {}
            [name] if name == "app.wasm" => assert!(
                std::fs::read(&out).unwrap() == app.reference,
                "kill {i}: the output is not the reference"
            ),
            other => panic!("kill {i}: the output folder holds {other:?}"),
        }
        assert_entries_whole(&cache);
    }
    let states: Vec<String> = states
        .iter()
        .zip(per_state)
        .map(|((name, _), n)| format!("{n} {name}"))
        .collect();
    eprintln!(
        "{kills} builds killed ({}; {finished} had finished first)",
        states.join(", ")
    );
    // Every later build succeeds and is right, from whatever the kills left.
    for app in &apps.apps {
        ok(&build(&app.world, &out, Some(&cache)).output().unwrap());
        assert!(std::fs::read(&out).unwrap() == app.reference);
    }
}

#[test]
fn eight_concurrent_builds_on_one_cache_give_the_reference_outputs() {
    let apps = apps();
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let children: Vec<_> = (0..8)
        .map(|i| {
            let out = dir.path().join(format!("app{i}.wasm"));
            let child = build(&apps.apps[i % 2].world, &out, Some(&cache))
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            (i, out, child)
        })
        .collect();
    for (i, out, child) in children {
        ok(&child.wait_with_output().unwrap());
        assert!(
            std::fs::read(&out).unwrap() == apps.apps[i % 2].reference,
            "concurrent build {i} differs from its reference"
        );
    }
    assert_entries_whole(&cache);
}

/// A tmpfs of `size` mounted on a new folder, unmounted when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ])
            .arg(dir.path())
            .status()
            .expect("cannot run `mount`");
        assert!(
            status.success(),
            "cannot mount a tmpfs on {}: these tests need root (CI runs as root)",
            dir.path().display()
        );
        Tmpfs { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn read_only(&self) {
        let status = Command::new("mount")
            .args(["-o", "remount,ro"])
            .arg(self.path())
            .status()
            .unwrap();
        assert!(
            status.success(),
            "cannot remount {} read-only",
            self.path().display()
        );
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.path()).status();
    }
}

/// Builds the first app with the cache at `cache` and asserts that it
/// succeeded with the reference bytes after exactly one warning, which
/// names the cache and contains each of `saying`.
#[track_caller]
fn assert_built_after_one_warning(cache: &Path, saying: &[&str]) {
    let out = scratch().join("warned.wasm");
    let o = build(&apps().apps[0].world, &out, Some(cache))
        .output()
        .unwrap();
    ok(&o);
    let warned = warnings(&o);
    assert_eq!(warned.len(), 1, "{warned:?}");
    let cache = cache.display().to_string();
    assert!(
        std::iter::once(cache.as_str())
            .chain(saying.iter().copied())
            .all(|part| warned[0].contains(part)),
        "{warned:?}"
    );
    assert!(std::fs::read(&out).unwrap() == apps().apps[0].reference);
}

/// The warnings a build printed.
fn warnings(o: &Output) -> Vec<String> {
    String::from_utf8_lossy(&o.stderr)
        .lines()
        .filter(|l| l.starts_with("warning:"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn a_full_cache_disk_warns_once_and_builds_the_same_component() {
    // Room for the bindings, not for the linked component.
    let disk = Tmpfs::mount("256k");
    let cache = disk.path().join("cache");
    assert_built_after_one_warning(&cache, &["No space left", "--no-cache"]);
    assert_entries_whole(&cache);
}

#[test]
fn a_read_only_cache_warns_once_and_a_filled_one_still_serves() {
    let apps = apps();
    let disk = Tmpfs::mount("64m");
    let empty = disk.path().join("empty");
    let filled = disk.path().join("filled");
    std::fs::create_dir(&empty).unwrap();
    let out = scratch().join("read-only.wasm");
    ok(&build(&apps.apps[0].world, &out, Some(&filled))
        .output()
        .unwrap());
    disk.read_only();

    // Nothing in it: built from scratch, one warning naming the folder.
    assert_built_after_one_warning(&empty, &["Read-only file system"]);

    // Filled by an earlier build: every stage is a hit, nothing to warn.
    let o = build(&apps.apps[0].world, &out, Some(&filled))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    ok(&o);
    assert_eq!(stderr.matches("(cached)").count(), 3, "{stderr}");
    assert!(warnings(&o).is_empty(), "{stderr}");
    assert!(std::fs::read(&out).unwrap() == apps.apps[0].reference);
}

#[test]
fn a_full_output_folder_is_an_error_naming_the_path_and_leaves_nothing() {
    let apps = apps();
    let disk = Tmpfs::mount("64k");
    // Fill it: the filler stops where the disk does.
    let filler = disk.path().join("filler");
    let _ = std::fs::write(&filler, vec![0u8; 1 << 20]);
    let out = disk.path().join("app.wasm");
    let stderr = failed(&build(&apps.apps[0].world, &out, None).output().unwrap());
    assert!(
        stderr.contains(&out.display().to_string()) && stderr.contains("No space left"),
        "{stderr}"
    );
    assert_eq!(names(disk.path()), ["filler"]);

    // A folder that does not exist is refused before any work.
    let nowhere = disk.path().join("no/app.wasm");
    let start = Instant::now();
    let stderr = failed(&build(&apps.apps[0].world, &nowhere, None).output().unwrap());
    assert!(
        stderr.contains("does not exist (create it first)"),
        "{stderr}"
    );
    assert!(start.elapsed() < Duration::from_secs(2), "it built first");
}

/// `componentize cache …` on the cache at `cache`; its stdout.
fn cache_command(cache: &Path, args: &[&str]) -> String {
    ok(&componentize()
        .env("COMPONENTIZE_CACHE_DIR", cache)
        .arg("cache")
        .args(args)
        .output()
        .unwrap())
}

/// The bytes `cache stats` reports.
fn cached_bytes(cache: &Path) -> u64 {
    let stats = cache_command(cache, &["stats"]);
    let (_, rest) = stats.split_once("entries, ").unwrap();
    rest.split_once(" bytes").unwrap().0.parse().unwrap()
}

#[test]
fn the_cache_is_kept_under_the_limit_that_cache_limit_sets() {
    let apps = apps();
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let out = dir.path().join("app.wasm");
    ok(&build(&apps.apps[0].world, &out, Some(&cache))
        .output()
        .unwrap());
    let stats = cache_command(&cache, &["stats"]);
    assert!(stats.contains("(limit 2147483648 bytes)"), "{stats}");
    let full = cached_bytes(&cache);
    assert!(full > 1 << 20, "{stats}");

    // Half of it: the least recently used go, the rest stays.
    let half = full / 2;
    let set = cache_command(&cache, &["limit", &half.to_string()]);
    assert!(
        set.contains(&format!("limit {half} bytes; evicted")),
        "{set}"
    );
    assert!(cached_bytes(&cache) <= half);
    assert_eq!(cache_command(&cache, &["limit"]).trim(), half.to_string());

    // A build keeps it under the limit too, and is still right.
    ok(&build(&apps.apps[1].world, &out, Some(&cache))
        .output()
        .unwrap());
    assert!(std::fs::read(&out).unwrap() == apps.apps[1].reference);
    assert!(cached_bytes(&cache) <= half);

    // Sizes with units; a bad one is an error naming it.
    cache_command(&cache, &["limit", "1KiB"]);
    assert!(cached_bytes(&cache) <= 1024);
    let stderr = failed(
        &componentize()
            .env("COMPONENTIZE_CACHE_DIR", &cache)
            .args(["cache", "limit", "lots"])
            .output()
            .unwrap(),
    );
    assert!(stderr.contains("invalid size `lots`"), "{stderr}");
}
