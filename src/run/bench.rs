//! `gpu-ae bench`: times the start-up (phase by phase) and whole training epochs, and reports
//! images/s, dispatches per step, the storage bytes they bind (an upper bound on memory
//! traffic), the model's FLOPs per step and, where the adapter has timestamp queries, the GPU
//! time of each kernel within a step.

use crate::data::classes;
use crate::data::{self, Split};
use crate::error::Result;
use crate::gpu::{Elem, Gpu};
use crate::kernels;
use crate::model::ModelSpec;
use crate::platform::{self, Instant};
use crate::run::gpu_split::GpuSplit;
use crate::run::settings::TrainConfig;
use crate::run::train::Trainer;
use std::path::PathBuf;

#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub spec: ModelSpec,
    pub batch: usize,
    pub epochs: usize,
    /// Only the first N training images (all when None).
    pub train_limit: Option<usize>,
    pub data_dir: PathBuf,
    /// How an image folder becomes a dataset.
    pub data_options: data::DataOptions,
    pub seed: u64,
    /// Storage of activations and their gradients.
    pub precision: Elem,
    /// A conditional VAE on the classes of the data.
    pub conditional: bool,
}

fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

/// Wall times of the start-up phases, in seconds. The dataset is read on a second thread while
/// the main thread opens the adapter and compiles the pipelines, so `data_s` (measured on that
/// thread) overlaps `adapter_s` and `pipelines_s`; `data_wait_s` is how long the main thread
/// then still waited for it. The main thread's phases add up to `startup_s`.
#[derive(Debug, Clone, Copy, Default)]
struct Startup {
    /// Instance, adapter and device (the `open` callback) ...
    adapter_s: f64,
    /// ... of which finding the adapters (starting the drivers) and opening the device.
    adapters_s: f64,
    device_s: f64,
    /// Read, gunzip and parse the dataset (on the loader thread).
    data_s: f64,
    /// Shader modules and every pipeline, built in parallel by [`Gpu::prepare`].
    pipelines_s: f64,
    data_wait_s: f64,
    /// Training images onto the GPU, copy finished.
    upload_s: f64,
    /// The rest of `Trainer::new`: parameters, activations, bind groups, step plans.
    plans_s: f64,
}

impl Startup {
    fn to_json(self) -> serde_json::Value {
        serde_json::json!({
            "adapter_s": round(self.adapter_s, 4),
            "adapter_enumerate_s": round(self.adapters_s, 4),
            "device_open_s": round(self.device_s, 4),
            "data_s": round(self.data_s, 4),
            "pipelines_s": round(self.pipelines_s, 4),
            "data_wait_s": round(self.data_wait_s, 4),
            "upload_s": round(self.upload_s, 4),
            "plans_s": round(self.plans_s, 4),
        })
    }
}

/// Submits the queued buffer writes and waits for them.
async fn flush(gpu: &Gpu) -> Result<()> {
    gpu.queue.submit([]);
    gpu.idle().await
}

/// Runs the benchmark; `open` opens the adapter (timed as part of start-up).
pub async fn run(
    opts: &BenchOptions,
    open: impl FnOnce() -> Result<Gpu>,
) -> Result<serde_json::Value> {
    let t0 = Instant::now();
    let mut times = Startup::default();
    let lap = |since: &mut Instant| {
        let now = Instant::now();
        let s = (now - *since).as_secs_f64();
        *since = now;
        s
    };
    let ((train, data_s), gpu) = platform::join(
        || {
            let t = Instant::now();
            let train = data::load(&opts.data_dir, &opts.data_options).and_then(|d| {
                let train = match opts.train_limit {
                    Some(limit) => d.train.first(limit),
                    None => d.train,
                };
                let classes = if opts.conditional {
                    classes::names(&d.classes, &[&train], &opts.data_dir)?
                } else {
                    Vec::new()
                };
                Ok((train, classes))
            });
            (train, t.elapsed().as_secs_f64())
        },
        || -> Result<(Gpu, Instant)> {
            let mut t = t0;
            let gpu = open()?;
            times.adapter_s = lap(&mut t);
            times.adapters_s = gpu.open_times.adapters_s;
            times.device_s = gpu.open_times.device_s;
            gpu.prepare(kernels::ENTRY_POINTS);
            times.pipelines_s = lap(&mut t);
            Ok((gpu, t))
        },
    );
    let (gpu, mut t) = gpu?;
    times.data_s = data_s;
    times.data_wait_s = lap(&mut t);
    let (train, classes): (Split, Vec<String>) = train?;
    let mut t = Instant::now();
    let split = GpuSplit::upload(&gpu, &train, &opts.data_dir)?;
    flush(&gpu).await?;
    times.upload_s = lap(&mut t);
    let cfg = TrainConfig {
        // The images' shape comes from the data.
        spec: ModelSpec {
            image: split.shape,
            classes,
            ..opts.spec.clone()
        },
        batch: opts.batch,
        lr: 1e-3,
        schedule: Default::default(),
        seed: opts.seed,
        precision: opts.precision,
        beta: 1.0,
        binarize: data::Binarize::None,
        init: None,
    };
    let mut trainer = Trainer::new(&gpu, cfg, split, None, None, 0)?;
    flush(&gpu).await?;
    times.plans_s = lap(&mut t);
    let startup_s = t0.elapsed().as_secs_f64();

    let mut epoch_s = Vec::new();
    let mut last_loss = 0.0;
    for e in 0..opts.epochs {
        let t = Instant::now();
        let end = trainer.run_epoch(e, 0, &|_| false, &mut |_| {}).await?;
        let p = end.progress();
        epoch_s.push(t.elapsed().as_secs_f64());
        last_loss = p.mean_loss();
    }
    let images = trainer.images_per_epoch();
    let steady: Vec<f64> = epoch_s.iter().skip(1).copied().collect();
    let steady_s = if steady.is_empty() {
        epoch_s[0]
    } else {
        steady.iter().sum::<f64>() / steady.len() as f64
    };
    let arch = &trainer.model.arch;
    // Forward 2 FLOPs per multiply-accumulate, backward twice the forward.
    let flops_per_image = 6.0 * arch.forward_macs() as f64;
    let batch = trainer.batch();
    let plan = trainer.step_plan();
    let (epoch_dispatches, epoch_bytes) = trainer.epoch_totals();
    let mut report = serde_json::json!({
        "adapter": gpu.info.name,
        "backend": format!("{:?}", gpu.info.backend),
        "device_type": format!("{:?}", gpu.info.device_type),
        "driver": format!("{} {}", gpu.info.driver, gpu.info.driver_info),
        "model": opts.spec.kind.name(),
        "latent": opts.spec.latent,
        "task": opts.spec.task.name(),
        "image": [arch.spec.image.channels, arch.spec.image.size, arch.spec.image.size],
        "batch": batch,
        "precision": opts.precision.wgsl(),
        "epochs": opts.epochs,
        "images_per_epoch": images,
        "steps_per_epoch": trainer.steps_per_epoch(),
        "parameters": arch.params.total,
        "startup_s": round(startup_s, 4),
        "startup": times.to_json(),
        "epoch_s": epoch_s.iter().map(|s| round(*s, 4)).collect::<Vec<_>>(),
        "first_epoch_s_with_startup": round(startup_s + epoch_s[0], 4),
        "steady_epoch_s": round(steady_s, 4),
        "images_per_s": round(images as f64 / steady_s, 1),
        "dispatches_per_step": plan.len(),
        "dispatches_per_epoch": epoch_dispatches,
        "bound_bytes_per_step": plan.bound_bytes(),
        "bound_bytes_per_epoch": epoch_bytes,
        "model_flops_per_step": flops_per_image * batch as f64,
        "model_flops_per_epoch": flops_per_image * images as f64,
        "model_gflops_per_s": round(flops_per_image * images as f64 / steady_s / 1e9, 3),
        "final_train_loss": round(last_loss, 4),
    });
    if gpu.has_timestamps() {
        let repeats = 5;
        let profile = plan.profile(&gpu, repeats).await?;
        let total: f64 = profile.kernels.iter().map(|k| k.1).sum();
        report["gpu_ms_per_step"] = round(total / repeats as f64 / 1e6, 4).into();
        report["kernels"] = profile
            .kernels
            .iter()
            .map(|(name, ns, count)| {
                serde_json::json!({
                    "kernel": name,
                    "dispatches_per_step": count / repeats,
                    "gpu_ms_per_step": round(ns / repeats as f64 / 1e6, 4),
                    "share": round(ns / total.max(1.0), 4),
                })
            })
            .collect::<Vec<_>>()
            .into();
        report["dispatches"] = profile
            .dispatches
            .iter()
            .map(|(name, workgroups, ns)| {
                serde_json::json!({
                    "kernel": name,
                    "workgroups": workgroups,
                    "gpu_us": round(ns / repeats as f64 / 1e3, 2),
                })
            })
            .collect::<Vec<_>>()
            .into();
    } else {
        report["kernels"] =
            serde_json::Value::String("timestamp queries not supported by this adapter".into());
    }
    Ok(report)
}
