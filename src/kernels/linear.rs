//! Launchers for `shaders/linear.wgsl`: `nn.Linear` forward and backward as one strided,
//! tiled GEMM (plus a split-K pass when the output is too small to fill the GPU). The bias
//! gradient rides along in the weight-gradient product as a column of ones, and that product
//! always leaves split-K partials for [`GradPartials`] to add up.

use super::grads::{GradPartials, PartialLayout};
use super::{Epilogue, InputGrad, SplitTensor};
use crate::error::Result;
use crate::gpu::{Binding, Elem, Gpu, LARGE_GPU_WORKGROUPS, Plan, Shader, Tensor, grid_1d};
use crate::shapes::{Activation, LinearShape, ParamOffsets};

pub const SHADER: Shader = Shader {
    name: "linear",
    source: concat!(
        include_str!("../../shaders/act.wgsl"),
        include_str!("../../shaders/linear.wgsl")
    ),
};

/// Output tile of one `gemm` workgroup and the K slice it stages per step (as in the shader).
const TILE_M: usize = 64;
const TILE_N: usize = 64;
const TILE_K: usize = 16;
/// Split K until about this many workgroups run (shorter walks along K on more SMs finish
/// sooner). The same on every adapter: the split count sizes the gradient scratch, which is
/// laid out before an adapter is at hand ...
const TARGET_GROUPS: usize = LARGE_GPU_WORKGROUPS;
/// ... but give every split at least this many K slices.
const MIN_SLICES_PER_SPLIT: usize = 2;
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
    ones_col: u32,
    act: u32,
    slope: f32,
    dact: u32,
}

/// One operand of [`gemm`]: element `(r, s)` lives at `buffer[off + r·s0 + s·s1]`.
#[derive(Clone, Copy)]
struct Operand<'a> {
    buffer: Binding<'a>,
    off: usize,
    s0: usize,
    s1: usize,
}

impl<'a> Operand<'a> {
    /// A row-major `[rows, cols]` matrix at `off`: element (r, c) at `off + r·cols + c`.
    fn rows(buffer: Binding<'a>, off: usize, cols: usize) -> Operand<'a> {
        Operand {
            buffer,
            off,
            s0: cols,
            s1: 1,
        }
    }

    /// The transpose of [`Operand::rows`]: element (c, r) of the same memory.
    fn transposed(buffer: Binding<'a>, off: usize, cols: usize) -> Operand<'a> {
        Operand {
            buffer,
            off,
            s0: 1,
            s1: cols,
        }
    }
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

/// Sizes and strides of `C[m, n] = A[m, k] · B[k, n]` for `Params` (no splits, no epilogue).
fn base_params(c_off: usize, a: &Operand, b: &Operand, (m, n, k): (usize, usize, usize)) -> Params {
    Params {
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
        bias_off: 0,
        has_bias: 0,
        k_split: k as u32,
        c_split: 0,
        splits: 1,
        ones_col: 0,
        act: 0,
        slope: 0.0,
        dact: 0,
    }
}

fn grid(m: usize, n: usize, z: usize) -> [u32; 3] {
    [
        n.div_ceil(TILE_N) as u32,
        m.div_ceil(TILE_M) as u32,
        z as u32,
    ]
}

/// `C[m, n] = epilogue(A[m, k] · B[k, n] (+ bias[n]))`, C row-major at `c_off` of `c` with row
/// stride `n`; the bias, when given, is an element offset into B's buffer.
#[allow(clippy::too_many_arguments)]
fn gemm(
    plan: &mut Plan,
    gpu: &Gpu,
    c: Binding,
    c_off: usize,
    a: Operand,
    b: Operand,
    bias: Option<usize>,
    dims: (usize, usize, usize),
    epilogue: Epilogue,
) {
    let (m, n, k) = dims;
    let splits = split_k(m, n, k).0;
    let ((act, slope, dact), act_y) = epilogue.fields();
    let act_y = act_y.map_or(b.buffer, |y| y.bind());
    let params = Params {
        bias_off: bias.unwrap_or(0) as u32,
        has_bias: bias.is_some() as u32,
        act,
        slope,
        dact,
        ..base_params(c_off, &a, &b, dims)
    };
    // Split-K needs scratch for the partials; without it, one pass over all of K still works.
    if splits > 1
        && let Ok(partials) = gemm_split(plan, gpu, a, b, None, dims)
    {
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
            &[(1, partials.bind()), (2, b.buffer), (3, c), (4, act_y)],
            grid_1d(gpu, m * n, WG),
        );
        return;
    }
    plan.dispatch(
        gpu,
        &SHADER,
        "gemm",
        &[],
        &params,
        &[(1, a.buffer), (2, b.buffer), (3, c), (4, act_y)],
        grid(m, n, 1),
    );
}

/// `y[N, O] = act(x[N, I] · W[O, I]ᵀ + b[O])`; W at element offset `at.weight`, b at `at.bias`
/// of `params`; `act` (the layer's activation, fused) None for the plain layer.
#[allow(clippy::too_many_arguments)]
pub fn forward(
    plan: &mut Plan,
    gpu: &Gpu,
    y: &Tensor,
    x: &Tensor,
    params: &wgpu::Buffer,
    at: ParamOffsets,
    s: LinearShape,
    act: Option<Activation>,
) {
    let (n, i, o) = (s.n, s.in_features, s.out_features);
    debug_assert!(y.numel() == n * o && x.numel() == n * i);
    let x_op = Operand::rows(x.bind(), 0, i);
    // B(k = input, n = output) = W[output, input].
    let w_t = Operand::transposed(params.into(), at.weight, i);
    let e = Epilogue::Act(act);
    gemm(
        plan,
        gpu,
        y.bind(),
        0,
        x_op,
        w_t,
        Some(at.bias),
        (n, o, i),
        e,
    );
}

/// `C[m, n] = A[m, k] · B[k, n] (+ bias[n] in split 0)` as split-K partials `[splits, m, n]` in a
/// new scratch buffer, for a consumer that adds them up itself.
fn gemm_split(
    plan: &mut Plan,
    gpu: &Gpu,
    a: Operand,
    b: Operand,
    bias: Option<usize>,
    dims: (usize, usize, usize),
) -> Result<SplitTensor> {
    let (m, n, k) = dims;
    let (splits, k_split) = split_k(m, n, k);
    let scratch = gpu.storage_buffer((splits * m * n * 4) as u64, "linear split-K partials")?;
    let params = Params {
        k_split: k_split as u32,
        c_split: (m * n) as u32,
        bias_off: bias.unwrap_or(0) as u32,
        has_bias: bias.is_some() as u32,
        ..base_params(0, &a, &b, dims)
    };
    plan.dispatch(
        gpu,
        &SHADER,
        "gemm",
        &[],
        &params,
        &[
            (1, a.buffer),
            (2, b.buffer),
            (3, (&scratch).into()),
            (4, b.buffer),
        ],
        grid(m, n, splits),
    );
    Ok(SplitTensor {
        buffer: scratch,
        elem: Elem::F32,
        splits,
        shape: vec![m, n],
    })
}

/// `y[N, O] = x[N, I] · W[O, I]ᵀ + b[O]` as split-K slices for a consumer that adds them up
/// (the VAE latent layer), saving the summing pass.
pub fn forward_split(
    plan: &mut Plan,
    gpu: &Gpu,
    x: &Tensor,
    params: &wgpu::Buffer,
    at: ParamOffsets,
    s: LinearShape,
) -> Result<SplitTensor> {
    let (n, i, o) = (s.n, s.in_features, s.out_features);
    debug_assert_eq!(x.numel(), n * i);
    let x_op = Operand::rows(x.bind(), 0, i);
    let w_t = Operand::transposed(params.into(), at.weight, i);
    gemm_split(plan, gpu, x_op, w_t, Some(at.bias), (n, o, i))
}

/// `dx[N, I] = dy[N, O] · W[O, I]` as split-K slices for a consumer that adds them up (the VAE
/// latent layer's backward pass); the weight gradient is [`backward`]'s, called without dx.
pub fn input_grad_split(
    plan: &mut Plan,
    gpu: &Gpu,
    dy: &Tensor,
    params: &wgpu::Buffer,
    at: ParamOffsets,
    s: LinearShape,
) -> Result<SplitTensor> {
    let (n, i, o) = (s.n, s.in_features, s.out_features);
    debug_assert_eq!(dy.numel(), n * o);
    let dy_op = Operand::rows(dy.bind(), 0, o);
    let w = Operand::rows(params.into(), at.weight, i);
    gemm_split(plan, gpu, dy_op, w, None, (n, i, o))
}

/// The weight-gradient partials: `[splits, O, I + 1]`, the last column the bias gradient.
fn weight_grad_layout(s: LinearShape, at: ParamOffsets) -> PartialLayout {
    let (n, i, o) = (s.n, s.in_features, s.out_features);
    PartialLayout {
        splits: split_k(o, i + 1, n).0,
        rows: o,
        cols: i,
        weight: at.weight,
        bias: Some(at.bias),
    }
}

/// Scratch values [`backward`] reserves in the [`GradPartials`] it is given.
pub fn backward_partials(s: LinearShape) -> usize {
    let at = ParamOffsets { weight: 0, bias: 0 };
    weight_grad_layout(s, at).len()
}

/// dW `[O, I]` and db `[O]` as partials in `partials` (summed into grads[at.weight..] and
/// grads[at.bias..] by its `finish`), and dx `[N, I]` = dy · W when Some (see [`InputGrad`]).
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
    s: LinearShape,
) {
    let (n, i, o) = (s.n, s.in_features, s.out_features);
    debug_assert!(dy.numel() == n * o && x.numel() == n * i);
    // [dW | db][O, I + 1] = dy[N, O]ᵀ · [x | 1][N, I + 1]: A(m = output, k = sample).
    let dy_t = Operand::transposed(dy.bind(), 0, o);
    let x_op = Operand::rows(x.bind(), 0, i);
    let layout = weight_grad_layout(s, at);
    let part_off = partials.reserve(layout);
    let (splits, k_split) = split_k(o, i + 1, n);
    debug_assert_eq!(splits, layout.splits);
    let wgrad = Params {
        k_split: k_split as u32,
        c_split: layout.split_len() as u32,
        ones_col: 1,
        ..base_params(part_off, &dy_t, &x_op, (o, i + 1, n))
    };
    plan.dispatch(
        gpu,
        &SHADER,
        "gemm",
        &[],
        &wgrad,
        &[
            (1, dy.bind()),
            (2, x.bind()),
            (3, partials.buffer().into()),
            (4, x.bind()),
        ],
        grid(o, i + 1, splits),
    );
    if let Some(d) = dx {
        debug_assert_eq!(d.dx.numel(), n * i);
        let dy_op = Operand::rows(dy.bind(), 0, o);
        let w = Operand::rows(params.into(), at.weight, i);
        let e = Epilogue::for_input(&d, x);
        gemm(plan, gpu, d.dx.bind(), 0, dy_op, w, None, (n, i, o), e);
    }
}
