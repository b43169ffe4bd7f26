//! CPU reference for `shaders/iwae.wgsl`: the importance-weighted NLL estimate in rounds of S
//! samples (codes and log-ratios drawn with the shared counter-based RNG, the targets repeated
//! per sample, the online logsumexp); f64 inside. Row `m = s·n + i` is sample s of image i.

use crate::counter_rng::rng_normal;
use crate::kernels::NoiseKey;

/// Round `round` of `samples` (S) codes per image: for row `m = s·n + i`, sample
/// `k = round·S + s`, `ε_j = rng_normal(seed, stream, c, index)` with `(c, index) =
/// key.counter(state, i, L, k·L + j)` = `(state[1]·B + i, k·L + j)` (key [`NoiseKey::Image`]
/// `{ batch_size: B }` only),
/// `z[m, j] = μ_ij + exp(½·logvar_ij)·ε_j`, `log_ratio[m] = Σ_j (½ε_j² + ½·logvar_ij −
/// ½·z_mj²)`. `head` `[n, 2L]` = (μ | logvar); `z` `[S·n, L]`; `log_ratio` `[S·n]`.
#[allow(clippy::too_many_arguments)]
pub fn draw(
    z: &mut [f32],
    log_ratio: &mut [f32],
    head: &[f32],
    state: &[u32],
    seed: u32,
    stream: u32,
    key: NoiseKey,
    round: usize,
    samples: usize,
    n: usize,
    latent: usize,
) {
    assert!(
        matches!(key, NoiseKey::Image { .. }),
        "iwae::draw keys by image"
    );
    for s in 0..samples {
        let k = round * samples + s;
        for i in 0..n {
            let m = s * n + i;
            let (mu, logvar) = head[2 * latent * i..2 * latent * (i + 1)].split_at(latent);
            let mut acc = 0.0f64;
            for j in 0..latent {
                let (counter, index) = key.counter(state, i, latent, k * latent + j);
                let e = rng_normal(seed, stream, counter, index) as f64;
                let lv = logvar[j] as f64;
                let zj = mu[j] as f64 + (0.5 * lv).exp() * e;
                z[m * latent + j] = zj as f32;
                acc += 0.5 * (e * e + lv - zj * zj);
            }
            log_ratio[m] = acc as f32;
        }
    }
}

/// `target_rep[m, :] = x[m mod n, :]` for `m < S·n` (`x` `[n, D]`, `target_rep` `[S·n, D]`).
pub fn replicate(target_rep: &mut [f32], x: &[f32], samples: usize, n: usize, d: usize) {
    for (m, row) in target_rep[..samples * n * d].chunks_mut(d).enumerate() {
        let i = m % n;
        row.copy_from_slice(&x[i * d..(i + 1) * d]);
    }
}

/// For `s < samples` with `k = round·S + s < total` (K): `lw = log_ratio[m] − rec[m]` (m = s·n +
/// i, the difference in f32) folded into `lse[i] = (max, Σ exp(lw − max))` (`[n, 2]`, afresh at round 0); at the last
/// round (`(round + 1)·S ≥ K`) `nll[i] = −(max + ln Σ − ln K)` (`[n]`, untouched before).
#[allow(clippy::too_many_arguments)]
pub fn accumulate(
    lse: &mut [f32],
    nll: &mut [f32],
    rec: &[f32],
    log_ratio: &[f32],
    round: usize,
    samples: usize,
    total: usize,
    n: usize,
) {
    let first = round * samples;
    for i in 0..n {
        let (mut mx, mut sum) = match round {
            0 => (f64::NEG_INFINITY, 0.0),
            _ => (lse[2 * i] as f64, lse[2 * i + 1] as f64),
        };
        for s in 0..samples.min(total.saturating_sub(first)) {
            let m = s * n + i;
            // In f32, as the kernel takes it.
            let lw = (log_ratio[m] - rec[m]) as f64;
            if lw > mx {
                sum = sum * (mx - lw).exp() + 1.0;
                mx = lw;
            } else {
                sum += (lw - mx).exp();
            }
        }
        lse[2 * i] = mx as f32;
        lse[2 * i + 1] = sum as f32;
        if first + samples >= total {
            nll[i] = -(mx + sum.ln() - (total as f64).ln()) as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::fd::values;

    /// All rounds of `samples` over K = `lw.len() / n` log-weights (`lw[k·n + i]`), each given
    /// as `log_ratio − rec` with `rec` arbitrary; returns nll and the log-weights as the f32
    /// inputs hold them (per image, in f64).
    fn nll_in_rounds(lw: &[f32], samples: usize, n: usize) -> (Vec<f32>, Vec<Vec<f64>>) {
        let total = lw.len() / n;
        let rec_all = values(9, lw.len(), -50.0, 50.0);
        let ratio_all: Vec<f32> = lw.iter().zip(&rec_all).map(|(w, r)| w + r).collect();
        let held = (0..n)
            .map(|i| {
                (0..total)
                    .map(|k| (ratio_all[k * n + i] - rec_all[k * n + i]) as f64)
                    .collect()
            })
            .collect();
        let (mut lse, mut nll) = (vec![0.0; 2 * n], vec![f32::NAN; n]);
        for round in 0..total.div_ceil(samples) {
            // The round's rows; those past K hold NaN, which must be ignored.
            let (mut rec, mut ratio) = (vec![f32::NAN; samples * n], vec![f32::NAN; samples * n]);
            let first = round * samples * n;
            let rows = samples.min(total - round * samples) * n;
            rec[..rows].copy_from_slice(&rec_all[first..first + rows]);
            ratio[..rows].copy_from_slice(&ratio_all[first..first + rows]);
            assert!(nll.iter().all(|v| v.is_nan()), "nll written early");
            accumulate(&mut lse, &mut nll, &rec, &ratio, round, samples, total, n);
        }
        (nll, held)
    }

    #[test]
    fn accumulate_in_rounds_is_the_direct_logsumexp() {
        let (n, total) = (3, 17);
        // Image 0 near −1e4 with a spread of 400, image 1 mild, image 2 spread over ±1e3
        // (exp of the raw values would overflow or vanish in f64).
        let mut lw = vec![0.0; total * n];
        let spread = [
            values(1, total, -1.02e4, -0.98e4),
            values(2, total, -3.0, 3.0),
            values(3, total, -1e3, 1e3),
        ];
        for k in 0..total {
            for i in 0..n {
                lw[k * n + i] = spread[i][k];
            }
        }
        for samples in [1, 4, 7, 17, 20] {
            let (got, held) = nll_in_rounds(&lw, samples, n);
            for (i, w) in held.iter().enumerate() {
                let mx = w.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let lse = mx + w.iter().map(|v| (v - mx).exp()).sum::<f64>().ln();
                let want = -(lse - (total as f64).ln());
                // The f32 max and sum carried between rounds, and the f32 result.
                let err = (got[i] as f64 - want).abs();
                assert!(
                    err <= 1e-6 * want.abs().max(1.0),
                    "S {samples} image {i}: {} vs {want}",
                    got[i]
                );
            }
        }
    }

    #[test]
    fn one_sample_is_the_reconstruction_loss_minus_the_log_ratio() {
        let n = 4;
        let rec = values(4, n, 50.0, 200.0);
        let ratio = values(5, n, -20.0, 20.0);
        let (mut lse, mut nll) = (vec![0.0; 2 * n], vec![0.0; n]);
        accumulate(&mut lse, &mut nll, &rec, &ratio, 0, 1, 1, n);
        for i in 0..n {
            assert!((nll[i] - (rec[i] - ratio[i])).abs() <= 1e-5 * nll[i].abs());
        }
    }

    /// log_ratio is log N(z; 0, I) − log N(z; μ, σ²) written out with its 2π terms, and the
    /// sample's z and ε agree.
    #[test]
    fn log_ratio_is_the_log_density_ratio() {
        let (n, latent, samples) = (2, 3, 2);
        let head = values(6, 2 * n * latent, -1.5, 1.5);
        let state = [99, 4, 0, 0];
        let key = NoiseKey::Image { batch_size: 5 };
        let (mut z, mut ratio) = (vec![0.0; samples * n * latent], vec![0.0; samples * n]);
        draw(
            &mut z, &mut ratio, &head, &state, 3, 2, key, 1, samples, n, latent,
        );
        let log_2pi = (2.0 * std::f64::consts::PI).ln();
        for m in 0..samples * n {
            let i = m % n;
            let mut want = 0.0;
            for j in 0..latent {
                let zj = z[m * latent + j] as f64;
                let (mu, lv) = (
                    head[2 * latent * i + j] as f64,
                    head[2 * latent * i + latent + j] as f64,
                );
                let prior = -0.5 * (log_2pi + zj * zj);
                let posterior = -0.5 * (log_2pi + lv + (zj - mu).powi(2) / lv.exp());
                want += prior - posterior;
            }
            assert!(
                (ratio[m] as f64 - want).abs() < 1e-4,
                "row {m}: {} vs {want}",
                ratio[m]
            );
        }
    }
}
