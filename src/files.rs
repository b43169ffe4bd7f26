//! Small file helpers shared by the readers and writers (datasets, checkpoints, pictures): opening
//! and reading a file with errors that name it (a directory or a FIFO where the file belongs
//! included), an atomic write that never leaves a half-written file at the destination (and
//! follows links and writes into devices instead of replacing them), a durable rename, and
//! the crash points the fault tests use to kill the process at every step of a checkpoint write
//! (`GPU_AE_CRASH_AT`), and the full disk they simulate (`GPU_AE_DISK_FULL_AT`).

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};

/// Distinguishes temp files of concurrent writers in one process.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Opens `path` for reading. Errors name it; a directory is "<path>: is a directory, expected
/// <what>" (Unix opens a directory and fails only at the first read, with a vaguer message), and
/// anything else that is not a regular file (a FIFO, a device, a socket) is refused before it is
/// opened, since opening a FIFO blocks until something writes to it.
pub fn open(path: &Path, what: &str) -> Result<File> {
    let meta = fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if meta.is_dir() {
        crate::bail!("{}: is a directory, expected {what}", path.display());
    }
    if !meta.is_file() {
        crate::bail!(
            "{}: not a regular file (a FIFO or a device), expected {what}",
            path.display()
        );
    }
    File::open(path).map_err(|e| Error::io(path, e))
}

/// Whether `path` (through any links) is something other than a regular file or a folder: a
/// device or a FIFO, which [`write_atomic`] writes into instead of replacing.
pub fn is_special(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|m| !m.is_file() && !m.is_dir())
}

/// The whole of the file at `path`, opened as by [`open`].
pub fn read(path: &Path, what: &str) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    open(path, what)?
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(path, e))?;
    Ok(bytes)
}

/// Writes bytes to `path` so that a reader never sees a half-written file, without damaging what
/// is not a plain file there: a regular file (or nothing) is replaced atomically (temp file in the
/// same directory, fsync, rename; the temp file is removed on error); a symbolic link is followed
/// and its target replaced so (the link stays); a character device or FIFO (`/dev/null`,
/// `/dev/stdout`, a named pipe) is written into directly, since renaming over it would replace the
/// device itself; a directory is an error. Errors name `path` (or, through a link, the file it
/// leads to).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    match fs::metadata(path) {
        Ok(meta) if meta.is_dir() => {
            crate::bail!("{}: is a directory, expected a file name", path.display())
        }
        Ok(meta) if !meta.is_file() => {
            // Opened through any links, as a shell's `>` would.
            let mut file = OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(|e| Error::io(path, e))?;
            file.write_all(bytes)
                .and_then(|()| file.flush())
                .map_err(|e| Error::io(path, e))
        }
        // Errors of a link's write name its target, the file that could not be written.
        _ => replace_atomic(&link_target(path)?, bytes),
    }
}

/// Where `path` leads through symbolic links: each link's target read against its folder's
/// canonical path, until a path that is no link (or does not exist). `path` itself when it is
/// no link. Errors name `path` (a chain of more than 40 links is a loop).
fn link_target(path: &Path) -> Result<PathBuf> {
    let mut at = path.to_path_buf();
    for _ in 0..40 {
        match fs::symlink_metadata(&at) {
            Ok(meta) if meta.file_type().is_symlink() => {
                let link = fs::read_link(&at).map_err(|e| Error::io(path, e))?;
                let dir = match at.parent() {
                    Some(p) if !p.as_os_str().is_empty() => p,
                    _ => Path::new("."),
                };
                at = dir
                    .canonicalize()
                    .map_err(|e| Error::io(path, e))?
                    .join(link);
            }
            _ => return Ok(at),
        }
    }
    crate::bail!("{}: too many levels of symbolic links", path.display())
}

/// Writes bytes to `path` atomically whatever is there: temp file in the same directory, fsync,
/// rename over it (a link, a FIFO or a device at `path` is replaced, not written through: for
/// files the program owns, such as the dataset cache). The temp file is removed on error.
/// Error names `path`.
pub fn replace_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let Some(name) = path.file_name() else {
        crate::bail!("{}: not a file name", path.display());
    };
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !dir.is_dir() {
        crate::bail!(
            "{}: directory {} does not exist",
            path.display(),
            dir.display()
        );
    }
    let temp = dir.join(format!(
        ".{}.tmp-{}-{}",
        name.to_string_lossy(),
        std::process::id(),
        TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = write_temp(&temp, bytes).and_then(|()| {
        crash_point();
        fs::rename(&temp, path)
    });
    if let Err(err) = result {
        // Best effort: the temp file may not exist if creating it was what failed.
        let _ = fs::remove_file(&temp);
        return Err(Error::io(path, err));
    }
    sync_dir(&dir);
    crash_point();
    Ok(())
}

/// Renames `from` to `to` (same folder) and makes the rename durable. Error names `to`.
pub fn rename_durable(from: &Path, to: &Path) -> Result<()> {
    crash_point();
    fs::rename(from, to).map_err(|e| Error::io(to, e))?;
    if let Some(dir) = to.parent() {
        sync_dir(if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        });
    }
    crash_point();
    Ok(())
}

/// Whether `name` is a temp file of [`write_atomic`] (`.NAME.tmp-PID-N`), which a process killed
/// mid-write leaves behind.
pub fn is_temp_name(name: &str) -> bool {
    name.starts_with('.')
        && name.rsplit_once(".tmp-").is_some_and(|(_, tail)| {
            tail.split_once('-').is_some_and(|(pid, n)| {
                !pid.is_empty()
                    && !n.is_empty()
                    && pid.bytes().chain(n.bytes()).all(|b| b.is_ascii_digit())
            })
        })
}

/// Makes renames in `dir` durable; not every platform can open a directory, so this is best
/// effort (the data itself is already synced).
fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

fn write_temp(temp: &Path, bytes: &[u8]) -> std::io::Result<()> {
    crash_point();
    disk_full_point()?;
    let mut file = OpenOptions::new().write(true).create_new(true).open(temp)?;
    let half = bytes.len() / 2;
    file.write_all(&bytes[..half])?;
    crash_point();
    file.write_all(&bytes[half..])?;
    file.sync_all()
}

/// Test hook: with `GPU_AE_DISK_FULL_AT=N` in the environment the N-th file write of
/// [`write_atomic`] and every one after it fail as on a full disk (`No space left on device`),
/// before their temp file is created. Without the variable it only reads a cached `None`.
fn disk_full_point() -> std::io::Result<()> {
    static AT: OnceLock<Option<u64>> = OnceLock::new();
    static REACHED: AtomicU64 = AtomicU64::new(0);
    let Some(at) = hook(&AT, "GPU_AE_DISK_FULL_AT") else {
        return Ok(());
    };
    if REACHED.fetch_add(1, Ordering::Relaxed) + 1 >= at {
        return Err(std::io::Error::new(
            std::io::ErrorKind::StorageFull,
            "No space left on device",
        ));
    }
    Ok(())
}

/// The N of the test hook `var=N` in the environment, read once into `cell`.
fn hook(cell: &'static OnceLock<Option<u64>>, var: &str) -> Option<u64> {
    *cell.get_or_init(|| std::env::var(var).ok().and_then(|v| v.parse().ok()))
}

/// Test hook: with `GPU_AE_CRASH_AT=N` in the environment the process aborts (as a `kill -9`
/// would end it) at the N-th crash point it reaches. Crash points sit before and after every
/// step of [`write_atomic`] and [`rename_durable`]: temp file created, half written, renamed.
/// Without the variable it only reads a cached `None`.
pub fn crash_point() {
    static AT: OnceLock<Option<u64>> = OnceLock::new();
    static REACHED: AtomicU64 = AtomicU64::new(0);
    let Some(at) = hook(&AT, "GPU_AE_CRASH_AT") else {
        return;
    };
    if REACHED.fetch_add(1, Ordering::Relaxed) + 1 == at {
        std::process::abort();
    }
}
