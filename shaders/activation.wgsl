// Element-wise activations over a flat tensor of `numel` elements (any shape, e.g. the
// [N, C, H, W] output of a convolution): forward y = act(x), and backward dx = dy · act'(x)
// written in terms of the forward OUTPUT y, so the pre-activation need not be kept.
// kind: 0 ReLU, 1 LeakyReLU(slope > 0), 2 sigmoid, 3 tanh. Each invocation handles PER
// elements spaced `threads` apart, so neighbouring invocations touch neighbouring words.

struct Params {
    numel: u32,    // elements
    threads: u32,  // invocations with work: ceil(numel / PER)
    kind: u32,     // activation, see above
    slope: f32,    // LeakyReLU negative slope
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;        // forward: x; backward: y
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;  // forward: y; backward: dx
@group(0) @binding(3) var<storage, read> dy: array<f32>;         // backward only

const WG: u32 = 256u;
const PER: u32 = 4u;

fn act(x: f32) -> f32 {
    switch p.kind {
        case 0u: {
            return max(x, 0.0);
        }
        case 1u: {
            return select(p.slope * x, x, x > 0.0);
        }
        case 2u: {
            // 1 / (1 + e^-x) without overflow: e = e^-|x| ∈ (0, 1].
            let e = exp(-abs(x));
            let s = 1.0 / (1.0 + e);
            return select(e * s, s, x >= 0.0);
        }
        default: {
            // tanh(±15) is ±1 in f32; the clamp keeps exp-based tanh from giving inf/inf.
            return tanh(clamp(x, -15.0, 15.0));
        }
    }
}

// act'(x) · g expressed through y = act(x).
fn act_grad(y: f32, g: f32) -> f32 {
    switch p.kind {
        case 0u: {
            return select(0.0, g, y > 0.0);
        }
        case 1u: {
            return select(p.slope * g, g, y > 0.0);
        }
        case 2u: {
            return g * y * (1.0 - y);
        }
        default: {
            return g * (1.0 - y * y);
        }
    }
}

// dst = act(src)  (y = act(x))
@compute @workgroup_size(WG)
fn forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = gid.x + gid.y * nwg.x * WG;
    if (t >= p.threads) {
        return;
    }
    for (var k = 0u; k < PER; k = k + 1u) {
        let i = t + k * p.threads;
        if (i < p.numel) {
            dst[i] = act(src[i]);
        }
    }
}

// dst = dy · act'(·) from src = y  (dx from dy and the forward output)
@compute @workgroup_size(WG)
fn backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = gid.x + gid.y * nwg.x * WG;
    if (t >= p.threads) {
        return;
    }
    for (var k = 0u; k < PER; k = k + 1u) {
        let i = t + k * p.threads;
        if (i < p.numel) {
            dst[i] = act_grad(src[i], dy[i]);
        }
    }
}
