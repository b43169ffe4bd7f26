// Training inputs built on the GPU (appended to rng.wgsl): the batch gather from the resident
// dataset (u8 pixels packed little-endian four to a u32 word, shuffled through a permutation)
// and the denoising autoencoder's input noise. Both read the step counter `state`
// ([steps_done, batch_in_epoch, 0, 0], see step.wgsl), so a recorded plan serves every step.
//   gather     x [n, 1, H, W] = images[perm[state[1]·batch_size + b]] / 255
//   add_noise  noisy = clamp(x + std·ε, 0, 1), ε ~ N(0, 1) from (seed, STREAM_INPUT_NOISE, c, k):
//              keyed by step (training) c = state[0], k = i; keyed by image (evaluation) c =
//              state[1]·noise_key + b (the image's index in the split), k = px, for element
//              i = b·pixels + px, so that an image's noise does not depend on the batch size

struct Params {
    total: u32,       // elements written (n·pixels)
    pixels: u32,      // pixels per image
    batch_size: u32,  // gather: stride of the batch index into perm
    seed: u32,        // add_noise: RNG seed
    noise_std: f32,   // add_noise: noise standard deviation
    noise_key: u32,   // add_noise: 0 keys ε by step; B > 0 by image, B the batch size (kernels::NoiseKey)
    _pad0: u32,
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
    dst[i] = dst_t(f32(byte) / 255.0);
}

@compute @workgroup_size(WG)
fn add_noise(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if (i >= p.total) {
        return;
    }
    var counter = state[0];
    var index = i;
    if (p.noise_key != 0u) {
        let b = i / p.pixels;
        counter = state[1] * p.noise_key + b;
        index = i - b * p.pixels;
    }
    let eps = rng_normal(p.seed, STREAM_INPUT_NOISE, counter, index);
    dst[i] = dst_t(clamp(f32(src[i]) + p.noise_std * eps, 0.0, 1.0));
}
