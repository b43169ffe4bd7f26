// The skip connection of a residual block, element-wise over any shape: forward
// y = act(x + r) (the block input plus its branch's output), and in the backward pass the sum
// of the two gradients that reach the block input (through the branch and through the skip),
// dx = act'(x)·(a + b), where act' is the derivative of the activation that produced x (code
// 0: none), written through x, that activation's output (shaders/act.wgsl is prepended).
// Each invocation handles PER elements spaced `threads` apart (coalesced).

struct Params {
    numel: u32,    // elements
    threads: u32,  // invocations with work: ceil(numel / PER)
    kind: u32,     // forward: the activation after the sum; backward: act' applied (0: none)
    slope: f32,    // LeakyReLU negative slope
}

@group(0) @binding(0) var<uniform> p: Params;
// Element types `*_t` are f32 or f16, per dispatch (src/gpu: Shader); the arithmetic is f32.
@group(0) @binding(1) var<storage, read> a: array<a_t>;            // forward: x; backward: dx through the branch
@group(0) @binding(2) var<storage, read> b: array<b_t>;            // forward: r; backward: dx through the skip
@group(0) @binding(3) var<storage, read_write> dst: array<dst_t>;  // forward: y; backward: dx
@group(0) @binding(4) var<storage, read> act_x: array<act_x_t>;    // backward: x (for act')

const WG: u32 = 256u;
const PER: u32 = 4u;

// y = act(x + r)
@compute @workgroup_size(WG)
fn add_act(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = gid.x + gid.y * nwg.x * WG;
    if (t >= p.threads) {
        return;
    }
    for (var k = 0u; k < PER; k = k + 1u) {
        let i = t + k * p.threads;
        if (i < p.numel) {
            dst[i] = dst_t(act_forward(p.kind, p.slope, f32(a[i]) + f32(b[i])));
        }
    }
}

// dx = act'(x)·(a + b)
@compute @workgroup_size(WG)
fn add_grads(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = gid.x + gid.y * nwg.x * WG;
    if (t >= p.threads) {
        return;
    }
    for (var k = 0u; k < PER; k = k + 1u) {
        let i = t + k * p.threads;
        if (i < p.numel) {
            let g = f32(a[i]) + f32(b[i]);
            dst[i] = dst_t(select(g, act_backward(p.kind, p.slope, f32(act_x[i]), g), p.kind != ACT_NONE));
        }
    }
}
