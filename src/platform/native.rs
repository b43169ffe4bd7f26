//! The native half of [`crate::platform`]: blocking waits, threads, OS signals.

/// Runs a future to completion on this thread. gpu-ae's futures never wait on anything but
/// the GPU, which [`settle`] has already waited for, so this does not spin.
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    pollster::block_on(future)
}

/// Blocks until `submission` (all submitted work when `None`) is done on `device`, running the
/// callbacks of finished buffer mappings.
pub(crate) fn settle(
    device: &wgpu::Device,
    submission: Option<wgpu::SubmissionIndex>,
) -> Result<(), String> {
    device
        .poll(wgpu::PollType::Wait {
            submission_index: submission,
            timeout: None,
        })
        .map(|_| ())
        .map_err(|e| format!("waiting for the GPU failed: {e}"))
}

/// Threads for CPU-parallel work: one per core.
pub fn workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Runs `work` on `workers` threads at once (this one included) and returns what each
/// returned; a panic in any is resumed here.
pub fn on_workers<T: Send>(workers: usize, work: impl Fn() -> T + Sync) -> Vec<T> {
    std::thread::scope(|s| {
        let helpers: Vec<_> = (1..workers.max(1)).map(|_| s.spawn(&work)).collect();
        let mut results = vec![work()];
        for h in helpers {
            results.push(h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)));
        }
        results
    })
}

/// Runs `a` on a second thread while `b` runs on this one. `a` panicking is resumed here.
pub fn join<A: Send, B>(a: impl FnOnce() -> A + Send, b: impl FnOnce() -> B) -> (A, B) {
    std::thread::scope(|s| {
        let a = s.spawn(a);
        let b = b();
        (a.join().unwrap_or_else(|e| std::panic::resume_unwind(e)), b)
    })
}

/// Creates a buffer with `create`, reporting the device's out-of-memory error as `Err`.
pub(crate) fn allocate(
    device: &wgpu::Device,
    create: impl FnOnce() -> wgpu::Buffer,
) -> Result<wgpu::Buffer, wgpu::Error> {
    let scope = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
    let buffer = create();
    match block_on(scope.pop()) {
        Some(err) => Err(err),
        None => Ok(buffer),
    }
}

/// Calls `handler` on Ctrl-C, SIGTERM and SIGHUP (once per process).
pub fn on_interrupt(handler: fn()) -> Result<(), String> {
    ctrlc::set_handler(handler).map_err(|e| e.to_string())
}

/// Ends the process at once with `status` from any thread, after flushing stdout (stderr is
/// unbuffered). Unlike [`std::process::exit`] it runs no exit handlers: a signal thread that
/// ends a process whose main thread is still inside the GPU driver (lavapipe compiling a
/// pipeline) must not run the driver's static destructors under it, which corrupted the heap.
pub fn exit_now(status: i32) -> ! {
    use std::io::Write;
    let _ = std::io::stdout().flush();
    // SAFETY: _exit only ends the process; it touches no memory of this one.
    unsafe { libc::_exit(status) }
}
