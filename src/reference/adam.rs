//! CPU reference for `shaders/adam.wgsl` (being written).
