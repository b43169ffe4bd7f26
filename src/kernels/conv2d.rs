//! Launchers for `shaders/conv2d.wgsl` (being written).

use crate::gpu::Shader;

pub const SHADER: Shader = Shader {
    name: "conv2d",
    source: include_str!("../../shaders/conv2d.wgsl"),
};
