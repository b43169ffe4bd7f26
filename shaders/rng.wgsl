// Counter-based random numbers shared by the kernels that need noise (prepended to vae.wgsl
// and data.wgsl; not a module of its own). The same (seed, stream, step, index) gives the same
// value here and on the host in `counter_rng`. Its callers pass the training step as `step`, or the
// image's index in the split when the noise is keyed by image (kernels::NoiseKey):
//   h = fmix32(seed ^ 0x9E3779B9); h = fmix32(h ^ (stream * 0x85EBCA6B));
//   h = fmix32(h ^ step); h = fmix32(h ^ index)          (fmix32: MurmurHash3's finaliser)
// A standard normal uses two such words (indices 2i and 2i+1) and the Box–Muller transform:
//   u1 = ((a >> 8) + 1) / 2^24 ∈ (0, 1], u2 = (b >> 8) / 2^24 ∈ [0, 1),
//   z = sqrt(max(−2·ln u1, 0)) · cos(2π·u2).

fn rng_fmix32(x: u32) -> u32 {
    var h = x;
    h = h ^ (h >> 16u);
    h = h * 0x85ebca6bu;
    h = h ^ (h >> 13u);
    h = h * 0xc2b2ae35u;
    h = h ^ (h >> 16u);
    return h;
}

fn rng_u32(seed: u32, stream: u32, step: u32, index: u32) -> u32 {
    var h = rng_fmix32(seed ^ 0x9e3779b9u);
    h = rng_fmix32(h ^ (stream * 0x85ebca6bu));
    h = rng_fmix32(h ^ step);
    return rng_fmix32(h ^ index);
}

fn rng_normal(seed: u32, stream: u32, step: u32, index: u32) -> f32 {
    let a = rng_u32(seed, stream, step, 2u * index);
    let b = rng_u32(seed, stream, step, 2u * index + 1u);
    let u1 = (f32(a >> 8u) + 1.0) * (1.0 / 16777216.0);
    let u2 = f32(b >> 8u) * (1.0 / 16777216.0);
    // max(): a GPU log with only absolute accuracy may return a tiny positive value near 1.
    return sqrt(max(-2.0 * log(u1), 0.0)) * cos(6.2831853071795864 * u2);
}
