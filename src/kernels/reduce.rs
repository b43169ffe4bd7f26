//! Launchers for `shaders/reduce.wgsl`: per-channel sums (bias gradients) and sums added into
//! an accumulator slot (training losses, read back only when asked).

use crate::gpu::{Gpu, Plan, Shader, Tensor};

pub const SHADER: Shader = Shader {
    name: "reduce",
    source: include_str!("../../shaders/reduce.wgsl"),
};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    c: u32,
    hw: u32,
    out_off: u32,
}

/// `out[out_offset + c] = Σ_{n, i} x[n, c, i]` for `x` `[N, C, HW]` (HW = 1 for linear layers).
/// Overwrites; used for bias gradients in the flat gradient buffer.
#[allow(clippy::too_many_arguments)]
pub fn channel_sum(
    plan: &mut Plan,
    gpu: &Gpu,
    out: &wgpu::Buffer,
    out_offset: usize,
    x: &Tensor,
    n: usize,
    c: usize,
    hw: usize,
) {
    debug_assert_eq!(x.numel(), n * c * hw);
    let params = Params {
        n: n as u32,
        c: c as u32,
        hw: hw as u32,
        out_off: out_offset as u32,
    };
    plan.dispatch(
        gpu,
        &SHADER,
        "channel_sum",
        &[],
        &params,
        &[(1, &x.buffer), (2, out)],
        [c as u32, 1, 1],
    );
}

/// `acc[slot] += Σ_{i < n} x[i]`.
pub fn sum_into(plan: &mut Plan, gpu: &Gpu, acc: &Tensor, slot: usize, x: &Tensor, n: usize) {
    debug_assert!(slot < acc.numel() && n <= x.numel());
    let params = Params {
        n: n as u32,
        c: 1,
        hw: 1,
        out_off: slot as u32,
    };
    plan.dispatch(
        gpu,
        &SHADER,
        "sum_into",
        &[],
        &params,
        &[(1, &x.buffer), (2, &acc.buffer)],
        [1, 1, 1],
    );
}
