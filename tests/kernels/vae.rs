//! GPU-vs-reference tests for the VAE latent layer: ε from the shared RNG keyed by the GPU step
//! counter (training) or by the image (evaluation), z, the per-example KL, evaluation mode
//! (z = μ) and the backward pass, with the head and dz given whole or as split-K slices that the
//! kernels add up.

use crate::common::{assert_close, gpu, values};
use gpu_ae::counter_rng::{STREAM_EVAL, STREAM_REPARAM};
use gpu_ae::gpu::{Gpu, Plan, Tensor};
use gpu_ae::kernels::{NoiseKey, SplitTensor, step::STATE_LEN, vae};
use gpu_ae::reference::vae as cpu;

/// (n, latent): batch 1, tiny latents, the real latent 16 with a batch past two workgroups, 17.
const SHAPES: &[(usize, usize)] = &[(1, 1), (3, 2), (130, 16), (5, 17)];

/// GPU forward outputs; `kl` carries a sentinel slot past N that must stay untouched.
struct Forward {
    plan: Plan,
    state: Tensor,
    head_out: Tensor,
    z: Tensor,
    eps: Tensor,
    kl: Tensor,
}

/// `whole` `[rows, cols]` as `splits` random slices that add up to it.
fn sliced(gpu: &Gpu, whole: &[f32], splits: usize, shape: &[usize], seed: u64) -> SplitTensor {
    let mut flat = Vec::with_capacity(splits * whole.len());
    let mut rest = whole.to_vec();
    for s in 1..splits {
        let part = values(seed + s as u64, whole.len(), -1.0, 1.0);
        rest.iter_mut().zip(&part).for_each(|(r, p)| *r -= p);
        flat.extend(part);
    }
    flat.extend(rest);
    let t = Tensor::from_f32(gpu, &[flat.len()], &flat, "slices").unwrap();
    SplitTensor {
        buffer: t.buffer,
        elem: t.elem,
        splits,
        shape: shape.to_vec(),
    }
}

#[allow(clippy::too_many_arguments)]
fn build_forward(
    gpu: &Gpu,
    head: &[f32],
    splits: usize,
    seed: u32,
    stream: u32,
    key: NoiseKey,
    sample: bool,
    n: usize,
    latent: usize,
) -> Forward {
    let head_s = sliced(gpu, head, splits, &[n, 2 * latent], seed as u64);
    let head_out = Tensor::zeros(gpu, &[n, 2 * latent], "head out").unwrap();
    let state = Tensor::zeros(gpu, &[STATE_LEN], "state").unwrap();
    let z = Tensor::zeros(gpu, &[n, latent], "z").unwrap();
    let eps = Tensor::from_f32(gpu, &[n, latent], &vec![9.0; n * latent], "eps").unwrap();
    let kl = Tensor::from_f32(gpu, &[n + 1], &vec![9.0; n + 1], "kl").unwrap();
    let mut plan = Plan::new();
    vae::forward(
        &mut plan, gpu, &head_out, &z, &eps, &kl, &head_s, &state, seed, stream, key, sample, n,
        latent,
    );
    plan.compile(gpu);
    // The plan's bindings keep the slices alive.
    Forward {
        plan,
        state,
        head_out,
        z,
        eps,
        kl,
    }
}

impl Forward {
    /// Sets the step counter (`[steps_done, batch, 0, 0]`), runs, returns (z, eps, kl).
    fn run(&self, gpu: &Gpu, state: [u32; 4]) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        gpu.queue
            .write_buffer(&self.state.buffer, 0, bytemuck::cast_slice(&state));
        self.plan.submit(gpu);
        let mut kl = self.kl.read_f32(gpu).unwrap();
        assert_eq!(kl.pop(), Some(9.0), "vae forward wrote past kl[N - 1]");
        (
            self.z.read_f32(gpu).unwrap(),
            self.eps.read_f32(gpu).unwrap(),
            kl,
        )
    }
}

#[allow(clippy::too_many_arguments)]
fn reference(
    head: &[f32],
    state: [u32; 4],
    seed: u32,
    stream: u32,
    key: NoiseKey,
    sample: bool,
    n: usize,
    latent: usize,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let mut z = vec![0.0; n * latent];
    let mut eps = vec![0.0; n * latent];
    let mut kl = vec![0.0; n];
    cpu::forward(
        &mut z, &mut eps, &mut kl, head, &state, seed, stream, key, sample, n, latent,
    );
    (z, eps, kl)
}

#[test]
fn forward_matches_reference() {
    let gpu = gpu();
    for splits in [1, 3] {
        for &(n, latent) in SHAPES {
            let head = values(n as u64 * 13 + latent as u64, 2 * n * latent, -2.0, 2.0);
            let seed = 1234 + n as u32;
            let key = NoiseKey::Step;
            let fwd = build_forward(
                &gpu,
                &head,
                splits,
                seed,
                STREAM_REPARAM,
                key,
                true,
                n,
                latent,
            );
            let state = [3, 1, 0, 0];
            let (z, eps, kl) = fwd.run(&gpu, state);
            let (wz, weps, wkl) =
                reference(&head, state, seed, STREAM_REPARAM, key, true, n, latent);
            let what = format!("vae forward n{n} L{latent} splits {splits}");
            let summed = fwd.head_out.read_f32(&gpu).unwrap();
            assert_close(&format!("{what} head"), &summed, &head, 1e-5, 1e-5);
            assert_close(&format!("{what} eps"), &eps, &weps, 1e-5, 1e-5);
            assert_close(&format!("{what} z"), &z, &wz, 1e-5, 1e-5);
            assert_close(&format!("{what} kl"), &kl, &wkl, 1e-5, 1e-5);
        }
    }
}

#[test]
fn forward_without_sampling_gives_the_mean() {
    let gpu = gpu();
    let (n, latent) = (3, 17);
    let head = values(21, 2 * n * latent, -2.0, 2.0);
    let key = NoiseKey::Image { batch_size: 4 };
    let fwd = build_forward(&gpu, &head, 1, 5, STREAM_EVAL, key, false, n, latent);
    let (z, eps, kl) = fwd.run(&gpu, [4, 2, 0, 0]);
    let mu: Vec<f32> = head
        .chunks(2 * latent)
        .flat_map(|r| r[..latent].to_vec())
        .collect();
    assert_eq!(z, mu, "z must be exactly μ when not sampling");
    assert!(
        eps.iter().all(|&e| e == 0.0),
        "eps must be 0 when not sampling"
    );
    let (_, _, wkl) = reference(&head, [4, 2, 0, 0], 5, STREAM_EVAL, key, false, n, latent);
    assert_close("vae kl (no sampling)", &kl, &wkl, 1e-5, 1e-5);
}

#[test]
fn noise_follows_the_gpu_step_counter() {
    let gpu = gpu();
    let (n, latent) = (4, 16);
    let head = values(22, 2 * n * latent, -1.0, 1.0);
    let key = NoiseKey::Step;
    let fwd = build_forward(&gpu, &head, 2, 99, STREAM_REPARAM, key, true, n, latent);
    // One plan, replayed with the counter rewritten in between (as training does).
    let (_, eps0, _) = fwd.run(&gpu, [0, 0, 0, 0]);
    let (z7, eps7, _) = fwd.run(&gpu, [7, 0, 0, 0]);
    let changed = eps0.iter().zip(&eps7).filter(|(a, b)| a != b).count();
    assert_eq!(changed, n * latent, "ε must change with state[0]");
    let (wz, weps, _) = reference(
        &head,
        [7, 0, 0, 0],
        99,
        STREAM_REPARAM,
        key,
        true,
        n,
        latent,
    );
    assert_close("eps at step 7", &eps7, &weps, 1e-5, 1e-5);
    assert_close("z at step 7", &z7, &wz, 1e-5, 1e-5);
    let (_, weps0, _) = reference(&head, [0; 4], 99, STREAM_REPARAM, key, true, n, latent);
    assert_close("eps at step 0", &eps0, &weps0, 1e-5, 1e-5);
    // The batch index does not move noise keyed by step.
    let (_, eps7b, _) = fwd.run(&gpu, [7, 5, 0, 0]);
    assert_eq!(eps7b, eps7, "ε keyed by step must not read state[1]");
}

/// (n, latent, batch_size, batch) for ε keyed by image: one image in batch 3 of 1, odd counts
/// in later batches, a tail of 5 in a batch of 8, a batch past two workgroups, L = 17.
const IMAGE_SHAPES: &[(usize, usize, usize, u32)] = &[
    (1, 1, 1, 3),
    (3, 2, 3, 2),
    (5, 16, 8, 3),
    (130, 16, 130, 1),
    (7, 17, 7, 0),
];

#[test]
fn forward_keyed_by_image_matches_reference() {
    let gpu = gpu();
    for splits in [1, 3] {
        for &(n, latent, batch_size, batch) in IMAGE_SHAPES {
            let head = values(n as u64 * 17 + latent as u64, 2 * n * latent, -2.0, 2.0);
            let seed = 77 + n as u32;
            let key = NoiseKey::Image { batch_size };
            let fwd = build_forward(&gpu, &head, splits, seed, STREAM_EVAL, key, true, n, latent);
            // state[0] is neither 0 nor the batch: a kernel keying by it would fail.
            let state = [1000 + batch, batch, 0, 0];
            let (z, eps, kl) = fwd.run(&gpu, state);
            let (wz, weps, wkl) = reference(&head, state, seed, STREAM_EVAL, key, true, n, latent);
            let what = format!(
                "vae forward by image n{n} L{latent} batch {batch} of {batch_size} splits {splits}"
            );
            assert_close(&format!("{what} eps"), &eps, &weps, 1e-5, 1e-5);
            assert_close(&format!("{what} z"), &z, &wz, 1e-5, 1e-5);
            assert_close(&format!("{what} kl"), &kl, &wkl, 1e-5, 1e-5);
        }
    }
}

/// ε keyed by image is the image's, whatever the batch: 11 images with L = 16 sampled as one
/// batch, in batches of 4 (the last a tail of 3) and one at a time give the same bits.
#[test]
fn noise_keyed_by_image_does_not_depend_on_the_batch() {
    let gpu = gpu();
    let (count, latent) = (11, 16);
    let head = values(23, 2 * count * latent, -1.0, 1.0);
    let sampled = |batch_size: usize| -> (Vec<f32>, Vec<f32>) {
        let (mut zs, mut epss) = (Vec::new(), Vec::new());
        for (batch, rows) in head.chunks(batch_size * 2 * latent).enumerate() {
            let n = rows.len() / (2 * latent);
            let key = NoiseKey::Image { batch_size };
            let fwd = build_forward(&gpu, rows, 1, 8, STREAM_EVAL, key, true, n, latent);
            let (z, eps, _) = fwd.run(&gpu, [batch as u32 * 13, batch as u32, 0, 0]);
            zs.extend(z);
            epss.extend(eps);
        }
        (zs, epss)
    };
    let whole = sampled(count);
    assert!(whole.1.iter().all(|&e| e != 0.0), "ε was not drawn");
    assert_eq!(sampled(4), whole, "batches of 4");
    assert_eq!(sampled(1), whole, "one image at a time");
}

#[test]
fn backward_matches_reference() {
    let gpu = gpu();
    for splits in [1, 4] {
        for &(n, latent) in SHAPES {
            let seed = n as u64 * 7 + latent as u64;
            let head = values(seed, 2 * n * latent, -2.0, 2.0);
            let dz = values(seed + 1, n * latent, -1.0, 1.0);
            let eps = values(seed + 2, n * latent, -2.0, 2.0);
            let kl_scale = 0.3;
            let head_t = Tensor::from_f32(&gpu, &[n, 2 * latent], &head, "head").unwrap();
            let dz_s = sliced(&gpu, &dz, splits, &[n, latent], seed + 3);
            let eps_t = Tensor::from_f32(&gpu, &[n, latent], &eps, "eps").unwrap();
            let dhead_t = Tensor::zeros(&gpu, &[n, 2 * latent], "dhead").unwrap();
            let mut plan = Plan::new();
            vae::backward(
                &mut plan, &gpu, &dhead_t, &dz_s, &head_t, &eps_t, n, latent, kl_scale,
            );
            plan.run(&gpu).unwrap();
            let mut want = vec![0.0; 2 * n * latent];
            cpu::backward(&mut want, &dz, &head, &eps, n, latent, kl_scale);
            let got = dhead_t.read_f32(&gpu).unwrap();
            assert_close(
                &format!("vae backward n{n} L{latent} splits {splits}"),
                &got,
                &want,
                1e-5,
                1e-5,
            );
        }
    }
}
