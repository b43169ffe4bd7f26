//! IDX folders (MNIST, Fashion-MNIST and friends): train-images-idx3-ubyte,
//! train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte, raw or
//! gzip-compressed (detected by the gzip magic bytes 1f 8b, not by extension). Every header is
//! checked against the real amount of data before anything is allocated for it (sizes computed
//! exactly, whatever the header says), and every problem is a one-line error naming the file.

use std::io::{BufReader, ErrorKind, Read};
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;

use super::split::{DataOptions, Dataset, Images, Split, SplitRule, TestSet};
use crate::bail;
use crate::error::{Error, Result};
use crate::files;

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

/// Whether `dir` is an IDX folder: it holds one of the four IDX files, with or without .gz
/// (whatever stands there; the reader names a directory where a file belongs).
pub fn is_idx_folder(dir: &Path) -> bool {
    IDX_FILES.iter().any(|name| {
        dir.join(name).symlink_metadata().is_ok()
            || dir.join(format!("{name}.gz")).symlink_metadata().is_ok()
    })
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

/// The IDX dataset in `dir` (see [`load_idx`]), checked against `opts`.
pub fn load(dir: &Path, opts: &DataOptions) -> Result<Dataset> {
    let ds = load_idx(dir)?;
    check_idx_options(dir, &ds.test.images, opts)?;
    Ok(ds)
}

/// The test split of the IDX dataset in `dir`, checked against `opts`.
pub fn load_test(dir: &Path, opts: &DataOptions) -> Result<TestSet> {
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
