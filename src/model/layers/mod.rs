//! Layers as parts. Every layer kind is one file here behind the one [`Layer`] interface: it
//! declares its parameters under PyTorch's `state_dict` names into the one flat
//! [`ParamTable`], knows its input and output shapes, the tensors it keeps for one batch
//! size ([`Scratch`]), how it records its forward and backward passes given its fusion
//! ([`Fuses`]), and its cost. A [`Stack`] is an `nn.Sequential` of layers; a layer may itself
//! hold a stack with a skip connection around it ([`ResBlock`]). A new layer kind is one new
//! file plus its `mod` line below; models build stacks from layers with a [`StackBuilder`].
//! A conditional model's label is a layer too ([`ConcatLabel`]), reading the batch's labels
//! from the [`Record`].

mod activation;
mod batch_norm;
mod conv2d;
mod conv_transpose2d;
mod label;
mod linear;
mod max_pool;
mod params;
mod residual;
mod stack;
mod upsample;

pub use activation::Act;
pub use batch_norm::BatchNorm2d;
pub use conv_transpose2d::ConvTranspose2d;
pub use conv2d::Conv2d;
pub use label::ConcatLabel;
pub use linear::Linear;
pub use max_pool::MaxPool2x2;
pub use params::{Init, ParamEntry, ParamTable};
pub use residual::ResBlock;
pub use stack::{Backward, Fusion, Stack, StackBuffers, StackBuilder};
pub use upsample::Upsample;

use crate::error::Result;
use crate::gpu::{Elem, Gpu, Plan, Tensor};
use crate::kernels::grads::GradPartials;
use crate::kernels::{InputGrad, SplitTensor};
use crate::shapes::Activation;
use std::fmt;

/// Per-example shape `[C, H, W]`; a feature vector of F values is `[F, 1, 1]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dims {
    pub c: usize,
    pub h: usize,
    pub w: usize,
}

impl Dims {
    pub const fn new(c: usize, h: usize, w: usize) -> Dims {
        Dims { c, h, w }
    }
    pub const fn flat(f: usize) -> Dims {
        Dims { c: f, h: 1, w: 1 }
    }
    pub fn numel(&self) -> usize {
        self.c * self.h * self.w
    }
    /// Tensor shape for a batch of `n`: `[n, C, H, W]`.
    pub fn batch(&self, n: usize) -> [usize; 4] {
        [n, self.c, self.h, self.w]
    }
}

/// How a layer takes part in activation fusion ([`Stack`] decides from these alone).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fuses {
    /// A GEMM or normalisation layer: applies a following activation in its epilogue (which
    /// then records nothing), and the derivative of a preceding one in its input gradient.
    Both,
    /// Folds the derivative of a preceding activation into its input gradient, but applies
    /// nothing after itself (nearest upsampling, a residual block).
    InputOnly,
    /// An element-wise activation, folded into the layer before it where that one can.
    Activation(Activation),
    /// Neither (pooling).
    Nothing,
}

/// Where a layer's recorded dispatches go and what they read: the plan, the flat parameter
/// buffer, the flat buffer of running statistics, the batch size, and a conditional model's
/// labels of the batch.
pub struct Record<'a> {
    pub plan: &'a mut Plan,
    pub gpu: &'a Gpu,
    pub params: &'a wgpu::Buffer,
    pub buffers: &'a wgpu::Buffer,
    pub n: usize,
    /// u32 `[n]` the batch's classes ([`ConcatLabel`]); None for an unconditional model.
    pub labels: Option<&'a Tensor>,
}

/// The tensors a layer keeps for one batch size beyond its output and its gradients: pooling
/// argmax, batch statistics, a residual block's inner tensors.
#[derive(Default)]
pub struct Scratch {
    pub tensors: Vec<Tensor>,
    /// A layer made of a stack (a residual block's branch) on the GPU.
    pub inner: Option<StackBuffers>,
}

/// What a layer is given to allocate its [`Scratch`].
#[derive(Clone, Copy)]
pub struct ScratchFor<'a> {
    pub gpu: &'a Gpu,
    pub n: usize,
    /// Storage of activations and their gradients.
    pub elem: Elem,
    /// Built for training: the backward pass's tensors too.
    pub training: bool,
    pub label: &'a str,
}

/// One layer kind: a PyTorch module of known shapes and the recording of its passes.
pub trait Layer: fmt::Debug + Send + Sync {
    /// The PyTorch module path (`enc.3`, `enc.3.conv1`): its parameters are `NAME.weight` …
    fn name(&self) -> &str;
    /// Per-example input shape.
    fn input(&self) -> Dims;
    /// Per-example output shape.
    fn output(&self) -> Dims;
    fn fuses(&self) -> Fuses;
    /// Multiply-accumulates of one example's forward pass (for `bench`'s FLOP count).
    fn forward_macs(&self) -> u64 {
        0
    }
    /// Scratch values the backward pass reserves in the [`GradPartials`] at batch size `n`.
    fn backward_partials(&self, _n: usize) -> usize {
        0
    }
    /// The layer as a Linear one (the head, and a decoder whose first layer hands its input
    /// gradient to the latent layer as split-K slices).
    fn as_linear(&self) -> Option<&Linear> {
        None
    }
    /// Whether the backward pass can take its output gradient as split-K slices that it adds up
    /// itself ([`Layer::backward_from_slices`]): the stack then has a Linear layer after it
    /// hand over its input gradient unsummed, saving the summing pass.
    fn backward_reads_slices(&self) -> bool {
        false
    }
    /// [`Layer::backward`] of a layer without parameters that
    /// [`Layer::backward_reads_slices`], from `dy` given as split-K slices.
    fn backward_from_slices(
        &self,
        _r: &mut Record,
        _dx: Option<InputGrad>,
        _dy: &SplitTensor,
        _x: &Tensor,
    ) {
        unreachable!("{}: its backward pass reads no split-K slices", self.name())
    }
    /// The tensors the layer keeps for one batch size.
    fn scratch(&self, _at: ScratchFor) -> Result<Scratch> {
        Ok(Scratch::default())
    }
    /// Records `y = layer(x)`, then `epilogue` applied to it when the stack folded the
    /// following activation into this layer ([`Fuses::Both`] only).
    fn forward(
        &self,
        r: &mut Record,
        y: &Tensor,
        x: &Tensor,
        epilogue: Option<Activation>,
        s: &Scratch,
    ) -> Result<()>;
    /// Records the backward pass from `dy` (the gradient of `y`; of the pre-activation when
    /// the following activation is folded): parameter gradients into `partials`, the input
    /// gradient into `dx` when given (with the derivative of `dx.act` folded in, which the
    /// stack asks of [`Fuses::Both`] and [`Fuses::InputOnly`] layers only).
    #[allow(clippy::too_many_arguments)]
    fn backward(
        &self,
        r: &mut Record,
        partials: &mut GradPartials,
        dx: Option<InputGrad>,
        dy: &Tensor,
        x: &Tensor,
        y: &Tensor,
        s: &Scratch,
    ) -> Result<()>;
}
