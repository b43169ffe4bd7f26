// Conditioning on a class label (the conditional VAE): the one-hot label of K classes is
// appended to the encoder features before the head, and to z before the decoder.
//   gather_labels  batch_labels[b] = labels[perm[state[1]·batch_size + b]]     (b < n)
//   concat_onehot  y [n, A+K]: y[b, j] = x[b, j] for j < A, y[b, A+k] = (k == batch_labels[b])
//   take_columns   dx [n, A]: dx[b, j] = act'(act_x[b, j]) · Σ_s dy[s, b, j], dy given as
//                  `splits` slices [splits, n, A+K] (the split-K partials of the layer that
//                  read y): the gradient of the concatenated tensor without its label columns,
//                  with the derivative of the activation that produced the concatenation's
//                  input act_x folded in when dact is set (through act_x, that activation's
//                  output; shaders/act.wgsl is prepended)
// Labels of K or more (an image without a class) give an all-zero one-hot row.

struct Params {
    n: u32,          // rows
    width: u32,      // A: the columns before the label
    classes: u32,    // K
    batch_size: u32, // gather_labels: stride of the batch index into perm
    splits: u32,     // take_columns: slices of dy to add up
    dact: u32,       // take_columns: code of the activation whose derivative is applied (0: none)
    slope: f32,      // its LeakyReLU slope
    _pad0: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> labels: array<u32>;                // [count] the split's labels
@group(0) @binding(2) var<storage, read> perm: array<u32>;                  // [count] visiting order
@group(0) @binding(3) var<storage, read> state: array<u32>;                 // [4] step counter
@group(0) @binding(4) var<storage, read_write> batch_labels_out: array<u32>; // [n] gather_labels
@group(0) @binding(5) var<storage, read> batch_labels: array<u32>;          // [n] concat_onehot
// Element types `*_t` are f32 or f16, per dispatch (src/gpu: Shader); the arithmetic is f32.
@group(0) @binding(6) var<storage, read> x: array<x_t>;                     // [n, A] or [splits, n, A+K]
@group(0) @binding(7) var<storage, read_write> y: array<y_t>;               // [n, A+K] or [n, A]
@group(0) @binding(8) var<storage, read> act_x: array<act_x_t>;             // take_columns: [n, A] (for act')

const WG: u32 = 256u;

@compute @workgroup_size(WG)
fn gather_labels(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let b = gid.x + gid.y * nwg.x * WG;
    if (b >= p.n) {
        return;
    }
    batch_labels_out[b] = labels[perm[state[1] * p.batch_size + b]];
}

@compute @workgroup_size(WG)
fn concat_onehot(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    let row = p.width + p.classes;
    if (i >= p.n * row) {
        return;
    }
    let b = i / row;
    let j = i - b * row;
    if (j < p.width) {
        y[i] = y_t(f32(x[b * p.width + j]));
    } else {
        y[i] = y_t(select(0.0, 1.0, j - p.width == batch_labels[b]));
    }
}

@compute @workgroup_size(WG)
fn take_columns(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if (i >= p.n * p.width) {
        return;
    }
    let b = i / p.width;
    let j = i - b * p.width;
    let row = p.width + p.classes;
    let slice = p.n * row;
    var sum = 0.0;
    for (var s = 0u; s < p.splits; s = s + 1u) {
        sum = sum + f32(x[s * slice + b * row + j]);
    }
    if (p.dact != ACT_NONE) {
        sum = act_backward(p.dact, p.slope, f32(act_x[i]), sum);
    }
    y[i] = y_t(sum);
}
