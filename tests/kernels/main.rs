//! GPU kernel tests: every kernel, forward and backward, against its CPU reference on the
//! adapter the environment provides (lavapipe or llvmpipe in CI; `WGPU_BACKEND` selects).
//! Shapes are small and awkward on purpose: odd sizes, batch 1, stride 2, padding.

mod common;

mod activation;
mod adam;
mod batchnorm;
mod checks;
mod condition;
mod conv2d;
mod conv_common;
mod conv_transpose2d;
mod data;
mod iwae;
mod linear;
mod loss;
mod pool;
mod reduce;
mod residual;
mod step;
mod upsample;
mod vae;
