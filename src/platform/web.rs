//! The web-page half of [`crate::platform`]: one thread, and the browser drives the GPU.

/// Nothing to wait for: the browser resolves buffer mappings from its event loop once the GPU
/// is done, and [`super::mapped`] awaits them.
pub(crate) fn settle(
    _device: &wgpu::Device,
    _submission: Option<wgpu::SubmissionIndex>,
) -> Result<(), String> {
    Ok(())
}

/// A page runs on one thread.
pub fn workers() -> usize {
    1
}

/// Runs `work` once, on the page's thread (whose GPU objects are not `Send`: no bounds here).
pub fn on_workers<T>(_workers: usize, work: impl Fn() -> T) -> Vec<T> {
    vec![work()]
}

/// Runs `a`, then `b`.
pub fn join<A, B>(a: impl FnOnce() -> A, b: impl FnOnce() -> B) -> (A, B) {
    let a = a();
    (a, b())
}

/// Creates a buffer with `create`. A page cannot wait for an error scope, so an allocation
/// that fails is reported by the device as an uncaptured error (in the browser's console).
pub(crate) fn allocate(
    _device: &wgpu::Device,
    create: impl FnOnce() -> wgpu::Buffer,
) -> Result<wgpu::Buffer, wgpu::Error> {
    Ok(create())
}

/// A page receives no signals; it pauses training itself.
pub fn on_interrupt(_handler: fn()) -> Result<(), String> {
    Ok(())
}

/// Ends the program with `status` (a page receives no signals, so nothing calls this from a
/// second thread there).
pub fn exit_now(status: i32) -> ! {
    std::process::exit(status)
}
