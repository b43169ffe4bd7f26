// Reductions: per-channel partial sums (bias gradients of transposed convolutions, added up by
// shaders/grads.wgsl) and sums added into a slot of a loss accumulator (the only values the
// host reads during training).

struct Params {
    n: u32,        // batch size
    c: u32,        // channels; sum_into: number of sources (1 or 2)
    hw: u32,       // spatial size per channel (1 for linear layers)
    out_off: u32,  // channel_partials: offset in the partials scratch; sum_into: accumulator slot
}

@group(0) @binding(0) var<uniform> p: Params;
// Element types `*_t` are f32 or f16, per dispatch (src/gpu: Shader); the arithmetic is f32.
@group(0) @binding(1) var<storage, read> x: array<x_t>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<storage, read> x2: array<x2_t>;  // sum_into's second source

const WG: u32 = 256u;
var<workgroup> partial: array<f32, 256>;

fn tree_sum(lid: u32) -> f32 {
    for (var s = WG / 2u; s > 0u; s = s >> 1u) {
        workgroupBarrier();
        if (lid < s) {
            partial[lid] = partial[lid] + partial[lid + s];
        }
    }
    workgroupBarrier();
    return partial[0];
}

const CHUNK: u32 = 2048u;  // positions (n, i) per workgroup of channel_partials

// out[out_off + z·C + c] = Σ x[n, c, i] over positions z·CHUNK ≤ n·HW + i < (z + 1)·CHUNK of
// x [N, C, HW]; workgroup (z, c).
@compute @workgroup_size(256)
fn channel_partials(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let c = wid.y;
    let count = p.n * p.hw;
    let end = min(count, (wid.x + 1u) * CHUNK);
    var acc = 0.0;
    for (var j = wid.x * CHUNK + lid; j < end; j = j + WG) {
        let n = j / p.hw;
        let i = j - n * p.hw;
        acc = acc + f32(x[(n * p.c + c) * p.hw + i]);
    }
    partial[lid] = acc;
    let total = tree_sum(lid);
    if (lid == 0u) {
        out[p.out_off + wid.x * p.c + c] = total;
    }
}

// out[out_off] += Σ_{i < n} x[i], and with c = 2 sources also out[out_off + 1] += Σ_{i < n} x2[i]
// (the reconstruction and KL sums of a step in one dispatch); a single workgroup, so no
// atomics are needed.
@compute @workgroup_size(256)
fn sum_into(@builtin(local_invocation_index) lid: u32) {
    var acc = 0.0;
    for (var j = lid; j < p.n; j = j + WG) {
        acc = acc + f32(x[j]);
    }
    partial[lid] = acc;
    let total = tree_sum(lid);
    if (lid == 0u) {
        out[p.out_off] = out[p.out_off] + total;
    }
    if (p.c > 1u) {
        var acc2 = 0.0;
        for (var j = lid; j < p.n; j = j + WG) {
            acc2 = acc2 + f32(x2[j]);
        }
        workgroupBarrier();  // everyone has read the first total
        partial[lid] = acc2;
        let total2 = tree_sum(lid);
        if (lid == 0u) {
            out[p.out_off + 1u] = out[p.out_off + 1u] + total2;
        }
    }
}
