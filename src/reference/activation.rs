//! CPU reference for `shaders/activation.wgsl`: element-wise activations and their backward
//! pass written in terms of the forward output.

use crate::shapes::Activation;

/// `y = act(x)` element-wise.
pub fn forward(y: &mut [f32], x: &[f32], act: Activation) {
    assert_eq!(y.len(), x.len());
    for (y, &x) in y.iter_mut().zip(x) {
        *y = match act {
            Activation::Relu => x.max(0.0),
            Activation::LeakyRelu(slope) => {
                if x > 0.0 {
                    x
                } else {
                    slope * x
                }
            }
            Activation::Sigmoid => 1.0 / (1.0 + (-x).exp()),
            Activation::Tanh => x.tanh(),
        };
    }
}

/// `dx = dy · act'(x)`, with `act'` expressed through the forward output `y`
/// (LeakyRelu needs slope > 0 so that the sign of `y` is the sign of `x`).
pub fn backward(dx: &mut [f32], dy: &[f32], y: &[f32], act: Activation) {
    assert!(dx.len() == dy.len() && dx.len() == y.len());
    for ((dx, &g), &y) in dx.iter_mut().zip(dy).zip(y) {
        *dx = match act {
            Activation::Relu => {
                if y > 0.0 {
                    g
                } else {
                    0.0
                }
            }
            Activation::LeakyRelu(slope) => {
                if y > 0.0 {
                    g
                } else {
                    slope * g
                }
            }
            Activation::Sigmoid => g * y * (1.0 - y),
            Activation::Tanh => g * (1.0 - y * y),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::fd::{check_gradient, dot, values};

    #[test]
    fn backward_matches_finite_differences() {
        let acts = [
            Activation::Relu,
            Activation::LeakyRelu(0.1),
            Activation::Sigmoid,
            Activation::Tanh,
        ];
        // Keep inputs away from ReLU's kink at 0 so that central differences are exact there.
        let x: Vec<f32> = values(1, 24, -3.0, 3.0)
            .into_iter()
            .map(|v| v + 0.1f32.copysign(v))
            .collect();
        let r = values(2, 24, -1.0, 1.0);
        for act in acts {
            let mut y = vec![0.0; x.len()];
            forward(&mut y, &x, act);
            let mut dx = vec![0.0; x.len()];
            backward(&mut dx, &r, &y, act);
            let loss = |x: &[f32]| {
                let mut y = vec![0.0; x.len()];
                forward(&mut y, x, act);
                dot(&y, &r)
            };
            check_gradient(&format!("{act:?}"), &x, &dx, loss, 1e-3, 1e-3);
        }
    }
}
