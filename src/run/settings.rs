//! A training run's settings and records, declared once with serde and written and read here:
//! [`TrainConfig`] (the model spec and the training settings), [`RunRecord`] (the settings
//! with the progress, dataset and last test figures that both checkpoint files carry) and
//! [`RunStart`] (`run.json`, what a run records when it claims its folder). Their fields are
//! the metadata keys, and a setting's key is its flag's name (`lr_schedule` is
//! `--lr-schedule`), so a resume compares the run's record with the command line's field by
//! field ([`differing_setting`]). Keys an older gpu-ae did not write read as the value of the
//! runs that wrote it (f32 storage, β = 1, no binarisation, the constant rate).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::checkpoint::Checkpoint;
use crate::data::{Binarize, DataOptions, SplitRule, TEST_BINARIZE_SEED};
use crate::error::{Error, Result};
use crate::gpu::Elem;
use crate::metadata::{self, Metadata, choice, path, text};
use crate::model::ModelSpec;
use crate::model::record::{self, FORMAT, bad};
use crate::run::schedule::Schedule;

/// Hyper-parameters of a run (stored in every checkpoint's metadata).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    #[serde(flatten)]
    pub spec: ModelSpec,
    #[serde(with = "text")]
    pub batch: usize,
    /// The base learning rate (`--lr`): the rate of every step, or the peak of [`Self::schedule`].
    #[serde(with = "text")]
    pub lr: f32,
    #[serde(flatten)]
    pub schedule: Schedule,
    #[serde(with = "text")]
    pub seed: u64,
    /// Storage of activations and their gradients (`--precision`); see
    /// [`crate::model::graph::Graph`].
    #[serde(with = "text", default)]
    pub precision: Elem,
    /// Weight of the KL divergence in the training loss (`--beta`; 1: the negative ELBO).
    #[serde(with = "text", default = "one")]
    pub beta: f32,
    /// Binarised training images (`--binarize`), and then a binarised test set.
    #[serde(with = "choice", default = "no_binarize")]
    pub binarize: Binarize,
    /// A fine-tuned run (`--init`): the checkpoint (absolute path) whose parameters it started
    /// from, with fresh Adam state at step 0; None for a run from PyTorch's initialisation.
    #[serde(
        with = "path::optional",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub init: Option<PathBuf>,
}

fn one() -> f32 {
    1.0
}

fn no_binarize() -> Binarize {
    Binarize::None
}

/// The dataset a run trains on: its folder (absolute), the digest of its images and labels
/// ([`crate::data::fingerprint::dataset_digest`]) and how it was split into train and test images.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetRecord {
    #[serde(rename = "data", with = "path")]
    pub path: PathBuf,
    #[serde(rename = "data_digest")]
    pub digest: String,
    #[serde(with = "split_rule", default = "idx_files")]
    pub split: SplitRule,
}

/// What a training run records in both of its checkpoint files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    #[serde(flatten)]
    pub cfg: TrainConfig,
    /// Epochs done.
    #[serde(with = "text")]
    pub epoch: usize,
    /// Optimizer steps done (Adam's t).
    #[serde(with = "text")]
    pub steps: u64,
    /// None for runs written before datasets were recorded.
    #[serde(skip)]
    pub data: Option<DatasetRecord>,
    /// The last epoch's test figures (`test_bce`, `test_kl`, `test_neg_elbo`, …).
    #[serde(skip)]
    pub test: BTreeMap<String, f64>,
    /// The steps of epoch `epoch + 1` done so far, when the checkpoint was written inside it
    /// (a stop request, or the periodic checkpoint of a long epoch).
    #[serde(skip)]
    pub partial: Option<PartialEpoch>,
}

/// How far an unfinished epoch got: its first `step` steps, and their loss sums for its metrics
/// line (f64s as Rust writes them, which read back exactly).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct PartialEpoch {
    #[serde(rename = "epoch_step", with = "text")]
    pub step: usize,
    #[serde(rename = "epoch_images", with = "text")]
    pub images: usize,
    #[serde(rename = "epoch_rec_sum", with = "text")]
    pub rec_sum: f64,
    #[serde(rename = "epoch_kl_sum", with = "text")]
    pub kl_sum: f64,
    #[serde(rename = "epoch_seconds", with = "text")]
    pub seconds: f64,
}

/// The key whose presence says a checkpoint holds a [`PartialEpoch`].
const PARTIAL_KEY: &str = "epoch_step";

/// What a new run records when it claims its folder (`run.json`, [`crate::run::folder::RECORD_FILE`]):
/// its settings as asked for (the model's image shape and classes still to come from the data),
/// the dataset folder and how its images are read, so that a run killed before its first
/// checkpoint starts again from step 0 on `--resume`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunStart {
    #[serde(flatten)]
    pub cfg: TrainConfig,
    /// The dataset folder, absolute.
    #[serde(with = "path")]
    pub data: PathBuf,
    #[serde(flatten)]
    pub options: DataOptions,
    /// A conditional VAE on the data's classes (`--conditional`).
    #[serde(with = "text")]
    pub conditional: bool,
}

/// The keys a resume does not compare with the command line: the image shape and the classes
/// come from the data (checked where it is read), and `--lr` may change on resume (see
/// [`crate::run`]'s `resumed_lr`).
const NOT_COMPARED: [&str; 4] = ["channels", "size", "classes", "lr"];

/// The first setting given on the command line (`given`: clap's ids of the flags typed, in
/// order) whose value in `requested` differs from `recorded`'s, the two records compared field
/// by field through their keys: `(--flag, asked, was)`. A key absent from either record (the
/// noise of a model that does not denoise) is not compared.
pub fn differing_setting(
    recorded: &TrainConfig,
    requested: &TrainConfig,
    given: &[String],
) -> Option<(String, String, String)> {
    let (was, asked) = (metadata::write(recorded), metadata::write(requested));
    given
        .iter()
        .filter(|key| !NOT_COMPARED.contains(&key.as_str()))
        .find_map(|key| {
            let (w, a) = (was.get(key)?, asked.get(key)?);
            (w != a).then(|| (format!("--{}", key.replace('_', "-")), a.clone(), w.clone()))
        })
}

/// The keys of a model spec's record (the flags a fine-tuned run takes from its checkpoint are
/// these, less the task and loss it trains for).
pub fn spec_keys(spec: &ModelSpec) -> Vec<String> {
    metadata::write(spec).into_keys().collect()
}

/// Reads a record holding a [`TrainConfig`] from `meta` (a checkpoint's or run.json's) and
/// checks its values; every error names `path`.
fn read_config<T: DeserializeOwned>(
    meta: &Metadata,
    path: &Path,
    config: impl Fn(&T) -> &TrainConfig,
) -> Result<T> {
    record::check_format(meta, path)?;
    let read: T = metadata::read(meta, path)?;
    let c = config(&read);
    record::check_spec(&c.spec, meta, path)?;
    for (key, ok) in [
        ("batch", c.batch >= 1),
        ("lr", c.lr.is_finite() && c.lr > 0.0),
        ("beta", c.beta.is_finite() && c.beta >= 0.0),
    ] {
        if !ok {
            return Err(bad(path, key, meta.get(key).map_or("", |v| v.as_str())));
        }
    }
    check_binarize(meta, path, c.binarize)?;
    Ok(read)
}

/// A run on binarised images is evaluated on the test images binarised by
/// [`TEST_BINARIZE_SEED`], the only seed this gpu-ae writes; another recorded seed is refused.
fn check_binarize(meta: &Metadata, path: &Path, binarize: Binarize) -> Result<()> {
    const KEY: &str = "binarize_test_seed";
    match meta.get(KEY) {
        Some(v) if binarize == Binarize::Dynamic && v.trim() != TEST_BINARIZE_SEED.to_string() => {
            Err(bad(path, KEY, v))
        }
        _ => Ok(()),
    }
}

impl RunRecord {
    pub fn to_metadata(&self) -> Metadata {
        let mut m = metadata::write(self);
        m.insert("format".into(), FORMAT.into());
        if self.cfg.binarize == Binarize::Dynamic {
            m.insert("binarize_test_seed".into(), TEST_BINARIZE_SEED.to_string());
        }
        if let Some(d) = &self.data {
            m.extend(metadata::write(d));
        }
        for (k, v) in &self.test {
            m.insert(k.clone(), v.to_string());
        }
        if let Some(p) = &self.partial {
            m.extend(metadata::write(p));
        }
        m
    }

    /// Reads the record of a run's checkpoint (for `--resume`).
    pub fn read(ckpt: &Checkpoint, path: &Path) -> Result<RunRecord> {
        let meta = &ckpt.metadata;
        let mut run: RunRecord = read_config(meta, path, |r: &RunRecord| &r.cfg)?;
        if meta.contains_key("data") && meta.contains_key("data_digest") {
            run.data = Some(metadata::read(meta, path)?);
        }
        run.test = meta
            .iter()
            .filter(|(k, _)| k.starts_with("test_"))
            .filter_map(|(k, v)| Some((k.clone(), v.parse().ok()?)))
            .collect();
        if meta.contains_key(PARTIAL_KEY) {
            let p: PartialEpoch = metadata::read(meta, path)?;
            for (key, ok) in [
                (PARTIAL_KEY, p.step >= 1),
                ("epoch_rec_sum", p.rec_sum.is_finite()),
                ("epoch_kl_sum", p.kl_sum.is_finite()),
                ("epoch_seconds", p.seconds.is_finite() && p.seconds >= 0.0),
            ] {
                if !ok {
                    return Err(bad(path, key, &meta[key]));
                }
            }
            run.partial = Some(p);
        }
        Ok(run)
    }
}

impl RunStart {
    /// One JSON object of strings: the keys of a checkpoint's run record, and the data's.
    pub fn to_json(&self) -> String {
        let mut m = metadata::write(self);
        m.insert("format".into(), FORMAT.into());
        serde_json::json!(m).to_string()
    }

    /// Reads what [`RunStart::to_json`] wrote at `path`; errors name the file.
    pub fn read(path: &Path) -> Result<RunStart> {
        let text = crate::files::read(path, "a run's run.json")?;
        let meta: Metadata = serde_json::from_slice(&text)
            .map_err(|e| Error::msg(format!("{}: not a gpu-ae run.json: {e}", path.display())))?;
        let start: RunStart = read_config(&meta, path, |s: &RunStart| &s.cfg)?;
        let o = &start.options;
        for (key, ok) in [
            ("data_channels", o.channels.is_none_or(|c| c == 1 || c == 3)),
            ("data_size", o.size.is_none_or(|s| s >= 1)),
            ("test_percent", (1..=99).contains(&o.test_percent)),
        ] {
            if !ok {
                return Err(bad(path, key, &meta[key]));
            }
        }
        Ok(start)
    }
}

/// How the run of a checkpoint split its data into train and test images, so that `eval` and
/// the picture commands use the same test images (runs written before splits were recorded
/// trained on IDX files).
pub fn read_split(ckpt: &Checkpoint, path: &Path) -> Result<SplitRule> {
    match ckpt.meta("split") {
        None => Ok(SplitRule::IdxFiles),
        Some(v) => SplitRule::parse(v).ok_or_else(|| bad(path, "split", v)),
    }
}

/// The folder the run of a checkpoint trained on, as it recorded it (None for files that
/// record none, such as imported `state_dict`s).
pub fn read_data_path(ckpt: &Checkpoint) -> Option<PathBuf> {
    ckpt.meta("data").map(PathBuf::from)
}

/// Whether the run of a checkpoint trained on binarised images (and so is evaluated on the
/// test images binarised by [`TEST_BINARIZE_SEED`]).
pub fn read_binarize(ckpt: &Checkpoint, path: &Path) -> Result<Binarize> {
    #[derive(Deserialize)]
    struct Binarized {
        #[serde(with = "choice", default = "no_binarize")]
        binarize: Binarize,
    }
    let Binarized { binarize } = metadata::read(&ckpt.metadata, path)?;
    check_binarize(&ckpt.metadata, path, binarize)?;
    Ok(binarize)
}

/// The (epoch, steps) a checkpoint file holds the state after: a model file and an optimizer
/// file belong together when these agree.
pub fn state_stamp(ckpt: &Checkpoint) -> Option<(&str, &str)> {
    Some((ckpt.meta("epoch")?, ckpt.meta("steps")?))
}

fn idx_files() -> SplitRule {
    SplitRule::IdxFiles
}

/// A [`SplitRule`] by its stable name ([`SplitRule::name`]).
mod split_rule {
    use crate::data::SplitRule;
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(value: &SplitRule, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&value.name())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SplitRule, D::Error> {
        let text = String::deserialize(d)?;
        SplitRule::parse(&text).ok_or_else(|| D::Error::custom(format!("bad split {text:?}")))
    }
}
