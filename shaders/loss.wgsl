// Per-example reconstruction losses fused with their gradients (one pass, nothing else to
// clear): sigmoid + binary cross-entropy on logits, and squared error; and each loss alone, for
// evaluation, where a third figure joins them: the PSNR of the picture, 10·log10(1 / max(MSE,
// 1e-10)) with MSE the mean over the D values of (σ(logit) − t)² (or of (y − t)² for
// predictions already in [0, 1]), as pytorch_images.py's test_psnr. x, tgt, dx are [N, D],
// loss is [N]. One workgroup per example: each invocation walks the row with stride WG, then a
// workgroup tree sum gives loss[i].

struct Params {
    n: u32,           // examples (rows)
    d: u32,           // values per example
    grad_scale: f32,  // multiplies every gradient (e.g. 1/N for a batch mean)
    kind: u32,        // 0 binary cross-entropy on logits, 1 squared error, 2 PSNR of the
                      // logits' sigmoid, 3 PSNR of predictions
}

@group(0) @binding(0) var<uniform> p: Params;
// Element types `*_t` are f32 or f16, per dispatch (src/gpu: Shader); the arithmetic is f32.
@group(0) @binding(1) var<storage, read> x: array<x_t>;           // [N, D] logits or predictions
@group(0) @binding(2) var<storage, read> tgt: array<tgt_t>;       // [N, D] targets
@group(0) @binding(3) var<storage, read_write> loss: array<f32>;  // [N]
@group(0) @binding(4) var<storage, read_write> dx: array<dx_t>;   // [N, D]

const WG: u32 = 64u;
var<workgroup> partial: array<f32, 64>;

// Σ over the workgroup of each invocation's `acc`; the result is valid in invocation 0 only
// (it performs the last addition itself, so it needs no final barrier).
fn row_sum(lid: u32, acc: f32) -> f32 {
    partial[lid] = acc;
    for (var s = WG / 2u; s > 0u; s = s >> 1u) {
        workgroupBarrier();
        if (lid < s) {
            partial[lid] = partial[lid] + partial[lid + s];
        }
    }
    return partial[0];
}

// The loss term of prediction x (a logit for BCE) with target t, and its gradient before
// grad_scale: BCE (max(x, 0) − x·t + log(1 + e), σ(x) − t) with e = exp(−|x|) ∈ (0, 1], so no
// exp overflows whatever the logit; squared error ((x − t)², 2(x − t)).
// The PSNR kinds' term is the squared error alone (of the sigmoid for kind 2).
fn term(x: f32, t: f32) -> vec2<f32> {
    if (p.kind == 1u || p.kind == 3u) {
        let r = x - t;
        return vec2<f32>(r * r, 2.0 * r);
    }
    let e = exp(-abs(x));
    let sig = select(e, 1.0, x >= 0.0) / (1.0 + e);
    if (p.kind == 2u) {
        let r = sig - t;
        return vec2<f32>(r * r, 0.0);
    }
    return vec2<f32>(max(x, 0.0) - x * t + log(1.0 + e), sig - t);
}

// PSNR in dB of a row whose squared errors sum to `total`.
fn psnr(total: f32) -> f32 {
    return -10.0 * log(max(total / f32(p.d), 1e-10)) / log(10.0);
}

// loss[i] = Σ_p term(x, t).x; dx = term(x, t).y · grad_scale.
@compute @workgroup_size(64)
fn loss_and_grad(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    // The grid is split over x and y past the per-dimension limit.
    let row = wid.x + wid.y * nwg.x;
    if (row >= p.n) {
        return;
    }
    let base = row * p.d;
    var acc = 0.0;
    for (var j = lid; j < p.d; j = j + WG) {
        let l = term(f32(x[base + j]), f32(tgt[base + j]));
        acc = acc + l.x;
        dx[base + j] = dx_t(l.y * p.grad_scale);
    }
    let total = row_sum(lid, acc);
    if (lid == 0u) {
        loss[row] = total;
    }
}

// The loss (or the PSNR) alone (evaluation: no gradient; dx is not bound).
@compute @workgroup_size(64)
fn loss_alone(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    // The grid is split over x and y past the per-dimension limit.
    let row = wid.x + wid.y * nwg.x;
    if (row >= p.n) {
        return;
    }
    let base = row * p.d;
    var acc = 0.0;
    for (var j = lid; j < p.d; j = j + WG) {
        acc = acc + term(f32(x[base + j]), f32(tgt[base + j])).x;
    }
    let total = row_sum(lid, acc);
    if (lid == 0u) {
        loss[row] = select(total, psnr(total), p.kind >= 2u);
    }
}
