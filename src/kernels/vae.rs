//! Launchers for `shaders/vae.wgsl`: the VAE's reparameterisation `z = μ + exp(½·logvar)·ε`
//! with ε from the counter-based RNG keyed by the GPU step counter or by the image
//! ([`NoiseKey`]), the per-example KL divergence, and their backward pass. Their inputs may arrive as split-K slices ([`SplitTensor`]), which
//! they add up themselves: the head's and the decoder's summing passes cost no dispatch.

use super::{NoiseKey, SplitTensor};
use crate::gpu::{Gpu, Plan, Shader, Tensor, grid_1d};

pub const SHADER: Shader = Shader {
    name: "vae",
    source: concat!(
        include_str!("../../shaders/rng.wgsl"),
        include_str!("../../shaders/vae.wgsl")
    ),
};

const WG: u32 = 64;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    latent: u32,
    seed: u32,
    stream: u32,
    sample: u32,
    kl_scale: f32,
    splits: u32,
    noise_key: u32,
}

/// `head` `[N, 2L]` (given as slices to add up) holds (μ | logvar) per row: μ = `head[i, 0..L]`,
/// logvar = `head[i, L..2L]`; the sum goes to `head_out`.
/// `eps[i, j] = rng_normal(seed, stream, c, k)` when `sample`, else 0, with `(c, k)` =
/// `key.counter(state, i, L, j)`: `(state[0], i·L + j)` for [`NoiseKey::Step`],
/// `(state[1]·batch_size + i, j)` for [`NoiseKey::Image`];
/// `z = μ + exp(½·logvar)·eps`; `kl[i] = −½·Σ_j (1 + logvar − μ² − exp(logvar))`.
/// `z`, `eps`: `[N, L]`; `kl`: `[N]`. `state`: the GPU step counter (u32 `[4]`).
#[allow(clippy::too_many_arguments)]
pub fn forward(
    plan: &mut Plan,
    gpu: &Gpu,
    head_out: &Tensor,
    z: &Tensor,
    eps: &Tensor,
    kl: &Tensor,
    head: &SplitTensor,
    state: &Tensor,
    seed: u32,
    stream: u32,
    key: NoiseKey,
    sample: bool,
    n: usize,
    latent: usize,
) {
    debug_assert!(head.numel() == 2 * n * latent && head_out.numel() >= 2 * n * latent);
    debug_assert!(z.numel() >= n * latent && eps.numel() >= n * latent && kl.numel() >= n);
    let params = Params {
        n: n as u32,
        latent: latent as u32,
        seed,
        stream,
        sample: sample as u32,
        kl_scale: 0.0,
        splits: head.splits as u32,
        noise_key: key.word(),
    };
    plan.dispatch(
        gpu,
        &SHADER,
        "forward",
        &[],
        &params,
        &[
            (1, head.bind()),
            (2, eps.bind()),
            (3, state.bind()),
            (4, z.bind()),
            (5, kl.bind()),
            (8, head_out.bind()),
        ],
        grid_1d(gpu, n, 1),
    );
}

/// `dhead` `[N, 2L]`: dμ = dz + kl_scale·μ;
/// dlogvar = dz·½·exp(½·logvar)·eps + kl_scale·½·(exp(logvar) − 1).
/// The gradient of `loss(z) + kl_scale·Σ_i kl[i]` with `dz` = ∂loss/∂z `[N, L]` (given as
/// slices to add up).
#[allow(clippy::too_many_arguments)]
pub fn backward(
    plan: &mut Plan,
    gpu: &Gpu,
    dhead: &Tensor,
    dz: &SplitTensor,
    head: &Tensor,
    eps: &Tensor,
    n: usize,
    latent: usize,
    kl_scale: f32,
) {
    debug_assert!(head.numel() >= 2 * n * latent && dhead.numel() >= 2 * n * latent);
    debug_assert!(dz.numel() == n * latent && eps.numel() >= n * latent);
    let params = Params {
        n: n as u32,
        latent: latent as u32,
        seed: 0,
        stream: 0,
        sample: 0,
        kl_scale,
        splits: dz.splits as u32,
        noise_key: 0,
    };
    plan.dispatch(
        gpu,
        &SHADER,
        "backward",
        &[],
        &params,
        &[
            (1, head.bind()),
            (2, eps.bind()),
            (6, dz.bind()),
            (7, dhead.bind()),
        ],
        grid_1d(gpu, n * latent, WG),
    );
}
