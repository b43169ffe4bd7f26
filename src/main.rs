//! The `gpu-ae` command line: each subcommand parses its flags and calls into the library.
//! Errors are printed as one line and exit with status 1 (usage errors: 2; a training stopped by
//! Ctrl-C: 130). Output never panics on a closed pipe ([`gpu_ae::console`]).

use clap::parser::ValueSource;
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use gpu_ae::bail;
use gpu_ae::bench::{self, BenchOptions};
use gpu_ae::console::Progress;
use gpu_ae::data::classes;
use gpu_ae::data::{Binarize, DataOptions};
use gpu_ae::error::{Error, Result};
use gpu_ae::evaluate::Evaluator;
use gpu_ae::gpu::{AdapterChoice, Gpu, enumerate_adapters};
use gpu_ae::gpu_split::GpuSplit;
use gpu_ae::import::{ClassNames, ImportSettings};
use gpu_ae::likelihood::ImportanceWeighted;
use gpu_ae::models::{
    Block, DEFAULT_LEAKY_SLOPE, HiddenAct, ImageShape, LossKind, ModelKind, ModelSpec, Norm,
    Upsampling,
};
use gpu_ae::platform::block_on;
use gpu_ae::run::Claim;
use gpu_ae::schedule::{LrSchedule, Schedule};
use gpu_ae::train::{self, TrainConfig};
use gpu_ae::train_run::{self, RunOptions, RunOutcome, RunTarget};
use gpu_ae::{noteln, outln, stop};
use std::path::{Path, PathBuf};

mod flags;
mod pictures;

#[derive(Parser)]
#[command(
    name = "gpu-ae",
    version,
    about = "Train autoencoders and VAEs on any GPU with hand-written WGSL kernels"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List every GPU adapter wgpu sees (WGPU_BACKEND restricts the backends).
    Devices {
        /// One JSON object per adapter.
        #[arg(long)]
        json: bool,
    },
    /// Train a model; checkpoints, metrics.jsonl and loss.png go to the run folder.
    Train(TrainArgs),
    /// Test-set figures of a checkpoint (BCE, KL and negative ELBO per example, in nats).
    Eval(EvalArgs),
    /// Time training epochs and print JSON (seconds per epoch, images/s, dispatches, FLOPs).
    Bench(BenchArgs),
    /// Decode z ~ N(0, I) into a PNG grid of digits (VAEs); --manifold, --interpolate A B.
    Sample(SampleArgs),
    /// A PNG of test images above their reconstructions.
    Reconstruct(PictureArgs),
    /// Write the code of every test image to CSV, and a scatter plot of it (its first two
    /// principal components when it has more than two dimensions).
    Encode(EncodeArgs),
    /// Noisy / denoised / clean rows of test images, and PSNR of the noisy input and the output.
    Denoise(PictureArgs),
    /// Upscale images to twice their side (half the model's size to its size: 14×14 to 28×28
    /// for MNIST) and compare with nearest and bilinear upscaling (PSNR).
    Upscale(UpscaleArgs),
    /// Make a PyTorch state_dict of pytorch_images.ConvVAE (safetensors, no gpu-ae metadata) a
    /// gpu-ae checkpoint: the architecture from the tensor names and shapes, the rest from flags.
    Import(ImportArgs),
}

#[derive(Args)]
struct ImportArgs {
    /// The state_dict, as `safetensors.torch.save_file(model.state_dict(), FILE)` wrote it.
    #[arg(long, value_name = "FILE")]
    checkpoint: PathBuf,
    /// The gpu-ae checkpoint to write (must not exist).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// The hidden activation, which a state_dict does not record (pytorch_images.py's --act).
    #[arg(long, value_enum)]
    act: Option<HiddenAct>,
    #[command(flatten)]
    leaky: LeakySlopeArg,
    /// A conditional model's class names in label order, comma-separated (a name holding a
    /// comma or a quote in double quotes, as in CSV); default 0 to K−1.
    #[arg(long, value_name = "NAME,…", allow_hyphen_values = true)]
    classes: Option<String>,
    /// Name a conditional model's classes by the dataset it was trained on: an image folder's
    /// first-level subfolders in sorted order, as pytorch_images.py numbers them.
    #[arg(long, value_name = "DIR", conflicts_with = "classes")]
    data: Option<PathBuf>,
    /// The image side, when the tensors fit several.
    #[arg(long, value_parser = flags::count, allow_negative_numbers = true)]
    size: Option<usize>,
    #[command(flatten)]
    objective: ObjectiveArgs,
}

/// What a model learns (`train`, `bench`) or was trained for (`import`).
#[derive(Args, Clone)]
struct ObjectiveArgs {
    /// What the model learns: to reconstruct, to denoise (noisy input, clean target) or
    /// super-resolution (S/2 input, S target).
    #[arg(long, value_enum, default_value_t = flags::TaskName::Reconstruct)]
    task: flags::TaskName,
    /// Standard deviation of the Gaussian input noise for --task denoise.
    #[arg(long, default_value_t = 0.5, value_parser = flags::positive, allow_negative_numbers = true)]
    noise: f32,
    /// Reconstruction loss on sigmoid outputs, summed over pixels: binary cross-entropy or
    /// squared error.
    #[arg(long, value_enum, default_value_t = LossKind::Bce)]
    loss: LossKind,
}

impl ObjectiveArgs {
    fn task(&self) -> gpu_ae::models::Task {
        self.task.task(self.noise)
    }
}

#[derive(Args, Clone)]
struct GridArgs {
    #[arg(long, default_value_t = 8, value_parser = flags::count, allow_negative_numbers = true)]
    rows: usize,
    #[arg(long, default_value_t = 8, value_parser = flags::count, allow_negative_numbers = true)]
    cols: usize,
    /// Enlarge each image this many times.
    #[arg(long, default_value_t = 2, value_parser = flags::count, allow_negative_numbers = true)]
    scale: usize,
    /// Pixels between cells.
    #[arg(long, default_value_t = 2, value_parser = flags::whole::<usize>, allow_negative_numbers = true)]
    padding: usize,
}

#[derive(Args)]
struct SampleArgs {
    /// Checkpoint (default: the conv-vae shipped in assets/models, the 2-D one with --manifold,
    /// the conditional 2-D one with --label).
    #[arg(long, value_name = "FILE")]
    checkpoint: Option<PathBuf>,
    #[command(flatten)]
    grid: GridArgs,
    #[arg(long, default_value_t = 0, value_parser = flags::whole::<u32>, allow_negative_numbers = true)]
    seed: u32,
    /// The picture: .png, .jpg/.jpeg or .bmp.
    #[arg(long, default_value = "samples.png", value_name = "PICTURE")]
    out: PathBuf,
    /// Decode an evenly spaced grid of the prior's quantiles (2-D latent models).
    #[arg(long, conflicts_with = "interpolate")]
    manifold: bool,
    /// Decode the straight line between the codes of test images A and B.
    #[arg(long, num_args = 2, value_names = ["A", "B"])]
    interpolate: Option<Vec<usize>>,
    /// The test images for --interpolate: an IDX folder or a folder of images (default: the
    /// folder the model was trained on when it is here, else assets/mnist).
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// Conditional models: the class(es) to draw, as indices or names, comma-separated (one
    /// row per class when several; default: one row per class of the model). A name holding a
    /// comma is given alone or in double quotes, as encode's CSV quotes it: '"a,b",c'.
    #[arg(long, value_name = "CLASS,…", allow_hyphen_values = true)]
    label: Option<String>,
    #[command(flatten)]
    adapter: AdapterArg,
}

#[derive(Args)]
struct PictureArgs {
    #[arg(long, value_name = "FILE")]
    checkpoint: PathBuf,
    /// The test images: an IDX folder or a folder of images (default: the folder the model was
    /// trained on when it is here, else assets/mnist).
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// Test images shown.
    #[arg(long, default_value_t = 10, value_parser = flags::count, allow_negative_numbers = true)]
    count: usize,
    #[arg(long, default_value_t = 2, value_parser = flags::count, allow_negative_numbers = true)]
    scale: usize,
    #[arg(long, default_value_t = 2, value_parser = flags::whole::<usize>, allow_negative_numbers = true)]
    padding: usize,
    /// Seed of the input noise (denoise).
    #[arg(long, default_value_t = 0, value_parser = flags::whole::<u32>, allow_negative_numbers = true)]
    seed: u32,
    /// The picture: .png, .jpg/.jpeg or .bmp.
    #[arg(long, value_name = "PICTURE")]
    out: Option<PathBuf>,
    #[command(flatten)]
    adapter: AdapterArg,
}

#[derive(Args)]
struct EncodeArgs {
    #[arg(long, value_name = "FILE")]
    checkpoint: PathBuf,
    /// The test images: an IDX folder or a folder of images (default: the folder the model was
    /// trained on when it is here, else assets/mnist).
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// CSV of index,label,z0,…; the scatter plot goes beside it as .png.
    #[arg(long, value_name = "CSV")]
    out: PathBuf,
    #[command(flatten)]
    adapter: AdapterArg,
}

#[derive(Args)]
struct UpscaleArgs {
    #[arg(long, value_name = "FILE")]
    checkpoint: PathBuf,
    /// An image of half the model's side to upscale (14×14 for an MNIST model), in any format
    /// training reads (PNG, JPEG, BMP, GIF, WebP); default: the whole test set, with PSNR figures.
    #[arg(long, value_name = "IMAGE")]
    input: Option<PathBuf>,
    /// The test images: an IDX folder or a folder of images (default: the folder the model was
    /// trained on when it is here, else assets/mnist).
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// Test images shown in the comparison picture.
    #[arg(long, default_value_t = 10, value_parser = flags::count, allow_negative_numbers = true)]
    count: usize,
    #[arg(long, default_value_t = 2, value_parser = flags::count, allow_negative_numbers = true)]
    scale: usize,
    #[arg(long, default_value_t = 2, value_parser = flags::whole::<usize>, allow_negative_numbers = true)]
    padding: usize,
    /// The picture: .png, .jpg/.jpeg or .bmp.
    #[arg(long, value_name = "PICTURE")]
    out: Option<PathBuf>,
    #[command(flatten)]
    adapter: AdapterArg,
}

#[derive(Args, Clone)]
struct AdapterArg {
    /// Adapter to use: an index or part of a name from `gpu-ae devices` (default: the best
    /// discrete GPU).
    #[arg(long, value_name = "NAME|INDEX")]
    adapter: Option<String>,
}

impl AdapterArg {
    /// Opens the adapter and names it on stderr (unless `quiet`), with a note when it is a CPU
    /// (software) adapter, quiet or not: that explains a slow run.
    fn open(&self, quiet: bool) -> Result<Gpu> {
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
struct DataArgs {
    /// Colour (3) or grey (1, ITU-R 601 luma); default: 3 if any image has colour.
    #[arg(long, value_parser = flags::channels, allow_negative_numbers = true)]
    channels: Option<u8>,
    /// Square side the images are scaled (shorter side) and centre-cropped to; default: the
    /// images' own size when they all share one.
    #[arg(long, value_parser = flags::count, allow_negative_numbers = true)]
    size: Option<usize>,
    /// Without train/ and test/ subfolders, an image is a test image when FNV-1a 64 of its path
    /// modulo 100 is below this.
    #[arg(long, default_value_t = 10, value_parser = flags::percent, allow_negative_numbers = true)]
    test_percent: u32,
}

impl DataArgs {
    fn options(&self) -> DataOptions {
        DataOptions {
            channels: self.channels,
            size: self.size,
            test_percent: self.test_percent,
        }
    }
}

#[derive(Args)]
struct PrecisionArg {
    /// Storage of activations and their gradients: f32, or f16 (half the memory and traffic;
    /// needs an adapter with SHADER_F16, see `gpu-ae devices`). Kernels compute in f32 and the
    /// parameters, their gradients and Adam's moments stay f32 either way. A resumed run keeps
    /// its own.
    #[arg(long, value_enum, default_value_t = flags::Precision::F32)]
    precision: flags::Precision,
}

/// The slope of `--act leaky-relu` (`train`, `bench`, `import`).
#[derive(Args, Clone)]
struct LeakySlopeArg {
    /// The negative slope of --act leaky-relu, `nn.LeakyReLU(negative_slope)`: 0.2 as in
    /// pytorch_images.py; PyTorch's default `nn.LeakyReLU()` is 0.01.
    #[arg(long, value_name = "S", default_value_t = DEFAULT_LEAKY_SLOPE, value_parser = flags::positive, allow_negative_numbers = true)]
    leaky_slope: f32,
}

#[derive(Args, Clone)]
struct ModelArgs {
    /// The model: the conv families (--widths), a dense VAE, or the 28×28 grey lesson model.
    #[arg(long, value_enum, default_value_t = ModelKind::ConvVae)]
    model: ModelKind,
    /// Latent size (lesson-ae ignores it: its code is 8×4×4).
    #[arg(long, default_value_t = 16, value_parser = flags::count, allow_negative_numbers = true)]
    latent: usize,
    #[command(flatten)]
    objective: ObjectiveArgs,
    /// conv-vae and conv-ae: output channels of each stride-2 convolution (the decoder mirrors
    /// them).
    #[arg(long, default_value = "16,32", value_parser = flags::widths, value_name = "W,W,…")]
    widths: flags::Widths,
    /// conv-vae and conv-ae: normalisation after each hidden convolution.
    #[arg(long, value_enum, default_value_t = Norm::None)]
    norm: Norm,
    /// conv-vae and conv-ae: the hidden activation (leaky-relu's slope: --leaky-slope).
    #[arg(long, value_enum, default_value_t = HiddenAct::Relu)]
    act: HiddenAct,
    #[command(flatten)]
    leaky: LeakySlopeArg,
    /// conv-vae and conv-ae: residual adds ResNet's basic block (two 3×3 convolutions and a
    /// skip connection, at the stage's width) after every encoder stage and every decoder
    /// stage but the last.
    #[arg(long, value_enum, default_value_t = Block::Plain)]
    block: Block,
    /// conv-vae and conv-ae: how the decoder goes up a side: a stride-2 transposed convolution,
    /// or nearest-neighbour upsampling then a 3×3 convolution (no checkerboard).
    #[arg(long, value_enum, default_value_t = Upsampling::Transposed)]
    upsample: Upsampling,
    /// A conditional VAE (conv-vae, dense-vae): the one-hot class label (IDX labels, or an image
    /// folder's subfolders) goes to the encoder's head and to the decoder, so that `sample
    /// --label` draws a chosen class.
    #[arg(long)]
    conditional: bool,
}

impl ModelArgs {
    /// The model asked for; its image shape is MNIST's until the data says otherwise.
    fn spec(&self) -> Result<ModelSpec> {
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

#[derive(Args)]
struct TrainArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Epochs to train (in total, when resuming).
    #[arg(long, default_value_t = 10, value_parser = flags::count, allow_negative_numbers = true)]
    epochs: usize,
    #[arg(long, default_value_t = 128, value_parser = flags::count, allow_negative_numbers = true)]
    batch: usize,
    /// Adam learning rate, the peak of a schedule (with --resume: the rate from where the run
    /// continues; a schedule goes on from there scaled to it).
    #[arg(long, default_value_t = 1e-3, value_parser = flags::positive, allow_negative_numbers = true)]
    lr: f32,
    /// How the rate moves per step: constant, or cosine from --lr down to 0 over the steps of
    /// --epochs (PyTorch's `lr·(1 + cos(π·t/T))/2`).
    #[arg(long, value_enum, default_value_t = LrSchedule::Constant)]
    lr_schedule: LrSchedule,
    /// Raise the rate linearly over the first N steps (`lr·min(1, (t+1)/N)`), with either
    /// schedule.
    #[arg(long, value_name = "N", value_parser = flags::count, allow_negative_numbers = true)]
    warmup_steps: Option<usize>,
    #[arg(long, default_value_t = 0, value_parser = flags::whole::<u64>, allow_negative_numbers = true)]
    seed: u64,
    /// Weight of the KL divergence in the training loss (β-VAE); evaluation still reports the
    /// negative ELBO.
    #[arg(long, default_value_t = 1.0, value_parser = flags::weight, allow_negative_numbers = true)]
    beta: f32,
    /// Train on binarised images: `dynamic` resamples each pixel from Bernoulli(pixel) every
    /// time an image is drawn (binarised MNIST, the likelihood benchmark's data); the test
    /// images are then binarised once by a fixed seed for evaluation.
    #[arg(long, value_enum, default_value_t = Binarize::None)]
    binarize: Binarize,
    #[command(flatten)]
    precision: PrecisionArg,
    /// An IDX folder (train-images-idx3-ubyte[.gz], …) or a folder of images (png, jpg, bmp,
    /// gif, webp; subfolders are classes); default assets/mnist, or with --resume the run's own.
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    #[command(flatten)]
    images: DataArgs,
    /// Run folder (default runs/<model>-<UTC time>); refused if it holds a run.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Continue the run in this folder (model, optimizer state, settings and dataset come from
    /// it; settings flags that differ from the run's are refused, all but --lr).
    #[arg(long, value_name = "RUN_DIR", conflicts_with = "out")]
    resume: Option<PathBuf>,
    /// Fine-tune: start a new run from the parameters of this checkpoint (a model.safetensors
    /// of gpu-ae train, or one `gpu-ae import` wrote), with fresh Adam state at step 0. The
    /// model (--model, --widths, --latent, --norm, --act, --leaky-slope, --block, --upsample,
    /// --conditional, the image shape) is the checkpoint's, and flags that contradict it are refused; the
    /// training settings, --task and --loss included, are this run's.
    #[arg(long, value_name = "FILE", conflicts_with = "resume")]
    init: Option<PathBuf>,
    /// Replace the run that --out already holds (without it such a folder is refused).
    #[arg(long, requires = "out", conflicts_with = "resume")]
    overwrite: bool,
    /// With --resume: continue on a dataset whose images differ from the recorded one.
    #[arg(long, requires = "resume")]
    allow_data_change: bool,
    /// Inside a long epoch, write a checkpoint after this many minutes of training (a kill or
    /// power cut then loses at most that much; Ctrl-C keeps every step).
    #[arg(long, default_value_t = 10.0, value_parser = flags::positive, allow_negative_numbers = true)]
    checkpoint_minutes: f32,
    /// Batch size of the test-set evaluation after each epoch.
    #[arg(long, default_value_t = 500, value_parser = flags::count, allow_negative_numbers = true)]
    eval_batch: usize,
    /// No progress bar or per-epoch lines.
    #[arg(long)]
    quiet: bool,
    #[command(flatten)]
    adapter: AdapterArg,
}

#[derive(Args)]
struct EvalArgs {
    /// A model.safetensors written by `gpu-ae train`.
    #[arg(long, value_name = "FILE")]
    checkpoint: PathBuf,
    /// The test images: an IDX folder or a folder of images (default: the folder the model was
    /// trained on when it is here, else assets/mnist).
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    #[arg(long, default_value_t = 500, value_parser = flags::count, allow_negative_numbers = true)]
    batch: usize,
    /// Seed of the VAE's ε and the denoising noise.
    #[arg(long, default_value_t = 0, value_parser = flags::whole::<u32>, allow_negative_numbers = true)]
    seed: u32,
    /// Also estimate the negative log-likelihood −log p(x) with K importance samples per image
    /// (IWAE; e.g. 5000), beside the one-sample ELBO.
    #[arg(long, value_parser = flags::count, allow_negative_numbers = true, value_name = "K")]
    iw: Option<usize>,
    /// Evaluate only the first N test images (for slow adapters); the whole set's figures
    /// are printed beside them.
    #[arg(long, value_parser = flags::count, allow_negative_numbers = true, value_name = "N", conflicts_with = "subset")]
    limit: Option<usize>,
    /// Evaluate a seeded random N of the test images (an unbiased draw, unlike `--limit`); the
    /// whole set's figures are printed beside them, so the subset's bias shows.
    #[arg(long, value_parser = flags::count, allow_negative_numbers = true, value_name = "N")]
    subset: Option<usize>,
    /// Seed of `--subset`'s draw.
    #[arg(long, default_value_t = 0, value_parser = flags::whole::<u64>, allow_negative_numbers = true, requires = "subset")]
    subset_seed: u64,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    adapter: AdapterArg,
}

#[derive(Args)]
struct BenchArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[arg(long, default_value_t = 128, value_parser = flags::count, allow_negative_numbers = true)]
    batch: usize,
    /// Epochs to time (the first includes start-up; the rest give the steady figure).
    #[arg(long, default_value_t = 3, value_parser = flags::count, allow_negative_numbers = true)]
    epochs: usize,
    /// Use only the first N training images (default: all), for slow adapters.
    #[arg(long, value_parser = flags::count, allow_negative_numbers = true, value_name = "N")]
    train_limit: Option<usize>,
    #[command(flatten)]
    precision: PrecisionArg,
    /// An IDX folder or a folder of images (default assets/mnist).
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    #[command(flatten)]
    images: DataArgs,
    #[arg(long, default_value_t = 0, value_parser = flags::whole::<u64>, allow_negative_numbers = true)]
    seed: u64,
    #[command(flatten)]
    adapter: AdapterArg,
}

/// `assets/mnist` of the current directory, or of the source tree the binary was built from.
fn default_data() -> PathBuf {
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
fn model_data(
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

fn main() {
    let matches = Cli::command()
        .try_get_matches()
        .unwrap_or_else(|e| usage_exit(e));
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| usage_exit(e));
    let explicit = matches
        .subcommand_matches("train")
        .map(explicit_settings)
        .unwrap_or_default();
    match run(cli, explicit) {
        Ok(status) => std::process::exit(status),
        Err(e) => {
            noteln!("error: {e}");
            std::process::exit(1);
        }
    }
}

/// Help and version go to stdout (status 0); a command-line error is one line on stderr
/// (status 2), its first line in clap's words.
fn usage_exit(e: clap::Error) -> ! {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = e.print();
            std::process::exit(0)
        }
        _ => {
            let text = e.render().to_string();
            let first = text
                .lines()
                .next()
                .unwrap_or("error: bad command line")
                .trim_end();
            let first = if first.starts_with("error:") {
                first.to_string()
            } else {
                format!("error: {first}")
            };
            // An enum flag's values are worth the line's length.
            let values = text
                .lines()
                .map(str::trim)
                .find(|l| l.starts_with("[possible values:"))
                .map(|l| format!(" {l}"))
                .unwrap_or_default();
            // A missing argument's names are on the lines after the first.
            let missing = match e.kind() {
                ErrorKind::MissingRequiredArgument => text
                    .lines()
                    .skip(1)
                    .take_while(|l| l.starts_with("  "))
                    .map(str::trim)
                    .collect::<Vec<_>>()
                    .join(", "),
                _ => String::new(),
            };
            let first = if missing.is_empty() {
                first
            } else {
                format!("{first} {missing}")
            };
            noteln!("{first}{values} (see --help)");
            std::process::exit(2)
        }
    }
}

/// The settings flags of `train` given on the command line (not left at their defaults): a
/// resume compares them with the run's own.
fn explicit_settings(m: &clap::ArgMatches) -> Vec<String> {
    train_run::ARCHITECTURE_FLAGS
        .into_iter()
        .chain([
            "task",
            "noise",
            "loss",
            "batch",
            "lr",
            "lr_schedule",
            "warmup_steps",
            "beta",
            "seed",
            "precision",
            "binarize",
            "test_percent",
        ])
        .filter(|id| m.value_source(id) == Some(ValueSource::CommandLine))
        .map(String::from)
        .collect()
}

/// Runs a command; `Ok` holds the exit status.
fn run(cli: Cli, explicit: Vec<String>) -> Result<i32> {
    match cli.command {
        Command::Devices { json } => devices(json),
        Command::Train(a) => return train_cmd(a, explicit),
        Command::Eval(a) => eval_cmd(a),
        Command::Bench(a) => bench_cmd(a),
        Command::Sample(a) => pictures::sample(a),
        Command::Reconstruct(a) => pictures::reconstruct(a),
        Command::Encode(a) => pictures::encode(a),
        Command::Denoise(a) => pictures::denoise(a),
        Command::Upscale(a) => pictures::upscale(a),
        Command::Import(a) => import_cmd(a),
    }
    .map(|()| 0)
}

fn devices(json: bool) -> Result<()> {
    gpu_ae::gpu::backends_from_env()?;
    let adapters = enumerate_adapters();
    if adapters.is_empty() {
        // Gpu::new gives the error that says how to get an adapter.
        Gpu::new(&AdapterChoice::Best)?;
    }
    for a in &adapters {
        if json {
            outln!("{}", a.to_json());
        } else {
            let i = &a.info;
            outln!(
                "[{}] {} — {:?}, {:?}, driver {} {}",
                a.index,
                i.name,
                i.backend,
                i.device_type,
                i.driver,
                i.driver_info
            );
            outln!(
                "    max buffer {}, max storage binding {}, workgroup storage {} B, {} invocations/workgroup, f16 {}, timestamps {}",
                gpu_ae::gpu::human_bytes(a.limits.max_buffer_size),
                gpu_ae::gpu::human_bytes(a.limits.max_storage_buffer_binding_size),
                a.limits.max_compute_workgroup_storage_size,
                a.limits.max_compute_invocations_per_workgroup,
                if a.shader_f16 { "yes" } else { "no" },
                if a.timestamp_query { "yes" } else { "no" },
            );
        }
    }
    Ok(())
}

fn train_cmd(a: TrainArgs, explicit: Vec<String>) -> Result<i32> {
    let spec = a.model.spec()?;
    let resume = a.resume.is_some();
    let target = match (&a.resume, &a.out) {
        (Some(dir), _) => RunTarget::Folder {
            dir: dir.clone(),
            claim: Claim::Resume,
        },
        (None, Some(dir)) => RunTarget::Folder {
            dir: dir.clone(),
            claim: if a.overwrite {
                Claim::Overwrite
            } else {
                Claim::New
            },
        },
        (None, None) => {
            let secs = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            RunTarget::Default {
                parent: PathBuf::from("runs"),
                stamp: utc_stamp(secs),
            }
        }
    };
    let cfg = TrainConfig {
        spec,
        batch: a.batch,
        lr: a.lr,
        schedule: Schedule {
            kind: a.lr_schedule,
            warmup_steps: u32::try_from(a.warmup_steps.unwrap_or(0))
                .map_err(|_| Error::msg("--warmup-steps: at most 2³²−1"))?,
            horizon_steps: 0,
        },
        seed: a.seed,
        precision: a.precision.precision.elem(),
        beta: a.beta,
        binarize: a.binarize,
        init: a.init,
    };
    let opts = RunOptions {
        data_dir: match a.data {
            Some(d) => Some(d),
            None if resume => None,
            None => Some(default_data()),
        },
        target,
        epochs: a.epochs,
        eval_batch: a.eval_batch,
        quiet: a.quiet,
        explicit_flags: explicit,
        allow_data_change: a.allow_data_change,
        data_options: a.images.options(),
        conditional: a.model.conditional,
        checkpoint_seconds: f64::from(a.checkpoint_minutes) * 60.0,
    };
    stop::install()?;
    match block_on(train_run::run(|| a.adapter.open(a.quiet), cfg, &opts))? {
        RunOutcome::Finished { .. } => Ok(0),
        RunOutcome::Interrupted {
            dir,
            epochs_kept: 0,
            steps_kept: 0,
            folder_removed,
            ..
        } => {
            let removed = if folder_removed {
                format!("; removed the new folder {}", dir.display())
            } else {
                String::new()
            };
            noteln!("stopped in the first epoch: no checkpoint to keep{removed}");
            Ok(stop::EXIT_STATUS)
        }
        RunOutcome::Interrupted {
            dir,
            epochs_kept,
            steps_kept,
            steps_per_epoch,
            ..
        } => {
            let kept = if steps_kept == 0 {
                format!(
                    "stopped: {} keeps the checkpoint of epoch {epochs_kept}",
                    dir.display()
                )
            } else {
                format!(
                    "stopped at step {steps_kept} of {steps_per_epoch} in epoch {}: {} keeps the checkpoint of that step",
                    epochs_kept + 1,
                    dir.display()
                )
            };
            noteln!(
                "{kept}; continue with `gpu-ae train --resume {} --epochs {}`",
                dir.display(),
                a.epochs
            );
            Ok(stop::EXIT_STATUS)
        }
    }
}

/// `20261127-031500` for a Unix time (UTC), for run folder names.
fn utc_stamp(secs: u64) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}{m:02}{d:02}-{:02}{:02}{:02}",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

fn eval_cmd(a: EvalArgs) -> Result<()> {
    let gpu = a.adapter.open(false)?;
    let (model, ckpt) = train::load_model(&gpu, &a.checkpoint)?;
    let split = gpu_ae::metadata::read_split(&ckpt, &a.checkpoint)?;
    let dir = model_data(
        a.data.as_deref(),
        gpu_ae::metadata::read_data_path(&ckpt).as_deref(),
        model.arch.spec.image,
    )?;
    let binarize = gpu_ae::metadata::read_binarize(&ckpt, &a.checkpoint)?;
    let options = model.arch.spec.image.data_options(&split);
    let set = gpu_ae::data::load_test(&dir, &options)?;
    if let Some(note) = set.conversion_note(model.arch.spec.image) {
        noteln!("{note}");
    }
    let mut test = set.test;
    let spec = &model.arch.spec;
    if spec.is_conditional() {
        test.labels = classes::relabel(&test.labels, &set.classes, &spec.classes, &dir)?;
    }
    let whole_count = test.images.count;
    // When only part of the set is evaluated, the whole set's figures too: the part's bias.
    let whole = if a.limit.is_some() || a.subset.is_some() {
        let split = GpuSplit::upload(&gpu, &test, &dir)?;
        let evaluator = Evaluator::new(&gpu, &model, &split, a.batch, a.seed, binarize)?;
        Some(block_on(evaluator.run(&gpu))?)
    } else {
        None
    };
    let part = match (a.limit, a.subset) {
        (Some(n), _) => {
            test = test.first(n);
            Some("the first ones".to_string())
        }
        (None, Some(n)) => {
            test = test.random_subset(n, a.subset_seed);
            Some(format!("a random subset, seed {}", a.subset_seed))
        }
        (None, None) => None,
    };
    let split = GpuSplit::upload(&gpu, &test, &dir)?;
    let evaluator = Evaluator::new(&gpu, &model, &split, a.batch, a.seed, binarize)?;
    let m = block_on(evaluator.run(&gpu))?;
    let iw = match a.iw {
        Some(k) => {
            let iw = ImportanceWeighted::new(&gpu, &model, &split, a.batch, k, a.seed, binarize)?;
            let mut progress = Progress::new("importance sampling", "batches", iw.batches());
            let nll = block_on(iw.run(&gpu, &mut |done, _| progress.set(done)))?;
            progress.finish();
            Some((k, nll))
        }
        None => None,
    };
    let rec = model.arch.spec.loss.name();
    let figures = [
        (rec.to_uppercase(), Some(m.rec)),
        ("KL".into(), m.kl),
        ("PSNR".into(), Some(m.psnr)),
    ]
    .into_iter()
    .chain(iw.map(|(k, nll)| (format!("−log p(x) (K={k})"), Some(nll))));
    let broken: Vec<String> = figures
        .filter_map(|(name, v)| v.filter(|v| !v.is_finite()).map(|v| format!("{name} {v}")))
        .collect();
    if !broken.is_empty() {
        bail!(
            "{}: the test figures are not finite numbers ({}): the model's outputs overflow f32 on these images (a diverged or wrongly imported model?)",
            a.checkpoint.display(),
            broken.join(", ")
        );
    }
    if a.json {
        let mut v = serde_json::json!({
            "checkpoint": a.checkpoint.display().to_string(),
            "data": dir.display().to_string(),
            "model": model.arch.spec.kind.name(),
            "images": m.count,
        });
        v[format!("test_{rec}")] = m.rec.into();
        if let Some(kl) = m.kl {
            v["test_kl"] = kl.into();
            v["test_neg_elbo"] = m.total().into();
        }
        v["test_psnr"] = m.psnr.into();
        if let Some((k, nll)) = iw {
            v["iw_samples"] = k.into();
            v["test_iw_nll"] = nll.into();
        }
        if binarize == Binarize::Dynamic {
            v["binarized"] = true.into();
        }
        if let (Some(part), Some(whole)) = (&part, &whole) {
            v["part"] = part.as_str().into();
            let mut w = serde_json::json!({ "images": whole.count });
            w[format!("test_{rec}")] = whole.rec.into();
            if let Some(kl) = whole.kl {
                w["test_kl"] = kl.into();
                w["test_neg_elbo"] = whole.total().into();
            }
            w["test_psnr"] = whole.psnr.into();
            v["whole_set"] = w;
        }
        outln!("{v}");
    } else {
        let unit = if rec == "bce" { " nats" } else { "" };
        let kl =
            m.kl.map(|kl| format!(", KL {kl:.3} nats, negative ELBO {:.3} nats", m.total()))
                .unwrap_or_default();
        let iw = iw
            .map(|(k, nll)| format!("; importance-weighted −log p(x) {nll:.3} nats (K={k})"))
            .unwrap_or_default();
        let binarized = if binarize == Binarize::Dynamic {
            " binarised"
        } else {
            ""
        };
        outln!(
            "{} on {} ({} images{binarized}): {} {:.3}{unit}{kl} per example{iw}; PSNR {:.2} dB",
            a.checkpoint.display(),
            dir.display(),
            m.count,
            rec.to_uppercase(),
            m.rec,
            m.psnr
        );
        if let (Some(part), Some(whole)) = (&part, &whole) {
            let (name, of_part, of_whole) = match whole.kl {
                Some(_) => ("negative ELBO".to_string(), m.total(), whole.total()),
                None => (rec.to_uppercase(), m.rec, whole.rec),
            };
            outln!(
                "  these {} of the {whole_count} test images are {part}; the whole set's {name} is {of_whole:.3}{unit} (this part's {of_part:.3}, {:+.3}), PSNR {:.2} dB",
                m.count,
                of_part - of_whole,
                whole.psnr
            );
        }
    }
    Ok(())
}

fn import_cmd(a: ImportArgs) -> Result<()> {
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
    let spec = gpu_ae::import::import(&a.checkpoint, &a.out, &settings)?;
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
        gpu_ae::models::value_name(&spec.norm),
        gpu_ae::models::value_name(&spec.act),
        gpu_ae::models::value_name(&spec.block),
        gpu_ae::models::value_name(&spec.upsample),
        a.checkpoint.display()
    );
    Ok(())
}

fn bench_cmd(a: BenchArgs) -> Result<()> {
    let spec = a.model.spec()?;
    let opts = BenchOptions {
        spec,
        batch: a.batch,
        epochs: a.epochs,
        train_limit: a.train_limit,
        data_dir: a.data.unwrap_or_else(default_data),
        data_options: a.images.options(),
        seed: a.seed,
        precision: a.precision.precision.elem(),
        conditional: a.model.conditional,
    };
    let report = block_on(bench::run(&opts, || a.adapter.open(false)))?;
    outln!(
        "{}",
        serde_json::to_string_pretty(&report).map_err(|e| Error::msg(e.to_string()))?
    );
    Ok(())
}
