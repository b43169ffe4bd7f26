//! Stop requests: Ctrl-C, SIGTERM or SIGHUP set a flag that the training loop polls between
//! submissions, so that a training stops at a clean point and says what it kept. A second
//! request ends the process at once (exit status 130); the run folder is consistent at every
//! instant anyway (see [`crate::run`]).

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::{Error, Result};

static REQUESTED: AtomicBool = AtomicBool::new(false);

/// Exit status of a process stopped by a request (128 + SIGINT, as shells report it).
pub const EXIT_STATUS: i32 = 130;

/// Installs the handler (once per process; see [`crate::platform::on_interrupt`]).
pub fn install() -> Result<()> {
    crate::platform::on_interrupt(|| {
        if REQUESTED.swap(true, Ordering::SeqCst) {
            std::process::exit(EXIT_STATUS);
        }
    })
    .map_err(|e| Error::msg(format!("cannot install the Ctrl-C handler: {e}")))
}

/// Whether a stop was requested.
pub fn requested() -> bool {
    REQUESTED.load(Ordering::Relaxed)
}

/// Test hook: with `GPU_AE_STOP_AT_STEP=N` in the environment a training stops as if Ctrl-C
/// came once it has done N optimizer steps in all (at the first submission boundary there), so
/// that tests stop inside an epoch at a known point. Without the variable it reads a cached
/// `None`.
pub fn test_step_reached(steps_done: u64) -> bool {
    static AT: OnceLock<Option<u64>> = OnceLock::new();
    AT.get_or_init(|| {
        std::env::var("GPU_AE_STOP_AT_STEP")
            .ok()
            .and_then(|v| v.parse().ok())
    })
    .is_some_and(|at| steps_done >= at)
}
