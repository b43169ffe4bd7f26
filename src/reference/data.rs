//! CPU reference for `shaders/data.wgsl`: the batch gather from the byte dataset and the
//! denoising input noise.

use crate::reference::rng::{STREAM_INPUT_NOISE, rng_normal};

/// `x[b, p] = bytes[perm[batch·batch_size + b]·pixels + p] / 255` for `b < n`, `p < pixels`
/// (`x` `[n, 1, H, W]`; elements past `n·pixels` are left alone).
pub fn gather(
    x: &mut [f32],
    bytes: &[u8],
    perm: &[u32],
    batch: u32,
    batch_size: usize,
    n: usize,
    pixels: usize,
) {
    for b in 0..n {
        let image = perm[batch as usize * batch_size + b] as usize;
        let src = &bytes[image * pixels..(image + 1) * pixels];
        for (x, &v) in x[b * pixels..(b + 1) * pixels].iter_mut().zip(src) {
            *x = v as f32 / 255.0;
        }
    }
}

/// `noisy[i] = clamp(x[i] + std·ε_i, 0, 1)` with `ε_i = rng_normal(seed, STREAM_INPUT_NOISE,
/// step, i)`, for every `i < noisy.len()`.
pub fn add_noise(noisy: &mut [f32], x: &[f32], seed: u32, step: u32, std: f32) {
    for (i, (o, &v)) in noisy.iter_mut().zip(x).enumerate() {
        let eps = rng_normal(seed, STREAM_INPUT_NOISE, step, i as u32);
        *o = (v + std * eps).clamp(0.0, 1.0);
    }
}
