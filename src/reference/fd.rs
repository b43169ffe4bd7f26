//! Finite-difference gradient checks for the CPU reference (unit tests only).

/// Deterministic values in `[lo, hi)` (xorshift; tests need no RNG crate).
pub fn values(seed: u64, n: usize, lo: f32, hi: f32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            lo + (hi - lo) * ((s >> 40) as f32 / (1u64 << 24) as f32)
        })
        .collect()
}

/// Checks `analytic[i] ≈ ∂loss/∂x[i]` by central differences with step `eps`:
/// `|numeric − analytic| ≤ tol·(1 + |numeric|)` for every component.
pub fn check_gradient(
    name: &str,
    x: &[f32],
    analytic: &[f32],
    loss: impl Fn(&[f32]) -> f64,
    eps: f32,
    tol: f64,
) {
    assert_eq!(x.len(), analytic.len(), "{name}: gradient length");
    assert!(
        analytic.iter().any(|g| g.abs() > 1e-6),
        "{name}: analytic gradient is all zero; the check could not fail"
    );
    let mut xp = x.to_vec();
    for i in 0..x.len() {
        xp[i] = x[i] + eps;
        let up = loss(&xp);
        xp[i] = x[i] - eps;
        let down = loss(&xp);
        xp[i] = x[i];
        let numeric = (up - down) / (2.0 * eps as f64);
        let a = analytic[i] as f64;
        assert!(
            (numeric - a).abs() <= tol * (1.0 + numeric.abs()),
            "{name}[{i}]: analytic {a} vs numeric {numeric}"
        );
    }
}

/// `Σ y[i]·w[i]` in f64: a scalar loss whose gradient w.r.t. `y` is `w`.
pub fn dot(y: &[f32], w: &[f32]) -> f64 {
    y.iter().zip(w).map(|(&a, &b)| a as f64 * b as f64).sum()
}
