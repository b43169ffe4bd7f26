//! Launchers for `shaders/iwae.wgsl` (after `shaders/rng.wgsl`): the importance-weighted
//! estimate of the negative log-likelihood (Burda et al.),
//! `−log p(x) ≈ −(logsumexp_k [log p(x|z_k) + log p(z_k) − log q(z_k|x)] − log K)`, over K
//! samples `z_k ~ q(z|x)` drawn in rounds of S for a batch of n images. Row `m = s·n + i` of a
//! round is its sample s of image i; round r holds the samples `k = r·S + s`. Per round:
//! [`draw`] the codes and their log-ratios, decode `z` and take the per-row loss `rec` =
//! −log p(x|z) against [`replicate`]'s targets (the loss kernel), then [`accumulate`].

use super::NoiseKey;
use crate::gpu::{Gpu, Plan, Shader, Tensor, grid_1d};

pub const SHADER: Shader = Shader {
    name: "iwae",
    source: concat!(
        include_str!("../../shaders/rng.wgsl"),
        include_str!("../../shaders/iwae.wgsl")
    ),
};

const WG: u32 = 64;
const WG_COPY: u32 = 256;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    width: u32,
    samples: u32,
    round: u32,
    seed: u32,
    stream: u32,
    batch_size: u32,
    total: u32,
}

/// Draws round `round` of `samples` (S) codes for each of the `n` images: for row `m = s·n + i`,
/// sample `k = round·S + s`, image `g = state[1]·B + i` (`key` = [`NoiseKey::Image`]
/// `{ batch_size: B }`, the only key allowed: the estimate is the image's whatever the batch):
/// `ε_j = rng_normal(seed, stream, g, k·L + j)` (k = 0 is the ε of
/// [`vae::forward`](super::vae::forward) keyed by image), `z[m, j] = μ_ij + exp(½·logvar_ij)·ε_j`,
/// `log_ratio[m] = Σ_j (½ε_j² + ½·logvar_ij − ½·z_mj²)` = log N(z; 0, I) − log N(z; μ, σ²).
/// `head` `[n, 2L]` = (μ | logvar) per row; `z` `[S·n, L]`; `log_ratio` `[S·n]`; `state`: the
/// GPU step counter (u32 `[4]`).
#[allow(clippy::too_many_arguments)]
pub fn draw(
    plan: &mut Plan,
    gpu: &Gpu,
    z: &Tensor,
    log_ratio: &Tensor,
    head: &Tensor,
    state: &Tensor,
    seed: u32,
    stream: u32,
    key: NoiseKey,
    round: usize,
    samples: usize,
    n: usize,
    latent: usize,
) {
    let NoiseKey::Image { batch_size } = key else {
        panic!("iwae::draw keys its samples by image");
    };
    let rows = samples * n;
    assert!(
        head.numel() >= 2 * n * latent && z.numel() >= rows * latent && log_ratio.numel() >= rows,
        "iwae::draw: a tensor is smaller than its shape"
    );
    let params = Params {
        n: n as u32,
        width: latent as u32,
        samples: samples as u32,
        round: round as u32,
        seed,
        stream,
        batch_size: batch_size as u32,
        total: 0,
    };
    plan.dispatch(
        gpu,
        &SHADER,
        "draw",
        &[],
        &params,
        &[
            (1, head.bind()),
            (2, state.bind()),
            (3, z.bind()),
            (4, log_ratio.bind()),
        ],
        grid_1d(gpu, rows, 1),
    );
}

/// `target_rep[m, :] = x[m mod n, :]` for the `S·n` rows of a round: the batch's targets `x`
/// `[n, D]` once for every sample (`target_rep` `[S·n, D]`).
pub fn replicate(
    plan: &mut Plan,
    gpu: &Gpu,
    target_rep: &Tensor,
    x: &Tensor,
    samples: usize,
    n: usize,
    d: usize,
) {
    let total = samples * n * d;
    assert!(
        x.numel() >= n * d && target_rep.numel() >= total,
        "iwae::replicate: a tensor is smaller than its shape"
    );
    let params = Params {
        n: n as u32,
        width: d as u32,
        samples: samples as u32,
        round: 0,
        seed: 0,
        stream: 0,
        batch_size: 0,
        total: 0,
    };
    plan.dispatch(
        gpu,
        &SHADER,
        "replicate",
        &[],
        &params,
        &[(5, x.bind()), (6, target_rep.bind())],
        grid_1d(gpu, total, WG_COPY),
    );
}

/// Folds round `round` into the online logsumexp of each image i: for `s < samples` with
/// `k = round·S + s < total` (K), `lw = log_ratio[m] − rec[m]` (m = s·n + i; `rec` `[S·n]` =
/// −log p(x|z), `log_ratio` `[S·n]` from [`draw`]) goes into `lse[i] = (max, Σ exp(lw − max))`
/// (`lse` `[n, 2]`, started afresh at round 0); at the last round (`(round + 1)·S ≥ K`)
/// `nll[i] = −(max + ln Σ − ln K)` (`nll` `[n]`), written only then.
#[allow(clippy::too_many_arguments)]
pub fn accumulate(
    plan: &mut Plan,
    gpu: &Gpu,
    lse: &Tensor,
    nll: &Tensor,
    rec: &Tensor,
    log_ratio: &Tensor,
    round: usize,
    samples: usize,
    total: usize,
    n: usize,
) {
    assert!(
        lse.numel() >= 2 * n
            && nll.numel() >= n
            && rec.numel() >= samples * n
            && log_ratio.numel() >= samples * n,
        "iwae::accumulate: a tensor is smaller than its shape"
    );
    assert!(
        round * samples < total,
        "iwae::accumulate: round {round} is past the last"
    );
    let params = Params {
        n: n as u32,
        width: 0,
        samples: samples as u32,
        round: round as u32,
        seed: 0,
        stream: 0,
        batch_size: 0,
        total: total as u32,
    };
    plan.dispatch(
        gpu,
        &SHADER,
        "accumulate",
        &[],
        &params,
        &[
            (4, log_ratio.bind()),
            (7, rec.bind()),
            (8, lse.bind()),
            (9, nll.bind()),
        ],
        grid_1d(gpu, n, WG),
    );
}
