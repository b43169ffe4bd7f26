//! CPU reference for the reductions in `shaders/reduce.wgsl`.

/// `out[c] = Σ_{n, i} x[n, c, i]` for `x` `[N, C, HW]`.
pub fn channel_sum(out: &mut [f32], x: &[f32], n: usize, c: usize, hw: usize) {
    for (ch, o) in out.iter_mut().enumerate().take(c) {
        let mut acc = 0.0f64;
        for b in 0..n {
            let base = (b * c + ch) * hw;
            acc += x[base..base + hw].iter().map(|&v| v as f64).sum::<f64>();
        }
        *o = acc as f32;
    }
}

/// `acc += Σ x`.
pub fn sum_into(acc: &mut f32, x: &[f32]) {
    *acc += x.iter().map(|&v| v as f64).sum::<f64>() as f32;
}
