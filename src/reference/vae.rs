//! CPU reference for `shaders/vae.wgsl` (being written).
