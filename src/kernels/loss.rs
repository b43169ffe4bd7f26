//! Launchers for `shaders/loss.wgsl`: per-example reconstruction losses fused with their
//! gradients (sigmoid + binary cross-entropy on logits, squared error), or the losses alone
//! where no gradient is wanted (evaluation), and each picture's PSNR. One workgroup per example
//! reduces its D values in workgroup memory and writes the gradient in the same pass.

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
    /// The shader's loss: [`BCE`] or [`MSE`].
    kind: u32,
}

/// Fused sigmoid + binary cross-entropy in the stable logits form, per example summed over pixels:
/// `loss[i] = Σ_p max(l,0) − l·t + log(1 + exp(−|l|))`; `dlogits[i,p] = (σ(l) − t)·grad_scale`
/// when `dlogits` is given. `logits`, `target`, `dlogits`: `[N, D]`; `loss`: `[N]`.
#[allow(clippy::too_many_arguments)]
pub fn bce_with_logits(
    plan: &mut Plan,
    gpu: &Gpu,
    loss: &Tensor,
    dlogits: Option<&Tensor>,
    logits: &Tensor,
    target: &Tensor,
    n: usize,
    d: usize,
    grad_scale: f32,
) {
    launch(
        plan, gpu, BCE, loss, dlogits, logits, target, n, d, grad_scale,
    );
}

/// `loss[i] = Σ_p (y − t)²`; `dy = 2(y − t)·grad_scale` when `dy` is given. `y`, `target`,
/// `dy`: `[N, D]`; `loss`: `[N]`.
#[allow(clippy::too_many_arguments)]
pub fn mse(
    plan: &mut Plan,
    gpu: &Gpu,
    loss: &Tensor,
    dy: Option<&Tensor>,
    y: &Tensor,
    target: &Tensor,
    n: usize,
    d: usize,
    grad_scale: f32,
) {
    launch(plan, gpu, MSE, loss, dy, y, target, n, d, grad_scale);
}

/// `psnr[i] = 10·log10(1 / max(MSE_i, 1e-10))`, MSE_i the mean over the D values of row i of
/// `(σ(x) − t)²` when `x` holds logits, else of `(x − t)²` (`pytorch_images.py`'s `test_psnr`
/// per image). `x`, `target`: `[N, D]`; `psnr`: `[N]`.
#[allow(clippy::too_many_arguments)]
pub fn psnr(
    plan: &mut Plan,
    gpu: &Gpu,
    psnr: &Tensor,
    x: &Tensor,
    target: &Tensor,
    n: usize,
    d: usize,
    logits: bool,
) {
    let kind = if logits { PSNR_LOGITS } else { PSNR };
    launch(plan, gpu, kind, psnr, None, x, target, n, d, 1.0);
}

/// The shader's `kind` of each figure.
const BCE: u32 = 0;
const MSE: u32 = 1;
const PSNR_LOGITS: u32 = 2;
const PSNR: u32 = 3;

#[allow(clippy::too_many_arguments)]
fn launch(
    plan: &mut Plan,
    gpu: &Gpu,
    kind: u32,
    loss: &Tensor,
    dx: Option<&Tensor>,
    x: &Tensor,
    target: &Tensor,
    n: usize,
    d: usize,
    grad_scale: f32,
) {
    debug_assert!(x.numel() >= n * d && target.numel() >= n * d);
    debug_assert!(dx.is_none_or(|dx| dx.numel() >= n * d));
    debug_assert!(loss.numel() >= n);
    let params = Params {
        n: n as u32,
        d: d as u32,
        grad_scale,
        kind,
    };
    let mut bindings = vec![(1, x.bind()), (2, target.bind()), (3, loss.bind())];
    // Without a gradient, the entry point that computes the loss alone (it binds no dx).
    let entry = match dx {
        Some(dx) => {
            bindings.push((4, dx.bind()));
            "loss_and_grad"
        }
        None => "loss_alone",
    };
    plan.dispatch(
        gpu,
        &SHADER,
        entry,
        &[],
        &params,
        &bindings,
        // One workgroup per example (split over x and y past the per-dimension limit).
        grid_1d(gpu, n, 1),
    );
}
