// Nearest-neighbour resizing of [N, C, H, W] to [N, C, OH, OW], PyTorch's
// nn.Upsample(size=(OH, OW), mode="nearest"): output cell (oy, ox) copies input cell
// (floor(oy·H/OH), floor(ox·W/OW)), in integer arithmetic (odd sizes included). The backward
// pass gathers instead of scattering (no atomics, a fixed order): input cell (iy, ix) sums the
// output rows oy ∈ [ceil(iy·OH/H), ceil((iy+1)·OH/H)) and the columns likewise, and may apply
// the derivative of the activation that produced the input (dx = act'(x)·Σ dy, through the
// input x = that activation's output; shaders/act.wgsl is prepended). One invocation per
// element written.

struct Params {
    planes: u32,  // N·C
    h: u32,       // input side
    w: u32,
    oh: u32,      // output side
    ow: u32,
    total: u32,   // elements written: planes·OH·OW forward, planes·H·W backward
    dact: u32,    // backward: code of the activation whose derivative is applied (0: none)
    slope: f32,   // its LeakyReLU slope
}

@group(0) @binding(0) var<uniform> p: Params;
// Element types `*_t` are f32 or f16, per dispatch (src/gpu: Shader); the arithmetic is f32.
@group(0) @binding(1) var<storage, read> src: array<src_t>;        // forward: x; backward: dy
@group(0) @binding(2) var<storage, read_write> dst: array<dst_t>;  // forward: y; backward: dx
@group(0) @binding(3) var<storage, read> act_x: array<act_x_t>;    // backward: x (for act')

const WG: u32 = 256u;

fn linear_id(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * WG;
}

// y[plane, oy, ox] = x[plane, oy·H/OH, ox·W/OW]
@compute @workgroup_size(WG)
fn nearest_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if (i >= p.total) {
        return;
    }
    let ox = i % p.ow;
    let oy = (i / p.ow) % p.oh;
    let plane = i / (p.ow * p.oh);
    let sy = oy * p.h / p.oh;
    let sx = ox * p.w / p.ow;
    dst[i] = dst_t(f32(src[(plane * p.h + sy) * p.w + sx]));
}

// dx[plane, iy, ix] = act'(x) · Σ dy over the output cells that copied (iy, ix)
@compute @workgroup_size(WG)
fn nearest_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if (i >= p.total) {
        return;
    }
    let ix = i % p.w;
    let iy = (i / p.w) % p.h;
    let plane = i / (p.w * p.h);
    let y0 = (iy * p.oh + p.h - 1u) / p.h;
    let y1 = ((iy + 1u) * p.oh + p.h - 1u) / p.h;
    let x0 = (ix * p.ow + p.w - 1u) / p.w;
    let x1 = ((ix + 1u) * p.ow + p.w - 1u) / p.w;
    var g = 0.0;
    for (var oy = y0; oy < y1; oy = oy + 1u) {
        let row = (plane * p.oh + oy) * p.ow;
        for (var ox = x0; ox < x1; ox = ox + 1u) {
            g = g + f32(src[row + ox]);
        }
    }
    if (p.dact != ACT_NONE) {
        g = act_backward(p.dact, p.slope, f32(act_x[i]), g);
    }
    dst[i] = dst_t(g);
}
