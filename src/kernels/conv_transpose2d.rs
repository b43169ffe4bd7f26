//! Launchers for `shaders/conv_transpose2d.wgsl` (being written).

use crate::gpu::Shader;

pub const SHADER: Shader = Shader {
    name: "conv_transpose2d",
    source: include_str!("../../shaders/conv_transpose2d.wgsl"),
};
