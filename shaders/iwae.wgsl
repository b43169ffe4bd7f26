// The importance-weighted estimate of log p(x) (Burda et al.; rng.wgsl is prepended):
//   log p(x) ≈ logsumexp_k [log p(x|z_k) + log p(z_k) − log q(z_k|x)] − log K, z_k ~ q(z|x),
// for a batch of n images, drawn and summed in rounds of S samples. Row m = s·n + i of a round
// is sample s of image i; round r holds samples k = r·S + s.
//   draw        z [S·n, L] = μ + exp(½·logvar)·ε, ε_j = rng_normal(seed, stream, g, k·L + j)
//               with g = state[1]·B + i the image's index in the split (sample k = 0 is the
//               VAE forward's ε keyed by image); log_ratio [S·n] = log N(z; 0, I) −
//               log N(z; μ, σ²) = Σ_j (½ε_j² + ½·logvar_j − ½·z_j²)
//   replicate   target_rep [S·n, D] = x[m mod n, :]
//   accumulate  lw = log_ratio[m] − rec[m] (rec = −log p(x|z), the per-row loss) for k < K,
//               folded into an online logsumexp lse [n, 2] = (max, Σ exp(lw − max)); at the
//               last round nll [n] = −(max + ln Σ − ln K)
// head [n, 2L] = (μ | logvar) per row; x [n, D]; rec [S·n].

struct Params {
    n: u32,          // images in the batch
    width: u32,      // draw: L; replicate: D
    samples: u32,    // S, samples per round
    round: u32,      // r
    seed: u32,       // draw: RNG seed
    stream: u32,     // draw: RNG stream (counter_rng::STREAM_*)
    batch_size: u32, // draw: B, the full batch size (kernels::NoiseKey::Image)
    total: u32,      // accumulate: K, samples in all
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> head: array<f32>;            // [n, 2L] (draw)
@group(0) @binding(2) var<storage, read> state: array<u32>;           // [4] step counter (draw)
@group(0) @binding(3) var<storage, read_write> z: array<f32>;         // [S·n, L] (draw)
@group(0) @binding(4) var<storage, read_write> log_ratio: array<f32>; // [S·n] (draw writes, accumulate reads)
@group(0) @binding(5) var<storage, read> x: array<f32>;               // [n, D] (replicate)
@group(0) @binding(6) var<storage, read_write> target_rep: array<f32>; // [S·n, D] (replicate)
@group(0) @binding(7) var<storage, read> rec: array<f32>;             // [S·n] (accumulate)
@group(0) @binding(8) var<storage, read_write> lse: array<f32>;       // [n, 2] (accumulate)
@group(0) @binding(9) var<storage, read_write> nll: array<f32>;       // [n] (accumulate)

const WG: u32 = 64u;
const WG_COPY: u32 = 256u;
var<workgroup> terms: array<f32, WG>;

// One workgroup per row m (x + y·nwg.x), its invocations over j < L; log_ratio[m] through a
// tree in workgroup memory.
@compute @workgroup_size(WG)
fn draw(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let m = wid.x + wid.y * nwg.x;
    let l = p.width;
    var term = 0.0;
    if (m < p.samples * p.n) {
        let s = m / p.n;
        let i = m - s * p.n;
        let k = p.round * p.samples + s;
        let image = state[1] * p.batch_size + i;
        let row = 2u * l * i;
        for (var j = lid; j < l; j = j + WG) {
            let mu = head[row + j];
            let lv = head[row + l + j];
            let e = rng_normal(p.seed, p.stream, image, k * l + j);
            let zj = mu + exp(0.5 * lv) * e;
            z[m * l + j] = zj;
            term = term + 0.5 * (e * e + lv - zj * zj);
        }
    }
    terms[lid] = term;
    for (var h = WG / 2u; h > 0u; h = h >> 1u) {
        workgroupBarrier();
        if (lid < h) {
            terms[lid] = terms[lid] + terms[lid + h];
        }
    }
    if (lid == 0u && m < p.samples * p.n) {
        log_ratio[m] = terms[0];
    }
}

// One invocation per element e = m·D + d of target_rep.
@compute @workgroup_size(WG_COPY)
fn replicate(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = gid.x + gid.y * nwg.x * WG_COPY;
    let d = p.width;
    if (e >= p.samples * p.n * d) {
        return;
    }
    let m = e / d;
    let i = m % p.n;
    target_rep[e] = x[i * d + (e - m * d)];
}

// One invocation per image i: folds the round's samples k = r·S + s < K into (max, sum) in
// order, rescaling the sum when the max grows, so no exp overflows whatever the spread.
@compute @workgroup_size(WG)
fn accumulate(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if (i >= p.n) {
        return;
    }
    var mx = 0.0;
    var sum = 0.0; // 0 until the first sample: every sample adds at least exp(0) = 1 or rescales it
    if (p.round != 0u) {
        mx = lse[2u * i];
        sum = lse[2u * i + 1u];
    }
    let first = p.round * p.samples;
    for (var s = 0u; s < p.samples && first + s < p.total; s = s + 1u) {
        let m = s * p.n + i;
        let lw = log_ratio[m] - rec[m];
        if (sum == 0.0) {
            mx = lw;
            sum = 1.0;
        } else if (lw > mx) {
            sum = sum * exp(mx - lw) + 1.0;
            mx = lw;
        } else {
            sum = sum + exp(lw - mx);
        }
    }
    lse[2u * i] = mx;
    lse[2u * i + 1u] = sum;
    if (first + p.samples >= p.total) {
        nll[i] = -(mx + log(sum) - log(f32(p.total)));
    }
}
