// BatchNorm2d (PyTorch nn.BatchNorm2d: affine, running statistics, momentum 0.1, eps 1e-5)
// over x [N, C, H, W], with an optional activation fused on the output (shaders/act.wgsl,
// prepended). Launcher: src/kernels/batchnorm.rs. Per channel c the n = N·H·W positions
// j = n_i·HW + i (element (n_i·C + c)·HW + i) are cut into chunks of CHUNK; every entry point
// runs one workgroup per (chunk z, channel c) = (wid.x, wid.y), so a workgroup's channel is
// uniform and its chunk is read coalesced.
//   stats_partials     training statistics, level 1: per chunk the sum of (x − k) and the sum
//                      of squared deviations from the chunk mean (k = x[0, c, 0, 0], a shift
//                      that keeps the sums free of cancellation whatever the mean), into
//                      saved[2C + (z·C + c)·2 ..]
//   normalize_train    level 2 (every workgroup combines its channel's chunks, Chan et al.),
//                      y = act((x − mean)·invstd·γ + β); chunk 0 also saves mean and invstd
//                      (saved[c], saved[C + c]) and updates the running statistics in place
//   normalize_eval     y = act((x − running_mean)/sqrt(running_var + eps)·γ + β)
//   backward_partials  per chunk Σ dŷ·x̂ and Σ dŷ (dŷ = dy·act'(y), x̂ = (x − mean)·invstd)
//                      into the gradient partials scratch [splits, C, 2]: γ's and β's
//                      gradients once shaders/grads.wgsl sums them
//   backward_dx        dx = γ·invstd·(dŷ − Σdŷ/n − x̂·Σ(dŷ·x̂)/n), times dact'(x) when the layer
//                      input is itself an activation's output (kernels::InputGrad)
// All arithmetic and workgroup memory is f32; x, y, dy, act_y, dx may be stored as f16.

struct Params {
    c: u32,          // channels
    hw: u32,         // H·W
    count: u32,      // n = N·H·W values per channel
    splits: u32,     // chunks per channel: ceil(count / CHUNK)
    part_off: u32,   // first partial: in saved (forward, 2C) or in part (backward)
    act: u32,        // activation of the output (forward), whose derivative backward takes from y
    slope: f32,      // its LeakyReLU slope
    dact: u32,       // backward_dx: activation whose output x is (0: none)
    dslope: f32,     // its LeakyReLU slope
    eps: f32,
    momentum: f32,
    gamma_off: u32,  // γ [C] at params[gamma_off..]
    beta_off: u32,   // β [C] at params[beta_off..]
    rmean_off: u32,  // running_mean [C] at running[rmean_off..]
    rvar_off: u32,   // running_var [C] at running[rvar_off..]
    _pad0: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
// Element types `*_t` are f32 or f16, per dispatch (src/gpu: Shader); the arithmetic is f32.
@group(0) @binding(1) var<storage, read> x: array<x_t>;               // [N, C, H, W]
@group(0) @binding(2) var<storage, read_write> y: array<y_t>;         // [N, C, H, W]
@group(0) @binding(3) var<storage, read_write> saved: array<f32>;     // mean [C], invstd [C], partials
@group(0) @binding(4) var<storage, read> params: array<f32>;          // the flat parameters
@group(0) @binding(5) var<storage, read_write> running: array<f32>;   // running statistics
@group(0) @binding(6) var<storage, read> dy: array<dy_t>;             // [N, C, H, W]
@group(0) @binding(7) var<storage, read> act_y: array<act_y_t>;       // the forward output y
@group(0) @binding(8) var<storage, read_write> part: array<f32>;      // gradient partials
@group(0) @binding(9) var<storage, read_write> dx: array<dx_t>;       // [N, C, H, W]

const WG: u32 = 256u;
const CHUNK: u32 = 2048u;
const PER: u32 = 8u;  // CHUNK / WG values per invocation
var<workgroup> red: array<vec2<f32>, WG>;

// Σ v over the workgroup; call from uniform control flow. Ends with a barrier, so that the
// next call may overwrite `red` once everyone has read the total.
fn tree_sum2(lid: u32, v: vec2<f32>) -> vec2<f32> {
    red[lid] = v;
    for (var s = WG / 2u; s > 0u; s = s >> 1u) {
        workgroupBarrier();
        if (lid < s) {
            red[lid] = red[lid] + red[lid + s];
        }
    }
    workgroupBarrier();
    let total = red[0];
    workgroupBarrier();
    return total;
}

// Element of position j (< count) of channel c.
fn at(c: u32, j: u32) -> u32 {
    let n = j / p.hw;
    return (n * p.c + c) * p.hw + (j - n * p.hw);
}

// Positions [start, end) of chunk z.
fn chunk(z: u32) -> vec2<u32> {
    let start = z * CHUNK;
    return vec2<u32>(start, min(p.count, start + CHUNK));
}

// The shift of channel c's training statistics: its first value.
fn shift(c: u32) -> f32 {
    return f32(x[c * p.hw]);
}

@compute @workgroup_size(WG)
fn stats_partials(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let z = wid.x;
    let c = wid.y;
    let k = shift(c);
    let r = chunk(z);
    let m = f32(r.y - r.x);
    var v: array<f32, PER>;
    var s = 0.0;
    for (var q = 0u; q < PER; q = q + 1u) {
        let j = r.x + lid + q * WG;
        v[q] = 0.0;
        if (j < r.y) {
            v[q] = f32(x[at(c, j)]) - k;
            s = s + v[q];
        }
    }
    let sum = tree_sum2(lid, vec2<f32>(s, 0.0)).x;
    let a = sum / m;
    // Squared deviations from the chunk mean, corrected by the (tiny) sum of the deviations
    // for the rounding of `a` (the corrected two-pass algorithm).
    var d1 = 0.0;
    var d2 = 0.0;
    for (var q = 0u; q < PER; q = q + 1u) {
        if (r.x + lid + q * WG < r.y) {
            let d = v[q] - a;
            d1 = d1 + d;
            d2 = d2 + d * d;
        }
    }
    let t = tree_sum2(lid, vec2<f32>(d1, d2));
    if (lid == 0u) {
        let o = p.part_off + (z * p.c + c) * 2u;
        saved[o] = sum;
        saved[o + 1u] = max(t.y - t.x * t.x / m, 0.0);
    }
}

// (a, biased variance) of channel c from its chunk partials, the mean being shift(c) + a.
fn channel_stats(c: u32, lid: u32) -> vec2<f32> {
    let n = f32(p.count);
    var s = 0.0;
    for (var z = lid; z < p.splits; z = z + WG) {
        s = s + saved[p.part_off + (z * p.c + c) * 2u];
    }
    let a = tree_sum2(lid, vec2<f32>(s, 0.0)).x / n;
    var m2 = 0.0;
    for (var z = lid; z < p.splits; z = z + WG) {
        let o = p.part_off + (z * p.c + c) * 2u;
        let r = chunk(z);
        let m = f32(r.y - r.x);
        let d = saved[o] / m - a;
        m2 = m2 + saved[o + 1u] + m * d * d;
    }
    let total = tree_sum2(lid, vec2<f32>(m2, 0.0)).x;
    return vec2<f32>(a, total / n);
}

@compute @workgroup_size(WG)
fn normalize_train(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let z = wid.x;
    let c = wid.y;
    let k = shift(c);
    let st = channel_stats(c, lid);
    let a = st.x;
    let var_b = st.y;
    let invstd = 1.0 / sqrt(var_b + p.eps);
    if (z == 0u && lid == 0u) {
        let mean = k + a;
        saved[c] = mean;
        saved[p.c + c] = invstd;
        let n = f32(p.count);
        let m = p.momentum;
        let rm = p.rmean_off + c;
        let rv = p.rvar_off + c;
        running[rm] = (1.0 - m) * running[rm] + m * mean;
        running[rv] = (1.0 - m) * running[rv] + m * var_b * (n / (n - 1.0));
    }
    let scale = invstd * params[p.gamma_off + c];
    let beta = params[p.beta_off + c];
    let r = chunk(z);
    for (var j = r.x + lid; j < r.y; j = j + WG) {
        let i = at(c, j);
        let v = (f32(x[i]) - k - a) * scale + beta;
        y[i] = y_t(act_forward(p.act, p.slope, v));
    }
}

@compute @workgroup_size(WG)
fn normalize_eval(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let z = wid.x;
    let c = wid.y;
    let mean = running[p.rmean_off + c];
    let scale = params[p.gamma_off + c] / sqrt(running[p.rvar_off + c] + p.eps);
    let beta = params[p.beta_off + c];
    let r = chunk(z);
    for (var j = r.x + lid; j < r.y; j = j + WG) {
        let i = at(c, j);
        let v = (f32(x[i]) - mean) * scale + beta;
        y[i] = y_t(act_forward(p.act, p.slope, v));
    }
}

@compute @workgroup_size(WG)
fn backward_partials(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let z = wid.x;
    let c = wid.y;
    let mean = saved[c];
    let invstd = saved[p.c + c];
    let r = chunk(z);
    var acc = vec2<f32>(0.0, 0.0);
    for (var j = r.x + lid; j < r.y; j = j + WG) {
        let i = at(c, j);
        let g = act_backward(p.act, p.slope, f32(act_y[i]), f32(dy[i]));
        let xh = (f32(x[i]) - mean) * invstd;
        acc = acc + vec2<f32>(g * xh, g);
    }
    let t = tree_sum2(lid, acc);
    if (lid == 0u) {
        let o = p.part_off + (z * p.c + c) * 2u;
        part[o] = t.x;       // → γ's gradient
        part[o + 1u] = t.y;  // → β's gradient
    }
}

@compute @workgroup_size(WG)
fn backward_dx(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let z = wid.x;
    let c = wid.y;
    var s = vec2<f32>(0.0, 0.0);
    for (var q = lid; q < p.splits; q = q + WG) {
        let o = p.part_off + (q * p.c + c) * 2u;
        s = s + vec2<f32>(part[o], part[o + 1u]);
    }
    let n = f32(p.count);
    let sums = tree_sum2(lid, s) / n;  // (Σ dŷ·x̂, Σ dŷ) / n
    let mean = saved[c];
    let invstd = saved[p.c + c];
    let scale = params[p.gamma_off + c] * invstd;
    let r = chunk(z);
    for (var j = r.x + lid; j < r.y; j = j + WG) {
        let i = at(c, j);
        let xv = f32(x[i]);
        let g = act_backward(p.act, p.slope, f32(act_y[i]), f32(dy[i]));
        let xh = (xv - mean) * invstd;
        let d = scale * (g - sums.y - xh * sums.x);
        dx[i] = dx_t(act_backward(p.dact, p.dslope, xv, d));
    }
}
