//! Launchers for `nn.ConvTranspose2d`, built from the `shaders/conv2d.wgsl` products in
//! [`conv2d`](super::conv2d): the transposed convolution's input is the "small" map and its
//! output the "big" one, with the same weight layout `[C_in, C_out, KH, KW]` =
//! `[C_small, C_big, KH, KW]`. Forward is `up` (Conv2d's input gradient), the input gradient is
//! `down` (Conv2d's forward) and the weight gradient is the same split-K correlation with x in
//! the place of Conv2d's output gradient. Output padding only enlarges the big map.

use super::conv2d::{Pair, down, up, weight_grad};
use super::reduce;
use crate::gpu::{Gpu, Plan, Tensor};
use crate::shapes::{ConvTranspose2dShape, ParamOffsets};

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

/// y [N, C_out, out_h, out_w] = convT(x [N, C_in, H, W], W) + b; W [C_in, C_out, KH, KW] at
/// params[at.weight..], b [C_out] at params[at.bias..].
pub fn forward(
    plan: &mut Plan,
    gpu: &Gpu,
    y: &Tensor,
    x: &Tensor,
    params: &wgpu::Buffer,
    at: ParamOffsets,
    s: ConvTranspose2dShape,
) {
    up(plan, gpu, y, x, params, at.weight, Some(at.bias), pair(s));
}

/// Overwrites dW at grads[at.weight..], db at grads[at.bias..] (crate::kernels::reduce::channel_sum), and dx when Some.
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
    s: ConvTranspose2dShape,
) {
    let g = pair(s);
    weight_grad(plan, gpu, grads, at.weight, x, dy, g);
    reduce::channel_sum(
        plan,
        gpu,
        grads,
        at.bias,
        dy,
        s.n,
        s.c_out,
        s.out_h() * s.out_w(),
    );
    if let Some(dx) = dx {
        down(plan, gpu, dx, dy, params, at.weight, None, g);
    }
}
