//! `gpu-ae import`: a PyTorch `state_dict` of `pytorch_images.ConvVAE` without gpu-ae metadata
//! (written here as `safetensors.torch.save_file` writes one: PyTorch's names, f32 tensors, I64
//! `num_batches_tracked`) becomes a checkpoint every command reads, its architecture inferred
//! from the tensors; what the tensors do not say is a one-line error naming the flag.

mod support;

use gpu_ae::checkpoint::{self, Checkpoint, NamedTensor, Stored};
use gpu_ae::model::graph::ModelValues;
use gpu_ae::model::record::read_spec;
use gpu_ae::model::{
    Architecture, HiddenAct, ImageShape, LossKind, ModelKind, ModelSpec, Norm, Task,
};
use std::path::{Path, PathBuf};
use support::*;

/// Writes `spec`'s freshly initialised parameters and running statistics as a bare state_dict.
fn state_dict(spec: &ModelSpec, path: &Path) {
    let arch = Architecture::new(spec.clone()).unwrap();
    let v = ModelValues::init(&arch, 1);
    let t = &arch.params;
    let mut tensors: Vec<NamedTensor> = t
        .entries
        .iter()
        .map(|e| {
            NamedTensor::f32(
                &e.name,
                &e.shape,
                v.params[e.offset..e.offset + e.len()].to_vec(),
            )
        })
        .chain(t.buffers.iter().map(|e| {
            NamedTensor::f32(
                &e.name,
                &e.shape,
                v.buffers[e.offset..e.offset + e.len()].to_vec(),
            )
        }))
        .collect();
    tensors.extend(t.batch_norms().map(|l| NamedTensor {
        name: format!("{l}.num_batches_tracked"),
        shape: vec![],
        data: vec![7.0],
        stored: Stored::I64,
    }));
    let ckpt = Checkpoint {
        tensors,
        metadata: Default::default(),
    };
    checkpoint::save(path, &ckpt).unwrap();
}

fn colour_bn() -> ModelSpec {
    ModelSpec {
        image: ImageShape {
            channels: 3,
            size: 10,
        },
        widths: vec![4, 6],
        norm: Norm::Batch,
        act: HiddenAct::LeakyRelu,
        classes: (0..3).map(|c| c.to_string()).collect(),
        ..ModelSpec::mnist(ModelKind::ConvVae, 5, Task::Reconstruct, LossKind::Bce)
    }
}

/// `gpu-ae import --checkpoint FROM --out TO` followed by `flags`.
fn import<'a>(from: &'a Path, to: &'a Path, flags: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["import", "--checkpoint", s(from), "--out", s(to)];
    args.extend_from_slice(flags);
    args
}

#[test]
fn a_bare_state_dict_imports_with_the_flags_it_needs() {
    let spec = colour_bn();
    let torch = root().join("torch-bn.safetensors");
    state_dict(&spec, &torch);
    let out: PathBuf = root().join("imported-bn.safetensors");
    // Neither the activation nor the size (9 to 12 give the same tensors) is recorded.
    fails(
        &import(&torch, &out, &["--size", "10"]),
        &["--act", s(&torch)],
        &[&out],
    );
    let e = fails(
        &import(&torch, &out, &["--act", "leaky-relu"]),
        &["--size", s(&torch)],
        &[&out],
    );
    assert!(e.contains("9 to 12"), "{e}");
    fails(
        &import(&torch, &out, &["--act", "leaky-relu", "--size", "13"]),
        &["--size 13"],
        &[&out],
    );
    // Commands given the bare file say how to import it.
    let pic = root().join("bare.png");
    fails(
        &["sample", "--checkpoint", s(&torch), "--out", s(&pic)],
        &[s(&torch), "gpu-ae import"],
        &[&pic],
    );
    let line = ok(&import(
        &torch,
        &out,
        &["--act", "leaky-relu", "--size", "10"],
    ));
    assert!(line.contains("conditional on 3 classes"), "{line}");
    let got = checkpoint::load(&out).unwrap();
    assert_eq!(read_spec(&got, &out).unwrap(), spec);
    assert_eq!(
        got.get("enc.1.num_batches_tracked").unwrap().stored,
        Stored::I64
    );
    // The import is refused over an existing file, and the result draws pictures.
    fails(
        &import(&torch, &out, &["--act", "relu", "--size", "10"]),
        &[s(&out), "exists"],
        &[],
    );
    ok(&[
        "sample",
        "--checkpoint",
        s(&out),
        "--label",
        "2",
        "--rows",
        "1",
        "--cols",
        "3",
        "--out",
        s(&pic),
    ]);
}

#[test]
fn the_mnist_conv_vae_needs_only_its_activation_and_size() {
    let spec = ModelSpec::mnist(ModelKind::ConvAe, 16, Task::Reconstruct, LossKind::Bce);
    let torch = root().join("torch-ae.safetensors");
    state_dict(&spec, &torch);
    let out = root().join("imported-ae.safetensors");
    ok(&import(&torch, &out, &["--act", "relu", "--size", "28"]));
    assert_eq!(
        read_spec(&checkpoint::load(&out).unwrap(), &out).unwrap(),
        spec
    );
    let rec = root().join("imported-ae.png");
    ok(&[
        "reconstruct",
        "--checkpoint",
        s(&out),
        "--data",
        data_dir(),
        "--out",
        s(&rec),
    ]);
    let not = root().join("not-a-convvae.safetensors");
    let ckpt = Checkpoint {
        tensors: vec![NamedTensor::f32("weight", &[2, 2], vec![0.0; 4])],
        metadata: Default::default(),
    };
    checkpoint::save(&not, &ckpt).unwrap();
    let out2 = root().join("imported-not.safetensors");
    fails(
        &import(&not, &out2, &["--act", "relu"]),
        &[s(&not), "ConvVAE"],
        &[&out2],
    );
}

/// A 10×10 colour PNG at `path` (its folders made), a different colour per `seed`.
fn png(path: &Path, seed: u8) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let img = image::RgbImage::from_fn(10, 10, |x, y| {
        image::Rgb([seed.wrapping_mul(70), (x * 25) as u8, (y * 25) as u8])
    });
    img.save(path).unwrap();
}

/// Item 15: `--leaky-slope` (PyTorch's default `nn.LeakyReLU()` is 0.01) is recorded in the
/// checkpoint; a conditional model's classes are named by `--classes` or by `--data`'s
/// subfolders in sorted order (as `pytorch_images.py` numbers them), so that the commands take
/// it on that folder; a count that does not fit the decoder is refused naming the flag.
#[test]
fn leaky_slopes_and_class_names_import() {
    let spec = ModelSpec {
        leaky_slope: 0.01,
        classes: ["ant", "bee", "cat"].map(String::from).to_vec(),
        ..colour_bn()
    };
    let torch = root().join("torch-slope.safetensors");
    state_dict(&spec, &torch);
    let flags = [
        "--act",
        "leaky-relu",
        "--size",
        "10",
        "--leaky-slope",
        "0.01",
    ];
    let named = root().join("imported-named.safetensors");
    let mut args = import(&torch, &named, &flags);
    args.extend(["--classes", "ant,bee,cat"]);
    let line = ok(&args);
    assert!(line.contains("leaky-relu (slope 0.01)"), "{line}");
    let got = checkpoint::load(&named).unwrap();
    assert_eq!(got.meta("leaky_slope"), Some("0.01"));
    assert_eq!(read_spec(&got, &named).unwrap(), spec);

    // The data it was trained on, in the order that pytorch_images.py numbers its classes.
    let data = scratch("import-classes");
    for (i, class) in ["cat", "ant", "bee"].iter().enumerate() {
        png(&data.join(format!("train/{class}/a.png")), i as u8);
        png(&data.join(format!("test/{class}/b.png")), i as u8 + 3);
    }
    png(&data.join("train/.hidden/c.png"), 7);
    let from_data = root().join("imported-from-data.safetensors");
    let mut args = import(&torch, &from_data, &flags);
    args.extend(["--data", s(&data)]);
    ok(&args);
    let got = checkpoint::load(&from_data).unwrap();
    assert_eq!(read_spec(&got, &from_data).unwrap(), spec);
    let pic = root().join("imported-named.png");
    #[rustfmt::skip]
    ok(&["reconstruct", "--checkpoint", s(&from_data), "--data", s(&data), "--count", "3", "--out", s(&pic)]);

    // Unnamed, the classes are 0 to K−1 (a note says how to name them), which that folder's
    // classes are not.
    let unnamed = root().join("imported-unnamed.safetensors");
    let run = support::run(&import(&torch, &unnamed, &flags));
    assert!(
        text(&run.stderr).contains("--classes"),
        "{}",
        text(&run.stderr)
    );
    #[rustfmt::skip]
    fails(&["reconstruct", "--checkpoint", s(&unnamed), "--data", s(&data), "--out", s(&pic)], &[s(&data)], &[]);

    let wrong = root().join("imported-wrong.safetensors");
    for extra in [
        ["--classes", "ant,bee"],
        ["--classes", "ant,ant,bee"],
        ["--classes", "ant,,bee"],
    ] {
        let mut args = import(&torch, &wrong, &flags);
        args.extend(extra);
        fails(&args, &["--classes"], &[&wrong]);
    }
    let plain = root().join("torch-plain.safetensors");
    let unconditional = ModelSpec {
        classes: Vec::new(),
        ..spec.clone()
    };
    state_dict(&unconditional, &plain);
    let mut args = import(&plain, &wrong, &flags);
    args.extend(["--data", s(&data)]);
    fails(&args, &["--data", "not a conditional model"], &[&wrong]);
    // A slope for ReLU is a mistake, not a setting.
    let relu = ["--act", "relu", "--size", "10", "--leaky-slope", "0.01"];
    fails(
        &import(&plain, &wrong, &relu),
        &["--leaky-slope"],
        &[&wrong],
    );
}

/// Item 13: an imported model fine-tunes (`train --init`): the run starts from the state_dict's
/// parameters, trains for the task it is given and records its model.
#[test]
fn an_imported_model_fine_tunes() {
    let spec = ModelSpec {
        widths: vec![4, 6],
        ..ModelSpec::mnist(ModelKind::ConvVae, 3, Task::Reconstruct, LossKind::Bce)
    };
    let torch = root().join("torch-tune.safetensors");
    state_dict(&spec, &torch);
    let imported = root().join("imported-tune.safetensors");
    ok(&import(
        &torch,
        &imported,
        &["--act", "relu", "--size", "28"],
    ));
    let run = root().join("imported-tuned");
    let _ = std::fs::remove_dir_all(&run);
    #[rustfmt::skip]
    train(&run, &["--init", s(&imported), "--task", "denoise", "--noise", "0.3", "--lr", "1e-12"]);
    let (want, got) = (
        checkpoint::load(&torch).unwrap(),
        checkpoint::load(&model_file(&run)).unwrap(),
    );
    for w in &want.tensors {
        let g = got.get(&w.name).unwrap();
        let moved = w
            .data
            .iter()
            .zip(&g.data)
            .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(moved < 1e-6, "{} moved by {moved}", w.name);
    }
    let tuned = read_spec(&got, &run).unwrap();
    assert_eq!(tuned.task, Task::Denoise { noise: 0.3 });
    assert_eq!(
        tuned,
        ModelSpec {
            task: tuned.task,
            ..spec
        }
    );
}

/// Item 19: a Linear weight of the wrong shape is named, whichever it is (the biases say the
/// latent size and the feature count): a transposed `fc_mu.weight` is not blamed on `dec.0`.
#[test]
fn a_wrongly_shaped_linear_weight_is_named() {
    let spec = ModelSpec::mnist(ModelKind::ConvVae, 4, Task::Reconstruct, LossKind::Bce);
    let torch = root().join("torch-transposed.safetensors");
    state_dict(&spec, &torch);
    for name in ["fc_mu.weight", "dec.0.weight"] {
        let mut ckpt = checkpoint::load(&torch).unwrap();
        let t = ckpt.tensors.iter_mut().find(|t| t.name == name).unwrap();
        t.shape.reverse();
        let wrong = root().join(format!("torch-transposed-{name}.safetensors"));
        checkpoint::save(&wrong, &ckpt).unwrap();
        let out = root().join("imported-transposed.safetensors");
        let flags = ["--act", "relu", "--size", "28"];
        let e = fails(
            &import(&wrong, &out, &flags),
            &[s(&wrong), name, "transposed?"],
            &[&out],
        );
        let other = if name == "dec.0.weight" {
            "fc_mu"
        } else {
            "dec.0"
        };
        assert!(!e.contains(other), "{e}");
    }
}

/// Rewrites the state_dict at `from` into `to` as a hand-written safetensors file: every name
/// after `prefix`, every f32 tensor as `dtype` (F16 or F32), the I64 counters as they are.
fn rewrite(from: &Path, to: &Path, prefix: &str, dtype: &str) {
    let ckpt = checkpoint::load(from).unwrap();
    let mut header = serde_json::Map::new();
    let mut body: Vec<u8> = Vec::new();
    for t in &ckpt.tensors {
        let start = body.len();
        let kind = match t.stored {
            Stored::I64 => {
                body.extend(t.data.iter().flat_map(|&v| (v as i64).to_le_bytes()));
                "I64"
            }
            Stored::F32 if dtype == "F16" => {
                body.extend(
                    t.data
                        .iter()
                        .flat_map(|&v| half::f16::from_f32(v).to_le_bytes()),
                );
                "F16"
            }
            Stored::F32 => {
                body.extend(t.data.iter().flat_map(|v| v.to_le_bytes()));
                "F32"
            }
        };
        header.insert(
            format!("{prefix}{}", t.name),
            serde_json::json!({"dtype": kind, "shape": t.shape, "data_offsets": [start, body.len()]}),
        );
    }
    let header = serde_json::Value::Object(header).to_string();
    let mut file = (header.len() as u64).to_le_bytes().to_vec();
    file.extend(header.as_bytes());
    file.extend(body);
    std::fs::write(to, file).unwrap();
}

/// What `torch.compile`, DataParallel and half precision do to a state_dict is undone, each
/// said on stderr; integer weights and pickles are refused in one line naming the tensor or
/// saying how to convert the file.
#[test]
fn state_dicts_as_people_save_them_import() {
    let spec = ModelSpec {
        norm: Norm::Batch,
        ..ModelSpec::mnist(ModelKind::ConvVae, 4, Task::Reconstruct, LossKind::Bce)
    };
    let torch = root().join("torch-people.safetensors");
    state_dict(&spec, &torch);
    let flags = ["--act", "relu", "--size", "28"];
    for (prefix, dtype, says) in [
        ("module.", "F16", "DataParallel"),
        ("_orig_mod.", "F32", "torch.compile"),
        ("model.", "F32", "`model.`"),
    ] {
        let from = root().join(format!("torch-{prefix}{dtype}.safetensors"));
        rewrite(&torch, &from, prefix, dtype);
        let out = root().join(format!("imported-{prefix}{dtype}.safetensors"));
        let run = support::run(&import(&from, &out, &flags));
        let stderr = text(&run.stderr);
        assert!(run.status.success(), "{stderr}");
        assert!(stderr.contains(says) && stderr.contains(prefix), "{stderr}");
        assert_eq!(
            stderr.contains("converted 26 F16 tensors to f32"),
            dtype == "F16",
            "{stderr}"
        );
        let got = checkpoint::load(&out).unwrap();
        let want = checkpoint::load(&torch).unwrap();
        for (g, w) in got.tensors.iter().zip(&want.tensors) {
            assert_eq!((&g.name, &g.shape, g.stored), (&w.name, &w.shape, w.stored));
            let rounded: Vec<f32> = match (dtype, w.stored) {
                ("F16", Stored::F32) => w
                    .data
                    .iter()
                    .map(|&v| half::f16::from_f32(v).to_f32())
                    .collect(),
                _ => w.data.clone(),
            };
            assert_eq!(g.data, rounded, "{}", g.name);
        }
    }

    // An I64 weight (a state_dict cast to integers) is refused, naming it.
    let mut ckpt = checkpoint::load(&torch).unwrap();
    let weight = ckpt
        .tensors
        .iter_mut()
        .find(|t| t.name == "fc_mu.weight")
        .unwrap();
    weight.data.iter_mut().for_each(|v| *v = v.round());
    weight.stored = Stored::I64;
    let ints = root().join("torch-ints.safetensors");
    checkpoint::save(&ints, &ckpt).unwrap();
    let out = root().join("imported-ints.safetensors");
    fails(
        &import(&ints, &out, &flags),
        &[s(&ints), "fc_mu.weight", "integers"],
        &[&out],
    );

    // A torch.save zip archive.
    let pickle = root().join("torch-model.pt");
    std::fs::write(
        &pickle,
        b"PK\x03\x04\x00\x00\x08\x08\x00\x00archive/data.pkl",
    )
    .unwrap();
    fails(
        &import(&pickle, &out, &flags),
        &[s(&pickle), "PyTorch pickle", "safetensors.torch as s"],
        &[&out],
    );
}
