//! CPU reference for `shaders/residual.wgsl`: a residual block's skip connection,
//! `y = act(x + r)`, and the sum of the two gradients that reach the block input.

use crate::reference::activation;
use crate::shapes::Activation;

/// `y = act(x + r)` element-wise.
pub fn add_act(y: &mut [f32], x: &[f32], r: &[f32], act: Activation) {
    let sum: Vec<f32> = x.iter().zip(r).map(|(a, b)| a + b).collect();
    activation::forward(y, &sum, act);
}

/// `dx = a + b`, or with `act`, `act'(x)·(a + b)` through `x`, that activation's output.
pub fn add_grads(dx: &mut [f32], a: &[f32], b: &[f32], x: &[f32], act: Option<Activation>) {
    let sum: Vec<f32> = a.iter().zip(b).map(|(a, b)| a + b).collect();
    match act {
        Some(act) => activation::backward(dx, &sum, x, act),
        None => dx.copy_from_slice(&sum),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::fd::{check_gradient, dot, values};

    /// The gradient of `Σ w·act(x + r)` w.r.t. x (and r: the same) is what
    /// `add_grads(activation::backward(w))` gives, for a skip whose branch contributes nothing.
    #[test]
    fn the_skip_path_matches_finite_differences() {
        let n = 40;
        let x: Vec<f32> = values(1, n, -2.0, 2.0)
            .into_iter()
            .map(|v| v + 0.1f32.copysign(v))
            .collect();
        let r = values(3, n, -0.05, 0.05);
        let w = values(2, n, -1.0, 1.0);
        for act in [Activation::Relu, Activation::LeakyRelu(0.2)] {
            let mut y = vec![0.0; n];
            add_act(&mut y, &x, &r, act);
            let mut g = vec![0.0; n];
            activation::backward(&mut g, &w, &y, act);
            let mut dx = vec![0.0; n];
            add_grads(&mut dx, &g, &vec![0.0; n], &x, None);
            let loss = |x: &[f32]| {
                let mut y = vec![0.0; n];
                add_act(&mut y, x, &r, act);
                dot(&y, &w)
            };
            check_gradient(&format!("residual {act:?}"), &x, &dx, loss, 1e-3, 1e-3);
        }
    }
}
