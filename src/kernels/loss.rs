//! Launchers for `shaders/loss.wgsl`: per-example reconstruction losses fused with their
//! gradients (sigmoid + binary cross-entropy on logits, squared error). One workgroup per
//! example reduces its D values in workgroup memory and writes the gradient in the same pass.

use crate::gpu::{Gpu, Plan, Shader, Tensor, grid_1d};

pub const SHADER: Shader = Shader {
    name: "loss",
    source: include_str!("../../shaders/loss.wgsl"),
};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    d: u32,
    grad_scale: f32,
    _pad0: u32,
}

/// Fused sigmoid + binary cross-entropy in the stable logits form, per example summed over pixels:
/// `loss[i] = Σ_p max(l,0) − l·t + log(1 + exp(−|l|))`; `dlogits[i,p] = (σ(l) − t)·grad_scale`.
/// `logits`, `target`, `dlogits`: `[N, D]`; `loss`: `[N]`.
#[allow(clippy::too_many_arguments)]
pub fn bce_with_logits(
    plan: &mut Plan,
    gpu: &Gpu,
    loss: &Tensor,
    dlogits: &Tensor,
    logits: &Tensor,
    target: &Tensor,
    n: usize,
    d: usize,
    grad_scale: f32,
) {
    launch(
        plan,
        gpu,
        "bce_with_logits",
        loss,
        dlogits,
        logits,
        target,
        n,
        d,
        grad_scale,
    );
}

/// `loss[i] = Σ_p (y − t)²`; `dy = 2(y − t)·grad_scale`. `y`, `target`, `dy`: `[N, D]`;
/// `loss`: `[N]`.
#[allow(clippy::too_many_arguments)]
pub fn mse(
    plan: &mut Plan,
    gpu: &Gpu,
    loss: &Tensor,
    dy: &Tensor,
    y: &Tensor,
    target: &Tensor,
    n: usize,
    d: usize,
    grad_scale: f32,
) {
    launch(plan, gpu, "mse", loss, dy, y, target, n, d, grad_scale);
}

#[allow(clippy::too_many_arguments)]
fn launch(
    plan: &mut Plan,
    gpu: &Gpu,
    entry: &str,
    loss: &Tensor,
    dx: &Tensor,
    x: &Tensor,
    target: &Tensor,
    n: usize,
    d: usize,
    grad_scale: f32,
) {
    debug_assert!(x.numel() >= n * d && target.numel() >= n * d && dx.numel() >= n * d);
    debug_assert!(loss.numel() >= n);
    let params = Params {
        n: n as u32,
        d: d as u32,
        grad_scale,
        _pad0: 0,
    };
    plan.dispatch(
        gpu,
        &SHADER,
        entry,
        &[],
        &params,
        &[
            (1, x.bind()),
            (2, target.bind()),
            (3, loss.bind()),
            (4, dx.bind()),
        ],
        // One workgroup per example (split over x and y past the per-dimension limit).
        grid_1d(gpu, n, 1),
    );
}
