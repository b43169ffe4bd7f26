//! CPU reference for `shaders/loss.wgsl` (per-example losses with their gradients, in f64),
//! plus PyTorch's `F.binary_cross_entropy` on probabilities to check the logits form against.

/// `loss[i] = Σ_p max(l,0) − l·t + log(1 + exp(−|l|))`; `dlogits = (σ(l) − t)·grad_scale`.
/// `logits`, `target`, `dlogits`: `[N, D]`; `loss`: `[N]`.
pub fn bce_with_logits(
    loss: &mut [f32],
    dlogits: &mut [f32],
    logits: &[f32],
    target: &[f32],
    n: usize,
    d: usize,
    grad_scale: f32,
) {
    for (i, out) in loss.iter_mut().enumerate().take(n) {
        let row = i * d..(i + 1) * d;
        let mut acc = 0.0f64;
        for ((g, &l), &t) in dlogits[row.clone()]
            .iter_mut()
            .zip(&logits[row.clone()])
            .zip(&target[row])
        {
            let (l, t) = (l as f64, t as f64);
            acc += l.max(0.0) - l * t + (-l.abs()).exp().ln_1p();
            *g = ((sigmoid(l) - t) * grad_scale as f64) as f32;
        }
        *out = acc as f32;
    }
}

/// `loss[i] = Σ_p (y − t)²`; `dy = 2(y − t)·grad_scale`.
pub fn mse(
    loss: &mut [f32],
    dy: &mut [f32],
    y: &[f32],
    target: &[f32],
    n: usize,
    d: usize,
    grad_scale: f32,
) {
    for (i, out) in loss.iter_mut().enumerate().take(n) {
        let row = i * d..(i + 1) * d;
        let mut acc = 0.0f64;
        for ((g, &y), &t) in dy[row.clone()]
            .iter_mut()
            .zip(&y[row.clone()])
            .zip(&target[row])
        {
            let r = y as f64 - t as f64;
            acc += r * r;
            *g = (2.0 * r * grad_scale as f64) as f32;
        }
        *out = acc as f32;
    }
}

/// `psnr[i] = 10·log10(1 / max(MSE_i, 1e-10))` in dB, MSE_i the mean of `(σ(x) − t)²` over row i
/// when `x` holds logits, else of `(x − t)²`.
pub fn psnr(psnr: &mut [f32], x: &[f32], target: &[f32], n: usize, d: usize, logits: bool) {
    for (i, out) in psnr.iter_mut().enumerate().take(n) {
        let row = i * d..(i + 1) * d;
        let sum: f64 = x[row.clone()]
            .iter()
            .zip(&target[row])
            .map(|(&x, &t)| {
                let y = if logits { sigmoid(x as f64) } else { x as f64 };
                (y - t as f64).powi(2)
            })
            .sum();
        *out = (-10.0 * (sum / d as f64).max(1e-10).log10()) as f32;
    }
}

/// PyTorch `F.binary_cross_entropy(p, t, reduction="sum")`: `−Σ t·log p + (1 − t)·log(1 − p)`
/// with each log clamped at −100.
pub fn binary_cross_entropy(p: &[f32], t: &[f32]) -> f64 {
    assert_eq!(p.len(), t.len(), "binary_cross_entropy: length mismatch");
    p.iter()
        .zip(t)
        .map(|(&p, &t)| {
            let (p, t) = (p as f64, t as f64);
            -(t * p.ln().max(-100.0) + (1.0 - t) * (1.0 - p).ln().max(-100.0))
        })
        .sum()
}

fn sigmoid(l: f64) -> f64 {
    1.0 / (1.0 + (-l).exp())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::fd::{check_gradient, values};

    /// The fused kernels' signature: (loss, grad, input, target, n, d, grad_scale).
    type Fused = fn(&mut [f32], &mut [f32], &[f32], &[f32], usize, usize, f32);

    /// Checks the gradient a fused loss writes against finite differences of
    /// `grad_scale · Σ loss`.
    fn check_fused(name: &str, kernel: Fused, x: &[f32], target: &[f32], n: usize, scale: f32) {
        let d = x.len() / n;
        let mut loss = vec![0.0; n];
        let mut grad = vec![0.0; n * d];
        kernel(&mut loss, &mut grad, x, target, n, d, scale);
        check_gradient(
            name,
            x,
            &grad,
            |x| {
                let mut loss = vec![0.0; n];
                let mut g = vec![0.0; n * d];
                kernel(&mut loss, &mut g, x, target, n, d, scale);
                scale as f64 * loss.iter().map(|&v| v as f64).sum::<f64>()
            },
            1e-3,
            1e-3,
        );
    }

    #[test]
    fn bce_with_logits_gradient_matches_finite_differences() {
        let logits = values(1, 3 * 5, -4.0, 4.0);
        let target = values(2, 3 * 5, 0.0, 1.0);
        check_fused(
            "bce_with_logits",
            bce_with_logits,
            &logits,
            &target,
            3,
            0.37,
        );
    }

    #[test]
    fn mse_gradient_matches_finite_differences() {
        let y = values(3, 2 * 7, -1.0, 1.0);
        let target = values(4, 2 * 7, 0.0, 1.0);
        check_fused("mse", mse, &y, &target, 2, 0.25);
    }

    #[test]
    fn logits_form_equals_probability_form() {
        let logits = [-3.0f32, -0.5, 0.0, 0.7, 2.5];
        let target = [0.0f32, 1.0, 0.5, 0.2, 1.0];
        let mut loss = [0.0];
        let mut grad = [0.0; 5];
        bce_with_logits(&mut loss, &mut grad, &logits, &target, 1, 5, 1.0);
        let p: Vec<f32> = logits.iter().map(|&l| sigmoid(l as f64) as f32).collect();
        let want = binary_cross_entropy(&p, &target);
        assert!(
            (loss[0] as f64 - want).abs() < 1e-5,
            "{} vs {want}",
            loss[0]
        );
    }

    #[test]
    fn binary_cross_entropy_clamps_logs_at_minus_100() {
        assert_eq!(binary_cross_entropy(&[0.0, 1.0], &[1.0, 0.0]), 200.0);
        assert_eq!(binary_cross_entropy(&[1.0, 0.0], &[1.0, 0.0]), 0.0);
    }
}
