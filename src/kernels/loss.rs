//! Launchers for `shaders/loss.wgsl` (being written).

use crate::gpu::Shader;

pub const SHADER: Shader = Shader {
    name: "loss",
    source: include_str!("../../shaders/loss.wgsl"),
};
