//! Stop requests: Ctrl-C, SIGTERM or SIGHUP set a flag that the training loop polls between
//! submissions, so that a training stops at a clean point and says what it kept. Before the
//! loop begins (while the data decodes and the pipelines compile, which nothing polls), a
//! request ends the process at once through [`exit_early`], undoing the run folder's claim. A
//! second request ends the process at once (exit status 130); the run folder is consistent at
//! every instant anyway (see [`crate::run::folder`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};

use crate::error::{Error, Result};
use crate::noteln;

static REQUESTED: AtomicBool = AtomicBool::new(false);

/// What a request does before the training loop polls the flag (see [`exit_early`]).
type Undo = Box<dyn FnOnce() -> String + Send>;
static BEFORE_LOOP: Mutex<Option<Undo>> = Mutex::new(None);

/// Exit status of a process stopped by a request (128 + SIGINT, as shells report it).
pub const EXIT_STATUS: i32 = 130;

/// Installs the handler (once per process; see [`crate::platform::on_interrupt`]).
pub fn install() -> Result<()> {
    crate::platform::on_interrupt(|| {
        if REQUESTED.swap(true, Ordering::SeqCst) {
            crate::platform::exit_now(EXIT_STATUS);
        }
        end_early(&mut lock_before_loop());
    })
    .map_err(|e| Error::msg(format!("cannot install the Ctrl-C handler: {e}")))
}

/// Until the returned guard is dropped, a stop request (one already made included) ends the
/// process at once with exit status 130, after `undo` has undone what the command set up; its
/// line says what is left ("stopped before the first step: nothing was trained; …"). For the
/// start of a training, where nothing polls [`requested`] yet; drop the guard before the first
/// step (dropping it waits for an `undo` under way, which ends the process).
#[must_use = "a stop request exits early only while the guard lives"]
pub fn exit_early(undo: impl FnOnce() -> String + Send + 'static) -> EarlyExit {
    let mut slot = lock_before_loop();
    *slot = Some(Box::new(undo));
    if requested() {
        end_early(&mut slot);
    }
    EarlyExit(())
}

/// Keeps [`exit_early`] armed while it lives.
pub struct EarlyExit(());

impl Drop for EarlyExit {
    fn drop(&mut self) {
        lock_before_loop().take();
    }
}

fn lock_before_loop() -> std::sync::MutexGuard<'static, Option<Undo>> {
    BEFORE_LOOP.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs the armed undo and exits (holding the lock, so that the guard's drop waits for it);
/// nothing when none is armed.
fn end_early(slot: &mut Option<Undo>) {
    if let Some(undo) = slot.take() {
        let left = undo();
        noteln!("stopped before the first step: nothing was trained; {left}");
        crate::platform::exit_now(EXIT_STATUS);
    }
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
