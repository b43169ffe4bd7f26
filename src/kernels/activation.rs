//! Launchers for `shaders/activation.wgsl` (being written).

use crate::gpu::Shader;

pub const SHADER: Shader = Shader {
    name: "activation",
    source: include_str!("../../shaders/activation.wgsl"),
};
