//! Test-set evaluation on the GPU: the test images as packed bytes (resident, or streamed chunk
//! by chunk, see [`GpuSplit`]), one eval graph for full batches (and one for the tail, as
//! [`SplitPlans`]), every batch recorded into one submission (one per chunk when streamed), and
//! the loss sums read back once. The VAE's ε and the denoising noise are keyed by image
//! ([`NoiseKey::Image`]), so the figures do not depend on the batch size. Beside the loss, each
//! picture's PSNR as `pytorch_images.py` defines `test_psnr`: the decoder's picture of μ (a
//! VAE decodes a second time, without sampling) against the image.

use crate::counter_rng::STREAM_EVAL;
use crate::data::{Binarize, TEST_BINARIZE_SEED};
use crate::error::Result;
use crate::gpu::{Elem, Gpu};
use crate::kernels::{NoiseKey, loss, reduce};
use crate::model::LossKind;
use crate::model::graph::{Graph, Model, Purpose};
use crate::run::gpu_split::GpuSplit;
use crate::run::split_plans::SplitPlans;

/// Test-set figures per example, in nats (or squared error for MSE models).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EvalMetrics {
    /// Reconstruction loss per example (BCE or squared error summed over pixels).
    pub rec: f64,
    /// KL divergence per example (VAEs).
    pub kl: Option<f64>,
    /// Mean over the test images of `10·log10(1 / MSE)` (dB) between the image and the
    /// decoder's picture of the mean code, MSE clamped at 1e-10.
    pub psnr: f64,
    pub count: usize,
}

impl EvalMetrics {
    /// Negative ELBO (1-sample estimate) for VAEs, the reconstruction loss otherwise.
    pub fn total(&self) -> f64 {
        self.rec + self.kl.unwrap_or(0.0)
    }
}

/// Evaluation plans for one model over one split.
pub struct Evaluator<'s> {
    plans: SplitPlans<'s>,
    vae: bool,
}

impl<'s> Evaluator<'s> {
    /// Builds the eval graphs; `seed` fixes the VAE's ε and the denoising noise, drawn per test
    /// image, so that repeated evaluations of the same model give the same figures whatever the
    /// batch size. A model trained on binarised images is evaluated on the test images
    /// binarised by [`TEST_BINARIZE_SEED`].
    pub fn new(
        gpu: &Gpu,
        model: &Model,
        split: &'s GpuSplit,
        batch: usize,
        seed: u32,
        binarize: Binarize,
    ) -> Result<Evaluator<'s>> {
        split.check_model(&model.arch.spec.image)?;
        let binarize = (binarize == Binarize::Dynamic).then_some(TEST_BINARIZE_SEED);
        let plans = SplitPlans::new(gpu, split, batch, |plan, b| {
            // Batches visit the images in file order (`perm` is the identity), so batch
            // state[1]'s row i is image state[1]·batch + i: the tail's plan counts in full
            // batches too.
            let g = Graph::new(gpu, &model.arch, b.n, Purpose::Evaluate, Elem::F32)?
                .with_noise_key(NoiseKey::Image {
                    batch_size: b.batch,
                });
            let source = split.source(b.batch);
            g.record_data(plan, gpu, &model.arch, &source, b.state, seed, binarize);
            g.record_encode(plan, gpu, model, b.state, seed, STREAM_EVAL, true)?;
            g.record_decode(plan, gpu, model)?;
            g.record_loss(plan, gpu, &model.arch);
            reduce::sum_into(plan, gpu, b.acc, 0, &g.rec, g.kl(), b.n);
            // The PSNR of the picture of μ: a VAE decodes again from the mean code.
            if model.arch.is_vae() {
                g.record_mean_code(plan, gpu);
                g.record_decode(plan, gpu, model)?;
            }
            let spec = &model.arch.spec;
            let logits = spec.loss == LossKind::Bce;
            let (n, pixels) = (b.n, spec.image.pixels());
            let picture = g.decoder_output();
            loss::psnr(plan, gpu, &g.rec, picture, &g.target, n, pixels, logits);
            reduce::sum_into(plan, gpu, b.acc, 2, &g.rec, None, b.n);
            Ok(())
        })?;
        Ok(Evaluator {
            plans,
            vae: model.arch.is_vae(),
        })
    }

    /// Runs every batch, in one submission (or one per chunk of a streamed split, each chunk
    /// uploaded before it), and reads the sums back.
    pub async fn run(&self, gpu: &Gpu) -> Result<EvalMetrics> {
        let sums = self.plans.run(gpu, usize::MAX, None).await?;
        let count = self.plans.split.count;
        let n = count as f64;
        Ok(EvalMetrics {
            rec: sums[0] as f64 / n,
            kl: self.vae.then(|| sums[1] as f64 / n),
            psnr: sums[2] as f64 / n,
            count,
        })
    }
}
