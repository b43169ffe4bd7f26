//! GPU-vs-reference tests for max pooling (with padding, ties and argmax), 2× nearest-neighbour
//! upsampling and 2×2 average pooling.

use crate::common::{assert_close, gpu, values};
use gpu_ae::gpu::{Plan, Tensor, grid_1d};
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

/// Runs the forward pass on the GPU and checks y and argmax against the reference. y and argmax
/// start as sentinels, so every element must be written.
fn check_max_pool_forward(what: &str, s: Pool2dShape, x: &[f32]) {
    let gpu = gpu();
    let out = s.n * s.c * s.out_h() * s.out_w();
    let xt = Tensor::from_f32(&gpu, &dims(&s), x, "x").unwrap();
    let yt = Tensor::from_f32(&gpu, &out_dims(&s), &vec![7.0; out], "y").unwrap();
    let at = Tensor::from_u32(&gpu, &out_dims(&s), &vec![u32::MAX; out], "argmax").unwrap();
    let mut plan = Plan::new();
    pool::max_pool2x2_forward(&mut plan, &gpu, &yt, &at, &xt, s);
    plan.run(&gpu).unwrap();

    let (mut y, mut arg) = (vec![0.0; out], vec![0; out]);
    cpu::max_pool2x2_forward(&mut y, &mut arg, x, s);
    assert_eq!(at.read_u32(&gpu).unwrap(), arg, "{what}: argmax");
    assert_close(
        &format!("{what}: y"),
        &yt.read_f32(&gpu).unwrap(),
        &y,
        0.0,
        0.0,
    );
}

/// Runs the backward pass on the GPU from a given dy and the reference's argmax for `x` (not the
/// GPU forward's), and checks dx against the reference.
fn check_max_pool_backward(what: &str, s: Pool2dShape, x: &[f32], dy: &[f32]) {
    let gpu = gpu();
    let out = s.n * s.c * s.out_h() * s.out_w();
    let len = x.len();
    let (mut y, mut arg) = (vec![0.0; out], vec![0; out]);
    cpu::max_pool2x2_forward(&mut y, &mut arg, x, s);
    let at = Tensor::from_u32(&gpu, &out_dims(&s), &arg, "argmax").unwrap();
    let dyt = Tensor::from_f32(&gpu, &out_dims(&s), dy, "dy").unwrap();
    // Sentinels in dx: the backward pass must overwrite every cell, winners or not.
    let dxt = Tensor::from_f32(&gpu, &dims(&s), &vec![7.0; len], "dx").unwrap();
    let mut plan = Plan::new();
    pool::max_pool2x2_backward(&mut plan, &gpu, &dxt, &dyt, &at, s);
    plan.run(&gpu).unwrap();

    let mut dx = vec![0.0; len];
    cpu::max_pool2x2_backward(&mut dx, dy, &arg, s);
    assert_close(
        &format!("{what}: dx"),
        &dxt.read_f32(&gpu).unwrap(),
        &dx,
        0.0,
        0.0,
    );
}

/// Both passes: the forward's y and argmax, then dx from `dy` and that argmax.
fn check_max_pool(what: &str, s: Pool2dShape, x: &[f32], dy: &[f32]) {
    check_max_pool_forward(what, s, x);
    check_max_pool_backward(what, s, x, dy);
}

#[test]
fn max_pool_forward_matches_reference() {
    for (k, &(n, c, h, w, pad)) in MAX_POOL_SHAPES.iter().enumerate() {
        let s = shape(n, c, h, w, pad);
        let x = values(k as u64 + 1, n * c * h * w, -1.0, 1.0);
        check_max_pool_forward(&format!("max pool forward {s:?}"), s, &x);
    }
}

#[test]
fn max_pool_backward_matches_reference() {
    for (k, &(n, c, h, w, pad)) in MAX_POOL_SHAPES.iter().enumerate() {
        let s = shape(n, c, h, w, pad);
        let x = values(k as u64 + 1, n * c * h * w, -1.0, 1.0);
        let dy = values(k as u64 + 50, n * c * s.out_h() * s.out_w(), 0.5, 1.5);
        check_max_pool_backward(&format!("max pool backward {s:?}"), s, &x, &dy);
    }
}

#[test]
fn max_pool_padding_never_wins_on_negative_inputs() {
    // With padding 1 a padded zero would beat every input here.
    for &(n, c, h, w) in &[(1, 1, 3, 3), (2, 3, 7, 7), (1, 2, 4, 5)] {
        let s = shape(n, c, h, w, 1);
        let x = values(n as u64 + 7, n * c * h * w, -2.0, -1.0);
        let dy = values(9, n * c * s.out_h() * s.out_w(), 0.5, 1.5);
        check_max_pool(&format!("negative max pool {s:?}"), s, &x, &dy);
    }
}

#[test]
fn max_pool_ties_pick_the_first_in_window_order() {
    // Inputs from {0, 1, 2}: most windows hold ties; all-equal planes tie everywhere.
    for &(n, c, h, w, pad) in &[(2, 3, 7, 7, 1), (1, 4, 6, 5, 0), (2, 2, 8, 8, 1)] {
        let s = shape(n, c, h, w, pad);
        let len = n * c * h * w;
        let mut x: Vec<f32> = values(h as u64, len, 0.0, 3.0)
            .iter()
            .map(|v| v.floor())
            .collect();
        x[..h * w].fill(1.0);
        let dy = values(11, n * c * s.out_h() * s.out_w(), 0.5, 1.5);
        check_max_pool(&format!("tied max pool {s:?}"), s, &x, &dy);
    }
}

/// Awkward shapes (n, c, h, w) and the decoders' 4 → 8, 8 → 16, 14 → 28.
const UPSAMPLE_SHAPES: &[(usize, usize, usize, usize)] = &[
    (1, 1, 1, 1),
    (2, 3, 5, 3),
    (1, 8, 4, 4),
    (3, 8, 8, 8),
    (2, 16, 14, 14),
    (1, 1, 33, 17),
];

#[test]
fn upsample_forward_matches_reference() {
    let gpu = gpu();
    for &(n, c, h, w) in UPSAMPLE_SHAPES {
        let s = shape(n, c, h, w, 0);
        let len = n * c * h * w;
        let up = [n, c, 2 * h, 2 * w];
        let x = values(len as u64, len, -1.0, 1.0);
        let xt = Tensor::from_f32(&gpu, &dims(&s), &x, "x").unwrap();
        let yt = Tensor::from_f32(&gpu, &up, &vec![7.0; 4 * len], "y").unwrap();
        let mut plan = Plan::new();
        pool::upsample2x_forward(&mut plan, &gpu, &yt, &xt, s);
        plan.run(&gpu).unwrap();
        let mut y = vec![0.0; 4 * len];
        cpu::upsample2x_forward(&mut y, &x, s);
        assert_close(
            &format!("upsample forward {s:?}"),
            &yt.read_f32(&gpu).unwrap(),
            &y,
            0.0,
            0.0,
        );
    }
}

#[test]
fn upsample_backward_matches_reference() {
    let gpu = gpu();
    for &(n, c, h, w) in UPSAMPLE_SHAPES {
        let s = shape(n, c, h, w, 0);
        let len = n * c * h * w;
        let up = [n, c, 2 * h, 2 * w];
        let dy = values(len as u64 + 1, 4 * len, -1.0, 1.0);
        let dyt = Tensor::from_f32(&gpu, &up, &dy, "dy").unwrap();
        let dxt = Tensor::from_f32(&gpu, &dims(&s), &vec![7.0; len], "dx").unwrap();
        let mut plan = Plan::new();
        pool::upsample2x_backward(&mut plan, &gpu, &dxt, &dyt, s);
        plan.run(&gpu).unwrap();
        let mut dx = vec![0.0; len];
        cpu::upsample2x_backward(&mut dx, &dy, s);
        assert_close(
            &format!("upsample backward {s:?}"),
            &dxt.read_f32(&gpu).unwrap(),
            &dx,
            1e-6,
            1e-6,
        );
    }
}

#[test]
fn upsample_forward_beyond_one_grid_dimension() {
    // 4·2050² = 16.8M outputs > 65535 workgroups of 256: exercises the 2-D grid split.
    let gpu = gpu();
    let s = shape(1, 1, 2050, 2050, 0);
    let len = 2050 * 2050;
    // Adapters allowing more than 65535 groups per dimension run it unsplit (still checked).
    if gpu.limits.max_compute_workgroups_per_dimension <= 65535 {
        assert!(
            grid_1d(&gpu, 4 * len, 256)[1] > 1,
            "shape too small to split the grid"
        );
    }
    let x = values(77, len, -1.0, 1.0);
    let xt = Tensor::from_f32(&gpu, &dims(&s), &x, "x").unwrap();
    let yt = Tensor::zeros(&gpu, &[1, 1, 4100, 4100], "y").unwrap();
    let mut plan = Plan::new();
    pool::upsample2x_forward(&mut plan, &gpu, &yt, &xt, s);
    plan.run(&gpu).unwrap();
    let mut y = vec![0.0; 4 * len];
    cpu::upsample2x_forward(&mut y, &x, s);
    assert_close(
        "upsample forward 2050²",
        &yt.read_f32(&gpu).unwrap(),
        &y,
        0.0,
        0.0,
    );
}

/// Forward only: average pooling is applied to the data (super-resolution's low-resolution
/// input), never to an activation that needs a gradient, so it has no backward kernel.
#[test]
fn avg_pool_forward_matches_reference() {
    let gpu = gpu();
    // Awkward shapes and super-resolution's 28 → 14.
    for &(n, c, h, w) in &[(1, 1, 2, 2), (2, 3, 6, 4), (1, 1, 2, 34), (5, 1, 28, 28)] {
        let s = shape(n, c, h, w, 0);
        let len = n * c * h * w;
        let x = values(len as u64 + 3, len, 0.0, 1.0);
        let xt = Tensor::from_f32(&gpu, &dims(&s), &x, "x").unwrap();
        let yt = Tensor::from_f32(&gpu, &[n, c, h / 2, w / 2], &vec![7.0; len / 4], "y").unwrap();
        let mut plan = Plan::new();
        pool::avg_pool2x2_forward(&mut plan, &gpu, &yt, &xt, s);
        plan.run(&gpu).unwrap();
        let mut y = vec![0.0; len / 4];
        cpu::avg_pool2x2_forward(&mut y, &x, s);
        assert_close(
            &format!("avg pool {s:?}"),
            &yt.read_f32(&gpu).unwrap(),
            &y,
            1e-6,
            1e-6,
        );
    }
}
