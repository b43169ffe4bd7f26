//! Launchers for `shaders/data.wgsl` (after `shaders/rng.wgsl`): the per-step batch gather
//! from the dataset resident on the GPU as packed bytes (optionally binarised), and the
//! denoising input noise; their random numbers are keyed by step or by image ([`NoiseKey`]).
//! Both read the step counter of [`step`](super::step), so one recorded plan serves every step.

use super::NoiseKey;
use crate::gpu::{Gpu, Plan, Shader, Tensor, grid_1d};

pub const SHADER: Shader = Shader {
    name: "data",
    source: concat!(
        include_str!("../../shaders/rng.wgsl"),
        include_str!("../../shaders/data.wgsl")
    ),
};

const WG: u32 = 256;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    total: u32,
    pixels: u32,
    batch_size: u32,
    seed: u32,
    noise_std: f32,
    noise_key: u32,
    binarize: u32,
    _pad1: u32,
}

/// Packs dataset bytes little-endian into u32 words (byte k is (w[k/4] >> 8·(k%4)) & 255), zero-padded.
pub fn pack_bytes(bytes: &[u8]) -> Vec<u32> {
    bytes
        .chunks(4)
        .map(|c| {
            let mut word = [0u8; 4];
            word[..c.len()].copy_from_slice(c);
            u32::from_le_bytes(word)
        })
        .collect()
}

/// x[b, p] = byte(images, perm[batch·batch_size + b]·pixels + p) / 255 for b < n, p < pixels,
/// where batch = `state[1]` (the GPU step counter, see src/kernels/step.rs). x is `[n, 1, H, W]` with H·W = pixels.
///
/// With `binarize` = `Some((seed, key))` each pixel v = byte/255 is drawn instead as 1 if
/// u < v else 0 (binarised MNIST), `u = (rng_u32(seed, STREAM_BINARIZE (=4), c, k) >> 8) / 2^24`
/// and `(c, k)` = `key.counter(state, b, pixels, p)`: `(state[0], b·pixels + p)` for
/// [`NoiseKey::Step`] (fresh draws every step, "dynamic binarisation"), `(state[1]·B + b, p)`
/// for [`NoiseKey::Image`] `{ batch_size: B }` (one fixed binarisation per image index).
///
/// `x` may be allocated for a full batch; only its first `n·pixels` elements are written.
#[allow(clippy::too_many_arguments)]
pub fn gather(
    plan: &mut Plan,
    gpu: &Gpu,
    x: &Tensor,
    images: &Tensor,
    perm: &Tensor,
    state: &Tensor,
    binarize: Option<(u32, NoiseKey)>,
    batch_size: usize,
    n: usize,
    pixels: usize,
) {
    let total = n * pixels;
    assert!(
        n <= batch_size && total <= x.numel(),
        "gather: x holds fewer than n images"
    );
    assert!(n <= perm.numel(), "gather: perm shorter than the batch");
    let (seed, key) = binarize.unwrap_or((0, NoiseKey::Step));
    let params = Params {
        total: total as u32,
        pixels: pixels as u32,
        batch_size: batch_size as u32,
        seed,
        noise_std: 0.0,
        noise_key: key.word(),
        binarize: binarize.is_some() as u32,
        _pad1: 0,
    };
    plan.dispatch(
        gpu,
        &SHADER,
        "gather",
        &[],
        &params,
        &[
            (1, images.bind()),
            (2, perm.bind()),
            (3, state.bind()),
            (4, x.bind()),
        ],
        grid_1d(gpu, total, WG),
    );
}

/// `noisy[b, p] = clamp(x[b, p] + std·ε, 0, 1)` for `b < n`, `p < pixels` (the first
/// `n·pixels` elements), `ε = rng_normal(seed, STREAM_INPUT_NOISE (=1), c, k)` with `(c, k)` =
/// `key.counter(state, b, pixels, p)`: `(state[0], b·pixels + p)` for [`NoiseKey::Step`],
/// `(state[1]·batch_size + b, p)` for [`NoiseKey::Image`].
#[allow(clippy::too_many_arguments)]
pub fn add_noise(
    plan: &mut Plan,
    gpu: &Gpu,
    noisy: &Tensor,
    x: &Tensor,
    state: &Tensor,
    seed: u32,
    std: f32,
    key: NoiseKey,
    n: usize,
    pixels: usize,
) {
    let numel = n * pixels;
    assert!(
        numel <= noisy.numel() && numel <= x.numel(),
        "add_noise: n·pixels exceeds a tensor"
    );
    let params = Params {
        total: numel as u32,
        pixels: pixels as u32,
        batch_size: 0,
        seed,
        noise_std: std,
        noise_key: key.word(),
        binarize: 0,
        _pad1: 0,
    };
    plan.dispatch(
        gpu,
        &SHADER,
        "add_noise",
        &[],
        &params,
        &[(3, state.bind()), (4, noisy.bind()), (5, x.bind())],
        grid_1d(gpu, numel, WG),
    );
}
