// Adam optimiser step with PyTorch torch.optim.Adam semantics (no weight decay, not amsgrad)
// over the flat parameter buffer, its gradient buffer and the two moment buffers (all [count],
// same offsets). t = state[0] + 1 is read on the GPU, and so is the learning rate: the
// schedule's words (src/schedule.rs) give the rate of step state[0], so a recorded plan stays
// valid for every step and every rate.

struct Params {
    count: u32,  // elements to update
    _pad3: u32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> params: array<f32>;  // [count]
@group(0) @binding(2) var<storage, read_write> m: array<f32>;       // [count] first moment
@group(0) @binding(3) var<storage, read_write> v: array<f32>;       // [count] second moment
@group(0) @binding(4) var<storage, read> grads: array<f32>;         // [count]
@group(0) @binding(5) var<storage, read> state: array<u32>;         // [4] step counter
// [kind (0 constant, 1 cosine), horizon T, warm-up steps W, base rate's f32 bits]
@group(0) @binding(6) var<storage, read> schedule: array<u32, 4>;

const WG: u32 = 256u;
const PER_THREAD: u32 = 4u;  // elements per invocation, WG apart (coalesced)

// rate / (1 − β1^t) and sqrt(1 − β2^t), computed once per workgroup.
var<workgroup> coef: array<f32, 2>;

// 1 − β^t by binary exponentiation carried out on complements w = 1 − β^a:
// 1 − β^(a+b) = w_a + w_b·(1 − w_a) and 1 − β^(2a) = w_a·(2 − w_a). Unlike 1 − pow(β, t) this
// does not cancel when β^t is close to 1 (β2 = 0.999 at small t); a few ulp for any t.
fn one_minus_pow(beta: f32, t: u32) -> f32 {
    var w = 1.0 - beta;
    var acc = 0.0;
    for (var e = t; e != 0u; e = e >> 1u) {
        if ((e & 1u) != 0u) {
            acc = acc + w * (1.0 - acc);
        }
        w = w * (2.0 - w);
    }
    return acc;
}

const PI: f32 = 3.14159265358979;

// The rate of step t (0-based): lr·min(1, (t+1)/W)·(1 + cos(π·min(t, T)/T))/2, the warm-up
// factor for W > 0 only and the cosine factor for the cosine schedule only.
fn rate(t: u32) -> f32 {
    var f = 1.0;
    let warmup = schedule[2];
    if (warmup > 0u) {
        f = min(1.0, f32(t + 1u) / f32(warmup));
    }
    if (schedule[0] == 1u) {
        let total = max(schedule[1], 1u);
        f = f * 0.5 * (1.0 + cos(PI * f32(min(t, total)) / f32(total)));
    }
    return bitcast<f32>(schedule[3]) * f;
}

// m = β1·m + (1 − β1)·g; v = β2·v + (1 − β2)·g²;
// params −= (lr / (1 − β1^t))·m / (sqrt(v) / sqrt(1 − β2^t) + eps).
@compute @workgroup_size(256)
fn adam_step(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    if (lid == 0u) {
        let t = state[0] + 1u;
        coef[0] = rate(state[0]) / one_minus_pow(p.beta1, t);
        coef[1] = sqrt(one_minus_pow(p.beta2, t));
    }
    workgroupBarrier();
    let step_size = coef[0];
    let bc2_sqrt = coef[1];
    let first = (wid.x + wid.y * nwg.x) * (WG * PER_THREAD) + lid;
    for (var r = 0u; r < PER_THREAD; r = r + 1u) {
        let k = first + r * WG;
        if (k < p.count) {
            let g = grads[k];
            let mk = p.beta1 * m[k] + (1.0 - p.beta1) * g;
            let vk = p.beta2 * v[k] + (1.0 - p.beta2) * g * g;
            m[k] = mk;
            v[k] = vk;
            params[k] = params[k] - step_size * mk / (sqrt(vk) / bc2_sqrt + p.eps);
        }
    }
}
