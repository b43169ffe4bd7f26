//! gpu-ae: convolutional autoencoders and VAEs trained with hand-written WGSL compute kernels
//! on wgpu (Vulkan, Metal, DX12, GL), with a plain-Rust CPU reference for every kernel.

pub mod checkpoint;
pub mod data;
pub mod error;
pub mod files;
pub mod gpu;
pub mod kernels;
pub mod reference;
pub mod shapes;
pub mod viz;

pub use error::{Error, Result};
