//! The per-stage cache: each stage's output stored under a key that hashes
//! everything that determines it.
//!
//! An entry is the file `<dir>/<stage>/<key>`: a magic tag, the SHA-256 of the
//! payload, then the payload. Entries are written to a temporary file and
//! renamed into place, so concurrent runs sharing a cache never see a partial
//! entry; an entry whose hash does not match (truncated, corrupted) is
//! removed and reported as a miss, never used.

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};

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

/// What `componentize cache stats` reports.
#[derive(Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Number of entries.
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
    /// (absolute, as wasmtime wants it).
    pub fn code_dir(&self) -> Result<PathBuf> {
        std::path::absolute(self.dir.join("code"))
            .with_context(|| format!("cannot resolve the cache folder `{}`", self.dir.display()))
    }

    /// The cache's folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, stage: &str, key: &Key) -> PathBuf {
        self.dir.join(stage).join(key.as_str())
    }

    /// The payload stored under `key`, if present and intact.
    pub fn get(&self, stage: &str, key: &Key) -> Option<Vec<u8>> {
        let path = self.path(stage, key);
        let data = std::fs::read(&path).ok()?;
        match verify(&data) {
            Some(payload) => Some(payload.to_vec()),
            None => {
                // Corrupt or truncated: drop it so it is recomputed.
                let _ = std::fs::remove_file(&path);
                None
            }
        }
    }

    /// Stores `payload` under `key` atomically.
    pub fn put(&self, stage: &str, key: &Key, payload: &[u8]) -> Result<()> {
        let dir = self.dir.join(stage);
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create cache folder `{}`", dir.display()))?;
        let mut tmp = tempfile::Builder::new()
            .prefix(".tmp-")
            .tempfile_in(&dir)
            .with_context(|| format!("cannot write in cache folder `{}`", dir.display()))?;
        tmp.write_all(MAGIC)?;
        tmp.write_all(&Sha256::digest(payload))?;
        tmp.write_all(payload)?;
        tmp.flush()?;
        tmp.persist(self.path(stage, key))
            .with_context(|| format!("cannot write in cache folder `{}`", dir.display()))?;
        Ok(())
    }

    /// Counts entries and their bytes.
    pub fn stats(&self) -> Result<Stats> {
        let mut stats = Stats::default();
        for path in self.entries()? {
            stats.entries += 1;
            stats.bytes += std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        }
        Ok(stats)
    }

    /// Removes every entry; returns what was removed.
    pub fn clean(&self) -> Result<Stats> {
        let stats = self.stats()?;
        if self.dir.exists() {
            std::fs::remove_dir_all(&self.dir)
                .with_context(|| format!("cannot remove `{}`", self.dir.display()))?;
        }
        Ok(stats)
    }

    fn entries(&self) -> Result<Vec<PathBuf>> {
        let mut out = Vec::new();
        let Ok(stages) = std::fs::read_dir(&self.dir) else {
            return Ok(out);
        };
        for stage in stages {
            let stage = stage?.path();
            if !stage.is_dir() {
                continue;
            }
            for entry in std::fs::read_dir(&stage)? {
                let path = entry?.path();
                let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
                if path.is_file() && !name.starts_with(".tmp-") {
                    out.push(path);
                }
            }
        }
        out.sort();
        Ok(out)
    }
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
