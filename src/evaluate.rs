//! Test-set evaluation on the GPU: the test images as packed bytes (resident, or streamed chunk
//! by chunk, see [`GpuSplit`]), one eval graph for full batches (and one for the tail), every
//! batch recorded into one submission (one per chunk when streamed), and the loss sums read
//! back once. The VAE's ε and the denoising noise are keyed by image
//! ([`NoiseKey::Image`]), so the figures do not depend on the batch size.

use crate::counter_rng::STREAM_EVAL;
use crate::data::{Binarize, TEST_BINARIZE_SEED};
use crate::error::Result;
use crate::gpu::{Elem, Gpu, Plan, Tensor};
use crate::gpu_split::GpuSplit;
use crate::graph::{Graph, Model, Purpose};
use crate::kernels::{NoiseKey, reduce, step};

/// Test-set figures per example, in nats (or squared error for MSE models).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EvalMetrics {
    /// Reconstruction loss per example (BCE or squared error summed over pixels).
    pub rec: f64,
    /// KL divergence per example (VAEs).
    pub kl: Option<f64>,
    pub count: usize,
}

impl EvalMetrics {
    /// Negative ELBO (1-sample estimate) for VAEs, the reconstruction loss otherwise.
    pub fn total(&self) -> f64 {
        self.rec + self.kl.unwrap_or(0.0)
    }
}

/// Batches of `batch` over `count` items: (full batches, size of the tail batch or 0).
pub fn batches(count: usize, batch: usize) -> (usize, usize) {
    (count / batch, count % batch)
}

/// Evaluation plans for one model over one split.
pub struct Evaluator<'s> {
    split: &'s GpuSplit,
    full: Option<Plan>,
    tail: Option<Plan>,
    full_batches: usize,
    /// Batches per submission: all of them, or a chunk's when the split is streamed.
    chunk_batches: usize,
    batch: usize,
    state: Tensor,
    acc: Tensor,
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
        let batch = batch.min(split.count).max(1);
        let chunk = split.plan_chunks(gpu, batch)?;
        let state = Tensor::zeros(gpu, &[step::STATE_LEN], "eval state")?;
        let acc = Tensor::zeros(gpu, &[4], "eval sums")?;
        let (full_batches, tail) = batches(split.count, batch);
        let build = |n: usize| -> Result<Plan> {
            // Batches visit the images in file order (`perm` is the identity), so batch
            // state[1]'s row i is image state[1]·batch + i: the tail's plan counts in full
            // batches too.
            let g = Graph::new(gpu, &model.arch, n, Purpose::Evaluate, Elem::F32)?
                .with_noise_key(NoiseKey::Image { batch_size: batch });
            let mut plan = Plan::new();
            g.record_data(
                &mut plan,
                gpu,
                &model.arch,
                &split.source(batch),
                &state,
                seed,
                (binarize == Binarize::Dynamic).then_some(TEST_BINARIZE_SEED),
            );
            g.record_encode(&mut plan, gpu, model, &state, seed, STREAM_EVAL, true)?;
            g.record_decode(&mut plan, gpu, model)?;
            g.record_loss(&mut plan, gpu, &model.arch);
            reduce::sum_into(&mut plan, gpu, &acc, 0, &g.rec, g.kl(), n);
            step::advance(&mut plan, gpu, &state);
            plan.compile(gpu);
            // The graph's tensors stay alive through the plan's bindings.
            Ok(plan)
        };
        let full = if full_batches > 0 {
            Some(build(batch)?)
        } else {
            None
        };
        let tail = if tail > 0 { Some(build(tail)?) } else { None };
        let steps = full_batches + usize::from(tail.is_some());
        Ok(Evaluator {
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
            vae: model.arch.is_vae(),
        })
    }

    /// Runs every batch, in one submission (or one per chunk of a streamed split, each chunk
    /// uploaded before it), and reads the sums back.
    pub async fn run(&self, gpu: &Gpu) -> Result<EvalMetrics> {
        gpu.queue
            .write_buffer(&self.state.buffer, 0, bytemuck::cast_slice(&[0u32; 4]));
        gpu.queue
            .write_buffer(&self.acc.buffer, 0, bytemuck::cast_slice(&[0f32; 4]));
        let count = self.split.count;
        let steps = self.full_batches + usize::from(self.tail.is_some());
        for first in (0..steps).step_by(self.chunk_batches) {
            let chunk = self.chunk_batches * self.batch;
            self.split.load_chunk(gpu, None, first * self.batch, chunk);
            let mut encoder = gpu
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("eval"),
                });
            {
                let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some("eval"),
                    timestamp_writes: None,
                });
                for s in first..(first + self.chunk_batches).min(steps) {
                    let plan = if s < self.full_batches {
                        self.full.as_ref()
                    } else {
                        self.tail.as_ref()
                    };
                    plan.expect("a plan for every batch").record(&mut pass);
                }
            }
            gpu.queue.submit([encoder.finish()]);
        }
        let sums = self.acc.fetch_f32(gpu).await?;
        let n = count as f64;
        Ok(EvalMetrics {
            rec: sums[0] as f64 / n,
            kl: self.vae.then(|| sums[1] as f64 / n),
            count,
        })
    }
}
