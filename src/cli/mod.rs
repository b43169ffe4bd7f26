//! The command line: one file per command (`train`, `eval`, `bench`, `import`, `devices`, and
//! the pictures commands in `pictures`), the argument groups they share here, and `flags`, the one
//! rule for numeric flags. Each command is a thin call into the library.

pub mod bench;
pub mod devices;
pub mod eval;
pub mod flags;
pub mod import;
pub mod pictures;
pub mod train;

use clap::Args;
use gpu_ae::bail;
use gpu_ae::data::DataOptions;
use gpu_ae::error::Result;
use gpu_ae::gpu::{AdapterChoice, Gpu};
use gpu_ae::model::{
    Block, DEFAULT_LEAKY_SLOPE, HiddenAct, ImageShape, LossKind, ModelKind, ModelSpec, Norm,
    Upsampling,
};
use gpu_ae::noteln;
use std::path::{Path, PathBuf};

/// What a model learns (`train`, `bench`) or was trained for (`import`).
#[derive(Args, Clone)]
pub struct ObjectiveArgs {
    /// What the model learns: to reconstruct, to denoise (noisy input, clean target) or
    /// super-resolution (S/2 input, S target).
    #[arg(long, value_enum, default_value_t = flags::TaskName::Reconstruct)]
    pub task: flags::TaskName,
    /// Standard deviation of the Gaussian input noise for --task denoise.
    #[arg(long, default_value_t = 0.5, value_parser = flags::positive, allow_negative_numbers = true)]
    pub noise: f32,
    /// Reconstruction loss on sigmoid outputs, summed over pixels: binary cross-entropy or
    /// squared error.
    #[arg(long, value_enum, default_value_t = LossKind::Bce)]
    pub loss: LossKind,
}

impl ObjectiveArgs {
    pub fn task(&self) -> gpu_ae::model::Task {
        self.task.task(self.noise)
    }
}

#[derive(Args, Clone)]
pub struct AdapterArg {
    /// Adapter to use: an index or part of a name from `gpu-ae devices` (default: the best
    /// discrete GPU).
    #[arg(long, value_name = "NAME|INDEX")]
    pub adapter: Option<String>,
}

impl AdapterArg {
    /// Opens the adapter and names it on stderr (unless `quiet`), with a note when it is a CPU
    /// (software) adapter, quiet or not: that explains a slow run.
    pub fn open(&self, quiet: bool) -> Result<Gpu> {
        let choice = match &self.adapter {
            Some(a) => a.parse()?,
            None => AdapterChoice::Best,
        };
        let gpu = Gpu::new(&choice)?;
        if !quiet {
            noteln!("adapter: {}", gpu.describe());
        }
        if let Some(note) = gpu.software_note() {
            noteln!("note: {note}");
        }
        Ok(gpu)
    }
}

/// How a folder of images becomes a dataset (IDX folders are what they are).
#[derive(Args, Clone)]
pub struct DataArgs {
    /// Colour (3) or grey (1, ITU-R 601 luma); default: 3 if any image has colour.
    #[arg(long, value_parser = flags::channels, allow_negative_numbers = true)]
    pub channels: Option<u8>,
    /// Square side the images are scaled (shorter side) and centre-cropped to; default: the
    /// images' own size when they all share one.
    #[arg(long, value_parser = flags::count, allow_negative_numbers = true)]
    pub size: Option<usize>,
    /// Without train/ and test/ subfolders, an image is a test image when FNV-1a 64 of its path
    /// modulo 100 is below this.
    #[arg(long, default_value_t = 10, value_parser = flags::percent, allow_negative_numbers = true)]
    pub test_percent: u32,
}

impl DataArgs {
    pub fn options(&self) -> DataOptions {
        DataOptions {
            channels: self.channels,
            size: self.size,
            test_percent: self.test_percent,
        }
    }
}

#[derive(Args)]
pub struct PrecisionArg {
    /// Storage of activations and their gradients: f32, or f16 (half the memory and traffic;
    /// needs an adapter with SHADER_F16, see `gpu-ae devices`). Kernels compute in f32 and the
    /// parameters, their gradients and Adam's moments stay f32 either way. A resumed run keeps
    /// its own.
    #[arg(long, value_enum, default_value_t = flags::Precision::F32)]
    pub precision: flags::Precision,
}

/// The slope of `--act leaky-relu` (`train`, `bench`, `import`).
#[derive(Args, Clone)]
pub struct LeakySlopeArg {
    /// The negative slope of --act leaky-relu, `nn.LeakyReLU(negative_slope)`: 0.2 as in
    /// pytorch_images.py; PyTorch's default `nn.LeakyReLU()` is 0.01.
    #[arg(long, value_name = "S", default_value_t = DEFAULT_LEAKY_SLOPE, value_parser = flags::positive, allow_negative_numbers = true)]
    pub leaky_slope: f32,
}

#[derive(Args, Clone)]
pub struct ModelArgs {
    /// The model: the conv families (--widths), a dense VAE, or the 28×28 grey lesson model.
    #[arg(long, value_enum, default_value_t = ModelKind::ConvVae)]
    pub model: ModelKind,
    /// Latent size (lesson-ae ignores it: its code is 8×4×4).
    #[arg(long, default_value_t = 16, value_parser = flags::count, allow_negative_numbers = true)]
    pub latent: usize,
    #[command(flatten)]
    pub objective: ObjectiveArgs,
    /// conv-vae and conv-ae: output channels of each stride-2 convolution (the decoder mirrors
    /// them).
    #[arg(long, default_value = "16,32", value_parser = flags::widths, value_name = "W,W,…")]
    pub widths: flags::Widths,
    /// conv-vae and conv-ae: normalisation after each hidden convolution.
    #[arg(long, value_enum, default_value_t = Norm::None)]
    pub norm: Norm,
    /// conv-vae and conv-ae: the hidden activation (leaky-relu's slope: --leaky-slope).
    #[arg(long, value_enum, default_value_t = HiddenAct::Relu)]
    pub act: HiddenAct,
    #[command(flatten)]
    pub leaky: LeakySlopeArg,
    /// conv-vae and conv-ae: residual adds ResNet's basic block (two 3×3 convolutions and a
    /// skip connection, at the stage's width) after every encoder stage and every decoder
    /// stage but the last.
    #[arg(long, value_enum, default_value_t = Block::Plain)]
    pub block: Block,
    /// conv-vae and conv-ae: how the decoder goes up a side: a stride-2 transposed convolution,
    /// or nearest-neighbour upsampling then a 3×3 convolution (no checkerboard).
    #[arg(long, value_enum, default_value_t = Upsampling::Transposed)]
    pub upsample: Upsampling,
    /// A conditional VAE (conv-vae, dense-vae): the one-hot class label (IDX labels, or an image
    /// folder's subfolders) goes to the encoder's head and to the decoder, so that `sample
    /// --label` draws a chosen class.
    #[arg(long)]
    pub conditional: bool,
}

impl ModelArgs {
    /// The model asked for; its image shape is MNIST's until the data says otherwise.
    pub fn spec(&self) -> Result<ModelSpec> {
        Ok(ModelSpec {
            widths: self.widths.0.clone(),
            norm: self.norm,
            act: self.act,
            leaky_slope: self.leaky.leaky_slope,
            block: self.block,
            upsample: self.upsample,
            ..ModelSpec::mnist(
                self.model,
                self.latent,
                self.objective.task(),
                self.objective.loss,
            )
        })
    }
}

/// `assets/mnist` of the current directory, or of the source tree the binary was built from.
pub fn default_data() -> PathBuf {
    let local = PathBuf::from("assets/mnist");
    if local.is_dir() {
        return local;
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/mnist")
}

/// The folder whose test images a command on a trained model uses: `--data` when given, else
/// the folder the model was trained on (`trained_on`, from its checkpoint) when it is here
/// (said in a note unless it is the embedded MNIST), else the embedded MNIST for models of
/// MNIST's 28×28 grey images, else an error asking for `--data`.
pub fn model_data(
    given: Option<&Path>,
    trained_on: Option<&Path>,
    image: ImageShape,
) -> Result<PathBuf> {
    if let Some(dir) = given {
        return Ok(dir.to_path_buf());
    }
    let mnist = default_data();
    match trained_on {
        Some(dir) if dir.is_dir() => {
            if dir.canonicalize().ok() != mnist.canonicalize().ok() {
                noteln!(
                    "note: no --data given: the test images of {}, the folder the model was trained on",
                    dir.display()
                );
            }
            Ok(dir.to_path_buf())
        }
        _ if image == ImageShape::MNIST => Ok(mnist),
        Some(dir) => bail!(
            "--data: the model takes {image} images and was trained on {}, which is not here; give a folder of images with --data",
            dir.display()
        ),
        None => bail!(
            "--data: the model takes {image} images, not the embedded MNIST's; give a folder of images with --data"
        ),
    }
}
