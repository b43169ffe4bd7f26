//! `gpu-ae train`: its flags, the settings given on the command line (a resume compares them
//! with the run's own), and the run.

use super::{AdapterArg, DataArgs, ModelArgs, PrecisionArg, default_data, flags};
use clap::Args;
use clap::parser::ValueSource;
use gpu_ae::data::Binarize;
use gpu_ae::error::{Error, Result};
use gpu_ae::noteln;
use gpu_ae::platform::block_on;
use gpu_ae::run::folder::Claim;
use gpu_ae::run::schedule::{LrSchedule, Schedule};
use gpu_ae::run::settings::TrainConfig;
use gpu_ae::run::stop;
use gpu_ae::run::{self, RunOptions, RunOutcome, RunTarget};
use std::path::PathBuf;

#[derive(Args)]
pub struct TrainArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Epochs to train (in total, when resuming).
    #[arg(long, default_value_t = 10, value_parser = flags::count, allow_negative_numbers = true)]
    pub epochs: usize,
    #[arg(long, default_value_t = 128, value_parser = flags::count, allow_negative_numbers = true)]
    pub batch: usize,
    /// Adam learning rate, the peak of a schedule (with --resume: the rate from where the run
    /// continues; a schedule goes on from there scaled to it).
    #[arg(long, default_value_t = 1e-3, value_parser = flags::positive, allow_negative_numbers = true)]
    pub lr: f32,
    /// How the rate moves per step: constant, or cosine from --lr down to 0 over the steps of
    /// --epochs (PyTorch's `lr·(1 + cos(π·t/T))/2`).
    #[arg(long, value_enum, default_value_t = LrSchedule::Constant)]
    pub lr_schedule: LrSchedule,
    /// Raise the rate linearly over the first N steps (`lr·min(1, (t+1)/N)`), with either
    /// schedule.
    #[arg(long, value_name = "N", value_parser = flags::count, allow_negative_numbers = true)]
    pub warmup_steps: Option<usize>,
    #[arg(long, default_value_t = 0, value_parser = flags::whole::<u64>, allow_negative_numbers = true)]
    pub seed: u64,
    /// Weight of the KL divergence in the training loss (β-VAE); evaluation still reports the
    /// negative ELBO.
    #[arg(long, default_value_t = 1.0, value_parser = flags::weight, allow_negative_numbers = true)]
    pub beta: f32,
    /// Train on binarised images: `dynamic` resamples each pixel from Bernoulli(pixel) every
    /// time an image is drawn (binarised MNIST, the likelihood benchmark's data); the test
    /// images are then binarised once by a fixed seed for evaluation.
    #[arg(long, value_enum, default_value_t = Binarize::None)]
    pub binarize: Binarize,
    #[command(flatten)]
    pub precision: PrecisionArg,
    /// An IDX folder (train-images-idx3-ubyte[.gz], …) or a folder of images (png, jpg, bmp,
    /// gif, webp; subfolders are classes); default assets/mnist, or with --resume the run's own.
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    #[command(flatten)]
    pub images: DataArgs,
    /// Run folder (default runs/<model>-<UTC time>); refused if it holds a run.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Continue the run in this folder (model, optimizer state, settings and dataset come from
    /// it; settings flags that differ from the run's are refused, all but --lr).
    #[arg(long, value_name = "RUN_DIR", conflicts_with = "out")]
    pub resume: Option<PathBuf>,
    /// Fine-tune: start a new run from the parameters of this checkpoint (a model.safetensors
    /// of gpu-ae train, or one `gpu-ae import` wrote), with fresh Adam state at step 0. The
    /// model (--model, --widths, --latent, --norm, --act, --leaky-slope, --block, --upsample,
    /// --conditional, the image shape) is the checkpoint's, and flags that contradict it are refused; the
    /// training settings, --task and --loss included, are this run's.
    #[arg(long, value_name = "FILE", conflicts_with = "resume")]
    pub init: Option<PathBuf>,
    /// Replace the run that --out already holds (without it such a folder is refused).
    #[arg(long, requires = "out", conflicts_with = "resume")]
    pub overwrite: bool,
    /// With --resume: continue on a dataset whose images differ from the recorded one.
    #[arg(long, requires = "resume")]
    pub allow_data_change: bool,
    /// Inside a long epoch, write a checkpoint after this many minutes of training (a kill or
    /// power cut then loses at most that much; Ctrl-C keeps every step).
    #[arg(long, default_value_t = 10.0, value_parser = flags::positive, allow_negative_numbers = true)]
    pub checkpoint_minutes: f32,
    /// Batch size of the test-set evaluation after each epoch.
    #[arg(long, default_value_t = 500, value_parser = flags::count, allow_negative_numbers = true)]
    pub eval_batch: usize,
    /// No progress bar or per-epoch lines.
    #[arg(long)]
    pub quiet: bool,
    #[command(flatten)]
    pub adapter: AdapterArg,
}

/// The flags of `train` given on the command line (clap's ids, not those left at their
/// defaults): a resume compares the settings among them with the run's record, whose keys are
/// these ids ([`gpu_ae::run::settings::differing_setting`]).
pub fn explicit_settings(m: &clap::ArgMatches) -> Vec<String> {
    m.ids()
        .filter(|id| m.value_source(id.as_str()) == Some(ValueSource::CommandLine))
        .map(|id| id.to_string())
        .collect()
}

pub fn train_cmd(a: TrainArgs, explicit: Vec<String>) -> Result<i32> {
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
    match block_on(run::run(|| a.adapter.open(a.quiet), cfg, &opts))? {
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
pub fn utc_stamp(secs: u64) -> String {
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
