//! End-to-end tests of the `gpu-ae` binary, run as a user would: every subcommand on a tiny
//! MNIST subset (see `support`), and for bad input a non-zero exit with exactly one `error: ` line
//! naming the file or flag, no panic and no output left behind. Trained runs are shared between
//! tests through `OnceLock`s. The faults of issue 11 (run folders, kills, pipes) are in
//! `tests/faults.rs`.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use gpu_ae::checkpoint::{self, Checkpoint};
use gpu_ae::gpu::{AdapterChoice, Gpu};
use support::*;

/// Features after the conv encoder: 32 × 7 × 7.
const FEAT: usize = 1568;

fn vae2() -> &'static Path {
    static RUN: OnceLock<PathBuf> = OnceLock::new();
    RUN.get_or_init(|| {
        let dir = root().join("vae2");
        train(&dir, &["--model", "conv-vae", "--latent", "2"]);
        dir
    })
}

fn denoise16() -> &'static Path {
    static RUN: OnceLock<PathBuf> = OnceLock::new();
    RUN.get_or_init(|| {
        let dir = root().join("denoise16");
        train(&dir, &["--model", "conv-vae", "--task", "denoise"]);
        dir
    })
}

fn superres_ae() -> &'static Path {
    static RUN: OnceLock<PathBuf> = OnceLock::new();
    RUN.get_or_init(|| {
        let dir = root().join("superres");
        train(&dir, &["--model", "conv-ae", "--task", "superres"]);
        dir
    })
}

fn png_size(path: &Path) -> (usize, usize) {
    let (pixels, h, w) = read_picture(path);
    assert!(
        pixels.iter().any(|&v| v != pixels[0]),
        "{} is one flat colour",
        path.display()
    );
    (w, h)
}

fn db_figures(out: &str) -> Vec<f64> {
    let words: Vec<&str> = out.split_whitespace().collect();
    words
        .windows(2)
        .filter(|w| w[1].trim_end_matches([',', '.']) == "dB")
        .map(|w| w[0].parse::<f64>().unwrap_or_else(|_| panic!("{out}")))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Commands that work.

#[test]
fn devices_lists_adapters() {
    let plain = ok(&["devices"]);
    assert!(plain.lines().any(|l| l.starts_with("[0] ")), "{plain}");
    let json = json_lines(&ok(&["devices", "--json"]));
    assert!(!json.is_empty());
    for (i, a) in json.iter().enumerate() {
        assert_eq!(a["index"].as_u64(), Some(i as u64), "{a}");
        assert!(a["name"].as_str().is_some_and(|n| !n.is_empty()), "{a}");
        assert!(a["backend"].as_str().is_some_and(|b| !b.is_empty()), "{a}");
    }
}

#[test]
fn train_writes_a_pytorch_shaped_run_folder() {
    let run = vae2();
    let mut names: Vec<String> = std::fs::read_dir(run)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "loss.png",
            "metrics.jsonl",
            "model.safetensors",
            "optimizer.safetensors",
            "run.json"
        ]
    );

    let metrics = metrics(run);
    assert_eq!(metrics.len(), 1);
    assert_eq!(metrics[0]["epoch"].as_u64(), Some(1));
    for key in ["train_loss", "test_bce", "test_kl", "test_neg_elbo"] {
        assert!(num(&metrics[0], key).is_finite(), "{key}");
    }
    let loss_png = read_picture(&run.join("loss.png"));
    assert!(loss_png.1 > 50 && loss_png.2 > 50);

    let ckpt = checkpoint::load(&model_file(run)).unwrap();
    let mut got: Vec<(&str, &[usize])> = ckpt
        .tensors
        .iter()
        .map(|t| (t.name.as_str(), t.shape.as_slice()))
        .collect();
    got.sort();
    let mut want: Vec<(&str, &[usize])> = vec![
        ("enc.0.weight", &[16, 1, 3, 3]),
        ("enc.0.bias", &[16]),
        ("enc.2.weight", &[32, 16, 3, 3]),
        ("enc.2.bias", &[32]),
        ("fc_mu.weight", &[2, FEAT]),
        ("fc_mu.bias", &[2]),
        ("fc_logvar.weight", &[2, FEAT]),
        ("fc_logvar.bias", &[2]),
        ("dec.0.weight", &[FEAT, 2]),
        ("dec.0.bias", &[FEAT]),
        ("dec.3.weight", &[32, 16, 3, 3]),
        ("dec.3.bias", &[16]),
        ("dec.5.weight", &[16, 1, 3, 3]),
        ("dec.5.bias", &[1]),
    ];
    want.sort();
    assert_eq!(got, want);
    assert_eq!(ckpt.meta("model"), Some("conv-vae"));
    assert_eq!(ckpt.meta("latent"), Some("2"));
    assert_eq!(ckpt.meta("task"), Some("reconstruct"));
    assert_eq!(ckpt.meta("epoch"), Some("1"));

    let params: usize = ckpt.tensors.iter().map(|t| t.data.len()).sum();
    let opt = checkpoint::load(&run.join("optimizer.safetensors")).unwrap();
    for name in ["adam.m", "adam.v"] {
        assert_eq!(opt.get(name).map(|t| t.data.len()), Some(params), "{name}");
    }
}

/// The checkpoints of two runs, after checking that their parameters are bit for bit the same.
#[test]
fn resume_is_bit_identical_to_an_uninterrupted_run() {
    let resumed = copy_dir(vae2(), "resumed");
    resume(&resumed, 2);
    let straight = root().join("straight");
    let _ = std::fs::remove_dir_all(&straight);
    train_epochs(&straight, 2, &["--model", "conv-vae", "--latent", "2"]);
    let (a, b) = same_parameters(&resumed, &straight);
    assert_eq!(a.meta("epoch"), Some("2"));
    assert_eq!(a.meta("steps"), b.meta("steps"));
    let metrics = metrics(&resumed);
    let epochs: Vec<Option<u64>> = metrics.iter().map(|m| m["epoch"].as_u64()).collect();
    assert_eq!(epochs, [Some(1), Some(2)]);
}

/// `--precision f16` trains where the adapter has SHADER_F16 and is recorded in the run, so a
/// resumed run keeps it and ends bit for bit where an uninterrupted f16 run does; elsewhere
/// (GL) it is a one-line error before any run folder exists.
/// An unknown precision is refused before anything starts.
#[test]
fn precision_f16_trains_resumes_or_is_refused() {
    let bad = root().join("precision-f8");
    fails(
        &["train", "--precision", "f8", "--out", s(&bad)],
        &["--precision", "f8"],
        &[&bad],
    );
    let run = root().join("precision-f16");
    let _ = std::fs::remove_dir_all(&run);
    let has_f16 = Gpu::new(&AdapterChoice::Best).unwrap().has_f16();
    if !has_f16 {
        let args = [
            "train",
            "--data",
            data_dir(),
            "--out",
            s(&run),
            "--precision",
            "f16",
        ];
        fails(&args, &["--precision f16", "SHADER_F16"], &[&run]);
        return;
    }
    let vae2_f16 = ["--model", "conv-vae", "--latent", "2", "--precision", "f16"];
    train(&run, &vae2_f16);
    let first = checkpoint::load(&model_file(&run)).unwrap();
    assert_eq!(first.meta("precision"), Some("f16"));
    resume(&run, 2);
    let straight = root().join("precision-f16-straight");
    let _ = std::fs::remove_dir_all(&straight);
    train_epochs(&straight, 2, &vae2_f16);
    let (resumed, _) = same_parameters(&run, &straight);
    assert_eq!(resumed.meta("precision"), Some("f16"));
    assert_eq!(resumed.meta("epoch"), Some("2"));
    let metrics = metrics(&run);
    let elbo: Vec<f64> = metrics.iter().map(|m| num(m, "test_neg_elbo")).collect();
    assert!(elbo.len() == 2 && elbo[1] < elbo[0], "{elbo:?}");
}

#[test]
fn eval_reproduces_the_training_metrics() {
    let run = vae2();
    let out = ok(&[
        "eval",
        "--checkpoint",
        s(&model_file(run)),
        "--data",
        data_dir(),
        "--batch",
        "64",
        "--json",
    ]);
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 1, "{out}");
    let e = &lines[0];
    assert_eq!(e["images"].as_u64(), Some(TEST_COUNT as u64));
    assert_eq!(e["model"].as_str(), Some("conv-vae"));
    let metrics = metrics(run);
    let want = num(metrics.last().unwrap(), "test_neg_elbo");
    let got = num(e, "test_neg_elbo");
    assert!(
        (got - want).abs() <= 1e-3 * want.abs(),
        "eval {got}, training {want}"
    );
    // The plain form is one line naming the figures.
    let plain = ok(&[
        "eval",
        "--checkpoint",
        s(&model_file(run)),
        "--data",
        data_dir(),
    ]);
    assert!(plain.contains("negative ELBO"), "{plain}");
}

/// `--limit N` (the first N) and `--subset N` (a seeded random N) print the whole test set's
/// figures beside the part's, so that a part's figure is never read as the set's.
#[test]
fn eval_of_part_of_the_test_set_shows_the_whole_set_beside_it() {
    let model = model_file(vae2());
    let eval = |extra: &[&str]| {
        let mut args = vec![
            "eval",
            "--checkpoint",
            s(&model),
            "--data",
            data_dir(),
            "--json",
        ];
        args.extend_from_slice(extra);
        json_lines(&ok(&args)).remove(0)
    };
    let all = eval(&[]);
    assert!(all.get("whole_set").is_none(), "{all}");
    let first = eval(&["--limit", "20"]);
    let a = eval(&["--subset", "20"]);
    let b = eval(&["--subset", "20", "--subset-seed", "7"]);
    for part in [&first, &a, &b] {
        assert_eq!(part["images"].as_u64(), Some(20), "{part}");
        assert_eq!(
            part["whole_set"]["images"].as_u64(),
            Some(TEST_COUNT as u64),
            "{part}"
        );
        assert_eq!(
            num(&part["whole_set"], "test_neg_elbo"),
            num(&all, "test_neg_elbo"),
            "{part}"
        );
    }
    assert_eq!(first["part"].as_str(), Some("the first ones"));
    assert_eq!(a["part"].as_str(), Some("a random subset, seed 0"));
    assert_ne!(
        num(&a, "test_neg_elbo"),
        num(&b, "test_neg_elbo"),
        "seeds draw other images"
    );
    assert_eq!(
        num(&a, "test_neg_elbo"),
        num(&eval(&["--subset", "20"]), "test_neg_elbo")
    );
    let plain = ok(&[
        "eval",
        "--checkpoint",
        s(&model),
        "--data",
        data_dir(),
        "--subset",
        "20",
    ]);
    assert!(
        plain.contains("a random subset, seed 0; the whole set's negative ELBO"),
        "{plain}"
    );
    fails(
        &[
            "eval",
            "--checkpoint",
            s(&model),
            "--limit",
            "5",
            "--subset",
            "5",
        ],
        &["--limit", "--subset"],
        &[],
    );
    fails(
        &["eval", "--checkpoint", s(&model), "--subset-seed", "5"],
        &["--subset"],
        &[],
    );
}

/// The VAE's ε and the denoising noise are drawn per test image, not per place in a batch: every
/// eval batch size (one image at a time, a batch that leaves a tail, the whole split) gives the
/// same −ELBO up to float summation order. Checked on a plain VAE and on one trained to denoise.
#[test]
fn eval_does_not_depend_on_the_batch_size() {
    for run in [vae2(), denoise16()] {
        let elbo = |batch: &str| {
            let out = ok(&[
                "eval",
                "--checkpoint",
                s(&model_file(run)),
                "--data",
                data_dir(),
                "--batch",
                batch,
                "--json",
            ]);
            let lines = json_lines(&out);
            assert_eq!(lines.len(), 1, "{out}");
            num(&lines[0], "test_neg_elbo")
        };
        let whole = elbo(&TEST_COUNT.to_string());
        for batch in ["1", "7"] {
            let got = elbo(batch);
            assert!(
                (got - whole).abs() <= 1e-4 * whole.abs(),
                "{}: −ELBO {got} at --batch {batch}, {whole} at --batch {TEST_COUNT}",
                run.display()
            );
        }
    }
}

#[test]
fn sample_grids_have_the_documented_sizes() {
    let ckpt = model_file(vae2());
    let dir = scratch("sample");
    let png = |name: &str| dir.join(name);
    let c = s(&ckpt);

    let exact = png("exact.png");
    #[rustfmt::skip]
    ok(&["sample", "--checkpoint", c, "--rows", "3", "--cols", "5", "--padding", "0", "--scale", "1", "--out", s(&exact)]);
    assert_eq!(png_size(&exact), (140, 84));

    let framed = png("framed.png");
    #[rustfmt::skip]
    ok(&["sample", "--checkpoint", c, "--rows", "3", "--cols", "5", "--out", s(&framed)]);
    assert_eq!(png_size(&framed), (5 * 56 + 6 * 2, 3 * 56 + 4 * 2));

    let manifold = png("manifold.png");
    #[rustfmt::skip]
    ok(&["sample", "--checkpoint", c, "--manifold", "--rows", "4", "--cols", "6", "--padding", "0", "--scale", "1", "--out", s(&manifold)]);
    assert_eq!(png_size(&manifold), (6 * 28, 4 * 28));

    let line = png("line.png");
    #[rustfmt::skip]
    ok(&["sample", "--checkpoint", c, "--interpolate", "0", "1", "--data", data_dir(), "--rows", "1", "--cols", "7", "--padding", "0", "--scale", "1", "--out", s(&line)]);
    assert_eq!(png_size(&line), (7 * 28, 28));
}

#[test]
fn sample_works_out_of_the_box_with_the_shipped_checkpoints() {
    // Run from a folder without assets/: the shipped checkpoints are found in the source tree.
    let dir = scratch("shipped");
    let grid = dir.join("grid.png");
    #[rustfmt::skip]
    let out = ok(&["sample", "--rows", "2", "--cols", "3", "--padding", "0", "--scale", "1", "--out", s(&grid)]);
    assert!(out.contains("conv-vae-L16.safetensors"), "{out}");
    assert_eq!(png_size(&grid), (84, 56));
    let manifold = dir.join("manifold.png");
    #[rustfmt::skip]
    let out = ok(&["sample", "--manifold", "--rows", "4", "--cols", "4", "--padding", "0", "--scale", "1", "--out", s(&manifold)]);
    assert!(out.contains("conv-vae-L2.safetensors"), "{out}");
    assert_eq!(png_size(&manifold), (112, 112));
    // --label draws the asked digits from the shipped conditional model.
    let digits = dir.join("digits.png");
    #[rustfmt::skip]
    let out = ok(&["sample", "--label", "7,1", "--cols", "5", "--padding", "0", "--scale", "1", "--out", s(&digits)]);
    assert!(
        out.contains("conv-cvae-L2.safetensors") && out.contains("classes 7,1"),
        "{out}"
    );
    assert_eq!(png_size(&digits), (140, 56));
    // The shipped colour model draws 32×32 RGB emoji.
    let emoji =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/models/emoji-vae-32.safetensors");
    let colour = dir.join("emoji.png");
    #[rustfmt::skip]
    ok(&["sample", "--checkpoint", s(&emoji), "--rows", "2", "--cols", "3", "--padding", "0", "--scale", "1", "--out", s(&colour)]);
    let img = image::open(&colour).unwrap();
    assert_eq!((img.width(), img.height()), (96, 64));
    assert!(matches!(img, image::DynamicImage::ImageRgb8(_)));
}

#[test]
fn reconstruct_and_encode_the_test_set() {
    let ckpt = model_file(vae2());
    let dir = scratch("encode");
    let picture = dir.join("rec.png");
    #[rustfmt::skip]
    let out = ok(&["reconstruct", "--checkpoint", s(&ckpt), "--data", data_dir(), "--count", "6", "--scale", "1", "--padding", "0", "--out", s(&picture)]);
    assert_eq!(png_size(&picture), (6 * 28, 2 * 28));
    assert_eq!(db_figures(&out).len(), 1, "{out}");

    let csv = dir.join("z.csv");
    ok(&[
        "encode",
        "--checkpoint",
        s(&ckpt),
        "--data",
        data_dir(),
        "--out",
        s(&csv),
    ]);
    let text = std::fs::read_to_string(&csv).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("index,label,z0,z1"));
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), TEST_COUNT);
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(row.len(), 4, "{row:?}");
        assert_eq!(row[0], i.to_string());
        assert_eq!(row[1], fixture().test_labels[i].to_string(), "row {i}");
        for z in &row[2..] {
            assert!(z.parse::<f32>().is_ok_and(f32::is_finite), "row {i}: {z}");
        }
    }
    let scatter = read_picture(&dir.join("z.png"));
    assert!(scatter.1 > 100 && scatter.2 > 100);
}

#[test]
fn denoise_trains_and_reports_two_psnr_figures() {
    let ckpt = model_file(denoise16());
    let picture = scratch("denoise").join("d.png");
    #[rustfmt::skip]
    let out = ok(&["denoise", "--checkpoint", s(&ckpt), "--data", data_dir(), "--count", "4", "--out", s(&picture)]);
    let db = db_figures(&out);
    assert_eq!(db.len(), 2, "{out}");
    assert!(db.iter().all(|v| v.is_finite() && *v > 0.0), "{out}");
    assert_eq!(png_size(&picture), (4 * 56 + 5 * 2, 3 * 56 + 4 * 2));
}

#[test]
fn upscale_reports_three_psnr_figures_and_upscales_a_png() {
    let ckpt = model_file(superres_ae());
    let dir = scratch("upscale");
    let picture = dir.join("u.png");
    #[rustfmt::skip]
    let out = ok(&["upscale", "--checkpoint", s(&ckpt), "--data", data_dir(), "--count", "3", "--out", s(&picture)]);
    let db = db_figures(&out);
    assert_eq!(db.len(), 3, "{out}");
    assert!(db.iter().all(|v| v.is_finite() && *v > 0.0), "{out}");
    assert_eq!(png_size(&picture), (3 * 56 + 4 * 2, 4 * 56 + 5 * 2));

    let small = dir.join("small.png");
    let img = image::GrayImage::from_fn(14, 14, |x, y| {
        image::Luma([if (4..10).contains(&x) && (2..12).contains(&y) {
            255
        } else {
            0
        }])
    });
    img.save(&small).unwrap();
    let big = dir.join("big.png");
    #[rustfmt::skip]
    ok(&["upscale", "--checkpoint", s(&ckpt), "--input", s(&small), "--scale", "1", "--out", s(&big)]);
    assert_eq!(png_size(&big), (28, 28));
    // Issue 27 item 19: any format training reads, decoded as training does: the same picture
    // as BMP, GIF or lossless WebP upscales to the same pixels, and a colour one with alpha
    // (composited over white) to the grey picture of its luma.
    let png = std::fs::read(&big).unwrap();
    let mut inputs: Vec<PathBuf> = ["bmp", "gif", "webp"]
        .iter()
        .map(|ext| {
            let path = dir.join(format!("small.{ext}"));
            image::DynamicImage::ImageLuma8(img.clone())
                .to_rgba8()
                .save(&path)
                .unwrap();
            path
        })
        .collect();
    let rgba = dir.join("small-alpha.png");
    // Transparent where the picture is white: white again over white.
    image::RgbaImage::from_fn(14, 14, |x, y| match img.get_pixel(x, y).0[0] {
        255 => image::Rgba([10, 200, 30, 0]),
        _ => image::Rgba([0, 0, 0, 255]),
    })
    .save(&rgba)
    .unwrap();
    inputs.push(rgba);
    for input in inputs {
        let out = dir.join("big-other.png");
        #[rustfmt::skip]
        ok(&["upscale", "--checkpoint", s(&ckpt), "--input", s(&input), "--scale", "1", "--out", s(&out)]);
        assert!(std::fs::read(&out).unwrap() == png, "{}", input.display());
    }
}

#[test]
fn bench_prints_timings_as_json() {
    #[rustfmt::skip]
    let out = ok(&["bench", "--data", data_dir(), "--train-limit", "160", "--epochs", "2", "--batch", "64"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert!(num(&v, "steady_epoch_s") > 0.0, "{v}");
    assert!(num(&v, "images_per_s") > 0.0, "{v}");
    assert!(
        v["dispatches_per_step"].as_u64().is_some_and(|d| d > 10),
        "{v}"
    );
    assert_eq!(v["images_per_epoch"].as_u64(), Some(160));
    assert_eq!(v["steps_per_epoch"].as_u64(), Some(3));
    assert_eq!(v["precision"], "f32");
    // Two full steps of 64 and a tail step of 32 per epoch; the per-step figures are a full
    // step's.
    let per = |what: &str| {
        let step = num(&v, &format!("{what}_per_step"));
        assert!(step > 0.0, "{what}: {v}");
        num(&v, &format!("{what}_per_epoch")) / step
    };
    assert_eq!(per("model_flops"), 2.5);
    assert_eq!(per("dispatches"), 3.0);
    let bytes = per("bound_bytes");
    assert!(
        bytes > 2.5 && bytes < 3.0,
        "bound bytes: {bytes} full steps per epoch"
    );
}

// ---------------------------------------------------------------------------------------------
// Bad input: one clean error line, nothing left behind.

#[test]
fn bad_datasets_are_named_and_leave_no_run_folder() {
    let dir = scratch("bad-data");
    let out = dir.join("run");
    let train_on = |data: &Path, names: &[&str]| {
        #[rustfmt::skip]
        let args = ["train", "--data", s(data), "--out", s(&out), "--batch", "64", "--quiet"];
        fails(&args, names, &[&out])
    };

    let missing = dir.join("no-such-dataset");
    train_on(&missing, &[s(&missing)]);

    let truncated = data_copy("truncated-data");
    let images = truncated.join("train-images-idx3-ubyte");
    let bytes = std::fs::read(&images).unwrap();
    std::fs::write(&images, &bytes[..bytes.len() - 100]).unwrap();
    train_on(&truncated, &[s(&images), "truncated"]);

    // A raw file wins over the .gz one, so this replaces the fixture's test images.
    let magic = data_copy("magic-data");
    let images = magic.join("t10k-images-idx3-ubyte");
    std::fs::write(&images, idx_labels(&[1, 2, 3])).unwrap();
    train_on(&magic, &[s(&images), "magic"]);
    #[rustfmt::skip]
    fails(&["eval", "--checkpoint", s(&model_file(vae2())), "--data", s(&magic)], &[s(&images), "magic"], &[]);
}

#[test]
fn bad_checkpoints_are_named() {
    let dir = scratch("bad-ckpt");
    let eval = |ckpt: &Path, names: &[&str]| {
        let mut all = vec![s(ckpt)];
        all.extend(names);
        fails(
            &["eval", "--checkpoint", s(ckpt), "--data", data_dir()],
            &all,
            &[],
        )
    };

    eval(&dir.join("missing.safetensors"), &[]);

    let garbage = dir.join("garbage.safetensors");
    std::fs::write(&garbage, "this is not a checkpoint\n").unwrap();
    eval(&garbage, &["safetensors"]);

    let good = checkpoint::load(&model_file(vae2())).unwrap();
    let mut bad = good.clone();
    let t = bad
        .tensors
        .iter_mut()
        .find(|t| t.name == "fc_mu.weight")
        .unwrap();
    t.shape = vec![FEAT, 2];
    let wrong_shape = dir.join("wrong-shape.safetensors");
    checkpoint::save(&wrong_shape, &bad).unwrap();
    eval(&wrong_shape, &["fc_mu.weight"]);

    let no_meta = dir.join("no-metadata.safetensors");
    let bare = Checkpoint {
        tensors: good.tensors.clone(),
        metadata: Default::default(),
    };
    checkpoint::save(&no_meta, &bare).unwrap();
    eval(&no_meta, &["not a gpu-ae checkpoint"]);
}

#[test]
fn picture_commands_refuse_unsuitable_checkpoints_and_inputs() {
    let dir = scratch("misuse");
    let out = dir.join("out.png");
    let absent: &[&Path] = &[&out];
    let (vae2, vae16, ae16) = (
        model_file(vae2()),
        model_file(denoise16()),
        model_file(superres_ae()),
    );

    for ckpt in [&vae16, &ae16] {
        #[rustfmt::skip]
        let e = fails(&["sample", "--checkpoint", s(ckpt), "--manifold", "--out", s(&out)], &[s(ckpt), "--manifold"], absent);
        assert!(e.contains("16"), "{e}");
    }
    #[rustfmt::skip]
    fails(&["sample", "--checkpoint", s(&ae16), "--out", s(&out)], &[s(&ae16), "VAE"], absent);
    #[rustfmt::skip]
    fails(&["upscale", "--checkpoint", s(&vae2), "--data", data_dir(), "--out", s(&out)], &[s(&vae2), "superres"], absent);
    #[rustfmt::skip]
    fails(&["denoise", "--checkpoint", s(&vae2), "--data", data_dir(), "--out", s(&out)], &[s(&vae2), "denoise"], absent);

    let not_png = dir.join("digit.png");
    std::fs::write(&not_png, "GIF89a").unwrap();
    #[rustfmt::skip]
    fails(&["upscale", "--checkpoint", s(&ae16), "--input", s(&not_png), "--out", s(&out)], &[s(&not_png), "cannot decode"], absent);
    let big = dir.join("big.png");
    image::GrayImage::new(28, 28).save(&big).unwrap();
    #[rustfmt::skip]
    fails(&["upscale", "--checkpoint", s(&ae16), "--input", s(&big), "--out", s(&out)], &[s(&big), "14×14"], absent);

    let nowhere = dir.join("no-such-folder");
    let sample_out = nowhere.join("samples.png");
    #[rustfmt::skip]
    fails(&["sample", "--checkpoint", s(&vae2), "--out", s(&sample_out)], &[s(&sample_out)], &[&nowhere]);
    let csv = nowhere.join("z.csv");
    #[rustfmt::skip]
    fails(&["encode", "--checkpoint", s(&vae2), "--data", data_dir(), "--out", s(&csv)], &[s(&csv)], &[&nowhere]);
}

/// A shipped checkpoint (see `assets/models`), so that a test needs no training.
fn shipped(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("assets/models")
        .join(name)
}

/// Every `--out` is written through a link into its target (the link stays), and into a
/// device or a FIFO as it is (never replaced by a file); encode's scatter plot goes beside a
/// regular CSV only.
#[cfg(unix)]
#[test]
fn outs_follow_links_and_write_into_devices_and_fifos() {
    use std::os::unix::fs::FileTypeExt;
    let dir = scratch("special-outs");
    let vae2 = shipped("conv-vae-L2.safetensors");
    let encode = |out: &Path| {
        ok(&[
            "encode",
            "--checkpoint",
            s(&vae2),
            "--data",
            data_dir(),
            "--out",
            s(out),
        ])
    };
    let null = Path::new("/dev/null");
    let out = run(&[
        "encode",
        "--checkpoint",
        s(&vae2),
        "--data",
        data_dir(),
        "--out",
        "/dev/null",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("no scatter plot"),
        "{}",
        text(&out.stderr)
    );
    assert!(null.metadata().unwrap().file_type().is_char_device());
    assert!(!Path::new("/dev/null.png").exists());

    let real = dir.join("real.csv");
    std::fs::write(&real, "old").unwrap();
    let link = dir.join("link.csv");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    encode(&link);
    assert!(link.symlink_metadata().unwrap().file_type().is_symlink());
    assert!(
        std::fs::read_to_string(&real)
            .unwrap()
            .starts_with("index,label,z0,z1\n")
    );
    assert!(dir.join("link.png").is_file());

    let fifo = dir.join("pipe.png");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read(fifo).unwrap())
    };
    ok(&[
        "sample",
        "--checkpoint",
        s(&vae2),
        "--rows",
        "1",
        "--cols",
        "1",
        "--out",
        s(&fifo),
    ]);
    assert!(reader.join().unwrap().starts_with(b"\x89PNG"));
    assert!(fifo.symlink_metadata().unwrap().file_type().is_fifo());
}

/// A model whose outputs overflow f32 (finite weights, 1e20 times too large) gives NaN
/// figures: an error naming the checkpoint, never a "BCE NaN" line with status 0.
#[test]
fn eval_never_prints_nan_figures() {
    let dir = scratch("nan-eval");
    let mut ckpt = checkpoint::load(&shipped("conv-vae-L2.safetensors")).unwrap();
    for t in &mut ckpt.tensors {
        t.data.iter_mut().for_each(|v| *v *= 1e20);
    }
    let huge = dir.join("huge.safetensors");
    checkpoint::save(&huge, &ckpt).unwrap();
    #[rustfmt::skip]
    fails(&["eval", "--checkpoint", s(&huge), "--data", data_dir(), "--limit", "16", "--json"], &[s(&huge), "not finite", "NaN"], &[]);
}

/// encode's CSV quotes a class name holding a comma or a quote (RFC 4180), and `--label`
/// takes what starts with a hyphen as its value (to refuse it, naming the flag).
#[test]
fn class_names_with_commas_and_quotes_survive_the_csv() {
    let dir = scratch("csv-quotes");
    let data = dir.join("data");
    for split in ["train", "test"] {
        for class in ["a,b", "q\"x"] {
            let folder = data.join(split).join(class);
            std::fs::create_dir_all(&folder).unwrap();
            image::GrayImage::from_fn(28, 28, |x, y| image::Luma([(x * 9 + y) as u8]))
                .save(folder.join("1.png"))
                .unwrap();
        }
    }
    let csv = dir.join("z.csv");
    let vae2 = shipped("conv-vae-L2.safetensors");
    #[rustfmt::skip]
    ok(&["encode", "--checkpoint", s(&vae2), "--data", s(&data), "--out", s(&csv)]);
    let text = std::fs::read_to_string(&csv).unwrap();
    let labels: Vec<&str> = text
        .lines()
        .skip(1)
        .map(|l| l.split_once(',').unwrap().1.rsplitn(3, ',').nth(2).unwrap())
        .collect();
    assert_eq!(labels, ["\"a,b\"", "\"q\"\"x\""], "{text}");

    let cvae = shipped("conv-cvae-L2.safetensors");
    let out = dir.join("s.png");
    for label in [vec!["--label", "-1"], vec!["--label=-1"]] {
        let mut args = vec!["sample", "--checkpoint", s(&cvae), "--out", s(&out)];
        args.extend(label);
        fails(&args, &["--label \"-1\"", "0, 1, 2"], &[&out]);
    }
}

/// Words that outlived what they described: upscale's help (models of any size), the shaders'
/// name of the host RNG module, the page's image size, what `reconstruct` decodes.
#[test]
fn help_and_comments_name_what_is_there() {
    let help = ok(&["upscale", "--help"]);
    assert!(!help.contains("Upscale 14×14 images to 28×28"), "{help}");
    assert!(help.contains("twice their side"), "{help}");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let read = |rel: &str| std::fs::read_to_string(root.join(rel)).unwrap();
    for shader in ["shaders/rng.wgsl", "shaders/vae.wgsl"] {
        let text = read(shader);
        assert!(!text.contains("reference::rng"), "{shader}");
        assert!(text.contains("counter_rng"), "{shader}");
    }
    assert!(root.join("src/counter_rng.rs").is_file());
    let app = read("web/static/app.js");
    for side in ["size: 28", "=== 28"] {
        assert!(
            !app.contains(side),
            "web/static/app.js hard-codes MNIST's side: {side}"
        );
    }
    let readme = read("README.md");
    let section = readme
        .split("### Reconstruction: `gpu-ae reconstruct`")
        .nth(1)
        .and_then(|rest| rest.split("\n### ").next())
        .unwrap();
    assert!(section.contains("decodes μ"), "{section}");
}

#[test]
fn bad_flags_give_one_line_errors() {
    let dir = scratch("bad-flags");
    let out = dir.join("run");
    let train_with = |extra: &[&str], names: &[&str]| {
        #[rustfmt::skip]
        let mut args = vec!["train", "--data", data_dir(), "--out", s(&out), "--epochs", "1", "--quiet"];
        args.extend(extra);
        fails(&args, names, &[&out])
    };
    train_with(&["--adapter", "99"], &["--adapter 99"]);
    train_with(&["--model", "bogus"], &["model", "bogus"]);
    train_with(&["--batch", "0"], &["--batch"]);
    // The conv family's shape: no widths (any number of them fits any size, as in PyTorch:
    // `tests/pytorch.rs`); channels other than 1 or 3.
    train_with(&["--widths", ""], &["--widths"]);
    train_with(&["--channels", "2"], &["--channels"]);
    train_with(&["--test-percent", "100"], &["--test-percent"]);
    fails(
        &[
            "eval",
            "--adapter",
            "no-such-gpu",
            "--checkpoint",
            s(&model_file(vae2())),
        ],
        &["--adapter", "no-such-gpu"],
        &[],
    );

    // Picture sizes: zero, overflowing and memory-exhausting grids are refused up front.
    let ckpt = model_file(vae2());
    let c = s(&ckpt);
    let png = dir.join("p.png");
    let absent: &[&Path] = &[&png];
    #[rustfmt::skip]
    fails(&["reconstruct", "--checkpoint", c, "--data", data_dir(), "--count", "0", "--out", s(&png)], &["--count"], absent);
    #[rustfmt::skip]
    fails(&["sample", "--checkpoint", c, "--rows", "18446744073709551615", "--cols", "2", "--out", s(&png)], &["--cols", "10000"], absent);
    #[rustfmt::skip]
    fails(&["sample", "--checkpoint", c, "--rows", "1", "--cols", "1", "--scale", "100000", "--out", s(&png)], &["--scale"], absent);
    #[rustfmt::skip]
    fails(&["denoise", "--checkpoint", c, "--padding", "10000000000", "--out", s(&png)], &["--padding"], absent);
    // encode writes its scatter plot beside the CSV as .png: a .png CSV would be overwritten.
    #[rustfmt::skip]
    fails(&["encode", "--checkpoint", c, "--data", data_dir(), "--out", s(&png)], &[s(&png), ".csv"], absent);
}

/// Batches larger than the dataset shrink to it, so this needs the full 60 000 images; the
/// first activation then needs 60 000 × 784 × 4 bytes, more than lavapipe's 128 MiB per binding.
#[test]
fn a_batch_too_large_for_the_device_is_a_clean_error() {
    let devices = json_lines(&ok(&["devices", "--json"]));
    let limit = devices[0]["max_storage_buffer_binding_size"]
        .as_u64()
        .unwrap();
    // The largest activation of a 60 000 batch: conv-vae's first conv output.
    if limit >= 60_000 * 16 * 14 * 14 * 4 {
        eprintln!("adapter 0 can bind {limit} bytes; a 60 000 batch fits, nothing to check");
        return;
    }
    let out = scratch("big-batch").join("run");
    let mnist_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/mnist");
    #[rustfmt::skip]
    let e = fails(&["train", "--adapter", "0", "--data", s(&mnist_dir), "--batch", "4000000", "--epochs", "1", "--quiet", "--out", s(&out)], &["buffer", "at most", "--batch"], &[&out]);
    assert!(e.contains("MiB"), "{e}");
}

/// Item 19: a model whose parameters do not fit one storage binding is refused naming its
/// `--widths`, before anything is allocated, and not with advice about `--batch`, which cannot
/// help.
#[test]
fn widths_too_large_for_the_adapter_are_named() {
    let devices = json_lines(&ok(&["devices", "--json"]));
    let limit = devices[0]["max_storage_buffer_binding_size"]
        .as_u64()
        .unwrap();
    // conv-vae L=16 with one width of 10⁶: 9.6 G parameters, 36 GiB.
    if limit >= 36 << 30 {
        eprintln!("adapter 0 can bind {limit} bytes; the model fits, nothing to check");
        return;
    }
    let out = scratch("huge-widths").join("run");
    #[rustfmt::skip]
    let e = fails(&["train", "--adapter", "0", "--data", data_dir(), "--widths", "1000000", "--epochs", "1", "--quiet", "--out", s(&out)], &["--widths 1000000", "too large for this adapter", "GiB"], &[&out]);
    assert!(!e.contains("smaller --batch"), "{e}");
}

#[test]
fn resume_refuses_empty_and_finished_runs() {
    let empty = scratch("resume-empty");
    #[rustfmt::skip]
    fails(&["train", "--resume", s(&empty), "--data", data_dir(), "--epochs", "2", "--quiet"], &[s(&empty), "holds no run"], &[]);
    assert!(
        snapshot(&empty).is_empty(),
        "resume wrote into an empty folder"
    );

    let done = copy_dir(vae2(), "resume-done");
    let before = snapshot(&done);
    #[rustfmt::skip]
    let e = fails(&["train", "--resume", s(&done), "--data", data_dir(), "--epochs", "1", "--quiet"], &[s(&done), "--epochs"], &[]);
    assert!(e.contains("already trained for 1"), "{e}");
    assert!(
        snapshot(&done) == before,
        "a refused resume changed the run folder"
    );
}

/// The largest difference between the parameters of two checkpoints of one model.
fn max_param_difference(a: &Checkpoint, b: &Checkpoint) -> f32 {
    assert_eq!(a.tensors.len(), b.tensors.len());
    a.tensors
        .iter()
        .map(|x| {
            let y = b.get(&x.name).unwrap_or_else(|| panic!("no {}", x.name));
            assert_eq!(x.shape, y.shape, "{}", x.name);
            x.data
                .iter()
                .zip(&y.data)
                .fold(0.0f32, |m, (p, q)| m.max((p - q).abs()))
        })
        .fold(0.0, f32::max)
}

/// Item 13: `train --init` starts a new run from a checkpoint's parameters (fresh Adam state at
/// step 0, the checkpoint's model, the task the run asks for, the checkpoint recorded), refuses
/// flags that contradict that model and `--resume` in one line naming the flag; a run folder
/// that lost its Adam state says to fine-tune from its model instead.
#[test]
fn init_fine_tunes_a_model_and_refuses_flags_that_contradict_it() {
    let init = model_file(vae2());
    let tuned = root().join("fine-tuned");
    let _ = std::fs::remove_dir_all(&tuned);
    // At so small a rate the parameters stay where they started: the trained model's, not a
    // fresh initialisation's (one epoch of training moved those by about 1e-3).
    train(
        &tuned,
        &["--init", s(&init), "--task", "denoise", "--lr", "1e-12"],
    );
    let (from, got) = (
        checkpoint::load(&init).unwrap(),
        checkpoint::load(&model_file(&tuned)).unwrap(),
    );
    let moved = max_param_difference(&from, &got);
    assert!(moved < 1e-6, "the fine-tuned parameters moved by {moved}");
    let fresh = root().join("fine-tuned-fresh");
    let _ = std::fs::remove_dir_all(&fresh);
    train(
        &fresh,
        &["--latent", "2", "--task", "denoise", "--lr", "1e-12"],
    );
    let apart = max_param_difference(&from, &checkpoint::load(&model_file(&fresh)).unwrap());
    assert!(
        apart > 1e-3,
        "a fresh run is only {apart} from the trained model"
    );
    // Its own step count (the trained model's Adam state would have continued at step 4).
    assert_eq!(got.meta("steps"), Some("4"));
    assert_eq!(got.meta("epoch"), Some("1"));
    assert_eq!(got.meta("task"), Some("denoise"));
    assert_eq!(got.meta("latent"), Some("2"));
    let absolute = init.canonicalize().unwrap();
    assert_eq!(got.meta("init"), Some(s(&absolute)));

    // Killed before its first checkpoint, the run starts again from the same parameters.
    let restart = scratch("fine-tuned-restart");
    std::fs::copy(tuned.join("run.json"), restart.join("run.json")).unwrap();
    resume(&restart, 1);
    same_parameters(&restart, &tuned);

    // Without --out, the folder is named after the checkpoint's model (here a super-resolution
    // conv-ae, whose parameters fit the reconstruction it is now trained for).
    let runs = root().join("runs");
    let conv_ae_runs = || {
        std::fs::read_dir(&runs)
            .into_iter()
            .flatten()
            .filter(|e| {
                let e = e.as_ref().unwrap();
                e.file_name().to_string_lossy().starts_with("conv-ae-")
            })
            .count()
    };
    let before = conv_ae_runs();
    #[rustfmt::skip]
    ok(&["train", "--data", data_dir(), "--init", s(&model_file(superres_ae())), "--batch", "64", "--eval-batch", "64", "--epochs", "1", "--quiet"]);
    assert_eq!(conv_ae_runs(), before + 1);

    let other = root().join("fine-tuned-refused");
    let _ = std::fs::remove_dir_all(&other);
    let with = |flags: &[&'static str]| -> Vec<String> {
        let mut args: Vec<String> = ["train", "--data", data_dir(), "--out", s(&other)]
            .into_iter()
            .chain(["--init", s(&init), "--epochs", "1", "--quiet"])
            .map(String::from)
            .collect();
        args.extend(flags.iter().map(|f| f.to_string()));
        args
    };
    for (flags, named) in [
        (&["--widths", "8,8"][..], "--widths 8,8"),
        (&["--latent", "3"], "--latent 3"),
        (&["--model", "conv-ae"], "--model conv-ae"),
        (&["--conditional"], "--conditional"),
        (&["--size", "14"], "--size 14"),
        (&["--leaky-slope", "0.01"], "--leaky-slope 0.01"),
    ] {
        let args = with(flags);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let e = fails(&args, &[named, s(&init), "--init"], &[&other]);
        assert!(e.contains("fine-tuned run keeps"), "{e}");
    }
    #[rustfmt::skip]
    fails(&["train", "--resume", s(&tuned), "--init", s(&init), "--epochs", "2"], &["--init", "--resume"], &[]);
    // The slope is a setting of the model, which a resume keeps.
    #[rustfmt::skip]
    fails(&["train", "--resume", s(&tuned), "--leaky-slope", "0.01", "--epochs", "2", "--quiet"], &["--leaky-slope 0.01", "resumed run keeps"], &[]);
    #[rustfmt::skip]
    fails(&["train", "--init", s(vae2()), "--out", s(&other)], &["--init", "model.safetensors"], &[&other]);

    let lost = copy_dir(vae2(), "init-no-optimizer");
    std::fs::remove_file(lost.join("optimizer.safetensors")).unwrap();
    let model = model_file(&lost);
    #[rustfmt::skip]
    let e = fails(&["train", "--resume", s(&lost), "--epochs", "2", "--quiet"], &["optimizer.safetensors", "missing"], &[]);
    assert!(e.contains(&format!("--init {}", s(&model))), "{e}");
}

/// Pictures come out in the format their extension names (.png, .jpg or .jpeg, .bmp, in any
/// case); any other extension is refused before any work, naming the file and the accepted
/// extensions. A WGPU_BACKEND value wgpu does not know is named, not reported as "no adapter".
#[test]
fn picture_formats_and_backend_names_are_what_they_say() {
    let dir = scratch("formats");
    for (name, magic) in [
        ("s.jpg", &b"\xff\xd8\xff"[..]),
        ("s.JPEG", b"\xff\xd8\xff"),
        ("s.bmp", b"BM"),
        ("s.Png", b"\x89PNG"),
    ] {
        let out = dir.join(name);
        #[rustfmt::skip]
        ok(&["sample", "--rows", "1", "--cols", "2", "--out", s(&out)]);
        let bytes = std::fs::read(&out).unwrap();
        assert!(bytes.starts_with(magic), "{name}: {:02x?}", &bytes[..4]);
        let img = image::load_from_memory(&bytes).unwrap();
        assert_eq!((img.width(), img.height()), (2 * 56 + 6, 56 + 4), "{name}");
    }
    // Refused up front: the checkpoint does not exist, yet the error is about the picture.
    let nothing = dir.join("no-such.safetensors");
    let accepted = [".png", ".jpg", ".jpeg", ".bmp"];
    for name in ["s.gif", "s"] {
        let out = dir.join(name);
        let mut names = vec![s(&out)];
        names.extend(accepted);
        #[rustfmt::skip]
        fails(&["sample", "--out", s(&out)], &names, &[&out]);
        #[rustfmt::skip]
        fails(&["reconstruct", "--checkpoint", s(&nothing), "--data", data_dir(), "--out", s(&out)], &names, &[&out]);
        #[rustfmt::skip]
        fails(&["denoise", "--checkpoint", s(&nothing), "--out", s(&out)], &names, &[&out]);
        #[rustfmt::skip]
        fails(&["upscale", "--checkpoint", s(&nothing), "--out", s(&out)], &names, &[&out]);
        #[rustfmt::skip]
        fails(&["upscale", "--checkpoint", s(&nothing), "--input", s(&nothing), "--out", s(&out)], &names, &[&out]);
        #[rustfmt::skip]
        let status = run(&["sample", "--out", s(&out)]).status;
        assert_eq!(status.code(), Some(1), "{name}");
    }

    let with_backend = |value: &str, args: &[&str]| {
        Command::new(BIN)
            .args(args)
            .env("WGPU_BACKEND", value)
            .current_dir(root())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {BIN}: {e}"))
    };
    let png = dir.join("backend.png");
    for (value, bad) in [("bogus", "bogus"), ("Vulkan, vulcan", "vulcan"), ("", "")] {
        for args in [
            &["devices"][..],
            &["devices", "--json"],
            &["sample", "--rows", "1", "--cols", "1", "--out", s(&png)],
        ] {
            let out = with_backend(value, args);
            let stderr = text(&out.stderr);
            let want = format!(
                "error: WGPU_BACKEND={value}: unknown backend \"{bad}\" (use vulkan, metal, dx12 or gl, comma-separated)\n"
            );
            assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
            assert_eq!(stderr, want, "{args:?}");
            assert!(out.stdout.is_empty(), "{args:?}: {}", text(&out.stdout));
            assert!(!png.exists());
        }
    }
    // wgpu's names in any case, spaces ignored: every machine that runs these tests has one.
    let out = with_backend(" VK , Metal,dx12, GL ", &["devices"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("[0] "),
        "{}",
        text(&out.stdout)
    );
}

/// The conv family with batch norm and leaky ReLU: PyTorch's buffers in the checkpoint
/// (`num_batches_tracked` as I64, the step count), and a resume bit-identical to an
/// uninterrupted run, running statistics included.
#[test]
fn batch_norm_runs_record_running_statistics_and_resume_bit_identically() {
    let flags = ["--norm", "batch", "--act", "leaky-relu", "--widths", "8,16"];
    let whole = root().join("bn-whole");
    let resumed = root().join("bn-resumed");
    train_epochs(&whole, 2, &flags);
    train_epochs(&resumed, 1, &flags);
    resume(&resumed, 2);
    let a = checkpoint::load(&model_file(&whole)).unwrap();
    let b = checkpoint::load(&model_file(&resumed)).unwrap();
    assert_eq!(a.tensors, b.tensors, "a resumed batch-norm run differs");
    let names: Vec<&str> = a.tensors.iter().map(|t| t.name.as_str()).collect();
    for name in ["enc.1.running_mean", "enc.4.running_var", "dec.4.weight"] {
        assert!(names.contains(&name), "{names:?}");
    }
    let counter = a.get("enc.1.num_batches_tracked").unwrap();
    assert_eq!(counter.stored, checkpoint::Stored::I64);
    // 256 images in batches of 64, two epochs.
    assert_eq!(counter.data, vec![8.0]);
    assert_eq!(a.meta("norm"), Some("batch"));
    assert_eq!(a.meta("act"), Some("leaky-relu"));
    // Training moved the running statistics away from their start (0 and 1).
    let mean = a.get("enc.1.running_mean").unwrap();
    assert!(mean.data.iter().any(|&m| m.abs() > 1e-3), "{:?}", mean.data);
}

/// A folder of colour pictures, end to end: 48 real emoji (four categories) trained at 16×16
/// in colour, then every command on the model: figures, colour pictures, codes with the
/// categories' names, and the same test images for `eval` as for training.
#[test]
fn a_folder_of_colour_images_trains_and_every_command_uses_it() {
    let categories = ["animals-nature", "flags", "food-drink", "smileys-emotion"];
    let Some(data) = emoji_slice("emoji-slice", &categories, 12) else {
        return;
    };
    std::fs::write(data.join("notes.txt"), "not an image").unwrap();
    let run = root().join("emoji-run");
    let out = run_with_cache(&[
        "train",
        "--data",
        s(&data),
        "--out",
        s(&run),
        "--size",
        "16",
        "--widths",
        "8,16",
        "--latent",
        "4",
        "--test-percent",
        "25",
        "--batch",
        "16",
        "--epochs",
        "1",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("ignored 1 file"),
        "{}",
        text(&out.stderr)
    );
    let ckpt = checkpoint::load(&model_file(&run)).unwrap();
    assert_eq!(ckpt.meta("channels"), Some("3"));
    assert_eq!(ckpt.meta("size"), Some("16"));
    assert_eq!(ckpt.meta("split"), Some("fnv1a64-path-percent:25"));
    assert_eq!(ckpt.get("enc.0.weight").unwrap().shape, vec![8, 3, 3, 3]);

    // eval reads the same test images as training did: the same figure.
    let m = model_file(&run);
    let eval = run_with_cache(&["eval", "--checkpoint", s(&m), "--data", s(&data), "--json"]);
    assert!(eval.status.success(), "{}", text(&eval.stderr));
    let figures = json_lines(&text(&eval.stdout));
    let trained = metrics(&run);
    let (a, b) = (
        num(&figures[0], "test_neg_elbo"),
        num(&trained[0], "test_neg_elbo"),
    );
    assert!((a - b).abs() <= 1e-4 * b.abs(), "eval {a} vs training {b}");

    // Colour pictures at the model's size.
    let pics = scratch("emoji-pictures");
    let sample = pics.join("s.png");
    #[rustfmt::skip]
    ok(&["sample", "--checkpoint", s(&m), "--rows", "2", "--cols", "3", "--scale", "1", "--padding", "0", "--out", s(&sample)]);
    let img = image::open(&sample).unwrap();
    assert_eq!((img.width(), img.height()), (48, 32));
    assert!(matches!(img, image::DynamicImage::ImageRgb8(_)));
    let recon = pics.join("r.png");
    #[rustfmt::skip]
    let out = run_with_cache(&["reconstruct", "--checkpoint", s(&m), "--data", s(&data), "--count", "4", "--scale", "1", "--padding", "0", "--out", s(&recon)]);
    let line = text(&out.stdout);
    assert!(line.contains("PSNR"), "{line}");
    // The 64×64 emoji were scaled to the model's size, and the command says so.
    let note = text(&out.stderr);
    assert!(
        note.contains("test images converted to 16×16 3-channel"),
        "{note}"
    );
    assert_eq!(image::image_dimensions(&recon).unwrap(), (64, 32));

    // Codes with the categories as labels, named in the scatter plot's legend; the 4-D codes
    // are drawn on their first two principal components. Without --data, the test images are
    // those of the folder the model was trained on.
    let csv = pics.join("z.csv");
    #[rustfmt::skip]
    let enc = run_with_cache(&["encode", "--checkpoint", s(&m), "--out", s(&csv)]);
    assert!(enc.status.success(), "{}", text(&enc.stderr));
    assert!(
        text(&enc.stderr).contains("note: no --data given: the test images of"),
        "{}",
        text(&enc.stderr)
    );
    let said = text(&enc.stdout);
    assert!(
        said.contains("(PC1 (") && said.contains("% of variance) against PC2 ("),
        "{said}"
    );
    let rows = std::fs::read_to_string(&csv).unwrap();
    assert_eq!(
        rows.lines().count() as f64 - 1.0,
        num(&figures[0], "images")
    );
    assert!(pics.join("z.png").exists());

    // A model whose folder is not here (and whose images are not MNIST's) asks for --data;
    // sampling needs no data.
    let mut moved = checkpoint::load(&m).unwrap();
    moved
        .metadata
        .insert("data".into(), s(&pics.join("gone")).into());
    let moved_file = pics.join("moved.safetensors");
    checkpoint::save(&moved_file, &moved).unwrap();
    #[rustfmt::skip]
    fails(&["eval", "--checkpoint", s(&moved_file)], &["--data: the model takes 16×16 3-channel images", "gone"], &[]);
    #[rustfmt::skip]
    ok(&["sample", "--checkpoint", s(&moved_file), "--rows", "1", "--cols", "2", "--out", s(&pics.join("s2.png"))]);
}

/// Runs `gpu-ae` with the dataset cache in the scratch folder (never the user's).
fn run_with_cache(args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .args(args)
        .env("GPU_AE_CACHE_DIR", root().join("dataset-cache"))
        .current_dir(root())
        .output()
        .unwrap()
}

/// A dataset larger than one storage binding trains with the same global shuffle, streamed
/// chunk by chunk: forcing chunks of at most 100 000 bytes (127 MNIST images, so chunks of one
/// batch of 64 for training and for evaluation) gives bit-identical parameters and the same
/// test figures as the resident dataset.
#[test]
fn a_dataset_streamed_in_chunks_trains_exactly_as_a_resident_one() {
    let resident = root().join("resident");
    train_epochs(&resident, 2, &[]);
    let streamed = root().join("streamed");
    train_env(&streamed, 2, &[], &[("GPU_AE_STREAM_BYTES", "100000")]);
    same_run(&streamed, &resident);
}

/// Issue 27 item 19: a dataset cache that cannot be written (here `GPU_AE_CACHE_DIR` names a
/// file) does not fail the run, and says so once, in one line naming the cache path.
#[test]
fn an_unwritable_dataset_cache_is_one_note() {
    let pics = colour_pictures("uncached-pictures");
    let blocker = root().join("cache-is-a-file");
    std::fs::write(&blocker, "not a folder").unwrap();
    let run = root().join("uncached-run");
    let _ = std::fs::remove_dir_all(&run);
    #[rustfmt::skip]
    let out = Command::new(BIN)
        .args(["train", "--data", s(&pics), "--out", s(&run), "--test-percent", "50", "--batch", "4", "--eval-batch", "4", "--epochs", "1", "--quiet"])
        .env("GPU_AE_CACHE_DIR", &blocker)
        .current_dir(root())
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let said: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("dataset cache"))
        .collect();
    assert_eq!(said.len(), 1, "{stderr}");
    assert!(said[0].contains(s(&blocker)), "{stderr}");
}

/// Eight 8×8 colour pictures in a fresh folder `name`.
fn colour_pictures(name: &str) -> PathBuf {
    let pics = scratch(name);
    for i in 0..8u8 {
        image::RgbImage::from_fn(8, 8, |x, y| {
            image::Rgb([i * 20, (x * 30) as u8, (y * 30) as u8])
        })
        .save(pics.join(format!("{i}.png")))
        .unwrap();
    }
    pics
}

/// Issue 27 item 19: a colour (or other-sized) model given IDX data, which is read as it is,
/// says what works: a folder of images, which is converted to the model's size and channels.
#[test]
fn a_colour_model_given_idx_data_names_the_way_forward() {
    let pics = colour_pictures("colour-pictures");
    let run = root().join("colour-run");
    let _ = std::fs::remove_dir_all(&run);
    #[rustfmt::skip]
    ok(&["train", "--data", s(&pics), "--out", s(&run), "--test-percent", "50", "--batch", "4", "--eval-batch", "4", "--epochs", "1", "--quiet"]);
    let m = model_file(&run);
    let out = root().join("colour-run.png");
    for extra in [&["eval"][..], &["reconstruct", "--out", s(&out)]] {
        let mut args = extra.to_vec();
        args.extend(["--checkpoint", s(&m), "--data", data_dir()]);
        let e = fails(
            &args,
            &[data_dir(), "1 channel, not 3", "folder of images"],
            &[&out],
        );
        assert!(e.contains("converted"), "{e}");
    }
}
