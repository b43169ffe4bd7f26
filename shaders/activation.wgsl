// Element-wise activations over a flat tensor of `numel` elements (any shape, e.g. the
// [N, C, H, W] output of a convolution): forward y = act(x), and backward dx = dy · act'(x)
// written in terms of the forward OUTPUT y, so the pre-activation need not be kept. The
// functions and their codes are in shaders/act.wgsl, prepended to this file. Layers followed by
// an activation fuse it into their own kernels; these entry points serve the rest (an
// activation after pooling, the sigmoid of pictures). Each invocation handles PER elements
// spaced `threads` apart, so neighbouring invocations touch neighbouring words.

struct Params {
    numel: u32,    // elements
    threads: u32,  // invocations with work: ceil(numel / PER)
    kind: u32,     // activation code (shaders/act.wgsl)
    slope: f32,    // LeakyReLU negative slope
}

@group(0) @binding(0) var<uniform> p: Params;
// Element types `*_t` are f32 or f16, per dispatch (src/gpu: Shader); the arithmetic is f32.
@group(0) @binding(1) var<storage, read> src: array<src_t>;        // forward: x; backward: y
@group(0) @binding(2) var<storage, read_write> dst: array<dst_t>;  // forward: y; backward: dx
@group(0) @binding(3) var<storage, read> dy: array<dy_t>;          // backward only

const WG: u32 = 256u;
const PER: u32 = 4u;

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
            dst[i] = dst_t(act_forward(p.kind, p.slope, f32(src[i])));
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
            dst[i] = dst_t(act_backward(p.kind, p.slope, f32(src[i]), f32(dy[i])));
        }
    }
}
