//! CPU reference for `shaders/data.wgsl` (being written).
