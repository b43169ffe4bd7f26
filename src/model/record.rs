//! A model in checkpoint metadata: [`ModelSpec`]'s fields are its keys (declared with serde on
//! the struct), written and read here with the format tag every gpu-ae checkpoint carries and
//! the checks of each value. A key that an older gpu-ae did not write reads as the value of the
//! runs that wrote it: MNIST's shape and widths, BCE, no norm, ReLU (slope 0.2 for leaky
//! ReLU), plain blocks, transposed upsampling, denoising noise 0.5.

use std::path::Path;

use crate::bail;
use crate::checkpoint::Checkpoint;
use crate::error::{Error, Result};
use crate::metadata::{self, Metadata};
use crate::model::{
    Block, DEFAULT_LEAKY_SLOPE, HiddenAct, ImageShape, LossKind, MNIST_WIDTHS, ModelSpec, Norm,
    Task, Upsampling,
};

/// The format tag every gpu-ae checkpoint carries; another tag is refused.
pub const FORMAT: &str = "gpu-ae/1";

/// The metadata that describes a model: the format tag and the spec's keys.
pub fn write_spec(spec: &ModelSpec) -> Metadata {
    let mut m = metadata::write(spec);
    m.insert("format".into(), FORMAT.into());
    m
}

/// Reads the model description of a gpu-ae checkpoint; every error names the file.
pub fn read_spec(ckpt: &Checkpoint, path: &Path) -> Result<ModelSpec> {
    if ckpt.meta("format").is_none() && ckpt.get("enc.0.weight").is_some() {
        bail!(
            "{}: not a gpu-ae checkpoint (metadata has no \"format\"); a PyTorch state_dict? make it one with `gpu-ae import --checkpoint {} --act relu|leaky-relu --out model.safetensors`",
            path.display(),
            path.display()
        );
    }
    check_format(&ckpt.metadata, path)?;
    let spec = metadata::read(&ckpt.metadata, path)?;
    check_spec(&spec, &ckpt.metadata, path)?;
    Ok(spec)
}

/// Refuses metadata without gpu-ae's format tag, or with another one.
pub fn check_format(meta: &Metadata, path: &Path) -> Result<()> {
    match meta.get("format") {
        None => bail!(
            "{}: not a gpu-ae checkpoint (metadata has no \"format\")",
            path.display()
        ),
        Some(f) if f != FORMAT => bail!(
            "{}: checkpoint format {f:?}; this gpu-ae reads {FORMAT:?} (a newer gpu-ae wrote it?)",
            path.display()
        ),
        Some(_) => Ok(()),
    }
}

/// Refuses a spec read from `meta` whose values are out of range, naming the key.
pub fn check_spec(spec: &ModelSpec, meta: &Metadata, path: &Path) -> Result<()> {
    let noise_ok = match spec.task {
        Task::Denoise { noise } => noise.is_finite() && noise > 0.0,
        _ => true,
    };
    let slope = spec.leaky_slope;
    for (key, ok) in [
        ("latent", spec.latent >= 1),
        ("noise", noise_ok),
        ("channels", spec.image.channels >= 1),
        ("size", spec.image.size >= 1),
        ("leaky_slope", slope.is_finite() && slope > 0.0),
        (
            "classes",
            !meta.contains_key("classes") || !spec.classes.is_empty(),
        ),
    ] {
        if !ok {
            return Err(bad(path, key, meta.get(key).map_or("", |v| v.as_str())));
        }
    }
    Ok(())
}

/// The error of a value that reads but is out of range.
pub fn bad(path: &Path, key: &str, value: &str) -> Error {
    Error::msg(format!(
        "{}: bad {key} {value:?} in metadata",
        path.display()
    ))
}

pub(super) fn default_noise() -> f32 {
    0.5
}
pub(super) fn mnist_channels() -> usize {
    ImageShape::MNIST.channels
}
pub(super) fn mnist_size() -> usize {
    ImageShape::MNIST.size
}
pub(super) fn mnist_widths() -> Vec<usize> {
    MNIST_WIDTHS.to_vec()
}
pub(super) fn default_loss() -> LossKind {
    LossKind::Bce
}
pub(super) fn default_norm() -> Norm {
    Norm::None
}
pub(super) fn default_act() -> HiddenAct {
    HiddenAct::Relu
}
pub(super) fn default_leaky_slope() -> f32 {
    DEFAULT_LEAKY_SLOPE
}
pub(super) fn default_block() -> Block {
    Block::Plain
}
pub(super) fn default_upsample() -> Upsampling {
    Upsampling::Transposed
}
