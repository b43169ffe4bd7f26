//! Models cross between gpu-ae and real PyTorch, both ways, where PyTorch and safetensors are
//! installed (`python3 -c "import torch, safetensors"`; elsewhere, CI included, each test says it
//! is skipped and passes). Export: a model trained by `gpu-ae train` loads into
//! `pytorch_images.ConvVAE` with `strict=True`, and PyTorch's μ and reconstructions of test
//! images match gpu-ae's. Import: a `ConvVAE` initialised by PyTorch (batch norm statistics
//! made non-trivial) and saved with `safetensors.torch.save_file` goes through `gpu-ae import`,
//! and gpu-ae's μ and reconstructions match PyTorch's. Both use leaky ReLU at PyTorch's default
//! slope 0.01, which a model of slope 0.2 reconstructs far off.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use gpu_ae::gpu::{AdapterChoice, Gpu};
use gpu_ae::pictures::infer::Inference;
use gpu_ae::platform::block_on;
use support::*;

/// Test images compared.
const IMAGES: usize = 8;

/// Builds `pytorch_images.ConvVAE` as a job describes it (leaky ReLU at the job's slope), and
/// either loads a gpu-ae checkpoint into it (`strict=True`) or initialises it with a seed and
/// saves its state_dict; then writes μ and `sigmoid(dec(μ))` of the images in eval mode.
const SCRIPT: &str = r#"
import json, sys
import numpy as np
import torch
import torch.nn as nn
from safetensors.torch import load_file, save_file

sys.path.insert(0, sys.argv[1])
import pytorch_images as pi

job = json.load(open(sys.argv[2]))
torch.manual_seed(job["seed"])
model = pi.ConvVAE(job["channels"], job["size"], job["widths"], job["latent"], job["norm"],
                   job["act"], vae=job["vae"], block=job["block"], upsample=job["upsample"])
for m in model.modules():
    if isinstance(m, nn.LeakyReLU):
        m.negative_slope = job["slope"]
if job["load"]:
    model.load_state_dict(load_file(job["model"]), strict=True)
else:
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
                m.num_batches_tracked.fill_(3)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, job["model"])
model.eval()
n, c, s = job["count"], job["channels"], job["size"]
x = np.fromfile(job["images"], dtype=np.uint8).reshape(n, c, s, s)
x = torch.from_numpy(x).float() / 255.0
with torch.no_grad():
    mu, _ = model.encode(x)
    rec = torch.sigmoid(model.dec(mu))
json.dump({"mu": mu.flatten().tolist(), "rec": rec.flatten().tolist()}, open(job["out"], "w"))
"#;

/// Whether PyTorch and safetensors import; says so when they do not.
fn torch_here() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import torch, safetensors"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("skipped: PyTorch is not here (python3 -c \"import torch, safetensors\" fails)");
    }
    ok
}

/// The first [`IMAGES`] test images of the fixture, as bytes in a file and as floats in [0, 1].
fn test_images(dir: &Path) -> (PathBuf, Vec<f32>) {
    let im = gpu_ae::data::idx::read_images(&mnist("t10k-images-idx3-ubyte.gz")).unwrap();
    let bytes = &im.pixels[..IMAGES * im.rows * im.cols];
    let path = dir.join("images.u8");
    std::fs::write(&path, bytes).unwrap();
    (path, bytes.iter().map(|&b| f32::from(b) / 255.0).collect())
}

/// Runs [`SCRIPT`] on `job` (written into `dir`); returns PyTorch's (μ, reconstructions).
fn pytorch(dir: &Path, job: serde_json::Value) -> (Vec<f32>, Vec<f32>) {
    let script = dir.join("crossing.py");
    std::fs::write(&script, SCRIPT).unwrap();
    let job_path = dir.join("job.json");
    std::fs::write(&job_path, job.to_string()).unwrap();
    let reference = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/reference");
    let out = Command::new("python3")
        .arg(&script)
        .arg(&reference)
        .arg(&job_path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "PyTorch failed: {}",
        text(&out.stderr)
    );
    let result: serde_json::Value =
        serde_json::from_slice(&std::fs::read(job["out"].as_str().unwrap()).unwrap()).unwrap();
    let floats = |key: &str| -> Vec<f32> {
        result[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect()
    };
    (floats("mu"), floats("rec"))
}

/// gpu-ae's (μ, reconstructions) of `images` by the checkpoint at `model`.
fn gpu_ae_outputs(model: &Path, images: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let gpu = Gpu::new(&AdapterChoice::Best).unwrap();
    let (model, _) = gpu_ae::run::train::load_model(&gpu, model).unwrap();
    let inference = Inference::new(&gpu, model, IMAGES, 0).unwrap();
    let r = block_on(inference.reconstruct(images, None)).unwrap();
    (r.codes, r.outputs)
}

/// The largest absolute difference of two equally long lists.
fn max_difference(what: &str, a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "{what}: lengths differ");
    a.iter()
        .zip(b)
        .fold(0.0f32, |m, (x, y)| m.max((x - y).abs()))
}

/// The job for a conv VAE of MNIST's images: widths 4, 8, latent 3, leaky ReLU of slope 0.01.
fn job(dir: &Path, images: &Path, load: bool, flags: (&str, &str, &str)) -> serde_json::Value {
    let (norm, block, upsample) = flags;
    serde_json::json!({
        "channels": 1, "size": 28, "widths": [4, 8], "latent": 3, "vae": true,
        "norm": norm, "act": "leaky_relu", "slope": 0.01, "block": block, "upsample": upsample,
        "seed": 5, "load": load, "model": s(&dir.join("model.safetensors")),
        "images": s(images), "count": IMAGES, "out": s(&dir.join("pytorch.json")),
    })
}

/// μ and pixels within 1e-5 of each other (they agree to about 1e-7: f32 rounding).
fn assert_same_outputs(what: &str, torch: &(Vec<f32>, Vec<f32>), ours: &(Vec<f32>, Vec<f32>)) {
    let mu = max_difference(what, &torch.0, &ours.0);
    let rec = max_difference(what, &torch.1, &ours.1);
    eprintln!("{what}: μ within {mu:.1e}, pixels within {rec:.1e}");
    assert!(mu < 1e-5, "{what}: μ differs by {mu}");
    assert!(rec < 1e-5, "{what}: reconstructions differ by {rec}");
}

#[test]
fn a_trained_model_loads_strictly_into_pytorch_and_gives_its_outputs() {
    if !torch_here() {
        return;
    }
    let dir = scratch("pytorch-export");
    let run = dir.join("run");
    #[rustfmt::skip]
    train(&run, &["--widths", "4,8", "--latent", "3", "--norm", "batch", "--act", "leaky-relu", "--leaky-slope", "0.01", "--block", "residual", "--lr", "3e-3"]);
    let (images, pixels) = test_images(&dir);
    let mut job = job(&dir, &images, true, ("batch", "residual", "transposed"));
    job["model"] = s(&model_file(&run)).into();
    let torch = pytorch(&dir, job);
    let ours = gpu_ae_outputs(&model_file(&run), &pixels);
    assert_same_outputs("gpu-ae → PyTorch", &torch, &ours);
}

#[test]
fn a_pytorch_model_imports_and_gives_its_outputs() {
    if !torch_here() {
        return;
    }
    let dir = scratch("pytorch-import");
    let (images, pixels) = test_images(&dir);
    let torch = pytorch(
        &dir,
        job(&dir, &images, false, ("batch", "plain", "nearest")),
    );
    let state_dict = dir.join("model.safetensors");
    let imported = dir.join("imported.safetensors");
    #[rustfmt::skip]
    let import = |slope: &str| ok(&["import", "--checkpoint", s(&state_dict), "--act", "leaky-relu", "--leaky-slope", slope, "--size", "28", "--out", s(&imported)]);
    import("0.01");
    let ours = gpu_ae_outputs(&imported, &pixels);
    assert_same_outputs("PyTorch → gpu-ae", &torch, &ours);
    // At the slope gpu-ae used to assume, the same (untrained) weights reconstruct some pixel
    // more than a level (1/255) otherwise.
    std::fs::remove_file(&imported).unwrap();
    import("0.2");
    let wrong = gpu_ae_outputs(&imported, &pixels);
    let off = max_difference("slope 0.2", &torch.1, &wrong.1);
    eprintln!("slope 0.2 instead of 0.01: pixels {off:.3} off");
    assert!(off > 1.0 / 255.0, "slope 0.2 is only {off} off");
}

/// Item 19: sides as PyTorch computes them: `ConvVAE(3, 3, [4, 6, 5], …)` halves 3 → 2 → 1 → 1
/// and its decoder goes back 1 → 1 → 2 → 3 (output paddings 0, 1, 0; nearest upsampling to the
/// same sides); both import and give PyTorch's outputs.
#[test]
fn models_of_three_pixel_images_import_as_pytorch_builds_them() {
    if !torch_here() {
        return;
    }
    let dir = scratch("pytorch-3px");
    let bytes: Vec<u8> = (0..IMAGES * 27).map(|i| (i * 37 % 256) as u8).collect();
    let images = dir.join("images.u8");
    std::fs::write(&images, &bytes).unwrap();
    let pixels: Vec<f32> = bytes.iter().map(|&b| f32::from(b) / 255.0).collect();
    for upsample in ["transposed", "nearest"] {
        let mut job = job(&dir, &images, false, ("none", "plain", upsample));
        for (key, value) in [
            ("channels", serde_json::json!(3)),
            ("size", 3.into()),
            ("widths", serde_json::json!([4, 6, 5])),
        ] {
            job[key] = value;
        }
        let torch = pytorch(&dir, job);
        let state_dict = dir.join("model.safetensors");
        let imported = dir.join(format!("imported-{upsample}.safetensors"));
        #[rustfmt::skip]
        ok(&["import", "--checkpoint", s(&state_dict), "--act", "leaky-relu", "--leaky-slope", "0.01", "--size", "3", "--out", s(&imported)]);
        let ours = gpu_ae_outputs(&imported, &pixels);
        assert_same_outputs(&format!("3×3, {upsample}"), &torch, &ours);
    }
}
