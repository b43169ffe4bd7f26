//! Launcher for `shaders/adam.wgsl`: one Adam step (PyTorch `torch.optim.Adam` semantics) over
//! the flat parameter, gradient and moment buffers in a single dispatch, with the step number
//! read from the GPU step counter and the learning rate computed on the GPU from it and the
//! run's [`Schedule`](crate::run::schedule::Schedule) words.

use crate::gpu::{Gpu, Plan, Shader, Tensor, grid_1d};

pub const SHADER: Shader = Shader {
    name: "adam",
    source: include_str!("../../shaders/adam.wgsl"),
};

/// Workgroup size and elements per invocation in `adam.wgsl`.
const WG: u32 = 256;
const PER_THREAD: usize = 4;

/// Adam hyper-parameters besides the rate (no weight decay, not AMSGrad).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamConfig {
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
}

impl Default for AdamConfig {
    /// PyTorch's defaults: betas (0.9, 0.999), eps 1e-8.
    fn default() -> Self {
        AdamConfig {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        }
    }
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    count: u32,
    _pad3: u32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

/// PyTorch `torch.optim.Adam` semantics (no weight decay, not amsgrad), `t = state[0] + 1`:
/// `m = β1·m + (1−β1)·g; v = β2·v + (1−β2)·g²;
/// p −= (lr / (1 − β1^t)) · m / (sqrt(v) / sqrt(1 − β2^t) + eps)`, `lr` the rate of step
/// `state[0]` by the u32 `[4]` `schedule` ([`Schedule::words`](crate::run::schedule::Schedule::words)).
/// One dispatch over all `count` elements of the flat buffers.
#[allow(clippy::too_many_arguments)]
pub fn step(
    plan: &mut Plan,
    gpu: &Gpu,
    params: &Tensor,
    m: &Tensor,
    v: &Tensor,
    grads: &Tensor,
    state: &Tensor,
    schedule: &Tensor,
    cfg: AdamConfig,
    count: usize,
) {
    debug_assert!(params.numel() >= count && m.numel() >= count && v.numel() >= count);
    debug_assert!(grads.numel() >= count);
    let p = Params {
        count: count as u32,
        _pad3: 0,
        beta1: cfg.beta1,
        beta2: cfg.beta2,
        eps: cfg.eps,
        _pad0: 0,
        _pad1: 0,
        _pad2: 0,
    };
    plan.dispatch(
        gpu,
        &SHADER,
        "adam_step",
        &[],
        &p,
        &[
            (1, params.bind()),
            (2, m.bind()),
            (3, v.bind()),
            (4, grads.bind()),
            (5, state.bind()),
            (6, schedule.bind()),
        ],
        grid_1d(gpu, count.div_ceil(PER_THREAD), WG),
    );
}
