// Sums split-K gradient partials into the flat gradient buffer, for every layer of a backward
// pass in one dispatch (launcher: src/kernels/grads.rs). Weight-gradient products and bias
// channel sums that split their long reduction over many workgroups write partials
// [splits, rows, cols (+1)] into one scratch buffer; each is a segment of the table:
//   (part_off, splits, rows, cols, has_bias, w_off, bias_off, log_lanes, first_block)
// Element (r, c) of a segment is Σ_z part[part_off + z·len + r·(cols + has_bias) + c], with
// len = rows·(cols + has_bias); it lands at grads[w_off + r·cols + c] for c < cols and at
// grads[bias_off + r] for the bias column c = cols.
// Workgroups first_block.. of the 1-D grid serve a segment; in each, 2^log_lanes invocations
// ("lanes") share one output, each summing every 2^log_lanes-th split, then a tree in
// workgroup memory adds the lanes. Every sum is multiplied by `scale` (1, or 1/loss scale when
// the backward pass ran on a scaled loss: see src/graph.rs).

struct Params {
    segments: u32,
    scale: f32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> table: array<u32>;   // [segments, ENTRY]
@group(0) @binding(2) var<storage, read> part: array<f32>;    // the partials scratch
@group(0) @binding(3) var<storage, read_write> grads: array<f32>;

const WG: u32 = 256u;
const ENTRY: u32 = 9u;
var<workgroup> lane_sums: array<f32, WG>;
var<workgroup> uniform_lanes: u32;

@compute @workgroup_size(WG)
fn finish(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    var index = 0u;
    while (index + 1u < p.segments && table[(index + 1u) * ENTRY + 8u] <= wid.x) {
        index = index + 1u;
    }
    let seg = index * ENTRY;
    let part_off = table[seg];
    let splits = table[seg + 1u];
    let rows = table[seg + 2u];
    let cols = table[seg + 3u];
    let has_bias = table[seg + 4u];
    let log_lanes = table[seg + 7u];
    let width = cols + has_bias;
    let len = rows * width;
    let lanes = 1u << log_lanes;
    let lane = lid & (lanes - 1u);
    let o = (wid.x - table[seg + 8u]) * (WG >> log_lanes) + (lid >> log_lanes);
    var acc = 0.0;
    if (o < len) {
        for (var z = lane; z < splits; z = z + lanes) {
            acc = acc + part[part_off + z * len + o];
        }
    }
    lane_sums[lid] = acc;
    // The lane count is the same for the whole workgroup; loading it through workgroup memory
    // makes that visible to the uniformity analysis, so the tree takes only log_lanes steps.
    if (lid == 0u) {
        uniform_lanes = lanes;
    }
    for (var s = workgroupUniformLoad(&uniform_lanes) / 2u; s > 0u; s = s >> 1u) {
        if (lane < s) {
            lane_sums[lid] = lane_sums[lid] + lane_sums[lid + s];
        }
        workgroupBarrier();
    }
    if (lane == 0u && o < len) {
        let r = o / width;
        let c = o - r * width;
        let total = lane_sums[lid] * p.scale;
        if (c < cols) {
            grads[table[seg + 5u] + r * cols + c] = total;
        } else {
            grads[table[seg + 6u] + r] = total;
        }
    }
}
