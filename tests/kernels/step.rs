//! GPU-vs-reference test for the step counter.

use crate::common::gpu;
use gpu_ae::gpu::{Plan, Tensor};
use gpu_ae::kernels::step;
use gpu_ae::reference::step as cpu;

#[test]
fn advance_counts_steps_in_one_submit() {
    let gpu = gpu();
    let start = [41u32, 3, 0, 0];
    let state = Tensor::from_u32(&gpu, &[step::STATE_LEN], &start, "state").unwrap();
    let mut plan = Plan::new();
    for _ in 0..3 {
        step::advance(&mut plan, &gpu, &state);
    }
    plan.run(&gpu).unwrap();
    let mut want = start;
    for _ in 0..3 {
        cpu::advance(&mut want);
    }
    assert_eq!(state.read_u32(&gpu).unwrap(), want);
    assert_eq!(want[..2], [44, 6]);
}
