//! CPU reference for `shaders/data.wgsl`: the batch gather from the byte dataset (optionally
//! binarised) and the denoising input noise.

use crate::counter_rng::{STREAM_BINARIZE, STREAM_INPUT_NOISE, rng_normal, rng_u32};
use crate::kernels::NoiseKey;

/// `x[b, p] = bytes[perm[batch·batch_size + b]·pixels + p] / 255` for `b < n`, `p < pixels`,
/// batch = `state[1]` (`x` `[n, 1, H, W]`; elements past `n·pixels` are left alone). With
/// `binarize` = `Some((seed, key))` a pixel v = byte/255 is 1 if u < v else 0, `u =
/// (rng_u32(seed, STREAM_BINARIZE, c, k) >> 8) / 2^24`, `(c, k) = key.counter(state, b, pixels,
/// p)`; the comparison is exact: `(u·2^24)·255 < byte·2^24` in integers. `state`: the step
/// counter `[steps_done, batch_in_epoch, ..]`.
#[allow(clippy::too_many_arguments)]
pub fn gather(
    x: &mut [f32],
    bytes: &[u8],
    perm: &[u32],
    state: &[u32],
    binarize: Option<(u32, NoiseKey)>,
    batch_size: usize,
    n: usize,
    pixels: usize,
) {
    for b in 0..n {
        let image = perm[state[1] as usize * batch_size + b] as usize;
        let src = &bytes[image * pixels..(image + 1) * pixels];
        for (p, (x, &v)) in x[b * pixels..(b + 1) * pixels]
            .iter_mut()
            .zip(src)
            .enumerate()
        {
            *x = match binarize {
                None => v as f32 / 255.0,
                Some((seed, key)) => {
                    let (counter, index) = key.counter(state, b, pixels, p);
                    let u24 = rng_u32(seed, STREAM_BINARIZE, counter, index) >> 8;
                    if u24 * 255 < (v as u32) << 24 {
                        1.0
                    } else {
                        0.0
                    }
                }
            };
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
