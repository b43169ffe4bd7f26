//! Training: the whole step (data gather, forward, loss, backward, Adam, step counter) recorded
//! once as one plan and replayed many times per submission; losses summed on the GPU and read
//! back asynchronously once per submission for the progress bar and the NaN guard. Also the
//! run folder: checkpoints written atomically each epoch, `metrics.jsonl`, `loss.png`, resume.

use crate::bail;
use crate::checkpoint::{self, Checkpoint, NamedTensor};
use crate::data;
use crate::error::{Error, Result};
use crate::evaluate::{EvalMetrics, Evaluator, GpuSplit, batches};
use crate::gpu::{Elem, Gpu, Plan, Tensor};
use crate::graph::{Graph, Model, values_from_checkpoint};
use crate::host_rng::SplitMix64;
use crate::kernels::adam::{self, AdamConfig};
use crate::kernels::{self, reduce, step};
use crate::models::{Architecture, LossKind, ModelKind, ModelSpec, Task};
use crate::reference::rng::STREAM_REPARAM;
use crate::viz;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// File names inside a run folder.
pub const MODEL_FILE: &str = "model.safetensors";
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";
pub const METRICS_FILE: &str = "metrics.jsonl";
pub const LOSS_PLOT_FILE: &str = "loss.png";

/// Checkpoint format tag in the safetensors metadata.
pub const FORMAT: &str = "gpu-ae/1";

/// Hyper-parameters of a run (stored in every checkpoint's metadata).
#[derive(Debug, Clone, PartialEq)]
pub struct TrainConfig {
    pub spec: ModelSpec,
    pub batch: usize,
    pub lr: f32,
    pub seed: u64,
    /// Storage of activations and their gradients (`--precision`); see [`Graph`].
    pub precision: Elem,
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
    pub seconds: f64,
}

impl TrainProgress {
    pub fn mean_loss(&self) -> f64 {
        (self.rec_sum + self.kl_sum) / self.images.max(1) as f64
    }
}

/// Metadata keys that describe the model (everything else is training state).
pub fn spec_metadata(spec: &ModelSpec) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    m.insert("format".into(), FORMAT.into());
    m.insert("model".into(), spec.kind.name().into());
    m.insert("latent".into(), spec.latent.to_string());
    m.insert("task".into(), spec.task.name().into());
    if let Task::Denoise { noise } = spec.task {
        m.insert("noise".into(), noise.to_string());
    }
    m.insert("loss".into(), spec.loss.name().into());
    m
}

/// Reads the model description back from checkpoint metadata.
pub fn spec_from_metadata(ckpt: &Checkpoint, path: &Path) -> Result<ModelSpec> {
    let get = |key: &str| -> Result<&str> {
        ckpt.meta(key).ok_or_else(|| {
            Error::msg(format!(
                "{}: not a gpu-ae checkpoint (metadata has no {key:?})",
                path.display()
            ))
        })
    };
    let bad =
        |key: &str, v: &str| Error::msg(format!("{}: bad {key} {v:?} in metadata", path.display()));
    let kind: ModelKind = get("model")?
        .parse()
        .map_err(|e: Error| Error::msg(format!("{}: {e}", path.display())))?;
    let latent_s = get("latent")?;
    let latent = latent_s.parse().map_err(|_| bad("latent", latent_s))?;
    let noise = match ckpt.meta("noise") {
        Some(v) => v.parse().map_err(|_| bad("noise", v))?,
        None => 0.5,
    };
    let task = Task::parse(get("task")?, noise)
        .map_err(|e| Error::msg(format!("{}: {e}", path.display())))?;
    let loss: LossKind = match ckpt.meta("loss") {
        Some(v) => v.parse().map_err(|_| bad("loss", v))?,
        None => LossKind::Bce,
    };
    Ok(ModelSpec {
        kind,
        latent,
        task,
        loss,
    })
}

/// Loads a self-describing checkpoint onto the GPU.
pub fn load_model(gpu: &Gpu, path: &Path) -> Result<(Model, Checkpoint)> {
    let ckpt = checkpoint::load(path)?;
    let spec = spec_from_metadata(&ckpt, path)?;
    let arch =
        Architecture::new(spec).map_err(|e| Error::msg(format!("{}: {e}", path.display())))?;
    let values = values_from_checkpoint(&arch, &ckpt, path)?;
    Ok((Model::new(gpu, arch, &values)?, ckpt))
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
    /// Steps done so far (Adam's t), mirrored on the host.
    pub steps_done: u64,
    staging: [wgpu::Buffer; 2],
}

const PERM_PURPOSE: u64 = 0x7065_726d;

impl<'g> Trainer<'g> {
    /// Compiles every pipeline ([`Gpu::prepare`]), uploads the parameters and records the step
    /// plans over the uploaded training split. `params` and `moments` (Adam m, v) start a fresh
    /// run when None.
    pub fn new(
        gpu: &'g Gpu,
        cfg: TrainConfig,
        train: GpuSplit,
        params: Option<Vec<f32>>,
        moments: Option<(Vec<f32>, Vec<f32>)>,
        steps_done: u64,
    ) -> Result<Trainer<'g>> {
        let arch = Architecture::new(cfg.spec)?;
        if cfg.batch == 0 {
            bail!("--batch must be at least 1");
        }
        // Every pipeline at once, on all cores (a no-op when the caller already did it).
        gpu.prepare(kernels::ENTRY_POINTS);
        let p = arch.params.total;
        let values = params.unwrap_or_else(|| arch.params.init(cfg.seed));
        let model = Model::new(gpu, arch, &values)?;
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
        let g = Graph::new(gpu, arch, n, true, self.cfg.precision)?;
        let mut plan = Plan::new();
        g.record_data(
            &mut plan,
            gpu,
            arch,
            &self.train.source(self.cfg.batch),
            &self.state,
            seed,
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
        g.record_decode(&mut plan, gpu, &self.model);
        g.record_loss(&mut plan, gpu, arch);
        reduce::sum_into(&mut plan, gpu, &self.acc, 0, &g.rec, g.kl(), n);
        g.record_backward(&mut plan, gpu, &self.model, &self.grads)?;
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

    /// Trains one epoch (0-based `epoch`), calling `report` after each submission's losses
    /// arrive. Fails on a NaN or infinite loss.
    pub fn run_epoch(
        &mut self,
        epoch: usize,
        report: &mut dyn FnMut(&TrainProgress),
    ) -> Result<TrainProgress> {
        let gpu = self.gpu;
        let perm = SplitMix64::derived(self.cfg.seed, PERM_PURPOSE, epoch as u64)
            .permutation(self.train.count);
        gpu.queue
            .write_buffer(&self.train.perm.buffer, 0, bytemuck::cast_slice(&perm));
        let state = [self.steps_done as u32, 0, 0, 0];
        gpu.queue
            .write_buffer(&self.state.buffer, 0, bytemuck::cast_slice(&state));
        gpu.queue
            .write_buffer(&self.acc.buffer, 0, bytemuck::cast_slice(&[0f32; 4]));

        let steps = self.steps_per_epoch();
        let start = Instant::now();
        let mut progress = TrainProgress {
            epoch,
            steps,
            ..Default::default()
        };
        // (staging index, steps done after that submission, images done, submission index)
        let mut pending: Option<(usize, usize, usize, wgpu::SubmissionIndex)> = None;
        let mut chunk = 1usize;
        let mut next = 0usize;
        let mut images = 0usize;
        let mut submits = 0usize;
        while next < steps {
            let end = (next + chunk).min(steps);
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
            if let Some(prev) = pending.take() {
                self.collect(prev, &mut progress, start)?;
                report(&progress);
                // Aim for about a quarter second of GPU work per submission.
                let per_step = progress.seconds / progress.step.max(1) as f64;
                chunk = ((0.25 / per_step.max(1e-6)) as usize).clamp(1, 64);
            }
            pending = Some((slot, end, images, index));
        }
        if let Some(prev) = pending.take() {
            self.collect(prev, &mut progress, start)?;
            report(&progress);
        }
        self.steps_done += steps as u64;
        Ok(progress)
    }

    /// Waits for a submission's loss copy, reads it and checks it is finite.
    fn collect(
        &self,
        (slot, step, images, index): (usize, usize, usize, wgpu::SubmissionIndex),
        progress: &mut TrainProgress,
        start: Instant,
    ) -> Result<()> {
        let staging = &self.staging[slot];
        let (tx, rx) = std::sync::mpsc::channel();
        staging.slice(..).map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        self.gpu
            .device
            .poll(wgpu::PollType::Wait {
                submission_index: Some(index),
                timeout: None,
            })
            .map_err(|e| Error::msg(format!("{}: GPU wait failed: {e}", self.gpu.info.name)))?;
        rx.recv()
            .map_err(|_| Error::msg("loss readback was cancelled"))?
            .map_err(|e| Error::msg(format!("loss readback failed: {e}")))?;
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

    /// Adam moments `(m, v)` (blocking readback).
    pub fn moments(&self) -> Result<(Vec<f32>, Vec<f32>)> {
        Ok((self.m.read_f32(self.gpu)?, self.v.read_f32(self.gpu)?))
    }

    /// Writes `model.safetensors` and `optimizer.safetensors` into `dir`, each atomically.
    pub fn save(&self, dir: &Path, epoch: usize, extra: &BTreeMap<String, String>) -> Result<()> {
        let mut meta = spec_metadata(&self.cfg.spec);
        meta.insert("epoch".into(), epoch.to_string());
        meta.insert("steps".into(), self.steps_done.to_string());
        meta.insert("seed".into(), self.cfg.seed.to_string());
        meta.insert("lr".into(), self.cfg.lr.to_string());
        meta.insert("batch".into(), self.cfg.batch.to_string());
        meta.insert("precision".into(), self.cfg.precision.wgsl().into());
        meta.extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
        let (m, v) = self.moments()?;
        let p = self.model.arch.params.total;
        let optimizer = Checkpoint {
            tensors: vec![
                NamedTensor {
                    name: "adam.m".into(),
                    shape: vec![p],
                    data: m,
                },
                NamedTensor {
                    name: "adam.v".into(),
                    shape: vec![p],
                    data: v,
                },
            ],
            metadata: meta.clone(),
        };
        // Optimizer first: a model file always has matching moments beside it.
        checkpoint::save(&dir.join(OPTIMIZER_FILE), &optimizer)?;
        let model = Checkpoint {
            tensors: self.model.named_tensors(self.gpu)?,
            metadata: meta,
        };
        checkpoint::save(&dir.join(MODEL_FILE), &model)
    }
}

/// Options of `gpu-ae train` beyond the hyper-parameters.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub data_dir: PathBuf,
    pub out_dir: PathBuf,
    pub epochs: usize,
    pub eval_batch: usize,
    pub quiet: bool,
}

/// One epoch's line of `metrics.jsonl`.
fn metrics_line(
    epoch: usize,
    train: &TrainProgress,
    test: &EvalMetrics,
    loss: LossKind,
) -> serde_json::Value {
    let n = train.images.max(1) as f64;
    let rec = loss.name();
    let mut v = serde_json::json!({
        "epoch": epoch + 1,
        "train_loss": (train.rec_sum + train.kl_sum) / n,
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

/// Trains from scratch (`resume = None`) or continues the run in `opts.out_dir`, evaluating,
/// checkpointing and logging after every epoch until `opts.epochs` epochs are done.
pub fn run(
    open: impl FnOnce() -> Result<Gpu>,
    cfg: TrainConfig,
    opts: &RunOptions,
    resume: bool,
) -> Result<()> {
    let out = &opts.out_dir;
    // The dataset is read and decompressed on a second thread while the adapter opens, the
    // checkpoint loads and the pipelines compile; its errors come after theirs, as before.
    let (gpu, dataset, (cfg, params, moments, first_epoch, steps_done)) =
        std::thread::scope(|s| -> Result<_> {
            let loader = s.spawn(|| data::load(&opts.data_dir));
            let gpu = open()?;
            let state = if resume {
                let model_path = out.join(MODEL_FILE);
                let opt_path = out.join(OPTIMIZER_FILE);
                let ckpt = checkpoint::load(&model_path)?;
                let spec = spec_from_metadata(&ckpt, &model_path)?;
                let meta_num = |key: &str| -> Result<f64> {
                    ckpt.meta(key).and_then(|v| v.parse().ok()).ok_or_else(|| {
                        Error::msg(format!(
                            "{}: metadata has no valid {key:?}",
                            model_path.display()
                        ))
                    })
                };
                let cfg = TrainConfig {
                    spec,
                    batch: meta_num("batch")? as usize,
                    lr: meta_num("lr")? as f32,
                    seed: ckpt
                        .meta("seed")
                        .and_then(|v| v.parse().ok())
                        .ok_or_else(|| {
                            Error::msg(format!(
                                "{}: metadata has no valid \"seed\"",
                                model_path.display()
                            ))
                        })?,
                    // Runs written before --precision existed trained in f32.
                    precision: match ckpt.meta("precision") {
                        None => Elem::F32,
                        Some(p) => p.parse().map_err(|e| {
                            Error::msg(format!("{}: metadata: {e}", model_path.display()))
                        })?,
                    },
                };
                let arch = Architecture::new(spec)?;
                let params = values_from_checkpoint(&arch, &ckpt, &model_path)?;
                let opt = checkpoint::load(&opt_path)?;
                let epoch = meta_num("epoch")? as usize;
                if opt.meta("epoch") != ckpt.meta("epoch") {
                    bail!(
                        "{}: optimizer state is from epoch {}, the model from epoch {epoch}",
                        opt_path.display(),
                        opt.meta("epoch").unwrap_or("?")
                    );
                }
                let moment = |name: &str| -> Result<Vec<f32>> {
                    match opt.get(name) {
                        Some(t) if t.data.len() == arch.params.total => Ok(t.data.clone()),
                        _ => bail!("{}: missing or mis-sized tensor {name}", opt_path.display()),
                    }
                };
                let moments = (moment("adam.m")?, moment("adam.v")?);
                (
                    cfg,
                    Some(params),
                    Some(moments),
                    epoch,
                    meta_num("steps")? as u64,
                )
            } else {
                (cfg, None, None, 0, 0)
            };
            let first_epoch = state.3;
            if opts.epochs == 0 {
                bail!("--epochs must be at least 1");
            }
            if first_epoch >= opts.epochs {
                bail!(
                    "{}: already trained for {first_epoch} epochs; ask for more with --epochs",
                    out.display()
                );
            }
            gpu.prepare(kernels::ENTRY_POINTS);
            let dataset = loader.join().expect("the dataset loader does not panic")?;
            Ok((gpu, dataset, state))
        })?;
    let gpu = &gpu;
    let train_split = GpuSplit::upload(gpu, &dataset.train, &opts.data_dir)?;
    let test_split = GpuSplit::upload(gpu, &dataset.test, &opts.data_dir)?;
    let mut trainer = Trainer::new(gpu, cfg.clone(), train_split, params, moments, steps_done)?;
    let evaluator = Evaluator::new(
        gpu,
        &trainer.model,
        &test_split,
        opts.eval_batch,
        cfg.seed as u32,
    )?;
    // Only now that data, model and plans are ready: a run that cannot start leaves no folder.
    let created = !out.exists();
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let result = train_epochs(gpu, &mut trainer, &evaluator, opts, first_epoch);
    if result.is_err() && created {
        // Removes the folder only while it is still empty (nothing good to keep).
        let _ = std::fs::remove_dir(out);
    }
    result
}

/// Trains epochs `first_epoch..opts.epochs`, evaluating, checkpointing and logging each.
fn train_epochs(
    gpu: &Gpu,
    trainer: &mut Trainer,
    evaluator: &Evaluator,
    opts: &RunOptions,
    first_epoch: usize,
) -> Result<()> {
    let out = &opts.out_dir;
    let cfg = trainer.cfg.clone();

    let metrics_path = out.join(METRICS_FILE);
    let mut history = read_history(&metrics_path)?;
    history.truncate(first_epoch);
    let loss = cfg.spec.loss;
    if !opts.quiet {
        eprintln!(
            "{} L={} task={} on {}: {} parameters, {} steps/epoch of {} images, run folder {}",
            cfg.spec.kind,
            trainer.model.arch.code_len(),
            cfg.spec.task.name(),
            gpu.describe(),
            trainer.model.arch.params.total,
            trainer.steps_per_epoch(),
            trainer.cfg.batch,
            out.display()
        );
    }
    for epoch in first_epoch..opts.epochs {
        let bar = progress_bar(trainer.steps_per_epoch(), epoch, opts.epochs, opts.quiet);
        let mut report = |p: &TrainProgress| {
            bar.set_position(p.step as u64);
            bar.set_message(format!(
                "{:.0} img/s  loss {:.2}",
                p.images as f64 / p.seconds.max(1e-9),
                p.mean_loss()
            ));
        };
        let train = trainer.run_epoch(epoch, &mut report)?;
        bar.finish_and_clear();
        let test = evaluator.run(gpu)?;
        if !test.total().is_finite() {
            bail!(
                "epoch {}: the test loss is not finite; the last good checkpoint stays in {}",
                epoch + 1,
                out.display()
            );
        }
        let line = metrics_line(epoch, &train, &test, loss);
        let mut extra = BTreeMap::new();
        for (k, v) in line.as_object().expect("object") {
            if k.starts_with("test_") {
                extra.insert(k.clone(), v.to_string());
            }
        }
        trainer.save(out, epoch + 1, &extra)?;
        history.push(line.clone());
        write_history(&metrics_path, &history)?;
        plot_history(&out.join(LOSS_PLOT_FILE), &history, loss)?;
        if !opts.quiet {
            let kl = test
                .kl
                .map(|k| format!(" KL {k:.2} −ELBO {:.2}", test.total()))
                .unwrap_or_default();
            eprintln!(
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
    }
    Ok(())
}

fn progress_bar(steps: usize, epoch: usize, epochs: usize, quiet: bool) -> indicatif::ProgressBar {
    if quiet {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(steps as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(&format!(
            "epoch {}/{epochs} [{{bar:30}}] step {{pos}}/{{len}} {{msg}}",
            epoch + 1
        ))
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar
}

fn read_history(path: &Path) -> Result<Vec<serde_json::Value>> {
    match std::fs::read_to_string(path) {
        Ok(text) => text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str(l)
                    .map_err(|e| Error::msg(format!("{}: bad line: {e}", path.display())))
            })
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(Error::io(path, e)),
    }
}

fn write_history(path: &Path, history: &[serde_json::Value]) -> Result<()> {
    let mut text = String::new();
    for h in history {
        text.push_str(&h.to_string());
        text.push('\n');
    }
    crate::files::write_atomic(path, text.as_bytes())
}

fn plot_history(path: &Path, history: &[serde_json::Value], loss: LossKind) -> Result<()> {
    let series = |name: &str, key: &str| viz::Series {
        name: name.into(),
        points: history
            .iter()
            .filter_map(|h| Some((h["epoch"].as_f64()? as f32, h[key].as_f64()? as f32)))
            .collect(),
    };
    let vae = history
        .first()
        .is_some_and(|h| h.get("test_neg_elbo").is_some());
    let test_key = if vae {
        "test_neg_elbo".to_string()
    } else {
        format!("test_{}", loss.name())
    };
    let img = viz::line_chart(
        &[series("train", "train_loss"), series("test", &test_key)],
        if vae {
            "negative ELBO per example"
        } else {
            "reconstruction loss per example"
        },
        "epoch",
        "nats",
    );
    viz::save_png(path, &image::DynamicImage::ImageRgb8(img))
}
