//! Test-set evaluation on the GPU: the test images resident as packed bytes, one eval graph for
//! full batches (and one for the tail), every batch recorded into one submission, and the loss
//! sums read back once. The VAE's ε and the denoising noise are keyed by image
//! ([`NoiseKey::Image`]), so the figures do not depend on the batch size.

use crate::bail;
use crate::counter_rng::STREAM_EVAL;
use crate::data::Split;
use crate::error::Result;
use crate::gpu::{Elem, Gpu, Plan, Tensor};
use crate::graph::{Graph, ImageSource, Model, Purpose};
use crate::kernels::{NoiseKey, reduce, step};
use crate::models::ImageShape;
use std::path::{Path, PathBuf};

/// A split of the dataset on the GPU: packed u8 pixels, the visiting order, the labels.
pub struct GpuSplit {
    /// `[⌈count · C·S·S / 4⌉]` packed pixels.
    pub images: Tensor,
    /// The shape of every image.
    pub shape: ImageShape,
    /// Where the images came from, for errors.
    pub source: PathBuf,
    /// `[count]` order in which batches visit images (identity until shuffled).
    pub perm: Tensor,
    pub count: usize,
    pub labels: Vec<u32>,
}

impl GpuSplit {
    /// Uploads a split once; `source` names the files in errors.
    pub fn upload(gpu: &Gpu, split: &Split, source: &Path) -> Result<GpuSplit> {
        let im = &split.images;
        if im.rows != im.cols {
            bail!(
                "{}: images are {}×{} with {} channel(s); gpu-ae models take square images",
                source.display(),
                im.rows,
                im.cols,
                im.channels
            );
        }
        if im.count == 0 {
            bail!("{}: the split holds no images", source.display());
        }
        let shape = ImageShape {
            channels: im.channels,
            size: im.rows,
        };
        // The pixel bytes in file order are already the little-endian words of
        // `kernels::data::pack_bytes`: upload them as they are, zero-padded to whole words.
        let words = im.pixels.len().div_ceil(4);
        let images = if im.pixels.len().is_multiple_of(4) {
            Tensor::from_bytes(gpu, &[words], &im.pixels, "dataset images")?
        } else {
            let mut padded = im.pixels.clone();
            padded.resize(words * 4, 0);
            Tensor::from_bytes(gpu, &[words], &padded, "dataset images")?
        };
        let order: Vec<u32> = (0..im.count as u32).collect();
        let perm = Tensor::from_u32(gpu, &[im.count], &order, "dataset order")?;
        Ok(GpuSplit {
            images,
            shape,
            source: source.to_path_buf(),
            perm,
            count: im.count,
            labels: split.labels.clone(),
        })
    }

    /// Refuses a model made for images of another shape.
    pub fn check_model(&self, model: &ImageShape) -> Result<()> {
        if self.shape != *model {
            bail!(
                "{}: images are {}, the model takes {model} images",
                self.source.display(),
                self.shape
            );
        }
        Ok(())
    }

    pub fn source(&self, batch_size: usize) -> ImageSource<'_> {
        ImageSource {
            images: &self.images,
            perm: &self.perm,
            batch_size,
        }
    }
}

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
pub struct Evaluator {
    full: Option<Plan>,
    tail: Option<Plan>,
    full_batches: usize,
    state: Tensor,
    acc: Tensor,
    count: usize,
    vae: bool,
}

impl Evaluator {
    /// Builds the eval graphs; `seed` fixes the VAE's ε and the denoising noise, drawn per test
    /// image, so that repeated evaluations of the same model give the same figures whatever the
    /// batch size.
    pub fn new(
        gpu: &Gpu,
        model: &Model,
        split: &GpuSplit,
        batch: usize,
        seed: u32,
    ) -> Result<Evaluator> {
        split.check_model(&model.arch.spec.image)?;
        let batch = batch.min(split.count).max(1);
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
        Ok(Evaluator {
            full,
            tail,
            full_batches,
            state,
            acc,
            count: split.count,
            vae: model.arch.is_vae(),
        })
    }

    /// Runs every batch in one submission and reads the sums back.
    pub fn run(&self, gpu: &Gpu) -> Result<EvalMetrics> {
        gpu.queue
            .write_buffer(&self.state.buffer, 0, bytemuck::cast_slice(&[0u32; 4]));
        gpu.queue
            .write_buffer(&self.acc.buffer, 0, bytemuck::cast_slice(&[0f32; 4]));
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
            if let Some(full) = &self.full {
                for _ in 0..self.full_batches {
                    full.record(&mut pass);
                }
            }
            if let Some(tail) = &self.tail {
                tail.record(&mut pass);
            }
        }
        gpu.queue.submit([encoder.finish()]);
        let sums = self.acc.read_f32(gpu)?;
        let n = self.count as f64;
        Ok(EvalMetrics {
            rec: sums[0] as f64 / n,
            kl: self.vae.then(|| sums[1] as f64 / n),
            count: self.count,
        })
    }
}
