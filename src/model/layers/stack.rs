//! A [`Stack`]: an `nn.Sequential` of [`Layer`]s with known per-example shapes and the one
//! place that decides how activations fuse into their neighbours; a [`StackBuilder`] names its
//! layers as PyTorch numbers the modules of a `Sequential`; [`StackBuffers`] is a stack on the
//! GPU for one batch size, with its forward and backward passes recorded into plans.

use super::{Dims, Fuses, Layer, Linear, ParamTable, Record, Scratch, ScratchFor};
use crate::error::Result;
use crate::gpu::{Elem, Gpu, Tensor};
use crate::kernels::grads::GradPartials;
use crate::kernels::{InputGrad, SplitTensor, linear};
use crate::shapes::Activation;
use std::sync::Arc;

/// How a layer runs once activations are fused into their neighbours, decided in one place
/// ([`Stack`]): an activation that follows a [`Fuses::Both`] layer is applied in that layer's
/// epilogue and records nothing itself, and a layer after an activation that folds its
/// derivative ([`Fuses::Both`], [`Fuses::InputOnly`]) applies it in its own input gradient.
/// The pre-activation is never stored, and neither is the activation output's gradient.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Fusion {
    /// An activation folded into the layer before it: no dispatch of its own, and it shares
    /// that layer's output tensor.
    pub folded: bool,
    /// The activation this layer applies to its output (the next layer, folded).
    pub epilogue: Option<Activation>,
    /// The activation that produced this layer's input, whose derivative this layer's
    /// input-gradient product applies.
    pub input_act: Option<Activation>,
}

/// An `nn.Sequential` with known per-example shapes: `dims[i]` is the input of layer `i`,
/// `dims[len]` the output of the stack; `fusion[i]` how layer `i` runs.
#[derive(Debug, Clone)]
pub struct Stack {
    pub layers: Vec<Arc<dyn Layer>>,
    pub dims: Vec<Dims>,
    pub fusion: Vec<Fusion>,
}

/// Builds a [`Stack`] named `prefix`: each module takes the next index of PyTorch's
/// `nn.Sequential` (`enc.0`, `enc.1`, …), or a child name of its own (`enc.3.conv1`); modules
/// that are free here (`Flatten`, `Unflatten`, a sigmoid fused into the loss) take their
/// index without becoming layers.
pub struct StackBuilder<'t> {
    table: &'t mut ParamTable,
    prefix: String,
    next: usize,
    dims: Vec<Dims>,
    layers: Vec<Arc<dyn Layer>>,
}

impl<'t> StackBuilder<'t> {
    pub fn new(table: &'t mut ParamTable, prefix: &str, input: Dims) -> StackBuilder<'t> {
        StackBuilder {
            table,
            prefix: prefix.to_string(),
            next: 0,
            dims: vec![input],
            layers: Vec::new(),
        }
    }

    /// The output shape so far.
    pub fn dims(&self) -> Dims {
        *self.dims.last().expect("dims starts non-empty")
    }

    /// Appends the layer `make` builds from the parameter table, its name (the next index)
    /// and its input shape.
    pub fn push<L: Layer + 'static>(
        &mut self,
        make: impl FnOnce(&mut ParamTable, &str, Dims) -> L,
    ) -> &mut Self {
        let name = format!("{}.{}", self.prefix, self.next);
        self.next += 1;
        self.append(&name, make)
    }

    /// Appends a layer named `prefix.child` (a module attribute, not an index).
    pub fn push_named<L: Layer + 'static>(
        &mut self,
        child: &str,
        make: impl FnOnce(&mut ParamTable, &str, Dims) -> L,
    ) -> &mut Self {
        let name = format!("{}.{child}", self.prefix);
        self.append(&name, make)
    }

    fn append<L: Layer + 'static>(
        &mut self,
        name: &str,
        make: impl FnOnce(&mut ParamTable, &str, Dims) -> L,
    ) -> &mut Self {
        let layer = make(self.table, name, self.dims());
        assert_eq!(layer.input(), self.dims(), "{name}: input shape");
        self.dims.push(layer.output());
        self.layers.push(Arc::new(layer));
        self
    }

    /// `nn.Unflatten` (or `Flatten`): takes an index and views the output as `to`, free in
    /// NCHW.
    pub fn reshape(&mut self, to: Dims) -> &mut Self {
        assert_eq!(
            self.dims().numel(),
            to.numel(),
            "{}: reshape size",
            self.prefix
        );
        self.next += 1;
        *self.dims.last_mut().expect("dims starts non-empty") = to;
        self
    }

    pub fn finish(self) -> Stack {
        let layers = self.layers;
        let fuses: Vec<Fuses> = layers.iter().map(|l| l.fuses()).collect();
        let folded = |i: usize| match fuses[i] {
            Fuses::Activation(act) if i > 0 && fuses[i - 1] == Fuses::Both => Some(act),
            _ => None,
        };
        let fusion = (0..fuses.len())
            .map(|i| Fusion {
                folded: folded(i).is_some(),
                epilogue: (i + 1 < fuses.len()).then(|| folded(i + 1)).flatten(),
                input_act: match (i.checked_sub(1).map(|j| fuses[j]), fuses[i]) {
                    (Some(Fuses::Activation(act)), Fuses::Both | Fuses::InputOnly) => Some(act),
                    _ => None,
                },
            })
            .collect();
        Stack {
            layers,
            dims: self.dims,
            fusion,
        }
    }
}

impl Stack {
    pub fn input(&self) -> Dims {
        self.dims[0]
    }

    pub fn output(&self) -> Dims {
        *self.dims.last().expect("dims is never empty")
    }

    /// Multiply-accumulates of one example's forward pass (for `bench`'s FLOP count).
    pub fn forward_macs(&self) -> u64 {
        self.layers.iter().map(|l| l.forward_macs()).sum()
    }

    /// The stack's final activation: a caller whose own input-gradient product produces the
    /// stack output's gradient can fold it in ([`Backward::BeforeOutputActivation`]).
    pub fn output_activation(&self) -> Option<Activation> {
        match self.layers.last().map(|l| l.fuses()) {
            Some(Fuses::Activation(act)) => Some(act),
            _ => None,
        }
    }

    /// Scratch values the backward pass reserves in its [`GradPartials`] at batch size `n`.
    pub fn backward_partials(&self, n: usize) -> usize {
        self.layers.iter().map(|l| l.backward_partials(n)).sum()
    }

    /// The Linear layer after layer `i` when it hands the gradient of layer `i`'s output over as
    /// split-K slices, which layer `i` adds up itself ([`Layer::backward_reads_slices`]): that
    /// gradient is then never summed into a tensor.
    fn slices_into(&self, i: usize) -> Option<&Linear> {
        let next = self.layers.get(i + 1)?.as_linear()?;
        self.layers[i].backward_reads_slices().then_some(next)
    }
}

/// Which backward pass a [`StackBuffers`] is built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backward {
    /// None: inference, no gradient tensors.
    None,
    /// From the gradient of the stack output.
    FromOutput,
    /// From the gradient of the input of the stack's final activation: the caller's own
    /// input-gradient product applies that activation's derivative
    /// ([`Stack::output_activation`]), so the stack skips it.
    BeforeOutputActivation,
}

/// A [`Stack`] on the GPU for batch size `n`: the output of each layer, the gradient of each
/// layer output (when built for training), all stored as one [`Elem`], and each layer's
/// [`Scratch`]. A layer whose activation is fused shares its output tensor with that
/// activation (the pre-activation is never stored), and the gradient of an activation output
/// whose backward pass is fused is never stored either.
pub struct StackBuffers {
    n: usize,
    tensors: Vec<Tensor>,
    /// Index into `tensors` of the output of layer i: `[n, dims[i+1]]`.
    outs: Vec<usize>,
    /// Index into `tensors` of the gradient w.r.t. the output of layer i, for i < len − 1 (the
    /// last one is the caller's); None where no pass writes it.
    grads: Vec<Option<usize>>,
    scratch: Vec<Scratch>,
    backward: Backward,
}

impl StackBuffers {
    pub fn new(
        gpu: &Gpu,
        stack: &Stack,
        n: usize,
        elem: Elem,
        backward: Backward,
        label: &str,
    ) -> Result<Self> {
        debug_assert!(
            backward != Backward::BeforeOutputActivation || stack.output_activation().is_some()
        );
        let len = stack.layers.len();
        let mut tensors = Vec::new();
        let mut outs = vec![0; len];
        let mut grads = vec![None; len];
        // Outputs from the last layer back, so a fused layer can take its activation's tensor.
        for i in (0..len).rev() {
            let layer = &stack.layers[i];
            let shape = stack.dims[i + 1].batch(n);
            if i + 1 < len && stack.fusion[i + 1].folded {
                outs[i] = outs[i + 1];
            } else {
                outs[i] = tensors.len();
                tensors.push(Tensor::zeros_as(
                    gpu,
                    &shape,
                    elem,
                    &format!("{label} {}", layer.name()),
                )?);
            }
            // The gradient of layer i's output is written by layer i + 1's backward pass unless
            // that fuses an activation, and it is the caller's for the final activation's input.
            let written = match backward {
                Backward::None => false,
                Backward::FromOutput => i + 1 < len,
                Backward::BeforeOutputActivation => i + 2 < len,
            } && stack
                .fusion
                .get(i + 1)
                .is_none_or(|f| f.input_act.is_none())
                && stack.slices_into(i).is_none();
            if written {
                grads[i] = Some(tensors.len());
                tensors.push(Tensor::zeros_as(
                    gpu,
                    &shape,
                    elem,
                    &format!("{label} d{}", layer.name()),
                )?);
            }
        }
        let scratch = stack
            .layers
            .iter()
            .map(|l| {
                l.scratch(ScratchFor {
                    gpu,
                    n,
                    elem,
                    training: backward != Backward::None,
                    label,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(StackBuffers {
            n,
            tensors,
            outs,
            grads,
            scratch,
            backward,
        })
    }

    fn out(&self, i: usize) -> &Tensor {
        &self.tensors[self.outs[i]]
    }

    fn grad(&self, i: usize) -> &Tensor {
        &self.tensors[self.grads[i].expect("a gradient tensor for every unfused layer output")]
    }

    pub fn output(&self) -> &Tensor {
        self.out(self.outs.len() - 1)
    }

    /// The stack's final activation when the caller applies its backward pass
    /// ([`Backward::BeforeOutputActivation`]).
    pub fn caller_activation(&self, stack: &Stack) -> Option<Activation> {
        match self.backward {
            Backward::BeforeOutputActivation => stack.output_activation(),
            _ => None,
        }
    }

    /// The gradient w.r.t. layer `i`'s output as the backward pass leaves it (`dout` for the
    /// last layer; for a layer with a fused activation, w.r.t. its pre-activation).
    pub fn output_grad<'a>(&'a self, i: usize, dout: &'a Tensor) -> &'a Tensor {
        if i + 1 == self.outs.len() {
            dout
        } else {
            self.grad(i)
        }
    }

    /// Records the forward pass of `stack` from `input`. Batch norm layers use the batch's
    /// statistics and update the running ones when the stack is built for training, and the
    /// running ones otherwise.
    pub fn forward(&self, r: &mut Record, stack: &Stack, input: &Tensor) -> Result<()> {
        debug_assert_eq!(r.n, self.n, "batch size");
        for (i, layer) in stack.layers.iter().enumerate() {
            if stack.fusion[i].folded {
                continue;
            }
            let x = if i == 0 { input } else { self.out(i - 1) };
            layer.forward(
                r,
                self.out(i),
                x,
                stack.fusion[i].epilogue,
                &self.scratch[i],
            )?;
        }
        Ok(())
    }

    /// Records the backward pass: `dout` is the gradient of the stack output, or, when built
    /// with [`Backward::BeforeOutputActivation`], of the input of the stack's final activation.
    /// Parameter gradients go to `partials`; the gradient of the stack input to `din` when given.
    pub fn backward(
        &self,
        r: &mut Record,
        stack: &Stack,
        din: Option<&Tensor>,
        partials: &mut GradPartials,
        dout: &Tensor,
        input: &Tensor,
    ) -> Result<()> {
        debug_assert_eq!(r.n, self.n, "batch size");
        let last = stack.layers.len() - 1;
        let top = match self.backward {
            Backward::BeforeOutputActivation => last - 1,
            _ => last,
        };
        let x = |i: usize| if i == 0 { input } else { self.out(i - 1) };
        let mut i = top;
        // The gradient of layer i's output as split-K slices, when layer i + 1 handed it over so.
        let mut slices: Option<SplitTensor> = None;
        loop {
            // Where layer i's input gradient goes: past a fused activation, to that
            // activation's input; the layer reached next is `target`. A Linear layer hands it
            // to a layer that adds up slices itself as split-K slices instead.
            let fused = stack.fusion[i].input_act;
            let target = if fused.is_some() { i - 1 } else { i };
            let handed = target.checked_sub(1).and_then(|j| stack.slices_into(j));
            let dx = match target {
                0 => din,
                _ if handed.is_some() => None,
                _ => Some(self.grad(target - 1)),
            };
            let dx = dx.map(|dx| InputGrad { dx, act: fused });
            let layer = &stack.layers[i];
            match slices.take() {
                Some(dy) => layer.backward_from_slices(r, dx, &dy, x(i)),
                None => {
                    let dy = if i == top { dout } else { self.grad(i) };
                    layer.backward(r, partials, dx, dy, x(i), self.out(i), &self.scratch[i])?;
                    if let Some(l) = handed {
                        let (params, shape) = (r.params, l.shape(r.n));
                        let split =
                            linear::input_grad_split(r.plan, r.gpu, dy, params, l.params, shape)?;
                        slices = Some(split);
                    }
                }
            }
            if target == 0 {
                return Ok(());
            }
            i = target - 1;
        }
    }
}
