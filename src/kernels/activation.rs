//! Launchers for `shaders/activation.wgsl`: element-wise ReLU, LeakyReLU, sigmoid and tanh,
//! forward and backward. The backward pass works from the forward output `y`, so layers keep
//! only `y`. Each invocation handles `PER` elements spaced one grid apart (coalesced).

use crate::gpu::{Gpu, Plan, Shader, Tensor, grid_1d};
use crate::shapes::Activation;

pub const SHADER: Shader = Shader {
    name: "activation",
    source: concat!(
        include_str!("../../shaders/act.wgsl"),
        include_str!("../../shaders/activation.wgsl")
    ),
};

/// Workgroup size and elements per invocation (`WG` and `PER` in the shader).
const WG: u32 = 256;
const PER: usize = 4;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    numel: u32,
    threads: u32,
    kind: u32,
    slope: f32,
}

fn params(numel: usize, act: Activation) -> Params {
    let (kind, slope) = Activation::code(Some(act));
    Params {
        numel: numel as u32,
        threads: numel.div_ceil(PER) as u32,
        kind,
        slope,
    }
}

/// `y = act(x)` element-wise (any shape; `y` and `x` distinct buffers of equal size).
pub fn forward(plan: &mut Plan, gpu: &Gpu, y: &Tensor, x: &Tensor, act: Activation) {
    assert_eq!(
        y.numel(),
        x.numel(),
        "activation forward: y and x sizes differ"
    );
    let params = params(x.numel(), act);
    plan.dispatch(
        gpu,
        &SHADER,
        "forward",
        &[],
        &params,
        &[(1, x.bind()), (2, y.bind())],
        grid_1d(gpu, params.threads as usize, WG),
    );
}

/// dx = dy · act'(·), computed from the forward OUTPUT y (valid for all four; LeakyRelu slope > 0)
pub fn backward(plan: &mut Plan, gpu: &Gpu, dx: &Tensor, dy: &Tensor, y: &Tensor, act: Activation) {
    let numel = y.numel();
    assert!(
        dx.numel() == numel && dy.numel() == numel,
        "activation backward: dx, dy and y sizes differ"
    );
    if let Activation::LeakyRelu(slope) = act {
        assert!(
            slope > 0.0,
            "LeakyRelu backward from y needs slope > 0, got {slope}"
        );
    }
    let params = params(numel, act);
    plan.dispatch(
        gpu,
        &SHADER,
        "backward",
        &[],
        &params,
        &[(1, y.bind()), (2, dx.bind()), (3, dy.bind())],
        grid_1d(gpu, params.threads as usize, WG),
    );
}
