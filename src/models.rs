//! The model zoo: `conv-vae`, `conv-ae`, `dense-vae` and `lesson-ae`, each for the tasks
//! reconstruct, denoise and super-resolution (14×14 input, 28×28 output). An [`Architecture`]
//! is the encoder stack, the optional latent head and the decoder stack, with PyTorch
//! `state_dict` names and the flat parameter table. The decoder ends in logits: the sigmoid is
//! fused into the BCE loss (and applied separately when pictures are made).

use crate::bail;
use crate::error::{Error, Result};
use crate::nn::{Dims, Layer, LayerKind, ParamTable, Stack};
use crate::shapes::Activation;
use crate::shapes::ParamOffsets;
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

/// What the model is trained to do.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Task {
    /// Input = target = the image.
    Reconstruct,
    /// Input = image + Gaussian noise of this standard deviation, clipped to [0, 1].
    Denoise { noise: f32 },
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

/// Everything that determines an architecture; stored in checkpoint metadata.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ModelSpec {
    pub kind: ModelKind,
    /// Latent size L (ignored by `lesson-ae`, whose code is 8×4×4).
    pub latent: usize,
    pub task: Task,
    pub loss: LossKind,
}

/// The latent head between encoder and decoder.
#[derive(Debug, Clone, PartialEq)]
pub enum Head {
    /// The encoder output is the code (lesson-ae).
    None,
    /// `fc`: Linear(F → L).
    Ae(Layer),
    /// `fc_mu` and `fc_logvar` stored back to back, so they act as one Linear(F → 2L) whose
    /// output rows are (μ | logvar).
    Vae(Layer),
}

/// Side length of the square images the models reconstruct.
pub const IMAGE_SIDE: usize = 28;

#[derive(Debug, Clone, PartialEq)]
pub struct Architecture {
    pub spec: ModelSpec,
    pub params: ParamTable,
    pub encoder: Stack,
    pub head: Head,
    pub decoder: Stack,
}

const RELU: LayerKind = LayerKind::Act(Activation::Relu);

fn conv(c_in: usize, c_out: usize, stride: usize, padding: usize) -> LayerKind {
    LayerKind::Conv2d {
        c_in,
        c_out,
        kernel: 3,
        stride,
        padding,
    }
}

fn linear(in_features: usize, out_features: usize) -> LayerKind {
    LayerKind::Linear {
        in_features,
        out_features,
    }
}

impl Architecture {
    pub fn new(spec: ModelSpec) -> Result<Architecture> {
        let side = match spec.task {
            Task::Superres => IMAGE_SIDE / 2,
            _ => IMAGE_SIDE,
        };
        let input = Dims::new(1, side, side);
        let latent = spec.latent;
        if spec.kind != ModelKind::LessonAe && !(1..=4096).contains(&latent) {
            bail!("--latent must be between 1 and 4096, got {latent}");
        }
        let mut t = ParamTable::default();
        let (encoder, head, mut dec_kinds) = match spec.kind {
            ModelKind::ConvVae | ModelKind::ConvAe => {
                // Super-resolution: the first conv keeps 14×14 instead of halving 28×28.
                let first_stride = if side == IMAGE_SIDE { 2 } else { 1 };
                let enc = Stack::new(
                    &mut t,
                    "enc",
                    input,
                    &[
                        (0, conv(1, 16, first_stride, 1)),
                        (1, RELU),
                        (2, conv(16, 32, 2, 1)),
                        (3, RELU),
                    ],
                );
                let feat = enc.output().numel();
                let head = Self::head(&mut t, spec.kind.is_vae(), feat, latent);
                let t_conv = |c_in, c_out| LayerKind::ConvTranspose2d {
                    c_in,
                    c_out,
                    kernel: 3,
                    stride: 2,
                    padding: 1,
                    output_padding: 1,
                };
                let dec = vec![
                    (0, linear(latent, 32 * 7 * 7)),
                    (1, RELU),
                    (2, LayerKind::Unflatten(Dims::new(32, 7, 7))),
                    (3, t_conv(32, 16)),
                    (4, RELU),
                    (5, t_conv(16, 1)),
                ];
                (enc, head, (dec, Dims::flat(latent), 6))
            }
            ModelKind::DenseVae => {
                let enc = Stack::new(
                    &mut t,
                    "enc",
                    input,
                    &[(0, linear(input.numel(), 512)), (1, RELU)],
                );
                let head = Self::head(&mut t, true, 512, latent);
                let dec = vec![
                    (0, linear(latent, 512)),
                    (1, RELU),
                    (2, linear(512, IMAGE_SIDE * IMAGE_SIDE)),
                ];
                (enc, head, (dec, Dims::flat(latent), 3))
            }
            ModelKind::LessonAe => {
                if side != IMAGE_SIDE {
                    bail!(
                        "lesson-ae cannot do super-resolution (its decoder needs a 4×4 code); use conv-ae, conv-vae or dense-vae"
                    );
                }
                let pool = |padding| LayerKind::MaxPool2x2 { padding };
                let enc = Stack::new(
                    &mut t,
                    "enc",
                    input,
                    &[
                        (0, conv(1, 16, 1, 1)),
                        (1, RELU),
                        (2, pool(0)),
                        (3, conv(16, 8, 1, 1)),
                        (4, RELU),
                        (5, pool(0)),
                        (6, conv(8, 8, 1, 1)),
                        (7, RELU),
                        (8, pool(1)),
                    ],
                );
                let code = enc.output();
                let dec = vec![
                    (0, conv(8, 8, 1, 1)),
                    (1, RELU),
                    (2, LayerKind::Upsample2x),
                    (3, conv(8, 8, 1, 1)),
                    (4, RELU),
                    (5, LayerKind::Upsample2x),
                    (6, conv(8, 16, 1, 0)),
                    (7, RELU),
                    (8, LayerKind::Upsample2x),
                    (9, conv(16, 1, 1, 1)),
                ];
                (enc, Head::None, (dec, code, 10))
            }
        };
        let (ref mut kinds, dec_input, sigmoid_index) = dec_kinds;
        if spec.loss == LossKind::Mse {
            kinds.push((sigmoid_index, LayerKind::Act(Activation::Sigmoid)));
        }
        let decoder = Stack::new(&mut t, "dec", dec_input, kinds);
        if decoder.output().numel() != IMAGE_SIDE * IMAGE_SIDE {
            bail!("{}: decoder does not produce 28×28 images", spec.kind);
        }
        Ok(Architecture {
            spec,
            params: t,
            encoder,
            head,
            decoder,
        })
    }

    fn head(t: &mut ParamTable, vae: bool, feat: usize, latent: usize) -> Head {
        if vae {
            let weight = t.add("fc_mu.weight", &[latent, feat], feat);
            t.add("fc_logvar.weight", &[latent, feat], feat);
            let bias = t.add("fc_mu.bias", &[latent], feat);
            t.add("fc_logvar.bias", &[latent], feat);
            Head::Vae(Layer {
                name: "fc_mu+fc_logvar".into(),
                kind: linear(feat, 2 * latent),
                params: Some(ParamOffsets { weight, bias }),
            })
        } else {
            Head::Ae(Layer::new(t, "fc", linear(feat, latent)))
        }
    }

    pub fn is_vae(&self) -> bool {
        matches!(self.head, Head::Vae(_))
    }

    /// Size of the code the decoder reads (L, or 128 for lesson-ae).
    pub fn code_len(&self) -> usize {
        self.decoder.input().numel()
    }

    /// Per-example input shape (`[1, 28, 28]`, or `[1, 14, 14]` for super-resolution).
    pub fn input_dims(&self) -> Dims {
        self.encoder.input()
    }

    /// Multiply-accumulates of one example's forward pass.
    pub fn forward_macs(&self) -> u64 {
        let head = match &self.head {
            Head::None => 0,
            Head::Ae(l) | Head::Vae(l) => match l.kind {
                LayerKind::Linear {
                    in_features,
                    out_features,
                } => (in_features * out_features) as u64,
                _ => 0,
            },
        };
        self.encoder.forward_macs() + head + self.decoder.forward_macs()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(kind: ModelKind, latent: usize, task: Task) -> ModelSpec {
        ModelSpec {
            kind,
            latent,
            task,
            loss: LossKind::Bce,
        }
    }

    #[test]
    fn conv_vae_has_pytorch_names_and_shapes() {
        let a = Architecture::new(spec(ModelKind::ConvVae, 16, Task::Reconstruct)).unwrap();
        let names: Vec<(&str, Vec<usize>)> = a
            .params
            .entries
            .iter()
            .map(|e| (e.name.as_str(), e.shape.clone()))
            .collect();
        assert_eq!(
            names,
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
            let bound = 1.0 / (e.init_bound_fan_in as f32).sqrt();
            let s = &v[e.offset..e.offset + e.len()];
            assert!(s.iter().all(|x| x.abs() <= bound), "{}", e.name);
            if s.len() >= 16 {
                let max = s.iter().fold(0.0f32, |m, x| m.max(x.abs()));
                assert!(max > 0.5 * bound, "{} barely spread", e.name);
            }
        }
        assert_ne!(v, a.params.init(1));
    }
}
