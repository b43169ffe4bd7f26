//! GPU-vs-reference tests for a residual block's skip connection: `y = act(x + r)` and the
//! sum of the two input gradients with an optional activation derivative, on sizes around a
//! workgroup's 1024 elements and a real block's `[N, C, H, W]`, f32 and f16 storage.

use crate::common::{
    Storage, assert_close, gpu, gpu_with_f16, padded, read_padded, rtol, stored, values,
};
use gpu_ae::gpu::{Elem, Gpu, Plan, Tensor};
use gpu_ae::kernels::{InputGrad, residual};
use gpu_ae::reference::residual as cpu;
use gpu_ae::shapes::Activation;

const SHAPES: &[&[usize]] = &[
    &[1],
    &[3],
    &[1023],
    &[1025],
    &[2, 3, 7, 7],
    &[4, 32, 16, 16],
];

fn tensor(gpu: &Gpu, shape: &[usize], elem: Elem, v: &[f32], label: &str) -> Tensor {
    Tensor::from_f32_as(gpu, shape, elem, v, label).unwrap()
}

fn check_forward(gpu: &Gpu, shapes: &[&[usize]], storage: Storage) {
    for (k, shape) in shapes.iter().enumerate() {
        let n: usize = shape.iter().product();
        let mut x = stored(storage.input, values(k as u64 + 1, n, -2.0, 2.0));
        x[0] = 1.5;
        let r = stored(storage.output, values(k as u64 + 2, n, -1.0, 1.0));
        let xt = tensor(gpu, shape, storage.input, &x, "x");
        let rt = tensor(gpu, shape, storage.output, &r, "r");
        // PyTorch's default slope (0.01) as well as pytorch_images.py's (0.2).
        for act in [
            Activation::Relu,
            Activation::LeakyRelu(0.2),
            Activation::LeakyRelu(0.01),
        ] {
            let what = format!("residual forward {shape:?} {act:?} {storage:?}");
            let yt = padded(gpu, shape, storage.output, &vec![7.0; n], "y");
            let mut plan = Plan::new();
            residual::add_act(&mut plan, gpu, &yt, &xt, &rt, act);
            plan.run(gpu).unwrap();
            let mut want = vec![0.0; n];
            cpu::add_act(&mut want, &x, &r, act);
            let got = read_padded(gpu, &yt, &what);
            assert_close(&what, &got, &want, 1e-6, rtol(storage.output, 1e-6));
        }
    }
}

fn check_backward(gpu: &Gpu, shapes: &[&[usize]], storage: Storage) {
    for (k, shape) in shapes.iter().enumerate() {
        let n: usize = shape.iter().product();
        let a = stored(storage.input, values(k as u64 + 11, n, -1.0, 1.0));
        let b = stored(storage.input, values(k as u64 + 12, n, -1.0, 1.0));
        let mut x = stored(storage.input, values(k as u64 + 13, n, -1.0, 1.0));
        x[0] = 0.5;
        let at = tensor(gpu, shape, storage.input, &a, "a");
        let bt = tensor(gpu, shape, storage.input, &b, "b");
        let xt = tensor(gpu, shape, storage.input, &x, "x");
        for act in [
            None,
            Some(Activation::Relu),
            Some(Activation::LeakyRelu(0.2)),
            Some(Activation::LeakyRelu(0.01)),
        ] {
            let what = format!("residual backward {shape:?} {act:?} {storage:?}");
            let dxt = padded(gpu, shape, storage.input, &vec![7.0; n], "dx");
            let mut plan = Plan::new();
            residual::add_grads(&mut plan, gpu, InputGrad { dx: &dxt, act }, &at, &bt, &xt);
            plan.run(gpu).unwrap();
            let mut want = vec![0.0; n];
            cpu::add_grads(&mut want, &a, &b, &x, act);
            let got = read_padded(gpu, &dxt, &what);
            assert_close(&what, &got, &want, 1e-6, rtol(storage.input, 1e-6));
        }
    }
}

#[test]
fn add_act_matches_reference() {
    check_forward(&gpu(), SHAPES, Storage::F32);
}

#[test]
fn add_grads_matches_reference() {
    check_backward(&gpu(), SHAPES, Storage::F32);
}

#[test]
fn f16_residual_matches_reference() {
    let Some(gpu) = gpu_with_f16() else { return };
    let shapes: &[&[usize]] = &[&[1], &[1025], &[2, 3, 7, 7]];
    check_forward(&gpu, shapes, Storage::F16);
    check_backward(&gpu, shapes, Storage::F16);
}
