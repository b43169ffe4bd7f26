//! GPU-vs-reference tests for the element-wise activations, forward and backward.

use crate::common::{
    Storage, assert_close, gpu, gpu_with_f16, padded, read_padded, rtol, stored, values,
};
use gpu_ae::gpu::{Elem, Gpu, Plan, Tensor};
use gpu_ae::kernels::activation;
use gpu_ae::reference::activation as cpu;
use gpu_ae::shapes::Activation;

const ACTS: [Activation; 5] = [
    Activation::Relu,
    Activation::LeakyRelu(0.01),
    Activation::LeakyRelu(0.2),
    Activation::Sigmoid,
    Activation::Tanh,
];

/// Sizes: single elements, sizes around the 1024 elements one workgroup covers, an odd
/// [N, C, H, W], and a real conv output [64, 16, 28, 28].
const SHAPES: &[&[usize]] = &[
    &[1],
    &[3],
    &[1, 3, 5, 3],
    &[1023],
    &[1025],
    &[2, 3, 7, 7],
    &[64, 16, 28, 28],
];

/// Inputs in [-6, 6) with a few extremes (saturating sigmoid/tanh) and exact zeros; the first
/// is positive so that ReLU of a single element is not all zero.
fn inputs(seed: u64, n: usize) -> Vec<f32> {
    let mut x = values(seed, n, -6.0, 6.0);
    x[0] = 1.5;
    for (i, v) in x.iter_mut().enumerate().skip(1).step_by(97) {
        *v = [0.0, 40.0, -40.0, -0.0, 100.0, -100.0][i / 97 % 6];
    }
    x
}

/// y = act(x) on the GPU vs the reference for every activation, x and y stored as `storage`
/// says. y starts as 7.0 with a sentinel tail: every element and nothing past them is written.
fn check_forward(gpu: &Gpu, shapes: &[&[usize]], storage: Storage) {
    for (k, shape) in shapes.iter().enumerate() {
        let n: usize = shape.iter().product();
        let x = stored(storage.input, inputs(k as u64 + 1, n));
        let xt = Tensor::from_f32_as(gpu, shape, storage.input, &x, "x").unwrap();
        for act in ACTS {
            let what = format!("{act:?} forward {shape:?} {storage:?}");
            let yt = padded(gpu, shape, storage.output, &vec![7.0; n], "y");
            let mut plan = Plan::new();
            activation::forward(&mut plan, gpu, &yt, &xt, act);
            plan.run(gpu).unwrap();
            let mut want = vec![0.0; n];
            cpu::forward(&mut want, &x, act);
            let got = read_padded(gpu, &yt, &what);
            assert_close(&what, &got, &want, 2e-6, rtol(storage.output, 2e-6));
        }
    }
}

/// dx from dy and y = act(x) on the GPU vs the reference for every activation, y, dy and dx
/// stored as `storage` says. dx starts as 7.0 with a sentinel tail.
fn check_backward(gpu: &Gpu, shapes: &[&[usize]], storage: Storage) {
    for (k, shape) in shapes.iter().enumerate() {
        let n: usize = shape.iter().product();
        let x = inputs(k as u64 + 11, n);
        let dy = stored(storage.output, values(k as u64 + 21, n, -1.0, 1.0));
        let dyt = Tensor::from_f32_as(gpu, shape, storage.output, &dy, "dy").unwrap();
        for act in ACTS {
            let what = format!("{act:?} backward {shape:?} {storage:?}");
            let mut y = vec![0.0; n];
            cpu::forward(&mut y, &x, act);
            let y = stored(storage.output, y);
            let yt = Tensor::from_f32_as(gpu, shape, storage.output, &y, "y").unwrap();
            let dxt = padded(gpu, shape, storage.input, &vec![7.0; n], "dx");
            let mut plan = Plan::new();
            activation::backward(&mut plan, gpu, &dxt, &dyt, &yt, act);
            plan.run(gpu).unwrap();
            let got = read_padded(gpu, &dxt, &what);
            let mut want = vec![0.0; n];
            cpu::backward(&mut want, &dy, &y, act);
            assert_close(&what, &got, &want, 1e-6, rtol(storage.input, 1e-6));
        }
    }
}

/// The forward pass of every activation with f32 storage, on every size.
#[test]
fn forward_matches_reference() {
    check_forward(&gpu(), SHAPES, Storage::F32);
}

/// The backward pass (from y) of every activation with f32 storage, on every size.
#[test]
fn backward_matches_reference() {
    check_backward(&gpu(), SHAPES, Storage::F32);
}

/// Shapes for the f16 variants: a single element, an odd [N, C, H, W], one element past a
/// workgroup's 1024.
const F16_SHAPES: &[&[usize]] = &[&[1], &[1, 3, 5, 3], &[1025]];

/// The f16 storage variants of the forward pass: x and y f16 (an activation layer with
/// `--precision f16`), and an f16 x with an f32 y (the sigmoid that turns the decoder's f16
/// logits into f32 pictures).
#[test]
fn f16_forward_matches_reference() {
    let Some(gpu) = gpu_with_f16() else { return };
    let to_f32 = Storage {
        input: Elem::F16,
        output: Elem::F32,
    };
    for storage in [Storage::F16, to_f32] {
        check_forward(&gpu, F16_SHAPES, storage);
    }
}

/// The f16 storage variant of the backward pass: y, dy and dx f16.
#[test]
fn f16_backward_matches_reference() {
    let Some(gpu) = gpu_with_f16() else { return };
    check_backward(&gpu, F16_SHAPES, Storage::F16);
}

#[test]
fn forward_then_backward_in_one_plan() {
    // The layer pattern: y = act(x), then dx from y in the same submission.
    let gpu = gpu();
    let shape = [3, 5, 4, 3];
    let n = 180;
    let x = inputs(31, n);
    let dy = values(32, n, -1.0, 1.0);
    let xt = Tensor::from_f32(&gpu, &shape, &x, "x").unwrap();
    let dyt = Tensor::from_f32(&gpu, &shape, &dy, "dy").unwrap();
    let yt = Tensor::zeros(&gpu, &shape, "y").unwrap();
    let dxt = Tensor::zeros(&gpu, &shape, "dx").unwrap();
    let act = Activation::Sigmoid;
    let mut plan = Plan::new();
    activation::forward(&mut plan, &gpu, &yt, &xt, act);
    activation::backward(&mut plan, &gpu, &dxt, &dyt, &yt, act);
    plan.run(&gpu).unwrap();
    let mut y = vec![0.0; n];
    cpu::forward(&mut y, &x, act);
    let mut want = vec![0.0; n];
    cpu::backward(&mut want, &dy, &y, act);
    assert_close(
        "sigmoid forward+backward",
        &dxt.read_f32(&gpu).unwrap(),
        &want,
        1e-6,
        1e-5,
    );
}
