//! Launchers for `shaders/upsample.wgsl`: nearest-neighbour resizing of `[N, C, H, W]` to any
//! `[N, C, OH, OW]` (PyTorch's `mode="nearest"`), forward and backward, the backward pass a
//! gather that may fold in the derivative of the activation that produced the input.

use crate::gpu::{Gpu, Plan, Shader, Tensor, grid_1d};
use crate::kernels::InputGrad;
use crate::shapes::{Activation, UpsampleShape};

pub const SHADER: Shader = Shader {
    name: "upsample",
    source: concat!(
        include_str!("../../shaders/act.wgsl"),
        include_str!("../../shaders/upsample.wgsl")
    ),
};

const WG: u32 = 256;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    planes: u32,
    h: u32,
    w: u32,
    oh: u32,
    ow: u32,
    total: u32,
    dact: u32,
    slope: f32,
}

fn params(s: UpsampleShape, total: usize, dact: Option<Activation>) -> Params {
    let (dact, slope) = Activation::code(dact);
    Params {
        planes: (s.n * s.c) as u32,
        h: s.h_in as u32,
        w: s.w_in as u32,
        oh: s.h_out as u32,
        ow: s.w_out as u32,
        total: total as u32,
        dact,
        slope,
    }
}

/// `y [N, C, h_out, w_out]` = nearest-neighbour resize of `x [N, C, h_in, w_in]`.
pub fn nearest_forward(plan: &mut Plan, gpu: &Gpu, y: &Tensor, x: &Tensor, s: UpsampleShape) {
    assert!(
        x.numel() == s.input_len() && y.numel() == s.output_len(),
        "nearest upsample forward: x/y size"
    );
    let p = params(s, s.output_len(), None);
    plan.dispatch(
        gpu,
        &SHADER,
        "nearest_forward",
        &[],
        &p,
        &[(1, x.bind()), (2, y.bind())],
        grid_1d(gpu, s.output_len(), WG),
    );
}

/// `dx [N, C, h_in, w_in]` = the sum of `dy` over the output cells that copied each input
/// cell; with `dx.act`, times that activation's derivative at `x` (the layer input, the
/// activation's output).
pub fn nearest_backward(
    plan: &mut Plan,
    gpu: &Gpu,
    dx: InputGrad,
    dy: &Tensor,
    x: &Tensor,
    s: UpsampleShape,
) {
    assert!(
        dx.dx.numel() == s.input_len()
            && x.numel() == s.input_len()
            && dy.numel() == s.output_len(),
        "nearest upsample backward: dx/x/dy size"
    );
    let p = params(s, s.input_len(), dx.act);
    plan.dispatch(
        gpu,
        &SHADER,
        "nearest_backward",
        &[],
        &p,
        &[(1, dy.bind()), (2, dx.dx.bind()), (3, x.bind())],
        grid_1d(gpu, s.input_len(), WG),
    );
}
