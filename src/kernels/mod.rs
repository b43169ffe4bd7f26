//! One Rust launcher module per WGSL kernel family in `shaders/`. Each launcher records
//! dispatches into a [`Plan`](crate::gpu::Plan); arguments are ordered outputs, inputs, sizes
//! (llm.c style), and every launcher has a CPU twin of the same name in
//! [`reference`](crate::reference).

pub mod activation;
pub mod adam;
pub mod conv2d;
pub mod conv_transpose2d;
pub mod data;
pub mod grads;
pub mod linear;
pub mod loss;
pub mod pool;
pub mod reduce;
pub mod step;
pub mod vae;

use crate::gpu::{Shader, Tensor};
use crate::shapes::Activation;

/// Where a layer's backward pass writes the gradient of its input: `dx`, or, when the layer
/// input is the output of activation `act`, the gradient of that activation's input (its
/// backward pass fused into the layer's input-gradient product, computed from the layer input).
#[derive(Clone, Copy)]
pub struct InputGrad<'a> {
    pub dx: &'a Tensor,
    pub act: Option<Activation>,
}

impl<'a> InputGrad<'a> {
    /// The plain input gradient, no activation fused.
    pub fn plain(dx: &'a Tensor) -> InputGrad<'a> {
        InputGrad { dx, act: None }
    }
}

/// Every shader in `shaders/` (the naga test checks that none is missing).
pub const SHADERS: &[Shader] = &[
    activation::SHADER,
    adam::SHADER,
    conv2d::SHADER,
    data::SHADER,
    grads::SHADER,
    linear::SHADER,
    loss::SHADER,
    pool::SHADER,
    reduce::SHADER,
    step::SHADER,
    vae::SHADER,
];
