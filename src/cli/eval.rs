//! `gpu-ae eval`: test-set figures of a checkpoint (the reconstruction loss, KL, negative ELBO,
//! PSNR; `--iw K` the importance-weighted −log p(x)), of the whole test set or of a part beside it.

use super::{AdapterArg, flags, model_data};
use clap::Args;
use gpu_ae::bail;
use gpu_ae::console::Progress;
use gpu_ae::data::Binarize;
use gpu_ae::data::classes;
use gpu_ae::error::Result;
use gpu_ae::platform::block_on;
use gpu_ae::run::evaluate::Evaluator;
use gpu_ae::run::gpu_split::GpuSplit;
use gpu_ae::run::likelihood::ImportanceWeighted;
use gpu_ae::run::train;
use gpu_ae::{noteln, outln};
use std::path::PathBuf;

#[derive(Args)]
pub struct EvalArgs {
    /// A model.safetensors written by `gpu-ae train`.
    #[arg(long, value_name = "FILE")]
    pub checkpoint: PathBuf,
    /// The test images: an IDX folder or a folder of images (default: the folder the model was
    /// trained on when it is here, else assets/mnist).
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    #[arg(long, default_value_t = 500, value_parser = flags::count, allow_negative_numbers = true)]
    pub batch: usize,
    /// Seed of the VAE's ε and the denoising noise.
    #[arg(long, default_value_t = 0, value_parser = flags::whole::<u32>, allow_negative_numbers = true)]
    pub seed: u32,
    /// Also estimate the negative log-likelihood −log p(x) with K importance samples per image
    /// (IWAE; e.g. 5000), beside the one-sample ELBO.
    #[arg(long, value_parser = flags::count, allow_negative_numbers = true, value_name = "K")]
    pub iw: Option<usize>,
    /// Evaluate only the first N test images (for slow adapters); the whole set's figures
    /// are printed beside them.
    #[arg(long, value_parser = flags::count, allow_negative_numbers = true, value_name = "N", conflicts_with = "subset")]
    pub limit: Option<usize>,
    /// Evaluate a seeded random N of the test images (an unbiased draw, unlike `--limit`); the
    /// whole set's figures are printed beside them, so the subset's bias shows.
    #[arg(long, value_parser = flags::count, allow_negative_numbers = true, value_name = "N")]
    pub subset: Option<usize>,
    /// Seed of `--subset`'s draw.
    #[arg(long, default_value_t = 0, value_parser = flags::whole::<u64>, allow_negative_numbers = true, requires = "subset")]
    pub subset_seed: u64,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub adapter: AdapterArg,
}

pub fn eval_cmd(a: EvalArgs) -> Result<()> {
    let gpu = a.adapter.open(false)?;
    let (model, ckpt) = train::load_model(&gpu, &a.checkpoint)?;
    let split = gpu_ae::run::settings::read_split(&ckpt, &a.checkpoint)?;
    let dir = model_data(
        a.data.as_deref(),
        gpu_ae::run::settings::read_data_path(&ckpt).as_deref(),
        model.arch.spec.image,
    )?;
    let binarize = gpu_ae::run::settings::read_binarize(&ckpt, &a.checkpoint)?;
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
