// 2×2 stride-2 spatial resampling over [N, C, H, W] tensors, one invocation per output element
// of the entry point (read as a 1-D index over planes = N·C):
//   max_pool_forward   y [N, C, OH, OW], argmax (u32, same shape) from x [N, C, H, W], with
//                      symmetric padding that never wins (PyTorch MaxPool2d(2, padding=pad));
//                      the first maximum in row-major window order wins ties
//   max_pool_backward  dx [N, C, H, W] = dy at the winners, 0 elsewhere (windows never overlap)
//   avg_pool_forward   y [N, C, H/2, W/2] mean of each 2×2 window of x (no padding)

struct Params {
    planes: u32,  // N·C
    h: u32,       // input height
    w: u32,       // input width
    oh: u32,      // output height (upsampling: 2·h)
    ow: u32,      // output width
    pad: u32,     // max pool padding on every side
    total: u32,   // invocations with work
    _pad0: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
// Element types `*_t` are f32 or f16, per dispatch (src/gpu: Shader); the arithmetic is f32.
@group(0) @binding(1) var<storage, read> src: array<src_t>;        // x, or dy in backward passes
@group(0) @binding(2) var<storage, read_write> dst: array<dst_t>;  // y, or dx in backward passes
@group(0) @binding(3) var<storage, read_write> arg_out: array<u32>; // max_pool_forward: argmax
@group(0) @binding(4) var<storage, read> arg_in: array<u32>;       // max_pool_backward: argmax

const WG: u32 = 256u;

fn linear_id(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * WG;
}

// (plane, y, x) of flat index i in [planes, h, w].
fn cell(i: u32, h: u32, w: u32) -> vec3<u32> {
    let plane = i / (h * w);
    let r = i - plane * h * w;
    let y = r / w;
    return vec3<u32>(plane, y, r - y * w);
}

@compute @workgroup_size(WG)
fn max_pool_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if (i >= p.total) {
        return;
    }
    let c = cell(i, p.oh, p.ow);
    let plane = c.x;
    let oy = c.y;
    let ox = c.z;
    let base = plane * p.h * p.w;
    var best = 0.0;
    var arg = 0u;
    var found = false;
    for (var dy = 0u; dy < 2u; dy = dy + 1u) {
        let yy = i32(2u * oy + dy) - i32(p.pad);
        for (var dx = 0u; dx < 2u; dx = dx + 1u) {
            let xx = i32(2u * ox + dx) - i32(p.pad);
            if (yy >= 0 && yy < i32(p.h) && xx >= 0 && xx < i32(p.w)) {
                let j = base + u32(yy) * p.w + u32(xx);
                let v = f32(src[j]);
                if (!found || v > best) {
                    best = v;
                    arg = j;
                    found = true;
                }
            }
        }
    }
    dst[i] = dst_t(best);
    arg_out[i] = arg;
}

// One invocation per input cell: the only window that can hold it is ((y+pad)/2, (x+pad)/2).
@compute @workgroup_size(WG)
fn max_pool_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if (i >= p.total) {
        return;
    }
    let c = cell(i, p.h, p.w);
    let plane = c.x;
    let yy = c.y;
    let xx = c.z;
    let oy = (yy + p.pad) / 2u;
    let ox = (xx + p.pad) / 2u;
    var g = 0.0;
    if (oy < p.oh && ox < p.ow) {
        let o = (plane * p.oh + oy) * p.ow + ox;
        if (arg_in[o] == i) {
            g = f32(src[o]);
        }
    }
    dst[i] = dst_t(g);
}

@compute @workgroup_size(WG)
fn avg_pool_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_id(gid, nwg);
    if (i >= p.total) {
        return;
    }
    let c = cell(i, p.oh, p.ow);
    let plane = c.x;
    let oy = c.y;
    let ox = c.z;
    let j = (plane * p.h + 2u * oy) * p.w + 2u * ox;
    dst[i] = dst_t(0.25 * (f32(src[j]) + f32(src[j + 1u]) + f32(src[j + p.w]) + f32(src[j + p.w + 1u])));
}
