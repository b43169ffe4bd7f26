// Training inputs built on the GPU (appended to rng.wgsl): the batch gather from the resident
// dataset (u8 pixels packed little-endian four to a u32 word, shuffled through a permutation),
// optionally binarised, and the denoising autoencoder's input noise. Both read the step counter
// `state` ([steps_done, batch_in_epoch, 0, 0], see step.wgsl), so a recorded plan serves every
// step. Their random numbers for element i = b·pixels + px come from (seed, stream, c, k):
// keyed by step (training) c = state[0], k = i; keyed by image (evaluation) c =
// state[1]·noise_key + b (the image's index in the split), k = px, so that an image's noise does
// not depend on the batch size.
//   gather     x [n, 1, H, W] = images[perm[state[1]·batch_size + b]] / 255; binarised: a pixel
//              p = byte/255 becomes 1 if u < p else 0, u = (rng_u32(seed, STREAM_BINARIZE, c, k)
//              >> 8) / 2^24 (compared exactly, in integers)
//   add_noise  noisy = clamp(x + std·ε, 0, 1), ε = rng_normal(seed, STREAM_INPUT_NOISE, c, k)

struct Params {
    total: u32,       // elements written (n·pixels)
    pixels: u32,      // pixels per image
    batch_size: u32,  // gather: stride of the batch index into perm
    seed: u32,        // RNG seed (add_noise, binarised gather)
    noise_std: f32,   // add_noise: noise standard deviation
    noise_key: u32,   // 0 keys the RNG by step; B > 0 by image, B the batch size (kernels::NoiseKey)
    binarize: u32,    // gather: 1 draws binary pixels, 0 keeps byte/255
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> images: array<u32>;    // packed u8 pixels
@group(0) @binding(2) var<storage, read> perm: array<u32>;      // image order of the epoch
@group(0) @binding(3) var<storage, read> state: array<u32>;     // step counter
// Element types `*_t` are f32 or f16, per dispatch (src/gpu: Shader); the arithmetic is f32.
@group(0) @binding(4) var<storage, read_write> dst: array<dst_t>; // x, or noisy
@group(0) @binding(5) var<storage, read> src: array<src_t>;       // add_noise: clean x

const WG: u32 = 256u;
const STREAM_INPUT_NOISE: u32 = 1u;
const STREAM_BINARIZE: u32 = 4u;

// The RNG's (counter, index) for element i = b·pixels + px: (state[0], i) by step,
// (state[1]·noise_key + b, px) by image.
fn noise_counter(i: u32, b: u32, px: u32) -> vec2<u32> {
    if (p.noise_key != 0u) {
        return vec2<u32>(state[1] * p.noise_key + b, px);
    }
    return vec2<u32>(state[0], i);
}

@compute @workgroup_size(WG)
fn gather(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if (i >= p.total) {
        return;
    }
    let b = i / p.pixels;
    let px = i - b * p.pixels;
    let image = perm[state[1] * p.batch_size + b];
    let k = image * p.pixels + px;
    let byte = (images[k >> 2u] >> ((k & 3u) * 8u)) & 255u;
    var v = f32(byte) / 255.0;
    if (p.binarize != 0u) {
        // u < byte/255 as (u·2^24)·255 < byte·2^24: exact, both sides below 2^32.
        let c = noise_counter(i, b, px);
        let u24 = rng_u32(p.seed, STREAM_BINARIZE, c.x, c.y) >> 8u;
        v = select(0.0, 1.0, u24 * 255u < (byte << 24u));
    }
    dst[i] = dst_t(v);
}

@compute @workgroup_size(WG)
fn add_noise(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if (i >= p.total) {
        return;
    }
    let b = i / p.pixels;
    let c = noise_counter(i, b, i - b * p.pixels);
    let eps = rng_normal(p.seed, STREAM_INPUT_NOISE, c.x, c.y);
    dst[i] = dst_t(clamp(f32(src[i]) + p.noise_std * eps, 0.0, 1.0));
}
