//! Launchers for `shaders/residual.wgsl`: a residual block's skip connection, element-wise over
//! any shape: `y = act(x + r)` forward, and the two gradients that reach the block input added
//! (with the derivative of the activation that produced the input folded in) backward.

use crate::gpu::{Gpu, Plan, Shader, Tensor, grid_1d};
use crate::kernels::InputGrad;
use crate::shapes::Activation;

pub const SHADER: Shader = Shader {
    name: "residual",
    source: concat!(
        include_str!("../../shaders/act.wgsl"),
        include_str!("../../shaders/residual.wgsl")
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

fn params(numel: usize, act: Option<Activation>) -> Params {
    let (kind, slope) = Activation::code(act);
    Params {
        numel: numel as u32,
        threads: numel.div_ceil(PER) as u32,
        kind,
        slope,
    }
}

/// `y = act(x + r)` element-wise (`y`, `x`, `r` of one size).
pub fn add_act(plan: &mut Plan, gpu: &Gpu, y: &Tensor, x: &Tensor, r: &Tensor, act: Activation) {
    let numel = y.numel();
    assert!(
        x.numel() == numel && r.numel() == numel,
        "residual add: y, x and r sizes differ"
    );
    let p = params(numel, Some(act));
    plan.dispatch(
        gpu,
        &SHADER,
        "add_act",
        &[],
        &p,
        &[(1, x.bind()), (2, r.bind()), (3, y.bind())],
        grid_1d(gpu, p.threads as usize, WG),
    );
}

/// `dx = a + b`, or with `dx.act`, `act'(x)·(a + b)` through `x`, that activation's output.
pub fn add_grads(plan: &mut Plan, gpu: &Gpu, dx: InputGrad, a: &Tensor, b: &Tensor, x: &Tensor) {
    let numel = dx.dx.numel();
    assert!(
        a.numel() == numel && b.numel() == numel && x.numel() == numel,
        "residual gradients: dx, a, b and x sizes differ"
    );
    if let Some(Activation::LeakyRelu(slope)) = dx.act {
        assert!(slope > 0.0, "LeakyRelu backward from y needs slope > 0");
    }
    let p = params(numel, dx.act);
    plan.dispatch(
        gpu,
        &SHADER,
        "add_grads",
        &[],
        &p,
        &[
            (1, a.bind()),
            (2, b.bind()),
            (3, dx.dx.bind()),
            (4, x.bind()),
        ],
        grid_1d(gpu, p.threads as usize, WG),
    );
}
