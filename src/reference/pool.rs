//! CPU reference for `shaders/pool.wgsl`: 2×2 stride-2 max pooling with padding and argmax,
//! and 2×2 average pooling over `[N, C, H, W]`.

use crate::shapes::Pool2dShape;

/// `y`, `argmax` `[N, C, out_h, out_w]` from `x` `[N, C, H, W]`: the maximum of each 2×2
/// stride-2 window over the padded input (padding never wins; the first maximum in row-major
/// window order wins ties); `argmax` is the winner's flat index into `x`.
pub fn max_pool2x2_forward(y: &mut [f32], argmax: &mut [u32], x: &[f32], s: Pool2dShape) {
    let (h, w, pad) = (s.h_in, s.w_in, s.padding);
    let (oh, ow) = (s.out_h(), s.out_w());
    for plane in 0..s.n * s.c {
        for oy in 0..oh {
            for ox in 0..ow {
                let mut best: Option<(f32, usize)> = None;
                for dy in 0..2 {
                    for dx in 0..2 {
                        let (yy, xx) = (2 * oy + dy, 2 * ox + dx);
                        if yy < pad || xx < pad || yy - pad >= h || xx - pad >= w {
                            continue;
                        }
                        let j = (plane * h + yy - pad) * w + xx - pad;
                        if best.is_none_or(|(b, _)| x[j] > b) {
                            best = Some((x[j], j));
                        }
                    }
                }
                let (v, j) = best.expect("every 2×2 window holds an input cell");
                let o = (plane * oh + oy) * ow + ox;
                y[o] = v;
                argmax[o] = j as u32;
            }
        }
    }
}

/// `dx` `[N, C, H, W]` = 0 except `dx[argmax[o]] += dy[o]`.
pub fn max_pool2x2_backward(dx: &mut [f32], dy: &[f32], argmax: &[u32], s: Pool2dShape) {
    dx[..s.n * s.c * s.h_in * s.w_in].fill(0.0);
    for (&g, &j) in dy.iter().zip(argmax) {
        dx[j as usize] += g;
    }
}

/// `y` `[N, C, H/2, W/2]`: the mean of each 2×2 window of `x` (H, W even, no padding).
pub fn avg_pool2x2_forward(y: &mut [f32], x: &[f32], s: Pool2dShape) {
    let (h, w) = (s.h_in, s.w_in);
    let (oh, ow) = (h / 2, w / 2);
    for plane in 0..s.n * s.c {
        for i in 0..oh {
            for j in 0..ow {
                let k = (plane * h + 2 * i) * w + 2 * j;
                y[(plane * oh + i) * ow + j] = 0.25 * (x[k] + x[k + 1] + x[k + w] + x[k + w + 1]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::fd::{check_gradient, dot, values};

    fn shape(n: usize, c: usize, h_in: usize, w_in: usize, padding: usize) -> Pool2dShape {
        Pool2dShape {
            n,
            c,
            h_in,
            w_in,
            padding,
        }
    }

    #[test]
    fn max_pool_backward_matches_finite_differences() {
        for s in [
            shape(1, 2, 5, 3, 0),
            shape(2, 1, 7, 7, 1),
            shape(1, 1, 4, 6, 1),
        ] {
            let len = s.n * s.c * s.h_in * s.w_in;
            let out = s.n * s.c * s.out_h() * s.out_w();
            // Distinct values spaced far more than 2·eps apart: no window changes its winner.
            let mut x: Vec<f32> = (0..len)
                .map(|i| (i * 37 % len) as f32 * 0.05 - 1.0)
                .collect();
            x.iter_mut()
                .zip(values(3, len, -0.01, 0.01))
                .for_each(|(v, e)| *v += e);
            let r = values(4, out, -1.0, 1.0);
            let (mut y, mut arg) = (vec![0.0; out], vec![0; out]);
            max_pool2x2_forward(&mut y, &mut arg, &x, s);
            let mut dx = vec![0.0; len];
            max_pool2x2_backward(&mut dx, &r, &arg, s);
            let loss = |x: &[f32]| {
                let (mut y, mut arg) = (vec![0.0; out], vec![0; out]);
                max_pool2x2_forward(&mut y, &mut arg, x, s);
                dot(&y, &r)
            };
            check_gradient(&format!("max pool {s:?}"), &x, &dx, loss, 1e-3, 1e-3);
        }
    }

    #[test]
    fn max_pool_padding_never_wins_and_ties_pick_the_first() {
        // All inputs negative: a zero from padding must not win.
        let s = shape(1, 1, 3, 3, 1);
        let x: Vec<f32> = (0..9).map(|i| -1.0 - i as f32).collect();
        let (mut y, mut arg) = (vec![0.0; 4], vec![0; 4]);
        max_pool2x2_forward(&mut y, &mut arg, &x, s);
        assert_eq!(y, [-1.0, -2.0, -4.0, -5.0]);
        assert_eq!(arg, [0, 1, 3, 4]);
        // A window of equal values: its first cell in row-major order wins.
        let s = shape(1, 1, 2, 4, 0);
        let x = [3.0, 3.0, 1.0, 2.0, 3.0, 3.0, 2.0, 2.0];
        let (mut y, mut arg) = (vec![0.0; 2], vec![0; 2]);
        max_pool2x2_forward(&mut y, &mut arg, &x, s);
        assert_eq!((y, arg), (vec![3.0, 2.0], vec![0, 3]));
    }

    #[test]
    fn avg_pool_is_the_window_mean() {
        let s = shape(1, 1, 2, 4, 0);
        let x = [1.0, 2.0, 5.0, 6.0, 3.0, 4.0, 7.0, 9.0];
        let mut y = vec![0.0; 2];
        avg_pool2x2_forward(&mut y, &x, s);
        assert_eq!(y, [2.5, 6.75]);
    }
}
