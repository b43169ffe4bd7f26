//! GPU-vs-reference tests for the element-wise activations, forward and backward.

use crate::common::{assert_close, gpu, values};
use gpu_ae::gpu::{Gpu, Plan, Tensor};
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

fn run_forward(gpu: &Gpu, shape: &[usize], x: &[f32], act: Activation) -> Vec<f32> {
    let xt = Tensor::from_f32(gpu, shape, x, "x").unwrap();
    // Sentinels: every element must be overwritten.
    let yt = Tensor::from_f32(gpu, shape, &vec![7.0; x.len()], "y").unwrap();
    let mut plan = Plan::new();
    activation::forward(&mut plan, gpu, &yt, &xt, act);
    plan.run(gpu).unwrap();
    yt.read_f32(gpu).unwrap()
}

#[test]
fn forward_matches_reference() {
    let gpu = gpu();
    for (k, shape) in SHAPES.iter().enumerate() {
        let n: usize = shape.iter().product();
        let x = inputs(k as u64 + 1, n);
        for act in ACTS {
            let got = run_forward(&gpu, shape, &x, act);
            let mut want = vec![0.0; n];
            cpu::forward(&mut want, &x, act);
            assert_close(
                &format!("{act:?} forward {shape:?}"),
                &got,
                &want,
                2e-6,
                2e-6,
            );
        }
    }
}

#[test]
fn backward_matches_reference() {
    let gpu = gpu();
    for (k, shape) in SHAPES.iter().enumerate() {
        let n: usize = shape.iter().product();
        let x = inputs(k as u64 + 11, n);
        let dy = values(k as u64 + 21, n, -1.0, 1.0);
        let dyt = Tensor::from_f32(&gpu, shape, &dy, "dy").unwrap();
        for act in ACTS {
            let mut y = vec![0.0; n];
            cpu::forward(&mut y, &x, act);
            let yt = Tensor::from_f32(&gpu, shape, &y, "y").unwrap();
            let dxt = Tensor::from_f32(&gpu, shape, &vec![7.0; n], "dx").unwrap();
            let mut plan = Plan::new();
            activation::backward(&mut plan, &gpu, &dxt, &dyt, &yt, act);
            plan.run(&gpu).unwrap();
            let got = dxt.read_f32(&gpu).unwrap();
            let mut want = vec![0.0; n];
            cpu::backward(&mut want, &dy, &y, act);
            assert_close(
                &format!("{act:?} backward {shape:?}"),
                &got,
                &want,
                1e-6,
                1e-6,
            );
        }
    }
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
