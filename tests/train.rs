//! Whole-model tests on the GPU: every model's backward pass (all layers wired together, the
//! fused μ/logvar head, the VAE sampling and the task inputs) against finite differences of its
//! own forward loss, f16 activation storage against f32, and short training runs that must
//! lower the test loss (in f16 about as much as in f32).

use gpu_ae::counter_rng::STREAM_REPARAM;
use gpu_ae::data::{self, Binarize};
use gpu_ae::gpu::{Elem, Gpu, Plan, Tensor};
use gpu_ae::kernels::step;
use gpu_ae::model::graph::{Graph, Model, TrainGraph};
use gpu_ae::model::{
    Architecture, Block, HiddenAct, ImageShape, LossKind, ModelKind, ModelSpec, Norm, Task,
    Upsampling,
};
use gpu_ae::platform::block_on;
use gpu_ae::run::evaluate::{EvalMetrics, Evaluator};
use gpu_ae::run::gpu_split::GpuSplit;
use gpu_ae::run::settings::TrainConfig;
use gpu_ae::run::train::{EpochEnd, Trainer};
use std::path::Path;

mod support;
use support::gpu;

/// The adapter under test if it has SHADER_F16. Vulkan, Metal and DX12 adapters have it
/// (lavapipe too); only GL may lack it, and then the f16 tests say so and pass.
fn gpu_with_f16() -> Option<Gpu> {
    let gpu = gpu();
    if gpu.has_f16() {
        return Some(gpu);
    }
    assert_eq!(gpu.info.backend, wgpu::Backend::Gl, "{}", gpu.describe());
    eprintln!("skipped: {} has no SHADER_F16", gpu.describe());
    None
}

fn mnist() -> data::Dataset {
    data::load(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/mnist"),
        &Default::default(),
    )
    .unwrap()
}

/// The first `n` test images as f32 in [0, 1].
fn images(ds: &data::Dataset, n: usize) -> Vec<f32> {
    ds.test.images.pixels[..n * 784]
        .iter()
        .map(|&p| p as f32 / 255.0)
        .collect()
}

/// Checks the GPU gradient of `spec` at the three largest coordinates of every parameter
/// tensor (small ones drown in the f32 rounding of a loss of several hundred nats).
/// `beta` weighs the KL divergence in the loss (β-VAE).
fn check_model_gradient(gpu: &Gpu, spec: ModelSpec, target: &[f32], beta: f32) {
    let n = target.len() / spec.image.pixels();
    let arch = Architecture::new(spec.clone()).unwrap();
    let values = arch.params.init(5);
    let model = Model::new(gpu, arch.clone(), &values).unwrap();
    let train_graph = TrainGraph::new(gpu, &arch, n, Elem::F32).unwrap();
    let g = &train_graph.forward;
    g.target.write_f32(gpu, target);
    write_labels(gpu, g, &arch);
    let state = Tensor::from_u32(gpu, &[step::STATE_LEN], &[3, 0, 0, 0], "state").unwrap();
    let grads = Tensor::zeros(gpu, &[arch.params.total], "grads").unwrap();
    let mut forward = Plan::new();
    g.record_task_input(&mut forward, gpu, &arch, &state, 11);
    g.record_encode(&mut forward, gpu, &model, &state, 11, STREAM_REPARAM, true)
        .unwrap();
    g.record_decode(&mut forward, gpu, &model).unwrap();
    train_graph.record_loss(&mut forward, gpu, &arch);
    forward.compile(gpu);
    let mut backward = Plan::new();
    train_graph
        .record_backward(&mut backward, gpu, &model, &grads, beta)
        .unwrap();

    // The training objective: mean over the batch of (reconstruction + β·KL). The
    // reconstruction is summed in f64 here from the decoder's output: the GPU's f32 loss of
    // several hundred nats is exact to about 3e-5 only, noise of 0.015 in a difference
    // quotient at eps = 2e-3 (the f32 reference loss per example would carry the same; the loss
    // kernel is checked against it elsewhere).
    let loss = || -> f64 {
        forward.submit(gpu);
        let out = g.decoder_output().read_f32(gpu).unwrap();
        let rec: f64 = out[..target.len()]
            .iter()
            .zip(target)
            .map(|(&y, &t)| {
                let (y, t) = (y as f64, t as f64);
                match spec.loss {
                    LossKind::Bce => y.max(0.0) - y * t + (-y.abs()).exp().ln_1p(),
                    LossKind::Mse => (y - t) * (y - t),
                }
            })
            .sum();
        let kl: f64 = match g.kl() {
            Some(kl) => kl.read_f32(gpu).unwrap().iter().map(|&v| v as f64).sum(),
            None => 0.0,
        };
        (rec + beta as f64 * kl) / n as f64
    };
    loss();
    backward.run(gpu).unwrap();
    let analytic = grads.read_f32(gpu).unwrap();
    let write = |i: usize, v: f32| {
        gpu.queue
            .write_buffer(&model.params.buffer, (i * 4) as u64, bytemuck::bytes_of(&v));
    };
    // The step crosses few ReLU kinks (at 5e-4 one put a residual block's conv2.weight 8% off);
    // a tensor whose gradient is 0 (a convolution bias before batch norm) is checked with a
    // step 8× larger: its quotient is rounding noise alone (0.022 at 5e-4 on the residual
    // models with batch norm, deeper and so with more f32 rounding), and the loss has no
    // kinks along it.
    let small_eps = 2.5e-4f32;
    let mut checked = 0;
    for e in &arch.params.entries {
        let slice = &analytic[e.offset..e.offset + e.len()];
        let flat = slice.iter().all(|g| g.abs() < 1e-3);
        let eps = if flat { 8.0 * small_eps } else { small_eps };
        let mut order: Vec<usize> = (0..e.len()).collect();
        order.sort_by(|&a, &b| slice[b].abs().total_cmp(&slice[a].abs()));
        for k in order.into_iter().take(3) {
            let i = e.offset + k;
            write(i, values[i] + eps);
            let up = loss();
            write(i, values[i] - eps);
            let down = loss();
            write(i, values[i]);
            let numeric = (up - down) / (2.0 * eps as f64);
            let a = analytic[i] as f64;
            assert!(
                (numeric - a).abs() <= 0.05 * numeric.abs().max(a.abs()) + 1e-2,
                "{} {}: {}[{k}] analytic {a} vs numeric {numeric}",
                spec.kind,
                spec.task.name(),
                e.name
            );
            checked += 1;
        }
    }
    assert!(
        analytic.iter().any(|g| g.abs() > 1e-3),
        "{}: gradient is all ~0",
        spec.kind
    );
    assert!(checked >= arch.params.entries.len());
}

/// A conditional graph's batch labels: example i is of class i mod K.
fn write_labels(gpu: &Gpu, g: &Graph, arch: &Architecture) {
    if let Some(labels) = g.labels() {
        let k = arch.classes() as u32;
        let v: Vec<u32> = (0..g.n as u32).map(|i| i % k).collect();
        gpu.queue
            .write_buffer(&labels.buffer, 0, bytemuck::cast_slice(&v));
    }
}

/// Every model spec the whole-model checks cover: each model kind, task and loss at least once,
/// both conditional VAEs, and a conv VAE with residual blocks and a nearest-upsampling decoder.
fn covered_specs() -> Vec<ModelSpec> {
    let spec = |kind, latent, task, loss| ModelSpec::mnist(kind, latent, task, loss);
    let conditional = |kind, classes: usize| ModelSpec {
        classes: (0..classes).map(|c| c.to_string()).collect(),
        ..spec(kind, 3, Task::Reconstruct, LossKind::Bce)
    };
    vec![
        conditional(ModelKind::ConvVae, 10),
        conditional(ModelKind::DenseVae, 3),
        spec(ModelKind::ConvVae, 3, Task::Reconstruct, LossKind::Bce),
        spec(ModelKind::ConvAe, 4, Task::Superres, LossKind::Bce),
        spec(
            ModelKind::DenseVae,
            2,
            Task::Denoise { noise: 0.3 },
            LossKind::Bce,
        ),
        spec(ModelKind::LessonAe, 0, Task::Reconstruct, LossKind::Mse),
        ModelSpec {
            block: Block::Residual,
            upsample: Upsampling::Nearest,
            ..spec(ModelKind::ConvVae, 3, Task::Reconstruct, LossKind::Bce)
        },
    ]
}

#[test]
fn every_model_backward_matches_finite_differences() {
    let gpu = gpu();
    let ds = mnist();
    let target = images(&ds, 3);
    for s in covered_specs() {
        check_model_gradient(&gpu, s, &target, 1.0);
    }
    // A β-VAE weighs the KL term (heavily here, so that it shows in the largest gradients).
    let vae = ModelSpec::mnist(ModelKind::ConvVae, 3, Task::Reconstruct, LossKind::Bce);
    check_model_gradient(&gpu, vae, &target, 40.0);
}

/// The conv family on colour images of odd sizes (7 → 4 → 2 → 1 and back, output paddings 1, 1,
/// 0; 10 → 5 → 3 → 2), three widths, with the denoising input and super-resolution's stride-1
/// first layer, with batch norm (batch statistics) and leaky ReLU (slopes 0.2 and 0.01), and
/// with residual blocks and
/// nearest upsampling (7 → 4 → 2 → 1 and back up to the encoder's sides), each with and without
/// batch norm.
#[test]
fn the_colour_conv_family_backward_matches_finite_differences() {
    let gpu = gpu();
    let colour = |size, task| ModelSpec {
        image: ImageShape { channels: 3, size },
        widths: vec![4, 6, 5],
        ..ModelSpec::mnist(ModelKind::ConvVae, 3, task, LossKind::Bce)
    };
    let batch_norm = ModelSpec {
        norm: Norm::Batch,
        act: HiddenAct::LeakyRelu,
        ..colour(7, Task::Reconstruct)
    };
    let residual_nearest = ModelSpec {
        block: Block::Residual,
        upsample: Upsampling::Nearest,
        ..colour(7, Task::Reconstruct)
    };
    // PyTorch's default nn.LeakyReLU() slope, through every fused activation of the model.
    let residual_batch_norm = ModelSpec {
        block: Block::Residual,
        leaky_slope: 0.01,
        ..batch_norm.clone()
    };
    let nearest_superres = ModelSpec {
        upsample: Upsampling::Nearest,
        ..colour(10, Task::Superres)
    };
    // Three halvings of a side of 3, as PyTorch computes them: 3 → 2 → 1 → 1 and back.
    let tiny_nearest = ModelSpec {
        upsample: Upsampling::Nearest,
        ..colour(3, Task::Reconstruct)
    };
    for spec in [
        colour(3, Task::Reconstruct),
        tiny_nearest,
        colour(7, Task::Denoise { noise: 0.2 }),
        colour(10, Task::Superres),
        batch_norm,
        residual_nearest,
        residual_batch_norm,
        nearest_superres,
    ] {
        let pixels = spec.image.pixels();
        // Smooth colour gradients in [0, 1], different per image and channel.
        let target: Vec<f32> = (0..2 * pixels)
            .map(|i| 0.5 + 0.45 * ((i % pixels) as f32 * 0.37 + (i / pixels) as f32).sin())
            .collect();
        check_model_gradient(&gpu, spec, &target, 1.0);
    }
}

/// One forward and backward pass of `spec` on `target` with activations stored as `elem`:
/// (summed reconstruction loss, summed KL, parameter gradients).
fn loss_and_gradients(
    gpu: &Gpu,
    model: &Model,
    target: &[f32],
    elem: Elem,
) -> (f64, f64, Vec<f32>) {
    let n = target.len() / 784;
    let arch = &model.arch;
    let train_graph = TrainGraph::new(gpu, arch, n, elem).unwrap();
    let g = &train_graph.forward;
    assert_eq!(g.target.elem, elem);
    g.target.write_f32(gpu, target);
    write_labels(gpu, g, arch);
    let state = Tensor::from_u32(gpu, &[step::STATE_LEN], &[3, 0, 0, 0], "state").unwrap();
    let grads = Tensor::zeros(gpu, &[arch.params.total], "grads").unwrap();
    let mut plan = Plan::new();
    g.record_task_input(&mut plan, gpu, arch, &state, 11);
    g.record_encode(&mut plan, gpu, model, &state, 11, STREAM_REPARAM, true)
        .unwrap();
    g.record_decode(&mut plan, gpu, model).unwrap();
    train_graph.record_loss(&mut plan, gpu, arch);
    train_graph
        .record_backward(&mut plan, gpu, model, &grads, 1.0)
        .unwrap();
    plan.run(gpu).unwrap();
    let sum = |t: Option<&Tensor>| -> f64 {
        t.map_or(0.0, |t| {
            t.read_f32(gpu).unwrap().iter().map(|&v| v as f64).sum()
        })
    };
    (sum(Some(&g.rec)), sum(g.kl()), grads.read_f32(gpu).unwrap())
}

/// With f16 activations and activation gradients (f32 arithmetic, scaled loss), every model's
/// loss and parameter gradients stay close to the f32 ones. Each stored value is rounded by up
/// to 2^-11 of itself; most gradient tensors come out within 2e-3 of their norm, the first
/// layer of the dense VAE within 1e-2 (a ReLU whose input is within rounding of 0 can open in
/// one precision and stay shut in the other), and the first layer of the residual model, past
/// eight more stored activations, within 3.5e-2. A missed conversion or a wrong storage variant
/// puts the error near 100%.
#[test]
fn f16_storage_matches_f32_for_every_model() {
    let Some(gpu) = gpu_with_f16() else { return };
    let ds = mnist();
    let target = images(&ds, 5);
    for spec in covered_specs() {
        let arch = Architecture::new(spec.clone()).unwrap();
        let model = Model::new(&gpu, arch.clone(), &arch.params.init(7)).unwrap();
        let (rec32, kl32, g32) = loss_and_gradients(&gpu, &model, &target, Elem::F32);
        let (rec16, kl16, g16) = loss_and_gradients(&gpu, &model, &target, Elem::F16);
        let what = format!("{} {}", spec.kind, spec.task.name());
        assert!(
            (rec16 - rec32).abs() <= 2e-3 * rec32.abs(),
            "{what}: loss {rec16} (f16) vs {rec32} (f32)"
        );
        assert!(
            (kl16 - kl32).abs() <= 2e-3 * kl32.abs() + 1e-3,
            "{what}: KL {kl16} (f16) vs {kl32} (f32)"
        );
        for e in &arch.params.entries {
            let range = e.offset..e.offset + e.len();
            let norm = |v: &[f32]| v.iter().map(|&x| (x as f64).powi(2)).sum::<f64>().sqrt();
            let diff: Vec<f32> = g16[range.clone()]
                .iter()
                .zip(&g32[range.clone()])
                .map(|(a, b)| a - b)
                .collect();
            let (err, size) = (norm(&diff), norm(&g32[range]));
            assert!(size > 0.0, "{what}: {} gradient is 0", e.name);
            assert!(
                err <= 5e-2 * size,
                "{what}: {} gradient differs by {:.2e} of its norm in f16",
                e.name,
                err / size
            );
        }
    }
}

/// The MNIST conv VAE with an 8-D latent, Adam at 2e-3.
fn small_vae(batch: usize, seed: u64, precision: Elem) -> TrainConfig {
    TrainConfig {
        spec: ModelSpec::mnist(ModelKind::ConvVae, 8, Task::Reconstruct, LossKind::Bce),
        batch,
        lr: 2e-3,
        schedule: Default::default(),
        seed,
        precision,
        beta: 1.0,
        binarize: Binarize::None,
        init: None,
    }
}

/// Trains a conv VAE for 3 epochs on 640 images with activations stored as `precision`:
/// the test metrics before and after.
fn short_run(gpu: &Gpu, precision: Elem) -> (EvalMetrics, EvalMetrics) {
    let ds = mnist();
    let limit = 640;
    let train = ds.train.first(limit);
    let test = ds.test.first(300);
    let dir = Path::new("assets/mnist");
    // 640 = 6·100 + 40: the tail batch is trained too.
    let cfg = small_vae(100, 3, precision);
    let mut trainer = Trainer::new(
        gpu,
        cfg,
        GpuSplit::upload(gpu, &train, dir).unwrap(),
        None,
        None,
        0,
    )
    .unwrap();
    assert_eq!(trainer.steps_per_epoch(), 7);
    let test_split = GpuSplit::upload(gpu, &test, dir).unwrap();
    let eval = Evaluator::new(gpu, &trainer.model, &test_split, 128, 0, Binarize::None).unwrap();
    let before = block_on(eval.run(gpu)).unwrap();
    // Evaluation is deterministic for a fixed model.
    assert_eq!(before, block_on(eval.run(gpu)).unwrap());
    let mut seen = Vec::new();
    for epoch in 0..3 {
        let p = block_on(trainer.run_epoch(epoch, 0, &|_| false, &mut |p| seen.push(p.step)))
            .unwrap()
            .finished()
            .expect("no stop was requested");
        assert_eq!(p.images, limit);
        assert!(p.mean_loss().is_finite());
    }
    assert_eq!(trainer.steps_done, 21);
    assert_eq!(seen.last(), Some(&7));
    let after = block_on(eval.run(gpu)).unwrap();
    (before, after)
}

/// A conv VAE trained one epoch on 200 images in batches of 16 (13 steps), then a second
/// epoch, stopped after its `stop_after` first submissions when given (as a web page's pause
/// does) and continued from the step it reached, with at most `resident` bytes of images on
/// the GPU: the parameters after both epochs.
fn two_epochs(gpu: &Gpu, resident: u64, stop_after: Option<usize>) -> Vec<f32> {
    let train = mnist().train.first(200);
    let dir = Path::new("assets/mnist");
    let cfg = small_vae(16, 5, Elem::F32);
    let split = GpuSplit::upload_within(gpu, &train, dir, resident).unwrap();
    let mut trainer = Trainer::new(gpu, cfg, split, None, None, 0).unwrap();
    assert_eq!(trainer.steps_per_epoch(), 13);
    let whole = |t: &mut Trainer, epoch, first| {
        block_on(t.run_epoch(epoch, first, &|_| false, &mut |_| {}))
            .unwrap()
            .finished()
            .expect("no stop was requested")
    };
    whole(&mut trainer, 0, 0);
    let mut first = 0;
    if let Some(submissions) = stop_after {
        let calls = std::cell::Cell::new(0);
        let stop = |_| {
            calls.set(calls.get() + 1);
            calls.get() > submissions
        };
        let stopped = block_on(trainer.run_epoch(1, 0, &stop, &mut |_| {})).unwrap();
        let EpochEnd::Stopped(at) = stopped else {
            panic!("the epoch was not stopped")
        };
        first = trainer.steps_done as usize - 13;
        assert!(first > 0 && first < 13, "stopped after {first} steps");
        assert_eq!(at.step, first);
        assert_eq!(at.images, 16 * first, "the stopped call's own images");
    }
    let rest = whole(&mut trainer, 1, first);
    assert_eq!(rest.step, 13);
    assert_eq!(rest.images, 200 - 16 * first, "images of this call only");
    assert_eq!(trainer.steps_done, 26);
    block_on(trainer.model.values(gpu)).unwrap().params
}

/// An epoch stopped part-way and continued from the step it reached trains exactly as one run
/// straight through (the same batches, noise and Adam steps, bit for bit), with the images
/// resident and streamed in chunks of 3 batches (the continuation at step 2 starts inside the
/// first chunk) and of 2 (it starts with the second chunk).
#[test]
fn a_stopped_epoch_continues_where_it_stopped() {
    let gpu = gpu();
    for resident in [u64::MAX, 48 * 784, 32 * 784] {
        let straight = two_epochs(&gpu, resident, None);
        let continued = two_epochs(&gpu, resident, Some(2));
        assert!(
            straight == continued,
            "resident {resident} bytes: the continued epoch differs"
        );
    }
}

#[test]
fn a_short_run_lowers_the_test_loss() {
    let (before, after) = short_run(&gpu(), Elem::F32);
    assert!(
        after.total() < before.total() - 100.0,
        "test −ELBO {} → {}",
        before.total(),
        after.total()
    );
    assert!(after.kl.unwrap() > 0.0);
}

/// Training with f16 activations learns as much as with f32: the same start, data order and
/// noise give a test −ELBO within 1% after 21 steps.
#[test]
fn an_f16_run_learns_like_f32() {
    let Some(gpu) = gpu_with_f16() else { return };
    let (before32, after32) = short_run(&gpu, Elem::F32);
    let (before16, after16) = short_run(&gpu, Elem::F16);
    assert!(after16.total() < before16.total() - 100.0);
    assert!(
        (before16.total() - before32.total()).abs() < 1e-6 * before32.total(),
        "evaluation is f32 in both: {} vs {}",
        before16.total(),
        before32.total()
    );
    assert!(
        (after16.total() - after32.total()).abs() <= 0.01 * after32.total(),
        "test −ELBO after training: {} (f16) vs {} (f32)",
        after16.total(),
        after32.total()
    );
}
