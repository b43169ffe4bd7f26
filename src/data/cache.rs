//! The cache of decoded image folders: the second load of the same files with the same options
//! reads one file instead of decoding every image again.
//!
//! **Where**: `$GPU_AE_CACHE_DIR` when set (the files go straight into it); otherwise
//! `$XDG_CACHE_HOME/gpu-ae/datasets/`, else `$HOME/.cache/gpu-ae/datasets/`; on Windows
//! `%LOCALAPPDATA%\gpu-ae\datasets\`. Deleting the folder clears the cache; nothing else refers
//! to it. Without any of these variables nothing is cached.
//!
//! **What**: one file per key, `<key as 16 hex digits>.dataset`, written atomically
//! ([`crate::files::replace_atomic`]: whatever else is at that path, a FIFO or a link included,
//! is replaced, and only a regular file there is read). The key is FNV-1a 64 of the crate version, this format's
//! version, the folder's absolute path, the options (channels, size, test percentage), the split
//! rule, which part was decoded (both splits, or the test split alone), and every listed image's
//! relative path, length, modification time and (on Unix) status-change time, device and inode
//! ([`FileStamp`]): changing, adding, removing, replacing or touching an image gives a new key,
//! also when its modification time is put back (old files stay until the folder is deleted).
//!
//! **Format** (little-endian): 16-byte magic, key u64, channels u32, rows u32, cols u32, train
//! count u64, test count u64, class count u32, each class as length u32 + UTF-8 bytes, train
//! labels u32 × count, test labels u32 × count, test pixels, train pixels (`[count, channels,
//! rows, cols]` u8 each), then FNV-1a 64 of everything before it. A file that is truncated,
//! corrupt, of another key or another format is ignored and rewritten; problems with the cache
//! (unwritable folder, full disk) never fail a load, and the first is one line on stderr.

use std::fs::Metadata;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::UNIX_EPOCH;

use super::fingerprint::Fnv1a64;
use super::listing::Listing;
use super::split::{DataOptions, Images, Split, SplitRule, UNLABELLED};
use crate::files;
use crate::noteln;

/// First bytes of a cache file; the last byte is the format version.
const MAGIC: &[u8; 16] = b"gpu-ae-dataset\n\x02";

/// The folder cache files go in, from the environment (see the module doc); None when none of
/// the variables is set.
pub fn cache_dir() -> Option<PathBuf> {
    cache_dir_from(|name| std::env::var_os(name).filter(|v| !v.is_empty()))
}

/// [`cache_dir`] with the environment as a function (for tests).
pub fn cache_dir_from(var: impl Fn(&str) -> Option<std::ffi::OsString>) -> Option<PathBuf> {
    if let Some(dir) = var("GPU_AE_CACHE_DIR") {
        return Some(PathBuf::from(dir));
    }
    let base = if cfg!(windows) {
        PathBuf::from(var("LOCALAPPDATA")?)
    } else {
        match var("XDG_CACHE_HOME").map(PathBuf::from) {
            // The XDG spec ignores relative paths.
            Some(xdg) if xdg.is_absolute() => xdg,
            _ => PathBuf::from(var("HOME")?).join(".cache"),
        }
    };
    Some(base.join("gpu-ae").join("datasets"))
}

/// Which splits a cache file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// Both splits.
    All,
    /// The test split only (the train split stored empty).
    Test,
}

/// What the key knows of a file: its length and modification time and, on Unix, its
/// status-change time, device and inode. A program (or `touch -d`) can give a rewritten file its
/// old modification time back, but not its old status-change time, which every write, rename
/// into place or `chmod` sets to now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStamp {
    len: u64,
    /// Seconds since the Unix epoch (negative before it) and nanoseconds.
    mtime: (i64, u32),
    /// Status-change time (seconds, nanoseconds), device and inode; zeros off Unix.
    ctime: (i64, i64),
    inode: (u64, u64),
}

impl FileStamp {
    pub fn of(meta: &Metadata) -> FileStamp {
        let mtime = match meta.modified().map(|t| t.duration_since(UNIX_EPOCH)) {
            Ok(Ok(d)) => (d.as_secs() as i64, d.subsec_nanos()),
            Ok(Err(e)) => (
                -(e.duration().as_secs() as i64),
                e.duration().subsec_nanos(),
            ),
            Err(_) => (0, 0),
        };
        #[cfg(unix)]
        let (ctime, inode) = {
            use std::os::unix::fs::MetadataExt;
            ((meta.ctime(), meta.ctime_nsec()), (meta.dev(), meta.ino()))
        };
        #[cfg(not(unix))]
        let (ctime, inode) = ((0, 0), (0, 0));
        FileStamp {
            len: meta.len(),
            mtime,
            ctime,
            inode,
        }
    }
}

/// What a cache file holds: the decoded splits and the class names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cached {
    pub classes: Vec<String>,
    pub train: Split,
    pub test: Split,
    /// Images of (train, test) that were scaled or made grey to the options' shape.
    pub converted: [usize; 2],
}

/// The cache file of one folder, options and listing.
#[derive(Debug, Clone)]
pub struct Entry {
    pub key: u64,
    pub path: PathBuf,
}

impl Entry {
    /// The entry for `dir` loaded with `opts`; None when there is no cache folder.
    pub fn new(
        dir: &Path,
        opts: &DataOptions,
        part: Part,
        rule: SplitRule,
        listing: &Listing,
        stamps: &[FileStamp],
    ) -> Option<Entry> {
        let cache = cache_dir()?;
        let key = key(dir, opts, part, rule, listing, stamps);
        let path = cache.join(format!("{key:016x}.dataset"));
        Some(Entry { key, path })
    }

    /// The cached splits, or None when the file is missing, not a regular file (a FIFO would
    /// block the read), unreadable, truncated, corrupt or holds another key, or its classes
    /// differ from `classes`.
    pub fn read(&self, classes: &[String]) -> Option<Cached> {
        let bytes = files::read(&self.path, "a dataset cache file").ok()?;
        decode(bytes, self.key).filter(|c| c.classes == classes)
    }

    /// Writes `c` atomically. A failure does not fail the load (the cache is an optimisation);
    /// the first in a process is one line on stderr saying why.
    pub fn write(&self, c: &Cached) {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let made = if dir.exists() && !dir.is_dir() {
            Err(crate::Error::msg(format!(
                "{}: not a folder",
                dir.display()
            )))
        } else {
            std::fs::create_dir_all(dir).map_err(|e| crate::Error::io(dir, e))
        };
        let written = made.and_then(|()| files::replace_atomic(&self.path, &encode(c, self.key)));
        static SAID: AtomicBool = AtomicBool::new(false);
        if let Err(e) = written
            && !SAID.swap(true, Ordering::Relaxed)
        {
            noteln!(
                "note: cannot write the dataset cache ({e}); the images are decoded again next time (GPU_AE_CACHE_DIR names another cache folder)"
            );
        }
    }
}

fn key(
    dir: &Path,
    opts: &DataOptions,
    part: Part,
    rule: SplitRule,
    listing: &Listing,
    stamps: &[FileStamp],
) -> u64 {
    let mut h = Fnv1a64::default();
    let mut text = |s: &str| {
        h.update(&(s.len() as u64).to_le_bytes());
        h.update(s.as_bytes());
    };
    text(env!("CARGO_PKG_VERSION"));
    text(std::str::from_utf8(MAGIC).unwrap_or_default());
    let abs = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    text(&abs.to_string_lossy());
    text(&format!(
        "channels={:?} size={:?} test_percent={} rule={} part={part:?}",
        opts.channels,
        opts.size,
        opts.test_percent,
        rule.name()
    ));
    h.update(&(listing.images.len() as u64).to_le_bytes());
    for (rel, stamp) in listing.images.iter().zip(stamps) {
        h.update(&(rel.len() as u64).to_le_bytes());
        h.update(rel.as_bytes());
        h.update(&stamp.len.to_le_bytes());
        h.update(&stamp.mtime.0.to_le_bytes());
        h.update(&stamp.mtime.1.to_le_bytes());
        for word in [stamp.ctime.0, stamp.ctime.1] {
            h.update(&word.to_le_bytes());
        }
        for word in [stamp.inode.0, stamp.inode.1] {
            h.update(&word.to_le_bytes());
        }
    }
    h.finish()
}

fn encode(c: &Cached, key: u64) -> Vec<u8> {
    let im = &c.test.images;
    let pixels = c.train.images.pixels.len() + c.test.images.pixels.len();
    let mut b = Vec::with_capacity(pixels + 4 * (c.train.labels.len() + c.test.labels.len()) + 256);
    b.extend_from_slice(MAGIC);
    b.extend_from_slice(&key.to_le_bytes());
    for d in [im.channels, im.rows, im.cols] {
        b.extend_from_slice(&(d as u32).to_le_bytes());
    }
    b.extend_from_slice(&(c.train.labels.len() as u64).to_le_bytes());
    b.extend_from_slice(&(c.test.labels.len() as u64).to_le_bytes());
    b.extend_from_slice(&(c.classes.len() as u32).to_le_bytes());
    for class in &c.classes {
        b.extend_from_slice(&(class.len() as u32).to_le_bytes());
        b.extend_from_slice(class.as_bytes());
    }
    for n in c.converted {
        b.extend_from_slice(&(n as u64).to_le_bytes());
    }
    for &l in c.train.labels.iter().chain(&c.test.labels) {
        b.extend_from_slice(&l.to_le_bytes());
    }
    b.extend_from_slice(&c.test.images.pixels);
    b.extend_from_slice(&c.train.images.pixels);
    let mut h = Fnv1a64::default();
    h.update(&b);
    b.extend_from_slice(&h.finish().to_le_bytes());
    b
}

/// Reads fields off the front of a byte slice; every read checks the length.
struct Fields<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Fields<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len())?;
        let s = &self.bytes[self.at..end];
        self.at = end;
        Some(s)
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
}

/// The cache file `bytes` if it is whole, of this format and of `key`; the train pixels reuse
/// the file's buffer.
fn decode(mut bytes: Vec<u8>, key: u64) -> Option<Cached> {
    let body_len = bytes.len().checked_sub(8)?;
    let mut h = Fnv1a64::default();
    h.update(&bytes[..body_len]);
    if h.finish().to_le_bytes() != bytes[body_len..] {
        return None;
    }
    let mut f = Fields {
        bytes: &bytes[..body_len],
        at: 0,
    };
    if f.take(MAGIC.len())? != MAGIC || f.u64()? != key {
        return None;
    }
    let [channels, rows, cols] = [f.u32()?, f.u32()?, f.u32()?].map(|d| d as usize);
    if ![1, 3].contains(&channels) || rows == 0 || cols == 0 {
        return None;
    }
    let counts = [f.u64()?, f.u64()?].map(|c| usize::try_from(c).ok());
    let [Some(n_train), Some(n_test)] = counts else {
        return None;
    };
    let n_classes = f.u32()?;
    let mut classes = Vec::new();
    for _ in 0..n_classes {
        let len = f.u32()? as usize;
        classes.push(String::from_utf8(f.take(len)?.to_vec()).ok()?);
    }
    let converted = [f.u64()?, f.u64()?].map(|c| usize::try_from(c).ok());
    let [Some(train_converted), Some(test_converted)] = converted else {
        return None;
    };
    let n_labels = n_train.checked_add(n_test)?;
    let label_bytes = f.take(n_labels.checked_mul(4)?)?;
    let labels: Vec<u32> = label_bytes
        .chunks_exact(4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    if labels
        .iter()
        .any(|&l| l != UNLABELLED && l as usize >= classes.len())
    {
        return None;
    }
    let per_image = channels.checked_mul(rows)?.checked_mul(cols)?;
    let test_pixels = f.take(n_test.checked_mul(per_image)?)?.to_vec();
    let train_start = f.at;
    let train_len = n_train.checked_mul(per_image)?;
    f.take(train_len)?;
    if f.at != body_len {
        return None;
    }
    bytes.truncate(train_start + train_len);
    bytes.drain(..train_start);
    let split = |count, pixels, labels: &[u32]| Split {
        images: Images {
            count,
            channels,
            rows,
            cols,
            pixels,
        },
        labels: labels.to_vec(),
    };
    Some(Cached {
        train: split(n_train, bytes, &labels[..n_train]),
        test: split(n_test, test_pixels, &labels[n_train..]),
        classes,
        converted: [train_converted, test_converted],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;

    fn env<'a>(vars: &'a [(&str, &str)]) -> impl Fn(&str) -> Option<OsString> + 'a {
        move |name| {
            vars.iter()
                .find(|v| v.0 == name)
                .map(|v| OsString::from(v.1))
        }
    }

    #[test]
    #[cfg(not(windows))]
    fn cache_dir_follows_the_environment() {
        let dir = |vars: &[(&str, &str)]| cache_dir_from(env(vars));
        assert_eq!(
            dir(&[("GPU_AE_CACHE_DIR", "/c"), ("HOME", "/h")]),
            Some(PathBuf::from("/c"))
        );
        assert_eq!(
            dir(&[("XDG_CACHE_HOME", "/x"), ("HOME", "/h")]),
            Some(PathBuf::from("/x/gpu-ae/datasets"))
        );
        assert_eq!(
            dir(&[("XDG_CACHE_HOME", "rel"), ("HOME", "/h")]),
            Some(PathBuf::from("/h/.cache/gpu-ae/datasets"))
        );
        assert_eq!(
            dir(&[("HOME", "/h")]),
            Some(PathBuf::from("/h/.cache/gpu-ae/datasets"))
        );
        assert_eq!(dir(&[]), None);
    }

    fn sample() -> Cached {
        let split = |count: usize, seed: u8, labels: Vec<u32>| Split {
            images: Images {
                count,
                channels: 3,
                rows: 2,
                cols: 2,
                pixels: (0..count * 12).map(|i| i as u8 ^ seed).collect(),
            },
            labels,
        };
        Cached {
            classes: vec!["a".into(), "é".into()],
            train: split(3, 7, vec![0, 1, UNLABELLED]),
            test: split(1, 9, vec![1]),
            converted: [2, 1],
        }
    }

    #[test]
    fn round_trip_and_every_damage_is_refused() {
        let c = sample();
        let bytes = encode(&c, 42);
        assert_eq!(decode(bytes.clone(), 42), Some(c));
        assert_eq!(decode(bytes.clone(), 43), None, "another key");
        for cut in 0..bytes.len() {
            assert_eq!(decode(bytes[..cut].to_vec(), 42), None, "cut at {cut}");
        }
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x10;
            assert_eq!(decode(bad, 42), None, "byte {i} flipped");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(decode(longer, 42), None);
    }
}
