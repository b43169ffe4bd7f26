//! GPU-vs-reference tests for the reductions (bias-gradient channel sums through
//! `GradPartials`, loss accumulators).

use crate::common::{assert_close, gpu, gpu_with_f16, stored, values};
use gpu_ae::gpu::{Elem, Gpu, Plan, Tensor};
use gpu_ae::kernels::grads::GradPartials;
use gpu_ae::kernels::reduce;
use gpu_ae::reference::reduce as cpu;

/// Channel sums of x (stored as `elem`) through `GradPartials` into slots `off..off + c` of an
/// f32 buffer, vs the reference, for each case (n, c, hw, off); the other slots keep -7.0. The
/// reference gets the same (rounded) x and the sums are f32, so the tolerance does not depend
/// on `elem`.
fn check_channel_partials(gpu: &Gpu, cases: &[(usize, usize, usize, usize)], elem: Elem) {
    for &(n, c, hw, off) in cases {
        let x = stored(elem, values(n as u64 + 7 * c as u64, n * c * hw, -1.0, 1.0));
        let xt = Tensor::from_f32_as(gpu, &[n, c, hw], elem, &x, "x").unwrap();
        let out = Tensor::from_f32(gpu, &[off + c + 1], &vec![-7.0; off + c + 1], "out").unwrap();
        let layout = reduce::channel_partials_layout(off, n, c, hw);
        let mut partials = GradPartials::new(gpu, layout.len()).unwrap();
        let mut plan = Plan::new();
        reduce::channel_partials(&mut plan, gpu, &mut partials, off, &xt, n, c, hw);
        partials.finish(&mut plan, gpu, &out.buffer, 1.0).unwrap();
        plan.run(gpu).unwrap();
        let got = out.read_f32(gpu).unwrap();
        let mut want = vec![0.0; c];
        cpu::channel_sum(&mut want, &x, n, c, hw);
        assert_close(
            &format!("channel sum n{n} c{c} hw{hw} {elem:?}"),
            &got[off..off + c],
            &want,
            1e-4,
            1e-4,
        );
        assert!(
            got[..off].iter().chain(&got[off + c..]).all(|&v| v == -7.0),
            "channel sum wrote outside its channels"
        );
    }
}

/// Channel sums of an f32 x.
#[test]
fn channel_partials_sum_to_the_reference() {
    // One chunk and several (2 · 1100 positions), one channel and several, batch 1.
    let cases = [(1, 1, 1, 0), (3, 5, 7, 2), (2, 3, 1100, 0), (130, 4, 1, 5)];
    check_channel_partials(&gpu(), &cases, Elem::F32);
}

/// The f16 storage variant of the channel sums (x f16: the conv_transpose2d output gradient
/// whose sums are the bias gradient; the sums f32): an odd element count, several chunks.
#[test]
fn f16_channel_partials_sum_to_the_reference() {
    let Some(gpu) = gpu_with_f16() else { return };
    check_channel_partials(&gpu, &[(3, 5, 7, 2), (2, 3, 1100, 0)], Elem::F16);
}

#[test]
fn sum_into_accumulates() {
    let gpu = gpu();
    let x = values(3, 1000, 0.0, 2.0);
    let xt = Tensor::from_f32(&gpu, &[1000], &x, "x").unwrap();
    let acc = Tensor::from_f32(&gpu, &[3], &[0.0, 5.0, 0.0], "acc").unwrap();
    let mut plan = Plan::new();
    reduce::sum_into(&mut plan, &gpu, &acc, 1, &xt, None, 777);
    reduce::sum_into(&mut plan, &gpu, &acc, 1, &xt, None, 777);
    plan.run(&gpu).unwrap();
    let got = acc.read_f32(&gpu).unwrap();
    let mut want = 5.0;
    cpu::sum_into(&mut want, &x[..777]);
    cpu::sum_into(&mut want, &x[..777]);
    assert_close("sum_into", &got[1..2], &[want], 1e-3, 1e-5);
    assert_eq!(
        (got[0], got[2]),
        (0.0, 0.0),
        "sum_into touched another slot"
    );
}

#[test]
fn sum_into_adds_two_sources_in_one_dispatch() {
    let gpu = gpu();
    let x = values(4, 600, -1.0, 2.0);
    let y = values(5, 600, 0.0, 3.0);
    let xt = Tensor::from_f32(&gpu, &[600], &x, "x").unwrap();
    let yt = Tensor::from_f32(&gpu, &[600], &y, "y").unwrap();
    let acc = Tensor::from_f32(&gpu, &[4], &[0.0, 1.0, 2.0, 0.0], "acc").unwrap();
    let mut plan = Plan::new();
    reduce::sum_into(&mut plan, &gpu, &acc, 1, &xt, Some(&yt), 513);
    assert_eq!(plan.len(), 1, "one dispatch for both sums");
    plan.run(&gpu).unwrap();
    let got = acc.read_f32(&gpu).unwrap();
    let (mut want_x, mut want_y) = (1.0, 2.0);
    cpu::sum_into(&mut want_x, &x[..513]);
    cpu::sum_into(&mut want_y, &y[..513]);
    assert_close("sum_into pair", &got[1..3], &[want_x, want_y], 1e-3, 1e-5);
    assert_eq!(
        (got[0], got[3]),
        (0.0, 0.0),
        "sum_into touched another slot"
    );
}
