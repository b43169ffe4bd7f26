//! Two-dimensional views of latent codes for scatter plots: a code of more than two dimensions
//! is shown on its first two principal components (the plane of largest variance), found by
//! power iteration on the covariance matrix with deflation.

/// Points in the plane of a scatter plot, with what its axes are.
pub struct Plane {
    /// One per code.
    pub points: Vec<[f32; 2]>,
    /// The axis names ("z0", "z1", or "PC1 (31% of variance)", …).
    pub axes: [String; 2],
}

/// Power iterations per component: plenty for a picture (the plane converges geometrically
/// with the ratio of the third to the second eigenvalue, and a near-tie leaves a plane that is
/// as good to look at).
const ITERATIONS: usize = 500;

/// Projects `codes` `[n, dim]` (row-major) onto a plane: the codes themselves when `dim` ≤ 2
/// (the second coordinate 0 when `dim` is 1), else their first two principal components
/// around the mean. Each component's sign makes its largest loading positive, so the picture
/// does not depend on the iteration's start.
pub fn principal_plane(codes: &[f32], dim: usize) -> Plane {
    let n = codes.len().checked_div(dim).unwrap_or(0);
    if dim <= 2 || n < 2 {
        let second = if dim > 1 { "z1" } else { "0" };
        return Plane {
            points: codes
                .chunks(dim.max(1))
                .map(|z| [z[0], z.get(1).copied().unwrap_or(0.0)])
                .collect(),
            axes: ["z0".into(), second.into()],
        };
    }
    // [dim] mean and [dim, dim] covariance of the finite codes, in f64.
    let rows: Vec<&[f32]> = codes
        .chunks(dim)
        .filter(|z| z.iter().all(|v| v.is_finite()))
        .collect();
    let count = rows.len().max(1) as f64;
    let mut mean = vec![0.0f64; dim];
    for z in &rows {
        for (m, &v) in mean.iter_mut().zip(z.iter()) {
            *m += v as f64 / count;
        }
    }
    let mut cov = vec![0.0f64; dim * dim];
    let mut centred = vec![0.0f64; dim];
    for z in &rows {
        for (c, (&v, m)) in centred.iter_mut().zip(z.iter().zip(&mean)) {
            *c = v as f64 - m;
        }
        for (i, &ci) in centred.iter().enumerate() {
            for (j, &cj) in centred.iter().enumerate() {
                cov[i * dim + j] += ci * cj / count;
            }
        }
    }
    let total: f64 = (0..dim).map(|i| cov[i * dim + i]).sum();
    let mut component = |k: usize| {
        let (v, lambda) = leading_eigenvector(&cov, dim);
        // Deflate: remove this component so that the next call finds the one after it.
        for i in 0..dim {
            for j in 0..dim {
                cov[i * dim + j] -= lambda * v[i] * v[j];
            }
        }
        let share = if total > 0.0 { lambda / total } else { 0.0 };
        (
            v,
            format!("PC{} ({:.0}% of variance)", k + 1, 100.0 * share),
        )
    };
    let [(first, x_name), (second, y_name)] = [component(0), component(1)];
    let points = codes
        .chunks(dim)
        .map(|z| {
            let along = |v: &[f64]| -> f32 {
                z.iter()
                    .zip(&mean)
                    .zip(v)
                    .map(|((&x, m), w)| (x as f64 - m) * w)
                    .sum::<f64>() as f32
            };
            [along(&first), along(&second)]
        })
        .collect();
    Plane {
        points,
        axes: [x_name, y_name],
    }
}

/// The unit eigenvector of the symmetric positive semi-definite `m` `[dim, dim]` with the largest
/// eigenvalue, and that eigenvalue; the zero vector's place is taken by the first axis.
fn leading_eigenvector(m: &[f64], dim: usize) -> (Vec<f64>, f64) {
    // A start with a share of every axis (a start orthogonal to the answer would stay so).
    let mut v: Vec<f64> = (0..dim).map(|i| 1.0 + i as f64 / dim as f64).collect();
    normalise(&mut v);
    let mut next = vec![0.0f64; dim];
    for _ in 0..ITERATIONS {
        times(m, &v, &mut next);
        if !normalise(&mut next) {
            next.iter_mut()
                .enumerate()
                .for_each(|(i, x)| *x = f64::from(i == 0));
            return (next, 0.0);
        }
        std::mem::swap(&mut v, &mut next);
    }
    times(m, &v, &mut next);
    let lambda: f64 = v.iter().zip(&next).map(|(a, b)| a * b).sum();
    let largest = v
        .iter()
        .copied()
        .fold(0.0f64, |a, x| if x.abs() > a.abs() { x } else { a });
    if largest < 0.0 {
        v.iter_mut().for_each(|x| *x = -*x);
    }
    (v, lambda.max(0.0))
}

/// `out = m v` for the square `m` `[dim, dim]`.
fn times(m: &[f64], v: &[f64], out: &mut [f64]) {
    for (row, o) in m.chunks(v.len()).zip(out.iter_mut()) {
        *o = row.iter().zip(v).map(|(a, b)| a * b).sum();
    }
}

/// Scales `v` to unit length; false when it is (numerically) zero.
fn normalise(v: &mut [f64]) -> bool {
    let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
    if norm < 1e-300 || !norm.is_finite() {
        return false;
    }
    v.iter_mut().for_each(|x| *x /= norm);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Codes in 5-D whose variance lies along two known orthogonal directions (uniform, of
    /// variances 3 and 1/3, plus a little noise on every axis): the plane recovers both
    /// coordinates, in order, up to the sign convention, and the axes give their variance share.
    #[test]
    fn the_plane_is_the_directions_of_largest_variance() {
        let dim = 5;
        let s = 0.5f64.sqrt();
        let first = [s, 0.0, -s, 0.0, 0.0];
        let second = [0.0, 0.6, 0.0, 0.0, 0.8];
        let mut state = 12345u64;
        let mut uniform = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 11) as f64 / (1u64 << 53) as f64 - 0.5
        };
        let n = 4000;
        let mut codes = Vec::with_capacity(n * dim);
        let mut truth = Vec::with_capacity(n);
        for _ in 0..n {
            let (a, b) = (6.0 * uniform(), 2.0 * uniform());
            truth.push([a, b]);
            for i in 0..dim {
                codes.push((7.0 + a * first[i] + b * second[i] + 0.2 * uniform()) as f32);
            }
        }
        let plane = principal_plane(&codes, dim);
        for (axis, want) in [(0usize, 3.0f64.sqrt()), (1, (1.0f64 / 3.0).sqrt())] {
            let corr = {
                let x: Vec<f64> = plane.points.iter().map(|p| p[axis] as f64).collect();
                let y: Vec<f64> = truth.iter().map(|t| t[axis]).collect();
                let (mx, my) = (
                    x.iter().sum::<f64>() / n as f64,
                    y.iter().sum::<f64>() / n as f64,
                );
                let sxy: f64 = x.iter().zip(&y).map(|(a, b)| (a - mx) * (b - my)).sum();
                let sxx: f64 = x.iter().map(|a| (a - mx).powi(2)).sum();
                let syy: f64 = y.iter().map(|b| (b - my).powi(2)).sum();
                sxy / (sxx * syy).sqrt()
            };
            assert!(corr.abs() > 0.99, "axis {axis}: correlation {corr}");
            let std = (plane
                .points
                .iter()
                .map(|p| (p[axis] as f64).powi(2))
                .sum::<f64>()
                / n as f64)
                .sqrt();
            assert!((std - want).abs() < 0.1 * want, "axis {axis}: std {std}");
        }
        // Variances 3 and 1/3 (of 6·U and 2·U) and 5 × 0.2²/12 of noise: 89.6% and 10.0%.
        let share = |axis: &str, name: &str| -> f64 {
            let rest = axis.strip_prefix(name).expect(axis);
            rest.trim_start_matches(" (")
                .trim_end_matches("% of variance)")
                .parse()
                .expect(axis)
        };
        assert!(
            (share(&plane.axes[0], "PC1") - 89.6).abs() <= 1.5,
            "{:?}",
            plane.axes
        );
        assert!(
            (share(&plane.axes[1], "PC2") - 10.0).abs() <= 1.5,
            "{:?}",
            plane.axes
        );
    }

    #[test]
    fn codes_of_two_or_fewer_dimensions_are_shown_as_they_are() {
        let plane = principal_plane(&[1.0, 2.0, 3.0, 4.0], 2);
        assert_eq!(plane.points, vec![[1.0, 2.0], [3.0, 4.0]]);
        assert_eq!(plane.axes, ["z0".to_string(), "z1".to_string()]);
        let plane = principal_plane(&[5.0, 6.0], 1);
        assert_eq!(plane.points, vec![[5.0, 0.0], [6.0, 0.0]]);
        assert_eq!(plane.axes[1], "0");
    }
}
