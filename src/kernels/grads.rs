//! Launcher for `shaders/grads.wgsl`: gradient partials. Weight-gradient products and bias
//! channel sums reduce over the whole batch, so they split that reduction over many workgroups
//! (split-K) and write partial sums into one scratch buffer, [`GradPartials`]; one `finish`
//! dispatch then adds every layer's partials into the flat gradient buffer. A backward pass
//! thus costs one summing dispatch in all, not one per layer.

use crate::error::Result;
use crate::gpu::{Gpu, Plan, Shader, Tensor};

pub const SHADER: Shader = Shader {
    name: "grads",
    source: include_str!("../../shaders/grads.wgsl"),
};

/// Workgroup size of `finish` (`WG` in the shader).
const WG: usize = 256;
/// Most invocations that share one output's splits, and the splits each should add at least.
const MAX_LANES: usize = 64;
const SPLITS_PER_LANE: usize = 8;
/// Values per entry of the segment table (`ENTRY` in the shader).
const ENTRY: usize = 9;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    segments: u32,
    scale: f32,
    _pad1: u32,
    _pad2: u32,
}

/// The shape of one layer's partials, `[splits, rows, cols (+1 bias column)]`, and where the
/// sums go in the gradient buffer: element (r, c) to `weight + r·cols + c`, the bias column to
/// `bias + r`. `cols = 0` with a bias is a plain per-row (channel) sum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartialLayout {
    pub splits: usize,
    pub rows: usize,
    pub cols: usize,
    pub weight: usize,
    pub bias: Option<usize>,
}

impl PartialLayout {
    /// Values per split: `rows · (cols + 1 if bias)`.
    pub fn split_len(&self) -> usize {
        self.rows * (self.cols + self.bias.is_some() as usize)
    }

    /// Scratch elements the partials take.
    pub fn len(&self) -> usize {
        self.splits * self.split_len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The scratch buffer of a backward pass's partials and the table of what goes where.
pub struct GradPartials {
    scratch: Tensor,
    used: usize,
    segments: Vec<[u32; ENTRY]>,
    /// Workgroups of `finish` so far (the next segment's first block).
    blocks: usize,
}

impl GradPartials {
    /// Scratch for `capacity` partial values (the sum of the layers' `backward_partials`).
    pub fn new(gpu: &Gpu, capacity: usize) -> Result<GradPartials> {
        Ok(GradPartials {
            scratch: Tensor::zeros(gpu, &[capacity.max(1)], "gradient partials")?,
            used: 0,
            segments: Vec::new(),
            blocks: 0,
        })
    }

    /// The scratch buffer that producers write into.
    pub fn buffer(&self) -> &wgpu::Buffer {
        &self.scratch.buffer
    }

    /// Reserves room for `layout` and returns the element offset of its split 0. Panics when
    /// the scratch was sized too small (a sizing bug in the caller, not a user error).
    pub fn reserve(&mut self, layout: PartialLayout) -> usize {
        let off = self.used;
        self.used += layout.len();
        assert!(
            self.used <= self.scratch.numel(),
            "gradient partials: {} values reserved, scratch holds {}",
            self.used,
            self.scratch.numel()
        );
        let lanes = layout
            .splits
            .div_ceil(SPLITS_PER_LANE)
            .next_power_of_two()
            .min(MAX_LANES);
        let blocks = layout.split_len().div_ceil(WG / lanes);
        self.segments.push([
            off as u32,
            layout.splits as u32,
            layout.rows as u32,
            layout.cols as u32,
            layout.bias.is_some() as u32,
            layout.weight as u32,
            layout.bias.unwrap_or(0) as u32,
            lanes.trailing_zeros(),
            self.blocks as u32,
        ]);
        self.blocks += blocks;
        off
    }

    /// Records the dispatch that writes every reserved segment's sums, times `scale`, into
    /// `grads` (overwriting them). Records nothing when nothing was reserved.
    pub fn finish(
        &self,
        plan: &mut Plan,
        gpu: &Gpu,
        grads: &wgpu::Buffer,
        scale: f32,
    ) -> Result<()> {
        if self.segments.is_empty() {
            return Ok(());
        }
        let flat: Vec<u32> = self.segments.iter().flatten().copied().collect();
        let table = Tensor::from_u32(
            gpu,
            &[self.segments.len(), ENTRY],
            &flat,
            "gradient partials table",
        )?;
        let params = Params {
            segments: self.segments.len() as u32,
            scale,
            _pad1: 0,
            _pad2: 0,
        };
        plan.dispatch(
            gpu,
            &SHADER,
            "finish",
            &[],
            &params,
            &[
                (1, table.bind()),
                (2, self.scratch.bind()),
                (3, grads.into()),
            ],
            [self.blocks as u32, 1, 1],
        );
        Ok(())
    }
}
