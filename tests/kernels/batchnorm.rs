//! GPU-vs-reference tests for BatchNorm2d: the training forward (y, saved mean and invstd,
//! running statistics updated in place), the evaluation forward, and the backward pass (dx,
//! and γ's and β's gradients through `GradPartials`), with every fused activation, on awkward
//! shapes, multi-workgroup reductions, a large mean, and f16 storage.

use crate::common::{
    SENTINEL, Storage, assert_close, gpu, gpu_with_f16, padded, read_padded, rtol, stored, values,
};
use gpu_ae::gpu::{Elem, Gpu, Plan, Tensor};
use gpu_ae::kernels::InputGrad;
use gpu_ae::kernels::batchnorm::{self, Running};
use gpu_ae::kernels::grads::{GradPartials, PartialLayout};
use gpu_ae::reference::batchnorm as cpu;
use gpu_ae::shapes::{Activation, BatchNorm2dShape, ParamOffsets};

fn shape(n: usize, c: usize, h: usize, w: usize) -> BatchNorm2dShape {
    BatchNorm2dShape { n, c, h, w }
}

fn dims(s: &BatchNorm2dShape) -> [usize; 4] {
    [s.n, s.c, s.h, s.w]
}

const ACTS: [Option<Activation>; 5] = [
    None,
    Some(Activation::Relu),
    Some(Activation::LeakyRelu(0.2)),
    Some(Activation::Sigmoid),
    Some(Activation::Tanh),
];

/// The activations the conv models put after a batch norm, for the large shapes.
const MODEL_ACTS: [Option<Activation>; 2] = [None, Some(Activation::LeakyRelu(0.2))];

/// N = 1 with H·W > 1, N = 2 with H = W = 1 (two values per channel), C = 3 with odd H, W,
/// several chunks per channel with a short last one.
const SMALL: &[(usize, usize, usize, usize)] =
    &[(1, 3, 5, 7), (2, 3, 1, 1), (3, 3, 5, 7), (2, 5, 33, 70)];
/// A conv model's size (4 chunks per channel), and more chunks per channel (300) than a
/// workgroup has invocations, so that combining them loops.
const LARGE: &[(usize, usize, usize, usize)] = &[(128, 64, 8, 8), (1, 2, 1024, 600)];

/// γ at params[3..], β after a gap of 2: neither starts at 0 nor follows the other.
fn offsets(c: usize) -> ParamOffsets {
    ParamOffsets {
        weight: 3,
        bias: 5 + c,
    }
}

/// A flat f32 buffer of `len` sentinels with `a` at `at.0` and `b` at `at.1`.
fn flat(len: usize, at: (usize, usize), a: &[f32], b: &[f32]) -> Vec<f32> {
    let mut v = vec![SENTINEL; len];
    v[at.0..at.0 + a.len()].copy_from_slice(a);
    v[at.1..at.1 + b.len()].copy_from_slice(b);
    v
}

/// Running mean at 2, running var after a gap of 1, sentinels around them.
fn running_at(c: usize) -> (usize, usize, usize) {
    (2, 3 + c, 5 + 2 * c)
}

/// One layer's inputs: x with a different offset and scale per channel, γ (some negative),
/// β, and running statistics that are not PyTorch's fresh 0 and 1.
struct Case {
    s: BatchNorm2dShape,
    x: Vec<f32>,
    gamma: Vec<f32>,
    beta: Vec<f32>,
    rm: Vec<f32>,
    rv: Vec<f32>,
}

fn case(seed: u64, s: BatchNorm2dShape) -> Case {
    let hw = s.h * s.w;
    let mut x = values(seed, s.numel(), -1.0, 1.0);
    for (i, v) in x.iter_mut().enumerate() {
        let c = (i / hw % s.c) as f32;
        *v = *v * (0.5 + c) + 0.3 * c - 0.2;
    }
    Case {
        s,
        x,
        gamma: values(seed + 1, s.c, -1.5, 1.5),
        beta: values(seed + 2, s.c, -0.5, 0.5),
        rm: values(seed + 3, s.c, -0.5, 0.5),
        rv: values(seed + 4, s.c, 0.5, 2.0),
    }
}

/// The parameter buffer of a case (γ, β at [`offsets`]).
fn param_buffer(gpu: &Gpu, k: &Case) -> Tensor {
    let at = offsets(k.s.c);
    let v = flat(at.bias + k.s.c + 3, (at.weight, at.bias), &k.gamma, &k.beta);
    Tensor::from_f32(gpu, &[v.len()], &v, "params").unwrap()
}

/// Tolerances of y for outputs stored as `elem`.
fn y_tol(elem: Elem) -> (f32, f32) {
    (2e-5, rtol(elem, 1e-4))
}

/// The training forward `steps` times on the GPU (the same plan replayed), x and y stored as
/// `storage` says, vs the reference: y, the saved mean and invstd, and the running statistics
/// after every update. y and saved start as NaN with sentinel tails; the running statistics
/// sit between sentinels.
fn check_train(
    gpu: &Gpu,
    what: &str,
    k: &Case,
    act: Option<Activation>,
    storage: Storage,
    steps: usize,
) {
    let s = k.s;
    let c = s.c;
    let x = stored(storage.input, k.x.clone());
    let xt = Tensor::from_f32_as(gpu, &dims(&s), storage.input, &x, "x").unwrap();
    let yt = padded(
        gpu,
        &dims(&s),
        storage.output,
        &vec![f32::NAN; s.numel()],
        "y",
    );
    let saved_len = batchnorm::saved_len(s);
    let saved = padded(
        gpu,
        &[saved_len],
        Elem::F32,
        &vec![f32::NAN; saved_len],
        "saved",
    );
    let (rm_at, rv_at, r_len) = running_at(c);
    let run = flat(r_len, (rm_at, rv_at), &k.rm, &k.rv);
    let rt = Tensor::from_f32(gpu, &[r_len], &run, "running").unwrap();
    let pt = param_buffer(gpu, k);
    let running = Running {
        buffer: &rt.buffer,
        mean: rm_at,
        var: rv_at,
    };
    let mut plan = Plan::new();
    batchnorm::forward_train(
        &mut plan,
        gpu,
        &yt,
        &saved,
        running,
        &xt,
        &pt.buffer,
        offsets(c),
        s,
        act,
    )
    .unwrap();
    assert_eq!(plan.len(), 2, "{what}: dispatches");
    for _ in 0..steps {
        plan.run(gpu).unwrap();
    }

    let mut y = vec![0.0; s.numel()];
    let (mut mean, mut inv) = (vec![0.0; c], vec![0.0; c]);
    let (mut rm, mut rv) = (k.rm.clone(), k.rv.clone());
    for _ in 0..steps {
        cpu::forward_train(
            &mut y, &mut mean, &mut inv, &mut rm, &mut rv, &x, &k.gamma, &k.beta, s, act,
        );
    }
    let (atol, rt_y) = y_tol(storage.output);
    assert_close(
        &format!("{what}: y"),
        &read_padded(gpu, &yt, what),
        &y,
        atol,
        rt_y,
    );
    let got = read_padded(gpu, &saved, what);
    assert_close(&format!("{what}: mean"), &got[..c], &mean, 1e-6, 1e-5);
    assert_close(&format!("{what}: invstd"), &got[c..2 * c], &inv, 0.0, 1e-5);
    let got = rt.read_f32(gpu).unwrap();
    assert_close(
        &format!("{what}: running mean"),
        &got[rm_at..rm_at + c],
        &rm,
        1e-6,
        1e-5,
    );
    assert_close(
        &format!("{what}: running var"),
        &got[rv_at..rv_at + c],
        &rv,
        0.0,
        1e-5,
    );
    let untouched = got
        .iter()
        .enumerate()
        .filter(|(i, _)| !(rm_at..rm_at + c).contains(i) && !(rv_at..rv_at + c).contains(i));
    for (i, &v) in untouched {
        assert_eq!(v, SENTINEL, "{what}: running[{i}] overwritten");
    }
}

/// The evaluation forward on the GPU vs the reference; the running statistics must stay.
fn check_eval(gpu: &Gpu, what: &str, k: &Case, act: Option<Activation>, storage: Storage) {
    let s = k.s;
    let x = stored(storage.input, k.x.clone());
    let xt = Tensor::from_f32_as(gpu, &dims(&s), storage.input, &x, "x").unwrap();
    let yt = padded(
        gpu,
        &dims(&s),
        storage.output,
        &vec![f32::NAN; s.numel()],
        "y",
    );
    let (rm_at, rv_at, r_len) = running_at(s.c);
    let run = flat(r_len, (rm_at, rv_at), &k.rm, &k.rv);
    let rt = Tensor::from_f32(gpu, &[r_len], &run, "running").unwrap();
    let pt = param_buffer(gpu, k);
    let running = Running {
        buffer: &rt.buffer,
        mean: rm_at,
        var: rv_at,
    };
    let mut plan = Plan::new();
    let at = offsets(s.c);
    batchnorm::forward_eval(&mut plan, gpu, &yt, running, &xt, &pt.buffer, at, s, act);
    plan.run(gpu).unwrap();
    let mut y = vec![0.0; s.numel()];
    cpu::forward_eval(&mut y, &x, &k.rm, &k.rv, &k.gamma, &k.beta, s, act);
    let (atol, rt_y) = y_tol(storage.output);
    let got = read_padded(gpu, &yt, what);
    assert_close(&format!("{what}: y"), &got, &y, atol, rt_y);
    assert_eq!(
        rt.read_f32(gpu).unwrap(),
        run,
        "{what}: running statistics changed"
    );
}

/// How a backward check runs: the activation on the layer output, the one whose output the
/// layer input is (`InputGrad::act`), whether dx is asked for, and `finish`'s scale.
#[derive(Clone, Copy, Debug)]
struct Back {
    act: Option<Activation>,
    input_act: Option<Activation>,
    dx: bool,
    scale: f32,
}

const PLAIN: Back = Back {
    act: None,
    input_act: None,
    dx: true,
    scale: 1.0,
};

/// The backward pass on the GPU from the reference's forward (y, mean, invstd) and a dy in
/// [-1, 1), x, y, dy and dx stored as `storage` says, vs the reference: dx, and γ's and β's
/// gradients as `GradPartials::finish` writes them (times `b.scale`) into a gradient buffer of
/// sentinels, after another layer's segment so that this one does not start the scratch. dx
/// starts as NaN with a sentinel tail; the forward's partials in `saved` are NaN (the backward
/// pass must not read them).
fn check_backward(gpu: &Gpu, what: &str, k: &Case, b: Back, storage: Storage) {
    let s = k.s;
    let c = s.c;
    let x = stored(storage.input, k.x.clone());
    let mut y = vec![0.0; s.numel()];
    let (mut mean, mut inv) = (vec![0.0; c], vec![0.0; c]);
    let (mut rm, mut rv) = (k.rm.clone(), k.rv.clone());
    cpu::forward_train(
        &mut y, &mut mean, &mut inv, &mut rm, &mut rv, &x, &k.gamma, &k.beta, s, b.act,
    );
    let y = stored(storage.output, y);
    let dy = stored(
        storage.output,
        values(s.numel() as u64 + 5, s.numel(), -1.0, 1.0),
    );

    let xt = Tensor::from_f32_as(gpu, &dims(&s), storage.input, &x, "x").unwrap();
    let yt = Tensor::from_f32_as(gpu, &dims(&s), storage.output, &y, "y").unwrap();
    let dyt = Tensor::from_f32_as(gpu, &dims(&s), storage.output, &dy, "dy").unwrap();
    let mut sv = vec![f32::NAN; batchnorm::saved_len(s)];
    sv[..c].copy_from_slice(&mean);
    sv[c..2 * c].copy_from_slice(&inv);
    let saved = Tensor::from_f32(gpu, &[sv.len()], &sv, "saved").unwrap();
    let pt = param_buffer(gpu, k);
    let dxt = padded(
        gpu,
        &dims(&s),
        storage.input,
        &vec![f32::NAN; s.numel()],
        "dx",
    );
    let at = offsets(c);
    let g_len = at.bias + c + 3 + 4;
    let other = g_len - 4..g_len - 1;
    let gt = Tensor::from_f32(gpu, &[g_len], &vec![SENTINEL; g_len], "grads").unwrap();
    let layer = batchnorm::backward_partials(s);
    let mut partials = GradPartials::new(gpu, 3 * 7 + layer).unwrap();
    // Another layer's (zero) partials first: [7 splits, 3 rows] summed into grads[other].
    partials.reserve(PartialLayout {
        splits: 7,
        rows: 3,
        cols: 1,
        weight: other.start,
        bias: None,
    });
    let mut plan = Plan::new();
    let dx = b.dx.then_some(InputGrad {
        dx: &dxt,
        act: b.input_act,
    });
    batchnorm::backward(
        &mut plan,
        gpu,
        dx,
        &mut partials,
        &dyt,
        &yt,
        &xt,
        &saved,
        &pt.buffer,
        at,
        s,
        b.act,
    );
    partials
        .finish(&mut plan, gpu, &gt.buffer, b.scale)
        .unwrap();
    plan.run(gpu).unwrap();

    let mut dx_want = vec![0.0; s.numel()];
    let (mut dg, mut db) = (vec![0.0; c], vec![0.0; c]);
    cpu::backward(
        b.dx.then_some(&mut dx_want[..]),
        &mut dg,
        &mut db,
        &dy,
        &y,
        &x,
        &mean,
        &inv,
        &k.gamma,
        s,
        b.act,
        b.input_act,
    );
    if b.dx {
        let got = read_padded(gpu, &dxt, what);
        let tol = rtol(storage.input, 1e-4);
        assert_close(&format!("{what}: dx"), &got, &dx_want, 2e-5, tol);
    } else {
        let got = read_padded(gpu, &dxt, what);
        assert!(got.iter().all(|v| v.is_nan()), "{what}: dx written");
    }
    // Sums of n terms of size ~1 in f32.
    let atol = 1e-7 * s.count() as f32 + 1e-5;
    let grads = gt.read_f32(gpu).unwrap();
    let scaled = |v: &[f32]| v.iter().map(|g| g * b.scale).collect::<Vec<f32>>();
    let (gw, gb) = (at.weight..at.weight + c, at.bias..at.bias + c);
    let dgamma = &grads[gw.clone()];
    assert_close(&format!("{what}: dgamma"), dgamma, &scaled(&dg), atol, 1e-4);
    let dbeta = &grads[gb.clone()];
    assert_close(&format!("{what}: dbeta"), dbeta, &scaled(&db), atol, 1e-4);
    for (i, &v) in grads.iter().enumerate() {
        if other.contains(&i) {
            assert_eq!(v, 0.0, "{what}: the other layer's gradient");
        } else if !gw.contains(&i) && !gb.contains(&i) {
            assert_eq!(v, SENTINEL, "{what}: grads[{i}] overwritten");
        }
    }
}

fn cases(shapes: &[(usize, usize, usize, usize)]) -> impl Iterator<Item = Case> + '_ {
    shapes
        .iter()
        .enumerate()
        .map(|(i, &(n, c, h, w))| case(10 * i as u64 + 1, shape(n, c, h, w)))
}

/// Training forward, f32 storage: every activation on the small shapes, the models' on the
/// large ones.
#[test]
fn batchnorm_train_forward_matches_reference() {
    let gpu = gpu();
    for k in cases(SMALL) {
        for act in ACTS {
            let what = format!("train {:?} {act:?}", k.s);
            check_train(&gpu, &what, &k, act, Storage::F32, 1);
        }
    }
    for k in cases(LARGE) {
        for act in MODEL_ACTS {
            let what = format!("train {:?} {act:?}", k.s);
            check_train(&gpu, &what, &k, act, Storage::F32, 1);
        }
    }
}

/// The recorded plan replayed: each run updates the running statistics again.
#[test]
fn batchnorm_running_statistics_accumulate_over_steps() {
    let gpu = gpu();
    for k in cases(&[(3, 3, 5, 7), (2, 5, 33, 70)]) {
        let what = format!("3 steps {:?}", k.s);
        check_train(&gpu, &what, &k, Some(Activation::Relu), Storage::F32, 3);
    }
}

/// Evaluation forward, f32 storage.
#[test]
fn batchnorm_eval_forward_matches_reference() {
    let gpu = gpu();
    for k in cases(SMALL) {
        for act in ACTS {
            check_eval(
                &gpu,
                &format!("eval {:?} {act:?}", k.s),
                &k,
                act,
                Storage::F32,
            );
        }
    }
    // N = 1, H = W = 1: one value per channel is fine outside training.
    let k = case(99, shape(1, 3, 1, 1));
    check_eval(&gpu, "eval 1×3×1×1", &k, None, Storage::F32);
    for k in cases(LARGE) {
        check_eval(
            &gpu,
            &format!("eval {:?}", k.s),
            &k,
            MODEL_ACTS[1],
            Storage::F32,
        );
    }
}

/// Backward, f32 storage: every output activation; the large shapes with the models' ones.
#[test]
fn batchnorm_backward_matches_reference() {
    let gpu = gpu();
    for k in cases(SMALL) {
        for act in ACTS {
            let what = format!("backward {:?} {act:?}", k.s);
            check_backward(&gpu, &what, &k, Back { act, ..PLAIN }, Storage::F32);
        }
    }
    for k in cases(LARGE) {
        for act in MODEL_ACTS {
            let what = format!("backward {:?} {act:?}", k.s);
            check_backward(&gpu, &what, &k, Back { act, ..PLAIN }, Storage::F32);
        }
    }
}

/// Backward variants: the input's activation fused into dx, parameter gradients only (no dx),
/// and the 1/n scale that `finish` applies after a loss-scaled backward pass (f16 graphs).
#[test]
fn batchnorm_backward_variants() {
    let gpu = gpu();
    let leaky = Some(Activation::LeakyRelu(0.2));
    for k in cases(&[(3, 3, 5, 7), (2, 5, 33, 70)]) {
        let variants = [
            Back {
                input_act: Some(Activation::Relu),
                ..PLAIN
            },
            Back {
                act: leaky,
                input_act: leaky,
                ..PLAIN
            },
            Back { dx: false, ..PLAIN },
            Back {
                act: leaky,
                scale: 1.0 / 64.0,
                ..PLAIN
            },
        ];
        for b in variants {
            let what = format!("backward {:?} {b:?}", k.s);
            check_backward(&gpu, &what, &k, b, Storage::F32);
        }
    }
}

/// x = 1000 + U(-1, 1): a naive E[x²] − E[x]² in f32 would lose the variance (≈ 1/3) to
/// cancellation; the shifted two-level sums keep invstd, y and the running variance within
/// the f32 tolerances of the f64 reference, and the backward pass too.
#[test]
fn batchnorm_large_mean_keeps_the_variance() {
    let gpu = gpu();
    for (i, &(n, c, h, w)) in [(8, 4, 32, 32), (2, 3, 41, 50), (1, 1, 1024, 600)]
        .iter()
        .enumerate()
    {
        let s = shape(n, c, h, w);
        let mut k = case(70 + i as u64, s);
        k.x = values(80 + i as u64, s.numel(), 999.0, 1001.0);
        let what = format!("large mean {s:?}");
        check_train(&gpu, &what, &k, None, Storage::F32, 1);
        check_backward(&gpu, &what, &k, PLAIN, Storage::F32);
    }
}

/// One value per channel in training is an error, as in PyTorch, and records nothing.
#[test]
fn batchnorm_train_refuses_one_value_per_channel() {
    let gpu = gpu();
    let s = shape(1, 3, 1, 1);
    let k = case(5, s);
    let xt = Tensor::from_f32(&gpu, &dims(&s), &k.x, "x").unwrap();
    let yt = Tensor::zeros(&gpu, &dims(&s), "y").unwrap();
    let saved = Tensor::zeros(&gpu, &[batchnorm::saved_len(s)], "saved").unwrap();
    let rt = Tensor::from_f32(&gpu, &[6], &[0.0, 0.0, 0.0, 1.0, 1.0, 1.0], "running").unwrap();
    let pt = param_buffer(&gpu, &k);
    let running = Running {
        buffer: &rt.buffer,
        mean: 0,
        var: 3,
    };
    let mut plan = Plan::new();
    let err = batchnorm::forward_train(
        &mut plan,
        &gpu,
        &yt,
        &saved,
        running,
        &xt,
        &pt.buffer,
        offsets(3),
        s,
        None,
    )
    .unwrap_err();
    assert_eq!(
        err.message(),
        "batch norm: expected more than 1 value per channel when training, got input size [1, 3, 1, 1]"
    );
    assert!(plan.is_empty(), "nothing recorded");
}

/// The f16 storage variants (x, y, dy, dx f16; statistics, parameters and gradients f32):
/// training and evaluation forward, backward, on small shapes and a model's size.
#[test]
fn f16_batchnorm_matches_reference() {
    let Some(gpu) = gpu_with_f16() else { return };
    let f16 = Storage::F16;
    for k in cases(&[(1, 3, 5, 7), (2, 3, 1, 1), (2, 5, 33, 70), (128, 64, 8, 8)]) {
        for act in MODEL_ACTS {
            let what = format!("f16 {:?} {act:?}", k.s);
            check_train(&gpu, &format!("{what} train"), &k, act, f16, 1);
            check_eval(&gpu, &format!("{what} eval"), &k, act, f16);
            let b = Back { act, ..PLAIN };
            check_backward(&gpu, &format!("{what} backward"), &k, b, f16);
        }
        // (With two values per channel dx is ~0 (x̂ = ±1): nothing left for ReLU to mask.)
        if k.s.count() > 2 {
            let b = Back {
                input_act: Some(Activation::Relu),
                ..PLAIN
            };
            check_backward(&gpu, &format!("f16 {:?} {b:?}", k.s), &k, b, f16);
        }
    }
}
