//! A folder of images as a dataset: `gpu-ae train --data DIR` on anything from a few pictures to
//! an image collection sorted into class folders. The rules are those of the reference
//! (`../shared/reference/pytorch_images.py`: `list_images`, `load_image`, `load_folder`), so
//! both train on the same pixels:
//!
//! - **Listing** ([`super::listing`]): every file below DIR whose extension is png, jpg, jpeg, bmp,
//!   gif or webp (any case), recursively, following symbolic links (a link back to a folder
//!   above it is an error); hidden files and folders (name starting with '.') are skipped; other
//!   files, and anything that is not a regular file (a FIFO or a device named like an image), are
//!   ignored and counted. Paths are relative to DIR with '/' separators, sorted by
//!   their UTF-8 bytes (a name that is not UTF-8 is an error).
//! - **Labels**: the first-level subfolder's name (below train/ or test/ when those exist); the
//!   class names sorted, label i ↔ `classes[i]`. Files directly in DIR (or directly in train/ or
//!   test/) have no label: [`UNLABELLED`] (u32::MAX).
//! - **Split** ([`SplitRule`]): DIR/train and DIR/test when both are folders (images elsewhere
//!   are not used); otherwise an image is a test image when FNV-1a 64 of its relative path
//!   modulo 100 is below the test percentage, so adding files never moves the others.
//! - **Pixels** ([`super::decode`]): decoded with the `image` crate (format from the
//!   content); alpha (RGBA, grey+alpha, a palette with transparency) composited over white as
//!   Pillow's `alpha_composite` does; grey is Pillow's `convert("L")` luma; images that are not
//!   S×S are scaled so the shorter side is S (Pillow BOX when the shorter side is a multiple of
//!   S, else BILINEAR, both ported bit-exactly in [`super::pil`]) and centre-cropped. A PNG
//!   whose transparency is a key colour of a grey or RGB image keeps its pixels as they are
//!   (Pillow does not composite those either). Stored planar, `[channels, S, S]` per image.
//! - **Defaults**: channels 3 when any image holds a pixel that is not grey (R ≠ G or G ≠ B)
//!   after compositing, else 1; S the images' own size when they all share one square size,
//!   else an error naming two files and asking for a size.
//! - **Errors**: one line naming the file or folder: `<path>: cannot decode: …`, a folder with no
//!   images, an empty split. Nothing is returned from a partly decoded folder.
//! - **Work**: decoding runs on every core, with a progress bar on a terminal's stderr; the
//!   result is cached (see [`super::cache`]), so the next load of the same files with
//!   the same options reads one file instead (a file rewritten since is decoded again, even
//!   with its old modification time put back).
//!
//! Measured against Pillow 13.0 (`tests/io_images.rs`): every pixel equal for PNG (RGB, RGBA,
//! grey, grey+alpha, palette with and without transparency, key colours; 8 and 16 bits, the
//! latter read as Pillow reads them: grey clipped at 255, other kinds by their high bytes, see
//! [`super::pil::eight_bits`]), GIF, BMP and lossless
//! WebP, at any size, and for all 3786 images of `../shared/data/emoji-noto` at 64, 32 and 28,
//! grey and RGB. Known differences: JPEG and lossy WebP go through other decoders (zune-jpeg,
//! image-webp) than Pillow's libjpeg-turbo and libwebp, so their pixels can differ by a few
//! levels (measured on JPEG: up to 3 in RGB, 1 in grey); only the first frame of an animation is
//! read; Pillow 12 and older ran both resize passes horizontal first, so on images whose height
//! shrinks more than twice as much as their width they can differ from Pillow 13 (and from
//! this crate) by one level.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use image::ImageReader;

use super::cache::{self, Cached, Part};
use super::decode::{Decoded, Prepared, prepare, read_image};
use super::listing::{Listing, is_test_by_hash, list_images, split_rule};
use super::split::{DataOptions, Dataset, Images, Split, SplitRule, TestSet, UNLABELLED};
use crate::bail;
use crate::error::{Error, Result};

/// Which listed images go where, with which label.
pub(super) struct Layout {
    pub rule: SplitRule,
    pub classes: Vec<String>,
    /// (index into the listing, label), in listing order.
    train: Vec<(usize, u32)>,
    test: Vec<(usize, u32)>,
    pub outside: usize,
}

/// Where a folder's images come from: the files below a folder on disk, or the files of a
/// folder given in memory ([`super::memory`]). Indices are into the [`Listing`].
pub(super) trait Source: Sync {
    /// The image's path, for messages.
    fn path(&self, i: usize) -> PathBuf;
    /// The image decoded; errors name it (`<path>: cannot decode: …`).
    fn decode(&self, i: usize) -> Result<Decoded>;
    /// Its width and height from its header.
    fn dimensions(&self, i: usize) -> Result<(u32, u32)>;
}

/// The images of a folder on disk.
struct Disk<'a> {
    dir: &'a Path,
    listing: &'a Listing,
}

impl Source for Disk<'_> {
    fn path(&self, i: usize) -> PathBuf {
        self.dir.join(&self.listing.images[i])
    }
    fn decode(&self, i: usize) -> Result<Decoded> {
        read_image(&self.path(i))
    }
    fn dimensions(&self, i: usize) -> Result<(u32, u32)> {
        let path = self.path(i);
        let reader = ImageReader::open(&path)
            .and_then(|r| r.with_guessed_format())
            .map_err(|e| Error::io(&path, e))?;
        reader
            .into_dimensions()
            .map_err(|e| Error::msg(format!("{}: cannot decode: {e}", path.display())))
    }
}

impl Layout {
    pub(super) fn new(listing: &Listing, rule: SplitRule) -> Layout {
        let mut train = Vec::new();
        let mut test = Vec::new();
        let mut outside = 0;
        // (listing index, test?, class name)
        let mut placed: Vec<(usize, bool, Option<&str>)> = Vec::new();
        for (i, rel) in listing.images.iter().enumerate() {
            let mut parts: Vec<&str> = rel.split('/').collect();
            let is_test = match rule {
                SplitRule::Folders => match parts[0] {
                    "train" if parts.len() > 1 => false,
                    "test" if parts.len() > 1 => true,
                    _ => {
                        outside += 1;
                        continue;
                    }
                },
                SplitRule::Hash { test_percent } => is_test_by_hash(rel, test_percent),
                SplitRule::IdxFiles => unreachable!("image folders have no IDX files"),
            };
            if rule == SplitRule::Folders {
                parts.remove(0);
            }
            let class = (parts.len() > 1).then_some(parts[0]);
            placed.push((i, is_test, class));
        }
        let mut classes: Vec<String> = placed
            .iter()
            .filter_map(|p| p.2.map(str::to_owned))
            .collect();
        classes.sort_unstable();
        classes.dedup();
        for (i, is_test, class) in placed {
            let label = class.map_or(UNLABELLED, |c| {
                classes.binary_search_by(|x| x.as_str().cmp(c)).unwrap() as u32
            });
            if is_test {
                test.push((i, label));
            } else {
                train.push((i, label));
            }
        }
        Layout {
            rule,
            classes,
            train,
            test,
            outside,
        }
    }

    /// A one-line error when a split the caller needs is empty.
    pub(super) fn check(&self, dir: &Path, listing: &Listing, need_train: bool) -> Result<()> {
        let n = listing.images.len();
        let empty = match (self.train.is_empty() && need_train, self.test.is_empty()) {
            (true, _) => "training",
            (_, true) => "test",
            _ => return Ok(()),
        };
        match self.rule {
            SplitRule::Folders => bail!(
                "{}: no images below {}/ (the folder holds train/ and test/, which split the images)",
                dir.display(),
                if empty == "training" { "train" } else { "test" }
            ),
            SplitRule::Hash { test_percent } => bail!(
                "{}: no {empty} images: of the {n} images, {} have fnv1a64(path) % 100 < {test_percent} (the test split); add images or change the test percentage",
                dir.display(),
                self.test.len()
            ),
            SplitRule::IdxFiles => unreachable!("image folders have no IDX files"),
        }
    }
}

/// Loads the image folder `dir` (see the module doc): both splits, from the cache when the same
/// files were decoded with the same options before.
pub fn load(dir: &Path, opts: &DataOptions) -> Result<Dataset> {
    let (listing, layout) = survey(dir, opts, true)?;
    let cached = load_all(dir, opts, &listing, &layout)?;
    Ok(Dataset {
        dir: dir.to_path_buf(),
        train: cached.train,
        test: cached.test,
        classes: layout.classes,
        split_rule: layout.rule,
        ignored: listing.ignored,
        outside_split: layout.outside,
    })
}

/// Every image of a surveyed folder, from the cache or decoded (and cached).
fn load_all(dir: &Path, opts: &DataOptions, listing: &Listing, layout: &Layout) -> Result<Cached> {
    let stats = stat_all(dir, listing)?;
    let entry = cache::Entry::new(dir, opts, Part::All, layout.rule, listing, &stats);
    Ok(match entry.as_ref().and_then(|e| e.read(&layout.classes)) {
        Some(c) if fits(&c, layout, opts) => c,
        _ => {
            let c = decode_layout(&Disk { dir, listing }, dir, layout, opts, true)?;
            if let Some(e) = &entry {
                e.write(&c);
            }
            c
        }
    })
}

/// Loads only the test split of the image folder `dir`. A cached full load with the same
/// options serves it; otherwise, when `channels` and `size` are both given, only the test
/// images are decoded (and cached on their own); otherwise the defaults depend on every image,
/// so the whole folder is loaded as by [`load`].
pub fn load_test(dir: &Path, opts: &DataOptions) -> Result<TestSet> {
    let (listing, layout) = survey(dir, opts, false)?;
    let stats = stat_all(dir, &listing)?;
    let full = cache::Entry::new(dir, opts, Part::All, layout.rule, &listing, &stats);
    let hit = full
        .as_ref()
        .and_then(|e| e.read(&layout.classes))
        .filter(|c| fits(c, &layout, opts));
    let cached = if let Some(c) = hit {
        c
    } else if opts.channels.is_some() && opts.size.is_some() {
        let entry = cache::Entry::new(dir, opts, Part::Test, layout.rule, &listing, &stats);
        match entry.as_ref().and_then(|e| e.read(&layout.classes)) {
            Some(c) if c.test.labels.len() == layout.test.len() => c,
            _ => {
                let source = Disk {
                    dir,
                    listing: &listing,
                };
                let c = decode_layout(&source, dir, &layout, opts, false)?;
                if let Some(e) = &entry {
                    e.write(&c);
                }
                c
            }
        }
    } else {
        layout.check(dir, &listing, true)?;
        load_all(dir, opts, &listing, &layout)?
    };
    Ok(TestSet {
        dir: dir.to_path_buf(),
        test: cached.test,
        converted: cached.converted[1],
        classes: layout.classes,
        split_rule: layout.rule,
        ignored: listing.ignored,
        outside_split: layout.outside,
    })
}

/// The cache file that holds (or will hold) `part` of the decoded folder `dir` loaded with
/// `opts` (both splits by [`load`], the test split alone by [`load_test`]), or None when there
/// is no cache folder. Lists the folder to compute the key.
pub fn cache_file(dir: &Path, opts: &DataOptions, part: Part) -> Result<Option<PathBuf>> {
    let listing = list_images(dir)?;
    let rule = split_rule(dir, opts.test_percent);
    let stats = stat_all(dir, &listing)?;
    Ok(cache::Entry::new(dir, opts, part, rule, &listing, &stats).map(|e| e.path))
}

/// Lists `dir` and lays out its splits; errors when there is nothing to load.
fn survey(dir: &Path, opts: &DataOptions, need_train: bool) -> Result<(Listing, Layout)> {
    let listing = list_images(dir)?;
    if listing.images.is_empty() {
        let others = match listing.ignored {
            0 => String::new(),
            1 => "; 1 other file ignored".into(),
            n => format!("; {n} other files ignored"),
        };
        bail!(
            "{}: no images (.png, .jpg, .jpeg, .bmp, .gif or .webp files) in this folder or below it, and no IDX files{others}",
            dir.display()
        );
    }
    let layout = Layout::new(&listing, split_rule(dir, opts.test_percent));
    layout.check(dir, &listing, need_train)?;
    Ok((listing, layout))
}

/// Whether a cache entry agrees with what the listing says it must hold.
fn fits(c: &Cached, layout: &Layout, opts: &DataOptions) -> bool {
    let im = &c.test.images;
    c.train.labels.len() == layout.train.len()
        && c.test.labels.len() == layout.test.len()
        && opts
            .channels
            .is_none_or(|ch| usize::from(ch) == im.channels)
        && opts.size.is_none_or(|s| (s, s) == (im.rows, im.cols))
}

/// The [`cache::FileStamp`] of every listed image (links followed), for the cache key.
fn stat_all(dir: &Path, listing: &Listing) -> Result<Vec<cache::FileStamp>> {
    listing
        .images
        .iter()
        .map(|rel| {
            let path = dir.join(rel);
            let meta = std::fs::metadata(&path).map_err(|e| Error::io(&path, e))?;
            Ok(cache::FileStamp::of(&meta))
        })
        .collect()
}

/// Decodes the images of the layout's splits (the test split only when `train` is false) on
/// every core and resolves the default channels and size (`dir` names the folder).
pub(super) fn decode_layout(
    source: &impl Source,
    dir: &Path,
    layout: &Layout,
    opts: &DataOptions,
    train: bool,
) -> Result<Cached> {
    let picked = layout.picked(train);
    let size = match opts.size {
        Some(s) => s,
        None => common_size(source, dir, &picked)?,
    };
    let bar = crate::console::progress_bar("decoding images", picked.len());
    let path_of = |k: usize| source.path(picked[k].0);
    let prepared = parallel_map(picked.len(), &bar, path_of, |k| {
        Ok(prepare(&source.decode(picked[k].0)?, opts.channels, size))
    });
    bar.finish_and_clear();
    Ok(layout.assemble(&prepared?, opts, size, train))
}

impl Layout {
    /// The images to decode, `(listing index, label)`: the training split then the test split,
    /// or the test split alone.
    pub(super) fn picked(&self, train: bool) -> Vec<(usize, u32)> {
        if train {
            self.train.iter().chain(&self.test).copied().collect()
        } else {
            self.test.clone()
        }
    }

    /// The splits from the [`Layout::picked`] images prepared at `size`, in that order, with
    /// the default channels resolved.
    pub(super) fn assemble(
        &self,
        prepared: &[Prepared],
        opts: &DataOptions,
        size: usize,
        train: bool,
    ) -> Cached {
        let picked = self.picked(train);
        debug_assert_eq!(prepared.len(), picked.len());
        let channels = match opts.channels {
            Some(c) => usize::from(c),
            None if prepared.iter().all(|p| p.grey) => 1,
            None => 3,
        };
        let n_train = if train { self.train.len() } else { 0 };
        let splits = [(0..n_train), (n_train..picked.len())].map(|range| {
            let count = range.len();
            let mut pixels = Vec::with_capacity(count * channels * size * size);
            let mut labels = Vec::with_capacity(count);
            for k in range {
                labels.push(picked[k].1);
                let p = &prepared[k];
                if channels == 3 && p.planes.len() == size * size {
                    for _ in 0..3 {
                        pixels.extend_from_slice(&p.planes);
                    }
                } else {
                    pixels.extend_from_slice(&p.planes);
                }
            }
            Split {
                images: Images {
                    count,
                    channels,
                    rows: size,
                    cols: size,
                    pixels,
                },
                labels,
            }
        });
        let [train_split, test_split] = splits;
        let converted =
            |range: std::ops::Range<usize>| prepared[range].iter().filter(|p| p.converted).count();
        Cached {
            classes: self.classes.clone(),
            train: train_split,
            test: test_split,
            converted: [converted(0..n_train), converted(n_train..picked.len())],
        }
    }
}

/// The one square size of the picked images, from their headers; otherwise an error naming
/// two files of different sizes (or a file that is not square) and asking for a size.
pub(super) fn common_size(
    source: &impl Source,
    dir: &Path,
    picked: &[(usize, u32)],
) -> Result<usize> {
    let path_of = |k: usize| source.path(picked[k].0);
    let dims = parallel_map(
        picked.len(),
        &indicatif::ProgressBar::hidden(),
        path_of,
        |k| source.dimensions(picked[k].0),
    )?;
    // Name files in listing order, whatever the split order.
    let mut order: Vec<usize> = (0..picked.len()).collect();
    order.sort_unstable_by_key(|&k| picked[k].0);
    let name = |k: usize| {
        let path = source.path(picked[k].0);
        path.strip_prefix(dir)
            .unwrap_or(&path)
            .display()
            .to_string()
    };
    let Some(&first) = order.first() else {
        bail!("{}: no images to size", dir.display());
    };
    let (w, h) = dims[first];
    if let Some(&k) = order.iter().find(|&&k| dims[k] != (w, h)) {
        let (w2, h2) = dims[k];
        bail!(
            "{}: images differ in size ({} is {w}×{h}, {} is {w2}×{h2}); pass a size to scale and centre-crop every image to one square size",
            dir.display(),
            name(first),
            name(k)
        );
    }
    if w != h {
        bail!(
            "{}: images are {w}×{h}, not square (e.g. {}); pass a size to scale and centre-crop every image to one square size",
            dir.display(),
            name(first)
        );
    }
    Ok(w as usize)
}

/// `f(0..n)` on every core, in order. The first error (lowest index among those reached) is
/// returned; workers stop taking new items once one fails. A panic in `f` is an error naming
/// `path_of(i)`.
pub(super) fn parallel_map<T: Send>(
    n: usize,
    bar: &indicatif::ProgressBar,
    path_of: impl Fn(usize) -> PathBuf + Sync,
    f: impl Fn(usize) -> Result<T> + Sync,
) -> Result<Vec<T>> {
    let threads = crate::platform::workers().min(n).max(1);
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let results: Mutex<Vec<(usize, Result<T>)>> = Mutex::new(Vec::with_capacity(n));
    crate::platform::on_workers(threads, || {
        let mut mine = Vec::new();
        while !failed.load(Ordering::Relaxed) {
            let i = next.fetch_add(1, Ordering::Relaxed);
            if i >= n {
                break;
            }
            let r = catch_unwind(AssertUnwindSafe(|| f(i))).unwrap_or_else(|_| {
                Err(Error::msg(format!(
                    "{}: cannot decode: the decoder crashed",
                    path_of(i).display()
                )))
            });
            if r.is_err() {
                failed.store(true, Ordering::Relaxed);
            }
            mine.push((i, r));
            bar.inc(1);
        }
        results.lock().unwrap().extend(mine);
    });
    let mut results = results.into_inner().unwrap();
    results.sort_unstable_by_key(|r| r.0);
    if let Some(pos) = results.iter().position(|r| r.1.is_err()) {
        return Err(results.swap_remove(pos).1.err().unwrap());
    }
    Ok(results.into_iter().map(|r| r.1.ok().unwrap()).collect())
}
