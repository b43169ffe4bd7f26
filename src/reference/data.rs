//! CPU reference for `shaders/data.wgsl`: the batch gather from the byte dataset and the
//! denoising input noise.

use crate::counter_rng::{STREAM_INPUT_NOISE, rng_normal};
use crate::kernels::NoiseKey;

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

/// `noisy[b, p] = clamp(x[b, p] + std·ε, 0, 1)` for `b < n`, `p < pixels` (elements past
/// `n·pixels` are left alone), with `ε = rng_normal(seed, STREAM_INPUT_NOISE, c, k)` and
/// `(c, k) = key.counter(state, b, pixels, p)`: `(state[0], b·pixels + p)` by step,
/// `(state[1]·batch_size + b, p)` by image. `state`: the step counter
/// `[steps_done, batch_in_epoch, ..]`.
#[allow(clippy::too_many_arguments)]
pub fn add_noise(
    noisy: &mut [f32],
    x: &[f32],
    state: &[u32],
    seed: u32,
    std: f32,
    key: NoiseKey,
    n: usize,
    pixels: usize,
) {
    for b in 0..n {
        for p in 0..pixels {
            let i = b * pixels + p;
            let (counter, index) = key.counter(state, b, pixels, p);
            let eps = rng_normal(seed, STREAM_INPUT_NOISE, counter, index);
            noisy[i] = (x[i] + std * eps).clamp(0.0, 1.0);
        }
    }
}
