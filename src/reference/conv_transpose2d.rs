//! CPU reference for `nn.ConvTranspose2d` (`kernels::conv_transpose2d`), written in scatter
//! form: every input element adds `x · W[ci, co]` to the output window it covers (accumulated
//! in f64). Output padding only adds rows and columns at the bottom and right.

use crate::shapes::ConvTranspose2dShape;

/// Output index `i·stride − padding + k` if it lies in `[0, size)`.
fn tap(i: usize, k: usize, s: ConvTranspose2dShape, size: usize) -> Option<usize> {
    (i * s.stride + k)
        .checked_sub(s.padding)
        .filter(|&o| o < size)
}

/// `y[n, co, iy·s − p + ky, ix·s − p + kx] += x[n, ci, iy, ix] · W[ci, co, ky, kx]`, then `+ b[co]`,
/// with x `[N, C_in, H, W]`, W `[C_in, C_out, KH, KW]`, y `[N, C_out, out_h, out_w]`.
pub fn forward(y: &mut [f32], x: &[f32], w: &[f32], b: &[f32], s: ConvTranspose2dShape) {
    let (oh, ow) = (s.out_h(), s.out_w());
    let (kh, kw) = (s.kernel_h, s.kernel_w);
    assert_eq!(x.len(), s.n * s.c_in * s.h_in * s.w_in);
    assert_eq!(w.len(), s.weight_len());
    assert_eq!(y.len(), s.n * s.c_out * oh * ow);
    let mut acc = vec![0.0f64; y.len()];
    for n in 0..s.n {
        for ci in 0..s.c_in {
            for iy in 0..s.h_in {
                for ix in 0..s.w_in {
                    let xv = x[((n * s.c_in + ci) * s.h_in + iy) * s.w_in + ix] as f64;
                    for co in 0..s.c_out {
                        for ky in 0..kh {
                            let Some(oy) = tap(iy, ky, s, oh) else {
                                continue;
                            };
                            for kx in 0..kw {
                                let Some(ox) = tap(ix, kx, s, ow) else {
                                    continue;
                                };
                                let wv = w[((ci * s.c_out + co) * kh + ky) * kw + kx] as f64;
                                acc[((n * s.c_out + co) * oh + oy) * ow + ox] += xv * wv;
                            }
                        }
                    }
                }
            }
        }
    }
    for (i, (o, a)) in y.iter_mut().zip(&acc).enumerate() {
        let co = i / (oh * ow) % s.c_out;
        *o = (a + b[co] as f64) as f32;
    }
}

/// Gradients of [`forward`] given `dy` `[N, C_out, out_h, out_w]`: overwrites `dw`
/// `[C_in, C_out, KH, KW]`, `db` `[C_out]` and, when given, `dx` `[N, C_in, H, W]`.
pub fn backward(
    dx: Option<&mut [f32]>,
    dw: &mut [f32],
    db: &mut [f32],
    dy: &[f32],
    x: &[f32],
    w: &[f32],
    s: ConvTranspose2dShape,
) {
    let (oh, ow) = (s.out_h(), s.out_w());
    let (kh, kw) = (s.kernel_h, s.kernel_w);
    assert_eq!(dy.len(), s.n * s.c_out * oh * ow);
    assert_eq!(x.len(), s.n * s.c_in * s.h_in * s.w_in);
    assert_eq!(w.len(), s.weight_len());
    assert_eq!(dw.len(), s.weight_len());
    assert_eq!(db.len(), s.c_out);
    let mut gx = vec![0.0f64; x.len()];
    let mut gw = vec![0.0f64; w.len()];
    for n in 0..s.n {
        for ci in 0..s.c_in {
            for iy in 0..s.h_in {
                for ix in 0..s.w_in {
                    let xi = ((n * s.c_in + ci) * s.h_in + iy) * s.w_in + ix;
                    for co in 0..s.c_out {
                        for ky in 0..kh {
                            let Some(oy) = tap(iy, ky, s, oh) else {
                                continue;
                            };
                            for kx in 0..kw {
                                let Some(ox) = tap(ix, kx, s, ow) else {
                                    continue;
                                };
                                let wi = ((ci * s.c_out + co) * kh + ky) * kw + kx;
                                let g = dy[((n * s.c_out + co) * oh + oy) * ow + ox] as f64;
                                gx[xi] += g * w[wi] as f64;
                                gw[wi] += g * x[xi] as f64;
                            }
                        }
                    }
                }
            }
        }
    }
    let mut gb = vec![0.0f64; s.c_out];
    for (i, g) in dy.iter().enumerate() {
        gb[i / (oh * ow) % s.c_out] += *g as f64;
    }
    for (d, g) in dw.iter_mut().zip(&gw) {
        *d = *g as f32;
    }
    for (d, g) in db.iter_mut().zip(&gb) {
        *d = *g as f32;
    }
    if let Some(dx) = dx {
        assert_eq!(dx.len(), x.len());
        for (d, g) in dx.iter_mut().zip(&gx) {
            *d = *g as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::fd::{check_gradient, dot, values};

    #[allow(clippy::too_many_arguments)]
    fn shape(
        n: usize,
        c_in: usize,
        h_in: usize,
        w_in: usize,
        c_out: usize,
        kernel_h: usize,
        kernel_w: usize,
        stride: usize,
        padding: usize,
        output_padding: usize,
    ) -> ConvTranspose2dShape {
        ConvTranspose2dShape {
            n,
            c_in,
            h_in,
            w_in,
            c_out,
            kernel_h,
            kernel_w,
            stride,
            padding,
            output_padding,
        }
    }

    fn check(s: ConvTranspose2dShape, seed: u64) {
        let (oh, ow) = (s.out_h(), s.out_w());
        let x = values(seed, s.n * s.c_in * s.h_in * s.w_in, -1.0, 1.0);
        let w = values(seed + 1, s.weight_len(), -1.0, 1.0);
        let b = values(seed + 2, s.c_out, -1.0, 1.0);
        let r = values(seed + 3, s.n * s.c_out * oh * ow, -1.0, 1.0);
        let loss = |x: &[f32], w: &[f32], b: &[f32]| {
            let mut y = vec![0.0; r.len()];
            forward(&mut y, x, w, b, s);
            dot(&y, &r)
        };
        let mut dx = vec![0.0; x.len()];
        let mut dw = vec![0.0; w.len()];
        let mut db = vec![0.0; b.len()];
        backward(Some(&mut dx), &mut dw, &mut db, &r, &x, &w, s);
        check_gradient(
            "conv_transpose2d dx",
            &x,
            &dx,
            |v| loss(v, &w, &b),
            1e-2,
            1e-3,
        );
        check_gradient(
            "conv_transpose2d dw",
            &w,
            &dw,
            |v| loss(&x, v, &b),
            1e-2,
            1e-3,
        );
        check_gradient(
            "conv_transpose2d db",
            &b,
            &db,
            |v| loss(&x, &w, v),
            1e-2,
            1e-3,
        );
        let (mut dw2, mut db2) = (vec![0.0; w.len()], vec![0.0; b.len()]);
        backward(None, &mut dw2, &mut db2, &r, &x, &w, s);
        assert_eq!((dw2, db2), (dw, db));
    }

    #[test]
    fn gradients_match_finite_differences() {
        check(shape(2, 2, 3, 4, 3, 3, 3, 1, 1, 0), 1);
        check(shape(1, 3, 3, 2, 2, 3, 3, 2, 1, 1), 11);
        check(shape(2, 2, 2, 3, 2, 2, 3, 3, 1, 1), 21);
    }

    /// The two references are written independently; ConvTranspose2d forward must equal
    /// Conv2d's input gradient for the same weight (PyTorch's definition).
    #[test]
    fn forward_is_conv2d_input_gradient() {
        use crate::reference::conv2d;
        use crate::shapes::Conv2dShape;
        let t = shape(2, 3, 4, 5, 2, 3, 2, 2, 1, 1);
        let c = Conv2dShape {
            n: t.n,
            c_in: t.c_out,
            h_in: t.out_h(),
            w_in: t.out_w(),
            c_out: t.c_in,
            kernel_h: t.kernel_h,
            kernel_w: t.kernel_w,
            stride: t.stride,
            padding: t.padding,
        };
        assert_eq!((c.out_h(), c.out_w()), (t.h_in, t.w_in));
        let x = values(5, t.n * t.c_in * t.h_in * t.w_in, -1.0, 1.0);
        let w = values(6, t.weight_len(), -1.0, 1.0);
        let mut y = vec![0.0; t.n * t.c_out * t.out_h() * t.out_w()];
        forward(&mut y, &x, &w, &vec![0.0; t.c_out], t);
        let conv_x = vec![0.0; y.len()];
        let mut dx = vec![0.0; y.len()];
        let (mut dw, mut db) = (vec![0.0; w.len()], vec![0.0; t.c_in]);
        conv2d::backward(Some(&mut dx), &mut dw, &mut db, &x, &conv_x, &w, c);
        for (a, b) in y.iter().zip(&dx) {
            assert!((a - b).abs() <= 1e-5, "{a} vs {b}");
        }
    }

    #[test]
    fn forward_known_values() {
        // One input pixel per position, 2×2 kernel, stride 2: each pixel paints its own block;
        // output padding adds a bias-only row and column.
        let s = shape(1, 1, 2, 2, 1, 2, 2, 2, 0, 1);
        assert_eq!((s.out_h(), s.out_w()), (5, 5));
        let mut y = vec![0.0; 25];
        forward(
            &mut y,
            &[1.0, 2.0, 3.0, 4.0],
            &[1.0, 10.0, 100.0, 1000.0],
            &[0.5],
            s,
        );
        let row = |r: usize| y[r * 5..r * 5 + 5].to_vec();
        assert_eq!(row(0), vec![1.5, 10.5, 2.5, 20.5, 0.5]);
        assert_eq!(row(1), vec![100.5, 1000.5, 200.5, 2000.5, 0.5]);
        assert_eq!(row(2), vec![3.5, 30.5, 4.5, 40.5, 0.5]);
        assert_eq!(row(4), vec![0.5; 5]);
    }
}
