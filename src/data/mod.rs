//! The data wing: datasets as every command trains and evaluates on them, behind one seam.
//! [`load`] (and [`load_test`]) read a dataset folder of either format:
//!
//! - an IDX folder ([`idx`]: MNIST, Fashion-MNIST and friends, raw or gzip-compressed), when
//!   it holds any of the four IDX files;
//! - otherwise a folder of images ([`folder`]: png, jpg, jpeg, bmp, gif, webp; labels from
//!   subfolder names, a stable train/test split, pixels decoded as Pillow would ([`decode`],
//!   [`pil`]), and a cache of the decoded pixels ([`cache`]) so that the next load does not
//!   decode again).
//!
//! A folder of images can also come as files in memory ([`memory`]: the web page's folder
//! picker), read by the same rules and code.
//!
//! Both give the types of [`split`]; [`fingerprint`] digests a dataset for the run records and
//! [`classes`] maps labels between datasets. Inside the wing each file imports only those
//! below it (split ← idx, fingerprint ← listing ← cache ← folder; pil ← decode ← folder ← memory;
//! idx, listing ← classes), and from outside it only the crate's utilities: the error type,
//! the file helpers, the console, the platform seam (threads) and the host RNG.

pub mod cache;
pub mod classes;
pub mod decode;
pub mod fingerprint;
pub mod folder;
pub mod idx;
pub mod listing;
pub mod memory;
pub mod pil;
pub mod split;

use std::path::Path;

pub use split::{
    Binarize, DataOptions, Dataset, Images, Split, SplitRule, TEST_BINARIZE_SEED, TestSet,
    UNLABELLED,
};

use crate::bail;
use crate::error::Result;

/// Loads the dataset in `dir`: an IDX folder (see [`idx::load`]) or a folder of images (see
/// [`folder::load`]). Errors are one line naming the folder or file at fault.
pub fn load(dir: &Path, opts: &DataOptions) -> Result<Dataset> {
    check_dir(dir)?;
    check_options(opts)?;
    if idx::is_idx_folder(dir) {
        idx::load(dir, opts)
    } else {
        folder::load(dir, opts)
    }
}

/// Loads only the test split of `dir`, for commands that do not train: an IDX folder's t10k
/// files (see [`idx::load_test`]), or an image folder's test images (see
/// [`folder::load_test`]).
pub fn load_test(dir: &Path, opts: &DataOptions) -> Result<TestSet> {
    check_dir(dir)?;
    check_options(opts)?;
    if idx::is_idx_folder(dir) {
        idx::load_test(dir, opts)
    } else {
        folder::load_test(dir, opts)
    }
}

/// Starts reading a folder of images given as files in memory (see [`memory`]; the web page's
/// folder picker), its options checked as [`load`] checks them.
pub fn open_files(
    dir: &Path,
    files: Vec<memory::MemoryFile>,
    opts: &DataOptions,
) -> Result<memory::MemoryFolder> {
    check_options(opts)?;
    memory::MemoryFolder::new(dir, files, opts)
}

fn check_dir(dir: &Path) -> Result<()> {
    if !dir.is_dir() {
        if dir.exists() {
            bail!(
                "{}: not a directory, expected a dataset directory (IDX files or a folder of images)",
                dir.display()
            );
        }
        bail!("{}: no such dataset directory", dir.display());
    }
    Ok(())
}

fn check_options(opts: &DataOptions) -> Result<()> {
    if let Some(c) = opts.channels.filter(|c| ![1, 3].contains(c)) {
        bail!("channels {c}: images have 1 channel (grey) or 3 (RGB)");
    }
    if opts.size == Some(0) {
        bail!("size 0: images must be at least 1×1");
    }
    if !(1..=99).contains(&opts.test_percent) {
        bail!(
            "test percent {}: must be between 1 and 99",
            opts.test_percent
        );
    }
    Ok(())
}
