//! One Rust launcher module per WGSL kernel family in `shaders/`. Each launcher records
//! dispatches into a [`Plan`](crate::gpu::Plan); arguments are ordered outputs, inputs, sizes
//! (llm.c style), and every launcher has a CPU twin of the same name in
//! [`reference`](crate::reference).

pub mod activation;
pub mod adam;
pub mod conv2d;
pub mod conv_transpose2d;
pub mod data;
pub mod linear;
pub mod loss;
pub mod pool;
pub mod reduce;
pub mod step;
pub mod vae;

use crate::gpu::Shader;

/// Every shader in `shaders/` (the naga test checks that none is missing).
pub const SHADERS: &[Shader] = &[
    activation::SHADER,
    adam::SHADER,
    conv2d::SHADER,
    data::SHADER,
    linear::SHADER,
    loss::SHADER,
    pool::SHADER,
    reduce::SHADER,
    step::SHADER,
    vae::SHADER,
];
