//! Which files of a folder are its images, and which of them are test images: the listing
//! rules of the reference's `list_images` (see [`super::folder`] for all the rules) and the
//! train/test split.

use std::path::{Path, PathBuf};

use super::fingerprint::Fnv1a64;
use super::split::SplitRule;
use crate::bail;
use crate::error::{Error, Result};

/// Extensions of the files read as images (compared without case).
pub const EXTENSIONS: [&str; 6] = ["png", "jpg", "jpeg", "bmp", "gif", "webp"];

/// The files [`list_images`] found below a folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    /// Relative paths with '/' separators, sorted by their UTF-8 bytes.
    pub images: Vec<String>,
    /// Files that are not images (other extensions, or not regular files: FIFOs, devices,
    /// sockets); hidden ones are not counted.
    pub ignored: usize,
}

/// Every image file below `dir` (see the module doc for the rules). Errors name the folder or
/// file: unreadable folders, names that are not UTF-8, a symbolic link back to a folder above.
pub fn list_images(dir: &Path) -> Result<Listing> {
    let mut listing = Listing {
        images: Vec::new(),
        ignored: 0,
    };
    let root = dir.canonicalize().map_err(|e| Error::io(dir, e))?;
    walk(dir, "", &mut vec![root], &mut listing)?;
    listing.images.sort_unstable();
    Ok(listing)
}

/// Lists `dir` (which is `prefix` below the root) into `out`; `ancestors` holds the canonical
/// paths of `dir` and the folders above it, to refuse a link that would loop.
fn walk(dir: &Path, prefix: &str, ancestors: &mut Vec<PathBuf>, out: &mut Listing) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let path = entry.path();
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            bail!("{}: file name is not valid UTF-8", path.display());
        };
        if name.starts_with('.') {
            continue;
        }
        let mut kind = entry.file_type().map_err(|e| Error::io(&path, e))?;
        if kind.is_symlink() {
            // Follow the link; a broken one is a file (it fails to read if it is an image).
            if let Ok(meta) = std::fs::metadata(&path) {
                kind = meta.file_type();
            }
        }
        let rel = format!("{prefix}{name}");
        if kind.is_dir() {
            let real = path.canonicalize().map_err(|e| Error::io(&path, e))?;
            if ancestors.contains(&real) {
                bail!(
                    "{}: links back to {}, a folder above it; the listing would never end",
                    path.display(),
                    real.display()
                );
            }
            ancestors.push(real);
            walk(&path, &format!("{rel}/"), ancestors, out)?;
            ancestors.pop();
        } else if is_image_name(&name) && (kind.is_file() || kind.is_symlink()) {
            // A broken link stays here: reading it fails, naming it.
            out.images.push(rel);
        } else {
            // Other extensions, and whatever is not a regular file (a FIFO named x.png would
            // block the read that decodes it; a device or a socket holds no image).
            out.ignored += 1;
        }
    }
    Ok(())
}

/// The images among the files of a folder given as paths relative to it ('/' separators; a
/// folder given in memory, [`super::memory`]) by the rules of [`list_images`]: hidden files and
/// files in hidden folders skipped, other extensions ignored and counted. Also returns, for
/// each listed image, its index in `paths`. A path that is empty or absolute, has an empty or
/// `..` part, or comes twice is an error naming it.
pub fn list_paths(paths: &[&str]) -> Result<(Listing, Vec<usize>)> {
    let mut images: Vec<(&str, usize)> = Vec::new();
    let mut ignored = 0;
    for (i, &rel) in paths.iter().enumerate() {
        let parts: Vec<&str> = rel.split('/').collect();
        if parts.iter().any(|p| p.is_empty() || *p == "..") {
            bail!("{rel}: not a path inside the folder (an empty or \"..\" part)");
        }
        if parts.iter().any(|p| p.starts_with('.')) {
            continue;
        }
        if is_image_name(parts[parts.len() - 1]) {
            images.push((rel, i));
        } else {
            ignored += 1;
        }
    }
    images.sort_unstable();
    if let Some(w) = images.windows(2).find(|w| w[0].0 == w[1].0) {
        bail!("{}: given twice", w[0].0);
    }
    let listing = Listing {
        images: images.iter().map(|(rel, _)| rel.to_string()).collect(),
        ignored,
    };
    Ok((listing, images.into_iter().map(|(_, i)| i).collect()))
}

/// The rule for a folder given as the relative paths of its files: [`SplitRule::Folders`] when
/// files lie below both `train/` and `test/` (a hidden one counts, as the folder exists), else
/// [`SplitRule::Hash`].
pub fn split_rule_of_paths(paths: &[&str], test_percent: u32) -> SplitRule {
    let below = |folder: &str| {
        paths
            .iter()
            .any(|p| p.split_once('/').is_some_and(|(first, _)| first == folder))
    };
    if below("train") && below("test") {
        SplitRule::Folders
    } else {
        SplitRule::Hash { test_percent }
    }
}

/// Whether a file name has one of [`EXTENSIONS`] (any case).
pub fn is_image_name(name: &str) -> bool {
    Path::new(name)
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| EXTENSIONS.iter().any(|x| e.eq_ignore_ascii_case(x)))
}

/// The rule for `dir`: [`SplitRule::Folders`] when `dir/train` and `dir/test` are both folders
/// (links followed), else [`SplitRule::Hash`].
pub fn split_rule(dir: &Path, test_percent: u32) -> SplitRule {
    if dir.join("train").is_dir() && dir.join("test").is_dir() {
        SplitRule::Folders
    } else {
        SplitRule::Hash { test_percent }
    }
}

/// Whether the image at relative path `rel` is a test image under [`SplitRule::Hash`]:
/// FNV-1a 64 of its UTF-8 bytes modulo 100 below `test_percent`.
pub fn is_test_by_hash(rel: &str, test_percent: u32) -> bool {
    let mut h = Fnv1a64::default();
    h.update(rel.as_bytes());
    h.finish() % 100 < u64::from(test_percent)
}
