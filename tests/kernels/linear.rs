//! GPU-vs-reference tests for the linear kernels: forward, and backward with and without dx,
//! with W and b inside larger parameter/gradient buffers whose other elements must stay put.

use crate::common::{
    SENTINEL, Storage, assert_close, gpu, gpu_with_f16, padded, read_padded, rtol, stored, values,
};
use gpu_ae::gpu::{Elem, Gpu, Plan, Tensor};
use gpu_ae::kernels::grads::GradPartials;
use gpu_ae::kernels::{InputGrad, SplitTensor, linear};
use gpu_ae::reference::{activation, linear as cpu};
use gpu_ae::shapes::{Activation, LinearShape, ParamOffsets};

/// (n, in, out): batch 1, sizes off the 64×64×16 tiles, the real model sizes (encoder head
/// 1568 → 2·16, decoder 16 → 1568, MLP 784 → 512), and shapes that take the split-K path.
const SHAPES: &[(usize, usize, usize)] = &[
    (1, 1, 1),
    (3, 17, 5),
    (130, 65, 33),
    (128, 1568, 32),
    (128, 16, 1568),
    (1, 784, 512),
    (300, 20, 3),
    (1024, 32, 16),
];

fn shape(n: usize, i: usize, o: usize) -> LinearShape {
    LinearShape {
        n,
        in_features: i,
        out_features: o,
    }
}

/// Weight and bias offsets inside a flat buffer with sentinel gaps before, between and after.
fn layout(s: LinearShape) -> (ParamOffsets, usize) {
    let weight = 7;
    let bias = weight + s.out_features * s.in_features + 3;
    (ParamOffsets { weight, bias }, bias + s.out_features + 4)
}

/// A flat buffer of sentinels holding `w` and `b` at `at`.
fn flat(w: &[f32], b: &[f32], at: ParamOffsets, len: usize) -> Vec<f32> {
    let mut v = vec![SENTINEL; len];
    v[at.weight..at.weight + w.len()].copy_from_slice(w);
    v[at.bias..at.bias + b.len()].copy_from_slice(b);
    v
}

/// Checks that everything outside the weight and bias slices of a flat buffer is sentinel.
fn check_sentinels(what: &str, got: &[f32], at: ParamOffsets, s: LinearShape) {
    let w_end = at.weight + s.out_features * s.in_features;
    for (k, &v) in got.iter().enumerate() {
        let inside =
            (at.weight..w_end).contains(&k) || (at.bias..at.bias + s.out_features).contains(&k);
        assert!(
            inside || v == SENTINEL,
            "{what}: element {k} outside W and b was overwritten"
        );
    }
}

fn tag(s: LinearShape) -> String {
    format!("n{} in{} out{}", s.n, s.in_features, s.out_features)
}

/// Every test uses both the single-pass and the split-K GEMM somewhere.
fn check_both_paths(what: &str, split: &[bool]) {
    assert!(
        split.contains(&true) && split.contains(&false),
        "{what}: the shapes no longer exercise both the split-K and the single-pass GEMM"
    );
}

fn splits_in(plan: &Plan) -> bool {
    plan.labels().contains(&"linear::sum_splits")
}

/// Forward on the GPU, with `act` fused and x, y stored as `storage` says, vs the reference;
/// true when it took the split-K path.
fn check_forward(gpu: &Gpu, s: LinearShape, act: Option<Activation>, storage: Storage) -> bool {
    let (n, i, o) = (s.n, s.in_features, s.out_features);
    let (at, len) = layout(s);
    let seed = (n * 1000 + i * 10 + o) as u64;
    let x = stored(storage.input, values(seed, n * i, -1.0, 1.0));
    let w = values(seed + 1, o * i, -0.5, 0.5);
    let b = values(seed + 2, o, -1.0, 1.0);
    let params = Tensor::from_f32(gpu, &[len], &flat(&w, &b, at, len), "params").unwrap();
    let xt = Tensor::from_f32_as(gpu, &[n, i], storage.input, &x, "x").unwrap();
    let yt = padded(gpu, &[n, o], storage.output, &vec![SENTINEL; n * o], "y");
    let mut plan = Plan::new();
    linear::forward(&mut plan, gpu, &yt, &xt, &params.buffer, at, s, act);
    plan.run(gpu).unwrap();
    let what = format!("forward {} act {act:?} {storage:?}", tag(s));
    let got = read_padded(gpu, &yt, &what);
    let mut want = vec![0.0; n * o];
    cpu::forward(&mut want, &x, &w, &b, s);
    if let Some(act) = act {
        let pre = want.clone();
        activation::forward(&mut want, &pre, act);
    }
    let y_rtol = rtol(storage.output, 1e-4);
    assert_close(&format!("{what}: y"), &got, &want, 1e-4, y_rtol);
    splits_in(&plan)
}

#[test]
fn forward_matches_reference() {
    let gpu = gpu();
    let split: Vec<bool> = SHAPES
        .iter()
        .map(|&(n, i, o)| check_forward(&gpu, shape(n, i, o), None, Storage::F32))
        .collect();
    check_both_paths("forward", &split);
}

#[test]
fn forward_fuses_each_activation() {
    let gpu = gpu();
    for act in ACTIVATIONS {
        let split: Vec<bool> = [(3, 17, 5), (128, 16, 1568), (128, 1568, 32)]
            .iter()
            .map(|&(n, i, o)| check_forward(&gpu, shape(n, i, o), Some(act), Storage::F32))
            .collect();
        check_both_paths("forward with an activation", &split);
    }
}

/// Every activation a layer can fuse.
const ACTIVATIONS: [Activation; 4] = [
    Activation::Relu,
    Activation::LeakyRelu(0.1),
    Activation::Sigmoid,
    Activation::Tanh,
];

/// Runs backward on the GPU (with or without dx; with `act`, x is that activation's output and
/// dx is taken through it; x, dx, dy stored as `storage` says) and compares dW, db and dx with
/// the reference. Gradient slices and dx start as sentinels, so accumulating instead of
/// overwriting fails. True when dx took the split-K path.
fn check_backward(
    gpu: &Gpu,
    s: LinearShape,
    with_dx: bool,
    act: Option<Activation>,
    storage: Storage,
) -> bool {
    let (n, i, o) = (s.n, s.in_features, s.out_features);
    let (at, len) = layout(s);
    let seed = (n * 1000 + i * 10 + o) as u64 + 17;
    let mut x = values(seed, n * i, -1.0, 1.0);
    if let Some(act) = act {
        let pre = x.clone();
        activation::forward(&mut x, &pre, act);
    }
    let x = stored(storage.input, x);
    let w = values(seed + 1, o * i, -0.5, 0.5);
    let b = values(seed + 2, o, -1.0, 1.0);
    let dy = stored(storage.output, values(seed + 3, n * o, -1.0, 1.0));
    let params = Tensor::from_f32(gpu, &[len], &flat(&w, &b, at, len), "params").unwrap();
    let grads = Tensor::from_f32(gpu, &[len], &vec![SENTINEL; len], "grads").unwrap();
    let xt = Tensor::from_f32_as(gpu, &[n, i], storage.input, &x, "x").unwrap();
    let dyt = Tensor::from_f32_as(gpu, &[n, o], storage.output, &dy, "dy").unwrap();
    let dxt = padded(gpu, &[n, i], storage.input, &vec![SENTINEL; n * i], "dx");
    let mut plan = Plan::new();
    let mut partials = GradPartials::new(gpu, linear::backward_partials(s)).unwrap();
    linear::backward(
        &mut plan,
        gpu,
        with_dx.then_some(InputGrad { dx: &dxt, act }),
        &mut partials,
        &dyt,
        &xt,
        &params.buffer,
        at,
        s,
    );
    partials.finish(&mut plan, gpu, &grads.buffer, 1.0).unwrap();
    plan.run(gpu).unwrap();

    let what = format!("backward {} dx {with_dx} act {act:?} {storage:?}", tag(s));
    let mut dx = vec![0.0; n * i];
    let (mut dw, mut db) = (vec![0.0; o * i], vec![0.0; o]);
    cpu::backward(
        with_dx.then_some(&mut dx[..]),
        &mut dw,
        &mut db,
        &dy,
        &x,
        &w,
        s,
    );
    if let Some(act) = act {
        let g = dx.clone();
        activation::backward(&mut dx, &g, &x, act);
    }
    let g = grads.read_f32(gpu).unwrap();
    check_sentinels(&what, &g, at, s);
    assert_close(
        &format!("{what}: dW"),
        &g[at.weight..at.weight + o * i],
        &dw,
        1e-4,
        1e-4,
    );
    assert_close(
        &format!("{what}: db"),
        &g[at.bias..at.bias + o],
        &db,
        1e-4,
        1e-4,
    );
    let got_dx = read_padded(gpu, &dxt, &what);
    if with_dx {
        let dx_rtol = rtol(storage.input, 1e-4);
        assert_close(&format!("{what}: dx"), &got_dx, &dx, 1e-4, dx_rtol);
    } else {
        assert!(
            got_dx.iter().all(|&v| v == SENTINEL),
            "{what}: dx was written"
        );
    }
    let params_after = params.read_f32(gpu).unwrap();
    assert_eq!(
        params_after,
        flat(&w, &b, at, len),
        "{what}: parameters changed"
    );
    splits_in(&plan)
}

#[test]
fn backward_matches_reference() {
    let gpu = gpu();
    let split: Vec<bool> = SHAPES
        .iter()
        .map(|&(n, i, o)| check_backward(&gpu, shape(n, i, o), true, None, Storage::F32))
        .collect();
    check_both_paths("backward", &split);
}

#[test]
fn backward_without_dx_matches_reference() {
    let gpu = gpu();
    let shapes = [(1, 1, 1), (3, 17, 5), (300, 20, 3)];
    for &(n, i, o) in &shapes {
        check_backward(&gpu, shape(n, i, o), false, None, Storage::F32);
    }
    // The weight-gradient product runs split (partials of several splits) and unsplit.
    let split: Vec<bool> = shapes
        .iter()
        .map(|&(n, i, o)| linear::backward_partials(shape(n, i, o)) > o * (i + 1))
        .collect();
    check_both_paths("weight gradient", &split);
}

#[test]
fn backward_fuses_each_activation_derivative() {
    let gpu = gpu();
    for act in ACTIVATIONS {
        let split: Vec<bool> = [(3, 17, 5), (128, 1568, 32), (128, 16, 1568)]
            .iter()
            .map(|&(n, i, o)| check_backward(&gpu, shape(n, i, o), true, Some(act), Storage::F32))
            .collect();
        check_both_paths("backward through an activation", &split);
    }
}

/// Adds up the slices of a split product.
fn slices_sum(gpu: &Gpu, t: &SplitTensor) -> Vec<f32> {
    let len = t.numel();
    let all = Tensor {
        buffer: t.buffer.clone(),
        shape: vec![t.splits * len],
        elem: t.elem,
    }
    .read_f32(gpu)
    .unwrap();
    let mut sum = vec![0.0; len];
    for slice in all.chunks(len) {
        sum.iter_mut().zip(slice).for_each(|(s, v)| *s += v);
    }
    sum
}

/// `forward_split` from x and `input_grad_split` from dy (stored as `storage` says) on shapes
/// with and without splits: the f32 slices add up to the reference's y and dx.
fn check_split_products(gpu: &Gpu, storage: Storage) {
    let mut splits = Vec::new();
    for &(n, i, o) in &[(3, 17, 5), (128, 1568, 32), (130, 16, 1568)] {
        let s = shape(n, i, o);
        let (at, len) = layout(s);
        let seed = (n * 1000 + i * 10 + o) as u64 + 31;
        let x = stored(storage.input, values(seed, n * i, -1.0, 1.0));
        let w = values(seed + 1, o * i, -0.5, 0.5);
        let b = values(seed + 2, o, -1.0, 1.0);
        let dy = stored(storage.output, values(seed + 3, n * o, -1.0, 1.0));
        let params = Tensor::from_f32(gpu, &[len], &flat(&w, &b, at, len), "params").unwrap();
        let xt = Tensor::from_f32_as(gpu, &[n, i], storage.input, &x, "x").unwrap();
        let dyt = Tensor::from_f32_as(gpu, &[n, o], storage.output, &dy, "dy").unwrap();
        let mut plan = Plan::new();
        let y = linear::forward_split(&mut plan, gpu, &xt, &params.buffer, at, s).unwrap();
        let dx = linear::input_grad_split(&mut plan, gpu, &dyt, &params.buffer, at, s).unwrap();
        plan.run(gpu).unwrap();
        splits.extend([y.splits > 1, dx.splits > 1]);
        assert_eq!(
            (y.shape.clone(), dx.shape.clone(), y.elem, dx.elem),
            (vec![n, o], vec![n, i], Elem::F32, Elem::F32)
        );

        let (mut want_y, mut want_dx) = (vec![0.0; n * o], vec![0.0; n * i]);
        let (mut dw, mut db) = (vec![0.0; o * i], vec![0.0; o]);
        cpu::forward(&mut want_y, &x, &w, &b, s);
        cpu::backward(Some(&mut want_dx[..]), &mut dw, &mut db, &dy, &x, &w, s);
        let what = format!("split {} {storage:?}", tag(s));
        assert_close(
            &format!("{what}: y"),
            &slices_sum(gpu, &y),
            &want_y,
            1e-4,
            1e-4,
        );
        assert_close(
            &format!("{what}: dx"),
            &slices_sum(gpu, &dx),
            &want_dx,
            1e-4,
            1e-4,
        );
    }
    check_both_paths("split products", &splits);
}

/// The split-K slices of forward_split and input_grad_split from f32 x and dy.
#[test]
fn split_products_add_up_to_the_reference() {
    check_split_products(&gpu(), Storage::F32);
}

/// The f16 storage variants of the forward pass (fused activation or none), on a shape with an
/// odd element count in every tensor and one that takes the split-K path: every layer inside
/// the encoder and decoder (x, y f16), the decoder's first layer (x = z f32, y f16) and the AE
/// head (x f16, y = head output f32). W and b stay f32.
#[test]
fn f16_forward_matches_reference() {
    let Some(gpu) = gpu_with_f16() else { return };
    for storage in F16_STORAGES {
        for act in [None, Some(Activation::Sigmoid)] {
            let split: Vec<bool> = [(3, 17, 5), (128, 1568, 32)]
                .iter()
                .map(|&(n, i, o)| check_forward(&gpu, shape(n, i, o), act, storage))
                .collect();
            check_both_paths("f16 forward", &split);
        }
    }
}

/// The f16 storage variants of the backward pass (dx plain, or through the activation that
/// produced x, read from f16), on a shape with odd element counts and one whose input gradient
/// takes the split-K path: every layer inside the encoder and decoder (x, dx, dy f16), the
/// decoder's first layer (x = z and dx f32, dy f16) and the head (dy = its f32 gradient, x and
/// dx f16). dW and db come out f32.
#[test]
fn f16_backward_matches_reference() {
    let Some(gpu) = gpu_with_f16() else { return };
    for storage in F16_STORAGES {
        for act in [None, Some(Activation::LeakyRelu(0.1))] {
            let split: Vec<bool> = [(3, 17, 5), (128, 16, 1568)]
                .iter()
                .map(|&(n, i, o)| check_backward(&gpu, shape(n, i, o), true, act, storage))
                .collect();
            check_both_paths("f16 backward", &split);
        }
    }
}

/// Every storage a linear layer has with `--precision f16`: f16 inside the encoder and decoder,
/// an f32 input (the decoder's first layer reading z), an f32 output (the head).
const F16_STORAGES: [Storage; 3] = [
    Storage::F16,
    Storage {
        input: Elem::F32,
        output: Elem::F16,
    },
    Storage {
        input: Elem::F16,
        output: Elem::F32,
    },
];

/// `forward_split` from an f16 x (the VAE head reading the encoder output) and
/// `input_grad_split` from an f16 dy (the decoder's first layer): the slices are f32.
#[test]
fn f16_split_products_add_up_to_the_reference() {
    let Some(gpu) = gpu_with_f16() else { return };
    check_split_products(&gpu, Storage::F16);
}
