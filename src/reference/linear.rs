//! CPU reference for `shaders/linear.wgsl`: `nn.Linear` forward and backward, weight `[O, I]`.

use crate::shapes::LinearShape;

/// `y[N, O] = x[N, I] · W[O, I]ᵀ + b[O]`.
pub fn forward(y: &mut [f32], x: &[f32], w: &[f32], b: &[f32], s: LinearShape) {
    let (i_n, o_n) = (s.in_features, s.out_features);
    for n in 0..s.n {
        let xr = &x[n * i_n..(n + 1) * i_n];
        for o in 0..o_n {
            let wr = &w[o * i_n..(o + 1) * i_n];
            let dot: f64 = xr.iter().zip(wr).map(|(&a, &c)| a as f64 * c as f64).sum();
            y[n * o_n + o] = (dot + b[o] as f64) as f32;
        }
    }
}

/// dW `[O, I]` = dyᵀ · x, db `[O]` = Σ_n dy, and dx `[N, I]` = dy · W when `dx` is `Some`
/// (all overwritten).
pub fn backward(
    dx: Option<&mut [f32]>,
    dw: &mut [f32],
    db: &mut [f32],
    dy: &[f32],
    x: &[f32],
    w: &[f32],
    s: LinearShape,
) {
    let (i_n, o_n) = (s.in_features, s.out_features);
    for o in 0..o_n {
        for i in 0..i_n {
            let acc: f64 = (0..s.n)
                .map(|n| dy[n * o_n + o] as f64 * x[n * i_n + i] as f64)
                .sum();
            dw[o * i_n + i] = acc as f32;
        }
        db[o] = (0..s.n).map(|n| dy[n * o_n + o] as f64).sum::<f64>() as f32;
    }
    if let Some(dx) = dx {
        for n in 0..s.n {
            for i in 0..i_n {
                let acc: f64 = (0..o_n)
                    .map(|o| dy[n * o_n + o] as f64 * w[o * i_n + i] as f64)
                    .sum();
                dx[n * i_n + i] = acc as f32;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::fd::{check_gradient, dot, values};

    const S: LinearShape = LinearShape {
        n: 3,
        in_features: 4,
        out_features: 5,
    };

    #[test]
    fn backward_matches_finite_differences() {
        let x = values(1, S.n * S.in_features, -1.0, 1.0);
        let w = values(2, S.out_features * S.in_features, -1.0, 1.0);
        let b = values(3, S.out_features, -1.0, 1.0);
        let r = values(4, S.n * S.out_features, -1.0, 1.0);
        let loss = |x: &[f32], w: &[f32], b: &[f32]| {
            let mut y = vec![0.0; S.n * S.out_features];
            forward(&mut y, x, w, b, S);
            dot(&y, &r)
        };
        let mut dx = vec![f32::NAN; x.len()];
        let mut dw = vec![f32::NAN; w.len()];
        let mut db = vec![f32::NAN; b.len()];
        backward(Some(&mut dx), &mut dw, &mut db, &r, &x, &w, S);
        check_gradient("dx", &x, &dx, |v| loss(v, &w, &b), 1e-2, 1e-3);
        check_gradient("dw", &w, &dw, |v| loss(&x, v, &b), 1e-2, 1e-3);
        check_gradient("db", &b, &db, |v| loss(&x, &w, v), 1e-2, 1e-3);
    }

    #[test]
    fn backward_without_dx_gives_the_same_parameter_gradients() {
        let x = values(5, S.n * S.in_features, -1.0, 1.0);
        let w = values(6, S.out_features * S.in_features, -1.0, 1.0);
        let dy = values(7, S.n * S.out_features, -1.0, 1.0);
        let (mut dw, mut db) = (vec![0.0; w.len()], vec![0.0; S.out_features]);
        let mut dx = vec![0.0; x.len()];
        backward(Some(&mut dx), &mut dw, &mut db, &dy, &x, &w, S);
        let (mut dw2, mut db2) = (vec![1.0; w.len()], vec![1.0; S.out_features]);
        backward(None, &mut dw2, &mut db2, &dy, &x, &w, S);
        assert_eq!((dw, db), (dw2, db2));
    }
}
