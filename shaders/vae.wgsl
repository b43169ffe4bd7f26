// The VAE's latent layer (rng.wgsl is prepended): the reparameterisation trick
// z = μ + exp(½·logvar)·ε with ε drawn from the counter-based RNG keyed by the GPU step counter
// (training: step state[0], index i·L + j) or by the image (evaluation: image
// state[1]·noise_key + i, index j, so that ε does not depend on the batch size), the
// per-example KL divergence to N(0, I), and the backward pass of both.
// head, head_out [N, 2L] = (μ | logvar) per row; z, eps, dz [N, L]; kl [N]; dhead [N, 2L].
// The inputs `head` and `dz` arrive as `splits` slices to add up ([splits, N, 2L] and
// [splits, N, L]): the split-K partials of the linear layers around the latent layer, whose
// summing pass is thus fused in here (one slice for a plain tensor).

struct Params {
    n: u32,         // examples
    latent: u32,    // L
    seed: u32,      // RNG seed
    stream: u32,    // RNG stream (counter_rng::STREAM_*)
    sample: u32,    // 1: draw ε; 0: ε = 0 and z = μ (evaluation)
    kl_scale: f32,  // backward: weight of Σ kl in the loss
    splits: u32,    // slices of `head` (forward) or `dz` (backward) to add up
    noise_key: u32, // forward: 0 keys ε by step; B > 0 by image, B the batch size (kernels::NoiseKey)
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> head: array<f32>;          // [splits, N, 2L] forward; [N, 2L] backward
@group(0) @binding(2) var<storage, read_write> eps: array<f32>;     // [N, L] forward writes, backward reads
@group(0) @binding(3) var<storage, read> state: array<u32>;         // [4] step counter (forward)
@group(0) @binding(4) var<storage, read_write> z: array<f32>;       // [N, L] (forward)
@group(0) @binding(5) var<storage, read_write> kl: array<f32>;      // [N] (forward)
@group(0) @binding(6) var<storage, read> dz: array<f32>;            // [splits, N, L] (backward)
@group(0) @binding(7) var<storage, read_write> dhead: array<f32>;   // [N, 2L] (backward)
@group(0) @binding(8) var<storage, read_write> head_out: array<f32>; // [N, 2L] summed head (forward)

const WG: u32 = 64u;
var<workgroup> kl_terms: array<f32, WG>;

// One workgroup per example i (x + y·nwg.x), its invocations over j < L: μ and logvar summed from
// the slices (and kept in head_out), ε[k] = rng_normal(seed, stream, state[0], k) keyed by step,
// rng_normal(seed, stream, state[1]·noise_key + i, j) keyed by image (or 0 without sampling),
// z[k] = μ + exp(½·logvar)·ε with k = i·L + j; kl[i] = −½·Σ_j (1 + logvar − μ² − exp(logvar))
// through a tree in workgroup memory.
@compute @workgroup_size(64)
fn forward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = wid.x + wid.y * nwg.x;
    let l = p.latent;
    // The RNG counter: (state[0], i·L + j) by step, (image state[1]·B + i, j) by image.
    var counter = state[0];
    var base = i * l;
    if (p.noise_key != 0u) {
        counter = state[1] * p.noise_key + i;
        base = 0u;
    }
    let width = 2u * l;
    let slice = p.n * width;
    var term = 0.0;
    if (i < p.n) {
        let row = width * i;
        for (var j = lid; j < l; j = j + WG) {
            var mu = 0.0;
            var lv = 0.0;
            for (var s = 0u; s < p.splits; s = s + 1u) {
                mu = mu + head[s * slice + row + j];
                lv = lv + head[s * slice + row + l + j];
            }
            head_out[row + j] = mu;
            head_out[row + l + j] = lv;
            let k = i * l + j;
            if (p.sample != 0u) {
                let e = rng_normal(p.seed, p.stream, counter, base + j);
                eps[k] = e;
                z[k] = mu + exp(0.5 * lv) * e;
            } else {
                eps[k] = 0.0;
                z[k] = mu;
            }
            term = term + 1.0 + lv - mu * mu - exp(lv);
        }
    }
    kl_terms[lid] = term;
    for (var s = WG / 2u; s > 0u; s = s >> 1u) {
        workgroupBarrier();
        if (lid < s) {
            kl_terms[lid] = kl_terms[lid] + kl_terms[lid + s];
        }
    }
    if (lid == 0u && i < p.n) {
        kl[i] = -0.5 * kl_terms[0];
    }
}

// dμ = dz + kl_scale·μ; dlogvar = dz·½·exp(½·logvar)·ε + kl_scale·½·(exp(logvar) − 1), with dz
// summed from its slices; one invocation per latent element k = i·L + j.
@compute @workgroup_size(64)
fn backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let k = gid.x + gid.y * nwg.x * WG;
    let l = p.latent;
    let count = p.n * l;
    if (k >= count) {
        return;
    }
    let i = k / l;
    let j = k - i * l;
    let row = 2u * l * i;
    let mu = head[row + j];
    let s = exp(0.5 * head[row + l + j]);
    var g = 0.0;
    for (var t = 0u; t < p.splits; t = t + 1u) {
        g = g + dz[t * count + k];
    }
    dhead[row + j] = g + p.kl_scale * mu;
    dhead[row + l + j] = 0.5 * (g * s * eps[k] + p.kl_scale * (s * s - 1.0));
}
