//! Launchers for `shaders/reduce.wgsl`: per-channel partial sums (bias gradients, finished by
//! [`GradPartials`]) and sums added into an accumulator slot (training losses, read back only
//! when asked).

use super::grads::{GradPartials, PartialLayout};
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

/// Positions per `channel_partials` workgroup (`CHUNK` in the shader).
const CHUNK: usize = 2048;

/// The partials of [`channel_partials`] for `x` `[N, C, HW]`: one per channel and chunk of
/// `CHUNK` positions, summed into `out[bias..bias + C]`.
pub fn channel_partials_layout(bias: usize, n: usize, c: usize, hw: usize) -> PartialLayout {
    PartialLayout {
        splits: (n * hw).div_ceil(CHUNK),
        rows: c,
        cols: 0,
        weight: 0,
        bias: Some(bias),
    }
}

/// `grads[bias + c] = Σ_{n, i} x[n, c, i]` for `x` `[N, C, HW]` (a bias gradient), as per-chunk
/// partial sums in `partials`, added up by its `finish`.
#[allow(clippy::too_many_arguments)]
pub fn channel_partials(
    plan: &mut Plan,
    gpu: &Gpu,
    partials: &mut GradPartials,
    bias: usize,
    x: &Tensor,
    n: usize,
    c: usize,
    hw: usize,
) {
    debug_assert_eq!(x.numel(), n * c * hw);
    let layout = channel_partials_layout(bias, n, c, hw);
    let params = Params {
        n: n as u32,
        c: c as u32,
        hw: hw as u32,
        out_off: partials.reserve(layout) as u32,
    };
    plan.dispatch(
        gpu,
        &SHADER,
        "channel_partials",
        &[],
        &params,
        &[(1, x.bind()), (2, partials.buffer().into())],
        [layout.splits as u32, c as u32, 1],
    );
}

/// `acc[slot] += Σ_{i < n} x[i]`, and with `second` also `acc[slot + 1] += Σ_{i < n} second[i]`
/// in the same dispatch.
pub fn sum_into(
    plan: &mut Plan,
    gpu: &Gpu,
    acc: &Tensor,
    slot: usize,
    x: &Tensor,
    second: Option<&Tensor>,
    n: usize,
) {
    let sources = 1 + second.is_some() as usize;
    debug_assert!(slot + sources <= acc.numel() && n <= x.numel());
    debug_assert!(second.is_none_or(|s| n <= s.numel()));
    let params = Params {
        n: n as u32,
        c: sources as u32,
        hw: 1,
        out_off: slot as u32,
    };
    let x2 = second.unwrap_or(x);
    plan.dispatch(
        gpu,
        &SHADER,
        "sum_into",
        &[],
        &params,
        &[(1, x.bind()), (2, acc.bind()), (3, x2.bind())],
        [1, 1, 1],
    );
}
