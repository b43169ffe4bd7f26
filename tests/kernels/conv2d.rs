//! GPU-vs-reference tests for the conv2d kernels: forward, and backward with and without the
//! input gradient, on awkward shapes (batch 1, odd sizes, kernels 1–3, strides 1–3, padding
//! 0–2, more output channels than one tile) and the real model layers. Parameters and gradients
//! sit at nonzero offsets of larger buffers whose other elements must stay untouched, and the
//! outputs start as NaN so every element must be written.

use crate::common::{Storage, gpu, gpu_with_f16};
use crate::conv_common::{
    BACKWARD, Part, check, check_activations, check_every_part, check_on_both_grids,
};
use gpu_ae::shapes::Conv2dShape;

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

/// Shapes for the fused activations: stride 1 and 2, batch 1, more channels than one tile.
fn fused_shapes() -> [Conv2dShape; 3] {
    [
        shape(1, 3, 5, 7, 5, (3, 3), 1, 1),
        shape(2, 3, 7, 6, 37, (3, 3), 2, 1),
        shape(3, 16, 14, 14, 32, (3, 3), 2, 1),
    ]
}

/// The strided encoder's second layer at the training batch size.
fn batch_128_shape() -> Conv2dShape {
    shape(128, 16, 14, 14, 32, (3, 3), 2, 1)
}

#[test]
fn forward_matches_reference_on_awkward_shapes() {
    check_on_both_grids(
        awkward_shapes()
            .iter()
            .enumerate()
            .map(|(i, &s)| (s, 10 * i as u64 + 1)),
        Part::Forward,
    );
}

#[test]
fn backward_matches_reference_on_awkward_shapes() {
    check_on_both_grids(
        awkward_shapes()
            .iter()
            .enumerate()
            .map(|(i, &s)| (s, 10 * i as u64 + 1)),
        BACKWARD,
    );
}

#[test]
fn backward_without_dx_matches_reference() {
    let gpu = gpu();
    let without_dx = Part::Backward { with_dx: false };
    check(
        &gpu,
        shape(2, 3, 5, 7, 5, (3, 3), 2, 1),
        without_dx,
        7,
        Storage::F32,
    );
    check(
        &gpu,
        shape(3, 1, 28, 28, 16, (3, 3), 2, 1),
        without_dx,
        8,
        Storage::F32,
    );
}

#[test]
fn forward_matches_reference_on_model_shapes() {
    check_on_both_grids(
        model_shapes()
            .iter()
            .enumerate()
            .map(|(i, &s)| (s, 100 + 10 * i as u64)),
        Part::Forward,
    );
}

#[test]
fn backward_matches_reference_on_model_shapes() {
    check_on_both_grids(
        model_shapes()
            .iter()
            .enumerate()
            .map(|(i, &s)| (s, 100 + 10 * i as u64)),
        BACKWARD,
    );
}

#[test]
fn forward_matches_reference_at_batch_128() {
    check(&gpu(), batch_128_shape(), Part::Forward, 1000, Storage::F32);
}

#[test]
fn backward_matches_reference_at_batch_128() {
    check(&gpu(), batch_128_shape(), BACKWARD, 1000, Storage::F32);
}

#[test]
fn forward_fuses_each_activation() {
    check_activations(
        &gpu(),
        &fused_shapes(),
        Part::ForwardWith,
        3000,
        Storage::F32,
    );
}

#[test]
fn backward_fuses_each_activation_derivative() {
    check_activations(
        &gpu(),
        &fused_shapes(),
        Part::BackwardThrough,
        3500,
        Storage::F32,
    );
}

/// The f16 storage variants of every part, the fused activations included (x, y, dy, dx f16 as
/// in every conv layer with `--precision f16`; W, b, dW, db f32): batch 1 with odd element
/// counts in x and y, stride 2 with padding 0, more output channels than one tile at stride 2.
#[test]
fn f16_storage_matches_reference() {
    let Some(gpu) = gpu_with_f16() else { return };
    let shapes = [
        shape(1, 3, 5, 7, 5, (3, 3), 1, 1),
        shape(2, 3, 5, 7, 5, (2, 2), 2, 0),
        shape(2, 3, 7, 6, 37, (3, 3), 2, 1),
    ];
    check_every_part(&gpu, &shapes, 5000, Storage::F16);
}
