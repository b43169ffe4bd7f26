//! Launchers for `shaders/conv2d.wgsl`: `nn.Conv2d` forward and backward, and the three
//! strided-correlation products (`down`, `up`, `weight_grad`) that
//! [`conv_transpose2d`](super::conv_transpose2d) reuses with the roles of input and output
//! swapped.

use super::grads::{GradPartials, PartialLayout};
use super::{Epilogue, InputGrad};
use crate::gpu::{Binding, Gpu, Plan, Shader, Tensor};
use crate::shapes::{Activation, Conv2dShape, ParamOffsets};

pub const SHADER: Shader = Shader {
    name: "conv2d",
    source: concat!(
        include_str!("../../shaders/act.wgsl"),
        include_str!("../../shaders/conv2d.wgsl")
    ),
};

/// Mirrors `Params` in `shaders/conv2d.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    m: u32,
    n_cols: u32,
    k_rows: u32,
    k_split: u32,
    batch: u32,
    c_small: u32,
    c_big: u32,
    stride: u32,
    small_h: u32,
    small_w: u32,
    big_h: u32,
    big_w: u32,
    kh: u32,
    kw: u32,
    pad: u32,
    w_off: u32,
    bias_off: u32,
    has_bias: u32,
    splits: u32,
    act: u32,
    slope: f32,
    dact: u32,
}

/// `SH_VEC` in the shader: workgroup vec4s for the A and B tiles.
const SH_VEC: usize = 320;
/// `CHUNK` in the shader: K rows per row-table refill; a step never spans two.
const CHUNK: usize = 64;
/// Rows of K per weight-gradient split stay within [`MIN_SPLIT_ROWS`, ...] and the split count
/// at most [`MAX_SPLITS`] (bounds the partials buffer).
const MIN_SPLIT_ROWS: usize = 64;
const MAX_SPLITS: usize = 512;

/// Two feature maps related by a strided correlation with weight `[C_small, C_big, KH, KW]`:
/// `small[n, cs, y, x] ~ Σ W[cs, cb, ky, kx] · big[n, cb, y·s − p + ky, x·s − p + kx]`.
/// Conv2d: big = input, small = output; ConvTranspose2d: big = output, small = input.
#[derive(Debug, Clone, Copy)]
pub(super) struct Pair {
    pub n: usize,
    pub c_small: usize,
    pub small_h: usize,
    pub small_w: usize,
    pub c_big: usize,
    pub big_h: usize,
    pub big_w: usize,
    pub kh: usize,
    pub kw: usize,
    pub stride: usize,
    pub pad: usize,
}

impl Pair {
    fn small_len(&self) -> usize {
        self.n * self.c_small * self.small_h * self.small_w
    }
    fn big_len(&self) -> usize {
        self.n * self.c_big * self.big_h * self.big_w
    }
    fn taps(&self) -> usize {
        self.c_big * self.kh * self.kw
    }
    fn params(&self) -> Params {
        Params {
            batch: self.n as u32,
            c_small: self.c_small as u32,
            c_big: self.c_big as u32,
            stride: self.stride as u32,
            small_h: self.small_h as u32,
            small_w: self.small_w as u32,
            big_h: self.big_h as u32,
            big_w: self.big_w as u32,
            kh: self.kh as u32,
            kw: self.kw as u32,
            pad: self.pad as u32,
            ..Params::default()
        }
    }
}

fn log2(v: usize) -> u32 {
    debug_assert!(v.is_power_of_two());
    v.trailing_zeros()
}

/// K rows per k-group and step: as many as the tiles' workgroup memory holds (fewer barriers),
/// but no more than the rows there are.
fn rows_per_step(wm: usize, wn: usize, wk: usize, k: usize) -> usize {
    let fit = SH_VEC / (wk * (wm + wn));
    let kt = (CHUNK / wk).min(1 << fit.ilog2());
    let kt = kt.min(k.div_ceil(wk).next_power_of_two()).max(1);
    debug_assert!(kt * wk * (wm + wn) <= SH_VEC && CHUNK.is_multiple_of(kt * wk));
    kt
}

/// Data kernels trade tile columns for K groups only while each K group keeps at least this
/// many rows of K.
const MIN_GROUP_ROWS: usize = 16;

/// Invocation grid (wm, wn, wk) for the data kernels (`layers` grid layers of `cols` columns,
/// `k` rows of K): a 4·wm-row tile just covering `m` (at most 32 rows), the rest of the 64
/// invocations along the columns, traded for K groups (at most 8; more, shorter walks along K)
/// while the grid has fewer than `busy` workgroups ([`Gpu::busy_workgroups`]).
fn data_grid(m: usize, cols: usize, layers: usize, k: usize, busy: usize) -> (usize, usize, usize) {
    let wm = m.div_ceil(4).next_power_of_two().min(8);
    let groups = |wn: usize| cols.div_ceil(4 * wn) * m.div_ceil(4 * wm) * layers;
    let (mut wn, mut wk) = (64 / wm, 1);
    while wk < 8 && wn > 1 && groups(wn) < busy && k >= 2 * wk * MIN_GROUP_ROWS {
        wn /= 2;
        wk *= 2;
    }
    (wm, wn, wk)
}

/// One configuration of `gemm`: its pipeline-overridable constants (a pipeline each).
struct Gemm {
    mode: u32,
    wm: usize,
    wn: usize,
    wk: usize,
    kt: usize,
}

impl Gemm {
    /// Records `gemm` in this configuration with `p` and bindings 1..4 (`a_src`, `b_src`, `out`,
    /// `act_y`).
    fn dispatch(
        &self,
        plan: &mut Plan,
        gpu: &Gpu,
        p: &Params,
        bindings: [Binding; 4],
        groups: [u32; 3],
    ) {
        let constants = [
            ("MODE", self.mode as f64),
            ("LOG_WM", log2(self.wm) as f64),
            ("LOG_WN", log2(self.wn) as f64),
            ("LOG_WK", log2(self.wk) as f64),
            ("KT", self.kt as f64),
        ];
        let [a_src, b_src, out, act_y] = bindings;
        plan.dispatch(
            gpu,
            &SHADER,
            "gemm",
            &constants,
            p,
            &[(1, a_src), (2, b_src), (3, out), (4, act_y)],
            groups,
        );
    }
}

fn check_groups(gpu: &Gpu, what: &str, groups: usize) -> u32 {
    let max = gpu.limits.max_compute_workgroups_per_dimension as usize;
    assert!(
        groups <= max,
        "{what}: needs {groups} workgroups along one dimension but {} allows {max}; use a smaller --batch",
        gpu.info.name
    );
    groups as u32
}

/// `small = W ⋆ big (+ bias)`, W `[C_small, C_big, KH, KW]` at `params[w_off..]`, bias
/// `[C_small]` at `params[bias..]`: Conv2d forward, ConvTranspose2d input gradient.
#[allow(clippy::too_many_arguments)]
pub(super) fn down(
    plan: &mut Plan,
    gpu: &Gpu,
    small: &Tensor,
    big: &Tensor,
    params: &wgpu::Buffer,
    w_off: usize,
    bias: Option<usize>,
    g: Pair,
    epilogue: Epilogue,
) {
    debug_assert_eq!(small.numel(), g.small_len());
    debug_assert_eq!(big.numel(), g.big_len());
    let cols = g.n * g.small_h * g.small_w;
    let (wm, wn, wk) = data_grid(g.c_small, cols, 1, g.taps(), gpu.busy_workgroups);
    let ((act, slope, dact), act_y) = epilogue.fields();
    let act_y = act_y.unwrap_or(big);
    let gemm = Gemm {
        mode: 0,
        wm,
        wn,
        wk,
        kt: rows_per_step(wm, wn, wk, g.taps()),
    };
    let p = Params {
        act,
        slope,
        dact,
        m: g.c_small as u32,
        n_cols: cols as u32,
        k_rows: g.taps() as u32,
        w_off: w_off as u32,
        bias_off: bias.unwrap_or(0) as u32,
        has_bias: bias.is_some() as u32,
        ..g.params()
    };
    let groups = [
        check_groups(gpu, "conv2d", cols.div_ceil(4 * wn)),
        g.c_small.div_ceil(4 * wm) as u32,
        1,
    ];
    let bindings = [params.into(), big.bind(), small.bind(), act_y.bind()];
    gemm.dispatch(plan, gpu, &p, bindings, groups);
}

/// Number of big rows (or columns) `Y < big` with `(Y + pad) mod stride == r`.
fn phase_len(big: usize, pad: usize, stride: usize, r: usize) -> usize {
    let q0 = if pad > r {
        (pad - r).div_ceil(stride)
    } else {
        0
    };
    let q1 = (big + pad + stride - 1 - r) / stride;
    q1.saturating_sub(q0)
}

/// `big = Wᵀ ⋆ small (+ bias)`, W `[C_small, C_big, KH, KW]` at `params[w_off..]`, bias
/// `[C_big]` at `params[bias..]`: ConvTranspose2d forward, Conv2d input gradient. One grid
/// layer per stride phase, each multiplying only the taps that reach it.
#[allow(clippy::too_many_arguments)]
pub(super) fn up(
    plan: &mut Plan,
    gpu: &Gpu,
    big: &Tensor,
    small: &Tensor,
    params: &wgpu::Buffer,
    w_off: usize,
    bias: Option<usize>,
    g: Pair,
    epilogue: Epilogue,
) {
    debug_assert_eq!(small.numel(), g.small_len());
    debug_assert_eq!(big.numel(), g.big_len());
    let ((act, slope, dact), act_y) = epilogue.fields();
    let act_y = act_y.unwrap_or(small);
    let s = g.stride;
    let max_rows = (0..s).map(|r| phase_len(g.big_h, g.pad, s, r)).max();
    let max_cols = (0..s).map(|r| phase_len(g.big_w, g.pad, s, r)).max();
    let cols = g.n * max_rows.unwrap_or(0) * max_cols.unwrap_or(0);
    let max_k = g.c_small * g.kh.div_ceil(s) * g.kw.div_ceil(s);
    let (wm, wn, wk) = data_grid(g.c_big, cols, s * s, max_k, gpu.busy_workgroups);
    let gemm = Gemm {
        mode: 1,
        wm,
        wn,
        wk,
        kt: rows_per_step(wm, wn, wk, max_k),
    };
    let p = Params {
        act,
        slope,
        dact,
        m: g.c_big as u32,
        w_off: w_off as u32,
        bias_off: bias.unwrap_or(0) as u32,
        has_bias: bias.is_some() as u32,
        ..g.params()
    };
    let groups = [
        check_groups(gpu, "conv_transpose2d", cols.div_ceil(4 * wn)),
        g.c_big.div_ceil(4 * wm) as u32,
        (s * s) as u32,
    ];
    let bindings = [params.into(), small.bind(), big.bind(), act_y.bind()];
    gemm.dispatch(plan, gpu, &p, bindings, groups);
}

/// Invocation grid (wm, wn, wk) for the weight gradient: a tile just covering `m` × `n` (at
/// most 64 × 256), at least 8 invocations per k-group, the rest splitting K inside the group.
fn wgrad_grid(m: usize, n: usize) -> (usize, usize, usize) {
    let wm = m.div_ceil(4).next_power_of_two().min(16);
    let wn = n.div_ceil(4).next_power_of_two().min(64 / wm).max(8 / wm);
    let wk = 64 / (wm * wn);
    debug_assert!(wk <= 8 && wk * (wm + wn) <= SH_VEC);
    (wm, wn, wk)
}

/// Most values one layer's weight-gradient partials may take (8 MiB of f32): the partials of a
/// whole model (a 64×64 colour conv-vae at batch 128 included) then fit the 128 MiB that WebGPU
/// and many adapters allow per storage binding. MNIST's layers stay far below it.
const MAX_PARTIAL_VALUES: usize = 1 << 21;

/// Split count and K rows per split of the weight-gradient product of `g`.
fn wgrad_splits(g: &Pair) -> (usize, usize) {
    let k_rows = g.n * g.small_h * g.small_w;
    let most = MAX_SPLITS.min((MAX_PARTIAL_VALUES / (g.c_small * g.taps())).max(1));
    let k_split = k_rows
        .div_ceil(most)
        .max(MIN_SPLIT_ROWS)
        .next_multiple_of(CHUNK);
    (k_rows.div_ceil(k_split), k_split)
}

/// The partials of [`weight_grad`]: `[splits, C_small, C_big·KH·KW (+1)]`, summed into dW at
/// `grads[w_off..]` (and, with `bias`, Σ small per channel into `grads[bias..]`).
pub(super) fn weight_grad_layout(g: &Pair, w_off: usize, bias: Option<usize>) -> PartialLayout {
    PartialLayout {
        splits: wgrad_splits(g).0,
        rows: g.c_small,
        cols: g.taps(),
        weight: w_off,
        bias,
    }
}

/// `dW[cs, cb, ky, kx] = Σ_{n, y, x} small[n, cs, y, x] · big[n, cb, y·s − p + ky, x·s − p + kx]`
/// as split-K partials in `partials` (see [`weight_grad_layout`]); with `bias`, also
/// `db[cs] = Σ_{n, y, x} small[n, cs, y, x]` from a column of ones in the same product.
pub(super) fn weight_grad(
    plan: &mut Plan,
    gpu: &Gpu,
    partials: &mut GradPartials,
    (w_off, bias): (usize, Option<usize>),
    small: &Tensor,
    big: &Tensor,
    g: Pair,
) {
    debug_assert_eq!(small.numel(), g.small_len());
    debug_assert_eq!(big.numel(), g.big_len());
    let layout = weight_grad_layout(&g, w_off, bias);
    let part_off = partials.reserve(layout);
    let m = g.c_small;
    let n_cols = g.taps() + bias.is_some() as usize;
    let k_rows = g.n * g.small_h * g.small_w;
    let (splits, k_split) = wgrad_splits(&g);
    let (wm, wn, wk) = wgrad_grid(m, n_cols);
    let gemm = Gemm {
        mode: 2,
        wm,
        wn,
        wk,
        kt: rows_per_step(wm, wn, wk, k_split),
    };
    let p = Params {
        m: m as u32,
        n_cols: n_cols as u32,
        k_rows: k_rows as u32,
        k_split: k_split as u32,
        w_off: part_off as u32,
        has_bias: bias.is_some() as u32,
        splits: splits as u32,
        ..g.params()
    };
    let groups = [
        n_cols.div_ceil(4 * wn) as u32,
        m.div_ceil(4 * wm) as u32,
        check_groups(gpu, "conv weight gradient", splits),
    ];
    // `act_y` is unused in mode 2; `big` fills its slot.
    let bindings = [
        small.bind(),
        big.bind(),
        partials.buffer().into(),
        big.bind(),
    ];
    gemm.dispatch(plan, gpu, &p, bindings, groups);
}

fn pair(s: Conv2dShape) -> Pair {
    Pair {
        n: s.n,
        c_small: s.c_out,
        small_h: s.out_h(),
        small_w: s.out_w(),
        c_big: s.c_in,
        big_h: s.h_in,
        big_w: s.w_in,
        kh: s.kernel_h,
        kw: s.kernel_w,
        stride: s.stride,
        pad: s.padding,
    }
}

/// y [N, C_out, out_h, out_w] = act(conv(x [N, C_in, H, W], W) + b); W at params[at.weight..],
/// b at params[at.bias..]; `act` (the layer's activation, fused) None for the plain conv.
#[allow(clippy::too_many_arguments)]
pub fn forward(
    plan: &mut Plan,
    gpu: &Gpu,
    y: &Tensor,
    x: &Tensor,
    params: &wgpu::Buffer,
    at: ParamOffsets,
    s: Conv2dShape,
    act: Option<Activation>,
) {
    let e = Epilogue::Act(act);
    down(
        plan,
        gpu,
        y,
        x,
        params,
        at.weight,
        Some(at.bias),
        pair(s),
        e,
    );
}

/// Scratch values [`backward`] reserves in the [`GradPartials`] it is given.
pub fn backward_partials(s: Conv2dShape) -> usize {
    weight_grad_layout(&pair(s), 0, Some(0)).len()
}

/// dW and db as partials in `partials` (summed into grads[at.weight..] and grads[at.bias..] by
/// its `finish`), and dx when Some (see [`InputGrad`]).
#[allow(clippy::too_many_arguments)]
pub fn backward(
    plan: &mut Plan,
    gpu: &Gpu,
    dx: Option<InputGrad>,
    partials: &mut GradPartials,
    dy: &Tensor,
    x: &Tensor,
    params: &wgpu::Buffer,
    at: ParamOffsets,
    s: Conv2dShape,
) {
    let g = pair(s);
    weight_grad(plan, gpu, partials, (at.weight, Some(at.bias)), dy, x, g);
    if let Some(d) = dx {
        let e = Epilogue::for_input(&d, x);
        up(plan, gpu, d.dx, dy, params, at.weight, None, g, e);
    }
}

#[cfg(test)]
mod tests {
    use super::data_grid;
    use crate::gpu::LARGE_GPU_WORKGROUPS;

    #[test]
    fn small_grids_trade_columns_for_k_groups_on_gpus_only() {
        // conv-vae's second conv at batch 128: M = 32, 128·7·7 columns, K = 16·3·3.
        let (m, cols, k) = (32, 128 * 49, 144);
        assert_eq!(data_grid(m, cols, 1, k, LARGE_GPU_WORKGROUPS), (8, 2, 4));
        assert_eq!(data_grid(m, cols, 1, k, 1), (8, 8, 1));
        // At batch 1024 the grid is large enough as it is.
        assert_eq!(
            data_grid(m, 1024 * 49, 1, k, LARGE_GPU_WORKGROUPS),
            (8, 8, 1)
        );
        // A short K (the first conv's 9 taps) is not split.
        assert_eq!(
            data_grid(16, 128 * 196, 1, 9, LARGE_GPU_WORKGROUPS),
            (4, 16, 1)
        );
    }
}
