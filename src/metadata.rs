//! The metadata of a checkpoint (the string map in safetensors' `__metadata__`), written and read
//! in this one place: the model ([`ModelSpec`]) and, for a training run, its settings, progress,
//! dataset and last test figures ([`RunRecord`]). Numbers are parsed as the type they are, each
//! with its own check. Checkpoints written before a key existed get the value of the runs that
//! wrote them: MNIST's shape and widths, f32 storage, β = 1, leaky ReLU's slope 0.2.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::bail;
use crate::checkpoint::Checkpoint;
use crate::data::{Binarize, SplitRule, TEST_BINARIZE_SEED};
use crate::error::{Error, Result};
use crate::gpu::Elem;
use crate::model::{
    Block, DEFAULT_LEAKY_SLOPE, HiddenAct, ImageShape, LossKind, MNIST_WIDTHS, ModelKind,
    ModelSpec, Norm, Task, Upsampling, value_name,
};
use crate::run::schedule::{LrSchedule, Schedule};
use crate::run::train::TrainConfig;
use clap::ValueEnum;

/// The format tag every gpu-ae checkpoint carries; another tag is refused.
pub const FORMAT: &str = "gpu-ae/1";

/// The dataset a run trains on: its folder (absolute), the digest of its images and labels
/// ([`crate::data::fingerprint::dataset_digest`]) and how it was split into train and test images.
#[derive(Debug, Clone, PartialEq)]
pub struct DatasetRecord {
    pub path: PathBuf,
    pub digest: String,
    pub split: SplitRule,
}

/// What a training run records in both of its checkpoint files.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRecord {
    pub cfg: TrainConfig,
    /// Epochs done.
    pub epoch: usize,
    /// Optimizer steps done (Adam's t).
    pub steps: u64,
    /// None for runs written before datasets were recorded.
    pub data: Option<DatasetRecord>,
    /// The last epoch's test figures (`test_bce`, `test_kl`, `test_neg_elbo`, …).
    pub test: BTreeMap<String, f64>,
    /// The steps of epoch `epoch + 1` done so far, when the checkpoint was written inside it
    /// (a stop request, or the periodic checkpoint of a long epoch).
    pub partial: Option<PartialEpoch>,
}

/// How far an unfinished epoch got: its first `step` steps, and their loss sums for its metrics
/// line.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PartialEpoch {
    pub step: usize,
    pub images: usize,
    pub rec_sum: f64,
    pub kl_sum: f64,
    pub seconds: f64,
}

/// The metadata keys of a [`PartialEpoch`] (f64s as Rust writes them, which read back exactly).
const PARTIAL_KEYS: [&str; 5] = [
    "epoch_step",
    "epoch_images",
    "epoch_rec_sum",
    "epoch_kl_sum",
    "epoch_seconds",
];

/// `32,64,128`, as `--widths` takes them.
pub fn join_widths(widths: &[usize]) -> String {
    widths
        .iter()
        .map(|w| w.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// The metadata that describes a model.
pub fn write_spec(spec: &ModelSpec) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    m.insert("format".into(), FORMAT.into());
    m.insert("model".into(), spec.kind.name().into());
    m.insert("latent".into(), spec.latent.to_string());
    m.insert("task".into(), spec.task.name().into());
    if let Task::Denoise { noise } = spec.task {
        m.insert("noise".into(), noise.to_string());
    }
    m.insert("loss".into(), spec.loss.name().into());
    m.insert("channels".into(), spec.image.channels.to_string());
    m.insert("size".into(), spec.image.size.to_string());
    if matches!(spec.kind, ModelKind::ConvVae | ModelKind::ConvAe) {
        m.insert("widths".into(), join_widths(&spec.widths));
        m.insert("norm".into(), value_name(&spec.norm));
        m.insert("act".into(), value_name(&spec.act));
        if spec.act == HiddenAct::LeakyRelu {
            m.insert("leaky_slope".into(), spec.leaky_slope.to_string());
        }
        m.insert("block".into(), value_name(&spec.block));
        m.insert("upsample".into(), value_name(&spec.upsample));
    }
    if spec.is_conditional() {
        m.insert(
            "classes".into(),
            serde_json::json!(spec.classes).to_string(),
        );
    }
    m
}

/// Reads a checkpoint's metadata; every error names the file.
struct Reader<'a> {
    ckpt: &'a Checkpoint,
    path: &'a Path,
}

impl Reader<'_> {
    fn bad(&self, key: &str, v: &str) -> Error {
        Error::msg(format!(
            "{}: bad {key} {v:?} in metadata",
            self.path.display()
        ))
    }

    fn required(&self, key: &str) -> Result<&str> {
        self.ckpt.meta(key).ok_or_else(|| {
            Error::msg(format!(
                "{}: not a gpu-ae checkpoint of a run (metadata has no {key:?})",
                self.path.display()
            ))
        })
    }

    /// `key` as one of a flag's values (`--norm`, `--act`, …); `default` when the key is
    /// absent (checkpoints written before the setting existed).
    fn choice<T: ValueEnum>(&self, key: &str, default: T) -> Result<T> {
        match self.ckpt.meta(key) {
            None => Ok(default),
            Some(v) => T::from_str(v, false).map_err(|_| self.bad(key, v)),
        }
    }

    /// `key` parsed as a `T` that passes `valid`; `default` when the key is absent, or an
    /// error when there is none.
    fn value<T: FromStr>(
        &self,
        key: &str,
        default: Option<T>,
        valid: impl Fn(&T) -> bool,
    ) -> Result<T> {
        match (self.ckpt.meta(key), default) {
            (Some(v), _) => v
                .trim()
                .parse()
                .ok()
                .filter(|t| valid(t))
                .ok_or_else(|| self.bad(key, v)),
            (None, Some(d)) => Ok(d),
            (None, None) => Err(Error::msg(format!(
                "{}: metadata has no {key:?}",
                self.path.display()
            ))),
        }
    }
}

/// Reads the model description of a gpu-ae checkpoint.
pub fn read_spec(ckpt: &Checkpoint, path: &Path) -> Result<ModelSpec> {
    let r = Reader { ckpt, path };
    let format = r.required("format").map_err(|_| {
        let hint = if ckpt.get("enc.0.weight").is_some() {
            format!(
                "; a PyTorch state_dict? make it one with `gpu-ae import --checkpoint {} --act relu|leaky-relu --out model.safetensors`",
                path.display()
            )
        } else {
            String::new()
        };
        Error::msg(format!(
            "{}: not a gpu-ae checkpoint (metadata has no \"format\"){hint}",
            path.display()
        ))
    })?;
    if format != FORMAT {
        bail!(
            "{}: checkpoint format {format:?}; this gpu-ae reads {FORMAT:?} (a newer gpu-ae wrote it?)",
            path.display()
        );
    }
    let kind: ModelKind = r.value("model", None, |_| true)?;
    let latent = r.value("latent", None, |&l: &usize| l >= 1)?;
    let noise = r.value("noise", Some(0.5), |n: &f32| n.is_finite() && *n > 0.0)?;
    let task_name = r.value("task", None, |_: &String| true)?;
    let task = Task::parse(&task_name, noise).map_err(|_| r.bad("task", &task_name))?;
    let loss: LossKind = r.value("loss", Some(LossKind::Bce), |_| true)?;
    let image = ImageShape {
        channels: r.value("channels", Some(ImageShape::MNIST.channels), |&c| c >= 1)?,
        size: r.value("size", Some(ImageShape::MNIST.size), |&s| s >= 1)?,
    };
    let widths = match ckpt.meta("widths") {
        None => MNIST_WIDTHS.to_vec(),
        Some(v) => v
            .split(',')
            .map(|w| w.trim().parse().ok().filter(|&n: &usize| n >= 1))
            .collect::<Option<Vec<usize>>>()
            .ok_or_else(|| r.bad("widths", v))?,
    };
    let norm = r.choice("norm", Norm::None)?;
    let act = r.choice("act", HiddenAct::Relu)?;
    let leaky_slope = r.value("leaky_slope", Some(DEFAULT_LEAKY_SLOPE), |s: &f32| {
        s.is_finite() && *s > 0.0
    })?;
    let block = r.choice("block", Block::Plain)?;
    let upsample = r.choice("upsample", Upsampling::Transposed)?;
    // A conditional VAE's class names, as a JSON array of strings.
    let classes = match ckpt.meta("classes") {
        None => Vec::new(),
        Some(v) => serde_json::from_str::<Vec<String>>(v)
            .ok()
            .filter(|c| !c.is_empty())
            .ok_or_else(|| r.bad("classes", v))?,
    };
    Ok(ModelSpec {
        kind,
        latent,
        task,
        loss,
        image,
        widths,
        norm,
        act,
        leaky_slope,
        block,
        upsample,
        classes,
    })
}

/// How the run of a checkpoint split its data into train and test images, so that `eval` and
/// the picture commands use the same test images (runs written before splits were recorded
/// trained on IDX files).
pub fn read_split(ckpt: &Checkpoint, path: &Path) -> Result<SplitRule> {
    match ckpt.meta("split") {
        None => Ok(SplitRule::IdxFiles),
        Some(v) => SplitRule::parse(v).ok_or_else(|| Reader { ckpt, path }.bad("split", v)),
    }
}

/// The folder the run of a checkpoint trained on, as it recorded it (None for files that
/// record none, such as imported `state_dict`s).
pub fn read_data_path(ckpt: &Checkpoint) -> Option<PathBuf> {
    ckpt.meta("data").map(PathBuf::from)
}

/// Whether the run of a checkpoint trained on binarised images (and so is evaluated on the
/// test images binarised by [`TEST_BINARIZE_SEED`], the only seed this gpu-ae writes).
pub fn read_binarize(ckpt: &Checkpoint, path: &Path) -> Result<Binarize> {
    let r = Reader { ckpt, path };
    let binarize = match ckpt.meta("binarize") {
        None => Binarize::None,
        Some(v) => <Binarize as ValueEnum>::from_str(v, false).map_err(|_| r.bad("binarize", v))?,
    };
    if binarize == Binarize::Dynamic {
        r.value("binarize_test_seed", Some(TEST_BINARIZE_SEED), |&s| {
            s == TEST_BINARIZE_SEED
        })?;
    }
    Ok(binarize)
}

/// The (epoch, steps) a checkpoint file holds the state after: a model file and an optimizer
/// file belong together when these agree.
pub fn state_stamp(ckpt: &Checkpoint) -> Option<(&str, &str)> {
    Some((ckpt.meta("epoch")?, ckpt.meta("steps")?))
}

impl RunRecord {
    pub fn to_metadata(&self) -> BTreeMap<String, String> {
        let c = &self.cfg;
        let mut m = write_spec(&c.spec);
        m.insert("epoch".into(), self.epoch.to_string());
        m.insert("steps".into(), self.steps.to_string());
        m.insert("seed".into(), c.seed.to_string());
        m.insert("lr".into(), c.lr.to_string());
        m.insert("lr_schedule".into(), value_name(&c.schedule.kind));
        m.insert("warmup_steps".into(), c.schedule.warmup_steps.to_string());
        m.insert("lr_horizon".into(), c.schedule.horizon_steps.to_string());
        m.insert("batch".into(), c.batch.to_string());
        m.insert("precision".into(), c.precision.wgsl().into());
        m.insert("beta".into(), c.beta.to_string());
        if c.binarize == Binarize::Dynamic {
            m.insert("binarize".into(), value_name(&c.binarize));
            m.insert("binarize_test_seed".into(), TEST_BINARIZE_SEED.to_string());
        }
        if let Some(init) = &c.init {
            m.insert("init".into(), init.display().to_string());
        }
        if let Some(d) = &self.data {
            m.insert("data".into(), d.path.display().to_string());
            m.insert("data_digest".into(), d.digest.clone());
            m.insert("split".into(), d.split.name());
        }
        for (k, v) in &self.test {
            m.insert(k.clone(), v.to_string());
        }
        if let Some(p) = &self.partial {
            let values = [
                p.step.to_string(),
                p.images.to_string(),
                p.rec_sum.to_string(),
                p.kl_sum.to_string(),
                p.seconds.to_string(),
            ];
            for (k, v) in PARTIAL_KEYS.into_iter().zip(values) {
                m.insert(k.into(), v);
            }
        }
        m
    }

    /// Reads the record of a run's checkpoint (for `--resume`).
    pub fn read(ckpt: &Checkpoint, path: &Path) -> Result<RunRecord> {
        let spec = read_spec(ckpt, path)?;
        let r = Reader { ckpt, path };
        let cfg = TrainConfig {
            spec,
            batch: r.value("batch", None, |&b: &usize| b >= 1)?,
            lr: r.value("lr", None, |l: &f32| l.is_finite() && *l > 0.0)?,
            schedule: Schedule {
                kind: r.choice("lr_schedule", LrSchedule::Constant)?,
                warmup_steps: r.value("warmup_steps", Some(0), |_| true)?,
                horizon_steps: r.value("lr_horizon", Some(0), |_| true)?,
            },
            seed: r.value("seed", None, |_| true)?,
            precision: match ckpt.meta("precision") {
                None => Elem::F32,
                Some(p) => p.parse().map_err(|_| r.bad("precision", p))?,
            },
            beta: r.value("beta", Some(1.0), |b: &f32| b.is_finite() && *b >= 0.0)?,
            binarize: read_binarize(ckpt, path)?,
            init: ckpt.meta("init").map(PathBuf::from),
        };
        let data = match (read_data_path(ckpt), ckpt.meta("data_digest")) {
            (Some(data_path), Some(d)) => Some(DatasetRecord {
                path: data_path,
                digest: d.to_string(),
                split: read_split(ckpt, path)?,
            }),
            _ => None,
        };
        let test = ckpt
            .metadata
            .iter()
            .filter(|(k, _)| k.starts_with("test_"))
            .filter_map(|(k, v)| Some((k.clone(), v.parse().ok()?)))
            .collect();
        let [step, images, rec_sum, kl_sum, seconds] = PARTIAL_KEYS;
        let partial = match ckpt.meta(step) {
            None => None,
            Some(_) => Some(PartialEpoch {
                step: r.value(step, None, |&s: &usize| s >= 1)?,
                images: r.value(images, None, |_| true)?,
                rec_sum: r.value(rec_sum, None, |v: &f64| v.is_finite())?,
                kl_sum: r.value(kl_sum, None, |v: &f64| v.is_finite())?,
                seconds: r.value(seconds, None, |v: &f64| v.is_finite() && *v >= 0.0)?,
            }),
        };
        Ok(RunRecord {
            cfg,
            epoch: r.value("epoch", None, |_| true)?,
            steps: r.value("steps", None, |_| true)?,
            data,
            test,
            partial,
        })
    }
}

/// What a new run records when it claims its folder (`run.json`, [`crate::run::folder::RECORD_FILE`]):
/// its settings as asked for (the model's image shape and classes still to come from the data),
/// the dataset folder and how its images are read, so that a run killed before its first
/// checkpoint starts again from step 0 on `--resume`.
#[derive(Debug, Clone, PartialEq)]
pub struct RunStart {
    pub cfg: TrainConfig,
    /// The dataset folder, absolute.
    pub data: PathBuf,
    pub options: crate::data::DataOptions,
    /// A conditional VAE on the data's classes (`--conditional`).
    pub conditional: bool,
}

impl RunStart {
    /// One JSON object of strings: the keys of a checkpoint's run record, and the data's.
    pub fn to_json(&self) -> String {
        let record = RunRecord {
            cfg: self.cfg.clone(),
            epoch: 0,
            steps: 0,
            data: None,
            test: BTreeMap::new(),
            partial: None,
        };
        let mut m = record.to_metadata();
        m.insert("data".into(), self.data.display().to_string());
        m.insert("conditional".into(), self.conditional.to_string());
        m.insert("test_percent".into(), self.options.test_percent.to_string());
        if let Some(c) = self.options.channels {
            m.insert("data_channels".into(), c.to_string());
        }
        if let Some(s) = self.options.size {
            m.insert("data_size".into(), s.to_string());
        }
        serde_json::json!(m).to_string()
    }

    /// Reads what [`RunStart::to_json`] wrote at `path`; errors name the file.
    pub fn read(path: &Path) -> Result<RunStart> {
        let text = crate::files::read(path, "a run's run.json")?;
        let metadata: BTreeMap<String, String> = serde_json::from_slice(&text)
            .map_err(|e| Error::msg(format!("{}: not a gpu-ae run.json: {e}", path.display())))?;
        let ckpt = Checkpoint {
            tensors: Vec::new(),
            metadata,
        };
        let cfg = RunRecord::read(&ckpt, path)?.cfg;
        let r = Reader { ckpt: &ckpt, path };
        let data = r.required("data")?;
        let options = crate::data::DataOptions {
            channels: match ckpt.meta("data_channels") {
                None => None,
                Some(_) => Some(r.value("data_channels", None, |&c: &u8| c == 1 || c == 3)?),
            },
            size: match ckpt.meta("data_size") {
                None => None,
                Some(_) => Some(r.value("data_size", None, |&s: &usize| s >= 1)?),
            },
            test_percent: r.value("test_percent", None, |p| (1..=99).contains(p))?,
        };
        Ok(RunStart {
            cfg,
            data: PathBuf::from(data),
            options,
            conditional: r.value("conditional", None, |_| true)?,
        })
    }
}
