//! A folder of images as a dataset: `gpu-ae train --data DIR` on anything from a few pictures to
//! an image collection sorted into class folders. The rules are those of the reference
//! (`../shared/reference/pytorch_images.py`: `list_images`, `load_image`, `load_folder`), so
//! both train on the same pixels:
//!
//! - **Listing** ([`list_images`]): every file below DIR whose extension is png, jpg, jpeg, bmp,
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
//! - **Pixels** ([`decode`], [`prepare`]): decoded with the `image` crate (format from the
//!   content); alpha (RGBA, grey+alpha, a palette with transparency) composited over white as
//!   Pillow's `alpha_composite` does; grey is Pillow's `convert("L")` luma; images that are not
//!   S×S are scaled so the shorter side is S (Pillow BOX when the shorter side is a multiple of
//!   S, else BILINEAR, both ported bit-exactly in [`crate::pil`]) and centre-cropped. A PNG
//!   whose transparency is a key colour of a grey or RGB image keeps its pixels as they are
//!   (Pillow does not composite those either). Stored planar, `[channels, S, S]` per image.
//! - **Defaults**: channels 3 when any image holds a pixel that is not grey (R ≠ G or G ≠ B)
//!   after compositing, else 1; S the images' own size when they all share one square size,
//!   else an error naming two files and asking for a size.
//! - **Errors**: one line naming the file or folder: `<path>: cannot decode: …`, a folder with no
//!   images, an empty split. Nothing is returned from a partly decoded folder.
//! - **Work**: decoding runs on every core, with a progress bar on a terminal's stderr; the
//!   result is cached (see [`crate::dataset_cache`]), so the next load of the same files with
//!   the same options reads one file instead (a file rewritten since is decoded again, even
//!   with its old modification time put back).
//!
//! Measured against Pillow 13.0 (`tests/io_images.rs`): every pixel equal for PNG (RGB, RGBA,
//! grey, grey+alpha, palette with and without transparency, key colours; 8 and 16 bits, the
//! latter read as Pillow reads them: grey clipped at 255, other kinds by their high bytes, see
//! [`pil::eight_bits`]), GIF, BMP and lossless
//! WebP, at any size, and for all 3786 images of `../shared/data/emoji-noto` at 64, 32 and 28,
//! grey and RGB. Known differences: JPEG and lossy WebP go through other decoders (zune-jpeg,
//! image-webp) than Pillow's libjpeg-turbo and libwebp, so their pixels can differ by a few
//! levels (measured on JPEG: up to 3 in RGB, 1 in grey); only the first frame of an animation is
//! read; Pillow 12 and older ran both resize passes horizontal first, so on images whose height
//! shrinks more than twice as much as their width they can differ from Pillow 13 (and from
//! this crate) by one level.

use std::io::Cursor;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use image::{DynamicImage, ImageReader};

use crate::bail;
use crate::data::{DataOptions, Dataset, Images, Split, SplitRule, TestSet, UNLABELLED};
use crate::dataset_cache::{self, Cached, Part};
use crate::error::{Error, Result};
use crate::fingerprint::Fnv1a64;
use crate::pil;

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

/// Which listed images go where, with which label.
struct Layout {
    rule: SplitRule,
    classes: Vec<String>,
    /// (index into the listing, label), in listing order.
    train: Vec<(usize, u32)>,
    test: Vec<(usize, u32)>,
    outside: usize,
}

impl Layout {
    fn new(listing: &Listing, rule: SplitRule) -> Layout {
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
    fn check(&self, dir: &Path, listing: &Listing, need_train: bool) -> Result<()> {
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
    let entry = dataset_cache::Entry::new(dir, opts, Part::All, layout.rule, listing, &stats);
    Ok(match entry.as_ref().and_then(|e| e.read(&layout.classes)) {
        Some(c) if fits(&c, layout, opts) => c,
        _ => {
            let c = decode_layout(dir, listing, layout, opts, true)?;
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
    let full = dataset_cache::Entry::new(dir, opts, Part::All, layout.rule, &listing, &stats);
    let hit = full
        .as_ref()
        .and_then(|e| e.read(&layout.classes))
        .filter(|c| fits(c, &layout, opts));
    let cached = if let Some(c) = hit {
        c
    } else if opts.channels.is_some() && opts.size.is_some() {
        let entry = dataset_cache::Entry::new(dir, opts, Part::Test, layout.rule, &listing, &stats);
        match entry.as_ref().and_then(|e| e.read(&layout.classes)) {
            Some(c) if c.test.labels.len() == layout.test.len() => c,
            _ => {
                let c = decode_layout(dir, &listing, &layout, opts, false)?;
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
    Ok(dataset_cache::Entry::new(dir, opts, part, rule, &listing, &stats).map(|e| e.path))
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

/// The [`dataset_cache::FileStamp`] of every listed image (links followed), for the cache key.
fn stat_all(dir: &Path, listing: &Listing) -> Result<Vec<dataset_cache::FileStamp>> {
    listing
        .images
        .iter()
        .map(|rel| {
            let path = dir.join(rel);
            let meta = std::fs::metadata(&path).map_err(|e| Error::io(&path, e))?;
            Ok(dataset_cache::FileStamp::of(&meta))
        })
        .collect()
}

/// An image decoded and composited over white, interleaved `[height, width, 3]` RGB.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    pub width: usize,
    pub height: usize,
    /// `[height, width, 3]`
    pub rgb: Vec<u8>,
}

impl Decoded {
    /// Whether every pixel is grey (R = G = B).
    pub fn is_grey(&self) -> bool {
        self.rgb
            .chunks_exact(3)
            .all(|p| p[0] == p[1] && p[1] == p[2])
    }
}

/// Decodes an image file's bytes (format from the content) to RGB with any alpha composited
/// over white as the reference does. The error is the decoder's message.
pub fn decode(bytes: &[u8]) -> std::result::Result<Decoded, String> {
    let image = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| e.to_string())?
        .decode()
        .map_err(|e| e.to_string())?;
    let (width, height) = (image.width() as usize, image.height() as usize);
    let image = to_eight_bits(image, bytes);
    let rgb = if image.color().has_alpha() && !png_key_colour(bytes) {
        pil::composite_over_white(&to_rgba8(image))
    } else {
        to_rgb8(image)
    };
    Ok(Decoded { width, height, rgb })
}

/// The image file at `path`, read (a regular file only) and [`decode`]d; errors name it
/// (`<path>: cannot decode: …`).
pub fn read_image(path: &Path) -> Result<Decoded> {
    let bytes = crate::files::read(path, "an image file")?;
    decode(&bytes).map_err(|e| Error::msg(format!("{}: cannot decode: {e}", path.display())))
}

/// Whether `bytes` is a grey or RGB PNG (colour type 0 or 2), whose only transparency can be a
/// tRNS key colour: the decoder turns it into alpha, but Pillow leaves such an image opaque.
fn png_key_colour(bytes: &[u8]) -> bool {
    matches!(png_colour_type(bytes), Some(0 | 2))
}

/// The colour type in a PNG's header (0 grey, 2 RGB, 3 palette, 4 grey+alpha, 6 RGBA); None
/// for other formats.
fn png_colour_type(bytes: &[u8]) -> Option<u8> {
    (bytes.len() > 25 && bytes.starts_with(b"\x89PNG\r\n\x1a\n") && &bytes[12..16] == b"IHDR")
        .then(|| bytes[25])
}

/// A 16-bit image (only PNG has them among [`EXTENSIONS`]) made 8-bit as Pillow reads it
/// ([`pil::eight_bits`]: a grey PNG clipped at 255, key colour or not; any other by the high
/// bytes); 8-bit images as they are.
fn to_eight_bits(image: DynamicImage, bytes: &[u8]) -> DynamicImage {
    let grey = png_colour_type(bytes) == Some(0);
    let (w, h) = (image.width(), image.height());
    let eight = |samples: &[u16]| pil::eight_bits(samples, grey);
    let whole = "as many samples as the image had";
    match image {
        DynamicImage::ImageLuma16(im) => {
            DynamicImage::ImageLuma8(image::ImageBuffer::from_raw(w, h, eight(&im)).expect(whole))
        }
        DynamicImage::ImageLumaA16(im) => {
            DynamicImage::ImageLumaA8(image::ImageBuffer::from_raw(w, h, eight(&im)).expect(whole))
        }
        DynamicImage::ImageRgb16(im) => {
            DynamicImage::ImageRgb8(image::ImageBuffer::from_raw(w, h, eight(&im)).expect(whole))
        }
        DynamicImage::ImageRgba16(im) => {
            DynamicImage::ImageRgba8(image::ImageBuffer::from_raw(w, h, eight(&im)).expect(whole))
        }
        other => other,
    }
}

/// 8-bit RGBA (`[h, w, 4]`); 8-bit images convert exactly (grey+alpha → (l, l, l, a)).
fn to_rgba8(image: DynamicImage) -> Vec<u8> {
    match image {
        DynamicImage::ImageRgba8(im) => im.into_raw(),
        other => other.to_rgba8().into_raw(),
    }
}

/// 8-bit RGB (`[h, w, 3]`), alpha dropped; grey → (l, l, l).
fn to_rgb8(image: DynamicImage) -> Vec<u8> {
    match image {
        DynamicImage::ImageRgb8(im) => im.into_raw(),
        other => other.to_rgb8().into_raw(),
    }
}

/// An image ready for the dataset, planar `[planes, size, size]`: one plane when the image is
/// grey (or grey was asked for), three otherwise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    /// `[planes, size, size]`, planes 1 or 3.
    pub planes: Vec<u8>,
    /// Whether the image was grey after compositing (the one plane stands for R = G = B).
    pub grey: bool,
    /// Whether it was scaled (another size) or made grey (a colour image, one plane asked for).
    pub converted: bool,
}

/// The reference's `load_image` from a decoded image: grey (`channels` 1, Pillow's luma) or
/// RGB, scaled and centre-cropped to `size`×`size` (see [`pil::scale_and_crop`]). With
/// `channels` None a grey image gives one plane (equal to the three it would give as RGB) and a
/// colour image three.
pub fn prepare(d: &Decoded, channels: Option<u8>, size: usize) -> Prepared {
    let grey = d.is_grey();
    let one_plane = channels == Some(1) || (channels.is_none() && grey);
    let (src, c) = if one_plane {
        // For a grey image luma(v, v, v) = v: the same plane as R.
        (pil::luma(&d.rgb), 1)
    } else {
        (d.rgb.clone(), 3)
    };
    let hwc = pil::scale_and_crop(&src, c, (d.width, d.height), size);
    let n = size * size;
    let mut planes = vec![0u8; c * n];
    for (i, px) in hwc.chunks_exact(c).enumerate() {
        for (ch, &v) in px.iter().enumerate() {
            planes[ch * n + i] = v;
        }
    }
    let converted = (d.width, d.height) != (size, size) || (one_plane && !grey);
    Prepared {
        planes,
        grey,
        converted,
    }
}

/// The reference's whole pipeline on one file's bytes: [`decode`] then [`prepare`]:
/// `[channels, size, size]`, channels 1 or 3.
pub fn load_image(bytes: &[u8], channels: u8, size: usize) -> std::result::Result<Vec<u8>, String> {
    Ok(prepare(&decode(bytes)?, Some(channels), size).planes)
}

/// Decodes the images of the layout's splits (the test split only when `train` is false) on
/// every core and resolves the default channels and size.
fn decode_layout(
    dir: &Path,
    listing: &Listing,
    layout: &Layout,
    opts: &DataOptions,
    train: bool,
) -> Result<Cached> {
    let picked: Vec<(usize, u32)> = if train {
        layout.train.iter().chain(&layout.test).copied().collect()
    } else {
        layout.test.clone()
    };
    let path_of = |k: usize| dir.join(&listing.images[picked[k].0]);
    let size = match opts.size {
        Some(s) => s,
        None => common_size(dir, listing, &picked)?,
    };
    let bar = crate::console::progress_bar("decoding images", picked.len());
    let prepared = parallel_map(picked.len(), &bar, path_of, |k| {
        Ok(prepare(&read_image(&path_of(k))?, opts.channels, size))
    });
    bar.finish_and_clear();
    let prepared = prepared?;
    let channels = match opts.channels {
        Some(c) => usize::from(c),
        None if prepared.iter().all(|p| p.grey) => 1,
        None => 3,
    };
    let n_train = if train { layout.train.len() } else { 0 };
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
    Ok(Cached {
        classes: layout.classes.clone(),
        train: train_split,
        test: test_split,
        converted: [converted(0..n_train), converted(n_train..picked.len())],
    })
}

/// The one square size of the picked images, from their headers; otherwise an error naming
/// two files of different sizes (or a file that is not square) and asking for a size.
fn common_size(dir: &Path, listing: &Listing, picked: &[(usize, u32)]) -> Result<usize> {
    let path_of = |k: usize| dir.join(&listing.images[picked[k].0]);
    let dims = parallel_map(
        picked.len(),
        &indicatif::ProgressBar::hidden(),
        path_of,
        |k| {
            let path = dir.join(&listing.images[picked[k].0]);
            let reader = ImageReader::open(&path)
                .and_then(|r| r.with_guessed_format())
                .map_err(|e| Error::io(&path, e))?;
            reader
                .into_dimensions()
                .map_err(|e| Error::msg(format!("{}: cannot decode: {e}", path.display())))
        },
    )?;
    // Name files in listing order, whatever the split order.
    let mut order: Vec<usize> = (0..picked.len()).collect();
    order.sort_unstable_by_key(|&k| picked[k].0);
    let name = |k: usize| &listing.images[picked[k].0];
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
fn parallel_map<T: Send>(
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
