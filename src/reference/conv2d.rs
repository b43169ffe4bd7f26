//! CPU reference for `nn.Conv2d` (`kernels::conv2d`): direct loops over every output element
//! and kernel tap, accumulated in f64.

use crate::shapes::Conv2dShape;

/// Input index `o·stride − padding + k` if it lies in `[0, size)`.
fn tap(o: usize, k: usize, s: Conv2dShape, size: usize) -> Option<usize> {
    (o * s.stride + k)
        .checked_sub(s.padding)
        .filter(|&i| i < size)
}

/// `y[n, oc, oy, ox] = b[oc] + Σ_{ic, ky, kx} W[oc, ic, ky, kx] · x[n, ic, oy·s − p + ky, ox·s − p + kx]`
/// with x `[N, C_in, H, W]`, W `[C_out, C_in, KH, KW]`, y `[N, C_out, out_h, out_w]`.
pub fn forward(y: &mut [f32], x: &[f32], w: &[f32], b: &[f32], s: Conv2dShape) {
    let (oh, ow) = (s.out_h(), s.out_w());
    let (kh, kw) = (s.kernel_h, s.kernel_w);
    assert_eq!(x.len(), s.n * s.c_in * s.h_in * s.w_in);
    assert_eq!(w.len(), s.weight_len());
    assert_eq!(y.len(), s.n * s.c_out * oh * ow);
    for n in 0..s.n {
        for oc in 0..s.c_out {
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut acc = b[oc] as f64;
                    for ic in 0..s.c_in {
                        for ky in 0..kh {
                            let Some(iy) = tap(oy, ky, s, s.h_in) else {
                                continue;
                            };
                            for kx in 0..kw {
                                let Some(ix) = tap(ox, kx, s, s.w_in) else {
                                    continue;
                                };
                                let wv = w[((oc * s.c_in + ic) * kh + ky) * kw + kx];
                                let xv = x[((n * s.c_in + ic) * s.h_in + iy) * s.w_in + ix];
                                acc += wv as f64 * xv as f64;
                            }
                        }
                    }
                    y[((n * s.c_out + oc) * oh + oy) * ow + ox] = acc as f32;
                }
            }
        }
    }
}

/// Gradients of [`forward`] given `dy` `[N, C_out, out_h, out_w]`: overwrites `dw`
/// `[C_out, C_in, KH, KW]`, `db` `[C_out]` and, when given, `dx` `[N, C_in, H, W]`.
pub fn backward(
    dx: Option<&mut [f32]>,
    dw: &mut [f32],
    db: &mut [f32],
    dy: &[f32],
    x: &[f32],
    w: &[f32],
    s: Conv2dShape,
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
    let mut gb = vec![0.0f64; s.c_out];
    for n in 0..s.n {
        for oc in 0..s.c_out {
            for oy in 0..oh {
                for ox in 0..ow {
                    let g = dy[((n * s.c_out + oc) * oh + oy) * ow + ox] as f64;
                    gb[oc] += g;
                    for ic in 0..s.c_in {
                        for ky in 0..kh {
                            let Some(iy) = tap(oy, ky, s, s.h_in) else {
                                continue;
                            };
                            for kx in 0..kw {
                                let Some(ix) = tap(ox, kx, s, s.w_in) else {
                                    continue;
                                };
                                let wi = ((oc * s.c_in + ic) * kh + ky) * kw + kx;
                                let xi = ((n * s.c_in + ic) * s.h_in + iy) * s.w_in + ix;
                                gw[wi] += g * x[xi] as f64;
                                gx[xi] += g * w[wi] as f64;
                            }
                        }
                    }
                }
            }
        }
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

    fn check(s: Conv2dShape, seed: u64) {
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
        check_gradient("conv2d dx", &x, &dx, |v| loss(v, &w, &b), 1e-2, 1e-3);
        check_gradient("conv2d dw", &w, &dw, |v| loss(&x, v, &b), 1e-2, 1e-3);
        check_gradient("conv2d db", &b, &db, |v| loss(&x, &w, v), 1e-2, 1e-3);
        // Without dx the weight and bias gradients are unchanged.
        let (mut dw2, mut db2) = (vec![0.0; w.len()], vec![0.0; b.len()]);
        backward(None, &mut dw2, &mut db2, &r, &x, &w, s);
        assert_eq!((dw2, db2), (dw, db));
    }

    #[test]
    fn gradients_match_finite_differences() {
        let shape = |n, c_in, h_in, w_in, c_out, kernel_h, kernel_w, stride, padding| Conv2dShape {
            n,
            c_in,
            h_in,
            w_in,
            c_out,
            kernel_h,
            kernel_w,
            stride,
            padding,
        };
        check(shape(2, 2, 5, 4, 3, 3, 3, 1, 1), 1);
        check(shape(1, 3, 6, 5, 2, 3, 2, 2, 1), 11);
        check(shape(2, 1, 7, 7, 2, 2, 3, 3, 2), 21);
    }

    #[test]
    fn forward_known_values() {
        // 1 channel 3×3 input, 2×2 kernel of ones, stride 1, no padding: 2×2 window sums.
        let s = Conv2dShape {
            n: 1,
            c_in: 1,
            h_in: 3,
            w_in: 3,
            c_out: 1,
            kernel_h: 2,
            kernel_w: 2,
            stride: 1,
            padding: 0,
        };
        let x: Vec<f32> = (1..=9).map(|v| v as f32).collect();
        let mut y = vec![0.0; 4];
        forward(&mut y, &x, &[1.0; 4], &[0.5], s);
        assert_eq!(y, vec![12.5, 16.5, 24.5, 28.5]);
    }
}
