//! The test-set passes' shared machinery ([`Evaluator`](crate::run::evaluate::Evaluator) and
//! [`ImportanceWeighted`](crate::run::likelihood::ImportanceWeighted)): one plan for the full batches
//! of a split and one for its tail, recorded once over a step counter and a sums buffer, and
//! replayed batch by batch, the chunks of a streamed split uploaded before their first batch.

use crate::error::Result;
use crate::gpu::{Gpu, Plan, Tensor};
use crate::kernels::step;
use crate::run::batch_plans::BatchPlans;
use crate::run::gpu_split::GpuSplit;

/// What a batch plan is recorded over (see [`SplitPlans::new`]).
pub struct BatchContext<'a> {
    /// Images in this plan's batch (the full batch, or the tail).
    pub n: usize,
    /// The full batch size, that batch indices count in.
    pub batch: usize,
    /// u32 `[4]` step counter: state[1] is the batch index (each plan ends in `step::advance`).
    pub state: &'a Tensor,
    /// `[4]` sums the plans add into.
    pub acc: &'a Tensor,
}

/// The plans of one pass over one split.
pub struct SplitPlans<'s> {
    pub split: &'s GpuSplit,
    plans: BatchPlans,
    /// Batches per chunk: all of them, or a chunk's when the split is streamed.
    chunk_batches: usize,
    batch: usize,
    state: Tensor,
    acc: Tensor,
}

impl<'s> SplitPlans<'s> {
    /// Records `build`'s plan for the full batches of `batch` images (at most the split's count)
    /// and for the tail; `build` records the batch's work, and `step::advance` follows it.
    pub fn new(
        gpu: &Gpu,
        split: &'s GpuSplit,
        batch: usize,
        build: impl Fn(&mut Plan, &BatchContext) -> Result<()>,
    ) -> Result<SplitPlans<'s>> {
        let batch = batch.min(split.count).max(1);
        let chunk = split.plan_chunks(gpu, batch)?;
        let state = Tensor::zeros(gpu, &[step::STATE_LEN], "pass state")?;
        let acc = Tensor::zeros(gpu, &[4], "pass sums")?;
        let plans = BatchPlans::new(split.count, batch, |n| {
            let mut plan = Plan::new();
            let ctx = BatchContext {
                n,
                batch,
                state: &state,
                acc: &acc,
            };
            build(&mut plan, &ctx)?;
            step::advance(&mut plan, gpu, &state);
            plan.compile(gpu);
            // The tensors `build` made stay alive through the plan's bindings.
            Ok(plan)
        })?;
        let steps = plans.steps();
        Ok(SplitPlans {
            split,
            plans,
            chunk_batches: if split.is_streamed() {
                chunk / batch
            } else {
                steps
            },
            batch,
            state,
            acc,
        })
    }

    /// Batches in the pass.
    pub fn steps(&self) -> usize {
        self.plans.steps()
    }

    /// Runs every batch from a zero step counter and zero sums, `per_submission` batches to a
    /// submission (never across a chunk of a streamed split); with `progress`, waits for each
    /// submission and reports `(batches done, batches)`. Returns the sums.
    pub async fn run(
        &self,
        gpu: &Gpu,
        per_submission: usize,
        mut progress: Option<&mut dyn FnMut(usize, usize)>,
    ) -> Result<Vec<f32>> {
        gpu.queue
            .write_buffer(&self.state.buffer, 0, bytemuck::cast_slice(&[0u32; 4]));
        gpu.queue
            .write_buffer(&self.acc.buffer, 0, bytemuck::cast_slice(&[0f32; 4]));
        let steps = self.steps();
        for chunk_start in (0..steps).step_by(self.chunk_batches) {
            let chunk = self.chunk_batches * self.batch;
            self.split
                .load_chunk(gpu, None, chunk_start * self.batch, chunk);
            let chunk_end = (chunk_start + self.chunk_batches).min(steps);
            let per_submission = per_submission.max(1);
            for first in (chunk_start..chunk_end).step_by(per_submission) {
                let last = first.saturating_add(per_submission).min(chunk_end);
                self.plans.submit(gpu, first..last, "split pass", |_| {});
                if let Some(report) = progress.as_mut() {
                    gpu.idle().await?;
                    report(last, steps);
                }
            }
        }
        self.acc.fetch_f32(gpu).await
    }
}
