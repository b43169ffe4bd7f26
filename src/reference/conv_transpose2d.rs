//! CPU reference for `shaders/conv_transpose2d.wgsl` (being written).
