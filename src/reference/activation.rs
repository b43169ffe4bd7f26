//! CPU reference for `shaders/activation.wgsl` (being written).
