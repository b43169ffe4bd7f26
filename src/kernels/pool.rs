//! Launchers for `shaders/pool.wgsl` (being written).

use crate::gpu::Shader;

pub const SHADER: Shader = Shader {
    name: "pool",
    source: include_str!("../../shaders/pool.wgsl"),
};
