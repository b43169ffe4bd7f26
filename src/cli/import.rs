//! `gpu-ae import`: a PyTorch state_dict of `pytorch_images.ConvVAE` made a gpu-ae checkpoint.

use super::{LeakySlopeArg, ObjectiveArgs, flags};
use clap::Args;
use gpu_ae::error::Result;
use gpu_ae::model::HiddenAct;
use gpu_ae::model::import::{ClassNames, ImportSettings};
use gpu_ae::outln;
use std::path::PathBuf;

#[derive(Args)]
pub struct ImportArgs {
    /// The state_dict, as `safetensors.torch.save_file(model.state_dict(), FILE)` wrote it.
    #[arg(long, value_name = "FILE")]
    pub checkpoint: PathBuf,
    /// The gpu-ae checkpoint to write (must not exist).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// The hidden activation, which a state_dict does not record (pytorch_images.py's --act).
    #[arg(long, value_enum)]
    pub act: Option<HiddenAct>,
    #[command(flatten)]
    pub leaky: LeakySlopeArg,
    /// A conditional model's class names in label order, comma-separated (a name holding a
    /// comma or a quote in double quotes, as in CSV); default 0 to K−1.
    #[arg(long, value_name = "NAME,…", allow_hyphen_values = true)]
    pub classes: Option<String>,
    /// Name a conditional model's classes by the dataset it was trained on: an image folder's
    /// first-level subfolders in sorted order, as pytorch_images.py numbers them.
    #[arg(long, value_name = "DIR", conflicts_with = "classes")]
    pub data: Option<PathBuf>,
    /// The image side, when the tensors fit several.
    #[arg(long, value_parser = flags::count, allow_negative_numbers = true)]
    pub size: Option<usize>,
    #[command(flatten)]
    pub objective: ObjectiveArgs,
}

pub fn import_cmd(a: ImportArgs) -> Result<()> {
    let settings = ImportSettings {
        act: a.act,
        leaky_slope: a.leaky.leaky_slope,
        classes: match (a.classes, a.data) {
            (Some(names), _) => Some(ClassNames::Given(names)),
            (None, Some(dir)) => Some(ClassNames::Folder(dir)),
            (None, None) => None,
        },
        size: a.size,
        task: a.objective.task(),
        loss: a.objective.loss,
    };
    let spec = gpu_ae::model::import::import(&a.checkpoint, &a.out, &settings)?;
    let conditional = match spec.classes.len() {
        0 => String::new(),
        k => format!(", conditional on {k} classes"),
    };
    let slope = if spec.act == HiddenAct::LeakyRelu {
        format!(" (slope {})", spec.leaky_slope)
    } else {
        String::new()
    };
    outln!(
        "{}: {} L={} for {} images, widths {}, norm {}, act {}{slope}, block {}, upsample {}{conditional}, from {}",
        a.out.display(),
        spec.kind,
        spec.latent,
        spec.image,
        gpu_ae::metadata::join_widths(&spec.widths),
        gpu_ae::model::value_name(&spec.norm),
        gpu_ae::model::value_name(&spec.act),
        gpu_ae::model::value_name(&spec.block),
        gpu_ae::model::value_name(&spec.upsample),
        a.checkpoint.display()
    );
    Ok(())
}
