//! Launchers for `shaders/linear.wgsl` (being written).

use crate::gpu::Shader;

pub const SHADER: Shader = Shader {
    name: "linear",
    source: include_str!("../../shaders/linear.wgsl"),
};
