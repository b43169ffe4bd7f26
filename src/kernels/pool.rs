//! Launchers for `shaders/pool.wgsl`: 2×2 stride-2 max pooling (with padding, argmax kept for
//! the backward pass) and 2×2 average pooling, all over
//! `[N, C, H, W]` tensors with one invocation per output element.

use crate::gpu::{Gpu, Plan, Shader, Tensor, grid_1d};
use crate::shapes::Pool2dShape;

pub const SHADER: Shader = Shader {
    name: "pool",
    source: include_str!("../../shaders/pool.wgsl"),
};

const WG: u32 = 256;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    planes: u32,
    h: u32,
    w: u32,
    oh: u32,
    ow: u32,
    pad: u32,
    total: u32,
    _pad0: u32,
}

/// Sizes for a kernel mapping `[N, C, h, w]` to `[N, C, oh, ow]` with `total` invocations.
fn params(s: &Pool2dShape, oh: usize, ow: usize, total: usize) -> Params {
    Params {
        planes: (s.n * s.c) as u32,
        h: s.h_in as u32,
        w: s.w_in as u32,
        oh: oh as u32,
        ow: ow as u32,
        pad: s.padding as u32,
        total: total as u32,
        _pad0: 0,
    }
}

fn input_len(s: &Pool2dShape) -> usize {
    s.n * s.c * s.h_in * s.w_in
}

/// 2×2 stride-2 max pool with symmetric padding (PyTorch MaxPool2d(2, padding=p): padded cells never win;
/// first maximum in row-major window order wins ties). argmax: u32 tensor, same shape as y [N, C, out_h, out_w],
/// holding the flat index of the winning input element within x.
pub fn max_pool2x2_forward(
    plan: &mut Plan,
    gpu: &Gpu,
    y: &Tensor,
    argmax: &Tensor,
    x: &Tensor,
    s: Pool2dShape,
) {
    assert!(
        s.padding <= 1,
        "max pool 2×2: padding {} > 1 would leave windows of padding only",
        s.padding
    );
    let (oh, ow) = (s.out_h(), s.out_w());
    let total = s.n * s.c * oh * ow;
    assert_eq!(x.numel(), input_len(&s), "max pool forward: x size");
    assert!(
        y.numel() == total && argmax.numel() == total,
        "max pool forward: y/argmax size"
    );
    plan.dispatch(
        gpu,
        &SHADER,
        "max_pool_forward",
        &[],
        &params(&s, oh, ow, total),
        &[(1, x.bind()), (2, y.bind()), (3, argmax.bind())],
        grid_1d(gpu, total, WG),
    );
}

/// dx [N, C, H, W] (overwritten: zero except at winners) from dy and argmax.
pub fn max_pool2x2_backward(
    plan: &mut Plan,
    gpu: &Gpu,
    dx: &Tensor,
    dy: &Tensor,
    argmax: &Tensor,
    s: Pool2dShape,
) {
    let (oh, ow) = (s.out_h(), s.out_w());
    let total = input_len(&s);
    assert_eq!(dx.numel(), total, "max pool backward: dx size");
    assert!(
        dy.numel() == s.n * s.c * oh * ow && argmax.numel() == dy.numel(),
        "max pool backward: dy/argmax size"
    );
    plan.dispatch(
        gpu,
        &SHADER,
        "max_pool_backward",
        &[],
        &params(&s, oh, ow, total),
        &[(1, dy.bind()), (2, dx.bind()), (4, argmax.bind())],
        grid_1d(gpu, total, WG),
    );
}

/// 2×2 stride-2 average pool without padding (H, W even): builds the 14×14 inputs of super-resolution.
pub fn avg_pool2x2_forward(plan: &mut Plan, gpu: &Gpu, y: &Tensor, x: &Tensor, s: Pool2dShape) {
    assert!(
        s.padding == 0 && s.h_in.is_multiple_of(2) && s.w_in.is_multiple_of(2),
        "avg pool 2×2: needs even H, W and no padding"
    );
    let (oh, ow) = (s.h_in / 2, s.w_in / 2);
    let total = s.n * s.c * oh * ow;
    assert!(
        x.numel() == input_len(&s) && y.numel() == total,
        "avg pool forward: x/y size"
    );
    plan.dispatch(
        gpu,
        &SHADER,
        "avg_pool_forward",
        &[],
        &params(&s, oh, ow, total),
        &[(1, x.bind()), (2, y.bind())],
        grid_1d(gpu, total, WG),
    );
}
