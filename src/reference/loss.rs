//! CPU reference for `shaders/loss.wgsl` (being written).
