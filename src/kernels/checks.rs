//! Kernel families checked against their CPU reference on whatever adapter runs them, with
//! nothing but the library: the web page's self-test (`index.html?selftest`, the same Rust
//! compiled to WASM) and `tests/kernels` run these same checks. Each runs one small awkward
//! shape of the family's main kernel and reports its largest error relative to the tolerance
//! `atol + rtol·|want|`.

use crate::error::Result;
use crate::gpu::{Gpu, Plan, Tensor};
use crate::host_rng::SplitMix64;
use crate::kernels::adam::{self, AdamConfig};
use crate::kernels::{activation, conv2d, linear, loss, reduce, step};
use crate::reference;
use crate::run::schedule::{LrSchedule, Schedule};
use crate::shapes::{Activation, Conv2dShape, LinearShape, ParamOffsets};

/// One kernel family's check: its name and the largest error relative to the tolerance
/// (`≤ 1` passes).
pub struct Check {
    pub name: &'static str,
    pub worst: f64,
}

impl Check {
    pub fn passed(&self) -> bool {
        self.worst <= 1.0
    }
}

/// `n` deterministic values in `[lo, hi)`.
fn values(seed: u64, n: usize, lo: f32, hi: f32) -> Vec<f32> {
    let mut rng = SplitMix64::new(seed);
    (0..n).map(|_| rng.uniform(lo, hi)).collect()
}

/// max over elements of |got − want| / (atol + rtol·|want|).
fn worst(got: &[f32], want: &[f32], atol: f64, rtol: f64) -> f64 {
    if got.len() != want.len() {
        return f64::INFINITY;
    }
    got.iter()
        .zip(want)
        .map(|(&g, &w)| {
            let (g, w) = (g as f64, w as f64);
            let e = (g - w).abs() / (atol + rtol * w.abs());
            if e.is_nan() { f64::INFINITY } else { e }
        })
        .fold(0.0, f64::max)
}

fn tensor(gpu: &Gpu, shape: &[usize], data: &[f32], label: &str) -> Result<Tensor> {
    Tensor::from_f32(gpu, shape, data, label)
}

/// y = act(x) for a `[3, 5, 7, 11]` tensor, sigmoid and leaky ReLU.
async fn check_activation(gpu: &Gpu) -> Result<Check> {
    let shape = [3, 5, 7, 11];
    let n = shape.iter().product();
    let x = values(1, n, -6.0, 6.0);
    let xt = tensor(gpu, &shape, &x, "x")?;
    let mut w = 0.0f64;
    for act in [Activation::Sigmoid, Activation::LeakyRelu(0.2)] {
        let yt = Tensor::zeros(gpu, &shape, "y")?;
        let mut plan = Plan::new();
        activation::forward(&mut plan, gpu, &yt, &xt, act);
        plan.compile(gpu);
        plan.submit(gpu);
        let mut want = vec![0.0; n];
        reference::activation::forward(&mut want, &x, act);
        w = w.max(worst(&yt.fetch_f32(gpu).await?, &want, 1e-6, 1e-5));
    }
    Ok(Check {
        name: "activation",
        worst: w,
    })
}

/// `y[N, O] = relu(x[N, I]·Wᵀ + b)` through the tiled GEMM, N = 37, I = 70, O = 29.
async fn check_linear(gpu: &Gpu) -> Result<Check> {
    let s = LinearShape {
        n: 37,
        in_features: 70,
        out_features: 29,
    };
    let (n, i, o) = (s.n, s.in_features, s.out_features);
    let x = values(2, n * i, -1.0, 1.0);
    let w = values(3, o * i, -0.5, 0.5);
    let b = values(4, o, -0.5, 0.5);
    let params = [w.clone(), b.clone()].concat();
    let xt = tensor(gpu, &[n, i], &x, "x")?;
    let pt = tensor(gpu, &[params.len()], &params, "params")?;
    let yt = Tensor::zeros(gpu, &[n, o], "y")?;
    let at = ParamOffsets {
        weight: 0,
        bias: o * i,
    };
    let mut plan = Plan::new();
    linear::forward(
        &mut plan,
        gpu,
        &yt,
        &xt,
        &pt.buffer,
        at,
        s,
        Some(Activation::Relu),
    );
    plan.compile(gpu);
    plan.submit(gpu);
    let mut want = vec![0.0; n * o];
    reference::linear::forward(&mut want, &x, &w, &b, s);
    let pre = want.clone();
    reference::activation::forward(&mut want, &pre, Activation::Relu);
    Ok(Check {
        name: "linear",
        worst: worst(&yt.fetch_f32(gpu).await?, &want, 1e-5, 1e-4),
    })
}

/// A stride-2 3×3 convolution with padding 1 through the implicit GEMM, `[4, 3, 13, 13]` →
/// `[4, 8, 7, 7]`.
async fn check_conv2d(gpu: &Gpu) -> Result<Check> {
    let s = Conv2dShape {
        n: 4,
        c_in: 3,
        h_in: 13,
        w_in: 13,
        c_out: 8,
        kernel_h: 3,
        kernel_w: 3,
        stride: 2,
        padding: 1,
    };
    let (ho, wo) = (s.out_h(), s.out_w());
    let x = values(5, s.n * s.c_in * s.h_in * s.w_in, -1.0, 1.0);
    let w = values(6, s.c_out * s.c_in * 9, -0.5, 0.5);
    let b = values(7, s.c_out, -0.5, 0.5);
    let params = [w.clone(), b.clone()].concat();
    let xt = tensor(gpu, &[s.n, s.c_in, s.h_in, s.w_in], &x, "x")?;
    let pt = tensor(gpu, &[params.len()], &params, "params")?;
    let yt = Tensor::zeros(gpu, &[s.n, s.c_out, ho, wo], "y")?;
    let at = ParamOffsets {
        weight: 0,
        bias: w.len(),
    };
    let mut plan = Plan::new();
    conv2d::forward(&mut plan, gpu, &yt, &xt, &pt.buffer, at, s, None);
    plan.compile(gpu);
    plan.submit(gpu);
    let mut want = vec![0.0; s.n * s.c_out * ho * wo];
    reference::conv2d::forward(&mut want, &x, &w, &b, s);
    Ok(Check {
        name: "conv2d",
        worst: worst(&yt.fetch_f32(gpu).await?, &want, 1e-5, 1e-4),
    })
}

/// Per-example BCE with logits, with its gradient and alone (evaluation's), `[9, 100]`.
async fn check_loss(gpu: &Gpu) -> Result<Check> {
    let (n, d) = (9, 100);
    let logits = values(8, n * d, -8.0, 8.0);
    let target = values(9, n * d, 0.0, 1.0);
    let lt = tensor(gpu, &[n, d], &logits, "logits")?;
    let tt = tensor(gpu, &[n, d], &target, "target")?;
    let loss_t = Tensor::zeros(gpu, &[n], "loss")?;
    let alone_t = Tensor::zeros(gpu, &[n], "loss alone")?;
    let dl_t = Tensor::zeros(gpu, &[n, d], "dlogits")?;
    let mut plan = Plan::new();
    loss::bce_with_logits(&mut plan, gpu, &loss_t, Some(&dl_t), &lt, &tt, n, d, 0.5);
    loss::bce_with_logits(&mut plan, gpu, &alone_t, None, &lt, &tt, n, d, 0.5);
    plan.compile(gpu);
    plan.submit(gpu);
    let (mut want_loss, mut want_dl) = (vec![0.0; n], vec![0.0; n * d]);
    reference::loss::bce_with_logits(&mut want_loss, &mut want_dl, &logits, &target, n, d, 0.5);
    let w = worst(&loss_t.fetch_f32(gpu).await?, &want_loss, 1e-4, 1e-5)
        .max(worst(
            &alone_t.fetch_f32(gpu).await?,
            &want_loss,
            1e-4,
            1e-5,
        ))
        .max(worst(&dl_t.fetch_f32(gpu).await?, &want_dl, 1e-6, 1e-5));
    Ok(Check {
        name: "loss",
        worst: w,
    })
}

/// A sum of 5000 values added into an accumulator slot.
async fn check_reduce(gpu: &Gpu) -> Result<Check> {
    let n = 5000;
    let x = values(10, n, -1.0, 1.0);
    let xt = tensor(gpu, &[n], &x, "x")?;
    let acc = tensor(gpu, &[4], &[0.25, 0.0, 0.0, 0.0], "acc")?;
    let mut plan = Plan::new();
    reduce::sum_into(&mut plan, gpu, &acc, 0, &xt, None, n);
    plan.compile(gpu);
    plan.submit(gpu);
    let mut want = 0.25f32;
    reference::reduce::sum_into(&mut want, &x);
    let got = acc.fetch_f32(gpu).await?;
    Ok(Check {
        name: "reduce",
        worst: worst(&got[..1], &[want], 1e-3, 1e-4),
    })
}

/// One Adam step (the third: bias corrections at t = 3, the rate of a cosine schedule with
/// warm-up) over 1000 parameters.
async fn check_adam(gpu: &Gpu) -> Result<Check> {
    let count = 1000;
    let (mut p, mut m, mut v) = (
        values(11, count, -1.0, 1.0),
        values(12, count, -0.1, 0.1),
        values(13, count, 0.0, 0.01),
    );
    let g = values(14, count, -1.0, 1.0);
    let pt = tensor(gpu, &[count], &p, "params")?;
    let mt = tensor(gpu, &[count], &m, "m")?;
    let vt = tensor(gpu, &[count], &v, "v")?;
    let gt = tensor(gpu, &[count], &g, "grads")?;
    let state = Tensor::from_u32(gpu, &[step::STATE_LEN], &[2, 0, 0, 0], "state")?;
    let cfg = AdamConfig::default();
    let schedule = Schedule {
        kind: LrSchedule::Cosine,
        warmup_steps: 4,
        horizon_steps: 10,
    };
    let words = Tensor::from_u32(gpu, &[4], &schedule.words(1e-3), "schedule")?;
    let mut plan = Plan::new();
    adam::step(
        &mut plan, gpu, &pt, &mt, &vt, &gt, &state, &words, cfg, count,
    );
    plan.compile(gpu);
    plan.submit(gpu);
    let lr = schedule.rate(1e-3, 2);
    reference::adam::step(&mut p, &mut m, &mut v, &g, 3, lr, cfg);
    let w = worst(&pt.fetch_f32(gpu).await?, &p, 1e-6, 1e-5)
        .max(worst(&mt.fetch_f32(gpu).await?, &m, 1e-7, 1e-5))
        .max(worst(&vt.fetch_f32(gpu).await?, &v, 1e-9, 1e-5));
    Ok(Check {
        name: "adam",
        worst: w,
    })
}

/// Every check, in order, on `gpu`.
pub async fn run(gpu: &Gpu) -> Result<Vec<Check>> {
    Ok(vec![
        check_activation(gpu).await?,
        check_linear(gpu).await?,
        check_conv2d(gpu).await?,
        check_loss(gpu).await?,
        check_reduce(gpu).await?,
        check_adam(gpu).await?,
    ])
}
