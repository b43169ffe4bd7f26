//! The `gpu-ae` command line: each subcommand parses its flags and calls into the library.
//! Errors are printed as one line and exit with status 1 (usage errors: 2; a training stopped by
//! Ctrl-C: 130). Output never panics on a closed pipe ([`gpu_ae::console`]).

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use gpu_ae::error::Result;
use gpu_ae::noteln;

mod cli;

use cli::{
    bench::BenchArgs,
    eval::EvalArgs,
    import::ImportArgs,
    pictures::{EncodeArgs, PictureArgs, SampleArgs, UpscaleArgs},
    train::TrainArgs,
};

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

fn main() {
    let matches = Cli::command()
        .try_get_matches()
        .unwrap_or_else(|e| usage_exit(e));
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| usage_exit(e));
    let explicit = matches
        .subcommand_matches("train")
        .map(cli::train::explicit_settings)
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

/// Runs a command; `Ok` holds the exit status.
fn run(cli: Cli, explicit: Vec<String>) -> Result<i32> {
    match cli.command {
        Command::Devices { json } => cli::devices::devices(json),
        Command::Train(a) => return cli::train::train_cmd(a, explicit),
        Command::Eval(a) => cli::eval::eval_cmd(a),
        Command::Bench(a) => cli::bench::bench_cmd(a),
        Command::Sample(a) => cli::pictures::sample(a),
        Command::Reconstruct(a) => cli::pictures::reconstruct(a),
        Command::Encode(a) => cli::pictures::encode(a),
        Command::Denoise(a) => cli::pictures::denoise(a),
        Command::Upscale(a) => cli::pictures::upscale(a),
        Command::Import(a) => cli::import::import_cmd(a),
    }
    .map(|()| 0)
}
