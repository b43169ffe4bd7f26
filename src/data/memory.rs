//! A folder of images given in memory, as the web page's folder picker hands it over: each
//! file's path relative to the folder and its bytes. The rules are [`super::folder`]'s, by the
//! same code (listing, labels, split, decoding, the default channels and size), so the files
//! give the same dataset, pixel for pixel, as `gpu-ae train --data` on the folder on disk. Two
//! differences: nothing is cached, and `train/` and `test/` split the images when files lie
//! below both (an empty folder is not handed over). Decoding goes in chunks
//! ([`MemoryFolder::decode_next`]) so that a page can show progress and stay responsive.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use image::ImageReader;

use super::decode::{Decoded, Prepared, decode, prepare};
use super::folder::{Layout, Source, common_size, parallel_map};
use super::listing::{Listing, list_paths, split_rule_of_paths};
use super::split::{DataOptions, Dataset};
use crate::bail;
use crate::error::{Error, Result};

/// One file of a folder given in memory.
pub struct MemoryFile {
    /// Relative to the folder, '/' separators (`animals/cat.png`).
    pub path: String,
    pub bytes: Vec<u8>,
}

/// The listed images' bytes, in listing order.
struct Files<'a> {
    dir: &'a Path,
    listing: &'a Listing,
    bytes: &'a [Vec<u8>],
}

impl Source for Files<'_> {
    fn path(&self, i: usize) -> PathBuf {
        self.dir.join(&self.listing.images[i])
    }
    fn decode(&self, i: usize) -> Result<Decoded> {
        decode_named(&self.path(i), &self.bytes[i])
    }
    fn dimensions(&self, i: usize) -> Result<(u32, u32)> {
        let error = |e: &dyn std::fmt::Display| {
            Error::msg(format!("{}: cannot decode: {e}", self.path(i).display()))
        };
        ImageReader::new(Cursor::new(&self.bytes[i]))
            .with_guessed_format()
            .map_err(|e| error(&e))?
            .into_dimensions()
            .map_err(|e| error(&e))
    }
}

/// `bytes` decoded, errors naming `path` (`<path>: cannot decode: …`).
fn decode_named(path: &Path, bytes: &[u8]) -> Result<Decoded> {
    decode(bytes).map_err(|e| Error::msg(format!("{}: cannot decode: {e}", path.display())))
}

/// One image of a folder given in memory decoded and prepared as [`MemoryFolder`] prepares it
/// (`dir` and `path` name it in errors): what a web worker does with an image of
/// [`MemoryFolder::to_decode`], for [`MemoryFolder::add_prepared`].
pub fn prepare_file(
    dir: &Path,
    path: &str,
    bytes: &[u8],
    channels: Option<u8>,
    size: usize,
) -> Result<Prepared> {
    Ok(prepare(
        &decode_named(&dir.join(path), bytes)?,
        channels,
        size,
    ))
}

/// A folder given in memory, listed and laid out, its images decoded chunk by chunk (here, or
/// elsewhere and handed in).
pub struct MemoryFolder {
    /// The folder's name, for messages and the dataset's record.
    dir: PathBuf,
    listing: Listing,
    /// The listed images' bytes, in listing order (freed once decoded).
    bytes: Vec<Vec<u8>>,
    layout: Layout,
    opts: DataOptions,
    /// The side every image is scaled to: the option, or the images' common size.
    size: usize,
    /// The [`Layout::picked`] images prepared so far, in that order.
    prepared: Vec<Prepared>,
}

impl MemoryFolder {
    /// Lists `files` (the folder named `dir`), lays out its splits and settles the size (from
    /// the images' headers when `opts` has none). Errors as [`super::folder::load`]'s.
    pub fn new(dir: &Path, files: Vec<MemoryFile>, opts: &DataOptions) -> Result<MemoryFolder> {
        let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
        let (listing, order) = list_paths(&paths)?;
        if listing.images.is_empty() {
            bail!(
                "{}: no images (.png, .jpg, .jpeg, .bmp, .gif or .webp files) among its {} files",
                dir.display(),
                files.len()
            );
        }
        let rule = split_rule_of_paths(&paths, opts.test_percent);
        let layout = Layout::new(&listing, rule);
        layout.check(dir, &listing, true)?;
        let mut files: Vec<Option<Vec<u8>>> = files.into_iter().map(|f| Some(f.bytes)).collect();
        let bytes: Vec<Vec<u8>> = order.iter().map(|&i| files[i].take().unwrap()).collect();
        let size = match opts.size {
            Some(s) => s,
            None => {
                let source = Files {
                    dir,
                    listing: &listing,
                    bytes: &bytes,
                };
                common_size(&source, dir, &layout.picked(true))?
            }
        };
        Ok(MemoryFolder {
            dir: dir.to_path_buf(),
            listing,
            bytes,
            layout,
            opts: *opts,
            size,
            prepared: Vec::new(),
        })
    }

    /// Images decoded so far, and to decode in all.
    pub fn progress(&self) -> (usize, usize) {
        (self.prepared.len(), self.layout.picked(true).len())
    }

    /// The side every image is scaled to, and the channels asked for (None: as the images).
    pub fn shape(&self) -> (usize, Option<u8>) {
        (self.size, self.opts.channels)
    }

    /// The relative paths of the images still to decode, in the order
    /// [`MemoryFolder::add_prepared`] takes them.
    pub fn to_decode(&self) -> Vec<&str> {
        let picked = self.layout.picked(true);
        picked[self.prepared.len()..]
            .iter()
            .map(|&(i, _)| self.listing.images[i].as_str())
            .collect()
    }

    /// The bytes of image `k` in decoding order (the order of [`MemoryFolder::to_decode`]
    /// before any image was decoded), to prepare elsewhere; None past the last or once it is
    /// decoded (its bytes are freed then).
    pub fn image_bytes(&self, k: usize) -> Option<&[u8]> {
        let &(i, _) = self.layout.picked(true).get(k)?;
        (k >= self.prepared.len()).then_some(self.bytes[i].as_slice())
    }

    /// The next image of [`MemoryFolder::to_decode`], prepared elsewhere by [`prepare_file`]
    /// with [`MemoryFolder::shape`]; refused when it does not have that shape.
    pub fn add_prepared(&mut self, prepared: Prepared) -> Result<()> {
        let picked = self.layout.picked(true);
        let Some(&(i, _)) = picked.get(self.prepared.len()) else {
            bail!("{}: every image is decoded already", self.dir.display());
        };
        let planes = if prepared.grey { 1 } else { 3 };
        let planes = match self.opts.channels {
            Some(c) => usize::from(c),
            None => planes,
        };
        if prepared.planes.len() != planes * self.size * self.size {
            bail!(
                "{}: prepared as {} values, not {planes}×{}×{}",
                self.path_of(i).display(),
                prepared.planes.len(),
                self.size,
                self.size
            );
        }
        self.bytes[i] = Vec::new();
        self.prepared.push(prepared);
        Ok(())
    }

    fn path_of(&self, i: usize) -> PathBuf {
        self.dir.join(&self.listing.images[i])
    }

    /// Decodes up to `count` more images (on every core natively, on the page's thread on the
    /// web); the first undecodable one is an error naming it.
    pub fn decode_next(&mut self, count: usize) -> Result<()> {
        let picked = self.layout.picked(true);
        let start = self.prepared.len();
        let end = start.saturating_add(count).min(picked.len());
        let source = Files {
            dir: &self.dir,
            listing: &self.listing,
            bytes: &self.bytes,
        };
        let (channels, size) = (self.opts.channels, self.size);
        let bar = indicatif::ProgressBar::hidden();
        let path_of = |k: usize| source.path(picked[start + k].0);
        let chunk = parallel_map(end - start, &bar, path_of, |k| {
            Ok(prepare(
                &source.decode(picked[start + k].0)?,
                channels,
                size,
            ))
        })?;
        for (k, _) in picked[start..end].iter().enumerate() {
            self.bytes[picked[start + k].0] = Vec::new();
        }
        self.prepared.extend(chunk);
        Ok(())
    }

    /// The dataset, once every image is decoded.
    pub fn finish(self) -> Dataset {
        let (done, total) = self.progress();
        assert_eq!(
            done, total,
            "MemoryFolder::finish before every image is decoded"
        );
        let cached = self
            .layout
            .assemble(&self.prepared, &self.opts, self.size, true);
        Dataset {
            dir: self.dir,
            train: cached.train,
            test: cached.test,
            classes: self.layout.classes,
            split_rule: self.layout.rule,
            ignored: self.listing.ignored,
            outside_split: self.layout.outside,
        }
    }
}

/// The folder named `dir` given as `files`, decoded at once: [`MemoryFolder`] start to end.
pub fn load_files(dir: &Path, files: Vec<MemoryFile>, opts: &DataOptions) -> Result<Dataset> {
    let mut folder = MemoryFolder::new(dir, files, opts)?;
    folder.decode_next(usize::MAX)?;
    Ok(folder.finish())
}
