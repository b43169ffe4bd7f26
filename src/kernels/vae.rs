//! Launchers for `shaders/vae.wgsl` (being written).

use crate::gpu::Shader;

pub const SHADER: Shader = Shader {
    name: "vae",
    source: include_str!("../../shaders/vae.wgsl"),
};
