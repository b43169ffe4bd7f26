//! Launchers for `shaders/batchnorm.wgsl`: BatchNorm2d exactly as PyTorch's `nn.BatchNorm2d(C)`
//! (affine γ and β, running statistics, momentum [`MOMENTUM`], eps [`EPS`]) over `[N, C, H, W]`,
//! with an optional activation fused on the output as the GEMM epilogues fuse theirs.
//!
//! - [`forward_train`]: two dispatches. Per channel, chunks of `CHUNK` values are reduced by
//!   one workgroup each (a shifted, corrected two-pass sum and sum of squared deviations), then
//!   every workgroup of the normalising pass combines its channel's chunks (Chan et al.), so
//!   the variance survives a large mean and any `N·H·W`. Saves `mean` and `invstd` for the
//!   backward pass and updates the running statistics in place.
//! - [`forward_eval`]: one dispatch, from the running statistics.
//! - [`backward`]: two dispatches. Per chunk `Σ dŷ·x̂` and `Σ dŷ` go into the
//!   [`GradPartials`] scratch as a segment `[splits, C, 2]` whose sums its `finish` writes to
//!   γ's and β's gradients (times its scale, like every other layer's); the input-gradient pass
//!   adds up the same partials for the `Σ` terms of `dx`.
//!
//! Outputs are distinct buffers from the inputs (no in-place `y = bn(x)`), and the running
//! statistics are not in the parameter buffer (one is written, the other read, in the same
//! dispatch). With the activation fused into the forward pass, its derivative belongs to
//! exactly one backward kernel: pass it as [`backward`]'s `act`, or let the next layer fuse it
//! into its input gradient ([`InputGrad`], from this layer's output) and pass `act` None.

use super::InputGrad;
use super::grads::{GradPartials, PartialLayout};
use crate::bail;
use crate::error::Result;
use crate::gpu::{Gpu, Plan, Shader, Tensor};
use crate::shapes::{Activation, BatchNorm2dShape, ParamOffsets};

pub const SHADER: Shader = Shader {
    name: "batchnorm",
    source: concat!(
        include_str!("../../shaders/act.wgsl"),
        include_str!("../../shaders/batchnorm.wgsl")
    ),
};

/// `nn.BatchNorm2d`'s defaults: added to the variance under the square root.
pub const EPS: f32 = 1e-5;
/// `nn.BatchNorm2d`'s defaults: `running = (1 − m)·running + m·batch statistic`.
pub const MOMENTUM: f32 = 0.1;

/// Values of one channel per workgroup (`CHUNK` in the shader).
const CHUNK: usize = 2048;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    c: u32,
    hw: u32,
    count: u32,
    splits: u32,
    part_off: u32,
    act: u32,
    slope: f32,
    dact: u32,
    dslope: f32,
    eps: f32,
    momentum: f32,
    gamma_off: u32,
    beta_off: u32,
    rmean_off: u32,
    rvar_off: u32,
    _pad0: u32,
}

/// Where a layer's running statistics live in a flat f32 buffer: `running_mean` `[C]` at
/// `buffer[mean..]` and `running_var` `[C]` at `buffer[var..]` (PyTorch's buffers of those
/// names; a new layer starts them at 0 and 1). `buffer` must not be the parameter buffer.
#[derive(Clone, Copy)]
pub struct Running<'a> {
    pub buffer: &'a wgpu::Buffer,
    pub mean: usize,
    pub var: usize,
}

/// Chunks per channel: the workgroups per channel of every entry point.
fn splits(s: BatchNorm2dShape) -> usize {
    s.count().div_ceil(CHUNK)
}

/// f32 elements of the `saved` tensor of [`forward_train`] and [`backward`]: `mean` `[C]`, then
/// `invstd` `[C]`, then the forward's chunk partials `[splits, C, 2]` (scratch).
pub fn saved_len(s: BatchNorm2dShape) -> usize {
    2 * s.c + 2 * s.c * splits(s)
}

/// Scratch values [`backward`] reserves in the [`GradPartials`] it is given.
pub fn backward_partials(s: BatchNorm2dShape) -> usize {
    layout(s, ParamOffsets { weight: 0, bias: 0 }).len()
}

/// The partials of γ's (column 0) and β's (the bias column) gradients.
fn layout(s: BatchNorm2dShape, at: ParamOffsets) -> PartialLayout {
    PartialLayout {
        splits: splits(s),
        rows: s.c,
        cols: 1,
        weight: at.weight,
        bias: Some(at.bias),
    }
}

/// The launch grid `[splits, C, 1]`, after checking the sizes the shader indexes with.
fn grid(gpu: &Gpu, s: BatchNorm2dShape) -> [u32; 3] {
    let max = gpu.limits.max_compute_workgroups_per_dimension as usize;
    assert!(
        s.numel() <= u32::MAX as usize,
        "batch norm: {s:?} has more than 2^32 elements"
    );
    assert!(
        splits(s) <= max && s.c <= max,
        "batch norm: {s:?} needs a {}×{} grid, the adapter allows {max} per dimension",
        splits(s),
        s.c
    );
    [splits(s) as u32, s.c as u32, 1]
}

fn uniforms(s: BatchNorm2dShape, act: Option<Activation>, at: ParamOffsets) -> Params {
    let (act, slope) = Activation::code(act);
    Params {
        c: s.c as u32,
        hw: (s.h * s.w) as u32,
        count: s.count() as u32,
        splits: splits(s) as u32,
        part_off: 0,
        act,
        slope,
        dact: 0,
        dslope: 0.0,
        eps: EPS,
        momentum: MOMENTUM,
        gamma_off: at.weight as u32,
        beta_off: at.bias as u32,
        rmean_off: 0,
        rvar_off: 0,
        _pad0: 0,
    }
}

/// Panics unless `buffer` holds `[C]` f32 values at each offset.
fn check_slices(what: &str, buffer: &wgpu::Buffer, offsets: [usize; 2], c: usize) {
    let end = offsets.iter().max().expect("two offsets") + c;
    assert!(
        buffer.size() >= 4 * end as u64,
        "batch norm: {what} buffer holds {} f32, needs {end}",
        buffer.size() / 4
    );
}

fn check_tensors(s: BatchNorm2dShape, tensors: &[(&str, &Tensor)]) {
    for (what, t) in tensors {
        assert_eq!(t.numel(), s.numel(), "batch norm: {what} size for {s:?}");
    }
}

/// Training forward: `y = act((x − mean)·invstd·γ + β)` for `x`, `y` `[N, C, H, W]`, with each
/// channel's mean and biased variance over its `N·H·W` values and `invstd = 1/sqrt(var + EPS)`;
/// γ and β `[C]` at `params[at.weight..]`, `params[at.bias..]`. Writes `mean` and `invstd` to
/// `saved` (f32, [`saved_len`] elements, the rest scratch) for [`backward`], and updates
/// `running` in place: `running_mean ← (1 − m)·running_mean + m·mean`,
/// `running_var ← (1 − m)·running_var + m·var·n/(n − 1)` (the unbiased variance), `m` =
/// [`MOMENTUM`]. An error, recording nothing, when a channel has fewer than two values (PyTorch
/// refuses those in training: "Expected more than 1 value per channel when training").
#[allow(clippy::too_many_arguments)]
pub fn forward_train(
    plan: &mut Plan,
    gpu: &Gpu,
    y: &Tensor,
    saved: &Tensor,
    running: Running,
    x: &Tensor,
    params: &wgpu::Buffer,
    at: ParamOffsets,
    s: BatchNorm2dShape,
    act: Option<Activation>,
) -> Result<()> {
    if s.count() < 2 {
        bail!(
            "batch norm: expected more than 1 value per channel when training, got input size [{}, {}, {}, {}]",
            s.n,
            s.c,
            s.h,
            s.w
        );
    }
    check_forward(s, x, y, params, at, &running);
    assert_eq!(saved.numel(), saved_len(s), "batch norm: saved size");
    let grid = grid(gpu, s);
    let p = Params {
        part_off: 2 * s.c as u32,
        rmean_off: running.mean as u32,
        rvar_off: running.var as u32,
        ..uniforms(s, act, at)
    };
    plan.dispatch(
        gpu,
        &SHADER,
        "stats_partials",
        &[],
        &p,
        &[(1, x.bind()), (3, saved.bind())],
        grid,
    );
    plan.dispatch(
        gpu,
        &SHADER,
        "normalize_train",
        &[],
        &p,
        &[
            (1, x.bind()),
            (2, y.bind()),
            (3, saved.bind()),
            (4, params.into()),
            (5, running.buffer.into()),
        ],
        grid,
    );
    Ok(())
}

/// What both forward passes check: the shapes of `x` and `y`, and that γ, β and the running
/// statistics lie inside their buffers.
fn check_forward(
    s: BatchNorm2dShape,
    x: &Tensor,
    y: &Tensor,
    params: &wgpu::Buffer,
    at: ParamOffsets,
    running: &Running,
) {
    check_tensors(s, &[("x", x), ("y", y)]);
    check_slices("parameter", params, [at.weight, at.bias], s.c);
    check_slices(
        "running statistics",
        running.buffer,
        [running.mean, running.var],
        s.c,
    );
}

/// Evaluation forward: `y = act((x − running_mean)/sqrt(running_var + EPS)·γ + β)`, the
/// running statistics read, not changed.
#[allow(clippy::too_many_arguments)]
pub fn forward_eval(
    plan: &mut Plan,
    gpu: &Gpu,
    y: &Tensor,
    running: Running,
    x: &Tensor,
    params: &wgpu::Buffer,
    at: ParamOffsets,
    s: BatchNorm2dShape,
    act: Option<Activation>,
) {
    check_forward(s, x, y, params, at, &running);
    let p = Params {
        rmean_off: running.mean as u32,
        rvar_off: running.var as u32,
        ..uniforms(s, act, at)
    };
    plan.dispatch(
        gpu,
        &SHADER,
        "normalize_eval",
        &[],
        &p,
        &[
            (1, x.bind()),
            (2, y.bind()),
            (4, params.into()),
            (5, running.buffer.into()),
        ],
        grid(gpu, s),
    );
}

/// Training backward of [`forward_train`], from `dy` (the gradient of its output `y`, after
/// `act`), `y`, `x` and `saved`: with `dŷ = dy·act'(y)` (taken from `y`; pass `act` None when
/// the caller already multiplied `dy` by it) and `x̂ = (x − mean)·invstd`, γ's gradient
/// `Σ dŷ·x̂` and β's `Σ dŷ` (sums over `N·H·W`) as partials in `partials`, summed into
/// `grads[at.weight..]` and `grads[at.bias..]` by its `finish` (times its scale); and when `dx`
/// is Some, `dx = γ·invstd/n·(n·dŷ − Σ dŷ − x̂·Σ dŷ·x̂)`, times `dx.act'` at `x` (see
/// [`InputGrad`]). With `act` None, `y` is not read for a derivative: any tensor of the shape
/// serves.
#[allow(clippy::too_many_arguments)]
pub fn backward(
    plan: &mut Plan,
    gpu: &Gpu,
    dx: Option<InputGrad>,
    partials: &mut GradPartials,
    dy: &Tensor,
    y: &Tensor,
    x: &Tensor,
    saved: &Tensor,
    params: &wgpu::Buffer,
    at: ParamOffsets,
    s: BatchNorm2dShape,
    act: Option<Activation>,
) {
    check_tensors(s, &[("dy", dy), ("y", y), ("x", x)]);
    assert_eq!(saved.numel(), saved_len(s), "batch norm: saved size");
    check_slices("parameter", params, [at.weight, at.bias], s.c);
    for a in [act, dx.and_then(|d| d.act)] {
        if let Some(Activation::LeakyRelu(slope)) = a {
            assert!(
                slope > 0.0,
                "batch norm: LeakyRelu backward from y needs slope > 0, got {slope}"
            );
        }
    }
    let grid = grid(gpu, s);
    let part_off = partials.reserve(layout(s, at));
    let p = Params {
        part_off: part_off as u32,
        ..uniforms(s, act, at)
    };
    plan.dispatch(
        gpu,
        &SHADER,
        "backward_partials",
        &[],
        &p,
        &[
            (1, x.bind()),
            (3, saved.bind()),
            (6, dy.bind()),
            (7, y.bind()),
            (8, partials.buffer().into()),
        ],
        grid,
    );
    if let Some(d) = dx {
        check_tensors(s, &[("dx", d.dx)]);
        let (dact, dslope) = Activation::code(d.act);
        let p = Params { dact, dslope, ..p };
        plan.dispatch(
            gpu,
            &SHADER,
            "backward_dx",
            &[],
            &p,
            &[
                (1, x.bind()),
                (3, saved.bind()),
                (4, params.into()),
                (6, dy.bind()),
                (7, y.bind()),
                (8, partials.buffer().into()),
                (9, d.dx.bind()),
            ],
            grid,
        );
    }
}
