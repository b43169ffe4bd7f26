//! CPU reference for `shaders/linear.wgsl` (being written).
