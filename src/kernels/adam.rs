//! Launchers for `shaders/adam.wgsl` (being written).

use crate::gpu::Shader;

pub const SHADER: Shader = Shader {
    name: "adam",
    source: include_str!("../../shaders/adam.wgsl"),
};
