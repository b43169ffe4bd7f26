//! Shared test helpers: the GPU under test, deterministic inputs, tolerance checks.

use gpu_ae::gpu::{AdapterChoice, Gpu};

/// The adapter under test. Fails (never skips) when there is none, saying how to get one.
pub fn gpu() -> Gpu {
    match Gpu::new(&AdapterChoice::Best) {
        Ok(g) => g,
        Err(e) => panic!("GPU tests need an adapter: {e}"),
    }
}

/// Deterministic values in `[lo, hi)` (xorshift).
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

/// `|got − want| ≤ atol + rtol·|want|` element-wise, reporting the worst element. Also fails
/// when `want` is all (near) zero, since such a comparison could not catch a wrong kernel.
pub fn assert_close(what: &str, got: &[f32], want: &[f32], atol: f32, rtol: f32) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    assert!(
        want.iter().any(|w| w.abs() > atol),
        "{what}: reference is all ~0, the comparison could not fail"
    );
    let mut worst: Option<(usize, f32)> = None;
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let excess = (g - w).abs() - (atol + rtol * w.abs());
        if (excess > 0.0 || excess.is_nan()) && worst.is_none_or(|(_, e)| excess > e) {
            worst = Some((i, excess));
        }
    }
    if let Some((i, _)) = worst {
        let bad = got
            .iter()
            .zip(want)
            .filter(|(g, w)| {
                let err = (*g - *w).abs();
                err > atol + rtol * w.abs() || err.is_nan()
            })
            .count();
        panic!(
            "{what}: {bad}/{} elements out of tolerance (atol {atol}, rtol {rtol}); worst at {i}: gpu {} vs reference {}",
            got.len(),
            got[i],
            want[i]
        );
    }
}
