//! GPU-vs-reference tests for the batch gather from packed bytes (plain, and binarised: bit
//! for bit, its statistics, its keys) and the denoising noise (keyed by step as in training,
//! and by image as in evaluation).

use crate::common::{assert_close, gpu, gpu_with_f16, rtol, stored, values};
use gpu_ae::gpu::{Elem, Gpu, Plan, Tensor};
use gpu_ae::kernels::{NoiseKey, data, step};
use gpu_ae::reference::data as cpu;

/// Deterministic bytes and a shuffled permutation of `0..count` (Fisher–Yates on xorshift).
fn bytes(seed: u64, n: usize) -> Vec<u8> {
    values(seed, n, 0.0, 256.0)
        .iter()
        .map(|&v| v as u8)
        .collect()
}

fn permutation(seed: u64, count: usize) -> Vec<u32> {
    let mut perm: Vec<u32> = (0..count as u32).collect();
    let r = values(seed, count, 0.0, 1.0);
    for i in (1..count).rev() {
        let j = ((r[i] * (i + 1) as f32) as usize).min(i);
        perm.swap(i, j);
    }
    perm
}

fn state(gpu: &Gpu, steps: u32, batch: u32) -> Tensor {
    Tensor::from_u32(gpu, &[step::STATE_LEN], &[steps, batch, 0, 0], "state").unwrap()
}

#[test]
fn pack_bytes_is_little_endian_and_zero_padded() {
    assert_eq!(data::pack_bytes(&[]), Vec::<u32>::new());
    assert_eq!(
        data::pack_bytes(&[1, 2, 3, 4, 5]),
        [0x0403_0201, 0x0000_0005]
    );
    let b = bytes(1, 23);
    let w = data::pack_bytes(&b);
    assert_eq!(w.len(), 6);
    for (k, &v) in b.iter().enumerate() {
        assert_eq!((w[k / 4] >> (8 * (k % 4))) & 255, v as u32);
    }
}

/// Gathers `n` images of `pixels` of batch `state[1]` of `batch_size` on the GPU into an x
/// stored as `elem` that holds a full batch of -1.0 sentinels; returns all of x.
#[allow(clippy::too_many_arguments)]
fn run_gather(
    gpu: &Gpu,
    b: &[u8],
    perm: &[u32],
    state: [u32; 4],
    binarize: Option<(u32, NoiseKey)>,
    batch_size: usize,
    n: usize,
    pixels: usize,
    elem: Elem,
) -> Vec<f32> {
    let images =
        Tensor::from_u32(gpu, &[b.len().div_ceil(4)], &data::pack_bytes(b), "images").unwrap();
    let permt = Tensor::from_u32(gpu, &[perm.len()], perm, "perm").unwrap();
    let st = Tensor::from_u32(gpu, &[step::STATE_LEN], &state, "state").unwrap();
    let len = batch_size * pixels;
    let x_dims = [batch_size, 1, pixels, 1];
    let xt = Tensor::from_f32_as(gpu, &x_dims, elem, &vec![-1.0; len], "x").unwrap();
    let mut plan = Plan::new();
    data::gather(
        &mut plan, gpu, &xt, &images, &permt, &st, binarize, batch_size, n, pixels,
    );
    plan.run(gpu).unwrap();
    xt.read_f32(gpu).unwrap()
}

/// Gathers on the GPU into an x stored as `elem` vs the reference, for each case (images,
/// pixels, batch_size, batch), binarised by `binarize(batch_size)` or not. x holds a full batch
/// of -1.0 sentinels, and the rows past the batch's n images must keep them. Binary pixels
/// must be the reference's exactly.
fn check_gather(
    gpu: &Gpu,
    cases: &[(usize, usize, usize, usize)],
    binarize: impl Fn(usize) -> Option<(u32, NoiseKey)>,
    elem: Elem,
) {
    for &(count, pixels, batch_size, batch) in cases {
        let n = batch_size.min(count - batch * batch_size);
        let b = bytes(count as u64, count * pixels);
        let perm = permutation(pixels as u64, count);
        // The step counter's word 0 is not the batch: a kernel reading it would fail.
        let state = [1000 + batch as u32, batch as u32, 0, 0];
        let bin = binarize(batch_size);
        let got = run_gather(gpu, &b, &perm, state, bin, batch_size, n, pixels, elem);
        let mut want = vec![-1.0; batch_size * pixels];
        cpu::gather(&mut want, &b, &perm, &state, bin, batch_size, n, pixels);
        let what = format!(
            "gather {count} images of {pixels}, batch {batch} of {batch_size} {bin:?} {elem:?}"
        );
        let (got_n, want_n) = (&got[..n * pixels], &want[..n * pixels]);
        if bin.is_some() {
            assert!(
                got_n.iter().all(|&v| v == 0.0 || v == 1.0),
                "{what}: not binary"
            );
            let ones = got_n.iter().filter(|&&v| v == 1.0).count();
            assert!(ones > 0 && ones < n * pixels, "{what}: {ones} ones");
            let diff = got_n.iter().zip(want_n).filter(|(g, w)| g != w).count();
            assert_eq!(diff, 0, "{what}: {diff} pixels differ from the reference");
        } else {
            assert_close(&what, got_n, want_n, 1e-6, rtol(elem, 1e-6));
        }
        assert!(
            got[n * pixels..].iter().all(|&v| v == -1.0),
            "{what}: wrote past n images"
        );
    }
}

/// A partial last batch of 5 with 5×3 images that start mid-word, a full batch, batch 0, and
/// MNIST's 784 pixels with batch 128 (partial: 44).
const GATHER_CASES: [(usize, usize, usize, usize); 4] = [
    (37, 15, 8, 4),
    (37, 15, 8, 2),
    (10, 7, 3, 0),
    (300, 784, 128, 2),
];

/// Gather into an f32 x.
#[test]
fn gather_matches_reference() {
    check_gather(&gpu(), &GATHER_CASES, |_| None, Elem::F32);
}

/// Binarised gather keyed by step and by image (the gather's batch size): the GPU's bits are
/// the reference's.
#[test]
fn binarized_gather_matches_reference() {
    let gpu = gpu();
    check_gather(
        &gpu,
        &GATHER_CASES,
        |_| Some((17, NoiseKey::Step)),
        Elem::F32,
    );
    let by_image = |batch_size| Some((5, NoiseKey::Image { batch_size }));
    check_gather(&gpu, &GATHER_CASES, by_image, Elem::F32);
}

/// 1000 copies of one image whose 256 pixels are the bytes 0..=255, binarised in one batch
/// (every row draws anew, by step as by image): black stays 0, white 1, and each pixel's mean
/// over the 1000 draws is its grey level within 5 standard errors.
#[test]
fn binarized_gather_draws_pixels_with_their_grey_level() {
    let gpu = gpu();
    let (count, pixels) = (1000, 256);
    let b: Vec<u8> = (0..count).flat_map(|_| 0..=255u8).collect();
    let perm: Vec<u32> = (0..count as u32).collect();
    for key in [NoiseKey::Step, NoiseKey::Image { batch_size: count }] {
        let bin = Some((3, key));
        let x = run_gather(
            &gpu,
            &b,
            &perm,
            [7, 0, 0, 0],
            bin,
            count,
            count,
            pixels,
            Elem::F32,
        );
        assert!(
            x.iter().all(|&v| v == 0.0 || v == 1.0),
            "{key:?}: not binary"
        );
        let mut total = 0.0;
        for px in 0..pixels {
            let ones: f64 = (0..count).map(|r| x[r * pixels + px] as f64).sum();
            let (mean, p) = (ones / count as f64, px as f64 / 255.0);
            let se = (p * (1.0 - p) / count as f64).sqrt();
            assert!(
                (mean - p).abs() <= 5.0 * se,
                "{key:?}: pixel {px}: mean {mean} vs {p}"
            );
            total += mean;
        }
        // Over all 256000 draws: mean 0.5, standard error ≈ 9e-4.
        let mean = total / pixels as f64;
        assert!((mean - 0.5).abs() < 4e-3, "{key:?}: overall mean {mean}");
    }
}

/// Keyed by step, the binary pixels change from step to step (and with the seed); keyed by
/// image, they ignore the step and are the image's whatever the batch size: 11 images of 9
/// pixels gathered in one batch, in batches of 4 (the last a tail of 3) and one at a time give
/// the same bits.
#[test]
fn binarized_gather_keys() {
    let gpu = gpu();
    let (count, pixels) = (11, 9);
    // Grey levels away from 0 and 255, so that most pixels can come out either way.
    let b: Vec<u8> = bytes(8, count * pixels)
        .iter()
        .map(|&v| 64 + v / 2)
        .collect();
    let perm = permutation(9, count);
    let gather = |state: [u32; 4], bin, batch_size, n| {
        let x = run_gather(
            &gpu,
            &b,
            &perm,
            state,
            bin,
            batch_size,
            n,
            pixels,
            Elem::F32,
        );
        x[..n * pixels].to_vec()
    };
    let differ = |a: &[f32], b: &[f32]| a.iter().zip(b).filter(|(x, y)| x != y).count();
    let step = Some((1, NoiseKey::Step));
    let step5 = gather([5, 0, 0, 0], step, count, count);
    let step6 = gather([6, 0, 0, 0], step, count, count);
    let seed2 = gather([5, 0, 0, 0], Some((2, NoiseKey::Step)), count, count);
    // Two draws of a pixel with grey level in [0.25, 0.75] differ with probability ≥ 3/8.
    assert!(
        differ(&step5, &step6) > 20,
        "the step must change the draws"
    );
    assert!(
        differ(&step5, &seed2) > 20,
        "the seed must change the draws"
    );
    assert_eq!(
        gather([5, 0, 0, 0], step, count, count),
        step5,
        "repeatable"
    );

    let by_image = |batch_size: usize| -> Vec<f32> {
        let key = NoiseKey::Image { batch_size };
        let mut out = Vec::new();
        for batch in 0..count.div_ceil(batch_size) {
            let n = batch_size.min(count - batch * batch_size);
            let state = [batch as u32 * 13 + 100, batch as u32, 0, 0];
            out.extend(gather(state, Some((1, key)), batch_size, n));
        }
        out
    };
    let whole = by_image(count);
    let key = NoiseKey::Image { batch_size: count };
    assert_eq!(
        gather([0, 0, 0, 0], Some((1, key)), count, count),
        whole,
        "keyed by image, the step must not matter"
    );
    assert_eq!(by_image(4), whole, "batches of 4");
    assert_eq!(by_image(1), whole, "one image at a time");
    assert!(differ(&whole, &step5) > 20, "image keys are not step keys");
}

#[test]
fn gather_follows_the_step_counter() {
    // One plan, replayed: gather then step::advance, so each run reads the next batch.
    let gpu = gpu();
    let (count, pixels, batch_size) = (12, 9, 4);
    let b = bytes(5, count * pixels);
    let perm = permutation(6, count);
    let images = Tensor::from_u32(
        &gpu,
        &[b.len().div_ceil(4)],
        &data::pack_bytes(&b),
        "images",
    )
    .unwrap();
    let permt = Tensor::from_u32(&gpu, &[count], &perm, "perm").unwrap();
    let st = state(&gpu, 0, 0);
    let xt = Tensor::zeros(&gpu, &[batch_size, 1, 3, 3], "x").unwrap();
    let mut plan = Plan::new();
    data::gather(
        &mut plan, &gpu, &xt, &images, &permt, &st, None, batch_size, batch_size, pixels,
    );
    step::advance(&mut plan, &gpu, &st);
    for batch in 0..3 {
        plan.run(&gpu).unwrap();
        let mut want = vec![0.0; batch_size * pixels];
        let state = [batch, batch, 0, 0];
        cpu::gather(
            &mut want, &b, &perm, &state, None, batch_size, batch_size, pixels,
        );
        assert_close(
            &format!("gather batch {batch}"),
            &xt.read_f32(&gpu).unwrap(),
            &want,
            1e-6,
            1e-6,
        );
    }
}

/// One add_noise dispatch: `n` images of `pixels` at step counter `state`, keyed by `key`.
#[derive(Clone, Copy, Debug)]
struct Noise {
    n: usize,
    pixels: usize,
    state: [u32; 4],
    key: NoiseKey,
    seed: u32,
    std: f32,
}

impl Noise {
    /// Keyed by step `steps` (in batch 3), as training draws it, over `numel` elements.
    fn step(numel: usize, steps: u32, seed: u32, std: f32) -> Noise {
        Noise {
            n: numel,
            pixels: 1,
            state: [steps, 3, 0, 0],
            key: NoiseKey::Step,
            seed,
            std,
        }
    }

    /// Keyed by image, as evaluation draws it: `n` images of `pixels` in batch `batch` of
    /// `batch_size` (n < batch_size: the tail). The step counter's word 0 is neither the batch
    /// nor 0: a kernel keying by it would fail.
    fn image(n: usize, pixels: usize, batch_size: usize, batch: u32, seed: u32) -> Noise {
        Noise {
            n,
            pixels,
            state: [1000 + batch, batch, 0, 0],
            key: NoiseKey::Image { batch_size },
            seed,
            std: 0.3,
        }
    }

    /// Adds noise on the GPU to an x stored as `elem`, into a noisy stored as `elem` that holds
    /// `extra` elements of -1.0 after the n·pixels (returned too).
    fn run_padded(&self, gpu: &Gpu, x: &[f32], extra: usize, elem: Elem) -> Vec<f32> {
        let len = self.n * self.pixels + extra;
        let xt = Tensor::from_f32_as(gpu, &[x.len()], elem, x, "x").unwrap();
        let noisy = Tensor::from_f32_as(gpu, &[len], elem, &vec![-1.0; len], "noisy").unwrap();
        let st = Tensor::from_u32(gpu, &[step::STATE_LEN], &self.state, "state").unwrap();
        let mut plan = Plan::new();
        data::add_noise(
            &mut plan,
            gpu,
            &noisy,
            &xt,
            &st,
            self.seed,
            self.std,
            self.key,
            self.n,
            self.pixels,
        );
        plan.run(gpu).unwrap();
        noisy.read_f32(gpu).unwrap()
    }

    fn run(&self, gpu: &Gpu, x: &[f32], elem: Elem) -> Vec<f32> {
        self.run_padded(gpu, x, 0, elem)
    }

    fn reference(&self, x: &[f32]) -> Vec<f32> {
        let mut want = vec![0.0; self.n * self.pixels];
        cpu::add_noise(
            &mut want,
            x,
            &self.state,
            self.seed,
            self.std,
            self.key,
            self.n,
            self.pixels,
        );
        want
    }
}

/// Adds noise on the GPU vs the reference for each case, x and noisy stored as `elem`. Same
/// integer hashes on both sides; only log/cos rounding differs between GPU and CPU (2e-5), plus
/// the rounding of f16 storage.
fn check_add_noise(gpu: &Gpu, cases: &[Noise], elem: Elem) {
    for c in cases {
        let numel = c.n * c.pixels;
        let x = stored(elem, values(numel as u64, numel, 0.0, 1.0));
        let got = c.run(gpu, &x, elem);
        let want = c.reference(&x);
        let what = format!("add_noise {c:?} {elem:?}");
        assert_close(&what, &got, &want, 2e-5, rtol(elem, 0.0));
    }
}

/// Noise into an f32 noisy, from an f32 x, keyed by step.
#[test]
fn add_noise_matches_reference() {
    let cases = [
        Noise::step(1, 0, 1, 0.3),
        Noise::step(1000, 17, 42, 0.3),
        Noise::step(5 * 28 * 28 + 3, 123_456, 7, 0.1),
    ];
    check_add_noise(&gpu(), &cases, Elem::F32);
}

/// Noise keyed by image (evaluation): one image in batch 5 of 1, odd image sizes and counts in
/// later batches, a tail batch of 5 of 8 MNIST images, and batch 0.
const IMAGE_NOISE: [(usize, usize, usize, u32); 5] = [
    (1, 784, 1, 5),
    (3, 13, 3, 2),
    (7, 15, 7, 1),
    (5, 784, 8, 3),
    (4, 9, 4, 0),
];

#[test]
fn add_noise_keyed_by_image_matches_reference() {
    let cases = IMAGE_NOISE.map(|(n, pixels, bs, batch)| Noise::image(n, pixels, bs, batch, 9));
    check_add_noise(&gpu(), &cases, Elem::F32);
}

/// Noise keyed by image is the image's, whatever the batch: 11 images of 9 pixels noised as one
/// batch, in batches of 4 (the last a tail of 3) and one at a time give the same bits.
#[test]
fn add_noise_keyed_by_image_does_not_depend_on_the_batch() {
    let gpu = gpu();
    let (count, pixels) = (11, 9);
    let x = values(4, count * pixels, 0.0, 1.0);
    let noised = |batch_size: usize| -> Vec<f32> {
        let mut out = Vec::new();
        for (batch, images) in x.chunks(batch_size * pixels).enumerate() {
            let n = images.len() / pixels;
            let c = Noise::image(n, pixels, batch_size, batch as u32, 21);
            out.extend(c.run(&gpu, images, Elem::F32));
        }
        out
    };
    let whole = noised(count);
    assert_close(
        "add_noise by image",
        &whole,
        &Noise::image(count, pixels, count, 0, 21).reference(&x),
        2e-5,
        0.0,
    );
    assert_eq!(noised(4), whole, "batches of 4");
    assert_eq!(noised(1), whole, "one image at a time");
}

/// Noise for the first 33 of 50 elements (3 images of 11), keyed by step and by image, x and
/// noisy stored as `elem`: the other 17 keep their -1.0 (with f16 the 33rd shares its word with
/// the 34th).
fn check_add_noise_only_writes_numel(gpu: &Gpu, elem: Elem) {
    let x = stored(elem, values(3, 33, 0.0, 1.0));
    let step = Noise {
        n: 3,
        pixels: 11,
        ..Noise::step(33, 9, 5, 0.2)
    };
    for c in [step, Noise::image(3, 11, 4, 2, 5)] {
        let got = c.run_padded(gpu, &x, 17, elem);
        let what = format!("add_noise first 33 {:?} {elem:?}", c.key);
        assert_close(&what, &got[..33], &c.reference(&x), 2e-5, rtol(elem, 0.0));
        assert!(
            got[33..].iter().all(|&v| v == -1.0),
            "{what}: wrote past n·pixels"
        );
    }
}

/// add_noise with f32 storage writes the first n·pixels elements only.
#[test]
fn add_noise_only_writes_numel() {
    check_add_noise_only_writes_numel(&gpu(), Elem::F32);
}

/// The f16 storage variants of gather (x f16: the images with `--precision f16`; a partial
/// batch of odd length whose last image ends mid-word, the rows past it kept; binarised too)
/// and add_noise (x
/// and noisy f16; odd lengths, keyed by step and by image, and nothing written past numel).
#[test]
fn f16_data_matches_reference() {
    let Some(gpu) = gpu_with_f16() else { return };
    let cases = [(37, 15, 8, 4), (300, 784, 128, 2)];
    check_gather(&gpu, &cases, |_| None, Elem::F16);
    check_gather(&gpu, &cases, |_| Some((17, NoiseKey::Step)), Elem::F16);
    let cases = [
        Noise::step(1, 0, 1, 0.3),
        Noise::step(1001, 17, 42, 0.3),
        Noise::image(3, 13, 3, 2, 9),
        Noise::image(5, 784, 8, 3, 9),
    ];
    check_add_noise(&gpu, &cases, Elem::F16);
    check_add_noise_only_writes_numel(&gpu, Elem::F16);
}

#[test]
fn add_noise_statistics() {
    let gpu = gpu();
    // Mid-grey with std 0.1: clamping is a 5σ event, so noisy − x is N(0, 0.01).
    let n = 200_000;
    let std = 0.1;
    let got = Noise::step(n, 3, 11, std).run(&gpu, &vec![0.5; n], Elem::F32);
    let d: Vec<f64> = got.iter().map(|&v| v as f64 - 0.5).collect();
    let mean = d.iter().sum::<f64>() / n as f64;
    let var = d.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64;
    // Standard errors: mean 0.1/√n ≈ 2.2e-4, variance 0.01·√(2/n) ≈ 3.2e-5.
    assert!(mean.abs() < 1e-3, "noise mean {mean}");
    assert!((var - 0.01).abs() < 2e-4, "noise variance {var}");
    // Another step or seed gives other noise.
    let other_step = Noise::step(1000, 4, 11, std).run(&gpu, &[0.5; 1000], Elem::F32);
    let other_seed = Noise::step(1000, 3, 12, std).run(&gpu, &[0.5; 1000], Elem::F32);
    assert!(
        got[..1000]
            .iter()
            .zip(&other_step)
            .filter(|(a, b)| a != b)
            .count()
            > 990
    );
    assert!(
        got[..1000]
            .iter()
            .zip(&other_seed)
            .filter(|(a, b)| a != b)
            .count()
            > 990
    );

    // Large noise on dark and bright pixels: clamped into [0, 1], often exactly at the ends.
    let x: Vec<f32> = (0..10_000)
        .map(|i| if i % 2 == 0 { 0.05 } else { 0.95 })
        .collect();
    let got = Noise::step(x.len(), 5, 13, 1.0).run(&gpu, &x, Elem::F32);
    assert!(
        got.iter().all(|v| (0.0..=1.0).contains(v)),
        "noisy outside [0, 1]"
    );
    let zeros = got.iter().filter(|&&v| v == 0.0).count();
    let ones = got.iter().filter(|&&v| v == 1.0).count();
    // P(noisy = 0) = P(ε < −0.05)/2 + P(ε < −0.95)/2 ≈ (0.480 + 0.171)/2: about 3255 of each.
    assert!(
        (2950..3550).contains(&zeros) && (2950..3550).contains(&ones),
        "clamped {zeros} to 0, {ones} to 1"
    );
}
