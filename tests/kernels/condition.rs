//! GPU-vs-reference tests for the conditional VAE's label kernels: the batch's labels gathered
//! by the epoch's order at a later batch, the one-hot block appended to rows (f32 and f16
//! storage, a label past K giving a zero block), and the gradient without the label columns
//! added up from split-K slices, with and without the derivative of the activation before the
//! concatenation. Copies and products by the slope are exact, so the comparisons are too.

use crate::common::{gpu, gpu_with_f16, padded, read_padded, stored, values};
use gpu_ae::gpu::{Elem, Gpu, Plan, Tensor};
use gpu_ae::kernels::{InputGrad, SplitTensor, condition, step::STATE_LEN};
use gpu_ae::reference::condition as cpu;
use gpu_ae::shapes::Activation;

/// (n, A, K): one row, A below and above the workgroup size, one class, ten classes.
const SHAPES: &[(usize, usize, usize)] = &[(1, 3, 1), (5, 7, 10), (3, 300, 4), (129, 2, 10)];

#[test]
fn gather_labels_follows_the_order_of_a_later_batch() {
    let gpu = gpu();
    let (count, batch, n) = (23usize, 7usize, 5usize);
    let labels: Vec<u32> = (0..count as u32).map(|i| (i * 7 + 3) % 10).collect();
    let perm: Vec<u32> = (0..count as u32)
        .map(|i| (i * 5 + 2) % count as u32)
        .collect();
    let state = [9u32, 2, 0, 0];
    let t_labels = Tensor::from_u32(&gpu, &[count], &labels, "labels").unwrap();
    let t_perm = Tensor::from_u32(&gpu, &[count], &perm, "perm").unwrap();
    let t_state = Tensor::from_u32(&gpu, &[STATE_LEN], &state, "state").unwrap();
    let out = Tensor::from_u32(&gpu, &[n + 1], &vec![77; n + 1], "batch labels").unwrap();
    let mut plan = Plan::new();
    condition::gather_labels(
        &mut plan, &gpu, &out, &t_labels, &t_perm, &t_state, batch, n,
    );
    plan.compile(&gpu);
    plan.submit(&gpu);
    let mut want = vec![77u32; n + 1];
    cpu::gather_labels(&mut want, &labels, &perm, &state, batch, n);
    assert_eq!(out.read_u32(&gpu).unwrap(), want);
    assert_ne!(
        want[..n],
        labels[..n],
        "batch 2 must not read batch 0's labels"
    );
}

fn check_concat(gpu: &Gpu, elem: Elem) {
    for &(n, a, k) in SHAPES {
        let x = stored(elem, values((n * a + k) as u64, n * a, -2.0, 2.0));
        // Every class, and one label past K (an image without a class) in a longer batch.
        let labels: Vec<u32> = (0..n as u32).map(|b| b % (k as u32 + 1)).collect();
        let tx = padded(gpu, &[n, a], elem, &x, "x");
        let ty = padded(gpu, &[n, a + k], elem, &vec![5.0; n * (a + k)], "y");
        let tl = Tensor::from_u32(gpu, &[n], &labels, "batch labels").unwrap();
        let mut plan = Plan::new();
        condition::concat_onehot(&mut plan, gpu, &ty, &tx, &tl, n, a, k);
        plan.compile(gpu);
        plan.submit(gpu);
        let mut want = vec![0.0; n * (a + k)];
        cpu::concat_onehot(&mut want, &x, &labels, n, a, k);
        let got = read_padded(gpu, &ty, "concat_onehot");
        assert_eq!(got, want, "concat_onehot n={n} A={a} K={k} {elem:?}");
        assert!(want.contains(&1.0));
    }
}

#[test]
fn concat_onehot_appends_the_label() {
    check_concat(&gpu(), Elem::F32);
}

#[test]
fn concat_onehot_f16_storage() {
    if let Some(gpu) = gpu_with_f16() {
        check_concat(&gpu, Elem::F16);
    }
}

/// `whole` as `splits` slices of values that are exact in f32 sums (multiples of 1/8).
fn slices(
    gpu: &Gpu,
    len: usize,
    splits: usize,
    shape: &[usize],
    seed: u64,
) -> (SplitTensor, Vec<f32>) {
    let flat: Vec<f32> = values(seed, splits * len, -64.0, 64.0)
        .into_iter()
        .map(|v| (v * 8.0).round() / 8.0)
        .collect();
    let t = Tensor::from_f32(gpu, &[flat.len()], &flat, "dy slices").unwrap();
    let split = SplitTensor {
        buffer: t.buffer,
        elem: Elem::F32,
        splits,
        shape: shape.to_vec(),
    };
    (split, flat)
}

fn check_take(gpu: &Gpu, elem: Elem) {
    for &(n, a, k) in SHAPES {
        for (splits, act) in [
            (1, None),
            (3, None),
            (1, Some(Activation::LeakyRelu(0.2))),
            (3, Some(Activation::Relu)),
        ] {
            let (dy, flat) = slices(
                gpu,
                n * (a + k),
                splits,
                &[n, a + k],
                (n + a + splits) as u64,
            );
            let dy = if elem == Elem::F16 {
                // A whole f16 tensor (the head's input gradient with --precision f16).
                if splits > 1 {
                    continue;
                }
                let t = Tensor::from_f32_as(gpu, &[n, a + k], elem, &flat, "dy").unwrap();
                SplitTensor::whole(&t)
            } else {
                dy
            };
            let flat = stored(elem, flat);
            // The activation's output, zeros and negatives included (x ≤ 0 has no gradient).
            let x = stored(elem, values(7 * n as u64 + 1, n * a, -2.0, 2.0));
            let x = x.iter().map(|v| v.max(-0.5) * 0.5).collect::<Vec<_>>();
            let tx = Tensor::from_f32_as(gpu, &[n, a], elem, &x, "x").unwrap();
            let dx = padded(gpu, &[n, a], elem, &vec![5.0; n * a], "dx");
            let mut plan = Plan::new();
            let into = InputGrad { dx: &dx, act };
            condition::take_columns(&mut plan, gpu, into, &dy, Some(&tx), n, a, k);
            plan.compile(gpu);
            plan.submit(gpu);
            let mut want = vec![0.0; n * a];
            let act_x = act.map(|act| (act, &x[..]));
            cpu::take_columns(&mut want, &flat, act_x, splits, n, a, k);
            let want = stored(elem, want);
            let got = read_padded(gpu, &dx, "take_columns");
            assert_eq!(
                got, want,
                "take_columns n={n} A={a} K={k} splits={splits} {act:?} {elem:?}"
            );
        }
    }
}

#[test]
fn take_columns_drops_the_label_and_adds_the_slices() {
    check_take(&gpu(), Elem::F32);
}

#[test]
fn take_columns_f16_storage() {
    if let Some(gpu) = gpu_with_f16() {
        check_take(&gpu, Elem::F16);
    }
}
