//! The importance-weighted estimate of a VAE's negative log-likelihood (Burda et al. 2015,
//! IWAE): log p(x) ≈ logsumexp_k [log p(x|z_k) + log p(z_k) − log q(z_k|x)] − log K, with z_k
//! drawn from the encoder's q(z|x). Computed on the GPU batch by batch: the images are encoded
//! once, then rounds of S samples per image are drawn (`kernels::iwae::draw`), decoded as one
//! batch of S·n rows against the repeated targets (`replicate`), and folded into a running
//! logsumexp per image (`accumulate`); the per-image estimates are summed on the GPU and read
//! back once. Sample k = 0 uses the ε of [`Evaluator`](crate::run::evaluate::Evaluator) (keyed by
//! image, same seed), so K = 1 is the one-sample ELBO estimate at the evaluation's own noise.

use crate::bail;
use crate::counter_rng::STREAM_EVAL;
use crate::data::{Binarize, TEST_BINARIZE_SEED};
use crate::error::Result;
use crate::gpu::{Elem, Gpu, Tensor};
use crate::kernels::{NoiseKey, iwae, reduce};
use crate::model::graph::{Graph, Model, Purpose};
use crate::model::{Architecture, LossKind};
use crate::run::gpu_split::GpuSplit;
use crate::run::split_plans::SplitPlans;

/// Rows decoded at once (S·n) at most: enough to keep a GPU busy, small enough for any adapter.
const ROWS_PER_ROUND: usize = 2048;

/// Rows of one decoding round: [`ROWS_PER_ROUND`], or fewer where that many rows of the model's
/// widest activation would not fit one storage binding of `binding_bytes` (large colour images:
/// the first 32-channel layer of a 64×64 model holds 128 KiB per row).
fn rows_per_round(arch: &Architecture, binding_bytes: u64) -> usize {
    let row_bytes = 4 * arch.widest_activation() as u64;
    (binding_bytes / row_bytes.max(1)).clamp(1, ROWS_PER_ROUND as u64) as usize
}

/// The estimator for one model over one split.
pub struct ImportanceWeighted<'s> {
    plans: SplitPlans<'s>,
    /// K.
    pub samples: usize,
}

impl<'s> ImportanceWeighted<'s> {
    /// Records the plans for K = `samples` importance samples per image, `batch` images at a
    /// time; `seed` is the evaluation's seed (k = 0 is its ε), and a model trained on binarised
    /// images sees the test images binarised as [`Evaluator`](crate::run::evaluate::Evaluator) does.
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
        let binarize = (binarize == Binarize::Dynamic).then_some(TEST_BINARIZE_SEED);
        let max_rows = rows_per_round(arch, gpu.max_binding());
        let batch = batch.min(max_rows);
        let plans = SplitPlans::new(gpu, split, batch, |plan, b| {
            let n = b.n;
            let per_round = (max_rows / n).clamp(1, samples);
            let rows = per_round * n;
            let key = NoiseKey::Image {
                batch_size: b.batch,
            };
            let enc = Graph::new(gpu, arch, n, Purpose::Evaluate, Elem::F32)?.with_noise_key(key);
            let dec = Graph::new(gpu, arch, rows, Purpose::Decode, Elem::F32)?;
            let log_ratio = Tensor::zeros(gpu, &[rows], "log ratio")?;
            let lse = Tensor::zeros(gpu, &[n, 2], "logsumexp")?;
            let nll = Tensor::zeros(gpu, &[n], "nll")?;
            let (latent, pixels) = (arch.code_len(), arch.spec.image.pixels());
            let source = split.source(b.batch);
            enc.record_data(plan, gpu, arch, &source, b.state, seed, binarize);
            enc.record_encode(plan, gpu, model, b.state, seed, STREAM_EVAL, false)?;
            iwae::replicate(plan, gpu, &dec.target, &enc.target, per_round, n, pixels);
            let head = enc.head_output().expect("VAEs have a head");
            for round in 0..samples.div_ceil(per_round) {
                iwae::draw(
                    plan,
                    gpu,
                    dec.code(),
                    &log_ratio,
                    head,
                    b.state,
                    seed,
                    STREAM_EVAL,
                    key,
                    round,
                    per_round,
                    n,
                    latent,
                );
                dec.record_decode(plan, gpu, model)?;
                dec.record_loss(plan, gpu, arch);
                iwae::accumulate(
                    plan, gpu, &lse, &nll, &dec.rec, &log_ratio, round, per_round, samples, n,
                );
            }
            reduce::sum_into(plan, gpu, b.acc, 0, &nll, None, n);
            Ok(())
        })?;
        Ok(ImportanceWeighted { plans, samples })
    }

    /// Batches of images (one submission each).
    pub fn batches(&self) -> usize {
        self.plans.steps()
    }

    /// Runs every batch, one submission each (a streamed split's chunk uploaded before its
    /// first batch), calling `progress(done, total)` after each; returns the mean estimate of
    /// −log p(x) in nats.
    pub async fn run(&self, gpu: &Gpu, progress: &mut dyn FnMut(usize, usize)) -> Result<f64> {
        let sums = self.plans.run(gpu, 1, Some(progress)).await?;
        Ok(sums[0] as f64 / self.plans.split.count as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ModelKind, ModelSpec, Task};

    const WEBGPU_BINDING: u64 = 128 << 20;

    /// MNIST decodes full rounds; the 64×64 colour model of the README takes as many rows as
    /// its 32-channel 32×32 layer fits in WebGPU's 128 MiB binding (1024), not 2048 (256 MiB).
    #[test]
    fn rounds_fit_one_storage_binding() {
        let mnist = ModelSpec::mnist(ModelKind::ConvVae, 32, Task::Reconstruct, LossKind::Bce);
        let arch = Architecture::new(mnist).unwrap();
        assert_eq!(rows_per_round(&arch, WEBGPU_BINDING), ROWS_PER_ROUND);
        let arch = Architecture::new(ModelSpec::colour_64px()).unwrap();
        assert_eq!(arch.widest_activation(), 32 * 32 * 32);
        assert_eq!(rows_per_round(&arch, WEBGPU_BINDING), 1024);
        assert_eq!(rows_per_round(&arch, 1000), 1);
    }
}
