//! The maths behind the picture commands: latent grids (samples, the 2-D manifold, straight
//! lines between codes), PSNR, and the classical upscalers super-resolution is measured
//! against. Image arrays are `[count, h, w]` flattened, values in [0, 1].

use crate::counter_rng::{STREAM_SAMPLE, rng_normal};

/// z ~ N(0, I), `[count, latent]`, from the shared counter RNG (stream "sample").
pub fn prior_samples(count: usize, latent: usize, seed: u32) -> Vec<f32> {
    (0..count * latent)
        .map(|i| rng_normal(seed, STREAM_SAMPLE, 0, i as u32))
        .collect()
}

/// The standard normal quantile function (Acklam's rational approximation, relative error
/// below 1.2e-9 on (0, 1)).
pub fn probit(p: f64) -> f64 {
    assert!(p > 0.0 && p < 1.0, "probit needs 0 < p < 1");
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    if p < 0.02425 {
        tail((-2.0 * p.ln()).sqrt())
    } else if p > 1.0 - 0.02425 {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    }
}

/// The classic 2-D manifold: codes at evenly spaced quantiles of N(0, 1) in each dimension,
/// `[rows·cols, 2]`; z0 grows to the right, z1 grows upwards.
pub fn manifold_codes(rows: usize, cols: usize) -> Vec<f32> {
    let mut z = Vec::with_capacity(rows * cols * 2);
    for r in 0..rows {
        for c in 0..cols {
            z.push(probit((c as f64 + 0.5) / cols as f64) as f32);
            z.push(probit(1.0 - (r as f64 + 0.5) / rows as f64) as f32);
        }
    }
    z
}

/// `count` codes on the straight line from `a` to `b` (both ends included).
pub fn line_codes(a: &[f32], b: &[f32], count: usize) -> Vec<f32> {
    let mut z = Vec::with_capacity(count * a.len());
    for i in 0..count {
        let t = if count > 1 {
            i as f32 / (count - 1) as f32
        } else {
            0.0
        };
        z.extend(a.iter().zip(b).map(|(&x, &y)| x + t * (y - x)));
    }
    z
}

/// Mean squared error over all values.
pub fn mse(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(&x, &y)| ((x - y) as f64).powi(2))
        .sum::<f64>()
        / a.len().max(1) as f64
}

/// Peak signal-to-noise ratio in dB for values in [0, 1]: 10·log10(1 / MSE).
pub fn psnr(a: &[f32], b: &[f32]) -> f64 {
    10.0 * (1.0 / mse(a, b).max(1e-12)).log10()
}

/// Nearest-neighbour 2× upscaling of `[count, h, w]`.
pub fn upscale_nearest(x: &[f32], h: usize, w: usize) -> Vec<f32> {
    let mut y = Vec::with_capacity(x.len() * 4);
    for img in x.chunks(h * w) {
        for oy in 0..2 * h {
            for ox in 0..2 * w {
                y.push(img[(oy / 2) * w + ox / 2]);
            }
        }
    }
    y
}

/// Bilinear 2× upscaling of `[count, h, w]` with half-pixel centres and clamped edges
/// (PyTorch `interpolate(mode="bilinear", align_corners=False)`).
pub fn upscale_bilinear(x: &[f32], h: usize, w: usize) -> Vec<f32> {
    let src = |o: usize, n: usize| -> (usize, usize, f32) {
        let s = ((o as f32 + 0.5) / 2.0 - 0.5).max(0.0);
        let i0 = (s.floor() as usize).min(n - 1);
        let i1 = (i0 + 1).min(n - 1);
        (i0, i1, s - i0 as f32)
    };
    let mut y = Vec::with_capacity(x.len() * 4);
    for img in x.chunks(h * w) {
        for oy in 0..2 * h {
            let (y0, y1, fy) = src(oy, h);
            for ox in 0..2 * w {
                let (x0, x1, fx) = src(ox, w);
                let top = img[y0 * w + x0] * (1.0 - fx) + img[y0 * w + x1] * fx;
                let bottom = img[y1 * w + x0] * (1.0 - fx) + img[y1 * w + x1] * fx;
                y.push(top * (1.0 - fy) + bottom * fy);
            }
        }
    }
    y
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probit_inverts_the_normal_cdf() {
        assert!(probit(0.5).abs() < 1e-12);
        assert!((probit(0.975) - 1.959_963_984_540_054).abs() < 1e-6);
        assert!((probit(0.025) + 1.959_963_984_540_054).abs() < 1e-6);
        assert!((probit(0.001) + 3.090_232_306_167_813).abs() < 1e-6);
    }

    #[test]
    fn manifold_is_symmetric_and_oriented() {
        let z = manifold_codes(3, 4);
        assert_eq!(z.len(), 24);
        // Row 0 is the top (largest z1), column 0 the left (smallest z0).
        assert!(z[1] > 0.0 && z[0] < 0.0);
        assert!((z[0] + z[6]).abs() < 1e-6, "z0 symmetric across the row");
        assert_eq!(z[1], z[3], "z1 is constant along a row");
        assert!(z[2 * 4 + 1].abs() < 1e-6, "middle row has z1 = 0");
    }

    #[test]
    fn line_codes_hit_both_ends() {
        let z = line_codes(&[0.0, 1.0], &[2.0, -1.0], 3);
        assert_eq!(z, vec![0.0, 1.0, 1.0, 0.0, 2.0, -1.0]);
    }

    #[test]
    fn bilinear_matches_pytorch_on_a_ramp() {
        // F.interpolate(torch.tensor([[[[0., 1.]]]]), scale_factor=2, mode="bilinear")
        // gives [0, 0.25, 0.75, 1] in each row.
        let y = upscale_bilinear(&[0.0, 1.0], 1, 2);
        assert_eq!(y, vec![0.0, 0.25, 0.75, 1.0, 0.0, 0.25, 0.75, 1.0]);
        let n = upscale_nearest(&[0.0, 1.0], 1, 2);
        assert_eq!(n, vec![0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0]);
    }

    #[test]
    fn psnr_of_known_error() {
        let a = vec![0.5f32; 100];
        let b = vec![0.6f32; 100];
        assert!((psnr(&a, &b) - 20.0).abs() < 1e-3);
    }

    #[test]
    fn prior_samples_are_seeded() {
        assert_eq!(prior_samples(4, 3, 1), prior_samples(4, 3, 1));
        assert_ne!(prior_samples(4, 3, 1), prior_samples(4, 3, 2));
    }
}
