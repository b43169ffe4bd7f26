//! `gpu-ae import`: a PyTorch `state_dict` of `pytorch_images.ConvVAE` without gpu-ae metadata
//! (written here as `safetensors.torch.save_file` writes one: PyTorch's names, f32 tensors, I64
//! `num_batches_tracked`) becomes a checkpoint every command reads, its architecture inferred
//! from the tensors; what the tensors do not say is a one-line error naming the flag.

mod support;

use gpu_ae::checkpoint::{self, Checkpoint, NamedTensor, Stored};
use gpu_ae::graph::ModelValues;
use gpu_ae::metadata::read_spec;
use gpu_ae::models::{
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
