//! End-to-end tests of conditional VAEs (`--conditional`) and of binarised training
//! (`--binarize dynamic`) on the tiny MNIST subset of `support`: the checkpoint's shapes and
//! classes, drawing asked classes, the label reaching the decoder, labels streamed with their
//! images, the binarised test set that `eval` reproduces, and the flags' errors.

mod support;

use gpu_ae::platform::block_on;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use gpu_ae::checkpoint;
use gpu_ae::gpu::{AdapterChoice, Gpu};
use gpu_ae::pictures::infer::Inference;
use gpu_ae::run::train::load_model;
use support::*;

/// Features after the conv encoder: 32 × 7 × 7.
const FEAT: usize = 1568;

fn cvae() -> &'static Path {
    static RUN: OnceLock<PathBuf> = OnceLock::new();
    RUN.get_or_init(|| {
        let dir = root().join("cvae");
        train_epochs(&dir, 2, &["--conditional"]);
        dir
    })
}

#[test]
fn a_conditional_vae_records_its_classes_and_pytorch_shapes() {
    let ckpt = checkpoint::load(&model_file(cvae())).unwrap();
    let shape = |name: &str| ckpt.get(name).unwrap().shape.clone();
    // The one-hot label of 10 digits is appended to the features and to z.
    assert_eq!(shape("fc_mu.weight"), vec![16, FEAT + 10]);
    assert_eq!(shape("fc_logvar.weight"), vec![16, FEAT + 10]);
    assert_eq!(shape("dec.0.weight"), vec![FEAT, 16 + 10]);
    let classes: Vec<String> = serde_json::from_str(ckpt.meta("classes").unwrap()).unwrap();
    assert_eq!(classes, (0..10).map(|d| d.to_string()).collect::<Vec<_>>());
    let m = metrics(cvae());
    assert!(num(&m[1], "test_neg_elbo") < num(&m[0], "test_neg_elbo"));
}

#[test]
fn sample_draws_one_row_per_class_or_the_asked_ones() {
    let c = model_file(cvae());
    let c = s(&c);
    let png = |name: &str| root().join(format!("cvae-{name}.png"));
    let grid = ["--padding", "0", "--scale", "1"];
    let all = png("all");
    let out = ok(&[
        &["sample", "--checkpoint", c, "--cols", "6", "--out", s(&all)],
        &grid[..],
    ]
    .concat());
    assert_eq!(picture_size(&all), (6 * 28, 10 * 28), "one row per class");
    assert!(out.contains("classes 0,1,2,3,4,5,6,7,8,9"), "{out}");
    let seven = png("seven");
    ok(&[
        &[
            "sample",
            "--checkpoint",
            c,
            "--label",
            "7",
            "--rows",
            "2",
            "--cols",
            "5",
            "--out",
            s(&seven),
        ],
        &grid[..],
    ]
    .concat());
    assert_eq!(picture_size(&seven), (5 * 28, 2 * 28));
    let two = png("two");
    ok(&[
        &[
            "sample",
            "--checkpoint",
            c,
            "--label",
            "3,1",
            "--cols",
            "4",
            "--out",
            s(&two),
        ],
        &grid[..],
    ]
    .concat());
    assert_eq!(picture_size(&two), (4 * 28, 2 * 28));
    // A 16-D model has no manifold; interpolation draws the line once per class.
    let line = png("line");
    ok(&[
        &[
            "sample",
            "--checkpoint",
            c,
            "--interpolate",
            "0",
            "1",
            "--label",
            "4",
            "--rows",
            "1",
            "--cols",
            "7",
            "--data",
            data_dir(),
            "--out",
            s(&line),
        ],
        &grid[..],
    ]
    .concat());
    assert_eq!(picture_size(&line), (7 * 28, 28));
    let bad = png("bad");
    fails(
        &[
            "sample",
            "--checkpoint",
            c,
            "--label",
            "10",
            "--out",
            s(&bad),
        ],
        &["--label", "\"10\""],
        &[&bad],
    );
    fails(
        &[
            "sample",
            "--checkpoint",
            c,
            "--label",
            "seven",
            "--out",
            s(&bad),
        ],
        &["--label", "0, 1, 2"],
        &[&bad],
    );
    // Other picture commands give the model the test images' classes.
    let rec = png("rec");
    let out = ok(&[
        "reconstruct",
        "--checkpoint",
        c,
        "--data",
        data_dir(),
        "--out",
        s(&rec),
    ]);
    assert!(out.contains("PSNR"), "{out}");
    let csv = root().join("cvae-codes.csv");
    ok(&[
        "encode",
        "--checkpoint",
        c,
        "--data",
        data_dir(),
        "--out",
        s(&csv),
    ]);
}

/// The label reaches the decoder: one code drawn as two classes gives two different images,
/// and the same class twice the same image.
#[test]
fn the_label_changes_what_the_decoder_draws() {
    let gpu = Gpu::new(&AdapterChoice::Best).unwrap();
    let (model, _) = load_model(&gpu, &model_file(cvae())).unwrap();
    let inference = Inference::new(&gpu, model, 4, 0).unwrap();
    let z = gpu_ae::pictures::apply::prior_samples(1, 16, 5).repeat(4);
    let images = block_on(inference.decode(&z, Some(&[2, 8, 2, 8]))).unwrap();
    let pic: Vec<&[f32]> = images.chunks(784).collect();
    assert_eq!(pic[0], pic[2]);
    assert_eq!(pic[1], pic[3]);
    let differ = pic[0]
        .iter()
        .zip(pic[1])
        .filter(|(a, b)| (*a - *b).abs() > 1e-3)
        .count();
    assert!(
        differ > 20,
        "classes 2 and 8 differ in only {differ} pixels"
    );
    assert!(
        block_on(inference.decode(&z, None)).is_err(),
        "a conditional model needs labels"
    );
}

/// A streamed split uploads each chunk's labels in the chunk's order: the run is bit-identical
/// to a resident one.
#[test]
fn labels_stream_with_their_images() {
    let streamed = root().join("cvae-streamed");
    train_env(
        &streamed,
        2,
        &["--conditional"],
        &[("GPU_AE_STREAM_BYTES", "100000")],
    );
    same_run(&streamed, cvae());
}

#[test]
fn conditional_flags_are_checked() {
    let plain = root().join("cvae-plain");
    train(&plain, &["--latent", "2"]);
    let out = root().join("cvae-unused.png");
    fails(
        &[
            "sample",
            "--checkpoint",
            s(&model_file(&plain)),
            "--label",
            "3",
            "--out",
            s(&out),
        ],
        &["--label", "not a conditional model"],
        &[&out],
    );
    let e = fails(
        &[
            "train",
            "--resume",
            s(&plain),
            "--conditional",
            "--epochs",
            "2",
        ],
        &["--conditional"],
        &[],
    );
    assert!(e.contains("keeps its settings"), "{e}");
    let ae = root().join("cvae-ae");
    fails(
        &[
            "train",
            "--model",
            "conv-ae",
            "--conditional",
            "--data",
            data_dir(),
            "--out",
            s(&ae),
        ],
        &["--conditional", "conv-ae"],
        &[&ae],
    );
}

/// `--binarize dynamic` trains on Bernoulli draws of the pixels and evaluates on the test set
/// binarised by a fixed seed: `eval` reproduces the run's figure, and a resume keeps the setting.
#[test]
fn binarised_runs_evaluate_on_a_fixed_binarisation() {
    let run = root().join("binarised");
    train(&run, &["--binarize", "dynamic"]);
    let ckpt = checkpoint::load(&model_file(&run)).unwrap();
    assert_eq!(ckpt.meta("binarize"), Some("dynamic"));
    assert_eq!(ckpt.meta("binarize_test_seed"), Some("0"));
    let want = num(&metrics(&run)[0], "test_neg_elbo");
    let e = json_lines(&ok(&[
        "eval",
        "--checkpoint",
        s(&model_file(&run)),
        "--data",
        data_dir(),
        "--batch",
        "50",
        "--json",
    ]));
    let got = num(&e[0], "test_neg_elbo");
    assert!(
        (got - want).abs() <= 1e-3 * want,
        "eval {got}, training {want}"
    );
    // Not the figure of the grey test images.
    let plain = root().join("binarised-plain");
    train(&plain, &[]);
    assert_ne!(num(&metrics(&plain)[0], "test_neg_elbo"), want);
    let e = fails(
        &[
            "train",
            "--resume",
            s(&run),
            "--binarize",
            "none",
            "--epochs",
            "2",
        ],
        &["--binarize"],
        &[],
    );
    assert!(e.contains("keeps its settings"), "{e}");
}

/// An image folder's subfolders are the classes: `--label` takes their names.
#[test]
fn an_image_folder_trains_a_conditional_vae_on_its_subfolders() {
    let categories = ["flags", "food-drink", "travel-places"];
    let Some(data) = emoji_slice("cvae-emoji", &categories, 10) else {
        return;
    };
    let run = root().join("cvae-emoji-run");
    let cache = scratch("cvae-emoji-cache");
    let train = std::process::Command::new(BIN)
        .args([
            "train",
            "--conditional",
            "--data",
            s(&data),
            "--out",
            s(&run),
            "--size",
            "8",
            "--widths",
            "4,8",
            "--latent",
            "2",
            "--batch",
            "8",
            "--epochs",
            "1",
            "--quiet",
        ])
        .env("GPU_AE_CACHE_DIR", &cache)
        .output()
        .unwrap();
    assert!(train.status.success(), "{}", text(&train.stderr));
    let ckpt = checkpoint::load(&model_file(&run)).unwrap();
    assert_eq!(
        ckpt.meta("classes"),
        Some(r#"["flags","food-drink","travel-places"]"#)
    );
    let pic = root().join("cvae-emoji.png");
    let m = model_file(&run);
    let out = ok(&[
        "sample",
        "--checkpoint",
        s(&m),
        "--label",
        "travel-places,flags",
        "--cols",
        "3",
        "--padding",
        "0",
        "--scale",
        "1",
        "--out",
        s(&pic),
    ]);
    assert!(out.contains("classes travel-places,flags"), "{out}");
    assert_eq!(picture_size(&pic), (3 * 8, 2 * 8));
    fails(
        &[
            "sample",
            "--checkpoint",
            s(&m),
            "--label",
            "animals",
            "--out",
            s(&pic),
        ],
        &["--label", "flags, food-drink, travel-places"],
        &[],
    );
}

/// A 2-D conditional model draws one manifold per class, or for the asked ones.
#[test]
fn manifolds_of_a_2d_conditional_model_are_one_per_class() {
    let run = root().join("cvae2");
    train(&run, &["--conditional", "--latent", "2"]);
    let m = model_file(&run);
    let pic = root().join("cvae2-manifold.png");
    let grid = [
        "--rows",
        "3",
        "--cols",
        "4",
        "--padding",
        "0",
        "--scale",
        "1",
    ];
    let all = [
        &[
            "sample",
            "--checkpoint",
            s(&m),
            "--manifold",
            "--out",
            s(&pic),
        ],
        &grid[..],
    ]
    .concat();
    ok(&all);
    assert_eq!(picture_size(&pic), (4 * 28, 10 * 3 * 28));
    let some = [
        &[
            "sample",
            "--checkpoint",
            s(&m),
            "--manifold",
            "--label",
            "5,0",
            "--out",
            s(&pic),
        ],
        &grid[..],
    ]
    .concat();
    ok(&some);
    assert_eq!(picture_size(&pic), (4 * 28, 2 * 3 * 28));
}
