//! What a dataset is once read, whatever its format: images (`[count, channels, rows, cols]`
//! bytes), splits with their labels, the rule that told train from test, and the options a
//! folder is read with.

use std::path::PathBuf;

use crate::host_rng::SplitMix64;
use crate::metadata::{text, text_opt};

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
/// In a run's `run.json` as `data_channels`, `data_size` (absent when None) and
/// `test_percent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct DataOptions {
    /// 1 (grey, Pillow's luma) or 3 (RGB). None: 3 when any image holds a pixel that is not
    /// grey (R ≠ G or G ≠ B) after its alpha is composited over white, else 1.
    #[serde(rename = "data_channels", with = "text_opt", default)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channels: Option<u8>,
    /// Images become `size`×`size`: scaled so the shorter side is `size`, then centre-cropped.
    /// None: the images' own size, which must then be one square size for all of them.
    #[serde(rename = "data_size", with = "text_opt", default)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<usize>,
    /// With no train/ and test/ subfolders, about this percentage of the images is the test
    /// split (1..=99; default 10). See [`SplitRule::Hash`].
    #[serde(with = "text")]
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

/// The test split of a dataset and what describes it, from [`load_test`](super::load_test) (commands that do not
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
    pub fn conversion_note(&self, shape: impl std::fmt::Display) -> Option<String> {
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
