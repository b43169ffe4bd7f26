//! CPU reference for `shaders/adam.wgsl`: one PyTorch `torch.optim.Adam` step (no weight decay,
//! not AMSGrad), bias corrections in f64 as PyTorch computes them.

use crate::kernels::adam::AdamConfig;

/// With `t` the 1-based step number and `lr` its rate:
/// `m = β1·m + (1−β1)·g; v = β2·v + (1−β2)·g²;
/// p −= (lr / (1 − β1^t)) · m / (sqrt(v) / sqrt(1 − β2^t) + eps)`. The moments are stored as
/// f32 before the update uses them, as PyTorch's in-place tensor ops do.
pub fn step(
    params: &mut [f32],
    m: &mut [f32],
    v: &mut [f32],
    grads: &[f32],
    t: u32,
    lr: f32,
    cfg: AdamConfig,
) {
    assert!(t >= 1, "Adam's step number is 1-based");
    let (b1, b2) = (cfg.beta1 as f64, cfg.beta2 as f64);
    let step_size = lr as f64 / (1.0 - b1.powf(t as f64));
    let bc2_sqrt = (1.0 - b2.powf(t as f64)).sqrt();
    for (((p, m), v), &g) in params.iter_mut().zip(m).zip(v).zip(grads) {
        let g = g as f64;
        *m = (b1 * *m as f64 + (1.0 - b1) * g) as f32;
        *v = (b2 * *v as f64 + (1.0 - b2) * g * g) as f32;
        let denom = (*v as f64).sqrt() / bc2_sqrt + cfg.eps as f64;
        *p = (*p as f64 - step_size * *m as f64 / denom) as f32;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_step_moves_each_parameter_by_lr_against_its_gradient() {
        // At t = 1 the bias-corrected moments are g and g², so the step is lr·g / (|g| + eps).
        let cfg = AdamConfig::default();
        let grads = [0.5f32, -2.0, 1e-3, 0.0];
        let mut p = [1.0f32; 4];
        let (mut m, mut v) = ([0.0f32; 4], [0.0f32; 4]);
        step(&mut p, &mut m, &mut v, &grads, 1, 1e-3, cfg);
        let want = [1.0 - 1e-3, 1.0 + 1e-3, 1.0 - 1e-3, 1.0];
        for (got, want) in p.iter().zip(want) {
            assert!((got - want).abs() < 1e-6, "{got} vs {want}");
        }
        assert!((m[1] + 0.2).abs() < 1e-6 && (v[1] - 0.004).abs() < 1e-7);
    }

    #[test]
    fn steady_gradient_keeps_the_step_near_lr() {
        // A constant gradient keeps m̂ = g and v̂ = g² at every t, so each step is ≈ lr.
        let cfg = AdamConfig::default();
        let (mut p, mut m, mut v) = ([0.0f32], [0.0f32], [0.0f32]);
        for t in 1..=50 {
            let before = p[0];
            step(&mut p, &mut m, &mut v, &[3.0], t, 0.01, cfg);
            assert!(
                (before - p[0] - 0.01).abs() < 1e-5,
                "t {t}: step {}",
                before - p[0]
            );
        }
    }
}
