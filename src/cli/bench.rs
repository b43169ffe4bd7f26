//! `gpu-ae bench`: epoch timings, start-up, dispatches and FLOPs per step, as JSON.

use super::{AdapterArg, DataArgs, ModelArgs, PrecisionArg, default_data, flags};
use clap::Args;
use gpu_ae::error::{Error, Result};
use gpu_ae::outln;
use gpu_ae::platform::block_on;
use gpu_ae::run::bench::{self, BenchOptions};
use std::path::PathBuf;

#[derive(Args)]
pub struct BenchArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[arg(long, default_value_t = 128, value_parser = flags::count, allow_negative_numbers = true)]
    pub batch: usize,
    /// Epochs to time (the first includes start-up; the rest give the steady figure).
    #[arg(long, default_value_t = 3, value_parser = flags::count, allow_negative_numbers = true)]
    pub epochs: usize,
    /// Use only the first N training images (default: all), for slow adapters.
    #[arg(long, value_parser = flags::count, allow_negative_numbers = true, value_name = "N")]
    pub train_limit: Option<usize>,
    #[command(flatten)]
    pub precision: PrecisionArg,
    /// An IDX folder or a folder of images (default assets/mnist).
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    #[command(flatten)]
    pub images: DataArgs,
    #[arg(long, default_value_t = 0, value_parser = flags::whole::<u64>, allow_negative_numbers = true)]
    pub seed: u64,
    #[command(flatten)]
    pub adapter: AdapterArg,
}

pub fn bench_cmd(a: BenchArgs) -> Result<()> {
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
