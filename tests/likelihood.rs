//! The importance-weighted NLL (`gpu-ae eval --iw K`): the GPU estimator against the same
//! computation on the CPU (reference code) for a tiny dense VAE over two batches, its rise
//! toward log p(x) as K grows on a trained model (K = 1, 10, 100 on the same images, K = 1
//! being the one-sample ELBO estimate), and the command line.

mod support;

use gpu_ae::counter_rng::STREAM_EVAL;
use gpu_ae::data::{Binarize, Images, Split};
use gpu_ae::gpu::{AdapterChoice, Gpu};
use gpu_ae::kernels::NoiseKey;
use gpu_ae::model::graph::{Model, ModelValues};
use gpu_ae::model::{Architecture, ImageShape, LossKind, ModelKind, ModelSpec, Task};
use gpu_ae::platform::block_on;
use gpu_ae::reference::{iwae, linear, loss};
use gpu_ae::run::evaluate::Evaluator;
use gpu_ae::run::gpu_split::GpuSplit;
use gpu_ae::run::likelihood::ImportanceWeighted;
use gpu_ae::run::train::load_model;
use gpu_ae::shapes::LinearShape;
use std::path::Path;
use support::*;

fn gpu() -> Gpu {
    Gpu::new(&AdapterChoice::Best).unwrap()
}

/// `x [n, i]` → `[n, o]` through the Linear layer whose parameters are named `w`, `b`.
fn dense(
    values: &[f32],
    arch: &Architecture,
    w: &[&str],
    b: &[&str],
    x: &[f32],
    n: usize,
) -> Vec<f32> {
    let take = |names: &[&str]| -> Vec<f32> {
        names
            .iter()
            .flat_map(|name| {
                let e = arch.params.get(name).unwrap();
                values[e.offset..e.offset + e.len()].to_vec()
            })
            .collect()
    };
    let (w, b) = (take(w), take(b));
    let (o, i) = (b.len(), w.len() / b.len());
    let mut y = vec![0.0; n * o];
    linear::forward(
        &mut y,
        x,
        &w,
        &b,
        LinearShape {
            n,
            in_features: i,
            out_features: o,
        },
    );
    y
}

fn relu(v: Vec<f32>) -> Vec<f32> {
    v.into_iter().map(|x| x.max(0.0)).collect()
}

/// The CPU estimate of −log p(x) for each image of one batch (images `batch_index·B ..`).
#[allow(clippy::too_many_arguments)]
fn cpu_nll(
    arch: &Architecture,
    values: &[f32],
    x: &[f32],
    batch_index: u32,
    full: usize,
    k: usize,
    seed: u32,
) -> Vec<f32> {
    let (n, d, l) = (x.len() / 16, 16, arch.code_len());
    let h = relu(dense(
        values,
        arch,
        &["enc.0.weight"],
        &["enc.0.bias"],
        x,
        n,
    ));
    let head = dense(
        values,
        arch,
        &["fc_mu.weight", "fc_logvar.weight"],
        &["fc_mu.bias", "fc_logvar.bias"],
        &h,
        n,
    );
    let rows = k * n;
    let (mut z, mut log_ratio) = (vec![0.0; rows * l], vec![0.0; rows]);
    let key = NoiseKey::Image { batch_size: full };
    iwae::draw(
        &mut z,
        &mut log_ratio,
        &head,
        &[0, batch_index, 0, 0],
        seed,
        STREAM_EVAL,
        key,
        0,
        k,
        n,
        l,
    );
    let g = relu(dense(
        values,
        arch,
        &["dec.0.weight"],
        &["dec.0.bias"],
        &z,
        rows,
    ));
    let logits = dense(values, arch, &["dec.2.weight"], &["dec.2.bias"], &g, rows);
    let mut target = vec![0.0; rows * d];
    iwae::replicate(&mut target, x, k, n, d);
    let (mut rec, mut dl) = (vec![0.0; rows], vec![0.0; rows * d]);
    loss::bce_with_logits(&mut rec, &mut dl, &logits, &target, rows, d, 1.0);
    let (mut lse, mut nll) = (vec![0.0; 2 * n], vec![0.0; n]);
    iwae::accumulate(&mut lse, &mut nll, &rec, &log_ratio, 0, k, k, n);
    nll
}

/// A dense VAE on 4×4 grey images, 5 images in batches of 3 (a full batch and a tail), K = 7:
/// the GPU's mean estimate is the CPU's.
#[test]
fn the_gpu_estimate_is_the_reference_computation() {
    let gpu = gpu();
    let spec = ModelSpec {
        image: ImageShape {
            channels: 1,
            size: 4,
        },
        ..ModelSpec::mnist(ModelKind::DenseVae, 3, Task::Reconstruct, LossKind::Bce)
    };
    let arch = Architecture::new(spec).unwrap();
    let values = ModelValues::init(&arch, 9);
    let pixels: Vec<u8> = (0..5 * 16).map(|i| ((i * 37 + 11) % 256) as u8).collect();
    let split = Split {
        images: Images {
            count: 5,
            channels: 1,
            rows: 4,
            cols: 4,
            pixels: pixels.clone(),
        },
        labels: vec![0; 5],
    };
    let source = Path::new("tiny");
    let gpu_split = GpuSplit::upload(&gpu, &split, source).unwrap();
    let model = Model::upload(&gpu, arch.clone(), &values).unwrap();
    let (k, seed) = (7, 4);
    let iw = ImportanceWeighted::new(&gpu, &model, &gpu_split, 3, k, seed, Binarize::None).unwrap();
    assert_eq!(iw.batches(), 2);
    let got = block_on(iw.run(&gpu, &mut |_, _| {})).unwrap();
    let x: Vec<f32> = pixels.iter().map(|&p| p as f32 / 255.0).collect();
    let mut want = cpu_nll(&arch, &values.params, &x[..48], 0, 3, k, seed);
    want.extend(cpu_nll(&arch, &values.params, &x[48..], 1, 3, k, seed));
    let want = want.iter().map(|&v| v as f64).sum::<f64>() / 5.0;
    assert!(
        (got - want).abs() <= 1e-4 * want.abs(),
        "GPU {got}, CPU {want}"
    );
}

/// On a trained model the estimate falls (log p(x) rises) as K grows, and K = 1 is the
/// one-sample ELBO estimate at the evaluation's own noise: close to the −ELBO (whose KL is
/// exact), not equal to it.
#[test]
fn more_samples_give_a_tighter_bound() {
    let run = root().join("iw-vae");
    train_epochs(&run, 2, &["--latent", "4"]);
    let gpu = gpu();
    let (model, _) = load_model(&gpu, &model_file(&run)).unwrap();
    let test = gpu_ae::data::load_test(Path::new(data_dir()), &Default::default()).unwrap();
    let split = GpuSplit::upload(&gpu, &test.test.first(64), Path::new(data_dir())).unwrap();
    let elbo = Evaluator::new(&gpu, &model, &split, 64, 0, Binarize::None).unwrap();
    let elbo = block_on(elbo.run(&gpu)).unwrap().total();
    let nll = |k: usize| {
        let iw = ImportanceWeighted::new(&gpu, &model, &split, 64, k, 0, Binarize::None).unwrap();
        block_on(iw.run(&gpu, &mut |_, _| {})).unwrap()
    };
    let (k1, k10, k100) = (nll(1), nll(10), nll(100));
    assert!(k1 > k10 && k10 > k100, "K=1 {k1}, K=10 {k10}, K=100 {k100}");
    assert!(
        (k1 - elbo).abs() < 2.0 && k1 != elbo,
        "K=1 {k1}, −ELBO {elbo}"
    );
    assert!(
        k100 < elbo - 0.5,
        "K=100 {k100} is no tighter than the −ELBO {elbo}"
    );
}

#[test]
fn eval_reports_the_estimate_and_refuses_unsuitable_models() {
    let run = root().join("iw-cli");
    train(&run, &["--latent", "2"]);
    let c = model_file(&run);
    let args = [
        "eval",
        "--checkpoint",
        s(&c),
        "--data",
        data_dir(),
        "--iw",
        "5",
        "--limit",
        "20",
        "--batch",
        "8",
        "--json",
    ];
    let resident = json_lines(&ok(&args));
    assert_eq!(resident[0]["images"].as_u64(), Some(20));
    assert_eq!(resident[0]["iw_samples"].as_u64(), Some(5));
    assert!(num(&resident[0], "test_iw_nll") < num(&resident[0], "test_neg_elbo") + 5.0);
    // A test set streamed in chunks gives the same estimate.
    let streamed = std::process::Command::new(BIN)
        .args(args)
        .env("GPU_AE_STREAM_BYTES", "10000")
        .output()
        .unwrap();
    assert!(streamed.status.success(), "{}", text(&streamed.stderr));
    // Issue 27 item 19: without a terminal, the progress is plain lines on stderr, one per
    // tenth of the batches (of 3 here: after the first and the second), never the bar.
    let stderr = text(&streamed.stderr);
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("importance sampling: "))
        .collect();
    assert_eq!(lines.len(), 2, "{stderr}");
    assert!(
        lines[0].contains("1/3 batches (33%)") && lines[0].contains("s left"),
        "{stderr}"
    );
    assert!(lines[1].contains("2/3 batches (66%)"), "{stderr}");
    let streamed = json_lines(&text(&streamed.stdout));
    let close = |key: &str| {
        (num(&streamed[0], key) - num(&resident[0], key)).abs() <= 1e-4 * num(&resident[0], key)
    };
    assert!(
        close("test_iw_nll") && close("test_neg_elbo"),
        "{streamed:?} vs {resident:?}"
    );
    let plain = ok(&[
        "eval",
        "--checkpoint",
        s(&c),
        "--data",
        data_dir(),
        "--iw",
        "3",
        "--limit",
        "10",
    ]);
    assert!(
        plain.contains("importance-weighted −log p(x)") && plain.contains("K=3"),
        "{plain}"
    );
    let ae = root().join("iw-ae");
    train(&ae, &["--model", "conv-ae"]);
    fails(
        &[
            "eval",
            "--checkpoint",
            s(&model_file(&ae)),
            "--data",
            data_dir(),
            "--iw",
            "5",
        ],
        &["--iw", "conv-ae"],
        &[],
    );
    fails(
        &["eval", "--checkpoint", s(&c), "--iw", "0"],
        &["--iw"],
        &[],
    );
}
