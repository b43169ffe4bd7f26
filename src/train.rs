//! Training: the whole step (data gather, forward, loss, backward, Adam, step counter) recorded
//! once as one plan and replayed many times per submission; losses summed on the GPU and read
//! back asynchronously once per submission for the progress bar and the NaN guard. Also a whole
//! training run ([`run`]): the folder ([`crate::run`]), resume and its checks (settings, dataset
//! digest), evaluation, checkpoints and metrics after every epoch, progress, stop requests.

use crate::checkpoint::{self, Checkpoint, NamedTensor};
use crate::counter_rng::STREAM_REPARAM;
use crate::data::{Binarize, DataOptions, SplitRule};
use crate::error::{Error, Result};
use crate::evaluate::{EvalMetrics, Evaluator};
use crate::gpu::{Elem, Gpu, Plan, Tensor};
use crate::gpu_split::GpuSplit;
use crate::graph::{Graph, Model, ModelValues, Purpose, values_from_checkpoint};
use crate::host_rng::SplitMix64;
use crate::kernels::adam::{self, AdamConfig};
use crate::kernels::{self, reduce, step};
use crate::metadata::{self, DatasetRecord, RunRecord};
use crate::models::{Architecture, ImageShape, ModelSpec, Task, value_name};
use crate::platform::{self, Instant};
pub use crate::run::{Claim, METRICS_FILE, MODEL_FILE, OPTIMIZER_FILE, RunFolder};
use crate::split_plans::batches;
use crate::{bail, classes, data, fingerprint, noteln, stop};
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

/// Hyper-parameters of a run (stored in every checkpoint's metadata).
#[derive(Debug, Clone, PartialEq)]
pub struct TrainConfig {
    pub spec: ModelSpec,
    pub batch: usize,
    pub lr: f32,
    pub seed: u64,
    /// Storage of activations and their gradients (`--precision`); see [`Graph`].
    pub precision: Elem,
    /// Weight of the KL divergence in the training loss (`--beta`; 1: the negative ELBO).
    pub beta: f32,
    /// Binarised training images (`--binarize`), and then a binarised test set.
    pub binarize: Binarize,
}

/// Loss sums of one epoch so far.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct TrainProgress {
    pub epoch: usize,
    pub step: usize,
    pub steps: usize,
    pub images: usize,
    pub rec_sum: f64,
    pub kl_sum: f64,
    /// β: the KL sum's weight in the training loss.
    pub kl_weight: f64,
    pub seconds: f64,
}

impl TrainProgress {
    /// The training loss per image: reconstruction + β·KL.
    pub fn mean_loss(&self) -> f64 {
        (self.rec_sum + self.kl_weight * self.kl_sum) / self.images.max(1) as f64
    }
}

/// Loads a self-describing checkpoint onto the GPU.
pub fn load_model(gpu: &Gpu, path: &Path) -> Result<(Model, Checkpoint)> {
    let ckpt = checkpoint::load(path)?;
    let spec = metadata::read_spec(&ckpt, path)?;
    let arch =
        Architecture::new(spec).map_err(|e| Error::msg(format!("{}: {e}", path.display())))?;
    let values = values_from_checkpoint(&arch, &ckpt, path)?;
    Ok((Model::upload(gpu, arch, &values)?, ckpt))
}

struct StepPlan {
    plan: Plan,
    n: usize,
}

/// Everything a training run holds on the GPU.
pub struct Trainer<'g> {
    gpu: &'g Gpu,
    pub cfg: TrainConfig,
    pub model: Model,
    /// `[P]` gradients, Adam moments; same offsets as the parameters.
    grads: Tensor,
    m: Tensor,
    v: Tensor,
    /// u32 `[4]`: steps done, batch within the epoch.
    state: Tensor,
    /// `[4]`: reconstruction and KL sums of the current epoch.
    acc: Tensor,
    train: GpuSplit,
    full: Option<StepPlan>,
    tail: Option<StepPlan>,
    full_batches: usize,
    /// Images the GPU holds at once: all of them, or a chunk of whole batches when the split
    /// is streamed.
    chunk_images: usize,
    /// Steps done so far (Adam's t), mirrored on the host.
    pub steps_done: u64,
    staging: [wgpu::Buffer; 2],
}

const PERM_PURPOSE: u64 = 0x7065_726d;

impl<'g> Trainer<'g> {
    /// Compiles every pipeline ([`Gpu::prepare`]), uploads the parameters and records the step
    /// plans over the uploaded training split. `values` (parameters and running statistics) and
    /// `moments` (Adam m, v) start a fresh run when None.
    pub fn new(
        gpu: &'g Gpu,
        cfg: TrainConfig,
        train: GpuSplit,
        values: Option<ModelValues>,
        moments: Option<(Vec<f32>, Vec<f32>)>,
        steps_done: u64,
    ) -> Result<Trainer<'g>> {
        let arch = Architecture::new(cfg.spec.clone())?;
        if cfg.batch == 0 {
            bail!("--batch must be at least 1");
        }
        train.check_model(&cfg.spec.image)?;
        // Every pipeline at once, on all cores (a no-op when the caller already did it).
        gpu.prepare(kernels::ENTRY_POINTS);
        let p = arch.params.total;
        let values = values.unwrap_or_else(|| ModelValues::init(&arch, cfg.seed));
        let model = Model::upload(gpu, arch, &values)?;
        let grads = Tensor::zeros(gpu, &[p], "gradients")?;
        let (m, v) = match moments {
            Some((m, v)) => (
                Tensor::from_f32(gpu, &[p], &m, "adam m")?,
                Tensor::from_f32(gpu, &[p], &v, "adam v")?,
            ),
            None => (
                Tensor::zeros(gpu, &[p], "adam m")?,
                Tensor::zeros(gpu, &[p], "adam v")?,
            ),
        };
        let state = Tensor::zeros(gpu, &[step::STATE_LEN], "step state")?;
        let acc = Tensor::zeros(gpu, &[4], "loss sums")?;
        let batch = cfg.batch.min(train.count);
        let (full_batches, tail_n) = batches(train.count, batch);
        let chunk_images = train.plan_chunks(gpu, batch)?;
        let staging = std::array::from_fn(|i| {
            gpu.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(if i == 0 {
                    "loss readback 0"
                } else {
                    "loss readback 1"
                }),
                size: 16,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        });
        let mut t = Trainer {
            gpu,
            cfg: TrainConfig { batch, ..cfg },
            model,
            grads,
            m,
            v,
            state,
            acc,
            train,
            full: None,
            tail: None,
            full_batches,
            chunk_images,
            steps_done,
            staging,
        };
        if full_batches > 0 {
            t.full = Some(t.build_step(batch)?);
        }
        if tail_n > 0 {
            t.tail = Some(t.build_step(tail_n)?);
        }
        Ok(t)
    }

    /// Records one whole training step for batch size `n`.
    fn build_step(&self, n: usize) -> Result<StepPlan> {
        let gpu = self.gpu;
        let arch = &self.model.arch;
        let seed = self.cfg.seed as u32;
        let g = Graph::new(gpu, arch, n, Purpose::Train, self.cfg.precision)?;
        let mut plan = Plan::new();
        let binarize = (self.cfg.binarize == Binarize::Dynamic).then_some(seed);
        g.record_data(
            &mut plan,
            gpu,
            arch,
            &self.train.source(self.cfg.batch),
            &self.state,
            seed,
            binarize,
        );
        g.record_encode(
            &mut plan,
            gpu,
            &self.model,
            &self.state,
            seed,
            STREAM_REPARAM,
            true,
        )?;
        g.record_decode(&mut plan, gpu, &self.model)?;
        g.record_loss(&mut plan, gpu, arch);
        reduce::sum_into(&mut plan, gpu, &self.acc, 0, &g.rec, g.kl(), n);
        g.record_backward(&mut plan, gpu, &self.model, &self.grads, self.cfg.beta)?;
        adam::step(
            &mut plan,
            gpu,
            &self.model.params,
            &self.m,
            &self.v,
            &self.grads,
            &self.state,
            AdamConfig {
                lr: self.cfg.lr,
                ..AdamConfig::default()
            },
            arch.params.total,
        );
        step::advance(&mut plan, gpu, &self.state);
        plan.compile(gpu);
        Ok(StepPlan { plan, n })
    }

    pub fn steps_per_epoch(&self) -> usize {
        self.full_batches + usize::from(self.tail.is_some())
    }

    /// The plan of a full-batch step (for profiling and dispatch counts).
    pub fn step_plan(&self) -> &Plan {
        &self
            .full
            .as_ref()
            .or(self.tail.as_ref())
            .expect("one plan")
            .plan
    }

    /// (dispatches, bound storage bytes) of one epoch: every full-batch step plus the tail step.
    pub fn epoch_totals(&self) -> (usize, u64) {
        let steps = [(&self.full, self.full_batches), (&self.tail, 1)];
        steps
            .iter()
            .filter_map(|(sp, count)| sp.as_ref().map(|sp| (&sp.plan, *count)))
            .fold((0, 0), |(d, b), (plan, count)| {
                (
                    d + plan.len() * count,
                    b + plan.bound_bytes() * count as u64,
                )
            })
    }

    pub fn images_per_epoch(&self) -> usize {
        self.train.count
    }

    /// Trains epoch `epoch` (0-based) from its step `first_step` (0, or where a stopped call
    /// on the same epoch left off: the same shuffle, no step repeated or skipped), calling
    /// `report` after each submission's losses arrive (the next submission already queued);
    /// the losses and image counts reported are those of this call's steps. Fails on a NaN or
    /// infinite loss. Returns `None`, the epoch unfinished, when `stop` says so before a
    /// submission (natively [`stop::requested`]; a web page's pause button); the steps
    /// submitted until then count in [`Trainer::steps_done`].
    pub async fn run_epoch(
        &mut self,
        epoch: usize,
        first_step: usize,
        stop: &dyn Fn() -> bool,
        report: &mut dyn FnMut(&TrainProgress),
    ) -> Result<Option<TrainProgress>> {
        let gpu = self.gpu;
        let perm = SplitMix64::derived(self.cfg.seed, PERM_PURPOSE, epoch as u64)
            .permutation(self.train.count);
        self.train.set_order(gpu, &perm);
        // A streamed split: each chunk's images are packed and queued before its first step
        // (the next one while the GPU still works on this one); submissions end at chunks.
        let streamed = self.train.is_streamed();
        let chunk_steps = self.chunk_images / self.cfg.batch;
        let steps = self.steps_per_epoch();
        if first_step >= steps {
            bail!("epoch {epoch} has {steps} steps; it cannot start at step {first_step}");
        }
        // The chunk that holds the first step (a streamed split's perm maps visits into it).
        let chunk_first = if streamed {
            first_step / chunk_steps * chunk_steps
        } else {
            0
        };
        self.train.load_chunk(
            gpu,
            Some(&perm),
            chunk_first * self.cfg.batch,
            self.chunk_images,
        );
        let state = [self.steps_done as u32, first_step as u32, 0, 0];
        gpu.queue
            .write_buffer(&self.state.buffer, 0, bytemuck::cast_slice(&state));
        gpu.queue
            .write_buffer(&self.acc.buffer, 0, bytemuck::cast_slice(&[0f32; 4]));

        let start = Instant::now();
        let mut progress = TrainProgress {
            epoch,
            steps,
            kl_weight: self.cfg.beta as f64,
            ..Default::default()
        };
        // (staging index, steps done after that submission, images done, submission index)
        let mut pending: Option<(usize, usize, usize, wgpu::SubmissionIndex)> = None;
        let mut per_submit = 1usize;
        let mut next = first_step;
        let mut images = 0usize;
        let mut submits = 0usize;
        while next < steps {
            if stop() {
                self.steps_done += (next - first_step) as u64;
                return Ok(None);
            }
            let mut end = (next + per_submit).min(steps);
            if streamed {
                end = end.min((next / chunk_steps + 1) * chunk_steps);
            }
            let mut encoder = gpu
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("train"),
                });
            {
                let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some("train steps"),
                    timestamp_writes: None,
                });
                for s in next..end {
                    let sp = if s < self.full_batches {
                        self.full.as_ref()
                    } else {
                        self.tail.as_ref()
                    }
                    .expect("a plan for every step");
                    sp.plan.record(&mut pass);
                    images += sp.n;
                }
            }
            let slot = submits % 2;
            encoder.copy_buffer_to_buffer(&self.acc.buffer, 0, &self.staging[slot], 0, 16);
            let index = gpu.queue.submit([encoder.finish()]);
            submits += 1;
            next = end;
            if streamed && next < steps && next.is_multiple_of(chunk_steps) {
                let start = next * self.cfg.batch;
                self.train
                    .load_chunk(gpu, Some(&perm), start, self.chunk_images);
            }
            if let Some(prev) = pending.take() {
                self.collect(prev, &mut progress, start).await?;
                report(&progress);
                // Aim for about a quarter second of GPU work per submission.
                let per_step = progress.seconds / (progress.step - first_step).max(1) as f64;
                per_submit = ((0.25 / per_step.max(1e-6)) as usize).clamp(1, 64);
            }
            pending = Some((slot, end, images, index));
        }
        if let Some(prev) = pending.take() {
            self.collect(prev, &mut progress, start).await?;
            report(&progress);
        }
        self.steps_done += (steps - first_step) as u64;
        Ok(Some(progress))
    }

    /// Waits for a submission's loss copy, reads it and checks it is finite.
    async fn collect(
        &self,
        (slot, step, images, index): (usize, usize, usize, wgpu::SubmissionIndex),
        progress: &mut TrainProgress,
        start: Instant,
    ) -> Result<()> {
        let staging = &self.staging[slot];
        platform::mapped(&self.gpu.device, staging, Some(index))
            .await
            .map_err(|e| {
                Error::msg(format!("{}: loss readback failed: {e}", self.gpu.info.name))
            })?;
        let sums: [f32; 4] = {
            let view = staging
                .slice(..)
                .get_mapped_range()
                .map_err(|e| Error::msg(format!("loss readback failed: {e}")))?;
            *bytemuck::from_bytes(&view[..16])
        };
        staging.unmap();
        progress.step = step;
        progress.images = images;
        progress.rec_sum = sums[0] as f64;
        progress.kl_sum = sums[1] as f64;
        progress.seconds = start.elapsed().as_secs_f64();
        if !sums[0].is_finite() || !sums[1].is_finite() {
            bail!(
                "training diverged in epoch {} by step {}: the loss became {}; try a lower --lr",
                progress.epoch + 1,
                step,
                if sums[0].is_nan() || sums[1].is_nan() {
                    "NaN"
                } else {
                    "infinite"
                }
            );
        }
        Ok(())
    }

    /// Adam moments `(m, v)`.
    pub async fn moments(&self) -> Result<(Vec<f32>, Vec<f32>)> {
        Ok((
            self.m.fetch_f32(self.gpu).await?,
            self.v.fetch_f32(self.gpu).await?,
        ))
    }

    /// The checkpoint after `epoch` epochs: the model (PyTorch names) and Adam's moments, both
    /// with the run's record in their metadata (settings, progress, `data`, `test` figures).
    pub async fn checkpoint(
        &self,
        epoch: usize,
        data: &DatasetRecord,
        test: BTreeMap<String, f64>,
    ) -> Result<(Checkpoint, Checkpoint)> {
        let meta = RunRecord {
            cfg: self.cfg.clone(),
            epoch,
            steps: self.steps_done,
            data: Some(data.clone()),
            test,
        }
        .to_metadata();
        let (m, v) = self.moments().await?;
        let p = self.model.arch.params.total;
        let optimizer = Checkpoint {
            tensors: vec![
                NamedTensor::f32("adam.m", &[p], m),
                NamedTensor::f32("adam.v", &[p], v),
            ],
            metadata: meta.clone(),
        };
        let model = Checkpoint {
            tensors: self.model.named_tensors(self.gpu, self.steps_done).await?,
            metadata: meta,
        };
        Ok((model, optimizer))
    }
}

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
}

/// How a training ended without an error.
#[derive(Debug, Clone, PartialEq)]
pub enum RunOutcome {
    /// Every requested epoch is done.
    Finished { dir: PathBuf },
    /// A stop was requested ([`stop`]); `epochs_kept` epochs are checkpointed in `dir`, and the
    /// folder is gone when it was new and kept nothing.
    Interrupted {
        dir: PathBuf,
        epochs_kept: usize,
        folder_removed: bool,
    },
}

/// One epoch's line of `metrics.jsonl`.
fn metrics_line(
    epoch: usize,
    train: &TrainProgress,
    test: &EvalMetrics,
    cfg: &TrainConfig,
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
    v[format!("train_{rec}")] = (train.rec_sum / n).into();
    v[format!("test_{rec}")] = test.rec.into();
    if let Some(kl) = test.kl {
        v["train_kl"] = (train.kl_sum / n).into();
        v["test_kl"] = kl.into();
        v["test_neg_elbo"] = test.total().into();
    }
    v
}

/// Refuses settings flags given with `--resume` that differ from the run's own: a resumed run
/// keeps the settings it was started with, all but the learning rate (see [`resumed_lr`]).
fn check_resume_flags(
    recorded: &TrainConfig,
    requested: &TrainConfig,
    conditional: bool,
    explicit: &[String],
    dir: &Path,
) -> Result<()> {
    let (r, q) = (recorded, requested);
    for flag in explicit {
        let (was, asked) = match flag.as_str() {
            "model" => (
                r.spec.kind.name().to_string(),
                q.spec.kind.name().to_string(),
            ),
            "latent" => (r.spec.latent.to_string(), q.spec.latent.to_string()),
            "norm" => (value_name(&r.spec.norm), value_name(&q.spec.norm)),
            "act" => (value_name(&r.spec.act), value_name(&q.spec.act)),
            "widths" => (
                metadata::join_widths(&r.spec.widths),
                metadata::join_widths(&q.spec.widths),
            ),
            "task" => (
                r.spec.task.name().to_string(),
                q.spec.task.name().to_string(),
            ),
            "noise" => match (r.spec.task, q.spec.task) {
                (Task::Denoise { noise: a }, Task::Denoise { noise: b }) => {
                    (a.to_string(), b.to_string())
                }
                _ => continue,
            },
            "loss" => (
                r.spec.loss.name().to_string(),
                q.spec.loss.name().to_string(),
            ),
            "batch" => (r.batch.to_string(), q.batch.to_string()),
            "beta" => (r.beta.to_string(), q.beta.to_string()),
            "seed" => (r.seed.to_string(), q.seed.to_string()),
            "precision" => (
                r.precision.wgsl().to_string(),
                q.precision.wgsl().to_string(),
            ),
            "binarize" => (value_name(&r.binarize), value_name(&q.binarize)),
            "conditional" => (r.spec.is_conditional().to_string(), conditional.to_string()),
            _ => continue,
        };
        if was != asked {
            bail!(
                "--{flag} {asked}: the run in {} was trained with --{flag} {was}, and a resumed run keeps its settings; start a new run to change it",
                dir.display()
            );
        }
    }
    Ok(())
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
            "learning rate {} from epoch {} (the run's epochs so far used {})",
            requested.lr,
            first_epoch + 1,
            recorded.lr
        );
    }
    requested.lr
}

/// What a resumed run starts from.
struct ResumeState {
    record: RunRecord,
    values: ModelValues,
    moments: (Vec<f32>, Vec<f32>),
}

/// Reads the committed checkpoint of `folder` for a resume.
fn resume_state(
    folder: &RunFolder,
    requested: &TrainConfig,
    opts: &RunOptions,
) -> Result<ResumeState> {
    let (ckpt, opt) = folder.load()?;
    let model_path = folder.path(MODEL_FILE);
    let record = RunRecord::read(&ckpt, &model_path)?;
    check_resume_flags(
        &record.cfg,
        requested,
        opts.conditional,
        &opts.explicit_flags,
        folder.dir(),
    )?;
    let arch = Architecture::new(record.cfg.spec.clone())
        .map_err(|e| Error::msg(format!("{}: {e}", model_path.display())))?;
    let values = values_from_checkpoint(&arch, &ckpt, &model_path)?;
    let opt_path = folder.path(OPTIMIZER_FILE);
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
    // The folder first: a folder that is taken, holds another run or cannot be written is
    // refused before anything slow happens.
    let folder = match &opts.target {
        RunTarget::Default { parent, stamp } => {
            RunFolder::create_unique(parent, &format!("{}-{stamp}", cfg.spec.kind))?
        }
        RunTarget::Folder { dir, claim } => RunFolder::claim(dir, *claim)?,
    };
    let resume = match &opts.target {
        RunTarget::Folder {
            claim: Claim::Resume,
            ..
        } => Some(resume_state(&folder, &cfg, opts)?),
        _ => None,
    };
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
            let recorded = DataOptions::for_model(image, &split);
            for (flag, given, was) in [
                (
                    "--channels",
                    asked.channels.map(usize::from),
                    image.channels,
                ),
                ("--size", asked.size, image.size),
            ] {
                if given.is_some_and(|g| g != was) {
                    bail!(
                        "{flag} {}: the run in {} takes {image} images, and a resumed run keeps them",
                        given.unwrap_or_default(),
                        folder.dir().display()
                    );
                }
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
    // The dataset's path as recorded in the run: without `..` or links where it resolves.
    let data_abs = data_dir
        .canonicalize()
        .or_else(|_| std::path::absolute(&data_dir))
        .unwrap_or_else(|_| data_dir.clone());
    if let Some(r) = recorded {
        if r.digest != digest && !opts.allow_data_change {
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
    if !opts.quiet && dataset.ignored > 0 {
        noteln!(
            "{}: ignored {} file{} that {} not images",
            data_dir.display(),
            dataset.ignored,
            if dataset.ignored == 1 { "" } else { "s" },
            if dataset.ignored == 1 { "is" } else { "are" }
        );
    }
    let data_record = DatasetRecord {
        path: data_abs,
        digest,
        split: dataset.split_rule,
    };
    let gpu = &gpu;
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
        // A new model takes the images' shape, and a conditional one its classes, from the data.
        None => {
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
            let spec = ModelSpec {
                image,
                classes,
                ..cfg.spec
            };
            (TrainConfig { spec, ..cfg }, None, None, 0)
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
    let progress = Resumed {
        first_epoch,
        history,
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

/// Where the epochs of a run start: the epochs done and their metrics lines.
struct Resumed {
    first_epoch: usize,
    history: Vec<serde_json::Value>,
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
            trainer.cfg.batch,
            dir.display()
        );
    }
    for epoch in first_epoch..opts.epochs {
        let mut progress = Progress::new(steps, epoch, opts.epochs, opts.quiet);
        let Some(train) = trainer
            .run_epoch(epoch, 0, &stop::requested, &mut |p| progress.update(p))
            .await?
        else {
            progress.finish();
            return Ok(interrupted(folder, epoch));
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
        let line = metrics_line(epoch, &train, &test, &cfg);
        let figures = line
            .as_object()
            .expect("object")
            .iter()
            .filter(|(k, _)| k.starts_with("test_"))
            .filter_map(|(k, v)| Some((k.clone(), v.as_f64()?)))
            .collect();
        history.push(line);
        let (model, optimizer) = trainer.checkpoint(epoch + 1, data, figures).await?;
        folder.save(&model, &optimizer, &history, loss)?;
        if !opts.quiet {
            let kl = test
                .kl
                .map(|k| format!(" KL {k:.2} −ELBO {:.2}", test.total()))
                .unwrap_or_default();
            noteln!(
                "epoch {}/{}: {:.1} s, {:.0} img/s, train loss {:.2}; test {} {:.2}{kl}",
                epoch + 1,
                opts.epochs,
                train.seconds,
                train.images as f64 / train.seconds,
                train.mean_loss(),
                loss.name().to_uppercase(),
                test.rec
            );
        }
        if stop::requested() && epoch + 1 < opts.epochs {
            return Ok(interrupted(folder, epoch + 1));
        }
    }
    Ok(RunOutcome::Finished { dir })
}

/// The outcome of a stop request with `epochs_kept` epochs checkpointed.
fn interrupted(folder: &RunFolder, epochs_kept: usize) -> RunOutcome {
    RunOutcome::Interrupted {
        dir: folder.dir().to_path_buf(),
        epochs_kept,
        folder_removed: epochs_kept == 0 && folder.is_new(),
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
