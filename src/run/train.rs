//! Training: the whole step (data gather, forward, loss, backward, Adam, step counter) recorded
//! once as one plan and replayed many times per submission; losses summed on the GPU and read
//! back asynchronously once per submission for the progress bar and the NaN guard; an epoch
//! that a stop request ends early continues exactly where it stopped. The run around it (folder,
//! resume, checkpoints, metrics) is [`crate::run`].

use crate::bail;
use crate::checkpoint::{self, Checkpoint, NamedTensor};
use crate::counter_rng::STREAM_REPARAM;
use crate::data::Binarize;
use crate::error::{Error, Result};
use crate::gpu::{Gpu, Plan, Tensor};
use crate::host_rng::SplitMix64;
use crate::kernels::adam::{self, AdamConfig};
use crate::kernels::{self, reduce, step};
use crate::model::Architecture;
use crate::model::graph::{Model, ModelValues, TrainGraph, values_from_checkpoint};
use crate::platform::{self, Instant};
use crate::run::batch_plans::BatchPlans;
use crate::run::gpu_split::GpuSplit;
use crate::run::settings::{DatasetRecord, PartialEpoch, RunRecord, TrainConfig};
use std::collections::BTreeMap;
use std::path::Path;

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

    /// Epoch `epoch` of `steps` steps at its start, or at the step where a checkpoint inside
    /// it (`kept`) left it, with the sums of the steps before.
    pub fn start(
        epoch: usize,
        steps: usize,
        kl_weight: f64,
        kept: Option<PartialEpoch>,
    ) -> TrainProgress {
        let p = kept.unwrap_or_default();
        TrainProgress {
            epoch,
            step: p.step,
            steps,
            images: p.images,
            rec_sum: p.rec_sum,
            kl_sum: p.kl_sum,
            kl_weight,
            seconds: p.seconds,
        }
    }

    /// What a checkpoint written inside the epoch keeps of it ([`TrainProgress::start`]
    /// continues from it).
    pub fn partial(&self) -> PartialEpoch {
        PartialEpoch {
            step: self.step,
            images: self.images,
            rec_sum: self.rec_sum,
            kl_sum: self.kl_sum,
            seconds: self.seconds,
        }
    }
}

/// How a [`Trainer::run_epoch`] call ended; either way the sums are those of the call's own
/// steps, and `step` the step the epoch reached.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum EpochEnd {
    Finished(TrainProgress),
    /// A stop was asked for before the epoch's last step; calling again with `first_step` =
    /// `step` continues it exactly.
    Stopped(TrainProgress),
}

impl EpochEnd {
    pub fn progress(&self) -> &TrainProgress {
        match self {
            EpochEnd::Finished(p) | EpochEnd::Stopped(p) => p,
        }
    }

    /// The progress of a finished epoch; None when it was stopped.
    pub fn finished(self) -> Option<TrainProgress> {
        match self {
            EpochEnd::Finished(p) => Some(p),
            EpochEnd::Stopped(_) => None,
        }
    }
}

/// Loads a self-describing checkpoint onto the GPU.
pub fn load_model(gpu: &Gpu, path: &Path) -> Result<(Model, Checkpoint)> {
    let ckpt = checkpoint::load(path)?;
    let spec = crate::model::record::read_spec(&ckpt, path)?;
    let arch =
        Architecture::new(spec).map_err(|e| Error::msg(format!("{}: {e}", path.display())))?;
    let values = values_from_checkpoint(&arch, &ckpt, path)?;
    Ok((Model::upload(gpu, arch, &values)?, ckpt))
}

/// Everything a training run holds on the GPU.
pub struct Trainer<'g> {
    gpu: &'g Gpu,
    /// The settings as given (and recorded): `cfg.batch` may exceed the training images.
    pub cfg: TrainConfig,
    /// Images per full step: `cfg.batch`, or all the training images when there are fewer.
    batch: usize,
    pub model: Model,
    /// `[P]` gradients, Adam moments; same offsets as the parameters.
    grads: Tensor,
    m: Tensor,
    v: Tensor,
    /// u32 `[4]`: steps done, batch within the epoch.
    state: Tensor,
    /// u32 `[4]`: the learning-rate schedule's words, which Adam turns into each step's rate.
    schedule: Tensor,
    /// `[4]`: reconstruction and KL sums of the current epoch.
    acc: Tensor,
    train: GpuSplit,
    /// The step plans of a full batch and of the tail.
    plans: BatchPlans,
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
        // Before the parameters are initialised on the host: a model too large for the adapter
        // may be too large for host memory as well.
        Model::check_fits(gpu, &arch)?;
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
        let words = cfg.schedule.words(cfg.lr);
        let schedule = Tensor::from_u32(gpu, &[words.len()], &words, "learning-rate schedule")?;
        let acc = Tensor::zeros(gpu, &[4], "loss sums")?;
        let batch = cfg.batch.min(train.count);
        let count = train.count;
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
            cfg,
            batch,
            model,
            grads,
            m,
            v,
            state,
            schedule,
            acc,
            train,
            plans: BatchPlans::default(),
            chunk_images,
            steps_done,
            staging,
        };
        t.plans = BatchPlans::new(count, batch, |n| t.build_step(n))?;
        Ok(t)
    }

    /// Records one whole training step for batch size `n`.
    fn build_step(&self, n: usize) -> Result<Plan> {
        let gpu = self.gpu;
        let arch = &self.model.arch;
        let seed = self.cfg.seed as u32;
        let train_graph = TrainGraph::new(gpu, arch, n, self.cfg.precision)?;
        let g = &train_graph.forward;
        let mut plan = Plan::new();
        let binarize = (self.cfg.binarize == Binarize::Dynamic).then_some(seed);
        g.record_data(
            &mut plan,
            gpu,
            arch,
            &self.train.source(self.batch),
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
        train_graph.record_loss(&mut plan, gpu, arch);
        reduce::sum_into(&mut plan, gpu, &self.acc, 0, &g.rec, g.kl(), n);
        train_graph.record_backward(&mut plan, gpu, &self.model, &self.grads, self.cfg.beta)?;
        adam::step(
            &mut plan,
            gpu,
            &self.model.params,
            &self.m,
            &self.v,
            &self.grads,
            &self.state,
            &self.schedule,
            AdamConfig::default(),
            arch.params.total,
        );
        step::advance(&mut plan, gpu, &self.state);
        plan.compile(gpu);
        Ok(plan)
    }

    /// Images per full step: the batch size asked for, or the training images when fewer.
    pub fn batch(&self) -> usize {
        self.batch
    }

    pub fn steps_per_epoch(&self) -> usize {
        self.plans.steps()
    }

    /// The plan of a full-batch step (for profiling and dispatch counts).
    pub fn step_plan(&self) -> &Plan {
        self.plans.first()
    }

    /// (dispatches, bound storage bytes) of one epoch: every full-batch step plus the tail step.
    pub fn epoch_totals(&self) -> (usize, u64) {
        self.plans.totals()
    }

    pub fn images_per_epoch(&self) -> usize {
        self.train.count
    }

    /// Trains epoch `epoch` (0-based) from its step `first_step` (0, or where a stopped call
    /// on the same epoch left off: the same shuffle, no step repeated or skipped), calling
    /// `report` after each submission's losses arrive (the next submission already queued);
    /// the losses and image counts reported are those of this call's steps. Fails on a NaN or
    /// infinite loss. Ends [`EpochEnd::Stopped`] when `stop`, asked with the epoch's next step
    /// before each submission, says so (natively [`super::stop::requested`] or a checkpoint being
    /// due; a web page's pause button); the steps submitted until then count in
    /// [`Trainer::steps_done`].
    pub async fn run_epoch(
        &mut self,
        epoch: usize,
        first_step: usize,
        stop: &dyn Fn(usize) -> bool,
        report: &mut dyn FnMut(&TrainProgress),
    ) -> Result<EpochEnd> {
        let kept = TrainProgress {
            epoch,
            step: first_step,
            ..Default::default()
        };
        self.continue_epoch(&kept, stop, report).await
    }

    /// [`Trainer::run_epoch`] from where `kept` left its epoch (`kept.step`, with the sums of
    /// the steps before it, as a checkpoint inside the epoch records them): the losses, image
    /// counts and seconds reported are the epoch's so far. The GPU's f32 loss accumulator starts
    /// at `kept`'s sums (f32 values read back from it), so the epoch's sums are bit-identical
    /// to those of an epoch trained in one call.
    pub async fn continue_epoch(
        &mut self,
        kept: &TrainProgress,
        stop: &dyn Fn(usize) -> bool,
        report: &mut dyn FnMut(&TrainProgress),
    ) -> Result<EpochEnd> {
        let (epoch, first_step) = (kept.epoch, kept.step);
        let gpu = self.gpu;
        let perm = SplitMix64::derived(self.cfg.seed, PERM_PURPOSE, epoch as u64)
            .permutation(self.train.count);
        self.train.set_order(gpu, &perm);
        // A streamed split: each chunk's images are packed and queued before its first step
        // (the next one while the GPU still works on this one); submissions end at chunks.
        let streamed = self.train.is_streamed();
        let chunk_steps = self.chunk_images / self.batch;
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
            chunk_first * self.batch,
            self.chunk_images,
        );
        let state = [self.steps_done as u32, first_step as u32, 0, 0];
        gpu.queue
            .write_buffer(&self.state.buffer, 0, bytemuck::cast_slice(&state));
        let sums = [kept.rec_sum as f32, kept.kl_sum as f32, 0.0, 0.0];
        gpu.queue
            .write_buffer(&self.acc.buffer, 0, bytemuck::cast_slice(&sums));

        let start = Instant::now();
        let mut progress = TrainProgress {
            steps,
            kl_weight: self.cfg.beta as f64,
            ..*kept
        };
        // (staging index, steps done after that submission, images done, submission index)
        let mut pending: Option<(usize, usize, usize, wgpu::SubmissionIndex)> = None;
        let mut per_submit = 1usize;
        let mut next = first_step;
        let mut images = kept.images;
        let mut submits = 0usize;
        while next < steps {
            if stop(next) {
                // The sums of the steps submitted so far, for the caller's checkpoint.
                if let Some(prev) = pending.take() {
                    self.collect(prev, &mut progress, start, kept.seconds)
                        .await?;
                    report(&progress);
                }
                self.steps_done += (next - first_step) as u64;
                return Ok(EpochEnd::Stopped(progress));
            }
            let mut end = (next + per_submit).min(steps);
            if streamed {
                end = end.min((next / chunk_steps + 1) * chunk_steps);
            }
            let slot = submits % 2;
            let index = self.plans.submit(gpu, next..end, "train steps", |encoder| {
                encoder.copy_buffer_to_buffer(&self.acc.buffer, 0, &self.staging[slot], 0, 16)
            });
            images += (next..end).map(|s| self.plans.images(s)).sum::<usize>();
            submits += 1;
            next = end;
            if streamed && next < steps && next.is_multiple_of(chunk_steps) {
                let start = next * self.batch;
                self.train
                    .load_chunk(gpu, Some(&perm), start, self.chunk_images);
            }
            if let Some(prev) = pending.take() {
                self.collect(prev, &mut progress, start, kept.seconds)
                    .await?;
                report(&progress);
                // Aim for about a quarter second of GPU work per submission.
                let per_step =
                    (progress.seconds - kept.seconds) / (progress.step - first_step).max(1) as f64;
                per_submit = ((0.25 / per_step.max(1e-6)) as usize).clamp(1, 64);
            }
            pending = Some((slot, end, images, index));
        }
        if let Some(prev) = pending.take() {
            self.collect(prev, &mut progress, start, kept.seconds)
                .await?;
            report(&progress);
        }
        self.steps_done += (steps - first_step) as u64;
        Ok(EpochEnd::Finished(progress))
    }

    /// Waits for a submission's loss copy, reads it and checks it is finite; the epoch's
    /// seconds are `before` and those since `start`.
    async fn collect(
        &self,
        (slot, step, images, index): (usize, usize, usize, wgpu::SubmissionIndex),
        progress: &mut TrainProgress,
        start: Instant,
        before: f64,
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
        progress.seconds = before + start.elapsed().as_secs_f64();
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

    /// The checkpoint after `epoch` epochs and the `partial` steps of the next: the model
    /// (PyTorch names) and Adam's moments, both with the run's record in their metadata
    /// (settings, progress, `data`, `test` figures).
    pub async fn checkpoint(
        &self,
        epoch: usize,
        partial: Option<PartialEpoch>,
        data: &DatasetRecord,
        test: BTreeMap<String, f64>,
    ) -> Result<(Checkpoint, Checkpoint)> {
        let meta = RunRecord {
            cfg: self.cfg.clone(),
            epoch,
            steps: self.steps_done,
            data: Some(data.clone()),
            test,
            partial,
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
