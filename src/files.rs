//! Small file helpers shared by the readers and writers (datasets, checkpoints, pictures): opening
//! and reading a file with errors that name it (a directory where the file belongs included), and
//! an atomic write that never leaves a half-written file at the destination.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};

/// Distinguishes temp files of concurrent writers in one process.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Opens `path` for reading. Errors name it; a directory is "<path>: is a directory, expected
/// <what>" (Unix opens a directory and fails only at the first read, with a vaguer message).
pub fn open(path: &Path, what: &str) -> Result<File> {
    let meta = fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if meta.is_dir() {
        crate::bail!("{}: is a directory, expected {what}", path.display());
    }
    File::open(path).map_err(|e| Error::io(path, e))
}

/// The whole of the file at `path`, opened as by [`open`].
pub fn read(path: &Path, what: &str) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    open(path, what)?
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(path, e))?;
    Ok(bytes)
}

/// Writes bytes to `path` atomically: temp file in the same directory, fsync, rename; the temp
/// file is removed on error. Error names `path`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
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
    let result = write_temp(&temp, bytes).and_then(|()| fs::rename(&temp, path));
    if let Err(err) = result {
        // Best effort: the temp file may not exist if creating it was what failed.
        let _ = fs::remove_file(&temp);
        return Err(Error::io(path, err));
    }
    // Make the rename itself durable; not every platform can open a directory, so this is best
    // effort (the data is already synced).
    if let Ok(d) = File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

fn write_temp(temp: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = OpenOptions::new().write(true).create_new(true).open(temp)?;
    file.write_all(bytes)?;
    file.sync_all()
}
