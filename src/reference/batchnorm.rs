//! CPU reference for `shaders/batchnorm.wgsl`: BatchNorm2d (PyTorch `nn.BatchNorm2d` with
//! affine parameters and running statistics) over `[N, C, H, W]`, with an optional activation
//! on the output; the training and evaluation forward passes and the training backward pass.
//! Everything is computed in f64 (two-pass statistics) and rounded to f32 at the end.

use crate::kernels::batchnorm::{EPS, MOMENTUM};
use crate::shapes::{Activation, BatchNorm2dShape};

/// Flat indices of channel `c`'s `N·H·W` values in an `[N, C, H, W]` tensor.
fn channel(s: BatchNorm2dShape, c: usize) -> impl Iterator<Item = usize> {
    let hw = s.h * s.w;
    (0..s.n).flat_map(move |n| (0..hw).map(move |i| (n * s.c + c) * hw + i))
}

/// `act(v)` in f64 (`None`: the identity).
fn act_f64(act: Option<Activation>, v: f64) -> f64 {
    match act {
        None => v,
        Some(Activation::Relu) => v.max(0.0),
        Some(Activation::LeakyRelu(slope)) => {
            if v > 0.0 {
                v
            } else {
                slope as f64 * v
            }
        }
        Some(Activation::Sigmoid) => 1.0 / (1.0 + (-v).exp()),
        Some(Activation::Tanh) => v.tanh(),
    }
}

/// `g · act'(v)` written through the output `y = act(v)` (LeakyReLU needs slope > 0).
fn act_grad_f64(act: Option<Activation>, y: f64, g: f64) -> f64 {
    match act {
        None => g,
        Some(Activation::Relu) => {
            if y > 0.0 {
                g
            } else {
                0.0
            }
        }
        Some(Activation::LeakyRelu(slope)) => {
            if y > 0.0 {
                g
            } else {
                slope as f64 * g
            }
        }
        Some(Activation::Sigmoid) => g * y * (1.0 - y),
        Some(Activation::Tanh) => g * (1.0 - y * y),
    }
}

/// Training forward: per channel the mean and biased variance over `N·H·W` values,
/// `y = act((x − mean)·invstd·γ + β)` with `invstd = 1/sqrt(var + eps)`; `mean` and `invstd`
/// `[C]` saved for the backward pass; the running statistics `[C]` updated in place with
/// momentum 0.1 (`running_var` from the unbiased variance). Panics with fewer than two values
/// per channel (PyTorch refuses them in training too).
#[allow(clippy::too_many_arguments)]
pub fn forward_train(
    y: &mut [f32],
    mean: &mut [f32],
    invstd: &mut [f32],
    running_mean: &mut [f32],
    running_var: &mut [f32],
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    s: BatchNorm2dShape,
    act: Option<Activation>,
) {
    let n = s.count();
    assert!(n > 1, "batch norm: expected more than 1 value per channel");
    let (eps, m) = (EPS as f64, MOMENTUM as f64);
    for c in 0..s.c {
        let mu = channel(s, c).map(|i| x[i] as f64).sum::<f64>() / n as f64;
        let m2: f64 = channel(s, c).map(|i| (x[i] as f64 - mu).powi(2)).sum();
        let var = m2 / n as f64;
        let inv = 1.0 / (var + eps).sqrt();
        for i in channel(s, c) {
            let v = (x[i] as f64 - mu) * inv * gamma[c] as f64 + beta[c] as f64;
            y[i] = act_f64(act, v) as f32;
        }
        mean[c] = mu as f32;
        invstd[c] = inv as f32;
        running_mean[c] = ((1.0 - m) * running_mean[c] as f64 + m * mu) as f32;
        let unbiased = m2 / (n - 1) as f64;
        running_var[c] = ((1.0 - m) * running_var[c] as f64 + m * unbiased) as f32;
    }
}

/// Evaluation forward: `y = act((x − running_mean)/sqrt(running_var + eps)·γ + β)`.
#[allow(clippy::too_many_arguments)]
pub fn forward_eval(
    y: &mut [f32],
    x: &[f32],
    running_mean: &[f32],
    running_var: &[f32],
    gamma: &[f32],
    beta: &[f32],
    s: BatchNorm2dShape,
    act: Option<Activation>,
) {
    for c in 0..s.c {
        let scale = gamma[c] as f64 / (running_var[c] as f64 + EPS as f64).sqrt();
        for i in channel(s, c) {
            let v = (x[i] as f64 - running_mean[c] as f64) * scale + beta[c] as f64;
            y[i] = act_f64(act, v) as f32;
        }
    }
}

/// Training backward from `dy` (the gradient of `y`, the output after `act`) and the forward's
/// `y`, `x` and saved `mean`, `invstd`: with `dŷ = dy·act'(y)`, `x̂ = (x − mean)·invstd` and sums
/// over each channel's `n = N·H·W` values, `dγ = Σ dŷ·x̂`, `dβ = Σ dŷ` and, when `dx` is given,
/// `dx = γ·invstd/n·(n·dŷ − Σ dŷ − x̂·Σ dŷ·x̂)`, times `input_act'` at `x` when `x` is that
/// activation's output.
#[allow(clippy::too_many_arguments)]
pub fn backward(
    dx: Option<&mut [f32]>,
    dgamma: &mut [f32],
    dbeta: &mut [f32],
    dy: &[f32],
    y: &[f32],
    x: &[f32],
    mean: &[f32],
    invstd: &[f32],
    gamma: &[f32],
    s: BatchNorm2dShape,
    act: Option<Activation>,
    input_act: Option<Activation>,
) {
    let n = s.count() as f64;
    let g = |i: usize| act_grad_f64(act, y[i] as f64, dy[i] as f64);
    let mut sums = vec![(0.0, 0.0); s.c];
    for (c, sum) in sums.iter_mut().enumerate() {
        let (mu, inv) = (mean[c] as f64, invstd[c] as f64);
        for i in channel(s, c) {
            let xh = (x[i] as f64 - mu) * inv;
            sum.0 += g(i) * xh;
            sum.1 += g(i);
        }
        dgamma[c] = sum.0 as f32;
        dbeta[c] = sum.1 as f32;
    }
    if let Some(dx) = dx {
        for (c, &(sgx, sg)) in sums.iter().enumerate() {
            let (mu, inv) = (mean[c] as f64, invstd[c] as f64);
            let scale = gamma[c] as f64 * inv / n;
            for i in channel(s, c) {
                let xh = (x[i] as f64 - mu) * inv;
                let d = scale * (n * g(i) - sg - xh * sgx);
                dx[i] = act_grad_f64(input_act, x[i] as f64, d) as f32;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::fd::{check_gradient, dot, values};

    fn shape(n: usize, c: usize, h: usize, w: usize) -> BatchNorm2dShape {
        BatchNorm2dShape { n, c, h, w }
    }

    /// `Σ r·y` of the training forward pass.
    fn loss(
        x: &[f32],
        gamma: &[f32],
        beta: &[f32],
        r: &[f32],
        s: BatchNorm2dShape,
        act: Option<Activation>,
    ) -> f64 {
        let mut y = vec![0.0; x.len()];
        let (mut mean, mut inv) = (vec![0.0; s.c], vec![0.0; s.c]);
        let (mut rm, mut rv) = (vec![0.0; s.c], vec![1.0; s.c]);
        forward_train(
            &mut y, &mut mean, &mut inv, &mut rm, &mut rv, x, gamma, beta, s, act,
        );
        dot(&y, r)
    }

    /// Pre-activations `(x − mean)·invstd·γ + β` of the training forward pass.
    fn pre_activations(x: &[f32], gamma: &[f32], beta: &[f32], s: BatchNorm2dShape) -> Vec<f32> {
        let mut v = vec![0.0; x.len()];
        let (mut mean, mut inv) = (vec![0.0; s.c], vec![0.0; s.c]);
        let (mut rm, mut rv) = (vec![0.0; s.c], vec![1.0; s.c]);
        forward_train(
            &mut v, &mut mean, &mut inv, &mut rm, &mut rv, x, gamma, beta, s, None,
        );
        v
    }

    #[test]
    fn backward_matches_finite_differences() {
        let acts = [
            None,
            Some(Activation::Relu),
            Some(Activation::LeakyRelu(0.2)),
            Some(Activation::Tanh),
        ];
        // N = 2 with H·W = 1 (two values per channel), N = 1 with H·W > 1, odd sizes.
        let shapes = [shape(2, 3, 1, 1), shape(1, 2, 3, 5), shape(3, 2, 2, 3)];
        for (k, s) in shapes.into_iter().enumerate() {
            let seed = 10 * k as u64;
            let len = s.numel();
            let x = values(seed + 1, len, -2.0, 2.0);
            let gamma = values(seed + 2, s.c, 0.5, 1.5);
            let beta = values(seed + 3, s.c, -0.5, 0.5);
            let r = values(seed + 4, len, -1.0, 1.0);
            // A kink within reach of a step would make the central difference wrong.
            let pre = pre_activations(&x, &gamma, &beta, s);
            let closest = pre.iter().fold(f32::MAX, |m, v| m.min(v.abs()));
            for act in acts {
                if matches!(act, Some(Activation::Relu | Activation::LeakyRelu(_))) {
                    assert!(
                        closest > 0.02,
                        "{s:?}: pre-activation {closest} near a kink"
                    );
                }
                let what = format!("batch norm {s:?} {act:?}");
                let mut y = vec![0.0; len];
                let (mut mean, mut inv) = (vec![0.0; s.c], vec![0.0; s.c]);
                let (mut rm, mut rv) = (vec![0.0; s.c], vec![1.0; s.c]);
                forward_train(
                    &mut y, &mut mean, &mut inv, &mut rm, &mut rv, &x, &gamma, &beta, s, act,
                );
                let mut dx = vec![0.0; len];
                let (mut dg, mut db) = (vec![0.0; s.c], vec![0.0; s.c]);
                backward(
                    Some(&mut dx),
                    &mut dg,
                    &mut db,
                    &r,
                    &y,
                    &x,
                    &mean,
                    &inv,
                    &gamma,
                    s,
                    act,
                    None,
                );
                let f = |x: &[f32]| loss(x, &gamma, &beta, &r, s, act);
                check_gradient(&format!("{what} dx"), &x, &dx, f, 1e-3, 2e-3);
                let f = |g: &[f32]| loss(&x, g, &beta, &r, s, act);
                check_gradient(&format!("{what} dgamma"), &gamma, &dg, f, 1e-3, 2e-3);
                let f = |b: &[f32]| loss(&x, &gamma, b, &r, s, act);
                check_gradient(&format!("{what} dbeta"), &beta, &db, f, 1e-3, 2e-3);
            }
        }
    }

    #[test]
    fn input_activation_backward_matches_finite_differences() {
        // x = LeakyReLU(0.2)(x0) feeds the batch norm; dx is the gradient w.r.t. x0.
        let s = shape(2, 2, 3, 2);
        let leaky = Some(Activation::LeakyRelu(0.2));
        // Inputs away from LeakyReLU's kink at 0.
        let x0: Vec<f32> = values(7, s.numel(), -2.0, 2.0)
            .into_iter()
            .map(|v| v + 0.1f32.copysign(v))
            .collect();
        let lrelu = |x0: &[f32]| -> Vec<f32> {
            x0.iter()
                .map(|&v| act_f64(leaky, v as f64) as f32)
                .collect()
        };
        let gamma = values(8, s.c, 0.5, 1.5);
        let beta = values(9, s.c, -0.5, 0.5);
        let r = values(10, s.numel(), -1.0, 1.0);
        let x = lrelu(&x0);
        let mut y = vec![0.0; s.numel()];
        let (mut mean, mut inv) = (vec![0.0; s.c], vec![0.0; s.c]);
        let (mut rm, mut rv) = (vec![0.0; s.c], vec![1.0; s.c]);
        forward_train(
            &mut y, &mut mean, &mut inv, &mut rm, &mut rv, &x, &gamma, &beta, s, None,
        );
        let mut dx = vec![0.0; s.numel()];
        let (mut dg, mut db) = (vec![0.0; s.c], vec![0.0; s.c]);
        backward(
            Some(&mut dx),
            &mut dg,
            &mut db,
            &r,
            &y,
            &x,
            &mean,
            &inv,
            &gamma,
            s,
            None,
            leaky,
        );
        let f = |x0: &[f32]| loss(&lrelu(x0), &gamma, &beta, &r, s, None);
        check_gradient("batch norm after LeakyReLU", &x0, &dx, f, 1e-3, 2e-3);
    }

    #[test]
    fn statistics_follow_pytorch() {
        // One channel of 1, 2, 3, 4: mean 2.5, biased variance 1.25, unbiased 5/3.
        let s = shape(4, 1, 1, 1);
        let x = [1.0, 2.0, 3.0, 4.0];
        let mut y = [0.0; 4];
        let (mut mean, mut inv) = ([0.0], [0.0]);
        let (mut rm, mut rv) = ([0.0], [1.0]);
        forward_train(
            &mut y,
            &mut mean,
            &mut inv,
            &mut rm,
            &mut rv,
            &x,
            &[2.0],
            &[0.5],
            s,
            None,
        );
        assert_eq!(mean[0], 2.5);
        assert!((inv[0] as f64 - 1.0 / (1.25f64 + 1e-5).sqrt()).abs() < 1e-7);
        assert!((rm[0] - 0.25).abs() < 1e-7);
        assert!((rv[0] as f64 - (0.9 + 0.1 * 5.0 / 3.0)).abs() < 1e-7);
        let want = (1.0 - 2.5) / (1.25f64 + 1e-5).sqrt() * 2.0 + 0.5;
        assert!((y[0] as f64 - want).abs() < 1e-6);
        // Evaluation uses the running statistics.
        let mut ye = [0.0; 4];
        forward_eval(&mut ye, &x, &rm, &rv, &[2.0], &[0.5], s, None);
        let want = (1.0 - 0.25) / (rv[0] as f64 + 1e-5).sqrt() * 2.0 + 0.5;
        assert!((ye[0] as f64 - want).abs() < 1e-6);
    }
}
