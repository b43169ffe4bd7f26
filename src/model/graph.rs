//! A model on the GPU: the flat parameter buffer ([`Model`]) and, for one batch size, every
//! activation tensor with the dispatches of each phase recorded once ([`Graph`]): data →
//! encode → (sample) → decode → loss; for training, a [`TrainGraph`] owns its forward graph
//! and the gradients, and records the loss's gradient and the backward pass. Training, evaluation and
//! the picture commands all replay these plans; nothing is built per step.

use crate::checkpoint::{Checkpoint, NamedTensor, Stored};
use crate::error::Result;
use crate::gpu::{Elem, Gpu, Plan, Tensor};
use crate::kernels::grads::GradPartials;
use crate::kernels::{
    InputGrad, NoiseKey, SplitTensor, activation, condition, data, linear, loss, pool, vae,
};
use crate::model::layers::{Backward, Linear, ParamEntry, Record, StackBuffers};
use crate::model::{Architecture, Head, LossKind, ModelKind, Task};
use crate::shapes::{Activation, Pool2dShape};

/// Architecture plus its parameters and running statistics on the GPU.
pub struct Model {
    pub arch: Architecture,
    /// `[P]`, offsets in `arch.params.entries`.
    pub params: Tensor,
    /// `[B]` batch norm running means and variances, offsets in `arch.params.buffers` (one
    /// unused value when the model has none).
    pub buffers: Tensor,
}

/// A model's values on the host: its parameters and running statistics, in table order.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelValues {
    pub params: Vec<f32>,
    pub buffers: Vec<f32>,
}

impl ModelValues {
    /// A new model's values: PyTorch's default initialisation from `seed`.
    pub fn init(arch: &Architecture, seed: u64) -> ModelValues {
        ModelValues {
            params: arch.params.init(seed),
            buffers: arch.params.init_buffers(),
        }
    }
}

impl Model {
    /// Uploads `params` (one f32 per parameter, in table order) with fresh running statistics.
    pub fn new(gpu: &Gpu, arch: Architecture, params: &[f32]) -> Result<Model> {
        let values = ModelValues {
            params: params.to_vec(),
            buffers: arch.params.init_buffers(),
        };
        Model::upload(gpu, arch, &values)
    }

    /// Refuses a model whose parameters (and so their gradients and Adam's moments) do not fit
    /// one storage binding of `gpu`: too large for the adapter, whatever the batch size. The
    /// conv family names its `--widths`.
    pub fn check_fits(gpu: &Gpu, arch: &Architecture) -> Result<()> {
        let bytes = 4 * arch.params.total as u64;
        let limit = gpu.max_binding();
        if bytes <= limit {
            return Ok(());
        }
        let spec = &arch.spec;
        let what = match spec.kind {
            ModelKind::ConvVae | ModelKind::ConvAe => format!(
                "--widths {}: the model is too large for this adapter",
                crate::metadata::join_widths(&spec.widths)
            ),
            kind => format!(
                "{kind} of {} images is too large for this adapter",
                spec.image
            ),
        };
        crate::bail!(
            "{what}: its {} parameters take {} in one buffer, and {} allows at most {} per storage binding, whatever the --batch; choose smaller widths (or a smaller --latent or --size), or another adapter",
            arch.params.total,
            crate::gpu::human_bytes(bytes),
            gpu.info.name,
            crate::gpu::human_bytes(limit)
        )
    }

    /// Uploads parameters and running statistics.
    pub fn upload(gpu: &Gpu, arch: Architecture, values: &ModelValues) -> Result<Model> {
        Model::check_fits(gpu, &arch)?;
        assert_eq!(values.params.len(), arch.params.total, "parameter count");
        assert_eq!(
            values.buffers.len(),
            arch.params.buffers_total,
            "buffer count"
        );
        let params = Tensor::from_f32(gpu, &[arch.params.total], &values.params, "parameters")?;
        let mut buffers = values.buffers.clone();
        buffers.resize(buffers.len().max(1), 0.0);
        let buffers = Tensor::from_f32(gpu, &[buffers.len()], &buffers, "running statistics")?;
        Ok(Model {
            arch,
            params,
            buffers,
        })
    }

    /// The parameters and running statistics.
    pub async fn values(&self, gpu: &Gpu) -> Result<ModelValues> {
        let mut buffers = self.buffers.fetch_f32(gpu).await?;
        buffers.truncate(self.arch.params.buffers_total);
        Ok(ModelValues {
            params: self.params.fetch_f32(gpu).await?,
            buffers,
        })
    }

    /// The model as PyTorch's `state_dict`: parameters, running statistics and each batch norm
    /// layer's `num_batches_tracked` (`steps`: every training step updates every layer once).
    pub async fn named_tensors(&self, gpu: &Gpu, steps: u64) -> Result<Vec<NamedTensor>> {
        let values = self.values(gpu).await?;
        let table = &self.arch.params;
        let slices = |entries: &[ParamEntry], flat: &[f32]| -> Vec<NamedTensor> {
            entries
                .iter()
                .map(|e| {
                    NamedTensor::f32(
                        &e.name,
                        &e.shape,
                        flat[e.offset..e.offset + e.len()].to_vec(),
                    )
                })
                .collect()
        };
        let mut tensors = slices(&table.entries, &values.params);
        tensors.extend(slices(&table.buffers, &values.buffers));
        tensors.extend(table.batch_norms().map(|layer| NamedTensor {
            name: format!("{layer}.num_batches_tracked"),
            shape: vec![],
            data: vec![steps as f32],
            stored: Stored::I64,
        }));
        Ok(tensors)
    }
}

/// A model's values from a checkpoint, checked tensor by tensor against the tables; every
/// tensor of the file must belong to the model (batch norm's `num_batches_tracked` counters
/// included, which the model derives from the step count).
pub fn values_from_checkpoint(
    arch: &Architecture,
    ckpt: &Checkpoint,
    path: &std::path::Path,
) -> Result<ModelValues> {
    let read = |entries: &[ParamEntry], total: usize| -> Result<Vec<f32>> {
        let mut values = vec![0.0f32; total];
        for e in entries {
            let Some(t) = ckpt.get(&e.name) else {
                crate::bail!(
                    "{}: missing tensor {} for {}",
                    path.display(),
                    e.name,
                    arch.spec.kind
                );
            };
            if t.shape != e.shape {
                crate::bail!(
                    "{}: tensor {} has shape {:?}, {} expects {:?}",
                    path.display(),
                    e.name,
                    t.shape,
                    arch.spec.kind,
                    e.shape
                );
            }
            values[e.offset..e.offset + e.len()].copy_from_slice(&t.data);
        }
        Ok(values)
    };
    let table = &arch.params;
    let values = ModelValues {
        params: read(&table.entries, table.total)?,
        buffers: read(&table.buffers, table.buffers_total)?,
    };
    let counters: Vec<String> = table
        .batch_norms()
        .map(|l| format!("{l}.num_batches_tracked"))
        .collect();
    let known = |name: &str| {
        table.get(name).is_some()
            || table.buffers.iter().any(|e| e.name == name)
            || counters.iter().any(|c| c == name)
    };
    let extra: Vec<&str> = ckpt
        .tensors
        .iter()
        .filter(|t| !known(&t.name))
        .map(|t| t.name.as_str())
        .collect();
    if !extra.is_empty() {
        crate::bail!(
            "{}: unexpected tensors for {}: {}",
            path.display(),
            arch.spec.kind,
            extra.join(", ")
        );
    }
    Ok(values)
}

/// Where a graph's clean images come from on the GPU: packed u8 pixels and an order.
pub struct ImageSource<'a> {
    /// Packed bytes (`kernels::data::pack_bytes`), `[count · pixels / 4]`.
    pub images: &'a Tensor,
    /// u32 `[count]`: the order in which batches visit the images.
    pub perm: &'a Tensor,
    /// Batch size that batch indices are counted in (the full batch, also for a tail graph).
    pub batch_size: usize,
    /// u32 `[count]`: the class of each image, in the layout of `images` (a conditional
    /// model's batches gather theirs by `perm` too).
    pub labels: &'a Tensor,
}

/// What sits between the encoder and the decoder, with its tensors for one batch: the
/// graph's own copy of the architecture's [`Head`], typed so that each model kind holds
/// exactly its tensors.
// One per graph: the size of its largest variant costs nothing.
#[allow(clippy::large_enum_variant)]
enum Bottleneck {
    /// lesson-ae: the encoder's output is the code.
    Direct,
    /// conv-ae: `fc` writes the code.
    Ae {
        fc: Linear,
        code: Tensor, // [n, L]
    },
    /// A VAE: the head (`fc_mu` and `fc_logvar` as one Linear) writes (μ | logvar), the
    /// reparameterisation z = μ + σ·ε and the KL divergence per example.
    Vae {
        head: Linear,
        /// `[n, 2L]`; None in a [`Purpose::Decode`] graph, whose codes another plan writes.
        head_out: Option<Tensor>,
        z: Tensor,   // [n, L]
        eps: Tensor, // [n, L]
        kl: Tensor,  // [n]
    },
}

/// The gradients a [`TrainGraph`] keeps beside the stacks' own.
struct Gradients {
    /// `[n, C·S·S]` gradient of the decoder output (the loss's).
    dout: Tensor,
    /// Gradient of the code (decoder input), `[n, code]`; None when the decoder's first layer
    /// hands it to the VAE latent layer as split-K slices instead.
    dcode: Option<Tensor>,
    /// Gradient of the encoder output `[n, F]` (a conditional encoder's `[n, F+K]`, the
    /// label's columns included) when a head sits between.
    dfeat: Option<Tensor>,
    /// VAE: `[n, 2L]` the gradient of the head output (μ | logvar).
    dhead: Option<Tensor>,
}

/// A model instantiated for training at batch size `n`: its forward [`Graph`] (whose stacks
/// keep their backward tensors, and whose batch norm uses batch statistics) and the gradients
/// between the stacks; records the loss with its gradient and the backward pass.
pub struct TrainGraph {
    pub forward: Graph,
    grads: Gradients,
}

/// What a forward-only [`Graph`] is built for, which decides what it allocates (a
/// [`TrainGraph`] is built for training: gradients, batch norm on batch statistics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Forward and loss on the test set: batch norm on running statistics.
    Evaluate,
    /// Forward for pictures and codes: also the sigmoid of the logits (BCE models).
    Infer,
    /// The decoder and its loss only, from codes another plan writes into [`Graph::code`]
    /// (the importance-weighted estimate's rows): no encoder tensors.
    Decode,
}

/// A model instantiated for batch size `n`.
///
/// Storage: the images, every encoder and decoder activation and their gradients are `elem`
/// (f16 with `--precision f16`); the small code-sized tensors (head output, z, eps, KL, their
/// gradients), the per-example losses, the parameters and their gradients are always f32, and
/// every kernel computes in f32. With f16 activation gradients the backward pass runs on the
/// loss summed over the batch instead of its mean ([`Graph::loss_scale`] = n), so that the
/// gradients stay in f16's normal range (≥ 6.1e-5), and the gradient sums are divided by n
/// again as the partials are added up.
///
/// Noise (the VAE's ε, the denoising input noise) is keyed by the step counter, as training
/// wants it, unless [`Graph::with_noise_key`] keys it by image (evaluation, inference).
pub struct Graph {
    pub n: usize,
    /// Storage of the images, activations and their gradients.
    pub elem: Elem,
    /// `[n, C, S, S]` clean images: the loss target, and the input of `reconstruct`.
    pub target: Tensor,
    /// `[n, C, h, w]` noisy or downsampled input when the task has one.
    input: Option<Tensor>,
    /// None in a [`Purpose::Decode`] graph.
    enc: Option<StackBuffers>,
    bottleneck: Bottleneck,
    dec: StackBuffers,
    /// `[n]` reconstruction loss per example (summed over pixels).
    pub rec: Tensor,
    /// `[n, C·S·S]` sigmoid of the logits, for pictures (inference graphs with a BCE model).
    probs: Option<Tensor>,
    /// u32 `[n]` a conditional VAE's classes of the batch, which its label layers read
    /// (gathered, or written by the host for inference).
    labels: Option<Tensor>,
    /// How the recorded noise kernels key the RNG.
    noise_key: NoiseKey,
}

impl Graph {
    /// Allocates every tensor `purpose` needs for batch `n`, images and activations stored as
    /// `elem`.
    pub fn new(
        gpu: &Gpu,
        arch: &Architecture,
        n: usize,
        purpose: Purpose,
        elem: Elem,
    ) -> Result<Graph> {
        Graph::build(gpu, arch, n, Some(purpose), elem)
    }

    /// The forward graph of `purpose`, or of a [`TrainGraph`] when None.
    fn build(
        gpu: &Gpu,
        arch: &Architecture,
        n: usize,
        purpose: Option<Purpose>,
        elem: Elem,
    ) -> Result<Graph> {
        let train = purpose.is_none();
        if elem == Elem::F16 && !gpu.has_f16() {
            crate::bail!(
                "--precision f16: {} has no SHADER_F16 (f16 storage in shaders); use --precision f32",
                gpu.describe()
            );
        }
        let decode_only = purpose == Some(Purpose::Decode);
        let target = Tensor::zeros_as(gpu, &arch.spec.image.dims().batch(n), elem, "target")?;
        let input = match arch.spec.task {
            _ if decode_only => None,
            Task::Reconstruct => None,
            _ => Some(Tensor::zeros_as(
                gpu,
                &arch.input_dims().batch(n),
                elem,
                "task input",
            )?),
        };
        // With a head, the head's input-gradient product applies the encoder's final activation.
        let enc_backward = match (train, &arch.head, arch.encoder.output_activation()) {
            (false, _, _) => Backward::None,
            (true, Head::Ae(_) | Head::Vae(_), Some(_)) => Backward::BeforeOutputActivation,
            (true, _, _) => Backward::FromOutput,
        };
        let dec_backward = if train {
            Backward::FromOutput
        } else {
            Backward::None
        };
        let enc = (!decode_only)
            .then(|| StackBuffers::new(gpu, &arch.encoder, n, elem, enc_backward, "encoder"))
            .transpose()?;
        let code = arch.code_len();
        let bottleneck = match &arch.head {
            Head::Direct => Bottleneck::Direct,
            Head::Ae(fc) => Bottleneck::Ae {
                fc: fc.clone(),
                code: Tensor::zeros(gpu, &[n, code], "code")?,
            },
            Head::Vae(head) => Bottleneck::Vae {
                head: head.clone(),
                head_out: (!decode_only)
                    .then(|| Tensor::zeros(gpu, &[n, 2 * code], "head output"))
                    .transpose()?,
                z: Tensor::zeros(gpu, &[n, code], "z")?,
                eps: Tensor::zeros(gpu, &[n, code], "eps")?,
                kl: Tensor::zeros(gpu, &[n], "kl")?,
            },
        };
        let dec = StackBuffers::new(gpu, &arch.decoder, n, elem, dec_backward, "decoder")?;
        let labels = (arch.classes() > 0)
            .then(|| Tensor::from_u32(gpu, &[n], &vec![0; n], "batch labels"))
            .transpose()?;
        let pixels = arch.spec.image.pixels();
        let rec = Tensor::zeros(gpu, &[n], "reconstruction loss")?;
        let probs = if purpose == Some(Purpose::Infer) && arch.spec.loss == LossKind::Bce {
            Some(Tensor::zeros(gpu, &[n, pixels], "probabilities")?)
        } else {
            None
        };
        Ok(Graph {
            n,
            elem,
            target,
            input,
            enc,
            bottleneck,
            dec,
            rec,
            probs,
            labels,
            noise_key: NoiseKey::Step,
        })
    }

    /// The graph with its noise (the VAE's ε, the denoising input noise) drawn per `key`
    /// ([`NoiseKey::Step`] unless set): what every later `record_*` call records.
    pub fn with_noise_key(mut self, key: NoiseKey) -> Graph {
        self.noise_key = key;
        self
    }

    /// The encoder input: the task input, or the clean images.
    pub fn input(&self) -> &Tensor {
        self.input.as_ref().unwrap_or(&self.target)
    }

    /// The decoder input `[n, code]`: z (VAE), the head output (AE) or the encoder output.
    pub fn code(&self) -> &Tensor {
        match &self.bottleneck {
            Bottleneck::Direct => self.encoder().output(),
            Bottleneck::Ae { code, .. } => code,
            Bottleneck::Vae { z, .. } => z,
        }
    }

    /// The encoder's tensors, which every purpose but [`Purpose::Decode`] has.
    fn encoder(&self) -> &StackBuffers {
        self.enc
            .as_ref()
            .expect("a decode-only graph records no encoder")
    }

    /// u32 `[n]` the batch's classes of a conditional VAE (None otherwise): gathered by
    /// [`Graph::record_data`], or written by the host before an inference plan runs.
    pub fn labels(&self) -> Option<&Tensor> {
        self.labels.as_ref()
    }

    /// `[n, 2L]` (μ | logvar) of a VAE, or `[n, L]` of an AE head; None for lesson-ae.
    pub fn head_output(&self) -> Option<&Tensor> {
        match &self.bottleneck {
            Bottleneck::Direct => None,
            Bottleneck::Ae { code, .. } => Some(code),
            Bottleneck::Vae { head_out, .. } => head_out.as_ref(),
        }
    }

    /// `[n]` KL divergence per example (VAE only).
    pub fn kl(&self) -> Option<&Tensor> {
        match &self.bottleneck {
            Bottleneck::Vae { kl, .. } => Some(kl),
            _ => None,
        }
    }

    /// `[n, C·S·S]` reconstructed images in [0, 1] after [`Graph::record_probabilities`].
    pub fn probabilities(&self) -> &Tensor {
        self.probs.as_ref().unwrap_or(self.decoder_output())
    }

    /// `[n, C·S·S]` the decoder's output: logits for a BCE model, predictions for squared
    /// error (what the loss reads).
    pub fn decoder_output(&self) -> &Tensor {
        self.dec.output()
    }

    /// Records: gather `n` clean images of batch `state[1]` into `target` (binarised by
    /// Bernoulli draws from seed `binarize` when given, keyed by the graph's [`NoiseKey`]: fresh
    /// every step in training, fixed per image in evaluation), a conditional VAE's labels, then
    /// the task's input transform (noise from `seed` and the step counter, see
    /// [`Graph::with_noise_key`]; or 2×2 average pooling).
    #[allow(clippy::too_many_arguments)]
    pub fn record_data(
        &self,
        plan: &mut Plan,
        gpu: &Gpu,
        arch: &Architecture,
        src: &ImageSource,
        state: &Tensor,
        seed: u32,
        binarize: Option<u32>,
    ) {
        let pixels = arch.spec.image.pixels();
        data::gather(
            plan,
            gpu,
            &self.target,
            src.images,
            src.perm,
            state,
            binarize.map(|seed| (seed, self.noise_key)),
            src.batch_size,
            self.n,
            pixels,
        );
        if let Some(labels) = &self.labels {
            condition::gather_labels(
                plan,
                gpu,
                labels,
                src.labels,
                src.perm,
                state,
                src.batch_size,
                self.n,
            );
        }
        self.record_task_input(plan, gpu, arch, state, seed);
    }

    /// Records the task's input transform of `target` (nothing for reconstruction); its noise
    /// is keyed by the graph's [`NoiseKey`].
    pub fn record_task_input(
        &self,
        plan: &mut Plan,
        gpu: &Gpu,
        arch: &Architecture,
        state: &Tensor,
        seed: u32,
    ) {
        let Some(input) = &self.input else { return };
        match arch.spec.task {
            Task::Reconstruct => {}
            Task::Denoise { noise } => data::add_noise(
                plan,
                gpu,
                input,
                &self.target,
                state,
                seed,
                noise,
                self.noise_key,
                self.n,
                arch.spec.image.pixels(),
            ),
            Task::Superres => pool::avg_pool2x2_forward(
                plan,
                gpu,
                input,
                &self.target,
                Pool2dShape {
                    n: self.n,
                    c: arch.spec.image.channels,
                    h_in: arch.spec.image.size,
                    w_in: arch.spec.image.size,
                    padding: 0,
                },
            ),
        }
    }

    /// Records encoder → head → (VAE) sampling, ε keyed by the graph's [`NoiseKey`].
    /// `sample = false` decodes from μ. A VAE head leaves split-K slices that the latent layer
    /// adds up (no summing pass of its own).
    #[allow(clippy::too_many_arguments)]
    pub fn record_encode(
        &self,
        plan: &mut Plan,
        gpu: &Gpu,
        model: &Model,
        state: &Tensor,
        seed: u32,
        stream: u32,
        sample: bool,
    ) -> Result<()> {
        let arch = &model.arch;
        let params = &model.params.buffer;
        self.encoder().forward(
            &mut self.record(plan, gpu, model),
            &arch.encoder,
            self.input(),
        )?;
        let feat = self.encoder().output();
        match &self.bottleneck {
            Bottleneck::Direct => {}
            Bottleneck::Ae { fc, code } => linear::forward(
                plan,
                gpu,
                code,
                feat,
                params,
                fc.params,
                fc.shape(self.n),
                None,
            ),
            Bottleneck::Vae {
                head,
                head_out,
                z,
                eps,
                kl,
                ..
            } => {
                let h = head_out
                    .as_ref()
                    .expect("a decode-only graph records no encoder");
                let split = linear::forward_split(
                    plan,
                    gpu,
                    feat,
                    params,
                    head.params,
                    head.shape(self.n),
                )?;
                vae::forward(
                    plan,
                    gpu,
                    h,
                    z,
                    eps,
                    kl,
                    &split,
                    state,
                    seed,
                    stream,
                    self.noise_key,
                    sample,
                    self.n,
                    arch.code_len(),
                );
            }
        }
        Ok(())
    }

    /// Records z = μ, the first L columns of the head output `(μ | logvar)`, after a sampling
    /// [`Graph::record_encode`] of a VAE (nothing for other models, whose code has no noise):
    /// what a following [`Graph::record_decode`] then decodes is the picture of the mean code,
    /// without running the encoder again.
    pub fn record_mean_code(&self, plan: &mut Plan, gpu: &Gpu) {
        if let Bottleneck::Vae {
            head_out: Some(h),
            z,
            ..
        } = &self.bottleneck
        {
            let l = z.numel() / self.n;
            let (z, h) = (InputGrad::plain(z), SplitTensor::whole(h));
            condition::take_columns(plan, gpu, z, &h, None, self.n, l, l);
        }
    }

    /// Records the decoder from [`Graph::code`] (and a conditional VAE's labels) to logits (or
    /// probabilities for MSE models).
    pub fn record_decode(&self, plan: &mut Plan, gpu: &Gpu, model: &Model) -> Result<()> {
        self.dec.forward(
            &mut self.record(plan, gpu, model),
            &model.arch.decoder,
            self.code(),
        )
    }

    /// Where a stack's dispatches go: `plan`, reading `model`'s parameters and statistics.
    fn record<'a>(&'a self, plan: &'a mut Plan, gpu: &'a Gpu, model: &'a Model) -> Record<'a> {
        Record {
            plan,
            gpu,
            params: &model.params.buffer,
            buffers: &model.buffers.buffer,
            n: self.n,
            labels: self.labels.as_ref(),
        }
    }

    /// Records the sigmoid that turns logits into pictures (BCE models).
    pub fn record_probabilities(&self, plan: &mut Plan, gpu: &Gpu) {
        if let Some(p) = &self.probs {
            activation::forward(plan, gpu, p, self.dec.output(), Activation::Sigmoid);
        }
    }

    /// What the backward pass multiplies the batch-mean loss by: 1, or n with f16 gradients
    /// (see [`Graph`]); the parameter gradients come out unscaled.
    pub fn loss_scale(&self) -> f32 {
        match self.elem {
            Elem::F32 => 1.0,
            Elem::F16 => self.n as f32,
        }
    }

    /// Records the per-example reconstruction loss into `rec` and its gradient (of the batch
    /// mean times [`Graph::loss_scale`]) into the decoder-output gradient.
    pub fn record_loss(&self, plan: &mut Plan, gpu: &Gpu, arch: &Architecture) {
        self.record_loss_with(plan, gpu, arch, None);
    }

    /// [`Graph::record_loss`], and with `dout` its gradient in the same pass (training).
    fn record_loss_with(
        &self,
        plan: &mut Plan,
        gpu: &Gpu,
        arch: &Architecture,
        dout: Option<&Tensor>,
    ) {
        let d = arch.spec.image.pixels();
        let scale = self.loss_scale() / self.n as f32;
        match arch.spec.loss {
            LossKind::Bce => loss::bce_with_logits(
                plan,
                gpu,
                &self.rec,
                dout,
                self.dec.output(),
                &self.target,
                self.n,
                d,
                scale,
            ),
            LossKind::Mse => loss::mse(
                plan,
                gpu,
                &self.rec,
                dout,
                self.dec.output(),
                &self.target,
                self.n,
                d,
                scale,
            ),
        }
    }
}

impl TrainGraph {
    /// Allocates the forward graph of a training step for batch `n` (activations stored as
    /// `elem`) and the gradients between its stacks.
    pub fn new(gpu: &Gpu, arch: &Architecture, n: usize, elem: Elem) -> Result<TrainGraph> {
        let forward = Graph::build(gpu, arch, n, None, elem)?;
        let code = arch.code_len();
        let feat = arch.encoder.output().numel();
        let pixels = arch.spec.image.pixels();
        let grads = Gradients {
            dout: Tensor::zeros_as(gpu, &[n, pixels], elem, "d output")?,
            dcode: match split_input_layer(arch) {
                Some(_) => None,
                None => Some(Tensor::zeros(gpu, &[n, code], "d code")?),
            },
            dfeat: match &arch.head {
                Head::Direct => None,
                _ => Some(Tensor::zeros_as(gpu, &[n, feat], elem, "d features")?),
            },
            dhead: match &arch.head {
                Head::Vae(_) => Some(Tensor::zeros(gpu, &[n, 2 * code], "d head")?),
                _ => None,
            },
        };
        Ok(TrainGraph { forward, grads })
    }

    /// Records the per-example reconstruction loss and its gradient (of the batch mean times
    /// [`Graph::loss_scale`]) into the decoder-output gradient, in one pass.
    pub fn record_loss(&self, plan: &mut Plan, gpu: &Gpu, arch: &Architecture) {
        self.forward
            .record_loss_with(plan, gpu, arch, Some(&self.grads.dout));
    }

    /// Records the backward pass of the whole model into the flat gradient buffer: every
    /// layer's parameter-gradient partials, then the one dispatch that sums them into `grads`.
    /// The loss is the reconstruction plus `kl_weight` times the KL divergence (β of a β-VAE;
    /// 1 for the negative ELBO).
    pub fn record_backward(
        &self,
        plan: &mut Plan,
        gpu: &Gpu,
        model: &Model,
        grads: &Tensor,
        kl_weight: f32,
    ) -> Result<()> {
        let arch = &model.arch;
        let params = &model.params.buffer;
        let (g, t) = (&self.forward, &self.grads);
        let head_partials = match &g.bottleneck {
            Bottleneck::Direct => 0,
            Bottleneck::Ae { fc: l, .. } | Bottleneck::Vae { head: l, .. } => {
                linear::backward_partials(l.shape(g.n))
            }
        };
        let mut partials = GradPartials::new(
            gpu,
            arch.encoder.backward_partials(g.n)
                + head_partials
                + arch.decoder.backward_partials(g.n),
        )?;
        let split_input = split_input_layer(arch);
        g.dec.backward(
            &mut g.record(plan, gpu, model),
            &arch.decoder,
            t.dcode.as_ref(),
            &mut partials,
            &t.dout,
            g.code(),
        )?;
        // Gradient arriving at the head's output (or at the encoder output without a head).
        let dhead = match (&g.bottleneck, &t.dhead) {
            (
                Bottleneck::Vae {
                    head_out: Some(h),
                    eps,
                    ..
                },
                Some(dh),
            ) => {
                let dz = match (split_input, &t.dcode) {
                    (Some(first), _) => linear::input_grad_split(
                        plan,
                        gpu,
                        g.dec.output_grad(0, &t.dout),
                        params,
                        first.params,
                        first.shape(g.n),
                    )?,
                    (None, Some(dcode)) => SplitTensor::whole(dcode),
                    (None, None) => unreachable!("dcode is kept unless the input is split"),
                };
                vae::backward(
                    plan,
                    gpu,
                    dh,
                    &dz,
                    h,
                    eps,
                    g.n,
                    arch.code_len(),
                    kl_weight * g.loss_scale() / g.n as f32,
                );
                dh
            }
            (Bottleneck::Vae { .. }, _) => unreachable!("training graphs of a VAE keep dhead"),
            (Bottleneck::Direct | Bottleneck::Ae { .. }, _) => {
                t.dcode.as_ref().expect("models without a VAE keep dcode")
            }
        };
        // The head's input-gradient product also does the encoder's final activation backward.
        let denc = match (&g.bottleneck, &t.dfeat) {
            (Bottleneck::Ae { fc: l, .. } | Bottleneck::Vae { head: l, .. }, Some(dfeat)) => {
                let act = g.encoder().caller_activation(&arch.encoder);
                linear::backward(
                    plan,
                    gpu,
                    Some(InputGrad { dx: dfeat, act }),
                    &mut partials,
                    dhead,
                    g.encoder().output(),
                    params,
                    l.params,
                    l.shape(g.n),
                );
                dfeat
            }
            _ => dhead,
        };
        g.encoder().backward(
            &mut g.record(plan, gpu, model),
            &arch.encoder,
            None,
            &mut partials,
            denc,
            g.input(),
        )?;
        partials.finish(plan, gpu, &grads.buffer, 1.0 / g.loss_scale())
    }
}

/// A VAE whose decoder opens with a Linear layer: that layer's input gradient goes to the
/// latent layer's backward pass as split-K slices, never summed into a `dcode` tensor.
fn split_input_layer(arch: &Architecture) -> Option<&Linear> {
    arch.decoder
        .layers
        .first()
        .filter(|_| arch.is_vae())
        .and_then(|l| l.as_linear())
}
