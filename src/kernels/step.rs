//! Launcher for `shaders/step.wgsl`: the GPU-resident step counter.
//!
//! `state` is a u32 tensor of [`STATE_LEN`] words: `[steps_done, batch_in_epoch, 0, 0]`.
//! Kernels that depend on the step (data gather, reparameterisation noise, Adam's bias
//! correction) read it, so a plan recorded once stays valid for every step.

use crate::gpu::{Gpu, Plan, Shader, Tensor};

pub const SHADER: Shader = Shader {
    name: "step",
    source: include_str!("../../shaders/step.wgsl"),
};

/// Words in the step-state tensor.
pub const STATE_LEN: usize = 4;

/// `state[0] += 1; state[1] += 1` (recorded last in every training step).
pub fn advance(plan: &mut Plan, gpu: &Gpu, state: &Tensor) {
    debug_assert_eq!(state.numel(), STATE_LEN);
    plan.dispatch(
        gpu,
        &SHADER,
        "advance",
        &[],
        &[1u32, 0, 0, 0],
        &[(1, state.bind())],
        [1, 1, 1],
    );
}
