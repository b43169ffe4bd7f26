// Activation functions, prepended to every shader that applies one: the element-wise
// activation kernels, and the GEMM epilogues that fuse an activation into a layer's forward
// pass (y = act(acc + bias)) or its derivative into the input-gradient product of the next
// layer (dx = acc · act'(·)). Codes (`Activation::code` in src/shapes.rs): 0 none, 1 ReLU,
// 2 LeakyReLU(slope > 0), 3 sigmoid, 4 tanh. Derivatives are written through the forward
// OUTPUT y, so the pre-activation need not be kept.

const ACT_NONE: u32 = 0u;

fn act_forward(kind: u32, slope: f32, x: f32) -> f32 {
    switch kind {
        case 1u: {
            return max(x, 0.0);
        }
        case 2u: {
            return select(slope * x, x, x > 0.0);
        }
        case 3u: {
            // 1 / (1 + e^-x) without overflow: e = e^-|x| ∈ (0, 1].
            let e = exp(-abs(x));
            let s = 1.0 / (1.0 + e);
            return select(e * s, s, x >= 0.0);
        }
        case 4u: {
            // tanh(±15) is ±1 in f32; the clamp keeps exp-based tanh from giving inf/inf.
            return tanh(clamp(x, -15.0, 15.0));
        }
        default: {
            return x;
        }
    }
}

// g · act'(x), expressed through y = act(x).
fn act_backward(kind: u32, slope: f32, y: f32, g: f32) -> f32 {
    switch kind {
        case 1u: {
            return select(0.0, g, y > 0.0);
        }
        case 2u: {
            return select(slope * g, g, y > 0.0);
        }
        case 3u: {
            return g * y * (1.0 - y);
        }
        case 4u: {
            return g * (1.0 - y * y);
        }
        default: {
            return g;
        }
    }
}
