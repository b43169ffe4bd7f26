//! GPU-vs-reference tests for nearest-neighbour resizing: up by even and odd factors (the
//! decoders' 4 → 7, 7 → 14, 14 → 28, 16 → 32), down, 1×1, sizes past one grid dimension, the
//! backward gather with and without a fused activation derivative, f16 storage.

use crate::common::{
    Storage, assert_close, gpu, gpu_with_f16, padded, read_padded, rtol, stored, values,
};
use gpu_ae::gpu::{Gpu, Plan, Tensor, grid_1d};
use gpu_ae::kernels::{InputGrad, upsample};
use gpu_ae::reference::upsample as cpu;
use gpu_ae::shapes::{Activation, UpsampleShape};

/// (n, c, h_in, w_in, h_out, w_out).
type Case = (usize, usize, usize, usize, usize, usize);

const SHAPES: &[Case] = &[
    (1, 1, 1, 1, 1, 1),
    (1, 1, 1, 1, 3, 2),
    (2, 3, 4, 4, 7, 7),
    (3, 8, 7, 7, 14, 14),
    (2, 5, 14, 14, 28, 28),
    (1, 4, 16, 16, 32, 32),
    (2, 3, 5, 3, 11, 8),
    (1, 2, 9, 7, 4, 3),
];

fn shape(c: Case) -> UpsampleShape {
    let (n, c, h_in, w_in, h_out, w_out) = c;
    UpsampleShape {
        n,
        c,
        h_in,
        w_in,
        h_out,
        w_out,
    }
}

fn input_dims(s: &UpsampleShape) -> [usize; 4] {
    [s.n, s.c, s.h_in, s.w_in]
}

fn output_dims(s: &UpsampleShape) -> [usize; 4] {
    [s.n, s.c, s.h_out, s.w_out]
}

/// Forward (a copy: exact whatever the storage); y starts as 7.0 with a sentinel tail.
fn check_forward(gpu: &Gpu, cases: &[Case], storage: Storage) {
    for &case in cases {
        let s = shape(case);
        let x = stored(
            storage.input,
            values(s.input_len() as u64, s.input_len(), -1.0, 1.0),
        );
        let xt = Tensor::from_f32_as(gpu, &input_dims(&s), storage.input, &x, "x").unwrap();
        let yt = padded(
            gpu,
            &output_dims(&s),
            storage.output,
            &vec![7.0; s.output_len()],
            "y",
        );
        let mut plan = Plan::new();
        upsample::nearest_forward(&mut plan, gpu, &yt, &xt, s);
        plan.run(gpu).unwrap();
        let mut want = vec![0.0; s.output_len()];
        cpu::nearest_forward(&mut want, &x, s);
        let what = format!("nearest forward {s:?} {storage:?}");
        assert_close(&what, &read_padded(gpu, &yt, &what), &want, 0.0, 0.0);
    }
}

/// Backward, with no activation, ReLU and LeakyReLU(0.2) folded in; dx starts as 7.0 with a
/// sentinel tail.
fn check_backward(gpu: &Gpu, cases: &[Case], storage: Storage) {
    for &case in cases {
        let s = shape(case);
        let dy = stored(
            storage.output,
            values(s.output_len() as u64 + 1, s.output_len(), -1.0, 1.0),
        );
        let dyt = Tensor::from_f32_as(gpu, &output_dims(&s), storage.output, &dy, "dy").unwrap();
        // The layer input as an activation's output: positive and negative values.
        let x = stored(
            storage.input,
            values(s.input_len() as u64 + 2, s.input_len(), -1.0, 1.0),
        );
        let xt = Tensor::from_f32_as(gpu, &input_dims(&s), storage.input, &x, "x").unwrap();
        for act in [
            None,
            Some(Activation::Relu),
            Some(Activation::LeakyRelu(0.2)),
        ] {
            let dxt = padded(
                gpu,
                &input_dims(&s),
                storage.input,
                &vec![7.0; s.input_len()],
                "dx",
            );
            let mut plan = Plan::new();
            let dx = InputGrad { dx: &dxt, act };
            upsample::nearest_backward(&mut plan, gpu, dx, &dyt, &xt, s);
            plan.run(gpu).unwrap();
            let mut want = vec![0.0; s.input_len()];
            cpu::nearest_backward(&mut want, &dy, &x, act, s);
            let what = format!("nearest backward {s:?} {act:?} {storage:?}");
            let got = read_padded(gpu, &dxt, &what);
            assert_close(&what, &got, &want, 1e-6, rtol(storage.input, 1e-6));
        }
    }
}

#[test]
fn nearest_forward_matches_reference() {
    check_forward(&gpu(), SHAPES, Storage::F32);
}

#[test]
fn nearest_backward_matches_reference() {
    check_backward(&gpu(), SHAPES, Storage::F32);
}

/// 4100² outputs > 65535 workgroups of 256: the 2-D grid split.
#[test]
fn nearest_forward_beyond_one_grid_dimension() {
    let gpu = gpu();
    let s = shape((1, 1, 2050, 2050, 4100, 4100));
    if gpu.limits.max_compute_workgroups_per_dimension <= 65535 {
        assert!(
            grid_1d(&gpu, s.output_len(), 256)[1] > 1,
            "shape too small to split the grid"
        );
    }
    let x = values(77, s.input_len(), -1.0, 1.0);
    let xt = Tensor::from_f32(&gpu, &input_dims(&s), &x, "x").unwrap();
    let yt = Tensor::zeros(&gpu, &output_dims(&s), "y").unwrap();
    let mut plan = Plan::new();
    upsample::nearest_forward(&mut plan, &gpu, &yt, &xt, s);
    plan.run(&gpu).unwrap();
    let mut want = vec![0.0; s.output_len()];
    cpu::nearest_forward(&mut want, &x, s);
    assert_close(
        "nearest forward 2050² → 4100²",
        &yt.read_f32(&gpu).unwrap(),
        &want,
        0.0,
        0.0,
    );
}

/// The f16 storage variants: x, y, dy, dx f16.
#[test]
fn f16_nearest_matches_reference() {
    let Some(gpu) = gpu_with_f16() else { return };
    let cases = [SHAPES[1], SHAPES[2], SHAPES[6]];
    check_forward(&gpu, &cases, Storage::F16);
    check_backward(&gpu, &cases, Storage::F16);
}
