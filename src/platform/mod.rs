//! The seam between a native process and a web page: everything gpu-ae does differently in a
//! browser (`wasm32`) lives here, and the rest of the crate is one source for both.
//!
//! | | native | web page |
//! |---|---|---|
//! | GPU completion | `device.poll` blocks until a submission is done | the browser's event loop resolves map promises; nothing to poll |
//! | futures | [`block_on`] (pollster) | awaited by the page (`wasm-bindgen-futures`) |
//! | threads | every core ([`workers`], [`on_workers`], [`join`]) | one |
//! | clock | `std::time::Instant` | `performance.now()` (both through [`Instant`]) |
//! | out-of-memory check | an error scope popped at once | the device's uncaptured-error report |
//! | Ctrl-C / SIGTERM | [`on_interrupt`] (ctrlc) | no signals: the page pauses training itself |
//!
//! Readback is asynchronous on both ([`mapped`]): native code awaits it through [`block_on`].

#[cfg(not(target_arch = "wasm32"))]
mod native;
#[cfg(not(target_arch = "wasm32"))]
pub use native::*;

#[cfg(target_arch = "wasm32")]
mod web;
#[cfg(target_arch = "wasm32")]
pub use web::*;

pub use web_time::Instant;

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

/// A value on its way from a wgpu callback to the task awaiting it.
struct Slot<T> {
    value: Option<T>,
    /// The callback was dropped without being called (the device is gone).
    dropped: bool,
    waker: Option<Waker>,
}

/// The sending half, moved into a wgpu callback.
struct Completer<T>(Arc<Mutex<Slot<T>>>);

impl<T> Completer<T> {
    fn complete(self, value: T) {
        let mut slot = self.0.lock().expect("completion slot");
        slot.value = Some(value);
        if let Some(w) = slot.waker.take() {
            w.wake();
        }
    }
}

impl<T> Drop for Completer<T> {
    fn drop(&mut self) {
        let mut slot = self.0.lock().expect("completion slot");
        slot.dropped = true;
        if let Some(w) = slot.waker.take() {
            w.wake();
        }
    }
}

/// Resolves to the completed value, or `None` when the callback was dropped uncalled.
struct Completion<T>(Arc<Mutex<Slot<T>>>);

impl<T> Future for Completion<T> {
    type Output = Option<T>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut slot = self.0.lock().expect("completion slot");
        if let Some(v) = slot.value.take() {
            return Poll::Ready(Some(v));
        }
        if slot.dropped {
            return Poll::Ready(None);
        }
        slot.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

fn completion<T>() -> (Completer<T>, Completion<T>) {
    let slot = Arc::new(Mutex::new(Slot {
        value: None,
        dropped: false,
        waker: None,
    }));
    (Completer(slot.clone()), Completion(slot))
}

/// Maps all of `buffer` (a MAP_READ buffer whose copy was submitted) for reading and resolves
/// once it is mapped. Natively the device is first polled until `submission` (all work when
/// `None`) is done, so the future is ready when first polled; in a page the browser resolves
/// it from its event loop.
pub async fn mapped(
    device: &wgpu::Device,
    buffer: &wgpu::Buffer,
    submission: Option<wgpu::SubmissionIndex>,
) -> Result<(), String> {
    let (done, mapping) = completion();
    buffer
        .slice(..)
        .map_async(wgpu::MapMode::Read, move |r| done.complete(r));
    settle(device, submission)?;
    match mapping.await {
        Some(r) => r.map_err(|e| e.to_string()),
        None => Err("the mapping was cancelled".into()),
    }
}

/// Resolves when all work submitted to `queue` so far is done.
pub async fn idle(device: &wgpu::Device, queue: &wgpu::Queue) -> Result<(), String> {
    let (done, finished) = completion();
    queue.on_submitted_work_done(move || done.complete(()));
    settle(device, None)?;
    finished
        .await
        .ok_or_else(|| "the device was lost".to_string())
}
