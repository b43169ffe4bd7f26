//! GPU-vs-reference tests for the VAE latent layer: ε from the shared RNG at the GPU step
//! counter, z, the per-example KL, evaluation mode (z = μ) and the backward pass, with the head
//! and dz given whole or as split-K slices that the kernels add up.

use crate::common::{assert_close, gpu, values};
use gpu_ae::gpu::{Gpu, Plan, Tensor};
use gpu_ae::kernels::{SplitTensor, step::STATE_LEN, vae};
use gpu_ae::reference::rng::{STREAM_EVAL, STREAM_REPARAM};
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
        &mut plan, gpu, &head_out, &z, &eps, &kl, &head_s, &state, seed, stream, sample, n, latent,
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
    /// Sets state[0] (the step the noise is drawn for), runs, returns (z, eps, kl).
    fn run(&self, gpu: &Gpu, step: u32) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        gpu.queue.write_buffer(
            &self.state.buffer,
            0,
            bytemuck::cast_slice(&[step, 0, 0, 0]),
        );
        self.plan.submit(gpu).unwrap();
        let mut kl = self.kl.read_f32(gpu).unwrap();
        assert_eq!(kl.pop(), Some(9.0), "vae forward wrote past kl[N - 1]");
        (
            self.z.read_f32(gpu).unwrap(),
            self.eps.read_f32(gpu).unwrap(),
            kl,
        )
    }
}

fn reference(
    head: &[f32],
    seed: u32,
    stream: u32,
    step: u32,
    sample: bool,
    n: usize,
    latent: usize,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let mut z = vec![0.0; n * latent];
    let mut eps = vec![0.0; n * latent];
    let mut kl = vec![0.0; n];
    cpu::forward(
        &mut z, &mut eps, &mut kl, head, seed, stream, step, sample, n, latent,
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
            let fwd = build_forward(&gpu, &head, splits, seed, STREAM_REPARAM, true, n, latent);
            let (z, eps, kl) = fwd.run(&gpu, 3);
            let (wz, weps, wkl) = reference(&head, seed, STREAM_REPARAM, 3, true, n, latent);
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
    let fwd = build_forward(&gpu, &head, 1, 5, STREAM_EVAL, false, n, latent);
    let (z, eps, kl) = fwd.run(&gpu, 4);
    let mu: Vec<f32> = head
        .chunks(2 * latent)
        .flat_map(|r| r[..latent].to_vec())
        .collect();
    assert_eq!(z, mu, "z must be exactly μ when not sampling");
    assert!(
        eps.iter().all(|&e| e == 0.0),
        "eps must be 0 when not sampling"
    );
    let (_, _, wkl) = reference(&head, 5, STREAM_EVAL, 4, false, n, latent);
    assert_close("vae kl (no sampling)", &kl, &wkl, 1e-5, 1e-5);
}

#[test]
fn noise_follows_the_gpu_step_counter() {
    let gpu = gpu();
    let (n, latent) = (4, 16);
    let head = values(22, 2 * n * latent, -1.0, 1.0);
    let fwd = build_forward(&gpu, &head, 2, 99, STREAM_REPARAM, true, n, latent);
    // One plan, replayed with the counter rewritten in between (as training does).
    let (_, eps0, _) = fwd.run(&gpu, 0);
    let (z7, eps7, _) = fwd.run(&gpu, 7);
    let changed = eps0.iter().zip(&eps7).filter(|(a, b)| a != b).count();
    assert_eq!(changed, n * latent, "ε must change with state[0]");
    let (wz, weps, _) = reference(&head, 99, STREAM_REPARAM, 7, true, n, latent);
    assert_close("eps at step 7", &eps7, &weps, 1e-5, 1e-5);
    assert_close("z at step 7", &z7, &wz, 1e-5, 1e-5);
    let (_, weps0, _) = reference(&head, 99, STREAM_REPARAM, 0, true, n, latent);
    assert_close("eps at step 0", &eps0, &weps0, 1e-5, 1e-5);
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
