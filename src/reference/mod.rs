//! Plain-Rust CPU reference for every GPU kernel family: the same function names and argument
//! order as [`kernels`](crate::kernels), written as obvious loops. The tests' oracle; its own
//! backward passes are checked by finite differences (`fd`).

pub mod activation;
pub mod adam;
pub mod batchnorm;
pub mod condition;
pub mod conv2d;
pub mod conv_transpose2d;
pub mod data;
pub mod iwae;
pub mod linear;
pub mod loss;
pub mod pool;
pub mod reduce;
pub mod residual;
pub mod step;
pub mod upsample;
pub mod vae;

#[cfg(test)]
pub(crate) mod fd;
