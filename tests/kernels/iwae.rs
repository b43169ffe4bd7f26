//! GPU-vs-reference tests for the importance-weighted NLL kernels: the codes and log-ratios of a
//! round of samples keyed by image (sample 0 is the VAE forward's ε), the targets repeated per
//! sample, and the online logsumexp over rounds (a partial last round, wide spreads of
//! log-weights, nll written at the last round only), with sentinels after every output.

use crate::common::{SENTINEL, assert_close, gpu, padded, read_padded, values};
use gpu_ae::counter_rng::STREAM_EVAL;
use gpu_ae::gpu::{Elem, Gpu, Plan, Tensor};
use gpu_ae::kernels::{NoiseKey, SplitTensor, iwae, step::STATE_LEN, vae};
use gpu_ae::reference::iwae as cpu;

/// One draw: round `round` of `samples` per image for `n` images with latent size `latent`, in
/// batch `batch` of `batch_size`.
#[derive(Clone, Copy, Debug)]
struct Draw {
    n: usize,
    latent: usize,
    samples: usize,
    round: usize,
    batch_size: usize,
    batch: u32,
}

impl Draw {
    fn key(&self) -> NoiseKey {
        NoiseKey::Image {
            batch_size: self.batch_size,
        }
    }

    /// The step counter: word 0 is neither the batch nor 0, so a kernel keying by it would fail.
    fn state(&self) -> [u32; 4] {
        [1000 + self.batch, self.batch, 0, 0]
    }

    /// (z, log_ratio) drawn on the GPU from `head`.
    fn run(&self, gpu: &Gpu, head: &[f32], seed: u32) -> (Vec<f32>, Vec<f32>) {
        let rows = self.samples * self.n;
        let head_t = Tensor::from_f32(gpu, &[self.n, 2 * self.latent], head, "head").unwrap();
        let state = Tensor::from_u32(gpu, &[STATE_LEN], &self.state(), "state").unwrap();
        let zeros = vec![0.0; rows * self.latent];
        let z = padded(gpu, &[rows, self.latent], Elem::F32, &zeros, "z");
        let ratio = padded(gpu, &[rows], Elem::F32, &zeros[..rows], "log_ratio");
        let mut plan = Plan::new();
        iwae::draw(
            &mut plan,
            gpu,
            &z,
            &ratio,
            &head_t,
            &state,
            seed,
            STREAM_EVAL,
            self.key(),
            self.round,
            self.samples,
            self.n,
            self.latent,
        );
        plan.run(gpu).unwrap();
        (
            read_padded(gpu, &z, &format!("{self:?} z")),
            read_padded(gpu, &ratio, &format!("{self:?} log_ratio")),
        )
    }

    fn reference(&self, head: &[f32], seed: u32) -> (Vec<f32>, Vec<f32>) {
        let rows = self.samples * self.n;
        let (mut z, mut ratio) = (vec![0.0; rows * self.latent], vec![0.0; rows]);
        cpu::draw(
            &mut z,
            &mut ratio,
            head,
            &self.state(),
            seed,
            STREAM_EVAL,
            self.key(),
            self.round,
            self.samples,
            self.n,
            self.latent,
        );
        (z, ratio)
    }
}

/// n = 3, L = 5, S = 7 in rounds 0 to 2 of batch 2 of 4; one image with L = 70 (more than a
/// workgroup) in round 1 of batch 5 of 1; a tail of 5 images of a batch of 8 with L = 16.
#[test]
fn draw_matches_reference() {
    let gpu = gpu();
    let mut cases: Vec<Draw> = (0..3)
        .map(|round| Draw {
            n: 3,
            latent: 5,
            samples: 7,
            round,
            batch_size: 4,
            batch: 2,
        })
        .collect();
    cases.push(Draw {
        n: 1,
        latent: 70,
        samples: 3,
        round: 1,
        batch_size: 1,
        batch: 5,
    });
    cases.push(Draw {
        n: 5,
        latent: 16,
        samples: 2,
        round: 0,
        batch_size: 8,
        batch: 3,
    });
    for c in cases {
        let head = values((c.n * 31 + c.latent) as u64, 2 * c.n * c.latent, -2.0, 1.5);
        let seed = 40 + c.round as u32;
        let (z, ratio) = c.run(&gpu, &head, seed);
        let (wz, wratio) = c.reference(&head, seed);
        assert_close(&format!("{c:?} z"), &z, &wz, 1e-5, 1e-5);
        assert_close(&format!("{c:?} log_ratio"), &ratio, &wratio, 1e-4, 1e-5);
        // Every sample of a round is a draw of its own.
        let row = |m: usize| &z[m * c.latent..(m + 1) * c.latent];
        assert_ne!(row(0), row(c.n), "{c:?}: samples 0 and 1 of image 0 agree");
    }
}

/// Sample k = 0 (round 0, row s = 0) draws the ε of the VAE forward keyed by image, with the
/// same seed and stream: its z is the VAE's z.
#[test]
fn sample_zero_is_the_vae_forward_keyed_by_image() {
    let gpu = gpu();
    let c = Draw {
        n: 3,
        latent: 5,
        samples: 2,
        round: 0,
        batch_size: 4,
        batch: 2,
    };
    let (n, latent, seed) = (c.n, c.latent, 8);
    let head = values(12, 2 * n * latent, -2.0, 1.5);
    let (z, _) = c.run(&gpu, &head, seed);

    let head_t = Tensor::from_f32(&gpu, &[n, 2 * latent], &head, "head").unwrap();
    let head_out = Tensor::zeros(&gpu, &[n, 2 * latent], "head out").unwrap();
    let state = Tensor::from_u32(&gpu, &[STATE_LEN], &c.state(), "state").unwrap();
    let z_vae = Tensor::zeros(&gpu, &[n, latent], "z").unwrap();
    let eps = Tensor::zeros(&gpu, &[n, latent], "eps").unwrap();
    let kl = Tensor::zeros(&gpu, &[n], "kl").unwrap();
    let mut plan = Plan::new();
    vae::forward(
        &mut plan,
        &gpu,
        &head_out,
        &z_vae,
        &eps,
        &kl,
        &SplitTensor::whole(&head_t),
        &state,
        seed,
        STREAM_EVAL,
        c.key(),
        true,
        n,
        latent,
    );
    plan.run(&gpu).unwrap();
    let z_vae = z_vae.read_f32(&gpu).unwrap();
    assert_close("sample 0 vs vae z", &z[..n * latent], &z_vae, 1e-6, 1e-6);
    let same = z[n * latent..].iter().zip(&z_vae).filter(|(a, b)| a == b);
    assert_eq!(same.count(), 0, "sample 1 must not be the VAE's draw");
}

/// (n, S, D): three images of 13 pixels 7 times, one image of 70 pixels 4 times, five MNIST
/// images twice.
#[test]
fn replicate_matches_reference() {
    let gpu = gpu();
    for (n, samples, d) in [(3, 7, 13), (1, 4, 70), (5, 2, 784)] {
        let x = values((n * d) as u64, n * d, 0.0, 1.0);
        let xt = Tensor::from_f32(&gpu, &[n, d], &x, "x").unwrap();
        let rows = samples * n;
        let rep = padded(&gpu, &[rows, d], Elem::F32, &vec![0.0; rows * d], "rep");
        let mut plan = Plan::new();
        iwae::replicate(&mut plan, &gpu, &rep, &xt, samples, n, d);
        plan.run(&gpu).unwrap();
        let what = format!("replicate n{n} S{samples} D{d}");
        let got = read_padded(&gpu, &rep, &what);
        let mut want = vec![0.0; rows * d];
        cpu::replicate(&mut want, &x, samples, n, d);
        assert_eq!(got, want, "{what}");
    }
}

/// Accumulates K = `total` log-weights of `n` images in rounds of `samples` on the GPU and in
/// the reference: lse after every round, nll untouched (sentinels) until the last round, then
/// the estimate. Log-weights lw = log_ratio − rec spread per image: around −1e4 (±200), within
/// ±3, within ±1e3, repeating; the rows of a partial last round past K hold NaN, which must be
/// ignored.
fn check_accumulate(gpu: &Gpu, n: usize, samples: usize, total: usize) {
    let what = format!("accumulate n{n} S{samples} K{total}");
    let rounds = total.div_ceil(samples);
    let rows = samples * n;
    let lse = padded(gpu, &[n, 2], Elem::F32, &vec![0.0; 2 * n], "lse");
    let nll = padded(gpu, &[n], Elem::F32, &vec![SENTINEL; n], "nll");
    let (mut want_lse, mut want_nll) = (vec![0.0; 2 * n], vec![SENTINEL; n]);
    for round in 0..rounds {
        let seed = (100 * n + 10 * samples + round) as u64;
        let rec = values(seed, rows, 50.0, 500.0);
        let mut ratio = values(seed + 1, rows, -1.0, 1.0);
        for (m, r) in ratio.iter_mut().enumerate() {
            let (s, i) = (m / n, m % n);
            *r = if round * samples + s >= total {
                f32::NAN
            } else {
                match i % 3 {
                    0 => rec[m] - 1e4 + 200.0 * *r,
                    1 => rec[m] + 3.0 * *r,
                    _ => rec[m] + 1e3 * *r,
                }
            };
        }
        let rec_t = Tensor::from_f32(gpu, &[rows], &rec, "rec").unwrap();
        let ratio_t = Tensor::from_f32(gpu, &[rows], &ratio, "log_ratio").unwrap();
        let mut plan = Plan::new();
        iwae::accumulate(
            &mut plan, gpu, &lse, &nll, &rec_t, &ratio_t, round, samples, total, n,
        );
        plan.run(gpu).unwrap();
        cpu::accumulate(
            &mut want_lse,
            &mut want_nll,
            &rec,
            &ratio,
            round,
            samples,
            total,
            n,
        );
        let at = format!("{what} round {round}");
        let got_lse = read_padded(gpu, &lse, &format!("{at} lse"));
        assert_close(&format!("{at} lse"), &got_lse, &want_lse, 1e-5, 1e-5);
        let got_nll = read_padded(gpu, &nll, &format!("{at} nll"));
        if round + 1 < rounds {
            assert!(
                got_nll.iter().all(|&v| v == SENTINEL),
                "{at}: nll written before the last round"
            );
        } else {
            assert_close(&format!("{at} nll"), &got_nll, &want_nll, 1e-4, 1e-6);
        }
    }
}

/// n = 3, S = 7, K = 17 over 3 rounds (the last has 3 samples); one image with all its samples
/// in one round; 70 images (two workgroups) of K = 3 in rounds of 2; K = 1.
#[test]
fn accumulate_matches_reference() {
    let gpu = gpu();
    check_accumulate(&gpu, 3, 7, 17);
    check_accumulate(&gpu, 1, 5, 5);
    check_accumulate(&gpu, 70, 2, 3);
    check_accumulate(&gpu, 4, 1, 1);
}
