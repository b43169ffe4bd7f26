//! Datasets: the types every command trains and evaluates on, and the one entry point [`load`]
//! (and [`load_test`]) that reads a dataset folder of either kind:
//!
//! - an IDX folder (MNIST, Fashion-MNIST and friends): train-images-idx3-ubyte,
//!   train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte, raw or
//!   gzip-compressed (detected by the gzip magic bytes 1f 8b, not by extension). Every header is
//!   checked against the real amount of data before anything is allocated for it (sizes computed
//!   exactly, whatever the header says), and every problem is a one-line error naming the file.
//! - a folder of images (png, jpg, jpeg, bmp, gif, webp), read by [`crate::image_folder`]:
//!   labels from subfolder names, a stable train/test split, pixels decoded as Pillow would,
//!   and a cache of the decoded pixels so that the next load does not decode again.
//!
//! A folder is an IDX folder when it holds any of the four IDX files (with or without .gz);
//! otherwise it is read as a folder of images.

use std::io::{BufReader, ErrorKind, Read};
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;

use crate::bail;
use crate::error::{Error, Result};
use crate::files;
use crate::host_rng::SplitMix64;
use crate::image_folder;

/// IDX magic of an unsigned-byte 3-D array (images).
const IMAGES_MAGIC: u32 = 0x0000_0803;
/// IDX magic of an unsigned-byte 1-D array (labels).
const LABELS_MAGIC: u32 = 0x0000_0801;
/// Deflate cannot expand data by more than about 1032:1, so a gzip file of `n` bytes decodes to
/// at most `n * 1032` bytes; used to bound allocation ahead of decoding.
const MAX_DEFLATE_RATIO: u64 = 1032;
/// The four files of an IDX folder, each optionally with .gz.
const IDX_FILES: [&str; 4] = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
];

/// The label of an image without one: a file directly in an image folder (or directly in its
/// train/ or test/ subfolder). Such images train like any other; plots draw them in black.
pub const UNLABELLED: u32 = u32::MAX;

/// Whether a run trains on binarised pixels (the likelihood benchmark's binarised MNIST).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Binarize {
    /// The pixels as they are, in [0, 1].
    None,
    /// Each training image resampled from Bernoulli(pixel) every time it is drawn; the test
    /// images binarised once, by a fixed seed ([`TEST_BINARIZE_SEED`]), for evaluation.
    Dynamic,
}

/// The seed of the fixed binarisation of the test images that models trained with
/// `--binarize dynamic` are evaluated on (recorded in their checkpoints), the same for every
/// run so that their figures compare.
pub const TEST_BINARIZE_SEED: u32 = 0;

/// A stack of images, `[count, channels, rows, cols]`, one byte per value (0 = black). IDX
/// images have 1 channel (grey); image folders give 1 (grey) or 3 (RGB, planar).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Images {
    pub count: usize,
    pub channels: usize,
    pub rows: usize,
    pub cols: usize,
    /// `[count, channels, rows, cols]`
    pub pixels: Vec<u8>,
}

impl Images {
    /// Pixels of image `i`, `[channels, rows, cols]`. Panics if `i >= count` (a caller bug, not
    /// bad input).
    pub fn image(&self, i: usize) -> &[u8] {
        let n = self.pixels_per_image();
        &self.pixels[i * n..(i + 1) * n]
    }

    /// Bytes of one image: channels · rows · cols.
    pub fn pixels_per_image(&self) -> usize {
        self.channels * self.rows * self.cols
    }
}

/// Images with one label per image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    pub images: Images,
    /// `[count]` class indices: IDX label bytes as they are; for image folders an index into
    /// [`Dataset::classes`], or [`UNLABELLED`].
    pub labels: Vec<u32>,
}

impl Split {
    /// The first `count` images (all when there are fewer).
    pub fn first(mut self, count: usize) -> Split {
        let count = count.min(self.images.count);
        let per = self.images.pixels_per_image();
        self.images.count = count;
        self.images.pixels.truncate(count * per);
        self.labels.truncate(count);
        self
    }

    /// A seeded uniformly random `count` of the images (all when there are fewer), kept in
    /// their order here: the first `count` of a [`SplitMix64`] permutation of the indices, sorted.
    /// The same (split, count, seed) gives the same images on every machine.
    pub fn random_subset(self, count: usize, seed: u64) -> Split {
        if count >= self.images.count {
            return self;
        }
        let mut chosen =
            SplitMix64::derived(seed, SUBSET_PURPOSE, 0).permutation(self.images.count);
        chosen.truncate(count);
        chosen.sort_unstable();
        let per = self.images.pixels_per_image();
        let pixels = chosen
            .iter()
            .flat_map(|&i| &self.images.pixels[i as usize * per..(i as usize + 1) * per])
            .copied()
            .collect();
        let labels = chosen.iter().map(|&i| self.labels[i as usize]).collect();
        Split {
            images: Images {
                count,
                pixels,
                ..self.images
            },
            labels,
        }
    }
}

/// The [`SplitMix64::derived`] purpose of [`Split::random_subset`]'s draw.
const SUBSET_PURPOSE: u64 = 0x5355_4253_4554; // "SUBSET"

/// How a dataset's images were divided into train and test, recorded so that a run can say
/// which images it trained on (see [`SplitRule::name`] and [`SplitRule::parse`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SplitRule {
    /// IDX files: train-*-ubyte train, t10k-*-ubyte test.
    IdxFiles,
    /// An image folder with `train/` and `test/` subfolders: the images below each (images
    /// beside them are not used, see [`Dataset::outside_split`]).
    Folders,
    /// An image folder without them: an image is a test image when FNV-1a 64 of its relative
    /// path (UTF-8, '/' separators) modulo 100 is below `test_percent`. Adding files does not
    /// move the others.
    Hash { test_percent: u32 },
}

impl SplitRule {
    /// A stable name for metadata: `idx-files`, `folders`, or `fnv1a64-path-percent:N`.
    pub fn name(&self) -> String {
        match self {
            SplitRule::IdxFiles => "idx-files".into(),
            SplitRule::Folders => "folders".into(),
            SplitRule::Hash { test_percent } => format!("fnv1a64-path-percent:{test_percent}"),
        }
    }

    /// The rule [`SplitRule::name`] wrote, or None.
    pub fn parse(name: &str) -> Option<SplitRule> {
        match name {
            "idx-files" => Some(SplitRule::IdxFiles),
            "folders" => Some(SplitRule::Folders),
            _ => {
                let p = name.strip_prefix("fnv1a64-path-percent:")?;
                let test_percent = p.parse().ok().filter(|v: &u32| v.to_string() == p)?;
                Some(SplitRule::Hash { test_percent })
            }
        }
    }
}

impl std::fmt::Display for SplitRule {
    /// For people: "the IDX train and t10k files", "the train/ and test/ folders",
    /// "fnv1a64(path) % 100 < 10".
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SplitRule::IdxFiles => f.write_str("the IDX train and t10k files"),
            SplitRule::Folders => f.write_str("the train/ and test/ folders"),
            SplitRule::Hash { test_percent } => {
                write!(f, "fnv1a64(path) % 100 < {test_percent}")
            }
        }
    }
}

/// What to make of an image folder. IDX folders ignore these, except that a `channels` or
/// `size` that disagrees with the IDX images is an error (IDX images are 1 channel and are
/// never rescaled).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DataOptions {
    /// 1 (grey, Pillow's luma) or 3 (RGB). None: 3 when any image holds a pixel that is not
    /// grey (R ≠ G or G ≠ B) after its alpha is composited over white, else 1.
    pub channels: Option<u8>,
    /// Images become `size`×`size`: scaled so the shorter side is `size`, then centre-cropped.
    /// None: the images' own size, which must then be one square size for all of them.
    pub size: Option<usize>,
    /// With no train/ and test/ subfolders, about this percentage of the images is the test
    /// split (1..=99; default 10). See [`SplitRule::Hash`].
    pub test_percent: u32,
}

impl Default for DataOptions {
    fn default() -> Self {
        DataOptions {
            channels: None,
            size: None,
            test_percent: 10,
        }
    }
}

impl DataOptions {
    /// How a trained model reads a folder: its images converted to the model's shape, split
    /// by the rule its run recorded.
    pub fn for_model(image: crate::models::ImageShape, split: &SplitRule) -> DataOptions {
        DataOptions {
            channels: Some(image.channels as u8),
            size: Some(image.size),
            test_percent: match split {
                SplitRule::Hash { test_percent } => *test_percent,
                _ => DataOptions::default().test_percent,
            },
        }
    }
}

/// The train and test splits found in `dir`; all images share one shape `[channels, rows,
/// cols]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dataset {
    pub dir: PathBuf,
    pub train: Split,
    pub test: Split,
    /// Class names, sorted: label `i` is `classes[i]`. An image folder's first-level subfolder
    /// names (below train/ and test/ when those exist); empty for IDX (labels are the bytes).
    pub classes: Vec<String>,
    /// How train and test were told apart.
    pub split_rule: SplitRule,
    /// Files below an image folder that are not images (other extensions; hidden files and
    /// folders are skipped without counting). 0 for IDX.
    pub ignored: usize,
    /// With [`SplitRule::Folders`]: images below the folder but outside train/ and test/, not
    /// used. 0 otherwise.
    pub outside_split: usize,
}

impl Dataset {
    /// `[channels, rows, cols]` of every image.
    pub fn shape(&self) -> [usize; 3] {
        let im = &self.train.images;
        [im.channels, im.rows, im.cols]
    }
}

/// The test split of a dataset and what describes it, from [`load_test`] (commands that do not
/// train); the fields mean what [`Dataset`]'s do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestSet {
    pub dir: PathBuf,
    pub test: Split,
    /// Test images that were scaled or made grey to the asked size and channels (0 for IDX).
    pub converted: usize,
    pub classes: Vec<String>,
    pub split_rule: SplitRule,
    pub ignored: usize,
    pub outside_split: usize,
}

impl TestSet {
    /// The note a command gives when it converted images to a model's `shape`, or None.
    pub fn conversion_note(&self, shape: crate::models::ImageShape) -> Option<String> {
        (self.converted > 0).then(|| {
            format!(
                "{}: {} of the {} test images converted to {shape} (scaled or made grey), the model's size and channels",
                self.dir.display(),
                self.converted,
                self.test.images.count
            )
        })
    }
}

/// Whether `dir` is an IDX folder: it holds one of the four IDX files, with or without .gz
/// (whatever stands there; the reader names a directory where a file belongs).
pub fn is_idx_folder(dir: &Path) -> bool {
    IDX_FILES.iter().any(|name| {
        dir.join(name).symlink_metadata().is_ok()
            || dir.join(format!("{name}.gz")).symlink_metadata().is_ok()
    })
}

/// Loads the dataset in `dir`: an IDX folder (see [`load_idx`]) or a folder of images (see
/// [`crate::image_folder::load`]). Errors are one line naming the folder or file at fault.
pub fn load(dir: &Path, opts: &DataOptions) -> Result<Dataset> {
    check_dir(dir)?;
    check_options(opts)?;
    if !is_idx_folder(dir) {
        return image_folder::load(dir, opts);
    }
    let ds = load_idx(dir)?;
    check_idx_options(dir, &ds.test.images, opts)?;
    Ok(ds)
}

/// Loads only the test split of `dir`, for commands that do not train: an IDX folder's t10k
/// files, or an image folder's test images (see [`crate::image_folder::load_test`]).
pub fn load_test(dir: &Path, opts: &DataOptions) -> Result<TestSet> {
    check_dir(dir)?;
    check_options(opts)?;
    if !is_idx_folder(dir) {
        return image_folder::load_test(dir, opts);
    }
    let test = load_idx_test(dir)?;
    check_idx_options(dir, &test.images, opts)?;
    Ok(TestSet {
        dir: dir.to_path_buf(),
        test,
        converted: 0,
        classes: Vec::new(),
        split_rule: SplitRule::IdxFiles,
        ignored: 0,
        outside_split: 0,
    })
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

/// IDX images are what they are: a requested channel count or size must match them.
fn check_idx_options(dir: &Path, im: &Images, opts: &DataOptions) -> Result<()> {
    // What works instead: a folder of images is converted to any size and channels.
    let instead = "IDX files are read as they are; a folder of images (.png, .jpg, …) is converted to the size and channels asked for";
    if let Some(c) = opts.channels.filter(|&c| usize::from(c) != im.channels) {
        bail!(
            "{}: IDX images have {} channel, not {c}: {instead}",
            dir.display(),
            im.channels
        );
    }
    if let Some(s) = opts.size.filter(|&s| (s, s) != (im.rows, im.cols)) {
        bail!(
            "{}: IDX images are {}×{}, not {s}×{s}: {instead}",
            dir.display(),
            im.rows,
            im.cols
        );
    }
    Ok(())
}

/// Reads an IDX3 unsigned-byte file (magic 0x00000803) of `[count, rows, cols]` images.
pub fn read_images(path: &Path) -> Result<Images> {
    images(IdxFile::open(path)?)
}

/// An IDX3 image file's contents (gzip or raw) as [`read_images`] reads them; `name` names it
/// in errors (a web page has the bytes of a download, not a file).
pub fn images_from_bytes(name: &Path, bytes: &[u8]) -> Result<Images> {
    images(IdxFile::from_bytes(name, bytes)?)
}

/// An IDX1 label file's contents (gzip or raw) as [`read_labels`] reads them.
pub fn labels_from_bytes(name: &Path, bytes: &[u8]) -> Result<Vec<u8>> {
    labels(IdxFile::from_bytes(name, bytes)?)
}

fn images(mut file: IdxFile) -> Result<Images> {
    let path = file.path;
    let header = file.header(16, IMAGES_MAGIC, "IDX image")?;
    let dims = [be32(&header[4..]), be32(&header[8..]), be32(&header[12..])];
    let [count, rows, cols] = dims;
    if count == 0 || rows == 0 || cols == 0 {
        bail!(
            "{}: header says {count} images of {rows}×{cols}; nothing to read",
            path.display()
        );
    }
    let what = format!("{count} images of {rows}×{cols}");
    // Below 2⁹⁶, so exact in u128 whatever the header says.
    let bytes = dims.iter().map(|&d| u128::from(d)).product();
    let pixels = file.body(bytes, &what)?;
    Ok(Images {
        count: count as usize,
        channels: 1,
        rows: rows as usize,
        cols: cols as usize,
        pixels,
    })
}

/// Reads an IDX1 unsigned-byte file (magic 0x00000801) of labels. Values are not limited to 0..9.
pub fn read_labels(path: &Path) -> Result<Vec<u8>> {
    labels(IdxFile::open(path)?)
}

fn labels(mut file: IdxFile) -> Result<Vec<u8>> {
    let path = file.path;
    let header = file.header(8, LABELS_MAGIC, "IDX label")?;
    let count = be32(&header[4..]);
    if count == 0 {
        bail!("{}: header says 0 labels; nothing to read", path.display());
    }
    file.body(u128::from(count), &format!("{count} labels"))
}

/// `dir` holds train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte,
/// t10k-labels-idx1-ubyte, each optionally with .gz (the uncompressed one is used when both
/// exist; the error lists what was looked for when missing, and names a directory standing where
/// a file belongs). Label count must equal image count and all images must share rows×cols;
/// label values are not limited to 0..9.
pub fn load_idx(dir: &Path) -> Result<Dataset> {
    let paths = [
        find(dir, "train-images-idx3-ubyte")?,
        find(dir, "train-labels-idx1-ubyte")?,
        find(dir, "t10k-images-idx3-ubyte")?,
        find(dir, "t10k-labels-idx1-ubyte")?,
    ];
    // Decompressing the 60 000 training images dominates; read the two splits side by side.
    let (test, train) = crate::platform::join(
        || split(&paths[2], &paths[3]),
        || split(&paths[0], &paths[1]),
    );
    let (train, test) = (train?, test?);
    let (a, b) = (&train.images, &test.images);
    if (a.rows, a.cols) != (b.rows, b.cols) {
        bail!(
            "{}: images are {}×{} but {} holds {}×{} images",
            paths[2].display(),
            b.rows,
            b.cols,
            paths[0].display(),
            a.rows,
            a.cols
        );
    }
    Ok(Dataset {
        dir: dir.to_path_buf(),
        train,
        test,
        classes: Vec::new(),
        split_rule: SplitRule::IdxFiles,
        ignored: 0,
        outside_split: 0,
    })
}

/// Loads only the test split (t10k files) of the IDX folder `dir`.
pub fn load_idx_test(dir: &Path) -> Result<Split> {
    split(
        &find(dir, "t10k-images-idx3-ubyte")?,
        &find(dir, "t10k-labels-idx1-ubyte")?,
    )
}

/// Reads one split and checks that images and labels agree in count.
fn split(images_path: &Path, labels_path: &Path) -> Result<Split> {
    let images = read_images(images_path)?;
    let labels = read_labels(labels_path)?;
    if labels.len() != images.count {
        bail!(
            "{}: {} labels but {} holds {} images",
            labels_path.display(),
            labels.len(),
            images_path.display(),
            images.count
        );
    }
    let labels = labels.into_iter().map(u32::from).collect();
    Ok(Split { images, labels })
}

/// The file `dir/name`, or else the file `dir/name.gz`; failing both, whichever of them exists
/// (a directory, say), for the reader to say what it is.
fn find(dir: &Path, name: &str) -> Result<PathBuf> {
    if !dir.is_dir() {
        if dir.exists() {
            bail!(
                "{}: not a directory, expected a dataset directory holding IDX files",
                dir.display()
            );
        }
        bail!("{}: no such dataset directory", dir.display());
    }
    let candidates = [dir.join(name), dir.join(format!("{name}.gz"))];
    let found = candidates
        .iter()
        .find(|p| p.is_file())
        .or_else(|| candidates.iter().find(|p| p.exists()));
    match found {
        Some(path) => Ok(path.clone()),
        None => bail!(
            "{}: dataset file missing: looked for {name} and {name}.gz",
            dir.display()
        ),
    }
}

fn be32(bytes: &[u8]) -> u32 {
    u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
}

/// An open IDX file, decoding gzip transparently.
struct IdxFile<'a> {
    path: &'a Path,
    reader: Box<dyn Read + 'a>,
    gzip: bool,
    /// Bytes left after the header (raw files), or an upper bound on the decoded size (gzip).
    size: u64,
}

impl<'a> IdxFile<'a> {
    fn open(path: &'a Path) -> Result<Self> {
        let file = files::open(path, "an IDX file")?;
        let size = file.metadata().map_err(|e| Error::io(path, e))?.len();
        if size == 0 {
            bail!("{}: empty file", path.display());
        }
        Self::new(path, Box::new(BufReader::new(file)), size)
    }

    /// An IDX file held in memory.
    fn from_bytes(path: &'a Path, bytes: &'a [u8]) -> Result<Self> {
        if bytes.is_empty() {
            bail!("{}: empty file", path.display());
        }
        Self::new(path, Box::new(bytes), bytes.len() as u64)
    }

    /// `size` bytes from `buffered`, gzip or raw.
    fn new(path: &'a Path, mut buffered: Box<dyn Read + 'a>, size: u64) -> Result<Self> {
        let mut magic = [0u8; 2];
        let got = read_full(&mut buffered, &mut magic).map_err(|e| Error::io(path, e))?;
        let start = std::io::Cursor::new(magic[..got].to_vec());
        let gzip = got == 2 && magic == [0x1f, 0x8b];
        let reader: Box<dyn Read + 'a> = if gzip {
            Box::new(MultiGzDecoder::new(start.chain(buffered)))
        } else {
            Box::new(start.chain(buffered))
        };
        let size = if gzip {
            size.saturating_mul(MAX_DEFLATE_RATIO)
        } else {
            size
        };
        Ok(IdxFile {
            path,
            reader,
            gzip,
            size,
        })
    }

    /// Reads the `len`-byte header and checks its magic number.
    fn header(&mut self, len: usize, magic: u32, kind: &str) -> Result<Vec<u8>> {
        let path = self.path.display();
        let mut header = vec![0u8; len];
        let got = read_full(&mut self.reader, &mut header).map_err(|e| self.read_error(e))?;
        if got >= 4 && be32(&header) != magic {
            let found = be32(&header);
            let hint = match found {
                IMAGES_MAGIC => " (this is an IDX image file)",
                LABELS_MAGIC => " (this is an IDX label file)",
                _ => "",
            };
            bail!(
                "{path}: not an {kind} file: magic number 0x{found:08x}, expected 0x{magic:08x}{hint}"
            );
        }
        if got < len {
            let stream = if self.gzip { "decompressed " } else { "" };
            bail!(
                "{path}: truncated header: the {stream}file holds {got} bytes, an {kind} header needs {len}"
            );
        }
        self.size = self.size.saturating_sub(len as u64);
        Ok(header)
    }

    /// Reads exactly `expected` bytes of data and checks nothing follows them.
    fn body(&mut self, expected: u128, what: &str) -> Result<Vec<u8>> {
        let path = self.path.display();
        let size = u128::from(self.size);
        if !self.gzip && size < expected {
            bail!(
                "{path}: truncated: header says {what} but the file holds {size} of the {expected} data bytes"
            );
        }
        if !self.gzip && size > expected {
            bail!(
                "{path}: header says {what} ({expected} data bytes) but the file holds {} more bytes after them",
                size - expected
            );
        }
        let Ok(capacity) = usize::try_from(expected.min(size)) else {
            bail!("{path}: header says {what}, too large for this machine");
        };
        // Reserve at most what the file can really hold; `take` stops a long stream one byte
        // past the expected end so excess data is detected without reading it all.
        let mut data = Vec::new();
        data.try_reserve_exact(capacity)
            .map_err(|_| Error::msg(format!("{path}: header says {what}, out of memory")))?;
        let limit = u64::try_from(expected).map_or(u64::MAX, |e| e.saturating_add(1));
        self.reader
            .by_ref()
            .take(limit)
            .read_to_end(&mut data)
            .map_err(|e| self.read_error(e))?;
        let got = data.len() as u128;
        if got < expected {
            bail!(
                "{path}: truncated: header says {what} but the file holds {got} of the {expected} data bytes"
            );
        }
        if got > expected {
            bail!(
                "{path}: header says {what} ({expected} data bytes) but the file holds more data after them"
            );
        }
        Ok(data)
    }

    fn read_error(&self, err: std::io::Error) -> Error {
        let path = self.path.display();
        match (self.gzip, err.kind()) {
            (true, ErrorKind::UnexpectedEof) => Error::msg(format!(
                "{path}: truncated gzip stream (the file ends early)"
            )),
            (true, _) => Error::msg(format!("{path}: corrupt gzip data: {err}")),
            (false, _) => Error::io(self.path, err),
        }
    }
}

/// Reads until `buf` is full or the stream ends; returns the number of bytes read.
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match reader.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}
