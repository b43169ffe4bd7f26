//! CPU reference for `shaders/conv2d.wgsl` (being written).
