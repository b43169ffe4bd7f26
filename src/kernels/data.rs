//! Launchers for `shaders/data.wgsl` (being written).

use crate::gpu::Shader;

pub const SHADER: Shader = Shader {
    name: "data",
    source: include_str!("../../shaders/data.wgsl"),
};
