//! Inference with a trained model: encode images to codes, decode codes to images, and run
//! the whole model (task input → reconstruction), in fixed-size batches on one graph whose
//! plans are recorded once. Used by `sample`, `reconstruct`, `encode`, `denoise`, `upscale`.

use crate::counter_rng::STREAM_EVAL;
use crate::error::Result;
use crate::gpu::{Elem, Gpu, Plan, Tensor};
use crate::kernels::{NoiseKey, step};
use crate::model::graph::{Graph, Model, Purpose};

pub struct Inference<'g> {
    gpu: &'g Gpu,
    pub model: Model,
    graph: Graph,
    /// u32 `[4]`: state[1] is the batch index, so row i draws the task noise of image
    /// state[1]·n + i (keyed by image: the same whatever the batch size).
    state: Tensor,
    /// target → task input → code (posterior mean) → reconstruction.
    full: Plan,
    /// code → reconstruction.
    decode: Plan,
    n: usize,
}

/// What one pass over a batch of images returns (all `[count, …]`, flattened).
pub struct Reconstruction {
    /// The model's input (noisy, 14×14, or the image itself), `[count, input pixels]`.
    pub inputs: Vec<f32>,
    /// The code: μ for VAEs, `[count, code]`.
    pub codes: Vec<f32>,
    /// Reconstructions in [0, 1], `[count, C·S·S]`.
    pub outputs: Vec<f32>,
}

impl<'g> Inference<'g> {
    /// Builds the graph for batches of `batch` images; `seed` fixes the denoising noise, drawn
    /// per image (the image's index in what [`Inference::reconstruct`] is given), so that it
    /// does not depend on `batch`.
    pub fn new(gpu: &'g Gpu, model: Model, batch: usize, seed: u32) -> Result<Inference<'g>> {
        let n = batch.max(1);
        let graph = Graph::new(gpu, &model.arch, n, Purpose::Infer, Elem::F32)?
            .with_noise_key(NoiseKey::Image { batch_size: n });
        let state = Tensor::zeros(gpu, &[step::STATE_LEN], "inference state")?;
        let mut full = Plan::new();
        graph.record_task_input(&mut full, gpu, &model.arch, &state, seed);
        graph.record_encode(&mut full, gpu, &model, &state, seed, STREAM_EVAL, false)?;
        graph.record_decode(&mut full, gpu, &model)?;
        graph.record_probabilities(&mut full, gpu);
        let mut decode = Plan::new();
        graph.record_decode(&mut decode, gpu, &model)?;
        graph.record_probabilities(&mut decode, gpu);
        full.compile(gpu);
        decode.compile(gpu);
        Ok(Inference {
            gpu,
            model,
            graph,
            state,
            full,
            decode,
            n,
        })
    }

    pub fn code_len(&self) -> usize {
        self.model.arch.code_len()
    }

    pub fn input_pixels(&self) -> usize {
        self.model.arch.input_dims().numel()
    }

    /// Values per output image, C·S·S.
    pub fn pixels(&self) -> usize {
        self.model.arch.spec.image.pixels()
    }

    /// Writes the classes of batch `b` (of `n` rows, padded with class 0) for a conditional
    /// model; `labels` must then hold one per item. Nothing for an unconditional model.
    fn write_labels(&self, labels: Option<&[u32]>, b: usize) -> Result<()> {
        let Some(t) = self.graph.labels() else {
            return Ok(());
        };
        let Some(labels) = labels else {
            crate::bail!("a conditional model needs the class of every image it draws");
        };
        let mut batch: Vec<u32> = labels
            .iter()
            .skip(b * self.n)
            .take(self.n)
            .copied()
            .collect();
        batch.resize(self.n, 0);
        self.gpu
            .queue
            .write_buffer(&t.buffer, 0, bytemuck::cast_slice(&batch));
        Ok(())
    }

    /// Runs the model on `images` (`[count, C, S, S]` in [0, 1]); a conditional model takes
    /// their classes (`[count]`, indices into its classes).
    pub async fn reconstruct(
        &self,
        images: &[f32],
        labels: Option<&[u32]>,
    ) -> Result<Reconstruction> {
        let pixels = self.pixels();
        let count = images.len() / pixels;
        check_labels(labels, count)?;
        let (ip, cl) = (self.input_pixels(), self.code_len());
        let mut out = Reconstruction {
            inputs: Vec::with_capacity(count * ip),
            codes: Vec::with_capacity(count * cl),
            outputs: Vec::with_capacity(count * pixels),
        };
        for (b, chunk) in images.chunks(self.n * pixels).enumerate() {
            let k = chunk.len() / pixels;
            let mut padded = chunk.to_vec();
            padded.resize(self.n * pixels, 0.0);
            self.graph.target.write_f32(self.gpu, &padded);
            self.write_labels(labels, b)?;
            self.gpu.queue.write_buffer(
                &self.state.buffer,
                0,
                bytemuck::cast_slice(&[0, b as u32, 0, 0]),
            );
            self.full.submit(self.gpu);
            out.inputs
                .extend_from_slice(&self.graph.input().fetch_f32(self.gpu).await?[..k * ip]);
            out.codes
                .extend_from_slice(&self.fetch_codes().await?[..k * cl]);
            let probabilities = self.graph.probabilities().fetch_f32(self.gpu).await?;
            out.outputs.extend_from_slice(&probabilities[..k * pixels]);
        }
        Ok(out)
    }

    /// The posterior mean (VAE), the code (AE), `[n, code]`.
    async fn fetch_codes(&self) -> Result<Vec<f32>> {
        let cl = self.code_len();
        if self.model.arch.is_vae() {
            let head = self
                .graph
                .head_output()
                .expect("VAEs have a head")
                .fetch_f32(self.gpu)
                .await?;
            Ok(head
                .chunks(2 * cl)
                .flat_map(|row| row[..cl].to_vec())
                .collect())
        } else {
            self.graph.code().fetch_f32(self.gpu).await
        }
    }

    /// Decodes `codes` (`[count, code]`) to images `[count, C, S, S]` in [0, 1]; a
    /// conditional model draws the classes `labels` (`[count]`).
    pub async fn decode(&self, codes: &[f32], labels: Option<&[u32]>) -> Result<Vec<f32>> {
        let cl = self.code_len();
        let pixels = self.pixels();
        check_labels(labels, codes.len() / cl)?;
        let mut out = Vec::with_capacity(codes.len() / cl * pixels);
        for (b, chunk) in codes.chunks(self.n * cl).enumerate() {
            let k = chunk.len() / cl;
            let mut padded = chunk.to_vec();
            padded.resize(self.n * cl, 0.0);
            self.graph.code().write_f32(self.gpu, &padded);
            self.write_labels(labels, b)?;
            self.decode.submit(self.gpu);
            let probabilities = self.graph.probabilities().fetch_f32(self.gpu).await?;
            out.extend_from_slice(&probabilities[..k * pixels]);
        }
        Ok(out)
    }
}

/// Labels, when given, are one per item.
fn check_labels(labels: Option<&[u32]>, count: usize) -> Result<()> {
    match labels {
        Some(l) if l.len() != count => {
            crate::bail!("{} labels for {count} images", l.len())
        }
        _ => Ok(()),
    }
}
