//! GPU-vs-reference tests for the per-example losses (BCE on logits, squared error), fused with
//! their gradients and alone, plus agreement with PyTorch's probability-form BCE and
//! large-logit safety.

use crate::common::{assert_close, gpu, gpu_with_f16, padded, read_padded, rtol, stored, values};
use gpu_ae::gpu::{Elem, Gpu, Plan, Tensor};
use gpu_ae::kernels::loss;
use gpu_ae::reference::loss as cpu;

/// Shapes (n, d): single example/pixel, odd sizes, the real MNIST batch, D past 784.
const SHAPES: &[(usize, usize)] = &[(1, 1), (3, 5), (130, 784), (2, 1000), (5, 196)];

type Launcher = fn(&mut Plan, &Gpu, &Tensor, Option<&Tensor>, &Tensor, &Tensor, usize, usize, f32);
type Reference = fn(&mut [f32], &mut [f32], &[f32], &[f32], usize, usize, f32);

/// What one fused loss dispatch wrote.
struct Outputs {
    /// Per-example losses followed by one sentinel slot past N that must stay untouched.
    loss_and_tail: Vec<f32>,
    /// d(scale · Σ loss)/dx.
    grad: Vec<f32>,
}

impl Outputs {
    /// The per-example losses, after checking that the kernel did not write past loss[N − 1].
    fn loss(&self) -> &[f32] {
        let (tail, loss) = self.loss_and_tail.split_last().unwrap();
        assert_eq!(*tail, 7.0, "loss kernel wrote past loss[N - 1]");
        loss
    }
}

/// Runs one loss on the GPU, x, target and the gradient stored as `elem` (the loss is f32):
/// one dispatch writes both the loss and the gradient. The gradient starts as 7.0 with a
/// sentinel tail. With `with_grad` false the loss-alone entry point runs, and the gradient
/// must stay 7.0.
#[allow(clippy::too_many_arguments)]
fn run_gpu(
    gpu: &Gpu,
    launch: Launcher,
    x: &[f32],
    target: &[f32],
    n: usize,
    d: usize,
    scale: f32,
    elem: Elem,
    with_grad: bool,
) -> Outputs {
    let xt = Tensor::from_f32_as(gpu, &[n, d], elem, x, "x").unwrap();
    let tt = Tensor::from_f32_as(gpu, &[n, d], elem, target, "target").unwrap();
    let lt = Tensor::from_f32(gpu, &[n + 1], &vec![7.0; n + 1], "loss").unwrap();
    let gt = padded(gpu, &[n, d], elem, &vec![7.0; n * d], "grad");
    let mut plan = Plan::new();
    let grad = with_grad.then_some(&gt);
    launch(&mut plan, gpu, &lt, grad, &xt, &tt, n, d, scale);
    plan.run(gpu).unwrap();
    Outputs {
        loss_and_tail: lt.read_f32(gpu).unwrap(),
        grad: read_padded(gpu, &gt, "loss gradient"),
    }
}

/// Which output of the fused kernel a check asserts.
#[derive(Clone, Copy, PartialEq)]
enum Part {
    /// The per-example loss.
    Forward,
    /// The gradient with respect to the prediction (logits for BCE).
    Backward,
}

/// A loss under test: its kernel, its reference, and the range of its predictions x.
struct Loss {
    name: &'static str,
    launch: Launcher,
    reference: Reference,
    x_range: (f32, f32),
}

const BCE_WITH_LOGITS: Loss = Loss {
    name: "bce_with_logits",
    launch: loss::bce_with_logits,
    reference: cpu::bce_with_logits,
    x_range: (-6.0, 6.0),
};

const MSE: Loss = Loss {
    name: "mse",
    launch: loss::mse,
    reference: cpu::mse,
    x_range: (-0.5, 1.5),
};

/// `part` of `loss` on the GPU vs the reference on every shape, x, target and the gradient
/// stored as `elem`. The loss is f32 and its reference gets the same (rounded) inputs, so its
/// tolerance does not depend on `elem`.
fn check(gpu: &Gpu, loss: &Loss, part: Part, shapes: &[(usize, usize)], elem: Elem) {
    let (lo, hi) = loss.x_range;
    for &(n, d) in shapes {
        let x = stored(elem, values(n as u64 * 31 + d as u64, n * d, lo, hi));
        let target = stored(elem, values(n as u64 + 5 * d as u64, n * d, 0.0, 1.0));
        let scale = 1.0 / n as f32 + 0.5;
        let got = run_gpu(gpu, loss.launch, &x, &target, n, d, scale, elem, true);
        let mut want_loss = vec![0.0; n];
        let mut want_grad = vec![0.0; n * d];
        (loss.reference)(&mut want_loss, &mut want_grad, &x, &target, n, d, scale);
        let what = format!("{} n{n} d{d} {elem:?}", loss.name);
        match part {
            Part::Forward => {
                assert_close(&format!("{what} loss"), got.loss(), &want_loss, 1e-4, 1e-5);
                let alone = run_gpu(gpu, loss.launch, &x, &target, n, d, scale, elem, false);
                let what = format!("{what} loss alone");
                assert_close(&what, alone.loss(), &want_loss, 1e-4, 1e-5);
                assert!(
                    alone.grad.iter().all(|&g| g == 7.0),
                    "{what} wrote a gradient"
                );
            }
            Part::Backward => assert_close(
                &format!("{what} grad"),
                &got.grad,
                &want_grad,
                1e-6,
                rtol(elem, 1e-5),
            ),
        }
    }
}

/// The per-example BCE on logits, f32 storage.
#[test]
fn bce_with_logits_forward_matches_reference() {
    check(&gpu(), &BCE_WITH_LOGITS, Part::Forward, SHAPES, Elem::F32);
}

/// The BCE gradient with respect to the logits, f32 storage.
#[test]
fn bce_with_logits_backward_matches_reference() {
    check(&gpu(), &BCE_WITH_LOGITS, Part::Backward, SHAPES, Elem::F32);
}

/// The per-example squared error, f32 storage.
#[test]
fn mse_forward_matches_reference() {
    check(&gpu(), &MSE, Part::Forward, SHAPES, Elem::F32);
}

/// The squared-error gradient, f32 storage.
#[test]
fn mse_backward_matches_reference() {
    check(&gpu(), &MSE, Part::Backward, SHAPES, Elem::F32);
}

/// Shapes for the f16 variants: a single pixel, odd sizes, a few MNIST-sized rows.
const F16_SHAPES: &[(usize, usize)] = &[(1, 1), (3, 5), (5, 196)];

/// The f16 storage variants of both losses (predictions, targets and gradient f16 as the
/// decoder output, the images and its gradient with `--precision f16`; the loss f32), loss
/// and gradient.
#[test]
fn f16_losses_match_reference() {
    let Some(gpu) = gpu_with_f16() else { return };
    for loss in [&BCE_WITH_LOGITS, &MSE] {
        for part in [Part::Forward, Part::Backward] {
            check(&gpu, loss, part, F16_SHAPES, Elem::F16);
        }
    }
}

#[test]
fn bce_with_logits_agrees_with_binary_cross_entropy_on_probabilities() {
    let gpu = gpu();
    let (n, d) = (4, 784);
    let logits = values(17, n * d, -8.0, 8.0);
    let target = values(18, n * d, 0.0, 1.0); // grey levels, not just 0/1
    let out = run_gpu(
        &gpu,
        loss::bce_with_logits,
        &logits,
        &target,
        n,
        d,
        1.0,
        Elem::F32,
        true,
    );
    let got = out.loss();
    for i in 0..n {
        let row = i * d..(i + 1) * d;
        let p: Vec<f32> = logits[row.clone()]
            .iter()
            .map(|&l| (1.0 / (1.0 + (-l as f64).exp())) as f32)
            .collect();
        let want = cpu::binary_cross_entropy(&p, &target[row]) as f32;
        assert_close(
            &format!("bce example {i}"),
            &got[i..=i],
            &[want],
            1e-3,
            1e-4,
        );
    }
}

#[test]
fn bce_with_logits_is_finite_for_large_logits() {
    let gpu = gpu();
    let logits = [60.0f32, -60.0, 60.0, -60.0, 100.0, -100.0, 60.0, -60.0];
    let target = [1.0f32, 0.0, 0.0, 1.0, 0.5, 0.5, 0.25, 0.75];
    let (n, d) = (2, 4);
    let out = run_gpu(
        &gpu,
        loss::bce_with_logits,
        &logits,
        &target,
        n,
        d,
        0.5,
        Elem::F32,
        true,
    );
    let (got_loss, got_grad) = (out.loss(), &out.grad);
    assert!(got_loss.iter().chain(got_grad).all(|x| x.is_finite()));
    let mut want_loss = vec![0.0; n];
    let mut want_grad = vec![0.0; n * d];
    cpu::bce_with_logits(&mut want_loss, &mut want_grad, &logits, &target, n, d, 0.5);
    // Row 0: 0 + 0 + 60 + 60; row 1: 50 + 50 + 45 + 45.
    assert_close("large logits loss", got_loss, &want_loss, 1e-4, 1e-6);
    assert_close("large logits grad", got_grad, &want_grad, 1e-7, 1e-6);
    assert_close(
        "large logits loss value",
        &want_loss,
        &[120.0, 190.0],
        1e-4,
        1e-6,
    );
}

/// Each picture's PSNR, from logits (BCE models) and from predictions (squared-error models):
/// awkward row lengths, a perfect row (clamped at 100 dB).
#[test]
fn psnr_matches_reference() {
    let gpu = gpu();
    for (n, d) in [(1, 1), (3, 5), (2, 784), (4, 3 * 32 * 32 + 7)] {
        for logits in [true, false] {
            let target = values(n as u64 + 3, n * d, 0.0, 1.0);
            let mut x = if logits {
                values(n as u64 + 4, n * d, -6.0, 6.0)
            } else {
                values(n as u64 + 4, n * d, 0.0, 1.0)
            };
            if !logits && n > 1 {
                x[..d].copy_from_slice(&target[..d]);
            }
            let xt = Tensor::from_f32(&gpu, &[n, d], &x, "x").unwrap();
            let tt = Tensor::from_f32(&gpu, &[n, d], &target, "target").unwrap();
            let out = Tensor::zeros(&gpu, &[n], "psnr").unwrap();
            let mut plan = Plan::new();
            loss::psnr(&mut plan, &gpu, &out, &xt, &tt, n, d, logits);
            plan.run(&gpu).unwrap();
            let mut want = vec![0.0; n];
            cpu::psnr(&mut want, &x, &target, n, d, logits);
            let what = format!("psnr {n}×{d} logits {logits}");
            assert_close(&what, &out.read_f32(&gpu).unwrap(), &want, 1e-3, 1e-4);
        }
    }
}
