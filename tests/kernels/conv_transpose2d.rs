//! GPU-vs-reference tests for the conv_transpose2d kernels: forward, and backward with and
//! without the input gradient, on awkward shapes (batch 1, odd sizes, kernels 1–3, strides 1–3,
//! padding 0–2, output padding 0–1, phases no kernel tap reaches, more output channels than one
//! tile) and the real decoder layers. Parameters and gradients sit at nonzero offsets of larger
//! buffers whose other elements must stay untouched, and the outputs start as NaN so every
//! element must be written.

use crate::common::{Storage, gpu, gpu_with_f16};
use crate::conv_common::{
    BACKWARD, Part, check, check_activations, check_every_part, check_on_both_grids,
};
use gpu_ae::shapes::ConvTranspose2dShape;

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
    output_padding: usize,
) -> ConvTranspose2dShape {
    ConvTranspose2dShape {
        n,
        c_in,
        h_in,
        w_in,
        c_out,
        kernel_h: kernel.0,
        kernel_w: kernel.1,
        stride,
        padding,
        output_padding,
    }
}

/// Batch 1, odd sizes, kernels 1–3, strides 1–3, padding 0–2, output padding 0–1, phases no
/// kernel tap reaches, more output channels than one tile, several tiles in every product.
fn awkward_shapes() -> [ConvTranspose2dShape; 10] {
    [
        shape(1, 3, 5, 7, 5, (3, 3), 1, 1, 0),
        shape(2, 3, 5, 7, 5, (3, 3), 2, 1, 1),
        shape(3, 2, 4, 3, 3, (3, 3), 3, 2, 1),
        // Kernel 1, stride 2: odd output rows and columns get no tap, only the bias.
        shape(1, 4, 3, 4, 2, (1, 1), 2, 0, 1),
        shape(2, 2, 5, 4, 6, (3, 2), 2, 1, 0),
        shape(1, 3, 5, 5, 37, (3, 3), 1, 1, 0),
        shape(2, 5, 4, 5, 1, (2, 3), 3, 0, 1),
        shape(1, 1, 1, 1, 3, (2, 2), 1, 0, 0),
        shape(2, 3, 3, 3, 4, (2, 2), 2, 0, 0),
        // Several row tiles in every product, several weight-gradient column tiles.
        shape(1, 70, 3, 4, 37, (3, 3), 2, 1, 1),
    ]
}

/// The decoder layers, with their seeds.
fn model_shapes() -> [(ConvTranspose2dShape, u64); 2] {
    [
        (shape(3, 32, 7, 7, 16, (3, 3), 2, 1, 1), 200),
        (shape(2, 16, 14, 14, 1, (3, 3), 2, 1, 1), 210),
    ]
}

/// Shapes for the fused activations: stride 1 and 2 (with output padding), batch 1, more
/// channels than one tile.
fn fused_shapes() -> [ConvTranspose2dShape; 3] {
    [
        shape(1, 3, 5, 7, 5, (3, 3), 1, 1, 0),
        shape(2, 5, 4, 3, 37, (3, 3), 2, 1, 1),
        shape(3, 32, 7, 7, 16, (3, 3), 2, 1, 1),
    ]
}

/// The decoder's first layer at the training batch size.
fn batch_128_shape() -> ConvTranspose2dShape {
    shape(128, 32, 7, 7, 16, (3, 3), 2, 1, 1)
}

#[test]
fn forward_matches_reference_on_awkward_shapes() {
    check_on_both_grids(
        awkward_shapes()
            .iter()
            .enumerate()
            .map(|(i, &s)| (s, 10 * i as u64 + 3)),
        Part::Forward,
    );
}

#[test]
fn backward_matches_reference_on_awkward_shapes() {
    check_on_both_grids(
        awkward_shapes()
            .iter()
            .enumerate()
            .map(|(i, &s)| (s, 10 * i as u64 + 3)),
        BACKWARD,
    );
}

#[test]
fn backward_without_dx_matches_reference() {
    let gpu = gpu();
    let without_dx = Part::Backward { with_dx: false };
    check(
        &gpu,
        shape(2, 3, 5, 7, 5, (3, 3), 2, 1, 1),
        without_dx,
        9,
        Storage::F32,
    );
    check(
        &gpu,
        shape(2, 16, 14, 14, 1, (3, 3), 2, 1, 1),
        without_dx,
        19,
        Storage::F32,
    );
}

#[test]
fn forward_matches_reference_on_model_shapes() {
    check_on_both_grids(model_shapes(), Part::Forward);
}

#[test]
fn backward_matches_reference_on_model_shapes() {
    check_on_both_grids(model_shapes(), BACKWARD);
}

#[test]
fn forward_matches_reference_at_batch_128() {
    check(&gpu(), batch_128_shape(), Part::Forward, 2000, Storage::F32);
}

#[test]
fn backward_matches_reference_at_batch_128() {
    check(&gpu(), batch_128_shape(), BACKWARD, 2000, Storage::F32);
}

#[test]
fn forward_fuses_each_activation() {
    check_activations(
        &gpu(),
        &fused_shapes(),
        Part::ForwardWith,
        4000,
        Storage::F32,
    );
}

#[test]
fn backward_fuses_each_activation_derivative() {
    check_activations(
        &gpu(),
        &fused_shapes(),
        Part::BackwardThrough,
        4500,
        Storage::F32,
    );
}

/// The f16 storage variants of every part, the fused activations included (x, y, dy, dx f16 as
/// in every conv layer with `--precision f16`; W, b, dW, db f32): batch 1 with odd element
/// counts in x and y, stride 2 with output padding, a kernel-1 stride-2 layer whose odd rows and
/// columns get only the bias.
#[test]
fn f16_storage_matches_reference() {
    let Some(gpu) = gpu_with_f16() else { return };
    let shapes = [
        shape(1, 3, 5, 7, 5, (3, 3), 1, 1, 0),
        shape(2, 5, 4, 3, 37, (3, 3), 2, 1, 1),
        shape(1, 4, 3, 4, 2, (1, 1), 2, 0, 1),
    ];
    check_every_part(&gpu, &shapes, 7000, Storage::F16);
}
