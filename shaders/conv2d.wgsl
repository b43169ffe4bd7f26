// Convolution kernels for nn.Conv2d and nn.ConvTranspose2d (launchers: src/kernels/conv2d.rs
// and src/kernels/conv_transpose2d.rs). Both layers relate a "big" feature map to a "small" one
// by the strided correlation (stride s, padding p)
//   small[n, cs, y, x]  ~  Σ_{cb, ky, kx} W[cs, cb, ky, kx] · big[n, cb, y·s − p + ky, x·s − p + kx]
// with big [N, C_big, BH, BW], small [N, C_small, SH, SW], W [C_small, C_big, KH, KW]
// (Conv2d: big = input, small = output, W [C_out, C_in]; ConvTranspose2d: big = output,
// small = input, W [C_in, C_out]). One implicit-GEMM entry point, `gemm`, computes the three
// products of that relation, out[m, col] = Σ_k A[m, k] · B[k, col]:
//   mode 0 "down":  small = W ⋆ big (+ bias)   Conv2d forward, ConvTranspose2d input gradient
//       m = cs, col = small position (n, y, x), k = tap (cb, ky, kx); A = W, B = im2col(big)
//   mode 1 "up":    big = Wᵀ ⋆ small (+ bias)  ConvTranspose2d forward, Conv2d input gradient
//       m = cb, col = big position (n, Y, X) of one stride phase (ry, rx) = ((Y+p) mod s,
//       (X+p) mod s) taken from workgroup_id.z, k = (cs, jy, jx) with ky = ry + jy·s,
//       kx = rx + jx·s: only the taps that reach that phase, so no zero products are done;
//       B = small[n, cs, (Y + p − ky)/s, (X + p − kx)/s]
//   mode 2 "wgrad": dW partials, m = cs, col = tap (cb, ky, kx), k = small positions (n, y, x)
//       of split workgroup_id.z (split-K); A = small (the output gradient for Conv2d, the input
//       for ConvTranspose2d), B = big patches; partials [splits, C_small, C_big·KH·KW (+1)]
//       written at `w_off` of the gradient-partials scratch, which src/kernels/grads.rs sums
//       into the flat gradient buffer. With `has_bias` a last column of ones makes the extra
//       column Σ_k A[m, k]: the Conv2d bias gradient, at no extra pass.
// Epilogue of modes 0/1: out = act(acc + bias), the layer's activation fused (`act`), or
// out = acc · act'(y) with y = act_y at the same index (`dact`): the backward pass of the
// activation that produced the layer input, fused into its input-gradient product.
// Activation functions and codes: shaders/act.wgsl, prepended to this file.
//
// In every mode B[k, col] = b[row_off + col_off] if (row_y + col_y, row_x + col_x) lies inside
// b's H×W, else 0: one term of the pair is a position (offset, top-left corner), the other a tap
// (offset, displacement). Terms are decoded (integer divisions) once per K row into a workgroup
// table and once per tile column by the invocations that own it, so the inner loops have none.
// Rows or columns past the end get y = SENT, which makes every B element they touch 0.
//
// Tiling: 64 invocations as a wk × wm × wn grid (powers of two chosen by the launcher, wk·wm·wn =
// 64), each computing a 4 × 4 register block, so a workgroup tile is BM × BN = 4wm × 4wn. Each
// step stages kt·wk rows of K (A: [kt·wk, BM], B: [kt·wk, BN], kt as large as workgroup memory
// allows, to keep barriers rare) in workgroup memory; k-group tk multiplies rows kt·tk.. and the
// wk partial blocks are added at the end (wk > 1 for small weight-gradient tiles, where K is
// long and M·N small, and for data products whose grid would otherwise leave a GPU's SMs idle:
// more, shorter walks along K). With a single row block (M ≤ 4, wm = 1) no two invocations share B
// values, so B is gathered straight into registers and only the A rows go through workgroup
// memory, one barrier pair per 64 K rows.

// The mode and the tile shape are pipeline-overridable constants, set by the launchers: each
// configuration is a pipeline of its own, so the driver compiles the inner product with its
// trip count and workgroup-memory strides known (unrolled) and without the other modes' paths.
override MODE: u32;      // 0 down, 1 up, 2 wgrad
override LOG_WM: u32;    // log2 of the invocation grid wm × wn × wk
override LOG_WN: u32;
override LOG_WK: u32;
override KT: u32;        // K rows per k-group and step (power of two, KT·wk ≤ 64)

struct Params {
    m: u32,          // GEMM rows M (C_small in modes 0/2, C_big in mode 1)
    n_cols: u32,     // mode 0: N·SH·SW; mode 2: C_big·KH·KW (+1 ones column); mode 1: per phase
    k_rows: u32,     // mode 0: C_big·KH·KW; mode 2: N·SH·SW; mode 1: per phase
    k_split: u32,    // mode 2: rows of K per split (a multiple of 64)
    batch: u32,
    c_small: u32,
    c_big: u32,
    stride: u32,
    small_h: u32,
    small_w: u32,
    big_h: u32,
    big_w: u32,
    kh: u32,
    kw: u32,
    pad: u32,
    w_off: u32,      // modes 0/1: weight offset in the parameter buffer; 2: partials offset
    bias_off: u32,
    has_bias: u32,   // modes 0/1: add bias[m]; mode 2: append the ones column
    splits: u32,     // mode 2: number of K splits
    act: u32,        // modes 0/1: activation applied to the output (0: none)
    slope: f32,      // LeakyReLU slope of `act` or `dact`
    dact: u32,       // modes 0/1: multiply the output by this activation's derivative at act_y
}

@group(0) @binding(0) var<uniform> p: Params;
// Element types `*_t` are f32 or f16, per dispatch (src/gpu: Shader); the arithmetic is f32.
@group(0) @binding(1) var<storage, read> a_src: array<a_src_t>;   // W and bias (modes 0/1), small (2)
@group(0) @binding(2) var<storage, read> b_src: array<b_src_t>;   // big (modes 0/2), small (1)
@group(0) @binding(3) var<storage, read_write> out: array<out_t>; // small (0), big (1), partials (2)
@group(0) @binding(4) var<storage, read> act_y: array<act_y_t>;    // output of the activation `dact` (modes 0/1)

const WG: u32 = 64u;
const CHUNK: u32 = 64u;      // K rows decoded per table refill (one per invocation)
const SH_VEC: u32 = 320u;    // vec4s; ≥ kt·wk·(wm + wn) for every grid the launcher picks, ≥ 256
const SENT: i32 = -536870912;
const ONES: i32 = 536870912;  // column y of the mode-2 ones column (no real coordinate)

// A tile [kt·wk, BM] then B tile [kt·wk, BN], four consecutive rows (A) or columns (B) per vec4;
// with one row block (wm = 1) only the A rows of the current chunk, [CHUNK] vec4s.
var<workgroup> sh: array<vec4<f32>, SH_VEC>;
var<workgroup> row_tab: array<vec4<i32>, CHUNK>;  // K rows: (b offset, y, x, a_src offset of A[0, k])

// One position or tap: offset into b, 2-D coordinate (corner or displacement) and `e`, an
// offset into a_src (rows) or out (columns).
struct Term {
    off: i32,
    y: i32,
    x: i32,
    e: u32,
}

// What one workgroup computes (uniform: from p and workgroup_id.z).
struct Job {
    n_cols: u32,
    k_begin: u32,
    k_end: u32,
    a_mstride: u32,  // a_src distance between A[m, k] and A[m + 1, k]
    o_mstride: u32,  // out distance between out[m, col] and out[m + 1, col]
    e_base: u32,     // added to big-tap offsets (weight offset in mode 0, partial slice in 2)
    b_h: u32,
    b_w: u32,
    ry: u32,         // mode 1: stride phase and its taps / positions
    rx: u32,
    tky: u32,
    tkx: u32,
    qy0: u32,
    qx0: u32,
    ny: u32,
    nx: u32,
}

// Number of taps j ≥ 0 with r + j·s < k.
fn phase_taps(r: u32, k: u32, s: u32) -> u32 {
    return select(0u, (k - r + s - 1u) / s, r < k);
}

fn job(z: u32) -> Job {
    var j: Job;
    let kk = p.kh * p.kw;
    let s = p.stride;
    j.b_h = p.big_h;
    j.b_w = p.big_w;
    if (MODE == 0u) {
        j.n_cols = p.n_cols;
        j.k_begin = 0u;
        j.k_end = p.k_rows;
        j.a_mstride = p.k_rows;
        j.o_mstride = p.small_h * p.small_w;
        j.e_base = p.w_off;
    } else if (MODE == 1u) {
        j.ry = z / s;
        j.rx = z - j.ry * s;
        j.tky = phase_taps(j.ry, p.kh, s);
        j.tkx = phase_taps(j.rx, p.kw, s);
        // Y = qy·s + ry − p for qy0 ≤ qy < qy0 + ny covers the big rows of this phase.
        j.qy0 = select(0u, (p.pad - j.ry + s - 1u) / s, p.pad > j.ry);
        j.qx0 = select(0u, (p.pad - j.rx + s - 1u) / s, p.pad > j.rx);
        let qy1 = (p.big_h + p.pad + s - 1u - j.ry) / s;
        let qx1 = (p.big_w + p.pad + s - 1u - j.rx) / s;
        j.ny = select(0u, qy1 - j.qy0, qy1 > j.qy0);
        j.nx = select(0u, qx1 - j.qx0, qx1 > j.qx0);
        j.n_cols = p.batch * j.ny * j.nx;
        j.k_begin = 0u;
        j.k_end = p.c_small * j.tky * j.tkx;
        j.a_mstride = kk;
        j.o_mstride = p.big_h * p.big_w;
        j.b_h = p.small_h;
        j.b_w = p.small_w;
    } else {
        j.n_cols = p.n_cols;
        j.k_begin = z * p.k_split;
        j.k_end = min(p.k_rows, j.k_begin + p.k_split);
        j.a_mstride = p.small_h * p.small_w;
        j.o_mstride = p.n_cols;
        j.e_base = p.w_off + z * p.m * p.n_cols;
    }
    return j;
}

// Tap t = (cb, ky, kx) of the big map; e = e_base + t (W[cs=0, t] in mode 0, partial column in 2).
fn big_tap(j: Job, t: u32) -> Term {
    let kk = p.kh * p.kw;
    let cb = t / kk;
    let r = t - cb * kk;
    let ky = r / p.kw;
    let kx = r - ky * p.kw;
    return Term(i32(cb * p.big_h * p.big_w + ky * p.big_w + kx), i32(ky), i32(kx), j.e_base + t);
}

// Small position q = (n, y, x): the corner of its big patch; e = offset of small[n, 0, y, x].
fn small_pos(q: u32) -> Term {
    let hw = p.small_h * p.small_w;
    let n = q / hw;
    let r = q - n * hw;
    let y = r / p.small_w;
    let x = r - y * p.small_w;
    let y0 = i32(y * p.stride) - i32(p.pad);
    let x0 = i32(x * p.stride) - i32(p.pad);
    let off = i32(n * p.c_big * p.big_h * p.big_w) + y0 * i32(p.big_w) + x0;
    return Term(off, y0, x0, n * p.c_small * hw + r);
}

// Mode 1 tap k = (cs, jy, jx) of phase (ry, rx): displacement (−jy, −jx) in the small map;
// e = offset of W[cs, cb=0, ry + jy·s, rx + jx·s].
fn phase_tap(j: Job, k: u32) -> Term {
    let tt = j.tky * j.tkx;
    let cs = k / tt;
    let r = k - cs * tt;
    let jy = r / j.tkx;
    let jx = r - jy * j.tkx;
    let ky = j.ry + jy * p.stride;
    let kx = j.rx + jx * p.stride;
    let off = i32(cs * p.small_h * p.small_w) - i32(jy * p.small_w + jx);
    return Term(off, -i32(jy), -i32(jx), p.w_off + cs * p.c_big * p.kh * p.kw + ky * p.kw + kx);
}

// Mode 1 column = (n, qy, qx) of phase (ry, rx): small-map corner (qy, qx); e = offset of
// big[n, 0, qy·s + ry − p, qx·s + rx − p].
fn phase_pos(j: Job, col: u32) -> Term {
    let per = j.ny * j.nx;
    let n = col / per;
    let r = col - n * per;
    let iy = r / j.nx;
    let qy = j.qy0 + iy;
    let qx = j.qx0 + r - iy * j.nx;
    let yb = qy * p.stride + j.ry - p.pad;
    let xb = qx * p.stride + j.rx - p.pad;
    let off = n * p.c_small * p.small_h * p.small_w + qy * p.small_w + qx;
    return Term(i32(off), i32(qy), i32(qx), n * p.c_big * p.big_h * p.big_w + yb * p.big_w + xb);
}

fn row_term(j: Job, k: u32) -> Term {
    if (MODE == 0u) {
        return big_tap(j, k);
    }
    if (MODE == 1u) {
        return phase_tap(j, k);
    }
    return small_pos(k);
}

fn col_term(j: Job, col: u32) -> Term {
    if (MODE == 0u) {
        return small_pos(col);
    }
    if (MODE == 1u) {
        return phase_pos(j, col);
    }
    return big_tap(j, col);
}

// Term of tile column `col`, or one that zeroes its B elements past the last column. In mode 2
// with a bias the last column is the ones column.
fn column(j: Job, col: u32) -> Term {
    if (MODE == 2u && p.has_bias != 0u && col + 1u == j.n_cols) {
        return Term(0, ONES, 0, j.e_base + col);
    }
    if (col < j.n_cols) {
        return col_term(j, col);
    }
    return Term(0, SENT, SENT, 0u);
}

fn term_vec(t: Term) -> vec4<i32> {
    return vec4<i32>(t.off, t.y, t.x, i32(t.e));
}

// Loads below are unconditional, at clamped indices, with the values past the end replaced by
// 0 afterwards: a load under a branch waits for the previous one, so a step's staging would
// cost one memory round trip per element instead of one per batch of elements.

// A[m.., k] for the four rows m, m + 1, .. (0 past the last), from the offset of A[0, k]; rows
// past the last read A[0, k] instead.
fn a_rows(row_a: u32, m: u32, a_mstride: u32) -> vec4<f32> {
    let base = row_a + m * a_mstride;
    let left = p.m - min(m, p.m);
    let a = vec4<f32>(
        f32(a_src[select(row_a, base, left > 0u)]),
        f32(a_src[select(row_a, base + a_mstride, left > 1u)]),
        f32(a_src[select(row_a, base + 2u * a_mstride, left > 2u)]),
        f32(a_src[select(row_a, base + 3u * a_mstride, left > 3u)]),
    );
    return select(vec4<f32>(0.0), a, vec4<u32>(0u, 1u, 2u, 3u) < vec4<u32>(left));
}

// One B element: b[row.off + col.off] if the summed coordinate lies inside b, else 0; 1 in the
// ones column (rows past the end meet A = 0 there).
fn b_elem(row: vec4<i32>, col_off: i32, col_y: i32, col_x: i32, b_h: u32, b_w: u32) -> f32 {
    let ones = (MODE == 2u) & (col_y == ONES);
    let inside = (u32(row.y + col_y) < b_h) & (u32(row.z + col_x) < b_w) & !ones;
    let v = f32(b_src[select(0u, u32(row.x + col_off), inside)]);
    return select(select(0.0, v, inside), 1.0, ones);
}

// The B values of this invocation's four columns in one K row.
fn b_cols(row: vec4<i32>, co: vec4<i32>, cy: vec4<i32>, cx: vec4<i32>, b_h: u32, b_w: u32) -> vec4<f32> {
    return vec4<f32>(
        b_elem(row, co.x, cy.x, cx.x, b_h, b_w),
        b_elem(row, co.y, cy.y, cx.y, b_h, b_w),
        b_elem(row, co.z, cy.z, cx.z, b_h, b_w),
        b_elem(row, co.w, cy.w, cx.w, b_h, b_w),
    );
}

// One output through the epilogue: out[o] = act(v), or v · act'(act_y[o]).
fn put(o: u32, v: f32) {
    var r = v;
    if (p.dact != ACT_NONE) {
        r = act_backward(p.dact, p.slope, f32(act_y[o]), r);
    }
    out[o] = out_t(act_forward(p.act, p.slope, r));
}

// Row m (if it exists) of an invocation's block: the first `valid` of its four columns, whose
// output offsets at row 0 are `cols`, plus the bias in modes 0/1.
fn store_row(j: Job, m: u32, v: vec4<f32>, cols: vec4<u32>, valid: u32) {
    if (m >= p.m) {
        return;
    }
    var bias = 0.0;
    if (p.has_bias != 0u && MODE != 2u) {
        bias = f32(a_src[p.bias_off + m]);
    }
    let at = cols + vec4<u32>(m * j.o_mstride);
    if (valid > 0u) {
        put(at.x, v.x + bias);
    }
    if (valid > 1u) {
        put(at.y, v.y + bias);
    }
    if (valid > 2u) {
        put(at.z, v.z + bias);
    }
    if (valid > 3u) {
        put(at.w, v.w + bias);
    }
}

@compute @workgroup_size(64)
fn gemm(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let j = job(wid.z);
    let wm = 1u << LOG_WM;
    let wn = 1u << LOG_WN;
    let rs = KT << LOG_WK;               // K rows per step
    let m0 = wid.y * 4u * wm;
    let n0 = wid.x * 4u * wn;
    if (n0 >= j.n_cols) {
        return;                           // a tile past this phase's columns (uniform)
    }

    // Thread layout: rows 4tm.., columns 4tn.. of the tile, K rows kt·tk.. of each step. An
    // invocation also stages the B values of its own four columns, rows r0, r0 + rstep, ...
    let tn = lid & (wn - 1u);
    let tm = (lid >> LOG_WN) & (wm - 1u);
    let tk = lid >> (LOG_WN + LOG_WM);
    let r0 = lid >> LOG_WN;
    let rstep = WG >> LOG_WN;
    let c0 = column(j, n0 + 4u * tn);
    let c1 = column(j, n0 + 4u * tn + 1u);
    let c2 = column(j, n0 + 4u * tn + 2u);
    let c3 = column(j, n0 + 4u * tn + 3u);
    let cy = vec4<i32>(c0.y, c1.y, c2.y, c3.y);
    let cx = vec4<i32>(c0.x, c1.x, c2.x, c3.x);
    let co = vec4<i32>(c0.off, c1.off, c2.off, c3.off);
    let b_base = rs * wm;
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);

    for (var kc = j.k_begin; kc < j.k_end; kc = kc + CHUNK) {
        var t = Term(0, SENT, SENT, 0u);
        if (kc + lid < j.k_end) {
            t = row_term(j, kc + lid);
        }
        row_tab[lid] = term_vec(t);
        let rows = min(CHUNK, j.k_end - kc);
        if (LOG_WM == 0u) {
            // One row block (BM = 4): no invocation shares another's B values, so each gathers
            // its own straight into registers, four K rows per batch of loads; A rows come from
            // a table next to the row table.
            let a = a_rows(u32(t.e), m0, j.a_mstride);
            sh[lid] = select(vec4<f32>(0.0), a, lid < rows);
            workgroupBarrier();
            let wk = 1u << LOG_WK;
            for (var r = tk; r < rows; r = r + 4u * wk) {
                // Rows past `rows` (at most CHUNK − 1 here) hold zero A and sentinel terms.
                let r1 = min(r + wk, CHUNK - 1u);
                let r2 = min(r + 2u * wk, CHUNK - 1u);
                let r3 = min(r + 3u * wk, CHUNK - 1u);
                let b0 = b_cols(row_tab[r], co, cy, cx, j.b_h, j.b_w);
                let b1 = b_cols(row_tab[r1], co, cy, cx, j.b_h, j.b_w);
                let b2 = b_cols(row_tab[r2], co, cy, cx, j.b_h, j.b_w);
                let b3 = b_cols(row_tab[r3], co, cy, cx, j.b_h, j.b_w);
                let a0 = sh[r];
                let a1 = select(vec4<f32>(0.0), sh[r1], r + wk < CHUNK);
                let a2 = select(vec4<f32>(0.0), sh[r2], r + 2u * wk < CHUNK);
                let a3 = select(vec4<f32>(0.0), sh[r3], r + 3u * wk < CHUNK);
                acc0 = acc0 + a0.x * b0 + a1.x * b1 + a2.x * b2 + a3.x * b3;
                acc1 = acc1 + a0.y * b0 + a1.y * b1 + a2.y * b2 + a3.y * b3;
                acc2 = acc2 + a0.z * b0 + a1.z * b1 + a2.z * b2 + a3.z * b3;
                acc3 = acc3 + a0.w * b0 + a1.w * b1 + a2.w * b2 + a3.w * b3;
            }
            workgroupBarrier();
        } else {
            workgroupBarrier();
            for (var ks = 0u; ks < rows; ks = ks + rs) {
                for (var v = lid; v < rs * wm; v = v + WG) {
                    let r = ks + (v >> LOG_WM);
                    let a = a_rows(u32(row_tab[r].w), m0 + 4u * (v & (wm - 1u)), j.a_mstride);
                    sh[v] = select(vec4<f32>(0.0), a, r < rows);
                }
                for (var r = ks + r0; r < ks + rs; r = r + rstep) {
                    sh[b_base + ((r - ks) << LOG_WN) + tn] = b_cols(row_tab[r], co, cy, cx, j.b_h, j.b_w);
                }
                workgroupBarrier();
                var ar = ((KT * tk) << LOG_WM) + tm;
                var br = b_base + ((KT * tk) << LOG_WN) + tn;
                for (var kk = 0u; kk < KT; kk = kk + 1u) {
                    let a = sh[ar];
                    let b = sh[br];
                    acc0 = acc0 + a.x * b;
                    acc1 = acc1 + a.y * b;
                    acc2 = acc2 + a.z * b;
                    acc3 = acc3 + a.w * b;
                    ar = ar + wm;
                    br = br + wn;
                }
                workgroupBarrier();
            }
        }
    }

    if (LOG_WK > 0u) {
        // k-groups 1.. hand their blocks to k-group 0 (four vec4s per invocation).
        if (tk > 0u) {
            sh[4u * lid] = acc0;
            sh[4u * lid + 1u] = acc1;
            sh[4u * lid + 2u] = acc2;
            sh[4u * lid + 3u] = acc3;
        }
        workgroupBarrier();
        if (tk == 0u) {
            for (var k = 1u; k < (1u << LOG_WK); k = k + 1u) {
                let o = 4u * (lid + (k << (LOG_WM + LOG_WN)));
                acc0 = acc0 + sh[o];
                acc1 = acc1 + sh[o + 1u];
                acc2 = acc2 + sh[o + 2u];
                acc3 = acc3 + sh[o + 3u];
            }
        }
    }
    if (tk > 0u) {
        return;
    }

    // Written out for the four rows (no private arrays indexed at run time, which compilers
    // may place in slow per-invocation memory).
    let cols = vec4<u32>(c0.e, c1.e, c2.e, c3.e);
    let first = n0 + 4u * tn;
    let valid = select(0u, min(4u, j.n_cols - first), first < j.n_cols);
    let row = m0 + 4u * tm;
    store_row(j, row, acc0, cols, valid);
    store_row(j, row + 1u, acc1, cols, valid);
    store_row(j, row + 2u, acc2, cols, valid);
    store_row(j, row + 3u, acc3, cols, valid);
}
