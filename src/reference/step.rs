//! CPU reference for `shaders/step.wgsl`.

/// `state[0] += 1; state[1] += 1`.
pub fn advance(state: &mut [u32]) {
    state[0] += 1;
    state[1] += 1;
}
