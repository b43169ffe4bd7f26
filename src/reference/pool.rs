//! CPU reference for `shaders/pool.wgsl` (being written).
