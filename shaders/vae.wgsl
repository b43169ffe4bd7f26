// The VAE's latent layer (rng.wgsl is prepended): the reparameterisation trick
// z = μ + exp(½·logvar)·ε with ε drawn from the counter-based RNG at the GPU step counter, the
// per-example KL divergence to N(0, I), and the backward pass of both.
// head [N, 2L] = (μ | logvar) per row; z, eps, dz [N, L]; kl [N]; dhead [N, 2L].
// One invocation per latent element (i, j), k = i·L + j.

struct Params {
    n: u32,         // examples
    latent: u32,    // L
    seed: u32,      // RNG seed
    stream: u32,    // RNG stream (reference::rng::STREAM_*)
    sample: u32,    // 1: draw ε; 0: ε = 0 and z = μ (evaluation)
    kl_scale: f32,  // backward: weight of Σ kl in the loss
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> head: array<f32>;          // [N, 2L]
@group(0) @binding(2) var<storage, read_write> eps: array<f32>;     // [N, L] forward writes, backward reads
@group(0) @binding(3) var<storage, read> state: array<u32>;         // [4] step counter (forward)
@group(0) @binding(4) var<storage, read_write> z: array<f32>;       // [N, L] (forward)
@group(0) @binding(5) var<storage, read_write> kl: array<f32>;      // [N] (forward)
@group(0) @binding(6) var<storage, read> dz: array<f32>;            // [N, L] (backward)
@group(0) @binding(7) var<storage, read_write> dhead: array<f32>;   // [N, 2L] (backward)

const WG: u32 = 64u;

// ε[k] = rng_normal(seed, stream, state[0], k) (or 0), z[k] = μ + exp(½·logvar)·ε; the
// invocation with j = 0 also writes kl[i] = −½·Σ_j (1 + logvar − μ² − exp(logvar)).
@compute @workgroup_size(64)
fn forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let k = gid.x + gid.y * nwg.x * WG;
    let step = state[0];
    let l = p.latent;
    if (k >= p.n * l) {
        return;
    }
    let i = k / l;
    let j = k - i * l;
    let row = 2u * l * i;
    let mu = head[row + j];
    if (p.sample != 0u) {
        let e = rng_normal(p.seed, p.stream, step, k);
        eps[k] = e;
        z[k] = mu + exp(0.5 * head[row + l + j]) * e;
    } else {
        eps[k] = 0.0;
        z[k] = mu;
    }
    if (j == 0u) {
        var acc = 0.0;
        for (var c = 0u; c < l; c = c + 1u) {
            let m = head[row + c];
            let lv = head[row + l + c];
            acc = acc + 1.0 + lv - m * m - exp(lv);
        }
        kl[i] = -0.5 * acc;
    }
}

// dμ = dz + kl_scale·μ; dlogvar = dz·½·exp(½·logvar)·ε + kl_scale·½·(exp(logvar) − 1).
@compute @workgroup_size(64)
fn backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let k = gid.x + gid.y * nwg.x * WG;
    let l = p.latent;
    if (k >= p.n * l) {
        return;
    }
    let i = k / l;
    let j = k - i * l;
    let row = 2u * l * i;
    let mu = head[row + j];
    let s = exp(0.5 * head[row + l + j]);
    let g = dz[k];
    dhead[row + j] = g + p.kl_scale * mu;
    dhead[row + l + j] = 0.5 * (g * s * eps[k] + p.kl_scale * (s * s - 1.0));
}
