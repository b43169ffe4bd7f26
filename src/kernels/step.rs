//! Launchers for `shaders/step.wgsl` (being written).

use crate::gpu::Shader;

pub const SHADER: Shader = Shader {
    name: "step",
    source: include_str!("../../shaders/step.wgsl"),
};
