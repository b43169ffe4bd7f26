//! The model zoo: the families `conv-vae` and `conv-ae` (one stride-2 convolution per entry of
//! `widths`, mirrored by transposed convolutions: `ConvVAE` of `pytorch_images.py`), `dense-vae`
//! (any image shape) and `lesson-ae` (the 28×28 grey lesson model), each for the tasks
//! reconstruct, denoise and super-resolution (S/2 input, S output). An [`Architecture`] is the
//! encoder stack, the optional latent head and the decoder stack, with PyTorch `state_dict`
//! names and the flat parameter table, for images of an [`ImageShape`] that comes from the data.
//! The decoder ends in logits: the sigmoid is fused into the BCE loss (and applied separately
//! when pictures are made).

pub mod graph;
pub mod import;
pub mod layers;
pub mod record;

use crate::bail;
use crate::data::{DataOptions, SplitRule};
use crate::error::{Error, Result};
use crate::metadata::{choice, json, list, text};
use crate::model::layers::{
    Act, BatchNorm2d, ConcatLabel, Conv2d, ConvTranspose2d, Dims, Linear, MaxPool2x2, ParamTable,
    ResBlock, Stack, StackBuilder, Upsample,
};
use crate::shapes::Activation;
use crate::shapes::ParamOffsets;
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ModelKind {
    ConvVae,
    ConvAe,
    DenseVae,
    LessonAe,
}

impl ModelKind {
    pub const ALL: [ModelKind; 4] = [
        ModelKind::ConvVae,
        ModelKind::ConvAe,
        ModelKind::DenseVae,
        ModelKind::LessonAe,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ModelKind::ConvVae => "conv-vae",
            ModelKind::ConvAe => "conv-ae",
            ModelKind::DenseVae => "dense-vae",
            ModelKind::LessonAe => "lesson-ae",
        }
    }

    pub fn is_vae(self) -> bool {
        matches!(self, ModelKind::ConvVae | ModelKind::DenseVae)
    }
}

impl fmt::Display for ModelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ModelKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match ModelKind::ALL.iter().find(|k| k.name() == s) {
            Some(k) => Ok(*k),
            None => bail!(
                "unknown model {s:?}; choose one of {}",
                ModelKind::ALL.map(|k| k.name()).join(", ")
            ),
        }
    }
}

/// What the model is trained to do (in metadata: `task`, and `noise` for denoise).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "task", rename_all = "lowercase")]
pub enum Task {
    /// Input = target = the image.
    Reconstruct,
    /// Input = image + Gaussian noise of this standard deviation, clipped to [0, 1].
    Denoise {
        #[serde(with = "text", default = "record::default_noise")]
        noise: f32,
    },
    /// Input = the image average-pooled 2×2 (14×14); target = the 28×28 image.
    Superres,
}

impl Task {
    pub fn name(self) -> &'static str {
        match self {
            Task::Reconstruct => "reconstruct",
            Task::Denoise { .. } => "denoise",
            Task::Superres => "superres",
        }
    }

    /// Parses the task name; `noise` is used by `denoise`.
    pub fn parse(name: &str, noise: f32) -> Result<Task> {
        Ok(match name {
            "reconstruct" => Task::Reconstruct,
            "denoise" => {
                if !(noise.is_finite() && noise > 0.0) {
                    bail!("--noise must be a positive number, got {noise}");
                }
                Task::Denoise { noise }
            }
            "superres" => Task::Superres,
            _ => bail!("unknown task {name:?}; choose reconstruct, denoise or superres"),
        })
    }
}

/// The reconstruction loss, summed over pixels per example.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LossKind {
    /// Binary cross-entropy on sigmoid outputs (fused with the sigmoid, logits form).
    Bce,
    /// Squared error on sigmoid outputs.
    Mse,
}

impl LossKind {
    pub fn name(self) -> &'static str {
        match self {
            LossKind::Bce => "bce",
            LossKind::Mse => "mse",
        }
    }
}

impl FromStr for LossKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "bce" => Ok(LossKind::Bce),
            "mse" => Ok(LossKind::Mse),
            _ => bail!("unknown loss {s:?}; choose bce or mse"),
        }
    }
}

/// The images a model reconstructs: `channels` (1 grey, 3 RGB) planes of `size`×`size`.
/// Models written before shapes were recorded are MNIST's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ImageShape {
    #[serde(with = "text", default = "record::mnist_channels")]
    pub channels: usize,
    #[serde(with = "text", default = "record::mnist_size")]
    pub size: usize,
}

impl ImageShape {
    /// MNIST's 28×28 grey digits: the shape of every model written before shapes were recorded.
    pub const MNIST: ImageShape = ImageShape {
        channels: 1,
        size: 28,
    };

    /// `[C, S, S]`.
    pub fn dims(&self) -> Dims {
        Dims::new(self.channels, self.size, self.size)
    }

    /// Values per image, C·S·S.
    pub fn pixels(&self) -> usize {
        self.channels * self.size * self.size
    }

    /// How a model of this shape reads a folder: its images converted to this shape, split by
    /// the rule its run recorded.
    pub fn data_options(&self, split: &SplitRule) -> DataOptions {
        DataOptions {
            channels: Some(self.channels as u8),
            size: Some(self.size),
            test_percent: match split {
                SplitRule::Hash { test_percent } => *test_percent,
                _ => DataOptions::default().test_percent,
            },
        }
    }
}

impl fmt::Display for ImageShape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = if self.channels == 1 {
            "grey".to_string()
        } else {
            format!("{}-channel", self.channels)
        };
        write!(f, "{}×{} {what}", self.size, self.size)
    }
}

/// What follows each hidden convolution of the conv family, before its activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Norm {
    None,
    /// `nn.BatchNorm2d`: batch statistics in training, running statistics otherwise.
    Batch,
}

/// The conv family's hidden activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum HiddenAct {
    Relu,
    /// `nn.LeakyReLU(negative_slope)`, the slope [`ModelSpec::leaky_slope`].
    LeakyRelu,
}

/// The negative slope of `--act leaky-relu` unless `--leaky-slope` says otherwise:
/// `pytorch_images.py`'s `nn.LeakyReLU(0.2)` (PyTorch's own default is 0.01).
pub const DEFAULT_LEAKY_SLOPE: f32 = 0.2;

/// What the conv family puts after each stage (`--block`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Block {
    /// Nothing: the stage's convolution, norm and activation only.
    Plain,
    /// `pytorch_images.ResBlock` (ResNet's basic block at the stage's width) after every
    /// encoder stage, after the decoder's Unflatten and after every decoder stage but the last.
    Residual,
}

/// How the conv family's decoder goes up a side (`--upsample`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Upsampling {
    /// `ConvTranspose2d(3, stride 2, padding 1)` with the output padding that restores the side.
    Transposed,
    /// `Upsample(size of the matching encoder side, mode="nearest")` then `Conv2d(3, s1, p1)`.
    Nearest,
}

/// The name `--norm`, `--act` and the metadata use.
pub use crate::metadata::choice::name as value_name;

/// conv-vae's and conv-ae's widths on MNIST (the models of `pytorch_ae.py`).
pub const MNIST_WIDTHS: [usize; 2] = [16, 32];

/// Everything that determines an architecture, declared once: these fields are the keys of
/// checkpoint metadata (see [`record`]; a key that an older gpu-ae did not write reads as the
/// value of the runs that wrote it).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ModelSpec {
    #[serde(rename = "model", with = "text")]
    pub kind: ModelKind,
    /// Latent size L (ignored by `lesson-ae`, whose code is 8×4×4).
    #[serde(with = "text")]
    pub latent: usize,
    #[serde(flatten)]
    pub task: Task,
    #[serde(with = "choice", default = "record::default_loss")]
    pub loss: LossKind,
    /// The images (from the data).
    #[serde(flatten)]
    pub image: ImageShape,
    /// conv-vae and conv-ae: the output channels of each stride-2 convolution, the
    /// normalisation after each hidden one, and the hidden activation (ignored by the other
    /// models).
    #[serde(with = "list", default = "record::mnist_widths")]
    pub widths: Vec<usize>,
    #[serde(with = "choice", default = "record::default_norm")]
    pub norm: Norm,
    #[serde(with = "choice", default = "record::default_act")]
    pub act: HiddenAct,
    /// The negative slope of [`HiddenAct::LeakyRelu`] (`--leaky-slope`, greater than 0);
    /// [`DEFAULT_LEAKY_SLOPE`] for ReLU models.
    #[serde(with = "text", default = "record::default_leaky_slope")]
    pub leaky_slope: f32,
    /// conv-vae and conv-ae: residual blocks after the stages, and the decoder's upsampling.
    #[serde(with = "choice", default = "record::default_block")]
    pub block: Block,
    #[serde(with = "choice", default = "record::default_upsample")]
    pub upsample: Upsampling,
    /// A conditional VAE's class names (label i is `classes[i]`): the one-hot label of these K
    /// classes is appended to the encoder features before the head and to z before the
    /// decoder. Empty for an unconditional model.
    #[serde(with = "json", default, skip_serializing_if = "Vec::is_empty")]
    pub classes: Vec<String>,
}

impl ModelSpec {
    /// The conv family's batch norm (when asked for), activation and residual block (when
    /// asked for) after a stage's convolution.
    fn push_stage_end(&self, b: &mut StackBuilder) {
        if self.norm == Norm::Batch {
            b.push(BatchNorm2d::new);
        }
        let act = self.activation();
        b.push(|t, name, d| Act::new(t, name, d, act));
        self.push_block(b);
    }

    /// A residual block at the current width, when `--block residual`.
    fn push_block(&self, b: &mut StackBuilder) {
        if self.block == Block::Residual {
            let (norm, act) = (self.norm == Norm::Batch, self.activation());
            b.push(|t, name, d| ResBlock::new(t, name, d, norm, act));
        }
    }

    /// A conditional VAE's one-hot label appended to the flattened rows (the encoder's
    /// features, the decoder's code), as the module's `forward` concatenates it: no index.
    fn push_label(&self, b: &mut StackBuilder) {
        let classes = self.classes.len();
        if classes > 0 {
            b.push_named("label", |t, name, d| ConcatLabel::new(t, name, d, classes));
        }
    }

    /// The conv family's hidden activation, with its slope.
    pub fn activation(&self) -> Activation {
        match self.act {
            HiddenAct::Relu => Activation::Relu,
            HiddenAct::LeakyRelu => Activation::LeakyRelu(self.leaky_slope),
        }
    }

    /// A model of `kind` for MNIST's images, with MNIST's conv widths.
    pub fn mnist(kind: ModelKind, latent: usize, task: Task, loss: LossKind) -> ModelSpec {
        ModelSpec {
            kind,
            latent,
            task,
            loss,
            image: ImageShape::MNIST,
            widths: MNIST_WIDTHS.to_vec(),
            norm: Norm::None,
            act: HiddenAct::Relu,
            leaky_slope: DEFAULT_LEAKY_SLOPE,
            block: Block::Plain,
            upsample: Upsampling::Transposed,
            classes: Vec::new(),
        }
    }

    /// Whether the model is a conditional VAE.
    pub fn is_conditional(&self) -> bool {
        !self.classes.is_empty()
    }

    /// The README's 64×64 colour VAE (batch norm, leaky ReLU, L = 128), for tests of limits.
    #[cfg(test)]
    pub(crate) fn colour_64px() -> ModelSpec {
        ModelSpec {
            image: ImageShape {
                channels: 3,
                size: 64,
            },
            widths: vec![32, 64, 128, 256],
            norm: Norm::Batch,
            act: HiddenAct::LeakyRelu,
            ..ModelSpec::mnist(ModelKind::ConvVae, 128, Task::Reconstruct, LossKind::Bce)
        }
    }
}

/// The latent head between encoder and decoder.
#[derive(Debug, Clone, PartialEq)]
pub enum Head {
    /// The encoder output is the code (lesson-ae).
    Direct,
    /// `fc`: Linear(F → L).
    Ae(Linear),
    /// `fc_mu` and `fc_logvar` stored back to back, so they act as one Linear(F → 2L) whose
    /// output rows are (μ | logvar).
    Vae(Linear),
}

impl Head {
    pub fn linear(&self) -> Option<&Linear> {
        match self {
            Head::Direct => None,
            Head::Ae(l) | Head::Vae(l) => Some(l),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Architecture {
    pub spec: ModelSpec,
    pub params: ParamTable,
    pub encoder: Stack,
    pub head: Head,
    pub decoder: Stack,
}

fn relu(b: &mut StackBuilder) {
    b.push(|t, name, d| Act::new(t, name, d, Activation::Relu));
}

/// Conv2d(c_out, 3, stride, padding).
fn conv(b: &mut StackBuilder, c_out: usize, stride: usize, padding: usize) {
    b.push(|t, name, d| Conv2d::new(t, name, d, c_out, 3, stride, padding));
}

/// Side after `Conv2d(kernel 3, stride 2, padding 1)`.
fn conv_out(side: usize) -> usize {
    (side - 1) / 2 + 1
}

impl Architecture {
    pub fn new(spec: ModelSpec) -> Result<Architecture> {
        let image = spec.image;
        if image.channels == 0 || image.size == 0 {
            bail!("images of {image} cannot be modelled");
        }
        let side = match spec.task {
            Task::Superres => {
                if !image.size.is_multiple_of(2) {
                    bail!(
                        "--task superres needs an even image size (its input is half the size), got {}",
                        image.size
                    );
                }
                image.size / 2
            }
            _ => image.size,
        };
        let input = Dims::new(image.channels, side, side);
        let latent = spec.latent;
        if spec.kind != ModelKind::LessonAe && !(1..=4096).contains(&latent) {
            bail!("--latent must be between 1 and 4096, got {latent}");
        }
        let classes = spec.classes.len();
        if classes > 0 && !spec.kind.is_vae() {
            bail!(
                "--conditional needs a VAE (conv-vae or dense-vae); {} is not one",
                spec.kind
            );
        }
        if classes > 4096 {
            bail!("--conditional takes at most 4096 classes, the data has {classes}");
        }
        let slope = spec.leaky_slope;
        if !(slope.is_finite() && slope > 0.0) {
            bail!("--leaky-slope {slope}: must be a number greater than 0");
        }
        if spec.act == HiddenAct::Relu && slope != DEFAULT_LEAKY_SLOPE {
            bail!(
                "--leaky-slope {slope}: the slope of --act leaky-relu, and this model's activation is relu"
            );
        }
        let conv_family = matches!(spec.kind, ModelKind::ConvVae | ModelKind::ConvAe);
        if !conv_family && (spec.block != Block::Plain || spec.upsample != Upsampling::Transposed) {
            bail!(
                "--block residual and --upsample nearest are for conv-vae and conv-ae; {} has neither",
                spec.kind
            );
        }
        let mut t = ParamTable::default();
        let (encoder, head, decoder) = match spec.kind {
            ModelKind::ConvVae | ModelKind::ConvAe => {
                let sides = Self::conv_sides(&spec)?;
                let encoder = Self::conv_encoder(&spec, &mut t, input);
                let feat = encoder.output().numel();
                let head = Self::head(&mut t, spec.kind.is_vae(), feat, latent);
                let decoder = Self::conv_decoder(&spec, &mut t, &sides);
                (encoder, head, decoder)
            }
            ModelKind::DenseVae => {
                let mut enc = StackBuilder::new(&mut t, "enc", input);
                enc.push(|t, name, d| Linear::new(t, name, d, 512));
                relu(&mut enc);
                spec.push_label(&mut enc);
                let encoder = enc.finish();
                let head = Self::head(&mut t, true, encoder.output().numel(), latent);
                let mut dec = StackBuilder::new(&mut t, "dec", Dims::flat(latent));
                spec.push_label(&mut dec);
                dec.push(|t, name, d| Linear::new(t, name, d, 512));
                relu(&mut dec);
                dec.push(|t, name, d| Linear::new(t, name, d, image.pixels()));
                let decoder = Self::decoder_end(&spec, dec);
                (encoder, head, decoder)
            }
            ModelKind::LessonAe => {
                if image != ImageShape::MNIST {
                    bail!(
                        "lesson-ae is the 28×28 grey lesson model and cannot take {image} images; use conv-vae, conv-ae or dense-vae"
                    );
                }
                if side != image.size {
                    bail!(
                        "lesson-ae cannot do super-resolution (its decoder needs a 4×4 code); use conv-ae, conv-vae or dense-vae"
                    );
                }
                let mut enc = StackBuilder::new(&mut t, "enc", input);
                for (c_out, padding) in [(16, 0), (8, 0), (8, 1)] {
                    conv(&mut enc, c_out, 1, 1);
                    relu(&mut enc);
                    enc.push(|t, name, d| MaxPool2x2::new(t, name, d, padding));
                }
                let encoder = enc.finish();
                let mut dec = StackBuilder::new(&mut t, "dec", encoder.output());
                for (c_out, padding) in [(8, 1), (8, 1), (16, 0)] {
                    conv(&mut dec, c_out, 1, padding);
                    relu(&mut dec);
                    dec.push(|t, name, d| Upsample::new(t, name, d, (2 * d.h, 2 * d.w)));
                }
                conv(&mut dec, 1, 1, 1);
                let decoder = Self::decoder_end(&spec, dec);
                (encoder, Head::Direct, decoder)
            }
        };
        if decoder.output().numel() != image.pixels() {
            bail!("{}: decoder does not produce {image} images", spec.kind);
        }
        Ok(Architecture {
            spec,
            params: t,
            encoder,
            head,
            decoder,
        })
    }

    /// The decoder's last module: a sigmoid for squared error (BCE fuses it into the loss).
    fn decoder_end(spec: &ModelSpec, mut dec: StackBuilder) -> Stack {
        if spec.loss == LossKind::Mse {
            dec.push(|t, name, d| Act::new(t, name, d, Activation::Sigmoid));
        }
        dec.finish()
    }

    /// The side of the full-size image after each of the conv family's convolutions,
    /// `[S, S₁, …]`: `Conv2d(3, stride 2, padding 1)` takes a side s to ⌊(s − 1)/2⌋ + 1, as
    /// PyTorch computes it, so a 1×1 side stays 1×1 (3 → 2 → 1 → 1) and any number of widths
    /// fits any size.
    fn conv_sides(spec: &ModelSpec) -> Result<Vec<usize>> {
        let widths = &spec.widths;
        if widths.is_empty() || widths.contains(&0) {
            bail!("--widths: give one or more channel counts, e.g. 32,64,128");
        }
        let mut sides = vec![spec.image.size];
        for _ in widths {
            let last = *sides.last().expect("starts with the size");
            sides.push(conv_out(last));
        }
        Ok(sides)
    }

    /// The conv family's encoder (`pytorch_images.ConvVAE.enc`: per width a Conv2d(3, stride
    /// 2, padding 1), batch norm, the activation and a residual block as asked for; a
    /// conditional VAE's label last) for an input of `input`. Super-resolution's input is already half the size, so its first
    /// convolution keeps the side (stride 1).
    fn conv_encoder(spec: &ModelSpec, t: &mut ParamTable, input: Dims) -> Stack {
        let mut enc = StackBuilder::new(t, "enc", input);
        for (i, &w) in spec.widths.iter().enumerate() {
            let stride = if i == 0 && input.h != spec.image.size {
                1
            } else {
                2
            };
            conv(&mut enc, w, stride, 1);
            spec.push_stage_end(&mut enc);
        }
        spec.push_label(&mut enc);
        enc.finish()
    }

    /// The conv family's decoder (`pytorch_images.ConvVAE.dec`; a conditional VAE's label
    /// first): Linear(L → F), activation,
    /// Unflatten (and a residual block), then back up each side either a ConvTranspose2d(3,
    /// stride 2, padding 1) whose output padding restores the size, or a nearest Upsample to
    /// the side and a Conv2d(3, stride 1, padding 1); batch norm, the activation and a
    /// residual block as asked for after each but the last.
    fn conv_decoder(spec: &ModelSpec, t: &mut ParamTable, sides: &[usize]) -> Stack {
        let widths = &spec.widths;
        let last = *widths.last().expect("checked non-empty");
        let s = sides[sides.len() - 1];
        let mut dec = StackBuilder::new(t, "dec", Dims::flat(spec.latent));
        spec.push_label(&mut dec);
        dec.push(|t, name, d| Linear::new(t, name, d, last * s * s));
        let act = spec.activation();
        dec.push(|t, name, d| Act::new(t, name, d, act));
        dec.reshape(Dims::new(last, s, s));
        spec.push_block(&mut dec);
        let mut outs: Vec<usize> = widths[..widths.len() - 1].iter().rev().copied().collect();
        outs.push(spec.image.channels);
        for (i, &c_out) in outs.iter().enumerate() {
            let (s_in, s_out) = (sides[sides.len() - 1 - i], sides[sides.len() - 2 - i]);
            match spec.upsample {
                Upsampling::Transposed => {
                    let geometry = (3, 2, 1, s_out + 1 - 2 * s_in);
                    dec.push(|t, name, d| ConvTranspose2d::new(t, name, d, c_out, geometry));
                }
                Upsampling::Nearest => {
                    dec.push(|t, name, d| Upsample::new(t, name, d, (s_out, s_out)));
                    conv(&mut dec, c_out, 1, 1);
                }
            }
            if i + 1 < outs.len() {
                spec.push_stage_end(&mut dec);
            }
        }
        Self::decoder_end(spec, dec)
    }

    /// The head on `feat` inputs (the encoder features, and a conditional VAE's one-hot label).
    fn head(t: &mut ParamTable, vae: bool, feat: usize, latent: usize) -> Head {
        if vae {
            let weight = t.add("fc_mu.weight", &[latent, feat], feat);
            t.add("fc_logvar.weight", &[latent, feat], feat);
            let bias = t.add("fc_mu.bias", &[latent], feat);
            t.add("fc_logvar.bias", &[latent], feat);
            let at = ParamOffsets { weight, bias };
            Head::Vae(Linear::at("fc_mu+fc_logvar", feat, 2 * latent, at))
        } else {
            Head::Ae(Linear::new(t, "fc", Dims::flat(feat), latent))
        }
    }

    pub fn is_vae(&self) -> bool {
        matches!(self.head, Head::Vae(_))
    }

    /// Size of the code (L, or 128 for lesson-ae): the decoder's input (a conditional decoder
    /// appends the one-hot label itself).
    pub fn code_len(&self) -> usize {
        self.decoder.input().numel()
    }

    /// K, the classes a conditional VAE takes (0 for an unconditional model).
    pub fn classes(&self) -> usize {
        self.spec.classes.len()
    }

    /// Per-example input shape (`[1, 28, 28]`, or `[1, 14, 14]` for super-resolution).
    pub fn input_dims(&self) -> Dims {
        self.encoder.input()
    }

    /// Elements of one example's largest activation (any encoder or decoder tensor, the
    /// image included; a residual block's inner tensors have its own shape): what decides how
    /// many examples one storage binding holds.
    pub fn widest_activation(&self) -> usize {
        self.encoder
            .dims
            .iter()
            .chain(&self.decoder.dims)
            .map(Dims::numel)
            .max()
            .unwrap_or(0)
    }

    /// Multiply-accumulates of one example's forward pass.
    pub fn forward_macs(&self) -> u64 {
        let head = self.head.linear().map_or(0, |l| {
            let s = l.shape(1);
            (s.in_features * s.out_features) as u64
        });
        self.encoder.forward_macs() + head + self.decoder.forward_macs()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::layers::Fuses;

    fn spec(kind: ModelKind, latent: usize, task: Task) -> ModelSpec {
        ModelSpec::mnist(kind, latent, task, LossKind::Bce)
    }

    /// The parameters' `state_dict` names and shapes, in table order.
    fn param_names(a: &Architecture) -> Vec<(&str, Vec<usize>)> {
        a.params
            .entries
            .iter()
            .map(|e| (e.name.as_str(), e.shape.clone()))
            .collect()
    }

    #[test]
    fn conv_vae_has_pytorch_names_and_shapes() {
        let a = Architecture::new(spec(ModelKind::ConvVae, 16, Task::Reconstruct)).unwrap();
        assert_eq!(
            param_names(&a),
            vec![
                ("enc.0.weight", vec![16, 1, 3, 3]),
                ("enc.0.bias", vec![16]),
                ("enc.2.weight", vec![32, 16, 3, 3]),
                ("enc.2.bias", vec![32]),
                ("fc_mu.weight", vec![16, 1568]),
                ("fc_logvar.weight", vec![16, 1568]),
                ("fc_mu.bias", vec![16]),
                ("fc_logvar.bias", vec![16]),
                ("dec.0.weight", vec![1568, 16]),
                ("dec.0.bias", vec![1568]),
                ("dec.3.weight", vec![32, 16, 3, 3]),
                ("dec.3.bias", vec![16]),
                ("dec.5.weight", vec![16, 1, 3, 3]),
                ("dec.5.bias", vec![1]),
            ]
        );
        // 160 + 4 640 + 2·25 104 + 26 656 + 4 624 + 145, as PyTorch's ConvVAE(16) counts.
        assert_eq!(a.params.total, 86_433);
        assert_eq!(a.encoder.output(), Dims::new(32, 7, 7));
        assert_eq!(a.decoder.output(), Dims::new(1, 28, 28));
    }

    /// `pytorch_images.ConvVAE(3, 32, [32, 64, 128], 64)`: names and shapes of its state_dict.
    #[test]
    fn the_conv_family_follows_pytorch_images() {
        let spec = ModelSpec {
            image: ImageShape {
                channels: 3,
                size: 32,
            },
            widths: vec![32, 64, 128],
            ..ModelSpec::mnist(ModelKind::ConvVae, 64, Task::Reconstruct, LossKind::Bce)
        };
        let a = Architecture::new(spec.clone()).unwrap();
        assert_eq!(
            param_names(&a),
            vec![
                ("enc.0.weight", vec![32, 3, 3, 3]),
                ("enc.0.bias", vec![32]),
                ("enc.2.weight", vec![64, 32, 3, 3]),
                ("enc.2.bias", vec![64]),
                ("enc.4.weight", vec![128, 64, 3, 3]),
                ("enc.4.bias", vec![128]),
                ("fc_mu.weight", vec![64, 2048]),
                ("fc_logvar.weight", vec![64, 2048]),
                ("fc_mu.bias", vec![64]),
                ("fc_logvar.bias", vec![64]),
                ("dec.0.weight", vec![2048, 64]),
                ("dec.0.bias", vec![2048]),
                ("dec.3.weight", vec![128, 64, 3, 3]),
                ("dec.3.bias", vec![64]),
                ("dec.5.weight", vec![64, 32, 3, 3]),
                ("dec.5.bias", vec![32]),
                ("dec.7.weight", vec![32, 3, 3, 3]),
                ("dec.7.bias", vec![3]),
            ]
        );
        assert_eq!(a.decoder.output(), Dims::new(3, 32, 32));
        // Odd sides: 28 → 14 → 7 → 4 and back needs output paddings 0, 1, 1.
        let odd = Architecture::new(ModelSpec {
            widths: vec![8, 8, 8],
            ..ModelSpec::mnist(ModelKind::ConvAe, 5, Task::Reconstruct, LossKind::Bce)
        })
        .unwrap();
        assert_eq!(odd.encoder.output(), Dims::new(8, 4, 4));
        let sides: Vec<usize> = odd.decoder.dims.iter().map(|d| d.h).collect();
        // The code, Linear, the activation viewed as [8, 4, 4], then each ConvTranspose2d and its
        // activation: output paddings 0, 1, 1 restore 7, 14, 28.
        assert_eq!(sides, vec![1, 1, 4, 7, 7, 14, 14, 28]);
        // More halvings than the size has, as in PyTorch: Conv2d(3, s2, p1) keeps a 1×1 side,
        // 3 → 2 → 1 → 1, and the decoder goes back 1 → 1 → 2 → 3 (output paddings 0, 1, 0;
        // nearest upsampling to the same sides).
        for upsample in [Upsampling::Transposed, Upsampling::Nearest] {
            let tiny = Architecture::new(ModelSpec {
                image: ImageShape {
                    channels: 3,
                    size: 3,
                },
                upsample,
                ..spec.clone()
            })
            .unwrap();
            assert_eq!(tiny.encoder.output(), Dims::new(128, 1, 1));
            let mut sides: Vec<usize> = tiny.decoder.dims.iter().map(|d| d.h).collect();
            sides.dedup();
            assert_eq!(sides, vec![1, 2, 3], "{upsample:?}");
            assert_eq!(tiny.decoder.output(), Dims::new(3, 3, 3));
        }
        // No widths at all are refused.
        let none = ModelSpec {
            widths: vec![],
            ..spec
        };
        assert!(
            Architecture::new(none)
                .unwrap_err()
                .message()
                .contains("--widths")
        );
    }

    #[test]
    fn every_model_and_task_builds_or_says_why_not() {
        for kind in ModelKind::ALL {
            for task in [
                Task::Reconstruct,
                Task::Denoise { noise: 0.5 },
                Task::Superres,
            ] {
                let r = Architecture::new(spec(kind, 2, task));
                match (kind, task) {
                    (ModelKind::LessonAe, Task::Superres) => assert!(r.is_err()),
                    _ => {
                        let a = r.unwrap();
                        assert_eq!(a.decoder.output().numel(), 784);
                    }
                }
            }
        }
        let lesson = Architecture::new(spec(ModelKind::LessonAe, 0, Task::Reconstruct)).unwrap();
        assert_eq!(lesson.code_len(), 8 * 4 * 4);
        let sr = Architecture::new(spec(ModelKind::ConvAe, 16, Task::Superres)).unwrap();
        assert_eq!(sr.input_dims(), Dims::new(1, 14, 14));
        assert_eq!(sr.encoder.output(), Dims::new(32, 7, 7));
    }

    #[test]
    fn init_follows_fan_in_bounds() {
        let a = Architecture::new(spec(ModelKind::ConvVae, 16, Task::Reconstruct)).unwrap();
        let v = a.params.init(0);
        for e in &a.params.entries {
            let crate::model::layers::Init::FanIn(fan_in) = e.init else {
                panic!("{}: not a fan-in init", e.name)
            };
            let bound = 1.0 / (fan_in as f32).sqrt();
            let s = &v[e.offset..e.offset + e.len()];
            assert!(s.iter().all(|x| x.abs() <= bound), "{}", e.name);
            if s.len() >= 16 {
                let max = s.iter().fold(0.0f32, |m, x| m.max(x.abs()));
                assert!(max > 0.5 * bound, "{} barely spread", e.name);
            }
        }
        assert_ne!(v, a.params.init(1));
    }

    /// The gradient partials of the 64×64 configuration at batch 128 fit the 128 MiB
    /// that WebGPU allows per storage binding (they took 238 MiB before each layer's were capped).
    #[test]
    fn a_64px_batch_norm_model_fits_webgpu_bindings() {
        let a = Architecture::new(ModelSpec::colour_64px()).unwrap();
        let n = 128;
        let Head::Vae(head) = &a.head else {
            panic!("a VAE head")
        };
        let values = a.encoder.backward_partials(n)
            + crate::kernels::linear::backward_partials(head.shape(n))
            + a.decoder.backward_partials(n);
        assert!(values * 4 <= 128 << 20, "{} MiB", (values * 4) >> 20);
    }

    /// `pytorch_images.ConvVAE(3, 64, [32, 64], 8, norm="batch", act="leaky_relu")`: batch norm
    /// after every hidden convolution, its weight 1 and bias 0, running statistics as buffers.
    #[test]
    fn batch_norm_layers_follow_pytorch_images() {
        let spec = ModelSpec {
            image: ImageShape {
                channels: 3,
                size: 64,
            },
            widths: vec![32, 64],
            norm: Norm::Batch,
            act: HiddenAct::LeakyRelu,
            ..ModelSpec::mnist(ModelKind::ConvVae, 8, Task::Reconstruct, LossKind::Bce)
        };
        let a = Architecture::new(spec).unwrap();
        assert_eq!(
            param_names(&a),
            vec![
                ("enc.0.weight", vec![32, 3, 3, 3]),
                ("enc.0.bias", vec![32]),
                ("enc.1.weight", vec![32]),
                ("enc.1.bias", vec![32]),
                ("enc.3.weight", vec![64, 32, 3, 3]),
                ("enc.3.bias", vec![64]),
                ("enc.4.weight", vec![64]),
                ("enc.4.bias", vec![64]),
                ("fc_mu.weight", vec![8, 16384]),
                ("fc_logvar.weight", vec![8, 16384]),
                ("fc_mu.bias", vec![8]),
                ("fc_logvar.bias", vec![8]),
                ("dec.0.weight", vec![16384, 8]),
                ("dec.0.bias", vec![16384]),
                ("dec.3.weight", vec![64, 32, 3, 3]),
                ("dec.3.bias", vec![32]),
                ("dec.4.weight", vec![32]),
                ("dec.4.bias", vec![32]),
                ("dec.6.weight", vec![32, 3, 3, 3]),
                ("dec.6.bias", vec![3]),
            ]
        );
        let buffers: Vec<&str> = a.params.buffers.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(
            buffers,
            [
                "enc.1.running_mean",
                "enc.1.running_var",
                "enc.4.running_mean",
                "enc.4.running_var",
                "dec.4.running_mean",
                "dec.4.running_var",
            ]
        );
        assert_eq!(
            a.params.batch_norms().collect::<Vec<_>>(),
            ["enc.1", "enc.4", "dec.4"]
        );
        let v = a.params.init(0);
        let bn = a.params.get("enc.4.weight").unwrap();
        assert!(v[bn.offset..bn.offset + 64].iter().all(|&x| x == 1.0));
        let stats = a.params.init_buffers();
        assert_eq!(&stats[..32], &[0.0; 32][..]);
        assert_eq!(&stats[32..64], &[1.0; 32][..]);
        assert_eq!(
            a.encoder.layers[2].fuses(),
            Fuses::Activation(Activation::LeakyRelu(0.2))
        );
        // `--leaky-slope` reaches every activation, those of the decoder included.
        let slope = Architecture::new(ModelSpec {
            leaky_slope: 0.01,
            ..a.spec.clone()
        })
        .unwrap();
        let leaky = Fuses::Activation(Activation::LeakyRelu(0.01));
        assert_eq!(slope.encoder.layers[2].fuses(), leaky);
        assert_eq!(slope.decoder.layers[1].fuses(), leaky);
        let relu = ModelSpec {
            act: HiddenAct::Relu,
            ..slope.spec.clone()
        };
        let e = Architecture::new(relu).unwrap_err();
        assert!(e.message().contains("--leaky-slope 0.01"), "{e}");
    }

    /// `pytorch_images.ConvVAE(3, 8, [4, 6], 5, "batch", "relu", block="residual",
    /// upsample="nearest")`: its whole `state_dict` (names as PyTorch 2.15 prints them, nested
    /// in the residual blocks; parameter-free Upsample modules taking their indices), against
    /// the parameters, running statistics and batch-norm counters gpu-ae writes.
    #[test]
    fn residual_nearest_models_have_pytorchs_state_dict() {
        let spec = ModelSpec {
            image: ImageShape {
                channels: 3,
                size: 8,
            },
            widths: vec![4, 6],
            norm: Norm::Batch,
            block: Block::Residual,
            upsample: Upsampling::Nearest,
            ..ModelSpec::mnist(ModelKind::ConvVae, 5, Task::Reconstruct, LossKind::Bce)
        };
        let a = Architecture::new(spec).unwrap();
        let pytorch: &[(&str, &[usize])] = &[
            ("enc.0.weight", &[4, 3, 3, 3]),
            ("enc.0.bias", &[4]),
            ("enc.1.weight", &[4]),
            ("enc.1.bias", &[4]),
            ("enc.1.running_mean", &[4]),
            ("enc.1.running_var", &[4]),
            ("enc.1.num_batches_tracked", &[]),
            ("enc.3.conv1.weight", &[4, 4, 3, 3]),
            ("enc.3.conv1.bias", &[4]),
            ("enc.3.bn1.weight", &[4]),
            ("enc.3.bn1.bias", &[4]),
            ("enc.3.bn1.running_mean", &[4]),
            ("enc.3.bn1.running_var", &[4]),
            ("enc.3.bn1.num_batches_tracked", &[]),
            ("enc.3.conv2.weight", &[4, 4, 3, 3]),
            ("enc.3.conv2.bias", &[4]),
            ("enc.3.bn2.weight", &[4]),
            ("enc.3.bn2.bias", &[4]),
            ("enc.3.bn2.running_mean", &[4]),
            ("enc.3.bn2.running_var", &[4]),
            ("enc.3.bn2.num_batches_tracked", &[]),
            ("enc.4.weight", &[6, 4, 3, 3]),
            ("enc.4.bias", &[6]),
            ("enc.5.weight", &[6]),
            ("enc.5.bias", &[6]),
            ("enc.5.running_mean", &[6]),
            ("enc.5.running_var", &[6]),
            ("enc.5.num_batches_tracked", &[]),
            ("enc.7.conv1.weight", &[6, 6, 3, 3]),
            ("enc.7.conv1.bias", &[6]),
            ("enc.7.bn1.weight", &[6]),
            ("enc.7.bn1.bias", &[6]),
            ("enc.7.bn1.running_mean", &[6]),
            ("enc.7.bn1.running_var", &[6]),
            ("enc.7.bn1.num_batches_tracked", &[]),
            ("enc.7.conv2.weight", &[6, 6, 3, 3]),
            ("enc.7.conv2.bias", &[6]),
            ("enc.7.bn2.weight", &[6]),
            ("enc.7.bn2.bias", &[6]),
            ("enc.7.bn2.running_mean", &[6]),
            ("enc.7.bn2.running_var", &[6]),
            ("enc.7.bn2.num_batches_tracked", &[]),
            ("fc_mu.weight", &[5, 24]),
            ("fc_mu.bias", &[5]),
            ("fc_logvar.weight", &[5, 24]),
            ("fc_logvar.bias", &[5]),
            ("dec.0.weight", &[24, 5]),
            ("dec.0.bias", &[24]),
            ("dec.3.conv1.weight", &[6, 6, 3, 3]),
            ("dec.3.conv1.bias", &[6]),
            ("dec.3.bn1.weight", &[6]),
            ("dec.3.bn1.bias", &[6]),
            ("dec.3.bn1.running_mean", &[6]),
            ("dec.3.bn1.running_var", &[6]),
            ("dec.3.bn1.num_batches_tracked", &[]),
            ("dec.3.conv2.weight", &[6, 6, 3, 3]),
            ("dec.3.conv2.bias", &[6]),
            ("dec.3.bn2.weight", &[6]),
            ("dec.3.bn2.bias", &[6]),
            ("dec.3.bn2.running_mean", &[6]),
            ("dec.3.bn2.running_var", &[6]),
            ("dec.3.bn2.num_batches_tracked", &[]),
            ("dec.5.weight", &[4, 6, 3, 3]),
            ("dec.5.bias", &[4]),
            ("dec.6.weight", &[4]),
            ("dec.6.bias", &[4]),
            ("dec.6.running_mean", &[4]),
            ("dec.6.running_var", &[4]),
            ("dec.6.num_batches_tracked", &[]),
            ("dec.8.conv1.weight", &[4, 4, 3, 3]),
            ("dec.8.conv1.bias", &[4]),
            ("dec.8.bn1.weight", &[4]),
            ("dec.8.bn1.bias", &[4]),
            ("dec.8.bn1.running_mean", &[4]),
            ("dec.8.bn1.running_var", &[4]),
            ("dec.8.bn1.num_batches_tracked", &[]),
            ("dec.8.conv2.weight", &[4, 4, 3, 3]),
            ("dec.8.conv2.bias", &[4]),
            ("dec.8.bn2.weight", &[4]),
            ("dec.8.bn2.bias", &[4]),
            ("dec.8.bn2.running_mean", &[4]),
            ("dec.8.bn2.running_var", &[4]),
            ("dec.8.bn2.num_batches_tracked", &[]),
            ("dec.10.weight", &[3, 4, 3, 3]),
            ("dec.10.bias", &[3]),
        ];
        let mut want: Vec<(String, Vec<usize>)> = pytorch
            .iter()
            .map(|(n, s)| (n.to_string(), s.to_vec()))
            .collect();
        let t = &a.params;
        let mut got: Vec<(String, Vec<usize>)> = t
            .entries
            .iter()
            .chain(&t.buffers)
            .map(|e| (e.name.clone(), e.shape.clone()))
            .chain(
                t.batch_norms()
                    .map(|l| (format!("{l}.num_batches_tracked"), vec![])),
            )
            .collect();
        want.sort();
        got.sort();
        assert_eq!(got, want);
        assert_eq!(a.decoder.output(), Dims::new(3, 8, 8));
    }
}
