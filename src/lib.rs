//! gpu-ae: convolutional autoencoders and VAEs trained with hand-written WGSL compute kernels
//! on wgpu (Vulkan, Metal, DX12, GL, and WebGPU in a browser: the crate also builds for
//! `wasm32-unknown-unknown`), with a plain-Rust CPU reference for every kernel.
//!
//! Layers of the crate, bottom up: [`gpu`] (device, tensors, plans) → [`kernels`] (one launcher
//! per WGSL family, with its CPU twin in [`reference`](mod@reference)) → [`model`] (architectures,
//! [`model::layers`]: one file per layer kind, [`model::graph`]: a model on the GPU for one batch
//! size, [`model::import`]) → [`run`] (a training run: the trainer, the folder, evaluation, the
//! likelihood estimate, the benchmark) and [`pictures`] (inference and what it draws); [`data`]
//! (the data wing: IDX files and image folders behind one seam, the Pillow-identical decoder,
//! the cache, the digest), [`metadata`], [`checkpoint`] and [`files`] do the host I/O.
//! [`platform`] holds everything a web page does differently (waiting for the GPU, threads, the
//! clock).

pub mod checkpoint;
pub mod console;
pub mod counter_rng;
pub mod data;
pub mod error;
pub mod files;
pub mod gpu;
pub mod host_rng;
pub mod kernels;
pub mod metadata;
pub mod model;
pub mod pictures;
pub mod platform;
pub mod reference;
pub mod run;
pub mod shapes;

pub use error::{Error, Result};
