//! A whole training run (`gpu-ae train`): the folder ([`crate::run::folder`]), resume and its checks
//! (settings, dataset digest), a fine-tuned start from another checkpoint (`--init`),
//! evaluation, metrics and a checkpoint after every epoch and inside long ones, progress lines,
//! stop requests (a stop inside an epoch keeps its steps).

pub mod batch_plans;
pub mod bench;
pub mod evaluate;
pub mod folder;
pub mod gpu_split;
pub mod likelihood;
pub mod schedule;
pub mod settings;
pub mod split_plans;
pub mod stop;
pub mod train;

use crate::checkpoint::Checkpoint;
use crate::data::{self, classes, fingerprint};
use crate::data::{Binarize, DataOptions, SplitRule};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::kernels;
use crate::model::graph::{ModelValues, values_from_checkpoint};
use crate::model::record::read_spec;
use crate::model::{Architecture, ImageShape, ModelSpec};
use crate::platform::{self, Instant};
use crate::run::batch_plans::epoch_steps;
use crate::run::evaluate::{EvalMetrics, Evaluator};
use crate::run::folder::{Claim, MODEL_FILE, OPTIMIZER_FILE, RECORD_FILE, RunFolder};
use crate::run::gpu_split::GpuSplit;
use crate::run::schedule::LrSchedule;
use crate::run::settings::{
    DatasetRecord, PartialEpoch, RunRecord, RunStart, TrainConfig, differing_setting, spec_keys,
};
use crate::run::train::{EpochEnd, TrainProgress, Trainer};
use crate::{bail, checkpoint, noteln};
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

/// Where a training writes its run.
#[derive(Debug, Clone, PartialEq)]
pub enum RunTarget {
    /// A new folder `parent/<model>-<UTC time>` (with `-2`, `-3`, … if that exists).
    Default { parent: PathBuf, stamp: String },
    /// `--out DIR` (a new run, or `--overwrite`) or `--resume DIR`.
    Folder { dir: PathBuf, claim: Claim },
}

/// Options of `gpu-ae train` beyond the hyper-parameters.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The dataset folder; `None` when resuming without `--data` (the run's recorded dataset).
    pub data_dir: Option<PathBuf>,
    pub target: RunTarget,
    pub epochs: usize,
    pub eval_batch: usize,
    pub quiet: bool,
    /// Settings flags given on the command line (`--lr`, …): a resume refuses any that differ
    /// from the run's own.
    pub explicit_flags: Vec<String>,
    /// Resume on a dataset other than the recorded one.
    pub allow_data_change: bool,
    /// How an image folder becomes a dataset (channels, size, split); a resumed run uses its
    /// own shape and split.
    pub data_options: DataOptions,
    /// A new run trains a conditional VAE on the classes of its data (`--conditional`).
    pub conditional: bool,
    /// Inside an epoch, a checkpoint is written after this many seconds of training since the
    /// last one (`--checkpoint-minutes`), so that a kill loses at most that much.
    pub checkpoint_seconds: f64,
}

/// How a training ended without an error.
#[derive(Debug, Clone, PartialEq)]
pub enum RunOutcome {
    /// Every requested epoch is done.
    Finished { dir: PathBuf },
    /// A stop was requested ([`stop`]); `epochs_kept` epochs and `steps_kept` of the
    /// `steps_per_epoch` steps of the next are checkpointed in `dir`, and the folder is gone
    /// when it was new and kept nothing.
    Interrupted {
        dir: PathBuf,
        epochs_kept: usize,
        steps_kept: usize,
        steps_per_epoch: usize,
        folder_removed: bool,
    },
}

/// One epoch's line of `metrics.jsonl`.
fn metrics_line(
    epoch: usize,
    train: &TrainProgress,
    test: &EvalMetrics,
    cfg: &TrainConfig,
    steps_done: u64,
) -> serde_json::Value {
    let n = train.images.max(1) as f64;
    let rec = cfg.spec.loss.name();
    let mut v = serde_json::json!({
        "epoch": epoch + 1,
        // As written (`0.001`), not as the f32's exact value in f64 (`0.0010000000474974513`).
        "lr": cfg.lr.to_string().parse::<f64>().unwrap_or(f64::from(cfg.lr)),
        "train_loss": train.mean_loss(),
        "epoch_s": train.seconds,
        "images_per_s": n / train.seconds.max(1e-9),
    });
    // A schedule's rate at the epoch's last step (`lr` stays the base rate).
    if cfg.schedule.varies() {
        let last = cfg.schedule.rate(cfg.lr, steps_done.saturating_sub(1));
        v["lr_last"] = last
            .to_string()
            .parse::<f64>()
            .unwrap_or(f64::from(last))
            .into();
    }
    v[format!("train_{rec}")] = (train.rec_sum / n).into();
    v[format!("test_{rec}")] = test.rec.into();
    v["test_psnr"] = test.psnr.into();
    if let Some(kl) = test.kl {
        v["train_kl"] = (train.kl_sum / n).into();
        v["test_kl"] = kl.into();
        v["test_neg_elbo"] = test.total().into();
    }
    v
}

/// Refuses settings flags given with `--resume` that differ from the run's own: a resumed run
/// keeps the settings it was started with, all but the learning rate (see [`resumed_lr`]).
/// `conditional` is (the run's, the command line's) `--conditional`.
fn check_resume_flags(
    recorded: &TrainConfig,
    requested: &TrainConfig,
    conditional: (bool, bool),
    explicit: &[String],
    dir: &Path,
) -> Result<()> {
    if let Some((flag, asked, was)) = differing_setting(recorded, requested, explicit)
        .or_else(|| differing_conditional(conditional, explicit))
    {
        bail!(
            "{flag} {asked}: the run in {} was trained with {flag} {was}, and a resumed run keeps its settings; start a new run to change it",
            dir.display()
        );
    }
    Ok(())
}

/// `--conditional` given (in `explicit`) where the model is not conditional, as
/// [`differing_setting`] reports a setting: the model records its classes, not the flag.
fn differing_conditional(
    (was, asked): (bool, bool),
    explicit: &[String],
) -> Option<(String, String, String)> {
    (explicit.iter().any(|f| f == "conditional") && was != asked)
        .then(|| ("--conditional".into(), asked.to_string(), was.to_string()))
}

/// The learning rate a resumed run continues with: `--lr` when given (a lower rate for the
/// last epochs is the usual schedule), else the run's own. The checkpoint records the rate of
/// its last epoch and every metrics line its own.
fn resumed_lr(
    recorded: &TrainConfig,
    requested: &TrainConfig,
    first_epoch: usize,
    opts: &RunOptions,
) -> f32 {
    if !opts.explicit_flags.iter().any(|f| f == "lr") || requested.lr == recorded.lr {
        return recorded.lr;
    }
    if !opts.quiet {
        noteln!(
            "learning rate {} from here on, in epoch {} (the run so far used {})",
            requested.lr,
            first_epoch + 1,
            recorded.lr
        );
    }
    requested.lr
}

/// A dataset's path as a run records it: without `..` or links where it resolves.
fn absolute(dir: &Path) -> PathBuf {
    dir.canonicalize()
        .or_else(|_| std::path::absolute(dir))
        .unwrap_or_else(|_| dir.to_path_buf())
}

/// The settings that `folder`'s run recorded when it was claimed, for a resume of a run that
/// was killed before its first checkpoint (it starts again from step 0, saying so). Refuses
/// a folder that holds no run, and settings flags that differ from the recorded ones.
fn restart_settings(
    folder: &RunFolder,
    requested: &TrainConfig,
    opts: &RunOptions,
) -> Result<RunStart> {
    let path = folder.path(RECORD_FILE);
    if !path.is_file() {
        bail!(
            "{}: holds no run (no {MODEL_FILE}, no {RECORD_FILE}); start one with --out {}",
            folder.dir().display(),
            folder.dir().display()
        );
    }
    let start = RunStart::read(&path)?;
    let dir = folder.dir();
    let explicit = &opts.explicit_flags;
    check_resume_flags(
        &start.cfg,
        requested,
        (start.conditional, opts.conditional),
        explicit,
        dir,
    )?;
    let (was, asked) = (&start.options, &opts.data_options);
    let percent = explicit.iter().any(|f| f == "test_percent");
    for (flag, differs, given, recorded) in [
        (
            "--channels",
            asked.channels.is_some() && asked.channels != was.channels,
            asked.channels.map(usize::from),
            was.channels.map(usize::from),
        ),
        (
            "--size",
            asked.size.is_some() && asked.size != was.size,
            asked.size,
            was.size,
        ),
        (
            "--test-percent",
            percent && asked.test_percent != was.test_percent,
            Some(asked.test_percent as usize),
            Some(was.test_percent as usize),
        ),
    ] {
        if differs {
            let recorded =
                recorded.map_or("without it".to_string(), |v| format!("with {flag} {v}"));
            bail!(
                "{flag} {}: the run in {} was started {recorded}, and a resumed run keeps its settings; start a new run to change it",
                given.unwrap_or_default(),
                dir.display()
            );
        }
    }
    if !opts.quiet {
        noteln!(
            "note: {} holds no checkpoint yet (its training ended before the first one): the run starts again from step 0 with the settings it recorded",
            dir.display()
        );
    }
    Ok(start)
}

/// Refuses `--channels` or `--size` (given in `asked`) other than `image`'s: `whose` names the
/// model ("the run in DIR"), `keeper` the run that keeps its images ("a resumed run").
fn check_image_flags(
    asked: &DataOptions,
    image: ImageShape,
    whose: &str,
    keeper: &str,
) -> Result<()> {
    for (flag, given, was) in [
        (
            "--channels",
            asked.channels.map(usize::from),
            image.channels,
        ),
        ("--size", asked.size, image.size),
    ] {
        if let Some(g) = given.filter(|&g| g != was) {
            bail!("{flag} {g}: {whose} takes {image} images, and {keeper} keeps them");
        }
    }
    Ok(())
}

/// Where a fine-tuned run (`--init`) starts: its model and the parameters and running
/// statistics of the checkpoint.
struct FineTune {
    spec: ModelSpec,
    values: ModelValues,
}

/// Reads the `--init` checkpoint at `path` (gpu-ae's own `model.safetensors` or an imported
/// one) for a new run that asks for `requested`: its model is the checkpoint's, trained for the
/// task and loss the run asks for (said in a note when they are not the checkpoint's); an
/// architecture flag given (`opts.explicit_flags`) that contradicts it is refused. A run
/// `restarted` from its `run.json` already holds its model in `requested`.
fn fine_tune(
    path: &Path,
    requested: &TrainConfig,
    opts: &RunOptions,
    restarted: bool,
) -> Result<FineTune> {
    if path.is_dir() {
        bail!(
            "--init {}: a folder; give a model file, e.g. --init {}",
            path.display(),
            path.join(MODEL_FILE).display()
        );
    }
    let named = |e: Error| Error::msg(format!("--init: {e}"));
    let ckpt = checkpoint::load(path).map_err(named)?;
    let spec = if restarted {
        requested.spec.clone()
    } else {
        let init = read_spec(&ckpt, path).map_err(named)?;
        let model = TrainConfig {
            spec: init.clone(),
            ..requested.clone()
        };
        // The architecture's flags: the keys of the model's record but the task and loss,
        // which are this run's.
        let arch_keys = spec_keys(&init);
        let flags: Vec<String> = opts
            .explicit_flags
            .iter()
            .filter(|f| arch_keys.contains(f) && !["task", "noise", "loss"].contains(&f.as_str()))
            .cloned()
            .collect();
        let conditional = (init.is_conditional(), opts.conditional);
        if let Some((flag, asked, was)) = differing_setting(&model, requested, &flags)
            .or_else(|| differing_conditional(conditional, &opts.explicit_flags))
        {
            bail!(
                "{flag} {asked}: the model of {} (--init) has {flag} {was}, and a fine-tuned run keeps its model's architecture; leave {flag} out",
                path.display()
            );
        }
        let (task, loss) = (requested.spec.task, requested.spec.loss);
        if (init.task.name(), init.loss) != (task.name(), loss) && !opts.quiet {
            noteln!(
                "note: {} was trained for --task {} --loss {}; this run trains it for --task {} --loss {}",
                path.display(),
                init.task.name(),
                init.loss.name(),
                task.name(),
                loss.name()
            );
        }
        ModelSpec { task, loss, ..init }
    };
    let arch = Architecture::new(spec.clone())
        .map_err(|e| Error::msg(format!("{}: {e}", path.display())))?;
    let values = values_from_checkpoint(&arch, &ckpt, path)?;
    Ok(FineTune { spec, values })
}

/// What a resumed run starts from: its record, its parameters and Adam's moments.
pub struct ResumeState {
    pub record: RunRecord,
    pub values: ModelValues,
    pub moments: (Vec<f32>, Vec<f32>),
}

impl ResumeState {
    /// A run's state from its two checkpoint files, `model_path` and `opt_path` naming them in
    /// errors (read from a run folder, or handed over by the web page).
    pub fn read(
        ckpt: &Checkpoint,
        opt: &Checkpoint,
        model_path: &Path,
        opt_path: &Path,
    ) -> Result<ResumeState> {
        let record = RunRecord::read(ckpt, model_path)?;
        let arch = Architecture::new(record.cfg.spec.clone())
            .map_err(|e| Error::msg(format!("{}: {e}", model_path.display())))?;
        let values = values_from_checkpoint(&arch, ckpt, model_path)?;
        let moment = |name: &str| -> Result<Vec<f32>> {
            match opt.get(name) {
                Some(t) if t.data.len() == arch.params.total => Ok(t.data.clone()),
                _ => bail!("{}: missing or mis-sized tensor {name}", opt_path.display()),
            }
        };
        Ok(ResumeState {
            record,
            values,
            moments: (moment("adam.m")?, moment("adam.v")?),
        })
    }
}

/// Reads the committed checkpoint of `folder` for a resume.
fn resume_state(
    folder: &RunFolder,
    requested: &TrainConfig,
    opts: &RunOptions,
) -> Result<ResumeState> {
    let (ckpt, opt) = folder.load()?;
    let (model, optimizer) = (folder.path(MODEL_FILE), folder.path(OPTIMIZER_FILE));
    let state = ResumeState::read(&ckpt, &opt, &model, &optimizer)?;
    let cfg = &state.record.cfg;
    check_resume_flags(
        cfg,
        requested,
        (cfg.spec.is_conditional(), opts.conditional),
        &opts.explicit_flags,
        folder.dir(),
    )?;
    Ok(state)
}

/// Trains a new run or continues one (`opts.target`), evaluating, checkpointing and logging after
/// every epoch until `opts.epochs` epochs are done or a stop is requested ([`stop`]).
pub async fn run(
    open: impl FnOnce() -> Result<Gpu>,
    cfg: TrainConfig,
    opts: &RunOptions,
) -> Result<RunOutcome> {
    if opts.epochs == 0 {
        bail!("--epochs must be at least 1");
    }
    let resuming = matches!(
        opts.target,
        RunTarget::Folder {
            claim: Claim::Resume,
            ..
        }
    );
    // A new fine-tuned run reads its --init first: its model names a default folder, and a
    // checkpoint that cannot start the run is refused before a folder is touched.
    let mut tuned_new = match (&cfg.init, resuming) {
        (Some(path), false) => Some(fine_tune(path, &cfg, opts, false)?),
        _ => None,
    };
    // Then the folder: a folder that is taken, holds another run or cannot be written is
    // refused before anything slow happens.
    let folder = match &opts.target {
        RunTarget::Default { parent, stamp } => {
            let kind = tuned_new.as_ref().map_or(cfg.spec.kind, |t| t.spec.kind);
            RunFolder::create_unique(parent, &format!("{kind}-{stamp}"))?
        }
        RunTarget::Folder { dir, claim } => RunFolder::claim(dir, *claim)?,
    };
    // A run killed before its first checkpoint starts again with the settings it recorded.
    let restarted;
    let (cfg, opts) = if resuming && !folder.has_checkpoint() {
        let start = restart_settings(&folder, &cfg, opts)?;
        restarted = RunOptions {
            data_dir: Some(opts.data_dir.clone().unwrap_or(start.data)),
            data_options: start.options,
            conditional: start.conditional,
            ..opts.clone()
        };
        let lr = resumed_lr(&start.cfg, &cfg, 0, opts);
        (TrainConfig { lr, ..start.cfg }, &restarted)
    } else {
        (cfg, opts)
    };
    let resume = if resuming && folder.has_checkpoint() {
        Some(resume_state(&folder, &cfg, opts)?)
    } else {
        None
    };
    // A fine-tuned run's model and data shape are its --init checkpoint's.
    let tuned;
    let (cfg, opts, init_values) = match (&resume, &cfg.init) {
        (None, Some(path)) => {
            let FineTune { spec, values } = match tuned_new.take() {
                Some(t) => t,
                // A fine-tuned run killed before its first checkpoint, started again.
                None => fine_tune(path, &cfg, opts, true)?,
            };
            let image = spec.image;
            let whose = format!("the model of {} (--init)", path.display());
            check_image_flags(&opts.data_options, image, &whose, "a fine-tuned run")?;
            if !opts.quiet && !resuming {
                noteln!(
                    "starting from the parameters of {}, with fresh Adam state at step 0",
                    path.display()
                );
            }
            tuned = RunOptions {
                data_options: DataOptions {
                    channels: Some(image.channels as u8),
                    size: Some(image.size),
                    ..opts.data_options
                },
                conditional: spec.is_conditional(),
                ..opts.clone()
            };
            let init = Some(absolute(path));
            (TrainConfig { spec, init, ..cfg }, &tuned, Some(values))
        }
        _ => (cfg, opts, None),
    };
    if !resuming {
        let data_dir = opts.data_dir.clone().unwrap_or_default();
        let start = RunStart {
            cfg: cfg.clone(),
            data: absolute(&data_dir),
            options: opts.data_options,
            conditional: opts.conditional,
        };
        folder.record(&start.to_json())?;
    }
    // Until the first step nothing polls for a stop (decoding and compiling can take minutes):
    // a stop request ends the process at once, the folder as it was.
    let unclaim = folder.unclaim();
    let early_exit = stop::exit_early(move || unclaim.run());
    let first_epoch = resume.as_ref().map_or(0, |r| r.record.epoch);
    let mut history = folder.history()?;
    history.truncate(first_epoch);
    if let Some(r) = &resume {
        // A kill after the last commit point may have left the plot behind.
        folder.refresh_plot(&history, r.record.cfg.spec.loss)?;
    }
    if first_epoch >= opts.epochs {
        bail!(
            "{}: already trained for {first_epoch} epochs; ask for more with --epochs",
            folder.dir().display()
        );
    }
    let recorded = resume.as_ref().and_then(|r| r.record.data.as_ref());
    let data_dir = match (&opts.data_dir, recorded) {
        (Some(d), _) => d.clone(),
        (None, Some(r)) => r.path.clone(),
        (None, None) => bail!(
            "{}: the run does not record its dataset (an older gpu-ae wrote it); pass --data",
            folder.dir().display()
        ),
    };
    // A resumed run reads its images at its own shape, split by its own rule.
    let data_options = match &resume {
        Some(r) => {
            let image = r.record.cfg.spec.image;
            let asked = &opts.data_options;
            let split = recorded.map_or(SplitRule::IdxFiles, |d| d.split);
            let recorded = image.data_options(&split);
            let whose = format!("the run in {}", folder.dir().display());
            check_image_flags(asked, image, &whose, "a resumed run")?;
            let percent = asked.test_percent;
            if opts.explicit_flags.iter().any(|f| f == "test_percent")
                && split
                    != (SplitRule::Hash {
                        test_percent: percent,
                    })
            {
                bail!(
                    "--test-percent {percent}: the run in {} splits its images by {split}, and a resumed run keeps its split",
                    folder.dir().display()
                );
            }
            recorded
        }
        None => opts.data_options,
    };
    // The dataset is read, decompressed and hashed on a second thread while the adapter opens
    // and the pipelines compile; its errors come after theirs.
    let (loaded, gpu) = platform::join(
        || {
            data::load(&data_dir, &data_options).map(|d| {
                let digest = fingerprint::dataset_digest(&d);
                (d, digest)
            })
        },
        || -> Result<Gpu> {
            let gpu = open()?;
            gpu.prepare(kernels::ENTRY_POINTS);
            Ok(gpu)
        },
    );
    let gpu = gpu?;
    let (dataset, digest) = loaded?;
    let data_abs = absolute(&data_dir);
    if let Some(r) = recorded {
        if r.digest != digest && !opts.allow_data_change {
            // Without --data the folder read is the run's own, changed since.
            if opts.data_dir.is_none() {
                bail!(
                    "{}: the run in {} trained on this folder, and its images have changed since ({} then); pass --allow-data-change to continue on them",
                    r.path.display(),
                    folder.dir().display(),
                    r.digest
                );
            }
            bail!(
                "--data {}: these images differ from the ones the run in {} trained on ({}, {}); pass --allow-data-change to continue on them",
                data_dir.display(),
                folder.dir().display(),
                r.path.display(),
                r.digest
            );
        }
        if !opts.quiet && r.path != data_abs && r.digest == digest {
            noteln!(
                "the run's dataset moved from {} to {} (same images)",
                r.path.display(),
                data_abs.display()
            );
        }
    }
    if opts.explicit_flags.iter().any(|f| f == "test_percent")
        && !matches!(dataset.split_rule, SplitRule::Hash { .. })
    {
        bail!(
            "--test-percent {}: {} is split by {}, not by a percentage; leave --test-percent out",
            opts.data_options.test_percent,
            data_dir.display(),
            dataset.split_rule
        );
    }
    if !opts.quiet && dataset.ignored > 0 {
        noteln!(
            "{}: ignored {} file{} that {} not images",
            data_dir.display(),
            dataset.ignored,
            if dataset.ignored == 1 { "" } else { "s" },
            if dataset.ignored == 1 { "is" } else { "are" }
        );
    }
    // An unfinished epoch continues on the same images; on others it starts over.
    let same_images = recorded.is_some_and(|r| r.digest == digest);
    let data_record = DatasetRecord {
        path: data_abs,
        digest,
        split: dataset.split_rule,
    };
    let partial = resume.as_ref().and_then(|r| r.record.partial);
    if let Some(p) = partial
        && !same_images
        && !opts.quiet
    {
        noteln!(
            "epoch {} starts over on these images (its {} steps done on the others stay in the model)",
            first_epoch + 1,
            p.step
        );
    }
    let partial = partial.filter(|_| same_images);
    let gpu = &gpu;
    let steps_per_epoch = |batch: usize| epoch_steps(dataset.train.images.count, batch);
    if let Some(r) = &resume {
        let s = r.record.cfg.schedule;
        let total = opts.epochs * steps_per_epoch(r.record.cfg.batch);
        if s.kind == LrSchedule::Cosine && total != s.horizon_steps as usize {
            bail!(
                "--epochs {}: the run in {} decays its cosine schedule over {} steps, and {} epochs are {total}; resume it with the --epochs it was started with, or start a new run",
                opts.epochs,
                folder.dir().display(),
                s.horizon_steps,
                opts.epochs
            );
        }
    }
    let (cfg, values, moments, steps_done) = match resume {
        Some(r) => (
            TrainConfig {
                lr: resumed_lr(&r.record.cfg, &cfg, first_epoch, opts),
                ..r.record.cfg
            },
            Some(r.values),
            Some(r.moments),
            r.record.steps,
        ),
        // A new model takes the images' shape, and a conditional one its classes, from the data;
        // a fine-tuned one has them.
        None => {
            let spec = if init_values.is_some() {
                cfg.spec
            } else {
                let classes = if opts.conditional {
                    let splits = [&dataset.train, &dataset.test];
                    classes::names(&dataset.classes, &splits, &data_dir)?
                } else {
                    Vec::new()
                };
                let im = &dataset.train.images;
                let image = ImageShape {
                    channels: im.channels,
                    size: im.rows,
                };
                ModelSpec {
                    image,
                    classes,
                    ..cfg.spec
                }
            };
            // The schedule's horizon: every step of the epochs asked for.
            let schedule = cfg
                .schedule
                .over_epochs(opts.epochs, steps_per_epoch(cfg.batch))
                .ok_or_else(|| Error::msg("--epochs: more than 2³² training steps"))?;
            (
                TrainConfig {
                    spec,
                    schedule,
                    ..cfg
                },
                init_values,
                None,
                0,
            )
        }
    };
    // A conditional model's labels are its own classes' indices.
    let mut dataset = dataset;
    if cfg.spec.is_conditional() {
        let names = dataset.classes.clone();
        for split in [&mut dataset.train, &mut dataset.test] {
            split.labels = classes::relabel(&split.labels, &names, &cfg.spec.classes, &data_dir)?;
        }
    }
    let train_split = GpuSplit::upload(gpu, &dataset.train, &data_dir)?;
    let test_split = GpuSplit::upload(gpu, &dataset.test, &data_dir)?;
    let mut trainer = Trainer::new(gpu, cfg.clone(), train_split, values, moments, steps_done)?;
    let evaluator = Evaluator::new(
        gpu,
        &trainer.model,
        &test_split,
        opts.eval_batch,
        cfg.seed as u32,
        cfg.binarize,
    )?;
    // From here the training loop takes stop requests.
    drop(early_exit);
    let progress = Resumed {
        first_epoch,
        history,
        partial,
    };
    train_epochs(
        gpu,
        &mut trainer,
        &evaluator,
        &folder,
        opts,
        progress,
        &data_record,
    )
    .await
}

/// Where the epochs of a run start: the epochs done, their metrics lines, and the steps of the
/// next one that a checkpoint inside it kept.
struct Resumed {
    first_epoch: usize,
    history: Vec<serde_json::Value>,
    partial: Option<PartialEpoch>,
}

/// Trains epochs `from.first_epoch..opts.epochs`, evaluating, checkpointing and logging each;
/// every checkpoint records `data`.
async fn train_epochs(
    gpu: &Gpu,
    trainer: &mut Trainer<'_>,
    evaluator: &Evaluator<'_>,
    folder: &RunFolder,
    opts: &RunOptions,
    from: Resumed,
    data: &DatasetRecord,
) -> Result<RunOutcome> {
    let dir = folder.dir().to_path_buf();
    let cfg = trainer.cfg.clone();
    let loss = cfg.spec.loss;
    let Resumed {
        first_epoch,
        mut history,
        partial,
    } = from;
    let steps = trainer.steps_per_epoch();
    if !opts.quiet {
        noteln!(
            "{} L={} task={}{}{}: {} parameters, {steps} step{} per epoch of {} images, run folder {}",
            cfg.spec.kind,
            trainer.model.arch.code_len(),
            cfg.spec.task.name(),
            match trainer.model.arch.classes() {
                0 => String::new(),
                k => format!(", conditional on {k} classes"),
            },
            if cfg.binarize == Binarize::Dynamic {
                ", binarised images"
            } else {
                ""
            },
            trainer.model.arch.params.total,
            if steps == 1 { "" } else { "s" },
            trainer.batch(),
            dir.display()
        );
        if trainer.batch() < cfg.batch {
            noteln!(
                "note: --batch {}: the run has only {} training images, so each step takes all of them (the run records --batch {})",
                cfg.batch,
                trainer.batch(),
                cfg.batch
            );
        }
    }
    if let Some(p) = &partial
        && !opts.quiet
    {
        noteln!(
            "continuing epoch {} at step {} of {steps}, where its checkpoint was written",
            first_epoch + 1,
            p.step
        );
    }
    let mut partial = partial;
    for epoch in first_epoch..opts.epochs {
        let mut progress = Progress::new(steps, epoch, opts.epochs, opts.quiet);
        // The epoch so far: the steps a checkpoint inside it kept, then each call's.
        let mut done = TrainProgress::start(epoch, steps, f64::from(cfg.beta), partial.take());
        let train = loop {
            let (since, steps_before, first) = (Instant::now(), trainer.steps_done, done.step);
            let stop_requested = |step: usize| {
                stop::requested() || stop::test_step_reached(steps_before + (step - first) as u64)
            };
            // A checkpoint is due after `opts.checkpoint_seconds` of steps (at least one).
            let due = |step: usize| {
                stop_requested(step)
                    || (step > first && since.elapsed().as_secs_f64() >= opts.checkpoint_seconds)
            };
            // The epoch's sums so far go on in the GPU's accumulator, as in one call.
            let end = trainer
                .continue_epoch(&done, &due, &mut |p| progress.update(p))
                .await?;
            let EpochEnd::Stopped(so_far) = end else {
                break *end.progress();
            };
            done = so_far;
            if done.step > 0 {
                let figures = history.last().map(test_figures).unwrap_or_default();
                let partial = Some(done.partial());
                let (model, optimizer) = trainer.checkpoint(epoch, partial, data, figures).await?;
                folder.save(&model, &optimizer, &history, loss)?;
            }
            if stop_requested(done.step) {
                progress.finish();
                return Ok(interrupted(folder, epoch, done.step, steps));
            }
        };
        progress.finish();
        let test = evaluator.run(gpu).await?;
        if !test.total().is_finite() {
            bail!(
                "epoch {}: the test loss is not finite; the last good checkpoint stays in {}",
                epoch + 1,
                dir.display()
            );
        }
        let line = metrics_line(epoch, &train, &test, &cfg, trainer.steps_done);
        let figures = test_figures(&line);
        history.push(line);
        let (model, optimizer) = trainer.checkpoint(epoch + 1, None, data, figures).await?;
        folder.save(&model, &optimizer, &history, loss)?;
        if !opts.quiet {
            let kl = test
                .kl
                .map(|k| format!(" KL {k:.2} −ELBO {:.2}", test.total()))
                .unwrap_or_default();
            noteln!(
                "epoch {}/{}: {:.1} s, {:.0} img/s, train loss {:.2}; test {} {:.2}{kl} PSNR {:.2} dB",
                epoch + 1,
                opts.epochs,
                train.seconds,
                train.images as f64 / train.seconds,
                train.mean_loss(),
                loss.name().to_uppercase(),
                test.rec,
                test.psnr
            );
        }
        if stop::requested() && epoch + 1 < opts.epochs {
            return Ok(interrupted(folder, epoch + 1, 0, steps));
        }
    }
    Ok(RunOutcome::Finished { dir })
}

/// The test figures of a metrics line (`test_bce`, `test_kl`, …), which checkpoints record.
fn test_figures(line: &serde_json::Value) -> BTreeMap<String, f64> {
    line.as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| k.starts_with("test_"))
        .filter_map(|(k, v)| Some((k.clone(), v.as_f64()?)))
        .collect()
}

/// The outcome of a stop request with `epochs_kept` epochs and `steps_kept` of the
/// `steps_per_epoch` steps of the next checkpointed.
fn interrupted(
    folder: &RunFolder,
    epochs_kept: usize,
    steps_kept: usize,
    steps_per_epoch: usize,
) -> RunOutcome {
    RunOutcome::Interrupted {
        dir: folder.dir().to_path_buf(),
        epochs_kept,
        steps_kept,
        steps_per_epoch,
        folder_removed: epochs_kept == 0 && steps_kept == 0 && folder.is_new(),
    }
}

/// Seconds between progress lines when stderr is not a terminal (a log file, a pipe).
const LOG_LINE_SECONDS: f64 = 10.0;

/// An epoch's progress: a bar with an ETA on a terminal, otherwise a line every
/// [`LOG_LINE_SECONDS`] so that logs show progress.
struct Progress {
    bar: indicatif::ProgressBar,
    log: bool,
    last_line: f64,
    epoch: usize,
    epochs: usize,
}

impl Progress {
    fn new(steps: usize, epoch: usize, epochs: usize, quiet: bool) -> Progress {
        let tty = std::io::stderr().is_terminal();
        let bar = if quiet || !tty {
            indicatif::ProgressBar::hidden()
        } else {
            let bar = indicatif::ProgressBar::new(steps as u64);
            bar.set_style(
                indicatif::ProgressStyle::with_template(&format!(
                    "epoch {}/{epochs} [{{bar:30}}] step {{pos}}/{{len}} {{msg}} ETA {{eta}}",
                    epoch + 1
                ))
                .expect("valid template")
                .progress_chars("=> "),
            );
            bar
        };
        Progress {
            bar,
            log: !quiet && !tty,
            last_line: 0.0,
            epoch,
            epochs,
        }
    }

    fn update(&mut self, p: &TrainProgress) {
        let rate = p.images as f64 / p.seconds.max(1e-9);
        self.bar.set_position(p.step as u64);
        self.bar
            .set_message(format!("{rate:.0} img/s  loss {:.2}", p.mean_loss()));
        if self.log && p.seconds - self.last_line >= LOG_LINE_SECONDS && p.step < p.steps {
            self.last_line = p.seconds;
            let left = p.seconds / p.step.max(1) as f64 * (p.steps - p.step) as f64;
            noteln!(
                "epoch {}/{}: step {}/{}, {rate:.0} img/s, loss {:.2}, about {left:.0} s left in this epoch",
                self.epoch + 1,
                self.epochs,
                p.step,
                p.steps,
                p.mean_loss()
            );
        }
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
