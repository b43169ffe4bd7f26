//! CPU reference for `shaders/step.wgsl` (being written).
