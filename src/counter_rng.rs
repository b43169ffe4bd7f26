//! The counter-based RNG of `shaders/rng.wgsl` on the host, bit for bit on the integer side: the
//! same (seed, stream, step, index) gives the same u32 and (to float rounding) the same normal.
//! The kernels' CPU references and the host code that draws codes (`apply`) share it.

/// Random streams, so that different uses of one seed never share numbers.
pub const STREAM_REPARAM: u32 = 0;
pub const STREAM_INPUT_NOISE: u32 = 1;
pub const STREAM_EVAL: u32 = 2;
pub const STREAM_SAMPLE: u32 = 3;
pub const STREAM_BINARIZE: u32 = 4;

/// MurmurHash3's 32-bit finaliser (a bijection with good avalanche).
pub fn fmix32(x: u32) -> u32 {
    let mut h = x;
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^= h >> 16;
    h
}

pub fn rng_u32(seed: u32, stream: u32, step: u32, index: u32) -> u32 {
    let mut h = fmix32(seed ^ 0x9e37_79b9);
    h = fmix32(h ^ stream.wrapping_mul(0x85eb_ca6b));
    h = fmix32(h ^ step);
    fmix32(h ^ index)
}

/// Standard normal by Box–Muller from words `2·index` and `2·index + 1`.
pub fn rng_normal(seed: u32, stream: u32, step: u32, index: u32) -> f32 {
    let a = rng_u32(seed, stream, step, 2 * index);
    let b = rng_u32(seed, stream, step, 2 * index + 1);
    let u1 = ((a >> 8) as f32 + 1.0) * (1.0 / 16_777_216.0);
    let u2 = (b >> 8) as f32 * (1.0 / 16_777_216.0);
    (-2.0 * u1.ln()).max(0.0).sqrt() * (std::f32::consts::TAU * u2).cos()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normals_have_unit_moments() {
        let n = 200_000;
        let xs: Vec<f64> = (0..n).map(|i| rng_normal(7, 0, 3, i) as f64).collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        assert!(mean.abs() < 0.01, "mean {mean}");
        assert!((var - 1.0).abs() < 0.01, "variance {var}");
        assert!(xs.iter().all(|x| x.is_finite()));
    }

    #[test]
    fn streams_and_steps_differ() {
        let a = rng_u32(1, 0, 0, 0);
        assert_ne!(a, rng_u32(1, 1, 0, 0));
        assert_ne!(a, rng_u32(1, 0, 1, 0));
        assert_ne!(a, rng_u32(1, 0, 0, 1));
        assert_ne!(a, rng_u32(2, 0, 0, 0));
    }
}
