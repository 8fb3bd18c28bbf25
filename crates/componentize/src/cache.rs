//! The per-stage cache: each stage's output stored under a key that hashes
//! everything that determines it, kept under a size bound.
//!
//! An entry is the file `<dir>/<stage>/<key>`: a magic tag, the SHA-256 of the
//! payload, then the payload. Entries are written to a temporary file and
//! renamed into place, so concurrent runs sharing a cache never see a partial
//! entry; an entry whose hash does not match (truncated, corrupted) is
//! removed and reported as a miss, never used. Compiled code lives in
//! `<dir>/code`: wasmtime's cache of whole compiled components in
//! `code/wasmtime` (written the same way by wasmtime), and Cranelift's
//! compiled functions in `code/functions` ([`FunctionCache`]).
//!
//! The whole folder, compiled code included, is kept under a size bound
//! (`<dir>/size-limit`, [`DEFAULT_LIMIT`] unless set): [`Cache::evict`]
//! removes the least recently used files until it fits. A hit refreshes an
//! entry's modification time, which is what "recently used" reads.

use anyhow::{Context, Result, anyhow};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

const MAGIC: &[u8; 8] = b"czcache1";

/// A cache key: build it from everything a stage's output depends on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Key(String);

impl Key {
    /// Starts a key for `stage`, including the tool's version.
    pub fn builder(stage: &str) -> KeyBuilder {
        let mut b = KeyBuilder(Sha256::new());
        b.str("componentize")
            .str(env!("CARGO_PKG_VERSION"))
            .str(stage);
        b
    }

    /// The key as hex, the entry's file name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Accumulates the inputs of a key; each part is length-prefixed, so
/// different splits of the same bytes give different keys.
pub struct KeyBuilder(Sha256);

impl KeyBuilder {
    /// Adds bytes.
    pub fn bytes(&mut self, bytes: &[u8]) -> &mut Self {
        self.0.update((bytes.len() as u64).to_le_bytes());
        self.0.update(bytes);
        self
    }

    /// Adds a string.
    pub fn str(&mut self, s: &str) -> &mut Self {
        self.bytes(s.as_bytes())
    }

    /// The key.
    pub fn finish(&self) -> Key {
        Key(hex(&self.0.clone().finalize()))
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The size a cache is kept under until [`Cache::set_limit`] says otherwise.
pub const DEFAULT_LIMIT: u64 = 2 << 30;

/// The file in the cache folder that holds its size bound, in bytes.
const LIMIT_FILE: &str = "size-limit";

/// A temporary file this old was left by a run that was killed (a live
/// run renames its temporary files within seconds), and is removed.
const STALE_TEMPORARY: Duration = Duration::from_secs(60 * 60);

/// wasmtime's code cache keeps a file's use counts in `<file>.stats`: one
/// entry with the file it describes.
const WASMTIME_STATS_SUFFIX: &str = ".stats";

/// The infix of wasmtime's temporary files in the code cache
/// (`<file>.wip-atomic-write-mod`).
const WASMTIME_TEMPORARY: &str = ".wip-atomic-write-";

/// What `componentize cache stats` reports.
#[derive(Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Number of entries (stage outputs and compiled-code files).
    pub entries: u64,
    /// Their size in bytes.
    pub bytes: u64,
}

/// A cache directory.
#[derive(Clone, Debug)]
pub struct Cache {
    dir: PathBuf,
}

impl Cache {
    /// The cache at `dir`.
    pub fn at(dir: impl Into<PathBuf>) -> Cache {
        Cache { dir: dir.into() }
    }

    /// `$COMPONENTIZE_CACHE_DIR`, else the platform cache folder
    /// (`$XDG_CACHE_HOME/componentize` or `~/.cache/componentize`).
    pub fn default_location() -> Result<PathBuf> {
        if let Some(dir) = std::env::var_os("COMPONENTIZE_CACHE_DIR") {
            return Ok(PathBuf::from(dir));
        }
        if let Some(dir) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
            return Ok(PathBuf::from(dir).join("componentize"));
        }
        let home = std::env::var_os("HOME")
            .context("no cache folder: set COMPONENTIZE_CACHE_DIR (or HOME), or pass --no-cache")?;
        Ok(PathBuf::from(home).join(".cache/componentize"))
    }

    /// The folder of wasmtime's compiled-code cache, inside the cache
    /// (absolute, as wasmtime wants it). It has a folder of its own: wasmtime
    /// removes files it does not know from its folder.
    pub fn code_dir(&self) -> Result<PathBuf> {
        std::path::absolute(self.dir.join("code/wasmtime"))
            .with_context(|| format!("cannot resolve the cache folder `{}`", self.dir.display()))
    }

    /// Cranelift's incremental compilation cache in this cache.
    pub fn functions(&self) -> FunctionCache {
        FunctionCache {
            cache: self.clone(),
        }
    }

    /// The cache's folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, stage: &str, key: &Key) -> PathBuf {
        self.dir.join(stage).join(key.as_str())
    }

    /// The payload stored under `key`, if present and intact. A hit marks
    /// the entry as just used (when the folder is writable).
    pub fn get(&self, stage: &str, key: &Key) -> Option<Vec<u8>> {
        let path = self.path(stage, key);
        let data = std::fs::read(&path).ok()?;
        match verify(&data) {
            Some(payload) => {
                // Best effort: a read-only cache still serves hits.
                let _ = std::fs::File::options()
                    .write(true)
                    .open(&path)
                    .and_then(|f| f.set_modified(SystemTime::now()));
                Some(payload.to_vec())
            }
            None => {
                // Corrupt or truncated: drop it so it is recomputed.
                let _ = std::fs::remove_file(&path);
                None
            }
        }
    }

    /// Stores `payload` under `key` atomically: the entry is whole or
    /// absent, and a failed write (a full disk) or a killed run leaves no
    /// partial file (see [`crate::output`]).
    pub fn put(&self, stage: &str, key: &Key, payload: &[u8]) -> Result<()> {
        let dir = self.dir.join(stage);
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create cache folder `{}`", dir.display()))?;
        crate::output::write_with(&self.path(stage, key), |file| {
            file.write_all(MAGIC)?;
            file.write_all(&Sha256::digest(payload))?;
            file.write_all(payload)
        })
    }

    /// The size bound: what [`Cache::set_limit`] stored, else
    /// [`DEFAULT_LIMIT`].
    pub fn limit(&self) -> Result<u64> {
        let path = self.dir.join(LIMIT_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => text.trim().parse().map_err(|_| {
                anyhow!(
                    "the cache's size limit in `{}` is not a number of bytes: set it again with `componentize cache limit SIZE`",
                    path.display()
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(DEFAULT_LIMIT),
            Err(e) => {
                Err(e).with_context(|| format!("cannot read the cache's size limit `{}`", path.display()))
            }
        }
    }

    /// Stores the size bound (in bytes) and evicts down to it; returns what
    /// was removed.
    pub fn set_limit(&self, bytes: u64) -> Result<Stats> {
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("cannot create the cache folder `{}`", self.dir.display()))?;
        crate::output::write(&self.dir.join(LIMIT_FILE), format!("{bytes}\n").as_bytes())?;
        self.evict()
    }

    /// Counts entries and their bytes.
    pub fn stats(&self) -> Result<Stats> {
        let mut stats = Stats::default();
        for entry in self.entries()?.values() {
            stats.entries += 1;
            stats.bytes += entry.bytes;
        }
        Ok(stats)
    }

    /// Removes the least recently used entries until the cache fits its
    /// [limit](Cache::limit), and temporary files that killed runs left
    /// behind; returns what was removed. Safe while other runs use the
    /// cache: an entry removed under one is a miss there, recomputed.
    pub fn evict(&self) -> Result<Stats> {
        let limit = self.limit()?;
        let entries = self.entries()?;
        let mut total: u64 = entries.values().map(|e| e.bytes).sum();
        let mut removed = Stats::default();
        let mut by_age: Vec<(&SystemTime, &PathBuf, &Entry)> =
            entries.iter().map(|(path, e)| (&e.used, path, e)).collect();
        by_age.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
        for (_, _, entry) in by_age {
            if total <= limit {
                break;
            }
            for file in &entry.files {
                let _ = std::fs::remove_file(file);
            }
            total -= entry.bytes;
            removed.entries += 1;
            removed.bytes += entry.bytes;
        }
        Ok(removed)
    }

    /// Removes every entry; returns what was removed. The size limit is
    /// kept.
    pub fn clean(&self) -> Result<Stats> {
        let stats = self.stats()?;
        let Ok(children) = std::fs::read_dir(&self.dir) else {
            return Ok(stats);
        };
        for child in children {
            let path = child?.path();
            let result = if path.is_dir() {
                std::fs::remove_dir_all(&path)
            } else if path.file_name().is_some_and(|n| n == LIMIT_FILE) {
                continue;
            } else {
                std::fs::remove_file(&path)
            };
            result.with_context(|| format!("cannot remove `{}`", path.display()))?;
        }
        Ok(stats)
    }

    /// Every entry under the folder, by path (sorted, so eviction among
    /// equally old entries is the same on every host); stale temporary
    /// files are removed on the way.
    fn entries(&self) -> Result<BTreeMap<PathBuf, Entry>> {
        let mut out = BTreeMap::new();
        let Ok(children) = std::fs::read_dir(&self.dir) else {
            return Ok(out);
        };
        // Files directly in the folder (the size limit) are not entries.
        for child in children {
            let path = child?.path();
            if path.is_dir() {
                collect_entries(&path, &mut out).with_context(|| {
                    format!("cannot read the cache folder `{}`", path.display())
                })?;
            }
        }
        Ok(out)
    }
}

/// Cranelift's incremental compilation cache as entries of a [`Cache`]
/// (`<dir>/code/functions/<key>`), one per compiled function, with the
/// integrity check and atomic writes of the stage entries: components that
/// share libraries (a new world with the same interpreter) compile those
/// libraries' functions once, in any run sharing the folder.
#[derive(Clone, Debug)]
pub struct FunctionCache {
    cache: Cache,
}

/// The stage folder of [`FunctionCache`] entries.
const FUNCTIONS: &str = "code/functions";

impl FunctionCache {
    fn key(key: &[u8]) -> Key {
        Key::builder(FUNCTIONS).bytes(key).finish()
    }
}

impl componentize_init::CacheStore for FunctionCache {
    fn get(&self, key: &[u8]) -> Option<std::borrow::Cow<'_, [u8]>> {
        self.cache
            .get(FUNCTIONS, &FunctionCache::key(key))
            .map(Into::into)
    }

    /// Best effort: a cache that cannot be written compiles on, and the
    /// stage's own write reports it.
    fn insert(&self, key: &[u8], value: Vec<u8>) -> bool {
        self.cache
            .put(FUNCTIONS, &FunctionCache::key(key), &value)
            .is_ok()
    }
}

/// One cache entry: its files (a compiled-code file and its use counts
/// are one), their size and when it was last used.
#[derive(Debug)]
struct Entry {
    files: Vec<PathBuf>,
    bytes: u64,
    used: SystemTime,
}

fn collect_entries(dir: &Path, out: &mut BTreeMap<PathBuf, Entry>) -> std::io::Result<()> {
    for child in std::fs::read_dir(dir)? {
        let child = child?;
        let path = child.path();
        // Symlinks are not followed: the cache only holds what it wrote.
        let meta = child.metadata()?;
        if meta.is_dir() {
            collect_entries(&path, out)?;
            continue;
        }
        if !meta.is_file() {
            continue;
        }
        let name = child.file_name().to_string_lossy().into_owned();
        let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
        if name.starts_with(crate::output::TEMPORARY_PREFIX) || name.contains(WASMTIME_TEMPORARY) {
            let age = SystemTime::now()
                .duration_since(modified)
                .unwrap_or_default();
            if age > STALE_TEMPORARY {
                let _ = std::fs::remove_file(&path);
            }
            continue;
        }
        let owner = match name.strip_suffix(WASMTIME_STATS_SUFFIX) {
            Some(described) => path.with_file_name(described),
            None => path.clone(),
        };
        let entry = out.entry(owner).or_insert(Entry {
            files: Vec::new(),
            bytes: 0,
            used: SystemTime::UNIX_EPOCH,
        });
        entry.files.push(path);
        entry.bytes += meta.len();
        entry.used = entry.used.max(modified);
    }
    Ok(())
}

fn verify(data: &[u8]) -> Option<&[u8]> {
    let rest = data.strip_prefix(MAGIC.as_slice())?;
    if rest.len() < 32 {
        return None;
    }
    let (hash, payload) = rest.split_at(32);
    (Sha256::digest(payload).as_slice() == hash).then_some(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::at(dir.path());
        let key = Key::builder("link").bytes(b"abc").finish();
        assert_eq!(cache.get("link", &key), None);
        cache.put("link", &key, b"payload").unwrap();
        assert_eq!(cache.get("link", &key).as_deref(), Some(&b"payload"[..]));
        assert_eq!(cache.stats().unwrap().entries, 1);

        // Flip a payload byte: detected, removed, recomputed by the caller.
        let path = dir.path().join("link").join(key.as_str());
        let mut data = std::fs::read(&path).unwrap();
        *data.last_mut().unwrap() ^= 1;
        std::fs::write(&path, &data).unwrap();
        assert_eq!(cache.get("link", &key), None);
        assert!(!path.exists());

        // Truncated entry.
        cache.put("link", &key, b"payload").unwrap();
        std::fs::write(&path, &std::fs::read(&path).unwrap()[..20]).unwrap();
        assert_eq!(cache.get("link", &key), None);

        assert_eq!(cache.clean().unwrap().entries, 0);
    }

    fn age(path: &Path, seconds_ago: u64) {
        let when = SystemTime::now() - Duration::from_secs(seconds_ago);
        std::fs::File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(when)
            .unwrap();
    }

    #[test]
    fn eviction_removes_the_least_recently_used_first() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::at(dir.path());
        let keys: Vec<Key> = (0..4u8)
            .map(|i| Key::builder("link").bytes(&[i]).finish())
            .collect();
        for (i, key) in keys.iter().enumerate() {
            cache.put("link", key, &[0; 1000]).unwrap();
            age(
                &dir.path().join("link").join(key.as_str()),
                100 - i as u64 * 10,
            );
        }
        // Entry 0 is the oldest written, but a hit makes it the newest.
        assert!(cache.get("link", &keys[0]).is_some());
        let one = cache.stats().unwrap().bytes / 4;
        assert_eq!(cache.set_limit(2 * one).unwrap().entries, 2);
        let present: Vec<bool> = keys
            .iter()
            .map(|k| cache.get("link", k).is_some())
            .collect();
        assert_eq!(present, [true, false, false, true]);
        assert_eq!(cache.limit().unwrap(), 2 * one);
        // Cleaning keeps the limit.
        cache.clean().unwrap();
        assert_eq!(cache.stats().unwrap(), Stats::default());
        assert_eq!(cache.limit().unwrap(), 2 * one);
    }

    #[test]
    fn compiled_functions_are_entries_with_the_integrity_check() {
        use componentize_init::CacheStore;
        let dir = tempfile::tempdir().unwrap();
        let functions = Cache::at(dir.path()).functions();
        assert!(functions.get(b"key one").is_none());
        assert!(functions.insert(b"key one", b"compiled".to_vec()));
        assert!(functions.insert(b"key two", b"other".to_vec()));
        assert_eq!(functions.get(b"key one").as_deref(), Some(&b"compiled"[..]));
        // A damaged entry is a miss (Cranelift compiles the function again)
        // and goes.
        let files: Vec<_> = std::fs::read_dir(dir.path().join(FUNCTIONS))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(files.len(), 2);
        for file in &files {
            let mut bytes = std::fs::read(file).unwrap();
            *bytes.last_mut().unwrap() ^= 1;
            std::fs::write(file, bytes).unwrap();
        }
        assert!(functions.get(b"key one").is_none());
        assert!(!files[0].exists() || !files[1].exists());
        // They count in the cache's size, which eviction bounds.
        assert_eq!(Cache::at(dir.path()).stats().unwrap().entries, 1);
    }

    #[test]
    fn compiled_code_counts_with_its_use_counts_and_stale_temporaries_go() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::at(dir.path());
        let code = dir.path().join("code/modules/v1");
        std::fs::create_dir_all(&code).unwrap();
        std::fs::write(code.join("mod-a"), [0; 300]).unwrap();
        std::fs::write(code.join("mod-a.stats"), [0; 20]).unwrap();
        std::fs::write(code.join("mod-b"), [0; 300]).unwrap();
        // Left by killed runs: one long ago (removed), one just now (a live
        // run's, kept).
        std::fs::write(code.join("mod-c.wip-atomic-write-mod"), [0; 50]).unwrap();
        age(&code.join("mod-c.wip-atomic-write-mod"), 2 * 60 * 60);
        std::fs::create_dir_all(dir.path().join("init")).unwrap();
        std::fs::write(dir.path().join("init/.componentize-live"), [0; 50]).unwrap();
        assert_eq!(
            cache.stats().unwrap(),
            Stats {
                entries: 2,
                bytes: 620
            }
        );
        assert!(!code.join("mod-c.wip-atomic-write-mod").exists());
        assert!(dir.path().join("init/.componentize-live").exists());
        // mod-b was used last: evicting to 400 bytes removes mod-a and its
        // use counts together.
        age(&code.join("mod-a"), 50);
        age(&code.join("mod-a.stats"), 40);
        cache.set_limit(400).unwrap();
        assert!(!code.join("mod-a").exists() && !code.join("mod-a.stats").exists());
        assert!(code.join("mod-b").exists());
    }

    #[test]
    fn a_bad_size_limit_names_the_file_and_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(LIMIT_FILE), "lots").unwrap();
        let err = Cache::at(dir.path()).limit().unwrap_err().to_string();
        assert!(
            err.contains("size-limit") && err.contains("componentize cache limit"),
            "{err}"
        );
    }

    #[test]
    fn keys_depend_on_every_part() {
        let a = Key::builder("init").bytes(b"ab").bytes(b"c").finish();
        let b = Key::builder("init").bytes(b"a").bytes(b"bc").finish();
        let c = Key::builder("link").bytes(b"ab").bytes(b"c").finish();
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert_eq!(a, Key::builder("init").bytes(b"ab").bytes(b"c").finish());
    }
}
