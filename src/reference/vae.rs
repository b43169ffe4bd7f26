//! CPU reference for `shaders/vae.wgsl`: the reparameterisation trick with the shared
//! counter-based RNG, the per-example KL divergence and their backward pass (f64 inside).

use crate::counter_rng::rng_normal;
use crate::kernels::NoiseKey;

/// `head` `[N, 2L]` = (μ | logvar) per row. `eps[i, j] = rng_normal(seed, stream, c, k)` with
/// `(c, k) = key.counter(state, i, L, j)` (`(state[0], i·L + j)` by step, `(state[1]·batch_size
/// + i, j)` by image) when `sample`, else 0; `z = μ + exp(½·logvar)·eps` (`z = μ` exactly when
/// not sampling); `kl[i] = −½·Σ_j (1 + logvar − μ² − exp(logvar))`. `z`, `eps`: `[N, L]`;
/// `kl`: `[N]`; `state`: the step counter `[steps_done, batch_in_epoch, ..]`.
#[allow(clippy::too_many_arguments)]
pub fn forward(
    z: &mut [f32],
    eps: &mut [f32],
    kl: &mut [f32],
    head: &[f32],
    state: &[u32],
    seed: u32,
    stream: u32,
    key: NoiseKey,
    sample: bool,
    n: usize,
    latent: usize,
) {
    for i in 0..n {
        let (mu, logvar) = head[2 * latent * i..2 * latent * (i + 1)].split_at(latent);
        let mut acc = 0.0f64;
        for j in 0..latent {
            let k = i * latent + j;
            let (m, lv) = (mu[j] as f64, logvar[j] as f64);
            if sample {
                let (counter, index) = key.counter(state, i, latent, j);
                let e = rng_normal(seed, stream, counter, index);
                eps[k] = e;
                z[k] = (m + (0.5 * lv).exp() * e as f64) as f32;
            } else {
                eps[k] = 0.0;
                z[k] = mu[j];
            }
            acc += 1.0 + lv - m * m - lv.exp();
        }
        kl[i] = (-0.5 * acc) as f32;
    }
}

/// Gradient of `loss(z) + kl_scale·Σ_i kl[i]` w.r.t. `head` `[N, 2L]` for a fixed `eps`, given
/// `dz = ∂loss/∂z` `[N, L]`: dμ = dz + kl_scale·μ;
/// dlogvar = dz·½·exp(½·logvar)·eps + kl_scale·½·(exp(logvar) − 1).
#[allow(clippy::too_many_arguments)]
pub fn backward(
    dhead: &mut [f32],
    dz: &[f32],
    head: &[f32],
    eps: &[f32],
    n: usize,
    latent: usize,
    kl_scale: f32,
) {
    let ks = kl_scale as f64;
    for i in 0..n {
        let row = 2 * latent * i;
        for j in 0..latent {
            let k = i * latent + j;
            let (m, lv) = (head[row + j] as f64, head[row + latent + j] as f64);
            let g = dz[k] as f64;
            dhead[row + j] = (g + ks * m) as f32;
            dhead[row + latent + j] =
                (g * 0.5 * (0.5 * lv).exp() * eps[k] as f64 + ks * 0.5 * (lv.exp() - 1.0)) as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::fd::{check_gradient, dot, values};

    #[test]
    fn backward_matches_finite_differences() {
        let (n, latent, kl_scale) = (2, 3, 0.7);
        let (seed, stream, state) = (11, 0, [5, 2, 0, 0]);
        let head = values(5, 2 * n * latent, -1.0, 1.0);
        let r = values(6, n * latent, -1.0, 1.0);
        let key = NoiseKey::Step;
        // ε depends only on (seed, stream, step, index), so it stays fixed as head moves.
        let loss = |h: &[f32]| {
            let mut z = vec![0.0; n * latent];
            let mut eps = vec![0.0; n * latent];
            let mut kl = vec![0.0; n];
            forward(
                &mut z, &mut eps, &mut kl, h, &state, seed, stream, key, true, n, latent,
            );
            dot(&z, &r) + kl_scale as f64 * kl.iter().map(|&x| x as f64).sum::<f64>()
        };
        let mut z = vec![0.0; n * latent];
        let mut eps = vec![0.0; n * latent];
        let mut kl = vec![0.0; n];
        forward(
            &mut z, &mut eps, &mut kl, &head, &state, seed, stream, key, true, n, latent,
        );
        assert!(eps.iter().all(|&e| e != 0.0));
        let mut dhead = vec![0.0; 2 * n * latent];
        backward(&mut dhead, &r, &head, &eps, n, latent, kl_scale);
        check_gradient("vae", &head, &dhead, loss, 1e-3, 1e-3);
    }

    #[test]
    fn no_sampling_gives_the_mean_and_standard_normal_has_no_kl() {
        let head = [0.5f32, -1.0, 0.0, 0.0];
        let (mut z, mut eps, mut kl) = ([9.0; 2], [9.0; 2], [9.0; 1]);
        let (state, key) = ([0; 4], NoiseKey::Step);
        forward(
            &mut z, &mut eps, &mut kl, &head, &state, 1, 0, key, false, 1, 2,
        );
        assert_eq!((z, eps), ([0.5, -1.0], [0.0, 0.0]));
        assert!((kl[0] - 0.5 * (0.25 + 1.0)).abs() < 1e-7);
        forward(
            &mut z, &mut eps, &mut kl, &[0.0; 4], &state, 1, 0, key, true, 1, 2,
        );
        assert_eq!((z, kl), (eps, [0.0]));
    }
}
