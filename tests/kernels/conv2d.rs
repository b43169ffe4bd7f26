//! GPU-vs-reference tests for the conv2d kernels: forward, and backward with and without the
//! input gradient, on awkward shapes (batch 1, odd sizes, kernels 1–3, strides 1–3, padding
//! 0–2, more output channels than one tile) and the real model layers. Parameters and gradients
//! sit at nonzero offsets of larger buffers whose other elements must stay untouched, and the
//! outputs start as NaN so every element must be written.

use crate::common::{assert_close, gpu, values};
use gpu_ae::gpu::{Gpu, Plan, Tensor};
use gpu_ae::kernels::conv2d;
use gpu_ae::reference::conv2d as cpu;
use gpu_ae::shapes::{Conv2dShape, ParamOffsets};

const SENTINEL: f32 = 12345.0;

#[allow(clippy::too_many_arguments)]
fn shape(
    n: usize,
    c_in: usize,
    h_in: usize,
    w_in: usize,
    c_out: usize,
    kernel: (usize, usize),
    stride: usize,
    padding: usize,
) -> Conv2dShape {
    Conv2dShape {
        n,
        c_in,
        h_in,
        w_in,
        c_out,
        kernel_h: kernel.0,
        kernel_w: kernel.1,
        stride,
        padding,
    }
}

/// Which part of the kernel pair a check runs and asserts.
#[derive(Clone, Copy, Debug)]
enum Part {
    /// y from x, W, b.
    Forward,
    /// dW, db (and dx when `with_dx`) from a given dy, x and W; independent of the forward pass.
    Backward { with_dx: bool },
}

/// One part on the GPU vs the reference, with W and b at nonzero offsets of a padded parameter
/// buffer (and dW, db at the same offsets of a sentinel-filled gradient buffer). Outputs start as
/// NaN so every element must be written; the parameter buffer must come back unchanged.
fn check(gpu: &Gpu, s: Conv2dShape, part: Part, seed: u64) {
    let what = format!("conv2d {part:?} {s:?}");
    let (oh, ow) = (s.out_h(), s.out_w());
    let x_shape = [s.n, s.c_in, s.h_in, s.w_in];
    let y_shape = [s.n, s.c_out, oh, ow];
    let x = values(seed, x_shape.iter().product(), -1.0, 1.0);
    let w = values(seed + 1, s.weight_len(), -0.5, 0.5);
    let b = values(seed + 2, s.c_out, -1.0, 1.0);
    let dy = values(seed + 3, y_shape.iter().product(), -1.0, 1.0);
    let at = ParamOffsets {
        weight: 3,
        bias: 3 + w.len() + 2,
    };
    let total = at.bias + b.len() + 3;
    let mut flat = vec![SENTINEL; total];
    flat[at.weight..at.weight + w.len()].copy_from_slice(&w);
    flat[at.bias..at.bias + b.len()].copy_from_slice(&b);

    let params = Tensor::from_f32(gpu, &[total], &flat, "params").unwrap();
    let xt = Tensor::from_f32(gpu, &x_shape, &x, "x").unwrap();
    match part {
        Part::Forward => {
            let yt = Tensor::from_f32(gpu, &y_shape, &vec![f32::NAN; dy.len()], "y").unwrap();
            let mut plan = Plan::new();
            conv2d::forward(&mut plan, gpu, &yt, &xt, &params.buffer, at, s);
            plan.run(gpu).unwrap();

            let mut y = vec![0.0; dy.len()];
            cpu::forward(&mut y, &x, &w, &b, s);
            assert_close(
                &format!("{what} y"),
                &yt.read_f32(gpu).unwrap(),
                &y,
                1e-4,
                1e-4,
            );
        }
        Part::Backward { with_dx } => {
            let grads = Tensor::from_f32(gpu, &[total], &vec![SENTINEL; total], "grads").unwrap();
            let dyt = Tensor::from_f32(gpu, &y_shape, &dy, "dy").unwrap();
            let dxt = Tensor::from_f32(gpu, &x_shape, &vec![f32::NAN; x.len()], "dx").unwrap();
            let mut plan = Plan::new();
            let dx_arg = if with_dx { Some(&dxt) } else { None };
            conv2d::backward(
                &mut plan,
                gpu,
                dx_arg,
                &grads.buffer,
                &dyt,
                &xt,
                &params.buffer,
                at,
                s,
            );
            plan.run(gpu).unwrap();

            let mut dx = vec![0.0; x.len()];
            let mut dw = vec![0.0; w.len()];
            let mut db = vec![0.0; b.len()];
            cpu::backward(Some(&mut dx), &mut dw, &mut db, &dy, &x, &w, s);

            let g = grads.read_f32(gpu).unwrap();
            let positions = (s.n * oh * ow) as f32;
            let atol = 1e-5 * positions.max(10.0);
            assert_close(
                &format!("{what} dw"),
                &g[at.weight..at.weight + w.len()],
                &dw,
                atol,
                1e-4,
            );
            assert_close(
                &format!("{what} db"),
                &g[at.bias..at.bias + b.len()],
                &db,
                atol,
                1e-4,
            );
            for (i, &v) in g.iter().enumerate() {
                let inside = (at.weight..at.weight + w.len()).contains(&i)
                    || (at.bias..at.bias + b.len()).contains(&i);
                assert!(
                    inside || v == SENTINEL,
                    "{what}: gradient element {i} outside dW/db was written"
                );
            }
            let got_dx = dxt.read_f32(gpu).unwrap();
            if with_dx {
                assert_close(&format!("{what} dx"), &got_dx, &dx, 1e-4, 1e-4);
            } else {
                assert!(
                    got_dx.iter().all(|v| v.is_nan()),
                    "{what}: dx written although not asked for"
                );
            }
        }
    }
    let p = params.read_f32(gpu).unwrap();
    assert_eq!(p, flat, "{what}: the parameter buffer changed");
}

/// Batch 1, odd sizes, kernels 1–3, strides 1–3, padding 0–2, more output channels than one
/// tile, several tiles in every product.
fn awkward_shapes() -> [Conv2dShape; 10] {
    [
        shape(1, 3, 5, 7, 5, (3, 3), 1, 1),
        shape(2, 3, 5, 7, 5, (2, 2), 2, 0),
        shape(3, 2, 7, 5, 3, (3, 3), 3, 2),
        shape(1, 4, 6, 6, 1, (1, 1), 2, 0),
        shape(2, 2, 5, 7, 6, (3, 2), 2, 1),
        shape(1, 3, 5, 5, 37, (3, 3), 1, 1),
        shape(2, 5, 9, 8, 2, (2, 3), 1, 2),
        shape(1, 1, 1, 1, 3, (1, 1), 1, 0),
        shape(1, 2, 3, 3, 4, (3, 3), 1, 0),
        // Several row tiles in every product, several weight-gradient column tiles.
        shape(1, 37, 4, 5, 70, (3, 3), 2, 1),
    ]
}

/// The models' convolution layers.
fn model_shapes() -> [Conv2dShape; 11] {
    [
        // Strided autoencoder encoder.
        shape(4, 1, 28, 28, 16, (3, 3), 2, 1),
        shape(3, 16, 14, 14, 32, (3, 3), 2, 1),
        // Stride-1 padding-1 convolutions of the pooling autoencoder.
        shape(2, 1, 28, 28, 16, (3, 3), 1, 1),
        shape(2, 16, 14, 14, 8, (3, 3), 1, 1),
        shape(3, 8, 7, 7, 8, (3, 3), 1, 1),
        shape(2, 8, 4, 4, 8, (3, 3), 1, 1),
        shape(2, 8, 8, 8, 8, (3, 3), 1, 1),
        shape(2, 8, 16, 16, 16, (3, 3), 1, 1),
        shape(2, 16, 28, 28, 1, (3, 3), 1, 1),
        shape(2, 8, 28, 28, 1, (3, 3), 1, 1),
        // Padding 0: 16 → 14.
        shape(2, 8, 16, 16, 8, (3, 3), 1, 0),
    ]
}

/// The strided encoder's second layer at the training batch size.
fn batch_128_shape() -> Conv2dShape {
    shape(128, 16, 14, 14, 32, (3, 3), 2, 1)
}

const BACKWARD: Part = Part::Backward { with_dx: true };

#[test]
fn forward_matches_reference_on_awkward_shapes() {
    let gpu = gpu();
    for (i, &s) in awkward_shapes().iter().enumerate() {
        check(&gpu, s, Part::Forward, 10 * i as u64 + 1);
    }
}

#[test]
fn backward_matches_reference_on_awkward_shapes() {
    let gpu = gpu();
    for (i, &s) in awkward_shapes().iter().enumerate() {
        check(&gpu, s, BACKWARD, 10 * i as u64 + 1);
    }
}

#[test]
fn backward_without_dx_matches_reference() {
    let gpu = gpu();
    let without_dx = Part::Backward { with_dx: false };
    check(&gpu, shape(2, 3, 5, 7, 5, (3, 3), 2, 1), without_dx, 7);
    check(&gpu, shape(3, 1, 28, 28, 16, (3, 3), 2, 1), without_dx, 8);
}

#[test]
fn forward_matches_reference_on_model_shapes() {
    let gpu = gpu();
    for (i, &s) in model_shapes().iter().enumerate() {
        check(&gpu, s, Part::Forward, 100 + 10 * i as u64);
    }
}

#[test]
fn backward_matches_reference_on_model_shapes() {
    let gpu = gpu();
    for (i, &s) in model_shapes().iter().enumerate() {
        check(&gpu, s, BACKWARD, 100 + 10 * i as u64);
    }
}

#[test]
fn forward_matches_reference_at_batch_128() {
    check(&gpu(), batch_128_shape(), Part::Forward, 1000);
}

#[test]
fn backward_matches_reference_at_batch_128() {
    check(&gpu(), batch_128_shape(), BACKWARD, 1000);
}
