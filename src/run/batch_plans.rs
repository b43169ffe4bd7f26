//! The plans of one pass over a split, and the one loop that replays them: a plan for the
//! full batches and one for the tail, each recorded once over a step counter, and
//! [`BatchPlans::submit`], which records a range of batches into one compute pass and submits
//! it. Training ([`crate::run::train::Trainer`]) and the test-set passes
//! ([`crate::run::split_plans::SplitPlans`]) both replay through it.

use std::ops::Range;

use crate::error::Result;
use crate::gpu::{Gpu, Plan};

/// Batches of `batch` over `count` items: (full batches, size of the tail batch or 0).
pub fn batches(count: usize, batch: usize) -> (usize, usize) {
    (count / batch, count % batch)
}

/// Steps of one epoch of `batch` over `count` items: the full batches and the tail.
pub fn epoch_steps(count: usize, batch: usize) -> usize {
    let (full, tail) = batches(count, batch);
    full + usize::from(tail > 0)
}

/// A full-batch plan and a tail plan over `count` items (either absent when it has no batch).
#[derive(Default)]
pub struct BatchPlans {
    full: Option<Plan>,
    tail: Option<Plan>,
    full_batches: usize,
    batch: usize,
    tail_n: usize,
}

impl BatchPlans {
    /// Records `record(n)`, the plan of one batch of `n` items, for the full batches of
    /// `batch` over `count` items and for the tail.
    pub fn new(
        count: usize,
        batch: usize,
        mut record: impl FnMut(usize) -> Result<Plan>,
    ) -> Result<BatchPlans> {
        let (full_batches, tail_n) = batches(count, batch);
        let full = (full_batches > 0).then(|| record(batch)).transpose()?;
        let tail = (tail_n > 0).then(|| record(tail_n)).transpose()?;
        Ok(BatchPlans {
            full,
            tail,
            full_batches,
            batch,
            tail_n,
        })
    }

    /// Batches in the pass.
    pub fn steps(&self) -> usize {
        self.full_batches + usize::from(self.tail.is_some())
    }

    /// Items in batch `step`.
    pub fn images(&self, step: usize) -> usize {
        if step < self.full_batches {
            self.batch
        } else {
            self.tail_n
        }
    }

    /// The plan of a full batch (the tail's when there is none), for profiling and counts.
    pub fn first(&self) -> &Plan {
        self.full
            .as_ref()
            .or(self.tail.as_ref())
            .expect("a pass of at least one batch")
    }

    /// (dispatches, bound storage bytes) of the whole pass: every full batch and the tail.
    pub fn totals(&self) -> (usize, u64) {
        [(&self.full, self.full_batches), (&self.tail, 1)]
            .iter()
            .filter_map(|(plan, count)| plan.as_ref().map(|p| (p, *count)))
            .fold((0, 0), |(d, b), (plan, count)| {
                (
                    d + plan.len() * count,
                    b + plan.bound_bytes() * count as u64,
                )
            })
    }

    /// Records batches `steps` into one compute pass of a new encoder named `label`, then
    /// `after` (copies that follow the pass), and submits it.
    pub fn submit(
        &self,
        gpu: &Gpu,
        steps: Range<usize>,
        label: &str,
        after: impl FnOnce(&mut wgpu::CommandEncoder),
    ) -> wgpu::SubmissionIndex {
        let mut encoder = gpu
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(label) });
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some(label),
                timestamp_writes: None,
            });
            for s in steps {
                let plan = if s < self.full_batches {
                    &self.full
                } else {
                    &self.tail
                };
                plan.as_ref()
                    .expect("a plan for every batch")
                    .record(&mut pass);
            }
        }
        after(&mut encoder);
        gpu.queue.submit([encoder.finish()])
    }
}
