// Linear layers (PyTorch nn.Linear, weight [O, I]) as one strided GEMM, so the same entry
// points serve every pass:
//   forward  y[N, O]  = x[N, I] · W[O, I]ᵀ + b[O]   (A = x,    B = Wᵀ, bias from the B buffer)
//   input    dx[N, I] = dy[N, O] · W[O, I]           (A = dy,   B = W)
//   weight   dW[O, I] = dy[N, O]ᵀ · x[N, I]          (A = dyᵀ,  B = x)
// C[M, Nc] = A[M, K] · B[K, Nc]: A(m, k) = a[a_off + m·a_sm + k·a_sk],
// B(k, n) = b[b_off + k·b_sk + n·b_sn], C(m, n) = c[c_off + z·c_split + m·c_sm + n].
//   weight   [dW | db][O, I + 1] = dy[N, O]ᵀ · [x | 1][N, I + 1]  (B's last column all ones)
// `gemm` computes 64×64 tiles of C with 16×16 invocations of 4×4 outputs each, staging 16-deep
// K slices of A and B in workgroup memory. Workgroup z covers K range [z·k_split, (z+1)·k_split);
// with several splits each writes its partial product to scratch [S, M, Nc] and `sum_splits`
// adds the partials (and the bias) into C, or a consumer adds them itself (the bias then rides
// in split 0). The weight gradient always goes to partials, which
// shaders/grads.wgsl adds up with every other layer's.
// Epilogue (gemm without splits, or sum_splits): C = act(acc + bias) (the layer's activation,
// fused), or C = acc · act'(y) with y = act_y at C's index (the backward pass of the activation
// that produced the layer input, fused into the input gradient). Functions: shaders/act.wgsl.

struct Params {
    m: u32,         // rows of C
    n: u32,         // columns of C
    k: u32,         // reduction length
    a_off: u32,     // element offset and strides of A in `a`
    a_sm: u32,
    a_sk: u32,
    b_off: u32,     // element offset and strides of B in `b`
    b_sk: u32,
    b_sn: u32,
    c_off: u32,     // element offset and row stride of C in `c` (column stride 1)
    c_sm: u32,
    bias_off: u32,  // element offset of bias[Nc] in `b`
    has_bias: u32,  // 1: add bias[n] to C(m, n)
    k_split: u32,   // K elements per workgroup z (multiple of BK when splits > 1)
    c_split: u32,   // element stride in `c` between the outputs of successive z
    splits: u32,    // number of K splits (sum_splits only)
    ones_col: u32,  // 1: B's last column (n = Nc − 1) is all ones instead of read from `b`
    act: u32,       // activation applied to C (0: none)
    slope: f32,     // LeakyReLU slope of `act` or `dact`
    dact: u32,      // multiply C by this activation's derivative at act_y (0: none)
}

@group(0) @binding(0) var<uniform> p: Params;
// Element types `*_t` are f32 or f16, per dispatch (src/gpu: Shader); the arithmetic is f32.
@group(0) @binding(1) var<storage, read> a: array<a_t>;
@group(0) @binding(2) var<storage, read> b: array<b_t>;
@group(0) @binding(3) var<storage, read_write> c: array<c_t>;
@group(0) @binding(4) var<storage, read> act_y: array<act_y_t>;  // output of activation `dact`, C's layout

const BM: u32 = 64u;   // tile rows
const BN: u32 = 64u;   // tile columns
const BK: u32 = 16u;   // K slice per stage
const LD: u32 = 65u;   // padded row length of the staged slices (avoids bank conflicts)
const TILE_WG: u32 = 256u;
var<workgroup> a_tile: array<f32, 1040>;  // [BK, LD]: a_tile[k·LD + m] = A(m0 + m, k0 + k)
var<workgroup> b_tile: array<f32, 1040>;  // [BK, LD]: b_tile[k·LD + n] = B(k0 + k, n0 + n)

// bias[n] where asked for; in split z > 0 of a partial product 0 (split 0 carries it).
fn bias_at(n: u32, z: u32) -> f32 {
    if (p.has_bias != 0u && z == 0u) {
        return f32(b[p.bias_off + n]);
    }
    return 0.0;
}

// Writes row m of this invocation's 4×4 block (columns n, n+16, n+32, n+48) of split z at `base`.
fn store_row(m: u32, n: u32, z: u32, base: u32, v: vec4<f32>) {
    if (m >= p.m) {
        return;
    }
    let row = base + m * p.c_sm;
    for (var j = 0u; j < 4u; j = j + 1u) {
        let col = n + 16u * j;
        if (col < p.n) {
            c[row + col] = c_t(epilogue(row + col, v[j] + bias_at(col, z)));
        }
    }
}

// act(v), or v · act'(y) at C index i; identity when neither is asked for.
fn epilogue(i: u32, v: f32) -> f32 {
    var out = v;
    if (p.dact != ACT_NONE) {
        out = act_backward(p.dact, p.slope, f32(act_y[i]), out);
    }
    return act_forward(p.act, p.slope, out);
}

@compute @workgroup_size(16, 16)
fn gemm(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_id) tid: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let n0 = wid.x * BN;
    let m0 = wid.y * BM;
    let k_begin = wid.z * p.k_split;
    let k_end = min(p.k, k_begin + p.k_split);
    // Stage loads walk whichever dimension is contiguous in memory across adjacent invocations.
    let a_k_inner = p.a_sk == 1u;
    let b_n_inner = p.b_sn == 1u;
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var k0 = k_begin; k0 < k_end; k0 = k0 + BK) {
        for (var r = 0u; r < 4u; r = r + 1u) {
            let l = lid + r * TILE_WG;
            var am = l / BK;
            var ak = l % BK;
            if (!a_k_inner) {
                am = l % BM;
                ak = l / BM;
            }
            var av = 0.0;
            if (m0 + am < p.m && k0 + ak < k_end) {
                av = f32(a[p.a_off + (m0 + am) * p.a_sm + (k0 + ak) * p.a_sk]);
            }
            a_tile[ak * LD + am] = av;
            var bn = l % BN;
            var bk = l / BN;
            if (!b_n_inner) {
                bn = l / BK;
                bk = l % BK;
            }
            var bv = 0.0;
            if (n0 + bn < p.n && k0 + bk < k_end) {
                if (p.ones_col != 0u && n0 + bn + 1u == p.n) {
                    bv = 1.0;
                } else {
                    bv = f32(b[p.b_off + (k0 + bk) * p.b_sk + (n0 + bn) * p.b_sn]);
                }
            }
            b_tile[bk * LD + bn] = bv;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < BK; kk = kk + 1u) {
            let ar = kk * LD + tid.y;
            let br = kk * LD + tid.x;
            let bv = vec4<f32>(b_tile[br], b_tile[br + 16u], b_tile[br + 32u], b_tile[br + 48u]);
            acc0 = acc0 + a_tile[ar] * bv;
            acc1 = acc1 + a_tile[ar + 16u] * bv;
            acc2 = acc2 + a_tile[ar + 32u] * bv;
            acc3 = acc3 + a_tile[ar + 48u] * bv;
        }
        workgroupBarrier();
    }
    let base = p.c_off + wid.z * p.c_split;
    let m = m0 + tid.y;
    let n = n0 + tid.x;
    store_row(m, n, wid.z, base, acc0);
    store_row(m + 16u, n, wid.z, base, acc1);
    store_row(m + 32u, n, wid.z, base, acc2);
    store_row(m + 48u, n, wid.z, base, acc3);
}

const WG: u32 = 256u;

// C(m, n) = Σ_z a[(z·M + m)·Nc + n] + bias[n]: adds the split-K partials of `gemm`.
@compute @workgroup_size(256)
fn sum_splits(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    let mn = p.m * p.n;
    if (i >= mn) {
        return;
    }
    let m = i / p.n;
    let n = i - m * p.n;
    var acc = 0.0;
    for (var z = 0u; z < p.splits; z = z + 1u) {
        acc = acc + f32(a[z * mn + i]);
    }
    let o = p.c_off + m * p.c_sm + n;
    c[o] = c_t(epilogue(o, acc + bias_at(n, 0u)));
}
