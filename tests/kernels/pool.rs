//! GPU-vs-reference tests for max pooling (with padding, ties and argmax) and 2×2 average
//! pooling.

use crate::common::{
    Storage, assert_close, gpu, gpu_with_f16, padded, read_padded, rtol, stored, values,
};
use gpu_ae::gpu::{Gpu, Plan, Tensor};
use gpu_ae::kernels::pool;
use gpu_ae::reference::pool as cpu;
use gpu_ae::shapes::Pool2dShape;

fn shape(n: usize, c: usize, h_in: usize, w_in: usize, padding: usize) -> Pool2dShape {
    Pool2dShape {
        n,
        c,
        h_in,
        w_in,
        padding,
    }
}

fn dims(s: &Pool2dShape) -> [usize; 4] {
    [s.n, s.c, s.h_in, s.w_in]
}

fn out_dims(s: &Pool2dShape) -> [usize; 4] {
    [s.n, s.c, s.out_h(), s.out_w()]
}

/// Awkward shapes (1×1, odd sizes, padding 1 on odd and even sides, c = 3) and the models'
/// pools: 28 → 14, 14 → 7, 7 (padding 1) → 4.
const MAX_POOL_SHAPES: &[(usize, usize, usize, usize, usize)] = &[
    (1, 1, 1, 1, 1),
    (1, 1, 2, 2, 0),
    (1, 3, 5, 3, 0),
    (1, 2, 5, 3, 1),
    (2, 3, 7, 7, 1),
    (3, 2, 6, 8, 1),
    (2, 16, 28, 28, 0),
    (3, 8, 14, 14, 0),
    (5, 8, 7, 7, 1),
];

/// Runs the forward pass on the GPU, x and y stored as `storage` says, and checks y and argmax
/// against the reference (y is a copy of an input: exact whatever the storage). y and argmax
/// start as sentinels, so every element must be written, and y has a sentinel tail.
fn check_max_pool_forward(gpu: &Gpu, what: &str, s: Pool2dShape, x: &[f32], storage: Storage) {
    let out = s.n * s.c * s.out_h() * s.out_w();
    let x = stored(storage.input, x.to_vec());
    let xt = Tensor::from_f32_as(gpu, &dims(&s), storage.input, &x, "x").unwrap();
    let yt = padded(gpu, &out_dims(&s), storage.output, &vec![7.0; out], "y");
    let at = Tensor::from_u32(gpu, &out_dims(&s), &vec![u32::MAX; out], "argmax").unwrap();
    let mut plan = Plan::new();
    pool::max_pool2x2_forward(&mut plan, gpu, &yt, &at, &xt, s);
    plan.run(gpu).unwrap();

    let (mut y, mut arg) = (vec![0.0; out], vec![0; out]);
    cpu::max_pool2x2_forward(&mut y, &mut arg, &x, s);
    assert_eq!(at.read_u32(gpu).unwrap(), arg, "{what}: argmax");
    assert_close(
        &format!("{what}: y"),
        &read_padded(gpu, &yt, what),
        &y,
        0.0,
        0.0,
    );
}

/// Runs the backward pass on the GPU from a given dy and the reference's argmax for `x` (not the
/// GPU forward's), dy and dx stored as `storage` says, and checks dx against the reference (a
/// copy of dy or 0: exact whatever the storage).
fn check_max_pool_backward(
    gpu: &Gpu,
    what: &str,
    s: Pool2dShape,
    x: &[f32],
    dy: &[f32],
    storage: Storage,
) {
    let out = s.n * s.c * s.out_h() * s.out_w();
    let len = x.len();
    let (mut y, mut arg) = (vec![0.0; out], vec![0; out]);
    cpu::max_pool2x2_forward(&mut y, &mut arg, x, s);
    let dy = stored(storage.output, dy.to_vec());
    let at = Tensor::from_u32(gpu, &out_dims(&s), &arg, "argmax").unwrap();
    let dyt = Tensor::from_f32_as(gpu, &out_dims(&s), storage.output, &dy, "dy").unwrap();
    // Sentinels in dx: the backward pass must overwrite every cell, winners or not.
    let dxt = padded(gpu, &dims(&s), storage.input, &vec![7.0; len], "dx");
    let mut plan = Plan::new();
    pool::max_pool2x2_backward(&mut plan, gpu, &dxt, &dyt, &at, s);
    plan.run(gpu).unwrap();

    let mut dx = vec![0.0; len];
    cpu::max_pool2x2_backward(&mut dx, &dy, &arg, s);
    assert_close(
        &format!("{what}: dx"),
        &read_padded(gpu, &dxt, what),
        &dx,
        0.0,
        0.0,
    );
}

/// Both passes: the forward's y and argmax, then dx from `dy` and that argmax.
fn check_max_pool(gpu: &Gpu, what: &str, s: Pool2dShape, x: &[f32], dy: &[f32], storage: Storage) {
    check_max_pool_forward(gpu, what, s, x, storage);
    check_max_pool_backward(gpu, what, s, x, dy, storage);
}

/// Each shape (n, c, h, w, padding) with its x in [-1, 1) and dy in [0.5, 1.5).
fn max_pool_cases(
    shapes: &[(usize, usize, usize, usize, usize)],
) -> impl Iterator<Item = (Pool2dShape, Vec<f32>, Vec<f32>)> {
    shapes.iter().enumerate().map(|(k, &(n, c, h, w, pad))| {
        let s = shape(n, c, h, w, pad);
        let x = values(k as u64 + 1, n * c * h * w, -1.0, 1.0);
        let dy = values(k as u64 + 50, n * c * s.out_h() * s.out_w(), 0.5, 1.5);
        (s, x, dy)
    })
}

/// Max pooling forward, f32 storage: y and argmax.
#[test]
fn max_pool_forward_matches_reference() {
    let gpu = gpu();
    for (s, x, _) in max_pool_cases(MAX_POOL_SHAPES) {
        let what = format!("max pool forward {s:?}");
        check_max_pool_forward(&gpu, &what, s, &x, Storage::F32);
    }
}

/// Max pooling backward, f32 storage: dx from dy and the argmax.
#[test]
fn max_pool_backward_matches_reference() {
    let gpu = gpu();
    for (s, x, dy) in max_pool_cases(MAX_POOL_SHAPES) {
        let what = format!("max pool backward {s:?}");
        check_max_pool_backward(&gpu, &what, s, &x, &dy, Storage::F32);
    }
}

#[test]
fn max_pool_padding_never_wins_on_negative_inputs() {
    // With padding 1 a padded zero would beat every input here.
    let gpu = gpu();
    for &(n, c, h, w) in &[(1, 1, 3, 3), (2, 3, 7, 7), (1, 2, 4, 5)] {
        let s = shape(n, c, h, w, 1);
        let x = values(n as u64 + 7, n * c * h * w, -2.0, -1.0);
        let dy = values(9, n * c * s.out_h() * s.out_w(), 0.5, 1.5);
        let what = format!("negative max pool {s:?}");
        check_max_pool(&gpu, &what, s, &x, &dy, Storage::F32);
    }
}

#[test]
fn max_pool_ties_pick_the_first_in_window_order() {
    // Inputs from {0, 1, 2}: most windows hold ties; all-equal planes tie everywhere.
    let gpu = gpu();
    for &(n, c, h, w, pad) in &[(2, 3, 7, 7, 1), (1, 4, 6, 5, 0), (2, 2, 8, 8, 1)] {
        let s = shape(n, c, h, w, pad);
        let len = n * c * h * w;
        let mut x: Vec<f32> = values(h as u64, len, 0.0, 3.0)
            .iter()
            .map(|v| v.floor())
            .collect();
        x[..h * w].fill(1.0);
        let dy = values(11, n * c * s.out_h() * s.out_w(), 0.5, 1.5);
        let what = format!("tied max pool {s:?}");
        check_max_pool(&gpu, &what, s, &x, &dy, Storage::F32);
    }
}

/// Average pooling on the GPU vs the reference, x and y stored as `storage` says. y starts as
/// 7.0 with a sentinel tail.
fn check_avg_pool(gpu: &Gpu, shapes: &[(usize, usize, usize, usize)], storage: Storage) {
    for &(n, c, h, w) in shapes {
        let s = shape(n, c, h, w, 0);
        let len = n * c * h * w;
        let x = stored(storage.input, values(len as u64 + 3, len, 0.0, 1.0));
        let xt = Tensor::from_f32_as(gpu, &dims(&s), storage.input, &x, "x").unwrap();
        let y_dims = [n, c, h / 2, w / 2];
        let yt = padded(gpu, &y_dims, storage.output, &vec![7.0; len / 4], "y");
        let mut plan = Plan::new();
        pool::avg_pool2x2_forward(&mut plan, gpu, &yt, &xt, s);
        plan.run(gpu).unwrap();
        let mut y = vec![0.0; len / 4];
        cpu::avg_pool2x2_forward(&mut y, &x, s);
        let what = format!("avg pool {s:?} {storage:?}");
        let got = read_padded(gpu, &yt, &what);
        assert_close(&what, &got, &y, 1e-6, rtol(storage.output, 1e-6));
    }
}

/// Forward only: average pooling is applied to the data (super-resolution's low-resolution
/// input), never to an activation that needs a gradient, so it has no backward kernel.
#[test]
fn avg_pool_forward_matches_reference() {
    // Awkward shapes and super-resolution's 28 → 14.
    let shapes = [(1, 1, 2, 2), (2, 3, 6, 4), (1, 1, 2, 34), (5, 1, 28, 28)];
    check_avg_pool(&gpu(), &shapes, Storage::F32);
}

/// The f16 storage variants of max pooling, forward and backward (x, y, dy, dx f16; argmax
/// u32): 1×1, odd sizes, padding 1.
#[test]
fn f16_max_pool_matches_reference() {
    let Some(gpu) = gpu_with_f16() else { return };
    for (s, x, dy) in max_pool_cases(&[(1, 1, 1, 1, 1), (1, 3, 5, 3, 0), (2, 3, 7, 7, 1)]) {
        let what = format!("f16 max pool {s:?}");
        check_max_pool(&gpu, &what, s, &x, &dy, Storage::F16);
    }
}

/// The f16 storage variant of average pooling (the f16 images into the f16 super-resolution
/// input): an odd output length, several channels.
#[test]
fn f16_avg_pool_matches_reference() {
    let Some(gpu) = gpu_with_f16() else { return };
    check_avg_pool(&gpu, &[(1, 1, 2, 34), (2, 3, 6, 4)], Storage::F16);
}
