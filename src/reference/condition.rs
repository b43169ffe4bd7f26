//! CPU twins of `kernels::condition`: the batch's labels by the epoch's order, the one-hot
//! label appended to each row, and the gradient without the label columns.

use crate::reference::activation;
use crate::shapes::Activation;

/// `batch_labels[b] = labels[perm[state[1]·batch_size + b]]` for `b < n`.
pub fn gather_labels(
    batch_labels: &mut [u32],
    labels: &[u32],
    perm: &[u32],
    state: &[u32],
    batch_size: usize,
    n: usize,
) {
    for (b, out) in batch_labels[..n].iter_mut().enumerate() {
        *out = labels[perm[state[1] as usize * batch_size + b] as usize];
    }
}

/// `y [n, A+K]` = `x [n, A]` with the one-hot of `batch_labels[b]` appended to row b (a zero
/// block for a label ≥ K).
pub fn concat_onehot(
    y: &mut [f32],
    x: &[f32],
    batch_labels: &[u32],
    n: usize,
    width: usize,
    classes: usize,
) {
    let row = width + classes;
    for b in 0..n {
        let out = &mut y[b * row..(b + 1) * row];
        out[..width].copy_from_slice(&x[b * width..(b + 1) * width]);
        for (k, v) in out[width..].iter_mut().enumerate() {
            *v = if k as u32 == batch_labels[b] {
                1.0
            } else {
                0.0
            };
        }
    }
}

/// `dx [n, A]`: the first A columns of `dy`, given as `splits` slices `[splits, n, A+K]` to add
/// up; with `act`, times its derivative at `x` (`[n, A]`, that activation's output).
pub fn take_columns(
    dx: &mut [f32],
    dy: &[f32],
    act: Option<(Activation, &[f32])>,
    splits: usize,
    n: usize,
    width: usize,
    classes: usize,
) {
    let row = width + classes;
    let mut sum = vec![0.0; n * width];
    for b in 0..n {
        for j in 0..width {
            sum[b * width + j] = (0..splits).map(|s| dy[s * n * row + b * row + j]).sum();
        }
    }
    match act {
        Some((act, x)) => activation::backward(&mut dx[..n * width], &sum, &x[..n * width], act),
        None => dx[..n * width].copy_from_slice(&sum),
    }
}
