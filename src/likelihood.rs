//! The importance-weighted estimate of a VAE's negative log-likelihood (Burda et al. 2015,
//! IWAE): log p(x) ≈ logsumexp_k [log p(x|z_k) + log p(z_k) − log q(z_k|x)] − log K, with z_k
//! drawn from the encoder's q(z|x). Computed on the GPU batch by batch: the images are encoded
//! once, then rounds of S samples per image are drawn (`kernels::iwae::draw`), decoded as one
//! batch of S·n rows against the repeated targets (`replicate`), and folded into a running
//! logsumexp per image (`accumulate`); the per-image estimates are summed on the GPU and read
//! back once. Sample k = 0 uses the ε of [`Evaluator`](crate::evaluate::Evaluator) (keyed by
//! image, same seed), so K = 1 is the one-sample ELBO estimate at the evaluation's own noise.

use crate::bail;
use crate::counter_rng::STREAM_EVAL;
use crate::data::{Binarize, TEST_BINARIZE_SEED};
use crate::error::Result;
use crate::gpu::{Elem, Gpu, Plan, Tensor};
use crate::gpu_split::GpuSplit;
use crate::graph::{Graph, Model, Purpose};
use crate::kernels::{NoiseKey, iwae, reduce, step};
use crate::models::LossKind;

/// Rows decoded at once (S·n): enough to keep a GPU busy, small enough for any adapter.
const ROWS_PER_ROUND: usize = 2048;

/// The estimator for one model over one split.
pub struct ImportanceWeighted<'s> {
    split: &'s GpuSplit,
    full: Option<Plan>,
    tail: Option<Plan>,
    full_batches: usize,
    /// Batches per chunk of a streamed split (all of them when resident).
    chunk_batches: usize,
    batch: usize,
    state: Tensor,
    /// `[4]`: slot 0 sums the per-image estimates.
    acc: Tensor,
    /// K.
    pub samples: usize,
}

impl<'s> ImportanceWeighted<'s> {
    /// Records the plans for K = `samples` importance samples per image, `batch` images at a
    /// time; `seed` is the evaluation's seed (k = 0 is its ε), and a model trained on binarised
    /// images sees the test images binarised as [`Evaluator`](crate::evaluate::Evaluator) does.
    pub fn new(
        gpu: &Gpu,
        model: &Model,
        split: &'s GpuSplit,
        batch: usize,
        samples: usize,
        seed: u32,
        binarize: Binarize,
    ) -> Result<ImportanceWeighted<'s>> {
        let arch = &model.arch;
        if !arch.is_vae() || arch.spec.loss != LossKind::Bce {
            bail!(
                "--iw needs a VAE with a Bernoulli likelihood (--loss bce); this is a {} with --loss {}",
                arch.spec.kind,
                arch.spec.loss.name()
            );
        }
        if arch.spec.is_conditional() {
            bail!(
                "--iw estimates log p(x) of unconditional VAEs; this conditional model gives p(x | class)"
            );
        }
        if samples == 0 {
            bail!("--iw must be at least 1");
        }
        split.check_model(&arch.spec.image)?;
        let batch = batch.min(split.count).clamp(1, ROWS_PER_ROUND);
        let chunk = split.plan_chunks(gpu, batch)?;
        let state = Tensor::zeros(gpu, &[step::STATE_LEN], "iw state")?;
        let acc = Tensor::zeros(gpu, &[4], "iw sums")?;
        let (full_batches, tail) = crate::evaluate::batches(split.count, batch);
        let binarize = (binarize == Binarize::Dynamic).then_some(TEST_BINARIZE_SEED);
        let build = |n: usize| -> Result<Plan> {
            let per_round = (ROWS_PER_ROUND / n).clamp(1, samples);
            let rows = per_round * n;
            let key = NoiseKey::Image { batch_size: batch };
            let enc = Graph::new(gpu, arch, n, Purpose::Evaluate, Elem::F32)?.with_noise_key(key);
            let dec = Graph::new(gpu, arch, rows, Purpose::Evaluate, Elem::F32)?;
            let log_ratio = Tensor::zeros(gpu, &[rows], "log ratio")?;
            let lse = Tensor::zeros(gpu, &[n, 2], "logsumexp")?;
            let nll = Tensor::zeros(gpu, &[n], "nll")?;
            let (latent, pixels) = (arch.code_len(), arch.spec.image.pixels());
            let mut plan = Plan::new();
            enc.record_data(
                &mut plan,
                gpu,
                arch,
                &split.source(batch),
                &state,
                seed,
                binarize,
            );
            enc.record_encode(&mut plan, gpu, model, &state, seed, STREAM_EVAL, false)?;
            iwae::replicate(
                &mut plan,
                gpu,
                &dec.target,
                &enc.target,
                per_round,
                n,
                pixels,
            );
            let head = enc.head_output().expect("VAEs have a head");
            for round in 0..samples.div_ceil(per_round) {
                iwae::draw(
                    &mut plan,
                    gpu,
                    dec.code(),
                    &log_ratio,
                    head,
                    &state,
                    seed,
                    STREAM_EVAL,
                    key,
                    round,
                    per_round,
                    n,
                    latent,
                );
                dec.record_decode(&mut plan, gpu, model)?;
                dec.record_loss(&mut plan, gpu, arch);
                iwae::accumulate(
                    &mut plan, gpu, &lse, &nll, &dec.rec, &log_ratio, round, per_round, samples, n,
                );
            }
            reduce::sum_into(&mut plan, gpu, &acc, 0, &nll, None, n);
            step::advance(&mut plan, gpu, &state);
            plan.compile(gpu);
            // The graphs' tensors stay alive through the plan's bindings.
            Ok(plan)
        };
        let full = (full_batches > 0).then(|| build(batch)).transpose()?;
        let tail = (tail > 0).then(|| build(tail)).transpose()?;
        let steps = full_batches + usize::from(tail.is_some());
        Ok(ImportanceWeighted {
            split,
            full,
            tail,
            full_batches,
            chunk_batches: if split.is_streamed() {
                chunk / batch
            } else {
                steps
            },
            batch,
            state,
            acc,
            samples,
        })
    }

    /// Batches of images (one submission each).
    pub fn batches(&self) -> usize {
        self.full_batches + usize::from(self.tail.is_some())
    }

    /// Runs every batch, one submission each (a streamed split's chunk uploaded before its
    /// first batch), calling `progress(done, total)` after each; returns the mean estimate of
    /// −log p(x) in nats.
    pub async fn run(&self, gpu: &Gpu, progress: &mut dyn FnMut(usize, usize)) -> Result<f64> {
        gpu.queue
            .write_buffer(&self.state.buffer, 0, bytemuck::cast_slice(&[0u32; 4]));
        gpu.queue
            .write_buffer(&self.acc.buffer, 0, bytemuck::cast_slice(&[0f32; 4]));
        let steps = self.batches();
        for s in 0..steps {
            if s % self.chunk_batches == 0 {
                let chunk = self.chunk_batches * self.batch;
                self.split.load_chunk(gpu, None, s * self.batch, chunk);
            }
            let plan = if s < self.full_batches {
                self.full.as_ref()
            } else {
                self.tail.as_ref()
            };
            plan.expect("a plan for every batch").submit(gpu);
            progress(s + 1, steps);
        }
        let sums = self.acc.fetch_f32(gpu).await?;
        Ok(sums[0] as f64 / self.split.count as f64)
    }
}
