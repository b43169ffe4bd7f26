//! gpu-ae: convolutional autoencoders and VAEs trained with hand-written WGSL compute kernels
//! on wgpu (Vulkan, Metal, DX12, GL, and WebGPU in a browser: the crate also builds for
//! `wasm32-unknown-unknown`), with a plain-Rust CPU reference for every kernel.
//!
//! Layers of the crate, bottom up: [`gpu`] (device, tensors, plans) → [`kernels`] (one launcher
//! per WGSL family, with its CPU twin in [`reference`](mod@reference)) → [`layers`] (one file per layer kind, stacks) → [`models`]
//! (architectures) → [`graph`] (a model on the GPU for one batch size) → [`train`],
//! [`evaluate`], [`bench`](mod@bench); [`data`] (the data wing: IDX files and image folders
//! behind one seam, the Pillow-identical decoder, the cache, the digest), [`checkpoint`],
//! [`viz`] and [`files`] do the host I/O. [`platform`] holds
//! everything a web page does differently (waiting for the GPU, threads, the clock).

pub mod apply;
pub mod bench;
pub mod checkpoint;
pub mod console;
pub mod counter_rng;
pub mod data;
pub mod error;
pub mod evaluate;
pub mod files;
pub mod gpu;
pub mod gpu_split;
pub mod graph;
pub mod host_rng;
pub mod import;
pub mod infer;
pub mod kernels;
pub mod layers;
pub mod likelihood;
pub mod metadata;
pub mod models;
pub mod platform;
pub mod projection;
pub mod reference;
pub mod run;
pub mod schedule;
pub mod shapes;
pub mod split_plans;
pub mod stop;
pub mod train;
pub mod train_run;
pub mod viz;

pub use error::{Error, Result};
