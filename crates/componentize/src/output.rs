//! Output files (components, cache entries) are written whole or not at
//! all: a killed or failed write leaves the destination as it was and no
//! partial file anywhere.
//!
//! On Linux the bytes go to an unnamed file (`O_TMPFILE`) in the
//! destination's folder, which gets its name only once complete; a process
//! killed while writing leaves nothing. Elsewhere, and on filesystems
//! without unnamed files, they go to a hidden temporary file renamed over
//! the destination; a kill can leave that temporary file (the cache removes
//! old ones), never a partial destination. A destination that is a device
//! or a pipe (`/dev/stdout`, a FIFO) is written to in place.

use anyhow::{Context, Result};
use std::io::Write;
use std::path::Path;

/// The prefix of the hidden temporary files writes may use.
pub(crate) const TEMPORARY_PREFIX: &str = ".componentize-";

/// Checks, before any work, that `path` can be an output: its folder
/// exists. A long build then does not end in "no such folder".
pub fn check_destination(path: &Path) -> Result<()> {
    let dir = folder_of(path);
    if dir.is_dir() {
        return Ok(());
    }
    anyhow::bail!(
        "cannot write `{}`: the folder `{}` does not exist (create it first)",
        path.display(),
        dir.display()
    )
}

/// The folder a file at `path` is in (`.` for a bare file name).
pub(crate) fn folder_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Writes `bytes` to `path`: all of them, or nothing and an error naming
/// the path. The file gets the mode other tools' outputs get (0666 less the
/// umask).
pub fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    write_with(path, |file| file.write_all(bytes))
}

/// Like [`write`], with the contents written by `fill`.
pub fn write_with(
    path: &Path,
    fill: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>,
) -> Result<()> {
    let dir = folder_of(path);
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => anyhow::bail!(
            "cannot write `{}`: it is a folder (name a file in it)",
            path.display()
        ),
        // A device or a pipe (`-o /dev/stdout`, a FIFO) is written to, not
        // replaced: renaming over `/dev/null` would make it a plain file.
        Ok(meta) if !meta.is_file() => {
            let mut file = std::fs::File::options()
                .write(true)
                .open(path)
                .with_context(|| format!("cannot open `{}`", path.display()))?;
            return fill(&mut file)
                .and_then(|()| file.flush())
                .with_context(|| format!("failed to write `{}`", path.display()));
        }
        _ => {}
    }
    #[cfg(target_os = "linux")]
    let fill = match unnamed::write(dir, path, fill) {
        unnamed::Outcome::Done(result) => return result,
        unnamed::Outcome::Unsupported(fill) => fill,
    };
    let mut builder = tempfile::Builder::new();
    builder.prefix(TEMPORARY_PREFIX);
    // A temporary file is private (0600), and the rename keeps its mode.
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666));
    let mut tmp = builder
        .tempfile_in(dir)
        .with_context(|| format!("cannot create a file in `{}`", dir.display()))?;
    fill(tmp.as_file_mut())
        .and_then(|()| tmp.flush())
        .with_context(|| format!("failed to write `{}`", path.display()))?;
    tmp.persist(path)
        .with_context(|| format!("failed to write `{}`", path.display()))?;
    Ok(())
}

#[cfg(target_os = "linux")]
mod unnamed {
    use super::TEMPORARY_PREFIX;
    use anyhow::{Context, Result};
    use rustix::fs::{AtFlags, CWD, Mode, OFlags};
    use rustix::io::Errno;
    use std::io::Write;
    use std::os::fd::AsRawFd;
    use std::path::Path;

    /// What an attempt at an unnamed file did.
    pub(super) enum Outcome<F> {
        /// The write is done (or failed, and left nothing).
        Done(Result<()>),
        /// This system cannot: `fill` is handed back, unused.
        Unsupported(F),
    }

    /// Writes through an unnamed file in `dir`, linked at `path` once
    /// complete.
    pub(super) fn write<F>(dir: &Path, path: &Path, fill: F) -> Outcome<F>
    where
        F: FnOnce(&mut std::fs::File) -> std::io::Result<()>,
    {
        // Naming the file goes through /proc (linking by descriptor
        // otherwise needs a capability).
        if !Path::new("/proc/self/fd").is_dir() {
            return Outcome::Unsupported(fill);
        }
        let flags = OFlags::TMPFILE | OFlags::WRONLY | OFlags::CLOEXEC;
        let fd = match rustix::fs::openat(CWD, dir, flags, Mode::from_raw_mode(0o666)) {
            Ok(fd) => fd,
            // The kernel or the filesystem has no unnamed files.
            Err(Errno::OPNOTSUPP | Errno::ISDIR | Errno::INVAL) => {
                return Outcome::Unsupported(fill);
            }
            Err(e) => {
                return Outcome::Done(
                    Err(std::io::Error::from(e))
                        .with_context(|| format!("cannot create a file in `{}`", dir.display())),
                );
            }
        };
        let mut file = std::fs::File::from(fd);
        Outcome::Done(
            fill(&mut file)
                .and_then(|()| file.flush())
                .and_then(|()| name(&file, dir, path))
                .with_context(|| format!("failed to write `{}`", path.display())),
        )
    }

    /// Gives the complete unnamed `file` the name `path`: directly when it
    /// is free, else through a temporary name renamed over it.
    fn name(file: &std::fs::File, dir: &Path, path: &Path) -> std::io::Result<()> {
        let fd_path = format!("/proc/self/fd/{}", file.as_raw_fd());
        let link = |to: &Path| {
            rustix::fs::linkat(CWD, fd_path.as_str(), CWD, to, AtFlags::SYMLINK_FOLLOW)
                .map_err(std::io::Error::from)
        };
        match link(path) {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let tmp = tempfile::Builder::new()
                    .prefix(TEMPORARY_PREFIX)
                    .make_in(dir, |candidate| link(candidate))?;
                tmp.persist(path).map(drop).map_err(|e| e.error)
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_replaces_the_file_whole_and_leaves_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.wasm");
        write(&path, b"first").unwrap();
        write(&path, b"second").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["out.wasm"]);
    }

    #[test]
    fn a_failed_write_leaves_the_old_file_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.wasm");
        write(&path, b"old").unwrap();
        let err = write_with(&path, |f| {
            f.write_all(b"partial")?;
            Err(std::io::Error::other("disk full"))
        })
        .unwrap_err();
        assert!(format!("{err:#}").contains("out.wasm"), "{err:#}");
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[cfg(unix)]
    #[test]
    fn a_pipe_is_written_to_not_replaced_and_a_folder_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        let reader = {
            let fifo = fifo.clone();
            std::thread::spawn(move || std::fs::read(fifo).unwrap())
        };
        write(&fifo, b"through the pipe").unwrap();
        assert_eq!(reader.join().unwrap(), b"through the pipe");
        assert!(!std::fs::metadata(&fifo).unwrap().is_file());

        let err = write(dir.path(), b"x").unwrap_err().to_string();
        assert!(err.contains("it is a folder"), "{err}");
    }

    #[test]
    fn a_destination_in_a_missing_folder_is_refused_up_front() {
        let dir = tempfile::tempdir().unwrap();
        check_destination(&dir.path().join("out.wasm")).unwrap();
        check_destination(Path::new("out.wasm")).unwrap();
        let err = check_destination(&dir.path().join("no/out.wasm")).unwrap_err();
        assert!(
            err.to_string().contains("does not exist (create it first)"),
            "{err}"
        );
    }

    #[cfg(unix)]
    #[test]
    fn outputs_get_the_mode_of_the_umask() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.wasm");
        write(&path, b"x").unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        // Whatever the umask, the owner can read and write, and nothing is
        // executable; under the usual 022 this is 0644.
        assert_eq!(mode & 0o600, 0o600, "{mode:o}");
        assert_eq!(mode & 0o111, 0, "{mode:o}");
    }
}
