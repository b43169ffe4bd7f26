//! Launchers for `shaders/linear.wgsl`: `nn.Linear` forward and backward as one strided,
//! tiled GEMM (plus a split-K pass when the output is too small to fill the GPU), and the
//! bias gradient through [`reduce::channel_sum`](crate::kernels::reduce::channel_sum).

use crate::gpu::{Gpu, Plan, Shader, Tensor, grid_1d};
use crate::kernels::reduce;
use crate::shapes::{LinearShape, ParamOffsets};

pub const SHADER: Shader = Shader {
    name: "linear",
    source: include_str!("../../shaders/linear.wgsl"),
};

/// Output tile of one `gemm` workgroup and the K slice it stages per step (as in the shader).
const TILE_M: usize = 64;
const TILE_N: usize = 64;
const TILE_K: usize = 16;
/// Split K until about this many workgroups run (roughly one per SM of a large GPU) ...
const TARGET_GROUPS: usize = 128;
/// ... but give every split at least this many K slices.
const MIN_SLICES_PER_SPLIT: usize = 8;
/// Workgroup size of `sum_splits`.
const WG: u32 = 256;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    m: u32,
    n: u32,
    k: u32,
    a_off: u32,
    a_sm: u32,
    a_sk: u32,
    b_off: u32,
    b_sk: u32,
    b_sn: u32,
    c_off: u32,
    c_sm: u32,
    bias_off: u32,
    has_bias: u32,
    k_split: u32,
    c_split: u32,
    splits: u32,
}

/// One operand of [`gemm`]: element `(r, s)` lives at `buffer[off + r·s0 + s·s1]`.
struct Operand<'a> {
    buffer: &'a wgpu::Buffer,
    off: usize,
    s0: usize,
    s1: usize,
}

/// How many K splits `gemm` uses for C `[m, n]` with reduction length `k`, and the K length
/// of each (a multiple of `TILE_K`; the last split may be shorter).
fn split_k(m: usize, n: usize, k: usize) -> (usize, usize) {
    let tiles = m.div_ceil(TILE_M) * n.div_ceil(TILE_N);
    let slices = k.div_ceil(TILE_K);
    let splits = TARGET_GROUPS
        .div_ceil(tiles)
        .min(slices / MIN_SLICES_PER_SPLIT);
    if splits <= 1 {
        return (1, k);
    }
    let k_split = slices.div_ceil(splits) * TILE_K;
    (k.div_ceil(k_split), k_split)
}

/// `C[m, n] = A[m, k] · B[k, n] (+ bias[n])`, C row-major at `c_off` of `c` with row stride
/// `n`; the bias, when given, is an element offset into B's buffer.
#[allow(clippy::too_many_arguments)]
fn gemm(
    plan: &mut Plan,
    gpu: &Gpu,
    c: &wgpu::Buffer,
    c_off: usize,
    a: Operand,
    b: Operand,
    bias: Option<usize>,
    (m, n, k): (usize, usize, usize),
) {
    let (splits, k_split) = split_k(m, n, k);
    let params = Params {
        m: m as u32,
        n: n as u32,
        k: k as u32,
        a_off: a.off as u32,
        a_sm: a.s0 as u32,
        a_sk: a.s1 as u32,
        b_off: b.off as u32,
        b_sk: b.s0 as u32,
        b_sn: b.s1 as u32,
        c_off: c_off as u32,
        c_sm: n as u32,
        bias_off: bias.unwrap_or(0) as u32,
        has_bias: bias.is_some() as u32,
        k_split: k_split as u32,
        c_split: 0,
        splits: 1,
    };
    let grid = |z: usize| {
        [
            n.div_ceil(TILE_N) as u32,
            m.div_ceil(TILE_M) as u32,
            z as u32,
        ]
    };
    // Split-K needs scratch for the partials; without it, one pass over all of K still works.
    let scratch = (splits > 1)
        .then(|| gpu.storage_buffer((splits * m * n * 4) as u64, "linear split-K partials"))
        .and_then(|r| r.ok());
    let Some(scratch) = scratch else {
        let params = Params {
            k_split: k as u32,
            ..params
        };
        plan.dispatch(
            gpu,
            &SHADER,
            "gemm",
            &[],
            &params,
            &[(1, a.buffer), (2, b.buffer), (3, c)],
            grid(1),
        );
        return;
    };
    let partial = Params {
        c_off: 0,
        has_bias: 0,
        c_split: (m * n) as u32,
        ..params
    };
    plan.dispatch(
        gpu,
        &SHADER,
        "gemm",
        &[],
        &partial,
        &[(1, a.buffer), (2, b.buffer), (3, &scratch)],
        grid(splits),
    );
    let total = Params {
        splits: splits as u32,
        ..params
    };
    plan.dispatch(
        gpu,
        &SHADER,
        "sum_splits",
        &[],
        &total,
        &[(1, &scratch), (2, b.buffer), (3, c)],
        grid_1d(gpu, m * n, WG),
    );
}

/// `y[N, O] = x[N, I] · W[O, I]ᵀ + b[O]`; W at element offset `at.weight`, b at `at.bias` of
/// `params`.
pub fn forward(
    plan: &mut Plan,
    gpu: &Gpu,
    y: &Tensor,
    x: &Tensor,
    params: &wgpu::Buffer,
    at: ParamOffsets,
    s: LinearShape,
) {
    let (n, i, o) = (s.n, s.in_features, s.out_features);
    debug_assert!(y.numel() == n * o && x.numel() == n * i);
    let x_op = Operand {
        buffer: &x.buffer,
        off: 0,
        s0: i,
        s1: 1,
    };
    // B(k = input, n = output) = W[output, input].
    let w_t = Operand {
        buffer: params,
        off: at.weight,
        s0: 1,
        s1: i,
    };
    gemm(plan, gpu, &y.buffer, 0, x_op, w_t, Some(at.bias), (n, o, i));
}

/// Writes (overwrites) dW `[O, I]` at `grads[at.weight..]`, db `[O]` at `grads[at.bias..]`,
/// and dx `[N, I]` = dy · W when `dx` is `Some`.
#[allow(clippy::too_many_arguments)]
pub fn backward(
    plan: &mut Plan,
    gpu: &Gpu,
    dx: Option<&Tensor>,
    grads: &wgpu::Buffer,
    dy: &Tensor,
    x: &Tensor,
    params: &wgpu::Buffer,
    at: ParamOffsets,
    s: LinearShape,
) {
    let (n, i, o) = (s.n, s.in_features, s.out_features);
    debug_assert!(dy.numel() == n * o && x.numel() == n * i);
    // dW[O, I] = dy[N, O]ᵀ · x[N, I]: A(m = output, k = sample) = dy[sample, output].
    let dy_t = Operand {
        buffer: &dy.buffer,
        off: 0,
        s0: 1,
        s1: o,
    };
    let x_op = Operand {
        buffer: &x.buffer,
        off: 0,
        s0: i,
        s1: 1,
    };
    gemm(plan, gpu, grads, at.weight, dy_t, x_op, None, (o, i, n));
    reduce::channel_sum(plan, gpu, grads, at.bias, dy, n, o, 1);
    if let Some(dx) = dx {
        debug_assert_eq!(dx.numel(), n * i);
        let dy_op = Operand {
            buffer: &dy.buffer,
            off: 0,
            s0: o,
            s1: 1,
        };
        let w = Operand {
            buffer: params,
            off: at.weight,
            s0: i,
            s1: 1,
        };
        gemm(plan, gpu, &dx.buffer, 0, dy_op, w, None, (n, i, o));
    }
}
