//! Launchers for `nn.ConvTranspose2d`, built from the `shaders/conv2d.wgsl` products in
//! [`conv2d`](super::conv2d): the transposed convolution's input is the "small" map and its
//! output the "big" one, with the same weight layout `[C_in, C_out, KH, KW]` =
//! `[C_small, C_big, KH, KW]`. Forward is `up` (Conv2d's input gradient), the input gradient is
//! `down` (Conv2d's forward) and the weight gradient is the same split-K correlation with x in
//! the place of Conv2d's output gradient. Output padding only enlarges the big map.

use super::Epilogue;
use super::InputGrad;
use super::conv2d::{Pair, down, up, weight_grad, weight_grad_layout};
use super::grads::GradPartials;
use super::reduce;
use crate::gpu::{Gpu, Plan, Tensor};
use crate::shapes::{Activation, ConvTranspose2dShape, ParamOffsets};

fn pair(s: ConvTranspose2dShape) -> Pair {
    Pair {
        n: s.n,
        c_small: s.c_in,
        small_h: s.h_in,
        small_w: s.w_in,
        c_big: s.c_out,
        big_h: s.out_h(),
        big_w: s.out_w(),
        kh: s.kernel_h,
        kw: s.kernel_w,
        stride: s.stride,
        pad: s.padding,
    }
}

/// y [N, C_out, out_h, out_w] = act(convT(x [N, C_in, H, W], W) + b); W [C_in, C_out, KH, KW]
/// at `params[at.weight..]`, b `[C_out]` at `params[at.bias..]`; `act` None for the plain layer.
#[allow(clippy::too_many_arguments)]
pub fn forward(
    plan: &mut Plan,
    gpu: &Gpu,
    y: &Tensor,
    x: &Tensor,
    params: &wgpu::Buffer,
    at: ParamOffsets,
    s: ConvTranspose2dShape,
    act: Option<Activation>,
) {
    let e = Epilogue::Act(act);
    up(
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
pub fn backward_partials(s: ConvTranspose2dShape) -> usize {
    let hw = s.out_h() * s.out_w();
    weight_grad_layout(&pair(s), 0, None).len()
        + reduce::channel_partials_layout(0, s.n, s.c_out, hw).len()
}

/// dW (split-K product) and db (per-channel sums of dy) as partials in `partials`, summed into
/// grads[at.weight..] and grads[at.bias..] by its `finish`; dx when Some (see [`InputGrad`]).
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
    s: ConvTranspose2dShape,
) {
    let g = pair(s);
    weight_grad(plan, gpu, partials, (at.weight, None), x, dy, g);
    let hw = s.out_h() * s.out_w();
    reduce::channel_partials(plan, gpu, partials, at.bias, dy, s.n, s.c_out, hw);
    if let Some(d) = dx {
        let e = Epilogue::for_input(&d, x);
        down(plan, gpu, d.dx, dy, params, at.weight, None, g, e);
    }
}
