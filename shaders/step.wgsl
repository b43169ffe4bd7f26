// The training-step counter that lives on the GPU, so that many steps can be recorded into one
// submission: state[0] = steps done (Adam's t − 1, the RNG's step), state[1] = batch index
// within the epoch (the host resets it to 0 at each epoch). The last dispatch of every step.

struct Params {
    steps: u32,    // how far to advance (1 per training step)
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> state: array<u32>;

@compute @workgroup_size(1)
fn advance() {
    state[0] = state[0] + p.steps;
    state[1] = state[1] + p.steps;
}
