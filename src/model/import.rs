//! `gpu-ae import`: a PyTorch `state_dict` of `pytorch_images.ConvVAE` (saved with
//! `safetensors.torch.save_file`, no gpu-ae metadata) made a gpu-ae checkpoint. The architecture
//! follows from the tensor names and shapes: the kind (`fc_mu` for a VAE, `fc` for an AE), the
//! input channels and `widths` (the encoder's convolutions), batch norm (running statistics
//! present), residual blocks (`enc.I.conv1`), the decoder's upsampling (a transposed
//! convolution's weight, or a parameter-free Upsample before a convolution), the latent size,
//! a conditional VAE's class count (the extra inputs of `dec.0`), and the image size when only
//! one size leads to the encoder's last side. What a `state_dict`
//! does not record (the activation and leaky ReLU's slope; the size when several fit; the task
//! and loss; a conditional model's class names, from `--classes` or its dataset) comes from
//! flags, and a missing one is a clear error. The result is checked tensor by tensor against
//! the architecture before it is written. A state_dict as people save it imports too: F16, BF16
//! and F64 tensors are converted to f32, and a prefix that wrappers put before every name
//! (`model.`, DataParallel's `module.`, torch.compile's `_orig_mod.`) is stripped, each said in a
//! note; integer tensors other than `num_batches_tracked` counters are refused.

use crate::checkpoint::{self, Checkpoint, NamedTensor};
use crate::data::classes;
use crate::error::{Error, Result};
use crate::model::graph::values_from_checkpoint;
use crate::model::record;
use crate::model::{
    Architecture, Block, HiddenAct, ImageShape, LossKind, ModelKind, ModelSpec, Norm, Task,
    Upsampling,
};
use crate::{bail, noteln};
use std::path::{Path, PathBuf};

/// Where a conditional model's class names come from.
#[derive(Debug, Clone, PartialEq)]
pub enum ClassNames {
    /// `--classes a,b,c`: label i is the i-th name.
    Given(String),
    /// `--data DIR`: the classes of the dataset it was trained on, numbered as
    /// `pytorch_images.py` numbers them ([`classes::of_folder`]).
    Folder(PathBuf),
}

/// What the flags of `gpu-ae import` give.
#[derive(Debug, Clone)]
pub struct ImportSettings {
    /// The hidden activation (`--act`): a `state_dict` does not record it.
    pub act: Option<HiddenAct>,
    /// Its slope when leaky (`--leaky-slope`): nor that.
    pub leaky_slope: f32,
    /// A conditional model's class names; None: `0` to `K−1`.
    pub classes: Option<ClassNames>,
    /// The image side (`--size`), needed when several sizes fit the tensors.
    pub size: Option<usize>,
    pub task: Task,
    pub loss: LossKind,
}

/// The shape of tensor `name`, or None.
fn shape<'a>(ckpt: &'a Checkpoint, name: &str) -> Option<&'a [usize]> {
    ckpt.get(name).map(|t| t.shape.as_slice())
}

/// Side after `Conv2d(kernel 3, stride 2, padding 1)`.
fn conv_out(side: usize) -> usize {
    (side - 1) / 2 + 1
}

/// The image sides whose encoder (`convs` convolutions, the first of stride 1 for
/// super-resolution's half-size input) ends at `last`.
fn sizes_fitting(last: usize, convs: usize, superres: bool) -> Vec<usize> {
    (1..=(4 * last.max(1)) << convs)
        .filter(|&size| {
            if superres && size % 2 == 1 {
                return false;
            }
            let mut side = if superres { size / 2 } else { size };
            for i in 0..convs {
                if !(superres && i == 0) {
                    side = conv_out(side);
                }
            }
            side == last
        })
        .collect()
}

/// Infers the model of a `ConvVAE` `state_dict` read from `path`.
pub fn infer_spec(ckpt: &Checkpoint, path: &Path, settings: &ImportSettings) -> Result<ModelSpec> {
    let file = path.display();
    let Some(first) = shape(ckpt, "enc.0.weight").filter(|s| s.len() == 4) else {
        bail!(
            "{file}: not a state_dict of pytorch_images.ConvVAE (no 4-D enc.0.weight); gpu-ae imports the conv family"
        );
    };
    let channels = first[1];
    // The encoder's modules: a Conv2d, then BatchNorm2d (with running statistics) if any, then
    // the activation, then a ResBlock (`enc.I.conv1`) if any, per width.
    let (mut widths, mut index) = (Vec::new(), 0);
    let (mut norm, mut block) = (Norm::None, Block::Plain);
    while let Some(w) = shape(ckpt, &format!("enc.{index}.weight")) {
        if w.len() != 4 {
            bail!("{file}: enc.{index}.weight has shape {w:?}, a Conv2d weight is 4-D");
        }
        widths.push(w[0]);
        index += 2;
        if ckpt
            .get(&format!("enc.{}.running_mean", index - 1))
            .is_some()
        {
            norm = Norm::Batch;
            index += 1;
        }
        if ckpt.get(&format!("enc.{index}.conv1.weight")).is_some() {
            block = Block::Residual;
            index += 1;
        }
    }
    let (kind, head) = if ckpt.get("fc_mu.weight").is_some() {
        (ModelKind::ConvVae, "fc_mu")
    } else if ckpt.get("fc.weight").is_some() {
        (ModelKind::ConvAe, "fc")
    } else {
        bail!("{file}: no fc_mu.weight (VAE) or fc.weight (AE): not a ConvVAE state_dict");
    };
    let (head_weight, dec_weight) = (format!("{head}.weight"), "dec.0.weight");
    let two_d = |name: &str| -> Result<[usize; 2]> {
        match shape(ckpt, name) {
            Some(&[rows, cols]) => Ok([rows, cols]),
            Some(s) => bail!("{file}: {name} has shape {s:?}, a Linear weight is 2-D"),
            None => bail!("{file}: no {name}: not a ConvVAE state_dict"),
        }
    };
    let [head_rows, head_in] = two_d(&head_weight)?;
    let [dec_rows, dec_in] = two_d(dec_weight)?;
    // The biases say the latent size L and the feature count F whichever weight is wrong: the
    // head's weight is [L, F + K] and the decoder's first [F, L + K] (K classes).
    let bias_len = |name: &str, weight_rows: usize| match shape(ckpt, name) {
        Some(&[n]) => n,
        _ => weight_rows,
    };
    let latent = bias_len(&format!("{head}.bias"), head_rows);
    let feat = bias_len("dec.0.bias", dec_rows);
    let expected = |name: &str, got: [usize; 2], rows: usize, cols: usize| -> Result<()> {
        let transposed = if got == [cols, rows] {
            " (transposed?)"
        } else {
            ""
        };
        bail!(
            "{file}: {name} has shape {got:?}{transposed}; the model's latent size {latent} and {feat} features need [{rows}, {cols}], or more columns for a conditional model's class inputs"
        )
    };
    if head_rows != latent || head_in < feat {
        expected(&head_weight, [head_rows, head_in], latent, feat)?;
    }
    if dec_rows != feat || dec_in < latent {
        expected(dec_weight, [dec_rows, dec_in], feat, latent)?;
    }
    let classes = dec_in - latent;
    if head_in - feat != classes {
        bail!(
            "{file}: {head_weight} takes {} class inputs beside the {feat} features, and {dec_weight} {classes} beside the {latent} latents; a conditional model gives both the same",
            head_in - feat
        );
    }
    let last_width = *widths.last().expect("enc.0.weight is there");
    let area = feat / last_width;
    let last = (area as f64).sqrt().round() as usize;
    if last * last * last_width != feat {
        bail!(
            "{file}: {dec_weight} makes {feat} features, which the encoder's last {last_width} channels of a square side do not give"
        );
    }
    let superres = settings.task == Task::Superres;
    let fitting = sizes_fitting(last, widths.len(), superres);
    let size = match (settings.size, fitting.as_slice()) {
        (Some(s), _) if fitting.contains(&s) => s,
        (Some(s), _) => bail!(
            "--size {s}: {file} takes images of {} to {} pixels a side",
            fitting.first().copied().unwrap_or(0),
            fitting.last().copied().unwrap_or(0)
        ),
        (None, [only]) => *only,
        (None, _) => bail!(
            "{file}: images of {} to {} pixels a side fit these tensors (a state_dict does not record the size); pass --size",
            fitting.first().copied().unwrap_or(0),
            fitting.last().copied().unwrap_or(0)
        ),
    };
    // The decoder's first stage after Linear, activation, Unflatten (and a ResBlock): a
    // ConvTranspose2d with a weight, or an Upsample without one and then a Conv2d.
    let first_stage = 3 + usize::from(block == Block::Residual);
    let upsample = if ckpt.get(&format!("dec.{first_stage}.weight")).is_some() {
        Upsampling::Transposed
    } else {
        Upsampling::Nearest
    };
    let Some(act) = settings.act else {
        bail!(
            "{file}: a state_dict does not record the activation; pass --act relu or --act leaky-relu (pytorch_images.py's --act; --leaky-slope 0.01 for PyTorch's default nn.LeakyReLU())"
        );
    };
    Ok(ModelSpec {
        kind,
        latent,
        task: settings.task,
        loss: settings.loss,
        image: ImageShape { channels, size },
        widths,
        norm,
        act,
        leaky_slope: settings.leaky_slope,
        block,
        upsample,
        classes: (0..classes).map(|c| c.to_string()).collect(),
    })
}

/// The class names of the model `spec` read from `from` (a conditional model's `0` to `K−1`
/// until named), as `source` gives them; their count must be the model's K.
fn class_names(spec: &ModelSpec, source: Option<&ClassNames>, from: &Path) -> Result<Vec<String>> {
    let k = spec.classes.len();
    let (flag, names) = match source {
        None => {
            if k > 0 {
                noteln!(
                    "note: {}: a conditional model of {k} classes, named 0 to {}; name them with --classes or --data (its dataset) where they are not those numbers",
                    from.display(),
                    k - 1
                );
            }
            return Ok(spec.classes.clone());
        }
        Some(ClassNames::Given(arg)) => ("--classes", classes::parse_names(arg)?),
        Some(ClassNames::Folder(dir)) => ("--data", classes::of_folder(dir)?),
    };
    if k == 0 {
        bail!(
            "{flag}: {} is not a conditional model (its decoder takes no class label), so it has no classes to name",
            from.display()
        );
    }
    if names.len() != k {
        bail!(
            "{flag}: {} class names ({}), but the decoder of {} takes {k} classes",
            names.len(),
            names.join(", "),
            from.display()
        );
    }
    Ok(names)
}

/// Reads the `state_dict` at `from`, infers its model, checks every tensor against it and
/// writes a gpu-ae checkpoint to `to` (which must not exist); returns the model.
pub fn import(from: &Path, to: &Path, settings: &ImportSettings) -> Result<ModelSpec> {
    if to.exists() {
        bail!("{}: exists; choose another --out", to.display());
    }
    let (mut ckpt, converted) = checkpoint::load_state_dict(from)?;
    if ckpt.meta("format").is_some() {
        bail!(
            "{}: already a gpu-ae checkpoint; use it as it is",
            from.display()
        );
    }
    if !converted.is_empty() {
        noteln!(
            "note: {}: converted {} to f32",
            from.display(),
            converted.join(", ")
        );
    }
    if let Some((prefix, by)) = strip_prefix(&mut ckpt) {
        noteln!(
            "note: {}: every tensor name starts with `{prefix}` ({by}); stripped it",
            from.display()
        );
    }
    let mut spec = infer_spec(&ckpt, from, settings)?;
    spec.classes = class_names(&spec, settings.classes.as_ref(), from)?;
    let arch = Architecture::new(spec.clone())
        .map_err(|e| Error::msg(format!("{}: {e}", from.display())))?;
    // Every tensor of the file must be one of the model's, of its shape.
    values_from_checkpoint(&arch, &ckpt, from)?;
    let tensors: Vec<NamedTensor> = ckpt.tensors.clone();
    let out = Checkpoint {
        tensors,
        metadata: record::write_spec(&spec),
    };
    checkpoint::save(to, &out)?;
    Ok(spec)
}

/// Prefixes that wrappers put before every name of a state_dict, and who puts them there.
const PREFIXES: [(&str, &str); 3] = [
    ("model.", "a wrapping module's attribute"),
    ("module.", "nn.DataParallel or DistributedDataParallel"),
    ("_orig_mod.", "torch.compile"),
];

/// Strips one of [`PREFIXES`] from every tensor name when every name has it; returns it and who
/// puts it there.
fn strip_prefix(ckpt: &mut Checkpoint) -> Option<(&'static str, &'static str)> {
    let (prefix, by) = *PREFIXES.iter().find(|(p, _)| {
        !ckpt.tensors.is_empty() && ckpt.tensors.iter().all(|t| t.name.starts_with(p))
    })?;
    for t in &mut ckpt.tensors {
        t.name.drain(..prefix.len());
    }
    Some((prefix, by))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sizes_that_fit_an_encoder() {
        // MNIST's 28 → 14 → 7; 27 → 14 → 7 as well.
        assert_eq!(sizes_fitting(7, 2, false), vec![25, 26, 27, 28]);
        assert_eq!(sizes_fitting(4, 3, false), (25..=32).collect::<Vec<_>>());
        // Super-resolution's first convolution keeps the half-size side.
        assert_eq!(sizes_fitting(7, 2, true), vec![26, 28]);
    }
}
