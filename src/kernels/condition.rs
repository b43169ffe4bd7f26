//! Launchers for `shaders/condition.wgsl`: a conditional VAE's class label as a one-hot block
//! appended to a tensor's rows (the encoder features before the head, z before the decoder),
//! the batch's labels gathered by the epoch's order, and the gradient of the concatenated
//! tensor without its label columns (the derivative of the activation before the concatenation
//! folded in).

use super::{InputGrad, SplitTensor};
use crate::gpu::{Gpu, Plan, Shader, Tensor, grid_1d};
use crate::shapes::Activation;

pub const SHADER: Shader = Shader {
    name: "condition",
    source: concat!(
        include_str!("../../shaders/act.wgsl"),
        include_str!("../../shaders/condition.wgsl")
    ),
};

const WG: u32 = 256;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    width: u32,
    classes: u32,
    batch_size: u32,
    splits: u32,
    dact: u32,
    slope: f32,
    _pad0: u32,
}

fn params(n: usize, width: usize, classes: usize, batch_size: usize, splits: usize) -> Params {
    Params {
        n: n as u32,
        width: width as u32,
        classes: classes as u32,
        batch_size: batch_size as u32,
        splits: splits as u32,
        dact: 0,
        slope: 0.0,
        _pad0: 0,
    }
}

/// `batch_labels[b] = labels[perm[state[1]·batch_size + b]]` for `b < n` (u32 tensors; `state`
/// the GPU step counter, see [`step`](super::step)): the labels of the batch that
/// [`data::gather`](super::data::gather) gathers.
#[allow(clippy::too_many_arguments)]
pub fn gather_labels(
    plan: &mut Plan,
    gpu: &Gpu,
    batch_labels: &Tensor,
    labels: &Tensor,
    perm: &Tensor,
    state: &Tensor,
    batch_size: usize,
    n: usize,
) {
    assert!(
        n <= batch_labels.numel() && n <= batch_size,
        "gather_labels: batch_labels holds fewer than n labels"
    );
    plan.dispatch(
        gpu,
        &SHADER,
        "gather_labels",
        &[],
        &params(n, 0, 0, batch_size, 0),
        &[
            (1, labels.bind()),
            (2, perm.bind()),
            (3, state.bind()),
            (4, batch_labels.bind()),
        ],
        grid_1d(gpu, n, WG),
    );
}

/// `y [n, A+K]`: `y[b, j] = x[b, j]` for `j < A`, `y[b, A+k] = 1` when `k = batch_labels[b]`
/// and 0 otherwise (`x [n, A]`, `batch_labels` u32 `[n]`; a label ≥ K gives a zero row).
#[allow(clippy::too_many_arguments)]
pub fn concat_onehot(
    plan: &mut Plan,
    gpu: &Gpu,
    y: &Tensor,
    x: &Tensor,
    batch_labels: &Tensor,
    n: usize,
    width: usize,
    classes: usize,
) {
    assert!(
        x.numel() >= n * width && y.numel() >= n * (width + classes) && batch_labels.numel() >= n,
        "concat_onehot: a tensor is smaller than n rows"
    );
    plan.dispatch(
        gpu,
        &SHADER,
        "concat_onehot",
        &[],
        &params(n, width, classes, 0, 0),
        &[(5, batch_labels.bind()), (6, x.bind()), (7, y.bind())],
        grid_1d(gpu, n * (width + classes), WG),
    );
}

/// `dx [n, A]`: `dx[b, j] = Σ_s dy[s, b, j]` for `j < A`, where `dy` is `[n, A+K]` as slices to
/// add up (the gradient of a [`concat_onehot`] output, its label columns dropped); with
/// `dx.act`, times that activation's derivative at `x` (`[n, A]`, the concatenation's input,
/// the activation's output), which is only read then.
#[allow(clippy::too_many_arguments)]
pub fn take_columns(
    plan: &mut Plan,
    gpu: &Gpu,
    dx: InputGrad,
    dy: &SplitTensor,
    x: Option<&Tensor>,
    n: usize,
    width: usize,
    classes: usize,
) {
    assert!(
        dy.numel() == n * (width + classes) && dx.dx.numel() >= n * width,
        "take_columns: dy is not [n, A+K] or dx smaller than [n, A]"
    );
    let (dact, slope) = Activation::code(dx.act);
    let act_x = match (dx.act, x) {
        (None, _) => dy.bind(),
        (Some(_), Some(x)) if x.numel() >= n * width => x.bind(),
        (Some(_), _) => panic!("take_columns: an activation's derivative needs x [n, A]"),
    };
    plan.dispatch(
        gpu,
        &SHADER,
        "take_columns",
        &[],
        &Params {
            dact,
            slope,
            ..params(n, width, classes, 0, dy.splits)
        },
        &[(6, dy.bind()), (7, dx.dx.bind()), (8, act_x)],
        grid_1d(gpu, n * width, WG),
    );
}
