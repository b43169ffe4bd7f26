//! CPU reference for `shaders/upsample.wgsl`: nearest-neighbour resizing (PyTorch's
//! `mode="nearest"`, source index `⌊i·in/out⌋`) forward, and its backward pass with the
//! derivative of the activation that produced the input optionally folded in.

use crate::reference::activation;
use crate::shapes::{Activation, UpsampleShape};

/// `y[n, c, i, j] = x[n, c, ⌊i·H/h_out⌋, ⌊j·W/w_out⌋]`.
pub fn nearest_forward(y: &mut [f32], x: &[f32], s: UpsampleShape) {
    let (h, w, oh, ow) = (s.h_in, s.w_in, s.h_out, s.w_out);
    for plane in 0..s.n * s.c {
        for i in 0..oh {
            for j in 0..ow {
                y[(plane * oh + i) * ow + j] = x[(plane * h + i * h / oh) * w + j * w / ow];
            }
        }
    }
}

/// `dx[n, c, a, b] = Σ dy[n, c, i, j]` over the output cells `(i, j)` that copied input cell
/// `(a, b)`, scattered here in output order; then, with `act`, multiplied by its derivative at
/// `x` (the layer input, that activation's output).
pub fn nearest_backward(
    dx: &mut [f32],
    dy: &[f32],
    x: &[f32],
    act: Option<Activation>,
    s: UpsampleShape,
) {
    let (h, w, oh, ow) = (s.h_in, s.w_in, s.h_out, s.w_out);
    let mut sum = vec![0.0f32; s.input_len()];
    for plane in 0..s.n * s.c {
        for i in 0..oh {
            for j in 0..ow {
                sum[(plane * h + i * h / oh) * w + j * w / ow] += dy[(plane * oh + i) * ow + j];
            }
        }
    }
    match act {
        Some(act) => activation::backward(&mut dx[..s.input_len()], &sum, x, act),
        None => dx[..s.input_len()].copy_from_slice(&sum),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::fd::{check_gradient, dot, values};

    /// Up by odd and even factors and down (7 → 4 → 7, 3 → 8, 6 → 3): the backward pass is the
    /// forward pass's transpose.
    #[test]
    fn backward_matches_finite_differences() {
        for (h, w, oh, ow) in [(4, 3, 7, 7), (3, 5, 8, 6), (7, 6, 4, 3), (2, 2, 4, 4)] {
            let s = UpsampleShape {
                n: 2,
                c: 3,
                h_in: h,
                w_in: w,
                h_out: oh,
                w_out: ow,
            };
            let x = values(1, s.input_len(), -1.0, 1.0);
            let r = values(2, s.output_len(), -1.0, 1.0);
            let mut dx = vec![0.0; s.input_len()];
            nearest_backward(&mut dx, &r, &x, None, s);
            let loss = |x: &[f32]| {
                let mut y = vec![0.0; s.output_len()];
                nearest_forward(&mut y, x, s);
                dot(&y, &r)
            };
            check_gradient(&format!("nearest {s:?}"), &x, &dx, loss, 1e-2, 1e-4);
        }
    }

    /// PyTorch's `F.interpolate(x, size=(5,), mode="nearest")` of 0..3 is [0, 0, 1, 1, 2]; of
    /// 0..5 to 3 it is [0, 1, 3].
    #[test]
    fn source_indices_are_pytorchs() {
        let one_row = |w_in, w_out| UpsampleShape {
            n: 1,
            c: 1,
            h_in: 1,
            w_in,
            h_out: 1,
            w_out,
        };
        let mut y = vec![0.0; 5];
        nearest_forward(&mut y, &[0.0, 1.0, 2.0], one_row(3, 5));
        assert_eq!(y, [0.0, 0.0, 1.0, 1.0, 2.0]);
        let mut y = vec![0.0; 3];
        nearest_forward(&mut y, &[0.0, 1.0, 2.0, 3.0, 4.0], one_row(5, 3));
        assert_eq!(y, [0.0, 1.0, 3.0]);
    }
}
